//! The authorization matrix: every endpoint, as every kind of caller — anonymous, an
//! expired token, a read-only token, a signed-in outsider, a team's reader, contributor
//! and admin, and a platform admin. Each is allowed exactly where the rules say; every
//! denial is 401 (no valid credentials) or 403 (not allowed); a denied change leaves no
//! trace but its audit record (a denied read, or a request with no valid credentials,
//! leaves none at all).

mod common;

use std::collections::BTreeMap;

use common::{Auth, Backend, Rig};
use reqwest::Method;
use serde_json::{Value, json};

on_both_databases!(every_endpoint_admits_exactly_the_roles_the_rules_name);

const ROLES: [&str; 8] = [
    "anonymous",
    "expired",
    "read-token",
    "outsider",
    "reader",
    "contributor",
    "admin",
    "platform",
];

/// Who may, per endpoint: `auth` = anyone signed in, `public` = anyone at all.
fn allowed(who: &str) -> Vec<&'static str> {
    match who {
        "public" => ROLES.to_vec(),
        "auth" => ROLES[2..].to_vec(),
        "auth-write" => vec!["outsider", "reader", "contributor", "admin", "platform"],
        "team-read" => vec!["read-token", "reader", "contributor", "admin", "platform"],
        "contributor" => vec!["contributor", "admin", "platform"],
        "admin" => vec!["admin", "platform"],
        "platform" => vec!["platform"],
        other => panic!("unknown rule {other}"),
    }
}

async fn counts(pool: &sqlx::AnyPool) -> BTreeMap<&'static str, i64> {
    let mut out = BTreeMap::new();
    for (name, sql) in [
        ("users", "SELECT COUNT(*) FROM users"),
        (
            "platform admins",
            "SELECT COUNT(*) FROM users WHERE platform_admin = 1",
        ),
        ("tokens", "SELECT COUNT(*) FROM api_tokens"),
        (
            "revoked tokens",
            "SELECT COUNT(*) FROM api_tokens WHERE revoked_at IS NOT NULL",
        ),
        ("sessions", "SELECT COUNT(*) FROM sessions"),
        ("teams", "SELECT COUNT(*) FROM teams"),
        ("members", "SELECT COUNT(*) FROM team_members"),
        (
            "admins",
            "SELECT COUNT(*) FROM team_members WHERE role = 'admin'",
        ),
        ("environments", "SELECT COUNT(*) FROM environments"),
        ("expiries", "SELECT COUNT(*) FROM environment_expiry"),
        ("operations", "SELECT COUNT(*) FROM operations"),
        (
            "cancel requests",
            "SELECT COUNT(*) FROM operations WHERE cancel_requested = 1",
        ),
        ("idempotency keys", "SELECT COUNT(*) FROM idempotency_keys"),
        ("blueprints", "SELECT COUNT(*) FROM blueprints"),
        ("policy packs", "SELECT COUNT(*) FROM policy_packs"),
    ] {
        out.insert(name, sqlx::query_scalar(sql).fetch_one(pool).await.unwrap());
    }
    out
}

/// Audit records after `seq` that a request (not a worker) wrote.
async fn request_audit(pool: &sqlx::AnyPool, after: i64) -> Vec<(String, String, String)> {
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT actor, action, outcome, source FROM audit_log WHERE seq > $1 ORDER BY seq",
    )
    .bind(after)
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .filter(|r| !r.3.starts_with("worker"))
        .map(|r| (r.0, r.1, r.2))
        .collect()
}

async fn head(pool: &sqlx::AnyPool) -> i64 {
    sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM audit_log")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn settle(rig: &Rig, reply: &common::Reply) {
    if reply.status == 202
        && let Some(id) = reply.body["id"].as_str()
    {
        rig.wait(id).await;
    }
}

async fn every_endpoint_admits_exactly_the_roles_the_rules_name(backend: Backend) {
    let rig = Rig::start(backend).await;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&rig.db_url).await.unwrap();

    // The cast.
    let ada = rig.person("ada").await;
    let rita = rig.person("rita").await;
    let cole = rig.person("cole").await;
    let olga = rig.person("olga").await;
    rig.person("mallory").await;
    rig.team(
        "payments",
        &[
            ("ada", "admin"),
            ("rita", "reader"),
            ("cole", "contributor"),
        ],
    )
    .await;
    let ada_token = rig.token(&ada, "write").await;
    let read_token = rig.token(&ada, "read").await;
    let Auth::Token(expired) = rig.token(&ada, "write").await else {
        unreachable!()
    };
    sqlx::query("UPDATE api_tokens SET expires_at = 1 WHERE digest = $1")
        .bind(paddock_server::auth::digest(&expired))
        .execute(&pool)
        .await
        .unwrap();
    let callers: BTreeMap<&str, Auth> = [
        ("anonymous", Auth::Anonymous),
        ("expired", Auth::Token(expired)),
        ("read-token", read_token),
        ("outsider", olga),
        ("reader", rita),
        ("contributor", cole),
        ("admin", ada.clone()),
        ("platform", rig.admin()),
    ]
    .into_iter()
    .collect();
    // Environments to act on: checkout (dev), ledger (dev and prod), doomed (dev).
    let mut first_op = String::new();
    for (name, stages) in [
        ("checkout", json!(["dev"])),
        ("ledger", json!(["dev", "prod"])),
        ("doomed", json!(["dev"])),
    ] {
        let op = rig
            .post(
                &ada_token,
                "/api/v1/teams/payments/environments",
                json!({"name": name, "stages": stages}),
            )
            .await
            .expect(202);
        rig.succeeds_approved_by(&op.body, &rig.admin()).await;
        if first_op.is_empty() {
            first_op = op.body["id"].as_str().unwrap().to_owned();
        }
    }

    let env = "/api/v1/teams/payments/environments";
    let op = format!("/api/v1/operations/{first_op}");
    // (method, path, body, who may, a mutation?)
    let matrix: Vec<(Method, String, Option<Value>, &str)> = vec![
        (Method::GET, "/api/v1/openapi.json".into(), None, "public"),
        (Method::GET, "/api/v1/me".into(), None, "auth"),
        (Method::GET, "/api/v1/me/tokens".into(), None, "auth"),
        (
            Method::POST,
            "/api/v1/me/tokens".into(),
            Some(json!({"name": "t"})),
            "auth-write",
        ),
        (
            Method::DELETE,
            "/api/v1/me/tokens/tok_nonexistent".into(),
            None,
            "auth-write",
        ),
        (Method::GET, "/api/v1/users".into(), None, "auth"),
        (
            Method::POST,
            "/api/v1/users".into(),
            Some(json!({"login": "{role}-made", "name": "x"})),
            "platform",
        ),
        (Method::GET, "/api/v1/teams".into(), None, "auth"),
        (
            Method::POST,
            "/api/v1/teams".into(),
            Some(json!({"name": "t-{role}"})),
            "auth-write",
        ),
        (
            Method::GET,
            "/api/v1/teams/payments".into(),
            None,
            "team-read",
        ),
        (
            Method::PUT,
            "/api/v1/teams/payments/members/mallory".into(),
            Some(json!({"role": "reader"})),
            "admin",
        ),
        (
            Method::DELETE,
            "/api/v1/teams/payments/members/mallory".into(),
            None,
            "admin",
        ),
        (
            Method::GET,
            "/api/v1/teams/payments/operations".into(),
            None,
            "team-read",
        ),
        (Method::GET, "/api/v1/blueprints".into(), None, "auth"),
        (
            Method::GET,
            "/api/v1/blueprints/environment/versions/1.1.0".into(),
            None,
            "auth",
        ),
        (
            Method::GET,
            "/api/v1/blueprints/environment/versions/1.1.0/schema".into(),
            None,
            "auth",
        ),
        (Method::GET, env.into(), None, "team-read"),
        (
            Method::POST,
            env.into(),
            Some(json!({"name": "e-{role}", "stages": ["dev"]})),
            "contributor",
        ),
        (
            Method::POST,
            env.into(),
            Some(json!({"name": "p-{role}", "stages": ["dev", "prod"]})),
            "admin",
        ),
        (Method::GET, format!("{env}/checkout"), None, "team-read"),
        (
            Method::PATCH,
            format!("{env}/checkout?dryRun=true"),
            Some(json!({"quota": "large"})),
            "contributor",
        ),
        (
            Method::PATCH,
            format!("{env}/ledger"),
            Some(json!({"quota": "small"})),
            "admin",
        ),
        (
            Method::GET,
            format!("{env}/checkout/operations"),
            None,
            "team-read",
        ),
        (
            Method::POST,
            format!("{env}/checkout/operations"),
            Some(json!({"kind": "preview"})),
            "contributor",
        ),
        (
            Method::POST,
            format!("{env}/ledger/operations"),
            Some(json!({"kind": "up", "stages": ["dev"]})),
            "contributor",
        ),
        (
            Method::POST,
            format!("{env}/ledger/operations"),
            Some(json!({"kind": "refresh", "stages": ["prod"]})),
            "admin",
        ),
        (
            Method::POST,
            format!("{env}/doomed/operations"),
            Some(json!({"kind": "destroy"})),
            "admin",
        ),
        (
            Method::PUT,
            format!("{env}/checkout/expiry"),
            Some(json!({"ttl": "7d"})),
            "contributor",
        ),
        (
            Method::PUT,
            format!("{env}/ledger/expiry"),
            Some(json!({"ttl": "7d"})),
            "admin",
        ),
        (
            Method::GET,
            format!("{env}/checkout/drift"),
            None,
            "team-read",
        ),
        (
            Method::POST,
            format!("{env}/checkout/drift/accept"),
            Some(json!({"stack": "payments-checkout-dev", "resource": "resourceGroup"})),
            "contributor",
        ),
        (
            Method::GET,
            format!("{env}/checkout/outputs"),
            None,
            "team-read",
        ),
        (
            Method::GET,
            format!("{env}/checkout/resources"),
            None,
            "team-read",
        ),
        (
            Method::GET,
            format!("{env}/checkout/outputs?reveal=true"),
            None,
            "admin",
        ),
        (
            Method::GET,
            format!("{env}/checkout/events"),
            None,
            "team-read",
        ),
        (Method::GET, op.clone(), None, "team-read"),
        (Method::GET, format!("{op}/events"), None, "team-read"),
        (
            Method::POST,
            format!("{op}/cancel"),
            Some(json!({})),
            "contributor",
        ),
        (
            Method::POST,
            format!("{op}/retry"),
            Some(json!({})),
            "contributor",
        ),
        (
            Method::GET,
            "/api/v1/audit?team=payments".into(),
            None,
            "team-read",
        ),
        (
            Method::GET,
            "/api/v1/audit/export?team=payments".into(),
            None,
            "team-read",
        ),
        (Method::GET, "/api/v1/approvals".into(), None, "auth"),
        (Method::GET, "/api/v1/audit".into(), None, "platform"),
        (Method::GET, "/api/v1/audit/verify".into(), None, "platform"),
        // Blueprint versions and fleet upgrades.
        (
            Method::POST,
            "/api/v1/blueprints/environment/versions".into(),
            Some(json!({"version": "9.0.0", "files": {}})),
            "platform",
        ),
        (
            Method::GET,
            format!("{env}/checkout/upgrade"),
            None,
            "team-read",
        ),
        (
            Method::POST,
            format!("{env}/checkout/upgrade"),
            Some(json!({})),
            "admin",
        ),
        (
            Method::PUT,
            format!("{env}/checkout/pin"),
            Some(json!({"version": null})),
            "admin",
        ),
        (
            Method::GET,
            "/api/v1/blueprints/environment/rollouts".into(),
            None,
            "platform",
        ),
        (
            Method::POST,
            "/api/v1/blueprints/environment/rollouts".into(),
            Some(json!({"targetVersion": "1.1.0"})),
            "platform",
        ),
        (
            Method::POST,
            "/api/v1/blueprints/environment/rollouts/ro_nonexistent/cancel".into(),
            Some(json!({})),
            "platform",
        ),
        (Method::GET, "/api/v1/policy-packs".into(), None, "auth"),
        (Method::GET, "/api/v1/policy-packs/1".into(), None, "auth"),
        (
            Method::POST,
            "/api/v1/policy-packs".into(),
            Some(json!({"description": "{role}", "files": paddock_policy::shipped_files()})),
            "platform",
        ),
        (
            Method::POST,
            "/api/v1/policy-packs/evaluate".into(),
            Some(json!({"input": {"point": "request", "action": "create"}})),
            "platform",
        ),
    ];

    let mut wrong = Vec::new();
    for (method, path, body, rule) in &matrix {
        let may = allowed(rule);
        let mutation = !matches!(*method, Method::GET);
        let reveal = path.contains("reveal=true");
        for role in ROLES {
            let auth = &callers[role];
            let body = body
                .as_ref()
                .map(|b| serde_json::from_str(&b.to_string().replace("{role}", role)).unwrap());
            let before = counts(&pool).await;
            let seq = head(&pool).await;
            let reply = rig.call(auth, method.clone(), path, body).await;
            let status = reply.status.as_u16();
            let was_allowed = status != 401 && status != 403;
            if was_allowed != may.contains(&role) {
                wrong.push(format!(
                    "{method} {path} as {role}: {status} {}",
                    reply.text
                ));
                continue;
            }
            if was_allowed {
                assert!(
                    status < 500,
                    "{method} {path} as {role}: {status} {}",
                    reply.text
                );
                settle(&rig, &reply).await;
                continue;
            }
            let expected_status = if matches!(role, "anonymous" | "expired") {
                401
            } else {
                403
            };
            assert_eq!(
                status, expected_status,
                "{method} {path} as {role}: {}",
                reply.text
            );
            assert_eq!(reply.headers["content-type"], "application/problem+json");
            // No trace but the audit record.
            assert_eq!(
                counts(&pool).await,
                before,
                "{method} {path} as {role} left a trace"
            );
            let records = request_audit(&pool, seq).await;
            if status == 403 && (mutation || reveal) {
                assert_eq!(records.len(), 1, "{method} {path} as {role}: {records:?}");
                assert_eq!(records[0].2, "denied");
            } else {
                assert!(records.is_empty(), "{method} {path} as {role}: {records:?}");
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "not as the rules say:\n{}",
        wrong.join("\n")
    );
    rig.stop().await;
}
