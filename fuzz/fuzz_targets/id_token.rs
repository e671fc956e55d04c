//! ID-token verification on tokens an attacker could build: headers and claims from
//! choices around the good ones (algorithms, `kid`s, `crit`, `jku`/`jwk`, duplicate
//! names, issuers, audiences, times, nonces), signed by the issuer's key, by another key,
//! with HMAC keyed by the public key, or not at all, then possibly altered.
//!
//! Properties: no panic; decided within the time bound; a token is accepted only if its
//! signature is exactly the issuer key's RS256 signature of its `header.claims`, and only
//! with the issuer, audience, nonce and times the verifier expects; the good token, left
//! alone, is accepted with the identity its claims name.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use libfuzzer_sys::fuzz_target;
use paddock_fuzz::{ArbitraryJson, bounded, issuer, jwks, keys, sign, text};
use paddock_server::fuzzing::verify_id_token;
use serde_json::{Value as Json, json};

#[derive(Debug)]
struct Token {
    /// Header members beyond the good `{"alg":"RS256","typ":"JWT","kid":"a"}`.
    header: Vec<(String, Json)>,
    /// Claims replaced (`null` removes one) in the good claims.
    claims: Vec<(String, Json)>,
    /// A raw JSON text appended inside the header object (duplicate names and the like).
    header_tail: Option<String>,
    signer: Signer,
    alteration: Alteration,
}

#[derive(Debug, Arbitrary)]
enum Signer {
    Issuer,
    Other,
    /// HMAC-SHA256 keyed with the issuer's public key, as a confused verifier would check.
    HmacWithPublicKey,
    Empty,
    Bytes(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum Alteration {
    None,
    FlipByte(usize, u8),
    Truncate(usize),
    Append(String),
    SwapClaims(String),
}

const HEADER_NAMES: &[&str] = &[
    "alg", "kid", "crit", "jku", "jwk", "x5u", "typ", "cty", "b64", "zip",
];
const CLAIM_NAMES: &[&str] = &[
    "iss",
    "aud",
    "azp",
    "exp",
    "nbf",
    "iat",
    "nonce",
    "sub",
    "preferred_username",
    "email",
    "name",
];

fn value(u: &mut Unstructured<'_>, name: &str) -> arbitrary::Result<Json> {
    let now = issuer::NOW;
    Ok(match (u.int_in_range(0..=3)?, name) {
        (0, _) => ArbitraryJson::arbitrary(u)?.0,
        (_, "alg") => json!(*u.choose(&[
            "RS256", "none", "HS256", "RS512", "PS256", "ES256", "rs256", ""
        ])?),
        (_, "kid") => json!(*u.choose(&["a", "b", "", "../a", "a\u{0}"])?),
        (_, "iss") => json!(*u.choose(&[
            issuer::URL,
            "https://issuer.example/tenant/v2.0/",
            "https://evil.example"
        ])?),
        (_, "aud" | "azp") => match u.int_in_range(0..=3)? {
            0 => json!(issuer::CLIENT_ID),
            1 => json!([issuer::CLIENT_ID, "other"]),
            2 => json!(["other"]),
            _ => json!("paddock-client "),
        },
        (_, "exp" | "nbf" | "iat") => match u.int_in_range(0..=4)? {
            0 => json!(now + u.int_in_range(-1000..=1000)?),
            1 => json!(i64::MAX),
            2 => json!(i64::MIN),
            3 => json!((now as f64) + 0.5),
            _ => json!(now.to_string()),
        },
        (_, "nonce") => json!(*u.choose(&[issuer::NONCE, "", "n0nce-of-this-sign-i"])?),
        _ => json!(text(u)?),
    })
}

impl<'a> Arbitrary<'a> for Token {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut header = Vec::new();
        for _ in 0..u.int_in_range(0..=3)? {
            let name = (*u.choose(HEADER_NAMES)?).to_owned();
            let v = value(u, &name)?;
            header.push((name, v));
        }
        let mut claims = Vec::new();
        for _ in 0..u.int_in_range(0..=3)? {
            let name = (*u.choose(CLAIM_NAMES)?).to_owned();
            let v = if u.ratio(1, 6)? {
                Json::Null
            } else {
                value(u, &name)?
            };
            claims.push((name, v));
        }
        Ok(Token {
            header,
            claims,
            header_tail: if u.ratio(1, 8)? {
                Some(u.arbitrary()?)
            } else {
                None
            },
            signer: u.arbitrary()?,
            alteration: u.arbitrary()?,
        })
    }
}

fn good_claims() -> serde_json::Map<String, Json> {
    json!({
        "iss": issuer::URL, "aud": issuer::CLIENT_ID, "sub": "ada-subject", "nonce": issuer::NONCE,
        "preferred_username": "ada@example.com", "exp": issuer::NOW + 600,
        "nbf": issuer::NOW - 10, "iat": issuer::NOW - 10,
    })
    .as_object()
    .cloned()
    .expect("an object")
}

fn hmac(key: &[u8], input: &[u8]) -> Vec<u8> {
    use sha2::{Digest as _, Sha256};
    let mut k = if key.len() > 64 {
        Sha256::digest(key).to_vec()
    } else {
        key.to_vec()
    };
    k.resize(64, 0);
    let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
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

fuzz_target!(|t: Token| {
    let mut header = json!({"alg": "RS256", "typ": "JWT", "kid": issuer::KID});
    for (name, v) in &t.header {
        header[name] = v.clone();
    }
    let mut header_text = header.to_string();
    if let Some(tail) = &t.header_tail {
        header_text.pop();
        header_text.push(',');
        header_text.push_str(tail);
        header_text.push('}');
    }
    let mut claims = good_claims();
    for (name, v) in &t.claims {
        match v {
            Json::Null => claims.remove(name),
            v => claims.insert(name.clone(), v.clone()),
        };
    }
    let claims_text = Json::Object(claims.clone()).to_string();
    let input = format!("{}.{}", B64.encode(&header_text), B64.encode(&claims_text));
    let signature = match &t.signer {
        Signer::Issuer => sign(&keys::ISSUER, input.as_bytes()),
        Signer::Other => sign(&keys::OTHER, input.as_bytes()),
        Signer::HmacWithPublicKey => {
            use rsa::pkcs8::EncodePublicKey as _;
            let der = keys::ISSUER
                .to_public_key()
                .to_public_key_der()
                .expect("der");
            hmac(der.as_bytes(), input.as_bytes())
        }
        Signer::Empty => Vec::new(),
        Signer::Bytes(b) => b.clone(),
    };
    let mut token = format!("{input}.{}", B64.encode(&signature));
    match &t.alteration {
        Alteration::None => {}
        Alteration::FlipByte(at, x) => {
            let mut bytes = token.into_bytes();
            let at = at % bytes.len();
            bytes[at] ^= x | 1;
            token = String::from_utf8_lossy(&bytes).into_owned();
        }
        Alteration::Truncate(n) => {
            let mut n = n % (token.len() + 1);
            while !token.is_char_boundary(n) {
                n -= 1;
            }
            token.truncate(n);
        }
        Alteration::Append(s) => token.push_str(s),
        Alteration::SwapClaims(other) => {
            let parts: Vec<&str> = token.split('.').collect();
            token = format!("{}.{}.{}", parts[0], B64.encode(other), parts[2]);
        }
    }
    let keys = jwks();
    let verified = bounded("verifying an ID token", || {
        verify_id_token(
            &token,
            &keys,
            issuer::URL,
            issuer::CLIENT_ID,
            issuer::NONCE,
            issuer::NOW,
        )
    });
    let untouched_good = t.header.is_empty()
        && t.claims.is_empty()
        && t.header_tail.is_none()
        && matches!(t.signer, Signer::Issuer)
        && matches!(t.alteration, Alteration::None);
    match verified {
        Ok(identity) => {
            paddock_fuzz::assert_token_accepted_rightly(&token);
            // What was accepted is what the claims say, and what the verifier expects.
            let (_, c, _) = split3(&token);
            let claims: Json =
                serde_json::from_slice(&B64.decode(c).expect("claims")).expect("json");
            assert_eq!(claims["iss"], issuer::URL);
            assert_eq!(claims["nonce"], issuer::NONCE);
            assert_eq!(claims["sub"], identity.subject.as_str());
            let aud_ok = claims["aud"] == issuer::CLIENT_ID
                || claims["aud"]
                    .as_array()
                    .is_some_and(|a| a.contains(&json!(issuer::CLIENT_ID)));
            assert!(aud_ok, "accepted for audience {}", claims["aud"]);
            let exp = claims["exp"].as_i64().expect("exp is a number");
            assert!(
                exp.saturating_add(120) > issuer::NOW,
                "accepted expired at {exp}"
            );
        }
        Err(reason) => assert!(!untouched_good, "the good token was refused: {reason}"),
    }
});

fn split3(token: &str) -> (&str, &str, &str) {
    let mut parts = token.split('.');
    (
        parts.next().expect("header"),
        parts.next().expect("claims"),
        parts.next().expect("signature"),
    )
}
