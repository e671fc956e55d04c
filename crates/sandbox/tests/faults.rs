//! Fault injection through the control API: failures in each API's own shape, 429 with
//! Retry-After, dropped connections, latency, and draws that replay with the same seed.

mod common;

use std::time::{Duration, Instant};

use paddock_sandbox::Sandbox;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn start(seed: u64) -> (tempfile::TempDir, Sandbox) {
    common::start_with(|config| config.fault_seed = seed).await
}

async fn set_faults(s: &Sandbox, rules: Value) -> reqwest::Response {
    reqwest::Client::new()
        .put(format!("{}/faults", s.control_url))
        .json(&rules)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn injected_failures_look_like_the_apis_own() {
    let (_dir, s) = start(7).await;
    let c = common::platform_client(&s).await;
    let groups = format!(
        "{}/subscriptions/{}/resourcegroups",
        s.base_url, s.identity.subscription_id
    );
    let r = set_faults(&s, json!([
        {"api": "arm", "method": "GET", "pathContains": "/rg-flaky", "probability": 1.0, "error": "503", "retryAfterSecs": 3},
        {"api": "arm", "method": "GET", "pathContains": "/rg-throttled", "probability": 1.0, "error": "429"},
        {"api": "arm", "method": "GET", "pathContains": "/rg-reset", "probability": 1.0, "error": "reset"},
        {"api": "arm", "method": "GET", "pathContains": "/rg-slow", "probability": 1.0, "latencyMs": 300},
    ]))
    .await;
    assert_eq!(r.status(), StatusCode::OK);

    let r = c
        .get(format!("{groups}/rg-flaky?api-version=2024-11-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["retry-after"], "3");
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "ServiceUnavailable"
    );

    let r = c
        .get(format!("{groups}/rg-throttled?api-version=2024-11-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "TooManyRequests"
    );

    let dropped = async {
        c.get(format!("{groups}/rg-reset?api-version=2024-11-01"))
            .send()
            .await?
            .bytes()
            .await
    };
    assert!(dropped.await.is_err(), "the connection drops mid-response");

    let started = Instant::now();
    let r = c
        .get(format!("{groups}/rg-slow?api-version=2024-11-01"))
        .send()
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the latency was added"
    );
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "then the request is served as usual"
    );

    // Writes were not targeted.
    let r = c
        .put(format!("{groups}/rg-flaky?api-version=2024-11-01"))
        .json(&json!({"location": "westeurope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        reqwest::Client::new()
            .delete(format!("{}/faults", s.control_url))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        c.get(format!("{groups}/rg-flaky?api-version=2024-11-01"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    s.stop().await;
}

/// The statuses of 30 requests under a 50% fault rule.
async fn outcomes(seed: u64) -> Vec<u16> {
    let (_dir, s) = start(seed).await;
    let c = common::platform_client(&s).await;
    set_faults(
        &s,
        json!([{"api": "arm", "probability": 0.5, "error": "500"}]),
    )
    .await;
    let url = format!(
        "{}/subscriptions/{}/resourcegroups?api-version=2024-11-01",
        s.base_url, s.identity.subscription_id
    );
    let mut statuses = Vec::new();
    for _ in 0..30 {
        statuses.push(c.get(&url).send().await.unwrap().status().as_u16());
    }
    s.stop().await;
    statuses
}

#[tokio::test]
async fn faults_replay_with_the_same_seed() {
    let (a, b, other) = (outcomes(42).await, outcomes(42).await, outcomes(43).await);
    assert_eq!(a, b, "same seed, same faults");
    assert!(a.contains(&500) && a.contains(&200), "{a:?}");
    assert_ne!(a, other, "another seed, other faults");
}

#[tokio::test]
async fn a_bad_rule_is_refused_naming_the_field() {
    let (_dir, s) = start(1).await;
    let r = set_faults(&s, json!([{"api": "arm", "probability": 2.0}])).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert_eq!(
        r.json::<Value>().await.unwrap()["detail"],
        "rule 0: probability: 2 is not between 0 and 1"
    );
    let r = set_faults(&s, json!([{"api": "gitlab", "probability": 1.0}])).await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["detail"],
        "rule 0: api: `gitlab` is not one of arm, entra, graph, github, github-actions, kubernetes, *"
    );
    let current: Value = reqwest::get(format!("{}/faults", s.control_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        current,
        json!({"seed": 1, "rules": []}),
        "nothing half-applied"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_rule_fires_on_its_own_api_only_and_fails_in_its_shape() {
    let (_dir, s) = start(3).await;
    let r = set_faults(
        &s,
        json!([
            {"api": "graph", "probability": 1.0, "error": "503", "retryAfterSecs": 2},
            {"api": "github", "probability": 1.0, "error": "500"},
            {"api": "kubernetes", "probability": 1.0, "error": "429"},
        ]),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    // Entra is not targeted: tokens still come.
    let graph_token = common::token_for(&s, &s.platform, "https://graph.microsoft.com").await;
    let http = reqwest::Client::new();

    let r = http
        .get(format!("{}/graph/v1.0/applications", s.base_url))
        .bearer_auth(&graph_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["retry-after"], "2");
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["error"]["code"], "serviceNotAvailable", "{err}");
    for field in ["date", "request-id", "client-request-id"] {
        assert!(err["error"]["innerError"][field].is_string(), "{err}");
    }

    let r = http
        .get(format!(
            "{}/api/v3/orgs/{}",
            s.base_url,
            paddock_sandbox::GITHUB_ORG
        ))
        .bearer_auth(&s.github_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let err: Value = r.json().await.unwrap();
    assert!(
        err["message"].is_string() && err["documentation_url"].is_string(),
        "GitHub's shape: {err}"
    );

    // Faults strike before the API sees the request, so no token is needed to meet one.
    let r = http
        .get(format!("{}/kubernetes/api/v1/namespaces", s.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "The request failed with status 429 Too Many Requests (injected by the sandbox).",
            "reason": "TooManyRequests", "details": {"retryAfterSeconds": 1}, "code": 429,
        }),
        "a Kubernetes Status"
    );

    // Elsewhere requests are served as usual.
    let arm = common::platform_client(&s).await;
    let groups = format!(
        "{}/subscriptions/{}/resourcegroups?api-version=2024-11-01",
        s.base_url, s.identity.subscription_id
    );
    assert_eq!(
        arm.get(&groups).send().await.unwrap().status(),
        StatusCode::OK
    );
    let issuer = format!(
        "{}/github-actions/.well-known/openid-configuration",
        s.base_url
    );
    assert_eq!(
        http.get(&issuer).send().await.unwrap().status(),
        StatusCode::OK
    );

    // The Actions issuer is an API of its own: its rule leaves the REST API alone.
    set_faults(
        &s,
        json!([{"api": "github-actions", "probability": 1.0, "error": "502"}]),
    )
    .await;
    assert_eq!(
        http.get(&issuer).send().await.unwrap().status(),
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(
        http.get(format!(
            "{}/api/v3/orgs/{}",
            s.base_url,
            paddock_sandbox::GITHUB_ORG
        ))
        .bearer_auth(&s.github_token)
        .send()
        .await
        .unwrap()
        .status(),
        StatusCode::OK
    );
    s.stop().await;
}

/// The request log names each change's caller as the clouds' activity logs do — its
/// `User-Agent` and its client request id — and how it was answered, an injected fault
/// included; reads are not in it.
#[tokio::test]
async fn the_request_log_keeps_each_change_with_its_caller_and_answer() {
    let (_dir, s) = start(3).await;
    let c = common::platform_client(&s).await;
    let groups = format!(
        "{}/subscriptions/{}/resourcegroups",
        s.base_url, s.identity.subscription_id
    );
    let r = set_faults(&s, json!([
        {"api": "arm", "method": "PUT", "pathContains": "/rg-refused", "probability": 1.0, "error": "503"},
    ]))
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    for (name, status) in [("rg-logged", 201), ("rg-refused", 503)] {
        let r = c
            .put(format!("{groups}/{name}?api-version=2024-11-01"))
            .header("user-agent", "paddock/0.1.0 (operation op_soak)")
            .header("x-ms-client-request-id", format!("id-{name}"))
            .json(&json!({"location": "westeurope"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{name}");
    }
    let r = c
        .get(format!("{groups}/rg-logged?api-version=2024-11-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let log: Value = reqwest::get(format!("{}/requests", s.control_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ours: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["path"].as_str().unwrap().contains("/rg-"))
        .collect();
    assert_eq!(ours.len(), 2, "the two PUTs, not the GET: {log}");
    for (e, (name, status, fault)) in ours.iter().zip([
        ("rg-logged", 201, Value::Null),
        ("rg-refused", 503, json!("503")),
    ]) {
        assert_eq!(e["api"], "arm");
        assert_eq!(e["method"], "PUT");
        assert!(e["path"].as_str().unwrap().ends_with(name), "{e}");
        assert_eq!(e["status"], status, "{e}");
        assert_eq!(e["fault"], fault, "{e}");
        assert_eq!(e["userAgent"], "paddock/0.1.0 (operation op_soak)");
        assert_eq!(e["clientRequestId"], format!("id-{name}"));
    }
    // `?after=` pages on.
    let first = ours[0]["seq"].as_u64().unwrap();
    let after: Value = reqwest::get(format!("{}/requests?after={first}", s.control_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        after
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["seq"].as_u64().unwrap() > first),
        "{after}"
    );
}
