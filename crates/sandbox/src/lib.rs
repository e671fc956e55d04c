//! The sandbox cloud: local emulators of the APIs Paddock provisions into, so that Paddock
//! runs and is tested with no cloud account.
//!
//! Job: serve each emulated API as its official description says — paths, status codes,
//! error shapes, long-running operations, paging — and keep what exists across restarts.
//! A separate control listener, never reachable through the emulated APIs, serves
//! inspection (JSON and a read-only HTML page).
//!
//! Serves: Azure Resource Manager (resource groups, role definitions and assignments,
//! management locks, with Azure RBAC and lock enforcement), Microsoft Graph, the Entra token endpoint, the GitHub Actions OIDC issuer,
//! GitHub's REST API and a Kubernetes API server (with RBAC); throttling as each cloud
//! does, seeded fault injection, and HTTPS from a local CA.
//!
//! Invariants: every emulated request is authenticated as the real API would; what the
//! sandbox writes back out (tokens, URLs) is stable across restarts; the control API is
//! on its own listener.
//!
//! Must not: depend on Paddock's engine or providers; the sandbox is a stand-in for the
//! clouds, and knows only their wire formats.

pub mod actions;
mod addresses;
pub mod arm;
mod control;
mod documents;
pub mod entra;
pub mod faults;
pub mod github;
pub mod github_oauth;
pub mod graph;
pub mod kubernetes;
pub mod requests;
pub mod signin;
pub mod tls;
pub mod tokens;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::net::TcpListener;

pub use crate::arm::ArmConfig;
use crate::documents::Documents;
pub use crate::entra::AppCredentials;
pub use crate::github::ROOT as GITHUB_ROOT;
pub use crate::kubernetes::KubernetesConfig;
pub use crate::signin::{EntraSignInApp, GitHubOAuthApp, SignInApps};

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("sandbox data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "cannot listen on {addr}: the address is in use. The sandbox has listened there since \
         its first start (kept in {file}), and the URLs it handed out (the GitHub Actions \
         issuer, kubeconfigs, outputs) name it: stop what uses the port, or give an address \
         explicitly (every URL then changes, and environments must be updated)"
    )]
    KeptAddressTaken { addr: SocketAddr, file: PathBuf },
    #[error("sandbox database: {0}")]
    Database(String),
    #[error("sandbox HTTPS: {0}")]
    Tls(#[from] tls::TlsError),
}

/// How to run the sandbox.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// Where the sandbox keeps what exists (SQLite) and writes `sandbox.env`.
    pub data_dir: PathBuf,
    /// The emulated APIs (port 0: any free port).
    pub listen: SocketAddr,
    /// The same APIs over HTTPS too, with a certificate from the sandbox's own CA
    /// (`DATA/ca.pem`, kept across restarts). When set, the APIs advertise their `https://`
    /// root. Off by default.
    pub https_listen: Option<SocketAddr>,
    /// The control API: inspection. Keep it on loopback.
    pub control_listen: SocketAddr,
    pub arm: ArmConfig,
    pub kubernetes: KubernetesConfig,
    /// How long a repository generated from a template waits for its files.
    pub github_template_delay: std::time::Duration,
    /// Content-creating GitHub requests allowed in any minute before GitHub's secondary
    /// rate limit refuses them (GitHub documents 80).
    pub github_mutations_per_minute: u32,
    /// Microsoft Graph requests an application may make in ten seconds before Graph
    /// throttles it with 429.
    pub graph_requests_per_10s: u32,
    /// Seed of the fault-injection draws (replay a run with the same seed).
    pub fault_seed: u64,
}

impl SandboxConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> SandboxConfig {
        SandboxConfig {
            data_dir: data_dir.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            https_listen: None,
            control_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            arm: ArmConfig::default(),
            kubernetes: KubernetesConfig::default(),
            fault_seed: now_ms() as u64,
            github_template_delay: std::time::Duration::from_secs(2),
            github_mutations_per_minute: 80,
            graph_requests_per_10s: 2000,
        }
    }
}

/// The sandbox's own tenant and subscription: created on first start, then kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    pub tenant_id: String,
    pub subscription_id: String,
}

/// A running sandbox.
pub struct Sandbox {
    pub identity: Identity,
    /// The platform's own identity: Owner on the subscription.
    pub platform: AppCredentials,
    /// An org-admin token for the sandbox's GitHub organization.
    pub github_token: String,
    /// Where the sandbox keeps its state (and the GitHub App's private key).
    pub data_dir: PathBuf,
    /// The root the emulated APIs advertise (in `Location` headers, `@odata.nextLink`,
    /// discovery documents, the tokens' `iss`) and that `env()` reports: `https_url` when
    /// HTTPS is on, else `http_url`. One root for both listeners, so a token's issuer does
    /// not depend on the listener it was asked on, as in Entra.
    pub base_url: String,
    /// The emulated APIs over plain HTTP, e.g. `http://127.0.0.1:41234`.
    pub http_url: String,
    /// The emulated APIs over HTTPS, when `SandboxConfig::https_listen` is set.
    pub https_url: Option<String>,
    /// The CA certificate (PEM) that HTTPS clients must trust, when HTTPS is on.
    pub ca_file: Option<PathBuf>,
    /// The control API's root.
    pub control_url: String,
    /// The cluster admin's bearer token (the kubeconfig's user, in `system:masters`).
    pub kubernetes_token: String,
    shutdown: tokio::sync::watch::Sender<bool>,
    servers: Vec<tokio::task::JoinHandle<()>>,
    /// The fault rules in force (also set through the control API's `/faults`).
    pub faults: Arc<faults::Faults>,
    /// The mutating requests answered (also on the control API's `/requests`).
    pub requests: Arc<requests::RequestLog>,
    docs: Documents,
}

impl Sandbox {
    /// Starts the sandbox on `config`'s addresses; returns once it accepts connections.
    pub async fn start(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        // The workspace's one TLS stack, for the clients in this process (reqwest is built
        // with `rustls-no-provider`, and refuses to build a client with no provider). Fails,
        // harmlessly, if the application installed its own.
        let _ = rustls::crypto::ring::default_provider().install_default();
        std::fs::create_dir_all(&config.data_dir).map_err(|source| SandboxError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let docs = Documents::open(&config.data_dir.join("sandbox.db")).await?;
        let identity = identity(&docs).await?;
        let signer = Arc::new(tokens::Signer::open(
            &config.data_dir.join("signing-key.pem"),
        )?);
        let [http_bind, https_bind, control_bind] = addresses::resolve(&config)?;
        let (listener, addr) = addresses::bind(&config.data_dir, http_bind).await?;
        let (control, control_addr) = addresses::bind(&config.data_dir, control_bind).await?;
        let http_url = format!("http://{addr}");
        let https = match https_bind {
            Some(b) => Some(bind_https(&config.data_dir, b).await?),
            None => None,
        };
        addresses::keep(
            &config.data_dir,
            &addresses::Kept {
                listen: Some(addr),
                https_listen: https.as_ref().map(|(_, addr, _)| *addr),
                control_listen: Some(control_addr),
            },
        )?;
        let https_url = https.as_ref().map(|(_, addr, _)| format!("https://{addr}"));
        let base_url = https_url.clone().unwrap_or_else(|| http_url.clone());
        let platform = platform(&docs, &identity).await?;
        let faults = faults::Faults::new(config.fault_seed);
        let requests = requests::RequestLog::new();
        let arm = Arc::new(arm::Arm {
            docs: docs.clone(),
            identity: identity.clone(),
            config: config.arm.clone(),
            base_url: base_url.clone(),
            portal_url: format!("http://{control_addr}"),
            signer: signer.clone(),
            budgets: Default::default(),
        });
        let graph_state = Arc::new(graph::Graph {
            docs: docs.clone(),
            signer: signer.clone(),
            base_url: base_url.clone(),
            admin_app_id: platform.client_id.clone(),
            page_size: 100,
            throttle: graph::Throttle::per_10s(config.graph_requests_per_10s),
        });
        let graph_router = axum::Router::new()
            .route(
                &format!("{}/{{*path}}", graph::ROOT),
                axum::routing::any(graph::dispatch),
            )
            .with_state(graph_state);
        let github_token = github_token(&docs).await?;
        let github_state = Arc::new(github::GitHub {
            docs: docs.clone(),
            base_url: base_url.clone(),
            org: GITHUB_ORG.to_owned(),
            admin_token: github_token.clone(),
            rate: std::sync::Mutex::new((now_ms(), 0)),
            template_delay: config.github_template_delay,
            app_key: Arc::new(tokens::Signer::open(
                &config.data_dir.join("github-app.pem"),
            )?),
            mutations: github::MutationLimit::per_minute(config.github_mutations_per_minute),
            git: Default::default(),
        });
        let github_router = axum::Router::new()
            .route(
                &format!("{}/{{*path}}", github::ROOT),
                axum::routing::any(github::dispatch),
            )
            .with_state(github_state.clone());
        let issuer = Arc::new(actions::Issuer {
            signer: signer.clone(),
            base_url: base_url.clone(),
        });
        let actions_router = axum::Router::new()
            .route(
                &format!("{}/.well-known/openid-configuration", actions::PATH),
                axum::routing::get(actions::discovery),
            )
            .route(
                &format!("{}/.well-known/jwks", actions::PATH),
                axum::routing::get(actions::keys),
            )
            .with_state(issuer.clone());
        let entra = Arc::new(entra::Entra {
            docs: docs.clone(),
            identity: identity.clone(),
            signer: signer.clone(),
            base_url: base_url.clone(),
            codes: Default::default(),
        });
        let github_oauth = Arc::new(github_oauth::GitHubOAuth {
            docs: docs.clone(),
            codes: Default::default(),
        });
        let github_oauth_router = axum::Router::new()
            .route(
                github_oauth::AUTHORIZE,
                axum::routing::get(github_oauth::authorize),
            )
            .route(
                github_oauth::ACCESS_TOKEN,
                axum::routing::post(github_oauth::access_token),
            )
            .with_state(github_oauth);
        let kubernetes = kubernetes::Kubernetes::open(
            docs.clone(),
            signer.clone(),
            config.kubernetes.clone(),
            config.data_dir.clone(),
        )
        .await?;
        let kubernetes_token = kubernetes.admin_token.clone();
        let kubernetes_router = axum::Router::new()
            .route(kubernetes::ROOT, axum::routing::any(kubernetes::dispatch))
            .route(
                &format!("{}/{{*path}}", kubernetes::ROOT),
                axum::routing::any(kubernetes::dispatch),
            )
            .with_state(kubernetes);
        let arm_router = axum::Router::new().fallback(arm::dispatch).with_state(arm);
        let api = axum::Router::new()
            .route(
                "/{tenant}/oauth2/v2.0/token",
                axum::routing::post(entra::token),
            )
            .route(
                "/{tenant}/oauth2/v2.0/authorize",
                axum::routing::get(entra::authorize),
            )
            .route(
                "/{tenant}/v2.0/.well-known/openid-configuration",
                axum::routing::get(entra::discovery),
            )
            .route(
                "/{tenant}/discovery/v2.0/keys",
                axum::routing::get(entra::keys),
            )
            .route(entra::ERROR_PAGE, axum::routing::get(entra::error_page))
            .with_state(entra)
            .merge(graph_router)
            .merge(actions_router)
            .merge(github_router)
            .merge(github_oauth_router)
            .merge(kubernetes_router)
            .fallback_service(arm_router)
            // GitHub's web pages (`html_url`…) share the root with ARM.
            .layer(axum::middleware::from_fn_with_state(
                github_state,
                github::web::pages,
            ))
            .layer(axum::middleware::from_fn(run_to_completion))
            .layer(axum::middleware::from_fn_with_state(
                faults.clone(),
                faults::inject,
            ))
            .layer(axum::middleware::from_fn_with_state(
                requests.clone(),
                requests::record,
            ));
        let fault_rules = faults.clone();
        let control_app = control::router(docs.clone(), faults.clone(), requests.clone())
            .merge(
                axum::Router::new()
                    .route("/github-actions/tokens", axum::routing::post(actions::mint))
                    .with_state(issuer),
            )
            .merge(
                axum::Router::new()
                    .route("/sign-in-apps", axum::routing::post(signin::register_route))
                    .with_state(Arc::new(signin::Registrar {
                        docs: docs.clone(),
                        base_url: base_url.clone(),
                        tenant_id: identity.tenant_id.clone(),
                    })),
            );
        let (shutdown, watch) = tokio::sync::watch::channel(false);
        let mut servers = Vec::new();
        let mut ca_file = None;
        if let Some((tls, _, ca)) = https {
            servers.push(serve(tls, api.clone(), watch.clone()));
            ca_file = Some(ca);
        }
        servers.push(serve(listener, api, watch.clone()));
        servers.push(serve(control, control_app, watch));
        let sandbox = Sandbox {
            data_dir: config.data_dir.clone(),
            github_token,
            identity,
            platform,
            base_url,
            http_url,
            https_url,
            ca_file,
            control_url: format!("http://{control_addr}"),
            kubernetes_token,
            shutdown,
            servers,
            faults: fault_rules,
            requests,
            docs: docs.clone(),
        };
        let kubeconfig = sandbox.kubeconfig_file();
        tokens::write_private(&kubeconfig, sandbox.kubeconfig().as_bytes()).map_err(|source| {
            SandboxError::DataDir {
                path: kubeconfig,
                source,
            }
        })?;
        Ok(sandbox)
    }

    /// What a client needs, as `KEY=value` pairs (also written to `DATA_DIR/sandbox.env`
    /// by `paddock sandbox`). The URLs are `base_url`'s: `https://` when HTTPS is on, and
    /// then `PADDOCK_SANDBOX_CA_FILE` names the CA to trust.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            (
                "PADDOCK_SANDBOX_GITHUB_URL",
                format!("{}{}", self.base_url, github::ROOT),
            ),
            ("PADDOCK_SANDBOX_GITHUB_ORG", GITHUB_ORG.to_owned()),
            ("PADDOCK_SANDBOX_GITHUB_TOKEN", self.github_token.clone()),
            ("PADDOCK_SANDBOX_GITHUB_APP_ID", github::APP_ID.to_string()),
            (
                "PADDOCK_SANDBOX_GITHUB_APP_KEY_FILE",
                self.data_dir.join("github-app.pem").display().to_string(),
            ),
            (
                "PADDOCK_SANDBOX_GITHUB_INSTALLATION_ID",
                github::INSTALLATION_ID.to_string(),
            ),
            ("PADDOCK_SANDBOX_ARM_URL", self.base_url.clone()),
            (
                "PADDOCK_SANDBOX_GRAPH_URL",
                format!("{}{}", self.base_url, graph::ROOT),
            ),
            ("PADDOCK_SANDBOX_AUTHORITY_URL", self.base_url.clone()),
            ("PADDOCK_SANDBOX_TENANT_ID", self.identity.tenant_id.clone()),
            ("PADDOCK_SANDBOX_USER_DOMAIN", graph::USER_DOMAIN.to_owned()),
            ("PADDOCK_SANDBOX_CLIENT_ID", self.platform.client_id.clone()),
            (
                "PADDOCK_SANDBOX_CLIENT_SECRET",
                self.platform.client_secret.clone(),
            ),
            (
                "PADDOCK_SANDBOX_SUBSCRIPTION_ID",
                self.identity.subscription_id.clone(),
            ),
            (
                "PADDOCK_SANDBOX_OIDC_ISSUER",
                actions::issuer(&self.base_url),
            ),
            ("PADDOCK_SANDBOX_CONTROL_URL", self.control_url.clone()),
            // The same APIs over plain HTTP, for clients that cannot be given the CA.
            ("PADDOCK_SANDBOX_HTTP_URL", self.http_url.clone()),
            ("PADDOCK_SANDBOX_K8S_URL", self.kubernetes_url()),
            (
                "PADDOCK_SANDBOX_KUBECONFIG",
                self.kubeconfig_file().display().to_string(),
            ),
        ];
        if let Some(ca) = &self.ca_file {
            env.push(("PADDOCK_SANDBOX_CA_FILE", ca.display().to_string()));
        }
        env
    }

    /// A person of the organization: a GitHub user `login` and a directory user
    /// `login@USER_DOMAIN` (what a company's identity provisioning would have made).
    pub async fn add_person(&self, login: &str) -> Result<(), SandboxError> {
        github::create_user(&self.docs, login, Some(login)).await?;
        graph::create_user(&self.docs, login).await?;
        Ok(())
    }

    /// Registers a sign-in application (OpenID Connect with Entra, OAuth with GitHub) that
    /// may redirect to `redirect_uris`; the control API's `POST /sign-in-apps` does the
    /// same. People to sign in come from [`Sandbox::add_person`].
    pub async fn register_sign_in_app(
        &self,
        redirect_uris: &[String],
    ) -> Result<SignInApps, SandboxError> {
        signin::register(
            &self.docs,
            &self.base_url,
            &self.identity.tenant_id,
            redirect_uris,
        )
        .await
    }

    /// The Kubernetes API server, as a kubeconfig's `server` names it.
    pub fn kubernetes_url(&self) -> String {
        format!("{}{}", self.base_url, kubernetes::ROOT)
    }

    /// `DATA_DIR/kubeconfig`, written on start: the sandbox cluster as `cluster-admin`.
    pub fn kubeconfig_file(&self) -> PathBuf {
        self.data_dir.join("kubeconfig")
    }

    /// The kubeconfig of the sandbox cluster, for kubectl and client libraries.
    pub fn kubeconfig(&self) -> String {
        let trust = match &self.ca_file {
            Some(ca) => format!("    certificate-authority: {}\n", ca.display()),
            None => String::new(),
        };
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: paddock-sandbox\n  cluster:\n    server: {server}\n{trust}\
             users:\n- name: sandbox-admin\n  user:\n    token: {token}\n\
             contexts:\n- name: paddock-sandbox\n  context:\n    cluster: paddock-sandbox\n    user: sandbox-admin\n    namespace: default\n\
             current-context: paddock-sandbox\n",
            server = self.kubernetes_url(),
            token = self.kubernetes_token,
        )
    }

    /// Stops accepting connections and waits for the servers to finish.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for s in self.servers {
            let _ = s.await;
        }
    }
}

/// Binds the HTTPS listener on `listen`, with a certificate from the CA kept in `data_dir`:
/// the listener, its address and the CA file.
async fn bind_https(
    data_dir: &Path,
    bind: addresses::Bind,
) -> Result<(tls::TlsListener, SocketAddr, PathBuf), SandboxError> {
    let ca = tls::Authority::open(data_dir)?;
    let config = ca.server_config(bind.addr.ip())?;
    let listen_error = |source| addresses::bind_error(data_dir, bind, source);
    let tcp = TcpListener::bind(bind.addr).await.map_err(listen_error)?;
    let addr = tcp.local_addr().map_err(listen_error)?;
    let listener = tls::TlsListener::new(tcp, config).map_err(listen_error)?;
    Ok((listener, addr, ca.ca_file))
}

/// Serves `app` on `listener` until `stop` turns true, then lets open requests finish.
fn serve<L>(
    listener: L,
    app: axum::Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    tokio::spawn(async move {
        let stopped = async move {
            let _ = stop.wait_for(|stop| *stop).await;
        };
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await;
    })
}

async fn identity(docs: &Documents) -> Result<Identity, SandboxError> {
    let fresh = Identity {
        tenant_id: uuid_v4(),
        subscription_id: uuid_v4(),
    };
    docs.insert_new(
        "sandbox",
        "identity",
        "identity",
        &serde_json::to_value(&fresh).expect("serializable"),
    )
    .await?;
    let stored = docs
        .get("sandbox", "identity", "identity")
        .await?
        .expect("inserted or present");
    serde_json::from_value(stored).map_err(|e| SandboxError::Database(e.to_string()))
}

/// The sandbox's GitHub organization.
pub const GITHUB_ORG: &str = "paddock-sandbox";

/// The org-admin token: created on first start, then kept.
async fn github_token(docs: &Documents) -> Result<String, SandboxError> {
    let fresh = json!({ "token": format!("ghp_{}", new_id()) });
    docs.insert_new("sandbox", "githubToken", "admin", &fresh)
        .await?;
    let stored = docs
        .get("sandbox", "githubToken", "admin")
        .await?
        .expect("inserted or present");
    Ok(stored["token"].as_str().unwrap_or_default().to_owned())
}

/// The platform identity: registered on first start, Owner on the subscription, then kept.
async fn platform(docs: &Documents, identity: &Identity) -> Result<AppCredentials, SandboxError> {
    if let Some(stored) = docs.get("sandbox", "platform", "platform").await? {
        return serde_json::from_value(stored).map_err(|e| SandboxError::Database(e.to_string()));
    }
    let creds = entra::register_app(docs, "paddock-platform").await?;
    let scope = format!("/subscriptions/{}", identity.subscription_id);
    arm::grant(docs, identity, &scope, arm::OWNER_ROLE_ID, &creds.object_id).await?;
    docs.put(
        "sandbox",
        "platform",
        "platform",
        &serde_json::to_value(&creds).expect("serializable"),
    )
    .await?;
    Ok(creds)
}

/// A path segment with `%XX` escapes decoded (invalid UTF-8 replaced).
pub(crate) fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, ..) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A random version-4 UUID, as Azure ids are.
pub fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

pub(crate) fn new_id() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub(crate) fn rfc3339(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// A cloud finishes what it started when the client hangs up: the handler runs on a task of
/// its own, so a dropped connection cannot cancel it between two of its writes.
async fn run_to_completion(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match tokio::spawn(next.run(request)).await {
        Ok(response) => response,
        Err(e) => {
            use axum::response::IntoResponse;
            (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                format!("the sandbox's handler failed: {e}"),
            )
                .into_response()
        }
    }
}
