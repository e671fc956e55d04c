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

/// Why a token was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    BadSignature,
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
        if claims["exp"].as_i64().is_none_or(|exp| exp <= now_secs) {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    /// The claims of a token this signer issued, if its signature holds, expiring or not
    /// (Kubernetes' legacy service-account tokens never expire).
    pub fn verify_signature(&self, token: &str) -> Result<Value, TokenError> {
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
        if header["alg"] != "RS256" {
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
