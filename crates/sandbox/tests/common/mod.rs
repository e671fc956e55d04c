//! Shared by the sandbox's integration tests; each test file uses part of it.
#![allow(dead_code)]

pub mod contract;
pub mod csdl;
pub mod github;
pub mod k8s;
pub mod swagger;

use paddock_sandbox::{AppCredentials, Sandbox, SandboxConfig};
use serde_json::Value;

/// A sandbox on its defaults in a fresh directory, which lives as long as the guard.
pub async fn start() -> (tempfile::TempDir, Sandbox) {
    start_with(|_| {}).await
}

/// A sandbox in a fresh directory, its defaults changed by `configure` first.
pub async fn start_with(
    configure: impl FnOnce(&mut SandboxConfig),
) -> (tempfile::TempDir, Sandbox) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SandboxConfig::new(dir.path());
    configure(&mut config);
    (dir, Sandbox::start(config).await.unwrap())
}

/// Posts a form to the sandbox's Entra token endpoint for `tenant`: status and body.
pub async fn post_token(s: &Sandbox, tenant: &str, form: &str) -> (reqwest::StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/{tenant}/oauth2/v2.0/token", s.base_url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// An ARM token for `creds`, from the sandbox's Entra token endpoint.
pub async fn token(s: &Sandbox, creds: &AppCredentials) -> String {
    token_for(s, creds, "https://management.azure.com").await
}

/// A client that presents `creds`' token on every request.
pub async fn client_as(s: &Sandbox, creds: &AppCredentials) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let value = format!("Bearer {}", token(s, creds).await);
    headers.insert(reqwest::header::AUTHORIZATION, value.parse().unwrap());
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// A client acting as the platform identity (Owner on the subscription).
pub async fn platform_client(s: &Sandbox) -> reqwest::Client {
    client_as(s, &s.platform).await
}

/// Registers a new application through the control API.
pub async fn register(s: &Sandbox, name: &str) -> AppCredentials {
    let r = reqwest::Client::new()
        .post(format!("{}/principals", s.control_url))
        .json(&serde_json::json!({"displayName": name}))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    AppCredentials {
        client_id: v["clientId"].as_str().unwrap().into(),
        client_secret: v["clientSecret"].as_str().unwrap().into(),
        object_id: v["objectId"].as_str().unwrap().into(),
    }
}

/// A token for `creds` and a resource (`https://graph.microsoft.com`, say).
pub async fn token_for(s: &Sandbox, creds: &AppCredentials, resource: &str) -> String {
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&scope={}%2F.default",
        creds.client_id,
        creds.client_secret,
        resource.replace(':', "%3A").replace('/', "%2F")
    );
    let (_, json) = post_token(s, &s.identity.tenant_id, &form).await;
    json["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {json}"))
        .to_owned()
}
