//! The sandbox's token signer: RS256 JSON Web Tokens, as Entra ID issues them, with the
//! public key published as a JWKS. The private key is created on first start and kept in
//! the data directory (mode 0600).

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::signature::{SignatureEncoding, Signer as _, Verifier as _};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::SandboxError;

pub struct Signer {
    signing: SigningKey<Sha256>,
    verifying: VerifyingKey<Sha256>,
    public: RsaPublicKey,
    pub kid: String,
}

/// The longest token looked at: larger ones are refused before any decoding or crypto.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Why a token was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    /// Not three base64url parts of JSON objects, too long, not RS256, or with a `crit`
    /// header.
    Malformed,
    BadSignature,
    /// Outside its lifetime: `exp` missing, not a number or past, or `nbf` in the future.
    Expired,
}

impl Signer {
    /// Loads `path`, or creates a 2048-bit key there.
    pub fn open(path: &Path) -> Result<Signer, SandboxError> {
        let io = |source| SandboxError::DataDir {
            path: path.to_owned(),
            source,
        };
        let key = match std::fs::read_to_string(path) {
            Ok(pem) => RsaPrivateKey::from_pkcs8_pem(&pem)
                .map_err(|e| SandboxError::Database(format!("{}: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)
                    .map_err(|e| SandboxError::Database(e.to_string()))?;
                let pem = key
                    .to_pkcs8_pem(LineEnding::LF)
                    .map_err(|e| SandboxError::Database(e.to_string()))?;
                write_private(path, pem.as_bytes()).map_err(io)?;
                key
            }
            Err(e) => return Err(io(e)),
        };
        let public = key.to_public_key();
        let kid = B64.encode(&Sha256::digest(public.n().to_bytes_be())[..16]);
        Ok(Signer {
            signing: SigningKey::new(key),
            verifying: VerifyingKey::new(public.clone()),
            public,
            kid,
        })
    }

    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": self.kid});
        let body = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let signature: Signature = self.signing.sign(body.as_bytes());
        format!("{body}.{}", B64.encode(signature.to_bytes()))
    }

    /// The claims of a token this signer issued, if its signature holds and it has not
    /// expired.
    pub fn verify(&self, token: &str, now_secs: i64) -> Result<Value, TokenError> {
        let claims = self.verify_signature(token)?;
        let expired = claims["exp"].as_i64().is_none_or(|exp| exp <= now_secs);
        let early = match &claims["nbf"] {
            Value::Null => false,
            nbf => nbf.as_i64().is_none_or(|nbf| nbf > now_secs),
        };
        if expired || early {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    /// The claims of a token this signer issued, if its signature holds, expiring or not
    /// (Kubernetes' legacy service-account tokens never expire).
    /// The key is only ever this signer's: `kid`, `jku`, `x5u` and `jwk` headers are not
    /// read.
    pub fn verify_signature(&self, token: &str) -> Result<Value, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header: Value = B64
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed)?;
        // RFC 7515 4.1.11: extensions not understood must not be skipped.
        if header["alg"] != "RS256" || header.get("crit").is_some() {
            return Err(TokenError::Malformed);
        }
        let signature = B64
            .decode(s)
            .ok()
            .and_then(|b| Signature::try_from(b.as_slice()).ok())
            .ok_or(TokenError::Malformed)?;
        self.verifying
            .verify(format!("{h}.{c}").as_bytes(), &signature)
            .map_err(|_| TokenError::BadSignature)?;
        let claims: Value = B64
            .decode(c)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .filter(Value::is_object)
            .ok_or(TokenError::Malformed)?;
        Ok(claims)
    }

    /// The public key as a JSON Web Key Set.
    pub fn jwks(&self) -> Value {
        json!({"keys": [{
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": B64.encode(self.public.n().to_bytes_be()),
            "e": B64.encode(self.public.e().to_bytes_be()),
        }]})
    }
}

pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every token the sandbox's services take (Entra client assertions, Graph and ARM
    /// bearer tokens, Kubernetes service-account tokens) goes through `verify`; each
    /// hostile shape here gets the refusal beside it, never a panic. Claims such as
    /// `iss` and `aud` are each service's to check, after this.
    #[test]
    fn hostile_tokens_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let signer = Signer::open(&dir.path().join("key.pem")).unwrap();
        let other = Signer::open(&dir.path().join("other.pem")).unwrap();
        let now = 1_800_000_000;
        let claims = json!({"iss": "sandbox", "aud": "x", "exp": now + 600});
        let good = signer.sign(&claims);
        assert_eq!(signer.verify(&good, now), Ok(claims.clone()));
        let [h, c, s]: [&str; 3] = good.split('.').collect::<Vec<_>>().try_into().unwrap();
        let part = |json: &str| B64.encode(json);
        // Signs any header and claims texts with the sandbox's key.
        let signed = |header: &str, claims: &str| {
            let input = format!("{}.{}", part(header), part(claims));
            let signature: Signature = signer.signing.sign(input.as_bytes());
            format!("{input}.{}", B64.encode(signature.to_bytes()))
        };
        let with = |changes: Value| {
            let mut c = claims.clone();
            for (k, v) in changes.as_object().unwrap() {
                c[k] = v.clone();
            }
            c.to_string()
        };
        let rs256 = r#"{"alg":"RS256"}"#;
        use TokenError::*;
        let table: Vec<(&str, String, TokenError)> = vec![
            (
                "alg none, no signature",
                format!("{}.{c}.", part(r#"{"alg":"none"}"#)),
                Malformed,
            ),
            (
                "alg none, original signature",
                format!("{}.{c}.{s}", part(r#"{"alg":"none"}"#)),
                Malformed,
            ),
            (
                "alg HS256",
                format!("{}.{c}.{s}", part(r#"{"alg":"HS256"}"#)),
                Malformed,
            ),
            (
                "alg RS512",
                signed(r#"{"alg":"RS512"}"#, &claims.to_string()),
                Malformed,
            ),
            (
                "alg ES256",
                signed(r#"{"alg":"ES256"}"#, &claims.to_string()),
                Malformed,
            ),
            (
                "alg PS256",
                signed(r#"{"alg":"PS256"}"#, &claims.to_string()),
                Malformed,
            ),
            (
                "crit header",
                signed(r#"{"alg":"RS256","crit":["x"],"x":1}"#, &claims.to_string()),
                Malformed,
            ),
            ("another key", other.sign(&claims), BadSignature),
            (
                "jku elsewhere, another key",
                format!(
                    "{}.{}",
                    part(r#"{"alg":"RS256","jku":"https://evil.example"}"#),
                    other.sign(&claims).split_once('.').unwrap().1
                ),
                BadSignature,
            ),
            (
                "tampered payload",
                format!("{h}.{}.{s}", part(&with(json!({"aud": "other"})))),
                BadSignature,
            ),
            ("two parts", format!("{h}.{c}"), Malformed),
            ("four parts", format!("{good}.{s}"), Malformed),
            ("padding", format!("{h}.{c}.{s}=="), Malformed),
            (
                "standard base64",
                format!("{h}.{c}.{}", s.replace('-', "+").replace('_', "/")),
                Malformed,
            ),
            ("whitespace", format!("{h}.{c}.{s}\n"), Malformed),
            ("claims an array", signed(rs256, "[1]"), Malformed),
            ("claims null", signed(rs256, "null"), Malformed),
            (
                "oversized (1 MiB)",
                format!("{h}.{}.{s}", "A".repeat(1 << 20)),
                Malformed,
            ),
            (
                "expired",
                signed(rs256, &with(json!({"exp": now - 1}))),
                Expired,
            ),
            (
                "exp missing",
                signed(rs256, r#"{"iss":"sandbox"}"#),
                Expired,
            ),
            (
                "exp a string",
                signed(rs256, &with(json!({"exp": (now + 600).to_string()}))),
                Expired,
            ),
            (
                "exp i64::MIN",
                signed(rs256, &with(json!({"exp": i64::MIN}))),
                Expired,
            ),
            (
                "exp beyond i64",
                signed(rs256, &with(json!({"exp": u64::MAX}))),
                Expired,
            ),
            (
                "nbf in the future",
                signed(rs256, &with(json!({"nbf": now + 60}))),
                Expired,
            ),
            (
                "nbf a string",
                signed(rs256, &with(json!({"nbf": now.to_string()}))),
                Expired,
            ),
        ];
        for (name, token, refusal) in table {
            assert_eq!(signer.verify(&token, now), Err(refusal), "{name}");
        }
    }
}
