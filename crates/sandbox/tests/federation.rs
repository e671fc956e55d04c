//! Workload identity federation: a GitHub Actions run's token is exchanged for an Azure
//! token only by the application whose federated credential names exactly that run's
//! repository and environment — a test workflow cannot act as prod.

mod common;

use paddock_sandbox::Sandbox;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn mint(s: &Sandbox, run: Value) -> String {
    let r: Value = reqwest::Client::new()
        .post(format!("{}/github-actions/tokens", s.control_url))
        .json(&run)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["value"].as_str().unwrap().to_owned()
}

async fn exchange(s: &Sandbox, client_id: &str, assertion: &str) -> (StatusCode, Value) {
    let body = format!(
        "grant_type=client_credentials&client_id={client_id}&scope=https%3A%2F%2Fmanagement.azure.com%2F.default\
         &client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={assertion}"
    );
    common::post_token(s, &s.identity.tenant_id, &body).await
}

#[tokio::test]
async fn only_the_matching_environment_can_sign_in() {
    let (_dir, s) = common::start().await;
    let issuer = s
        .env()
        .into_iter()
        .find(|(k, _)| *k == "PADDOCK_SANDBOX_OIDC_ISSUER")
        .unwrap()
        .1;
    let graph = {
        let token = common::token_for(&s, &s.platform, "https://graph.microsoft.com").await;
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        reqwest::Client::builder()
            .default_headers(h)
            .build()
            .unwrap()
    };
    let root = format!("{}/graph/v1.0", s.base_url);
    // The test stage's identity: an application, its service principal, and a federated
    // credential for the repository's `test` environment only.
    let app: Value = graph
        .post(format!("{root}/applications"))
        .json(&json!({"displayName": "checkout-test"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (app_object, client_id) = (app["id"].as_str().unwrap(), app["appId"].as_str().unwrap());
    let sp: Value = graph
        .post(format!("{root}/servicePrincipals"))
        .json(&json!({"appId": client_id}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fic = json!({"name": "github-test", "issuer": issuer, "subject": "repo:acme/checkout:environment:test", "audiences": ["api://AzureADTokenExchange"]});
    let r = graph
        .post(format!(
            "{root}/applications/{app_object}/federatedIdentityCredentials"
        ))
        .json(&fic)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    let test_run = mint(
        &s,
        json!({"repository": "acme/checkout", "environment": "test"}),
    )
    .await;
    let (status, token) = exchange(&s, client_id, &test_run).await;
    assert_eq!(status, StatusCode::OK, "{token}");
    let access = token["access_token"].as_str().unwrap();
    let claims: Value = {
        use base64::Engine as _;
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(access.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(
        claims["oid"], sp["id"],
        "the Azure token is the service principal's"
    );

    let refused = [
        ("a prod run", mint(&s, json!({"repository": "acme/checkout", "environment": "prod"})).await, 70021),
        ("another repository", mint(&s, json!({"repository": "acme/other", "environment": "test"})).await, 70021),
        ("a run outside any environment", mint(&s, json!({"repository": "acme/checkout"})).await, 70021),
        ("another audience", mint(&s, json!({"repository": "acme/checkout", "environment": "test", "audience": "api://Other"})).await, 70021),
        ("an Entra token, not a GitHub one", common::token(&s, &s.platform).await, 700211),
        ("a forged token", format!("{}.forged", &test_run[..test_run.rfind('.').unwrap()]), 50027),
    ];
    for (what, assertion, code) in refused {
        let (status, err) = exchange(&s, client_id, &assertion).await;
        assert_eq!(
            (status, err["error_codes"][0].as_u64()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{what}: {err}"
        );
    }
    let discovery: Value = reqwest::get(format!("{issuer}/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], json!(issuer));
    // Minting is the control API's, not the emulated APIs'.
    let r = reqwest::Client::new()
        .post(format!("{}/github-actions/tokens", s.base_url))
        .json(&json!({"repository": "acme/checkout"}))
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), StatusCode::OK);
    s.stop().await;
}
