//! HTTPS: the emulated APIs over TLS with the sandbox's own CA, which clients trust through
//! `ca.pem` alone, and which is kept across restarts.

use std::net::SocketAddr;
use std::path::Path;

use base64::Engine as _;
use paddock_sandbox::tls::TlsError;
use paddock_sandbox::{Sandbox, SandboxConfig, SandboxError};
use serde_json::Value;

const ARM_VERSION: &str = "2024-11-01";

fn config(dir: &Path) -> SandboxConfig {
    let mut config = SandboxConfig::new(dir);
    config.https_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    config
}

async fn start(dir: &Path) -> Sandbox {
    Sandbox::start(config(dir)).await.unwrap()
}

/// A client that trusts the certificates in `ca_pem` and nothing else.
fn trusting(ca_pem: &[u8]) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(ca_pem).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .unwrap()
}

fn ca_pem(s: &Sandbox) -> Vec<u8> {
    std::fs::read(s.ca_file.as_ref().expect("HTTPS is on")).unwrap()
}

fn https(s: &Sandbox) -> &str {
    s.https_url.as_deref().expect("HTTPS is on")
}

/// A token for the platform identity and `resource`, asked of `root`'s token endpoint.
async fn token(client: &reqwest::Client, s: &Sandbox, root: &str, resource: &str) -> String {
    let response = client
        .post(format!("{root}/{}/oauth2/v2.0/token", s.identity.tenant_id))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            [
                ("grant_type", "client_credentials"),
                ("client_id", &s.platform.client_id),
                ("client_secret", &s.platform.client_secret),
                ("scope", &format!("{resource}/.default")),
            ]
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .join("&"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Whether `error`'s causes include a refused server certificate.
fn is_certificate_error(error: &reqwest::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(rustls::Error::InvalidCertificate(_)) = e.downcast_ref::<rustls::Error>() {
            return true;
        }
        // `io::Error::source` skips the error it wraps; `get_ref` is that error.
        cause = match e.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as _),
            None => e.source(),
        };
    }
    false
}

#[tokio::test]
async fn entra_arm_and_graph_over_https_trusting_only_the_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let root = https(&s).to_owned();
    assert!(root.starts_with("https://127.0.0.1:"), "{root}");
    assert_eq!(s.base_url, root, "with HTTPS on, the APIs advertise it");
    let client = trusting(&ca_pem(&s));

    let discovery: Value = client
        .get(format!(
            "{root}/{}/v2.0/.well-known/openid-configuration",
            s.identity.tenant_id
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for field in ["issuer", "token_endpoint", "jwks_uri"] {
        let url = discovery[field].as_str().unwrap();
        assert!(url.starts_with(&root), "{field}: {url}");
    }
    let keys = client
        .get(discovery["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(keys.status(), 200);

    let arm_token = token(&client, &s, &root, "https://management.azure.com").await;
    assert_eq!(claims(&arm_token)["iss"], discovery["issuer"]);
    let subscription = format!("{root}/subscriptions/{}", s.identity.subscription_id);
    let group = format!("{subscription}/resourcegroups/rg-tls?api-version={ARM_VERSION}");
    let created = client
        .put(&group)
        .bearer_auth(&arm_token)
        .json(&serde_json::json!({"location": "westeurope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let deleted = client
        .delete(&group)
        .bearer_auth(&arm_token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 202);
    let location = deleted.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(&root), "{location}");
    let operation = client
        .get(location)
        .bearer_auth(&arm_token)
        .send()
        .await
        .unwrap();
    assert!(operation.status().is_success(), "{}", operation.status());

    let graph_token = token(&client, &s, &root, "https://graph.microsoft.com").await;
    let apps = client
        .get(format!("{root}/graph/v1.0/applications"))
        .bearer_auth(&graph_token)
        .send()
        .await
        .unwrap();
    assert_eq!(apps.status(), 200);
    let apps: Value = apps.json().await.unwrap();
    let context = apps["@odata.context"].as_str().unwrap();
    assert!(context.starts_with(&root), "{context}");
    s.stop().await;
}

#[tokio::test]
async fn plain_http_still_serves_and_tokens_keep_one_issuer() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    assert!(s.http_url.starts_with("http://"), "{}", s.http_url);
    let plain = reqwest::Client::new();
    let over_http = token(&plain, &s, &s.http_url, "https://management.azure.com").await;
    let over_https = token(
        &trusting(&ca_pem(&s)),
        &s,
        https(&s),
        "https://management.azure.com",
    )
    .await;
    // As in Entra, the issuer is the tenant's, not the listener's.
    assert_eq!(claims(&over_http)["iss"], claims(&over_https)["iss"]);
    let groups = plain
        .get(format!(
            "{}/subscriptions/{}/resourcegroups?api-version={ARM_VERSION}",
            s.http_url, s.identity.subscription_id
        ))
        .bearer_auth(&over_https)
        .send()
        .await
        .unwrap();
    assert_eq!(groups.status(), 200);
    s.stop().await;
}

#[tokio::test]
async fn a_client_without_the_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let stranger = start(other.path()).await;
    let url = format!(
        "{}/{}/v2.0/.well-known/openid-configuration",
        https(&s),
        s.identity.tenant_id
    );
    // The system's roots, and another sandbox's CA: neither vouches for this sandbox.
    for client in [reqwest::Client::new(), trusting(&ca_pem(&stranger))] {
        let error = client.get(&url).send().await.unwrap_err();
        assert!(is_certificate_error(&error), "{error:?}");
    }
    assert_eq!(
        trusting(&ca_pem(&s))
            .get(&url)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    s.stop().await;
    stranger.stop().await;
}

#[tokio::test]
async fn the_ca_is_kept_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let first = start(dir.path()).await;
    let pem = ca_pem(&first);
    let key = dir.path().join("ca-key.pem");
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let key_bytes = std::fs::read(&key).unwrap();
    let client = trusting(&pem);
    first.stop().await;

    let second = start(dir.path()).await;
    assert_eq!(ca_pem(&second), pem);
    assert_eq!(std::fs::read(&key).unwrap(), key_bytes);
    let root = https(&second).to_owned();
    token(&client, &second, &root, "https://management.azure.com").await;
    let env = second.env();
    let get = |k: &str| {
        env.iter()
            .find(|(key, _)| *key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {k}"))
    };
    assert_eq!(
        get("PADDOCK_SANDBOX_CA_FILE"),
        dir.path().join("ca.pem").display().to_string()
    );
    assert_eq!(get("PADDOCK_SANDBOX_ARM_URL"), root);
    assert_eq!(get("PADDOCK_SANDBOX_AUTHORITY_URL"), root);
    assert!(get("PADDOCK_SANDBOX_GRAPH_URL").starts_with(&root));
    second.stop().await;

    // Without `ca.pem`, the same CA is written again from its key: old trust still works.
    std::fs::remove_file(dir.path().join("ca.pem")).unwrap();
    let third = start(dir.path()).await;
    let root = https(&third).to_owned();
    token(&client, &third, &root, "https://management.azure.com").await;
    third.stop().await;
}

#[tokio::test]
async fn a_ca_file_from_another_key_fails_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    start(dir.path()).await.stop().await;
    start(other.path()).await.stop().await;
    std::fs::copy(other.path().join("ca.pem"), dir.path().join("ca.pem")).unwrap();
    match Sandbox::start(config(dir.path())).await {
        Err(SandboxError::Tls(TlsError::CaMismatch { .. })) => {}
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("started with a ca.pem that is not its CA's"),
    }
}

#[tokio::test]
async fn https_is_refused_on_a_public_address() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SandboxConfig::new(dir.path());
    config.https_listen = Some("203.0.113.7:0".parse().unwrap());
    match Sandbox::start(config).await {
        Err(SandboxError::Tls(TlsError::HostNotPermitted(_))) => {}
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("the CA may not vouch for a public address"),
    }
}

#[tokio::test]
async fn without_https_there_is_no_ca() {
    let dir = tempfile::tempdir().unwrap();
    let s = Sandbox::start(SandboxConfig::new(dir.path()))
        .await
        .unwrap();
    assert_eq!(s.base_url, s.http_url);
    assert!(s.https_url.is_none() && s.ca_file.is_none());
    assert!(!dir.path().join("ca.pem").exists());
    assert!(s.env().iter().all(|(k, _)| *k != "PADDOCK_SANDBOX_CA_FILE"));
    s.stop().await;
}
