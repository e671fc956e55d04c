//! Durable operations across replicas, end to end: three `paddock serve` processes on one
//! PostgreSQL database and one sandbox cloud; a team, then ten environments requested
//! round-robin through the three; one replica is killed with SIGKILL while it runs an
//! operation. Every operation must then complete exactly once through the survivors: the
//! killed replica's operation taken over (a second attempt), every environment ready, the
//! cloud holding exactly one of each object (nothing duplicated, nothing extra), no
//! resource created twice, no journal entry left.
//!
//! The kill's delay and target are drawn from a seeded generator; the seed is printed, and
//! `PADDOCK_REPLICAS_SEED=<seed>` replays the draw (the timing of the run itself varies).
//! Needs PostgreSQL (`PADDOCK_TEST_DATABASE_URL`, which `./scripts/test` sets).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use paddock_sandbox::Sandbox;
use paddock_sandbox::faults::FaultRule;
use paddock_store::testing::{TestDatabase, admin_url};
use rand::Rng;
use serde_json::{Value as Json, json};

const REPLICAS: usize = 3;
const ENVIRONMENTS: usize = 10;
const TEAM: &str = "crew";
const STAGES: [&str; 2] = ["dev", "test"];
/// Added to every request to the emulated clouds, so an environment takes seconds.
const LATENCY_MS: u64 = 60;
const LEASE_SECONDS: u64 = 3;
/// The kill lands only while the operation it interrupts has at most this many steps done.
const MAX_STEPS_AT_KILL: usize = 30;

/// One `paddock serve` process.
struct Replica {
    n: usize,
    child: Option<Child>,
    pid: u32,
    url: String,
    data: PathBuf,
    log: PathBuf,
}

/// Every replica still running is killed when this is dropped, whichever way the test ends.
struct Replicas(Vec<Replica>);

impl Drop for Replicas {
    fn drop(&mut self) {
        for r in &mut self.0 {
            if let Some(mut child) = r.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Replicas {
    /// The last lines of each replica's log, for a failure message.
    fn logs(&self) -> String {
        let mut out = String::new();
        for r in &self.0 {
            let text = std::fs::read_to_string(&r.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            out.push_str(&format!(
                "\n--- replica {} (pid {}) log, last {} lines ---\n{}\n",
                r.n,
                r.pid,
                tail.len(),
                tail.join("\n")
            ));
        }
        out
    }

    fn alive(&self) -> impl Iterator<Item = &Replica> {
        self.0.iter().filter(|r| r.child.is_some())
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().unwrap().port()
}

fn spawn_replica(n: usize, dir: &Path, db_url: &str) -> Replica {
    let data = dir.join(format!("replica{n}"));
    std::fs::create_dir_all(&data).unwrap();
    let log = dir.join(format!("replica{n}.log"));
    let port = free_port();
    let listen = SocketAddr::from(([127, 0, 0, 1], port));
    let child = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .arg("serve")
        .arg("--listen")
        .arg(listen.to_string())
        .arg("--data")
        .arg(&data)
        .arg("--log-format")
        .arg("text")
        .env("PADDOCK_DATABASE_URL", db_url)
        .env("PADDOCK_KEY_FILE", dir.join("master.key"))
        .env("PADDOCK_CLOUD", "sandbox-env")
        .env("PADDOCK_SANDBOX_ENV", dir.join("sandbox.env"))
        .env("PADDOCK_LEASE_SECONDS", LEASE_SECONDS.to_string())
        .env("PADDOCK_WORKERS", "2")
        .env("PADDOCK_LOG", "info,sqlx=warn")
        .env("NO_COLOR", "1")
        .env_remove("PADDOCK_CONFIG")
        .env_remove("PADDOCK_LISTEN")
        .env_remove("PADDOCK_DATA")
        .env_remove("PADDOCK_PUBLIC_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("paddock serve starts");
    Replica {
        n,
        pid: child.id(),
        child: Some(child),
        url: format!("http://{listen}"),
        data,
        log,
    }
}

fn seeded_rng() -> rand::rngs::StdRng {
    common::seeded_rng("PADDOCK_REPLICAS_SEED", "replicas test")
}

/// The API as the platform admin.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    token: String,
}

impl Api {
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<(u16, Json), String> {
        let r = req
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        let text = r.text().await.map_err(|e| e.to_string())?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Json::String(text)),
        ))
    }

    async fn get(&self, base: &str, path: &str) -> Json {
        let (status, body) = self
            .send(self.http.get(format!("{base}{path}")))
            .await
            .unwrap_or_else(|e| panic!("GET {base}{path}: {e}"));
        assert_eq!(status, 200, "GET {base}{path}: {body}");
        body
    }

    async fn post(&self, base: &str, path: &str, body: Json) -> Json {
        let (status, answer) = self
            .send(self.http.post(format!("{base}{path}")).json(&body))
            .await
            .unwrap_or_else(|e| panic!("POST {base}{path}: {e}"));
        assert_eq!(status, 202, "POST {base}{path} {body}: {answer}");
        answer
    }
}

/// Waits until `GET {url}/readyz` answers 200, failing early if the process exits.
async fn wait_ready(replica: &mut Replica, replicas_log: impl Fn() -> String) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(status) = replica.child.as_mut().unwrap().try_wait().unwrap() {
            panic!(
                "replica {} exited while starting: {status}{}",
                replica.n,
                replicas_log()
            );
        }
        let ok = http
            .get(format!("{}/readyz", replica.url))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "replica {} was not ready within 90 s{}",
            replica.n,
            replicas_log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `{api: {kind: [document, …]}}`: everything in the sandbox.
async fn inspect(sandbox: &Sandbox) -> Json {
    reqwest::get(format!("{}/inspect", sandbox.control_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn docs<'a>(all: &'a Json, api: &str, kind: &str) -> Vec<&'a Json> {
    all[api][kind]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

fn counts(all: &Json) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for (api, kinds) in all.as_object().into_iter().flatten() {
        for (kind, list) in kinds.as_object().into_iter().flatten() {
            out.insert(
                (api.clone(), kind.clone()),
                list.as_array().map_or(0, Vec::len),
            );
        }
    }
    out
}

/// The replica (holder string) of each attempt of an operation, from its
/// `operationStarted` events, in order.
fn holders(events: &Json) -> Vec<String> {
    events
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["kind"] == "operationStarted")
        .map(|e| e["data"]["replica"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Which replica a holder string (`host:pid:nonce`) names.
fn replica_of<'a>(replicas: &'a [Replica], holder: &str) -> Option<&'a Replica> {
    let pid = holder.split(':').nth(1)?.parse::<u32>().ok()?;
    replicas.iter().find(|r| r.pid == pid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_operations_and_survive_a_sigkill() {
    let Some(admin) = admin_url() else { return };
    let started = Instant::now();
    let db = TestDatabase::create(&admin)
        .await
        .expect("creating a test database");
    let dir = tempfile::tempdir().unwrap();
    let mut rng = seeded_rng();

    // One cloud for all three replicas, in this process; its rate limits lifted: ten
    // environments at once would otherwise wait for GitHub's secondary limit.
    let sandbox = common::unthrottled_sandbox(dir.path(), rng.r#gen()).await;

    // Replica 0 first: it creates the key file and the first admin; then the others.
    let mut replicas = Replicas(Vec::new());
    replicas.0.push(spawn_replica(0, dir.path(), db.url()));
    {
        let (first, _) = replicas.0.split_at_mut(1);
        let log0 = first[0].log.clone();
        wait_ready(&mut first[0], || {
            std::fs::read_to_string(&log0).unwrap_or_default()
        })
        .await;
    }
    for n in 1..REPLICAS {
        replicas.0.push(spawn_replica(n, dir.path(), db.url()));
    }
    for n in 1..REPLICAS {
        let log = replicas.0[n].log.clone();
        wait_ready(&mut replicas.0[n], || {
            std::fs::read_to_string(&log).unwrap_or_default()
        })
        .await;
    }
    println!(
        "{REPLICAS} replicas ready in {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        replicas
            .0
            .iter()
            .map(|r| format!("{} (pid {})", r.url, r.pid))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let token = std::fs::read_to_string(replicas.0[0].data.join("initial-admin-token"))
        .expect("the first replica wrote the initial admin token")
        .trim()
        .to_owned();
    let api = Api {
        http: reqwest::Client::new(),
        token,
    };
    let urls: Vec<String> = replicas.0.iter().map(|r| r.url.clone()).collect();

    // The team, through replica 1, and what exists once it is there.
    let op = api
        .post(&urls[1], "/api/v1/teams", json!({"name": TEAM}))
        .await;
    let team_op = op["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let op = api
            .get(&urls[2], &format!("/api/v1/operations/{team_op}"))
            .await;
        match op["state"].as_str().unwrap() {
            "succeeded" => break,
            "queued" | "running" => {}
            other => panic!("the team's operation is {other}: {op}{}", replicas.logs()),
        }
        assert!(
            Instant::now() < deadline,
            "the team's operation did not finish in 60 s: {op}{}",
            replicas.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let before = counts(&inspect(&sandbox).await);

    // Ten environments, round-robin across the replicas, each request slowed.
    sandbox.faults.set(vec![FaultRule {
        api: "*".into(),
        method: None,
        path_contains: None,
        probability: 1.0,
        latency_ms: LATENCY_MS,
        error: None,
        retry_after_secs: None,
    }]);
    let created = Instant::now();
    let mut ops: Vec<String> = Vec::new();
    for i in 0..ENVIRONMENTS {
        let op = api
            .post(
                &urls[i % REPLICAS],
                &format!("/api/v1/teams/{TEAM}/environments"),
                json!({"name": format!("app{i}"), "stages": STAGES}),
            )
            .await;
        ops.push(op["id"].as_str().unwrap().to_owned());
    }

    // After a random delay, kill a replica (the drawn one if it is running an operation,
    // else one that is) in the middle of its operation.
    let delay = Duration::from_millis(rng.gen_range(300..3000));
    let preferred = rng.gen_range(0..REPLICAS);
    println!("killing a replica (replica {preferred} if busy) after {delay:?}");
    tokio::time::sleep(delay).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let (victim, victim_ops) = loop {
        // Running operations, with the replica of their current attempt and their
        // progress (events so far).
        let mut running: Vec<(usize, String, usize)> = Vec::new();
        for id in &ops {
            let op = api.get(&urls[0], &format!("/api/v1/operations/{id}")).await;
            if op["state"] != "running" {
                continue;
            }
            let events = api
                .get(&urls[0], &format!("/api/v1/operations/{id}/events"))
                .await;
            let Some(holder) = holders(&events).pop() else {
                continue;
            };
            if let Some(r) = replica_of(&replicas.0, &holder) {
                let steps = events
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|e| e["kind"] == "stepSucceeded")
                    .count();
                running.push((r.n, id.clone(), steps));
            }
        }
        // Well before its end (an environment is 41 creations), so it is surely still
        // running when the signal lands.
        running.retain(|(.., steps)| *steps <= MAX_STEPS_AT_KILL);
        let busy: BTreeSet<usize> = running.iter().map(|(n, ..)| *n).collect();
        let victim = if busy.contains(&preferred) {
            Some(preferred)
        } else {
            busy.iter().next().copied()
        };
        if let Some(v) = victim {
            // The least advanced of its operations first.
            let mut mine: Vec<_> = running.into_iter().filter(|(n, ..)| *n == v).collect();
            mine.sort_by_key(|(.., steps)| *steps);
            let child = replicas.0[v].child.as_mut().unwrap();
            child.kill().expect("SIGKILL");
            child.wait().unwrap();
            replicas.0[v].child = None;
            break (v, mine);
        }
        assert!(
            Instant::now() < deadline,
            "no replica was running an operation within 60 s{}",
            replicas.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!(
        "killed replica {victim} (pid {}) {:.1} s after the requests, while it ran {}",
        replicas.0[victim].pid,
        created.elapsed().as_secs_f64(),
        victim_ops
            .iter()
            .map(|(_, id, steps)| format!("{id} ({steps} steps done)"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let survivors: Vec<String> = replicas.alive().map(|r| r.url.clone()).collect();

    // Every operation completes through the survivors.
    let deadline = Instant::now() + Duration::from_secs(180);
    let finals: Vec<Json> = loop {
        let mut all = Vec::new();
        for (i, id) in ops.iter().enumerate() {
            let op = api
                .get(
                    &survivors[i % survivors.len()],
                    &format!("/api/v1/operations/{id}"),
                )
                .await;
            if matches!(op["state"].as_str(), Some("failed" | "cancelled")) {
                panic!(
                    "operation {id} ended {}: {op}{}",
                    op["state"],
                    replicas.logs()
                );
            }
            all.push(op);
        }
        if all.iter().all(|o| o["state"] == "succeeded") {
            break all;
        }
        assert!(
            Instant::now() < deadline,
            "not every operation succeeded within 180 s after the kill: {:?}{}",
            all.iter()
                .map(|o| format!("{} {} attempts {}", o["id"], o["state"], o["attempts"]))
                .collect::<Vec<_>>(),
            replicas.logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    sandbox.faults.set(Vec::new());
    println!(
        "all {ENVIRONMENTS} operations succeeded {:.1} s after the requests",
        created.elapsed().as_secs_f64()
    );

    // Each operation ran exactly once past each step; the killed replica's were taken
    // over by a survivor.
    let victim_holder_pid = replicas.0[victim].pid;
    let mut taken_over = 0;
    for (op, id) in finals.iter().zip(&ops) {
        let events = api
            .get(&survivors[0], &format!("/api/v1/operations/{id}/events"))
            .await;
        let attempts = holders(&events);
        let on_victim =
            |h: &String| replica_of(&replicas.0, h).map(|r| r.pid) == Some(victim_holder_pid);
        let last = attempts.last().expect("an operationStarted event");
        if attempts.iter().any(on_victim) && !on_victim(last) {
            taken_over += 1;
            assert!(
                op["attempts"].as_i64().unwrap() >= 2,
                "{id} was taken over, so it ran twice: {op}"
            );
        }
        // The least advanced of the operations the killed replica was running (the others
        // may have finished in the instant before the signal).
        if victim_ops.first().is_some_and(|(_, v, _)| v == id) {
            assert!(
                !on_victim(last) && op["attempts"].as_i64().unwrap() >= 2,
                "{id} was running on the killed replica; a survivor must have finished it: \
                 {op} (attempts by {attempts:?})"
            );
        }
        // A resource is created once: a resumed run plans what was done as unchanged.
        // Stacks run in order within an attempt, so (attempt, stack ordinal) locates a
        // resource's stack; across attempts the ordinal names the same stack.
        let mut created: BTreeMap<(usize, String), usize> = BTreeMap::new();
        let mut stack = 0usize;
        for e in events.as_array().unwrap() {
            match e["kind"].as_str().unwrap_or_default() {
                "operationStarted" | "waiting" => stack = 0,
                "planned" => stack += 1,
                "stepSucceeded" if e["data"]["kind"] == "create" => {
                    let resource = e["data"]["resource"].as_str().unwrap().to_owned();
                    *created.entry((stack, resource)).or_default() += 1;
                }
                _ => {}
            }
        }
        let twice: Vec<_> = created.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "{id}: created more than once: {twice:?}");
        if attempts.len() > 1 {
            // What each attempt did: its creations, and the journal entries it settled.
            let mut per_attempt: Vec<(usize, usize)> = Vec::new();
            for e in events.as_array().unwrap() {
                match e["kind"].as_str().unwrap_or_default() {
                    "operationStarted" => per_attempt.push((0, 0)),
                    "stepSucceeded" if e["data"]["kind"] == "create" => {
                        per_attempt.last_mut().unwrap().0 += 1
                    }
                    "reconciled" => per_attempt.last_mut().unwrap().1 += 1,
                    _ => {}
                }
            }
            println!(
                "{id}: {} attempts ({})",
                attempts.len(),
                per_attempt
                    .iter()
                    .zip(&attempts)
                    .map(|((c, r), h)| format!("{c} created, {r} reconciled by {h}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
        let finished = events
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "operationFinished")
            .count();
        assert_eq!(finished, 1, "{id} finished exactly once");
    }
    assert!(
        taken_over >= 1 && !victim_ops.is_empty(),
        "at least the operation the killed replica was running was taken over"
    );

    // Every environment is ready.
    for i in 0..ENVIRONMENTS {
        let env = api
            .get(
                &survivors[i % survivors.len()],
                &format!("/api/v1/teams/{TEAM}/environments/app{i}"),
            )
            .await;
        assert_eq!(env["status"], "ready", "app{i}: {env}");
    }

    // The cloud holds each object once: exactly the expected ones, nothing extra.
    // Each dev environment of GitHub lets `main` deploy (a deployment branch policy, made
    // by a second request after the environment's own): a create cut between the two must
    // still end with both.
    let org = sandbox
        .env()
        .into_iter()
        .find(|(k, _)| *k == "PADDOCK_SANDBOX_GITHUB_ORG")
        .map(|(_, v)| v)
        .unwrap();
    let mut without_policy = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let r = api
            .http
            .get(format!(
                "{}/api/v3/repos/{org}/{TEAM}-app{i}/environments/dev/deployment-branch-policies",
                sandbox.http_url
            ))
            .bearer_auth(&sandbox.github_token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Json = r.json().await.unwrap_or(Json::Null);
        let names: Vec<&str> = body["branch_policies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["name"].as_str())
            .collect();
        if status != 200 || names != ["main"] {
            without_policy.push(format!(
                "app{i} (operation {op}{}): {status} {body}",
                if victim_ops.iter().any(|(_, v, _)| v == op) {
                    ", which the killed replica was running"
                } else {
                    ""
                }
            ));
        }
    }
    assert!(
        without_policy.is_empty(),
        "dev environments whose deployment branch policy is not [main]: {without_policy:?}"
    );

    let all = inspect(&sandbox).await;
    let after = counts(&all);
    let apps: Vec<String> = (0..ENVIRONMENTS).map(|i| format!("app{i}")).collect();
    let per_stage = |f: &dyn Fn(&str, &str) -> String| -> BTreeSet<String> {
        apps.iter()
            .flat_map(|a| STAGES.iter().map(move |s| (a.clone(), *s)))
            .map(|(a, s)| f(&a, s))
            .collect()
    };
    let names = |api: &str, kind: &str, field: &dyn Fn(&Json) -> String| -> Vec<String> {
        let mut v: Vec<String> = docs(&all, api, kind).into_iter().map(field).collect();
        v.sort();
        v
    };
    let str_at = |path: &'static [&'static str]| {
        move |d: &Json| {
            let mut v = d;
            for p in path {
                v = &v[*p];
            }
            v.as_str().unwrap_or_default().to_owned()
        }
    };
    let expect_exactly =
        |what: &str, mut got: Vec<String>, keep: &dyn Fn(&str) -> bool, want: BTreeSet<String>| {
            got.retain(|n| keep(n));
            let unique: BTreeSet<String> = got.iter().cloned().collect();
            assert_eq!(
                got.len(),
                unique.len(),
                "{what}: duplicated: {:?}",
                got.iter()
                    .filter(|n| got.iter().filter(|m| m == n).count() > 1)
                    .collect::<BTreeSet<_>>()
            );
            assert_eq!(unique, want, "{what}");
        };
    let ours = |n: &str| n.contains(&format!("{TEAM}-app"));
    expect_exactly(
        "resource groups",
        names("arm", "resourceGroup", &str_at(&["name"])),
        &ours,
        per_stage(&|a, s| format!("rg-{TEAM}-{a}-{s}")),
    );
    expect_exactly(
        "repositories",
        names("github", "repo", &str_at(&["name"])),
        &ours,
        apps.iter().map(|a| format!("{TEAM}-{a}")).collect(),
    );
    expect_exactly(
        "Entra applications",
        names("graph", "application", &str_at(&["uniqueName"])),
        &ours,
        per_stage(&|a, s| format!("paddock-{TEAM}-{a}-{s}")),
    );
    expect_exactly(
        "Kubernetes namespaces",
        names("kubernetes", "namespaces", &str_at(&["metadata", "name"])),
        &ours,
        per_stage(&|a, s| format!("{TEAM}-{a}-{s}")),
    );
    expect_exactly(
        "deployer service accounts",
        names("kubernetes", "serviceaccounts", &|d: &Json| {
            format!(
                "{}/{}",
                d["metadata"]["namespace"].as_str().unwrap_or_default(),
                d["metadata"]["name"].as_str().unwrap_or_default()
            )
        }),
        &|n: &str| ours(n) && n.ends_with("/deployer"),
        per_stage(&|a, s| format!("{TEAM}-{a}-{s}/deployer")),
    );
    // Every kind grew by exactly the environments' objects: per environment, what its
    // repository and its two stages make.
    let per_environment: BTreeMap<(&str, &str), usize> = [
        (("arm", "resourceGroup"), 2),
        (("arm", "managementLock"), 2),
        (("arm", "roleAssignment"), 2),
        (("github", "blob"), 6),
        (("github", "branchPolicy"), 1),
        (("github", "branchProtection"), 1),
        (("github", "commit"), 1),
        (("github", "environment"), 2),
        (("github", "environmentKey"), 2),
        (("github", "ref"), 1),
        (("github", "repo"), 1),
        (("github", "secret"), 2),
        (("github", "repositoryVariable"), 2),
        (("github", "teamRepo"), 1),
        (("github", "variable"), 6),
        (("graph", "application"), 2),
        (("graph", "federatedIdentityCredential"), 2),
        (("graph", "principalCreated"), 2),
        (("graph", "servicePrincipal"), 2),
        (("kubernetes", "limitranges"), 2),
        (("kubernetes", "namespaces"), 2),
        (("kubernetes", "networkpolicies"), 2),
        (("kubernetes", "resourcequotas"), 2),
        (("kubernetes", "rolebindings"), 2),
        (("kubernetes", "roles"), 2),
        (("kubernetes", "secrets"), 2),
        // The deployer, and the namespace's `default`.
        (("kubernetes", "serviceaccounts"), 4),
    ]
    .into_iter()
    .collect();
    let mut grown = Vec::new();
    let mut wrong = Vec::new();
    let keys: BTreeSet<&(String, String)> = before.keys().chain(after.keys()).collect();
    for key in keys {
        let (api_name, kind) = (key.0.as_str(), key.1.as_str());
        // The GitHub App's installation tokens are each replica's own credentials.
        if (api_name, kind) == ("github", "installationToken") {
            continue;
        }
        let was = before.get(key).copied().unwrap_or(0);
        let now = after.get(key).copied().unwrap_or(0);
        grown.push(format!("{api_name}/{kind}: {was} -> {now}"));
        let want =
            was + ENVIRONMENTS * per_environment.get(&(api_name, kind)).copied().unwrap_or(0);
        // Exactly: the sandbox finishes a request whose caller was killed, as a cloud does,
        // and what the survivor resumed was neither lost nor made twice.
        if now != want {
            wrong.push(format!(
                "{api_name}/{kind}: {was} -> {now}, expected {want}"
            ));
        }
    }
    println!("sandbox objects: {}", grown.join(", "));
    assert!(
        wrong.is_empty(),
        "the cloud does not hold exactly the environments' objects: {wrong:?}"
    );

    // The engine's journal is empty and no stack is leased.
    let state = paddock_store::open(db.url()).await.unwrap();
    let stacks = state.list_stacks().await.unwrap();
    assert_eq!(
        stacks
            .iter()
            .filter(|s| s.name.contains(&format!("{TEAM}-app")))
            .count(),
        ENVIRONMENTS * (1 + STAGES.len()),
        "a repository stack and a stack per stage for each environment: {:?}",
        stacks.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    for s in &stacks {
        assert_eq!(s.pending, 0, "{}: journal entries left", s.name);
    }

    // The survivors counted the takeover.
    let mut takeovers = 0;
    for url in &survivors {
        let (status, text) = api
            .send(api.http.get(format!("{url}/metrics")))
            .await
            .unwrap();
        assert_eq!(status, 200);
        let text = text.as_str().unwrap_or_default().to_owned();
        takeovers += text
            .lines()
            .find_map(|l| l.strip_prefix("paddock_lease_takeovers_total "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .expect("paddock_lease_takeovers_total in /metrics");
    }
    assert!(takeovers >= 1, "the survivors report {takeovers} takeovers");
    println!(
        "done in {:.1} s: {taken_over} operation(s) taken over, {takeovers} takeover(s) counted",
        started.elapsed().as_secs_f64()
    );

    drop(replicas);
    sandbox.stop().await;
    drop(db);
}
