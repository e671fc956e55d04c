//! `paddock team`: list, create and show teams, and change their members.

use clap::{Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::json;

use super::op::started;
use super::{Wait, name_of, print_json, s, seg};
use crate::client::Client;
use crate::{Global, exit};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RoleArg {
    Admin,
    Contributor,
    Reader,
}

#[derive(Subcommand)]
pub enum TeamCommand {
    /// List the teams.
    Ls,
    /// Create a team (you become its admin); its GitHub team and Entra group follow.
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        wait: Wait,
    },
    /// Show a team and its members.
    Show { name: String },
    /// Add a person to a team, or change their role.
    AddMember {
        team: String,
        login: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        #[command(flatten)]
        wait: Wait,
    },
    /// Remove a person from a team.
    RemoveMember {
        team: String,
        login: String,
        #[command(flatten)]
        wait: Wait,
    },
}

pub(super) async fn team(c: &Client, cmd: TeamCommand, g: &Global) -> anyhow::Result<u8> {
    match cmd {
        TeamCommand::Ls => {
            let teams = c.get("/teams").await?;
            if g.json {
                print_json(&teams)?;
            } else {
                println!("{:<32} {:>7}  DESCRIPTION", "NAME", "MEMBERS");
                for t in teams.as_array().into_iter().flatten() {
                    let members = t["members"].as_array().map_or(0, Vec::len);
                    println!(
                        "{:<32} {members:>7}  {}",
                        s(&t["name"]),
                        s(&t["description"])
                    );
                }
            }
            Ok(exit::OK)
        }
        TeamCommand::Create {
            name,
            description,
            wait,
        } => {
            let op = c
                .post("/teams", &json!({"name": name, "description": description}))
                .await?;
            started(c, g, &op, wait, &format!("Team `{name}` created")).await
        }
        TeamCommand::Show { name } => {
            let t = c.get(&format!("/teams/{}", seg(&name))).await?;
            if g.json {
                print_json(&t)?;
            } else {
                println!("Team {}", s(&t["name"]));
                if !s(&t["description"]).is_empty() {
                    println!("  {}", s(&t["description"]));
                }
                println!("  created {} by {}", s(&t["createdAt"]), s(&t["createdBy"]));
                println!("{:<24} {:<12} NAME", "LOGIN", "ROLE");
                for m in t["members"].as_array().into_iter().flatten() {
                    println!(
                        "{:<24} {:<12} {}",
                        s(&m["login"]),
                        s(&m["role"]),
                        s(&m["name"])
                    );
                }
            }
            Ok(exit::OK)
        }
        TeamCommand::AddMember {
            team,
            login,
            role,
            wait,
        } => {
            let op = c
                .send(
                    Method::PUT,
                    &format!("/teams/{}/members/{}", seg(&team), seg(&login)),
                    &[],
                    Some(&json!({"role": name_of(&role)})),
                )
                .await?;
            let what = format!("`{login}` is now {} of team `{team}`", name_of(&role));
            started(c, g, &op, wait, &what).await
        }
        TeamCommand::RemoveMember { team, login, wait } => {
            let op = c
                .send(
                    Method::DELETE,
                    &format!("/teams/{}/members/{}", seg(&team), seg(&login)),
                    &[],
                    None,
                )
                .await?;
            let what = format!("`{login}` removed from team `{team}`");
            started(c, g, &op, wait, &what).await
        }
    }
}
