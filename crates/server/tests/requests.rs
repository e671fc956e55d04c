//! Environment requests are blueprint-driven: the published blueprint version's
//! parameters are the one definition the server checks against, served as JSON Schema
//! that accepts and refuses exactly what the server does; a dry run previews a create or
//! an update per stack and per system and writes nothing but its audit record; an
//! environment's parameters change after creation, stages added and removed with them.

mod common;

use common::{Auth, Backend, Rig};
use reqwest::Method;
use serde_json::{Value, json};

on_both_databases!(
    the_json_schema_accepts_and_refuses_what_the_server_does,
    a_dry_run_previews_every_stack_per_system_and_writes_only_its_audit_record,
    parameters_change_after_creation_and_a_removed_stage_is_destroyed,
    a_refresh_that_finds_drift_marks_the_environment_until_an_up,
    the_form_says_what_the_api_says_and_works_without_javascript,
);

const ENVS: &str = "/api/v1/teams/payments/environments";

async fn the_json_schema_accepts_and_refuses_what_the_server_does(backend: Backend) {
    let rig = Rig::start(backend).await;
    rig.team("payments", &[]).await;
    let admin = rig.admin();
    let schema = rig
        .get(
            &admin,
            "/api/v1/blueprints/environment/versions/1.1.0/schema",
        )
        .await
        .expect(200);
    assert_eq!(
        schema.headers["content-type"], "application/schema+json",
        "the schema is served as what it is"
    );
    assert_eq!(
        schema.body["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(
        schema.body["$id"],
        format!(
            "{}/api/v1/blueprints/environment/versions/1.1.0/schema",
            rig.url
        )
    );
    let validator = jsonschema::validator_for(&schema.body).expect("a valid JSON Schema");

    // (parameters, the field the server names, or None when it accepts them)
    let cases: Vec<(Value, Option<&str>)> = vec![
        (json!({"stages": ["dev"]}), None),
        (
            json!({"stages": ["dev", "prod"], "region": "northeurope", "quota": "large"}),
            None,
        ),
        (json!({"stages": ["test"], "admins": ["admin"]}), None),
        (json!({}), Some("stages")),
        (json!({"stages": []}), Some("stages")),
        (json!({"stages": ["staging"]}), Some("stages[0]")),
        (json!({"stages": "dev"}), Some("stages")),
        (
            json!({"stages": ["dev"], "region": "West Europe"}),
            Some("region"),
        ),
        (json!({"stages": ["dev"], "region": 7}), Some("region")),
        (json!({"stages": ["dev"], "quota": "huge"}), Some("quota")),
        (json!({"stages": ["dev"], "colour": "red"}), Some("colour")),
        (
            json!({"stages": ["dev"], "admins": ["has space"]}),
            Some("admins[0]"),
        ),
        (
            json!({"stages": ["dev"], "contributors": "admin"}),
            Some("contributors"),
        ),
    ];
    let mut report = Vec::new();
    for (i, (parameters, field)) in cases.iter().enumerate() {
        let mut body = parameters.clone();
        body["name"] = json!(format!("case-{i}"));
        let reply = rig.post(&admin, &format!("{ENVS}?dryRun=true"), body).await;
        let schema_accepts = validator.is_valid(parameters);
        match field {
            None => {
                assert_eq!(reply.status, 200, "{parameters}: {}", reply.text);
                assert!(schema_accepts, "the schema refuses {parameters}");
            }
            Some(field) => {
                assert_eq!(reply.status, 422, "{parameters}: {}", reply.text);
                assert_eq!(
                    reply.body["errors"][0]["field"], *field,
                    "{parameters}: {}",
                    reply.text
                );
                assert!(!schema_accepts, "the schema accepts {parameters}");
                report.push(format!(
                    "{parameters}\n  → {}: {}",
                    reply.body["errors"][0]["field"].as_str().unwrap(),
                    reply.body["errors"][0]["message"].as_str().unwrap()
                ));
            }
        }
    }
    insta::assert_snapshot!("parameter_errors", report.join("\n"));
    // Nothing was made by any of it.
    let envs = rig.get(&admin, ENVS).await.expect(200);
    assert_eq!(envs.body, json!([]));
    rig.stop().await;
}

async fn a_dry_run_previews_every_stack_per_system_and_writes_only_its_audit_record(
    backend: Backend,
) {
    let rig = Rig::start(backend).await;
    let ada = rig.person("ada").await;
    rig.team("payments", &[("ada", "admin")]).await;
    let audit_before = rig.audit_count().await;
    let ops_before = rig
        .get(&rig.admin(), "/api/v1/teams/payments/operations")
        .await
        .expect(200)
        .body
        .as_array()
        .unwrap()
        .len();

    let preview = rig
        .post(
            &ada,
            &format!("{ENVS}?dryRun=true"),
            json!({"name": "checkout", "stages": ["dev", "prod"], "region": "northeurope"}),
        )
        .await
        .expect(200);
    let p = &preview.body;
    assert_eq!(p["blueprintVersion"], "1.1.0");
    assert_eq!(p["parameters"]["quota"], "medium", "defaults are filled");
    assert!(
        p["parameters"]["admins"]
            .as_array()
            .unwrap()
            .contains(&json!("ada")),
        "the team's admins: {}",
        p["parameters"]
    );
    let stacks: Vec<(&str, &str)> = p["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["stack"].as_str().unwrap(), s["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        stacks,
        [
            ("payments-checkout", "up"),
            ("payments-checkout-dev", "up"),
            ("payments-checkout-prod", "up")
        ]
    );
    let dev = &p["stacks"][1];
    let systems: Vec<&str> = dev["systems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["system"].as_str().unwrap())
        .collect();
    assert_eq!(systems, ["Azure", "Entra ID", "Kubernetes", "GitHub"]);
    assert_eq!(dev["counts"]["delete"], 0);
    assert!(dev["counts"]["create"].as_u64().unwrap() >= 8, "{dev}");
    assert!(p["counts"]["create"].as_u64().unwrap() > dev["counts"]["create"].as_u64().unwrap());
    // A create's diff shows what it will be made with, the region among it.
    let azure = &dev["systems"][0];
    let group = azure["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "azure:resourceGroup")
        .expect("the resource group is created");
    assert_eq!(group["kind"], "create");
    assert!(
        group["diffs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["property"] == "location" && d["new"] == "northeurope"),
        "{group}"
    );

    // Only the audit record was written.
    assert_eq!(rig.audit_count().await, audit_before + 1);
    let audit = rig
        .get(&rig.admin(), "/api/v1/audit?team=payments")
        .await
        .expect(200);
    let last = audit.body.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "environment.preview");
    assert_eq!(last["actor"], "ada");
    assert_eq!(rig.get(&ada, ENVS).await.expect(200).body, json!([]));
    let ops_after = rig
        .get(&rig.admin(), "/api/v1/teams/payments/operations")
        .await
        .expect(200)
        .body
        .as_array()
        .unwrap()
        .len();
    assert_eq!(ops_after, ops_before);
    rig.stop().await;
}

async fn parameters_change_after_creation_and_a_removed_stage_is_destroyed(backend: Backend) {
    let rig = Rig::start(backend).await;
    let ada = rig.person("ada").await;
    let cole = rig.person("cole").await;
    rig.team("payments", &[("ada", "admin"), ("cole", "contributor")])
        .await;
    let created = rig
        .post(
            &ada,
            ENVS,
            json!({"name": "checkout", "stages": ["dev"], "quota": "small"}),
        )
        .await
        .expect(202);
    rig.succeeds(&created.body).await;
    let checkout = format!("{ENVS}/checkout");

    // Preview a change: a new stage and a bigger quota.
    let change = json!({"stages": ["dev", "test"], "quota": "large"});
    let preview = rig
        .call(
            &cole,
            Method::PATCH,
            &format!("{checkout}?dryRun=true"),
            Some(change.clone()),
        )
        .await
        .expect(200);
    let by_stack = |p: &Value, stack: &str| -> Value {
        p["stacks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stack"] == stack)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let dev = by_stack(&preview.body, "payments-checkout-dev");
    assert_eq!(dev["counts"]["create"], 0, "{dev}");
    assert_eq!(dev["counts"]["update"], 1, "only the quota changes: {dev}");
    let quota = &dev["systems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["system"] == "Kubernetes")
        .unwrap()["changes"][0];
    assert_eq!(quota["type"], "kubernetes:resourceQuota", "{quota}");
    let test = by_stack(&preview.body, "payments-checkout-test");
    assert!(test["counts"]["create"].as_u64().unwrap() >= 8, "{test}");
    // The preview changed nothing.
    let env = rig.get(&cole, &checkout).await.expect(200);
    assert_eq!(env.body["parameters"]["stages"], json!(["dev"]));

    // Apply it.
    let applied = rig
        .call(&cole, Method::PATCH, &checkout, Some(change))
        .await
        .expect(202);
    assert_eq!(applied.body["kind"], "up");
    assert_eq!(applied.body["stages"], json!(["dev", "test"]));
    rig.succeeds(&applied.body).await;
    let env = rig.get(&cole, &checkout).await.expect(200);
    assert_eq!(env.body["parameters"]["stages"], json!(["dev", "test"]));
    assert_eq!(env.body["parameters"]["quota"], "large");
    assert_eq!(env.body["status"], "ready");

    // A bad value is refused at its field, and nothing changes.
    let bad = rig
        .call(
            &cole,
            Method::PATCH,
            &checkout,
            Some(json!({"quota": "huge"})),
        )
        .await
        .expect(422);
    assert_eq!(bad.body["errors"][0]["field"], "quota");
    // Adding prod takes an admin.
    rig.call(
        &cole,
        Method::PATCH,
        &checkout,
        Some(json!({"stages": ["dev", "test", "prod"]})),
    )
    .await
    .expect(403);

    // Removing dev destroys its stack.
    let removal = json!({"stages": ["test"]});
    let preview = rig
        .call(
            &cole,
            Method::PATCH,
            &format!("{checkout}?dryRun=true"),
            Some(removal.clone()),
        )
        .await
        .expect(200);
    let dev = by_stack(&preview.body, "payments-checkout-dev");
    assert_eq!(dev["action"], "destroy");
    assert!(dev["counts"]["delete"].as_u64().unwrap() >= 8, "{dev}");
    let removed = rig
        .call(&cole, Method::PATCH, &checkout, Some(removal))
        .await
        .expect(202);
    rig.succeeds(&removed.body).await;
    let inspect: Value = reqwest::get(format!("{}/inspect", rig.sandbox.control_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let groups: Vec<&str> = inspect["arm"]["resourceGroup"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        groups,
        ["rg-payments-checkout-test"],
        "dev is gone, test stays"
    );
    let resources = rig
        .get(&cole, &format!("{checkout}/resources"))
        .await
        .expect(200);
    assert!(
        !resources.text.contains("payments-checkout-dev\""),
        "{}",
        resources.text
    );
    // Every change is attributed.
    let audit = rig
        .get(&rig.admin(), "/api/v1/audit?team=payments")
        .await
        .expect(200);
    let updates: Vec<&Value> = audit
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "environment.update")
        .collect();
    assert_eq!(updates.len(), 2);
    assert!(updates.iter().all(|r| r["actor"] == "cole"));
    rig.stop().await;
}

async fn a_refresh_that_finds_drift_marks_the_environment_until_an_up(backend: Backend) {
    let rig = Rig::start(backend).await;
    rig.team("payments", &[]).await;
    let admin = rig.admin();
    let created = rig
        .post(&admin, ENVS, json!({"name": "checkout", "stages": ["dev"]}))
        .await
        .expect(202);
    rig.succeeds(&created.body).await;
    // Someone with the cluster's admin credentials removes a guardrail by hand.
    let gone = reqwest::Client::new()
        .delete(format!(
            "{}/api/v1/namespaces/payments-checkout-dev/limitranges/paddock-defaults",
            rig.sandbox.kubernetes_url()
        ))
        .bearer_auth(&rig.sandbox.kubernetes_token)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 200);
    let ops = format!("{ENVS}/checkout/operations");
    let refresh = rig
        .post(&admin, &ops, json!({"kind": "refresh"}))
        .await
        .expect(202);
    rig.succeeds(&refresh.body).await;
    let env = rig
        .get(&admin, &format!("{ENVS}/checkout"))
        .await
        .expect(200);
    assert_eq!(env.body["status"], "drifted");
    let up = rig
        .post(&admin, &ops, json!({"kind": "up"}))
        .await
        .expect(202);
    rig.succeeds(&up.body).await;
    let env = rig
        .get(&admin, &format!("{ENVS}/checkout"))
        .await
        .expect(200);
    assert_eq!(env.body["status"], "ready");
    rig.stop().await;
}

/// Posts a portal form as a browser without JavaScript would (the session cookie, the
/// CSRF token in the body, redirects not followed).
async fn post_form(rig: &Rig, auth: &Auth, path: &str, fields: &[(&str, &str)]) -> common::Reply {
    let Auth::Session { cookie, csrf } = auth else {
        panic!("a form is posted from a session")
    };
    let mut body: Vec<(&str, &str)> = fields.to_vec();
    body.push(("csrf_token", csrf));
    let req = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}{path}", rig.url))
        .header("cookie", format!("paddock_session={cookie}"))
        .header("accept", "text/html")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(&body).unwrap());
    rig.send(req).await
}

async fn the_form_says_what_the_api_says_and_works_without_javascript(backend: Backend) {
    let rig = Rig::start(backend).await;
    let ada = rig.person("ada").await;
    rig.team("payments", &[("ada", "admin")]).await;
    let bad = [
        ("name", "checkout"),
        ("stages.present", "1"),
        ("stages", "dev"),
        ("region", "West Europe"),
        ("quota", "huge"),
    ];
    // What the API says of these values…
    let api = rig
        .post(
            &ada,
            &format!("{ENVS}?dryRun=true"),
            json!({"name": "checkout", "stages": ["dev"], "region": "West Europe", "quota": "huge"}),
        )
        .await
        .expect(422);
    let messages: Vec<String> = api.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(messages.len(), 2, "{}", api.text);
    // …the inline check says next to each field, and so does the submitted form.
    let inline = post_form(&rig, &ada, "/teams/payments/environments/new/check", &bad).await;
    assert_eq!(inline.status, 200, "{}", inline.text);
    let submitted = post_form(
        &rig,
        &ada,
        "/teams/payments/environments/new",
        &[&bad[..], &[("_action", "preview")]].concat(),
    )
    .await;
    assert_eq!(submitted.status, 422, "{}", submitted.text);
    for message in &messages {
        let html = message.replace('"', "&#34;");
        assert!(
            inline.text.contains(&html),
            "the inline check lacks {message}: {}",
            inline.text
        );
        assert!(
            submitted.text.contains(&html),
            "the refused form lacks {message}"
        );
    }
    assert!(inline.text.contains("id=\"error-region\""));

    // Without JavaScript: preview, then confirm, as plain posts.
    let good = [
        ("name", "checkout"),
        ("stages.present", "1"),
        ("stages", "dev"),
        ("region", "northeurope"),
        ("quota", "small"),
    ];
    let preview = post_form(
        &rig,
        &ada,
        "/teams/payments/environments/new",
        &[&good[..], &[("_action", "preview")]].concat(),
    )
    .await;
    assert_eq!(preview.status, 200, "{}", preview.text);
    assert!(preview.text.contains("Preview: create checkout"));
    assert_eq!(rig.get(&ada, ENVS).await.expect(200).body, json!([]));
    let confirmed = post_form(
        &rig,
        &ada,
        "/teams/payments/environments/new",
        &[&good[..], &[("_action", "apply")]].concat(),
    )
    .await;
    assert_eq!(confirmed.status, 303, "{}", confirmed.text);
    let location = confirmed.headers["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/operations/op_"), "{location}");
    let op = rig
        .get(&ada, &format!("/api/v1{location}"))
        .await
        .expect(200);
    rig.succeeds(&op.body).await;
    let env = rig.get(&ada, &format!("{ENVS}/checkout")).await.expect(200);
    assert_eq!(env.body["parameters"]["region"], "northeurope");
    assert_eq!(env.body["parameters"]["quota"], "small");

    // The change form, the same way.
    let changed = post_form(
        &rig,
        &ada,
        "/teams/payments/environments/checkout/edit",
        &[("quota", "large"), ("_action", "apply")],
    )
    .await;
    assert_eq!(changed.status, 303, "{}", changed.text);
    let location = changed.headers["location"].to_str().unwrap().to_owned();
    let op = rig
        .get(&ada, &format!("/api/v1{location}"))
        .await
        .expect(200);
    rig.succeeds(&op.body).await;
    let env = rig.get(&ada, &format!("{ENVS}/checkout")).await.expect(200);
    assert_eq!(env.body["parameters"]["quota"], "large");
    assert_eq!(env.body["parameters"]["region"], "northeurope", "kept");
    // A form without the session's CSRF token changes nothing.
    let forged = reqwest::Client::new()
        .post(format!(
            "{}/teams/payments/environments/checkout/edit",
            rig.url
        ))
        .header(
            "cookie",
            match &ada {
                Auth::Session { cookie, .. } => format!("paddock_session={cookie}"),
                _ => unreachable!(),
            },
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body("quota=small&_action=apply")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    rig.stop().await;
}
