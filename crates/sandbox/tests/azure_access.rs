//! Who gets into the sandbox's Azure, and what a client learns on the way: ARM's cloud
//! metadata document (anonymous, as ARM serves it), the subscriptions and tenants a caller
//! sees, the token endpoint refusing resources the tenant does not have (`AADSTS500011`),
//! and Microsoft Graph refusing absent, malformed, expired and other audiences' tokens in
//! Graph's own words.

mod common;

use paddock_sandbox::Sandbox;
use reqwest::StatusCode;
use serde_json::Value;

async fn get(url: &str, authorization: Option<&str>) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(a) = authorization {
        request = request.header("authorization", a);
    }
    let r = request.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The token endpoint's answer for the platform identity and `scope`.
async fn token_response(s: &Sandbox, scope: &str) -> (StatusCode, Value) {
    let body = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
        s.platform.client_id,
        s.platform.client_secret,
        scope
            .replace(':', "%3A")
            .replace('/', "%2F")
            .replace(' ', "%20")
    );
    common::post_token(s, &s.identity.tenant_id, &body).await
}

#[tokio::test]
async fn arm_serves_its_cloud_metadata_to_anyone_naming_the_sandbox() {
    let (_dir, s) = common::start().await;
    let (status, cloud) = get(
        &format!("{}/metadata/endpoints?api-version=2022-09-01", s.base_url),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{cloud}");
    assert_eq!(cloud["name"], paddock_sandbox::arm::CLOUD_NAME);
    assert_eq!(cloud["resourceManager"], format!("{}/", s.base_url));
    assert_eq!(
        cloud["authentication"]["loginEndpoint"],
        format!("{}/", s.base_url)
    );
    assert_eq!(cloud["authentication"]["identityProvider"], "AAD");
    assert_eq!(
        cloud["authentication"]["audiences"][0],
        "https://management.core.windows.net/"
    );
    assert_eq!(
        cloud["microsoftGraphResourceId"],
        format!("{}/graph/", s.base_url)
    );
    for field in [
        "portal",
        "media",
        "graphAudience",
        "batch",
        "vmImageAliasDoc",
        "activeDirectoryDataLake",
        "sqlManagement",
        "appInsightsResourceId",
    ] {
        assert!(cloud[field].is_string(), "{field} in {cloud}");
    }
    assert_eq!(cloud["suffixes"]["keyVaultDns"], "vault.azure.net");

    // An api-version the document never had is refused as ARM refuses it.
    let (status, error) = get(
        &format!("{}/metadata/endpoints?api-version=2099-01-01", s.base_url),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"]["code"], "InvalidApiVersionParameter");
}

#[tokio::test]
async fn a_caller_sees_the_subscription_only_with_a_role_in_it() {
    let (_dir, s) = common::start().await;
    let versions = "api-version=2022-12-01";
    let platform = common::token(&s, &s.platform).await;
    let (status, listed) = get(
        &format!("{}/subscriptions?{versions}", s.base_url),
        Some(&format!("Bearer {platform}")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let subscription = &listed["value"][0];
    assert_eq!(subscription["subscriptionId"], s.identity.subscription_id);
    assert_eq!(subscription["tenantId"], s.identity.tenant_id);
    assert_eq!(subscription["state"], "Enabled");

    // An identity with no role anywhere signs in, and sees no subscription to work in.
    let stranger = common::register(&s, "no-roles").await;
    let token = format!("Bearer {}", common::token(&s, &stranger).await);
    let (_, listed) = get(
        &format!("{}/subscriptions?{versions}", s.base_url),
        Some(&token),
    )
    .await;
    assert_eq!(listed["value"], serde_json::json!([]));
    let (status, error) = get(
        &format!(
            "{}/subscriptions/{}?{versions}",
            s.base_url, s.identity.subscription_id
        ),
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["error"]["code"], "SubscriptionNotFound");
    let (_, tenants) = get(&format!("{}/tenants?{versions}", s.base_url), Some(&token)).await;
    assert_eq!(tenants["value"][0]["tenantId"], s.identity.tenant_id);

    // Anonymous callers learn nothing.
    let (status, _) = get(&format!("{}/subscriptions?{versions}", s.base_url), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_token_endpoint_refuses_resources_the_tenant_does_not_have() {
    let (_dir, s) = common::start().await;
    for scope in [
        "https://vault.example.com/.default",
        "https://graph.microsoft.com.evil/.default",
        "api://not-registered/.default",
    ] {
        let (status, refusal) = token_response(&s, scope).await;
        let resource = scope.trim_end_matches("/.default");
        assert_eq!(status, StatusCode::BAD_REQUEST, "{scope}: {refusal}");
        assert_eq!(refusal["error"], "invalid_resource");
        assert_eq!(refusal["error_codes"], serde_json::json!([500011]));
        let description = refusal["error_description"].as_str().unwrap();
        assert!(
            description.starts_with(&format!(
                "AADSTS500011: The resource principal named {resource} was not found in the tenant named {}.",
                s.identity.tenant_id
            )),
            "{description}"
        );
        for field in ["timestamp", "trace_id", "correlation_id", "error_uri"] {
            assert!(refusal[field].is_string(), "{field} in {refusal}");
        }
        assert!(refusal.get("access_token").is_none());
    }

    // ARM (both its names, with az's doubled slash), Graph (public and the sandbox's own
    // root) and a registered application, by client id or identifier URI, are known.
    let app = common::register(&s, "an-api").await;
    let graph = reqwest::Client::new();
    let graph_token = common::token_for(&s, &s.platform, "https://graph.microsoft.com").await;
    let found: Value = graph
        .get(format!(
            "{}/graph/v1.0/applications(appId='{}')",
            s.base_url, app.client_id
        ))
        .bearer_auth(&graph_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = graph
        .patch(format!(
            "{}/graph/v1.0/applications/{}",
            s.base_url,
            found["id"].as_str().unwrap()
        ))
        .bearer_auth(&graph_token)
        .json(&serde_json::json!({"identifierUris": ["api://an-api"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    for scope in [
        "https://management.azure.com/.default".to_owned(),
        "https://management.core.windows.net//.default".to_owned(),
        "https://graph.microsoft.com/.default".to_owned(),
        format!("{}/graph//.default", s.base_url),
        format!("{}/.default", app.client_id),
        "api://an-api/.default".to_owned(),
    ] {
        let (status, answer) = token_response(&s, &scope).await;
        assert_eq!(status, StatusCode::OK, "{scope}: {answer}");
        assert!(answer["access_token"].is_string());
    }
}

#[tokio::test]
async fn graph_refuses_tokens_in_graphs_own_words() {
    let (_dir, s) = common::start().await;
    let url = format!("{}/graph/v1.0/applications", s.base_url);
    let arm_token = common::token(&s, &s.platform).await;
    let graph_token = common::token_for(&s, &s.platform, "https://graph.microsoft.com").await;
    let tampered = {
        let mut parts: Vec<&str> = graph_token.split('.').collect();
        let arm_claims = arm_token.split('.').nth(1).unwrap();
        parts[1] = arm_claims;
        parts.join(".")
    };
    let cases = [
        (None, "Access token is empty."),
        (Some("Bearer ".to_owned()), "Access token is empty."),
        (
            Some("Bearer not-a-token".to_owned()),
            "IDX14100: JWT is not well formed, there are no dots (.).",
        ),
        (
            Some("Bearer %%%.%%%.%%%".to_owned()),
            "IDX14102: Unable to decode the header",
        ),
        (
            Some(format!("Bearer {arm_token}")),
            "Access token validation failure. Invalid audience.",
        ),
        (
            Some(format!("Bearer {tampered}")),
            "Access token validation failure.",
        ),
    ];
    for (authorization, message) in cases {
        let (status, body) = get(&url, authorization.as_deref()).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{authorization:?}: {body}"
        );
        let error = &body["error"];
        assert_eq!(error["code"], "InvalidAuthenticationToken");
        assert!(
            error["message"].as_str().unwrap().starts_with(message),
            "{authorization:?}: {body}"
        );
        for field in ["date", "request-id", "client-request-id"] {
            assert!(error["innerError"][field].is_string(), "{body}");
        }
    }

    // A token for the sandbox's own Graph resource id (what az asks for) is Graph's.
    let own = common::token_for(&s, &s.platform, &format!("{}/graph/", s.base_url)).await;
    let (status, _) = get(&url, Some(&format!("Bearer {own}"))).await;
    assert_eq!(status, StatusCode::OK);
}
