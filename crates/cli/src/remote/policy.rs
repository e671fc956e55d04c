//! `paddock policy list|show|publish`: the policy pack versions a server enforces (the
//! newest is active). Publishing needs a platform admin; the server refuses a pack that
//! does not compile (naming the file and line) or whose own tests fail.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{Value, json};

use super::{Remote, print_json, s};
use crate::client::{self, Client};
use crate::{Global, UsageError, exit};

/// The policy commands that talk to a server.
#[derive(Subcommand)]
pub enum PolicyRemote {
    /// List the policy pack versions on the server (the newest is enforced).
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Show a version's files (default: the active version).
    Show {
        #[command(flatten)]
        remote: Remote,
        version: Option<i64>,
        /// Print this file's content only.
        #[arg(long)]
        file: Option<String>,
    },
    /// Publish a directory's pack (`*.rego` and `data.json`) as the next version.
    Publish {
        #[command(flatten)]
        remote: Remote,
        dir: PathBuf,
        /// What changes, for the people who read the history.
        #[arg(long, short, default_value = "")]
        description: String,
    },
}

pub(crate) async fn policy(cmd: PolicyRemote, g: &Global) -> anyhow::Result<u8> {
    let remote = match &cmd {
        PolicyRemote::List { remote }
        | PolicyRemote::Show { remote, .. }
        | PolicyRemote::Publish { remote, .. } => remote,
    };
    let c = client::connect(remote.server.as_deref())?;
    match cmd {
        PolicyRemote::List { .. } => {
            let versions = c.get("/policy-packs").await?;
            if g.json {
                print_json(&versions)?;
            } else {
                println!(
                    "{:>7}  {:<8} {:<24} {:<16} DESCRIPTION",
                    "VERSION", "ACTIVE", "PUBLISHED", "BY"
                );
                for v in versions.as_array().into_iter().flatten() {
                    println!(
                        "{:>7}  {:<8} {:<24} {:<16} {}",
                        v["version"].as_i64().unwrap_or_default(),
                        if v["active"] == true { "active" } else { "" },
                        s(&v["publishedAt"]),
                        s(&v["publishedBy"]),
                        s(&v["description"])
                    );
                }
            }
            Ok(exit::OK)
        }
        PolicyRemote::Show { version, file, .. } => {
            let version = match version {
                Some(v) => v,
                None => active_version(&c).await?,
            };
            let shown = c.get(&format!("/policy-packs/{version}")).await?;
            match file {
                Some(name) => {
                    let content = shown["files"][&name].as_str().ok_or_else(|| {
                        UsageError(format!("version {version} has no file `{name}`"))
                    })?;
                    print!("{content}");
                }
                None if g.json => print_json(&shown)?,
                None => {
                    println!(
                        "Version {version}{} ({}), published {} by {}: {}",
                        if shown["active"] == true {
                            ", active"
                        } else {
                            ""
                        },
                        s(&shown["digest"]),
                        s(&shown["publishedAt"]),
                        s(&shown["publishedBy"]),
                        s(&shown["description"])
                    );
                    for (name, content) in shown["files"].as_object().into_iter().flatten() {
                        println!("  {name:<32} {} lines", s(content).lines().count());
                    }
                }
            }
            Ok(exit::OK)
        }
        PolicyRemote::Publish {
            dir, description, ..
        } => {
            // Read as the server will check it: compiled here first, errors named locally.
            let pack = paddock_policy::Pack::from_dir(&dir)?;
            let files: &BTreeMap<String, String> = pack.files();
            let before = active_version(&c).await.unwrap_or(0);
            let published = c
                .post(
                    "/policy-packs",
                    &json!({"description": description, "files": files}),
                )
                .await?;
            if g.json {
                print_json(&published)?;
            } else if published["version"].as_i64() > Some(before) {
                println!(
                    "Published version {} ({}); it is enforced from now on.",
                    published["version"],
                    s(&published["digest"])
                );
            } else {
                println!(
                    "Version {} already has these files; nothing published.",
                    published["version"]
                );
            }
            Ok(exit::OK)
        }
    }
}

async fn active_version(c: &Client) -> anyhow::Result<i64> {
    let versions: Value = c.get("/policy-packs").await?;
    versions
        .as_array()
        .and_then(|all| all.iter().find(|v| v["active"] == true))
        .and_then(|v| v["version"].as_i64())
        .ok_or_else(|| anyhow::anyhow!("the server has no policy pack"))
}
