//! `paddock audit`: list and export the audit log, and verify its hash chain (through
//! the server, or `--offline` from the database itself).

use clap::{Args, Subcommand};
use serde_json::Value;

use super::{print_json, s};
use crate::client::Client;
use crate::{Global, exit};

/// Filters of the audit log.
#[derive(Args)]
pub struct AuditFilter {
    #[arg(long)]
    team: Option<String>,
    #[arg(long)]
    environment: Option<String>,
    #[arg(long)]
    actor: Option<String>,
    /// Records at or after this time (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    since: Option<String>,
    /// Records before this time (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    until: Option<String>,
    /// At most this many records.
    #[arg(long)]
    limit: Option<u32>,
}

impl AuditFilter {
    fn query(&self) -> Vec<(&'static str, String)> {
        let s = |v: &Option<String>| v.clone().unwrap_or_default();
        vec![
            ("team", s(&self.team)),
            ("environment", s(&self.environment)),
            ("actor", s(&self.actor)),
            ("since", s(&self.since)),
            ("until", s(&self.until)),
            (
                "limit",
                self.limit.map(|n| n.to_string()).unwrap_or_default(),
            ),
        ]
    }
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// List audit records, oldest first.
    Ls(AuditFilter),
    /// Write audit records as JSON Lines to stdout, as the server sends them (every
    /// matching record unless --limit).
    Export(AuditFilter),
    /// Check the log's hash chain; exit 1 and list every problem if it is broken.
    Verify(VerifyArgs),
}

/// `audit verify`: asks the server (`GET /api/v1/audit/verify`), or with `--offline`
/// reads the database itself (`--database-url` / `PADDOCK_DATABASE_URL`), trusting no
/// server.
#[derive(Args, Default)]
pub struct VerifyArgs {
    /// Recompute the chain from the database directly.
    #[arg(long)]
    pub(super) offline: bool,
}

pub(super) async fn audit(c: &Client, cmd: AuditCommand, g: &Global) -> anyhow::Result<u8> {
    match cmd {
        AuditCommand::Ls(filter) => {
            let records = c.get_query("/audit", &filter.query()).await?;
            if g.json {
                print_json(&records)?;
            } else {
                println!(
                    "{:>6}  {:<24}  {:<16} {:<24} {:<8} TARGET",
                    "SEQ", "AT", "ACTOR", "ACTION", "OUTCOME"
                );
                for r in records.as_array().into_iter().flatten() {
                    println!(
                        "{:>6}  {:<24}  {:<16} {:<24} {:<8} {}",
                        r["seq"],
                        s(&r["at"]),
                        s(&r["actor"]),
                        s(&r["action"]),
                        s(&r["outcome"]),
                        s(&r["target"])
                    );
                }
            }
            Ok(exit::OK)
        }
        AuditCommand::Export(filter) => {
            let mut out = std::io::stdout().lock();
            if filter.limit.is_some() {
                c.download("/audit/export", &filter.query(), &mut out)
                    .await?;
                return Ok(exit::OK);
            }
            // Every matching record: page by sequence number.
            const PAGE: usize = 10_000;
            let mut after: Option<i64> = None;
            loop {
                let mut q = filter.query();
                q.push(("limit", PAGE.to_string()));
                q.push(("after", after.map(|a| a.to_string()).unwrap_or_default()));
                let got = c.download("/audit/export", &q, &mut out).await?;
                if got.lines < PAGE {
                    return Ok(exit::OK);
                }
                let last: Value = serde_json::from_slice(&got.last_line)?;
                after = Some(last["seq"].as_i64().ok_or_else(|| {
                    anyhow::anyhow!("an exported record has no `seq`; cannot page on")
                })?);
            }
        }
        AuditCommand::Verify(VerifyArgs { .. }) => {
            let v = c.get("/audit/verify").await?;
            let problems: Vec<String> = v["problems"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| s(p).to_owned())
                .collect();
            report_verification(&v, v["records"].as_i64().unwrap_or(0), &problems, g)
        }
    }
}

/// `audit verify --offline`: the chain recomputed from the database.
pub(super) async fn verify_offline(g: &Global) -> anyhow::Result<u8> {
    let url = g.database_url.as_deref().ok_or_else(|| {
        crate::UsageError(
            "audit verify --offline reads the database: give --database-url (or \
             PADDOCK_DATABASE_URL)"
                .into(),
        )
    })?;
    let db = paddock_store::db::Db::connect(url).await?;
    let v = db.verify_audit().await?;
    let json =
        serde_json::json!({"intact": v.intact(), "records": v.records, "problems": v.problems});
    report_verification(&json, v.records, &v.problems, g)
}

fn report_verification(
    v: &Value,
    records: i64,
    problems: &[String],
    g: &Global,
) -> anyhow::Result<u8> {
    let intact = problems.is_empty();
    if g.json {
        print_json(v)?;
    } else if intact {
        println!("The audit log is intact: {records} record(s) chained.");
    } else {
        println!("The audit log's chain is BROKEN ({records} record(s)):");
        for p in problems {
            println!("  {p}");
        }
    }
    Ok(if intact { exit::OK } else { exit::FAILED })
}
