//! `paddock env`: request environments and change their parameters (previewed, then
//! confirmed), list and show them, run operations on them (up, preview, refresh,
//! destroy) and read their events.

use std::io::IsTerminal;

use clap::{Args, Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::{Value, json};

use super::events::{all_events, event_line, print_event};
use super::op::started;
use super::params::ParamArgs;
use super::{Wait, capitalized, list, name_of, preview, print_json, s, seg};
use crate::client::{Client, Flow};
use crate::{Global, UsageError, exit};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum StageArg {
    Dev,
    Test,
    Prod,
}

#[derive(Args)]
pub struct EnvTarget {
    team: String,
    name: String,
}

#[derive(Subcommand)]
pub enum EnvCommand {
    /// Request an environment: a repository and, per stage, cloud resources. Shows what
    /// it would make, then asks before requesting it.
    Create {
        #[command(flatten)]
        target: EnvTarget,
        #[command(flatten)]
        params: ParamArgs,
        #[command(flatten)]
        apply: Apply,
    },
    /// Change an environment's parameters (those given; the others stay), e.g.
    /// `--param stages=dev,test` to add or remove stages (a removed stage is destroyed).
    /// Shows what would change, then asks before changing it.
    Update {
        #[command(flatten)]
        target: EnvTarget,
        #[command(flatten)]
        params: ParamArgs,
        #[command(flatten)]
        apply: Apply,
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
    /// Bring the environment to a newer blueprint version (team admins): shows the plan,
    /// then asks.
    Upgrade {
        #[command(flatten)]
        target: EnvTarget,
        /// The version (default: the newest published).
        #[arg(long)]
        to: Option<String>,
        /// Don't ask for confirmation (required when not on a terminal).
        #[arg(long, short)]
        yes: bool,
        #[command(flatten)]
        wait: Wait,
    },
    /// Pin the environment to a blueprint version (fleet upgrades to others skip it), or
    /// unpin it with --unpin.
    Pin {
        #[command(flatten)]
        target: EnvTarget,
        /// The version to pin to.
        #[arg(required_unless_present = "unpin", conflicts_with = "unpin")]
        version: Option<String>,
        #[arg(long)]
        unpin: bool,
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

/// Preview, confirm, apply: how a create or an update goes ahead.
#[derive(Args)]
pub struct Apply {
    /// Only show what would change (a dry run; nothing is written but its audit record).
    #[arg(long, visible_alias = "dry-run")]
    preview: bool,
    /// Don't ask for confirmation (required when not on a terminal).
    #[arg(long, short)]
    yes: bool,
    #[command(flatten)]
    wait: Wait,
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
            params,
            apply,
        } => {
            apply.allowed()?;
            let mut body = params.body(c).await?;
            body.insert("name".into(), json!(target.name));
            let change = Change {
                method: Method::POST,
                path: format!("/teams/{}/environments", seg(&target.team)),
                body: Value::Object(body),
                question: format!(
                    "Create environment `{}/{}` as shown?",
                    target.team, target.name
                ),
                what: format!("Environment `{}/{}` requested", target.team, target.name),
            };
            change.go(c, g, apply).await
        }
        EnvCommand::Update {
            target,
            params,
            apply,
        } => {
            if params.is_empty() {
                return Err(UsageError(
                    "nothing to change: give --param KEY=VALUE (or --params-file, --stages, \
                     --region, --quota, --admin, --contributor, --blueprint-version)"
                        .into(),
                )
                .into());
            }
            apply.allowed()?;
            let change = Change {
                method: Method::PATCH,
                path: env_path(&target),
                body: Value::Object(params.body(c).await?),
                question: format!(
                    "Change environment `{}/{}` as shown?",
                    target.team, target.name
                ),
                what: format!("Change of `{}/{}` requested", target.team, target.name),
            };
            change.go(c, g, apply).await
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
        EnvCommand::Upgrade {
            target,
            to,
            yes,
            wait,
        } => {
            let path = format!("{}/upgrade", env_path(&target));
            let query: Vec<(&str, String)> = to.iter().map(|v| ("version", v.clone())).collect();
            let plan = c.get_query(&path, &query).await?;
            if !g.json {
                print!("{}", preview::render(&plan));
            }
            let question = format!(
                "Upgrade `{}/{}` to environment@{} as shown?",
                target.team,
                target.name,
                s(&plan["blueprintVersion"])
            );
            if !crate::confirm(yes, &question)? {
                eprintln!("Upgrade cancelled; nothing changed.");
                return Ok(exit::CANCELLED);
            }
            let op = c
                .post(&path, &json!({"version": plan["blueprintVersion"]}))
                .await?;
            let what = format!("Upgrade of `{}/{}` requested", target.team, target.name);
            started(c, g, &op, wait, &what).await
        }
        EnvCommand::Pin {
            target,
            version,
            unpin: _,
        } => {
            let e = c
                .send(
                    Method::PUT,
                    &format!("{}/pin", env_path(&target)),
                    &[],
                    Some(&json!({"version": version})),
                )
                .await?;
            if g.json {
                print_json(&e)?;
            } else {
                match e["pinnedVersion"].as_str() {
                    Some(v) => println!(
                        "`{}/{}` is pinned to environment@{v}: fleet upgrades to other versions skip it.",
                        target.team, target.name
                    ),
                    None => println!("`{}/{}` is unpinned.", target.team, target.name),
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

impl Apply {
    /// Off a terminal, going ahead needs `--yes` (or only `--preview`): refused before
    /// anything is asked of the server.
    fn allowed(&self) -> anyhow::Result<()> {
        if self.preview || self.yes || std::io::stdin().is_terminal() {
            return Ok(());
        }
        Err(UsageError(
            "not on a terminal: pass --yes to apply without confirmation, or --preview to \
             only see what would change"
                .into(),
        )
        .into())
    }
}

/// A create or an update of an environment, as its request.
struct Change {
    method: Method,
    /// Relative to `/api/v1`.
    path: String,
    body: Value,
    /// Asked before going ahead.
    question: String,
    /// Said once the server has accepted it.
    what: String,
}

impl Change {
    /// Asks the server for a dry run and shows it; then, unless only a preview was asked
    /// for, confirms and sends the request itself.
    async fn go(self, c: &Client, g: &Global, apply: Apply) -> anyhow::Result<u8> {
        let dry_run = [("dryRun", "true".to_owned())];
        let shown = c
            .send(self.method.clone(), &self.path, &dry_run, Some(&self.body))
            .await?;
        if apply.preview {
            if g.json {
                print_json(&shown)?;
            } else {
                print!("{}", preview::render(&shown));
                println!("Preview only: nothing was changed.");
            }
            return Ok(exit::OK);
        }
        let changes = preview::has_changes(&shown);
        if !g.json {
            print!("{}", preview::render(&shown));
        } else if changes && !apply.yes {
            // Stdout is for the JSON; the question still needs its answer's reason.
            eprint!("{}", preview::render(&shown));
        }
        if !changes {
            if !g.json {
                println!("No changes.");
            }
            // Still sent: it records the parameters, and is cheap when nothing changes.
        } else if !crate::confirm(apply.yes, &self.question)? {
            eprintln!("Cancelled; nothing changed.");
            return Ok(exit::CANCELLED);
        }
        let op = c
            .send(self.method, &self.path, &[], Some(&self.body))
            .await?;
        started(c, g, &op, apply.wait, &self.what).await
    }
}
