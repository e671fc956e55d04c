//! Approvals, end to end against the sandbox: policy (the default pack) says a change to
//! prod needs a second admin of the team. The operation stops before prod's plan runs and
//! waits; the approver sees the exact plan; the requester cannot approve it; an approval
//! is bound to the plan's hash, so a change to the environment before it runs asks again;
//! a rejection carries its reason and ends the operation. Everything is audited.

mod common;

use common::{Auth, Backend, Rig};
use reqwest::Method;
use serde_json::{Value, json};

on_both_databases!(
    a_prod_change_waits_for_another_admin_and_runs_the_approved_plan,
    a_rejected_destroy_of_prod_ends_with_its_reason_and_nothing_destroyed,
);

const ENVS: &str = "/api/v1/teams/payments/environments";

/// The pending approvals of operation `op`, as `who` sees them.
async fn pending_of(rig: &Rig, who: &Auth, op: &str) -> Vec<Value> {
    rig.get(who, "/api/v1/approvals")
        .await
        .expect(200)
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["operation"] == op)
        .cloned()
        .collect()
}

async fn resource_groups(rig: &Rig) -> Vec<String> {
    let inspect: Value = reqwest::get(format!("{}/inspect", rig.sandbox.control_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut names: Vec<String> = inspect["arm"]["resourceGroup"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

async fn audit_actions(rig: &Rig) -> Vec<(String, String, String)> {
    let log = rig
        .get(&rig.admin(), "/api/v1/audit?limit=500")
        .await
        .expect(200);
    log.body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["actor"].as_str().unwrap_or("").to_owned(),
                r["action"].as_str().unwrap_or("").to_owned(),
                r["outcome"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

async fn a_prod_change_waits_for_another_admin_and_runs_the_approved_plan(backend: Backend) {
    let rig = Rig::start(backend).await;
    let ada = rig.person("ada").await;
    let bea = rig.person("bea").await;
    let cole = rig.person("cole").await;
    rig.team(
        "payments",
        &[("ada", "admin"), ("bea", "admin"), ("cole", "contributor")],
    )
    .await;

    // Ada asks for dev and prod: dev is made, prod's plan waits for a second admin.
    let created = rig
        .post(
            &ada,
            ENVS,
            json!({"name": "checkout", "stages": ["dev", "prod"]}),
        )
        .await
        .expect(202);
    let op = created.body["id"].as_str().unwrap().to_owned();
    let waiting = rig.wait(&op).await;
    assert_eq!(waiting["state"], "waiting_for_approval", "{waiting:#}");
    assert_eq!(
        waiting["outcome"]["waitingFor"]["stack"],
        "payments-checkout-prod"
    );
    let groups = resource_groups(&rig).await;
    assert!(
        groups.contains(&"rg-payments-checkout-dev".to_owned()),
        "{groups:?}"
    );
    assert!(
        !groups.contains(&"rg-payments-checkout-prod".to_owned()),
        "nothing of prod runs before approval: {groups:?}"
    );

    // The inbox: Bea sees the exact plan and why it needs her.
    let pending = pending_of(&rig, &bea, &op).await;
    assert_eq!(pending.len(), 1, "{pending:#?}");
    let first = &pending[0];
    assert_eq!(first["stack"], "payments-checkout-prod");
    assert_eq!(first["requestedBy"], "ada");
    assert_eq!(first["plan"]["hash"], first["planHash"]);
    assert!(
        first["plan"]["counts"]["create"].as_u64().unwrap() >= 10,
        "{:#}",
        first["plan"]
    );
    let rules: Vec<&str> = first["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["rule"].as_str())
        .collect();
    assert!(
        !rules.is_empty(),
        "the rules that ask for approval are named"
    );
    let first_id = first["id"].as_str().unwrap().to_owned();
    let approve = |id: &str| format!("/api/v1/approvals/{id}/approve");

    // Ada may not approve her own change, nor may a contributor.
    let own = rig
        .post(&ada, &approve(&first_id), json!({}))
        .await
        .expect(403);
    assert!(
        own.body["detail"]
            .as_str()
            .unwrap()
            .contains("another admin of the team"),
        "{}",
        own.text
    );
    rig.post(&cole, &approve(&first_id), json!({}))
        .await
        .expect(403);
    // A rejection needs a reason.
    let no_reason = rig
        .post(
            &bea,
            &format!("/api/v1/approvals/{first_id}/reject"),
            json!({"reason": "  "}),
        )
        .await
        .expect(422);
    assert_eq!(no_reason.body["errors"][0]["field"], "reason");

    // The environment changes before the approval: the waiting operation is superseded,
    // the new one plans again and asks again; the first approval no longer counts.
    let changed = rig
        .call(
            &ada,
            Method::PATCH,
            &format!("{ENVS}/checkout"),
            Some(json!({"quota": "large"})),
        )
        .await
        .expect(202);
    let op2 = changed.body["id"].as_str().unwrap().to_owned();
    let superseded = rig
        .get(&ada, &format!("/api/v1/operations/{op}"))
        .await
        .expect(200);
    assert_eq!(superseded.body["state"], "cancelled", "{}", superseded.text);
    let waiting = rig.wait(&op2).await;
    assert_eq!(waiting["state"], "waiting_for_approval", "{waiting:#}");
    let stale = rig
        .post(&bea, &approve(&first_id), json!({"comment": "looks fine"}))
        .await
        .expect(409);
    assert!(
        stale.body["detail"]
            .as_str()
            .unwrap()
            .contains("superseded"),
        "{}",
        stale.text
    );
    let second = pending_of(&rig, &bea, &op2).await;
    assert_eq!(second.len(), 1);
    assert_ne!(
        second[0]["planHash"], first["planHash"],
        "the quota change is in the new plan"
    );

    // Bea approves the plan she sees; it runs.
    let approved = rig
        .post(
            &bea,
            &approve(second[0]["id"].as_str().unwrap()),
            json!({"comment": "quota agreed with finance"}),
        )
        .await
        .expect(200);
    assert_eq!(approved.body["state"], "approved");
    assert_eq!(approved.body["decidedBy"], "bea");
    let done = rig.wait(&op2).await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert!(
        resource_groups(&rig)
            .await
            .contains(&"rg-payments-checkout-prod".to_owned())
    );
    let env = rig.get(&ada, &format!("{ENVS}/checkout")).await.expect(200);
    assert_eq!(env.body["status"], "ready", "{}", env.text);
    // Deciding twice is a conflict.
    rig.post(&bea, &approve(second[0]["id"].as_str().unwrap()), json!({}))
        .await
        .expect(409);

    // A later change that leaves prod alone needs nobody.
    let dev_only = rig
        .post(
            &cole,
            &format!("{ENVS}/checkout/operations"),
            json!({"kind": "up", "stages": ["dev"]}),
        )
        .await
        .expect(202);
    rig.succeeds(&dev_only.body).await;

    // All of it is in the audit log, each decision by its person.
    let actions = audit_actions(&rig).await;
    let has = |actor: &str, action: &str, outcome: &str| {
        actions
            .iter()
            .any(|(a, b, c)| a == actor && b == action && c == outcome)
    };
    assert!(has("ada", "approval.request", "pending"), "{actions:#?}");
    assert!(has("ada", "approval.decide", "denied"), "{actions:#?}");
    assert!(has("cole", "approval.decide", "denied"), "{actions:#?}");
    assert!(has("bea", "approval.approve", "allowed"), "{actions:#?}");

    // And in the metrics.
    let metrics = rig
        .send(rig.http.get(format!("{}/metrics", rig.url)))
        .await
        .text;
    assert!(
        metrics.contains("paddock_approvals{state=\"approved\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("paddock_approvals{state=\"superseded\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("paddock_approval_wait_seconds_count{decision=\"approved\"} 1"),
        "{metrics}"
    );
    rig.stop().await;
}

async fn a_rejected_destroy_of_prod_ends_with_its_reason_and_nothing_destroyed(backend: Backend) {
    let rig = Rig::start(backend).await;
    let ada = rig.person("ada").await;
    let bea = rig.person("bea").await;
    rig.team("payments", &[("ada", "admin"), ("bea", "admin")])
        .await;
    let created = rig
        .post(&ada, ENVS, json!({"name": "ledger", "stages": ["prod"]}))
        .await
        .expect(202);
    rig.succeeds_approved_by(&created.body, &bea).await;
    let before = resource_groups(&rig).await;

    let destroy = rig
        .post(
            &ada,
            &format!("{ENVS}/ledger/operations"),
            json!({"kind": "destroy"}),
        )
        .await
        .expect(202);
    let op = destroy.body["id"].as_str().unwrap().to_owned();
    let waiting = rig.wait(&op).await;
    assert_eq!(waiting["state"], "waiting_for_approval", "{waiting:#}");
    let pending = pending_of(&rig, &bea, &op).await;
    assert_eq!(pending[0]["plan"]["action"], "destroy");
    assert_eq!(pending[0]["plan"]["counts"]["create"], 0);
    assert!(pending[0]["plan"]["counts"]["delete"].as_u64().unwrap() >= 10);

    let rejected = rig
        .post(
            &bea,
            pending[0]["links"]["reject"].as_str().unwrap(),
            json!({"reason": "ledger still serves month-end close"}),
        )
        .await
        .expect(200);
    assert_eq!(rejected.body["state"], "rejected");
    let ended = rig.wait(&op).await;
    assert_eq!(ended["state"], "failed");
    assert_eq!(ended["outcome"]["failure"]["code"], "ApprovalRejected");
    assert!(
        ended["outcome"]["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("month-end close"),
        "{ended:#}"
    );
    assert_eq!(resource_groups(&rig).await, before, "nothing was destroyed");
    let env = rig.get(&ada, &format!("{ENVS}/ledger")).await.expect(200);
    assert_eq!(env.body["status"], "ready");
    rig.stop().await;
}
