//! The portal's pages, as a browser sees them: who gets which page, which controls each
//! role sees, forms that need the session's CSRF token and are refused (with an audited
//! 403 page) to those who may not use them, error pages for browsers while the API keeps
//! problem+json, and no secret value in any page unless an admin reveals it.

mod common;

use common::{Auth, Backend, Reply, Rig, page, submit};
use serde_json::{Value, json};

on_both_databases!(
    pages_render_for_the_right_people_and_hide_controls_from_readers,
    forms_need_the_csrf_token_and_refuse_readers_with_an_audited_403_page,
    secrets_stay_out_of_pages_until_an_admin_reveals_them,
    forms_change_things_through_the_apis_logic,
    errors_are_pages_for_browsers_and_problems_for_the_api,
);

fn csrf(who: &Auth) -> &str {
    match who {
        Auth::Session { csrf, .. } => csrf,
        _ => "",
    }
}

fn is_html(r: &Reply) -> bool {
    r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html")
}

struct Team {
    rita: Auth,
    carl: Auth,
    ada: Auth,
    op: String,
}

/// Team `payments` (rita reader, carl contributor, ada admin) with environment
/// `checkout` (dev) provisioned.
async fn payments(rig: &Rig) -> Team {
    let rita = rig.person("rita").await;
    let carl = rig.person("carl").await;
    let ada = rig.person("ada").await;
    rig.team(
        "payments",
        &[
            ("rita", "reader"),
            ("carl", "contributor"),
            ("ada", "admin"),
        ],
    )
    .await;
    let op = rig
        .post(
            &carl,
            "/api/v1/teams/payments/environments",
            json!({"name": "checkout", "stages": ["dev"]}),
        )
        .await
        .expect(202);
    rig.succeeds(&op.body).await;
    Team {
        rita,
        carl,
        ada,
        op: op.body["id"].as_str().unwrap().to_owned(),
    }
}

const ENV: &str = "/teams/payments/environments/checkout";

async fn pages_render_for_the_right_people_and_hide_controls_from_readers(backend: Backend) {
    let rig = Rig::start(backend).await;
    let t = payments(&rig).await;
    let blueprints = rig
        .get(&rig.admin(), "/api/v1/blueprints")
        .await
        .expect(200);
    let version = blueprints
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "environment")
        .unwrap()["version"]
        .as_str()
        .unwrap()
        .to_owned();
    let everyone = [
        "/".to_owned(),
        "/teams".into(),
        "/teams/payments".into(),
        ENV.into(),
        format!("/operations/{}", t.op),
        "/blueprints".into(),
        format!("/blueprints/environment/versions/{version}"),
        "/people".into(),
        "/audit?team=payments".into(),
        "/teams/new".into(),
        "/welcome".into(),
    ];
    for who in [&t.rita, &t.carl, &t.ada, &rig.admin()] {
        for path in &everyone {
            let r = page(&rig, who, path).await;
            assert_eq!(r.status, 200, "{path}: {}", r.text);
            assert!(is_html(&r), "{path}");
            assert!(r.text.contains("<main id=\"main\""), "{path}");
            assert_eq!(r.headers["cache-control"], "no-store", "{path}");
        }
    }
    // The whole audit log and its verification are the platform admins'.
    page(&rig, &rig.admin(), "/audit").await.expect(200);
    let verify = page(&rig, &rig.admin(), "/audit/verify").await.expect(200);
    assert!(verify.text.contains("verifies"), "{}", verify.text);
    page(&rig, &t.ada, "/audit").await.expect(403);
    page(&rig, &t.ada, "/audit/verify").await.expect(403);
    // Who sees which control: decided by the policy.
    let controls = [
        ("/destroy\"", "destroy"),
        ("Reveal secret values", "reveal"),
        ("name=\"kind\" value=\"refresh\"", "refresh"),
    ];
    let rita = page(&rig, &t.rita, ENV).await.expect(200).text;
    let carl = page(&rig, &t.carl, ENV).await.expect(200).text;
    let ada = page(&rig, &t.ada, ENV).await.expect(200).text;
    for (needle, what) in controls {
        assert!(!rita.contains(needle), "a reader sees {what}");
        assert!(ada.contains(needle), "an admin does not see {what}");
    }
    assert!(
        carl.contains("value=\"refresh\""),
        "a contributor refreshes dev"
    );
    assert!(
        !carl.contains("/destroy\""),
        "a contributor does not destroy"
    );
    let team = |who| page(&rig, who, "/teams/payments");
    let rita_team = team(&t.rita).await.text;
    assert!(!rita_team.contains("Add member") && !rita_team.contains("Create environment"));
    let ada_team = team(&t.ada).await.text;
    assert!(ada_team.contains("Add member") && ada_team.contains("Create environment"));
    // Everything shown is the environment's: stages, systems, its resources, status.
    for needle in [
        "dev stage",
        "Azure",
        "Entra ID",
        "Kubernetes",
        "GitHub",
        "rg-payments-checkout-dev",
        "st-ready",
        "in the sandbox",
    ] {
        assert!(ada.contains(needle), "the environment page lacks {needle}");
    }
    // An outsider sees neither the team nor its environment.
    let olga = rig.person("olga").await;
    page(&rig, &olga, ENV).await.expect(403);
    page(&rig, &olga, &format!("/operations/{}", t.op))
        .await
        .expect(403);
    page(&rig, &olga, "/operations/op_nosuch").await.expect(404);
    // Anonymous visitors are sent to sign in, and come back after.
    let anon = page(&rig, &Auth::Anonymous, "/teams/payments?page=1").await;
    assert_eq!(anon.status, 303);
    assert_eq!(
        anon.headers["location"],
        "/sign-in?next=%2Fteams%2Fpayments%3Fpage%3D1"
    );
    let sign_in = page(&rig, &Auth::Anonymous, "/sign-in?next=%2Fteams%2Fpayments")
        .await
        .expect(200);
    assert!(
        sign_in
            .text
            .contains("name=\"next\" value=\"/teams/payments\"")
    );
    rig.stop().await;
}

async fn forms_need_the_csrf_token_and_refuse_readers_with_an_audited_403_page(backend: Backend) {
    let rig = Rig::start(backend).await;
    let t = payments(&rig).await;
    // No token, or the wrong one: refused, nothing done.
    for fields in [
        vec![("name", "ghosts")],
        vec![("name", "ghosts"), ("csrf_token", "nope")],
    ] {
        let r = submit(&rig, &t.ada, "/teams/new", &fields)
            .await
            .expect(403);
        assert!(is_html(&r) && r.text.contains("CSRF"), "{}", r.text);
    }
    rig.get(&rig.admin(), "/api/v1/teams/ghosts")
        .await
        .expect(404);
    submit(
        &rig,
        &t.ada,
        &format!("{ENV}/operations"),
        &[("kind", "refresh")],
    )
    .await
    .expect(403);
    // A reader forcing a change page or posting a form gets the 403 page, audited.
    let before = rig.audit_count().await;
    let forced = page(&rig, &t.rita, &format!("{ENV}/destroy"))
        .await
        .expect(403);
    assert!(
        forced.text.contains("You may not do this"),
        "{}",
        forced.text
    );
    assert!(
        forced.text.contains("needs the admin role"),
        "{}",
        forced.text
    );
    let token = csrf(&t.rita).to_owned();
    for (path, fields) in [
        (format!("{ENV}/destroy"), vec![("confirm", "checkout")]),
        (format!("{ENV}/operations"), vec![("kind", "refresh")]),
        (format!("{ENV}/reveal"), vec![]),
        (
            "/teams/payments/members".into(),
            vec![("login", "rita"), ("role", "admin")],
        ),
        ("/teams/payments/members/ada/remove".into(), vec![]),
        ("/people".into(), vec![("login", "mallory"), ("name", "M")]),
    ] {
        let mut fields = fields;
        fields.push(("csrf_token", &token));
        let r = submit(&rig, &t.rita, &path, &fields).await;
        assert_eq!(r.status, 403, "{path}: {}", r.text);
        assert!(is_html(&r), "{path}");
    }
    let denied = rig
        .get(&rig.admin(), "/api/v1/audit?actor=rita&limit=100")
        .await
        .expect(200);
    let denials: Vec<&str> = denied
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "denied")
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        denials,
        [
            "environment.destroy",
            "environment.destroy",
            "environment.change",
            "environment.outputs.reveal",
            "team.member.manage",
            "team.member.manage",
            "user.manage"
        ]
    );
    assert_eq!(rig.audit_count().await, before + denials.len());
    let env = rig
        .get(&rig.admin(), "/api/v1/teams/payments/environments/checkout")
        .await
        .expect(200);
    assert_eq!(env.body["status"], "ready", "nothing was destroyed");
    let _ = &t.carl;
    rig.stop().await;
}

async fn secrets_stay_out_of_pages_until_an_admin_reveals_them(backend: Backend) {
    let rig = Rig::start(backend).await;
    let t = payments(&rig).await;
    // The stage's service-account token, as its GitHub environment received it.
    let got: Value = reqwest::get(format!(
        "{}/github/secrets/payments-checkout/dev/KUBECONFIG",
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
        .unwrap();
    assert!(token.len() > 100, "a service-account token: {token}");
    let mut secrets = vec![token, kubeconfig];
    if let Auth::Session { cookie, .. } = &t.carl {
        secrets.push(cookie.clone());
    }
    let paths = [
        "/".to_owned(),
        "/teams/payments".into(),
        ENV.into(),
        format!("/operations/{}", t.op),
        "/audit?team=payments".into(),
    ];
    for who in [&t.rita, &t.carl, &t.ada, &rig.admin()] {
        for path in &paths {
            let html = page(&rig, who, path).await.expect(200).text;
            for s in &secrets {
                assert!(!html.contains(s.as_str()), "{path} shows a secret value");
            }
        }
    }
    // An admin reveals them, through the audited path; the page is not cached.
    let before = rig.audit_count().await;
    let revealed = submit(
        &rig,
        &t.ada,
        &format!("{ENV}/reveal"),
        &[("csrf_token", csrf(&t.ada))],
    )
    .await
    .expect(200);
    assert!(
        revealed.headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("no-store")
    );
    assert!(revealed.text.contains("recorded in the audit log"));
    assert!(
        revealed.text.contains(&secrets[0]),
        "the revealed kubeconfig output holds the deployer's token"
    );
    assert_eq!(rig.audit_count().await, before + 1, "the reveal is audited");
    // Destroy asks for the name, and the server checks it.
    let wrong = submit(
        &rig,
        &t.ada,
        &format!("{ENV}/destroy"),
        &[("confirm", "checkou"), ("csrf_token", csrf(&t.ada))],
    )
    .await
    .expect(422);
    assert!(
        wrong.text.contains("Type `checkout` exactly"),
        "{}",
        wrong.text
    );
    let destroyed = submit(
        &rig,
        &t.ada,
        &format!("{ENV}/destroy"),
        &[("confirm", "checkout"), ("csrf_token", csrf(&t.ada))],
    )
    .await
    .expect(303);
    let op = destroyed.headers["location"].to_str().unwrap().to_owned();
    let id = op.strip_prefix("/operations/").unwrap();
    let done = rig.wait(id).await;
    assert_eq!(
        (done["kind"].as_str(), done["state"].as_str()),
        (Some("destroy"), Some("succeeded"))
    );
    let after = page(&rig, &t.ada, ENV).await.expect(200).text;
    assert!(after.contains("st-destroyed"));
    rig.stop().await;
}

async fn forms_change_things_through_the_apis_logic(backend: Backend) {
    let rig = Rig::start(backend).await;
    let ada = rig.person("ada").await;
    let _bo = rig.person("bo").await;
    let token = csrf(&ada).to_owned();
    // A bad name is refused next to its field, nothing made.
    let bad = submit(
        &rig,
        &ada,
        "/teams/new",
        &[("name", "Bad Name"), ("csrf_token", &token)],
    )
    .await
    .expect(422);
    assert!(bad.text.contains("is not a valid name"), "{}", bad.text);
    assert!(bad.text.contains("aria-invalid=\"true\""));
    let made = submit(
        &rig,
        &ada,
        "/teams/new",
        &[
            ("name", "search"),
            ("description", "Finds things"),
            ("csrf_token", &token),
        ],
    )
    .await
    .expect(303);
    assert_eq!(made.headers["location"], "/teams/search");
    let team = rig
        .get(&rig.admin(), "/api/v1/teams/search")
        .await
        .expect(200)
        .body;
    assert_eq!(team["members"][0]["login"], "ada");
    assert_eq!(team["members"][0]["role"], "admin");
    // Members: add, change, remove — the API's rules hold (an admin must remain).
    submit(
        &rig,
        &ada,
        "/teams/search/members",
        &[("login", "bo"), ("role", "reader"), ("csrf_token", &token)],
    )
    .await
    .expect(303);
    submit(
        &rig,
        &ada,
        "/teams/search/members/bo",
        &[("role", "contributor"), ("csrf_token", &token)],
    )
    .await
    .expect(303);
    let last_admin = submit(
        &rig,
        &ada,
        "/teams/search/members/ada/remove",
        &[("csrf_token", &token)],
    )
    .await
    .expect(422);
    assert!(
        last_admin.text.contains("no admin left"),
        "{}",
        last_admin.text
    );
    let nobody = submit(
        &rig,
        &ada,
        "/teams/search/members",
        &[
            ("login", "nobody"),
            ("role", "reader"),
            ("csrf_token", &token),
        ],
    )
    .await;
    assert_eq!(nobody.status, 404, "{}", nobody.text);
    let members = rig
        .get(&rig.admin(), "/api/v1/teams/search")
        .await
        .expect(200)
        .body;
    assert_eq!(members["members"][1]["login"], "bo");
    assert_eq!(members["members"][1]["role"], "contributor");
    submit(
        &rig,
        &ada,
        "/teams/search/members/bo/remove",
        &[("csrf_token", &token)],
    )
    .await
    .expect(303);
    // People: platform admins add them (the token's owner has no session: no CSRF).
    let added = submit(
        &rig,
        &rig.admin(),
        "/people",
        &[
            ("login", "cy"),
            ("name", "Cy"),
            ("password", "cy-correct-horse-battery"),
        ],
    )
    .await
    .expect(303);
    assert_eq!(added.headers["location"], "/people?created=cy");
    rig.sign_in("cy", "cy-correct-horse-battery").await;
    let audit = rig
        .get(&rig.admin(), "/api/v1/audit?team=search")
        .await
        .expect(200)
        .body;
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["actor"] == "ada")
        .map(|r| r["action"].as_str().unwrap())
        .filter(|a| a.starts_with("team."))
        .collect();
    assert_eq!(
        actions,
        [
            "team.create",
            "team.member.set",
            "team.member.set",
            "team.member.remove"
        ]
    );
    rig.stop().await;
}

async fn errors_are_pages_for_browsers_and_problems_for_the_api(backend: Backend) {
    let rig = Rig::start(backend).await;
    let ada = rig.person("ada").await;
    let missing = page(&rig, &ada, "/no/such/page").await.expect(404);
    assert!(is_html(&missing) && missing.text.contains("Not found"));
    let team = page(&rig, &rig.admin(), "/teams/nowhere").await.expect(404);
    assert!(
        team.text.contains("team `nowhere` does not exist"),
        "{}",
        team.text
    );
    let api = rig.get(&ada, "/api/v1/no/such").await.expect(404);
    assert_eq!(api.headers["content-type"], "application/problem+json");
    let api_html = page(&rig, &ada, "/api/v1/teams/nowhere").await.expect(403);
    assert_eq!(api_html.headers["content-type"], "application/problem+json");
    // Assets: embedded, named by their content, cached for a year.
    let home = page(&rig, &ada, "/").await.expect(200).text;
    let css = home
        .split("href=\"")
        .find_map(|s| s.split('"').next().filter(|u| u.ends_with("/portal.css")))
        .unwrap()
        .to_owned();
    let asset = rig
        .send(rig.http.get(format!("{}{css}", rig.url)))
        .await
        .expect(200);
    assert_eq!(
        asset.headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(
        asset.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    for vendored in ["htmx.min.js", "portal.js"] {
        assert!(home.contains(vendored), "{vendored} is not linked");
    }
    assert!(!home.contains("https://"), "nothing is loaded from outside");
    // The catalog documents the environment blueprint's parameters and what it makes.
    let versions = rig.get(&ada, "/api/v1/blueprints").await.expect(200).body;
    let version = versions
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "environment")
        .unwrap()["version"]
        .as_str()
        .unwrap()
        .to_owned();
    let catalog = page(
        &rig,
        &ada,
        &format!("/blueprints/environment/versions/{version}"),
    )
    .await
    .expect(200)
    .text;
    let main = catalog
        .split("<main id=\"main\" tabindex=\"-1\">")
        .nth(1)
        .unwrap()
        .split("</main>")
        .next()
        .unwrap();
    insta::assert_snapshot!("environment_blueprint", normalize(main));
    rig.stop().await;
}

/// Times and digests out, whitespace trimmed: what a page says, not when.
fn normalize(html: &str) -> String {
    let mut out = Vec::new();
    for line in html.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let mut line = line.to_owned();
        while let Some(i) = line.find("<time ") {
            let Some(j) = line[i..].find("</time>") else {
                break;
            };
            line.replace_range(i..i + j + "</time>".len(), "[time]");
        }
        while let Some(i) = line.find("sha256:") {
            let n = line[i + 7..]
                .chars()
                .take_while(char::is_ascii_hexdigit)
                .count();
            line.replace_range(i..i + 7 + n, "[digest]");
        }
        out.push(line);
    }
    out.join("\n")
}
