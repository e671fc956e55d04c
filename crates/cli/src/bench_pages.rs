//! `paddock bench pages`: how the server's rendering of its pages scales with the number
//! of environments. An in-process server (SQLite, the sandbox cloud in-process, no
//! workers) gets one team and N environments, created through the API; their `up`
//! operations are then finished through the store's write functions as a worker finishes
//! them (the events, the outcome, the environment's status, the audit record), without
//! provisioning anything. Each page is requested many times at a small and at a large N,
//! signed in with a session cookie as a browser is; the median and p95 of each, and their
//! ratio large/small, are printed as JSON. Times are never asserted: machines are shared
//! and noisy. Every response must be a 200, or the run fails.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::ValueEnum;
use paddock_engine::{Event, StepKind};
use paddock_platform::{EnvironmentSpec, QuotaSize, Settings, Stage};
use paddock_providers::clouds::Clouds;
use paddock_server::config::WorkerConfig;
use paddock_server::{Config, Deps};
use paddock_store::db::{Db, NewAudit, now_ms};
use serde::Deserialize;
use serde_json::{Value, json};

/// Which paths are timed.
#[derive(Clone, Copy, ValueEnum)]
pub enum PageSet {
    /// The API's JSON behind what the pages show.
    Api,
    /// The portal's HTML pages.
    Portal,
}

/// A timed page: its name in the figures, and its path (`{team}` and `{env}` filled in).
pub(crate) struct Page {
    pub name: &'static str,
    pub path: &'static str,
}

const API_PAGES: &[Page] = &[
    Page {
        name: "home",
        path: "/api/v1/teams/{team}/environments",
    },
    Page {
        name: "environment",
        path: "/api/v1/teams/{team}/environments/{env}",
    },
    Page {
        name: "audit",
        path: "/api/v1/audit",
    },
];

const PORTAL_PAGES: &[Page] = &[
    Page {
        name: "home",
        path: "/",
    },
    Page {
        name: "environment",
        path: "/teams/{team}/environments/{env}",
    },
    Page {
        name: "audit",
        path: "/audit",
    },
];

const TEAM: &str = "bench";
/// The holder named on the operations this bench finishes.
const HOLDER: &str = "bench-pages";
/// Untimed requests per page before the timed ones, at each size.
const WARMUP: usize = 10;

/// What to measure.
pub struct Options {
    pub small: usize,
    pub large: usize,
    pub requests: usize,
    pub pages: PageSet,
    /// Record only each operation's start and plans, not its step events.
    pub light: bool,
}

pub async fn measure(dir: &Path, o: &Options) -> anyhow::Result<Value> {
    anyhow::ensure!(
        o.small >= 1 && o.large > o.small,
        "--small must be at least 1 and --large above it"
    );
    anyhow::ensure!(o.requests >= 1, "--requests: at least 1");
    let mut sb = paddock_sandbox::SandboxConfig::new(dir.join("sandbox"));
    sb.https_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    let sandbox = paddock_sandbox::Sandbox::start(sb)
        .await
        .context("starting the in-process sandbox cloud")?;
    let env: BTreeMap<String, String> = sandbox
        .env()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let result = async {
        let clouds = Clouds::from_sandbox_env(&env)?;
        let config = Config {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            data_dir: Some(dir.to_owned()),
            // No workers: nothing is provisioned; the bench finishes the operations.
            workers: WorkerConfig {
                count: Some(0),
                ..WorkerConfig::default()
            },
            ..Config::default()
        };
        let deps = Deps::open(&config, &clouds).await?;
        let running = paddock_server::start(config, deps).await?;
        let result = run(&running, o).await;
        running.shutdown(Duration::from_secs(2)).await;
        result
    }
    .await;
    sandbox.stop().await;
    result
}

async fn run(running: &paddock_server::Running, o: &Options) -> anyhow::Result<Value> {
    let base = format!("http://{}", running.addr);
    let state = &running.state;
    let bootstrap = running
        .bootstrap
        .as_ref()
        .context("a new data dir bootstraps an admin")?;
    let token = std::fs::read_to_string(&bootstrap.token_file)?
        .trim()
        .to_owned();
    // The shared client (its TLS provider installed), and one that shows redirects as
    // they are: a page that sends the bench elsewhere is not the page.
    let _ = paddock_providers::http::reqwest_client(None, None)?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let cookie = session_cookie(&http, &bootstrap.sign_in_link).await?;

    let (mut create_ms, mut finish_ms) = (0u128, 0u128);
    post(
        &http,
        &token,
        &format!("{base}/api/v1/teams"),
        json!({"name": TEAM}),
    )
    .await?;
    finish_queued(
        &state.db,
        &state.settings,
        &state.environment_blueprint,
        o.light,
    )
    .await?;
    // The shipped policy pack allows 20 environments per team: this team needs them all.
    let mut files = paddock_policy::shipped_files();
    let mut data: Value = serde_json::from_str(&files["data.json"])?;
    data["settings"]["maxEnvironmentsPerTeam"] = json!(o.large.max(o.small) + 1);
    files.insert("data.json".into(), serde_json::to_string_pretty(&data)?);
    // Its own test of the shipped limit goes with it.
    files.retain(|name, _| name != "environment_limit_test.rego");
    post(
        &http,
        &token,
        &format!("{base}/api/v1/policy-packs"),
        json!({"description": "bench: a team with every environment", "files": files}),
    )
    .await?;
    let pages = match o.pages {
        PageSet::Api => API_PAGES,
        PageSet::Portal => PORTAL_PAGES,
    };
    let mut figures: BTreeMap<&str, Value> = BTreeMap::new();
    let mut by_size: Vec<(usize, Vec<Timing>)> = Vec::new();
    let mut audit_records = BTreeMap::new();
    let mut events = BTreeMap::new();
    let mut made = 0;
    for size in [o.small, o.large] {
        let t = Instant::now();
        while made < size {
            post(
                &http,
                &token,
                &format!("{base}/api/v1/teams/{TEAM}/environments"),
                json!({"name": env_name(made), "stages": ["dev", "test", "prod"]}),
            )
            .await?;
            made += 1;
        }
        create_ms += t.elapsed().as_millis();
        let t = Instant::now();
        let counts = finish_queued(
            &state.db,
            &state.settings,
            &state.environment_blueprint,
            o.light,
        )
        .await?;
        finish_ms += t.elapsed().as_millis();
        *events.entry(size).or_insert(0) += counts;
        audit_records.insert(size.to_string(), state.db.verify_audit().await?.records);
        by_size.push((
            size,
            time_pages(&http, &base, &cookie, pages, o.requests).await?,
        ));
    }
    let (small, large) = (&by_size[0], &by_size[1]);
    for (page, (s, l)) in pages.iter().zip(small.1.iter().zip(large.1.iter())) {
        figures.insert(
            page.name,
            json!({
                "path": fill(page.path),
                small.0.to_string(): s.to_json(),
                large.0.to_string(): l.to_json(),
                "ratioMedian": round3(l.median / s.median.max(1e-9)),
                "ratioP95": round3(l.p95 / s.p95.max(1e-9)),
            }),
        );
    }
    Ok(json!({
        "pages": match o.pages { PageSet::Api => "api", PageSet::Portal => "portal" },
        "environments": [o.small, o.large],
        "requestsPerPage": o.requests,
        "auditRecords": audit_records,
        "eventsRecorded": events.values().sum::<usize>(),
        "stepEvents": !o.light,
        "setupMs": {"createThroughTheApi": create_ms as u64, "finishOperations": finish_ms as u64},
        "figures": figures,
    }))
}

fn env_name(i: usize) -> String {
    format!("app-{i:04}")
}

/// The path with the team and the first environment (present at every size) filled in.
fn fill(path: &str) -> String {
    path.replace("{team}", TEAM).replace("{env}", &env_name(0))
}

pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A session, as a browser gets one: the printed sign-in link answers with its cookie.
pub(crate) async fn session_cookie(http: &reqwest::Client, link: &str) -> anyhow::Result<String> {
    let r = http.get(link).send().await?;
    anyhow::ensure!(
        r.status().is_redirection(),
        "the sign-in link answered {}",
        r.status()
    );
    r.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("paddock_session="))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
        .context("the sign-in link set no session cookie")
}

async fn post(http: &reqwest::Client, token: &str, url: &str, body: Value) -> anyhow::Result<()> {
    let r = http.post(url).bearer_auth(token).json(&body).send().await?;
    let status = r.status();
    anyhow::ensure!(
        status.is_success(),
        "POST {url} answered {status}: {}",
        r.text().await.unwrap_or_default()
    );
    Ok(())
}

/// An environment's parameter values, as the server stores them.
#[derive(Deserialize)]
struct StoredParameters {
    stages: Vec<Stage>,
    region: String,
    quota: QuotaSize,
    admins: Vec<String>,
    contributors: Vec<String>,
}

/// Claims every queued operation and finishes it as a worker whose `up` succeeded would:
/// its events, its outcome, the environment ready at the shipped blueprint, the audit
/// record. Returns the number of events recorded. `light`: no step events (a real `up`
/// records two per resource, about 120 per environment).
pub(crate) async fn finish_queued(
    db: &Db,
    settings: &Settings,
    blueprint_version: &str,
    light: bool,
) -> anyhow::Result<usize> {
    let mut events = 0;
    loop {
        let now = now_ms();
        let Some(claim) = db.claim_operation(HOLDER, now, now + 60_000).await? else {
            return Ok(events);
        };
        let op = claim.operation;
        anyhow::ensure!(op.kind == "up", "unexpected operation kind `{}`", op.kind);
        let env = match &op.environment {
            Some(id) => Some(
                db.environment_by_id(id)
                    .await?
                    .context("the operation's environment")?,
            ),
            None => None,
        };
        let runs = match &env {
            Some(e) => {
                let p: StoredParameters = serde_json::from_str(&e.parameters)
                    .with_context(|| format!("environment {}'s parameters", e.name))?;
                let spec = EnvironmentSpec {
                    team: e.team.clone(),
                    app: e.name.clone(),
                    stages: p.stages,
                    admins: p.admins,
                    contributors: p.contributors,
                    region: p.region,
                    quota: p.quota,
                };
                paddock_platform::environment_stacks(&spec, settings)?
            }
            None => Vec::new(),
        };
        // The events a successful `up` records (its `operationStarted` came with the
        // claim): per stack, its plan and each step.
        let mut recorded = Vec::new();
        for run in &runs {
            let n = run.graph.resources.len();
            let mut evs = vec![Event::Planned {
                steps: n,
                changes: n,
                hash: format!("sha256:{:064x}", n),
            }];
            for r in run.graph.resources.iter().filter(|_| !light) {
                evs.push(Event::StepStarted {
                    resource: r.name.clone(),
                    ty: r.ty.clone(),
                    kind: StepKind::Create,
                });
                evs.push(Event::StepSucceeded {
                    resource: r.name.clone(),
                    ty: r.ty.clone(),
                    kind: StepKind::Create,
                    elapsed_ms: 20,
                });
            }
            for e in evs {
                let mut data = serde_json::to_value(&e)?;
                data["stack"] = json!(run.stack);
                let kind = data["event"].as_str().unwrap_or("engine").to_owned();
                recorded.push((kind, data));
            }
        }
        for (kind, data) in &recorded {
            db.append_event(
                &op.id,
                op.environment.as_deref(),
                now_ms(),
                kind,
                &data.to_string(),
            )
            .await?;
        }
        events += recorded.len();
        let outcome = json!({"stacks": runs.iter().map(|r| json!({
            "stack": r.stack,
            "done": r.graph.resources.len(),
            "failures": [],
            "skipped": [],
            "cancelled": false,
        })).collect::<Vec<_>>()});
        let now = now_ms();
        let mut tx = db.write().await?;
        anyhow::ensure!(
            tx.finish_operation(&op.id, HOLDER, "succeeded", &outcome.to_string(), now)
                .await?,
            "operation {} was not ours to finish",
            op.id
        );
        if let Some(e) = &env {
            tx.set_environment_status(&e.id, "ready", now).await?;
            tx.set_environment_blueprint(&e.id, blueprint_version)
                .await?;
        }
        let target = match &env {
            Some(e) => format!("teams/{}/environments/{}", op.team, e.name),
            None => format!("teams/{}", op.team),
        };
        tx.append_audit(
            &NewAudit {
                actor: &op.requested_by,
                source: &format!("worker {HOLDER}"),
                action: "operation.up",
                target: &target,
                team: Some(&op.team),
                environment: env.as_ref().map(|e| e.name.as_str()),
                outcome: "succeeded",
                detail: &json!({"operation": op.id, "attempts": op.attempts, "outcome": outcome}),
            },
            now,
        )
        .await?;
        tx.commit().await?;
    }
}

/// One page's timings at one size.
pub(crate) struct Timing {
    pub median: f64,
    pub p95: f64,
    pub bytes: usize,
}

impl Timing {
    fn to_json(&self) -> Value {
        json!({"medianMs": round3(self.median), "p95Ms": round3(self.p95), "bytes": self.bytes})
    }
}

/// Requests every page `requests` times (after a warm-up), in turn, so that noise hits
/// all pages alike.
pub(crate) async fn time_pages(
    http: &reqwest::Client,
    base: &str,
    cookie: &str,
    pages: &[Page],
    requests: usize,
) -> anyhow::Result<Vec<Timing>> {
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(requests); pages.len()];
    let mut bytes = vec![0; pages.len()];
    for round in 0..WARMUP + requests {
        for (i, page) in pages.iter().enumerate() {
            let url = format!("{base}{}", fill(page.path));
            let t = Instant::now();
            let r = http
                .get(&url)
                .header(reqwest::header::COOKIE, cookie)
                .send()
                .await?;
            let status = r.status();
            let body = r.bytes().await?;
            let elapsed = t.elapsed().as_secs_f64() * 1000.0;
            anyhow::ensure!(
                status == reqwest::StatusCode::OK,
                "GET {url} answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(500)])
            );
            if round >= WARMUP {
                samples[i].push(elapsed);
            }
            bytes[i] = body.len();
        }
    }
    Ok(samples
        .into_iter()
        .zip(bytes)
        .map(|(mut xs, bytes)| {
            xs.sort_by(f64::total_cmp);
            let at = |q: f64| xs[((xs.len() as f64 * q).ceil() as usize).clamp(1, xs.len()) - 1];
            Timing {
                median: at(0.5),
                p95: at(0.95),
                bytes,
            }
        })
        .collect())
}
