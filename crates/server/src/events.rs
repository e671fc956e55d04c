//! Live events as Server-Sent Events, read from the database so that any replica serves
//! any operation's stream. Each event's `id` is its row id: a client that reconnects with
//! `Last-Event-ID` (or `?after=`) gets exactly what it missed. Within one environment
//! events come from one worker at a time (one operation at a time), so ids increase in
//! the order events happened.
//!
//! Without `Accept: text/event-stream` the same endpoints answer the events so far as a
//! JSON array.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use serde::Deserialize;

use crate::AppState;
use crate::api::{Ctx, Path, Query, existing_environment, headers_accept_sse, readable_operation};
use crate::policy::Action;
use crate::problem::Problem;
use crate::views::EventView;

const POLL: Duration = Duration::from_millis(200);
const KEEPALIVE: Duration = Duration::from_secs(15);

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct After {
    /// Events after this id (as `Last-Event-ID` does).
    after: Option<i64>,
}

fn start_after(headers: &HeaderMap, q: &After) -> Result<i64, Problem> {
    if let Some(v) = headers.get("last-event-id") {
        return v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| Problem::field("Last-Event-ID", "must be an event id (an integer)"));
    }
    Ok(q.after.unwrap_or(0))
}

/// What a stream follows.
#[derive(Clone)]
struct Follow {
    operation: Option<String>,
    environment: Option<String>,
    /// For an operation: stop once it has finished and its events are all sent.
    ends: bool,
}

#[utoipa::path(get, path = "/api/v1/operations/{id}/events", tag = "operations",
    params(("id" = String, Path), After),
    responses((status = 200, body = [EventView], description = "JSON, or with `Accept: text/event-stream` a live stream that ends when the operation does")))]
pub async fn operation_events(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<After>,
) -> Result<Response, Problem> {
    readable_operation(&state, &ctx, &id).await?;
    let after = start_after(&headers, &q)?;
    let follow = Follow {
        operation: Some(id),
        environment: None,
        ends: true,
    };
    respond(state, &headers, follow, after).await
}

#[utoipa::path(get, path = "/api/v1/teams/{team}/environments/{env}/events", tag = "environments",
    params(("team" = String, Path), ("env" = String, Path), After),
    responses((status = 200, body = [EventView], description = "JSON, or with `Accept: text/event-stream` a live stream of every operation's events on this environment")))]
pub async fn environment_events(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    ctx: Ctx,
    headers: HeaderMap,
    Path((team, env)): Path<(String, String)>,
    Query(q): Query<After>,
) -> Result<Response, Problem> {
    state
        .authorize(
            &ctx,
            Action::ReadEnvironment { team: &team },
            &format!("teams/{team}/environments/{env}"),
        )
        .await?;
    let e = existing_environment(&state, &team, &env).await?;
    let after = start_after(&headers, &q)?;
    let follow = Follow {
        operation: None,
        environment: Some(e.id),
        ends: false,
    };
    respond(state, &headers, follow, after).await
}

async fn respond(
    state: Arc<AppState>,
    headers: &HeaderMap,
    follow: Follow,
    after: i64,
) -> Result<Response, Problem> {
    if !headers_accept_sse(headers) {
        let rows = state
            .db
            .events(
                follow.operation.as_deref(),
                follow.environment.as_deref(),
                after,
                1000,
            )
            .await?;
        let views: Vec<EventView> = rows.iter().map(EventView::from).collect();
        return Ok(axum::Json(views).into_response());
    }
    struct Cursor {
        state: Arc<AppState>,
        follow: Follow,
        after: i64,
        idle: Duration,
        done: bool,
    }
    let cursor = Cursor {
        state,
        follow,
        after,
        idle: Duration::ZERO,
        done: false,
    };
    let body = stream::unfold(cursor, |mut c| async move {
        if c.done {
            return None;
        }
        loop {
            if c.state.shutdown.is_cancelled() {
                return None;
            }
            let rows = c
                .state
                .db
                .events(
                    c.follow.operation.as_deref(),
                    c.follow.environment.as_deref(),
                    c.after,
                    200,
                )
                .await;
            let rows = match rows {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "reading events for a stream");
                    Vec::new()
                }
            };
            if !rows.is_empty() {
                let mut chunk = String::new();
                for row in &rows {
                    let view = EventView::from(row);
                    chunk.push_str(&format!(
                        "id: {}\nevent: {}\ndata: {}\n\n",
                        row.id,
                        row.kind,
                        serde_json::to_string(&view).unwrap_or_default()
                    ));
                    c.after = row.id;
                }
                c.idle = Duration::ZERO;
                return Some((Ok::<_, std::io::Error>(chunk), c));
            }
            if c.follow.ends
                && let Some(id) = &c.follow.operation
                && let Ok(Some(op)) = c.state.db.operation(id).await
                && !matches!(op.state.as_str(), "queued" | "running")
            {
                // Events are written before the operation finishes, so none can follow.
                c.done = true;
                let end = format!(
                    "event: end\ndata: {}\n\n",
                    serde_json::json!({"operation": op.id, "state": op.state})
                );
                return Some((Ok(end), c));
            }
            tokio::time::sleep(POLL).await;
            c.idle += POLL;
            if c.idle >= KEEPALIVE {
                c.idle = Duration::ZERO;
                return Some((Ok(": keepalive\n\n".to_owned()), c));
            }
        }
    });
    let mut response = Body::from_stream(body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}
