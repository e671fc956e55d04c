//! `paddock`: the command line.
//!
//! Job: parse arguments, open the local workspace (state database, key file, providers),
//! drive the engine, and render plans, progress and results for people (`--json` for
//! scripts). Exit codes are part of the interface: see [`exit`].
//!
//! Must not: hold any logic the engine or a provider should own.

mod bench;
mod bench_growth;
mod bench_load;
mod bench_pages;
mod bench_provision;
mod bench_serve;
mod bench_suite;
mod client;
mod key;
mod policy;
mod progress;
mod remote;
mod serve;
mod workspace;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use paddock_engine::blueprint::Blueprint;
use paddock_engine::state::format_ms;
use paddock_engine::{ApplyReport, DesiredGraph, EngineError, StepKind, Value};
use tokio_util::sync::CancellationToken;

use crate::progress::Progress;
use crate::workspace::Workspace;

/// Exit codes scripts can rely on.
pub mod exit {
    /// Everything asked for was done.
    pub const OK: u8 = 0;
    /// The operation ran and some step failed, or an unexpected error occurred (from a
    /// server: a 5xx answer, or the server could not be reached; `audit verify`: the
    /// chain is broken).
    pub const FAILED: u8 = 1;
    /// Invalid input: arguments, blueprint, parameters. Nothing was changed. From a server:
    /// 400 or 422 (each field at fault is named), or 404 (no such team, environment,
    /// person or operation).
    pub const INVALID: u8 = 2;
    /// The stack is busy with another operation. Nothing was changed. From a server: 409,
    /// a conflict (another operation queued or running on the environment, which is
    /// shown; a name taken; an operation not in a state for the request).
    pub const BUSY: u8 = 3;
    /// From a server: 401, or no credentials: not signed in, or the token is unknown,
    /// expired or revoked. Run `paddock login` or set `PADDOCK_TOKEN`. Nothing was changed.
    pub const UNAUTHENTICATED: u8 = 4;
    /// From a server: 403, signed in but not allowed (a role the team has not given you,
    /// or a read-only token). Nothing was changed.
    pub const FORBIDDEN: u8 = 5;
    /// Refused by policy: `policy eval` decided deny; from a server, a request the policy
    /// pack denied (422 `policy-denied`, each reason naming its rule and field). Nothing
    /// was changed.
    pub const DENIED: u8 = 6;
    /// Needs someone's approval: `policy eval` decided so; or an operation followed on a
    /// server (`--wait`, `op logs --follow`) stopped to wait for approval by another admin
    /// of the team (`paddock approval list`).
    pub const NEEDS_APPROVAL: u8 = 7;
    /// Cancelled: Ctrl-C (after finishing the steps in flight), or the confirmation
    /// prompt was declined before anything changed; an operation followed on a server
    /// (`--wait`, `op logs --follow`) ended cancelled, or Ctrl-C stopped waiting for it.
    pub const CANCELLED: u8 = 130;
}

#[derive(Parser)]
#[command(
    name = "paddock",
    version,
    about = "Self-service infrastructure: plan and apply blueprints into stacks."
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
pub struct Global {
    /// Where state (SQLite, unless --database-url), the master key and the test cloud live.
    #[arg(
        long,
        global = true,
        env = "PADDOCK_STATE_DIR",
        default_value = ".paddock"
    )]
    pub state_dir: PathBuf,
    /// Keep state in this database instead of STATE_DIR/state.db:
    /// `postgres://USER:PASSWORD@HOST:PORT/DATABASE` (or `sqlite://PATH`).
    #[arg(
        long,
        global = true,
        env = "PADDOCK_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub database_url: Option<String>,
    /// The master key file (created with mode 0600 if missing).
    #[arg(long, global = true, env = "PADDOCK_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Machine-readable output on stdout; no progress display.
    #[arg(long, global = true)]
    pub json: bool,
    /// Provider calls in flight per provider.
    #[arg(long, global = true, env = "PADDOCK_PARALLELISM", default_value_t = 10)]
    pub parallelism: usize,
}

#[derive(Args)]
struct Target {
    /// The stack to operate on.
    #[arg(long, short, env = "PADDOCK_STACK")]
    stack: String,
}

#[derive(Args)]
struct Program {
    #[command(flatten)]
    target: Target,
    /// The blueprint file.
    #[arg(
        long,
        short = 'f',
        env = "PADDOCK_BLUEPRINT",
        default_value = "blueprint.yaml"
    )]
    blueprint: PathBuf,
    /// A parameter value, `key=value` (repeatable; lists comma-separated).
    #[arg(long = "param", short = 'p', value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// A YAML or JSON file of parameter values (`--param` wins over it).
    #[arg(long)]
    params_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Manage stacks.
    #[command(subcommand)]
    Stack(StackCommand),
    /// Show what `up` would change, without changing anything.
    Preview {
        #[command(flatten)]
        program: Program,
    },
    /// Create or update the stack's resources to match the blueprint.
    Up {
        #[command(flatten)]
        program: Program,
        /// Don't ask for confirmation (required when not on a terminal).
        #[arg(long, short)]
        yes: bool,
    },
    /// Read every resource from its cloud and record drift.
    Refresh {
        #[command(flatten)]
        target: Target,
        /// Only show the drift; record nothing.
        #[arg(long)]
        preview_only: bool,
    },
    /// Delete every resource of the stack.
    Destroy {
        #[command(flatten)]
        target: Target,
        #[arg(long, short)]
        yes: bool,
    },
    /// Adopt an existing object into the stack.
    Import {
        #[command(flatten)]
        target: Target,
        /// Resource type, e.g. `test:resource`.
        #[arg(value_name = "TYPE")]
        ty: String,
        /// The resource's name in the blueprint.
        name: String,
        /// The object's id in its cloud.
        id: String,
    },
    /// Measure the engine.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Run the platform server (API, sign-in, workers) until Ctrl-C or SIGTERM.
    Serve(serve::ServeArgs),
    #[command(flatten)]
    Client(remote::ClientCommand),
    /// Policy packs: run a pack's tests, evaluate an input document.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// The master key ring: list, add, rotate (re-wrap every data key), retire.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Run the sandbox cloud (local emulators of the clouds) until Ctrl-C.
    Sandbox {
        /// Address of the emulated APIs.
        #[arg(long, default_value = "127.0.0.1:8480")]
        listen: std::net::SocketAddr,
        /// Address of the same APIs over HTTPS (official Azure SDKs and MSAL send tokens over
        /// HTTPS only). The certificate comes from the sandbox's own CA, created on first
        /// start as `DATA/ca.pem` and kept; `sandbox.env` then gives `https://` URLs and
        /// `PADDOCK_SANDBOX_CA_FILE`.
        #[arg(long, default_value = "127.0.0.1:8482")]
        https_listen: std::net::SocketAddr,
        /// Serve plain HTTP only (no CA is created; `sandbox.env` gives `http://` URLs).
        #[arg(long)]
        no_https: bool,
        /// Address of the control API (inspection); keep it on loopback.
        #[arg(long, default_value = "127.0.0.1:8481")]
        control_listen: std::net::SocketAddr,
        /// Where the sandbox keeps what exists, and writes `sandbox.env`.
        #[arg(long, default_value = ".paddock/sandbox")]
        data: PathBuf,
    },
}

#[derive(Subcommand)]
enum StackCommand {
    /// Create an empty stack.
    Init { name: String },
    /// List stacks.
    Ls,
    /// Remove a stack (its resources must have been destroyed, unless --force).
    Rm {
        name: String,
        /// Forget the stack even though it still manages resources.
        #[arg(long)]
        force: bool,
    },
    /// Show a stack's outputs.
    Output {
        #[arg(long, short, env = "PADDOCK_STACK")]
        stack: String,
        /// One output only.
        name: Option<String>,
        /// Print secret values in clear.
        #[arg(long)]
        show_secrets: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = runtime.block_on(run(cli));
    ExitCode::from(code)
}

/// Maps an error to its exit code, printing it.
fn report_error(e: &anyhow::Error) -> u8 {
    eprintln!("error: {e}");
    if let Some(api) = e.downcast_ref::<client::ApiError>() {
        return api.exit_code();
    }
    match e.downcast_ref::<EngineError>() {
        Some(
            EngineError::Invalid(_)
            | EngineError::StackReference { .. }
            | EngineError::NoSuchStack(_)
            | EngineError::UnknownType(_),
        ) => exit::INVALID,
        Some(
            EngineError::Protected { .. }
            | EngineError::StackNotEmpty { .. }
            | EngineError::Import(_),
        ) => exit::INVALID,
        Some(EngineError::StackBusy { .. }) => exit::BUSY,
        _ if e.downcast_ref::<client::NotLoggedIn>().is_some() => exit::UNAUTHENTICATED,
        Some(EngineError::Store(paddock_engine::state::StoreError::NoSuchStack(_))) => {
            exit::INVALID
        }
        _ if e.downcast_ref::<UsageError>().is_some() => exit::INVALID,
        _ if e.downcast_ref::<paddock_policy::PolicyError>().is_some() => exit::INVALID,
        _ => key_error_code(e),
    }
}

/// A key command refused (nothing changed) is invalid input; anything else failed.
fn key_error_code(e: &anyhow::Error) -> u8 {
    use paddock_store::keyring::KeyError;
    match e.downcast_ref::<KeyError>() {
        Some(
            KeyError::NotInRing { .. }
            | KeyError::Primary { .. }
            | KeyError::StillWraps { .. }
            | KeyError::Unfinished { .. },
        ) => exit::INVALID,
        _ => exit::FAILED,
    }
}

/// An invalid command line.
#[derive(Debug)]
struct UsageError(String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for UsageError {}

async fn run(cli: Cli) -> u8 {
    match dispatch(cli).await {
        Ok(code) => code,
        Err(e) => report_error(&e),
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    let g = cli.global;
    match cli.command {
        Command::Bench(cmd) => bench::run(cmd, &g).await,
        Command::Serve(args) => serve::serve(args, &g).await,
        Command::Client(cmd) => remote::run(cmd, &g).await,
        Command::Policy(cmd) => policy::run(cmd, &g).await,
        Command::Key(cmd) => key::run(cmd, &g).await,
        Command::Sandbox {
            listen,
            https_listen,
            no_https,
            control_listen,
            data,
        } => {
            let https_listen = (!no_https).then_some(https_listen);
            sandbox(listen, https_listen, control_listen, data).await
        }
        Command::Stack(cmd) => stack(cmd, &g).await,
        Command::Preview { program } => {
            let ws = Workspace::open(&g).await?;
            let graph = render(&program)?;
            let plan = ws.engine.preview(&program.target.stack, &graph).await?;
            if g.json {
                println!("{}", serde_json::to_string_pretty(&plan.to_json())?);
            } else {
                println!("Previewing stack `{}`:\n{plan}", program.target.stack);
            }
            Ok(exit::OK)
        }
        Command::Up { program, yes } => {
            let ws = Workspace::open(&g).await?;
            let graph = render(&program)?;
            let stack = &program.target.stack;
            let plan = ws.engine.preview(stack, &graph).await?;
            if !g.json {
                println!("Updating stack `{stack}`:\n{plan}");
            }
            if !plan.has_changes() && plan.pending == 0 {
                if !g.json {
                    println!("No changes.");
                }
                // Still run: it records outputs and options, and is cheap when nothing changes.
            } else if !confirm(yes, "Do you want to perform this update?")? {
                eprintln!("Update cancelled; nothing changed.");
                return Ok(exit::CANCELLED);
            }
            let (progress, cancel) = (Progress::for_terminal(g.json), CancellationToken::new());
            let op = ws.engine.up(stack, &graph, &progress, &cancel);
            apply(&ws, &g, stack, &progress, &cancel, op).await
        }
        Command::Destroy { target, yes } => {
            let ws = Workspace::open(&g).await?;
            let plan = ws
                .engine
                .preview(&target.stack, &DesiredGraph::new())
                .await?;
            if !g.json {
                println!("Destroying stack `{}`:\n{plan}", target.stack);
            }
            if plan.has_changes()
                && !confirm(yes, "Do you want to destroy every resource of this stack?")?
            {
                eprintln!("Destroy cancelled; nothing changed.");
                return Ok(exit::CANCELLED);
            }
            let stack = &target.stack;
            let (progress, cancel) = (Progress::for_terminal(g.json), CancellationToken::new());
            let op = ws.engine.destroy(stack, &progress, &cancel);
            apply(&ws, &g, stack, &progress, &cancel, op).await
        }
        Command::Refresh {
            target,
            preview_only,
        } => {
            let ws = Workspace::open(&g).await?;
            let progress = Progress::for_terminal(g.json);
            let drifts = ws
                .engine
                .refresh(&target.stack, preview_only, &progress)
                .await?;
            progress.finish();
            if g.json {
                println!("{}", serde_json::to_string_pretty(&drifts)?);
            } else {
                let changed: Vec<_> = drifts.iter().filter(|d| d.change != "unchanged").collect();
                for d in &changed {
                    let props = if d.properties.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", d.properties.join(", "))
                    };
                    println!("  ~ {} {}: {}{props}", d.resource, d.ty, d.change);
                }
                let verb = if preview_only { "found" } else { "recorded" };
                println!(
                    "Refresh: {} of {} resource(s) drifted; {verb}.",
                    changed.len(),
                    drifts.len()
                );
            }
            Ok(exit::OK)
        }
        Command::Import {
            target,
            ty,
            name,
            id,
        } => {
            let ws = Workspace::open(&g).await?;
            let r = ws.engine.import(&target.stack, &ty, &name, &id).await?;
            if g.json {
                println!(
                    "{}",
                    serde_json::json!({"name": r.name, "type": r.ty, "id": r.id, "inputs": paddock_engine::value::redacted_props(&r.inputs)})
                );
            } else {
                println!(
                    "Imported {ty} `{id}` as `{name}` into stack `{}`. Add it to the blueprint with these properties:",
                    target.stack
                );
                for (k, v) in &r.inputs {
                    println!("    {k}: {v}");
                }
            }
            Ok(exit::OK)
        }
    }
}

/// Runs the sandbox until Ctrl-C; prints and writes `DATA/sandbox.env`.
async fn sandbox(
    listen: std::net::SocketAddr,
    https_listen: Option<std::net::SocketAddr>,
    control_listen: std::net::SocketAddr,
    data: PathBuf,
) -> anyhow::Result<u8> {
    let mut config = paddock_sandbox::SandboxConfig::new(&data);
    config.listen = listen;
    config.https_listen = https_listen;
    config.control_listen = control_listen;
    let sandbox = paddock_sandbox::Sandbox::start(config).await?;
    let env: String = sandbox
        .env()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect();
    let env_file = data.join("sandbox.env");
    std::fs::write(&env_file, &env)?;
    print!("{env}");
    eprintln!(
        "Sandbox running; its settings are in {}. Inspect it at {}. Ctrl-C stops it.",
        env_file.display(),
        sandbox.control_url
    );
    tokio::signal::ctrl_c().await?;
    sandbox.stop().await;
    Ok(exit::OK)
}

fn confirm(yes: bool, question: &str) -> anyhow::Result<bool> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        return Err(UsageError(
            "not on a terminal: pass --yes to apply without confirmation".into(),
        )
        .into());
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "yes" | "Y"))
}

/// Runs an apply with Ctrl-C handling, then prints the result.
async fn apply(
    ws: &Workspace,
    g: &Global,
    stack: &str,
    progress: &Progress,
    cancel: &CancellationToken,
    op: impl std::future::Future<Output = Result<ApplyReport, EngineError>>,
) -> anyhow::Result<u8> {
    let watcher = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!(
                    "\nCancelling: no new steps will start; waiting for the steps in flight (Ctrl-C again to abort)."
                );
                cancel.cancel();
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(exit::CANCELLED as i32);
                }
            }
        })
    };
    let started = std::time::Instant::now();
    let result = op.await;
    watcher.abort();
    progress.finish();
    let report = result?;
    let outputs = ws.engine.outputs(stack).await?;
    if g.json {
        let mut json = serde_json::to_value(&report)?;
        json["outputs"] = paddock_engine::value::redacted_props(&outputs);
        json["durationMs"] = serde_json::json!(started.elapsed().as_millis() as u64);
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        let mut parts: Vec<String> = report
            .done
            .iter()
            .map(|(k, n)| format!("{n} {}", past(*k)))
            .collect();
        if parts.is_empty() {
            parts.push("no changes".into());
        }
        if !report.failures.is_empty() {
            parts.push(format!("{} failed", report.failures.len()));
        }
        if !report.skipped.is_empty() {
            parts.push(format!("{} skipped", report.skipped.len()));
        }
        println!(
            "Resources: {}. Duration: {:.1}s",
            parts.join(", "),
            started.elapsed().as_secs_f64()
        );
        for f in &report.failures {
            let code = f
                .code
                .as_deref()
                .map(|c| format!("[{c}] "))
                .unwrap_or_default();
            println!("  ✗ {} ({}): {code}{}", f.resource, f.ty, f.message);
        }
        if !outputs.is_empty() {
            println!("Outputs:");
            for (k, v) in &outputs {
                println!("    {k}: {v}");
            }
        }
    }
    Ok(if report.cancelled {
        exit::CANCELLED
    } else if report.succeeded() {
        exit::OK
    } else {
        exit::FAILED
    })
}

fn past(k: StepKind) -> &'static str {
    match k {
        StepKind::Create => "created",
        StepKind::Update => "updated",
        StepKind::Replace => "replaced",
        StepKind::Delete => "deleted",
        StepKind::Same => "unchanged",
    }
}

/// Loads the blueprint and binds parameters from the file and the command line.
fn render(program: &Program) -> anyhow::Result<DesiredGraph> {
    let blueprint = Blueprint::load(&program.blueprint).map_err(EngineError::Invalid)?;
    let mut values: BTreeMap<String, Value> = BTreeMap::new();
    if let Some(path) = &program.params_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| UsageError(format!("--params-file {}: {e}", path.display())))?;
        values = paddock_engine::blueprint::parse_values(&path.display().to_string(), &text)
            .map_err(EngineError::Invalid)?;
    }
    for p in &program.params {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| UsageError(format!("--param {p:?}: expected KEY=VALUE")))?;
        values.insert(k.trim().to_owned(), Value::String(v.to_owned()));
    }
    Ok(blueprint.render(&values).map_err(EngineError::Invalid)?)
}

async fn stack(cmd: StackCommand, g: &Global) -> anyhow::Result<u8> {
    let ws = Workspace::open(g).await?;
    match cmd {
        StackCommand::Init { name } => {
            ws.engine.init_stack(&name).await?;
            if !g.json {
                println!("Created stack `{name}`.");
            }
        }
        StackCommand::Ls => {
            let stacks = ws.engine.list_stacks().await?;
            if g.json {
                println!("{}", serde_json::to_string_pretty(&stacks)?);
            } else {
                println!(
                    "{:<30} {:>9} {:>7}  {:<20}  BUSY",
                    "NAME", "RESOURCES", "PENDING", "CREATED"
                );
                for s in stacks {
                    let busy = s
                        .lease
                        .map(|l| {
                            format!(
                                "{} by {}@{} since {}",
                                l.operation,
                                l.holder.user,
                                l.holder.host,
                                format_ms(l.acquired_at_ms)
                            )
                        })
                        .unwrap_or_else(|| "-".into());
                    println!(
                        "{:<30} {:>9} {:>7}  {:<20}  {busy}",
                        s.name,
                        s.resources,
                        s.pending,
                        format_ms(s.created_at_ms)
                    );
                }
            }
        }
        StackCommand::Rm { name, force } => {
            ws.engine.remove_stack(&name, force).await?;
            if !g.json {
                println!("Removed stack `{name}`.");
            }
        }
        StackCommand::Output {
            stack,
            name,
            show_secrets,
        } => {
            let outputs = ws.engine.outputs(&stack).await?;
            let render = |v: &Value| {
                if show_secrets {
                    v.reveal().to_json()
                } else {
                    v.to_redacted_json()
                }
            };
            match name {
                Some(n) => {
                    let v = outputs.get(&n).ok_or_else(|| {
                        UsageError(format!(
                            "stack `{stack}` has no output `{n}` (outputs: {})",
                            outputs.keys().cloned().collect::<Vec<_>>().join(", ")
                        ))
                    })?;
                    match render(v) {
                        serde_json::Value::String(s) if !g.json => println!("{s}"),
                        other => println!("{other}"),
                    }
                }
                None if g.json => {
                    let map: serde_json::Map<String, serde_json::Value> = outputs
                        .iter()
                        .map(|(k, v)| (k.clone(), render(v)))
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&map)?);
                }
                None => {
                    println!("{:<30} VALUE", "OUTPUT");
                    for (k, v) in &outputs {
                        let shown = if show_secrets {
                            v.reveal().to_json().to_string()
                        } else {
                            v.to_string()
                        };
                        println!("{k:<30} {shown}");
                    }
                }
            }
        }
    }
    Ok(exit::OK)
}
