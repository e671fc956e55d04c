//! `paddock approval`: the inbox of operations waiting for a second person, the exact plan
//! each one would run, and the decision (`approve`, `reject --reason`).

use clap::Subcommand;
use serde_json::{Value, json};

use super::{print_json, s, seg};
use crate::client::Client;
use crate::{Global, exit};

#[derive(Subcommand)]
pub enum ApprovalCommand {
    /// Approvals of your teams, newest first (default: those pending).
    List {
        /// pending, approved, rejected, superseded or all.
        #[arg(long, default_value = "pending")]
        state: String,
    },
    /// One approval: why policy asks for it, and the exact plan it is bound to.
    Show { id: String },
    /// Approve the plan: the operation runs, if its plan is still this one.
    Approve {
        id: String,
        /// Words for the record.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Reject the plan: the operation ends; the requester reads the reason.
    Reject {
        id: String,
        #[arg(long)]
        reason: String,
    },
}

/// `apr_… payments/checkout stack payments-checkout-prod pending, requested by ada at …`
fn approval_line(a: &Value) -> String {
    let decided = match a["decidedBy"].as_str() {
        Some(by) => format!(" by {by}"),
        None => String::new(),
    };
    format!(
        "{} {}/{} stack {} {}{decided}, requested by {} at {} (operation {})",
        s(&a["id"]),
        s(&a["team"]),
        a["environment"].as_str().unwrap_or("-"),
        s(&a["stack"]),
        s(&a["state"]),
        s(&a["requestedBy"]),
        s(&a["requestedAt"]),
        s(&a["operation"]),
    )
}

/// The plan as Terraform users read one, per system: `+ name  type` and each property's
/// change.
pub(super) fn print_plan(plan: &Value) {
    for system in plan["systems"].as_array().into_iter().flatten() {
        let changes = system["changes"].as_array().map_or(&[][..], Vec::as_slice);
        if changes.is_empty() {
            continue;
        }
        println!("  {}", s(&system["system"]));
        for change in changes {
            let symbol = match s(&change["kind"]) {
                "create" => "+",
                "update" => "~",
                "replace" => "±",
                "delete" => "-",
                _ => "?",
            };
            println!(
                "    {symbol} {}  {}",
                s(&change["name"]),
                s(&change["type"])
            );
            for d in change["diffs"].as_array().into_iter().flatten() {
                let show = |v: &Value| match v {
                    Value::Null => "(none)".to_owned(),
                    Value::String(t) => format!("{t:?}"),
                    other => other.to_string(),
                };
                println!(
                    "        {}: {} → {}",
                    s(&d["property"]),
                    show(&d["old"]),
                    show(&d["new"])
                );
            }
        }
    }
    let summary: Vec<String> = ["create", "update", "replace", "delete"]
        .into_iter()
        .filter_map(|k| {
            let n = plan["counts"][k].as_u64().unwrap_or(0);
            (n > 0).then(|| format!("{n} to {k}"))
        })
        .collect();
    println!(
        "  Plan {} of stack {}: {}",
        s(&plan["hash"]),
        s(&plan["stack"]),
        if summary.is_empty() {
            "no changes".to_owned()
        } else {
            summary.join(", ")
        }
    );
}

fn print_approval(a: &Value) {
    println!("Approval {}", approval_line(a));
    for r in a["reasons"].as_array().into_iter().flatten() {
        let field = r["field"]
            .as_str()
            .map(|f| format!(" ({f})"))
            .unwrap_or_default();
        println!("  needed by {}{field}: {}", s(&r["rule"]), s(&r["message"]));
    }
    if let Some(c) = a["comment"].as_str() {
        println!("  comment: {c}");
    }
    print_plan(&a["plan"]);
}

pub(super) async fn approval(c: &Client, cmd: ApprovalCommand, g: &Global) -> anyhow::Result<u8> {
    match cmd {
        ApprovalCommand::List { state } => {
            let list = c
                .get_query("/approvals", &[("state", state.clone())])
                .await?;
            if g.json {
                print_json(&list)?;
            } else if list.as_array().is_none_or(Vec::is_empty) {
                println!("No {state} approvals.");
            } else {
                for a in list.as_array().into_iter().flatten() {
                    println!("{}", approval_line(a));
                }
            }
            Ok(exit::OK)
        }
        ApprovalCommand::Show { id } => {
            let a = c.get(&format!("/approvals/{}", seg(&id))).await?;
            if g.json {
                print_json(&a)?;
            } else {
                print_approval(&a);
            }
            Ok(exit::OK)
        }
        ApprovalCommand::Approve { id, comment } => {
            let a = c
                .post(
                    &format!("/approvals/{}/approve", seg(&id)),
                    &json!({"comment": comment}),
                )
                .await?;
            if g.json {
                print_json(&a)?;
            } else {
                println!("Approved: {}", approval_line(&a));
                println!(
                    "Follow the operation with: paddock op logs {} --follow",
                    s(&a["operation"])
                );
            }
            Ok(exit::OK)
        }
        ApprovalCommand::Reject { id, reason } => {
            let a = c
                .post(
                    &format!("/approvals/{}/reject", seg(&id)),
                    &json!({"reason": reason}),
                )
                .await?;
            if g.json {
                print_json(&a)?;
            } else {
                println!("Rejected: {}", approval_line(&a));
            }
            Ok(exit::OK)
        }
    }
}
