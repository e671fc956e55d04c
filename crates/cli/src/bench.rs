//! `paddock bench engine`: measures the engine against the `test` provider with injected
//! latency, and prints figures (never asserts times: machines are shared and noisy).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Subcommand, ValueEnum};
use paddock_engine::secrets::LocalKeyFile;
use paddock_engine::{DesiredGraph, Discard, Engine, EngineOptions, Expr, ProviderRegistry};
use paddock_providers::{TestCloud, TestCloudOptions};
use paddock_store::SqliteStore;
use tokio_util::sync::CancellationToken;

use crate::{Global, exit};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// `up` of N resources, then a no-op plan, against the test provider.
    Engine {
        #[arg(long, default_value_t = 1000)]
        resources: usize,
        /// Injected latency of every provider call.
        #[arg(long, default_value_t = 20)]
        latency_ms: u64,
        #[arg(long, value_enum, default_value_t = Shape::Wide)]
        shape: Shape,
    },
    /// N environments (repository + dev, test, prod) at once through the real providers,
    /// into an in-process sandbox that adds a latency to every request.
    Provision {
        #[arg(long, default_value_t = 5)]
        environments: usize,
        /// Latency the sandbox adds to every request.
        #[arg(long, default_value_t = 20)]
        latency_ms: u64,
    },
    /// The server's rendering of the home, environment and audit pages, timed at a small
    /// and a large number of environments (their records made through the API and the
    /// store; nothing is provisioned).
    Pages {
        /// Environments at the first measurement.
        #[arg(long, default_value_t = 10)]
        small: usize,
        /// Environments at the second measurement.
        #[arg(long, default_value_t = 1000)]
        large: usize,
        /// Timed requests per page at each size (after 10 untimed ones).
        #[arg(long, default_value_t = 200)]
        requests: usize,
        /// The API's JSON behind the pages, or the portal's HTML pages.
        #[arg(long, value_enum, default_value_t = crate::bench_pages::PageSet::Portal)]
        pages: crate::bench_pages::PageSet,
        /// Record only each operation's start and plans, not the ~120 step events of each
        /// environment's `up`: a setup of seconds instead of minutes, a smaller events table.
        #[arg(long)]
        light: bool,
    },
    /// Engine, provision, API latency under load from a second process and serve's memory
    /// with environments in flight, on SQLite and PostgreSQL: a Markdown summary table.
    Suite(crate::bench_suite::SuiteArgs),
    /// How plan time, serve's memory, the database and the portal's pages grow with the
    /// number of environments (a generated fleet), per size and per 10× step.
    Growth(crate::bench_growth::GrowthArgs),
    /// The load generator of `bench suite`, run as its own process.
    #[command(hide = true)]
    Load(crate::bench_load::LoadArgs),
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Shape {
    /// No dependencies.
    Wide,
    /// Each resource depends on the previous one.
    Chain,
    /// A binary tree: each resource depends on its parent.
    Tree,
}

/// The dependency of resource `i`, if any.
fn parent(shape: Shape, i: usize) -> Option<usize> {
    match shape {
        Shape::Wide => None,
        Shape::Chain => i.checked_sub(1),
        Shape::Tree => (i > 0).then(|| (i - 1) / 2),
    }
}

fn graph(n: usize, shape: Shape) -> DesiredGraph {
    let mut g = DesiredGraph::new();
    for i in 0..n {
        let r = g.resource(&format!("r{i}"), "test:resource");
        r.set("name", format!("bench-{i}")).set("size", i as i64);
        if let Some(p) = parent(shape, i) {
            r.set("parent", Expr::reference(&format!("r{p}"), &["id"]));
        }
    }
    g
}

/// The shortest possible wall time: list scheduling of the DAG with `slots` calls in
/// flight, each taking `latency` — the longest dependency chain given the bound.
fn critical_path(n: usize, shape: Shape, slots: usize, latency: f64) -> f64 {
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n {
        if let Some(p) = parent(shape, i) {
            children[p].push(i);
        }
    }
    let mut ready: std::collections::VecDeque<usize> =
        (0..n).filter(|&i| parent(shape, i).is_none()).collect();
    let mut running: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    let mut now = 0u64;
    let micros = (latency * 1000.0) as u64;
    loop {
        while running.len() < slots {
            let Some(i) = ready.pop_front() else { break };
            running.push(Reverse((now + micros, i)));
        }
        let Some(Reverse((t, i))) = running.pop() else {
            break;
        };
        now = t;
        ready.extend(&children[i]);
    }
    now as f64 / 1000.0
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The stack size the no-op plan's scaling is compared with.
const REFERENCE: usize = 1000;

/// Medians of a bare state read and of a no-op plan, alternated so that noise hits both
/// alike; the first round warms caches and is dropped.
async fn noop_plan_and_read(
    engine: &Engine,
    stack: &str,
    desired: &DesiredGraph,
    n: usize,
    rounds: usize,
) -> anyhow::Result<(f64, f64)> {
    let (mut plans, mut reads) = (Vec::new(), Vec::new());
    for round in 0..rounds.max(2) {
        let t = Instant::now();
        let state = engine.read_state(stack).await?;
        let read = ms(t.elapsed());
        let recorded = state.resources.len();
        drop(state);
        anyhow::ensure!(
            recorded == n,
            "state holds {recorded} resources, expected {n}"
        );
        let t = Instant::now();
        let plan = engine.preview(stack, desired).await?;
        let planned = ms(t.elapsed());
        anyhow::ensure!(
            !plan.has_changes(),
            "the no-op plan has changes: {}",
            plan.summary()
        );
        if round > 0 {
            reads.push(read);
            plans.push(planned);
        }
    }
    Ok((median(plans), median(reads)))
}

pub async fn run(cmd: BenchCommand, g: &Global) -> anyhow::Result<u8> {
    let dir = std::env::temp_dir().join(format!("paddock-bench-{}", paddock_engine::new_id()));
    std::fs::create_dir_all(&dir)?;
    let result = match cmd {
        BenchCommand::Engine {
            resources,
            latency_ms,
            shape,
        } => {
            let rounds = std::env::var("PADDOCK_BENCH_ROUNDS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(30);
            measure(&dir, resources, latency_ms, shape, rounds, g).await
        }
        BenchCommand::Provision {
            environments,
            latency_ms,
        } => crate::bench_provision::measure(&dir, environments, latency_ms, g).await,
        BenchCommand::Pages {
            small,
            large,
            requests,
            pages,
            light,
        } => {
            let options = crate::bench_pages::Options {
                small,
                large,
                requests,
                pages,
                light,
            };
            crate::bench_pages::measure(&dir, &options).await
        }
        BenchCommand::Suite(args) => crate::bench_suite::run(args, &dir, g).await,
        BenchCommand::Growth(args) => crate::bench_growth::run(args, &dir).await,
        BenchCommand::Load(args) => crate::bench_load::run(args)
            .await
            .map(|r| serde_json::to_value(&r).unwrap_or_default()),
    };
    let _ = std::fs::remove_dir_all(&dir);
    let figures = result?;
    // The summaries print their table, unless JSON is asked for.
    if let (false, Some(table)) = (g.json, figures.get("markdown").and_then(|m| m.as_str())) {
        println!("{table}");
        return Ok(exit::OK);
    }
    if g.json {
        println!("{}", serde_json::to_string(&figures)?);
    } else {
        println!("{}", serde_json::to_string_pretty(&figures)?);
    }
    Ok(exit::OK)
}

pub(crate) async fn measure(
    dir: &std::path::Path,
    n: usize,
    latency_ms: u64,
    shape: Shape,
    rounds: usize,
    g: &Global,
) -> anyhow::Result<serde_json::Value> {
    std::fs::create_dir_all(dir)?;
    let store = Arc::new(SqliteStore::open(&dir.join("state.db")).await?);
    let key = Arc::new(LocalKeyFile::open_or_create(&dir.join("master.key"))?);
    let options = TestCloudOptions {
        latency: Duration::from_millis(latency_ms),
        fail_names: None,
        foreign_names: None,
    };
    let cloud = TestCloud::open(&dir.join("cloud"), options)?;
    let parallelism = g.parallelism.max(1);
    let engine = Engine::new(
        store,
        ProviderRegistry::new().with(Arc::new(cloud)),
        key,
        EngineOptions {
            parallelism,
            ..Default::default()
        },
    );
    let desired = graph(n, shape);
    let stack = "bench";

    let started = Instant::now();
    let report = engine
        .up(stack, &desired, &Discard, &CancellationToken::new())
        .await?;
    let wall = ms(started.elapsed());
    anyhow::ensure!(
        report.succeeded(),
        "bench up failed: {:?}",
        report.failures.first()
    );

    let (noop_plan, state_read) = noop_plan_and_read(&engine, stack, &desired, n, rounds).await?;
    // The scaling target compares with 1,000 resources: measure that here too, so the
    // ratio comes from one run on one machine state.
    let scaling = if n > REFERENCE {
        let reference = graph(REFERENCE, shape);
        engine
            .up("reference", &reference, &Discard, &CancellationToken::new())
            .await?;
        let (reference_plan, _) =
            noop_plan_and_read(&engine, "reference", &reference, REFERENCE, rounds).await?;
        Some((reference_plan, noop_plan / reference_plan))
    } else {
        None
    };
    let critical = critical_path(n, shape, parallelism, latency_ms as f64);
    let mut journal = report.journal_write_ms.clone();
    journal.sort_by(f64::total_cmp);
    let p99 = journal
        .get((journal.len() * 99 / 100).min(journal.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0);
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    Ok(serde_json::json!({
        "resources": n,
        "shape": match shape { Shape::Wide => "wide", Shape::Chain => "chain", Shape::Tree => "tree" },
        "latency_ms": latency_ms,
        "parallelism": parallelism,
        "wall_ms": round(wall),
        "critical_path_ms": round(critical),
        "ratio": if critical > 0.0 { round(wall / critical) } else { 0.0 },
        "noop_plan_ms": round(noop_plan),
        "state_read_ms": round(state_read),
        "noop_plan_ms_at_1000": scaling.map(|(ms, _)| round(ms)),
        "noop_plan_scaling": scaling.map(|(_, ratio)| round(ratio)),
        "journal_writes": journal.len(),
        "journal_write_p99_ms": round(p99),
        "peak_rss_mb": round(peak_rss_mb()),
    }))
}
