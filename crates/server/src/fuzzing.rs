//! The fuzzing surface: thin, stable entry points into the parsers and checks that take
//! hostile input, for the cargo-fuzz targets in `fuzz/` (and their regression tests).
//! Not an API: hidden from the documentation, and each function only forwards to the code
//! the server itself runs, so a fuzzer exercises exactly what a request reaches.

use axum::http::{HeaderMap, HeaderValue, Method, header};
use rsa::RsaPublicKey;
use serde_json::Value as Json;

use crate::oidc::{Identity, TokenCheck};
use crate::policy::Role;

/// Verifies an ID token as the sign-in callback does, with the issuer's keys (`kid` →
/// key) given instead of fetched, and the clock given: size, header (alg, crit, kid), key
/// choice, RS256 signature, then the claims.
pub fn verify_id_token(
    token: &str,
    keys: &[(String, RsaPublicKey)],
    issuer: &str,
    client_id: &str,
    nonce: &str,
    now: i64,
) -> Result<Identity, TokenCheck> {
    let token = crate::oidc::SignedToken::read(token)?;
    let kid = token.kid.as_deref();
    let key = crate::oidc::find_key(keys, kid)
        .ok_or_else(|| TokenCheck::UnknownKey(crate::oidc::echo(kid.unwrap_or(""))))?;
    let expected = crate::oidc::Expected {
        issuer,
        client_id,
        nonce,
        now,
    };
    token.check(key, &expected)
}

/// One part of a compact JWS (header or claims) as the verifier reads it: base64url
/// without padding, a JSON object, no name twice at any depth.
pub fn decode_jwt_part(part: &str) -> Option<serde_json::Map<String, Json>> {
    crate::oidc::decode_object(part)
}

/// A cookie's value as the server finds it in a request's `Cookie` headers (each given
/// as raw bytes; those that are not valid header values are dropped, as HTTP would).
pub fn cookie(cookie_headers: &[&[u8]], name: &str) -> Option<String> {
    let mut headers = HeaderMap::new();
    for value in cookie_headers {
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.append(header::COOKIE, v);
        }
    }
    crate::auth::cookie(&headers, name).map(str::to_owned)
}

/// Whether a cookie-authenticated request passes the CSRF check: `csrf` is the session's
/// token, `header` the `X-CSRF-Token` header's raw bytes, `form` the form field.
pub fn csrf_passes(csrf: &str, method: &str, header: Option<&[u8]>, form: Option<&str>) -> bool {
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return false;
    };
    let mut headers = HeaderMap::new();
    if let Some(v) = header.and_then(|h| HeaderValue::from_bytes(h).ok()) {
        headers.insert(crate::auth::CSRF_HEADER, v);
    }
    crate::auth::csrf_passes(csrf, &method, &headers, form)
}

/// Where a sign-in sends the browser afterwards, given the `next` it was asked for: the
/// `Location` header of the redirect the server answers with.
pub fn sign_in_redirect(next: Option<&str>) -> Option<HeaderValue> {
    use axum::response::IntoResponse as _;
    let response = axum::response::Redirect::to(&crate::portal::safe_next(next)).into_response();
    response.headers().get(header::LOCATION).cloned()
}

/// A request as the request-policy input describes it (see `policies/README.md`).
pub struct Request<'a> {
    /// `create`, `update`, `destroy` or `extend`.
    pub action: &'static str,
    pub team: &'a str,
    pub environment: &'a str,
    pub blueprint_version: &'a str,
    pub current: Option<Json>,
    pub parameters: Json,
    pub expiry: Option<Json>,
    pub login: &'a str,
    pub platform_admin: bool,
    /// `reader`, `contributor` or `admin`; anything else is no role.
    pub team_role: Option<&'a str>,
    /// The team's environments that are not destroyed.
    pub environments: &'a [&'a str],
}

/// The request-policy input document the server builds for `request`.
pub fn request_policy_input(request: &Request<'_>) -> Json {
    let point = crate::api::RequestPoint {
        action: request.action,
        team: request.team,
        environment: request.environment,
        blueprint_version: request.blueprint_version,
        current: request.current.clone(),
        parameters: request.parameters.clone(),
        expiry: request.expiry.clone(),
    };
    let requester = crate::api::Requester {
        login: request.login,
        platform_admin: request.platform_admin,
        team_role: request.team_role.and_then(Role::parse),
    };
    crate::api::request_input(&point, &requester, request.environments)
}

/// Regressions: inputs the fuzz targets found, each with the property it broke.
#[cfg(test)]
mod tests {
    use super::*;

    /// `sign_in`: the redirect after sign-in stays on the server's origin as a browser
    /// resolves it (tabs and newlines dropped, `\` read as `/`), and never fails.
    #[test]
    fn the_redirect_after_sign_in_never_leaves_the_site_nor_fails() {
        let base = reqwest::Url::parse("https://paddock.example/sign-in").unwrap();
        for next in [
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\n/evil.example/x",
            "/\\evil.example",
            "/.\\\\evil.example",
            "//evil.example",
            "/é",
            "/a\u{7f}",
            "https://evil.example/",
        ] {
            let location = sign_in_redirect(Some(next)).expect("a Location: no 500");
            let location = location.to_str().expect("visible ASCII");
            let target = base.join(location).unwrap();
            assert_eq!(target.origin(), base.origin(), "{next:?} went to {target}");
        }
        let kept = "/teams/payments/environments/checkout?tab=drift%20x";
        assert_eq!(sign_in_redirect(Some(kept)).unwrap(), kept);
    }
}
