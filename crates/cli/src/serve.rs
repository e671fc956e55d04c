//! `paddock serve`: the platform server on its embedded defaults (SQLite, a local key
//! file, the sandbox cloud in-process) or on what a config file and `PADDOCK_*` variables
//! name (PostgreSQL, real clouds, identity providers).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use paddock_providers::clouds::Clouds;
use paddock_server::{Config, Deps};

use crate::{Global, exit};

#[derive(Args)]
pub struct ServeArgs {
    /// A TOML configuration file; `PADDOCK_*` variables override it, flags override both.
    #[arg(long, env = "PADDOCK_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// The data directory: SQLite database, key file, in-process sandbox, initial admin
    /// token (default ./paddock-data).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Logs as JSON lines (the default when stderr is not a terminal) or text.
    #[arg(long, value_parser = ["json", "text"])]
    log_format: Option<String>,
}

pub async fn serve(args: ServeArgs, g: &Global) -> anyhow::Result<u8> {
    init_logging(args.log_format.as_deref());
    let mut config = Config::load(args.config.as_deref(), |k| std::env::var(k).ok())?;
    if args.listen.is_some() {
        config.listen = args.listen;
    }
    if args.data.is_some() {
        config.data_dir = args.data;
    }
    if let Some(url) = &g.database_url {
        config.database_url = Some(url.clone());
    }
    if let Some(key) = &g.key_file {
        config.key.path = Some(key.clone());
    }
    let data = config.data_dir();
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    // Paths handed to the sandbox and written into its files must not depend on the
    // directory a later process starts in.
    let data = std::fs::canonicalize(&data)?;
    config.data_dir = Some(data.clone());

    let target = config
        .cloud
        .target
        .clone()
        .unwrap_or_else(|| "sandbox".into());
    let (clouds, env, sandbox) = match target.as_str() {
        "sandbox" => {
            let dir = data.join("sandbox");
            let mut sb = paddock_sandbox::SandboxConfig::new(&dir);
            // Port 0: chosen at the first start, then kept (the sandbox's `addresses.json`).
            sb.https_listen = Some(
                config
                    .cloud
                    .sandbox_https_listen
                    .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0))),
            );
            if let Some(a) = config.cloud.sandbox_listen {
                sb.listen = a;
            }
            if let Some(a) = config.cloud.sandbox_control_listen {
                sb.control_listen = a;
            }
            let sandbox = paddock_sandbox::Sandbox::start(sb)
                .await
                .context(
                    "starting the in-process sandbox cloud (its addresses are the settings \
                     cloud.sandbox_listen, cloud.sandbox_https_listen, cloud.sandbox_control_listen)",
                )?;
            let env: BTreeMap<String, String> = sandbox
                .env()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            let text: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
            std::fs::write(dir.join("sandbox.env"), text)?;
            sign_in_with_sandbox(&sandbox, &mut config).await?;
            (Clouds::from_sandbox_env(&env)?, Some(env), Some(sandbox))
        }
        "sandbox-env" => {
            let path = config
                .cloud
                .sandbox_env
                .clone()
                .context("cloud.target = sandbox-env needs cloud.sandbox_env (PADDOCK_SANDBOX_ENV)")?;
            let env = read_env_file(&path)?;
            (Clouds::from_sandbox_env(&env)?, Some(env), None)
        }
        "real" => (
            Clouds::from_env()?.context(
                "cloud.target = real needs PADDOCK_GITHUB_*, PADDOCK_AZURE_* and PADDOCK_KUBECONFIG",
            )?,
            None,
            None,
        ),
        other => anyhow::bail!(
            "cloud.target (PADDOCK_CLOUD) `{other}`: expected sandbox, sandbox-env or real"
        ),
    };
    let mut deps = Deps::open(&config, &clouds).await?;
    if let Some(control) = env
        .as_ref()
        .and_then(|e| e.get("PADDOCK_SANDBOX_CONTROL_URL"))
    {
        deps.on_new_person = Some(sandbox_people(control.clone()));
        deps.sandbox_console = Some(control.clone());
    }
    let running = paddock_server::start(config, deps).await?;
    eprintln!("Paddock is serving at {}", running.state.public_url);
    if let Some(b) = &running.bootstrap {
        eprintln!(
            "First start: sign in as the platform admin with this one-time link (valid 24 h):\n  {}\n\
             An API token for scripts is in {} (revoke it once you have your own).",
            b.sign_in_link,
            b.token_file.display()
        );
    }
    if let Some(sandbox) = &sandbox {
        eprintln!(
            "The sandbox cloud runs in-process; inspect it at {}",
            sandbox.control_url
        );
    }
    let state = running.state.clone();
    tokio::select! {
        _ = shutdown_signal() => {
            eprintln!("Stopping: finishing the steps in flight, handing back the rest…");
            running.shutdown(Duration::from_secs(20)).await;
        }
        _ = state.shutdown.cancelled() => {}
    }
    if let Some(sandbox) = sandbox {
        sandbox.stop().await;
    }
    Ok(exit::OK)
}

/// The sandbox's identity providers (Entra and GitHub), registered to redirect here, so
/// that people can sign in as the sandbox's people.
async fn sign_in_with_sandbox(
    sandbox: &paddock_sandbox::Sandbox,
    config: &mut Config,
) -> anyhow::Result<()> {
    use paddock_server::oidc::IdentityProviderConfig;
    let public = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listen()));
    if config.listen().port() == 0 && config.public_url.is_none() {
        return Ok(()); // No address to register yet.
    }
    let callback = |name: &str| {
        format!(
            "{}/sign-in/provider/{name}/callback",
            public.trim_end_matches('/')
        )
    };
    let apps = sandbox
        .register_sign_in_app(&[callback("sandbox-entra"), callback("sandbox-github")])
        .await
        .context("registering Paddock's sign-in with the sandbox")?;
    config.identity_providers.push(IdentityProviderConfig::oidc(
        "sandbox-entra",
        apps.entra.issuer,
        apps.entra.client_id,
        apps.entra.client_secret,
    ));
    config
        .identity_providers
        .push(IdentityProviderConfig::github(
            "sandbox-github",
            apps.github.base_url,
            apps.github.api_url,
            apps.github.client_id,
            apps.github.client_secret,
        ));
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn read_env_file(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("PADDOCK_SANDBOX_ENV: reading {}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect())
}

/// New people become sandbox people (a GitHub user and a directory user), through the
/// sandbox's control API, as a company's identity provisioning would have made them.
fn sandbox_people(control_url: String) -> paddock_server::NewPersonHook {
    let client = paddock_providers::http::reqwest_client(None, None)
        .expect("an HTTP client on the built-in TLS stack");
    Arc::new(move |login: String| {
        let client = client.clone();
        let url = format!("{control_url}/people");
        Box::pin(async move {
            let sent = client
                .post(&url)
                .json(&serde_json::json!({"login": login}))
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => {
                    tracing::warn!(status = %r.status(), %login, "the sandbox refused a person")
                }
                Err(e) => {
                    tracing::warn!(error = %e, %login, "the sandbox could not be told of a person")
                }
            }
        })
    })
}

fn init_logging(format: Option<&str>) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("PADDOCK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let json = match format {
        Some("json") => true,
        Some(_) => false,
        None => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
