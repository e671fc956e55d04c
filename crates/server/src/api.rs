//! The REST API under `/api/v1`, plus health, metrics and the OpenAPI document.
//!
//! Every handler follows one shape: resolve the caller ([`Ctx`]), parse the body
//! ([`Body`]: 4xx problem+json naming the field), decide with [`crate::policy`] through
//! [`AppState::authorize`] (a denied change is audited and answered 403), validate, then
//! write the change, its operation and its audit record in one [`WriteTx`].
//!
//! Conflicts: an environment (or a team) runs one operation at a time. A request for
//! another while one is queued or running is refused with 409 naming the operation in the
//! way (`operation` in the problem); cancel it or wait for it. Requests are not queued
//! behind each other, so nobody's change runs on a state they did not see.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use paddock_platform::{QuotaSize, Stage};
use paddock_store::db::{self, NewAudit, Remembered, WriteTx, now_ms};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::auth::{self, Caller};
use crate::policy::{self, Action, Role, Scope};
use crate::problem::{FieldError, Problem};
use crate::views::*;
use crate::{AppState, events, openapi, sign_in};

type State = axum::extract::State<Arc<AppState>>;
type ApiResult<T = Response> = Result<T, Problem>;

pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/me", get(me))
        .route("/me/tokens", get(list_tokens).post(create_token))
        .route("/me/tokens/{id}", delete(revoke_token))
        .route("/users", get(list_users).post(create_user))
        .route("/teams", get(list_teams).post(create_team))
        .route("/teams/{team}", get(show_team))
        .route(
            "/teams/{team}/members/{login}",
            put(set_member).delete(remove_member),
        )
        .route("/teams/{team}/operations", get(team_operations))
        .route("/blueprints", get(list_blueprints))
        .route("/blueprints/{name}/versions/{version}", get(show_blueprint))
        .route(
            "/teams/{team}/environments",
            get(list_environments).post(create_environment),
        )
        .route("/teams/{team}/environments/{env}", get(show_environment))
        .route(
            "/teams/{team}/environments/{env}/operations",
            get(environment_operations).post(create_operation),
        )
        .route("/teams/{team}/environments/{env}/outputs", get(outputs))
        .route("/teams/{team}/environments/{env}/resources", get(resources))
        .route(
            "/teams/{team}/environments/{env}/events",
            get(events::environment_events),
        )
        .route("/operations/{id}", get(show_operation))
        .route("/operations/{id}/events", get(events::operation_events))
        .route("/operations/{id}/cancel", post(cancel_operation))
        .route("/operations/{id}/retry", post(retry_operation))
        .route("/audit", get(list_audit))
        .route("/audit/export", get(export_audit))
        .route("/audit/verify", get(verify_audit))
        .route("/openapi.json", get(openapi::document))
        .fallback(|| async { Problem::not_found("this API path") });
    let max_body = state.config.max_body_bytes();
    Router::new()
        .nest("/api/v1", api)
        .merge(sign_in::router())
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(crate::metrics::render))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Request ids, access logs and HTTP metrics.
async fn observe(axum::extract::State(state): State, mut request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 64 && v.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| auth::new_id("req"));
    request.extensions_mut().insert(RequestId(id.clone()));
    let method = request.method().clone();
    // The path without its query, which may carry a sign-in code.
    let path = request.uri().path().to_owned();
    let mut response = next.run(request).await;
    let status = response.status().as_u16();
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    let elapsed = started.elapsed();
    state.metrics.http(method.as_str(), status, elapsed);
    let route = if path.starts_with("/sign-in/link/") {
        "/sign-in/link/…"
    } else {
        path.as_str()
    };
    tracing::info!(
        request_id = %id, method = %method, path = %route, status,
        ms = elapsed.as_millis() as u64, "request"
    );
    response
}

#[derive(Clone)]
struct RequestId(String);

async fn readyz(axum::extract::State(state): State) -> Response {
    if !state.ready.load(Ordering::SeqCst) || state.shutdown.is_cancelled() {
        return Problem::unavailable("starting or stopping").into_response();
    }
    match state.db.ping().await {
        Ok(()) => "ready".into_response(),
        Err(e) => {
            Problem::unavailable(format!("the database does not answer: {e}")).into_response()
        }
    }
}

/// Who is asking, from where.
pub struct Ctx {
    pub caller: Option<Caller>,
    pub source: String,
    pub request_id: String,
    pub idempotency_key: Option<String>,
}

impl Ctx {
    /// The caller, or 401.
    pub fn caller(&self) -> ApiResult<&Caller> {
        self.caller.as_ref().ok_or_else(|| {
            Problem::unauthorized(
                "sign in, or send an API token as `Authorization: Bearer <token>`",
            )
        })
    }
}

impl FromRequestParts<Arc<AppState>> for Ctx {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> ApiResult<Ctx> {
        let caller = auth::authenticate(&state.db, &parts.headers).await?;
        if let Some(c) = &caller {
            auth::check_csrf(c, &parts.method, &parts.headers, None)?;
        }
        let source = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string())
            .unwrap_or_else(|| "unknown".into());
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        let idempotency_key = match parts.headers.get("idempotency-key") {
            None => None,
            Some(v) => {
                let key = v.to_str().ok().filter(|k| !k.is_empty() && k.len() <= 255);
                Some(
                    key.ok_or_else(|| {
                        Problem::bad_request(
                            "the Idempotency-Key header must be 1 to 255 visible characters",
                        )
                    })?
                    .to_owned(),
                )
            }
        };
        Ok(Ctx {
            caller,
            source,
            request_id,
            idempotency_key,
        })
    }
}

/// A JSON body, refused with a problem that names the field at fault.
pub struct Body<T> {
    pub value: T,
    /// The bytes, for idempotency fingerprints.
    pub raw: Bytes,
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> ApiResult<Body<T>> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                let v = v.split(';').next().unwrap_or("").trim();
                v == "application/json" || v.ends_with("+json")
            });
        if !json {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "the body must be JSON, sent with `Content-Type: application/json`",
            ));
        }
        let raw = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body-too-large",
                    "the body is larger than this server accepts",
                )
            } else {
                Problem::bad_request(format!("the body could not be read: {e}"))
            }
        })?;
        let value = parse_json(&raw)?;
        Ok(Body { value, raw })
    }
}

/// Query parameters, refused with a problem that names the parameter at fault.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> ApiResult<Query<T>> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|e| {
                let path = e.path().to_string();
                let message = e.into_inner().to_string();
                let field = match message.strip_prefix("unknown field `") {
                    Some(rest) => rest.split('`').next().unwrap_or_default().to_owned(),
                    None if path == "." => "(query)".to_owned(),
                    None => path,
                };
                Problem::field(&field, message)
            })
    }
}

/// Parses JSON, naming the field a type error or an unknown field is at.
pub fn parse_json<T: DeserializeOwned>(raw: &[u8]) -> ApiResult<T> {
    // Every body is an object; an array would otherwise be read as a tuple of fields.
    if !raw.trim_ascii_start().starts_with(b"{") {
        return Err(Problem::bad_request("the body must be a JSON object"));
    }
    let de = &mut serde_json::Deserializer::from_slice(raw);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut *de);
    let value = match result {
        Ok(v) => v,
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let message = inner.to_string();
            let message = message
                .split(" at line ")
                .next()
                .unwrap_or(&message)
                .to_owned();
            if inner.is_syntax() || inner.is_eof() || inner.is_io() {
                return Err(Problem::bad_request(format!(
                    "the body is not valid JSON: {inner}"
                )));
            }
            let field = match message.strip_prefix("unknown field `") {
                Some(rest) => {
                    let name = rest.split('`').next().unwrap_or_default();
                    if path == "." {
                        name.to_owned()
                    } else if path.ends_with(name) {
                        path.clone()
                    } else {
                        format!("{path}.{name}")
                    }
                }
                None if path == "." => match message.strip_prefix("missing field `") {
                    Some(rest) => rest.split('`').next().unwrap_or_default().to_owned(),
                    None => "(body)".to_owned(),
                },
                None => path,
            };
            let mut p = Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-body",
                format!("{field}: {message}"),
            );
            p.errors = vec![FieldError { field, message }];
            return Err(p);
        }
    };
    de.end()
        .map_err(|e| Problem::bad_request(format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

impl AppState {
    /// Decides with the policy; a denied change (or secret reveal) is recorded in the audit
    /// log before the 403.
    pub async fn authorize<'c>(
        &self,
        ctx: &'c Ctx,
        action: Action<'_>,
        target: &str,
    ) -> ApiResult<&'c Caller> {
        let caller = ctx.caller()?;
        match policy::authorize(&caller.principal, &action) {
            Ok(()) => Ok(caller),
            Err(denied) => {
                if action.audited() {
                    let mut tx = self.db.write().await?;
                    tx.append_audit(
                        &NewAudit {
                            actor: &caller.user.login,
                            source: &ctx.source,
                            action: action.name(),
                            target,
                            team: action.team(),
                            environment: None,
                            outcome: "denied",
                            detail: &serde_json::json!({"reason": denied.0}),
                        },
                        now_ms(),
                    )
                    .await?;
                    tx.commit().await?;
                }
                Err(Problem::forbidden(denied.0))
            }
        }
    }
}

/// Records an allowed change in `tx`.
async fn audit(
    tx: &mut WriteTx,
    ctx: &Ctx,
    action: &str,
    target: &str,
    team: Option<&str>,
    environment: Option<&str>,
    detail: serde_json::Value,
) -> ApiResult<()> {
    let caller = ctx.caller()?;
    tx.append_audit(
        &NewAudit {
            actor: &caller.user.login,
            source: &ctx.source,
            action,
            target,
            team,
            environment,
            outcome: "allowed",
            detail: &detail,
        },
        now_ms(),
    )
    .await?;
    Ok(())
}

/// `Idempotency-Key`: a retried request gets the first one's response; the same key with
/// another request is refused.
struct Idempotency {
    user: String,
    key: String,
    fingerprint: String,
}

impl Idempotency {
    fn of(ctx: &Ctx, method: &str, path: &str, raw: &[u8]) -> ApiResult<Option<Idempotency>> {
        let Some(key) = &ctx.idempotency_key else {
            return Ok(None);
        };
        let mut h = Sha256::new();
        h.update(method.as_bytes());
        h.update(b" ");
        h.update(path.as_bytes());
        h.update(b"\n");
        h.update(raw);
        Ok(Some(Idempotency {
            user: ctx.caller()?.user.id.clone(),
            key: key.clone(),
            fingerprint: format!("{:x}", h.finalize()),
        }))
    }

    async fn replay(&self, tx: &mut WriteTx) -> ApiResult<Option<Response>> {
        let Some(r) = tx.remembered(&self.user, &self.key).await? else {
            return Ok(None);
        };
        if r.fingerprint != self.fingerprint {
            return Err(Problem::field(
                "Idempotency-Key",
                "this key was used for a different request; use a new key for a new request",
            ));
        }
        let status = StatusCode::from_u16(r.status as u16).unwrap_or(StatusCode::OK);
        let mut response = (status, r.body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
        if let Some(location) = r.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        Ok(Some(response))
    }

    async fn remember(
        this: &Option<Idempotency>,
        tx: &mut WriteTx,
        status: StatusCode,
        body: &str,
        location: Option<&str>,
    ) -> ApiResult<()> {
        if let Some(i) = this {
            tx.remember(
                &i.user,
                &i.key,
                &Remembered {
                    fingerprint: i.fingerprint.clone(),
                    status: i64::from(status.as_u16()),
                    body: body.to_owned(),
                    location: location.map(str::to_owned),
                },
                now_ms(),
            )
            .await?;
        }
        Ok(())
    }
}

fn json_response(status: StatusCode, body: &str, location: Option<&str>) -> Response {
    let mut response = (status, body.to_owned()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(location) = location.and_then(|l| HeaderValue::from_str(l).ok()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

fn json<T: serde::Serialize>(value: &T) -> Response {
    json_response(
        StatusCode::OK,
        &serde_json::to_string(value).unwrap_or_default(),
        None,
    )
}

// --- people and tokens ---------------------------------------------------------------

#[utoipa::path(get, path = "/api/v1/me", tag = "people",
    responses((status = 200, body = MeView), (status = 401, body = Problem)))]
async fn me(axum::extract::State(state): State, ctx: Ctx) -> ApiResult {
    let caller = state.authorize(&ctx, Action::ReadSelf, "me").await?;
    Ok(json(&MeView {
        user: UserView::from(&caller.user),
        teams: caller
            .principal
            .roles
            .iter()
            .map(|(team, role)| Membership {
                team: team.clone(),
                role: *role,
            })
            .collect(),
        csrf_token: match &caller.credential {
            auth::Credential::Session { csrf, .. } => Some(csrf.clone()),
            auth::Credential::Token { .. } => None,
        },
    }))
}

#[utoipa::path(get, path = "/api/v1/me/tokens", tag = "people",
    responses((status = 200, body = [TokenView]), (status = 401, body = Problem)))]
async fn list_tokens(axum::extract::State(state): State, ctx: Ctx) -> ApiResult {
    let caller = state.authorize(&ctx, Action::ReadSelf, "me/tokens").await?;
    let tokens = state.db.tokens_of(&caller.user.id).await?;
    Ok(json(
        &tokens.iter().map(TokenView::from).collect::<Vec<_>>(),
    ))
}

#[utoipa::path(post, path = "/api/v1/me/tokens", tag = "people", request_body = NewToken,
    responses((status = 201, body = CreatedToken), (status = 400, body = Problem),
        (status = 422, body = Problem)))]
async fn create_token(
    axum::extract::State(state): State,
    ctx: Ctx,
    body: Body<NewToken>,
) -> ApiResult {
    let caller = state
        .authorize(&ctx, Action::ManageOwnTokens, "me/tokens")
        .await?;
    let req = body.value;
    let mut errors = Vec::new();
    if req.name.trim().is_empty() || req.name.len() > 64 {
        errors.push(FieldError {
            field: "name".into(),
            message: "give the token a name of 1 to 64 characters".into(),
        });
    }
    let days = req.expires_in_days.unwrap_or(90);
    if !(1..=365).contains(&days) {
        errors.push(FieldError {
            field: "expiresInDays".into(),
            message: format!("{days} is out of range: 1 to 365"),
        });
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let now = now_ms();
    let secret = format!("{}{}", auth::TOKEN_PREFIX, auth::random_secret());
    let token = db::ApiToken {
        id: auth::new_id("tok"),
        user_id: caller.user.id.clone(),
        name: req.name.trim().to_owned(),
        scope: match req.scope.unwrap_or(Scope::Write) {
            Scope::Write => "write".into(),
            Scope::Read => "read".into(),
        },
        created_at: now,
        expires_at: Some(now + i64::from(days) * 86_400_000),
        revoked_at: None,
        last_used_at: None,
    };
    let mut tx = state.db.write().await?;
    tx.insert_token(&token, &auth::digest(&secret)).await?;
    let target = format!("users/{}/tokens/{}", caller.user.login, token.id);
    audit(
        &mut tx,
        &ctx,
        "token.create",
        &target,
        None,
        None,
        serde_json::json!({"name": token.name, "scope": token.scope, "expiresInDays": days}),
    )
    .await?;
    tx.commit().await?;
    let body = serde_json::to_string(&CreatedToken {
        token: secret,
        info: TokenView::from(&token),
    })
    .unwrap_or_default();
    Ok(json_response(StatusCode::CREATED, &body, None))
}

#[utoipa::path(delete, path = "/api/v1/me/tokens/{id}", tag = "people",
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
async fn revoke_token(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult {
    let caller = state
        .authorize(&ctx, Action::ManageOwnTokens, "me/tokens")
        .await?;
    let mut tx = state.db.write().await?;
    if !tx.revoke_token(&caller.user.id, &id, now_ms()).await? {
        return Err(Problem::not_found(format!("a live token `{id}` of yours")));
    }
    let target = format!("users/{}/tokens/{id}", caller.user.login);
    audit(
        &mut tx,
        &ctx,
        "token.revoke",
        &target,
        None,
        None,
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(get, path = "/api/v1/users", tag = "people",
    responses((status = 200, body = [UserView]), (status = 401, body = Problem)))]
async fn list_users(axum::extract::State(state): State, ctx: Ctx) -> ApiResult {
    state.authorize(&ctx, Action::ListPeople, "users").await?;
    let users = state.db.users().await?;
    Ok(json(&users.iter().map(UserView::from).collect::<Vec<_>>()))
}

#[utoipa::path(post, path = "/api/v1/users", tag = "people", request_body = NewPerson,
    responses((status = 201, body = UserView), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_user(
    axum::extract::State(state): State,
    ctx: Ctx,
    body: Body<NewPerson>,
) -> ApiResult {
    let req = body.value;
    let target = format!("users/{}", req.login.chars().take(64).collect::<String>());
    state.authorize(&ctx, Action::ManagePeople, &target).await?;
    let mut errors = Vec::new();
    check_login("login", &req.login, &mut errors);
    if req.name.trim().is_empty() || req.name.len() > 200 {
        errors.push(FieldError {
            field: "name".into(),
            message: "give a name of 1 to 200 characters".into(),
        });
    }
    if let Some(p) = &req.password
        && (p.chars().count() < 12 || p.len() > 1024)
    {
        errors.push(FieldError {
            field: "password".into(),
            message: "a password has 12 to 1024 characters".into(),
        });
    }
    if req.password.is_some() && !state.config.local_accounts() {
        errors.push(FieldError {
            field: "password".into(),
            message: "local accounts are turned off on this server (local_accounts = false)".into(),
        });
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let hash = req
        .password
        .as_deref()
        .map(auth::hash_password)
        .transpose()?;
    let now = now_ms();
    let user = db::User {
        id: auth::new_id("u"),
        login: req.login.clone(),
        name: req.name.trim().to_owned(),
        email: req.email.clone(),
        platform_admin: req.platform_admin,
        created_at: now,
    };
    let mut tx = state.db.write().await?;
    tx.insert_user(&db::NewUser {
        id: &user.id,
        login: &user.login,
        name: &user.name,
        email: user.email.as_deref(),
        platform_admin: user.platform_admin,
        password_hash: hash.as_deref(),
        oidc: None,
        created_at: now,
    })
    .await
    .map_err(|e| match e {
        db::DbError::Conflict(_) => {
            Problem::conflict(format!("a person with login `{}` exists", req.login))
        }
        other => other.into(),
    })?;
    audit(
        &mut tx,
        &ctx,
        "user.create",
        &target,
        None,
        None,
        serde_json::json!({"login": user.login, "name": user.name,
                "platformAdmin": user.platform_admin, "localPassword": hash.is_some()}),
    )
    .await?;
    tx.commit().await?;
    state.new_person(&user.login).await;
    let body = serde_json::to_string(&UserView::from(&user)).unwrap_or_default();
    Ok(json_response(StatusCode::CREATED, &body, None))
}

impl AppState {
    pub(crate) async fn new_person(&self, login: &str) {
        if let Some(hook) = &self.on_new_person {
            hook(login.to_owned()).await;
        }
    }
}

// --- teams -----------------------------------------------------------------------------

async fn team_view(state: &AppState, team: &db::Team) -> ApiResult<TeamView> {
    let members = state.db.members(&team.name).await?;
    Ok(TeamView {
        name: team.name.clone(),
        description: team.description.clone(),
        created_at: time(team.created_at),
        created_by: team.created_by.clone(),
        members: members
            .into_iter()
            .map(|m| MemberView {
                login: m.login,
                name: m.name,
                role: m.role,
            })
            .collect(),
    })
}

async fn existing_team(state: &AppState, team: &str) -> ApiResult<db::Team> {
    state
        .db
        .team(team)
        .await?
        .ok_or_else(|| Problem::not_found(format!("team `{team}`")))
}

#[utoipa::path(get, path = "/api/v1/teams", tag = "teams",
    responses((status = 200, body = [TeamView]), (status = 401, body = Problem)))]
async fn list_teams(axum::extract::State(state): State, ctx: Ctx) -> ApiResult {
    state.authorize(&ctx, Action::ListTeams, "teams").await?;
    let mut views = Vec::new();
    for team in state.db.teams().await? {
        views.push(team_view(&state, &team).await?);
    }
    Ok(json(&views))
}

#[utoipa::path(post, path = "/api/v1/teams", tag = "teams", request_body = NewTeam,
    responses((status = 202, body = OperationView, description = "The team, with the operation that provisions its GitHub team and Entra group"),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_team(
    axum::extract::State(state): State,
    ctx: Ctx,
    body: Body<NewTeam>,
) -> ApiResult {
    let req = &body.value;
    let target = format!("teams/{}", req.name.chars().take(64).collect::<String>());
    let caller = state.authorize(&ctx, Action::CreateTeam, &target).await?;
    let mut errors = Vec::new();
    check_name("name", &req.name, &mut errors);
    if req.description.len() > 500 {
        errors.push(FieldError {
            field: "description".into(),
            message: "at most 500 characters".into(),
        });
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let idem = Idempotency::of(&ctx, "POST", "/api/v1/teams", &body.raw)?;
    let mut tx = state.db.write().await?;
    if let Some(i) = &idem
        && let Some(replayed) = i.replay(&mut tx).await?
    {
        return Ok(replayed);
    }
    let now = now_ms();
    tx.insert_team(&db::Team {
        name: req.name.clone(),
        description: req.description.clone(),
        created_at: now,
        created_by: caller.user.login.clone(),
    })
    .await
    .map_err(|e| match e {
        db::DbError::Conflict(_) => Problem::conflict(format!("team `{}` exists", req.name)),
        other => other.into(),
    })?;
    tx.set_member(&req.name, &caller.user.id, Role::Admin.name())
        .await?;
    let op = queue(
        &mut tx,
        Queued {
            team: &req.name,
            environment: None,
            kind: "up",
            stages: &[],
            by: &caller.user.login,
            retry_of: None,
            request: None,
        },
    )
    .await?;
    audit(&mut tx, &ctx, "team.create", &target, Some(&req.name), None,
            serde_json::json!({"description": req.description, "admin": caller.user.login, "operation": op.id}))
        .await?;
    let response = accepted(&mut tx, &idem, &op, None).await?;
    tx.commit().await?;
    state.work.notify_waiters();
    Ok(response)
}

/// Queues an operation in `tx`.
/// What an operation is, as queued.
struct Queued<'a> {
    team: &'a str,
    environment: Option<&'a str>,
    kind: &'a str,
    stages: &'a [Stage],
    by: &'a str,
    retry_of: Option<&'a str>,
    request: Option<&'a str>,
}

async fn queue(tx: &mut WriteTx, q: Queued<'_>) -> ApiResult<db::Operation> {
    let Queued {
        team,
        environment,
        kind,
        stages,
        by,
        retry_of,
        request,
    } = q;
    let id = auth::new_id("op");
    let stages = serde_json::to_string(stages).unwrap_or_else(|_| "[]".into());
    tx.insert_operation(&db::NewOperation {
        id: &id,
        team,
        environment,
        kind,
        stages: &stages,
        requested_by: by,
        retry_of,
        request,
        created_at: now_ms(),
    })
    .await?;
    tx.operation(&id)
        .await?
        .ok_or_else(|| Problem::internal("the operation just queued is missing"))
}

/// 202 with the operation and its URL, remembered under the idempotency key.
async fn accepted(
    tx: &mut WriteTx,
    idem: &Option<Idempotency>,
    op: &db::Operation,
    environment: Option<String>,
) -> ApiResult {
    let view = OperationView::of(op, environment);
    let body = serde_json::to_string(&view).unwrap_or_default();
    let location = view.links.this.clone();
    Idempotency::remember(idem, tx, StatusCode::ACCEPTED, &body, Some(&location)).await?;
    Ok(json_response(StatusCode::ACCEPTED, &body, Some(&location)))
}

#[utoipa::path(get, path = "/api/v1/teams/{team}", tag = "teams",
    params(("team" = String, Path)),
    responses((status = 200, body = TeamView), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn show_team(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(team): Path<String>,
) -> ApiResult {
    state
        .authorize(
            &ctx,
            Action::ReadTeam { team: &team },
            &format!("teams/{team}"),
        )
        .await?;
    let t = existing_team(&state, &team).await?;
    Ok(json(&team_view(&state, &t).await?))
}

/// A membership change queues the team's operation (its GitHub team and Entra group
/// follow), unless one is already queued, which will read the new membership.
async fn sync_team(tx: &mut WriteTx, team: &str, by: &str) -> ApiResult<Option<db::Operation>> {
    match tx.active_operation(team, None).await? {
        Some(op) if op.state == "queued" => Ok(Some(op)),
        _ => Ok(Some(
            queue(
                tx,
                Queued {
                    team,
                    environment: None,
                    kind: "up",
                    stages: &[],
                    by,
                    retry_of: None,
                    request: None,
                },
            )
            .await?,
        )),
    }
}

#[utoipa::path(put, path = "/api/v1/teams/{team}/members/{login}", tag = "teams",
    params(("team" = String, Path), ("login" = String, Path)), request_body = MemberRole,
    responses((status = 202, body = OperationView), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn set_member(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path((team, login)): Path<(String, String)>,
    body: Body<MemberRole>,
) -> ApiResult {
    let target = format!("teams/{team}/members/{login}");
    let caller = state
        .authorize(&ctx, Action::ManageMembers { team: &team }, &target)
        .await?;
    existing_team(&state, &team).await?;
    let user = state
        .db
        .user_by_login(&login)
        .await?
        .ok_or_else(|| Problem::not_found(format!("person `{login}`")))?;
    let role = body.value.role;
    let idem = Idempotency::of(&ctx, "PUT", &target, &body.raw)?;
    let mut tx = state.db.write().await?;
    if let Some(i) = &idem
        && let Some(replayed) = i.replay(&mut tx).await?
    {
        return Ok(replayed);
    }
    let before = tx.set_member(&team, &user.id, role.name()).await?;
    if before.as_deref() == Some(Role::Admin.name()) && role != Role::Admin {
        ensure_an_admin_remains(&state, &team, &user.id).await?;
    }
    let op = sync_team(&mut tx, &team, &caller.user.login).await?;
    audit(
        &mut tx,
        &ctx,
        "team.member.set",
        &target,
        Some(&team),
        None,
        serde_json::json!({"login": login, "role": role.name(), "before": before}),
    )
    .await?;
    let response = match op {
        Some(op) => accepted(&mut tx, &idem, &op, None).await?,
        None => StatusCode::NO_CONTENT.into_response(),
    };
    tx.commit().await?;
    state.work.notify_waiters();
    Ok(response)
}

async fn ensure_an_admin_remains(state: &AppState, team: &str, leaving: &str) -> ApiResult<()> {
    let admins = state
        .db
        .members(team)
        .await?
        .into_iter()
        .filter(|m| m.role == Role::Admin.name() && m.user_id != leaving)
        .count();
    if admins == 0 {
        return Err(Problem::conflict(format!(
            "team `{team}` would have no admin left; make someone else admin first"
        )));
    }
    Ok(())
}

#[utoipa::path(delete, path = "/api/v1/teams/{team}/members/{login}", tag = "teams",
    params(("team" = String, Path), ("login" = String, Path)),
    responses((status = 202, body = OperationView), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn remove_member(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path((team, login)): Path<(String, String)>,
) -> ApiResult {
    let target = format!("teams/{team}/members/{login}");
    let caller = state
        .authorize(&ctx, Action::ManageMembers { team: &team }, &target)
        .await?;
    existing_team(&state, &team).await?;
    let user = state
        .db
        .user_by_login(&login)
        .await?
        .ok_or_else(|| Problem::not_found(format!("person `{login}`")))?;
    ensure_an_admin_remains(&state, &team, &user.id).await?;
    let mut tx = state.db.write().await?;
    let Some(before) = tx.remove_member(&team, &user.id).await? else {
        return Err(Problem::not_found(format!(
            "member `{login}` of team `{team}`"
        )));
    };
    let op = sync_team(&mut tx, &team, &caller.user.login).await?;
    audit(
        &mut tx,
        &ctx,
        "team.member.remove",
        &target,
        Some(&team),
        None,
        serde_json::json!({"login": login, "before": before}),
    )
    .await?;
    let response = match op {
        Some(op) => accepted(&mut tx, &None, &op, None).await?,
        None => StatusCode::NO_CONTENT.into_response(),
    };
    tx.commit().await?;
    state.work.notify_waiters();
    Ok(response)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct Limit {
    /// At most this many (1 to 500; default 50).
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/teams/{team}/operations", tag = "operations",
    params(("team" = String, Path), Limit),
    responses((status = 200, body = [OperationView]), (status = 403, body = Problem)))]
async fn team_operations(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(team): Path<String>,
    Query(q): Query<Limit>,
) -> ApiResult {
    state
        .authorize(
            &ctx,
            Action::ReadTeam { team: &team },
            &format!("teams/{team}"),
        )
        .await?;
    existing_team(&state, &team).await?;
    let ops = state.db.operations(&team, None, limit(q.limit)?).await?;
    operation_views(&state, &ops).await
}

fn limit(l: Option<i64>) -> ApiResult<i64> {
    match l {
        None => Ok(50),
        Some(n) if (1..=500).contains(&n) => Ok(n),
        Some(n) => Err(Problem::field(
            "limit",
            format!("{n} is out of range: 1 to 500"),
        )),
    }
}

async fn operation_views(state: &AppState, ops: &[db::Operation]) -> ApiResult {
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut views = Vec::new();
    for op in ops {
        let env = match &op.environment {
            Some(id) => {
                if !names.contains_key(id)
                    && let Some(e) = state.db.environment_by_id(id).await?
                {
                    names.insert(id.clone(), e.name);
                }
                names.get(id).cloned()
            }
            None => None,
        };
        views.push(OperationView::of(op, env));
    }
    Ok(json(&views))
}

// --- blueprints ------------------------------------------------------------------------

#[utoipa::path(get, path = "/api/v1/blueprints", tag = "blueprints",
    responses((status = 200, body = [BlueprintView])))]
async fn list_blueprints(axum::extract::State(state): State, ctx: Ctx) -> ApiResult {
    state
        .authorize(&ctx, Action::ListBlueprints, "blueprints")
        .await?;
    let all = state.db.blueprints().await?;
    Ok(json(
        &all.iter().map(BlueprintView::from).collect::<Vec<_>>(),
    ))
}

#[utoipa::path(get, path = "/api/v1/blueprints/{name}/versions/{version}", tag = "blueprints",
    params(("name" = String, Path), ("version" = String, Path)),
    responses((status = 200, body = BlueprintView), (status = 404, body = Problem)))]
async fn show_blueprint(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult {
    state
        .authorize(&ctx, Action::ListBlueprints, "blueprints")
        .await?;
    let b = state
        .db
        .blueprint(&name, &version)
        .await?
        .ok_or_else(|| Problem::not_found(format!("blueprint {name}@{version}")))?;
    Ok(json(&BlueprintView::from(&b)))
}

// --- environments ----------------------------------------------------------------------

pub(crate) async fn existing_environment(
    state: &AppState,
    team: &str,
    env: &str,
) -> ApiResult<db::Environment> {
    state
        .db
        .environment(team, env)
        .await?
        .ok_or_else(|| Problem::not_found(format!("environment `{env}` of team `{team}`")))
}

#[utoipa::path(get, path = "/api/v1/teams/{team}/environments", tag = "environments",
    params(("team" = String, Path)),
    responses((status = 200, body = [EnvironmentView]), (status = 403, body = Problem)))]
async fn list_environments(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(team): Path<String>,
) -> ApiResult {
    state
        .authorize(
            &ctx,
            Action::ReadEnvironment { team: &team },
            &format!("teams/{team}/environments"),
        )
        .await?;
    existing_team(&state, &team).await?;
    let envs = state.db.environments(Some(&team)).await?;
    Ok(json(
        &envs
            .iter()
            .map(EnvironmentView::of)
            .collect::<Result<Vec<_>, _>>()?,
    ))
}

#[utoipa::path(post, path = "/api/v1/teams/{team}/environments", tag = "environments",
    params(("team" = String, Path)), request_body = NewEnvironment,
    responses((status = 202, body = OperationView, description = "The operation that provisions it; Location is its URL"),
        (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_environment(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(team): Path<String>,
    body: Body<NewEnvironment>,
) -> ApiResult {
    let req = &body.value;
    let target = format!(
        "teams/{team}/environments/{}",
        req.name.chars().take(64).collect::<String>()
    );
    let mut stages = req.stages.clone();
    stages.sort();
    stages.dedup();
    let caller = state
        .authorize(
            &ctx,
            Action::ChangeStages {
                team: &team,
                stages: &stages,
            },
            &target,
        )
        .await?;
    existing_team(&state, &team).await?;
    let members = state.db.members(&team).await?;
    let mut errors = Vec::new();
    check_name("name", &req.name, &mut errors);
    if stages.is_empty() {
        errors.push(FieldError {
            field: "stages".into(),
            message: "name at least one stage: dev, test or prod".into(),
        });
    }
    let region = req.region.clone().unwrap_or_else(|| "westeurope".into());
    if region.is_empty()
        || region.len() > 40
        || !region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        errors.push(FieldError {
            field: "region".into(),
            message: format!(
                "`{region}` is not an Azure region name (lowercase letters and digits)"
            ),
        });
    }
    let of_role = |role: Role| -> Vec<String> {
        members
            .iter()
            .filter(|m| m.role == role.name())
            .map(|m| m.login.clone())
            .collect()
    };
    let admins = req.admins.clone().unwrap_or_else(|| of_role(Role::Admin));
    let contributors = req
        .contributors
        .clone()
        .unwrap_or_else(|| of_role(Role::Contributor));
    for (field, logins) in [("admins", &admins), ("contributors", &contributors)] {
        for (i, login) in logins.iter().enumerate() {
            if !members.iter().any(|m| &m.login == login) {
                errors.push(FieldError {
                    field: format!("{field}[{i}]"),
                    message: format!("`{login}` is not a member of team `{team}`"),
                });
            }
        }
    }
    if stages.contains(&Stage::Prod) && admins.is_empty() {
        errors.push(FieldError {
            field: "admins".into(),
            message: "prod needs at least one admin, who reviews its deployments".into(),
        });
    }
    let blueprints = state.db.blueprints().await?;
    let version = match &req.blueprint_version {
        Some(v) => v.clone(),
        None => blueprints
            .iter()
            .filter(|b| b.name == "environment")
            .max_by_key(|b| b.published_at)
            .map(|b| b.version.clone())
            .unwrap_or_default(),
    };
    if !blueprints
        .iter()
        .any(|b| b.name == "environment" && b.version == version)
    {
        errors.push(FieldError {
            field: "blueprintVersion".into(),
            message: format!("environment@{version} is not a published blueprint version"),
        });
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let params = EnvironmentParameters {
        stages: stages.clone(),
        region,
        quota: req.quota.unwrap_or(QuotaSize::Medium),
        admins,
        contributors,
    };
    let params_json = serde_json::to_string(&params).unwrap_or_default();
    let idem = Idempotency::of(
        &ctx,
        "POST",
        &format!("/api/v1/teams/{team}/environments"),
        &body.raw,
    )?;
    let mut tx = state.db.write().await?;
    if let Some(i) = &idem
        && let Some(replayed) = i.replay(&mut tx).await?
    {
        return Ok(replayed);
    }
    let now = now_ms();
    let env_id = match state.db.environment(&team, &req.name).await? {
        Some(e) if e.status == "destroyed" => {
            // A destroyed environment's name may be used again; its history stays.
            tx.update_environment(&e.id, &params_json, now).await?;
            tx.set_environment_status(&e.id, "creating", now).await?;
            e.id
        }
        Some(_) => {
            return Err(Problem::conflict(format!(
                "environment `{}` of team `{team}` exists",
                req.name
            )));
        }
        None => {
            let id = auth::new_id("env");
            tx.insert_environment(&db::Environment {
                id: id.clone(),
                team: team.clone(),
                name: req.name.clone(),
                blueprint: "environment".into(),
                blueprint_version: version.clone(),
                parameters: params_json.clone(),
                status: "creating".into(),
                created_at: now,
                created_by: caller.user.login.clone(),
                updated_at: now,
            })
            .await
            .map_err(|e| match e {
                db::DbError::Conflict(_) => Problem::conflict(format!(
                    "environment `{}` of team `{team}` exists",
                    req.name
                )),
                other => other.into(),
            })?;
            id
        }
    };
    let op = queue(
        &mut tx,
        Queued {
            team: &team,
            environment: Some(&env_id),
            kind: "up",
            stages: &stages,
            by: &caller.user.login,
            retry_of: None,
            request: None,
        },
    )
    .await?;
    audit(
        &mut tx,
        &ctx,
        "environment.create",
        &target,
        Some(&team),
        Some(&req.name),
        serde_json::json!({"blueprint": format!("environment@{version}"),
                "parameters": params, "operation": op.id}),
    )
    .await?;
    let response = accepted(&mut tx, &idem, &op, Some(req.name.clone())).await?;
    tx.commit().await?;
    state.work.notify_waiters();
    Ok(response)
}

#[utoipa::path(get, path = "/api/v1/teams/{team}/environments/{env}", tag = "environments",
    params(("team" = String, Path), ("env" = String, Path)),
    responses((status = 200, body = EnvironmentView), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn show_environment(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path((team, env)): Path<(String, String)>,
) -> ApiResult {
    state
        .authorize(
            &ctx,
            Action::ReadEnvironment { team: &team },
            &format!("teams/{team}/environments/{env}"),
        )
        .await?;
    let e = existing_environment(&state, &team, &env).await?;
    Ok(json(&EnvironmentView::of(&e)?))
}

#[utoipa::path(get, path = "/api/v1/teams/{team}/environments/{env}/operations", tag = "operations",
    params(("team" = String, Path), ("env" = String, Path), Limit),
    responses((status = 200, body = [OperationView]), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn environment_operations(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path((team, env)): Path<(String, String)>,
    Query(q): Query<Limit>,
) -> ApiResult {
    state
        .authorize(
            &ctx,
            Action::ReadEnvironment { team: &team },
            &format!("teams/{team}/environments/{env}"),
        )
        .await?;
    let e = existing_environment(&state, &team, &env).await?;
    let ops = state
        .db
        .operations(&team, Some(&e.id), limit(q.limit)?)
        .await?;
    operation_views(&state, &ops).await
}

#[utoipa::path(post, path = "/api/v1/teams/{team}/environments/{env}/operations", tag = "operations",
    params(("team" = String, Path), ("env" = String, Path)), request_body = NewOperation,
    responses((status = 202, body = OperationView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "Another operation on this environment is queued or running; `operation` names it"),
        (status = 422, body = Problem)))]
async fn create_operation(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path((team, env)): Path<(String, String)>,
    body: Body<NewOperation>,
) -> ApiResult {
    let target = format!("teams/{team}/environments/{env}");
    ctx.caller()?;
    let e = existing_environment(&state, &team, &env).await?;
    let params: EnvironmentParameters = serde_json::from_str(&e.parameters)
        .map_err(|err| Problem::internal(format!("environment parameters unreadable: {err}")))?;
    let kind = body.value.kind;
    let mut stages = match (&body.value.stages, kind) {
        (_, OperationKind::Destroy) => params.stages.clone(),
        (Some(s), _) => s.clone(),
        (None, _) => params.stages.clone(),
    };
    stages.sort();
    stages.dedup();
    let action = match kind {
        OperationKind::Destroy => Action::Destroy { team: &team },
        _ => Action::ChangeStages {
            team: &team,
            stages: &stages,
        },
    };
    let caller = state.authorize(&ctx, action, &target).await?;
    let mut errors = Vec::new();
    if body.value.stages.is_some() && kind == OperationKind::Destroy {
        errors.push(FieldError {
            field: "stages".into(),
            message: "destroy acts on the whole environment; leave stages out".into(),
        });
    }
    for (i, s) in stages.iter().enumerate() {
        if !params.stages.contains(s) {
            errors.push(FieldError {
                field: format!("stages[{i}]"),
                message: format!("environment `{env}` has no {} stage", s.name()),
            });
        }
    }
    if stages.is_empty() {
        errors.push(FieldError {
            field: "stages".into(),
            message: "name at least one of the environment's stages".into(),
        });
    }
    if e.status == "destroyed" {
        errors.push(FieldError {
            field: "kind".into(),
            message: format!("environment `{env}` was destroyed; create it again"),
        });
    }
    let request = match (kind, &body.value.resources) {
        (OperationKind::Import, resources) => {
            let resources = resources.clone().unwrap_or_default();
            check_import(&state, &e, &params, &stages, &resources, &mut errors);
            Some(serde_json::json!({"resources": resources}).to_string())
        }
        (_, Some(_)) => {
            errors.push(FieldError {
                field: "resources".into(),
                message: "only an import takes resources".into(),
            });
            None
        }
        (_, None) => None,
    };
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let idem = Idempotency::of(
        &ctx,
        "POST",
        &format!("/api/v1/{target}/operations"),
        &body.raw,
    )?;
    let mut tx = state.db.write().await?;
    if let Some(i) = &idem
        && let Some(replayed) = i.replay(&mut tx).await?
    {
        return Ok(replayed);
    }
    if let Some(active) = tx.active_operation(&team, Some(&e.id)).await? {
        return Err(Problem::conflict(format!(
            "operation {} ({}, {}) is {} on environment `{env}`; wait for it or cancel it",
            active.id, active.kind, active.requested_by, active.state
        ))
        .with_operation(&active.id));
    }
    let op = queue(
        &mut tx,
        Queued {
            team: &team,
            environment: Some(&e.id),
            kind: kind.name(),
            stages: &stages,
            by: &caller.user.login,
            retry_of: None,
            request: request.as_deref(),
        },
    )
    .await?;
    let now = now_ms();
    match kind {
        OperationKind::Up => tx.set_environment_status(&e.id, "updating", now).await?,
        OperationKind::Destroy => tx.set_environment_status(&e.id, "destroying", now).await?,
        _ => {}
    }
    audit(
        &mut tx,
        &ctx,
        &format!("environment.{}", kind.name()),
        &target,
        Some(&team),
        Some(&env),
        serde_json::json!({"stages": stages, "operation": op.id}),
    )
    .await?;
    let response = accepted(&mut tx, &idem, &op, Some(env.clone())).await?;
    tx.commit().await?;
    state.work.notify_waiters();
    Ok(response)
}

/// An import adopts objects into one stage as resources its blueprint names, of the type
/// it names.
fn check_import(
    state: &AppState,
    e: &db::Environment,
    params: &EnvironmentParameters,
    stages: &[Stage],
    resources: &[ImportResource],
    errors: &mut Vec<FieldError>,
) {
    let field = |field: String, message: String| FieldError { field, message };
    let [stage] = stages else {
        errors.push(field(
            "stages".into(),
            "an import names exactly one stage".into(),
        ));
        return;
    };
    if resources.is_empty() {
        errors.push(field(
            "resources".into(),
            "name at least one object to adopt".into(),
        ));
    }
    let run = match paddock_platform::stage_stack(
        &params.spec(&e.team, &e.name),
        *stage,
        &state.settings,
    ) {
        Ok(run) => run,
        Err(err) => {
            errors.push(field(
                "stages".into(),
                format!("the {} stage cannot be rendered: {err}", stage.name()),
            ));
            return;
        }
    };
    for (i, r) in resources.iter().enumerate() {
        match run.graph.resources.iter().find(|d| d.name == r.name) {
            None => errors.push(field(
                format!("resources[{i}].name"),
                format!(
                    "the {} stage has no resource `{}`; it has: {}",
                    stage.name(),
                    r.name,
                    run.graph
                        .resources
                        .iter()
                        .map(|d| d.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
            Some(d) if d.ty != r.ty => errors.push(field(
                format!("resources[{i}].type"),
                format!("`{}` is a {}, not a {}", r.name, d.ty, r.ty),
            )),
            Some(_) => {}
        }
        if r.id.trim().is_empty() {
            errors.push(field(
                format!("resources[{i}].id"),
                "the object's id in its cloud is required".into(),
            ));
        }
    }
}

/// An environment's stacks: its repository's, then each stage's.
fn stacks_of(e: &db::Environment) -> ApiResult<Vec<String>> {
    let params: EnvironmentParameters = serde_json::from_str(&e.parameters)
        .map_err(|err| Problem::internal(format!("environment parameters unreadable: {err}")))?;
    let mut stacks = vec![paddock_platform::repository_stack_name(&e.team, &e.name)];
    for s in &params.stages {
        stacks.push(paddock_platform::stage_stack_name(&e.team, &e.name, *s));
    }
    Ok(stacks)
}

#[utoipa::path(get, path = "/api/v1/teams/{team}/environments/{env}/resources", tag = "environments",
    params(("team" = String, Path), ("env" = String, Path)),
    responses((status = 200, body = [StackResources], description = "Each stack's resources, secret values masked"),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn resources(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path((team, env)): Path<(String, String)>,
) -> ApiResult {
    let target = format!("teams/{team}/environments/{env}/resources");
    state
        .authorize(&ctx, Action::ReadEnvironment { team: &team }, &target)
        .await?;
    let e = existing_environment(&state, &team, &env).await?;
    let mut views = Vec::new();
    for stack in stacks_of(&e)? {
        let read = match state.engine.read_state(&stack).await {
            Ok(read) => read,
            Err(paddock_engine::EngineError::NoSuchStack(_)) => continue,
            Err(err) => return Err(Problem::unavailable(format!("reading {stack}: {err}"))),
        };
        views.push(StackResources {
            stack,
            pending: read.pending,
            resources: read
                .resources
                .iter()
                .map(|r| ResourceView {
                    name: r.name.clone(),
                    ty: r.ty.clone(),
                    id: r.id.clone(),
                    outputs: paddock_engine::value::redacted_props(&r.outputs),
                    dependencies: r.dependencies.clone(),
                    delete_pending: r.delete_pending,
                })
                .collect(),
        });
    }
    Ok(json(&views))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct Reveal {
    /// Show secret outputs in clear (team admins; recorded in the audit log).
    reveal: Option<bool>,
}

#[utoipa::path(get, path = "/api/v1/teams/{team}/environments/{env}/outputs", tag = "environments",
    params(("team" = String, Path), ("env" = String, Path), Reveal),
    responses((status = 200, body = OutputsView), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn outputs(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path((team, env)): Path<(String, String)>,
    Query(q): Query<Reveal>,
) -> ApiResult {
    let target = format!("teams/{team}/environments/{env}/outputs");
    let reveal = q.reveal.unwrap_or(false);
    if reveal {
        state
            .authorize(&ctx, Action::RevealSecrets { team: &team }, &target)
            .await?;
    } else {
        state
            .authorize(&ctx, Action::ReadEnvironment { team: &team }, &target)
            .await?;
    }
    let e = existing_environment(&state, &team, &env).await?;
    let mut views = Vec::new();
    for stack in stacks_of(&e)? {
        let outputs = match state.engine.outputs(&stack).await {
            Ok(o) => o,
            Err(paddock_engine::EngineError::NoSuchStack(_)) => continue,
            Err(err) => return Err(Problem::unavailable(format!("reading {stack}: {err}"))),
        };
        let value = if reveal {
            serde_json::Value::Object(
                outputs
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            )
        } else {
            paddock_engine::value::redacted_props(&outputs)
        };
        views.push(StackOutputs {
            stack,
            outputs: value,
        });
    }
    if reveal {
        let mut tx = state.db.write().await?;
        audit(
            &mut tx,
            &ctx,
            "environment.outputs.reveal",
            &target,
            Some(&team),
            Some(&env),
            serde_json::json!({"stacks": views.iter().map(|v| &v.stack).collect::<Vec<_>>()}),
        )
        .await?;
        tx.commit().await?;
    }
    Ok(json(&OutputsView {
        revealed: reveal,
        stacks: views,
    }))
}

// --- operations ------------------------------------------------------------------------

/// The operation and its environment's name, if the caller may read its team.
pub(crate) async fn readable_operation(
    state: &AppState,
    ctx: &Ctx,
    id: &str,
) -> ApiResult<(db::Operation, Option<String>)> {
    ctx.caller()?;
    let op = state.db.operation(id).await?;
    // Not found and not allowed look the same to a non-member: ids are not disclosed.
    let team = op.as_ref().map(|o| o.team.clone()).unwrap_or_default();
    state
        .authorize(
            ctx,
            Action::ReadTeam { team: &team },
            &format!("operations/{id}"),
        )
        .await
        .map_err(|e| {
            if op.is_none() {
                Problem::not_found(format!("operation `{id}`"))
            } else {
                e
            }
        })?;
    let op = op.ok_or_else(|| Problem::not_found(format!("operation `{id}`")))?;
    let env = match &op.environment {
        Some(env_id) => state.db.environment_by_id(env_id).await?.map(|e| e.name),
        None => None,
    };
    Ok((op, env))
}

#[utoipa::path(get, path = "/api/v1/operations/{id}", tag = "operations",
    params(("id" = String, Path)),
    responses((status = 200, body = OperationView), (status = 404, body = Problem)))]
async fn show_operation(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult {
    let (op, env) = readable_operation(&state, &ctx, &id).await?;
    Ok(json(&OperationView::of(&op, env)))
}

/// The operation to cancel or retry, and its environment's name, if the caller may change
/// it (as they may start it). Its existence is not hidden here: a denial is a denied
/// change, recorded like any other.
async fn changeable_operation<'c>(
    state: &AppState,
    ctx: &'c Ctx,
    id: &str,
) -> ApiResult<(&'c Caller, db::Operation, Option<String>)> {
    ctx.caller()?;
    let op = state
        .db
        .operation(id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("operation `{id}`")))?;
    let stages: Vec<Stage> = serde_json::from_str(&op.stages).unwrap_or_default();
    let caller = state
        .authorize(
            ctx,
            operation_action(&op, &stages),
            &format!("operations/{id}"),
        )
        .await?;
    let env = match &op.environment {
        Some(env_id) => state.db.environment_by_id(env_id).await?.map(|e| e.name),
        None => None,
    };
    Ok((caller, op, env))
}

/// What changing an operation needs: the same as starting it.
fn operation_action<'a>(op: &'a db::Operation, stages: &'a [Stage]) -> Action<'a> {
    match (op.environment.as_deref(), op.kind.as_str()) {
        (None, _) => Action::ManageMembers { team: &op.team },
        (Some(_), "destroy") => Action::Destroy { team: &op.team },
        (Some(_), _) => Action::ChangeStages {
            team: &op.team,
            stages,
        },
    }
}

#[utoipa::path(post, path = "/api/v1/operations/{id}/cancel", tag = "operations",
    params(("id" = String, Path)),
    responses((status = 202, body = OperationView, description = "Cancelled (queued) or asked to stop (running: steps in flight finish, no new step starts)"),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn cancel_operation(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult {
    let (_, _, env) = changeable_operation(&state, &ctx, &id).await?;
    let target = format!("operations/{id}");
    let mut tx = state.db.write().await?;
    let op = tx
        .operation(&id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("operation `{id}`")))?;
    if !matches!(op.state.as_str(), "queued" | "running") {
        return Err(Problem::conflict(format!(
            "operation {id} is {}; only queued or running operations can be cancelled",
            op.state
        ))
        .with_operation(&id));
    }
    let now = now_ms();
    let immediately = tx.cancel_operation(&id, now).await?;
    if immediately && let Some(env_id) = &op.environment {
        tx.set_environment_status(env_id, "failed", now).await?;
    }
    audit(
        &mut tx,
        &ctx,
        "operation.cancel",
        &target,
        Some(&op.team),
        env.as_deref(),
        serde_json::json!({"state": op.state}),
    )
    .await?;
    let op = tx.operation(&id).await?.unwrap_or(op);
    tx.commit().await?;
    let body = serde_json::to_string(&OperationView::of(&op, env)).unwrap_or_default();
    Ok(json_response(StatusCode::ACCEPTED, &body, None))
}

#[utoipa::path(post, path = "/api/v1/operations/{id}/retry", tag = "operations",
    params(("id" = String, Path)),
    responses((status = 202, body = OperationView, description = "A new operation, the same as the failed one"),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn retry_operation(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult {
    let (caller, op, env) = changeable_operation(&state, &ctx, &id).await?;
    let stages: Vec<Stage> = serde_json::from_str(&op.stages).unwrap_or_default();
    let target = format!("operations/{id}");
    if !matches!(op.state.as_str(), "failed" | "cancelled") {
        return Err(Problem::conflict(format!(
            "operation {id} is {}; only failed or cancelled operations can be retried",
            op.state
        ))
        .with_operation(&id));
    }
    let idem = Idempotency::of(&ctx, "POST", &format!("/api/v1/operations/{id}/retry"), b"")?;
    let mut tx = state.db.write().await?;
    if let Some(i) = &idem
        && let Some(replayed) = i.replay(&mut tx).await?
    {
        return Ok(replayed);
    }
    if let Some(active) = tx
        .active_operation(&op.team, op.environment.as_deref())
        .await?
    {
        return Err(Problem::conflict(format!(
            "operation {} is {} on the same target; wait for it or cancel it",
            active.id, active.state
        ))
        .with_operation(&active.id));
    }
    let new = queue(
        &mut tx,
        Queued {
            team: &op.team,
            environment: op.environment.as_deref(),
            kind: &op.kind,
            stages: &stages,
            by: &caller.user.login,
            retry_of: Some(&id),
            request: op.request.as_deref(),
        },
    )
    .await?;
    audit(
        &mut tx,
        &ctx,
        "operation.retry",
        &target,
        Some(&op.team),
        env.as_deref(),
        serde_json::json!({"operation": new.id}),
    )
    .await?;
    let response = accepted(&mut tx, &idem, &new, env).await?;
    tx.commit().await?;
    state.work.notify_waiters();
    Ok(response)
}

// --- audit -----------------------------------------------------------------------------

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    /// Only this team's records (team members may read their team's; the whole log is
    /// for platform admins).
    team: Option<String>,
    environment: Option<String>,
    actor: Option<String>,
    /// RFC 3339 or Unix milliseconds.
    since: Option<String>,
    until: Option<String>,
    /// Records after this sequence number.
    after: Option<i64>,
    limit: Option<i64>,
}

fn parse_when(field: &str, v: &Option<String>) -> ApiResult<Option<i64>> {
    let Some(v) = v else { return Ok(None) };
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(Some(ms));
    }
    humantime::parse_rfc3339_weak(v)
        .map(|t| {
            Some(
                t.duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or_default(),
            )
        })
        .map_err(|e| Problem::field(field, format!("`{v}` is not an RFC 3339 time: {e}")))
}

async fn audit_records(
    state: &AppState,
    ctx: &Ctx,
    q: &AuditQuery,
    max: i64,
) -> ApiResult<Vec<db::AuditRecord>> {
    let target = match &q.team {
        Some(t) => format!("teams/{t}/audit"),
        None => "audit".into(),
    };
    state
        .authorize(
            ctx,
            Action::ReadAudit {
                team: q.team.as_deref(),
            },
            &target,
        )
        .await?;
    let filter = db::AuditFilter {
        team: q.team.clone(),
        environment: q.environment.clone(),
        actor: q.actor.clone(),
        since: parse_when("since", &q.since)?,
        until: parse_when("until", &q.until)?,
        after: q.after,
        limit: match q.limit {
            None if max > 1000 => max,
            None => 100,
            Some(n) if (1..=max).contains(&n) => n,
            Some(n) => {
                return Err(Problem::field(
                    "limit",
                    format!("{n} is out of range: 1 to {max}"),
                ));
            }
        },
    };
    Ok(state.db.audit(&filter).await?)
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = [AuditView]), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn list_audit(
    axum::extract::State(state): State,
    ctx: Ctx,
    Query(q): Query<AuditQuery>,
) -> ApiResult {
    let records = audit_records(&state, &ctx, &q, 1000).await?;
    Ok(json(
        &records.iter().map(AuditView::from).collect::<Vec<_>>(),
    ))
}

#[utoipa::path(get, path = "/api/v1/audit/export", tag = "audit", params(AuditQuery),
    responses((status = 200, content_type = "application/jsonl", description = "One record per line (JSON Lines)")))]
async fn export_audit(
    axum::extract::State(state): State,
    ctx: Ctx,
    Query(q): Query<AuditQuery>,
) -> ApiResult {
    let records = audit_records(&state, &ctx, &q, 100_000).await?;
    let mut out = String::new();
    for r in &records {
        out.push_str(&serde_json::to_string(&AuditView::from(r)).unwrap_or_default());
        out.push('\n');
    }
    let mut response = out.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jsonl"),
    );
    Ok(response)
}

#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit",
    responses((status = 200, body = Verification), (status = 403, body = Problem)))]
async fn verify_audit(axum::extract::State(state): State, ctx: Ctx) -> ApiResult {
    state
        .authorize(&ctx, Action::ReadAudit { team: None }, "audit")
        .await?;
    let v = state.db.verify_audit().await?;
    Ok(json(&Verification {
        intact: v.intact(),
        records: v.records,
        problems: v.problems,
    }))
}

pub(crate) fn headers_accept_sse(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}
