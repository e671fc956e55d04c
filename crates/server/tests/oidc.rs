//! The identity-provider client against the sandbox's emulated providers: Entra's OpenID
//! Connect sign-in and GitHub's OAuth web flow, each end to end, and the refusals (a
//! tampered ID token, a wrong nonce, a wrong PKCE verifier).

use paddock_sandbox::{Sandbox, SandboxConfig, SignInApps};
use paddock_server::oidc::{
    Identity, IdentityProvider, IdentityProviderConfig, OidcError, PendingSignIn, ProviderKind,
    TokenCheck,
};

const REDIRECT: &str = "http://127.0.0.1:9/sign-in/provider/test/callback";

async fn sandbox() -> (tempfile::TempDir, Sandbox, SignInApps) {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(SandboxConfig::new(dir.path()))
        .await
        .unwrap();
    sandbox.add_person("ada").await.unwrap();
    let apps = sandbox
        .register_sign_in_app(&[REDIRECT.to_owned()])
        .await
        .unwrap();
    (dir, sandbox, apps)
}

fn http() -> reqwest::Client {
    paddock_providers::http::reqwest_client(None, None).unwrap()
}

fn entra(apps: &SignInApps) -> IdentityProvider {
    IdentityProvider::new(
        IdentityProviderConfig {
            name: "entra".into(),
            kind: ProviderKind::Oidc,
            issuer: apps.entra.issuer.clone(),
            api_url: None,
            client_id: apps.entra.client_id.clone(),
            client_secret: Some(apps.entra.client_secret.clone()),
            scopes: Vec::new(),
        },
        http(),
    )
    .unwrap()
}

fn github(apps: &SignInApps) -> IdentityProvider {
    IdentityProvider::new(
        IdentityProviderConfig {
            name: "github".into(),
            kind: ProviderKind::GitHub,
            issuer: apps.github.base_url.clone(),
            api_url: Some(apps.github.api_url.clone()),
            client_id: apps.github.client_id.clone(),
            client_secret: Some(apps.github.client_secret.clone()),
            scopes: Vec::new(),
        },
        http(),
    )
    .unwrap()
}

/// Follows the authorize URL as a browser whose person picked `who` (the sandbox's
/// `login_hint` / `login`): the code from the redirect, after checking its state.
async fn authorize(url: &str, hint: (&str, &str), pending: &PendingSignIn) -> String {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut url = reqwest::Url::parse(url).unwrap();
    url.query_pairs_mut().append_pair(hint.0, hint.1);
    let response = browser.get(url).send().await.unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::FOUND);
    let location = reqwest::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(REDIRECT), "{location}");
    let param = |name: &str| {
        location
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(param("error"), None, "{location}");
    assert_eq!(param("state").as_deref(), Some(pending.state.as_str()));
    param("code").expect("a code")
}

fn upn(login: &str) -> String {
    format!("{login}@{}", paddock_sandbox::graph::USER_DOMAIN)
}

#[tokio::test]
async fn entra_sign_in_end_to_end() {
    let (_dir, _sandbox, apps) = sandbox().await;
    let provider = entra(&apps);
    let (url, pending) = provider.begin(REDIRECT).await.unwrap();
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    assert!(url.contains(&format!("nonce={}", pending.nonce)));
    let code = authorize(&url, ("login_hint", &upn("ada")), &pending).await;
    let identity = provider.finish(&pending, &code, REDIRECT).await.unwrap();
    let Identity {
        issuer,
        subject,
        login,
        name,
        email,
    } = identity;
    assert_eq!(issuer, apps.entra.issuer);
    assert!(!subject.is_empty());
    assert_eq!(login, upn("ada"));
    assert_eq!(name, "ada");
    assert_eq!(email, Some(upn("ada")));

    // The same person signs in again: the same subject.
    let (url, pending) = provider.begin(REDIRECT).await.unwrap();
    let code = authorize(&url, ("login_hint", &upn("ada")), &pending).await;
    let again = provider.finish(&pending, &code, REDIRECT).await.unwrap();
    assert_eq!(again.subject, subject);

    // A code is good once; the refusal keeps Entra's code.
    let err = provider
        .finish(&pending, &code, REDIRECT)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, OidcError::Refused { error, .. } if error == "invalid_grant"),
        "{err}"
    );
    assert!(err.to_string().contains("AADSTS54005"), "{err}");
}

#[tokio::test]
async fn entra_refuses_a_wrong_verifier_nonce_or_tampered_token() {
    let (_dir, sandbox, apps) = sandbox().await;
    let provider = entra(&apps);

    // A different PKCE verifier than the challenge was made from.
    let (url, pending) = provider.begin(REDIRECT).await.unwrap();
    let code = authorize(&url, ("login_hint", &upn("ada")), &pending).await;
    let wrong = PendingSignIn {
        verifier: "x".repeat(43),
        ..pending.clone()
    };
    let err = provider.finish(&wrong, &code, REDIRECT).await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains("AADSTS501481"), "{message}");
    assert!(!message.contains(&code), "the code stays out of errors");

    // A nonce other than the one sent.
    let (url, pending) = provider.begin(REDIRECT).await.unwrap();
    let code = authorize(&url, ("login_hint", &upn("ada")), &pending).await;
    let wrong = PendingSignIn {
        nonce: "another".into(),
        ..pending.clone()
    };
    let err = provider.finish(&wrong, &code, REDIRECT).await.unwrap_err();
    assert!(
        matches!(
            err,
            OidcError::InvalidToken {
                reason: TokenCheck::Nonce,
                ..
            }
        ),
        "{err}"
    );

    // A token whose claims were changed after signing, and one with no signature at all.
    let (url, pending) = provider.begin(REDIRECT).await.unwrap();
    let code = authorize(&url, ("login_hint", &upn("ada")), &pending).await;
    let form = format!(
        "grant_type=authorization_code&client_id={}&code={code}&redirect_uri={}&code_verifier={}",
        apps.entra.client_id,
        url_encode(REDIRECT),
        pending.verifier
    );
    let tokens: serde_json::Value = reqwest::Client::new()
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            sandbox.base_url, sandbox.identity.tenant_id
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id_token = tokens["id_token"].as_str().unwrap();
    assert!(
        provider
            .verify_id_token(id_token, &pending.nonce)
            .await
            .is_ok()
    );
    let parts: Vec<&str> = id_token.split('.').collect();
    let tampered = {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut claims: serde_json::Value =
            serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
        claims["preferred_username"] = "admin@example.com".into();
        format!(
            "{}.{}.{}",
            parts[0],
            b64.encode(claims.to_string()),
            parts[2]
        )
    };
    let err = provider
        .verify_id_token(&tampered, &pending.nonce)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            OidcError::InvalidToken {
                reason: TokenCheck::BadSignature,
                ..
            }
        ),
        "{err}"
    );
    let unsigned = {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!("{}.{}.", b64.encode(r#"{"alg":"none"}"#), parts[1])
    };
    let err = provider
        .verify_id_token(&unsigned, &pending.nonce)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            OidcError::InvalidToken {
                reason: TokenCheck::Algorithm(_),
                ..
            }
        ),
        "{err}"
    );

    // A token for another client is not ours.
    let other = IdentityProvider::new(
        IdentityProviderConfig {
            name: "other".into(),
            kind: ProviderKind::Oidc,
            issuer: apps.entra.issuer.clone(),
            api_url: None,
            client_id: "00000000-0000-0000-0000-000000000000".into(),
            client_secret: None,
            scopes: Vec::new(),
        },
        http(),
    )
    .unwrap();
    let err = other
        .verify_id_token(id_token, &pending.nonce)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            OidcError::InvalidToken {
                reason: TokenCheck::Audience,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_discovery_document_for_another_issuer_is_refused() {
    let (_dir, _sandbox, apps) = sandbox().await;
    let mut config = IdentityProviderConfig {
        name: "entra".into(),
        kind: ProviderKind::Oidc,
        issuer: format!("{}/", apps.entra.issuer),
        api_url: None,
        client_id: apps.entra.client_id.clone(),
        client_secret: None,
        scopes: Vec::new(),
    };
    let err = IdentityProvider::new(config.clone(), http())
        .unwrap()
        .begin(REDIRECT)
        .await
        .unwrap_err();
    assert!(matches!(err, OidcError::IssuerMismatch { .. }), "{err}");
    config.issuer = "not a url".into();
    assert!(matches!(
        IdentityProvider::new(config, http()),
        Err(OidcError::Config { .. })
    ));
}

#[tokio::test]
async fn github_sign_in_end_to_end() {
    let (_dir, _sandbox, apps) = sandbox().await;
    let provider = github(&apps);
    let (url, pending) = provider.begin(REDIRECT).await.unwrap();
    assert!(url.starts_with(&apps.github.authorize_url), "{url}");
    let code = authorize(&url, ("login", "ada"), &pending).await;
    let identity = provider.finish(&pending, &code, REDIRECT).await.unwrap();
    assert_eq!(identity.issuer, apps.github.base_url);
    assert_eq!(identity.login, "ada");
    assert_eq!(identity.name, "ada");
    assert!(identity.subject.parse::<i64>().is_ok());

    // Reused code and a wrong verifier: GitHub's own error code in the message.
    let err = provider
        .finish(&pending, &code, REDIRECT)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("bad_verification_code"), "{err}");
    let (url, pending) = provider.begin(REDIRECT).await.unwrap();
    let code = authorize(&url, ("login", "ada"), &pending).await;
    let wrong = PendingSignIn {
        verifier: "y".repeat(43),
        ..pending
    };
    let err = provider.finish(&wrong, &code, REDIRECT).await.unwrap_err();
    assert!(
        matches!(&err, OidcError::Refused { error, description, .. }
            if error == "bad_verification_code" && description.contains("code_verifier")),
        "{err}"
    );
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
