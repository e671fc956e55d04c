//! The client commands: `login`, `logout`, `team`, `env`, `op`, `audit`, `blueprint`,
//! `fleet`, talking to a
//! Paddock server's REST API through [`crate::client`], modelled on `gh`.
//!
//! Output: `--json` prints the API's JSON body (for `env show`, the environment with its
//! `outputs` added); otherwise a table or a summary. Commands that start an operation
//! print it and return; with `--wait` they follow its events (progress on stderr) and
//! exit with its outcome. Exit codes: see [`crate::exit`].
//!
//! Client commands ignore the local flags (`--state-dir`, `--database-url`, `--key-file`).
//!
//! This module holds the command line's shape and its dispatch, and the small output
//! helpers every command shares; each concept has its own module: [`login`] (sign in and
//! out), [`team`], [`env`] (environments), [`op`] (operations, following one to its
//! end), [`approval`] (the inbox, approve, reject), [`events`] (events as progress and as
//! log lines), [`audit`], [`fleet`] (blueprint versions and rollouts); [`params`] types
//! an environment request's `--param` values by the blueprint's schema, and [`preview`]
//! shows a dry run's answer.

mod approval;
mod audit;
mod env;
mod events;
mod fleet;
mod login;
mod op;
mod params;
mod preview;
mod team;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;

use crate::Global;
use crate::client::{self, ApiError};

use self::approval::ApprovalCommand;
use self::audit::{AuditCommand, VerifyArgs};
use self::env::EnvCommand;
use self::fleet::{BlueprintCommand, FleetCommand};
use self::login::LoginArgs;
use self::op::{OpCommand, op_line};
use self::team::TeamCommand;

/// The server a command talks to.
#[derive(Args, Clone, Debug)]
pub struct Remote {
    /// The Paddock server (default: the one `paddock login` stored last).
    #[arg(long, global = true, env = "PADDOCK_SERVER", value_name = "URL")]
    pub server: Option<String>,
}

/// The commands that talk to a Paddock server (the token comes from `paddock login` or
/// `PADDOCK_TOKEN`).
#[derive(Subcommand)]
pub enum ClientCommand {
    /// Sign in to a Paddock server with an API token, checked and stored for later commands.
    Login(LoginArgs),
    /// Forget the stored token of a server (the token stays valid until revoked).
    Logout {
        #[command(flatten)]
        remote: Remote,
    },
    /// Teams and their members (on the server).
    Team {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        cmd: TeamCommand,
    },
    /// Environments of a team (on the server).
    Env {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        cmd: EnvCommand,
    },
    /// Operations: show, follow, cancel, retry.
    Op {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        cmd: OpCommand,
    },
    /// Approvals: operations waiting for a second person; approve or reject them.
    Approval {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        cmd: ApprovalCommand,
    },
    /// The audit log: list, export, verify its hash chain.
    Audit {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        cmd: AuditCommand,
    },
    /// Blueprint versions: publish a new version of the environment blueprint.
    Blueprint {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        cmd: BlueprintCommand,
    },
    /// Fleet upgrades: a blueprint's environments brought to a version in waves.
    Fleet {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        cmd: FleetCommand,
    },
}

#[derive(Args, Clone, Copy)]
pub struct Wait {
    /// Follow the operation until it ends, then exit with its outcome.
    #[arg(long)]
    wait: bool,
}

fn name_of<T: ValueEnum>(v: &T) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_owned())
        .unwrap_or_default()
}

/// Runs a client command. A 409 naming an operation in the way also shows that operation.
pub async fn run(cmd: ClientCommand, g: &Global) -> anyhow::Result<u8> {
    let server = match &cmd {
        ClientCommand::Login(a) => a.remote.server.clone(),
        ClientCommand::Logout { remote }
        | ClientCommand::Team { remote, .. }
        | ClientCommand::Env { remote, .. }
        | ClientCommand::Op { remote, .. }
        | ClientCommand::Approval { remote, .. }
        | ClientCommand::Audit { remote, .. }
        | ClientCommand::Blueprint { remote, .. }
        | ClientCommand::Fleet { remote, .. } => remote.server.clone(),
    };
    let result = match cmd {
        ClientCommand::Login(args) => login::login(args, g).await,
        ClientCommand::Logout { remote } => login::logout(&remote, g),
        ClientCommand::Team { remote, cmd } => {
            let c = client::connect(remote.server.as_deref())?;
            team::team(&c, cmd, g).await
        }
        ClientCommand::Env { remote, cmd } => {
            let c = client::connect(remote.server.as_deref())?;
            env::env(&c, cmd, g).await
        }
        ClientCommand::Op { remote, cmd } => {
            let c = client::connect(remote.server.as_deref())?;
            op::op(&c, cmd, g).await
        }
        ClientCommand::Approval { remote, cmd } => {
            let c = client::connect(remote.server.as_deref())?;
            approval::approval(&c, cmd, g).await
        }
        ClientCommand::Audit {
            cmd: AuditCommand::Verify(VerifyArgs { offline: true }),
            ..
        } => audit::verify_offline(g).await,
        ClientCommand::Audit { remote, cmd } => {
            let c = client::connect(remote.server.as_deref())?;
            audit::audit(&c, cmd, g).await
        }
        ClientCommand::Blueprint { remote, cmd } => {
            let c = client::connect(remote.server.as_deref())?;
            fleet::blueprint(&c, cmd, g).await
        }
        ClientCommand::Fleet { remote, cmd } => {
            let c = client::connect(remote.server.as_deref())?;
            fleet::fleet(&c, cmd, g).await
        }
    };
    if let Err(e) = &result
        && let Some(api) = e.downcast_ref::<ApiError>()
    {
        if g.json && !api.body.is_empty() {
            println!("{}", api.body.trim());
        }
        if let Some(id) = &api.problem.operation
            && api.status.as_u16() == 409
            && !g.json
            && let Ok(c) = client::connect(server.as_deref())
            && let Ok(op) = c.get(&format!("/operations/{id}")).await
        {
            eprintln!("In the way: {}", op_line(&op));
            eprintln!(
                "  follow it: paddock op logs {id} --follow; cancel it: paddock op cancel {id}"
            );
        }
    }
    result
}

fn print_json(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn list(v: &Value) -> String {
    let items: Vec<&str> = v
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if items.is_empty() {
        "-".into()
    } else {
        items.join(",")
    }
}

/// A path segment, percent-encoded.
fn seg(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(seg("payments"), "payments");
        assert_eq!(seg("a/b c"), "a%2Fb%20c");
    }
}
