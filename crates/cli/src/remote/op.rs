//! `paddock op`: show, cancel, retry and follow operations; and what every command that
//! starts an operation does after the server's 202 (print it, or follow it to its end
//! with `--wait` and print its outcome).

use std::time::Instant;

use clap::Subcommand;
use serde_json::{Value, json};

use super::events::{all_events, event_line, print_event, show_progress, step_kind, verb};
use super::{Wait, list, print_json, s, seg};
use crate::client::{Client, Flow};
use crate::progress::Progress;
use crate::{Global, exit};

#[derive(Subcommand)]
pub enum OpCommand {
    /// Show an operation and its outcome.
    Show { id: String },
    /// Cancel a queued operation, or ask a running one to stop after the steps in flight.
    Cancel {
        id: String,
        #[command(flatten)]
        wait: Wait,
    },
    /// Run a failed or cancelled operation again (steps that succeeded are not repeated).
    Retry {
        id: String,
        #[command(flatten)]
        wait: Wait,
    },
    /// The operation's events; with --follow, until it ends (exit code: its outcome).
    Logs {
        id: String,
        #[arg(long, short)]
        follow: bool,
    },
}

/// After a 202: print the operation, or with `--wait` follow it to its end.
pub(super) async fn started(
    c: &Client,
    g: &Global,
    op: &Value,
    wait: Wait,
    what: &str,
) -> anyhow::Result<u8> {
    if op.is_null() {
        // 204: nothing to do on the server's side.
        if !g.json {
            println!("{what}.");
        }
        return Ok(exit::OK);
    }
    if wait.wait {
        if !g.json {
            eprintln!("{what}: operation {}.", s(&op["id"]));
        }
        return wait_for(c, g, s(&op["id"])).await;
    }
    if g.json {
        print_json(op)?;
    } else {
        println!("{what}: operation {} is {}.", s(&op["id"]), s(&op["state"]));
        println!("Follow it with: paddock op logs {} --follow", s(&op["id"]));
    }
    Ok(exit::OK)
}

/// The exit code of a finished operation's state.
pub(super) fn state_code(state: &str) -> u8 {
    match state {
        "succeeded" => exit::OK,
        "cancelled" => exit::CANCELLED,
        "waiting_for_approval" => exit::NEEDS_APPROVAL,
        _ => exit::FAILED,
    }
}

/// Follows an operation with a progress display, then prints its outcome.
pub(super) async fn wait_for(c: &Client, g: &Global, id: &str) -> anyhow::Result<u8> {
    let started = Instant::now();
    let progress = Progress::for_terminal(g.json);
    let path = format!("/operations/{}/events", seg(id));
    let follow = c.follow(&path, |e| {
        if e.event != "end" {
            show_progress(&progress, &e.data);
        }
        Ok(Flow::Continue)
    });
    tokio::select! {
        r = follow => { progress.finish(); r? }
        _ = tokio::signal::ctrl_c() => {
            progress.finish();
            eprintln!("\nStopped waiting; operation {id} goes on on the server. Follow it with: paddock op logs {id} --follow");
            return Ok(exit::CANCELLED);
        }
    }
    let op = c.get(&format!("/operations/{}", seg(id))).await?;
    if g.json {
        print_json(&op)?;
    } else {
        print_outcome(&op, Some(started.elapsed().as_secs_f64()));
    }
    Ok(state_code(s(&op["state"])))
}

/// `op_… (up dev,test of payments/checkout) running, requested by ada at …`
pub(super) fn op_line(op: &Value) -> String {
    let target = match op["environment"].as_str() {
        Some(env) => format!("{}/{env}", s(&op["team"])),
        None => format!("team {}", s(&op["team"])),
    };
    let stages = list(&op["stages"]);
    let stages = if stages == "-" {
        String::new()
    } else {
        format!(" {stages}")
    };
    format!(
        "{} ({}{stages} of {target}) {}, requested by {} at {}",
        s(&op["id"]),
        s(&op["kind"]),
        s(&op["state"]),
        s(&op["requestedBy"]),
        s(&op["createdAt"])
    )
}

/// The outcome of an operation: per stack what was done, and for a failure the resource,
/// the cloud's code and message, and what to do.
fn print_outcome(op: &Value, elapsed: Option<f64>) {
    let state = s(&op["state"]);
    let took = elapsed.map(|t| format!(" in {t:.1}s")).unwrap_or_default();
    println!("Operation {}{took}.", op_line(op));
    let outcome = &op["outcome"];
    for st in outcome["stacks"].as_array().into_iter().flatten() {
        let mut parts: Vec<String> = st["done"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, n)| Some(format!("{n} {}", verb(step_kind(&json!(k))?, true))))
            .collect();
        if let Some(drift) = st["drift"].as_array() {
            let changed = drift
                .iter()
                .filter(|d| d["change"].as_str() != Some("unchanged"))
                .count();
            parts.push(format!("{changed} of {} drifted", drift.len()));
        }
        let failures = st["failures"].as_array().map_or(0, Vec::len);
        if failures > 0 {
            parts.push(format!("{failures} failed"));
        }
        let skipped = st["skipped"].as_array().map_or(0, Vec::len);
        if skipped > 0 {
            parts.push(format!("{skipped} skipped"));
        }
        if parts.is_empty() {
            parts.push("no changes".into());
        }
        println!("  {}: {}", s(&st["stack"]), parts.join(", "));
    }
    for p in outcome["plans"].as_array().into_iter().flatten() {
        println!("  {}: {}", s(&p["stack"]), s(&p["summary"]));
    }
    if let Some(f) = outcome.get("failure").filter(|f| f.is_object()) {
        let code = f["code"]
            .as_str()
            .map(|c| format!("[{c}] "))
            .unwrap_or_default();
        println!(
            "Failed: {} ({}) in stack {}: {code}{}",
            s(&f["resource"]),
            s(&f["type"]),
            s(&f["stack"]),
            s(&f["message"])
        );
        if !s(&f["whatToDo"]).is_empty() {
            println!("  what to do: {}", s(&f["whatToDo"]));
        }
    }
    if let Some(error) = outcome["error"].as_str() {
        println!("Failed: {error}");
    }
    if let Some(w) = outcome.get("waitingFor").filter(|w| w.is_object()) {
        println!("Waiting for approval of stack {}:", s(&w["stack"]));
        for r in w["reasons"].as_array().into_iter().flatten() {
            println!("  {}: {}", s(&r["rule"]), s(&r["message"]));
        }
        println!(
            "Another admin of the team approves it with: paddock approval list, then paddock approval approve ID"
        );
    }
    for r in outcome["failure"]["rules"].as_array().into_iter().flatten() {
        let field = r["field"]
            .as_str()
            .map(|f| format!(" ({f})"))
            .unwrap_or_default();
        println!("  rule {}{field}: {}", s(&r["rule"]), s(&r["message"]));
    }
    if matches!(state, "failed" | "cancelled") {
        println!("Retry it with: paddock op retry {}", s(&op["id"]));
    }
}

pub(super) async fn op(c: &Client, cmd: OpCommand, g: &Global) -> anyhow::Result<u8> {
    match cmd {
        OpCommand::Show { id } => {
            let op = c.get(&format!("/operations/{}", seg(&id))).await?;
            if g.json {
                print_json(&op)?;
            } else {
                print_outcome(&op, None);
            }
            Ok(exit::OK)
        }
        OpCommand::Cancel { id, wait } => {
            let op = c
                .post_empty(&format!("/operations/{}/cancel", seg(&id)))
                .await?;
            if wait.wait {
                return wait_for(c, g, &id).await;
            }
            if g.json {
                print_json(&op)?;
            } else if s(&op["state"]) == "cancelled" {
                println!("Operation {id} cancelled.");
            } else {
                println!(
                    "Operation {id} asked to stop: the steps in flight finish, no new step starts."
                );
            }
            Ok(exit::OK)
        }
        OpCommand::Retry { id, wait } => {
            let op = c
                .post_empty(&format!("/operations/{}/retry", seg(&id)))
                .await?;
            started(c, g, &op, wait, &format!("Retrying {id}")).await
        }
        OpCommand::Logs { id, follow } => {
            let path = format!("/operations/{}/events", seg(&id));
            if !follow {
                let events = all_events(c, &path).await?;
                if g.json {
                    print_json(&Value::Array(events))?;
                } else {
                    for e in &events {
                        println!("{}", event_line(e));
                    }
                }
                return Ok(exit::OK);
            }
            let mut end_state = String::new();
            c.follow(&path, |e| {
                if e.event == "end" {
                    let d: Value = serde_json::from_str(&e.data).unwrap_or_default();
                    end_state = s(&d["state"]).to_owned();
                    return Ok(Flow::Stop);
                }
                print_event(&e.data, g.json);
                Ok(Flow::Continue)
            })
            .await?;
            if !g.json {
                eprintln!("Operation {id} {end_state}.");
            }
            Ok(state_code(&end_state))
        }
    }
}
