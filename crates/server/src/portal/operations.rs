//! The operation page: what it does, who asked, its progress (steps done of the planned
//! steps) and per-resource timeline — live while it runs (SSE) — and, when it failed,
//! the failing resource, the cloud's code and message in plain words with what to do,
//! and Retry; Cancel while it runs. Cancel and retry call the API's own functions.
//!
//! Invariants: the page reads the operation, its environment and at most
//! [`MAX_EVENTS`] events; not found and not allowed look the same to a non-member (as
//! in the API); events carry no secret values (the engine never puts them there).
//!
//! Must not: decide who may cancel or retry (controls show by `Viewer::may`).

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use paddock_platform::Stage;
use paddock_store::db;

use crate::AppState;
use crate::api;

use super::environments::{
    ResourceRow, SystemGroup, TokenForm, group_by_system, queued, statuses_after, step_word,
};
use super::home::operation_words;
use super::*;

/// At most this many events are read for a page (an environment's run has ~100).
const MAX_EVENTS: i64 = 2000;
/// At most this many log lines are shown (the newest).
const MAX_LINES: usize = 300;

/// A run's log so far, and how to follow it.
pub(crate) struct LiveLog {
    pub op_id: String,
    pub what: String,
    pub status: Status,
    /// The SSE URL to follow (after the events shown).
    pub stream: String,
    pub lines: Vec<(String, String, String)>,
    pub done: usize,
    pub total: usize,
    pub statuses: BTreeMap<String, Status>,
}

impl LiveLog {
    pub(crate) fn percent(&self) -> usize {
        (self.done * 100).checked_div(self.total).unwrap_or(0)
    }
}

/// The event kinds a live page listens for.
pub(crate) const EVENT_KINDS: &str = "operationStarted,planned,reconciled,stepStarted,\
stepSucceeded,stepFailed,stepSkipped,drift,waiting,plan,imported,operationFinished,end";

/// The log of `op` so far; it follows the environment's stream when `env` is given,
/// else the operation's own.
pub(crate) async fn live_log(
    state: &AppState,
    op: &db::Operation,
    env: Option<&db::Environment>,
) -> Result<LiveLog, Problem> {
    let events = state.db.events(Some(&op.id), None, 0, MAX_EVENTS).await?;
    let last = events.last().map(|e| e.id).unwrap_or(0);
    let (mut done, mut total) = (0, 0);
    let mut lines = Vec::new();
    for ev in &events {
        let data: serde_json::Value = serde_json::from_str(&ev.data).unwrap_or_default();
        match ev.kind.as_str() {
            "planned" => total += data["steps"].as_u64().unwrap_or(0) as usize,
            "stepSucceeded" | "stepFailed" | "stepSkipped" => done += 1,
            _ => {}
        }
        let at = crate::views::time(ev.at);
        lines.push((
            at.clone(),
            at[11..19].to_owned(),
            event_line(&ev.kind, &data),
        ));
    }
    if lines.len() > MAX_LINES {
        lines.drain(..lines.len() - MAX_LINES);
    }
    let stream = match env {
        Some(e) => format!(
            "/api/v1/teams/{}/environments/{}/events?after={last}",
            e.team, e.name
        ),
        None => format!("/api/v1/operations/{}/events?after={last}", op.id),
    };
    Ok(LiveLog {
        op_id: op.id.clone(),
        what: operation_words(&op.kind).to_owned(),
        status: Status::of(&op.state),
        stream,
        lines,
        done: done.min(total),
        total,
        statuses: statuses_after(&events),
    })
}

/// One event as a log line (the same words portal.js writes for live events).
pub(crate) fn event_line(kind: &str, d: &serde_json::Value) -> String {
    let s = |k: &str| d[k].as_str().unwrap_or("").to_owned();
    let what = s("resource");
    match kind {
        "operationStarted" => format!(
            "operation started (attempt {})",
            d["attempt"].as_i64().unwrap_or(1)
        ),
        "operationFinished" => format!("operation {}", s("state")),
        "planned" => format!(
            "{}: planned {} steps, {} changes",
            s("stack"),
            d["steps"],
            d["changes"]
        ),
        "stepStarted" => format!("{what}: {}…", step_word(&s("kind"))),
        "stepSucceeded" => format!("{what}: done in {} ms", d["elapsedMs"]),
        "stepFailed" => format!(
            "{what}: failed{}: {}",
            d["code"]
                .as_str()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default(),
            s("message")
        ),
        "stepSkipped" => format!("{what}: skipped: {}", s("reason")),
        "drift" => format!("{what}: drifted ({})", s("change")),
        "reconciled" => format!("{what}: reconciled ({})", s("outcome")),
        "waiting" => format!("{}: waiting for {}", s("stack"), s("heldBy")),
        "imported" => format!("{what}: imported {}", s("id")),
        "plan" => format!("{}: preview ready", s("stack")),
        other => other.to_owned(),
    }
}

/// A failure in plain words.
struct Failure {
    resource: String,
    ty: String,
    stack: String,
    code: String,
    message: String,
    advice: String,
}

/// What to do about a cloud's error code, in plain words.
fn advice(code: &str, message: &str) -> String {
    let lower = format!("{code} {message}").to_lowercase();
    if lower.contains("403") || lower.contains("forbidden") || lower.contains("authorization") {
        "Paddock's own identity was refused by the cloud: a platform admin must grant it the \
         permission the message names, then retry."
            .into()
    } else if lower.contains("429") || lower.contains("throttl") || lower.contains("rate limit") {
        "The cloud is rate-limiting Paddock. Wait a few minutes, then retry.".into()
    } else if lower.contains("409") || lower.contains("conflict") || lower.contains("exists") {
        "Something with the same name exists outside Paddock. Remove it or import it, then \
         retry."
            .into()
    } else if lower.contains("quota") {
        "A quota in the cloud is spent. Free some capacity or ask for more, then retry.".into()
    } else if lower.contains("timeout") || lower.contains("unavailable") {
        "The cloud did not answer in time. Retry; steps that succeeded are not repeated.".into()
    } else {
        "Fix the cause the message names, then retry: steps that succeeded are not repeated.".into()
    }
}

struct Fact {
    label: &'static str,
    value: String,
}

#[derive(Template)]
#[template(path = "operation.html")]
struct OperationPage {
    chrome: Chrome,
    id: String,
    what: String,
    status: Status,
    team: String,
    environment: Option<String>,
    facts: Vec<Fact>,
    requested: When,
    started: Option<When>,
    finished: Option<When>,
    log: LiveLog,
    running: bool,
    timeline: Vec<(String, Vec<SystemGroup>)>,
    failure: Option<Failure>,
    error: String,
    retry_of: Option<String>,
    may_cancel: bool,
    may_retry: bool,
    cancel_requested: bool,
    summary: Vec<(String, String)>,
    /// The approvals this operation asked for, oldest first.
    approvals: Vec<super::approvals::Row>,
}

pub(crate) async fn show(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    let (op, env_name) = api::readable_operation(&state, &viewer.ctx, &id).await?;
    let log = live_log(&state, &op, None).await?;
    let stages: Vec<Stage> = serde_json::from_str(&op.stages).unwrap_or_default();
    let running = matches!(op.state.as_str(), "queued" | "running");
    let mut approvals = Vec::new();
    for a in state.db.approvals_of(&op.id).await? {
        approvals.push(super::approvals::row(&state, &viewer, &a).await?);
    }
    let outcome: serde_json::Value =
        serde_json::from_str(op.outcome.as_deref().unwrap_or("null")).unwrap_or_default();
    let failure = outcome["failure"].as_object().map(|f| {
        let text = |k: &str| f.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
        Failure {
            resource: text("resource"),
            ty: text("type"),
            stack: text("stack"),
            advice: match text("whatToDo") {
                what if what.is_empty() => advice(&text("code"), &text("message")),
                what => what,
            },
            code: text("code"),
            message: text("message"),
        }
    });
    let error = outcome["error"].as_str().unwrap_or("").to_owned();
    let mut summary = Vec::new();
    for s in outcome["stacks"].as_array().into_iter().flatten() {
        let stack = s["stack"].as_str().unwrap_or("").to_owned();
        let text = if let Some(p) = s.get("summary") {
            format!(
                "plan: {}",
                p.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| p.to_string())
            )
        } else if let Some(d) = s.get("drift") {
            match d.as_array().map(Vec::len) {
                Some(0) => "no drift".to_owned(),
                Some(n) => format!("{n} drifted"),
                None => d.to_string(),
            }
        } else {
            let done: Vec<String> = s["done"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| k.as_str() != "same")
                .filter_map(|(k, n)| Some(format!("{} {}", n.as_u64()?, done_word(k))))
                .collect();
            if done.is_empty() {
                "no changes".to_owned()
            } else {
                done.join(", ")
            }
        };
        summary.push((stack, text));
    }
    for p in outcome["plans"].as_array().into_iter().flatten() {
        summary.push((
            p["stack"].as_str().unwrap_or("").to_owned(),
            format!(
                "plan: {}",
                p["summary"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| p["summary"].to_string())
            ),
        ));
    }
    // The per-resource timeline: every resource the events name, per stack (in the
    // order they ran), grouped by system, with what happened to it and how long it took.
    let events = state.db.events(Some(&op.id), None, 0, MAX_EVENTS).await?;
    let mut stacks: Vec<(String, Vec<ResourceRow>)> = Vec::new();
    for ev in &events {
        let d: serde_json::Value = serde_json::from_str(&ev.data).unwrap_or_default();
        let (Some(stack), Some(r)) = (d["stack"].as_str(), d["resource"].as_str()) else {
            continue;
        };
        let key = format!("{stack}/{r}");
        if !stacks.iter().any(|(s, _)| s == stack) {
            stacks.push((stack.to_owned(), Vec::new()));
        }
        let rows = &mut stacks
            .iter_mut()
            .find(|(s, _)| s == stack)
            .expect("pushed")
            .1;
        if !rows.iter().any(|row| row.key == key) {
            rows.push(ResourceRow {
                status: log
                    .statuses
                    .get(&key)
                    .cloned()
                    .unwrap_or_else(|| Status::of("waiting")),
                link: None,
                id: String::new(),
                name: r.to_owned(),
                ty: String::new(),
                key: key.clone(),
                note: String::new(),
            });
        }
        let row = rows.iter_mut().find(|row| row.key == key).expect("pushed");
        if row.ty.is_empty() {
            row.ty = d["ty"].as_str().unwrap_or("").to_owned();
        }
        let step = d["kind"].as_str().unwrap_or("");
        row.note = match ev.kind.as_str() {
            "stepStarted" => format!(
                "{} since {}",
                step_word(step),
                &crate::views::time(ev.at)[11..19]
            ),
            "stepSucceeded" => format!("{} in {} ms", done_word(step), d["elapsedMs"]),
            "stepFailed" => format!("{step} failed"),
            "stepSkipped" => format!("skipped: {}", d["reason"].as_str().unwrap_or("")),
            "drift" => format!("drifted: {}", d["change"].as_str().unwrap_or("")),
            _ => std::mem::take(&mut row.note),
        };
    }
    let timeline: Vec<(String, Vec<SystemGroup>)> = stacks
        .into_iter()
        .map(|(stack, rows)| (stack, group_by_system(rows)))
        .collect();
    let action = api::operation_action(&op, &stages);
    let mut chrome = viewer.chrome(format!("Operation {id}")).in_team(&op.team);
    if let Some(env) = &env_name {
        chrome = chrome.crumb(env, format!("/teams/{}/environments/{env}", op.team));
    }
    chrome = chrome.crumb(
        format!("{} {}", operation_words(&op.kind), short(&id)),
        format!("/operations/{id}"),
    );
    if running {
        chrome = chrome.live();
    }
    let facts = vec![
        Fact {
            label: "Stages",
            value: if stages.is_empty() {
                "the team itself".into()
            } else {
                stages
                    .iter()
                    .map(|s| s.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        },
        Fact {
            label: "Requested by",
            value: op.requested_by.clone(),
        },
        Fact {
            label: "Attempts",
            value: op.attempts.to_string(),
        },
    ];
    ok(&OperationPage {
        approvals,
        chrome,
        what: operation_words(&op.kind).to_owned(),
        status: Status::of(&op.state),
        team: op.team.clone(),
        environment: env_name,
        facts,
        requested: When::at(op.created_at),
        started: op.started_at.map(When::at),
        finished: op.finished_at.map(When::at),
        log,
        running,
        timeline,
        failure,
        error,
        retry_of: op.retry_of.clone(),
        may_cancel: (running || op.state == "waiting_for_approval") && viewer.may(&action),
        may_retry: matches!(op.state.as_str(), "failed" | "cancelled") && viewer.may(&action),
        cancel_requested: op.cancel_requested,
        summary,
        id,
    })
}

/// A step kind, done: `create` → "created".
fn done_word(kind: &str) -> &str {
    match kind {
        "create" => "created",
        "update" => "updated",
        "replace" => "replaced",
        "delete" => "deleted",
        "read" => "read",
        other => other,
    }
}

/// `op_3f9a1c2b…` → `3f9a1c2b`.
fn short(id: &str) -> &str {
    let rest = id.split_once('_').map(|(_, r)| r).unwrap_or(id);
    &rest[..rest.len().min(8)]
}

pub(crate) async fn cancel(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path(id): Path<String>,
    body: Bytes,
) -> PageResult {
    let f: TokenForm = form(&body)?;
    viewer.check_form(f.csrf_token.as_deref())?;
    api::cancel(&state, &viewer.ctx, &id).await?;
    see(&format!("/operations/{id}"))
}

pub(crate) async fn retry(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path(id): Path<String>,
    body: Bytes,
) -> PageResult {
    let f: TokenForm = form(&body)?;
    viewer.check_form(f.csrf_token.as_deref())?;
    let answer = api::retry(&state, &viewer.ctx, &id).await?;
    queued(answer, &format!("/operations/{id}"))
}
