//! Approvals: the inbox of operations waiting for a second person, and the decision.
//!
//! Policy on a plan may require approval (the worker stops the operation at that stack,
//! `waiting_for_approval`, with one pending approval bound to the plan's hash). Another
//! admin of the team approves — the operation goes back to the queue and, if its plan is
//! still the approved one, runs — or rejects it with a reason, which ends it. The person
//! who requested the operation can do neither (`policy::authorize`).

use super::*;
use utoipa::ToSchema;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ApprovalQuery {
    /// `pending` (default), `approved`, `rejected`, `superseded` or `all`.
    #[param(pattern = "^(pending|approved|rejected|superseded|all)$")]
    pub state: Option<String>,
    /// At most this many, newest first (1–500, default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

const APPROVAL_STATES: &[&str] = &["pending", "approved", "rejected", "superseded", "all"];

/// The approvals the caller may see (their teams'; a platform admin's: all), in `state`.
pub(crate) async fn visible_approvals(
    state: &AppState,
    ctx: &Ctx,
    filter: &str,
    limit: i64,
) -> ApiResult<Vec<db::Approval>> {
    let caller = ctx.caller()?;
    let teams: Option<Vec<String>> = if caller.principal.platform_admin {
        None
    } else {
        Some(caller.principal.roles.keys().cloned().collect())
    };
    let state_filter = (filter != "all").then_some(filter);
    Ok(state
        .db
        .approvals(state_filter, teams.as_deref(), limit)
        .await?)
}

#[utoipa::path(get, path = "/api/v1/approvals", tag = "approvals", params(ApprovalQuery),
    responses((status = 200, body = Vec<ApprovalView>, description = "The caller's teams' approvals, newest first"),
        (status = 401, body = Problem), (status = 422, body = Problem, description = "An unknown state or a limit out of range")))]
pub(crate) async fn list_approvals(
    axum::extract::State(state): State,
    ctx: Ctx,
    Query(q): Query<ApprovalQuery>,
) -> ApiResult {
    ctx.caller()?;
    let filter = q.state.as_deref().unwrap_or("pending");
    if !APPROVAL_STATES.contains(&filter) {
        return Err(Problem::field(
            "state",
            format!("must be one of {}", APPROVAL_STATES.join(", ")),
        ));
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(Problem::field("limit", "must be between 1 and 500"));
    }
    let approvals = visible_approvals(&state, &ctx, filter, limit).await?;
    let mut views = Vec::with_capacity(approvals.len());
    for a in &approvals {
        views.push(approval_view(&state, a).await?);
    }
    Ok(json(&views))
}

/// The approval, if the caller may read its team (else 404: ids are not disclosed).
pub(crate) async fn readable_approval(
    state: &AppState,
    ctx: &Ctx,
    id: &str,
) -> ApiResult<db::Approval> {
    let caller = ctx.caller()?;
    let found = state.db.approval(id).await?;
    match found {
        Some(a)
            if policy::authorize(&caller.principal, &Action::ReadTeam { team: &a.team })
                .is_ok() =>
        {
            Ok(a)
        }
        _ => Err(Problem::not_found(format!("approval `{id}`"))),
    }
}

pub(crate) async fn approval_view(state: &AppState, a: &db::Approval) -> ApiResult<ApprovalView> {
    let env = match &a.environment {
        Some(id) => state.db.environment_by_id(id).await?.map(|e| e.name),
        None => None,
    };
    Ok(ApprovalView::of(a, env))
}

#[utoipa::path(get, path = "/api/v1/approvals/{id}", tag = "approvals",
    params(("id" = String, Path)),
    responses((status = 200, body = ApprovalView), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn show_approval(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult {
    let a = readable_approval(&state, &ctx, &id).await?;
    Ok(json(&approval_view(&state, &a).await?))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// Optional words for the record.
    #[schema(max_length = 2000)]
    pub comment: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    /// Why: shown to the requester and kept in the audit log.
    #[schema(min_length = 1, max_length = 2000, pattern = r"\S")]
    pub reason: String,
}

/// What the approver decided.
pub(crate) enum Verdict {
    Approve { comment: Option<String> },
    Reject { reason: String },
}

#[utoipa::path(post, path = "/api/v1/approvals/{id}/approve", tag = "approvals",
    params(("id" = String, Path)), request_body = ApproveRequest,
    responses((status = 200, body = ApprovalView, description = "Approved: the operation is queued again and runs if its plan is still this one"),
        (status = 401, body = Problem), (status = 403, body = Problem, description = "Not an admin of the team, or the operation's own requester"),
        (status = 404, body = Problem), (status = 409, body = Problem, description = "Already decided, or superseded by a newer plan"),
        (status = 422, body = Problem, description = "A comment too long")))]
pub(crate) async fn approve(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
    Body { value, .. }: Body<ApproveRequest>,
) -> ApiResult {
    let comment = value.comment;
    let a = decide(&state, &ctx, &id, Verdict::Approve { comment }).await?;
    Ok(json(&approval_view(&state, &a).await?))
}

#[utoipa::path(post, path = "/api/v1/approvals/{id}/reject", tag = "approvals",
    params(("id" = String, Path)), request_body = RejectRequest,
    responses((status = 200, body = ApprovalView, description = "Rejected: the operation ends, nothing more of it runs"),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem, description = "No reason given")))]
pub(crate) async fn reject(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
    Body { value, .. }: Body<RejectRequest>,
) -> ApiResult {
    let a = decide(
        &state,
        &ctx,
        &id,
        Verdict::Reject {
            reason: value.reason,
        },
    )
    .await?;
    Ok(json(&approval_view(&state, &a).await?))
}

/// Approves or rejects a pending approval: the API's and the portal's one way to.
pub(crate) async fn decide(
    state: &AppState,
    ctx: &Ctx,
    id: &str,
    verdict: Verdict,
) -> ApiResult<db::Approval> {
    let a = readable_approval(state, ctx, id).await?;
    let op = state
        .db
        .operation(&a.operation_id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("operation `{}`", a.operation_id)))?;
    let target = format!("approvals/{id}");
    let caller = state
        .authorize(
            ctx,
            Action::DecideApproval {
                team: &a.team,
                requested_by: &op.requested_by,
            },
            &target,
        )
        .await?;
    let comment = match &verdict {
        Verdict::Approve { comment } => comment.as_deref().map(str::trim).filter(|c| !c.is_empty()),
        Verdict::Reject { reason } => {
            let reason = reason.trim();
            if blank(reason) {
                return Err(Problem::field(
                    "reason",
                    "say why the operation is rejected: the requester reads it",
                ));
            }
            Some(reason)
        }
    };
    if comment.is_some_and(|c| c.chars().count() > 2000) {
        return Err(Problem::field(
            match verdict {
                Verdict::Approve { .. } => "comment",
                Verdict::Reject { .. } => "reason",
            },
            "must be at most 2000 characters",
        ));
    }
    let env_name = match &a.environment {
        Some(env_id) => state.db.environment_by_id(env_id).await?.map(|e| e.name),
        None => None,
    };
    let mut tx = state.db.write().await?;
    let now = now_ms();
    let current = tx
        .approval(id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("approval `{id}`")))?;
    if current.state != "pending" {
        let mut problem = Problem::conflict(match current.state.as_str() {
            "superseded" => format!(
                "approval {id} is superseded: the plan changed after it was asked for (or the \
                 operation ended); approve the operation's current approval instead"
            ),
            other => format!(
                "approval {id} is already {other}{}",
                current
                    .decided_by
                    .as_deref()
                    .map(|by| format!(" by {by}"))
                    .unwrap_or_default()
            ),
        });
        problem = problem.with_operation(&a.operation_id);
        return Err(problem);
    }
    let (decided, action) = match verdict {
        Verdict::Approve { .. } => ("approved", "approval.approve"),
        Verdict::Reject { .. } => ("rejected", "approval.reject"),
    };
    tx.decide_approval(id, decided, &caller.user.login, comment, now)
        .await?;
    match decided {
        "approved" => {
            tx.requeue_approved(&a.operation_id).await?;
        }
        _ => {
            let outcome = serde_json::json!({
                "failure": {
                    "stack": a.stack,
                    "code": "ApprovalRejected",
                    "message": format!("{} rejected the plan: {}", caller.user.login, comment.unwrap_or_default()),
                    "whatToDo": "change the request as the reason says, then ask again",
                },
                "approval": id,
            });
            if tx
                .end_waiting(&a.operation_id, "failed", &outcome.to_string(), now)
                .await?
                && let Some(env_id) = &a.environment
                && let Some(env) = tx.environment_by_id(env_id).await?
            {
                // Nothing of the rejected plan ran; an environment that was never made
                // stays failed, one that stands is as it was.
                let status = if env.status == "creating" {
                    "failed"
                } else {
                    "ready"
                };
                tx.set_environment_status(env_id, status, now).await?;
            }
        }
    }
    audit(
        &mut tx,
        ctx,
        action,
        &target,
        Some(&a.team),
        env_name.as_deref(),
        serde_json::json!({
            "operation": a.operation_id,
            "stack": a.stack,
            "planHash": a.plan_hash,
            "requestedBy": op.requested_by,
            "comment": comment,
        }),
    )
    .await?;
    let decided = tx.approval(id).await?.unwrap_or(current);
    tx.commit().await?;
    state
        .metrics
        .approval(&decided.state, now - decided.requested_at);
    state.work.notify_waiters();
    Ok(decided)
}
