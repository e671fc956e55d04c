//! `paddock login` and `paddock logout`: check an API token against a server and store
//! it per server (or forget it).

use std::io::{IsTerminal, Read};

use clap::Args;
use serde_json::json;

use super::{Remote, print_json, s};
use crate::client::{self, Client, Credentials, Stored};
use crate::{Global, UsageError, exit};

#[derive(Args)]
pub struct LoginArgs {
    #[command(flatten)]
    pub(super) remote: Remote,
    /// The API token (visible to other local users in the process list: prefer
    /// --with-token or the prompt).
    #[arg(long, conflicts_with = "with_token")]
    token: Option<String>,
    /// Read the token from stdin.
    #[arg(long)]
    with_token: bool,
}

pub(super) async fn login(args: LoginArgs, g: &Global) -> anyhow::Result<u8> {
    let mut creds = Credentials::load()?;
    let server = match args.remote.server.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => client::normalize_server(s)?,
        None => creds.current.clone().ok_or_else(|| {
            UsageError("which server? pass --server URL (or set PADDOCK_SERVER)".into())
        })?,
    };
    let token = if let Some(t) = args.token {
        t
    } else if args.with_token {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        text
    } else if let Some(t) = std::env::var("PADDOCK_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
    {
        t
    } else if std::io::stdin().is_terminal() {
        read_secret(&format!("API token for {server}: "))?
    } else {
        return Err(UsageError(
            "not on a terminal: pass the token with --with-token (on stdin) or --token".into(),
        )
        .into());
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        return Err(UsageError("the token is empty".into()).into());
    }
    if server.starts_with("http://") && !is_loopback(&server) {
        eprintln!("warning: {server} is plain HTTP: the token travels in clear");
    }
    let c = Client::new(&server, &token)?;
    let me = c.get("/me").await?;
    let login = s(&me["user"]["login"]).to_owned();
    creds.servers.insert(
        server.clone(),
        Stored {
            token,
            login: Some(login.clone()),
        },
    );
    creds.current = Some(server.clone());
    let path = creds.save()?;
    if g.json {
        print_json(&me)?;
    } else {
        println!(
            "Logged in to {server} as {login}; token stored in {}.",
            path.display()
        );
    }
    Ok(exit::OK)
}

fn is_loopback(server: &str) -> bool {
    reqwest::Url::parse(server)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .is_some_and(|h| {
            h == "localhost"
                || h.trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        })
}

/// Reads a line from the terminal without echoing it.
fn read_secret(prompt: &str) -> anyhow::Result<String> {
    eprint!("{prompt}");
    let fd = libc::STDIN_FILENO;
    // SAFETY: tcgetattr/tcsetattr on stdin with a zeroed termios they fill in.
    let mut term: libc::termios = unsafe { std::mem::zeroed() };
    let saved = (unsafe { libc::tcgetattr(fd, &mut term) } == 0).then_some(term);
    if let Some(mut quiet) = saved {
        quiet.c_lflag &= !libc::ECHO;
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    }
    let mut line = String::new();
    let read = std::io::stdin().read_line(&mut line);
    if let Some(old) = saved {
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &old) };
    }
    eprintln!();
    read?;
    Ok(line)
}

pub(super) fn logout(remote: &Remote, g: &Global) -> anyhow::Result<u8> {
    let mut creds = Credentials::load()?;
    let server = match remote.server.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => client::normalize_server(s)?,
        None => creds
            .current
            .clone()
            .ok_or_else(|| UsageError("not logged in to any server".into()))?,
    };
    let removed = creds.servers.remove(&server).is_some();
    if creds.current.as_deref() == Some(server.as_str()) {
        creds.current = creds.servers.keys().next().cloned();
    }
    if removed {
        creds.save()?;
    }
    if g.json {
        print_json(&json!({"server": server, "loggedOut": removed}))?;
    } else if removed {
        println!(
            "Logged out of {server}. The token itself stays valid until it expires or is revoked."
        );
    } else {
        println!("Not logged in to {server}; nothing to do.");
    }
    Ok(exit::OK)
}
