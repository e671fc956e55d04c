//! Day two against the sandbox: an environment with an expiry is torn down completely
//! when it passes, by its setter's authority; extending is audited and limited; a
//! scheduled refresh finds a change made behind Paddock's back with its diff, reconcile
//! restores it and accept keeps it.

mod common;

use std::time::Duration;

use common::{Auth, Backend, Rig};
use reqwest::Method;
use serde_json::{Value, json};

on_both_databases!(
    an_environment_is_destroyed_completely_at_expiry_by_its_setters_authority,
    an_expiry_is_extended_within_the_limit_audited_and_warned_about_once,
    a_scheduled_refresh_reports_drift_reconcile_restores_it_and_accept_keeps_it,
    extending_calls_off_a_teardown_that_has_not_started,
);

const ENVS: &str = "/api/v1/teams/payments/environments";

async fn inspect(rig: &Rig) -> Value {
    reqwest::get(format!("{}/inspect", rig.sandbox.control_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls `check` every 100 ms until it returns something, for up to two minutes.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn audit(rig: &Rig) -> Vec<paddock_store::db::AuditRecord> {
    let db = paddock_store::db::Db::connect(&rig.db_url).await.unwrap();
    db.audit(&paddock_store::db::AuditFilter {
        limit: 1_000_000,
        ..Default::default()
    })
    .await
    .unwrap()
}

async fn an_environment_is_destroyed_completely_at_expiry_by_its_setters_authority(
    backend: Backend,
) {
    let rig = Rig::start_with(backend, |c| {
        c.lifecycle.tick_ms = Some(100);
        c.lifecycle.drift_interval = Some("0".into());
    })
    .await;
    let ada = rig.person("ada").await;
    rig.team("payments", &[("ada", "contributor")]).await;
    // Beyond the platform's maximum, refused naming the field.
    let refused = rig
        .post(
            &ada,
            ENVS,
            json!({"name": "checkout", "stages": ["dev"], "ttl": "400d"}),
        )
        .await
        .expect(422);
    assert_eq!(refused.body["errors"][0]["field"], "ttl");

    let created = rig
        .post(
            &ada,
            ENVS,
            json!({"name": "checkout", "stages": ["dev"], "ttl": "2s"}),
        )
        .await
        .expect(202);
    // It stands first (the teardown, queued once the expiry passes, waits for the create).
    rig.succeeds(&created.body).await;

    let env = eventually("the environment is destroyed", || async {
        let env = rig.get(&ada, &format!("{ENVS}/checkout")).await.expect(200);
        (env.body["status"] == "destroyed").then_some(env.body)
    })
    .await;
    assert_eq!(
        env["expiresAt"],
        Value::Null,
        "a destroyed environment has no expiry"
    );

    // Nothing of it is left in any of the four systems, locks included (ARM keeps the
    // records of its finished delete operations, as Azure does: they are not resources).
    let mut sandbox = inspect(&rig).await;
    sandbox["arm"]
        .as_object_mut()
        .map(|arm| arm.remove("operation"));
    let left = sandbox.to_string();
    assert!(
        !left.contains("checkout"),
        "left in the sandbox: {}",
        left.match_indices("checkout")
            .map(|(i, _)| &left[i.saturating_sub(120)..(i + 40).min(left.len())])
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The teardown is ada's: she set the expiry.
    let records = audit(&rig).await;
    let queued = records
        .iter()
        .find(|r| r.action == "environment.destroy" && r.source == "expiry")
        .expect("the teardown is audited");
    assert_eq!(queued.actor, "ada");
    assert_eq!(queued.environment.as_deref(), Some("checkout"));
    let done = records
        .iter()
        .find(|r| r.action == "operation.destroy")
        .expect("the destroy's end is audited");
    assert_eq!(
        (done.actor.as_str(), done.outcome.as_str()),
        ("ada", "succeeded")
    );
    assert_eq!(
        records
            .iter()
            .filter(|r| r.action == "environment.destroy")
            .count(),
        1,
        "one teardown, however many ticks and replicas saw the expiry"
    );
    rig.stop().await;
}

async fn an_expiry_is_extended_within_the_limit_audited_and_warned_about_once(backend: Backend) {
    let rig = Rig::start_with(backend, |c| {
        c.lifecycle.tick_ms = Some(100);
        c.lifecycle.drift_interval = Some("0".into());
        c.lifecycle.expiry_warning = Some("1h".into());
        c.lifecycle.max_ttl = Some("30d".into());
    })
    .await;
    let ada = rig.person("ada").await;
    let bob = rig.person("bob").await;
    rig.team("payments", &[("ada", "contributor"), ("bob", "reader")])
        .await;
    let created = rig
        .post(
            &ada,
            ENVS,
            json!({"name": "checkout", "stages": ["dev"], "ttl": "2h"}),
        )
        .await
        .expect(202);
    rig.succeeds(&created.body).await;
    let env = rig.get(&ada, &format!("{ENVS}/checkout")).await.expect(200);
    assert_eq!(env.body["expirySetBy"], "ada");
    assert_eq!(env.body["expiring"], false);
    assert!(env.body["expiresAt"].as_str().is_some());

    let expiry = format!("{ENVS}/checkout/expiry");
    let put = |auth: Auth, body: Value| {
        let rig = &rig;
        let expiry = expiry.clone();
        async move { rig.call(&auth, Method::PUT, &expiry, Some(body)).await }
    };
    // Into the warning window: the API says so, and the warning is given once.
    let soon = put(ada.clone(), json!({"ttl": "30m"})).await.expect(200);
    assert_eq!(soon.body["expiring"], true);
    assert!(
        soon.body["warning"]
            .as_str()
            .unwrap()
            .contains("will then be destroyed"),
        "{}",
        soon.text
    );
    eventually("the expiry warning is recorded", || async {
        audit(&rig)
            .await
            .iter()
            .any(|r| r.action == "environment.expiring")
            .then_some(())
    })
    .await;
    let page = rig
        .send(
            common::authed(
                rig.http
                    .get(format!("{}/teams/payments/environments/checkout", rig.url)),
                &ada,
            )
            .header("accept", "text/html"),
        )
        .await
        .expect(200);
    assert!(
        page.text.contains("st-expiring"),
        "the page shows it expiring"
    );
    assert!(page.text.contains(">Extend<"), "and offers to extend it");

    // The portal's Extend form goes through the same rule.
    let Auth::Session { cookie, csrf } = &ada else {
        unreachable!("people sign in with sessions")
    };
    let post_form = |path: &str, fields: Vec<(&str, &str)>| {
        let mut body = fields;
        body.push(("csrf_token", csrf));
        rig.http
            .post(format!("{}{path}", rig.url))
            .header("cookie", format!("paddock_session={cookie}"))
            .header("accept", "text/html")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(&body).unwrap())
    };
    let extended = rig
        .send(post_form(
            "/teams/payments/environments/checkout/expiry",
            vec![("ttl", "5d")],
        ))
        .await
        .expect(303);
    assert_eq!(
        extended.headers["location"],
        "/teams/payments/environments/checkout#expiry"
    );
    let env = rig.get(&ada, &format!("{ENVS}/checkout")).await.expect(200);
    assert_eq!(env.body["expiring"], false);
    // And the create form takes an expiry.
    let created = rig
        .send(post_form(
            "/teams/payments/environments/new",
            vec![
                ("name", "ledger"),
                ("stages.present", "1"),
                ("stages", "dev"),
                ("_ttl", "3d"),
                ("_action", "apply"),
            ],
        ))
        .await
        .expect(303);
    let op = created.headers["location"].to_str().unwrap().to_owned();
    let op = rig.get(&ada, &format!("/api/v1{op}")).await.expect(200);
    rig.succeeds(&op.body).await;
    let ledger = rig.get(&ada, &format!("{ENVS}/ledger")).await.expect(200);
    assert_eq!(ledger.body["expirySetBy"], "ada");
    assert!(ledger.body["expiresAt"].as_str().is_some());

    let beyond = put(ada.clone(), json!({"ttl": "31d"})).await.expect(422);
    assert_eq!(beyond.body["errors"][0]["field"], "ttl");
    let both = put(
        ada.clone(),
        json!({"ttl": "1d", "expiresAt": "2030-01-01T00:00:00Z"}),
    )
    .await
    .expect(422);
    assert_eq!(both.body["errors"][0]["field"], "ttl");
    put(bob.clone(), json!({"ttl": "7d"})).await.expect(403);

    let extended = put(ada.clone(), json!({"ttl": "7d"})).await.expect(200);
    assert_eq!(extended.body["expiring"], false);
    let removed = put(ada.clone(), json!({"expiresAt": null}))
        .await
        .expect(200);
    assert_eq!(removed.body["expiresAt"], Value::Null);

    let records = audit(&rig).await;
    let changes: Vec<(String, String, String)> = records
        .iter()
        .filter(|r| r.action == "environment.expiry")
        .map(|r| {
            (
                r.actor.clone(),
                r.outcome.clone(),
                r.detail["ttl"].to_string(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("ada".to_owned(), "allowed".to_owned(), "\"30m\"".to_owned()),
            ("ada".to_owned(), "allowed".to_owned(), "\"5d\"".to_owned()),
            ("bob".to_owned(), "denied".to_owned(), "null".to_owned()),
            ("ada".to_owned(), "allowed".to_owned(), "\"7d\"".to_owned()),
            ("ada".to_owned(), "allowed".to_owned(), "null".to_owned()),
        ]
    );
    assert_eq!(
        records
            .iter()
            .filter(|r| r.action == "environment.expiring")
            .count(),
        1,
        "warned once"
    );
    rig.stop().await;
}

/// An ARM client acting as the platform's identity (Owner on the subscription): someone
/// with the platform's credentials changing things in the Azure portal.
async fn arm(rig: &Rig) -> (reqwest::Client, String) {
    let s = &rig.sandbox;
    let token: Value = reqwest::Client::new()
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            s.base_url, s.identity.tenant_id
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([
                ("grant_type", "client_credentials"),
                ("client_id", s.platform.client_id.as_str()),
                ("client_secret", s.platform.client_secret.as_str()),
                ("scope", "https://management.azure.com/.default"),
            ])
            .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {}", token["access_token"].as_str().unwrap())
            .parse()
            .unwrap(),
    );
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();
    let url = format!(
        "{}/subscriptions/{}/resourcegroups/rg-payments-checkout-dev?api-version=2025-04-01",
        s.base_url, s.identity.subscription_id
    );
    (client, url)
}

async fn tags(rig: &Rig) -> Value {
    let (client, url) = arm(rig).await;
    let group: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
    group["tags"].clone()
}

async fn set_tags(rig: &Rig, tags: Value) {
    let (client, url) = arm(rig).await;
    let group: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
    let put = client
        .put(&url)
        .json(&json!({"location": group["location"], "tags": tags}))
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.text().await.unwrap());
}

/// Queues work on the environment once it is free (the scheduler's refreshes come and go).
async fn when_free(rig: &Rig, auth: &Auth, path: &str, body: Value) -> Value {
    eventually(&format!("{path} is accepted"), || async {
        let reply = rig.post(auth, path, body.clone()).await;
        match reply.status.as_u16() {
            202 => Some(reply.body),
            409 => None,
            _ => panic!("{path}: {}", reply.text),
        }
    })
    .await
}

/// The drift view as lines: stack, resource, change, each diff, what may be accepted.
fn drift_lines(view: &Value) -> String {
    let mut out = Vec::new();
    for s in view["stacks"].as_array().unwrap() {
        for r in s["resources"].as_array().unwrap() {
            out.push(format!(
                "{} {} ({}) {}; acceptable: {}",
                s["stack"].as_str().unwrap(),
                r["resource"].as_str().unwrap(),
                r["type"].as_str().unwrap(),
                r["change"].as_str().unwrap(),
                r["acceptable"]
            ));
            for d in r["diff"].as_array().unwrap() {
                out.push(format!(
                    "  {}: {} -> {}",
                    d["path"].as_str().unwrap(),
                    d.get("state").unwrap_or(&Value::Null),
                    d.get("cloud").unwrap_or(&Value::Null)
                ));
            }
        }
    }
    out.join("\n")
}

async fn a_scheduled_refresh_reports_drift_reconcile_restores_it_and_accept_keeps_it(
    backend: Backend,
) {
    let rig = Rig::start_with(backend, |c| {
        c.lifecycle.tick_ms = Some(100);
        c.lifecycle.drift_interval = Some("1s".into());
    })
    .await;
    let ada = rig.person("ada").await;
    rig.team("payments", &[("ada", "contributor")]).await;
    let created = rig
        .post(&ada, ENVS, json!({"name": "checkout", "stages": ["dev"]}))
        .await
        .expect(202);
    rig.succeeds(&created.body).await;
    let declared = tags(&rig).await;
    let drift = format!("{ENVS}/checkout/drift");

    // Someone retags the resource group in the Azure portal.
    let mut changed = declared.clone();
    changed["managedBy"] = json!("someone");
    changed["costCenter"] = json!("42");
    set_tags(&rig, changed.clone()).await;
    let found = eventually("the scheduled refresh finds the drift", || async {
        let view = rig.get(&ada, &drift).await.expect(200);
        (view.body["resources"] == 1).then_some(view.body)
    })
    .await;
    insta::assert_snapshot!("drift_of_retagged_group", drift_lines(&found));
    let env = rig.get(&ada, &format!("{ENVS}/checkout")).await.expect(200);
    assert_eq!(env.body["status"], "drifted");
    let refresh = rig
        .get(
            &ada,
            &format!(
                "/api/v1/operations/{}",
                found["operation"].as_str().unwrap()
            ),
        )
        .await
        .expect(200);
    assert_eq!(refresh.body["kind"], "refresh");
    assert_eq!(refresh.body["requestedBy"], "paddock-scheduler");
    eventually("/metrics counts the drifted resource", || async {
        let metrics = reqwest::get(format!("{}/metrics", rig.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        metrics
            .lines()
            .any(|l| l == "paddock_drift_resources 1")
            .then_some(())
    })
    .await;
    // The scheduler may be refreshing again (the environment is then busy, and the page
    // offers no action until it is done).
    let page = eventually("the page offers Reconcile and Accept", || async {
        let page = rig
            .send(
                common::authed(
                    rig.http
                        .get(format!("{}/teams/payments/environments/checkout", rig.url)),
                    &ada,
                )
                .header("accept", "text/html"),
            )
            .await
            .expect(200);
        (page.text.contains(">Reconcile<") && page.text.contains(">Accept tags<")).then_some(page)
    })
    .await;
    assert!(
        page.text.contains("<code>tags.costCenter</code>"),
        "the page shows the diff"
    );

    // Reconcile: the blueprint's tags come back.
    let up = when_free(
        &rig,
        &ada,
        &format!("{ENVS}/checkout/operations"),
        json!({"kind": "up"}),
    )
    .await;
    rig.succeeds(&up).await;
    assert_eq!(tags(&rig).await, declared, "reconcile restored the tags");
    let after = rig.get(&ada, &drift).await.expect(200);
    assert_eq!(after.body["resources"], 0);

    // Only what the blueprint lets be accepted is accepted.
    let refused = rig
        .post(
            &ada,
            &format!("{drift}/accept"),
            json!({"stack": "payments-checkout-dev", "resource": "namespace"}),
        )
        .await
        .expect(422);
    assert_eq!(refused.body["errors"][0]["field"], "resource");

    // Accept: the cloud's tags stay, through later refreshes and ups.
    set_tags(&rig, changed.clone()).await;
    eventually("the drift is found again", || async {
        let view = rig.get(&ada, &drift).await.expect(200);
        (view.body["resources"] == 1).then_some(())
    })
    .await;
    let accept = when_free(
        &rig,
        &ada,
        &format!("{drift}/accept"),
        json!({"stack": "payments-checkout-dev", "resource": "resourceGroup"}),
    )
    .await;
    let accepted = rig.succeeds(&accept).await;
    assert_eq!(accepted["outcome"]["accepted"][0]["property"], "tags");
    assert_eq!(rig.get(&ada, &drift).await.expect(200).body["resources"], 0);
    let env = rig.get(&ada, &format!("{ENVS}/checkout")).await.expect(200);
    assert_eq!(env.body["status"], "ready");
    let up = when_free(
        &rig,
        &ada,
        &format!("{ENVS}/checkout/operations"),
        json!({"kind": "up"}),
    )
    .await;
    rig.succeeds(&up).await;
    assert_eq!(tags(&rig).await, changed, "the accepted tags were kept");
    let records = audit(&rig).await;
    assert!(
        records
            .iter()
            .any(|r| r.action == "environment.drift.accept" && r.actor == "ada"),
        "accepting is audited"
    );
    rig.stop().await;
}

async fn extending_calls_off_a_teardown_that_has_not_started(backend: Backend) {
    let rig = Rig::start_with(backend, |c| {
        c.lifecycle.tick_ms = Some(100);
        c.lifecycle.drift_interval = Some("0".into());
    })
    .await;
    let ada = rig.person("ada").await;
    rig.team("payments", &[("ada", "contributor")]).await;
    // A slow cloud: the create is still running when the expiry passes, so the teardown
    // waits behind it.
    rig.slow_down(300);
    let created = rig
        .post(
            &ada,
            ENVS,
            json!({"name": "checkout", "stages": ["dev"], "ttl": "1s"}),
        )
        .await
        .expect(202);
    let teardown = eventually("the teardown is queued behind the create", || async {
        let ops = rig
            .get(&ada, &format!("{ENVS}/checkout/operations"))
            .await
            .expect(200);
        ops.body
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["kind"] == "destroy" && o["state"] == "queued")
            .cloned()
    })
    .await;
    let create = rig
        .get(
            &ada,
            &format!(
                "/api/v1/operations/{}",
                created.body["id"].as_str().unwrap()
            ),
        )
        .await
        .expect(200);
    assert_eq!(
        create.body["state"], "running",
        "the create was still running"
    );
    let extended = rig
        .call(
            &ada,
            Method::PUT,
            &format!("{ENVS}/checkout/expiry"),
            Some(json!({"ttl": "7d"})),
        )
        .await
        .expect(200);
    assert_eq!(extended.body["expiring"], false);
    rig.clear_faults();
    rig.succeeds(&created.body).await;
    let called_off = rig.wait(teardown["id"].as_str().unwrap()).await;
    assert_eq!(called_off["state"], "cancelled");
    let env = rig.get(&ada, &format!("{ENVS}/checkout")).await.expect(200);
    assert_eq!(env.body["status"], "ready");
    assert!(
        inspect(&rig)
            .await
            .to_string()
            .contains("rg-payments-checkout-dev"),
        "the environment stands"
    );
    rig.stop().await;
}
