//! GitHub: teams and memberships, repositories (from a template too), team permissions,
//! branch protection, deployment environments with their secrets and variables, over
//! GitHub's REST API (github.com or GitHub Enterprise, whose API root ends in `/api/v3`).

use std::time::Duration;

/// How to reach an organization.
#[derive(Clone, Debug)]
pub struct GitHubConfig {
    /// The REST API root: `https://api.github.com`, or `https://HOST/api/v3`.
    pub api_url: String,
    pub org: String,
    pub auth: GitHubAuth,
    /// A CA to trust besides the system's (the sandbox's), PEM.
    pub ca_pem: Option<Vec<u8>>,
    /// How long a repository generated from a template may take to get its files.
    pub template_wait: Duration,
}

#[derive(Clone)]
pub enum GitHubAuth {
    /// A token with admin rights on the organization.
    Token(String),
    /// A GitHub App installed on the organization.
    App {
        app_id: String,
        installation_id: String,
        private_key_pem: String,
    },
}

impl std::fmt::Debug for GitHubAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GitHubAuth::Token(_) => f.write_str("Token([redacted])"),
            GitHubAuth::App { app_id, installation_id, .. } => write!(f, "App {{ app_id: {app_id}, installation_id: {installation_id} }}"),
        }
    }
}
