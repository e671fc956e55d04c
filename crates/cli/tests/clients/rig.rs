//! The client-test rig: the official clients, found where `scripts/test` put them, and the
//! Paddock processes they are pointed at — `paddock sandbox` alone, or `paddock serve` with
//! its in-process sandbox — each a real child process on free ports in a temp dir.
//!
//! Nothing here imitates a client: every request under test is made by kubectl, the Azure
//! CLI or an official client library, unchanged. The clients are found through
//! `PADDOCK_TEST_KUBECTL` and `PADDOCK_TEST_CLIENTS` (a Python virtual environment); when
//! they are missing a test says so and passes, except in CI (`CI=true`), where it fails.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a Paddock process may take to start on a busy 2-core machine.
const START: Duration = Duration::from_secs(120);

/// Where the official clients are.
#[derive(Clone, Debug)]
pub struct Clients {
    pub kubectl: PathBuf,
    /// The virtual environment: `bin/python`, `bin/az`, `bin/st` (schemathesis).
    pub venv: PathBuf,
}

impl Clients {
    /// The clients, or `None` (after saying why) when they are not installed outside CI.
    pub fn find() -> Option<Clients> {
        let kubectl = std::env::var_os("PADDOCK_TEST_KUBECTL").map(PathBuf::from);
        let venv = std::env::var_os("PADDOCK_TEST_CLIENTS").map(PathBuf::from);
        let problem = match (&kubectl, &venv) {
            (Some(k), Some(v)) if k.is_file() && v.join("bin/python").is_file() => None,
            (Some(k), Some(v)) => Some(format!(
                "PADDOCK_TEST_KUBECTL ({}) or PADDOCK_TEST_CLIENTS ({}/bin/python) is not there",
                k.display(),
                v.display()
            )),
            _ => Some("PADDOCK_TEST_KUBECTL and PADDOCK_TEST_CLIENTS are not set".to_owned()),
        };
        match problem {
            None => Some(Clients {
                kubectl: kubectl.unwrap(),
                venv: venv.unwrap(),
            }),
            Some(why) if std::env::var("CI").as_deref() == Ok("true") => panic!(
                "the official clients are missing in CI: {why}; ./scripts/test installs them"
            ),
            Some(why) => {
                eprintln!(
                    "skipped: the official clients' tests need kubectl and the clients' Python \
                     environment ({why}); run ./scripts/test, which installs them"
                );
                None
            }
        }
    }

    /// A program of the virtual environment (`python`, `az`, `st`).
    pub fn bin(&self, name: &str) -> PathBuf {
        self.venv.join("bin").join(name)
    }

    /// Runs a Python script with the environment's interpreter; `env` is added to a clean
    /// environment (no proxy, no developer settings).
    pub fn python(&self, script: &str, env: &BTreeMap<String, String>) -> Output {
        let mut cmd = Command::new(self.bin("python"));
        cmd.arg("-c").arg(script);
        clean_env(&mut cmd);
        cmd.envs(env);
        cmd.output().expect("running the clients' python")
    }
}

/// Leaves the child only PATH, HOME and the locale of this process's environment.
pub fn clean_env(cmd: &mut Command) {
    cmd.env_clear();
    for k in ["PATH", "HOME", "LANG", "TMPDIR"] {
        if let Some(v) = std::env::var_os(k) {
            cmd.env(k, v);
        }
    }
}

/// Panics with the command's output unless it succeeded; returns its stdout.
pub fn succeeded(what: &str, out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    l.local_addr().unwrap().port()
}

/// Spawns `cmd` so that the kernel kills it if the test process dies first.
fn spawn(cmd: &mut Command, what: &str) -> Child {
    // SAFETY: prctl is async-signal-safe and touches no memory of this process.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.spawn()
        .unwrap_or_else(|e| panic!("starting {what}: {e}"))
}

/// Reads a `KEY=value` file.
pub fn read_env(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// A Paddock child process whose stderr is drained into a log file; lines are handed over
/// until `wait_for` has seen the line it waits for.
pub struct Process {
    child: Child,
    pub log: PathBuf,
    lines: mpsc::Receiver<String>,
    what: &'static str,
}

impl Process {
    fn start(mut cmd: Command, log: PathBuf, what: &'static str, env: &[(&str, &Path)]) -> Process {
        // Configured by its flags and `env` alone, whatever the developer's shell says.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("PADDOCK_") {
                cmd.env_remove(&k);
            }
        }
        cmd.envs(env.iter().copied());
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = spawn(&mut cmd, what);
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, lines) = mpsc::channel::<String>();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("creating the process's log");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(file, "{line}");
                let _ = tx.send(line);
            }
        });
        Process {
            child,
            log,
            lines,
            what,
        }
    }

    /// Waits for a line starting with `prefix`; panics with the log if the process exits or
    /// the wait is too long.
    fn wait_for(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + START;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(e) => {
                    let status = self.child.try_wait().ok().flatten();
                    panic!(
                        "{} did not print `{prefix}…` ({e:?}, exit: {status:?}); its log ({}):\n{}",
                        self.what,
                        self.log.display(),
                        std::fs::read_to_string(&self.log).unwrap_or_default()
                    );
                }
            }
        }
    }

    /// The process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process at once (SIGKILL), as a crash would, and waits for it.
    pub fn kill(self) {
        drop(self)
    }

    /// Stops the process as an operator would (SIGTERM), and waits for it.
    pub fn stop(mut self) {
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `paddock sandbox` alone, with its settings (`sandbox.env`: URLs, credentials, the CA).
pub struct SandboxProcess {
    pub process: Process,
    pub data: PathBuf,
    pub env: BTreeMap<String, String>,
}

/// The addresses `paddock sandbox` is started on: chosen once, kept for its restarts.
#[derive(Clone, Copy, Debug)]
pub struct SandboxPorts {
    pub http: u16,
    pub https: u16,
    pub control: u16,
}

impl SandboxPorts {
    /// Port 0 everywhere: chosen at the first start, then kept by the sandbox itself.
    pub fn kept() -> SandboxPorts {
        SandboxPorts {
            http: 0,
            https: 0,
            control: 0,
        }
    }
}

impl SandboxProcess {
    /// `paddock sandbox --data DIR` on `ports` (HTTPS on, as the official SDKs need).
    pub fn start(data: &Path, ports: SandboxPorts) -> SandboxProcess {
        std::fs::create_dir_all(data).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_paddock"));
        cmd.arg("sandbox")
            .arg("--data")
            .arg(data)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", ports.http))
            .arg("--https-listen")
            .arg(format!("127.0.0.1:{}", ports.https))
            .arg("--control-listen")
            .arg(format!("127.0.0.1:{}", ports.control))
            .current_dir(data);
        let mut process = Process::start(cmd, data.join("sandbox.log"), "paddock sandbox", &[]);
        process.wait_for("Sandbox running");
        let env = read_env(&data.join("sandbox.env"));
        SandboxProcess {
            process,
            data: data.to_owned(),
            env,
        }
    }

    pub fn get(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("sandbox.env has no {key}: {:?}", self.env.keys()))
    }
}

/// `paddock serve` on its embedded defaults (SQLite, key file, in-process sandbox).
pub struct ServeProcess {
    pub process: Process,
    pub url: String,
    pub data: PathBuf,
    /// The first start's API token for the platform admin.
    pub admin_token: String,
    /// The in-process sandbox's settings (`DATA/sandbox/sandbox.env`).
    pub sandbox_env: BTreeMap<String, String>,
}

impl ServeProcess {
    /// `paddock serve --data DATA --listen 127.0.0.1:PORT`.
    pub fn start(data: &Path, port: u16) -> ServeProcess {
        ServeProcess::start_with(data, port, None)
    }

    /// The same, provisioning into the running sandbox whose `sandbox.env` is given
    /// (`PADDOCK_SANDBOX_ENV`) instead of one in process.
    pub fn start_with(data: &Path, port: u16, sandbox_env: Option<&Path>) -> ServeProcess {
        let extra: Vec<(&str, &Path)> = sandbox_env
            .map(|env| ("PADDOCK_SANDBOX_ENV", env))
            .into_iter()
            .collect();
        ServeProcess::start_env(data, port, &extra)
    }

    /// The same, with these `PADDOCK_*` settings (`PADDOCK_SANDBOX_ENV` for a running
    /// sandbox, `PADDOCK_DATABASE_URL`, `PADDOCK_LEASE_SECONDS`, …).
    pub fn start_env(data: &Path, port: u16, env: &[(&str, &Path)]) -> ServeProcess {
        std::fs::create_dir_all(data).unwrap();
        let in_process = !env.iter().any(|(k, _)| *k == "PADDOCK_SANDBOX_ENV");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_paddock"));
        cmd.arg("serve")
            .arg("--data")
            .arg(data)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .current_dir(data);
        let mut process = Process::start(cmd, data.join("serve.log"), "paddock serve", env);
        let url = process
            .wait_for("Paddock is serving at ")
            .trim_start_matches("Paddock is serving at ")
            .trim()
            .trim_end_matches('/')
            .to_owned();
        if in_process {
            process.wait_for("The sandbox cloud runs in-process");
        }
        let admin_token = std::fs::read_to_string(data.join("initial-admin-token"))
            .unwrap_or_default()
            .trim()
            .to_owned();
        let sandbox_env = read_env(&data.join("sandbox/sandbox.env"));
        ServeProcess {
            process,
            url,
            data: data.to_owned(),
            admin_token,
            sandbox_env,
        }
    }
}

/// The `paddock` CLI pointed at a server with a token.
pub struct Cli {
    pub server: String,
    pub token: String,
    pub home: PathBuf,
}

impl Cli {
    /// The CLI as the platform admin of `serve`, its config and home under `home`.
    pub fn for_serve(serve: &ServeProcess, home: &Path) -> Cli {
        Cli {
            server: serve.url.clone(),
            token: serve.admin_token.clone(),
            home: home.to_owned(),
        }
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_paddock"))
            .args(args)
            .env("PADDOCK_SERVER", &self.server)
            .env("PADDOCK_TOKEN", &self.token)
            .env("PADDOCK_CONFIG_DIR", self.home.join("config"))
            .env("HOME", &self.home)
            .env_remove("PADDOCK_CA_FILE")
            .output()
            .unwrap()
    }

    #[track_caller]
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "paddock {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// A team `payments` with an environment `checkout` of dev and test, made and waited for.
pub fn make_environment(cli: &Cli) {
    let out = cli.run(&["team", "create", "payments", "--wait"]);
    assert!(out.status.success(), "{out:?}");
    let op = cli.json(&[
        "env", "create", "payments", "checkout", "--stages", "dev,test", "--quota", "small",
        "--yes", "--wait", "--json",
    ]);
    assert_eq!(op["state"], "succeeded", "{op}");
}

/// A runtime and an HTTP client (the workspace's one TLS stack installed) for the checks a
/// test makes itself, around the clients under test.
pub fn http<T>(f: impl AsyncFnOnce(reqwest::Client) -> T) -> T {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f(reqwest::Client::new()))
}

/// `kubectl delete`'s lines, without the ` from NS namespace` that kubectl ≥ 1.33 adds.
pub fn deleted_lines(out: &str) -> Vec<String> {
    out.lines()
        .map(|l| match l.find(" deleted from ") {
            Some(at) => format!("{} deleted", &l[..at]),
            None => l.to_owned(),
        })
        .collect()
}
