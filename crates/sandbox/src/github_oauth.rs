//! GitHub's OAuth web flow for OAuth apps, where GitHub serves it: on the web host, next
//! to the API (`{base}/login/oauth/authorize` and `{base}/login/oauth/access_token`, with
//! the REST API at `{base}/api/v3`, GitHub Enterprise's layout). PKCE (`code_challenge`,
//! S256 only) is optional, as on GitHub; when a code was issued with a challenge, it is
//! redeemed only with the matching `code_verifier`.
//!
//! The token endpoint answers errors with `200 OK` and `{"error": ..., "error_description":
//! ..., "error_uri": ...}`, as GitHub does; JSON when the client accepts
//! `application/json`, a form otherwise. A user's OAuth token (`gho_…`) is kept as a
//! SHA-256 digest and authenticates `GET /api/v3/user` (see `github.rs`).
//!
//! Sign-in needs no password: `login=<github login>` signs that user in at once (scripts
//! and tests), otherwise a page lists the users to pick from.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Value, json};

use crate::documents::Documents;
use crate::signin::{Codes, Grant, Redeem, get, pairs, redirect, with_query};
use crate::{SandboxError, new_id, now_ms};

pub const AUTHORIZE: &str = "/login/oauth/authorize";
pub const ACCESS_TOKEN: &str = "/login/oauth/access_token";
/// Where GitHub keeps OAuth apps (the API's document space, shown on the control page).
const API: &str = "github";
const OAUTH_APP: &str = "oauthApp";
/// Users' OAuth tokens, by digest: the sandbox's own bookkeeping, never shown.
const TOKENS_API: &str = "sandbox";
const OAUTH_TOKEN: &str = "githubOAuthToken";
const TROUBLESHOOTING: &str = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors";
const AUTHORIZE_TROUBLESHOOTING: &str =
    "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors";

pub(crate) struct GitHubOAuth {
    pub docs: Documents,
    pub codes: Codes,
}

/// Registers an OAuth app with these callback URLs: its client id and (shown once) secret.
pub(crate) async fn register_app(
    docs: &Documents,
    name: &str,
    callback_urls: &[String],
) -> Result<(String, String), SandboxError> {
    // Shaped as GitHub's: `Ov23li` and 14 more characters; a 40-hex-digit secret.
    let client_id = format!("Ov23li{}", &new_id()[..14]);
    let secret = format!("{}{}", new_id(), &new_id()[..8]);
    docs.put(
        API,
        OAUTH_APP,
        &client_id,
        &json!({
            "client_id": client_id,
            "name": name,
            "callback_urls": callback_urls,
            "secret_sha256": crate::graph::secret_digest(&secret),
            "created_at": crate::rfc3339(now_ms()),
        }),
    )
    .await?;
    Ok((client_id, secret))
}

/// The login a user's OAuth token belongs to, if it is one.
pub(crate) async fn token_login(
    docs: &Documents,
    token: &str,
) -> Result<Option<String>, SandboxError> {
    if !token.starts_with("gho_") {
        return Ok(None);
    }
    let digest = crate::graph::secret_digest(token);
    Ok(docs
        .get(TOKENS_API, OAUTH_TOKEN, &digest)
        .await?
        .and_then(|t| t["login"].as_str().map(str::to_owned)))
}

/// `scheme://authority` and the path of a URL (query and fragment dropped).
fn split_url(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let slash = rest.find('/').unwrap_or(rest.len());
    Some((&url[..scheme.len() + 3 + slash], &rest[slash..]))
}

/// GitHub's rule: the redirect URI's scheme, host and port equal the callback URL's and
/// its path is the callback's path or beneath it.
fn redirect_allowed(callback: &str, redirect_uri: &str) -> bool {
    let (Some((origin, path)), Some((given_origin, given_path))) =
        (split_url(callback), split_url(redirect_uri))
    else {
        return false;
    };
    let path = path.trim_end_matches('/');
    origin.eq_ignore_ascii_case(given_origin)
        && (given_path.trim_end_matches('/') == path || given_path.starts_with(&format!("{path}/")))
}

fn not_found_page() -> Response {
    (
        StatusCode::NOT_FOUND,
        Html("<!doctype html><html><body><h1>404</h1><p>This is not the web page you are looking for.</p></body></html>"),
    )
        .into_response()
}

/// `GET /login/oauth/authorize`.
pub(crate) async fn authorize(State(oauth): State<Arc<GitHubOAuth>>, uri: Uri) -> Response {
    let query = pairs(uri.query().unwrap_or_default());
    let Some(client_id) = get(&query, "client_id") else {
        return not_found_page();
    };
    let app = match oauth.docs.get(API, OAUTH_APP, client_id).await {
        Ok(app) => app,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    // An unknown application gets GitHub's 404 page.
    let Some(app) = app else {
        return not_found_page();
    };
    let callbacks: Vec<&str> = app["callback_urls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let Some(&callback) = callbacks.first() else {
        return not_found_page();
    };
    let state = get(&query, "state");
    // Errors go back to the client with `state`; a redirect URI that is not allowed is
    // reported to the registered callback instead.
    let refuse = |to: &str, error: &str, description: &str, anchor: &str| {
        let error_uri = format!("{AUTHORIZE_TROUBLESHOOTING}#{anchor}");
        let mut params = vec![
            ("error", error),
            ("error_description", description),
            ("error_uri", error_uri.as_str()),
        ];
        if let Some(state) = state {
            params.push(("state", state));
        }
        redirect(&with_query(to, &params))
    };
    let redirect_uri = match get(&query, "redirect_uri") {
        None => callback.to_owned(),
        Some(uri) if callbacks.iter().any(|c| redirect_allowed(c, uri)) => uri.to_owned(),
        Some(_) => {
            return refuse(
                callback,
                "redirect_uri_mismatch",
                "The redirect_uri MUST match the registered callback URL for this application.",
                "redirect-uri-mismatch",
            );
        }
    };
    let challenge = get(&query, "code_challenge");
    if challenge.is_some() && get(&query, "code_challenge_method") != Some("S256") {
        return refuse(
            &redirect_uri,
            "invalid_request",
            "code_challenge_method must be S256: the plain method is not supported.",
            "invalid-request",
        );
    }
    let users = match oauth.docs.values(API, "user", "").await {
        Ok(users) => users,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let login_of = |u: &Value| u["login"].as_str().unwrap_or_default().to_owned();
    let people: Vec<(String, String)> = users
        .iter()
        .map(|u| {
            let label = match u["name"].as_str() {
                Some(name) if name != login_of(u) => format!("{} ({name})", login_of(u)),
                _ => login_of(u),
            };
            (login_of(u), label)
        })
        .collect();
    let title = format!(
        "Sign in to GitHub to continue to {}",
        app["name"].as_str().unwrap_or_default()
    );
    let Some(login) = get(&query, "login") else {
        return crate::signin::picker(&title, None, &query, "login", &people);
    };
    let Some(user) = users
        .iter()
        .find(|u| login_of(u).eq_ignore_ascii_case(login))
    else {
        let notice = format!("There is no GitHub user '{login}'.");
        return crate::signin::picker(&title, Some(&notice), &query, "login", &people);
    };
    let code = oauth.codes.issue(Grant {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.clone(),
        code_challenge: challenge.map(str::to_owned),
        user: login_of(user),
        nonce: None,
        scope: get(&query, "scope").unwrap_or_default().to_owned(),
        issued_ms: now_ms(),
    });
    let mut params = vec![("code", code.as_str())];
    if let Some(state) = state {
        params.push(("state", state));
    }
    redirect(&with_query(&redirect_uri, &params))
}

/// The token endpoint's answer, in the format the client accepts: JSON, or (GitHub's
/// default) a form.
fn answer(json_wanted: bool, body: Value) -> Response {
    if json_wanted {
        return axum::Json(body).into_response();
    }
    let form: Vec<String> = body
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                crate::signin::encode(v.as_str().unwrap_or_default())
            )
        })
        .collect();
    (
        [(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=utf-8",
        )],
        form.join("&"),
    )
        .into_response()
}

/// `POST /login/oauth/access_token`: the parameters in a form, JSON, or the query.
pub(crate) async fn access_token(
    State(oauth): State<Arc<GitHubOAuth>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json_wanted = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"));
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.contains("json"));
    let mut params = pairs(uri.query().unwrap_or_default());
    if is_json {
        let request: Value = serde_json::from_slice(&body).unwrap_or_default();
        for (k, v) in request.as_object().into_iter().flatten() {
            if let Some(v) = v.as_str() {
                params.push((k.clone(), v.to_owned()));
            }
        }
    } else {
        params.extend(pairs(&String::from_utf8_lossy(&body)));
    }
    let refuse = |error: &str, description: &str, anchor: &str| {
        answer(
            json_wanted,
            json!({"error": error, "error_description": description, "error_uri": format!("{TROUBLESHOOTING}#{anchor}")}),
        )
    };
    let bad_credentials = || {
        refuse(
            "incorrect_client_credentials",
            "The client_id and/or client_secret passed are incorrect.",
            "incorrect-client-credentials",
        )
    };
    let (Some(client_id), Some(secret)) =
        (get(&params, "client_id"), get(&params, "client_secret"))
    else {
        return bad_credentials();
    };
    let app = match oauth.docs.get(API, OAUTH_APP, client_id).await {
        Ok(app) => app,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    if !app.is_some_and(|a| a["secret_sha256"] == json!(crate::graph::secret_digest(secret))) {
        return bad_credentials();
    }
    let bad_code = |description: &str| {
        refuse(
            "bad_verification_code",
            description,
            "bad-verification-code",
        )
    };
    let grant = match oauth.codes.redeem(get(&params, "code").unwrap_or_default()) {
        Ok(grant) if grant.client_id == client_id => grant,
        Ok(_) | Err(Redeem::Unknown | Redeem::Expired | Redeem::AlreadyRedeemed) => {
            return bad_code("The code passed is incorrect or expired.");
        }
    };
    if get(&params, "redirect_uri").is_some_and(|r| r != grant.redirect_uri) {
        return refuse(
            "redirect_uri_mismatch",
            "The redirect_uri MUST match the registered callback URL for this application.",
            "redirect-uri-mismatch",
        );
    }
    if let Some(challenge) = &grant.code_challenge {
        let verifier = get(&params, "code_verifier").unwrap_or_default();
        if !crate::signin::verifier_matches(verifier, challenge) {
            return bad_code(
                "The code passed is incorrect or expired: the code_verifier does not match the code_challenge of the authorization request.",
            );
        }
    }
    let token = format!("gho_{}", &format!("{}{}", new_id(), new_id())[..36]);
    // GitHub writes granted scopes comma-separated.
    let scope = grant
        .scope
        .split([' ', ','])
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(",");
    let stored = json!({"login": grant.user, "client_id": client_id, "scope": scope, "created_at": crate::rfc3339(now_ms())});
    if let Err(e) = oauth
        .docs
        .put(
            TOKENS_API,
            OAUTH_TOKEN,
            &crate::graph::secret_digest(&token),
            &stored,
        )
        .await
    {
        return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
    }
    answer(
        json_wanted,
        json!({"access_token": token, "token_type": "bearer", "scope": scope}),
    )
}

#[cfg(test)]
mod tests {
    use super::redirect_allowed;

    #[test]
    fn redirect_uris_follow_githubs_rule() {
        let cb = "http://127.0.0.1:8080/auth/callback";
        assert!(redirect_allowed(cb, "http://127.0.0.1:8080/auth/callback"));
        assert!(redirect_allowed(
            cb,
            "http://127.0.0.1:8080/auth/callback/github?x=1"
        ));
        assert!(!redirect_allowed(
            cb,
            "http://127.0.0.1:8080/auth/callbackx"
        ));
        assert!(!redirect_allowed(cb, "http://127.0.0.1:8081/auth/callback"));
        assert!(!redirect_allowed(
            cb,
            "https://127.0.0.1:8080/auth/callback"
        ));
        assert!(!redirect_allowed(cb, "http://evil.example/auth/callback"));
    }
}
