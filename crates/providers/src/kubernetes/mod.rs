//! Kubernetes: namespaces (delete waits for termination), service accounts and their
//! tokens, role bindings, resource quotas, limit ranges and network policies, written with
//! server-side apply.

use std::path::PathBuf;

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
