//! The `paddock` command as scripts use it: output, `--json`, and exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const DEMO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/demo/blueprint.yaml"
);

fn paddock(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_paddock"));
    cmd.args(args)
        .env("PADDOCK_STATE_DIR", dir)
        .env_remove("PADDOCK_STACK")
        .env_remove("PADDOCK_TEST_FAIL")
        .env_remove("PADDOCK_TEST_LATENCY_MS")
        .env_remove("PADDOCK_TEST_CLOUD")
        .stdin(Stdio::null());
    cmd
}

fn run(dir: &Path, args: &[&str]) -> Output {
    paddock(dir, args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[track_caller]
fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or_else(|| panic!("killed: {o:?}"))
}

fn state_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    (dir, path)
}

#[test]
fn up_applies_the_demo_and_keeps_secrets_out_of_the_output() {
    let (_tmp, dir) = state_dir();
    let up = run(&dir, &["up", "--yes", "-s", "demo", "-f", DEMO]);
    assert_eq!(code(&up), 0, "{}", text(&up.stderr));
    let out = text(&up.stdout);
    assert!(out.contains("Plan: 6 to create"), "{out}");
    assert!(out.contains("Resources: 6 created."), "{out}");
    assert!(out.contains("clusterToken: [secret]"), "{out}");

    let shown = run(
        &dir,
        &[
            "stack",
            "output",
            "-s",
            "demo",
            "clusterToken",
            "--show-secrets",
        ],
    );
    let token = text(&shown.stdout).trim().to_owned();
    assert_eq!(token.len(), 32, "{token:?}");
    assert!(!out.contains(&token) && !text(&up.stderr).contains(&token));
    let hidden = run(&dir, &["stack", "output", "-s", "demo", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&hidden.stdout).unwrap();
    assert_eq!(json["clusterToken"], "[secret]");
    assert_eq!(json["resourceGroup"], "rg-payments-checkout-dev");

    let again = run(&dir, &["up", "--yes", "-s", "demo", "-f", DEMO]);
    assert_eq!(code(&again), 0);
    assert!(text(&again.stdout).contains("No changes."));
}

#[test]
fn preview_emits_a_machine_readable_plan() {
    let (_tmp, dir) = state_dir();
    let o = run(
        &dir,
        &[
            "preview",
            "--json",
            "-s",
            "demo",
            "-f",
            DEMO,
            "-p",
            "stage=prod",
        ],
    );
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(plan["hash"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(plan["summary"]["create"], 6);
    assert_eq!(
        plan["outputs"]["resourceGroup"],
        "rg-payments-checkout-prod"
    );
    assert!(
        !dir.join("state.db").exists() || run(&dir, &["stack", "ls", "--json"]).stdout == b"[]\n",
        "preview creates no stack"
    );
}

#[test]
fn invalid_input_exits_2_naming_the_field() {
    let (tmp, dir) = state_dir();
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(&bad, "name: x\nversion: 1\nresources:\n  a:\n    type: test:resource\n    properties: { name: \"${nope}\" }\n").unwrap();
    let o = run(
        &dir,
        &["up", "--yes", "-s", "dev", "-f", bad.to_str().unwrap()],
    );
    assert_eq!(code(&o), 2);
    let err = text(&o.stderr);
    assert!(
        err.contains("bad.yaml:6:25: `resources.a.properties.name`: `${nope}` refers to nothing"),
        "{err}"
    );

    let o = run(
        &dir,
        &[
            "up",
            "--yes",
            "-s",
            "dev",
            "-f",
            DEMO,
            "-p",
            "quotaCpu=1000",
        ],
    );
    assert_eq!(code(&o), 2);
    assert!(text(&o.stderr).contains("parameter `quotaCpu`: must be at most 64, got 1000"));

    let o = run(&dir, &["up", "-s", "dev", "-f", DEMO]);
    assert_eq!(code(&o), 2, "no terminal to confirm on");
    assert!(text(&o.stderr).contains("pass --yes"));

    let o = run(&dir, &["stack", "init", "bad name"]);
    assert_eq!(code(&o), 2);
    assert!(text(&o.stderr).contains("is not a valid stack name"));
}

#[test]
fn a_failed_step_exits_1_with_the_clouds_code() {
    let (_tmp, dir) = state_dir();
    let o = paddock(&dir, &["up", "--yes", "-s", "dev", "-f", DEMO])
        .env("PADDOCK_TEST_FAIL", "^app-")
        .output()
        .unwrap();
    assert_eq!(code(&o), 1);
    let out = text(&o.stdout);
    assert!(
        out.contains("✗ application (test:resource): [InjectedFailure]"),
        "{out}"
    );
    assert!(
        out.contains("1 failed") && out.contains("1 skipped"),
        "roleAssignment depends on it: {out}"
    );
}

#[test]
fn a_second_operation_on_a_busy_stack_exits_3() {
    let (_tmp, dir) = state_dir();
    let mut first = paddock(
        &dir,
        &["up", "--yes", "-s", "dev", "-f", DEMO, "--parallelism", "1"],
    )
    .env("PADDOCK_TEST_LATENCY_MS", "400")
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let started = Instant::now();
    loop {
        let ls = run(&dir, &["stack", "ls", "--json"]);
        let stacks: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap_or_default();
        if stacks[0]["lease"].is_object() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the first up never took the lease: {} {} {:?}",
            text(&ls.stdout),
            text(&ls.stderr),
            first.try_wait()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = run(&dir, &["up", "--yes", "-s", "dev", "-f", DEMO]);
    assert_eq!(code(&second), 3);
    let err = text(&second.stderr);
    assert!(
        err.contains("stack `dev` is busy (operation ") && err.contains("`up` by "),
        "{err}"
    );
    assert!(first.wait().unwrap().success());
}

#[test]
fn a_stack_with_resources_is_not_removed_until_destroyed() {
    let (_tmp, dir) = state_dir();
    assert_eq!(
        code(&run(&dir, &["up", "--yes", "-s", "dev", "-f", DEMO])),
        0
    );
    let rm = run(&dir, &["stack", "rm", "dev"]);
    assert_eq!(code(&rm), 2);
    assert!(text(&rm.stderr).contains("still manages 6 resource(s)"));
    let destroy = run(&dir, &["destroy", "--yes", "-s", "dev"]);
    assert_eq!(code(&destroy), 0, "{}", text(&destroy.stderr));
    assert!(text(&destroy.stdout).contains("Resources: 6 deleted."));
    assert_eq!(code(&run(&dir, &["stack", "rm", "dev"])), 0);
    assert_eq!(run(&dir, &["stack", "ls", "--json"]).stdout, b"[]\n");
}

#[test]
fn the_sandbox_command_serves_arm_and_writes_its_settings() {
    use std::io::BufRead;
    let (tmp, dir) = state_dir();
    let data = tmp.path().join("sandbox");
    let mut child = paddock(
        &dir,
        &[
            "sandbox",
            "--listen",
            "127.0.0.1:0",
            "--control-listen",
            "127.0.0.1:0",
            "--https-listen",
            "127.0.0.1:0",
            "--data",
        ],
    )
    .arg(&data)
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let mut settings = std::collections::BTreeMap::new();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    while !settings.contains_key("PADDOCK_SANDBOX_CA_FILE") {
        let line = lines.next().expect("settings printed").unwrap();
        let (k, v) = line.split_once('=').expect("KEY=value");
        settings.insert(k.to_owned(), v.to_owned());
    }
    let written = std::fs::read_to_string(data.join("sandbox.env")).unwrap();
    for (k, v) in &settings {
        assert!(
            written.contains(&format!("{k}={v}\n")),
            "{k} in sandbox.env"
        );
    }
    // The printed URLs are HTTPS, with the CA to trust and the cluster's kubeconfig.
    assert!(settings["PADDOCK_SANDBOX_ARM_URL"].starts_with("https://"));
    assert!(std::path::Path::new(&settings["PADDOCK_SANDBOX_CA_FILE"]).exists());
    let kubeconfig = std::fs::read_to_string(&settings["PADDOCK_SANDBOX_KUBECONFIG"]).unwrap();
    assert!(
        kubeconfig.contains(&settings["PADDOCK_SANDBOX_K8S_URL"]),
        "{kubeconfig}"
    );
    // A real HTTP request against the plain listener (the HTTPS one serves the same
    // router): served, and guarded.
    let url = format!(
        "{}/subscriptions/{}/resourcegroups?api-version=2024-11-01",
        settings["PADDOCK_SANDBOX_HTTP_URL"], settings["PADDOCK_SANDBOX_SUBSCRIPTION_ID"]
    );
    let body = http_get(&url);
    assert!(body.contains("\"AuthenticationFailed\""), "{body}");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A plain HTTP/1.1 GET over a TCP socket: the body.
fn http_get(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

#[test]
fn the_shipped_team_blueprint_provisions_into_the_sandbox_from_the_cli() {
    let (tmp, dir) = state_dir();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sandbox = runtime.block_on(async {
        let mut config = paddock_sandbox::SandboxConfig::new(tmp.path().join("sandbox"));
        config.https_listen = Some("127.0.0.1:0".parse().unwrap());
        let sandbox = paddock_sandbox::Sandbox::start(config).await.unwrap();
        sandbox.add_person("ada").await.unwrap();
        sandbox
    });
    let env_file = tmp.path().join("sandbox.env");
    let settings: String = sandbox
        .env()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect();
    std::fs::write(&env_file, settings).unwrap();
    let team = concat!(env!("CARGO_MANIFEST_DIR"), "/../../blueprints/team.yaml");
    let with_sandbox = |args: &[&str]| {
        paddock(&dir, args)
            .env("PADDOCK_SANDBOX_ENV", &env_file)
            .output()
            .unwrap()
    };
    let args = ["up", "--yes", "-s", "team-payments", "-f", team];
    let up = with_sandbox(&[&args[..], &["-p", "team=payments", "-p", "admins=ada"]].concat());
    assert_eq!(code(&up), 0, "{}{}", text(&up.stdout), text(&up.stderr));
    assert!(
        text(&up.stdout).contains("Resources: 2 created."),
        "{}",
        text(&up.stdout)
    );
    let outputs = with_sandbox(&["stack", "output", "-s", "team-payments", "--json"]);
    let outputs: serde_json::Value = serde_json::from_slice(&outputs.stdout).unwrap();
    assert_eq!(outputs["slug"], "payments", "{outputs}");
    assert!(
        outputs["groupObjectId"]
            .as_str()
            .is_some_and(|id| id.len() == 36),
        "{outputs}"
    );

    // Without the clouds configured, the cloud types are unknown, and said so.
    let bare = run(
        &dir,
        &[
            "preview",
            "-s",
            "team-payments",
            "-f",
            team,
            "-p",
            "team=payments",
            "-p",
            "admins=ada",
        ],
    );
    assert_eq!(code(&bare), 2, "{}", text(&bare.stderr));
    assert!(
        text(&bare.stderr).contains("github:team"),
        "{}",
        text(&bare.stderr)
    );

    let destroy = with_sandbox(&["destroy", "--yes", "-s", "team-payments"]);
    assert_eq!(code(&destroy), 0, "{}", text(&destroy.stderr));
    assert!(
        text(&destroy.stdout).contains("Resources: 2 deleted."),
        "{}",
        text(&destroy.stdout)
    );
    runtime.block_on(sandbox.stop());
}
