//! Schemathesis, a property-based fuzzer, against the OpenAPI document `paddock serve`
//! serves for its own API (`/api/v1/openapi.json`): signed in as the platform admin, then
//! anonymous. Every check is on (`--checks all`: no 5xx, only declared statuses, content
//! types, headers and schemas, invalid data refused, valid data accepted, deleted things
//! gone, authentication not ignored…), and the run must end with no failure, while the
//! server logs no 5xx and no panic.
//!
//! The size: `PADDOCK_FUZZ_EXAMPLES` examples per operation and phase (default 1: about
//! 1,300 cases a run, a minute or so). Generation is deterministic (the same cases every
//! run, so a failure reproduces) and one worker sends them, in order; the size, not a
//! time budget, ends a run (schemathesis' `--max-time` would repeat fuzzing until it is
//! spent), and `PADDOCK_FUZZ_SECONDS` (default 600) only stops a run that hangs. The
//! full size, as run before a release: `PADDOCK_FUZZ_EXAMPLES=10 cargo nextest run
//! -p paddock-cli --test clients fuzz_api --no-capture` (with the clients' variables).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::rig::{Clients, ServeProcess, clean_env, free_port};

/// The schemathesis settings that go with the document (see the file's comments).
const SETTINGS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/clients/schemathesis.toml"
);

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
        })
        .unwrap_or(default)
}

/// What one run of schemathesis found, from its JSON report.
struct Run {
    who: &'static str,
    cases: u64,
    stop: String,
    /// `ST103 Undocumented status code` → (count, operations).
    failures: BTreeMap<String, (u64, Vec<String>)>,
    errors: Vec<String>,
}

impl Run {
    fn print(&self) {
        eprintln!(
            "schemathesis ({}): {} cases, stopped by {}, {} failures{}",
            self.who,
            self.cases,
            self.stop,
            self.failures.values().map(|(n, _)| n).sum::<u64>(),
            if self.errors.is_empty() {
                String::new()
            } else {
                format!(", errors: {}", self.errors.join("; "))
            }
        );
        for (kind, (count, operations)) in &self.failures {
            eprintln!("  {kind}: {count} ({})", operations.join(", "));
        }
    }
}

/// Runs `st run` against the served document; `token` signs every request in.
fn fuzz(clients: &Clients, serve: &ServeProcess, who: &'static str, token: Option<&str>) -> Run {
    let examples = setting("PADDOCK_FUZZ_EXAMPLES", 1);
    let seconds = setting("PADDOCK_FUZZ_SECONDS", 600);
    let dir = serve.data.join(format!("schemathesis-{who}"));
    std::fs::create_dir_all(&dir).unwrap();
    let report = dir.join("report.json");
    let mut cmd = Command::new(clients.bin("st"));
    clean_env(&mut cmd);
    cmd.current_dir(&dir)
        .arg("--config-file")
        .arg(SETTINGS)
        .arg("run")
        .arg(format!("{}/api/v1/openapi.json", serve.url))
        .args(["--checks", "all", "--generation-deterministic"])
        .args(["--max-examples", &examples.to_string()])
        .args(["--workers", "1", "--no-color", "--report", "json"])
        .arg("--report-json-path")
        .arg(&report);
    if let Some(token) = token {
        cmd.arg("--header")
            .arg(format!("Authorization: Bearer {token}"));
    }
    let out = with_deadline(cmd, std::time::Duration::from_secs(seconds), who);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let text = std::fs::read_to_string(&report).unwrap_or_else(|e| {
        panic!(
            "schemathesis ({who}) wrote no report ({e}); it printed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let json: serde_json::Value = serde_json::from_str(&text).expect("the report is JSON");
    let mut failures = BTreeMap::new();
    for f in json["failures"].as_array().into_iter().flatten() {
        let kind = format!(
            "{} {}",
            f["code"].as_str().unwrap_or("?"),
            f["title"].as_str().unwrap_or("?")
        );
        let operations = f["operations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o.as_str().map(str::to_owned))
            .collect();
        failures.insert(kind, (f["count"].as_u64().unwrap_or(1), operations));
    }
    let run = Run {
        who,
        cases: json["test_cases"]["generated"].as_u64().unwrap_or(0),
        stop: json["stop_reason"].as_str().unwrap_or("?").to_owned(),
        failures,
        errors: json["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| format!("{} ({})", e["title"], e["count"]))
            .collect(),
    };
    run.print();
    if !run.failures.is_empty() || !run.errors.is_empty() {
        eprintln!("{stdout}");
    }
    run
}

/// Runs `cmd` to its end, killing it (and failing) past `deadline`.
fn with_deadline(mut cmd: Command, deadline: std::time::Duration, who: &str) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().expect("starting schemathesis");
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(deadline) {
        Ok(out) => out.expect("running schemathesis"),
        Err(_) => {
            // SAFETY: signalling our own child, which has not been reaped.
            unsafe { libc::kill(id as i32, libc::SIGKILL) };
            panic!("schemathesis ({who}) ran longer than {deadline:?}");
        }
    }
}

/// The server's log lines that answered 5xx or panicked.
fn server_errors(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            l.contains("panicked")
                || l.split("\"status\":")
                    .nth(1)
                    .is_some_and(|rest| rest.starts_with('5'))
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_api_holds_to_its_own_description_under_a_fuzzer_signed_in_and_anonymous() {
    let Some(clients) = Clients::find() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let serve = ServeProcess::start(&dir.path().join("serve"), free_port());
    assert!(!serve.admin_token.is_empty(), "serve wrote no admin token");

    let runs = [
        fuzz(&clients, &serve, "admin", Some(&serve.admin_token)),
        fuzz(&clients, &serve, "anonymous", None),
    ];
    let cases: u64 = runs.iter().map(|r| r.cases).sum();
    eprintln!("schemathesis: {cases} cases in all");

    for run in &runs {
        assert!(run.cases > 0, "schemathesis ({}) ran no case", run.who);
        assert!(
            run.failures.is_empty() && run.errors.is_empty(),
            "schemathesis ({}) found failures: {:?}, errors: {:?}",
            run.who,
            run.failures,
            run.errors
        );
    }
    let errors = server_errors(&serve.process.log);
    assert!(
        errors.is_empty(),
        "the server answered 5xx or panicked under the fuzzer:\n{}",
        errors.join("\n")
    );
}
