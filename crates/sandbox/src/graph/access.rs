//! Who may call Graph: the audiences its tokens may carry (Microsoft Graph's, and the
//! sandbox's own resource id), the bearer token checked with Graph's own refusals, each
//! application's request budget, and the one document served to anyone, `$metadata`.

use super::*;

/// Audiences Graph accepts in a token, besides the sandbox's own resource id
/// ([`resource_id`]).
pub(crate) const AUDIENCES: &[&str] = &[
    "https://graph.microsoft.com",
    "https://graph.microsoft.com/",
    "00000003-0000-0000-c000-000000000000",
];

/// The sandbox's Microsoft Graph as a resource: `{base}/graph/`. The cloud metadata
/// document names it `microsoftGraphResourceId`, which az uses both as Graph's root
/// (`{id}v1.0`) and as the resource of its tokens.
pub fn resource_id(base_url: &str) -> String {
    format!("{base_url}/graph/")
}

/// Whether `audience` names Microsoft Graph (with or without its trailing slash).
pub(crate) fn is_audience(base_url: &str, audience: &str) -> bool {
    let own = resource_id(base_url);
    AUDIENCES.contains(&audience) || audience == own || audience == own.trim_end_matches('/')
}

/// Graph's throttling: each application (a token's `appid`) gets so many requests in a
/// ten-second window, which starts with its first request.
pub(crate) struct Throttle {
    per_window: u32,
    /// By application: (window start, requests in it).
    windows: Mutex<HashMap<String, (i64, u32)>>,
}

const THROTTLE_WINDOW_MS: i64 = 10_000;

impl Throttle {
    pub(crate) fn per_10s(per_window: u32) -> Throttle {
        Throttle {
            per_window,
            windows: Mutex::default(),
        }
    }

    /// Counts a request of `app_id` at `now_ms`, or refuses it with the seconds until its
    /// window ends.
    pub(super) fn admit(&self, app_id: &str, now_ms: i64) -> Result<(), u64> {
        let mut windows = self.windows.lock().expect("throttle lock");
        let (start, used) = windows.entry(app_id.to_lowercase()).or_insert((now_ms, 0));
        if now_ms - *start >= THROTTLE_WINDOW_MS {
            (*start, *used) = (now_ms, 0);
        }
        if *used >= self.per_window {
            let left_ms = *start + THROTTLE_WINDOW_MS - now_ms;
            return Err(((left_ms + 999) / 1000).max(1) as u64);
        }
        *used += 1;
        Ok(())
    }
}

impl Graph {
    /// The caller's client id, from a valid Graph token; refusals worded as Graph words
    /// them.
    pub(super) fn authenticate(&self, headers: &HeaderMap) -> Result<String, GraphError> {
        let unauthorized =
            |m: &str| GraphError::new(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", m);
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthorized("Access token is empty."))?;
        let claims = match self.signer.verify(token, now_ms() / 1000) {
            Ok(claims) => claims,
            Err(TokenError::Malformed) if !token.contains('.') => {
                return Err(unauthorized(
                    "IDX14100: JWT is not well formed, there are no dots (.).\nThe token needs to be in JWS or JWE Compact Serialization Format. (JWS): 'EncodedHeader.EncodedPayload.EncodedSignature'. (JWE): 'EncodedProtectedHeader.EncodedEncryptedKey.EncodedInitializationVector.EncodedCiphertext.EncodedAuthenticationTag'.",
                ));
            }
            Err(TokenError::Malformed) => {
                return Err(unauthorized(
                    "IDX14102: Unable to decode the header '[PII of type 'Microsoft.IdentityModel.Logging.SecurityArtifact' is hidden. For more details, see https://aka.ms/IdentityModel/PII.]' as Base64Url encoded string.",
                ));
            }
            Err(TokenError::Expired) => {
                return Err(unauthorized(
                    "Lifetime validation failed, the token is expired.",
                ));
            }
            Err(TokenError::BadSignature) => {
                return Err(unauthorized("Access token validation failure."));
            }
        };
        if !claims["aud"]
            .as_str()
            .is_some_and(|a| is_audience(&self.base_url, a))
        {
            return Err(unauthorized(
                "Access token validation failure. Invalid audience.",
            ));
        }
        Ok(claims["appid"].as_str().unwrap_or_default().to_owned())
    }
}

/// `GET /v1.0/$metadata`: the CSDL of what the sandbox's Graph serves (the cut of the
/// official description its contract tests check it against).
pub(super) fn metadata() -> Response {
    (
        [(header::CONTENT_TYPE, "application/xml")],
        include_str!("../../specs/graph/graph-v1.0.csdl.xml"),
    )
        .into_response()
}
