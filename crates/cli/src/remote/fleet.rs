//! `paddock blueprint publish` (a new version of the environment blueprint, from a
//! directory laid out as `blueprints/`) and `paddock fleet` (upgrade a blueprint's
//! environments in waves, follow a rollout, read its report, cancel it).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{print_json, s, seg};
use crate::client::Client;
use crate::{Global, UsageError, exit};

/// The files of an environment blueprint version, by their path under the directory.
const BUNDLE_FILES: [&str; 3] = [
    "environment.yaml",
    "environment/repository.yaml",
    "environment/stage.yaml",
];

#[derive(Subcommand)]
pub enum BlueprintCommand {
    /// Publish a new version of the environment blueprint (platform admins): DIR holds
    /// environment.yaml and environment/{repository,stage}.yaml, as blueprints/ does.
    Publish {
        dir: PathBuf,
        /// The version (default: the one environment.yaml declares); greater than every
        /// published one.
        #[arg(long)]
        version: Option<String>,
    },
    /// A blueprint's published versions.
    Ls,
}

#[derive(Subcommand)]
pub enum FleetCommand {
    /// Upgrade a blueprint's environments to a version in waves: a canary wave, then
    /// batches; the rollout stops after the first wave in which an upgrade fails. Pinned
    /// environments are skipped.
    Upgrade(UpgradeArgs),
    /// A rollout's report: each environment upgraded, failed, running, pinned or not
    /// started.
    Status {
        id: String,
        #[arg(long, default_value = "environment")]
        blueprint: String,
    },
    /// A blueprint's rollouts, newest first.
    Ls {
        #[arg(long, default_value = "environment")]
        blueprint: String,
    },
    /// Stop a rollout: no further wave starts (queued upgrades run on).
    Cancel {
        id: String,
        #[arg(long, default_value = "environment")]
        blueprint: String,
    },
}

#[derive(Args)]
pub struct UpgradeArgs {
    blueprint: String,
    /// The version to bring the environments to.
    #[arg(long)]
    to: String,
    /// Environments in the canary wave.
    #[arg(long, default_value_t = 1)]
    canary: i64,
    /// Environments in each later wave.
    #[arg(long, default_value_t = 5)]
    batch: i64,
    /// Only these teams' environments (repeat for more).
    #[arg(long = "team")]
    teams: Vec<String>,
    /// Only environments on these versions (repeat for more).
    #[arg(long = "from")]
    versions: Vec<String>,
    /// Only environments whose name matches this glob.
    #[arg(long = "env")]
    environments: Option<String>,
    /// Follow the rollout wave by wave until it ends; exit 1 if it failed.
    #[arg(long)]
    wait: bool,
}

pub(super) async fn blueprint(c: &Client, cmd: BlueprintCommand, g: &Global) -> anyhow::Result<u8> {
    match cmd {
        BlueprintCommand::Publish { dir, version } => {
            let mut files = BTreeMap::new();
            for file in BUNDLE_FILES {
                let path = dir.join(file);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    UsageError(format!(
                        "{}: {e} (the bundle needs {})",
                        path.display(),
                        BUNDLE_FILES.join(", ")
                    ))
                })?;
                files.insert(file.to_owned(), text);
            }
            let version = match version {
                Some(v) => v,
                None => files["environment.yaml"]
                    .lines()
                    .find_map(|l| l.strip_prefix("version:"))
                    .map(|v| v.trim().trim_matches('"').to_owned())
                    .ok_or_else(|| {
                        UsageError("environment.yaml declares no version: give --version".into())
                    })?,
            };
            let published = c
                .post(
                    "/blueprints/environment/versions",
                    &json!({"version": version, "files": files}),
                )
                .await?;
            if g.json {
                print_json(&published)?;
            } else {
                println!(
                    "Published environment@{} ({}). Environments on older versions now show \
                     an upgrade; upgrade them with: paddock fleet upgrade environment --to {}",
                    s(&published["version"]),
                    s(&published["digest"]),
                    s(&published["version"])
                );
            }
            Ok(exit::OK)
        }
        BlueprintCommand::Ls => {
            let all = c.get("/blueprints").await?;
            if g.json {
                print_json(&all)?;
            } else {
                println!("{:<14} {:<10} PUBLISHED", "BLUEPRINT", "VERSION");
                for b in all.as_array().into_iter().flatten() {
                    println!(
                        "{:<14} {:<10} {}",
                        s(&b["name"]),
                        s(&b["version"]),
                        s(&b["publishedAt"])
                    );
                }
            }
            Ok(exit::OK)
        }
    }
}

fn rollouts(blueprint: &str) -> String {
    format!("/blueprints/{}/rollouts", seg(blueprint))
}

pub(super) async fn fleet(c: &Client, cmd: FleetCommand, g: &Global) -> anyhow::Result<u8> {
    match cmd {
        FleetCommand::Upgrade(a) => {
            let mut filter = json!({});
            if !a.teams.is_empty() {
                filter["teams"] = json!(a.teams);
            }
            if !a.versions.is_empty() {
                filter["versions"] = json!(a.versions);
            }
            if let Some(glob) = &a.environments {
                filter["environments"] = json!(glob);
            }
            let body = json!({"targetVersion": a.to, "filter": filter,
                "canary": a.canary, "batchSize": a.batch});
            let path = rollouts(&a.blueprint);
            let rollout = c.post(&path, &body).await?;
            let id = s(&rollout["id"]).to_owned();
            if !a.wait {
                if g.json {
                    print_json(&rollout)?;
                } else {
                    println!(
                        "Rollout {id} to {}@{} started: {}",
                        a.blueprint,
                        a.to,
                        waves(&rollout)
                    );
                    println!("Follow it with: paddock fleet status {id}");
                }
                return Ok(exit::OK);
            }
            follow(c, g, &path, &id).await
        }
        FleetCommand::Status { id, blueprint } => {
            let r = c
                .get(&format!("{}/{}", rollouts(&blueprint), seg(&id)))
                .await?;
            if g.json {
                print_json(&r)?;
            } else {
                print_report(&r);
            }
            Ok(outcome(&r))
        }
        FleetCommand::Ls { blueprint } => {
            let all = c.get(&rollouts(&blueprint)).await?;
            if g.json {
                print_json(&all)?;
            } else {
                println!(
                    "{:<28} {:<9} {:<10} {:<10} STARTED",
                    "ID", "TO", "STATE", "BY"
                );
                for r in all.as_array().into_iter().flatten() {
                    println!(
                        "{:<28} {:<9} {:<10} {:<10} {}",
                        s(&r["id"]),
                        s(&r["targetVersion"]),
                        s(&r["state"]),
                        s(&r["requestedBy"]),
                        s(&r["createdAt"])
                    );
                }
            }
            Ok(exit::OK)
        }
        FleetCommand::Cancel { id, blueprint } => {
            let r = c
                .post_empty(&format!("{}/{}/cancel", rollouts(&blueprint), seg(&id)))
                .await?;
            if g.json {
                print_json(&r)?;
            } else {
                println!("Rollout {id} cancelled: {}", s(&r["reason"]));
            }
            Ok(exit::OK)
        }
    }
}

/// "3 waves: canary 1, then 5, 5" and how many are pinned.
fn waves(r: &Value) -> String {
    let mut sizes: BTreeMap<i64, usize> = BTreeMap::new();
    let mut pinned = 0;
    for t in r["environments"].as_array().into_iter().flatten() {
        match t["wave"].as_i64() {
            Some(w) => *sizes.entry(w).or_default() += 1,
            None => pinned += 1,
        }
    }
    let list: Vec<String> = sizes
        .iter()
        .map(|(w, n)| {
            if *w == 0 {
                format!("canary {n}")
            } else {
                n.to_string()
            }
        })
        .collect();
    format!(
        "{} wave{} ({}), {pinned} skipped",
        sizes.len(),
        if sizes.len() == 1 { "" } else { "s" },
        list.join(", then ")
    )
}

/// Prints each wave as it ends (on stderr), then the report.
async fn follow(c: &Client, g: &Global, path: &str, id: &str) -> anyhow::Result<u8> {
    let mut shown_wave = -1;
    loop {
        let r = c.get(&format!("{path}/{}", seg(id))).await?;
        let wave = r["currentWave"].as_i64().unwrap_or(0);
        let running = s(&r["state"]) == "running";
        if !g.json {
            // Waves before the current one are over; so is the current one once it ended.
            let done_until = if running { wave - 1 } else { wave };
            while shown_wave < done_until {
                shown_wave += 1;
                eprintln!("{}", wave_line(&r, shown_wave));
            }
        }
        if !running {
            if g.json {
                print_json(&r)?;
            } else {
                print_report(&r);
            }
            return Ok(outcome(&r));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn wave_line(r: &Value, wave: i64) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for t in r["environments"].as_array().into_iter().flatten() {
        if t["wave"].as_i64() == Some(wave) {
            *counts.entry(s(&t["status"]).to_owned()).or_default() += 1;
        }
    }
    let name = if wave == 0 {
        "canary".to_owned()
    } else {
        format!("batch {wave}")
    };
    let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    format!("Wave {name}: {}", parts.join(", "))
}

fn print_report(r: &Value) {
    println!(
        "Rollout {} of {} to {}: {}",
        s(&r["id"]),
        s(&r["blueprint"]),
        s(&r["targetVersion"]),
        s(&r["state"])
    );
    if let Some(reason) = r["reason"].as_str() {
        println!("  {reason}");
    }
    println!(
        "{:<16} {:<24} {:<8} {:<9} {:<12} DETAIL",
        "TEAM", "ENVIRONMENT", "WAVE", "FROM", "STATUS"
    );
    for t in r["environments"].as_array().into_iter().flatten() {
        let wave = match t["wave"].as_i64() {
            Some(0) => "canary".to_owned(),
            Some(n) => n.to_string(),
            None => "-".to_owned(),
        };
        let detail = match (t["detail"].as_str(), t["operation"].as_str()) {
            (Some(d), Some(op)) => format!("{d} (operation {op})"),
            (Some(d), None) => d.to_owned(),
            _ => String::new(),
        };
        println!(
            "{:<16} {:<24} {:<8} {:<9} {:<12} {detail}",
            s(&t["team"]),
            s(&t["environment"]),
            wave,
            s(&t["fromVersion"]),
            s(&t["status"])
        );
    }
}

fn outcome(r: &Value) -> u8 {
    match s(&r["state"]) {
        "failed" => exit::FAILED,
        "cancelled" => exit::CANCELLED,
        _ => exit::OK,
    }
}
