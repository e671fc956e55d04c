//! Operations: read, cancel, retry.

use super::*;

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
pub(crate) async fn show_operation(
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
pub(crate) async fn changeable_operation<'c>(
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
pub(crate) fn operation_action<'a>(op: &'a db::Operation, stages: &'a [Stage]) -> Action<'a> {
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
pub(crate) async fn cancel_operation(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult {
    let (op, env) = cancel(&state, &ctx, &id).await?;
    let body = serde_json::to_string(&OperationView::of(&op, env)).unwrap_or_default();
    Ok(json_response(StatusCode::ACCEPTED, &body, None))
}

/// Cancels a queued operation, or asks a running one to stop: the API's `POST
/// …/cancel` and the portal's Cancel button. Returns the operation as it now is.
pub(crate) async fn cancel(
    state: &AppState,
    ctx: &Ctx,
    id: &str,
) -> ApiResult<(db::Operation, Option<String>)> {
    let (_, _, env) = changeable_operation(state, ctx, id).await?;
    let target = format!("operations/{id}");
    let mut tx = state.db.write().await?;
    let op = tx
        .operation(id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("operation `{id}`")))?;
    if !matches!(
        op.state.as_str(),
        "queued" | "running" | "waiting_for_approval"
    ) {
        return Err(Problem::conflict(format!(
            "operation {id} is {}; only queued, running or waiting operations can be cancelled",
            op.state
        ))
        .with_operation(id));
    }
    let now = now_ms();
    let immediately = if op.state == "waiting_for_approval" {
        tx.end_waiting(
            id,
            "cancelled",
            r#"{"cancelled":"while waiting for approval"}"#,
            now,
        )
        .await?
    } else {
        tx.cancel_operation(id, now).await?
    };
    if immediately && let Some(env_id) = &op.environment {
        tx.set_environment_status(env_id, "failed", now).await?;
    }
    audit(
        &mut tx,
        ctx,
        "operation.cancel",
        &target,
        Some(&op.team),
        env.as_deref(),
        serde_json::json!({"state": op.state}),
    )
    .await?;
    let op = tx.operation(id).await?.unwrap_or(op);
    tx.commit().await?;
    Ok((op, env))
}

#[utoipa::path(post, path = "/api/v1/operations/{id}/retry", tag = "operations",
    params(("id" = String, Path)),
    responses((status = 202, body = OperationView, description = "A new operation, the same as the failed one"),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(crate) async fn retry_operation(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult {
    Ok(retry(&state, &ctx, &id).await?.response)
}

/// Queues a failed or cancelled operation again: the API's `POST …/retry` and the
/// portal's Retry button.
pub(crate) async fn retry(state: &AppState, ctx: &Ctx, id: &str) -> ApiResult<Answer> {
    let (caller, op, env) = changeable_operation(state, ctx, id).await?;
    let stages: Vec<Stage> = serde_json::from_str(&op.stages).unwrap_or_default();
    let target = format!("operations/{id}");
    if !matches!(op.state.as_str(), "failed" | "cancelled") {
        return Err(Problem::conflict(format!(
            "operation {id} is {}; only failed or cancelled operations can be retried",
            op.state
        ))
        .with_operation(id));
    }
    let idem = Idempotency::of(ctx, "POST", &format!("/api/v1/operations/{id}/retry"), b"")?;
    let mut tx = state.db.write().await?;
    if let Some(i) = &idem
        && let Some(replayed) = i.replay(&mut tx).await?
    {
        return Ok(Answer::replayed(replayed));
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
            retry_of: Some(id),
            request: op.request.as_deref(),
        },
    )
    .await?;
    audit(
        &mut tx,
        ctx,
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
    Ok(Answer::queued(response, new))
}
