//! Approvals in the portal: the inbox (what waits for the viewer's decision, and what
//! was decided), and one approval with the exact plan it is bound to, why policy asks for
//! it, and Approve / Reject for the admins who may decide it (never its requester).
//!
//! Must not: decide anything itself; every decision goes through `api::decide`.

use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde::Deserialize;

use crate::AppState;
use crate::api::{self, Query, Verdict};
use crate::policy::Action;
use crate::views::{ApprovalView, StackPreview};
use paddock_store::db;

use super::*;

const PER_PAGE: i64 = 50;

pub(crate) struct Row {
    pub approval: ApprovalView,
    pub requested: When,
    pub status: Status,
    /// The viewer may approve or reject it.
    pub decidable: bool,
}

#[derive(Template)]
#[template(path = "approvals.html")]
struct InboxPage {
    chrome: Chrome,
    filter: String,
    rows: Vec<Row>,
}

#[derive(Deserialize)]
pub(crate) struct InboxQuery {
    state: Option<String>,
}

pub(crate) async fn inbox(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Query(q): Query<InboxQuery>,
) -> PageResult {
    let filter = match q.state.as_deref() {
        Some(f @ ("pending" | "approved" | "rejected" | "superseded" | "all")) => f,
        Some(_) => {
            return Err(Problem::field(
                "state",
                "must be one of pending, approved, rejected, superseded, all",
            ));
        }
        None => "pending",
    };
    let approvals = api::visible_approvals(&state, &viewer.ctx, filter, PER_PAGE).await?;
    let mut rows = Vec::with_capacity(approvals.len());
    for a in &approvals {
        rows.push(row(&state, &viewer, a).await?);
    }
    ok(&InboxPage {
        chrome: viewer
            .chrome("Approvals")
            .section("approvals")
            .crumb("Approvals", "/approvals"),
        filter: filter.to_owned(),
        rows,
    })
}

pub(crate) async fn row(
    state: &AppState,
    viewer: &Viewer,
    a: &db::Approval,
) -> Result<Row, Problem> {
    let requested_by = state
        .db
        .operation(&a.operation_id)
        .await?
        .map(|o| o.requested_by)
        .unwrap_or_default();
    Ok(Row {
        decidable: a.state == "pending"
            && viewer.may(&Action::DecideApproval {
                team: &a.team,
                requested_by: &requested_by,
            }),
        requested: When::at(a.requested_at),
        status: Status::of(&a.state),
        approval: api::approval_view(state, a).await?,
    })
}

#[derive(Template)]
#[template(path = "approval.html")]
struct ApprovalPage {
    chrome: Chrome,
    row: Row,
    plan: Option<StackPreview>,
    decided: Option<When>,
    /// Why the viewer cannot decide it, when it is pending.
    why_not: String,
    /// Why policy asks, one line per rule: its first message and how many more reasons
    /// it gave (a rule on every change of prod gives one per resource; the plan below
    /// lists them).
    reasons: Vec<(String, String, usize)>,
    errors: FormErrors,
    reason: String,
}

impl ApprovalPage {
    fn ordered(
        &self,
        counts: &std::collections::BTreeMap<String, usize>,
    ) -> Vec<(&'static str, usize)> {
        plan_counts(counts)
    }
}

async fn approval_page(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
    errors: Vec<FieldError>,
    reason: String,
) -> Result<ApprovalPage, Problem> {
    let a = api::readable_approval(state, &viewer.ctx, id).await?;
    let mut row = row(state, viewer, &a).await?;
    let plan = row.approval.plan.take();
    let why_not = if a.state == "pending" && !row.decidable {
        if row.approval.requested_by == viewer.caller().user.login {
            "You asked for this change, so another admin of the team must approve it.".into()
        } else {
            format!("Only an admin of team {} can approve or reject it.", a.team)
        }
    } else {
        String::new()
    };
    let env = row.approval.environment.clone();
    let mut chrome = viewer
        .chrome(format!("Approval of {}", a.stack))
        .section("approvals")
        .crumb("Approvals", "/approvals");
    chrome.team = Some(a.team.clone());
    if let Some(env) = &env {
        chrome = chrome.crumb(
            format!("{}/{env}", a.team),
            format!("/teams/{}/environments/{env}", a.team),
        );
    }
    let mut reasons: Vec<(String, String, usize)> = Vec::new();
    for r in row.approval.reasons.as_array().into_iter().flatten() {
        let rule = r["rule"].as_str().unwrap_or("policy").to_owned();
        match reasons.iter_mut().find(|(seen, _, _)| *seen == rule) {
            Some((_, _, more)) => *more += 1,
            None => reasons.push((rule, r["message"].as_str().unwrap_or("").to_owned(), 0)),
        }
    }
    Ok(ApprovalPage {
        reasons,
        chrome: chrome.crumb(a.stack.clone(), format!("/approvals/{id}")),
        plan,
        decided: a.decided_at.map(When::at),
        row,
        why_not,
        errors: FormErrors::of(errors),
        reason,
    })
}

pub(crate) async fn show(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    ok(&approval_page(&state, &viewer, &id, Vec::new(), String::new()).await?)
}

#[derive(Deserialize)]
pub(crate) struct DecisionForm {
    csrf_token: Option<String>,
    comment: Option<String>,
    reason: Option<String>,
}

pub(crate) async fn approve(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path(id): Path<String>,
    body: Bytes,
) -> PageResult {
    let f: DecisionForm = form(&body)?;
    viewer.check_form(f.csrf_token.as_deref())?;
    let a = api::decide(
        &state,
        &viewer.ctx,
        &id,
        Verdict::Approve { comment: f.comment },
    )
    .await?;
    see(&format!("/operations/{}", a.operation_id))
}

pub(crate) async fn reject(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path(id): Path<String>,
    body: Bytes,
) -> PageResult {
    let f: DecisionForm = form(&body)?;
    viewer.check_form(f.csrf_token.as_deref())?;
    let reason = f.reason.unwrap_or_default();
    match api::decide(
        &state,
        &viewer.ctx,
        &id,
        Verdict::Reject {
            reason: reason.clone(),
        },
    )
    .await
    {
        Ok(a) => see(&format!("/operations/{}", a.operation_id)),
        Err(p) => {
            let errors = field_errors(p)?;
            let page = approval_page(&state, &viewer, &id, errors, reason).await?;
            Ok(render(axum::http::StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
    }
}
