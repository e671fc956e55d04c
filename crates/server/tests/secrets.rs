//! Secrets stay secret: the test plants known secret values — a password, API tokens, a
//! session, the first admin's sign-in link, the clouds' credentials, and the secret
//! outputs an environment produces — then searches the database's files, the logs, every
//! operation's events, every API response and every portal page (as a platform admin, a
//! team admin and a reader see them, and the sign-in and error pages) for them. The only
//! hits allowed are the responses that hand a secret out on purpose, once: a new token,
//! and an admin's reveal in the API and in the portal.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use common::{Auth, Backend, Rig, page, submit};
use paddock_store::testing::{Planted, sqlite_files};
use serde_json::{Value, json};

on_both_databases!(planted_secrets_appear_nowhere_but_where_they_are_handed_out);

#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything any test in this binary logs, at debug level, as JSON lines.
fn logs() -> &'static Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .json()
            .with_env_filter("debug")
            .with_writer(move || writer.clone())
            .init();
        logs
    })
}

async fn planted_secrets_appear_nowhere_but_where_they_are_handed_out(backend: Backend) {
    let logs = logs();
    let rig = Rig::start(backend).await;
    let mut secrets = Planted::new();
    let password = "Planted-Passw0rd-4c1d-9e2f";
    rig.post(
        &rig.admin(),
        "/api/v1/users",
        json!({"login": "ada", "name": "Ada", "password": password}),
    )
    .await
    .expect(201);
    secrets.plant("password", password);
    let ada = rig.sign_in("ada", password).await;
    let Auth::Session { cookie, .. } = &ada else {
        unreachable!()
    };
    secrets.plant("session", cookie.clone());
    secrets.plant("initial admin token", rig.admin.clone());
    let link = rig
        .running
        .as_ref()
        .unwrap()
        .bootstrap
        .as_ref()
        .unwrap()
        .sign_in_link
        .clone();
    secrets.plant("sign-in link", link.rsplit('/').next().unwrap().to_owned());
    for (key, value) in rig.sandbox.env() {
        if key.ends_with("SECRET") || key.ends_with("TOKEN") {
            secrets.plant(key.to_owned(), value);
        }
    }
    let key_file = rig
        .sandbox
        .env()
        .into_iter()
        .find(|(k, _)| *k == "PADDOCK_SANDBOX_GITHUB_APP_KEY_FILE")
        .unwrap()
        .1;
    let key = std::fs::read_to_string(key_file).unwrap();
    let key_body: String = key.lines().nth(3).unwrap().to_owned();
    secrets.plant("GitHub App key", key_body);

    let created = rig
        .post(&ada, "/api/v1/me/tokens", json!({"name": "ci"}))
        .await
        .expect(201);
    let ada_token = created.body["token"].as_str().unwrap().to_owned();
    secrets.plant("API token", ada_token.clone());
    let handed_out_token = created.text.clone();

    rig.team("payments", &[("ada", "admin")]).await;
    let op = rig
        .post(
            &Auth::Token(ada_token.clone()),
            "/api/v1/teams/payments/environments",
            json!({"name": "checkout", "stages": ["dev", "prod"]}),
        )
        .await
        .expect(202);
    rig.succeeds_approved_by(&op.body, &rig.admin()).await;

    // The environment's secret outputs: what the masked view hides.
    let outputs = "/api/v1/teams/payments/environments/checkout/outputs";
    let masked = rig.get(&ada, outputs).await.expect(200);
    let revealed = rig
        .get(&ada, &format!("{outputs}?reveal=true"))
        .await
        .expect(200);
    for (m, r) in masked.body["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .zip(revealed.body["stacks"].as_array().unwrap())
    {
        for (name, value) in m["outputs"].as_object().unwrap() {
            if value == "[secret]" {
                let clear = r["outputs"][name]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| r["outputs"][name].to_string());
                secrets.plant(format!("output {}.{name}", m["stack"]), clear);
            }
        }
    }
    // What the GitHub environments received: each stage's kubeconfig, holding its
    // service account's token, which the engine keeps in its state.
    for stage in ["dev", "prod"] {
        let got: Value = reqwest::get(format!(
            "{}/github/secrets/payments-checkout/{stage}/KUBECONFIG",
            rig.sandbox.control_url
        ))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        let kubeconfig = got["value"].as_str().unwrap().to_owned();
        let token = kubeconfig
            .lines()
            .find_map(|l| l.trim().strip_prefix("token:"))
            .map(|t| t.trim().trim_matches('"').to_owned())
            .unwrap_or_else(|| panic!("no token in the kubeconfig: {kubeconfig}"));
        assert!(token.len() > 100, "a service-account token: {token}");
        secrets.plant(format!("{stage} service-account token"), token);
    }
    // Some more traffic: events, audit, listings, a failed sign-in with the password typed
    // into the login field.
    let ops = rig
        .get(
            &ada,
            "/api/v1/teams/payments/environments/checkout/operations",
        )
        .await
        .expect(200);
    for op in ops.body.as_array().unwrap() {
        rig.get(
            &ada,
            &format!("/api/v1/operations/{}/events", op["id"].as_str().unwrap()),
        )
        .await
        .expect(200);
    }
    rig.get(&ada, "/api/v1/teams/payments/environments/checkout/events")
        .await
        .expect(200);
    let resources = rig
        .get(
            &ada,
            "/api/v1/teams/payments/environments/checkout/resources",
        )
        .await
        .expect(200);
    assert!(
        resources.text.contains("[secret]"),
        "masked: {}",
        resources.text
    );
    rig.get(&rig.admin(), "/api/v1/audit").await.expect(200);
    rig.get(&rig.admin(), "/api/v1/audit/export")
        .await
        .expect(200);
    rig.get(&ada, "/api/v1/me/tokens").await.expect(200);
    rig.get(&ada, "/api/v1/me").await.expect(200);
    rig.get(&Auth::Token(ada_token.clone()), "/api/v1/teams/payments")
        .await
        .expect(200);

    // The portal's pages, as browsers get them, for a platform admin, a team admin and a
    // reader; and the portal's reveal, which hands the secret outputs out once.
    let portal_revealed = portal_pages(&rig, &ada, &ada_token).await;
    let revealed_outputs: Vec<&(String, String)> = secrets
        .iter()
        .filter(|(name, _)| name.starts_with("output "))
        .collect();
    assert!(
        !revealed_outputs.is_empty(),
        "the environment has secret outputs"
    );
    // The page shows each value as text: HTML-escaped.
    let shown = unescape_html(&portal_revealed);
    for (name, value) in &revealed_outputs {
        assert!(
            shown.contains(value.as_str()),
            "the portal's reveal shows {name}"
        );
    }

    // Responses: none but the three that hand secrets out.
    let responses = rig.responses.lock().unwrap().clone();
    let handed_out = [&handed_out_token, &revealed.text, &portal_revealed];
    for given in handed_out {
        let times = responses.iter().filter(|(_, body)| body == given).count();
        assert_eq!(times, 1, "a secret is handed out once");
    }
    for (status, body) in &responses {
        if handed_out.contains(&body) {
            continue;
        }
        let found = secrets.found_in(unescape_html(body).as_bytes());
        assert!(
            found.is_empty(),
            "a {status} response shows {found:?}: {body}"
        );
    }
    // Events.
    let db = paddock_store::db::Db::connect(&rig.db_url).await.unwrap();
    let events = db.events(None, None, 0, 1_000_000).await.unwrap();
    assert!(!events.is_empty());
    for e in &events {
        let found = secrets.found_in(e.data.as_bytes());
        assert!(found.is_empty(), "event {} shows {found:?}", e.id);
    }
    // The database, as stored.
    let stored: Vec<u8> = match &rig.pg {
        Some(pg) => pg.dump().await.unwrap(),
        None => sqlite_files(&rig.dir.path().join("data"), "paddock.db"),
    };
    assert!(stored.len() > 10_000, "the database was read");
    let found = secrets.found_in(&stored);
    assert!(found.is_empty(), "the database holds in clear: {found:?}");
    // The logs.
    rig.stop().await;
    let logged = logs.0.lock().unwrap().clone();
    assert!(logged.len() > 1000, "logs were captured");
    let found = secrets.found_in(&logged);
    assert!(found.is_empty(), "the logs show {found:?}");
}

/// Every portal page, as a platform admin, `ada` (admin of team `payments`) and a reader
/// see it, with the sign-in and error pages; the rig records each. Returns the page of
/// the portal's reveal (by `ada`), the one page that may show secret values.
async fn portal_pages(rig: &Rig, ada: &Auth, ada_token: &str) -> String {
    let rita = rig.person("rita").await;
    let op = rig
        .call(
            &rig.admin(),
            reqwest::Method::PUT,
            "/api/v1/teams/payments/members/rita",
            Some(json!({"role": "reader"})),
        )
        .await
        .expect(202);
    rig.succeeds(&op.body).await;
    let env = "/teams/payments/environments/checkout";
    let version = rig
        .get(&rig.admin(), "/api/v1/blueprints")
        .await
        .expect(200)
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "environment")
        .unwrap()["version"]
        .as_str()
        .unwrap()
        .to_owned();
    let operations = rig
        .get(
            &rig.admin(),
            "/api/v1/teams/payments/environments/checkout/operations",
        )
        .await
        .expect(200);
    let approvals = rig
        .get(&rig.admin(), "/api/v1/approvals?state=all")
        .await
        .expect(200);
    let mut paths: Vec<String> = vec![
        "/".into(),
        "/welcome".into(),
        "/teams".into(),
        "/teams/new".into(),
        "/teams/payments".into(),
        env.into(),
        format!("{env}/edit"),
        format!("{env}/destroy"),
        "/teams/payments/environments/new".into(),
        "/approvals".into(),
        "/audit".into(),
        "/audit?team=payments".into(),
        "/audit/verify".into(),
        "/people".into(),
        "/blueprints".into(),
        format!("/blueprints/environment/versions/{version}"),
        "/blueprints/environment/rollouts".into(),
        "/policies".into(),
        // Error pages: unknown page, unknown environment, unknown operation.
        "/no-such-page".into(),
        "/teams/payments/environments/no-such-env".into(),
        "/operations/op_nonexistent".into(),
    ];
    for op in operations.body.as_array().unwrap() {
        paths.push(format!("/operations/{}", op["id"].as_str().unwrap()));
    }
    let approvals = approvals.body.as_array().unwrap();
    assert!(!approvals.is_empty(), "prod's plan was approved");
    for a in approvals {
        paths.push(format!("/approvals/{}", a["id"].as_str().unwrap()));
    }
    let people = [
        rig.admin(),
        ada.clone(),
        Auth::Token(ada_token.to_owned()),
        rita.clone(),
    ];
    for who in &people {
        for path in &paths {
            let reply = page(rig, who, path).await;
            assert!(
                reply.status.is_success() || reply.status.is_client_error(),
                "{path}: {}",
                reply.status
            );
            assert!(
                reply.headers["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("text/html"),
                "{path} is a page"
            );
        }
    }
    // Anonymous: the sign-in page (with a `next`), a failed sign-in, and pages that send
    // a visitor to sign in.
    page(rig, &Auth::Anonymous, "/sign-in?next=/teams/payments")
        .await
        .expect(200);
    page(rig, &Auth::Anonymous, env).await;
    let failed = rig
        .send(
            rig.http
                .post(format!("{}/sign-in", rig.url))
                .header("accept", "text/html")
                .header("cookie", "paddock_form=f0rm")
                .header("content-type", "application/x-www-form-urlencoded")
                .body("login=ada&password=not-her-password&csrf_token=f0rm"),
        )
        .await;
    assert!(
        failed.text.contains("Wrong login or password"),
        "{}",
        failed.text
    );
    // A reader's forbidden attempt: an audited 403 page.
    let csrf = |who: &Auth| match who {
        Auth::Session { csrf, .. } => csrf.clone(),
        _ => String::new(),
    };
    submit(
        rig,
        &rita,
        &format!("{env}/reveal"),
        &[("csrf_token", &csrf(&rita))],
    )
    .await
    .expect(403);
    let revealed = submit(
        rig,
        ada,
        &format!("{env}/reveal"),
        &[("csrf_token", &csrf(ada))],
    )
    .await
    .expect(200);
    revealed.text
}

/// An HTML page's text with its character references undone (those an escaper writes).
fn unescape_html(page: &str) -> String {
    page.replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}
