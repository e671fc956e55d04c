//! `paddock bench growth`: the cost of growth. A generated fleet — teams of 20
//! environments (the shipped policy's limit), requested through the API of a `paddock
//! serve` child without workers, their operations then finished through the store as a
//! worker finishes them (events, outcome, status, audit record) — grows from one size to
//! the next; at each size a freshly started server is measured: the portal's and the
//! API's pages (medians), plan time (a dry run of a new environment, its four stacks
//! planned against a team provisioned for real in the sandbox), the server's peak memory
//! (`VmHWM`) and the database's size. Printed per size, with the ratio per step.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use futures_util::StreamExt;
use paddock_providers::clouds::Clouds;
use paddock_store::db::Db;
use serde_json::{Value, json};

use crate::bench_pages::{Page, round3, session_cookie, time_pages};
use crate::bench_serve::{Database, ServeChild, ServeOptions, http_client, sqlite_bytes};
use crate::bench_suite::{get, post, thousands};

#[derive(Args)]
pub struct GrowthArgs {
    /// Fleet sizes (environments), ascending.
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    sizes: Vec<usize>,
    /// Timed requests per page at each size (after 5 untimed).
    #[arg(long, default_value_t = 30)]
    requests: usize,
    /// Dry runs timed at each size.
    #[arg(long, default_value_t = 5)]
    plans: usize,
    /// Requests in flight while the fleet is made (more than one meets SQLite's write
    /// stalls: `database is locked` for 10 s).
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
}

/// Environments per team: the shipped policy pack's limit.
const TEAM_SIZE: usize = 20;
/// The team provisioned for real, whose new environment is planned.
const PROBE: &str = "probe";

/// The pages timed; the first team and its first environment exist at every size.
const PAGES: &[Page] = &[
    Page {
        name: "portal home `/`",
        path: "/",
    },
    Page {
        name: "portal teams `/teams`",
        path: "/teams",
    },
    Page {
        name: "portal team `/teams/t0000`",
        path: "/teams/t0000",
    },
    Page {
        name: "portal environment",
        path: "/teams/t0000/environments/e00000",
    },
    Page {
        name: "portal audit `/audit`",
        path: "/audit",
    },
    Page {
        name: "portal blueprints `/blueprints`",
        path: "/blueprints",
    },
    Page {
        name: "API `GET /api/v1/teams`",
        path: "/api/v1/teams",
    },
    Page {
        name: "API `GET /api/v1/teams/t0000/environments`",
        path: "/api/v1/teams/t0000/environments",
    },
];

pub async fn run(a: GrowthArgs, dir: &Path) -> anyhow::Result<Value> {
    anyhow::ensure!(
        !a.sizes.is_empty() && a.sizes.windows(2).all(|w| w[0] < w[1]),
        "--sizes: ascending numbers of environments"
    );
    let data = dir.join("growth");
    let database = Database::Sqlite;
    let started = Instant::now();

    // First start: a team provisioned for real (its stack's outputs are what a new
    // environment's plan reads), and a browser session for the portal's pages.
    eprintln!("bench growth: provisioning team `{PROBE}`…");
    let serve = ServeChild::start(&ServeOptions {
        data: &data,
        database: &database,
        workers: Some(1),
    })
    .await?;
    let http = http_client()?;
    let prepared = async {
        let link = serve
            .sign_in_link
            .clone()
            .context("a first start prints a sign-in link")?;
        let cookie = session_cookie(&http, &link).await?;
        let op = post(&http, &serve, "/api/v1/teams", json!({"name": PROBE})).await?;
        wait_for_operation(&http, &serve, &op).await?;
        anyhow::Ok(cookie)
    }
    .await;
    let token = serve.token.clone();
    serve.stop().await;
    let cookie = prepared?;

    let env = crate::bench_serve::read_env(&data.join("sandbox/sandbox.env"));
    let clouds = Clouds::from_sandbox_env(&env)?;
    let settings = paddock_platform::Settings {
        github_org: clouds.github.org.clone(),
        oidc_issuer: clouds.oidc_issuer.clone(),
        tenant_id: clouds.entra.tenant_id.clone(),
        subscription_id: clouds.azure.subscription_id.clone(),
        template_repository: paddock_platform::DEFAULT_TEMPLATE_REPOSITORY.to_owned(),
    };
    let version = paddock_server::shipped_blueprints()
        .into_iter()
        .find(|b| b.name == "environment")
        .map(|b| b.version)
        .context("the shipped environment blueprint")?;
    let db = Db::connect(&format!("sqlite://{}", data.join("paddock.db").display())).await?;

    let mut made = 0;
    let mut per_size: Vec<(usize, BTreeMap<String, f64>)> = Vec::new();
    for &size in &a.sizes {
        eprintln!("bench growth: {size} environments…");
        let t = Instant::now();
        let serve = ServeChild::start(&ServeOptions {
            data: &data,
            database: &database,
            workers: Some(0),
        })
        .await?;
        let grown = grow(&http, &serve, made, size, a.concurrency).await;
        serve.stop().await;
        grown?;
        made = size;
        crate::bench_pages::finish_queued(&db, &settings, &version, true).await?;
        let setup_s = t.elapsed().as_secs_f64();

        let serve = ServeChild::start(&ServeOptions {
            data: &data,
            database: &database,
            workers: Some(0),
        })
        .await?;
        let measured = measure(&http, &serve, &token, &cookie, &a).await;
        let peak = serve.peak_rss_mib();
        serve.stop().await;
        let mut figures = measured?;
        figures.insert("serve peak memory (MiB)".into(), round3(peak?));
        figures.insert(
            "database (MiB)".into(),
            round3(sqlite_bytes(&data).await? as f64 / (1024.0 * 1024.0)),
        );
        eprintln!("bench growth: {size} measured (setup {setup_s:.0} s)");
        per_size.push((size, figures));
    }
    let table = markdown(&per_size, started.elapsed());
    let figures: BTreeMap<String, &BTreeMap<String, f64>> =
        per_size.iter().map(|(n, f)| (n.to_string(), f)).collect();
    Ok(json!({"markdown": table, "figures": figures}))
}

/// Teams of 20 and their environments, requested through the API, up to `size`.
async fn grow(
    http: &reqwest::Client,
    serve: &ServeChild,
    from: usize,
    size: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    for team in from.div_ceil(TEAM_SIZE)..size.div_ceil(TEAM_SIZE) {
        post(
            http,
            serve,
            "/api/v1/teams",
            json!({"name": team_name(team)}),
        )
        .await?;
    }
    let posts = (from..size).map(|i| async move {
        post(
            http,
            serve,
            &format!("/api/v1/teams/{}/environments", team_name(i / TEAM_SIZE)),
            json!({"name": format!("e{i:05}"), "stages": ["dev", "test"]}),
        )
        .await
        .map(drop)
    });
    let results: Vec<anyhow::Result<()>> = futures_util::stream::iter(posts)
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    results.into_iter().collect()
}

fn team_name(i: usize) -> String {
    format!("t{i:04}")
}

/// The pages' medians, then plan time (the dry run's median).
async fn measure(
    http: &reqwest::Client,
    serve: &ServeChild,
    token: &str,
    cookie: &str,
    a: &GrowthArgs,
) -> anyhow::Result<BTreeMap<String, f64>> {
    let mut figures = BTreeMap::new();
    let timings = time_pages(http, &serve.url, cookie, PAGES, a.requests).await?;
    for (page, t) in PAGES.iter().zip(&timings) {
        figures.insert(format!("{} (ms)", page.name), round3(t.median));
    }
    let mut plans = Vec::new();
    for round in 0..a.plans + 1 {
        let t = Instant::now();
        let r = http
            .post(format!(
                "{}/api/v1/teams/{PROBE}/environments?dryRun=true",
                serve.url
            ))
            .bearer_auth(token)
            .json(&json!({"name": "planned", "stages": ["dev", "test", "prod"]}))
            .send()
            .await?;
        let status = r.status();
        let body = r.text().await?;
        anyhow::ensure!(status.is_success(), "the dry run answered {status}: {body}");
        if round > 0 {
            plans.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    plans.sort_by(f64::total_cmp);
    figures.insert(
        "plan: dry run of a new environment, 4 stacks (ms)".into(),
        round3(plans[plans.len() / 2]),
    );
    Ok(figures)
}

/// Waits for the operation a 202 answered with to succeed.
async fn wait_for_operation(
    http: &reqwest::Client,
    serve: &ServeChild,
    answer: &Value,
) -> anyhow::Result<()> {
    let id = answer["id"]
        .as_str()
        .or_else(|| answer["operation"]["id"].as_str())
        .with_context(|| format!("no operation in {answer}"))?;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let op = get(http, serve, &format!("/api/v1/operations/{id}")).await?;
        match op["state"].as_str() {
            Some("succeeded") => return Ok(()),
            Some("failed" | "cancelled") => anyhow::bail!("operation {id} ended: {op}"),
            _ if Instant::now() > deadline => anyhow::bail!("operation {id} still runs: {op}"),
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

fn markdown(per_size: &[(usize, BTreeMap<String, f64>)], took: Duration) -> String {
    let mut out = String::from("| figure |");
    for (n, _) in per_size {
        out.push_str(&format!(" {} environments |", thousands(*n as f64)));
    }
    for w in per_size.windows(2) {
        out.push_str(&format!(
            " {}→{} |",
            thousands(w[0].0 as f64),
            thousands(w[1].0 as f64)
        ));
    }
    out.push('\n');
    out.push_str(&"|---".repeat(1 + per_size.len() + per_size.len().saturating_sub(1)));
    out.push_str("|\n");
    let names: Vec<&String> = per_size
        .first()
        .map(|(_, f)| f.keys().collect())
        .unwrap_or_default();
    for name in names {
        out.push_str(&format!("| {name} |"));
        for (_, f) in per_size {
            out.push_str(&format!(" {} |", f.get(name).copied().unwrap_or(f64::NAN)));
        }
        for w in per_size.windows(2) {
            let (a, b) = (w[0].1[name], w[1].1[name]);
            let step = w[1].0 as f64 / w[0].0 as f64;
            let ratio = b / a.max(1e-9);
            // Anything growing faster than the fleet is flagged.
            let flag = if ratio > step * 1.1 {
                " super-linear"
            } else {
                ""
            };
            out.push_str(&format!(" {ratio:.2}×{flag} |"));
        }
        out.push('\n');
    }
    out.push_str(&format!("\nThe run took {:.0} s.\n", took.as_secs_f64()));
    out
}
