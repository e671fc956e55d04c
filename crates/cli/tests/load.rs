//! Load against a real `paddock serve` on its embedded defaults (SQLite, the sandbox cloud
//! in-process, four workers): many environments requested at the same instant, as a
//! platform team's script would. Every request is accepted, the server never logs
//! `database is locked` or a lost event, no operation's live log misses an event, no
//! writer waits near SQLite's busy timeout and no lease comes near its expiry — measured
//! by the server itself on `/metrics`, and printed.
//!
//! Size: `PADDOCK_LOAD_ENVIRONMENTS` (default 10; the figure is 100), and
//! `PADDOCK_LOAD_SECONDS`, how long the run watches the operations after the requests
//! (default 150; the sandbox lets GitHub take 80 content-creating requests a minute, as
//! GitHub does, so 100 environments take far longer to finish than that — operations
//! still running at the end are left, the finished ones checked).

#[path = "clients/rig.rs"]
mod rig;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use rig::{ServeProcess, free_port, http};
use serde_json::{Value, json};

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The longest any write may wait for the write lock (SQLite's busy timeout is 10 s).
const WAIT_BOUND: f64 = 2.0;

#[test]
fn environments_requested_at_once_on_sqlite_stall_no_write_and_lose_no_event() {
    let environments = setting("PADDOCK_LOAD_ENVIRONMENTS", 10) as usize;
    let watch = Duration::from_secs(setting("PADDOCK_LOAD_SECONDS", 150));
    let dir = tempfile::tempdir().unwrap();
    let serve = ServeProcess::start(&dir.path().join("data"), free_port());
    let (url, token) = (serve.url.clone(), serve.admin_token.clone());

    let report = http(async |client| {
        let api = Api { client, url, token };
        let team = api.post("/api/v1/teams", json!({"name": "load"})).await;
        assert_eq!(team.0, 202, "{}", team.1);
        api.finished(team.1["id"].as_str().unwrap(), Duration::from_secs(300))
            .await;

        let asked = Instant::now();
        let replies = join_all((0..environments).map(|i| {
            api.post(
                "/api/v1/teams/load/environments",
                json!({"name": format!("env-{i}"), "stages": ["dev"]}),
            )
        }))
        .await;
        let accepted_in = asked.elapsed();
        let refused: Vec<_> = replies.iter().filter(|(s, _)| *s != 202).collect();
        assert!(refused.is_empty(), "requests refused: {refused:?}");
        let ops: Vec<String> = replies
            .iter()
            .map(|(_, op)| op["id"].as_str().unwrap().to_owned())
            .collect();

        // Watch them run, reading as the portal does, until they end or time is up.
        let deadline = Instant::now() + watch;
        let mut finished = Vec::new();
        while Instant::now() < deadline {
            finished.clear();
            for op in &ops {
                let (status, body) = api.get(&format!("/api/v1/operations/{op}")).await;
                assert_eq!(status, 200, "{body}");
                if !matches!(body["state"].as_str(), Some("queued" | "running")) {
                    finished.push((op.clone(), body["state"].as_str().unwrap().to_owned()));
                }
            }
            if finished.len() == ops.len() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let mut incomplete = Vec::new();
        for (op, _) in &finished {
            if let Err(why) = api.every_event_is_there(op).await {
                incomplete.push(why);
            }
        }
        let metrics = api.text("/metrics").await;
        Report {
            environments,
            accepted_in,
            ran_for: asked.elapsed(),
            finished: finished.iter().map(|(_, s)| s.clone()).collect(),
            incomplete,
            figures: figures(&metrics),
        }
    });

    let log = std::fs::read_to_string(&serve.process.log).unwrap_or_default();
    serve.process.stop();
    report.print();
    let locked = log.matches("database is locked").count();
    let lost_in_log = log.matches("recording an event failed; it is lost").count();
    assert_eq!(
        locked, 0,
        "the server logged `database is locked` {locked} times"
    );
    assert_eq!(lost_in_log, 0, "the server lost {lost_in_log} events");
    assert!(report.incomplete.is_empty(), "{:#?}", report.incomplete);
    assert_eq!(report.figure("paddock_events_lost_total"), 0.0);
    assert_eq!(
        report.figure("paddock_store_reads_under_write_lock_total"),
        0.0
    );
    let waited = report.max_of("paddock_store_write_wait_seconds_max");
    assert!(
        waited < WAIT_BOUND,
        "a writer waited {waited} s for the write lock"
    );
    assert!(
        report.finished.iter().all(|s| s == "succeeded"),
        "{:?}",
        report.finished
    );
    // Leases last 30 s and are renewed every 10 s: a renewal that found less than 10 s
    // left was held up by something.
    for kind in ["operation", "stack"] {
        let name = format!("paddock_store_lease_margin_seconds_min{{lease=\"{kind}\"}}");
        if let Some(left) = report.figures.get(&name) {
            assert!(
                *left > 10.0,
                "a {kind} lease had {left} s left when renewed"
            );
        }
    }
}

struct Api {
    client: reqwest::Client,
    url: String,
    token: String,
}

impl Api {
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let resp = self
            .client
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .client
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn text(&self, path: &str) -> String {
        let resp = self
            .client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        resp.text().await.unwrap()
    }

    async fn finished(&self, op: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let (_, body) = self.get(&format!("/api/v1/operations/{op}")).await;
            if !matches!(body["state"].as_str(), Some("queued" | "running")) {
                assert_eq!(body["state"], "succeeded", "{body}");
                return body;
            }
            assert!(Instant::now() < deadline, "{op} did not finish: {body}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// An operation's live log tells its whole run: it started and finished, each stack's
    /// plan is there, every step that started ended; ids increase.
    async fn every_event_is_there(&self, op: &str) -> Result<(), String> {
        let (_, events) = self.get(&format!("/api/v1/operations/{op}/events")).await;
        let events = events.as_array().cloned().unwrap_or_default();
        let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
        if kinds.first() != Some(&"operationStarted")
            || kinds.last() != Some(&"operationFinished")
            || !kinds.contains(&"planned")
        {
            return Err(format!("{op}: {kinds:?}"));
        }
        if !events
            .windows(2)
            .all(|w| w[0]["id"].as_i64() < w[1]["id"].as_i64())
        {
            return Err(format!("{op}: event ids out of order"));
        }
        let mut open: BTreeMap<(String, String), i64> = BTreeMap::new();
        for e in &events {
            let key = (
                e["data"]["stack"].as_str().unwrap_or_default().to_owned(),
                e["data"]["resource"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
            match e["kind"].as_str() {
                Some("stepStarted") => *open.entry(key).or_default() += 1,
                Some("stepSucceeded" | "stepFailed") => *open.entry(key).or_default() -= 1,
                _ => {}
            }
        }
        match open.iter().find(|(_, n)| **n != 0) {
            Some((step, _)) => Err(format!("{op}: {step:?} started and ended unevenly")),
            None => Ok(()),
        }
    }
}

struct Report {
    environments: usize,
    accepted_in: Duration,
    ran_for: Duration,
    finished: Vec<String>,
    incomplete: Vec<String>,
    figures: BTreeMap<String, f64>,
}

impl Report {
    fn figure(&self, name: &str) -> f64 {
        *self
            .figures
            .get(name)
            .unwrap_or_else(|| panic!("/metrics has no {name}"))
    }

    /// The largest sample of a labelled metric.
    fn max_of(&self, name: &str) -> f64 {
        self.figures
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{name}{{")) || *k == name)
            .map(|(_, v)| *v)
            .fold(0.0, f64::max)
    }

    fn print(&self) {
        println!(
            "load: {} environments requested at once on SQLite; all accepted in {:.2} s; \
             {} finished in {:.0} s",
            self.environments,
            self.accepted_in.as_secs_f64(),
            self.finished.len(),
            self.ran_for.as_secs_f64()
        );
        println!("load: events lost or incomplete: {}", self.incomplete.len());
        for (name, value) in &self.figures {
            println!("load: {name} {value}");
        }
    }
}

/// The store's and the events' samples from `/metrics` (no histogram buckets).
fn figures(metrics: &str) -> BTreeMap<String, f64> {
    metrics
        .lines()
        .filter(|l| l.starts_with("paddock_store_") || l.starts_with("paddock_events_"))
        .filter(|l| !l.contains("_bucket"))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(name, v)| Some((name.to_owned(), v.parse().ok()?)))
        .collect()
}
