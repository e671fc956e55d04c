//! ID tokens and their parts as raw text: the whole token through the verifier, and each
//! dot-separated part through the JWT part reader (base64url JSON objects without
//! duplicate names).
//!
//! Properties: no panic; decided within the time bound; a token is accepted only if its
//! signature is the issuer key's signature of its `header.claims` (the seeds include good
//! tokens, so the fuzzer starts from ones that verify); a part is read only if it is a
//! JSON object that serde_json reads the same, and nothing over `MAX_TOKEN_BYTES` is read.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use libfuzzer_sys::fuzz_target;
use paddock_fuzz::{bounded, issuer, jwks};
use paddock_server::fuzzing::{decode_jwt_part, verify_id_token};
use paddock_server::oidc::{MAX_TOKEN_BYTES, TokenCheck};
use serde_json::Value as Json;

fuzz_target!(|token: &str| {
    let keys = jwks();
    let verified = bounded("verifying an ID token", || {
        verify_id_token(
            token,
            &keys,
            issuer::URL,
            issuer::CLIENT_ID,
            issuer::NONCE,
            issuer::NOW,
        )
    });
    match verified {
        Ok(_) => paddock_fuzz::assert_token_accepted_rightly(token),
        Err(reason) => {
            if token.len() > MAX_TOKEN_BYTES {
                assert_eq!(reason, TokenCheck::TooLarge);
            }
        }
    }
    for part in token.split('.') {
        if let Some(object) = decode_jwt_part(part) {
            let bytes = B64.decode(part).expect("a part read is base64url");
            let plain: Json = serde_json::from_slice(&bytes).expect("a part read is JSON");
            assert_eq!(
                plain,
                Json::Object(object),
                "the strict reader agrees with serde_json"
            );
        }
    }
});
