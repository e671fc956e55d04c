//! Signing in and out: local accounts (argon2), one-time sign-in links, and identity
//! providers (OpenID Connect authorization code + PKCE, or GitHub's OAuth), each ending in
//! a session cookie (HttpOnly, SameSite=Lax, Secure behind HTTPS).
//!
//! Forms carry CSRF tokens: the sign-in form a double-submitted random cookie, the
//! sign-out form the session's own token. A pending identity-provider sign-in (its state,
//! nonce and PKCE verifier) is kept in the database, so the callback may reach any replica.

use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Form, Path, Query};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use paddock_store::db::{self, NewAudit, now_ms};
use serde::Deserialize;

use crate::AppState;
use crate::auth::{self, Caller};
use crate::problem::Problem;

const SESSION_HOURS: i64 = 12;
const FORM_COOKIE: &str = "paddock_form";

type State = axum::extract::State<Arc<AppState>>;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/sign-in", get(page).post(local))
        .route("/sign-in/link/{token}", get(link))
        .route("/sign-in/provider/{name}", get(begin))
        .route("/sign-in/provider/{name}/callback", get(callback))
        .route("/sign-out", post(sign_out))
}

fn secure(state: &AppState) -> bool {
    state.public_url.starts_with("https://")
}

#[derive(Deserialize)]
struct PageQuery {
    next: Option<String>,
}

async fn page(axum::extract::State(state): State, Query(q): Query<PageQuery>) -> Response {
    sign_in_form(&state, q.next.as_deref(), "", "")
}

/// The sign-in page with a fresh double-submit token (cookie and hidden field).
fn sign_in_form(state: &AppState, next: Option<&str>, error: &str, login: &str) -> Response {
    let form_token = auth::random_secret();
    let mut response = crate::portal::sign_in_page(state, &form_token, next, error, login);
    let cookie = format!(
        "{FORM_COOKIE}={form_token}; Path=/sign-in; HttpOnly; SameSite=Strict; Max-Age=3600{}",
        if secure(state) { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

#[derive(Deserialize)]
struct LocalForm {
    login: String,
    password: String,
    csrf_token: String,
    #[serde(default)]
    next: Option<String>,
}

async fn local(
    axum::extract::State(state): State,
    ConnectInfo(addr): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LocalForm>,
) -> Result<Response, Problem> {
    if auth::cookie(&headers, FORM_COOKIE) != Some(form.csrf_token.as_str())
        || form.csrf_token.is_empty()
    {
        return Err(Problem::forbidden(
            "the sign-in form's CSRF token is missing or does not match; reload the sign-in page",
        ));
    }
    if !state.config.local_accounts() {
        return Err(Problem::forbidden(
            "local accounts are turned off on this server",
        ));
    }
    let source = addr.ip().to_string();
    let found = state.db.password_of(&form.login).await?;
    let user = match found {
        Some((user, hash)) if auth::verify_password(&form.password, &hash) => user,
        _ => {
            // Run the hash anyway so timing does not tell which logins exist.
            let _ = auth::verify_password(
                &form.password,
                "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            );
            let mut tx = state.db.write().await?;
            tx.append_audit(
                &NewAudit {
                    actor: &form.login.chars().take(64).collect::<String>(),
                    source: &source,
                    action: "session.create",
                    target: "sessions",
                    team: None,
                    environment: None,
                    outcome: "denied",
                    detail: &serde_json::json!({"method": "password", "reason": "wrong login or password"}),
                },
                now_ms(),
            )
            .await?;
            tx.commit().await?;
            if wants_html(&headers) {
                return Ok(sign_in_form(
                    &state,
                    form.next.as_deref(),
                    "Wrong login or password.",
                    &form.login,
                ));
            }
            return Err(Problem::unauthorized("wrong login or password"));
        }
    };
    let next = crate::portal::safe_next(form.next.as_deref());
    start_session(&state, &user, &source, "password", &next).await
}

/// Makes a session for `user` and sends them to `next` (a local path) with its cookie.
async fn start_session(
    state: &AppState,
    user: &db::User,
    source: &str,
    method: &str,
    next: &str,
) -> Result<Response, Problem> {
    let secret = auth::random_secret();
    let csrf = auth::random_secret();
    let now = now_ms();
    let mut tx = state.db.write().await?;
    tx.insert_session(
        &auth::digest(&secret),
        &user.id,
        &csrf,
        now,
        now + SESSION_HOURS * 3_600_000,
    )
    .await?;
    tx.append_audit(
        &NewAudit {
            actor: &user.login,
            source,
            action: "session.create",
            target: "sessions",
            team: None,
            environment: None,
            outcome: "allowed",
            detail: &serde_json::json!({"method": method}),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    let mut response = Redirect::to(next).into_response();
    let cookie = auth::session_cookie(&secret, SESSION_HOURS * 3600, secure(state));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

async fn link(
    axum::extract::State(state): State,
    ConnectInfo(addr): ConnectInfo<std::net::SocketAddr>,
    Path(token): Path<String>,
) -> Result<Response, Problem> {
    let mut tx = state.db.write().await?;
    let user = tx.use_sign_in_link(&auth::digest(&token), now_ms()).await?;
    tx.commit().await?;
    match user {
        // The first-start link lands on the page that says what to do next.
        Some(user) => {
            start_session(
                &state,
                &user,
                &addr.ip().to_string(),
                "sign-in link",
                "/welcome",
            )
            .await
        }
        // The sign-in page with the reason, at this address: a redirect to the page would
        // carry the link's token into its query string.
        None => Ok(sign_in_form(
            &state,
            None,
            "This sign-in link was used already or has expired; sign in another way, or ask \
             a platform admin for a new one.",
            "",
        )),
    }
}

fn redirect_uri(state: &AppState, name: &str) -> String {
    format!("{}/sign-in/provider/{name}/callback", state.public_url)
}

async fn begin(
    axum::extract::State(state): State,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    let provider = state
        .identity_providers
        .iter()
        .find(|p| p.name() == name)
        .ok_or_else(|| Problem::not_found(format!("identity provider `{name}`")))?;
    let (url, pending) = provider
        .begin(&redirect_uri(&state, &name))
        .await
        .map_err(|e| Problem::new(StatusCode::BAD_GATEWAY, "identity-provider", e.to_string()))?;
    let data = serde_json::to_string(&pending).unwrap_or_default();
    let mut tx = state.db.write().await?;
    tx.insert_pending_sign_in(&pending.state, &name, &data, now_ms() + 10 * 60_000)
        .await?;
    tx.commit().await?;
    Ok(Redirect::to(&url).into_response())
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn callback(
    axum::extract::State(state): State,
    ConnectInfo(addr): ConnectInfo<std::net::SocketAddr>,
    Path(name): Path<String>,
    Query(q): Query<CallbackQuery>,
) -> Result<Response, Problem> {
    if let Some(error) = q.error {
        return Err(Problem::unauthorized(format!(
            "the identity provider refused the sign-in: {error}{}",
            q.error_description
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        )));
    }
    let (Some(code), Some(sign_in_state)) = (q.code, q.state) else {
        return Err(Problem::bad_request(
            "the callback needs `code` and `state`",
        ));
    };
    let mut tx = state.db.write().await?;
    let pending = tx.take_pending_sign_in(&sign_in_state, now_ms()).await?;
    tx.commit().await?;
    let Some((provider_name, data)) = pending.filter(|(p, _)| *p == name) else {
        return Err(Problem::unauthorized(
            "this sign-in was not started here, was finished already, or took over 10 minutes; start again",
        ));
    };
    let provider = state
        .identity_providers
        .iter()
        .find(|p| p.name() == provider_name)
        .ok_or_else(|| Problem::not_found(format!("identity provider `{name}`")))?;
    let pending: crate::oidc::PendingSignIn = serde_json::from_str(&data)
        .map_err(|e| Problem::internal(format!("pending sign-in unreadable: {e}")))?;
    let identity = provider
        .finish(&pending, &code, &redirect_uri(&state, &name))
        .await
        .map_err(|e| Problem::unauthorized(format!("signing in with {name} failed: {e}")))?;
    let source = addr.ip().to_string();
    let user = match state
        .db
        .user_by_oidc(&identity.issuer, &identity.subject)
        .await?
    {
        Some(user) => user,
        None => {
            let login = identity
                .login
                .split('@')
                .next()
                .unwrap_or(&identity.login)
                .to_owned();
            let mut errors = Vec::new();
            crate::views::check_login("login", &login, &mut errors);
            if !errors.is_empty() {
                return Err(Problem::unauthorized(format!(
                    "the identity provider's user name `{login}` cannot be a Paddock login"
                )));
            }
            if state.db.user_by_login(&login).await?.is_some() {
                return Err(Problem::conflict(format!(
                    "a Paddock account `{login}` exists and is not linked to this {name} account; \
                     a platform admin can link them"
                )));
            }
            let user = db::User {
                id: auth::new_id("u"),
                login: login.clone(),
                name: identity.name.clone(),
                email: identity.email.clone(),
                platform_admin: false,
                created_at: now_ms(),
            };
            let mut tx = state.db.write().await?;
            tx.insert_user(&db::NewUser {
                id: &user.id,
                login: &user.login,
                name: &user.name,
                email: user.email.as_deref(),
                platform_admin: false,
                password_hash: None,
                oidc: Some((&identity.issuer, &identity.subject)),
                created_at: user.created_at,
            })
            .await?;
            tx.append_audit(
                &NewAudit {
                    actor: &user.login,
                    source: &source,
                    action: "user.create",
                    target: &format!("users/{}", user.login),
                    team: None,
                    environment: None,
                    outcome: "allowed",
                    detail: &serde_json::json!({"identityProvider": name, "issuer": identity.issuer}),
                },
                now_ms(),
            )
            .await?;
            tx.commit().await?;
            state.new_person(&user.login).await;
            user
        }
    };
    start_session(&state, &user, &source, &name, "/").await
}

#[derive(Deserialize)]
struct SignOutForm {
    csrf_token: String,
}

async fn sign_out(
    axum::extract::State(state): State,
    headers: HeaderMap,
    Form(form): Form<SignOutForm>,
) -> Result<Response, Problem> {
    let caller: Option<Caller> = auth::authenticate(&state.db, &headers).await?;
    if let Some(caller) = caller
        && let auth::Credential::Session { digest, .. } = &caller.credential
    {
        auth::check_csrf(
            &caller,
            &axum::http::Method::POST,
            &headers,
            Some(&form.csrf_token),
        )?;
        let mut tx = state.db.write().await?;
        tx.delete_session(digest).await?;
        tx.commit().await?;
    }
    let mut response = Redirect::to("/sign-in").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("paddock_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    Ok(response)
}

/// Whether a browser sent the request (it accepts HTML).
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"))
}
