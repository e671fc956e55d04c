//! Kubernetes: namespaces (delete waits for termination), service accounts and their
//! tokens, roles, role bindings, resource quotas, limit ranges and network policies,
//! written with server-side apply.
//!
//! Job: the `kubernetes` provider, over the shared HTTP layer ([`crate::http`]), reaching
//! a cluster as a kubeconfig ([`KubernetesConfig::from_kubeconfig`]) or a pod
//! ([`KubernetesConfig::in_cluster`]) says.
//!
//! Invariants:
//! - Every write is a server-side apply (`PATCH …?fieldManager=paddock&force=true`):
//!   idempotent, so a retried or crashed create adopts what the first attempt made and
//!   never duplicates it; fields Paddock stops setting are removed, fields other managers
//!   own are left alone.
//! - An id is the object's natural key: `name` for a namespace, `namespace/name` for the
//!   rest. `read` rebuilds the inputs from the object alone, so `paddock import` works by
//!   id; what the API server adds (system labels, defaults) is left out.
//! - An object Paddock knew by another `uid` is another incarnation: `read` reports it
//!   gone and `delete` leaves it (a `uid` precondition), so replacing an object by one of
//!   the same name (a role binding whose role changes) never deletes the replacement.
//! - `delete` of something gone succeeds; a namespace's delete returns once it is gone,
//!   not while it is `Terminating`.
//!
//! Must not: log tokens, or write anything but with server-side apply.

mod client;
mod kubeconfig;
mod types;

use std::path::PathBuf;
use std::sync::Arc;

use crate::family::Family;
use crate::http::HttpError;

/// The field manager Paddock applies as, as `metadata.managedFields` records it.
pub const FIELD_MANAGER: &str = "paddock";

/// How to reach a cluster.
#[derive(Clone)]
pub struct KubernetesConfig {
    /// The API server, as a kubeconfig's `server` names it.
    pub server: String,
    pub auth: KubeAuth,
    /// The cluster's CA, PEM.
    pub ca_pem: Option<Vec<u8>>,
}

#[derive(Clone)]
pub enum KubeAuth {
    Token(String),
    /// A token file another process rotates (in-cluster service account).
    TokenFile(PathBuf),
    /// A client certificate and its key, PEM.
    ClientCertificate(Vec<u8>),
}

impl std::fmt::Debug for KubernetesConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesConfig")
            .field("server", &self.server)
            .field("auth", &self.auth)
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "[PEM]"))
            .finish()
    }
}

impl std::fmt::Debug for KubeAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KubeAuth::Token(_) => f.write_str("Token([redacted])"),
            KubeAuth::TokenFile(path) => write!(f, "TokenFile({})", path.display()),
            KubeAuth::ClientCertificate(_) => f.write_str("ClientCertificate([redacted])"),
        }
    }
}

/// The `kubernetes` provider for the cluster `config` names.
pub fn provider(config: &KubernetesConfig) -> Result<Family, HttpError> {
    let cluster = Arc::new(client::Cluster::new(config)?);
    Ok(Family::new("kubernetes", types::all(&cluster)))
}
