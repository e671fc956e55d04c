//! What the emulated sign-in flows share (Entra's authorization code flow and GitHub's
//! OAuth web flow): the one-use authorization codes, the PKCE check, query parsing, the
//! user-picker page, and the registration of a sign-in application with both.
//!
//! Invariants: a code is redeemed at most once and within ten minutes; it is bound to the
//! client, the redirect URI and the PKCE challenge it was issued for. Codes live in
//! memory only: a restart signs everyone out mid-flow, as a short-lived code would.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::documents::Documents;
use crate::{SandboxError, new_id, now_ms, percent_decode};

/// How long an authorization code may wait to be redeemed, as both Entra and GitHub allow.
pub const CODE_LIFETIME_MS: i64 = 10 * 60 * 1000;

/// What a code was issued for: checked again when it is redeemed.
#[derive(Clone, Debug)]
pub(crate) struct Grant {
    pub client_id: String,
    pub redirect_uri: String,
    /// The S256 challenge, if the client sent one.
    pub code_challenge: Option<String>,
    /// Who signed in: a directory user's object id, or a GitHub login.
    pub user: String,
    pub nonce: Option<String>,
    pub scope: String,
    pub issued_ms: i64,
}

/// Why a code cannot be redeemed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Redeem {
    Unknown,
    Expired,
    AlreadyRedeemed,
}

/// The outstanding codes. A redeemed code is remembered (until it would have expired) so a
/// second use can be told apart from a made-up one, as Entra's errors do.
#[derive(Default)]
pub(crate) struct Codes {
    codes: Mutex<HashMap<String, (Grant, bool)>>,
}

impl Codes {
    /// Issues a fresh code for `grant`.
    pub fn issue(&self, grant: Grant) -> String {
        let code = format!("{}{}", new_id(), new_id());
        let now = now_ms();
        let mut codes = self.codes.lock().expect("codes lock");
        codes.retain(|_, (g, _)| now - g.issued_ms < CODE_LIFETIME_MS);
        codes.insert(code.clone(), (grant, false));
        code
    }

    /// Takes the code: from now on it is spent, whether or not the caller's other checks
    /// pass (a code shown to the wrong party is burnt, as OAuth recommends).
    pub fn redeem(&self, code: &str) -> Result<Grant, Redeem> {
        let mut codes = self.codes.lock().expect("codes lock");
        let Some((grant, spent)) = codes.get_mut(code) else {
            return Err(Redeem::Unknown);
        };
        if now_ms() - grant.issued_ms >= CODE_LIFETIME_MS {
            return Err(Redeem::Expired);
        }
        if *spent {
            return Err(Redeem::AlreadyRedeemed);
        }
        *spent = true;
        Ok(grant.clone())
    }
}

/// The S256 challenge of a PKCE verifier: base64url(SHA-256(verifier)), unpadded.
pub fn s256(verifier: &str) -> String {
    B64URL.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `verifier` is one RFC 7636 allows (43–128 unreserved characters) and hashes
/// to `challenge`.
pub(crate) fn verifier_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    well_formed && s256(verifier) == challenge
}

/// `application/x-www-form-urlencoded` pairs: a query string or a form body.
pub(crate) fn pairs(encoded: &str) -> Vec<(String, String)> {
    encoded
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            // `+` is a space: replaced before decoding, so `%2B` stays a plus.
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

/// The first value of `name`.
pub(crate) fn get<'p>(pairs: &'p [(String, String)], name: &str) -> Option<&'p str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
pub(crate) fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `uri` with `params` appended to its query.
pub(crate) fn with_query(uri: &str, params: &[(&str, &str)]) -> String {
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{}", query.join("&"))
}

/// A `302 Found` to `location`.
pub(crate) fn redirect(location: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        axum::http::StatusCode::FOUND,
        [
            (axum::http::header::LOCATION, location.to_owned()),
            (axum::http::header::CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response()
}

pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The sign-in page: one button per person, each a GET back to the same endpoint with the
/// original query and `field` (`login_hint` or `login`) set to that person, so the
/// browser flow ends exactly where the scripted one (`field` given up front) does.
pub(crate) fn picker(
    title: &str,
    notice: Option<&str>,
    query: &[(String, String)],
    field: &str,
    people: &[(String, String)],
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font-family:system-ui,sans-serif;margin:2rem}}button{{display:block;margin:.3rem 0;padding:.4rem 1rem}}</style>\
         </head><body><h1>{t}</h1>",
        t = escape(title)
    );
    if let Some(notice) = notice {
        html.push_str(&format!("<p><strong>{}</strong></p>", escape(notice)));
    }
    html.push_str("<p>Pick who signs in (sandbox: no password).</p><form method=\"get\">");
    for (k, v) in query.iter().filter(|(k, _)| k != field) {
        html.push_str(&format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            escape(k),
            escape(v)
        ));
    }
    if people.is_empty() {
        html.push_str("<p>No one exists yet: add people through the control API (<code>POST /people</code>).</p>");
    }
    for (value, label) in people {
        html.push_str(&format!(
            "<button type=\"submit\" name=\"{}\" value=\"{}\">{}</button>",
            escape(field),
            escape(value),
            escape(label)
        ));
    }
    html.push_str("</form></body></html>");
    let mut response = axum::response::Html(html).into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

/// A sign-in application registered with the sandbox's Entra tenant.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntraSignInApp {
    /// The OpenID Connect issuer (`{base}/{tenant}/v2.0`): discovery is under it.
    pub issuer: String,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
}

/// An OAuth app registered with the sandbox's GitHub.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GitHubOAuthApp {
    /// GitHub's web root: OAuth is at `{base_url}/login/oauth/...`.
    pub base_url: String,
    pub authorize_url: String,
    pub token_url: String,
    /// The REST API root (`{base_url}/api/v3`): `GET {api_url}/user` names the user.
    pub api_url: String,
    pub client_id: String,
    pub client_secret: String,
}

/// The same sign-in application, registered with both identity providers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SignInApps {
    pub entra: EntraSignInApp,
    pub github: GitHubOAuthApp,
}

/// Registers a sign-in application that may redirect to `redirect_uris`: an Entra
/// application (through the Graph functions every registration takes, with
/// `web.redirectUris`, a service principal and a client secret) and a GitHub OAuth app.
///
/// Registered once per set of redirect URIs, then kept and handed out again: Entra's
/// `sub` is per application, so a server that registered afresh at each start would see
/// its people as strangers.
pub(crate) async fn register(
    docs: &Documents,
    base_url: &str,
    tenant_id: &str,
    redirect_uris: &[String],
) -> Result<SignInApps, SandboxError> {
    let mut sorted = redirect_uris.to_vec();
    sorted.sort();
    sorted.dedup();
    let key = crate::graph::secret_digest(&sorted.join("\n"));
    if let Some(kept) = docs.get("sandbox", "signInApps", &key).await? {
        return serde_json::from_value(kept).map_err(|e| SandboxError::Database(e.to_string()));
    }
    let apps = register_new(docs, base_url, tenant_id, redirect_uris).await?;
    docs.put(
        "sandbox",
        "signInApps",
        &key,
        &serde_json::to_value(&apps).expect("serializable"),
    )
    .await?;
    Ok(apps)
}

async fn register_new(
    docs: &Documents,
    base_url: &str,
    tenant_id: &str,
    redirect_uris: &[String],
) -> Result<SignInApps, SandboxError> {
    let app = crate::graph::create_application(
        docs,
        json!({
            "displayName": "paddock-sign-in",
            "web": {"redirectUris": redirect_uris, "implicitGrantSettings": {"enableIdTokenIssuance": false, "enableAccessTokenIssuance": false}},
        }),
    )
    .await?;
    let password =
        crate::graph::add_password(docs, app["id"].as_str().unwrap_or_default(), "sign-in").await?;
    crate::graph::create_service_principal(docs, &app).await?;
    let entra = EntraSignInApp {
        issuer: crate::entra::issuer(base_url, tenant_id),
        tenant_id: tenant_id.to_owned(),
        client_id: app["appId"].as_str().unwrap_or_default().to_owned(),
        client_secret: password["secretText"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    };
    let (client_id, client_secret) =
        crate::github_oauth::register_app(docs, "paddock-sign-in", redirect_uris).await?;
    let github = GitHubOAuthApp {
        base_url: base_url.to_owned(),
        authorize_url: format!("{base_url}{}", crate::github_oauth::AUTHORIZE),
        token_url: format!("{base_url}{}", crate::github_oauth::ACCESS_TOKEN),
        api_url: format!("{base_url}{}", crate::github::ROOT),
        client_id,
        client_secret,
    };
    Ok(SignInApps { entra, github })
}

/// Control API state for `POST /sign-in-apps`.
pub(crate) struct Registrar {
    pub docs: Documents,
    pub base_url: String,
    pub tenant_id: String,
}

/// `POST /sign-in-apps` `{"redirectUris": [...]}`: see [`register`].
pub(crate) async fn register_route(
    axum::extract::State(registrar): axum::extract::State<std::sync::Arc<Registrar>>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let request: Value = serde_json::from_slice(&body).unwrap_or_default();
    let uris: Option<Vec<String>> = request["redirectUris"].as_array().and_then(|a| {
        a.iter()
            .map(|u| u.as_str().filter(|u| is_absolute(u)).map(str::to_owned))
            .collect()
    });
    let Some(uris) = uris.filter(|u| !u.is_empty()) else {
        let body = json!({"type": "about:blank", "title": "Invalid sign-in application", "status": 400,
            "detail": "redirectUris: required, a non-empty array of absolute http(s) URLs"});
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    };
    match register(
        &registrar.docs,
        &registrar.base_url,
        &registrar.tenant_id,
        &uris,
    )
    .await
    {
        Ok(apps) => (StatusCode::CREATED, axum::Json(apps)).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn is_absolute(uri: &str) -> bool {
    (uri.starts_with("http://") || uri.starts_with("https://")) && !uri.contains('#')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_is_base64url_sha256() {
        assert_eq!(
            s256("0123456789abcdefghijklmnopqrstuvwxyz-._~ABC"),
            "uboYUqpnBOR-hxVhitFnHJWVZvvO5dnnRhVNTp7LpnU"
        );
        assert!(verifier_matches(
            "0123456789abcdefghijklmnopqrstuvwxyz-._~ABC",
            "uboYUqpnBOR-hxVhitFnHJWVZvvO5dnnRhVNTp7LpnU"
        ));
        assert!(!verifier_matches(
            "short",
            "uboYUqpnBOR-hxVhitFnHJWVZvvO5dnnRhVNTp7LpnU"
        ));
    }

    #[test]
    fn a_code_is_redeemed_once() {
        let codes = Codes::default();
        let code = codes.issue(Grant {
            client_id: "c".into(),
            redirect_uri: "http://x/cb".into(),
            code_challenge: None,
            user: "u".into(),
            nonce: None,
            scope: "openid".into(),
            issued_ms: now_ms(),
        });
        assert!(codes.redeem(&code).is_ok());
        assert_eq!(codes.redeem(&code).unwrap_err(), Redeem::AlreadyRedeemed);
        assert_eq!(codes.redeem("nope").unwrap_err(), Redeem::Unknown);
    }
}
