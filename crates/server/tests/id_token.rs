//! Hostile ID tokens: one table of tokens an attacker could present at the sign-in
//! callback, each with the refusal it gets from `IdentityProvider::verify_id_token`
//! (snapshot `id_token__hostile_tokens_are_refused.snap`). The issuer is a small OpenID
//! Connect provider served here (discovery document and JWKS), so tokens can be signed
//! with its key, with another key, or not at all. The keys in `tests/id_token/` are test
//! keys, used nowhere else.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use paddock_server::oidc::{
    Identity, IdentityProvider, IdentityProviderConfig, MAX_TOKEN_BYTES, OidcError, TokenCheck,
};
use rsa::RsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey as _;
use rsa::signature::{SignatureEncoding as _, Signer as _};
use rsa::traits::PublicKeyParts as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

const CLIENT_ID: &str = "paddock-client";
const NONCE: &str = "n0nce-of-this-sign-in";

struct Issuer {
    url: String,
    key: RsaPrivateKey,
    other: RsaPrivateKey,
    /// Requests the provider received (discovery and JWKS).
    hits: Arc<AtomicUsize>,
    /// What its token endpoint answers as `id_token`.
    id_token: Arc<Mutex<String>>,
}

/// Serves `/.well-known/openid-configuration`, `/jwks` (the issuer key, kid `a`) and a
/// `/token` endpoint that answers any code with [`Issuer::id_token`].
async fn issuer() -> Issuer {
    let key = RsaPrivateKey::from_pkcs8_pem(include_str!("id_token/issuer-key.pem")).unwrap();
    let other = RsaPrivateKey::from_pkcs8_pem(include_str!("id_token/other-key.pem")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let id_token = Arc::new(Mutex::new(String::new()));
    let discovery = json!({
        "issuer": url,
        "authorization_endpoint": format!("{url}/authorize"),
        "token_endpoint": format!("{url}/token"),
        "jwks_uri": format!("{url}/jwks"),
    });
    let public = key.to_public_key();
    let jwks = json!({"keys": [{
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": "a",
        "n": B64.encode(public.n().to_bytes_be()),
        "e": B64.encode(public.e().to_bytes_be()),
    }]});
    let counted = |body: Value, hits: Arc<AtomicUsize>| {
        move || async move {
            hits.fetch_add(1, Ordering::SeqCst);
            axum::Json(body)
        }
    };
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get(counted(discovery, hits.clone())),
        )
        .route("/jwks", axum::routing::get(counted(jwks, hits.clone())))
        .route(
            "/token",
            axum::routing::post({
                let id_token = id_token.clone();
                move || async move {
                    let id_token = id_token.lock().unwrap().clone();
                    axum::Json(
                        json!({"access_token": "at", "token_type": "Bearer", "id_token": id_token}),
                    )
                }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Issuer {
        url,
        key,
        other,
        hits,
        id_token,
    }
}

fn provider(issuer: &Issuer) -> IdentityProvider {
    let config =
        IdentityProviderConfig::oidc("idp", issuer.url.clone(), CLIENT_ID.into(), "s".into());
    let http = paddock_providers::http::reqwest_client(None, None).unwrap();
    IdentityProvider::new(config, http).unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `header.claims.signature` from raw JSON texts and a signature over the first two.
fn compact(header: &str, claims: &str, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let input = format!("{}.{}", B64.encode(header), B64.encode(claims));
    let signature = sign(input.as_bytes());
    format!("{input}.{}", B64.encode(signature))
}

fn rs256(key: &RsaPrivateKey) -> impl Fn(&[u8]) -> Vec<u8> {
    let key = SigningKey::<Sha256>::new(key.clone());
    move |input| key.sign(input).to_vec()
}

/// HMAC-SHA256 (RFC 2104) keyed with `secret`: what a verifier confused into HS256 would
/// compute with the RSA public key as the secret.
fn hs256(secret: Vec<u8>) -> impl Fn(&[u8]) -> Vec<u8> {
    move |input| {
        let mut key = if secret.len() > 64 {
            Sha256::digest(&secret).to_vec()
        } else {
            secret.clone()
        };
        key.resize(64, 0);
        let pad = |b: u8| key.iter().map(|k| k ^ b).collect::<Vec<u8>>();
        let inner = Sha256::new()
            .chain_update(pad(0x36))
            .chain_update(input)
            .finalize();
        Sha256::new()
            .chain_update(pad(0x5c))
            .chain_update(inner)
            .finalize()
            .to_vec()
    }
}

fn claims(issuer: &Issuer) -> Value {
    let now = now();
    json!({
        "iss": issuer.url, "aud": CLIENT_ID, "sub": "ada-subject", "nonce": NONCE,
        "preferred_username": "ada@example.com", "exp": now + 600, "nbf": now - 10, "iat": now - 10,
    })
}

/// The good claims with `changes` applied (`null` removes a claim).
fn with(issuer: &Issuer, changes: Value) -> String {
    let mut claims = claims(issuer);
    for (name, value) in changes.as_object().unwrap() {
        match value {
            Value::Null => claims.as_object_mut().unwrap().remove(name),
            value => claims
                .as_object_mut()
                .unwrap()
                .insert(name.clone(), value.clone()),
        };
    }
    claims.to_string()
}

/// The hostile tokens, by name, in the order of the snapshot.
fn hostile(issuer: &Issuer) -> Vec<(&'static str, String)> {
    let good_header = r#"{"alg":"RS256","typ":"JWT","kid":"a"}"#;
    let good_claims = claims(issuer).to_string();
    let signed = |header: &str, claims: &str| compact(header, claims, rs256(&issuer.key));
    let by_other = |header: &str, claims: &str| compact(header, claims, rs256(&issuer.other));
    let good = signed(good_header, &good_claims);
    let parts: Vec<&str> = good.split('.').collect();
    let (h, c, s) = (parts[0], parts[1], parts[2]);
    let other_public = issuer.other.to_public_key();
    let other_jwk = json!({"kty": "RSA", "kid": "b",
        "n": B64.encode(other_public.n().to_bytes_be()), "e": B64.encode(other_public.e().to_bytes_be())});
    let public_der = {
        use rsa::pkcs8::EncodePublicKey as _;
        issuer
            .key
            .to_public_key()
            .to_public_key_der()
            .unwrap()
            .to_vec()
    };
    let public_pem = {
        use rsa::pkcs8::EncodePublicKey as _;
        let pem = issuer.key.to_public_key();
        pem.to_public_key_pem(rsa::pkcs8::LineEnding::LF)
            .unwrap()
            .into_bytes()
    };
    let header_with = |extra: Value| {
        let mut header = json!({"alg": "RS256", "typ": "JWT", "kid": "a"});
        for (k, v) in extra.as_object().unwrap() {
            header[k] = v.clone();
        }
        header.to_string()
    };
    let url = issuer.url.clone();
    vec![
        // The algorithm.
        (
            "alg none, no signature",
            compact(r#"{"alg":"none"}"#, &good_claims, |_| vec![]),
        ),
        (
            "alg none, the original signature",
            format!("{}.{c}.{s}", B64.encode(r#"{"alg":"none","kid":"a"}"#)),
        ),
        (
            "alg NONE (case)",
            compact(r#"{"alg":"NONE","kid":"a"}"#, &good_claims, |_| vec![]),
        ),
        ("alg missing", signed(r#"{"kid":"a"}"#, &good_claims)),
        (
            "alg a number",
            signed(r#"{"alg":256,"kid":"a"}"#, &good_claims),
        ),
        (
            "alg HS256 keyed with the public key (DER)",
            compact(
                r#"{"alg":"HS256","kid":"a"}"#,
                &good_claims,
                hs256(public_der),
            ),
        ),
        (
            "alg HS256 keyed with the public key (PEM)",
            compact(
                r#"{"alg":"HS256","kid":"a"}"#,
                &good_claims,
                hs256(public_pem),
            ),
        ),
        (
            "alg RS512",
            signed(r#"{"alg":"RS512","kid":"a"}"#, &good_claims),
        ),
        (
            "alg ES256",
            signed(r#"{"alg":"ES256","kid":"a"}"#, &good_claims),
        ),
        (
            "alg PS256",
            signed(r#"{"alg":"PS256","kid":"a"}"#, &good_claims),
        ),
        (
            "crit header",
            signed(
                &header_with(json!({"crit": ["exp"], "exp": 1})),
                &good_claims,
            ),
        ),
        // The key.
        (
            "kid unknown",
            signed(&header_with(json!({"kid": "b"})), &good_claims),
        ),
        (
            "kid path traversal",
            signed(
                &header_with(json!({"kid": "../../../../etc/passwd"})),
                &good_claims,
            ),
        ),
        (
            "kid SQL",
            signed(
                &header_with(json!({"kid": "a' OR '1'='1' --"})),
                &good_claims,
            ),
        ),
        (
            "kid URL",
            signed(
                &header_with(json!({"kid": "https://evil.example/jwks.json"})),
                &good_claims,
            ),
        ),
        (
            "kid control characters",
            signed(
                &header_with(json!({"kid": "a\n\u{1b}[31mred\0"})),
                &good_claims,
            ),
        ),
        (
            "kid 8000 characters",
            signed(&header_with(json!({"kid": "k".repeat(8000)})), &good_claims),
        ),
        (
            "kid a number",
            signed(&header_with(json!({"kid": 1})), &good_claims),
        ),
        (
            "jku elsewhere, signed by its key",
            by_other(
                &header_with(json!({"kid": "b", "jku": "https://evil.example/jwks"})),
                &good_claims,
            ),
        ),
        (
            "x5u elsewhere, signed by its key",
            by_other(
                &header_with(json!({"x5u": "https://evil.example/cert.pem"})),
                &good_claims,
            ),
        ),
        (
            "jwk embedded, signed by it",
            by_other(
                &header_with(json!({"kid": "b", "jwk": other_jwk})),
                &good_claims,
            ),
        ),
        (
            "jwk embedded without kid, signed by it",
            by_other(
                &json!({"alg": "RS256", "jwk": other_jwk}).to_string(),
                &good_claims,
            ),
        ),
        ("signed by another key", by_other(good_header, &good_claims)),
        (
            "tampered payload, original signature",
            format!(
                "{h}.{}.{s}",
                B64.encode(with(
                    issuer,
                    json!({"preferred_username": "admin@example.com"})
                ))
            ),
        ),
        (
            "signature truncated",
            format!("{h}.{c}.{}", &s[..s.len() - 4]),
        ),
        // The shape.
        ("empty", String::new()),
        ("two parts", format!("{h}.{c}")),
        ("four parts", format!("{good}.{s}")),
        ("five parts (JWE)", format!("{h}.{c}.{s}.{s}.{s}")),
        ("dots only", "..".into()),
        (
            "standard base64 alphabet",
            format!("{h}.{c}.{}", s.replace('-', "+").replace('_', "/")),
        ),
        ("padded header", format!("{h}=.{c}.{s}")),
        ("padded signature", format!("{h}.{c}.{s}==")),
        ("space inside", format!("{h}.{} {}.{s}", &c[..8], &c[8..])),
        ("trailing newline", format!("{good}\n")),
        ("leading space", format!(" {good}")),
        ("non-ASCII", format!("{h}.{c}é.{s}")),
        (
            "header duplicate alg",
            signed(r#"{"alg":"none","alg":"RS256","kid":"a"}"#, &good_claims),
        ),
        (
            "claims duplicate iss (good, evil)",
            signed(
                good_header,
                &good_claims.replacen('{', r#"{"iss":"https://evil.example","#, 1),
            ),
        ),
        (
            "claims duplicate iss (evil, good)",
            signed(
                good_header,
                &format!(
                    "{}{}",
                    &good_claims[..good_claims.len() - 1],
                    r#","iss":"https://evil.example"}"#
                ),
            ),
        ),
        (
            "claims duplicate nested",
            signed(
                good_header,
                &good_claims.replacen('{', r#"{"x":{"a":1,"a":2},"#, 1),
            ),
        ),
        ("claims an array", signed(good_header, "[]")),
        ("claims a string", signed(good_header, r#""ada""#)),
        ("claims null", signed(good_header, "null")),
        ("claims not JSON", signed(good_header, "{iss:")),
        ("header an array", signed(r#"["RS256"]"#, &good_claims)),
        (
            "oversized (1 MiB)",
            format!("{h}.{}.{s}", "A".repeat(1 << 20)),
        ),
        (
            "just over the limit",
            format!("{good}{}", "A".repeat(MAX_TOKEN_BYTES + 1 - good.len())),
        ),
        // The claims.
        (
            "expired",
            signed(good_header, &with(issuer, json!({"exp": now() - 300}))),
        ),
        (
            "exp missing",
            signed(good_header, &with(issuer, json!({"exp": null}))),
        ),
        (
            "exp a numeric string",
            signed(
                good_header,
                &with(issuer, json!({"exp": (now() + 600).to_string()})),
            ),
        ),
        (
            "exp a fraction",
            signed(
                good_header,
                &with(issuer, json!({"exp": now() as f64 + 600.5})),
            ),
        ),
        (
            "exp i64::MIN",
            signed(good_header, &with(issuer, json!({"exp": i64::MIN}))),
        ),
        (
            "exp beyond i64",
            signed(good_header, &with(issuer, json!({"exp": u64::MAX}))),
        ),
        (
            "nbf in the future",
            signed(good_header, &with(issuer, json!({"nbf": now() + 600}))),
        ),
        (
            "nbf a numeric string",
            signed(
                good_header,
                &with(issuer, json!({"nbf": now().to_string()})),
            ),
        ),
        (
            "iat in the future",
            signed(good_header, &with(issuer, json!({"iat": now() + 600}))),
        ),
        (
            "iss another",
            signed(
                good_header,
                &with(issuer, json!({"iss": "https://evil.example"})),
            ),
        ),
        (
            "iss missing",
            signed(good_header, &with(issuer, json!({"iss": null}))),
        ),
        (
            "iss with a trailing slash",
            signed(
                good_header,
                &with(issuer, json!({"iss": format!("{url}/")})),
            ),
        ),
        (
            "iss in upper case",
            signed(
                good_header,
                &with(issuer, json!({"iss": url.to_uppercase()})),
            ),
        ),
        (
            "iss as prefix of another host",
            signed(
                good_header,
                &with(issuer, json!({"iss": format!("{url}.evil.example")})),
            ),
        ),
        (
            "iss with a path after",
            signed(
                good_header,
                &with(issuer, json!({"iss": format!("{url}/evil")})),
            ),
        ),
        (
            "iss as an array",
            signed(good_header, &with(issuer, json!({"iss": [url]}))),
        ),
        (
            "aud another",
            signed(good_header, &with(issuer, json!({"aud": "another-client"}))),
        ),
        (
            "aud missing",
            signed(good_header, &with(issuer, json!({"aud": null}))),
        ),
        (
            "aud an array without us",
            signed(
                good_header,
                &with(issuer, json!({"aud": ["another-client", "third"]})),
            ),
        ),
        (
            "aud in upper case",
            signed(
                good_header,
                &with(issuer, json!({"aud": CLIENT_ID.to_uppercase()})),
            ),
        ),
        (
            "aud an array with us, azp another",
            signed(
                good_header,
                &with(
                    issuer,
                    json!({"aud": [CLIENT_ID, "another-client"], "azp": "another-client"}),
                ),
            ),
        ),
        (
            "aud a number",
            signed(good_header, &with(issuer, json!({"aud": 1}))),
        ),
        (
            "nonce missing",
            signed(good_header, &with(issuer, json!({"nonce": null}))),
        ),
        (
            "nonce another",
            signed(good_header, &with(issuer, json!({"nonce": "another"}))),
        ),
        (
            "nonce a prefix of ours",
            signed(good_header, &with(issuer, json!({"nonce": &NONCE[..5]}))),
        ),
        (
            "sub missing",
            signed(good_header, &with(issuer, json!({"sub": null}))),
        ),
        (
            "sub empty",
            signed(good_header, &with(issuer, json!({"sub": ""}))),
        ),
    ]
}

/// Why the token was refused; anything else (accepted, or refused for another reason
/// than the token itself) fails the test.
fn refusal(outcome: Result<Identity, OidcError>) -> TokenCheck {
    match outcome {
        Err(OidcError::InvalidToken { reason, .. }) => reason,
        other => panic!("not refused as an invalid token: {other:?}"),
    }
}

#[tokio::test]
async fn a_well_formed_token_is_accepted() {
    let issuer = issuer().await;
    let provider = provider(&issuer);
    let token = compact(
        r#"{"alg":"RS256","typ":"JWT","kid":"a"}"#,
        &claims(&issuer).to_string(),
        rs256(&issuer.key),
    );
    let identity = provider.verify_id_token(&token, NONCE).await.unwrap();
    assert_eq!(identity.subject, "ada-subject");
    assert_eq!(identity.issuer, issuer.url);
    // Within the two minutes' skew: just expired, or valid a minute from now.
    let skewed = with(
        &issuer,
        json!({"exp": now() - 60, "nbf": now() + 60, "iat": now() + 60}),
    );
    let token = compact(r#"{"alg":"RS256","kid":"a"}"#, &skewed, rs256(&issuer.key));
    assert!(provider.verify_id_token(&token, NONCE).await.is_ok());
    // No `kid`: the JWKS's only key.
    let token = compact(
        r#"{"alg":"RS256"}"#,
        &claims(&issuer).to_string(),
        rs256(&issuer.key),
    );
    assert!(provider.verify_id_token(&token, NONCE).await.is_ok());
}

#[tokio::test]
async fn hostile_tokens_are_refused() {
    let issuer = issuer().await;
    let provider = provider(&issuer);
    let mut table = String::new();
    for (name, token) in hostile(&issuer) {
        eprintln!("{name}"); // names the case should it not be refused
        let reason = refusal(provider.verify_id_token(&token, NONCE).await);
        // The issuer's port changes from run to run.
        let message = reason
            .to_string()
            .replace(&issuer.url, "{issuer}")
            .replace(&issuer.url.to_uppercase(), "{ISSUER}");
        assert!(message.chars().count() < 160, "{name}: {message}");
        table.push_str(&format!("{name:45} → {message}\n"));
    }
    insta::assert_snapshot!(table);
}

#[tokio::test]
async fn an_oversized_token_is_refused_before_any_fetch_or_crypto() {
    let issuer = issuer().await;
    let provider = provider(&issuer);
    let token = "A".repeat(1 << 20);
    assert_eq!(
        refusal(provider.verify_id_token(&token, NONCE).await),
        TokenCheck::TooLarge
    );
    assert_eq!(issuer.hits.load(Ordering::SeqCst), 0, "nothing fetched");
}

#[tokio::test]
async fn an_empty_expected_nonce_matches_nothing() {
    let issuer = issuer().await;
    let provider = provider(&issuer);
    let token = compact(
        r#"{"alg":"RS256","kid":"a"}"#,
        &with(&issuer, json!({"nonce": ""})),
        rs256(&issuer.key),
    );
    assert_eq!(
        refusal(provider.verify_id_token(&token, "").await),
        TokenCheck::Nonce
    );
}

#[tokio::test]
async fn unknown_kids_fetch_the_jwks_at_most_once_a_minute() {
    let issuer = issuer().await;
    let provider = provider(&issuer);
    for kid in ["b", "c", "d", "../e"] {
        let token = compact(
            &json!({"alg": "RS256", "kid": kid}).to_string(),
            &claims(&issuer).to_string(),
            rs256(&issuer.key),
        );
        let reason = refusal(provider.verify_id_token(&token, NONCE).await);
        assert!(matches!(reason, TokenCheck::UnknownKey(_)), "{reason}");
    }
    // The discovery document once, the JWKS once: a stream of made-up kids cannot make
    // the server hammer the provider.
    assert_eq!(issuer.hits.load(Ordering::SeqCst), 2);
}

/// Through the server: a hostile ID token at the sign-in callback is a 401 problem, never
/// a 5xx, and signs no one in.
#[tokio::test]
async fn the_sign_in_callback_answers_a_hostile_token_with_401() {
    let issuer = issuer().await;
    let url = issuer.url.clone();
    let rig = common::Rig::start_with(common::Backend::Sqlite, move |config| {
        config.identity_providers = vec![IdentityProviderConfig::oidc(
            "idp",
            url,
            CLIENT_ID.into(),
            "s".into(),
        )];
    })
    .await;
    for (name, hostile) in [
        ("alg none", None),
        ("oversized", Some("A".repeat(1 << 20))),
        ("expired", Some(String::new())),
    ] {
        let start = rig
            .send(rig.http.get(format!("{}/sign-in/provider/idp", rig.url)))
            .await;
        assert_eq!(start.status, 303, "{}", start.text);
        let authorize = reqwest::Url::parse(start.headers["location"].to_str().unwrap()).unwrap();
        let param = |p: &str| {
            authorize
                .query_pairs()
                .find(|(k, _)| k == p)
                .unwrap()
                .1
                .into_owned()
        };
        let (state, nonce) = (param("state"), param("nonce"));
        let mut claims = claims(&issuer);
        claims["nonce"] = nonce.into();
        let token = match hostile {
            None => compact(r#"{"alg":"none"}"#, &claims.to_string(), |_| vec![]),
            Some(t) if !t.is_empty() => t,
            Some(_) => {
                claims["exp"] = (now() - 600).into();
                compact(
                    r#"{"alg":"RS256","kid":"a"}"#,
                    &claims.to_string(),
                    rs256(&issuer.key),
                )
            }
        };
        *issuer.id_token.lock().unwrap() = token;
        let done = rig
            .send(rig.http.get(format!(
                "{}/sign-in/provider/idp/callback?code=c0de&state={state}",
                rig.url
            )))
            .await;
        assert_eq!(done.status, 401, "{name}: {}", done.text);
        assert!(
            done.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/problem+json"),
            "{name}"
        );
        assert!(
            done.text.contains("the ID token is"),
            "{name}: {}",
            done.text
        );
    }
}
