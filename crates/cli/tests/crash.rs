//! Crash safety, end to end: `paddock up` (then `paddock destroy`) on a 200-resource
//! blueprint is killed with SIGKILL at random instants, again and again; after each kill
//! the command runs again. At the end the test cloud must hold exactly the desired
//! resources — none missing, none duplicated, none orphaned — and state must match it.
//!
//! The instants are drawn from a seeded generator; the seed is printed, and
//! `PADDOCK_CRASH_SEED=<seed>` replays a run.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use paddock_providers::TestCloudOptions;
use rand::Rng;

const RESOURCES: usize = 200;
const MIN_KILLS: usize = 30;
const STACK: &str = "crash";

/// A binary tree of resources: each depends on its parent's id.
fn blueprint() -> String {
    let mut y = String::from("name: crash\nversion: 1.0.0\nresources:\n");
    for i in 0..RESOURCES {
        y.push_str(&format!("  r{i}:\n    type: test:resource\n    properties:\n      name: crash-{i}\n      size: {i}\n"));
        if i > 0 {
            y.push_str(&format!("      parent: ${{r{}.id}}\n", (i - 1) / 2));
        }
    }
    y
}

fn paddock(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_paddock"));
    cmd.args(args)
        .args(["--stack", STACK, "--yes"])
        .env("PADDOCK_STATE_DIR", dir.join("state"))
        .env("PADDOCK_TEST_CLOUD", dir.join("cloud"))
        .env("PADDOCK_TEST_LATENCY_MS", "20")
        .env("PADDOCK_PARALLELISM", "4")
        .env_remove("PADDOCK_TEST_FAIL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

fn seeded_rng() -> rand::rngs::StdRng {
    common::seeded_rng("PADDOCK_CRASH_SEED", "crash test")
}

/// Runs the command until it has been killed `MIN_KILLS` times while running (each kill
/// at a random instant), then once more to completion.
fn kill_repeatedly(dir: &Path, args: &[&str], rng: &mut impl Rng) -> usize {
    let mut kills = 0;
    let mut attempts = 0;
    while kills < MIN_KILLS {
        attempts += 1;
        assert!(
            attempts < 400,
            "could not kill a running `paddock {}` {MIN_KILLS} times",
            args.join(" ")
        );
        let mut child = paddock(dir, args).spawn().expect("paddock runs");
        let at = Duration::from_millis(rng.gen_range(5..150));
        let started = Instant::now();
        while started.elapsed() < at {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().expect("SIGKILL");
            kills += 1;
        }
        child.wait().unwrap();
    }
    let status = paddock(dir, args)
        .stderr(Stdio::inherit())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "the final `paddock {}` failed: {status}",
        args.join(" ")
    );
    kills
}

/// The cloud holds exactly one object per desired resource and state matches it.
async fn assert_converged(dir: &Path, expected: usize) {
    let cloud = paddock_providers::TestCloud::open(&dir.join("cloud"), TestCloudOptions::default())
        .unwrap();
    let objects = cloud.list().unwrap();
    let mut by_urn: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for o in &objects {
        by_urn
            .entry(o.urn.as_str())
            .or_default()
            .push(o.id.as_str());
    }
    let duplicated: Vec<_> = by_urn.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(
        duplicated.is_empty(),
        "duplicated resources: {duplicated:?}"
    );
    let desired: Vec<String> = (0..expected)
        .map(|i| format!("paddock:{STACK}:test:resource:r{i}"))
        .collect();
    let orphans: Vec<_> = by_urn
        .keys()
        .filter(|u| !desired.iter().any(|d| d == *u))
        .collect();
    assert!(orphans.is_empty(), "orphaned resources: {orphans:?}");
    let missing: Vec<_> = desired
        .iter()
        .filter(|d| !by_urn.contains_key(d.as_str()))
        .collect();
    assert!(missing.is_empty(), "missing resources: {missing:?}");

    let (engine, _) = common::open(&dir.join("state"), TestCloudOptions::default(), 4).await;
    let state = engine.read_state(STACK).await.unwrap();
    assert_eq!(state.pending, 0, "no journal entry is left unsettled");
    assert_eq!(
        state.resources.len(),
        expected,
        "state holds each resource once"
    );
    for r in &state.resources {
        let object = objects
            .iter()
            .find(|o| o.id == r.id)
            .unwrap_or_else(|| panic!("{} is in state but not in the cloud", r.name));
        assert_eq!(
            paddock_engine::Value::Map(r.inputs.clone()).to_json(),
            object.inputs,
            "{}: state matches the cloud",
            r.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_and_destroy_survive_sigkill_at_any_instant() {
    let dir = tempfile::tempdir().unwrap();
    let bp = dir.path().join("blueprint.yaml");
    std::fs::write(&bp, blueprint()).unwrap();
    let bp = bp.to_str().unwrap().to_owned();
    let mut rng = seeded_rng();

    let kills = kill_repeatedly(dir.path(), &["up", "--blueprint", &bp], &mut rng);
    println!("up: killed {kills} times, then completed");
    assert_converged(dir.path(), RESOURCES).await;

    let kills = kill_repeatedly(dir.path(), &["destroy"], &mut rng);
    println!("destroy: killed {kills} times, then completed");
    assert_converged(dir.path(), 0).await;
}
