//! Policy as code on the server: the active policy pack decides every environment
//! request after its own checks (a denial is 422 `policy-denied`, each reason at its field
//! naming its rule, in the API and in the forms, and audited); platform admins publish
//! pack versions (compiled and tested first, audited), and evaluate inputs against them.

mod common;

use common::{Auth, Backend, Rig};
use serde_json::{Value, json};

on_both_databases!(
    a_region_outside_the_allowed_list_is_denied_at_its_field_in_the_api_and_the_form,
    a_team_at_its_environment_limit_is_denied_and_a_destroy_is_a_request_too,
    platform_admins_publish_policy_packs_that_compile_and_pass_their_tests,
);

const ENVS: &str = "/api/v1/teams/payments/environments";

fn shipped_files() -> Value {
    json!(paddock_policy::shipped_files())
}

async fn post_form(rig: &Rig, auth: &Auth, path: &str, fields: &[(&str, &str)]) -> common::Reply {
    let Auth::Session { cookie, csrf } = auth else {
        panic!("a form is posted from a session")
    };
    let mut body: Vec<(&str, &str)> = fields.to_vec();
    body.push(("csrf_token", csrf));
    let req = rig
        .http
        .post(format!("{}{path}", rig.url))
        .header("cookie", format!("paddock_session={cookie}"))
        .header("accept", "text/html")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(&body).unwrap());
    rig.send(req).await
}

/// The `environment.*` records of the team's audit log denied by policy.
async fn policy_denials(rig: &Rig) -> Vec<Value> {
    let audit = rig
        .get(&rig.admin(), "/api/v1/audit?team=payments")
        .await
        .expect(200);
    audit
        .body
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r["outcome"] == "denied" && r["detail"]["rules"].is_array())
        .collect()
}

async fn a_region_outside_the_allowed_list_is_denied_at_its_field_in_the_api_and_the_form(
    backend: Backend,
) {
    let rig = Rig::start(backend).await;
    let ada = rig.person("ada").await;
    rig.team("payments", &[("ada", "admin")]).await;
    let request = json!({"name": "checkout", "stages": ["dev"], "region": "eastus"});

    // The API, a dry run and a real request alike: 422 naming the rule and the field.
    for path in [format!("{ENVS}?dryRun=true"), ENVS.to_owned()] {
        let refused = rig.post(&ada, &path, request.clone()).await.expect(422);
        assert_eq!(refused.headers["content-type"], "application/problem+json");
        assert_eq!(
            refused.body["type"],
            "https://paddock.dev/problems/policy-denied"
        );
        assert_eq!(refused.body["title"], "Denied by policy");
        let errors = refused.body["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{}", refused.text);
        assert_eq!(errors[0]["field"], "region");
        assert_eq!(errors[0]["rule"], "allowed-regions");
        assert!(
            errors[0]["message"]
                .as_str()
                .unwrap()
                .starts_with("region \"eastus\" is not allowed; allowed regions: "),
            "{}",
            refused.text
        );
    }
    assert_eq!(
        rig.get(&ada, ENVS).await.expect(200).body,
        json!([]),
        "nothing was created"
    );
    // The same request in an allowed region passes the policy.
    rig.post(
        &ada,
        &format!("{ENVS}?dryRun=true"),
        json!({"name": "checkout", "stages": ["dev"], "region": "westeurope"}),
    )
    .await
    .expect(200);

    // The form: the inline check and the submitted form show it at the region field.
    let form = [
        ("name", "checkout"),
        ("stages.present", "1"),
        ("stages", "dev"),
        ("region", "eastus"),
        ("quota", "small"),
    ];
    let shown = "region &#34;eastus&#34; is not allowed; allowed regions: germanywestcentral, \
                 northeurope, swedencentral, westeurope (policy rule allowed-regions)";
    let inline = post_form(&rig, &ada, "/teams/payments/environments/new/check", &form).await;
    assert_eq!(inline.status, 200, "{}", inline.text);
    let slot = inline
        .text
        .split("id=\"error-region\"")
        .nth(1)
        .expect("the region's message slot");
    assert!(
        slot.split("</p>").next().unwrap().contains(shown),
        "{}",
        inline.text
    );
    let submitted = post_form(
        &rig,
        &ada,
        "/teams/payments/environments/new",
        &[&form[..], &[("_action", "preview")]].concat(),
    )
    .await;
    assert_eq!(submitted.status, 422, "{}", submitted.text);
    assert!(submitted.text.contains(shown), "{}", submitted.text);
    assert!(submitted.text.contains("<a href=\"#f-region\">region</a>"));

    // Each refused request (API and form, not the inline check) is audited as denied.
    let denials = policy_denials(&rig).await;
    assert_eq!(denials.len(), 3, "{denials:#?}");
    for d in &denials {
        assert_eq!(d["action"], "environment.create");
        assert_eq!(d["actor"], "ada");
        assert_eq!(d["detail"]["rules"], json!(["allowed-regions"]));
        assert_eq!(d["detail"]["policyPack"], 1);
    }
    rig.stop().await;
}

async fn a_team_at_its_environment_limit_is_denied_and_a_destroy_is_a_request_too(
    backend: Backend,
) {
    let rig = Rig::start(backend).await;
    let ada = rig.person("ada").await;
    rig.team("payments", &[("ada", "admin")]).await;
    // A platform admin lowers the limit to one environment per team.
    let mut files = shipped_files();
    let mut data: Value = serde_json::from_str(files["data.json"].as_str().unwrap()).unwrap();
    data["settings"]["maxEnvironmentsPerTeam"] = json!(1);
    files["data.json"] = json!(serde_json::to_string_pretty(&data).unwrap());
    // And a rule of the team's own: checkout is kept (a destroy is a request too). It
    // reads the request document as documented.
    files["keep.rego"] = json!(
        r#"package paddock.policies.keep

deny contains {"rule": "keep-checkout", "message": "checkout is kept"} if {
	input.point == "request"
	input.action == "destroy"
	input.requester == {"login": "ada", "platformAdmin": false, "teamRole": "admin"}
	input.team == {"name": "payments", "environments": 1}
	input.blueprint == {"name": "environment", "version": "1.1.0"}
	input.environment.name == "checkout"
	input.environment.exists
	input.environment.parameters.stages == ["dev"]
	input.parameters.region == "westeurope"
}
"#
    );
    // The pack's own test of the shipped limit changes with it.
    let test = files["environment_limit_test.rego"].as_str().unwrap();
    assert!(test.contains("create(19)"));
    files["environment_limit_test.rego"] = json!(
        test.replace("create(19)", "create(0)")
            .replace("create(20)", "create(1)")
    );
    let published = rig
        .post(
            &rig.admin(),
            "/api/v1/policy-packs",
            json!({"description": "one environment per team", "files": files}),
        )
        .await
        .expect(201);
    assert_eq!(published.body["version"], 2);

    rig.post(&ada, ENVS, json!({"name": "checkout", "stages": ["dev"]}))
        .await
        .expect(202);
    let refused = rig
        .post(&ada, ENVS, json!({"name": "billing", "stages": ["dev"]}))
        .await
        .expect(422);
    assert_eq!(
        refused.body["errors"],
        json!([{
            "field": "(request)",
            "rule": "environments-per-team",
            "message": "team payments already has 1 environments, the most a team may have; \
                        destroy one first, or ask a platform admin to raise the limit",
        }])
    );
    let refused = rig
        .post(
            &ada,
            &format!("{ENVS}/checkout/operations"),
            json!({"kind": "destroy"}),
        )
        .await
        .expect(422);
    assert_eq!(
        refused.body["errors"],
        json!([{"field": "(request)", "rule": "keep-checkout", "message": "checkout is kept"}])
    );
    let denials = policy_denials(&rig).await;
    assert_eq!(denials.len(), 2, "{denials:#?}");
    assert_eq!(denials[0]["action"], "environment.create");
    assert_eq!(denials[0]["target"], "teams/payments/environments/billing");
    assert_eq!(denials[0]["detail"]["policyPack"], 2);
    assert_eq!(
        denials[0]["detail"]["rules"],
        json!(["environments-per-team"])
    );
    assert_eq!(denials[1]["action"], "environment.destroy");
    assert_eq!(denials[1]["target"], "teams/payments/environments/checkout");
    assert_eq!(denials[1]["detail"]["rules"], json!(["keep-checkout"]));
    rig.stop().await;
}

async fn platform_admins_publish_policy_packs_that_compile_and_pass_their_tests(backend: Backend) {
    let rig = Rig::start(backend).await;
    let ada = rig.person("ada").await;
    let admin = rig.admin();

    // The shipped pack is version 1, readable by anyone signed in.
    let list = rig.get(&ada, "/api/v1/policy-packs").await.expect(200);
    assert_eq!(list.body.as_array().unwrap().len(), 1, "{}", list.text);
    assert_eq!(list.body[0]["version"], 1);
    assert_eq!(list.body[0]["active"], true);
    assert_eq!(list.body[0]["publishedBy"], "system");
    let v1 = rig.get(&ada, "/api/v1/policy-packs/1").await.expect(200);
    assert_eq!(v1.body["files"], shipped_files());
    rig.get(&ada, "/api/v1/policy-packs/7").await.expect(404);
    rig.get(&Auth::Anonymous, "/api/v1/policy-packs")
        .await
        .expect(401);

    // Only platform admins publish.
    let mut files = shipped_files();
    files["data.json"] = json!(
        files["data.json"]
            .as_str()
            .unwrap()
            .replace("\"westeurope\",", "\"westeurope\", \"centralus\",")
    );
    let new = json!({"description": "centralus allowed", "files": files});
    let before = rig.audit_count().await;
    rig.post(&ada, "/api/v1/policy-packs", new.clone())
        .await
        .expect(403);
    assert_eq!(rig.audit_count().await, before + 1, "the denial is audited");

    // A pack that does not compile is refused naming the file and the line.
    let mut broken = shipped_files();
    broken["broken.rego"] =
        json!("package paddock.policies.broken\n\ndeny contains x if {\n\tx := = 1\n}\n");
    let refused = rig
        .post(&admin, "/api/v1/policy-packs", json!({"files": broken}))
        .await
        .expect(422);
    assert_eq!(refused.body["errors"][0]["field"], "files.broken.rego");
    assert!(
        refused.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("broken.rego:4:"),
        "{}",
        refused.text
    );
    // A pack whose own tests fail is refused naming each failing test.
    let mut untested = shipped_files();
    untested["data.json"] = json!(untested["data.json"].as_str().unwrap().replace(
        "\"maxEnvironmentsPerTeam\": 20",
        "\"maxEnvironmentsPerTeam\": 5"
    ));
    let refused = rig
        .post(&admin, "/api/v1/policy-packs", json!({"files": untested}))
        .await
        .expect(422);
    assert_eq!(
        refused.body["errors"],
        json!([{
            "field": "files.environment_limit_test.rego",
            "message": "test paddock.policies.environment_limit.test_the_shipped_limit_is_twenty \
                        failed: its body did not hold",
        }])
    );

    // Published: version 2, in force at once; the same files again publish nothing.
    let published = rig
        .post(&admin, "/api/v1/policy-packs", new.clone())
        .await
        .expect(201);
    assert_eq!(published.body["version"], 2);
    assert_eq!(published.headers["location"], "/api/v1/policy-packs/2");
    let again = rig
        .post(&admin, "/api/v1/policy-packs", new.clone())
        .await
        .expect(200);
    assert_eq!(again.body["version"], 2);
    let list = rig.get(&ada, "/api/v1/policy-packs").await.expect(200);
    let versions: Vec<(i64, bool)> = list
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_i64().unwrap(),
                v["active"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(versions, [(2, true), (1, false)]);

    // Evaluate: the active version by default, or a given one; platform admins only.
    let mut input: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../policies/examples/request-create-eastus.json"
        ))
        .unwrap(),
    )
    .unwrap();
    input["parameters"]["region"] = json!("centralus");
    let decided = rig
        .post(
            &admin,
            "/api/v1/policy-packs/evaluate",
            json!({"input": input}),
        )
        .await
        .expect(200);
    assert_eq!(
        decided.body,
        json!({"outcome": "allow", "denials": [], "approvals": [], "version": 2})
    );
    let decided = rig
        .post(
            &admin,
            "/api/v1/policy-packs/evaluate",
            json!({"input": input, "version": 1}),
        )
        .await
        .expect(200);
    assert_eq!(decided.body["outcome"], "deny");
    assert_eq!(decided.body["version"], 1);
    assert_eq!(decided.body["denials"][0]["rule"], "allowed-regions");
    rig.post(
        &ada,
        "/api/v1/policy-packs/evaluate",
        json!({"input": input}),
    )
    .await
    .expect(403);

    // The portal's page, for platform admins: versions, tests, files, and a form that
    // publishes a version with one file edited.
    rig.post(
        &admin,
        "/api/v1/users",
        json!({"login": "pat", "name": "Pat", "password": "pat-correct-horse-battery",
               "platformAdmin": true}),
    )
    .await
    .expect(201);
    let pat = rig.sign_in("pat", "pat-correct-horse-battery").await;
    let page = rig.get(&pat, "/policies").await.expect(200);
    assert!(page.text.contains("<h1>Policies</h1>"));
    assert!(page.text.contains("centralus allowed"));
    assert!(page.text.contains(" passed, 0 failed."), "{}", page.text);
    assert!(page.text.contains("<code>regions.rego</code>"));
    assert!(
        page.text.contains("href=\"/policies\""),
        "linked in the nav"
    );
    let forbidden = rig.get(&ada, "/policies").await;
    assert_eq!(forbidden.status, 403);
    assert!(!rig.get(&ada, "/").await.text.contains("href=\"/policies\""));
    let edited = files["data.json"]
        .as_str()
        .unwrap()
        .replace("\"centralus\",", "\"centralus\", \"uksouth\",");
    let form = [
        ("file", "data.json"),
        ("content", edited.as_str()),
        ("description", "uksouth too"),
    ];
    let posted = post_form(&rig, &pat, "/policies", &form).await;
    assert_eq!(posted.status, 303, "{}", posted.text);
    assert_eq!(posted.headers["location"], "/policies?published=3");
    let broken = [
        ("file", "broken.rego"),
        (
            "content",
            "package paddock.policies.broken\n\ndeny contains x if {\n\tx := = 1\n}\n",
        ),
        ("description", ""),
    ];
    let refused = post_form(&rig, &pat, "/policies", &broken).await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    assert!(refused.text.contains("broken.rego:4:"), "{}", refused.text);
    assert!(
        post_form(&rig, &ada, "/policies", &form).await.status == 403,
        "a non-admin's form is refused"
    );

    // Every version is in the audit log, with who published it.
    let audit = rig.get(&admin, "/api/v1/audit").await.expect(200);
    let records = audit.body.as_array().cloned().unwrap();
    let publications: Vec<(String, String, String)> = records
        .iter()
        .filter(|r| r["action"] == "policy.publish")
        .map(|r| {
            (
                r["target"].as_str().unwrap().to_owned(),
                r["actor"].as_str().unwrap().to_owned(),
                r["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = |t: &str, a: &str, o: &str| (t.to_owned(), a.to_owned(), o.to_owned());
    for publication in [
        expected("policy-packs/1", "system", "allowed"),
        expected("policy-packs/2", "admin", "allowed"),
        expected("policy-packs/3", "pat", "allowed"),
        expected("policy-packs", "ada", "denied"),
    ] {
        assert!(
            publications.contains(&publication),
            "{publication:?} not in {publications:?}"
        );
    }
    assert_eq!(
        publications.len(),
        5,
        "two denials of ada: {publications:?}"
    );
    rig.stop().await;
}
