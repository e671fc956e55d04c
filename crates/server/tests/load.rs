//! Many environments requested at once, on one database: every request is accepted
//! (never `database is locked`), every operation finishes, no event of any operation is
//! lost, and no writer waits anywhere near the database's busy timeout for the write lock
//! — what the store reports on `/metrics` says so.
//!
//! `PADDOCK_LOAD_ENVIRONMENTS` sets how many (default 10).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Backend, Rig};
use futures_util::future::join_all;
use serde_json::{Value, json};

on_both_databases!(environments_requested_at_once_lose_no_event_and_never_wait_out_the_write_lock);

const ENVS: &str = "/api/v1/teams/payments/environments";

/// The longest any write may wait for the write lock (SQLite's busy timeout is 10 s).
const WAIT_BOUND: f64 = 2.0;

fn environments() -> usize {
    std::env::var("PADDOCK_LOAD_ENVIRONMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

async fn environments_requested_at_once_lose_no_event_and_never_wait_out_the_write_lock(
    backend: Backend,
) {
    // As `paddock serve` runs by default: four workers.
    let rig = Rig::start_with(backend, |c| c.workers.count = Some(4)).await;
    rig.team("payments", &[]).await;
    let admin = rig.admin();
    let n = environments();

    // All the requests at once, while readers page through what they make.
    let requests = join_all((0..n).map(|i| {
        rig.post(
            &admin,
            ENVS,
            json!({"name": format!("load-{i}"), "stages": ["dev"]}),
        )
    }));
    let readers = join_all((0..4).map(|_| async {
        for _ in 0..10 {
            rig.get(&admin, ENVS).await.expect(200);
            rig.get(&admin, "/api/v1/teams/payments/operations")
                .await
                .expect(200);
        }
    }));
    let (replies, _) = tokio::join!(requests, readers);
    let ops: Vec<Value> = replies.into_iter().map(|r| r.expect(202).body).collect();

    for op in &ops {
        rig.succeeds(op).await;
    }
    for op in &ops {
        every_event_is_there(&rig, op["id"].as_str().unwrap()).await;
    }

    let metrics = rig
        .send(rig.http.get(format!("{}/metrics", rig.url)))
        .await
        .expect(200)
        .text;
    let figures = store_figures(&metrics);
    println!("{n} environments at once: {figures:#?}");
    assert_eq!(figures["paddock_events_lost_total"], 0.0, "{metrics}");
    assert_eq!(
        figures["paddock_store_reads_under_write_lock_total"], 0.0,
        "a transaction read around itself"
    );
    let waited = max_of(&figures, "paddock_store_write_wait_seconds_max");
    assert!(
        waited < WAIT_BOUND,
        "a write waited {waited} s for the write lock"
    );
    let held = max_of(&figures, "paddock_store_write_hold_seconds_max");
    assert!(held < WAIT_BOUND, "the write lock was held {held} s");
    rig.stop().await;
}

/// An operation's recorded events tell its whole run: it started and finished once, each
/// stack's plan was recorded, and every step that started has its ending; ids increase.
async fn every_event_is_there(rig: &Rig, op: &str) {
    // Events are recorded off the engine's task: the last one follows the finish closely.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let events = loop {
        let events = rig
            .get(&rig.admin(), &format!("/api/v1/operations/{op}/events"))
            .await
            .expect(200)
            .body;
        let events = events.as_array().unwrap().clone();
        if events
            .last()
            .is_some_and(|e| e["kind"] == "operationFinished")
            || std::time::Instant::now() > deadline
        {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"operationStarted"), "{op}: {kinds:?}");
    assert_eq!(kinds.last(), Some(&"operationFinished"), "{op}: {kinds:?}");
    assert!(
        events
            .windows(2)
            .all(|w| w[0]["id"].as_i64() < w[1]["id"].as_i64()),
        "{op}: ids out of order"
    );
    assert!(kinds.contains(&"planned"), "{op}: {kinds:?}");
    let mut open: BTreeMap<(String, String), usize> = BTreeMap::new();
    for e in &events {
        let key = (
            e["data"]["stack"].as_str().unwrap_or_default().to_owned(),
            e["data"]["resource"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
        match e["kind"].as_str().unwrap() {
            "stepStarted" => *open.entry(key).or_default() += 1,
            "stepSucceeded" | "stepFailed" => {
                let started = open.entry(key.clone()).or_default();
                assert!(*started > 0, "{op}: {key:?} ended without starting");
                *started -= 1;
            }
            _ => {}
        }
    }
    let unended: Vec<_> = open.iter().filter(|(_, n)| **n > 0).collect();
    assert!(unended.is_empty(), "{op}: steps never ended: {unended:?}");
}

/// The largest sample of a metric, over its labels.
fn max_of(figures: &BTreeMap<String, f64>, name: &str) -> f64 {
    figures
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{name}{{")))
        .map(|(_, v)| *v)
        .fold(0.0, f64::max)
}

/// The store's and the event recorder's figures from `/metrics` (unlabelled samples, and
/// labelled ones by their full name).
fn store_figures(metrics: &str) -> BTreeMap<String, f64> {
    metrics
        .lines()
        .filter(|l| l.starts_with("paddock_store_") || l.starts_with("paddock_events_"))
        .filter(|l| !l.contains("_bucket"))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(name, v)| Some((name.to_owned(), v.parse().ok()?)))
        .collect()
}
