//! GitHub: what its clients do to authenticate as the app and to seal a secret.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::json;

/// A GitHub App JWT, as an app's client signs it with its private key.
pub fn app_jwt(key_file: &str, app_id: i64, lifetime_secs: i64) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as URL;
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::signature::{SignatureEncoding, Signer};
    let key =
        rsa::RsaPrivateKey::from_pkcs8_pem(&std::fs::read_to_string(key_file).unwrap()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let body = format!(
        "{}.{}",
        URL.encode(json!({"alg": "RS256", "typ": "JWT"}).to_string()),
        URL.encode(
            json!({"iss": app_id.to_string(), "iat": now - 60, "exp": now + lifetime_secs})
                .to_string()
        )
    );
    let signature = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key).sign(body.as_bytes());
    format!("{body}.{}", URL.encode(signature.to_bytes()))
}

/// A libsodium sealed box of `value` for an environment's public key, as clients seal secrets.
pub fn seal(public_key_b64: &str, value: &str) -> String {
    let key: [u8; 32] = B64.decode(public_key_b64).unwrap().try_into().unwrap();
    let sealed = crypto_box::PublicKey::from(key)
        .seal(&mut rand::rngs::OsRng, value.as_bytes())
        .unwrap();
    B64.encode(sealed)
}
