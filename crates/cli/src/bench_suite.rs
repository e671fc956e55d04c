//! `paddock bench suite`: the benchmarks in one run, summed up as a Markdown table ready
//! for the README. Sections: the engine (`bench engine`), provisioning (`bench
//! provision`: environments per minute against the bound the injected latency and the
//! clouds' rate limits set), the API's latency percentiles under concurrent load from a
//! second process on loopback (`paddock serve` and `paddock bench load` as children of
//! this one), and the peak memory of `serve` with 100 environments in flight — the last
//! two on SQLite and, given a server, PostgreSQL side by side. Figures are measured,
//! never asserted: machines are shared and noisy.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use crate::Global;
use crate::bench_load::{CLASSES, LoadReport};
use crate::bench_serve::{Database, Scratch, ServeChild, ServeOptions};

#[derive(Clone, Copy, ValueEnum)]
pub enum Size {
    /// Seconds per section: what CI runs to see that every figure is produced.
    Tiny,
    /// About two minutes in all.
    Small,
    /// The figures for the README.
    Full,
}

#[derive(Args)]
pub struct SuiteArgs {
    /// The preset sizes; the flags below override them one by one.
    #[arg(long, value_enum, default_value_t = Size::Small)]
    size: Size,
    /// A PostgreSQL server (a role that may create databases) to run the server's
    /// sections on too, in a scratch database; without it they run on SQLite only.
    #[arg(long, env = "PADDOCK_BENCH_POSTGRES_URL", hide_env_values = true)]
    postgres: Option<String>,
    /// Resources of the engine's `up`.
    #[arg(long)]
    resources: Option<usize>,
    /// Environments provisioned at once by the provision section.
    #[arg(long)]
    environments: Option<usize>,
    /// Latency added to every provider call / cloud request (engine, provision).
    #[arg(long)]
    latency_ms: Option<u64>,
    /// Requests sent by the load generator.
    #[arg(long)]
    requests: Option<usize>,
    /// The load generator's requests in flight.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Environments requested at once for the memory section.
    #[arg(long)]
    in_flight: Option<usize>,
    /// How long the memory section watches the server after requesting them.
    #[arg(long)]
    memory_secs: Option<u64>,
}

/// The sizes one run uses.
struct Plan {
    resources: usize,
    rounds: usize,
    environments: usize,
    latency_ms: u64,
    requests: usize,
    concurrency: usize,
    load_secs: u64,
    in_flight: usize,
    memory_secs: u64,
}

impl Plan {
    fn of(a: &SuiteArgs) -> Plan {
        let p = match a.size {
            Size::Tiny => Plan {
                resources: 100,
                rounds: 3,
                environments: 1,
                latency_ms: 5,
                requests: 150,
                concurrency: 4,
                load_secs: 20,
                in_flight: 10,
                memory_secs: 3,
            },
            Size::Small => Plan {
                resources: 1000,
                rounds: 10,
                environments: 5,
                latency_ms: 20,
                requests: 3000,
                concurrency: 16,
                load_secs: 20,
                in_flight: 100,
                memory_secs: 20,
            },
            Size::Full => Plan {
                resources: 10_000,
                rounds: 30,
                environments: 10,
                latency_ms: 20,
                requests: 20_000,
                concurrency: 32,
                load_secs: 120,
                in_flight: 100,
                memory_secs: 120,
            },
        };
        Plan {
            resources: a.resources.unwrap_or(p.resources),
            environments: a.environments.unwrap_or(p.environments),
            latency_ms: a.latency_ms.unwrap_or(p.latency_ms),
            requests: a.requests.unwrap_or(p.requests),
            concurrency: a.concurrency.unwrap_or(p.concurrency),
            in_flight: a.in_flight.unwrap_or(p.in_flight),
            memory_secs: a.memory_secs.unwrap_or(p.memory_secs),
            ..p
        }
    }
}

/// A line of the summary: a figure on each database (`None`: not measured there).
struct Row {
    section: &'static str,
    figure: String,
    cells: [Option<String>; 2],
}

impl Row {
    fn both(section: &'static str, figure: impl Into<String>, sqlite: String) -> Row {
        Row {
            section,
            figure: figure.into(),
            cells: [Some(sqlite), None],
        }
    }
}

/// GitHub's documented secondary limit on content-creating requests, per minute.
const GITHUB_WRITES_PER_MINUTE: f64 = 80.0;

pub async fn run(a: SuiteArgs, dir: &Path, g: &Global) -> anyhow::Result<Value> {
    let plan = Plan::of(&a);
    let started = Instant::now();
    let mut rows = Vec::new();
    let mut raw = serde_json::Map::new();

    eprintln!("bench suite: engine, {} resources…", plan.resources);
    let engine = crate::bench::measure(
        &dir.join("engine"),
        plan.resources,
        plan.latency_ms,
        crate::bench::Shape::Wide,
        plan.rounds,
        g,
    )
    .await
    .context("the engine section")?;
    rows.extend(engine_rows(&engine, &plan)?);
    raw.insert("engine".into(), engine);

    eprintln!(
        "bench suite: provision, {} environments…",
        plan.environments
    );
    let provision_dir = dir.join("provision");
    std::fs::create_dir_all(&provision_dir)?;
    let provision =
        crate::bench_provision::measure(&provision_dir, plan.environments, plan.latency_ms, g)
            .await
            .context("the provision section")?;
    rows.extend(provision_rows(&provision)?);
    raw.insert("provision".into(), provision);

    let scratch = match &a.postgres {
        Some(url) => Some(Scratch::create(url).await?),
        None => None,
    };
    let mut serve_rows: Vec<Row> = Vec::new();
    let mut databases = vec![Database::Sqlite];
    let mut pg_memory = None;
    if let Some(s) = &scratch {
        databases.push(s.database());
        // The memory section needs a database of its own: the latency section's holds
        // its environments.
        pg_memory = Some(Scratch::create(a.postgres.as_deref().unwrap_or_default()).await?);
    }
    for (column, database) in databases.iter().enumerate() {
        let label = database.label();
        eprintln!("bench suite: API latency on {label}…");
        let data = dir.join(format!("latency-{column}"));
        let load = api_latency(&data, database, &plan).await?;
        let rows_now = latency_rows(&load);
        raw.insert(format!("apiLatency{label}"), serde_json::to_value(&load)?);
        eprintln!(
            "bench suite: serve's memory with {} environments in flight on {label}…",
            plan.in_flight
        );
        let data = dir.join(format!("memory-{column}"));
        let memory_db = match (column, &pg_memory) {
            (1, Some(s)) => s.database(),
            _ => database.clone(),
        };
        let memory = memory_in_flight(&data, &memory_db, &plan).await?;
        let memory_row = Row::both(
            "serve",
            format!(
                "peak memory (VmHWM) with {} environments in flight",
                plan.in_flight
            ),
            format!(
                "{:.1} MiB (after {} s: {} ready, {} in flight, {} failed; {} requests answered 503 and retried)",
                memory["peakMiB"].as_f64().unwrap_or_default(),
                plan.memory_secs,
                memory["ready"],
                memory["inFlight"],
                memory["failed"],
                memory["requestsRetried"]
            ),
        );
        raw.insert(format!("memory{label}"), memory);
        for (i, row) in rows_now.into_iter().chain([memory_row]).enumerate() {
            if column == 0 {
                serve_rows.push(row);
            } else {
                serve_rows[i].cells[1] = row.cells[0].clone();
            }
        }
    }
    let postgres_absent = scratch.is_none();
    rows.extend(serve_rows);
    drop(pg_memory);
    drop(scratch);

    let table = markdown(&rows, &plan, postgres_absent, started.elapsed());
    Ok(json!({"markdown": table, "figures": raw}))
}

fn engine_rows(e: &Value, plan: &Plan) -> anyhow::Result<Vec<Row>> {
    let wall = number(e, "wall_ms")?;
    let critical = number(e, "critical_path_ms")?;
    Ok(vec![
        Row::both(
            "engine",
            format!(
                "`up` of {} resources ({} ms per call, {} in flight): wall / critical path",
                plan.resources, plan.latency_ms, e["parallelism"]
            ),
            format!(
                "{} / {} ms = {:.3}×",
                thousands(wall),
                thousands(critical),
                number(e, "ratio")?
            ),
        ),
        Row::both(
            "engine",
            format!(
                "no-op plan / state read of {} resources (medians)",
                plan.resources
            ),
            format!(
                "{:.2} / {:.2} ms",
                number(e, "noop_plan_ms")?,
                number(e, "state_read_ms")?
            ),
        ),
    ])
}

fn provision_rows(p: &Value) -> anyhow::Result<Vec<Row>> {
    let n = number(p, "environments")?;
    let wall = number(p, "wallMs")?;
    let bound = number(p, "criticalPathMs")?.max(number(p, "githubSerialMs")?);
    let per_minute = |ms: f64| n * 60_000.0 / ms.max(1e-9);
    let github_writes = number(p, "githubSerialMutations")? / n;
    Ok(vec![
        Row::both(
            "provision",
            format!(
                "{n} environments at once ({} ms per request): environments per minute, measured / bound",
                p["latencyMs"]
            ),
            format!(
                "{:.1} / {:.1} (wall {} ms = {:.3}× the bound)",
                per_minute(wall),
                per_minute(bound),
                thousands(wall),
                wall / bound.max(1e-9)
            ),
        ),
        Row::both(
            "provision",
            "a fleet at GitHub's 80 content-creating requests per minute: environments per minute",
            format!(
                "{:.1} ({:.0} GitHub writes per environment)",
                GITHUB_WRITES_PER_MINUTE / github_writes.max(1e-9),
                github_writes
            ),
        ),
    ])
}

fn latency_rows(load: &LoadReport) -> Vec<Row> {
    let mut rows: Vec<Row> = CLASSES
        .iter()
        .map(|class| {
            let p = &load.classes[class];
            Row::both(
                "API",
                format!("{}: p50 / p90 / p99 / max", class.endpoint()),
                format!(
                    "{:.2} / {:.2} / {:.2} / {:.2} ms ({} requests, {} errors)",
                    p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms, p.count, p.errors
                ),
            )
        })
        .collect();
    rows.push(Row::both(
        "API",
        format!(
            "throughput, {} requests in flight from a second process",
            load.concurrency
        ),
        format!(
            "{:.0} requests/s ({} in {:.1} s)",
            load.requests_per_second,
            thousands(load.requests as f64),
            load.seconds
        ),
    ));
    rows
}

/// The team the server's sections make.
const TEAM: &str = "bench";

/// `serve` without workers (nothing provisions: the API alone is measured), a team with
/// environments made through the API, then `bench load` against it from another process.
async fn api_latency(data: &Path, database: &Database, plan: &Plan) -> anyhow::Result<LoadReport> {
    let serve = ServeChild::start(&ServeOptions {
        data,
        database,
        workers: Some(0),
    })
    .await?;
    let result = async {
        let http = crate::bench_serve::http_client()?;
        post(&http, &serve, "/api/v1/teams", json!({"name": TEAM})).await?;
        let names: Vec<String> = (0..10).map(|i| format!("app-{i:02}")).collect();
        for name in &names {
            post(
                &http,
                &serve,
                &format!("/api/v1/teams/{TEAM}/environments"),
                json!({"name": name, "stages": ["dev", "test"]}),
            )
            .await?;
        }
        let token_file = data.join("bench-token");
        write_private(&token_file, &serve.token)?;
        let out = tokio::process::Command::new(std::env::current_exe()?)
            .arg("bench")
            .arg("load")
            .arg("--url")
            .arg(&serve.url)
            .arg("--token-file")
            .arg(&token_file)
            .arg("--team")
            .arg(TEAM)
            .arg("--environments")
            .arg(names.join(","))
            .arg("--requests")
            .arg(plan.requests.to_string())
            .arg("--concurrency")
            .arg(plan.concurrency.to_string())
            .arg("--max-secs")
            .arg(plan.load_secs.to_string())
            .kill_on_drop(true)
            .output()
            .await
            .context("running `paddock bench load`")?;
        anyhow::ensure!(
            out.status.success(),
            "`paddock bench load` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: LoadReport = serde_json::from_slice(&out.stdout)
            .context("reading `paddock bench load`'s figures")?;
        anyhow::Ok(report)
    }
    .await;
    serve.stop().await;
    result
}

/// `serve` with its default workers, `in_flight` environments of dev and test requested
/// at once through the API (teams of 20, the shipped policy's limit), then watched for
/// `memory_secs`: the figure is the server process's `VmHWM`.
async fn memory_in_flight(data: &Path, database: &Database, plan: &Plan) -> anyhow::Result<Value> {
    let serve = ServeChild::start(&ServeOptions {
        data,
        database,
        workers: None,
    })
    .await?;
    let result = async {
        let http = crate::bench_serve::http_client()?;
        RETRIED.store(0, Ordering::Relaxed);
        let teams: Vec<String> = (0..plan.in_flight.div_ceil(20))
            .map(|t| format!("fleet{t:02}"))
            .collect();
        for team in &teams {
            post(&http, &serve, "/api/v1/teams", json!({"name": team})).await?;
        }
        let requested = Instant::now();
        let posts = (0..plan.in_flight).map(|i| {
            let (http, serve, team) = (&http, &serve, &teams[i / 20]);
            async move {
                post(
                    http,
                    serve,
                    &format!("/api/v1/teams/{team}/environments"),
                    json!({"name": format!("app-{i:03}"), "stages": ["dev", "test"]}),
                )
                .await
                .map(drop)
            }
        });
        use futures_util::StreamExt;
        let results: Vec<anyhow::Result<()>> = futures_util::stream::iter(posts)
            .buffer_unordered(8)
            .collect()
            .await;
        results.into_iter().collect::<anyhow::Result<()>>()?;
        let request_ms = requested.elapsed().as_millis() as u64;
        let retried = RETRIED.swap(0, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(plan.memory_secs)).await;
        let peak = serve.peak_rss_mib()?;
        let (mut ready, mut failed, mut in_flight) = (0, 0, 0);
        for team in &teams {
            let envs: Value =
                get(&http, &serve, &format!("/api/v1/teams/{team}/environments")).await?;
            for e in envs.as_array().into_iter().flatten() {
                match e["status"].as_str() {
                    Some("ready") => ready += 1,
                    Some("failed") => failed += 1,
                    _ => in_flight += 1,
                }
            }
        }
        anyhow::Ok(json!({
            "peakMiB": (peak * 10.0).round() / 10.0,
            "requested": plan.in_flight,
            "requestMs": request_ms,
            "watchedSecs": plan.memory_secs,
            "ready": ready,
            "failed": failed,
            "inFlight": in_flight,
            "requestsRetried": retried,
        }))
    }
    .await;
    serve.stop().await;
    result
}

/// Requests answered 503 or 429 ("try again") and sent again by [`post`].
pub(crate) static RETRIED: AtomicUsize = AtomicUsize::new(0);

/// POSTs `body` with the admin's token and returns the answer; a 503 or 429 is retried
/// as a client would, counted in [`RETRIED`].
pub(crate) async fn post(
    http: &reqwest::Client,
    serve: &ServeChild,
    path: &str,
    body: Value,
) -> anyhow::Result<Value> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let r = http
            .post(format!("{}{path}", serve.url))
            .bearer_auth(&serve.token)
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let again = status == reqwest::StatusCode::SERVICE_UNAVAILABLE
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
        if again && attempt < 20 {
            RETRIED.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            continue;
        }
        let text = r.text().await.unwrap_or_default();
        anyhow::ensure!(status.is_success(), "POST {path} answered {status}: {text}");
        return serde_json::from_str(&text)
            .with_context(|| format!("POST {path} answered {status} with no JSON: {text}"));
    }
}

pub(crate) async fn get(
    http: &reqwest::Client,
    serve: &ServeChild,
    path: &str,
) -> anyhow::Result<Value> {
    let r = http
        .get(format!("{}{path}", serve.url))
        .bearer_auth(&serve.token)
        .send()
        .await?;
    let status = r.status();
    anyhow::ensure!(status.is_success(), "GET {path} answered {status}");
    Ok(r.json().await?)
}

/// Writes a secret for a child process to read: mode 0600 from the start.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

fn number(v: &Value, key: &str) -> anyhow::Result<f64> {
    v.get(key)
        .and_then(Value::as_f64)
        .with_context(|| format!("the figures have no number `{key}`: {v}"))
}

/// `12345.6` as `12,346`.
pub(crate) fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < 0.0 { format!("-{out}") } else { out }
}

fn markdown(rows: &[Row], plan: &Plan, postgres_absent: bool, took: Duration) -> String {
    let mut out = String::from("| section | figure | SQLite | PostgreSQL |\n|---|---|---|---|\n");
    for r in rows {
        let pg = match (&r.cells[1], r.section) {
            (Some(v), _) => v.clone(),
            (None, "engine" | "provision") => "— (SQLite only)".into(),
            (None, _) if postgres_absent => {
                "not run: no PostgreSQL (--postgres / PADDOCK_BENCH_POSTGRES_URL)".into()
            }
            (None, _) => "—".into(),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            r.section,
            r.figure,
            r.cells[0].as_deref().unwrap_or("—"),
            pg
        ));
    }
    out.push_str(&format!(
        "\nSizes: {} resources, {} environments provisioned, {} API requests from {} connections, \
         {} environments in flight watched {} s; the run took {:.0} s.\n",
        plan.resources,
        plan.environments,
        plan.requests,
        plan.concurrency,
        plan.in_flight,
        plan.memory_secs,
        took.as_secs_f64()
    ));
    out
}
