//! Bad input is refused with a 4xx `application/problem+json` that names the field at
//! fault, never a 5xx, and nothing is written: malformed JSON, wrong types, unknown and
//! missing fields, oversized bodies, the wrong media type, invalid names and values.

mod common;

use common::{Backend, Rig};
use reqwest::Method;

on_both_databases!(
    bad_input_is_refused_naming_the_field_and_nothing_is_written,
    a_caller_who_is_not_signed_in_learns_nothing_about_a_request_before_401,
    every_refusal_of_a_signed_in_caller_is_a_problem_naming_what_is_wrong,
);

async fn bad_input_is_refused_naming_the_field_and_nothing_is_written(backend: Backend) {
    let rig = Rig::start(backend).await;
    rig.person("ada").await;
    rig.team("payments", &[("ada", "contributor")]).await;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&rig.db_url).await.unwrap();
    let rows = || async {
        let mut n = Vec::new();
        for table in [
            "users",
            "api_tokens",
            "teams",
            "team_members",
            "environments",
            "operations",
            "idempotency_keys",
            "audit_log",
        ] {
            let c: i64 =
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            n.push((table, c));
        }
        n
    };
    let envs = "/api/v1/teams/payments/environments";
    let huge = "x".repeat(70 * 1024);
    // (path, raw body, content type) → the problem, as `status field: message` lines.
    let cases: Vec<(&str, Method, String, &str)> = vec![
        (
            envs,
            Method::POST,
            "{\"name\": \"checkout\", ".into(),
            "application/json",
        ),
        (envs, Method::POST, "[1, 2]".into(), "application/json"),
        (
            envs,
            Method::POST,
            "{\"name\": 42, \"stages\": [\"dev\"]}".into(),
            "application/json",
        ),
        (
            envs,
            Method::POST,
            "{\"name\": \"checkout\", \"stages\": [\"staging\"]}".into(),
            "application/json",
        ),
        (
            envs,
            Method::POST,
            "{\"name\": \"checkout\", \"stages\": [\"dev\"], \"colour\": \"red\"}".into(),
            "application/json",
        ),
        (
            envs,
            Method::POST,
            "{\"stages\": [\"dev\"]}".into(),
            "application/json",
        ),
        (
            envs,
            Method::POST,
            "{\"name\": \"Check Out!\", \"stages\": [\"dev\"]}".into(),
            "application/json",
        ),
        (
            envs,
            Method::POST,
            "{\"name\": \"checkout\", \"stages\": []}".into(),
            "application/json",
        ),
        (
            envs,
            Method::POST,
            "{\"name\": \"checkout\", \"stages\": [\"dev\"], \"region\": \"West Europe\"}".into(),
            "application/json",
        ),
        (
            envs,
            Method::POST,
            "{\"name\": \"checkout\", \"stages\": [\"dev\"], \"quota\": \"huge\"}".into(),
            "application/json",
        ),
        (
            envs,
            Method::POST,
            "{\"name\": \"checkout\", \"stages\": [\"dev\"], \"admins\": [\"nobody\"]}".into(),
            "application/json",
        ),
        (
            envs,
            Method::POST,
            "{\"name\": \"checkout\", \"stages\": [\"dev\"], \"blueprintVersion\": \"9.9.9\"}"
                .into(),
            "application/json",
        ),
        (
            envs,
            Method::POST,
            format!("{{\"name\": \"{huge}\", \"stages\": [\"dev\"]}}"),
            "application/json",
        ),
        (
            envs,
            Method::POST,
            "name=checkout".into(),
            "application/x-www-form-urlencoded",
        ),
        (
            "/api/v1/teams",
            Method::POST,
            "{\"name\": \"-payments\"}".into(),
            "application/json",
        ),
        (
            "/api/v1/teams",
            Method::POST,
            "{\"name\": \"ok-team\", \"description\": 7}".into(),
            "application/json",
        ),
        (
            "/api/v1/teams/payments/members/ada",
            Method::PUT,
            "{\"role\": \"owner\"}".into(),
            "application/json",
        ),
        (
            "/api/v1/me/tokens",
            Method::POST,
            "{\"name\": \"t\", \"expiresInDays\": 0}".into(),
            "application/json",
        ),
        (
            "/api/v1/me/tokens",
            Method::POST,
            "{\"name\": \"t\", \"expiresInDays\": -3}".into(),
            "application/json",
        ),
        (
            "/api/v1/users",
            Method::POST,
            "{\"login\": \"bob smith\", \"name\": \"\", \"password\": \"short\"}".into(),
            "application/json",
        ),
        (
            "/api/v1/audit?limit=0",
            Method::GET,
            String::new(),
            "application/json",
        ),
        (
            "/api/v1/audit?colour=red",
            Method::GET,
            String::new(),
            "application/json",
        ),
    ];
    let before = rows().await;
    let mut report = Vec::new();
    for (path, method, body, content_type) in cases {
        let mut req = rig
            .http
            .request(method.clone(), format!("{}{path}", rig.url))
            .bearer_auth(&rig.admin);
        if method != Method::GET {
            req = req.header("content-type", content_type).body(body.clone());
        }
        let reply = rig.send(req).await;
        let status = reply.status.as_u16();
        assert!(
            (400..500).contains(&status),
            "{path} {body}: {status} {}",
            reply.text
        );
        assert_eq!(
            reply.headers["content-type"], "application/problem+json",
            "{path}: {}",
            reply.text
        );
        let fields: Vec<String> = reply.body["errors"]
            .as_array()
            .map(|e| {
                e.iter()
                    .map(|e| {
                        format!(
                            "{}: {}",
                            e["field"].as_str().unwrap(),
                            e["message"].as_str().unwrap()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let what = if fields.is_empty() {
            reply.body["detail"].as_str().unwrap_or_default().to_owned()
        } else {
            fields.join(" | ")
        };
        let shown = body.chars().take(60).collect::<String>();
        report.push(format!("{method} {path} {shown}\n  → {status} {what}"));
    }
    assert_eq!(rows().await, before, "bad input wrote something");
    insta::assert_snapshot!("bad_input", report.join("\n"));
    rig.stop().await;
}

/// One request, shown as `METHOD path body → status detail` for a snapshot; asserts the
/// refusal is problem+json (and a 401 says how to authenticate).
async fn refusal(rig: &Rig, token: Option<&str>, method: Method, path: &str, body: &str) -> String {
    let mut req = rig
        .http
        .request(method.clone(), format!("{}{path}", rig.url));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if !body.is_empty() {
        req = req
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    let reply = rig.send(req).await;
    let status = reply.status.as_u16();
    let mut line = format!("{method} {path} {body}\n  → {status}");
    if status >= 400 {
        assert_eq!(
            reply.headers["content-type"], "application/problem+json",
            "{path}: {}",
            reply.text
        );
        if status == 401 {
            assert_eq!(
                reply.headers["www-authenticate"],
                "Bearer realm=\"paddock\""
            );
        }
        if let Some(allow) = reply.headers.get("allow") {
            line.push_str(&format!(" (Allow: {})", allow.to_str().unwrap()));
        }
        line.push_str(&format!(
            " {}",
            reply.body["detail"].as_str().unwrap_or_default()
        ));
    }
    line
}

async fn a_caller_who_is_not_signed_in_learns_nothing_about_a_request_before_401(backend: Backend) {
    let rig = Rig::start(backend).await;
    rig.team("payments", &[]).await;
    let envs = "/api/v1/teams/payments/environments";
    let mut report = Vec::new();
    for token in [None, Some("pdk_not-a-token")] {
        for (method, path, body) in [
            (Method::POST, envs, "{\"name\": 42, \"colour\": \"red\"}"),
            (Method::POST, envs, "[1, 2"),
            (Method::POST, "/api/v1/teams", "{}"),
            (Method::GET, "/api/v1/audit?limit=100000&colour=red", ""),
            (Method::GET, "/api/v1/teams/%FF/operations", ""),
            (Method::DELETE, "/api/v1/teams", ""),
            (Method::GET, "/api/v1/no/such/path", ""),
        ] {
            report.push(refusal(&rig, token, method, path, body).await);
        }
    }
    // The description is public, as documentation is.
    report.push(refusal(&rig, None, Method::GET, "/api/v1/openapi.json", "").await);
    insta::assert_snapshot!("anonymous_refusals", report.join("\n"));
    rig.stop().await;
}

async fn every_refusal_of_a_signed_in_caller_is_a_problem_naming_what_is_wrong(backend: Backend) {
    let rig = Rig::start(backend).await;
    rig.team("payments", &[]).await;
    let admin = Some(rig.admin.as_str());
    let long_name = format!("{{\"name\": \"{}\"}}", "é".repeat(64));
    let mut report = Vec::new();
    for (method, path, body) in [
        // axum's own refusals: a method the path does not answer, a path that is not UTF-8.
        (Method::DELETE, "/api/v1/teams", ""),
        (Method::GET, "/api/v1/teams/%FF/operations", ""),
        // Declared bounds are enforced, naming the parameter.
        (
            Method::GET,
            "/api/v1/teams/payments/operations?limit=501",
            "",
        ),
        (Method::GET, "/api/v1/audit?limit=1001", ""),
        (Method::GET, "/api/v1/audit/export?limit=1001", ""),
        (Method::GET, "/api/v1/approvals?state=lost", ""),
        (Method::GET, "/api/v1/audit?since=yesterday", ""),
        // RFC 3339 with an offset, as JSON Schema's date-time reads it.
        (
            Method::GET,
            "/api/v1/audit?since=2026-01-01T00:00:00%2B01:00&limit=1",
            "",
        ),
        // JSON's `30.0` is the integer 30.
        (
            Method::POST,
            "/api/v1/me/tokens",
            "{\"name\": \"ci\", \"expiresInDays\": 30.0}",
        ),
        (
            Method::POST,
            "/api/v1/me/tokens",
            "{\"name\": \"ci\", \"expiresInDays\": 30.5}",
        ),
        // Names are counted in characters, not bytes.
        (Method::POST, "/api/v1/me/tokens", long_name.as_str()),
        (
            Method::POST,
            "/api/v1/me/tokens",
            "{\"name\": \" \\u001f \"}",
        ),
    ] {
        report.push(refusal(&rig, admin, method, path, body).await);
    }
    insta::assert_snapshot!("api_refusals", report.join("\n"));
    rig.stop().await;
}
