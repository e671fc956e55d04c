//! Paddock's platform server: the service developers and the portal talk to.
//!
//! Job: turn requests into durable operations that workers on any replica execute, decide
//! who may do what ([`policy`], one place), and record every change in the hash-chained
//! audit log. It serves the REST API under `/api/v1` (described by an OpenAPI 3.1
//! document generated from the code), sign-in (local accounts, identity providers,
//! one-time links), live events as Server-Sent Events from the database, health and
//! Prometheus metrics.
//!
//! Invariants: a request that changes anything writes its rows, its operation and its
//! audit record in one transaction, or nothing; a denied mutation leaves only its audit
//! record; secrets never leave in a response unless an admin asks to reveal them (which
//! is audited); every operation runs under a lease in the database, so a replica that
//! dies hands its work to another, which resumes from the engine's journal.
//!
//! Must not: talk to a cloud except through the engine and its providers, or know which
//! database it runs on beyond what `paddock_store::db` exposes.

pub mod api;
pub mod auth;
pub mod bundles;
mod cloud_metrics;
pub mod config;
mod events;
pub mod forms;
#[doc(hidden)]
pub mod fuzzing;
mod gate;
mod lifecycle;
pub mod metrics;
pub mod oidc;
mod openapi;
pub mod policy;
pub mod policy_packs;
mod portal;
pub mod problem;
mod rollouts;
mod sign_in;
mod views;
mod worker;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use paddock_engine::keyring::KeyRing;
use paddock_engine::secrets::MasterKey;
use paddock_engine::state::{Holder, StateStore};
use paddock_engine::{Engine, EngineOptions, ProviderRegistry};
use paddock_platform::Settings;
use paddock_providers::clouds::{Clouds, registry_of};
use paddock_store::db::{BlueprintVersion, Db, NewAudit, NewUser, now_ms};
use paddock_store::keyring::DbKeyRing;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use config::Config;

use crate::metrics::Metrics;
use crate::oidc::IdentityProvider;

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Db(#[from] paddock_store::db::DbError),
    #[error("{0}")]
    Setup(String),
}

/// Called with a person's login when they first appear (the embedded sandbox makes them
/// a GitHub user and a directory user, as an identity provider would have).
pub type NewPersonHook =
    Arc<dyn Fn(String) -> futures_util::future::BoxFuture<'static, ()> + Send + Sync>;

/// What the server runs on, assembled by the binary.
pub struct Deps {
    pub db: Db,
    pub state: Arc<dyn StateStore>,
    pub key: Arc<dyn MasterKey>,
    pub providers: ProviderRegistry,
    pub settings: Settings,
    pub identity_providers: Vec<IdentityProvider>,
    pub on_new_person: Option<NewPersonHook>,
    /// The sandbox's inspection page (its control URL), when the clouds are the
    /// sandbox's: where the portal links a resource "lives". `None` for real clouds,
    /// whose consoles (portal.azure.com, github.com…) the portal links instead.
    pub sandbox_console: Option<String>,
}

impl Deps {
    /// Opens what `config` names — the database (migrated), the master key file — and
    /// the providers of `clouds`.
    pub async fn open(config: &Config, clouds: &Clouds) -> Result<Deps, ServerError> {
        let setup =
            |what: &str, e: &dyn std::fmt::Display| ServerError::Setup(format!("{what}: {e}"));
        let data = config.data_dir();
        std::fs::create_dir_all(&data).map_err(|e| setup(&data.display().to_string(), &e))?;
        let url = config.database_url();
        let state = paddock_store::open(&url)
            .await
            .map_err(|e| setup("opening the database", &e))?;
        let db = Db::connect(&url)
            .await
            .map_err(|e| setup("opening the database", &e))?;
        let key = open_key_ring(&config.key_file(), &db).await?;
        let families = clouds
            .families()
            .map_err(|e| setup("configuring the clouds", &e))?;
        let settings = Settings {
            github_org: clouds.github.org.clone(),
            oidc_issuer: clouds.oidc_issuer.clone(),
            tenant_id: clouds.entra.tenant_id.clone(),
            subscription_id: clouds.azure.subscription_id.clone(),
            template_repository: paddock_platform::DEFAULT_TEMPLATE_REPOSITORY.to_owned(),
        };
        let mut identity_providers = Vec::new();
        for idp in &config.identity_providers {
            let http =
                paddock_providers::http::reqwest_client(clouds.github.ca_pem.as_deref(), None)
                    .map_err(|e| setup("an HTTP client for identity providers", &e))?;
            identity_providers.push(
                IdentityProvider::new(idp.clone(), http)
                    .map_err(|e| setup(&format!("identity provider `{}`", idp.name), &e))?,
            );
        }
        Ok(Deps {
            db,
            state,
            key: Arc::new(key),
            providers: registry_of(&families),
            settings,
            identity_providers,
            on_new_person: None,
            sandbox_console: None,
        })
    }
}

/// The key ring file and the database naming its primary. A replica whose ring lacks the
/// primary could neither create a stack nor read one the primary wrapped: it refuses to
/// start, naming the key and the file.
async fn open_key_ring(path: &Path, db: &Db) -> Result<DbKeyRing, ServerError> {
    let file = |e: &dyn std::fmt::Display| {
        ServerError::Setup(format!("the key ring {}: {e}", path.display()))
    };
    let ring = Arc::new(KeyRing::open_or_create(path).map_err(|e| file(&e))?);
    let key = DbKeyRing::new(ring.clone(), db.clone());
    let primary = key.primary().await?;
    if !ring.holds(&primary) {
        return Err(file(&paddock_engine::secrets::SecretsError::UnknownKey {
            id: primary,
            ring: path.to_owned(),
        }));
    }
    let held: Vec<String> = ring.keys().into_iter().map(|k| k.id).collect();
    tracing::info!(primary = %primary, keys = ?held, "master key ring opened");
    Ok(key)
}

/// Shared by every request and worker.
pub struct AppState {
    pub db: Db,
    pub engine: Engine,
    pub settings: Settings,
    pub config: Config,
    pub public_url: String,
    pub metrics: Metrics,
    /// Wakes idle workers when an operation is queued here.
    pub work: Notify,
    pub identity_providers: Vec<IdentityProvider>,
    pub on_new_person: Option<NewPersonHook>,
    /// This replica, as operation leases name it.
    pub holder: String,
    pub shutdown: CancellationToken,
    pub ready: AtomicBool,
    /// The version of the `environment` blueprint this server ships and renders.
    pub environment_blueprint: String,
    /// See [`Deps::sandbox_console`].
    pub sandbox_console: Option<String>,
    /// Parsed `environment` bundles by version (see [`bundles`]).
    pub bundles: std::sync::Mutex<std::collections::HashMap<String, Arc<paddock_platform::Bundle>>>,
    /// The active policy pack, compiled (see [`AppState::policy_pack`]).
    pub policy_cache: policy_packs::PackCache,
}

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    /// What the first start printed and wrote, if this was it.
    pub bootstrap: Option<Bootstrap>,
    tasks: tokio::task::JoinSet<()>,
}

/// The first platform admin's credentials, made on the very first start.
pub struct Bootstrap {
    pub sign_in_link: String,
    pub token_file: std::path::PathBuf,
}

impl Running {
    /// Stops taking requests and work, lets in-flight operations finish for up to
    /// `grace`, then hands back what is still running (its lease released, so another
    /// replica resumes it at once).
    pub async fn shutdown(mut self, grace: Duration) {
        self.state.shutdown.cancel();
        let all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace + Duration::from_secs(5), all)
            .await
            .is_err()
        {
            self.tasks.abort_all();
        }
    }

    /// Waits until the server stops (after [`AppState::shutdown`] is cancelled).
    pub async fn wait(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Starts the server: publishes the shipped blueprints, makes the first admin on a new
/// database, brings the platform's own stack (the template repository) up, then listens
/// and starts the workers.
pub async fn start(config: Config, deps: Deps) -> Result<Running, ServerError> {
    let listener = tokio::net::TcpListener::bind(config.listen())
        .await
        .map_err(|source| ServerError::Listen {
            addr: config.listen(),
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ServerError::Listen {
            addr: config.listen(),
            source,
        })?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"))
        .trim_end_matches('/')
        .to_owned();
    let holder = Holder::this_process();
    let options = EngineOptions {
        lease_ttl: config.lease(),
        holder: holder.clone(),
        ..EngineOptions::default()
    };
    let engine = Engine::new(deps.state, deps.providers, deps.key, options);
    let shipped = shipped_blueprints();
    let environment_blueprint = shipped
        .iter()
        .find(|b| b.name == "environment")
        .map(|b| b.version.clone())
        .unwrap_or_default();
    let state = Arc::new(AppState {
        db: deps.db,
        engine,
        settings: deps.settings,
        public_url,
        metrics: Metrics::default(),
        work: Notify::new(),
        identity_providers: deps.identity_providers,
        on_new_person: deps.on_new_person,
        holder: format!(
            "{}:{}:{}",
            holder.host,
            holder.pid,
            &auth::new_id("r")[2..10]
        ),
        shutdown: CancellationToken::new(),
        ready: AtomicBool::new(false),
        environment_blueprint,
        sandbox_console: deps.sandbox_console,
        bundles: Default::default(),
        config,
        policy_cache: Default::default(),
    });
    publish_blueprints(&state, &shipped).await?;
    policy_packs::publish_shipped(&state).await?;
    let bootstrap = bootstrap(&state).await?;
    if bootstrap.is_some() {
        state.new_person("admin").await;
    }
    platform_stack(&state).await?;

    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..state.config.workers() {
        tasks.spawn(worker::run(state.clone(), n));
    }
    tasks.spawn(lifecycle::run(state.clone()));
    if state.config.workers() > 0 {
        tasks.spawn(rollouts::drive(state.clone()));
    }
    let app = api::router(state.clone());
    let shutdown = state.shutdown.clone();
    tasks.spawn(async move {
        let serve = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { shutdown.cancelled().await });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "the HTTP server stopped");
        }
    });
    state.ready.store(true, Ordering::SeqCst);
    tracing::info!(%addr, holder = %state.holder, "paddock server ready");
    Ok(Running {
        addr,
        state,
        bootstrap,
        tasks,
    })
}

/// The blueprints the platform ships, as published versions: `team` and `environment`
/// (the repository and stage blueprints and the template together).
pub fn shipped_blueprints() -> Vec<BlueprintVersion> {
    let digest = |parts: &[&str]| {
        let mut h = Sha256::new();
        for p in parts {
            h.update((p.len() as u64).to_le_bytes());
            h.update(p.as_bytes());
        }
        format!("sha256:{}", auth::hex(&h.finalize()))
    };
    let version_of = |yaml: &str| {
        yaml.lines()
            .find_map(|l| l.strip_prefix("version:"))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| "0.0.0".into())
    };
    let shipped = paddock_platform::Bundle::shipped();
    let request = &shipped.request;
    let team = team_request(&version_of(paddock_platform::TEAM_BLUEPRINT));
    let now = now_ms();
    vec![
        BlueprintVersion {
            name: "team".into(),
            version: team.version.clone(),
            digest: digest(&[paddock_platform::TEAM_BLUEPRINT]),
            description: "A team's GitHub team and Entra ID security group.".into(),
            parameters: api::schema_of(&team).to_string(),
            published_at: now,
            sources: None,
        },
        BlueprintVersion {
            name: "environment".into(),
            version: request.version.clone(),
            digest: bundles::digest(&shipped.files),
            description: request.description.clone(),
            parameters: api::schema_of(request).to_string(),
            published_at: now,
            sources: Some(serde_json::to_string(&shipped.files).unwrap_or_default()),
        },
    ]
}

/// What a team request asks for, as a blueprint of parameters only.
fn team_request(version: &str) -> paddock_engine::blueprint::Blueprint {
    let yaml = format!(
        "name: team\nversion: {version}\ndescription: A team's GitHub team and Entra ID security group.\n\
         parameters:\n  name:\n    type: string\n    pattern: \"{}\"\n    description: The team's name, \
         its GitHub team slug.\n  description:\n    type: string\n    default: \"\"\n    max: 200\n    \
         description: What the team does.\n",
        views::NAME_PATTERN
    );
    paddock_engine::blueprint::Blueprint::parse("team request", &yaml)
        .expect("the team request's parameters parse")
}

async fn publish_blueprints(
    state: &AppState,
    shipped: &[BlueprintVersion],
) -> Result<(), ServerError> {
    for b in shipped {
        let mut tx = state.db.write().await?;
        let published = tx
            .publish_blueprint(b)
            .await
            .map_err(|e| ServerError::Setup(format!("publishing the shipped blueprints: {e}")))?;
        if published {
            tx.append_audit(
                &NewAudit {
                    actor: "system",
                    source: "internal",
                    action: "blueprint.publish",
                    target: &format!("blueprints/{}/versions/{}", b.name, b.version),
                    team: None,
                    environment: None,
                    outcome: "allowed",
                    detail: &serde_json::json!({"digest": b.digest}),
                },
                now_ms(),
            )
            .await?;
            tx.commit().await?;
            tracing::info!(blueprint = %b.name, version = %b.version, "published");
        }
    }
    Ok(())
}

/// On a database with no platform admin: makes `admin`, a sign-in link for them (valid
/// for a day) and an API token in `DATA/initial-admin-token` (mode 0600). Replicas starting
/// together serialize on the write lock, so one of them does it.
async fn bootstrap(state: &AppState) -> Result<Option<Bootstrap>, ServerError> {
    let mut tx = state.db.write().await?;
    if tx.platform_admin_count().await? > 0 {
        return Ok(None);
    }
    let now = now_ms();
    let user_id = auth::new_id("u");
    tx.insert_user(&NewUser {
        id: &user_id,
        login: "admin",
        name: "Platform admin",
        email: None,
        platform_admin: true,
        password_hash: None,
        oidc: None,
        created_at: now,
    })
    .await?;
    let link = auth::random_secret();
    tx.insert_sign_in_link(&auth::digest(&link), &user_id, now + 24 * 3600 * 1000)
        .await?;
    let token = format!("{}{}", auth::TOKEN_PREFIX, auth::random_secret());
    tx.insert_token(
        &paddock_store::db::ApiToken {
            id: auth::new_id("tok"),
            user_id: user_id.clone(),
            name: "initial-admin-token".into(),
            scope: "write".into(),
            created_at: now,
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
        },
        &auth::digest(&token),
    )
    .await?;
    tx.append_audit(
        &NewAudit {
            actor: "system",
            source: "internal",
            action: "platform.bootstrap",
            target: "users/admin",
            team: None,
            environment: None,
            outcome: "allowed",
            detail: &serde_json::json!({"tokenName": "initial-admin-token"}),
        },
        now,
    )
    .await?;
    let data = state.config.data_dir();
    let token_file = data.join("initial-admin-token");
    write_private(&token_file, &token)
        .map_err(|e| ServerError::Setup(format!("writing {}: {e}", token_file.display())))?;
    tx.commit().await?;
    Ok(Some(Bootstrap {
        sign_in_link: format!("{}/sign-in/link/{link}", state.public_url),
        token_file,
    }))
}

/// Writes a file only its owner can read, whole or not at all.
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(content.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::rename(tmp, path)
}

/// Records a start's changes to the platform's stack as the operator's, if it made any.
async fn audit_platform_apply(
    state: &AppState,
    stack: &str,
    operation: &str,
    report: &paddock_engine::ApplyReport,
) -> Result<(), ServerError> {
    if report.done.is_empty() && report.failures.is_empty() {
        return Ok(());
    }
    let changes: serde_json::Map<String, serde_json::Value> = report
        .done
        .iter()
        .map(|(kind, n)| (kind.verb().to_owned(), serde_json::json!(n)))
        .collect();
    let mut tx = state.db.write().await?;
    tx.append_audit(
        &NewAudit {
            actor: &state.config.operator(),
            source: "serve",
            action: "platform.stack.apply",
            target: &format!("stacks/{stack}"),
            team: None,
            environment: None,
            outcome: if report.succeeded() {
                "allowed"
            } else {
                "failed"
            },
            detail: &serde_json::json!({
                "operation": operation,
                "changes": changes,
                "failures": report.failures.len(),
                "planHash": report.plan_hash,
            }),
        },
        now_ms(),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The platform's own stack (the environments' template repository). Replicas starting
/// together take turns on its lease; with nothing to change it is one plan.
///
/// What it changes is the operator's doing: the requests name an operation of their own (in
/// their `User-Agent`), and an audit record names it and the operator (`PADDOCK_OPERATOR`).
async fn platform_stack(state: &AppState) -> Result<(), ServerError> {
    let run = paddock_platform::platform_stack(&state.settings);
    let cancel = CancellationToken::new();
    for attempt in 0.. {
        let operation = auth::new_id("platform");
        let applied = paddock_providers::http::on_behalf_of(
            &operation,
            state
                .engine
                .up(&run.stack, &run.graph, &paddock_engine::Discard, &cancel),
        )
        .await;
        if let Ok(report) = &applied {
            audit_platform_apply(state, &run.stack, &operation, report).await?;
        }
        match applied {
            Ok(report) if report.succeeded() => return Ok(()),
            Ok(report) => {
                return Err(ServerError::Setup(format!(
                    "the platform's template repository could not be provisioned: {}",
                    report
                        .failures
                        .iter()
                        .map(|f| format!("{}: {}", f.resource, f.message))
                        .collect::<Vec<_>>()
                        .join("; ")
                )));
            }
            Err(paddock_engine::EngineError::StackBusy { .. }) if attempt < 120 => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => {
                return Err(ServerError::Setup(format!(
                    "the platform's template repository could not be provisioned: {e}"
                )));
            }
        }
    }
    unreachable!()
}
