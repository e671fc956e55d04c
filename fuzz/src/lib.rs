//! What the fuzz targets share: structured JSON from `arbitrary`, the template printer
//! used for round trips, the test issuer's keys, and a bound on time per input.

use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use paddock_engine::Expr;
use paddock_engine::value::Value;
use serde_json::Value as Json;

/// The longest any one input may take: far above what a well-behaved parser or check
/// needs for the inputs libFuzzer makes (`-max_len` in `scripts/fuzz`), far below
/// libFuzzer's own timeout, so a super-linear path fails here with a clear message.
pub const TIME_BOUND: Duration = Duration::from_secs(3);

/// Runs `f`, failing the input if it takes longer than [`TIME_BOUND`].
pub fn bounded<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    let took = start.elapsed();
    assert!(
        took < TIME_BOUND,
        "{what} took {took:?} (bound {TIME_BOUND:?})"
    );
    out
}

/// How many lines a YAML reader may count in `text`: every character YAML 1.1 or 1.2 takes
/// for a line break starts one (`\r\n` counted twice, to stay an upper bound).
pub fn yaml_lines(text: &str) -> usize {
    text.chars()
        .filter(|c| matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}'))
        .count()
        + 2
}

/// A JSON value of bounded depth (the server parses request bodies with serde_json, whose
/// recursion limit is 128; documents it builds nest a few levels deeper).
pub fn json(u: &mut Unstructured<'_>, depth: usize) -> arbitrary::Result<Json> {
    let kind = if depth == 0 {
        u.int_in_range(0..=4)?
    } else {
        u.int_in_range(0..=6)?
    };
    Ok(match kind {
        0 => Json::Null,
        1 => Json::Bool(u.arbitrary()?),
        2 => Json::from(u.arbitrary::<i64>()?),
        3 => serde_json::Number::from_f64(u.arbitrary()?).map_or(Json::Null, Json::Number),
        4 => Json::String(text(u)?),
        5 => {
            let n = u.int_in_range(0..=4)?;
            Json::Array(
                (0..n)
                    .map(|_| json(u, depth - 1))
                    .collect::<arbitrary::Result<_>>()?,
            )
        }
        _ => {
            let n = u.int_in_range(0..=4)?;
            let mut map = serde_json::Map::new();
            for _ in 0..n {
                map.insert(key(u)?, json(u, depth - 1)?);
            }
            Json::Object(map)
        }
    })
}

/// Text that is often one of the words the policies and parsers look for.
pub fn text(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    const WORDS: &[&str] = &[
        "",
        "dev",
        "test",
        "prod",
        "eastus",
        "westeurope",
        "westus",
        "payments",
        "checkout",
        "create",
        "update",
        "destroy",
        "extend",
        "admin",
        "reader",
        "contributor",
        "[secret]",
        "(known after apply)",
        "azure:resource-group",
        "kubernetes:namespace",
        "github:repository",
        "${a.b}",
        "a-b_c",
        "UPPER",
    ];
    if u.arbitrary()? {
        Ok((*u.choose(WORDS)?).to_owned())
    } else {
        u.arbitrary()
    }
}

/// An object key: often one the policies read.
pub fn key(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    const KEYS: &[&str] = &[
        "region",
        "stages",
        "name",
        "days",
        "location",
        "sku",
        "replicas",
        "nodeCount",
        "size",
        "tier",
        "team",
        "environment",
        "cpu",
        "memory",
        "quota",
    ];
    if u.arbitrary()? {
        Ok((*u.choose(KEYS)?).to_owned())
    } else {
        text(u)
    }
}

/// A JSON value from raw fuzz bytes, deep enough for every path the documents have.
pub fn arbitrary_json(u: &mut Unstructured<'_>) -> arbitrary::Result<Json> {
    json(u, 6)
}

/// Prints an expression back as a template string: literals with `${` escaped as `$${`,
/// references as `${target.path}`. Only for what [`Expr::template`] yields (a string
/// literal, a reference, or their concatenation).
pub fn print_template(e: &Expr) -> String {
    match e {
        Expr::Literal(Value::String(s)) => s.replace("${", "$${"),
        Expr::Ref(r) => r.to_string(),
        Expr::Concat(parts) => parts.iter().map(print_template).collect(),
        other => panic!("a template never yields {other:?}"),
    }
}

/// The test issuer's key (`crates/server/tests/id_token/issuer-key.pem`) and another one:
/// a token verifies only if signed by the first.
pub mod keys {
    use rsa::RsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey as _;
    use std::sync::LazyLock;

    pub static ISSUER: LazyLock<RsaPrivateKey> = LazyLock::new(|| {
        RsaPrivateKey::from_pkcs8_pem(include_str!(
            "../../crates/server/tests/id_token/issuer-key.pem"
        ))
        .expect("the test issuer key")
    });
    pub static OTHER: LazyLock<RsaPrivateKey> = LazyLock::new(|| {
        RsaPrivateKey::from_pkcs8_pem(include_str!(
            "../../crates/server/tests/id_token/other-key.pem"
        ))
        .expect("the other test key")
    });
}

/// The issuer, client and nonce the ID-token targets verify against, and their clock.
pub mod issuer {
    pub const URL: &str = "https://issuer.example/tenant/v2.0";
    pub const CLIENT_ID: &str = "paddock-client";
    pub const NONCE: &str = "n0nce-of-this-sign-in";
    /// A fixed "now" (2027-01-15), so every run decides the same.
    pub const NOW: i64 = 1_800_000_000;
    /// The kid of the issuer's key in its JWKS.
    pub const KID: &str = "a";
}

/// The issuer's JWKS as the verifier holds it: its key under kid `a`.
pub fn jwks() -> Vec<(String, rsa::RsaPublicKey)> {
    vec![(issuer::KID.to_owned(), keys::ISSUER.to_public_key())]
}

/// The RS256 signature of `input` by the issuer's key (PKCS#1 v1.5 is deterministic, so
/// a token's signature can be compared with this).
pub fn issuer_signature(input: &[u8]) -> Vec<u8> {
    sign(&keys::ISSUER, input)
}

pub fn sign(key: &rsa::RsaPrivateKey, input: &[u8]) -> Vec<u8> {
    use rsa::signature::{SignatureEncoding as _, Signer as _};
    rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key.clone())
        .sign(input)
        .to_vec()
}

/// Whether an identity's claims were acceptable: the property every accepted token holds.
pub fn assert_token_accepted_rightly(token: &str) {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    let (input, signature) = token.rsplit_once('.').expect("three parts");
    let signature = B64.decode(signature).expect("a base64url signature");
    assert_eq!(
        signature,
        issuer_signature(input.as_bytes()),
        "accepted a token the issuer's key did not sign: {token}"
    );
}

impl<'a> Arbitrary<'a> for ArbitraryJson {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        arbitrary_json(u).map(ArbitraryJson)
    }
}

/// A JSON value as an `Arbitrary` type, for `#[derive(Arbitrary)]` structures.
#[derive(Debug, Clone)]
pub struct ArbitraryJson(pub Json);
