//! `paddock bench load` (hidden): the load generator of `bench suite`, run as a process of
//! its own so that its work is not counted in the server's. It sends a bounded number of
//! requests (stopping early at a time limit) from `concurrency` connections at once, in
//! turn one of each class — a list, a get, a write — and prints each class's latency
//! percentiles as JSON. Every answer must be a 2xx: others are counted as errors.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde::{Deserialize, Serialize};

#[derive(Args, Clone)]
pub struct LoadArgs {
    /// The server's base URL.
    #[arg(long)]
    pub url: String,
    /// A file holding the API token to send (never on the command line).
    #[arg(long)]
    pub token_file: PathBuf,
    #[arg(long)]
    pub team: String,
    /// The team's environments the requests name, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub environments: Vec<String>,
    /// Requests in all.
    #[arg(long, default_value_t = 3000)]
    pub requests: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Stop sending after this many seconds even if requests are left.
    #[arg(long, default_value_t = 60)]
    pub max_secs: u64,
}

/// The classes of request, in the order they are sent.
pub const CLASSES: [Class; 3] = [Class::List, Class::Get, Class::Write];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Class {
    /// `GET /api/v1/teams/{team}/environments`.
    List,
    /// `GET /api/v1/teams/{team}/environments/{env}`.
    Get,
    /// `PUT /api/v1/teams/{team}/environments/{env}/expiry`: a policy-checked, audited write.
    Write,
}

impl Class {
    pub fn endpoint(self) -> &'static str {
        match self {
            Class::List => "GET /api/v1/teams/{team}/environments",
            Class::Get => "GET /api/v1/teams/{team}/environments/{env}",
            Class::Write => "PUT /api/v1/teams/{team}/environments/{env}/expiry",
        }
    }
}

/// One class's figures.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Percentiles {
    pub count: usize,
    pub errors: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// What `bench load` prints.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadReport {
    pub requests: usize,
    pub concurrency: usize,
    pub seconds: f64,
    pub requests_per_second: f64,
    pub classes: BTreeMap<Class, Percentiles>,
    /// The first few non-2xx answers, for a reader to see why.
    pub first_errors: Vec<String>,
}

struct Sample {
    class: Class,
    ms: f64,
    error: Option<String>,
}

pub async fn run(a: LoadArgs) -> anyhow::Result<LoadReport> {
    anyhow::ensure!(a.concurrency >= 1, "--concurrency: at least 1");
    let token = std::fs::read_to_string(&a.token_file)
        .with_context(|| format!("reading {}", a.token_file.display()))?
        .trim()
        .to_owned();
    let http = crate::bench_serve::http_client()?;
    let a = Arc::new(a);
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(a.max_secs);
    let started = Instant::now();
    let tasks: Vec<_> = (0..a.concurrency)
        .map(|_| {
            let (a, next, http, token) = (a.clone(), next.clone(), http.clone(), token.clone());
            tokio::spawn(async move {
                let mut samples = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= a.requests || Instant::now() >= deadline {
                        return samples;
                    }
                    samples.push(one(&http, &a, &token, i).await);
                }
            })
        })
        .collect();
    let mut samples = Vec::new();
    for t in tasks {
        samples.extend(t.await?);
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut classes = BTreeMap::new();
    for class in CLASSES {
        let of: Vec<&Sample> = samples.iter().filter(|s| s.class == class).collect();
        let mut ms: Vec<f64> = of.iter().map(|s| s.ms).collect();
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| {
            if ms.is_empty() {
                return 0.0;
            }
            let i = ((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1;
            (ms[i] * 100.0).round() / 100.0
        };
        classes.insert(
            class,
            Percentiles {
                count: of.len(),
                errors: of.iter().filter(|s| s.error.is_some()).count(),
                p50_ms: at(0.50),
                p90_ms: at(0.90),
                p99_ms: at(0.99),
                max_ms: at(1.0),
            },
        );
    }
    Ok(LoadReport {
        requests: samples.len(),
        concurrency: a.concurrency,
        seconds: (seconds * 1000.0).round() / 1000.0,
        requests_per_second: (samples.len() as f64 / seconds.max(1e-9) * 10.0).round() / 10.0,
        classes,
        first_errors: samples
            .iter()
            .filter_map(|s| s.error.clone())
            .take(5)
            .collect(),
    })
}

/// Request number `i`: its class in turn, its environment in turn.
async fn one(http: &reqwest::Client, a: &LoadArgs, token: &str, i: usize) -> Sample {
    let class = CLASSES[i % CLASSES.len()];
    let env = &a.environments[(i / CLASSES.len()) % a.environments.len()];
    let base = format!("{}/api/v1/teams/{}/environments", a.url, a.team);
    let request = match class {
        Class::List => http.get(base),
        Class::Get => http.get(format!("{base}/{env}")),
        // Alternating, so that every write changes what is stored.
        Class::Write => http
            .put(format!("{base}/{env}/expiry"))
            .json(&serde_json::json!({"ttl": if i.is_multiple_of(2) { "30d" } else { "31d" }})),
    };
    let t = Instant::now();
    let result = request.bearer_auth(token).send().await;
    let error = match result {
        Ok(r) => {
            let status = r.status();
            let body = r.bytes().await;
            match (status.is_success(), body) {
                (true, Ok(_)) => None,
                (_, body) => Some(format!(
                    "{} → {status}: {}",
                    class.endpoint(),
                    body.map(|b| String::from_utf8_lossy(&b[..b.len().min(300)]).into_owned())
                        .unwrap_or_default()
                )),
            }
        }
        Err(e) => Some(format!("{} → {e}", class.endpoint())),
    };
    Sample {
        class,
        ms: t.elapsed().as_secs_f64() * 1000.0,
        error,
    }
}
