//! Sign-in through the sandbox's identity providers: Entra's authorization code flow with
//! PKCE (ID token checked against the published keys) and GitHub's OAuth web flow.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use paddock_sandbox::Sandbox;
use reqwest::StatusCode;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::signature::Verifier as _;
use rsa::{BigUint, RsaPublicKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const REDIRECT: &str = "http://127.0.0.1:9/auth/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWjzbfQ-and-some-more-entropy";

fn challenge(verifier: &str) -> String {
    B64.encode(Sha256::digest(verifier.as_bytes()))
}

/// A client that shows redirects instead of following them, as a test of a browser flow must.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn enc(s: &str) -> String {
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

/// The query parameters of a `Location`.
fn location_params(response: &reqwest::Response) -> (String, Vec<(String, String)>) {
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let url = reqwest::Url::parse(&location).unwrap();
    let params = url
        .query_pairs()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    (location, params)
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Registers a sign-in app through the control API.
async fn sign_in_app(s: &Sandbox) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{}/sign-in-apps", s.control_url))
        .json(&json!({"redirectUris": [REDIRECT]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json().await.unwrap()
}

fn entra_authorize_url(s: &Sandbox, client_id: &str, extra: &str) -> String {
    format!(
        "{}/{}/oauth2/v2.0/authorize?client_id={client_id}&response_type=code&redirect_uri={}&scope=openid%20profile%20email&state=st-1&nonce=n-1&code_challenge={}&code_challenge_method=S256{extra}",
        s.base_url,
        s.identity.tenant_id,
        enc(REDIRECT),
        challenge(VERIFIER)
    )
}

/// Signs `upn` in at the authorize endpoint: the code.
async fn entra_code(s: &Sandbox, client_id: &str, upn: &str) -> String {
    let r = browser()
        .get(entra_authorize_url(
            s,
            client_id,
            &format!("&login_hint={}", enc(upn)),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let (location, params) = location_params(&r);
    assert!(location.starts_with(REDIRECT), "{location}");
    assert_eq!(param(&params, "state"), Some("st-1"));
    param(&params, "code").expect("a code").to_owned()
}

async fn entra_redeem(
    s: &Sandbox,
    client_id: &str,
    secret: &str,
    code: &str,
    redirect: &str,
    verifier: &str,
) -> (StatusCode, Value) {
    let form = format!(
        "grant_type=authorization_code&client_id={client_id}&client_secret={}&code={code}&redirect_uri={}&code_verifier={verifier}",
        enc(secret),
        enc(redirect)
    );
    common::post_token(s, &s.identity.tenant_id, &form).await
}

/// Verifies an RS256 token against a JWKS by hand: its claims.
fn verify(token: &str, jwks: &Value) -> Value {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value = serde_json::from_slice(&B64.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "RS256");
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("the token's kid is published");
    let n = BigUint::from_bytes_be(&B64.decode(jwk["n"].as_str().unwrap()).unwrap());
    let e = BigUint::from_bytes_be(&B64.decode(jwk["e"].as_str().unwrap()).unwrap());
    let key = VerifyingKey::<Sha256>::new(RsaPublicKey::new(n, e).unwrap());
    let signature = Signature::try_from(B64.decode(parts[2]).unwrap().as_slice()).unwrap();
    key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .expect("the signature holds");
    serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap()
}

#[tokio::test]
async fn entra_signs_a_directory_user_in_with_pkce() {
    let (_dir, s) = common::start().await;
    s.add_person("ada").await.unwrap();
    let app = sign_in_app(&s).await;
    let (client_id, secret) = (
        app["entra"]["clientId"].as_str().unwrap(),
        app["entra"]["clientSecret"].as_str().unwrap(),
    );
    let issuer = app["entra"]["issuer"].as_str().unwrap();
    let upn = format!("ada@{}", paddock_sandbox::graph::USER_DOMAIN);
    let code = entra_code(&s, client_id, &upn).await;
    let (status, body) = entra_redeem(&s, client_id, secret, &code, REDIRECT, VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["access_token"].is_string());
    assert!(body["scope"].as_str().unwrap().contains("openid"));

    // The ID token verifies against the keys the discovery document names.
    let http = reqwest::Client::new();
    let discovery: Value = http
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], issuer);
    let jwks: Value = http
        .get(discovery["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let claims = verify(body["id_token"].as_str().unwrap(), &jwks);
    assert_eq!(claims["iss"], discovery["issuer"]);
    assert_eq!(claims["aud"], client_id);
    assert_eq!(claims["nonce"], "n-1");
    assert_eq!(claims["tid"], s.identity.tenant_id);
    assert_eq!(claims["preferred_username"], upn);
    assert_eq!(claims["name"], "ada");
    assert_eq!(claims["email"], upn);
    assert!(claims["sub"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(claims["oid"].as_str().is_some_and(|s| s.len() == 36));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(claims["nbf"].as_i64().unwrap() <= now && claims["exp"].as_i64().unwrap() > now);

    // A code is good once.
    let (status, again) = entra_redeem(&s, client_id, secret, &code, REDIRECT, VERIFIER).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(again["error"], "invalid_grant");
    assert!(
        again["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS54005"),
        "{again}"
    );
}

#[tokio::test]
async fn entra_refuses_a_wrong_verifier_redirect_or_unregistered_uri() {
    let (_dir, s) = common::start().await;
    s.add_person("bob").await.unwrap();
    let app = s
        .register_sign_in_app(&[REDIRECT.to_owned()])
        .await
        .unwrap();
    // Registered once, then kept: the same client again (and so the same subjects).
    let again = s
        .register_sign_in_app(&[REDIRECT.to_owned()])
        .await
        .unwrap();
    assert_eq!(again.entra.client_id, app.entra.client_id);
    assert_eq!(again.github.client_secret, app.github.client_secret);
    let (client_id, secret) = (
        app.entra.client_id.as_str(),
        app.entra.client_secret.as_str(),
    );
    let upn = format!("bob@{}", paddock_sandbox::graph::USER_DOMAIN);

    let code = entra_code(&s, client_id, &upn).await;
    let wrong = "another-verifier-of-enough-length-0123456789-abcdef";
    let (status, body) = entra_redeem(&s, client_id, secret, &code, REDIRECT, wrong).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_codes"], json!([501481]));

    let code = entra_code(&s, client_id, &upn).await;
    let other = "http://127.0.0.1:9/elsewhere";
    let (status, body) = entra_redeem(&s, client_id, secret, &code, other, VERIFIER).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error_codes"], json!([500112]));

    // A redirect URI the application does not list is refused on a page, not redirected to.
    let url = entra_authorize_url(&s, client_id, "&login_hint=x")
        .replace(&enc(REDIRECT), &enc("http://evil.example/cb"));
    let r = browser().get(url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("AADSTS50011"));

    // No PKCE challenge: refused back to the client, with its state.
    let url = entra_authorize_url(&s, client_id, "")
        .replace("&code_challenge_method=S256", "")
        .replace(&format!("&code_challenge={}", challenge(VERIFIER)), "");
    let r = browser().get(url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let (_, params) = location_params(&r);
    assert_eq!(param(&params, "error"), Some("invalid_request"));
    assert_eq!(param(&params, "state"), Some("st-1"));

    // With no login_hint, a page to pick the user from.
    let r = browser()
        .get(entra_authorize_url(&s, client_id, ""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    assert!(
        page.contains(&upn) && page.contains("name=\"login_hint\""),
        "{page}"
    );
}

fn github_authorize_url(s: &Sandbox, client_id: &str, redirect: &str, extra: &str) -> String {
    format!(
        "{}/login/oauth/authorize?client_id={client_id}&redirect_uri={}&state=gh-1&scope=read%3Auser&code_challenge={}&code_challenge_method=S256{extra}",
        s.base_url,
        enc(redirect),
        challenge(VERIFIER)
    )
}

async fn github_code(s: &Sandbox, client_id: &str, login: &str) -> String {
    let r = browser()
        .get(github_authorize_url(
            s,
            client_id,
            REDIRECT,
            &format!("&login={login}"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let (location, params) = location_params(&r);
    assert!(location.starts_with(REDIRECT));
    assert_eq!(param(&params, "state"), Some("gh-1"));
    param(&params, "code").unwrap().to_owned()
}

async fn github_redeem(s: &Sandbox, app: &Value, code: &str, verifier: &str) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{}/login/oauth/access_token", s.base_url))
        .header("accept", "application/json")
        .json(&json!({
            "client_id": app["clientId"], "client_secret": app["clientSecret"], "code": code,
            "redirect_uri": REDIRECT, "code_verifier": verifier,
        }))
        .send()
        .await
        .unwrap();
    // GitHub answers errors with 200 too.
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

#[tokio::test]
async fn github_oauth_web_flow_with_pkce() {
    let (_dir, s) = common::start().await;
    s.add_person("grace").await.unwrap();
    let apps = sign_in_app(&s).await;
    let app = &apps["github"];
    assert_eq!(
        app["authorizeUrl"],
        format!("{}/login/oauth/authorize", s.base_url)
    );
    let client_id = app["clientId"].as_str().unwrap();

    let code = github_code(&s, client_id, "grace").await;
    let token = github_redeem(&s, app, &code, VERIFIER).await;
    assert_eq!(token["token_type"], "bearer", "{token}");
    let access = token["access_token"].as_str().unwrap();
    assert!(access.starts_with("gho_"));
    let user: Value = reqwest::Client::new()
        .get(format!("{}/user", app["apiUrl"].as_str().unwrap()))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(user["login"], "grace");
    assert!(user["id"].as_i64().is_some());
    assert_eq!(user["name"], "grace");

    // Reused code, wrong verifier: GitHub's error shape.
    let again = github_redeem(&s, app, &code, VERIFIER).await;
    assert_eq!(again["error"], "bad_verification_code");
    let code = github_code(&s, client_id, "grace").await;
    let wrong = github_redeem(
        &s,
        app,
        &code,
        "not-the-verifier-but-long-enough-0123456789abc",
    )
    .await;
    assert_eq!(wrong["error"], "bad_verification_code");
    assert!(
        wrong["error_description"]
            .as_str()
            .unwrap()
            .contains("code_verifier")
    );

    // A form answer unless JSON is asked for; a bad secret.
    let r = reqwest::Client::new()
        .post(format!("{}/login/oauth/access_token", s.base_url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("client_id={client_id}&client_secret=nope&code=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.text()
            .await
            .unwrap()
            .starts_with("error=incorrect_client_credentials")
    );

    // A redirect URI outside the callback URL goes back to the callback with an error.
    let r = browser()
        .get(github_authorize_url(
            &s,
            client_id,
            "http://evil.example/cb",
            "&login=grace",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let (location, params) = location_params(&r);
    assert!(location.starts_with(REDIRECT));
    assert_eq!(param(&params, "error"), Some("redirect_uri_mismatch"));

    // A user's token is only good for naming the user; no one's is bad credentials.
    let r = reqwest::Client::new()
        .get(format!("{}/user", app["apiUrl"].as_str().unwrap()))
        .bearer_auth("gho_made_up")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // The picker page lists the users.
    let r = browser()
        .get(github_authorize_url(&s, client_id, REDIRECT, ""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("value=\"grace\""));
}
