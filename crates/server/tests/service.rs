//! The server as a service: people sign in through identity providers (the sandbox's
//! Entra ID with OpenID Connect, its GitHub with OAuth) and get sessions whose changes
//! need the CSRF token; health, readiness and metrics; and a replica that stops hands its
//! running operation back, which the next one finishes.

mod common;

use std::time::Duration;

use common::{Auth, Backend, Rig};
use serde_json::json;

on_both_databases!(
    people_sign_in_with_an_identity_provider,
    a_session_changes_nothing_without_its_csrf_token,
    health_readiness_and_metrics,
    a_stopping_replica_hands_its_operation_back,
    what_serve_changes_at_start_is_its_operators_doing,
);

/// Follows a sign-in through the provider: the server's redirect, the provider's page
/// (the sandbox signs `hint` in at once), the callback; returns the session cookie.
async fn sign_in_via(rig: &Rig, provider: &str, hint_param: &str, hint: &str) -> String {
    let start = rig
        .send(
            rig.http
                .get(format!("{}/sign-in/provider/{provider}", rig.url)),
        )
        .await;
    assert_eq!(start.status, 303, "{}", start.text);
    let authorize = start.headers["location"].to_str().unwrap().to_owned();
    assert!(authorize.contains("code_challenge="), "PKCE: {authorize}");
    let at_provider = rig
        .send(rig.http.get(format!("{authorize}&{hint_param}={hint}")))
        .await;
    assert!(at_provider.status.is_redirection(), "{}", at_provider.text);
    let callback = at_provider.headers["location"].to_str().unwrap().to_owned();
    assert!(callback.starts_with(&rig.url), "{callback}");
    let done = rig.send(rig.http.get(&callback)).await;
    assert_eq!(done.status, 303, "{}", done.text);
    // A callback is good once.
    let again = rig.send(rig.http.get(&callback)).await;
    assert_eq!(again.status, 401, "{}", again.text);
    common::cookie(&done.headers, "paddock_session")
}

async fn people_sign_in_with_an_identity_provider(backend: Backend) {
    let rig = Rig::start_with_sign_in(backend).await;
    rig.sandbox.add_person("ada").await.unwrap();
    let page = rig
        .send(rig.http.get(format!("{}/sign-in", rig.url)))
        .await
        .expect(200);
    assert!(page.text.contains("/sign-in/provider/sandbox-entra"));

    let session = sign_in_via(
        &rig,
        "sandbox-entra",
        "login_hint",
        "ada@paddock-sandbox.onmicrosoft.com",
    )
    .await;
    let me = rig
        .send(
            rig.http
                .get(format!("{}/api/v1/me", rig.url))
                .header("cookie", format!("paddock_session={session}")),
        )
        .await
        .expect(200);
    assert_eq!(me.body["user"]["login"], "ada");
    assert_eq!(me.body["user"]["platformAdmin"], false);
    // The same person again is the same account.
    let again = sign_in_via(
        &rig,
        "sandbox-entra",
        "login_hint",
        "ada@paddock-sandbox.onmicrosoft.com",
    )
    .await;
    let me_again = rig
        .send(
            rig.http
                .get(format!("{}/api/v1/me", rig.url))
                .header("cookie", format!("paddock_session={again}")),
        )
        .await
        .expect(200);
    assert_eq!(me_again.body["user"]["id"], me.body["user"]["id"]);

    // GitHub's `ada` is not linked to the Paddock account Entra made: refused, not merged.
    let start = rig
        .send(
            rig.http
                .get(format!("{}/sign-in/provider/sandbox-github", rig.url)),
        )
        .await;
    let authorize = start.headers["location"].to_str().unwrap().to_owned();
    let at_github = rig
        .send(rig.http.get(format!("{authorize}&login=ada")))
        .await;
    let callback = at_github.headers["location"].to_str().unwrap().to_owned();
    let refused = rig.send(rig.http.get(&callback)).await.expect(409);
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("not linked"),
        "{}",
        refused.text
    );
    // A new person signs in with GitHub.
    rig.sandbox.add_person("bob").await.unwrap();
    let bob = sign_in_via(&rig, "sandbox-github", "login", "bob").await;
    let me = rig
        .send(
            rig.http
                .get(format!("{}/api/v1/me", rig.url))
                .header("cookie", format!("paddock_session={bob}")),
        )
        .await
        .expect(200);
    assert_eq!(me.body["user"]["login"], "bob");
    let audit = rig
        .get(&rig.admin(), "/api/v1/audit?actor=bob")
        .await
        .expect(200);
    let actions: Vec<&str> = audit
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["user.create", "session.create"]);
    rig.stop().await;
}

async fn a_session_changes_nothing_without_its_csrf_token(backend: Backend) {
    let rig = Rig::start(backend).await;
    let ada = rig.person("ada").await;
    let Auth::Session { cookie, csrf } = &ada else {
        unreachable!()
    };
    let without = rig
        .send(
            rig.http
                .post(format!("{}/api/v1/teams", rig.url))
                .header("cookie", format!("paddock_session={cookie}"))
                .json(&json!({"name": "payments"})),
        )
        .await
        .expect(403);
    assert!(without.body["detail"].as_str().unwrap().contains("CSRF"));
    let wrong = rig
        .send(
            rig.http
                .post(format!("{}/api/v1/teams", rig.url))
                .header("cookie", format!("paddock_session={cookie}"))
                .header("x-csrf-token", "guess")
                .json(&json!({"name": "payments"})),
        )
        .await
        .expect(403);
    assert_eq!(wrong.body["status"], 403);
    assert_eq!(rig.get(&rig.admin(), "/api/v1/teams").await.body, json!([]));
    // Reads need no token; with it, the change goes through.
    rig.send(
        rig.http
            .get(format!("{}/api/v1/teams", rig.url))
            .header("cookie", format!("paddock_session={cookie}")),
    )
    .await
    .expect(200);
    rig.post(&ada, "/api/v1/teams", json!({"name": "payments"}))
        .await
        .expect(202);
    // The sign-in form needs its own token too.
    let forged = rig
        .send(
            rig.http
                .post(format!("{}/sign-in", rig.url))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("login=ada&password=ada-correct-horse-battery&csrf_token=x"),
        )
        .await
        .expect(403);
    assert!(forged.text.contains("CSRF"));
    // Signing out ends the session.
    let out = rig
        .send(
            rig.http
                .post(format!("{}/sign-out", rig.url))
                .header("cookie", format!("paddock_session={cookie}"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("csrf_token={csrf}")),
        )
        .await;
    assert_eq!(out.status, 303);
    rig.get(&ada, "/api/v1/me").await.expect(401);
    rig.stop().await;
}

async fn health_readiness_and_metrics(backend: Backend) {
    let rig = Rig::start(backend).await;
    rig.team("payments", &[]).await;
    for path in ["/healthz", "/readyz"] {
        rig.send(rig.http.get(format!("{}{path}", rig.url)))
            .await
            .expect(200);
    }
    let metrics = rig
        .send(rig.http.get(format!("{}/metrics", rig.url)))
        .await
        .expect(200);
    for line in [
        "paddock_operations{state=\"succeeded\"} 1",
        "paddock_queue_depth 0",
        "paddock_lease_takeovers_total 0",
        "# TYPE paddock_step_duration_seconds histogram",
        "paddock_step_duration_seconds_count{provider=\"github\"}",
        "paddock_http_requests_total{method=\"POST\",status=\"202\"} 1",
    ] {
        assert!(
            metrics.text.contains(line),
            "no `{line}` in:\n{}",
            metrics.text
        );
    }
    let doc = rig
        .send(rig.http.get(format!("{}/api/v1/openapi.json", rig.url)))
        .await
        .expect(200);
    assert_eq!(doc.body["openapi"], "3.1.0");
    assert!(doc.body["paths"]["/api/v1/teams/{team}/environments"]["post"].is_object());
    let request_id = rig
        .send(
            rig.http
                .get(format!("{}/healthz", rig.url))
                .header("x-request-id", "req-test-1"),
        )
        .await;
    assert_eq!(request_id.headers["x-request-id"], "req-test-1");
    rig.stop().await;
}

async fn a_stopping_replica_hands_its_operation_back(backend: Backend) {
    let mut rig = Rig::start(backend.clone()).await;
    rig.team("payments", &[]).await;
    rig.slow_down(100);
    let op = rig
        .post(
            &rig.admin(),
            "/api/v1/teams/payments/environments",
            json!({"name": "checkout", "stages": ["dev", "test"]}),
        )
        .await
        .expect(202)
        .body;
    let id = op["id"].as_str().unwrap().to_owned();
    rig.wait_for_events(&id, "stepSucceeded", 3).await;
    // Stop: steps in flight finish, the operation goes back to the queue.
    let running = rig.running.take().unwrap();
    running.shutdown(Duration::from_secs(30)).await;
    let db = paddock_store::db::Db::connect(&rig.db_url).await.unwrap();
    let op = db.operation(&id).await.unwrap().unwrap();
    assert_eq!(
        (op.state.as_str(), op.holder.as_deref()),
        ("queued", None),
        "{op:?}"
    );
    assert_eq!(op.attempts, 1);
    // The next replica (same database, clouds and key) finishes it.
    rig.clear_faults();
    let mut config = paddock_server::Config {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        data_dir: Some(rig.dir.path().join("data")),
        database_url: Some(rig.db_url.clone()),
        ..Default::default()
    };
    config.workers.poll_ms = Some(50);
    let env = rig
        .sandbox
        .env()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let clouds = paddock_providers::clouds::Clouds::from_sandbox_env(&env).unwrap();
    let deps = paddock_server::Deps::open(&config, &clouds).await.unwrap();
    let next = paddock_server::start(config, deps).await.unwrap();
    rig.url = format!("http://{}", next.addr);
    rig.running = Some(next);
    let done = rig.wait(&id).await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert_eq!(done["attempts"], 2);
    // Nothing was created twice: the second run created only what the first had not.
    let events = rig
        .get(&rig.admin(), &format!("/api/v1/operations/{id}/events"))
        .await
        .body;
    let mut created = std::collections::BTreeMap::<String, usize>::new();
    for e in events.as_array().unwrap() {
        if e["kind"] == "stepSucceeded" && e["data"]["kind"] == "create" {
            let key = format!(
                "{}/{}",
                e["data"]["stack"].as_str().unwrap(),
                e["data"]["resource"].as_str().unwrap()
            );
            *created.entry(key).or_default() += 1;
        }
    }
    assert!(created.len() > 20, "{created:?}");
    assert!(
        created.values().all(|n| *n == 1),
        "created twice: {created:?}"
    );
    rig.stop().await;
}

async fn what_serve_changes_at_start_is_its_operators_doing(backend: Backend) {
    let rig = Rig::start_with(backend, |config| {
        config.operator = Some("platform-oncall".into());
    })
    .await;
    let audit = rig
        .get(&rig.admin(), "/api/v1/audit?actor=platform-oncall")
        .await
        .expect(200);
    let records = audit.body.as_array().unwrap();
    assert_eq!(records.len(), 1, "{}", audit.text);
    let record = &records[0];
    assert_eq!(record["action"], "platform.stack.apply");
    assert_eq!(record["outcome"], "allowed");
    assert!(
        record["detail"]["changes"]["create"].as_u64().unwrap() > 0,
        "{record}"
    );
    let operation = record["detail"]["operation"].as_str().unwrap();

    // Every change the cloud saw while the server started names that operation.
    let seen: Vec<serde_json::Value> =
        reqwest::get(format!("{}/requests", rig.sandbox.control_url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let changes: Vec<&serde_json::Value> = seen
        .iter()
        .filter(|e| {
            let path = e["path"].as_str().unwrap_or_default();
            !path.ends_with("/oauth2/v2.0/token") && !path.ends_with("/access_tokens")
        })
        .collect();
    assert!(!changes.is_empty(), "the platform's stack was made");
    for e in changes {
        assert!(
            e["userAgent"]
                .as_str()
                .is_some_and(|a| a.ends_with(&format!("(operation {operation})"))),
            "{e}"
        );
    }
    rig.stop().await;
}
