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
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use paddock_platform::Stage;
use paddock_store::db::{self, NewAudit, Remembered, WriteTx, now_ms};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::auth::{self, Caller};
use crate::policy::{self, Action, Role, Scope};
use crate::problem::{FieldError, Problem};
use crate::views::*;
use crate::{AppState, events, openapi, sign_in};

mod accounts;
mod approvals;
mod audit;
mod blueprints;
mod edge;
mod environments;
mod fleet;
mod lifecycle;
mod operations;
mod policy_packs;
mod request_policy;
mod requests;
mod teams;

pub(crate) use accounts::*;
pub(crate) use approvals::*;
pub(crate) use audit::*;
pub(crate) use blueprints::*;
pub use edge::Path;
use edge::{Authenticated, authenticate_first};
pub(crate) use environments::*;
pub(crate) use fleet::*;
pub use lifecycle::ExpiryRequest;
pub(crate) use lifecycle::*;
pub(crate) use operations::*;
pub(crate) use policy_packs::*;
pub(crate) use request_policy::*;
pub use requests::EnvironmentRequest;
pub(crate) use requests::*;
pub(crate) use teams::*;

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
            "/blueprints/{name}/versions/{version}/schema",
            get(blueprint_schema),
        )
        .route("/blueprints/{name}/versions", post(publish_version))
        .route(
            "/blueprints/{name}/rollouts",
            get(list_rollouts).post(start_rollout),
        )
        .route("/blueprints/{name}/rollouts/{id}", get(show_rollout))
        .route(
            "/blueprints/{name}/rollouts/{id}/cancel",
            post(cancel_rollout),
        )
        .route(
            "/teams/{team}/environments/{env}/upgrade",
            get(show_upgrade).post(upgrade_environment),
        )
        .route("/teams/{team}/environments/{env}/pin", put(pin_environment))
        .route(
            "/teams/{team}/environments",
            get(list_environments).post(create_environment),
        )
        .route(
            "/teams/{team}/environments/{env}",
            get(show_environment).patch(update_environment),
        )
        .route(
            "/teams/{team}/environments/{env}/operations",
            get(environment_operations).post(create_operation),
        )
        .route("/teams/{team}/environments/{env}/expiry", put(put_expiry))
        .route("/teams/{team}/environments/{env}/drift", get(show_drift))
        .route(
            "/teams/{team}/environments/{env}/drift/accept",
            post(accept_drift),
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
        .route("/approvals", get(list_approvals))
        .route("/approvals/{id}", get(show_approval))
        .route("/approvals/{id}/approve", post(approve))
        .route("/approvals/{id}/reject", post(reject))
        .route(
            "/policy-packs",
            get(list_policy_packs).post(publish_policy_pack),
        )
        .route("/policy-packs/evaluate", post(evaluate_policy_pack))
        .route("/policy-packs/{version}", get(show_policy_pack))
        .route("/audit", get(list_audit))
        .route("/audit/export", get(export_audit))
        .route("/audit/verify", get(verify_audit))
        .route("/openapi.json", get(openapi::document))
        .fallback(|| async { Problem::not_found("this API path") })
        .with_state(state.clone());
    // Before the extractors of every route, as one layer around the whole API rather than
    // one per route, so that a 401 carries nothing a route adds (its `Allow`): see `edge`.
    let api = Router::<()>::new()
        .fallback_service(api)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            authenticate_first,
        ));
    let max_body = state.config.max_body_bytes();
    Router::new()
        .nest_service("/api/v1", api)
        .merge(sign_in::router())
        .merge(crate::portal::router())
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(crate::metrics::render))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::portal::errors::html_errors,
        ))
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
pub(crate) struct RequestId(pub(crate) String);

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
        self.caller.as_ref().ok_or_else(edge::not_signed_in)
    }
}

impl FromRequestParts<Arc<AppState>> for Ctx {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> ApiResult<Ctx> {
        // Under `/api/v1` the edge has authenticated the caller already; the portal's
        // pages, which may be anonymous, do it here.
        let caller = match parts.extensions.get::<Authenticated>() {
            Some(Authenticated(caller)) => Some(caller.clone()),
            None => auth::authenticate(&state.db, &parts.headers).await?,
        };
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
    let value: serde_json::Value = serde_json::from_slice(raw)
        .map_err(|e| Problem::bad_request(format!("the body is not valid JSON: {e}")))?;
    let result: Result<T, _> = serde_path_to_error::deserialize(integers_as_integers(value));
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
            return Err(Problem::unreadable("invalid-body", field, message));
        }
    };
    Ok(value)
}

/// JSON has one kind of number: `3.0` is the integer 3 (as JSON Schema's `integer` says),
/// which serde would refuse for an integer field.
fn integers_as_integers(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(integers_as_integers).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k, integers_as_integers(v)))
                .collect(),
        ),
        other => other,
    }
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

/// What a change that queues work answered: the API's response, and the operation it
/// queued (absent when an `Idempotency-Key` replayed an earlier response, or nothing was
/// queued). The API sends the response; the portal redirects to the operation.
pub(crate) struct Answer {
    pub(crate) response: Response,
    pub(crate) operation: Option<db::Operation>,
}

impl Answer {
    pub(crate) fn queued(response: Response, operation: db::Operation) -> Answer {
        Answer {
            response,
            operation: Some(operation),
        }
    }

    pub(crate) fn replayed(response: Response) -> Answer {
        Answer {
            response,
            operation: None,
        }
    }
}

/// Records an allowed change in `tx`.
pub(crate) async fn audit(
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
pub(crate) struct Idempotency {
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

pub(crate) fn json_response(status: StatusCode, body: &str, location: Option<&str>) -> Response {
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

pub(crate) fn json<T: serde::Serialize>(value: &T) -> Response {
    json_response(
        StatusCode::OK,
        &serde_json::to_string(value).unwrap_or_default(),
        None,
    )
}

pub(crate) fn headers_accept_sse(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}
