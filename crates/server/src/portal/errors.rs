//! Errors as pages for browsers: a request that accepts `text/html` and is not for the
//! API gets a page (403 with the policy's reason, 404, 500 with the request id) instead of
//! problem+json, which `/api/v1` keeps for every client.
//!
//! How: handlers return [`Problem`] as the API's do; [`html_errors`], a middleware over
//! the whole app, turns a problem response into a page when the request asked for HTML.
//! Denials are audited where they are decided (`AppState::authorize`), not here. A 401
//! sends the browser to the sign-in page instead.
//!
//! Must not: change an API response, or show anything the problem did not already say.

use std::sync::Arc;

use askama::Template;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::AppState;
use crate::api::RequestId;
use crate::auth::{self, Credential};
use crate::problem::{FieldError, Problem};

use super::{Chrome, render, url_encode};

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: Chrome,
    heading: String,
    detail: String,
    fields: Vec<FieldError>,
    advice: &'static str,
    request_id: String,
}

#[derive(Deserialize)]
struct ProblemDoc {
    status: u16,
    #[serde(default)]
    detail: String,
    #[serde(default)]
    errors: Vec<FieldDoc>,
}

#[derive(Deserialize)]
struct FieldDoc {
    field: String,
    message: String,
}

/// Whether the request asked for a page.
fn wants_html(request: &Request) -> bool {
    !request.uri().path().starts_with("/api/")
        && request
            .headers()
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("text/html"))
}

/// Turns problem responses into error pages for browsers.
pub(crate) async fn html_errors(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    if !wants_html(&request) {
        return next.run(request).await;
    }
    let headers = request.headers().clone();
    let method = request.method().clone();
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let response = next.run(request).await;
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let Ok(doc) = serde_json::from_slice::<ProblemDoc>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    if doc.status == 401 {
        let next = if method == Method::GET {
            path
        } else {
            "/".into()
        };
        return Redirect::to(&format!("/sign-in?next={}", url_encode(&next))).into_response();
    }
    let caller = auth::authenticate(&state.db, &headers).await.ok().flatten();
    let csrf = match caller.as_ref().map(|c| &c.credential) {
        Some(Credential::Session { csrf, .. }) => csrf.clone(),
        _ => String::new(),
    };
    let (heading, advice) = match doc.status {
        403 => (
            "You may not do this",
            "If you need it, ask an admin of the team (or a platform admin) for the role the \
             message names. The refusal is recorded in the audit log.",
        ),
        404 => (
            "Not found",
            "Check the address, or find it from your home page.",
        ),
        409 => (
            "Not now",
            "Something else is in the way; wait for it to finish or cancel it, then try again.",
        ),
        400 | 413 | 415 | 422 => (
            "That request could not be used",
            "Go back, correct it and send it again.",
        ),
        503 => (
            "Try again in a moment",
            "Paddock could not complete this just now.",
        ),
        500.. => (
            "Something went wrong on our side",
            "Try again; if it keeps failing, tell your platform team the request id below.",
        ),
        _ => ("That did not work", ""),
    };
    let status = StatusCode::from_u16(doc.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let chrome = Chrome::of(caller.as_ref(), &csrf, heading.to_owned());
    let page = ErrorPage {
        chrome,
        heading: heading.to_owned(),
        detail: doc.detail,
        fields: doc
            .errors
            .into_iter()
            .map(|f| FieldError {
                field: f.field,
                message: f.message,
                rule: None,
            })
            .collect(),
        advice,
        request_id: if doc.status >= 500 || doc.status == 403 {
            request_id
        } else {
            String::new()
        },
    };
    let mut response = render(status, &page);
    if let Some(v) = parts.headers.get("x-request-id") {
        response.headers_mut().insert("x-request-id", v.clone());
    }
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"paddock\""),
        );
    }
    response
}

/// No such page.
pub(crate) async fn not_found() -> Problem {
    Problem::not_found("this page")
}
