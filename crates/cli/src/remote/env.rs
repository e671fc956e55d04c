//! `paddock env`: request environments, list and show them, run operations on them
//! (up, preview, refresh, destroy) and read their events.

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use super::events::{all_events, event_line, print_event};
use super::op::started;
use super::{Wait, capitalized, list, name_of, print_json, s, seg};
use crate::client::{Client, Flow};
use crate::{Global, exit};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum StageArg {
    Dev,
    Test,
    Prod,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum QuotaArg {
    Small,
    Medium,
    Large,
}

#[derive(Args)]
pub struct EnvTarget {
    team: String,
    name: String,
}

#[derive(Subcommand)]
pub enum EnvCommand {
    /// Request an environment: a repository and, per stage, cloud resources.
    Create {
        #[command(flatten)]
        target: EnvTarget,
        /// The stages, comma-separated (prod needs the team's admin role).
        #[arg(long, value_enum, value_delimiter = ',', required = true)]
        stages: Vec<StageArg>,
        /// The Azure region (server default: westeurope).
        #[arg(long)]
        region: Option<String>,
        /// How much of the cluster each stage may use (server default: medium).
        #[arg(long, value_enum)]
        quota: Option<QuotaArg>,
        /// An admin of the environment (repeatable; default: the team's admins).
        #[arg(long = "admin", value_name = "LOGIN")]
        admins: Vec<String>,
        /// A contributor (repeatable; default: the team's contributors).
        #[arg(long = "contributor", value_name = "LOGIN")]
        contributors: Vec<String>,
        #[command(flatten)]
        wait: Wait,
    },
    /// List a team's environments.
    Ls { team: String },
    /// Show an environment and its outputs (secrets redacted unless --reveal).
    Show {
        #[command(flatten)]
        target: EnvTarget,
        /// Show secret outputs in clear (team admins; recorded in the audit log).
        #[arg(long)]
        reveal: bool,
    },
    /// Bring stages up to date (default: all of the environment's stages).
    Up(EnvOperation),
    /// Plan only: what `up` would change.
    Preview(EnvOperation),
    /// Read the clouds and record drift.
    Refresh(EnvOperation),
    /// Delete every resource of the environment.
    Destroy {
        #[command(flatten)]
        target: EnvTarget,
        /// Don't ask for confirmation (required when not on a terminal).
        #[arg(long, short)]
        yes: bool,
        #[command(flatten)]
        wait: Wait,
    },
    /// The events of the environment's operations.
    Logs {
        #[command(flatten)]
        target: EnvTarget,
        /// Keep following new events (Ctrl-C stops).
        #[arg(long, short)]
        follow: bool,
    },
}

#[derive(Args)]
pub struct EnvOperation {
    #[command(flatten)]
    target: EnvTarget,
    /// Only these stages, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',')]
    stages: Vec<StageArg>,
    #[command(flatten)]
    wait: Wait,
}

fn env_path(t: &EnvTarget) -> String {
    format!("/teams/{}/environments/{}", seg(&t.team), seg(&t.name))
}

pub(super) async fn env(c: &Client, cmd: EnvCommand, g: &Global) -> anyhow::Result<u8> {
    match cmd {
        EnvCommand::Create {
            target,
            stages,
            region,
            quota,
            admins,
            contributors,
            wait,
        } => {
            let mut body = json!({
                "name": target.name,
                "stages": stages.iter().map(name_of).collect::<Vec<_>>(),
            });
            if let Some(r) = region {
                body["region"] = json!(r);
            }
            if let Some(q) = quota {
                body["quota"] = json!(name_of(&q));
            }
            if !admins.is_empty() {
                body["admins"] = json!(admins);
            }
            if !contributors.is_empty() {
                body["contributors"] = json!(contributors);
            }
            let op = c
                .post(&format!("/teams/{}/environments", seg(&target.team)), &body)
                .await?;
            let what = format!("Environment `{}/{}` requested", target.team, target.name);
            started(c, g, &op, wait, &what).await
        }
        EnvCommand::Ls { team } => {
            let envs = c
                .get(&format!("/teams/{}/environments", seg(&team)))
                .await?;
            if g.json {
                print_json(&envs)?;
            } else {
                println!(
                    "{:<32} {:<11} {:<15} {:<12} {:<7} UPDATED",
                    "NAME", "STATUS", "STAGES", "REGION", "QUOTA"
                );
                for e in envs.as_array().into_iter().flatten() {
                    let p = &e["parameters"];
                    println!(
                        "{:<32} {:<11} {:<15} {:<12} {:<7} {}",
                        s(&e["name"]),
                        s(&e["status"]),
                        list(&p["stages"]),
                        s(&p["region"]),
                        s(&p["quota"]),
                        s(&e["updatedAt"])
                    );
                }
            }
            Ok(exit::OK)
        }
        EnvCommand::Show { target, reveal } => {
            let path = env_path(&target);
            let mut e = c.get(&path).await?;
            let query = [("reveal", if reveal { "true".into() } else { String::new() })];
            let outputs = c.get_query(&format!("{path}/outputs"), &query).await?;
            if g.json {
                e["outputs"] = outputs;
                print_json(&e)?;
                return Ok(exit::OK);
            }
            let p = &e["parameters"];
            println!(
                "Environment {}/{}: {}",
                s(&e["team"]),
                s(&e["name"]),
                s(&e["status"])
            );
            println!(
                "  stages: {}   region: {}   quota: {}",
                list(&p["stages"]),
                s(&p["region"]),
                s(&p["quota"])
            );
            println!(
                "  admins: {}   contributors: {}",
                list(&p["admins"]),
                list(&p["contributors"])
            );
            println!(
                "  blueprint: {}@{}",
                s(&e["blueprint"]),
                s(&e["blueprintVersion"])
            );
            println!(
                "  created {} by {}; updated {}",
                s(&e["createdAt"]),
                s(&e["createdBy"]),
                s(&e["updatedAt"])
            );
            if outputs["revealed"].as_bool() == Some(true) {
                println!("Outputs (secrets revealed):");
            } else {
                println!("Outputs (secrets redacted; --reveal shows them):");
            }
            for st in outputs["stacks"].as_array().into_iter().flatten() {
                println!("  {}:", s(&st["stack"]));
                for (k, v) in st["outputs"].as_object().into_iter().flatten() {
                    let shown = match v {
                        Value::String(text) => text.clone(),
                        other => other.to_string(),
                    };
                    println!("    {k}: {shown}");
                }
            }
            Ok(exit::OK)
        }
        EnvCommand::Up(o) => env_operation(c, g, "up", o).await,
        EnvCommand::Preview(o) => env_operation(c, g, "preview", o).await,
        EnvCommand::Refresh(o) => env_operation(c, g, "refresh", o).await,
        EnvCommand::Destroy { target, yes, wait } => {
            let question = format!(
                "Destroy every resource of environment `{}/{}`?",
                target.team, target.name
            );
            if !crate::confirm(yes, &question)? {
                eprintln!("Destroy cancelled; nothing changed.");
                return Ok(exit::CANCELLED);
            }
            let op = c
                .post(
                    &format!("{}/operations", env_path(&target)),
                    &json!({"kind": "destroy"}),
                )
                .await?;
            let what = format!("Destroy of `{}/{}` requested", target.team, target.name);
            started(c, g, &op, wait, &what).await
        }
        EnvCommand::Logs { target, follow } => {
            let path = format!("{}/events", env_path(&target));
            if follow {
                let stop = tokio::signal::ctrl_c();
                let stream = c.follow(&path, |e| {
                    print_event(&e.data, g.json);
                    Ok(Flow::Continue)
                });
                tokio::select! {
                    r = stream => r?,
                    _ = stop => {}
                }
                Ok(exit::OK)
            } else {
                let events = all_events(c, &path).await?;
                if g.json {
                    print_json(&Value::Array(events))?;
                } else {
                    for e in &events {
                        println!("{}", event_line(e));
                    }
                }
                Ok(exit::OK)
            }
        }
    }
}

async fn env_operation(c: &Client, g: &Global, kind: &str, o: EnvOperation) -> anyhow::Result<u8> {
    let mut body = json!({"kind": kind});
    if !o.stages.is_empty() {
        body["stages"] = json!(o.stages.iter().map(name_of).collect::<Vec<_>>());
    }
    let op = c
        .post(&format!("{}/operations", env_path(&o.target)), &body)
        .await?;
    let what = format!(
        "{} of `{}/{}` requested",
        capitalized(kind),
        o.target.team,
        o.target.name
    );
    started(c, g, &op, o.wait, &what).await
}
