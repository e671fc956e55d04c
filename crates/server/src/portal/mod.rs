//! The portal: server-rendered HTML pages over the same logic as the REST API.
//!
//! Job: show people their teams, environments, operations, the audit log and the
//! blueprint catalog, and let them act through plain forms (htmx only enhances them).
//! Every page is an askama template compiled into the binary, extending one layout
//! (`templates/base.html`) fed by [`Chrome`].
//!
//! Invariants:
//! - permissions are decided only by [`crate::policy::authorize`]: a page shows a control
//!   when `policy::authorize(principal, action).is_ok()`, and every change goes through
//!   the API's own `pub(crate)` function (which authorizes again, audits a denial and
//!   writes in one transaction); nothing here compares roles;
//! - every form posts the session's CSRF token as `csrf_token`, checked with
//!   [`auth::check_csrf`] before anything else happens;
//! - every list is one bounded page (LIMIT/OFFSET or a keyset), read in a fixed number
//!   of queries whatever the number of rows;
//! - no secret value is rendered, except outputs an admin asked to reveal (through the
//!   API's audited path), on a response that is not cached.
//!
//! Must not: write to the database itself, or decide who may do what.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::api::{Ctx, RequestId};
use crate::auth::{self, Caller, Credential};
use crate::policy::{self, Action};
use crate::problem::{FieldError, Problem};

mod approvals;
pub(crate) mod assets;
mod audit;
mod blueprints;
mod environments;
pub(crate) mod errors;
pub(crate) mod fleet;
mod home;
mod lifecycle;
mod operations;
mod policies;
mod requests;
mod teams;
mod view;

pub(crate) use home::sign_in_page;
pub(crate) use view::*;

pub(crate) type PageResult = Result<Response, Problem>;

/// The portal's routes; `/api/v1` stays the API's.
pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(home::home))
        .route("/welcome", get(home::welcome))
        .route("/teams", get(teams::list))
        .route("/teams/new", get(teams::new_team).post(teams::create_team))
        .route("/teams/{team}", get(teams::show))
        .route("/teams/{team}/members", post(teams::add_member))
        .route("/teams/{team}/members/{login}", post(teams::change_member))
        .route(
            "/teams/{team}/members/{login}/remove",
            post(teams::remove_member),
        )
        .route("/people", get(teams::people).post(teams::create_person))
        .route(
            "/teams/{team}/environments/new",
            get(requests::new_form).post(requests::submit_new),
        )
        .route(
            "/teams/{team}/environments/new/check",
            post(requests::check_new),
        )
        .route(
            "/teams/{team}/environments/{env}/edit",
            get(requests::edit_form).post(requests::submit_edit),
        )
        .route(
            "/teams/{team}/environments/{env}/edit/check",
            post(requests::check_edit),
        )
        .route("/teams/{team}/environments/{env}", get(environments::show))
        .route(
            "/teams/{team}/environments/{env}/operations",
            post(environments::act),
        )
        .route(
            "/teams/{team}/environments/{env}/destroy",
            get(environments::confirm_destroy).post(environments::destroy),
        )
        .route(
            "/teams/{team}/environments/{env}/reveal",
            post(environments::reveal),
        )
        .route(
            "/teams/{team}/environments/{env}/expiry",
            post(lifecycle::set_expiry),
        )
        .route(
            "/teams/{team}/environments/{env}/drift/accept",
            post(lifecycle::accept_drift),
        )
        .route(
            "/teams/{team}/environments/{env}/upgrade",
            post(fleet::upgrade),
        )
        .route("/teams/{team}/environments/{env}/pin", post(fleet::pin))
        .route(
            "/blueprints/{name}/rollouts",
            get(fleet::list).post(fleet::start),
        )
        .route("/blueprints/{name}/rollouts/{id}", get(fleet::show))
        .route(
            "/blueprints/{name}/rollouts/{id}/cancel",
            post(fleet::cancel),
        )
        .route("/operations/{id}", get(operations::show))
        .route("/operations/{id}/cancel", post(operations::cancel))
        .route("/operations/{id}/retry", post(operations::retry))
        .route("/approvals", get(approvals::inbox))
        .route("/approvals/{id}", get(approvals::show))
        .route("/approvals/{id}/approve", post(approvals::approve))
        .route("/approvals/{id}/reject", post(approvals::reject))
        .route("/audit", get(audit::page))
        .route("/audit/verify", get(audit::verify))
        .route("/blueprints", get(blueprints::list))
        .route("/policies", get(policies::page).post(policies::publish))
        .route(
            "/blueprints/{name}/versions/{version}",
            get(blueprints::show),
        )
        .route("/assets/{hash}/{name}", get(assets::serve))
        .fallback(errors::not_found)
}

/// A signed-in person looking at a page. Anonymous visitors (and expired sessions) are
/// sent to `/sign-in?next=…` instead.
pub(crate) struct Viewer {
    /// The request as the API's functions take it; its caller is always present.
    pub ctx: Ctx,
    pub headers: HeaderMap,
}

impl Viewer {
    pub(crate) fn caller(&self) -> &Caller {
        self.ctx.caller.as_ref().expect("a viewer is signed in")
    }

    /// The session's CSRF token, for forms (empty for bearer tokens, which need none).
    pub(crate) fn csrf(&self) -> &str {
        match &self.caller().credential {
            Credential::Session { csrf, .. } => csrf,
            Credential::Token { .. } => "",
        }
    }

    /// Whether the policy allows this viewer `action`: what decides which controls show.
    pub(crate) fn may(&self, action: &Action<'_>) -> bool {
        policy::authorize(&self.caller().principal, action).is_ok()
    }

    /// Checks a form's CSRF token (a cookie-authenticated post must carry the session's).
    pub(crate) fn check_form(&self, token: Option<&str>) -> Result<(), Problem> {
        auth::check_csrf(self.caller(), &Method::POST, &self.headers, token)
    }

    /// The layout's data for a page titled `title`.
    pub(crate) fn chrome(&self, title: impl Into<String>) -> Chrome {
        Chrome::of(Some(self.caller()), self.csrf(), title.into())
    }
}

impl FromRequestParts<Arc<AppState>> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Viewer, Response> {
        let caller = match auth::authenticate(&state.db, &parts.headers).await {
            Ok(Some(c)) => c,
            Ok(None) => return Err(to_sign_in(parts)),
            Err(p) if p.status == 401 => return Err(to_sign_in(parts)),
            Err(p) => return Err(p.into_response()),
        };
        let source = parts
            .extensions
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip().to_string())
            .unwrap_or_else(|| "unknown".into());
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        Ok(Viewer {
            ctx: Ctx {
                caller: Some(caller),
                source,
                request_id,
                idempotency_key: None,
            },
            headers: parts.headers.clone(),
        })
    }
}

/// See other: to the sign-in page, coming back here (for a page) or home (after a post).
fn to_sign_in(parts: &Parts) -> Response {
    let next = if parts.method == Method::GET {
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".into())
    } else {
        "/".into()
    };
    let mut response =
        Redirect::to(&format!("/sign-in?next={}", url_encode(&next))).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Percent-encodes a query value.
pub(crate) fn url_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A local path to go to after signing in: only paths on this site, else `/`. A browser
/// reads `Location` as a URL: it drops tabs and newlines and takes `\` for `/`, so
/// `/\t/evil.example` or `/\evil.example` would leave the site; and a header cannot
/// carry control characters (the redirect would fail). So only visible ASCII without `\`,
/// starting with one `/`, is kept (the portal sends paths percent-encoded).
pub(crate) fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && n.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            n.to_owned()
        }
        _ => "/".into(),
    }
}

/// Parses a form body (`application/x-www-form-urlencoded`), naming the field at fault.
pub(crate) fn form<T: DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(body));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        Problem::field(&field, e.into_inner().to_string())
    })
}

/// Renders a page: HTML, never cached (pages show live state and carry CSRF tokens).
pub(crate) fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => {
            let mut response = (status, Html(html)).into_response();
            let h = response.headers_mut();
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            h.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("same-origin"),
            );
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
                ),
            );
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "rendering a page");
            Problem::internal("the page could not be rendered").into_response()
        }
    }
}

pub(crate) fn ok(page: &impl Template) -> PageResult {
    Ok(render(StatusCode::OK, page))
}

/// After a form did its work: see the result (303, so a reload does not post again).
pub(crate) fn see(path: &str) -> PageResult {
    Ok(Redirect::to(path).into_response())
}

/// The field errors of a refused form, to show next to each field; any other problem
/// is passed on (to the error page).
/// Errors as a form shows them: a policy's reason names its rule, and one about the
/// request as a whole goes to the top of the form (no field).
pub(crate) fn for_form(errors: Vec<FieldError>) -> Vec<FieldError> {
    errors
        .into_iter()
        .map(|mut e| {
            if let Some(rule) = &e.rule {
                e.message = format!("{} (policy rule {rule})", e.message);
                if e.field == crate::api::WHOLE_REQUEST {
                    e.field.clear();
                }
            }
            e
        })
        .collect()
}

pub(crate) fn field_errors(p: Problem) -> Result<Vec<FieldError>, Problem> {
    if p.status == 422 || (p.status == 400 && !p.errors.is_empty()) {
        Ok(if p.errors.is_empty() {
            vec![FieldError {
                field: String::new(),
                message: p.detail,
                rule: None,
            }]
        } else {
            for_form(p.errors)
        })
    } else if p.status == 409 {
        Ok(vec![FieldError {
            field: String::new(),
            message: p.detail,
            rule: None,
        }])
    } else {
        Err(p)
    }
}
