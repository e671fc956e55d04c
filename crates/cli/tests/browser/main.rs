//! The web pages as a person uses them: a real `paddock serve`, headless Chromium through
//! chromedriver (see `rig.rs`). Each test signs in, looks at pages, checks them with
//! axe-core (no violation of serious or critical impact) and saves screenshots into
//! `target/screenshots/`.
//!
//! Needs Chromium and chromedriver (`./scripts/test` installs Debian's as root);
//! `PADDOCK_TEST_SKIP_BROWSER=1` skips these tests outside CI. Run them alone with
//! `cargo test -p paddock-cli --test browser`.

mod rig;

use rig::{RigError, WAIT};

/// Someone signed out is sent to the sign-in page, which offers a login form and the
/// sandbox's identity providers, and passes axe.
#[tokio::test]
async fn sign_in_page() -> Result<(), RigError> {
    let Some(rig) = rig::Rig::start().await? else {
        return Ok(());
    };
    let b = rig.browser().await?;
    b.goto("/").await?;
    b.wait_for_path("/sign-in", WAIT).await?;
    b.wait_for_css("form[action='/sign-in'] input[name=login]", WAIT)
        .await?;
    let text = b.text().await?;
    for expected in [
        "Login",
        "Password",
        "Sign in with sandbox-entra",
        "Sign in with sandbox-github",
    ] {
        assert!(
            text.contains(expected),
            "the sign-in page lacks `{expected}`:\n{text}"
        );
    }
    b.screenshot("sign-in").await?;
    b.assert_accessible("the sign-in page").await?;

    // The check itself: an image without a text alternative (axe: `image-alt`, critical)
    // must fail it.
    b.client()
        .execute(
            "const i = document.createElement('img'); i.src = '/nothing.png'; \
             document.body.appendChild(i);",
            vec![],
        )
        .await
        .map_err(|e| RigError::Usage(format!("adding an image: {e}")))?;
    match b
        .assert_accessible("the sign-in page with an unlabelled image")
        .await
    {
        Err(RigError::Inaccessible { report, .. }) if report.contains("image-alt") => Ok(()),
        other => panic!("axe should have found `image-alt`, got {other:?}"),
    }
}

/// The platform admin signs in through the link `paddock serve` printed, lands home, and
/// the link does not work twice.
#[tokio::test]
async fn admin_signs_in_with_the_printed_link() -> Result<(), RigError> {
    let Some(rig) = rig::Rig::start().await? else {
        return Ok(());
    };
    let b = rig.admin_browser().await?;
    b.goto("/").await?;
    b.wait_for_path("/", WAIT).await?;
    b.wait_for_text("Signed in as admin", WAIT).await?;
    b.screenshot("home").await?;
    b.assert_accessible("the home page").await?;

    // Signing out ends the session: home sends the browser back to the sign-in page.
    b.click("Sign out").await?;
    b.wait_for_path("/sign-in", WAIT).await?;
    b.goto("/").await?;
    b.wait_for_path("/sign-in", WAIT).await?;

    // The link was used: a second visit makes no session, and says why on the sign-in
    // form, without carrying the link's token into another address.
    let link = rig.printed_sign_in_link();
    let path = link
        .strip_prefix(rig.url())
        .expect("the link is on the server");
    b.goto(path).await?;
    b.wait_for_text("used already or has expired", WAIT).await?;
    b.wait_for_css("form[action='/sign-in'] input[name=login]", WAIT)
        .await?;
    assert_eq!(b.path().await?, path, "no redirect carries the token");
    b.goto("/").await?;
    b.wait_for_path("/sign-in", WAIT).await
}

/// A second person, who only reads a team, signs in with a password through the form;
/// a wrong password is refused and says so.
#[tokio::test]
async fn a_reader_signs_in_with_a_password() -> Result<(), RigError> {
    let Some(rig) = rig::Rig::start().await? else {
        return Ok(());
    };
    rig.create_team("payments").await?;
    let reader = rig.add_reader("payments", "rita").await?;

    let b = rig.browser().await?;
    let wrong = rig::Person {
        password: "not-rita-s-password".into(),
        ..reader.clone()
    };
    b.goto("/sign-in").await?;
    b.fill("Login", &wrong.login).await?;
    b.fill("Password", &wrong.password).await?;
    b.click("Sign in").await?;
    // "wrong login or password" today, "Wrong login or password." on the portal's page.
    b.wait_for_text("login or password", WAIT).await?;
    assert_eq!(b.path().await?, "/sign-in");

    b.sign_in(&reader).await?;
    b.goto("/").await?;
    b.wait_for_path("/", WAIT).await?;
    b.wait_for_text("Signed in as rita", WAIT).await?;
    b.screenshot("home-reader").await?;
    b.assert_accessible("the home page, for a reader").await
}

/// How long provisioning a whole environment into the sandbox may take on a busy machine.
const PROVISION: std::time::Duration = std::time::Duration::from_secs(180);

/// The golden path, as a developer walks it: sign in, create a team, request an
/// environment with dev, test and prod through the form generated from the blueprint
/// (an invalid value refused inline first, with the server's message), preview it,
/// confirm, watch dev and test be made while prod waits for a second admin (who, in
/// another browser, reviews the exact plan in the approvals inbox and approves it), see it
/// ready with its outputs' secret masked, add a contributor, change a parameter through
/// the form and apply it (approved again), destroy it by typing its name (approved again)
/// — and the sandbox holds nothing of it. Every page passes axe and is saved as a
/// screenshot.
#[tokio::test]
async fn golden_path_from_sign_in_to_destroy() -> Result<(), RigError> {
    let Some(rig) = rig::Rig::start().await? else {
        return Ok(());
    };
    rig.add_person("cole").await?;
    let bea = rig.add_person("bea").await?;
    let b = rig.admin_browser().await?;
    b.goto("/").await?;
    b.wait_for_text("Signed in as admin", WAIT).await?;
    b.screenshot("golden-1-home").await?;
    b.assert_accessible("the home page").await?;

    // A team, through its form.
    b.goto("/teams/new").await?;
    b.fill("Name", "payments").await?;
    b.screenshot("golden-2-new-team").await?;
    b.assert_accessible("the new team form").await?;
    b.click("Create team").await?;
    b.wait_for_path("/teams/payments", WAIT).await?;
    // The team's GitHub team and Entra group must exist before its environments.
    b.reload_until("/teams/payments", "succeeded", PROVISION)
        .await?;
    // A second admin of the team, who will review prod's plans.
    rig.set_role("payments", "bea", "admin").await?;
    let reviewer = rig.browser().await?;
    reviewer.sign_in(&bea).await?;

    // The environment form, generated from the blueprint.
    b.goto("/teams/payments/environments/new").await?;
    b.wait_for_text("Stages", WAIT).await?;
    b.fill("Name (required)", "checkout").await?;
    for stage in ["dev", "test", "prod"] {
        b.tick("Stages", stage).await?;
    }
    // An invalid region is refused inline, while typing, with the server's own message.
    b.fill("Region", "West Europe").await?;
    b.wait_for_text(
        "\"West Europe\" does not match the pattern ^[a-z][a-z0-9]{1,39}$",
        WAIT,
    )
    .await?;
    b.screenshot("golden-3-form-inline-error").await?;
    b.assert_accessible("the environment form with an error")
        .await?;
    b.fill("Region", "northeurope").await?;
    b.fill("Quota", "small").await?;
    b.click("Preview").await?;

    // The preview: per stage and per system, before anything is made.
    b.wait_for_text("Preview: create checkout", WAIT).await?;
    let preview = b.text().await?;
    for expected in [
        "repository",
        "dev",
        "test",
        "prod",
        "Azure",
        "Entra ID",
        "Kubernetes",
        "GitHub",
        "to create",
    ] {
        assert!(
            preview.contains(expected),
            "the preview lacks `{expected}`:\n{preview}"
        );
    }
    assert!(
        preview.contains("northeurope"),
        "the preview shows the region"
    );
    b.screenshot("golden-4-preview").await?;
    b.assert_accessible("the preview").await?;
    let before = rig
        .api(
            reqwest::Method::GET,
            "/api/v1/teams/payments/environments",
            None,
        )
        .await?;
    assert_eq!(before, serde_json::json!([]), "a preview makes nothing");
    b.click("Create checkout").await?;

    // Live progress on the operation's page, to the end.
    b.wait_for_css("progress", WAIT).await?;
    let operation = b.path().await?;
    assert!(operation.starts_with("/operations/"));
    b.screenshot("golden-5-operation-running").await?;
    b.assert_accessible("the running operation").await?;
    // Dev and test are made; prod's plan waits for another admin of the team.
    b.reload_until(&operation, "Waiting for approval", PROVISION)
        .await?;
    b.screenshot("golden-5a-operation-waiting").await?;
    b.assert_accessible("the operation waiting for approval")
        .await?;
    approve(&reviewer, Some("golden-5b")).await?;
    b.goto(&operation).await?;
    b.wait_for_css("[data-op-status].st-ready", PROVISION)
        .await?;
    b.screenshot("golden-6-operation-done").await?;
    b.assert_accessible("the finished operation").await?;

    // The environment: ready, its stages and their resources, outputs with the secret
    // masked.
    b.goto("/teams/payments/environments/checkout").await?;
    b.wait_for_text("Change parameters", WAIT).await?;
    let page = b.text().await?;
    for expected in [
        "dev stage",
        "test stage",
        "prod stage",
        "northeurope",
        "•••••• secret",
    ] {
        assert!(
            page.contains(expected),
            "the environment page lacks `{expected}`:\n{page}"
        );
    }
    b.screenshot("golden-7-environment").await?;
    b.assert_accessible("the environment page").await?;

    // A contributor joins the team.
    b.goto("/teams/payments").await?;
    b.fill("Login", "cole").await?;
    b.fill("Role", "contributor").await?;
    b.click("Add member").await?;
    b.wait_for_text("cole", WAIT).await?;
    b.screenshot("golden-8-team").await?;
    b.assert_accessible("the team page").await?;

    // A parameter changes through the update form: preview, then apply.
    b.goto("/teams/payments/environments/checkout/edit").await?;
    b.fill("Quota", "large").await?;
    b.click("Preview").await?;
    b.wait_for_text("Preview: change checkout", WAIT).await?;
    let change = b.text().await?;
    assert!(
        change.contains("3 to update") && change.contains("0 to create"),
        "a quota change updates each stage's quota and creates nothing:\n{change}"
    );
    b.screenshot("golden-9-change-preview").await?;
    b.assert_accessible("the change's preview").await?;
    b.click("Apply the changes to checkout").await?;
    wait_with_approval(&b, &reviewer).await?;
    let env = rig
        .api(
            reqwest::Method::GET,
            "/api/v1/teams/payments/environments/checkout",
            None,
        )
        .await?;
    assert_eq!(env["parameters"]["quota"], "large");

    // Destroy, with the name typed.
    b.goto("/teams/payments/environments/checkout").await?;
    b.click("Destroy…").await?;
    b.fill("#f-confirm", "checkout").await?;
    b.screenshot("golden-10-destroy").await?;
    b.assert_accessible("the destroy confirmation").await?;
    b.click("Destroy checkout").await?;
    wait_with_approval(&b, &reviewer).await?;

    // Nothing of it is left in the sandbox cloud.
    let sandbox = rig.sandbox().await?;
    let mut left = Vec::new();
    for (api, kinds) in sandbox.as_object().into_iter().flatten() {
        for (kind, objects) in kinds.as_object().into_iter().flatten() {
            for o in objects.as_array().into_iter().flatten() {
                let text = o.to_string();
                let live = !(api == "arm" && kind == "operation");
                if live && text.contains("checkout") {
                    left.push(format!("{api}/{kind}: {text}"));
                }
            }
        }
    }
    assert!(
        left.is_empty(),
        "the sandbox still holds:\n{}",
        left.join("\n")
    );

    // The rest of the portal: every page passes axe too.
    for (path, name) in [
        ("/audit", "golden-11-audit"),
        ("/blueprints", "golden-12-blueprints"),
        (
            "/blueprints/environment/versions/1.1.0",
            "golden-13-blueprint",
        ),
        ("/people", "golden-14-people"),
        ("/approvals?state=all", "golden-14a-approvals-decided"),
        ("/teams", "golden-15-teams"),
        ("/no/such/page", "golden-16-not-found"),
    ] {
        b.goto(path).await?;
        b.wait_for_css("main", WAIT).await?;
        b.screenshot(name).await?;
        b.assert_accessible(path).await?;
    }
    Ok(())
}

/// The reviewer, in their own browser, opens the approvals inbox, reviews the one
/// waiting plan and approves it (with screenshots and axe when `shots` names them).
async fn approve(reviewer: &rig::Browser, shots: Option<&str>) -> Result<(), RigError> {
    reviewer
        .reload_until("/approvals", "Review", PROVISION)
        .await?;
    if let Some(name) = shots {
        reviewer.screenshot(&format!("{name}-approvals")).await?;
        reviewer.assert_accessible("the approvals inbox").await?;
    }
    reviewer.click("Review").await?;
    reviewer.wait_for_text("Approve and run", WAIT).await?;
    let page = reviewer.text().await?;
    assert!(
        page.contains("The plan")
            && ["to create", "to update", "to delete"]
                .iter()
                .any(|k| page.contains(k)),
        "the approval shows the plan:\n{page}"
    );
    if let Some(name) = shots {
        reviewer.screenshot(&format!("{name}-approval")).await?;
        reviewer.assert_accessible("an approval").await?;
    }
    reviewer.click("Approve and run").await?;
    reviewer.wait_for_css("[data-op-status]", WAIT).await?;
    Ok(())
}

/// Follows the operation the browser is on to its end, approving prod's plan as the
/// reviewer when it waits for approval.
async fn wait_with_approval(b: &rig::Browser, reviewer: &rig::Browser) -> Result<(), RigError> {
    b.wait_for_css("[data-op-status]", WAIT).await?;
    let operation = b.path().await?;
    b.reload_until(&operation, "Waiting for approval", PROVISION)
        .await?;
    approve(reviewer, None).await?;
    b.goto(&operation).await?;
    b.wait_for_css("[data-op-status].st-ready", PROVISION)
        .await?;
    Ok(())
}

/// A reader sees the environment but no control to create, change or destroy it, and is
/// refused (403) when forcing the pages' URLs or posting their forms.
#[tokio::test]
async fn a_reader_gets_no_controls_and_403_when_forcing_them() -> Result<(), RigError> {
    let Some(rig) = rig::Rig::start().await? else {
        return Ok(());
    };
    rig.create_team("payments").await?;
    let reader = rig.add_reader("payments", "rita").await?;
    // An environment to look at (its provisioning need not finish).
    rig.api(
        reqwest::Method::POST,
        "/api/v1/teams/payments/environments",
        Some(serde_json::json!({"name": "checkout", "stages": ["dev"]})),
    )
    .await?;
    let b = rig.browser().await?;
    b.sign_in(&reader).await?;
    b.goto("/teams/payments/environments/checkout").await?;
    b.wait_for_text("checkout", WAIT).await?;
    let page = b.text().await?;
    for control in ["Change parameters", "Destroy", "Refresh", "Reveal"] {
        assert!(
            !page.contains(control),
            "a reader is offered `{control}`:\n{page}"
        );
    }
    b.goto("/teams/payments").await?;
    let team = b.text().await?;
    for control in ["Create environment", "Add member"] {
        assert!(
            !team.contains(control),
            "a reader is offered `{control}`:\n{team}"
        );
    }
    b.screenshot("reader-environment").await?;

    for path in [
        "/teams/payments/environments/new",
        "/teams/payments/environments/checkout/edit",
        "/teams/payments/environments/checkout/destroy",
    ] {
        b.goto(path).await?;
        b.wait_for_text("You may not do this", WAIT).await?;
    }
    b.screenshot("reader-forbidden").await?;
    b.assert_accessible("the 403 page").await?;
    let create = [
        ("name", "sneaky"),
        ("stages.present", "1"),
        ("stages", "dev"),
        ("_action", "apply"),
    ];
    assert_eq!(
        b.post_form("/teams/payments/environments/new", &create)
            .await?,
        403
    );
    assert_eq!(
        b.post_form(
            "/teams/payments/environments/checkout/edit",
            &[("quota", "large"), ("_action", "apply")]
        )
        .await?,
        403
    );
    assert_eq!(
        b.post_form(
            "/teams/payments/environments/checkout/destroy",
            &[("confirm", "checkout")]
        )
        .await?,
        403
    );
    let envs = rig
        .api(
            reqwest::Method::GET,
            "/api/v1/teams/payments/environments",
            None,
        )
        .await?;
    assert_eq!(
        envs.as_array().map(Vec::len),
        Some(1),
        "nothing was made: {envs}"
    );
    Ok(())
}
