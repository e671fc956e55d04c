//! The platform server's behaviour through its REST API, on SQLite and on PostgreSQL:
//! teams and environments provisioned into the sandbox cloud as durable operations, their
//! events live and resumable, one operation per environment, idempotent retries,
//! cancellation and retry, outputs masked unless revealed by an admin, and the audit log.

mod common;

use std::time::Duration;

use common::{Auth, Backend, Rig};
use reqwest::Method;
use serde_json::{Value, json};

on_both_databases!(
    an_environment_is_provisioned_as_a_durable_operation,
    one_operation_per_environment_at_a_time,
    an_idempotency_key_replays_the_first_response,
    a_running_operation_can_be_cancelled_and_retried,
    a_failed_operation_names_the_resource_and_the_clouds_error,
    an_object_made_by_hand_is_imported_into_its_stage,
    events_stream_live_and_resume_after_the_last_event_id,
    secret_outputs_are_masked_unless_an_admin_reveals_them,
    the_audit_log_records_who_did_what_and_verifies,
);

async fn an_environment_is_provisioned_as_a_durable_operation(backend: Backend) {
    let rig = Rig::start(backend).await;
    let ada = rig.person("ada").await;
    rig.team("payments", &[("ada", "contributor")]).await;

    let created = rig
        .post(
            &ada,
            "/api/v1/teams/payments/environments",
            json!({"name": "checkout", "stages": ["dev", "test"], "quota": "small"}),
        )
        .await
        .expect(202);
    let op = &created.body;
    assert_eq!(op["state"], "queued");
    assert_eq!(op["requestedBy"], "ada");
    assert_eq!(
        created.headers["location"].to_str().unwrap(),
        format!("/api/v1/operations/{}", op["id"].as_str().unwrap())
    );
    let done = rig.succeeds(op).await;
    assert_eq!(done["attempts"], 1);
    let stacks: Vec<&str> = done["outcome"]["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stack"].as_str().unwrap())
        .collect();
    assert_eq!(
        stacks,
        [
            "payments-checkout",
            "payments-checkout-dev",
            "payments-checkout-test"
        ]
    );

    let env = rig
        .get(&ada, "/api/v1/teams/payments/environments/checkout")
        .await
        .expect(200);
    assert_eq!(env.body["status"], "ready");
    assert_eq!(env.body["parameters"]["stages"], json!(["dev", "test"]));
    assert_eq!(env.body["parameters"]["quota"], "small");

    // The sandbox holds what the environment is.
    let inspect: Value = reqwest::get(format!("{}/inspect", rig.sandbox.control_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = inspect.to_string();
    for object in [
        "rg-payments-checkout-dev",
        "rg-payments-checkout-test",
        "payments-checkout-dev",
    ] {
        assert!(text.contains(object), "{object} is not in the sandbox");
    }
    assert!(!text.contains("rg-payments-checkout-prod"));
    // And the environment lists what it manages, per stack.
    let resources = rig
        .get(
            &ada,
            "/api/v1/teams/payments/environments/checkout/resources",
        )
        .await
        .expect(200);
    let dev = &resources.body[1];
    assert_eq!(dev["stack"], "payments-checkout-dev");
    assert_eq!(dev["pending"], 0);
    let group = dev["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "azure:resourceGroup")
        .unwrap();
    assert!(
        group["id"]
            .as_str()
            .unwrap()
            .ends_with("/resourceGroups/rg-payments-checkout-dev"),
        "{group}"
    );

    // An environment is rendered with the blueprint version it is on: bringing dev up
    // again changes nothing and keeps it there (upgrades are their own request, see
    // tests/fleet.rs).
    let again = rig
        .post(
            &ada,
            "/api/v1/teams/payments/environments/checkout/operations",
            json!({"kind": "up", "stages": ["dev"]}),
        )
        .await
        .expect(202);
    let again = rig.succeeds(&again.body).await;
    for stack in again["outcome"]["stacks"].as_array().unwrap() {
        assert_eq!(stack["done"], json!({}), "{stack}");
    }
    let env = rig
        .get(&ada, "/api/v1/teams/payments/environments/checkout")
        .await
        .expect(200);
    assert_eq!(env.body["blueprintVersion"], "1.1.0");
    rig.stop().await;
}

async fn one_operation_per_environment_at_a_time(backend: Backend) {
    let rig = Rig::start(backend).await;
    rig.team("payments", &[]).await;
    let admin = rig.admin();
    let created = rig
        .post(
            &admin,
            "/api/v1/teams/payments/environments",
            json!({"name": "checkout", "stages": ["dev"]}),
        )
        .await
        .expect(202);
    let first = created.body["id"].as_str().unwrap().to_owned();
    let busy = rig
        .post(
            &admin,
            "/api/v1/teams/payments/environments/checkout/operations",
            json!({"kind": "up"}),
        )
        .await
        .expect(409);
    assert_eq!(busy.headers["content-type"], "application/problem+json");
    assert_eq!(busy.body["operation"], first.as_str());
    assert!(
        busy.body["detail"].as_str().unwrap().contains(&first),
        "{}",
        busy.text
    );
    rig.succeeds(&created.body).await;
    rig.post(
        &admin,
        "/api/v1/teams/payments/environments/checkout/operations",
        json!({"kind": "preview"}),
    )
    .await
    .expect(202);
    rig.stop().await;
}

async fn an_idempotency_key_replays_the_first_response(backend: Backend) {
    let rig = Rig::start(backend).await;
    rig.team("payments", &[]).await;
    let send = |body: Value| {
        rig.http
            .post(format!("{}/api/v1/teams/payments/environments", rig.url))
            .bearer_auth(&rig.admin)
            .header("idempotency-key", "create-checkout-1")
            .json(&body)
    };
    let first = rig
        .send(send(json!({"name": "checkout", "stages": ["dev"]})))
        .await
        .expect(202);
    let second = rig
        .send(send(json!({"name": "checkout", "stages": ["dev"]})))
        .await
        .expect(202);
    assert_eq!(first.body["id"], second.body["id"]);
    assert_eq!(second.headers["idempotent-replayed"], "true");
    assert_eq!(first.headers["location"], second.headers["location"]);
    let other = rig
        .send(send(json!({"name": "billing", "stages": ["dev"]})))
        .await
        .expect(422);
    assert_eq!(other.body["errors"][0]["field"], "Idempotency-Key");
    // One environment, one operation.
    let ops = rig
        .get(
            &rig.admin(),
            "/api/v1/teams/payments/environments/checkout/operations",
        )
        .await;
    assert_eq!(ops.body.as_array().unwrap().len(), 1);
    assert_eq!(
        rig.get(&rig.admin(), "/api/v1/teams/payments/environments/billing")
            .await
            .status,
        404
    );
    rig.succeeds(&first.body).await;
    rig.stop().await;
}

async fn a_running_operation_can_be_cancelled_and_retried(backend: Backend) {
    let rig = Rig::start(backend).await;
    rig.team("payments", &[]).await;
    // Slow requests, so the operation is still running when cancelled.
    rig.slow_down(150);
    let admin = rig.admin();
    let op = rig
        .post(
            &admin,
            "/api/v1/teams/payments/environments",
            json!({"name": "checkout", "stages": ["dev", "test"]}),
        )
        .await
        .expect(202)
        .body;
    let id = op["id"].as_str().unwrap().to_owned();
    rig.wait_for_events(&id, "stepStarted", 1).await;
    rig.post(
        &admin,
        &format!("/api/v1/operations/{id}/cancel"),
        json!({}),
    )
    .await
    .expect(202);
    let cancelled = rig.wait(&id).await;
    assert_eq!(cancelled["state"], "cancelled", "{cancelled:#}");
    let env = rig
        .get(&admin, "/api/v1/teams/payments/environments/checkout")
        .await;
    assert_eq!(env.body["status"], "failed");
    // Only failed or cancelled operations can be retried; the retry finishes the job.
    rig.clear_faults();
    let retry = rig
        .post(&admin, &format!("/api/v1/operations/{id}/retry"), json!({}))
        .await
        .expect(202);
    assert_eq!(retry.body["retryOf"], id.as_str());
    let done = rig.succeeds(&retry.body).await;
    assert_eq!(done["kind"], "up");
    let again = rig
        .post(
            &admin,
            &format!("/api/v1/operations/{}/retry", done["id"].as_str().unwrap()),
            json!({}),
        )
        .await
        .expect(409);
    assert!(
        again.body["detail"]
            .as_str()
            .unwrap()
            .contains("only failed or cancelled")
    );
    let env = rig
        .get(&admin, "/api/v1/teams/payments/environments/checkout")
        .await;
    assert_eq!(env.body["status"], "ready");
    rig.stop().await;
}

/// Reads a whole SSE stream; returns (id, event, data) triples.
async fn read_stream(
    rig: &Rig,
    auth: &Auth,
    path: &str,
    last_event_id: Option<i64>,
) -> Vec<(i64, String, Value)> {
    let mut req = common::authed(rig.http.get(format!("{}{path}", rig.url)), auth)
        .header("accept", "text/event-stream");
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id.to_string());
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = tokio::time::timeout(Duration::from_secs(120), resp.text())
        .await
        .unwrap()
        .unwrap();
    let mut events = Vec::new();
    for block in text
        .split("\n\n")
        .filter(|b| !b.trim().is_empty() && !b.starts_with(':'))
    {
        let (mut id, mut event, mut data) = (0, String::new(), Value::Null);
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("id: ") {
                id = v.parse().unwrap();
            } else if let Some(v) = line.strip_prefix("event: ") {
                event = v.to_owned();
            } else if let Some(v) = line.strip_prefix("data: ") {
                data = serde_json::from_str(v).unwrap();
            }
        }
        events.push((id, event, data));
    }
    events
}

async fn events_stream_live_and_resume_after_the_last_event_id(backend: Backend) {
    let rig = Rig::start(backend).await;
    rig.team("payments", &[]).await;
    let admin = rig.admin();
    let op = rig
        .post(
            &admin,
            "/api/v1/teams/payments/environments",
            json!({"name": "checkout", "stages": ["dev"]}),
        )
        .await
        .expect(202)
        .body;
    let id = op["id"].as_str().unwrap();
    // Followed from the start, live: the stream ends when the operation does.
    let all = read_stream(
        &rig,
        &admin,
        &format!("/api/v1/operations/{id}/events"),
        None,
    )
    .await;
    let (last, end) = all.split_last().unwrap();
    assert_eq!(last.1, "end");
    assert_eq!(last.2["state"], "succeeded");
    assert_eq!(end.first().unwrap().1, "operationStarted");
    assert_eq!(end.last().unwrap().1, "operationFinished");
    assert!(end.iter().any(|e| e.1 == "stepSucceeded"));
    let ids: Vec<i64> = end.iter().map(|e| e.0).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    // Resumed after the fifth event: exactly the rest.
    let resumed = read_stream(
        &rig,
        &admin,
        &format!("/api/v1/operations/{id}/events"),
        Some(ids[4]),
    )
    .await;
    let resumed_ids: Vec<i64> = resumed
        .iter()
        .filter(|e| e.1 != "end")
        .map(|e| e.0)
        .collect();
    assert_eq!(resumed_ids, ids[5..]);
    // The environment's stream has the same events (and does not end on its own).
    let env_events = rig
        .get(
            &admin,
            "/api/v1/teams/payments/environments/checkout/events",
        )
        .await
        .expect(200);
    assert_eq!(env_events.body.as_array().unwrap().len(), ids.len());
    // No event carries a secret value: events never carry values at all.
    assert!(!env_events.text.contains("-----BEGIN"));
    rig.stop().await;
}

async fn secret_outputs_are_masked_unless_an_admin_reveals_them(backend: Backend) {
    let rig = Rig::start(backend).await;
    let bob = rig.person("bob").await;
    let cyd = rig.person("cyd").await;
    rig.team("payments", &[("bob", "contributor"), ("cyd", "admin")])
        .await;
    let op = rig
        .post(
            &bob,
            "/api/v1/teams/payments/environments",
            json!({"name": "checkout", "stages": ["dev"]}),
        )
        .await
        .expect(202);
    rig.succeeds(&op.body).await;
    let masked = rig
        .get(&bob, "/api/v1/teams/payments/environments/checkout/outputs")
        .await
        .expect(200);
    assert_eq!(masked.body["revealed"], false);
    let denied = rig
        .get(
            &bob,
            "/api/v1/teams/payments/environments/checkout/outputs?reveal=true",
        )
        .await
        .expect(403);
    assert!(
        denied.body["detail"]
            .as_str()
            .unwrap()
            .contains("needs the admin role")
    );
    let before = rig.audit_count().await;
    let revealed = rig
        .get(
            &cyd,
            "/api/v1/teams/payments/environments/checkout/outputs?reveal=true",
        )
        .await
        .expect(200);
    assert_eq!(revealed.body["revealed"], true);
    assert_eq!(rig.audit_count().await, before + 1, "the reveal is audited");
    let audit = rig
        .get(&rig.admin(), "/api/v1/audit?team=payments&actor=cyd")
        .await
        .expect(200);
    let actions: Vec<&str> = audit
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"environment.outputs.reveal"),
        "{actions:?}"
    );
    rig.stop().await;
}

async fn the_audit_log_records_who_did_what_and_verifies(backend: Backend) {
    let rig = Rig::start(backend).await;
    let ada = rig.person("ada").await;
    rig.team("payments", &[("ada", "contributor")]).await;
    let op = rig
        .post(
            &ada,
            "/api/v1/teams/payments/environments",
            json!({"name": "checkout", "stages": ["dev"]}),
        )
        .await
        .expect(202);
    rig.succeeds(&op.body).await;
    rig.post(
        &ada,
        "/api/v1/teams/payments/environments/checkout/operations",
        json!({"kind": "destroy"}),
    )
    .await
    .expect(403);

    let admin = rig.admin();
    let records = rig
        .get(&admin, "/api/v1/audit?team=payments")
        .await
        .expect(200);
    let lines: Vec<String> = records
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {}",
                r["actor"].as_str().unwrap(),
                r["action"].as_str().unwrap(),
                r["target"].as_str().unwrap(),
                r["outcome"].as_str().unwrap()
            )
        })
        .collect();
    insta::assert_snapshot!(lines.join("\n"), @r"
    admin team.create teams/payments allowed
    admin operation.up teams/payments succeeded
    admin team.member.set teams/payments/members/ada allowed
    admin operation.up teams/payments succeeded
    ada environment.create teams/payments/environments/checkout allowed
    ada operation.up teams/payments/environments/checkout succeeded
    ada environment.destroy teams/payments/environments/checkout denied
    ");
    let first = &records.body[0];
    assert_eq!(first["source"], "127.0.0.1");
    assert!(first["hash"].as_str().unwrap().starts_with("sha256:"));
    // Members read their team's log; the whole log is for platform admins.
    rig.get(&ada, "/api/v1/audit?team=payments")
        .await
        .expect(200);
    rig.get(&ada, "/api/v1/audit").await.expect(403);
    let export = rig
        .get(&admin, "/api/v1/audit/export?team=payments")
        .await
        .expect(200);
    assert_eq!(export.headers["content-type"], "application/jsonl");
    assert_eq!(export.text.lines().count(), lines.len());
    let verified = rig.get(&admin, "/api/v1/audit/verify").await.expect(200);
    assert_eq!(verified.body["intact"], true, "{}", verified.text);
    rig.call(&admin, Method::GET, "/api/v1/audit?since=yesterday", None)
        .await
        .expect(422);
    rig.stop().await;
}

async fn a_failed_operation_names_the_resource_and_the_clouds_error(backend: Backend) {
    let rig = Rig::start(backend).await;
    rig.team("payments", &[]).await;
    // The platform identity may not create resource groups: ARM refuses.
    rig.fault(
        "arm",
        Some("PUT"),
        Some("resourcegroups/rg-payments-checkout-dev"),
        0,
        Some("403"),
    );
    let admin = rig.admin();
    let op = rig
        .post(
            &admin,
            "/api/v1/teams/payments/environments",
            json!({"name": "checkout", "stages": ["dev"]}),
        )
        .await
        .expect(202)
        .body;
    let id = op["id"].as_str().unwrap();
    let failed = rig.wait(id).await;
    assert_eq!(failed["state"], "failed", "{failed:#}");
    let failure = &failed["outcome"]["failure"];
    assert_eq!(failure["stack"], "payments-checkout-dev");
    assert_eq!(failure["resource"], "resourceGroup");
    assert_eq!(failure["type"], "azure:resourceGroup");
    assert_eq!(failure["code"], "AuthorizationFailed");
    assert!(
        failure["message"]
            .as_str()
            .unwrap()
            .contains("authorization"),
        "{failure}"
    );
    assert!(
        failure["whatToDo"].as_str().unwrap().contains("retry"),
        "{failure}"
    );
    let env = rig
        .get(&admin, "/api/v1/teams/payments/environments/checkout")
        .await;
    assert_eq!(env.body["status"], "failed");
    // The step's failure is an event too.
    let events = rig
        .get(&admin, &format!("/api/v1/operations/{id}/events"))
        .await
        .body;
    let step_failed = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "stepFailed")
        .unwrap();
    assert_eq!(step_failed["data"]["code"], "AuthorizationFailed");
    // Mended, a retry finishes the job.
    rig.clear_faults();
    let retry = rig
        .post(&admin, &format!("/api/v1/operations/{id}/retry"), json!({}))
        .await
        .expect(202);
    rig.succeeds(&retry.body).await;
    rig.stop().await;
}

async fn an_object_made_by_hand_is_imported_into_its_stage(backend: Backend) {
    let rig = Rig::start(backend).await;
    rig.team("payments", &[]).await;
    let admin = rig.admin();
    // The namespace cannot be made by Paddock (a permission is missing)…
    rig.fault(
        "kubernetes",
        Some("PATCH"),
        Some("namespaces/payments-checkout-dev"),
        0,
        Some("403"),
    );
    let op = rig
        .post(
            &admin,
            "/api/v1/teams/payments/environments",
            json!({"name": "checkout", "stages": ["dev"]}),
        )
        .await
        .expect(202);
    let failed = rig.wait(op.body["id"].as_str().unwrap()).await;
    assert_eq!(failed["state"], "failed", "{failed:#}");
    assert_eq!(failed["outcome"]["failure"]["resource"], "namespace");
    rig.clear_faults();
    // …so the cluster's admin made it by hand.
    let made = reqwest::Client::new()
        .post(format!("{}/api/v1/namespaces", rig.sandbox.kubernetes_url()))
        .bearer_auth(&rig.sandbox.kubernetes_token)
        .json(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "payments-checkout-dev"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);

    let ops = "/api/v1/teams/payments/environments/checkout/operations";
    // What an import adopts must be a resource of the stage, of its type.
    let bad = rig
        .post(
            &admin,
            ops,
            json!({"kind": "import", "stages": ["dev"], "resources": [
            {"name": "nmspace", "type": "kubernetes:namespace", "id": "payments-checkout-dev"},
            {"name": "namespace", "type": "azure:resourceGroup", "id": "x"},
            {"name": "namespace", "type": "kubernetes:namespace", "id": " "}]}),
        )
        .await
        .expect(422);
    let fields: Vec<&str> = bad.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["resources[0].name", "resources[1].type", "resources[2].id"]
    );
    rig.post(&admin, ops, json!({"kind": "up", "resources": []}))
        .await
        .expect(422);

    let import = rig
        .post(
            &admin,
            ops,
            json!({"kind": "import", "stages": ["dev"], "resources": [
            {"name": "namespace", "type": "kubernetes:namespace", "id": "payments-checkout-dev"}]}),
        )
        .await
        .expect(202);
    let imported = rig.succeeds(&import.body).await;
    assert_eq!(
        imported["outcome"]["imported"][0]["id"],
        "payments-checkout-dev"
    );
    // The rest is brought up around it; the namespace is not made again.
    let up = rig
        .post(&admin, ops, json!({"kind": "up"}))
        .await
        .expect(202);
    let up = rig.succeeds(&up.body).await;
    let events = rig
        .get(
            &admin,
            &format!("/api/v1/operations/{}/events", up["id"].as_str().unwrap()),
        )
        .await
        .body;
    assert!(
        !events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "stepStarted"
                && e["data"]["resource"] == "namespace"
                && e["data"]["kind"] == "create")
    );
    let env = rig
        .get(&admin, "/api/v1/teams/payments/environments/checkout")
        .await;
    assert_eq!(env.body["status"], "ready");
    rig.stop().await;
}
