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

    // The link was used: a second visit makes no session. (What it says differs: the
    // reason today; the sign-in form on the portal.)
    let link = rig.printed_sign_in_link();
    let path = link
        .strip_prefix(rig.url())
        .expect("the link is on the server");
    b.goto(path).await?;
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
