//! Fault soak: environments created, updated (a stage added, the contributors changed)
//! and destroyed through a real `paddock serve` process while the sandbox cloud injects
//! faults into 5 % of the requests to every API — 500, 503, 429 with `Retry-After`,
//! dropped connections — and delays another 5 %, on SQLite and on PostgreSQL.
//!
//! What must hold, each counted and printed:
//! - every operation succeeds, or fails with a clear error its outcome marks retryable,
//!   which a retry through `paddock op retry` (as a person would) then completes;
//! - nothing is duplicated (the sandbox holds each environment's objects once, exactly
//!   as many as their stacks describe) and nothing leaks (after the destroys, none of
//!   the environments' objects is left, and their stacks hold no resource);
//! - no event is lost: each attempt's events are numbered from 0 without a gap, begin
//!   with `operationStarted` and end with `operationFinished`, and `serve`'s log never
//!   says `recording an event failed`;
//! - `paddock audit verify` passes, and every mutating request the sandbox saw names
//!   (in its `User-Agent`) an operation whose audit records name a person;
//! - the planted secrets appear nowhere in `serve`'s log (at debug level) or database.
//!
//! Printed too: operations by outcome, retries per provider (`/metrics`), faults the
//! sandbox injected per API, and the peak memory of `serve` (`VmHWM`).
//!
//! Size: `PADDOCK_SOAK_ENVIRONMENTS` (default 4, CI's); the faults are drawn from
//! `PADDOCK_SOAK_SEED` (default 15). PostgreSQL needs `PADDOCK_TEST_DATABASE_URL`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use paddock_sandbox::Sandbox;
use paddock_store::testing::{Planted, TestDatabase, admin_url, sqlite_files};
use serde_json::{Value as Json, json};

const TEAM: &str = "soak";
/// The team's contributors; each environment's change hands it to the next one.
const PEOPLE: [&str; 3] = ["ada", "grace", "linus"];
/// Retries through the CLI an operation may need before the soak gives up on it.
const MAX_RETRIES: usize = 3;
/// An operation's longest wait, however busy the machine.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(900);

fn environments() -> usize {
    std::env::var("PADDOCK_SOAK_ENVIRONMENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(4)
}

fn seed() -> u64 {
    std::env::var("PADDOCK_SOAK_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(15)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_soak_on_sqlite() {
    soak(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_soak_on_postgres() {
    let Some(admin) = admin_url() else { return };
    let db = TestDatabase::create(&admin)
        .await
        .expect("creating a test database");
    soak(Some(&db)).await;
}

/// The faults: 5 % of the requests to every API fail (a quarter each of 500, 503 and 429,
/// both with `Retry-After: 1`, and dropped connections), and 5 % are 250 ms slower.
fn fault_rules() -> Json {
    let error = |error: &str, retry_after: Option<u64>| json!({"api": "*", "probability": 0.0125, "error": error, "retryAfterSecs": retry_after});
    json!([
        error("500", None),
        error("503", Some(1)),
        error("429", Some(1)),
        error("reset", None),
        {"api": "*", "probability": 0.05, "latencyMs": 250},
    ])
}

/// Who runs `serve` (`PADDOCK_OPERATOR`): what it changes on its own at start is theirs.
const OPERATOR: &str = "platform-oncall";

/// `paddock serve`, a child process, with its log at debug level in a file.
struct Serve {
    child: Child,
    url: String,
    data: PathBuf,
    log: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    fn start(dir: &Path, db: Option<&TestDatabase>) -> Serve {
        let data = dir.join("serve");
        std::fs::create_dir_all(&data).unwrap();
        let log = dir.join("serve.log");
        let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_paddock"));
        cmd.arg("serve")
            .arg("--listen")
            .arg(listen.to_string())
            .arg("--data")
            .arg(&data)
            .arg("--log-format")
            .arg("json");
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("PADDOCK_") {
                cmd.env_remove(&k);
            }
        }
        if let Some(db) = db {
            cmd.env("PADDOCK_DATABASE_URL", db.url());
        }
        let child = cmd
            .env("PADDOCK_CLOUD", "sandbox-env")
            .env("PADDOCK_SANDBOX_ENV", dir.join("sandbox.env"))
            .env("PADDOCK_LOG", "debug")
            .env("PADDOCK_OPERATOR", OPERATOR)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("paddock serve starts");
        Serve {
            child,
            url: format!("http://{listen}"),
            data,
            log,
        }
    }

    fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "\n--- serve's log, last lines ---\n{}",
            lines[lines.len().saturating_sub(30)..].join("\n")
        )
    }

    async fn wait_ready(&mut self) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("serve exited while starting: {status}{}", self.tail());
            }
            let ok = http
                .get(format!("{}/readyz", self.url))
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "serve was not ready in 180 s{}",
                self.tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The most memory the process has held (`VmHWM`), in KiB.
    fn peak_memory_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("serve's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }

    /// SIGTERM, as an operator stops it, and the wait for its end.
    fn stop(&mut self) {
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().unwrap().port()
}

/// The API, as the platform admin.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Json>) -> (u16, Json) {
        self.call_with_key(method, path, body, "").await
    }

    /// The same, with an `Idempotency-Key` unless `key` is empty.
    async fn call_with_key(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Json>,
        key: &str,
    ) -> (u16, Json) {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(300));
        if let Some(body) = body {
            req = req.json(&body);
        }
        if !key.is_empty() {
            req = req.header("idempotency-key", key);
        }
        let r = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Json::String(text)),
        )
    }

    async fn expect(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Json>,
        want: u16,
    ) -> Json {
        let (status, answer) = self.call(method.clone(), path, body).await;
        assert_eq!(status, want, "{method} {path}: {answer}");
        answer
    }

    async fn get(&self, path: &str) -> Json {
        self.expect(reqwest::Method::GET, path, None, 200).await
    }

    /// Waits for an operation's end.
    async fn finished(&self, id: &str) -> Json {
        let deadline = Instant::now() + OPERATION_TIMEOUT;
        loop {
            // A 503 (the database busy) says to ask again, as a person's refresh would.
            let (status, op) = self
                .call(
                    reqwest::Method::GET,
                    &format!("/api/v1/operations/{id}"),
                    None,
                )
                .await;
            assert!(
                matches!(status, 200 | 503),
                "GET operation {id}: {status} {op}"
            );
            if matches!(
                op["state"].as_str(),
                Some("succeeded" | "failed" | "cancelled")
            ) {
                return op;
            }
            assert!(
                Instant::now() < deadline,
                "operation {id} did not end in {OPERATION_TIMEOUT:?}: {op}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// `paddock` as a person at a terminal would run it, against the server.
fn cli(api: &Api, home: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_paddock"))
        .args(args)
        .env("PADDOCK_SERVER", &api.base)
        .env("PADDOCK_TOKEN", &api.token)
        .env("PADDOCK_CONFIG_DIR", home.join("config"))
        .env("HOME", home)
        .env_remove("PADDOCK_CA_FILE")
        .output()
        .expect("running paddock")
}

/// What became of one request (create, update, destroy) and its retries.
#[derive(Debug)]
struct Outcome {
    what: String,
    /// The operations run for it, the first and each retry's.
    operations: Vec<String>,
    /// The errors that made a retry necessary: `code: message`.
    retried_for: Vec<String>,
    succeeded: bool,
}

/// Runs one request to its end: queued through the API, retried through the CLI while it
/// fails with an error its outcome calls retryable.
async fn carry_out(api: &Api, home: &Path, what: String, request: Request) -> Outcome {
    let (method, path, body) = request;
    let mut outcome = Outcome {
        what,
        operations: Vec::new(),
        retried_for: Vec::new(),
        succeeded: false,
    };
    // A 503 from Paddock's own API (its database busy) says to try again: the request is
    // sent again, with the same `Idempotency-Key`, so it is queued once whatever happened.
    let key = format!(
        "soak-{}-{}",
        outcome.what.replace(' ', "-"),
        std::process::id()
    );
    let queued = loop {
        let (status, answer) = api
            .call_with_key(method.clone(), &path, Some(body.clone()), &key)
            .await;
        match status {
            202 => break answer,
            503 if outcome.retried_for.len() < MAX_RETRIES => {
                outcome
                    .retried_for
                    .push(format!("Paddock's API 503: {}", answer["detail"]));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            _ => panic!("{method} {path}: {status} {answer}"),
        }
    };
    let mut id = queued["id"].as_str().expect("an operation id").to_owned();
    outcome.operations.push(id.clone());
    loop {
        let op = api.finished(&id).await;
        if op["state"] == "succeeded" {
            outcome.succeeded = true;
            return outcome;
        }
        let failure = &op["outcome"]["failure"];
        let code = failure["code"].as_str().unwrap_or_default();
        let message = failure["message"].as_str().unwrap_or_default();
        // Clear: the cloud's code and message; retryable: the provider says so.
        assert!(
            op["state"] == "failed" && !code.is_empty() && !message.is_empty(),
            "{}: operation {id} ended without a clear error: {op}",
            outcome.what
        );
        assert!(
            failure["retryable"] == true,
            "{}: operation {id} failed with an error that is not retryable: {op}",
            outcome.what
        );
        outcome.retried_for.push(format!("{code}: {message}"));
        if outcome.retried_for.len() > MAX_RETRIES {
            return outcome;
        }
        let home = home.to_owned();
        let api2 = api.clone();
        let failed = id.clone();
        let out = tokio::task::spawn_blocking(move || {
            cli(&api2, &home, &["op", "retry", &failed, "--json"])
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "paddock op retry {id}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let retry: Json = serde_json::from_slice(&out.stdout).expect("op retry --json prints JSON");
        id = retry["id"].as_str().expect("the retry's id").to_owned();
        outcome.operations.push(id.clone());
    }
}

/// Runs `requests` at once, each to its end.
async fn phase(api: &Api, home: &Path, requests: Vec<(String, Request)>) -> Vec<Outcome> {
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|(what, request)| {
            let api = api.clone();
            let home = home.to_owned();
            tokio::spawn(async move { carry_out(&api, &home, what, request).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.expect("a request's task"));
    }
    outcomes
}

/// A request to Paddock's API: method, path, body.
type Request = (reqwest::Method, String, Json);

/// One request per environment, `make` given its index and name, all at once: their
/// outcomes, and how long they all took.
async fn each_environment(
    api: &Api,
    home: &Path,
    names: &[String],
    verb: &str,
    make: impl Fn(usize, &str) -> Request,
) -> (Vec<Outcome>, Duration) {
    let started = Instant::now();
    let requests = names
        .iter()
        .enumerate()
        .map(|(i, name)| (format!("{verb} {name}"), make(i, name)))
        .collect();
    let outcomes = phase(api, home, requests).await;
    (outcomes, started.elapsed())
}

/// `{api: {kind: [document, …]}}`: everything in the sandbox, through its control API.
async fn inventory(sandbox: &Sandbox) -> Json {
    reqwest::get(format!("{}/inspect", sandbox.control_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// How many objects of each kind belong to the soak's environments (their names, or the
/// names they are under, hold `soak-env`).
fn ours(all: &Json) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (api, kinds) in all.as_object().into_iter().flatten() {
        for (kind, list) in kinds.as_object().into_iter().flatten() {
            // ARM's records of its long-running operations (the deletes' status) are the
            // cloud's history, not objects anyone made.
            if (api.as_str(), kind.as_str()) == ("arm", "operation") {
                continue;
            }
            let n = list
                .as_array()
                .into_iter()
                .flatten()
                .filter(|d| d.to_string().contains(&format!("{TEAM}-env")))
                .count();
            if n > 0 {
                out.insert(format!("{api}/{kind}"), n);
            }
        }
    }
    out
}

/// What one environment of stages dev and test holds in the sandbox, by kind: the kinds
/// whose documents name it (a repository's files, commits and refs, and Graph's record
/// of when a principal was made, do not).
fn per_environment() -> BTreeMap<String, usize> {
    [
        ("arm/resourceGroup", 2),
        ("arm/managementLock", 2),
        ("arm/roleAssignment", 2),
        ("github/environment", 2),
        ("github/repo", 1),
        ("github/secret", 2),
        ("github/variable", 4),
        ("graph/application", 2),
        ("graph/federatedIdentityCredential", 2),
        ("graph/servicePrincipal", 2),
        ("kubernetes/limitranges", 2),
        ("kubernetes/namespaces", 2),
        ("kubernetes/networkpolicies", 2),
        ("kubernetes/resourcequotas", 2),
        ("kubernetes/rolebindings", 2),
        ("kubernetes/roles", 2),
        ("kubernetes/secrets", 2),
        // The deployer, and the namespace's `default`.
        ("kubernetes/serviceaccounts", 4),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_owned(), n))
    .collect()
}

/// Each attempt's events numbered 0, 1, 2… without a gap, from `operationStarted` to
/// `operationFinished`: the problems found, in words.
fn event_gaps(id: &str, events: &Json) -> Vec<String> {
    let mut problems = Vec::new();
    let events = events.as_array().cloned().unwrap_or_default();
    let mut expected = 0u64;
    for e in &events {
        let seq = e["data"]["seq"].as_u64();
        let kind = e["kind"].as_str().unwrap_or_default();
        match seq {
            // A new attempt (one handed back, its lease lost, ends without
            // `operationFinished`).
            Some(0) if kind == "operationStarted" => expected = 1,
            Some(n) if n == expected => expected += 1,
            other => {
                problems.push(format!(
                    "{id}: event {} ({kind}) has seq {other:?}, expected {expected}",
                    e["id"]
                ));
                // One gap is one problem: count on from what came.
                expected = other.map_or(expected, |n| n + 1);
            }
        }
    }
    if events.last().map(|e| e["kind"].clone()) != Some(json!("operationFinished")) {
        problems.push(format!("{id}: the last event is not operationFinished"));
    }
    problems
}

/// `name="value"` labels of a Prometheus sample, and its value.
fn samples(metrics: &str, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix('{'))
        .filter_map(|rest| {
            let (labels, value) = rest.split_once("} ")?;
            let labels = labels
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
                .collect();
            Some((labels, value.trim().parse().ok()?))
        })
        .collect()
}

async fn soak(db: Option<&TestDatabase>) {
    let backend = if db.is_some() { "PostgreSQL" } else { "SQLite" };
    let n = environments();
    let seed = seed();
    let started = Instant::now();
    println!(
        "fault soak on {backend}: {n} environments, fault seed {seed} \
         (PADDOCK_SOAK_ENVIRONMENTS={n} PADDOCK_SOAK_SEED={seed})"
    );
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");

    // The cloud, in this process; its rate limits lifted (the soak is about faults).
    let sandbox = common::unthrottled_sandbox(dir.path(), seed).await;

    let mut serve = Serve::start(dir.path(), db);
    serve.wait_ready().await;
    let token = std::fs::read_to_string(serve.data.join("initial-admin-token"))
        .expect("the initial admin token")
        .trim()
        .to_owned();
    let api = Api {
        http: reqwest::Client::new(),
        base: serve.url.clone(),
        token: token.clone(),
    };
    let control = reqwest::Client::new();
    // What `serve` changed while starting (the platform's template repository), before
    // anyone asked for anything.
    let at_start: Vec<Json> = control
        .get(format!("{}/requests", sandbox.control_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let start_seq = at_start.last().map_or(0, |e| e["seq"].as_u64().unwrap());

    // The faults, through the control API.
    let set = control
        .put(format!("{}/faults", sandbox.control_url))
        .json(&fault_rules())
        .send()
        .await
        .unwrap();
    assert_eq!(
        set.status(),
        200,
        "{}",
        set.text().await.unwrap_or_default()
    );

    // The people, and their team.
    for person in PEOPLE {
        api.expect(
            reqwest::Method::POST,
            "/api/v1/users",
            Some(json!({"login": person, "name": person})),
            201,
        )
        .await;
    }
    let mut outcomes = phase(
        &api,
        &home,
        vec![(
            format!("team {TEAM}"),
            (
                reqwest::Method::POST,
                "/api/v1/teams".into(),
                json!({"name": TEAM}),
            ),
        )],
    )
    .await;
    // Each member's addition is an operation on the team's stack: one at a time.
    for person in PEOPLE {
        outcomes.extend(
            phase(
                &api,
                &home,
                vec![(
                    format!("member {person}"),
                    (
                        reqwest::Method::PUT,
                        format!("/api/v1/teams/{TEAM}/members/{person}"),
                        json!({"role": "contributor"}),
                    ),
                )],
            )
            .await,
        );
    }
    let names: Vec<String> = (0..n).map(|i| format!("env{i}")).collect();
    let environments = format!("/api/v1/teams/{TEAM}/environments");

    // Created with one stage, then changed: a stage added, another contributor.
    let (created, created_in) = each_environment(&api, &home, &names, "create", |i, name| {
        (
            reqwest::Method::POST,
            environments.clone(),
            json!({"name": name, "stages": ["dev"], "quota": "small",
                   "contributors": [PEOPLE[i % PEOPLE.len()]]}),
        )
    })
    .await;
    outcomes.extend(created);
    let (updated, updated_in) = each_environment(&api, &home, &names, "update", |i, name| {
        (
            reqwest::Method::PATCH,
            format!("{environments}/{name}"),
            json!({"stages": ["dev", "test"],
                   "contributors": [PEOPLE[(i + 1) % PEOPLE.len()]]}),
        )
    })
    .await;
    outcomes.extend(updated);
    let unfinished: Vec<&Outcome> = outcomes.iter().filter(|o| !o.succeeded).collect();
    assert!(
        unfinished.is_empty(),
        "requests that never completed: {unfinished:#?}"
    );

    // Nothing duplicated: the sandbox holds each environment's objects once, as many as
    // their stacks describe.
    let mid = ours(&inventory(&sandbox).await);
    let want: BTreeMap<String, usize> = per_environment()
        .into_iter()
        .map(|(k, per)| (k, per * n))
        .collect();
    let mut duplicated = 0usize;
    let mut missing = 0usize;
    for key in mid.keys().chain(want.keys()).collect::<BTreeSet<_>>() {
        let (got, expected) = (
            mid.get(key).copied().unwrap_or(0),
            want.get(key).copied().unwrap_or(0),
        );
        duplicated += got.saturating_sub(expected);
        missing += expected.saturating_sub(got);
    }
    let state_resources: u64 = {
        let mut total = 0;
        for name in &names {
            let resources = api.get(&format!("{environments}/{name}/resources")).await;
            total += resources
                .as_array()
                .map(|stacks| {
                    stacks
                        .iter()
                        .map(|s| s["resources"].as_array().map_or(0, Vec::len) as u64)
                        .sum::<u64>()
                })
                .unwrap_or(0);
        }
        total
    };

    // Secrets to look for later: each stage's deployer token (in the kubeconfig its GitHub
    // environment received), the clouds' credentials, the admin's token, the GitHub App's
    // key.
    let mut planted = Planted::new();
    planted.plant("the initial admin token", token.clone());
    for (key, value) in sandbox.env() {
        if key.ends_with("SECRET") || key.ends_with("TOKEN") {
            planted.plant(key, value.clone());
        }
        if key == "PADDOCK_SANDBOX_GITHUB_APP_KEY_FILE" {
            let pem = std::fs::read_to_string(&value).unwrap();
            planted.plant(
                "the GitHub App's key",
                pem.lines().nth(3).unwrap().to_owned(),
            );
        }
    }
    for name in &names {
        for stage in ["dev", "test"] {
            let got: Json = control
                .get(format!(
                    "{}/github/secrets/{TEAM}-{name}/{stage}/KUBECONFIG",
                    sandbox.control_url
                ))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let kubeconfig = got["value"].as_str().unwrap_or_default();
            let token = kubeconfig
                .lines()
                .find_map(|l| l.trim().strip_prefix("token:"))
                .map(|t| t.trim().trim_matches('"').to_owned())
                .unwrap_or_else(|| panic!("{name} {stage}: no token in {got}"));
            planted.plant(format!("{name} {stage} deployer token"), token);
        }
    }

    // Then destroyed.
    let (destroyed, destroyed_in) = each_environment(&api, &home, &names, "destroy", |_, name| {
        (
            reqwest::Method::POST,
            format!("{environments}/{name}/operations"),
            json!({"kind": "destroy"}),
        )
    })
    .await;
    outcomes.extend(destroyed);
    let unfinished: Vec<&Outcome> = outcomes.iter().filter(|o| !o.succeeded).collect();
    assert!(
        unfinished.is_empty(),
        "requests that never completed: {unfinished:#?}"
    );
    let peak_kib = serve.peak_memory_kib();

    // Nothing leaked: none of the environments' objects is left, and no stack of theirs
    // holds a resource or an unsettled journal entry.
    let left = ours(&inventory(&sandbox).await);
    let leaked: usize = left.values().sum();
    let state = match db {
        Some(db) => paddock_store::open(db.url()).await.unwrap(),
        None => paddock_store::open(&format!(
            "sqlite://{}",
            serve.data.join("paddock.db").display()
        ))
        .await
        .unwrap(),
    };
    let stacks: Vec<_> = state
        .list_stacks()
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.name.contains(&format!("{TEAM}-env")))
        .collect();
    let left_in_state: u64 = stacks.iter().map(|s| s.resources + s.pending).sum();

    // What the providers retried, and what the sandbox injected.
    let metrics = control
        .get(format!("{}/metrics", serve.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut retries: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for (labels, value) in samples(&metrics, "paddock_cloud_retries_total") {
        *retries
            .entry(labels["api"].clone())
            .or_default()
            .entry(labels["reason"].clone())
            .or_default() += value as u64;
    }
    let requests_sent: BTreeMap<String, u64> = samples(&metrics, "paddock_cloud_requests_total")
        .into_iter()
        .map(|(l, v)| (l["api"].clone(), v as u64))
        .collect();
    let log: Vec<Json> = control
        .get(format!(
            "{}/requests?after={start_seq}",
            sandbox.control_url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    control
        .delete(format!("{}/faults", sandbox.control_url))
        .send()
        .await
        .unwrap();
    let mut injected: BTreeMap<String, usize> = BTreeMap::new();
    for e in &log {
        if let Some(f) = e["fault"].as_str() {
            *injected
                .entry(format!("{} {f}", e["api"].as_str().unwrap()))
                .or_default() += 1;
        }
    }

    // No event lost.
    let operations: Vec<String> = outcomes.iter().flat_map(|o| o.operations.clone()).collect();
    let mut gaps = Vec::new();
    for id in &operations {
        let events = api.get(&format!("/api/v1/operations/{id}/events")).await;
        gaps.extend(event_gaps(id, &events));
    }
    let log_text = std::fs::read_to_string(&serve.log).unwrap_or_default();
    let lost_events = log_text.matches("recording an event failed").count();

    // The audit log: its chain holds, and every change the clouds saw names an
    // operation whose records name a person.
    let verify = cli(&api, &home, &["audit", "verify"]);
    let audit_verified = verify.status.success();
    let export = api
        .http
        .get(format!("{}/api/v1/audit/export", api.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let records: Vec<Json> = export
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("audit export lines are JSON"))
        .collect();
    let people: BTreeSet<String> = api
        .get("/api/v1/users")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["login"].as_str().unwrap().to_owned())
        .collect();
    let mut requested_by: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &records {
        if let Some(op) = r["detail"]["operation"].as_str() {
            requested_by
                .entry(op.to_owned())
                .or_default()
                .insert(r["actor"].as_str().unwrap_or_default().to_owned());
        }
    }
    let mut credential_exchanges = 0usize;
    let mut unmapped = Vec::new();
    let mut changes_mapped = 0usize;
    let operator = BTreeSet::from([OPERATOR.to_owned()]);
    for (e, at_start) in at_start
        .iter()
        .map(|e| (e, true))
        .chain(log.iter().map(|e| (e, false)))
    {
        let path = e["path"].as_str().unwrap_or_default();
        // Signing in (a token for the platform identity, an installation token for the
        // GitHub App) changes nothing in the clouds.
        if path.ends_with("/oauth2/v2.0/token") || path.ends_with("/access_tokens") {
            credential_exchanges += 1;
            continue;
        }
        let agent = e["userAgent"].as_str().unwrap_or_default();
        let operation = agent
            .split_once("(operation ")
            .and_then(|(_, rest)| rest.strip_suffix(')'));
        let actors = operation.and_then(|op| requested_by.get(op));
        // At start, `serve` changes the platform's own stack on its operator's behalf.
        match actors {
            Some(actors) if at_start && *actors == operator => changes_mapped += 1,
            Some(actors)
                if !at_start && !actors.is_empty() && actors.iter().all(|a| people.contains(a)) =>
            {
                changes_mapped += 1
            }
            _ => unmapped.push(format!(
                "{} {} {path} ({agent}): audit actors {actors:?}",
                e["api"], e["method"]
            )),
        }
    }

    // The secrets, in clear nowhere: the log and the database as stored.
    serve.stop();
    let log_bytes = std::fs::read(&serve.log).unwrap_or_default();
    let stored = match db {
        Some(db) => db.dump().await.unwrap(),
        None => sqlite_files(&serve.data, "paddock.db"),
    };
    let in_log = planted.found_in(&log_bytes);
    let in_database = planted.found_in(&stored);

    // The figures.
    let retried_requests: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| !o.retried_for.is_empty())
        .collect();
    println!(
        "--- fault soak on {backend}: {n} environments, seed {seed}, {:.0} s in all ---",
        started.elapsed().as_secs_f64()
    );
    println!(
        "phases: create {:.1} s, update {:.1} s, destroy {:.1} s",
        created_in.as_secs_f64(),
        updated_in.as_secs_f64(),
        destroyed_in.as_secs_f64()
    );
    println!(
        "requests: {} ({} operations): {} succeeded at once, {} after a retry, {} never",
        outcomes.len(),
        operations.len(),
        outcomes.len() - retried_requests.len(),
        retried_requests.iter().filter(|o| o.succeeded).count(),
        outcomes.iter().filter(|o| !o.succeeded).count()
    );
    for o in &retried_requests {
        println!("  {} retried for: {}", o.what, o.retried_for.join(" | "));
    }
    println!("faults injected by the sandbox (mutating requests): {injected:?}");
    println!("requests sent by serve, by provider: {requests_sent:?}");
    for (api_name, why) in &retries {
        let total: u64 = why.values().sum();
        let detail: Vec<String> = why
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(w, n)| format!("{w} {n}"))
            .collect();
        println!(
            "retries by serve, {api_name}: {total} ({})",
            detail.join(", ")
        );
    }
    println!(
        "objects after the updates: {} in the sandbox, {} resources in the stacks' states; \
         duplicated {duplicated}, missing {missing}",
        mid.values().sum::<usize>(),
        state_resources
    );
    println!(
        "leaked after the destroys: {leaked} objects {left:?}, {left_in_state} resources or journal entries in {} stacks",
        stacks.len()
    );
    println!(
        "events: {} operations checked, {} gaps, `recording an event failed` {lost_events} times",
        operations.len(),
        gaps.len()
    );
    println!(
        "audit: verify {}, {} records; sandbox saw {} mutating requests ({} at start-up, the \
         platform's template, on its operator's behalf): {changes_mapped} mapped to a person's \
         operation, {credential_exchanges} sign-ins, {} unmapped",
        if audit_verified { "passed" } else { "FAILED" },
        records.len(),
        at_start.len() + log.len(),
        at_start.len(),
        unmapped.len(),
    );
    println!(
        "secrets: {} planted; in the log ({} MiB at debug level) {in_log:?}, in the database ({} MiB) {in_database:?}",
        planted.len(),
        log_bytes.len() / (1 << 20),
        stored.len() / (1 << 20)
    );
    println!(
        "peak memory of serve (VmHWM): {:.1} MiB",
        peak_kib as f64 / 1024.0
    );

    assert_eq!(
        duplicated + missing,
        0,
        "the sandbox after the updates: {mid:?}, expected {want:?}"
    );
    assert_eq!(
        leaked, 0,
        "left in the sandbox after the destroys: {left:?}"
    );
    assert_eq!(left_in_state, 0, "left in the stacks' states: {stacks:?}");
    assert!(gaps.is_empty(), "events lost: {gaps:?}");
    assert_eq!(
        lost_events, 0,
        "serve's log says `recording an event failed`"
    );
    assert!(
        audit_verified,
        "paddock audit verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(
        unmapped.is_empty(),
        "changes no person's operation accounts for: {unmapped:#?}"
    );
    assert!(changes_mapped > 0, "the sandbox saw the soak's changes");
    assert!(log_bytes.len() > 100_000, "serve logged at debug level");
    assert!(in_log.is_empty(), "serve's log shows {in_log:?}");
    assert!(
        in_database.is_empty(),
        "the database holds in clear: {in_database:?}"
    );
    assert!(!injected.is_empty(), "faults were injected");

    drop(serve);
    sandbox.stop().await;
}
