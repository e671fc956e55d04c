//! The client commands against a real server (in-process, SQLite, the sandbox cloud in
//! process): login, teams, environments with `--wait`, operations, audit, and the exit
//! codes of refusals; environments requested and changed by the blueprint's parameters,
//! previewed per stack and per system before they go ahead.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use paddock_providers::clouds::Clouds;
use paddock_server::{Config, Deps};

/// A server on its own runtime and thread, stopped on drop.
struct Server {
    url: String,
    data: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(data: &Path) -> Server {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<String>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let dir = data.to_owned();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut sb = paddock_sandbox::SandboxConfig::new(dir.join("sandbox"));
                sb.https_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
                let sandbox = paddock_sandbox::Sandbox::start(sb).await.unwrap();
                let env: BTreeMap<String, String> = sandbox
                    .env()
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect();
                let clouds = Clouds::from_sandbox_env(&env).unwrap();
                let config = Config {
                    listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
                    data_dir: Some(dir.clone()),
                    ..Config::default()
                };
                let mut deps = Deps::open(&config, &clouds).await.unwrap();
                deps.on_new_person =
                    Some(sandbox_people(env["PADDOCK_SANDBOX_CONTROL_URL"].clone()));
                let running = paddock_server::start(config, deps).await.unwrap();
                ready_tx.send(format!("http://{}", running.addr)).unwrap();
                let _ = stop_rx.await;
                running.shutdown(Duration::from_secs(2)).await;
                sandbox.stop().await;
            });
        });
        let url = ready_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server starts");
        Server {
            url,
            data: data.to_owned(),
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    fn admin_token(&self) -> String {
        std::fs::read_to_string(self.data.join("initial-admin-token"))
            .unwrap()
            .trim()
            .to_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// New people become sandbox people, as `paddock serve` arranges.
fn sandbox_people(control_url: String) -> paddock_server::NewPersonHook {
    let client = reqwest::Client::new();
    Arc::new(move |login: String| {
        let client = client.clone();
        let url = format!("{control_url}/people");
        Box::pin(async move {
            let _ = client
                .post(&url)
                .header("content-type", "application/json")
                .body(serde_json::json!({"login": login}).to_string())
                .send()
                .await;
        })
    })
}

struct Cli {
    server: String,
    config: PathBuf,
    home: PathBuf,
}

impl Cli {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_paddock"));
        cmd.args(args)
            .env("PADDOCK_SERVER", &self.server)
            .env("PADDOCK_CONFIG_DIR", &self.config)
            .env("HOME", &self.home)
            .env_remove("PADDOCK_TOKEN")
            .env_remove("PADDOCK_CA_FILE")
            .env_remove("PADDOCK_DATABASE_URL")
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[track_caller]
fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or_else(|| panic!("killed: {o:?}"))
}

#[track_caller]
fn ok(o: &Output) -> String {
    assert_eq!(
        code(o),
        0,
        "stdout:\n{}\nstderr:\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", text(&o.stdout), text(&o.stderr)))
}

#[test]
fn the_cli_drives_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"));
    let cli = Cli {
        server: server.url.clone(),
        config: tmp.path().join("config"),
        home: tmp.path().join("home"),
    };

    // Not logged in yet: 4, and the message says what to do.
    let o = cli.run(&["team", "ls"]);
    assert_eq!(code(&o), 4, "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("paddock login"),
        "{}",
        text(&o.stderr)
    );

    // A wrong token: 401 → 4; nothing is stored.
    let o = cli.run(&["login", "--token", "pdk_not-a-token"]);
    assert_eq!(code(&o), 4, "{}", text(&o.stderr));
    assert!(!cli.config.join("credentials.json").exists());

    // Login with the token on stdin: checked, then stored with mode 0600.
    let mut login = cli.command(&["login", "--with-token"]);
    let mut child = login
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{}", server.admin_token()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(ok(&o).contains("as admin"), "{}", text(&o.stdout));
    let creds = cli.config.join("credentials.json");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&creds).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&creds).unwrap()).unwrap();
    assert_eq!(stored["current"], server.url.as_str());

    // PADDOCK_TOKEN overrides the stored token.
    let o = cli
        .command(&["team", "ls"])
        .env("PADDOCK_TOKEN", "pdk_bogus")
        .output()
        .unwrap();
    assert_eq!(code(&o), 4, "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("(HTTP 401)"),
        "{}",
        text(&o.stderr)
    );

    // A team, waited for.
    let o = cli.run(&[
        "team",
        "create",
        "payments",
        "--description",
        "Payments",
        "--wait",
    ]);
    let out = ok(&o);
    assert!(out.contains("succeeded"), "{out}");
    let o = cli.run(&["team", "show", "payments"]);
    let out = ok(&o);
    assert!(out.contains("admin") && out.contains("Payments"), "{out}");

    // An environment with dev and test, waited for: progress on stderr (plain lines off a
    // terminal), the final operation as JSON on stdout.
    let o = cli.run(&[
        "env", "create", "payments", "checkout", "--stages", "dev,test", "--quota", "small",
        "--yes", "--wait", "--json",
    ]);
    let op = json(&o);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert_eq!(op["state"], "succeeded", "{op}");
    let op_id = op["id"].as_str().unwrap().to_owned();

    let envs = json(&cli.run(&["env", "ls", "payments", "--json"]));
    assert_eq!(envs[0]["name"], "checkout", "{envs}");
    assert_eq!(envs[0]["status"], "ready", "{envs}");
    assert_eq!(
        envs[0]["parameters"]["stages"],
        serde_json::json!(["dev", "test"])
    );
    let out = ok(&cli.run(&["env", "ls", "payments"]));
    assert!(
        out.contains("checkout") && out.contains("dev,test"),
        "{out}"
    );

    let out = ok(&cli.run(&["env", "show", "payments", "checkout"]));
    assert!(
        out.contains("Environment payments/checkout: ready"),
        "{out}"
    );
    assert!(out.contains("payments-checkout-dev:"), "{out}");
    assert!(
        out.contains("resourceGroup: rg-payments-checkout-dev"),
        "{out}"
    );
    let shown = json(&cli.run(&["env", "show", "payments", "checkout", "--json"]));
    assert_eq!(shown["outputs"]["revealed"], false);

    // The operation's events, and its stream replayed to the end: exit 0 (succeeded).
    let out = ok(&cli.run(&["op", "logs", &op_id]));
    assert!(out.contains("(up) started, attempt 1"), "{out}");
    assert!(out.contains(" created ("), "{out}");
    let o = cli.run(&["op", "logs", &op_id, "--follow"]);
    let out = ok(&o);
    assert!(
        out.contains(&format!("operation {op_id} succeeded")),
        "{out}"
    );
    assert!(text(&o.stderr).contains("succeeded"), "{}", text(&o.stderr));
    let out = ok(&cli.run(&["env", "logs", "payments", "checkout"]));
    assert!(out.contains(&op_id), "{out}");

    // 422: the field is named; exit 2.
    let o = cli.run(&[
        "env", "create", "payments", "Bad_Name", "--stages", "dev", "--yes",
    ]);
    assert_eq!(code(&o), 2, "{}", text(&o.stderr));
    insta::assert_snapshot!("invalid_name", text(&o.stderr));
    // A clap error is 2 as well.
    let o = cli.run(&["env", "create", "payments", "x", "--quota"]);
    assert_eq!(code(&o), 2);
    // 404 is invalid input too.
    let o = cli.run(&["env", "show", "payments", "nowhere"]);
    assert_eq!(code(&o), 2, "{}", text(&o.stderr));

    // 409: another operation is queued or running; it is shown.
    let o = cli.run(&[
        "env", "create", "payments", "second", "--stages", "dev", "--yes", "--json",
    ]);
    let queued = json(&o);
    let queued_id = queued["id"].as_str().unwrap().to_owned();
    let o = cli.run(&["env", "up", "payments", "second"]);
    assert_eq!(code(&o), 3, "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("(HTTP 409)"), "{err}");
    assert!(err.contains(&format!("In the way: {queued_id}")), "{err}");
    let o = cli.run(&["env", "up", "payments", "second", "--json"]);
    assert_eq!(code(&o), 3);
    assert_eq!(json(&o)["operation"], queued_id.as_str());
    // Let it finish, so the server stops promptly.
    let o = cli.run(&["op", "logs", &queued_id, "--follow"]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));

    // Audit: the records, an export, an intact chain.
    let records = json(&cli.run(&["audit", "ls", "--team", "payments", "--json"]));
    let actions: Vec<&str> = records
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    assert!(actions.contains(&"team.create"), "{actions:?}");
    assert!(actions.contains(&"environment.create"), "{actions:?}");
    let out = ok(&cli.run(&["audit", "ls", "--actor", "admin", "--limit", "2"]));
    assert_eq!(out.lines().count(), 3, "{out}");
    let o = cli.run(&["audit", "ls", "--since", "yesterday"]);
    assert_eq!(code(&o), 2, "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("since:"), "{}", text(&o.stderr));
    let out = ok(&cli.run(&["audit", "export"]));
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= records.as_array().unwrap().len());
    let out = ok(&cli.run(&["audit", "verify"]));
    assert!(out.contains("intact"), "{out}");

    // Logout forgets the token: 4 again.
    ok(&cli.run(&["logout"]));
    let o = cli.run(&["env", "ls", "payments"]);
    assert_eq!(code(&o), 4, "{}", text(&o.stderr));
}

/// `env create` and `env update` take any parameter of the blueprint (`--param`, typed by
/// the schema the server publishes; the old flags are the same parameters), show the
/// server's dry run per stack and per system, and go ahead only when confirmed.
#[test]
fn environments_are_requested_and_changed_by_their_parameters() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"));
    let cli = Cli {
        server: server.url.clone(),
        config: tmp.path().join("config"),
        home: tmp.path().join("home"),
    };
    ok(&cli.run(&["login", "--token", &server.admin_token()]));
    ok(&cli.run(&["team", "create", "payments", "--wait"]));
    let nothing_made = || {
        let envs = json(&cli.run(&["env", "ls", "payments", "--json"]));
        assert_eq!(envs, serde_json::json!([]), "nothing is made");
    };

    // Bad values: each field named with the server's message, exit 2, nothing made.
    let o = cli.run(&[
        "env",
        "create",
        "payments",
        "checkout",
        "--param",
        "stages=dev,staging",
        "--param",
        "region=West Europe",
        "--param",
        "colour=red",
        "--yes",
    ]);
    assert_eq!(code(&o), 2, "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.starts_with("error: invalid input (HTTP 422):"), "{err}");
    for line in [
        "\n  stages[1]: \"staging\" is not one of: dev, test, prod",
        "\n  region: \"West Europe\" does not match the pattern ^[a-z][a-z0-9]{1,39}$",
        "\n  colour: `colour` is not a parameter of environment@",
    ] {
        assert!(err.contains(line), "{line:?} in:\n{err}");
    }
    // With --json the problem document is on stdout.
    let o = cli.run(&[
        "env",
        "create",
        "payments",
        "checkout",
        "--param",
        "quota=huge",
        "--yes",
        "--json",
    ]);
    assert_eq!(code(&o), 2);
    let problem = json(&o);
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["stages", "quota"], "{problem}");

    // Off a terminal, going ahead needs --yes: refused before anything is asked.
    let o = cli.run(&["env", "create", "payments", "checkout", "--stages", "dev"]);
    assert_eq!(code(&o), 2, "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("pass --yes"),
        "{}",
        text(&o.stderr)
    );

    // --preview: the plan per stack and per system, each change with its properties.
    let out = ok(&cli.run(&[
        "env",
        "create",
        "payments",
        "checkout",
        "--param",
        "stages=dev,test",
        "--param",
        "quota=small",
        "--preview",
    ]));
    for part in [
        "Environment payments/checkout (environment@",
        "quota: small   region: westeurope   stages: dev,test",
        "\npayments-checkout: ",
        "\npayments-checkout-dev (stage dev): ",
        "\npayments-checkout-test (stage test): ",
        "\n  Azure: 2 to create\n",
        "\n  Entra ID: ",
        "\n  Kubernetes: ",
        "\n  GitHub: ",
        "\n      + create   resourceGroup (azure:resourceGroup)\n          location: \"westeurope\"\n",
        "\n          value: [secret]\n",
        "\nPlan: ",
        " to create, 0 to update, 0 to replace, 0 to delete.\n",
        "Preview only: nothing was changed.",
    ] {
        assert!(out.contains(part), "{part:?} in:\n{out}");
    }
    // --dry-run --json: the server's preview as it is.
    let preview = json(&cli.run(&[
        "env",
        "create",
        "payments",
        "checkout",
        "--stages",
        "dev,test",
        "--dry-run",
        "--json",
    ]));
    assert_eq!(
        preview["parameters"]["stages"],
        serde_json::json!(["dev", "test"])
    );
    assert_eq!(preview["stacks"].as_array().unwrap().len(), 3, "{preview}");
    nothing_made();

    // Requested: the convenience flags and --param are one set of parameters.
    let o = cli.run(&[
        "env",
        "create",
        "payments",
        "checkout",
        "--stages",
        "dev,test",
        "--param",
        "quota=small",
        "--yes",
        "--wait",
    ]);
    let out = ok(&o);
    assert!(
        out.contains("\npayments-checkout-test (stage test): "),
        "{out}"
    );
    assert!(out.contains(") succeeded, requested by admin"), "{out}");

    // A change, previewed: only the quota of each stage.
    let out = ok(&cli.run(&[
        "env",
        "update",
        "payments",
        "checkout",
        "--param",
        "quota=large",
        "--preview",
    ]));
    insta::assert_snapshot!("update_preview", out);
    let shown = json(&cli.run(&["env", "show", "payments", "checkout", "--json"]));
    assert_eq!(
        shown["parameters"]["quota"], "small",
        "the preview changed nothing"
    );
    // Declined (not on a terminal): nothing changes.
    let o = cli.run(&[
        "env",
        "update",
        "payments",
        "checkout",
        "--param",
        "quota=large",
    ]);
    assert_eq!(code(&o), 2, "{}", text(&o.stderr));

    let o = cli.run(&[
        "env",
        "update",
        "payments",
        "checkout",
        "--param",
        "quota=large",
        "--yes",
        "--wait",
    ]);
    let out = ok(&o);
    assert!(
        out.contains("\nPlan: 0 to create, 2 to update, 0 to replace, 0 to delete.\n"),
        "{out}"
    );
    assert!(out.contains(") succeeded, requested by admin"), "{out}");
    let shown = json(&cli.run(&["env", "show", "payments", "checkout", "--json"]));
    assert_eq!(shown["parameters"]["quota"], "large");
    assert_eq!(shown["status"], "ready");

    // Removing a stage destroys its stack.
    let o = cli.run(&[
        "env",
        "update",
        "payments",
        "checkout",
        "--param",
        "stages=test",
        "--yes",
        "--wait",
    ]);
    let out = ok(&o);
    assert!(
        out.contains("\npayments-checkout-dev (stage dev, destroyed): "),
        "{out}"
    );
    assert!(
        out.contains("\n      - delete   resourceGroup (azure:resourceGroup)\n"),
        "{out}"
    );
    assert!(out.contains(") succeeded, requested by admin"), "{out}");
    let shown = json(&cli.run(&["env", "show", "payments", "checkout", "--json"]));
    assert_eq!(shown["parameters"]["stages"], serde_json::json!(["test"]));
    assert_eq!(shown["parameters"]["quota"], "large", "the rest stays");
    let stacks: Vec<&str> = shown["outputs"]["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stack"].as_str().unwrap())
        .collect();
    assert!(!stacks.contains(&"payments-checkout-dev"), "{stacks:?}");
    assert!(stacks.contains(&"payments-checkout-test"), "{stacks:?}");

    // Nothing to change is a usage error.
    let o = cli.run(&["env", "update", "payments", "checkout", "--yes"]);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains("nothing to change"),
        "{}",
        text(&o.stderr)
    );
}

/// A new version of the environment blueprint, published from a directory laid out as
/// `blueprints/`, then rolled out wave by wave from the command line.
#[test]
fn a_blueprint_version_is_published_and_rolled_out_from_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"));
    let cli = Cli {
        server: server.url.clone(),
        config: tmp.path().join("config"),
        home: tmp.path().join("home"),
    };
    ok(&cli.run(&["login", "--token", &server.admin_token()]));
    ok(&cli.run(&["team", "create", "fleet", "--wait"]));
    for app in ["app1", "app2", "app3"] {
        ok(&cli.run(&[
            "env", "create", "fleet", app, "--stages", "dev", "--quota", "small", "--yes", "--wait",
        ]));
    }
    let shipped = json(&cli.run(&["env", "show", "fleet", "app3", "--json"]))["blueprintVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = ok(&cli.run(&["env", "pin", "fleet", "app3", &shipped]));
    assert!(
        out.contains(&format!("pinned to environment@{shipped}")),
        "{out}"
    );

    // The bundle: the shipped files, version 2.0.0, one more tag on each resource group.
    let dir = tmp.path().join("blueprints");
    std::fs::create_dir_all(dir.join("environment")).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../blueprints");
    let request = std::fs::read_to_string(root.join("environment.yaml"))
        .unwrap()
        .replace(&format!("version: {shipped}"), "version: 2.0.0");
    std::fs::write(dir.join("environment.yaml"), request).unwrap();
    std::fs::copy(
        root.join("environment/repository.yaml"),
        dir.join("environment/repository.yaml"),
    )
    .unwrap();
    let stage = std::fs::read_to_string(root.join("environment/stage.yaml"))
        .unwrap()
        .replacen(
            "        managedBy: paddock\n",
            "        managedBy: paddock\n        generation: v2\n",
            1,
        );
    std::fs::write(dir.join("environment/stage.yaml"), stage).unwrap();
    let dir_arg = dir.display().to_string();
    let out = ok(&cli.run(&["blueprint", "publish", &dir_arg]));
    assert!(out.contains("Published environment@2.0.0"), "{out}");
    // Again with another version on the command line: it must agree with the file.
    let o = cli.run(&["blueprint", "publish", &dir_arg, "--version", "2.0.1"]);
    assert_eq!(code(&o), 2, "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("files.environment.yaml"),
        "{}",
        text(&o.stderr)
    );

    let o = cli.run(&[
        "fleet",
        "upgrade",
        "environment",
        "--to",
        "2.0.0",
        "--canary",
        "1",
        "--batch",
        "1",
        "--wait",
    ]);
    let report = ok(&o);
    let progress = text(&o.stderr);
    assert!(
        progress.contains("Wave canary: 1 upgraded")
            && progress.contains("Wave batch 1: 1 upgraded"),
        "{progress}"
    );
    assert!(report.contains(": succeeded"), "{report}");
    let pinned = report.lines().find(|l| l.contains("app3")).unwrap();
    assert!(pinned.contains("pinned"), "{report}");
    let rollouts = json(&cli.run(&["fleet", "ls", "--json"]));
    let id = rollouts[0]["id"].as_str().unwrap();
    let status = json(&cli.run(&["fleet", "status", id, "--json"]));
    assert_eq!(status["counts"]["upgraded"], 2, "{status}");
    let app1 = json(&cli.run(&["env", "show", "fleet", "app1", "--json"]));
    assert_eq!(app1["blueprintVersion"], "2.0.0");

    // The pinned one upgrades once unpinned.
    let o = cli.run(&["env", "upgrade", "fleet", "app3", "--yes"]);
    assert_eq!(code(&o), 2, "pinned: {}", text(&o.stderr));
    ok(&cli.run(&["env", "pin", "fleet", "app3", "--unpin"]));
    let out = ok(&cli.run(&["env", "upgrade", "fleet", "app3", "--yes", "--wait"]));
    assert!(
        out.contains("resourceGroup"),
        "the plan is shown first: {out}"
    );
    let app3 = json(&cli.run(&["env", "show", "fleet", "app3", "--json"]));
    assert_eq!(app3["blueprintVersion"], "2.0.0");
}
