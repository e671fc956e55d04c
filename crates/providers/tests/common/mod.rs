//! Shared by the providers' tests: a sandbox cloud in a temp dir and each provider's
//! configuration pointing at it, and a way to run one resource through the provider
//! contract as the engine would.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use paddock_engine::provider::ResourceRef;
use paddock_engine::{Props, Provider, Value};
use paddock_providers::azure::AzureConfig;
use paddock_providers::entra::EntraConfig;
use paddock_providers::github::{GitHubAuth, GitHubConfig};
use paddock_providers::http::auth::{EntraSecret, EntraSignIn};
use paddock_providers::kubernetes::{KubeAuth, KubernetesConfig};
use paddock_sandbox::{Sandbox, SandboxConfig};
use serde_json::Value as Json;

/// A sandbox on its defaults (timings shortened) in a fresh directory.
pub async fn sandbox() -> (tempfile::TempDir, Sandbox) {
    sandbox_with(|_| {}).await
}

pub async fn sandbox_with(
    configure: impl FnOnce(&mut SandboxConfig),
) -> (tempfile::TempDir, Sandbox) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SandboxConfig::new(dir.path());
    config.arm.delete_delay = Duration::from_millis(300);
    config.arm.principal_replication_delay = Duration::from_millis(500);
    config.github_template_delay = Duration::from_millis(300);
    config.kubernetes.namespace_termination = Duration::from_millis(300);
    configure(&mut config);
    (dir, Sandbox::start(config).await.unwrap())
}

pub fn sign_in(s: &Sandbox) -> Arc<EntraSignIn> {
    Arc::new(EntraSignIn::new(
        &s.base_url,
        &s.identity.tenant_id,
        &s.platform.client_id,
        EntraSecret::ClientSecret(s.platform.client_secret.clone()),
    ))
}

pub fn github(s: &Sandbox) -> GitHubConfig {
    GitHubConfig {
        api_url: format!("{}{}", s.base_url, paddock_sandbox::GITHUB_ROOT),
        org: paddock_sandbox::GITHUB_ORG.to_owned(),
        auth: GitHubAuth::Token(s.github_token.clone()),
        ca_pem: None,
        template_wait: Duration::from_secs(30),
    }
}

/// GitHub through the sandbox's GitHub App, as a production install would be.
pub fn github_app(s: &Sandbox) -> GitHubConfig {
    let env: std::collections::HashMap<_, _> = s.env().into_iter().collect();
    let key = std::fs::read_to_string(&env["PADDOCK_SANDBOX_GITHUB_APP_KEY_FILE"]).unwrap();
    GitHubConfig {
        auth: GitHubAuth::App {
            app_id: env["PADDOCK_SANDBOX_GITHUB_APP_ID"].clone(),
            installation_id: env["PADDOCK_SANDBOX_GITHUB_INSTALLATION_ID"].clone(),
            private_key_pem: key,
        },
        ..github(s)
    }
}

pub fn azure(s: &Sandbox) -> AzureConfig {
    AzureConfig {
        arm_url: s.base_url.clone(),
        subscription_id: s.identity.subscription_id.clone(),
        sign_in: sign_in(s),
        ca_pem: None,
    }
}

pub fn entra(s: &Sandbox) -> EntraConfig {
    EntraConfig {
        graph_url: format!("{}/graph/v1.0", s.base_url),
        tenant_id: s.identity.tenant_id.clone(),
        sign_in: sign_in(s),
        user_domain: Some(paddock_sandbox::graph::USER_DOMAIN.to_owned()),
        ca_pem: None,
    }
}

pub fn kubernetes(s: &Sandbox) -> KubernetesConfig {
    KubernetesConfig {
        server: s.kubernetes_url(),
        auth: KubeAuth::Token(s.kubernetes_token.clone()),
        ca_pem: None,
    }
}

/// Everything in the sandbox, `{api: {kind: [document…]}}`, from its control API.
pub async fn inspect(s: &Sandbox) -> Json {
    reqwest::get(format!("{}/inspect", s.control_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// How many documents of `kind` the sandbox holds for `api`.
pub async fn count(s: &Sandbox, api: &str, kind: &str) -> usize {
    inspect(s).await[api][kind].as_array().map_or(0, Vec::len)
}

pub fn props(json: Json) -> Props {
    match Value::from_json(json) {
        Value::Map(m) => m,
        other => panic!("props must be an object, got {other:?}"),
    }
}

/// A resource reference for one creation attempt.
pub fn resource<'a>(ty: &'a str, urn: &'a str) -> ResourceRef<'a> {
    ResourceRef {
        ty,
        urn,
        token: "token-1",
        imported: false,
    }
}

/// Checks `inputs` against the type's schema, then creates the resource.
pub async fn create(p: &dyn Provider, ty: &str, inputs: Json) -> (String, Props) {
    let inputs = props(inputs);
    let failures = p.check(ty, &inputs).await;
    assert!(failures.is_empty(), "{ty}: {failures:?}");
    let urn = format!("urn:test:{ty}");
    let created = p
        .create(resource(ty, &urn), &inputs)
        .await
        .unwrap_or_else(|e| panic!("{ty}: {e}"));
    (created.id, created.outputs)
}

/// A request to the sandbox's Graph as the platform identity: status and body.
pub async fn graph(
    s: &Sandbox,
    method: reqwest::Method,
    path: &str,
    body: Option<Json>,
) -> (u16, Json) {
    let token = sign_in(s)
        .token(
            &reqwest::Client::new(),
            "https://graph.microsoft.com/.default",
        )
        .await
        .unwrap();
    let mut request = reqwest::Client::new()
        .request(method, format!("{}/graph/v1.0{path}", s.base_url))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Json::Null))
}

/// Creates a person in the sandbox's directory, `name@USER_DOMAIN`: their object id.
pub async fn graph_user(s: &Sandbox, name: &str) -> String {
    let upn = format!("{name}@{}", paddock_sandbox::graph::USER_DOMAIN);
    let body = serde_json::json!({
        "displayName": name,
        "userPrincipalName": upn,
        "mailNickname": name,
        "accountEnabled": true,
    });
    let (status, user) = graph(s, reqwest::Method::POST, "/users", Some(body)).await;
    assert_eq!(status, 201, "{user}");
    user["id"].as_str().unwrap().to_owned()
}

/// The token GitHub Actions would give a workflow run of `repository` (`ORG/REPO`) in
/// `environment`, from the sandbox's issuer.
pub async fn github_actions_token(s: &Sandbox, repository: &str, environment: &str) -> String {
    let run = serde_json::json!({"repository": repository, "environment": environment});
    let minted: Json = reqwest::Client::new()
        .post(format!("{}/github-actions/tokens", s.control_url))
        .json(&run)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    minted["value"].as_str().unwrap().to_owned()
}
