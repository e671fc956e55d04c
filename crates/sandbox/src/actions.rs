//! The GitHub Actions OIDC issuer: a discovery document and keys, and — through the
//! control API only — the minting of the token a workflow run would receive, so tests can
//! play a workflow of a given repository and environment.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::now_ms;
use crate::tokens::Signer;

/// Where the issuer lives under the emulated APIs' root.
pub const PATH: &str = "/github-actions";

/// The issuer URL (`iss`), as clients and federated credentials name it.
pub fn issuer(base_url: &str) -> String {
    format!("{base_url}{PATH}")
}

pub(crate) struct Issuer {
    pub signer: Arc<Signer>,
    pub base_url: String,
}

pub(crate) async fn discovery(State(issuer_state): State<Arc<Issuer>>) -> Response {
    let iss = issuer(&issuer_state.base_url);
    axum::Json(json!({
        "issuer": iss,
        "jwks_uri": format!("{iss}/.well-known/jwks"),
        "subject_types_supported": ["public", "pairwise"],
        "response_types_supported": ["id_token"],
        "claims_supported": ["sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref", "repository", "repository_owner", "environment", "run_id", "workflow", "actor"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid"],
    }))
    .into_response()
}

pub(crate) async fn keys(State(issuer_state): State<Arc<Issuer>>) -> Response {
    axum::Json(issuer_state.signer.jwks()).into_response()
}

/// What a workflow run is: the token's claims come from it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Run {
    /// `ORG/REPO`.
    pub repository: String,
    /// The deployment environment the job runs in, if any.
    #[serde(default)]
    pub environment: Option<String>,
    #[serde(default = "default_ref")]
    pub r#ref: String,
    #[serde(default = "default_audience")]
    pub audience: String,
    #[serde(default = "default_actor")]
    pub actor: String,
}

fn default_ref() -> String {
    "refs/heads/main".into()
}
fn default_audience() -> String {
    "api://AzureADTokenExchange".into()
}
fn default_actor() -> String {
    "octocat".into()
}

/// Control API: mints the token GitHub would give this run (valid 10 minutes).
pub(crate) async fn mint(
    State(issuer_state): State<Arc<Issuer>>,
    body: axum::body::Bytes,
) -> Response {
    let run: Run = match serde_json::from_slice(&body) {
        Ok(run) => run,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("a workflow run: {e}")).into_response(),
    };
    let Some((owner, _)) = run.repository.split_once('/') else {
        return (StatusCode::BAD_REQUEST, "repository: expected ORG/REPO").into_response();
    };
    let subject = match &run.environment {
        Some(env) => format!("repo:{}:environment:{env}", run.repository),
        None => format!("repo:{}:ref:{}", run.repository, run.r#ref),
    };
    let now = now_ms() / 1000;
    let claims = json!({
        "iss": issuer(&issuer_state.base_url),
        "sub": subject,
        "aud": run.audience,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": crate::uuid_v4(),
        "ref": run.r#ref,
        "repository": run.repository,
        "repository_owner": owner,
        "environment": run.environment,
        "actor": run.actor,
        "run_id": (now % 1_000_000_000).to_string(),
    });
    axum::Json(json!({ "value": issuer_state.signer.sign(&claims) })).into_response()
}
