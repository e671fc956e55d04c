//! Teams, their members, and the queue every change goes through.

use super::*;

// --- teams -----------------------------------------------------------------------------

pub(crate) async fn team_view(state: &AppState, team: &db::Team) -> ApiResult<TeamView> {
    let members = state.db.members(&team.name).await?;
    Ok(view_of(team, members))
}

fn view_of(team: &db::Team, members: Vec<db::Member>) -> TeamView {
    TeamView {
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
    }
}

pub(crate) async fn existing_team(state: &AppState, team: &str) -> ApiResult<db::Team> {
    state
        .db
        .team(team)
        .await?
        .ok_or_else(|| Problem::not_found(format!("team `{team}`")))
}

#[utoipa::path(get, path = "/api/v1/teams", tag = "teams",
    responses((status = 200, body = [TeamView]), (status = 401, body = Problem)))]
pub(crate) async fn list_teams(axum::extract::State(state): State, ctx: Ctx) -> ApiResult {
    state.authorize(&ctx, Action::ListTeams, "teams").await?;
    // Every team's members in one query, not one query per team.
    let mut members: std::collections::HashMap<String, Vec<db::Member>> =
        std::collections::HashMap::new();
    for (team, m) in state.db.all_members().await? {
        members.entry(team).or_default().push(m);
    }
    let views: Vec<TeamView> = state
        .db
        .teams()
        .await?
        .iter()
        .map(|t| view_of(t, members.remove(&t.name).unwrap_or_default()))
        .collect();
    Ok(json(&views))
}

#[utoipa::path(post, path = "/api/v1/teams", tag = "teams", request_body = NewTeam,
    responses((status = 202, body = OperationView, description = "The team, with the operation that provisions its GitHub team and Entra group"),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn create_team(
    axum::extract::State(state): State,
    ctx: Ctx,
    body: Body<NewTeam>,
) -> ApiResult {
    Ok(new_team(&state, &ctx, &body.value, &body.raw)
        .await?
        .response)
}

/// Creates a team with the caller as its admin and queues its provisioning: the API's
/// `POST /teams` and the portal's form. `raw` is the request's body, for idempotency.
pub(crate) async fn new_team(
    state: &AppState,
    ctx: &Ctx,
    req: &NewTeam,
    raw: &[u8],
) -> ApiResult<Answer> {
    let target = format!("teams/{}", req.name.chars().take(64).collect::<String>());
    let caller = state.authorize(ctx, Action::CreateTeam, &target).await?;
    let mut errors = Vec::new();
    check_name("name", &req.name, &mut errors);
    if req.description.len() > 500 {
        errors.push(FieldError {
            field: "description".into(),
            message: "at most 500 characters".into(),
            rule: None,
        });
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let idem = Idempotency::of(ctx, "POST", "/api/v1/teams", raw)?;
    let mut tx = state.db.write().await?;
    if let Some(i) = &idem
        && let Some(replayed) = i.replay(&mut tx).await?
    {
        return Ok(Answer::replayed(replayed));
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
    audit(&mut tx, ctx, "team.create", &target, Some(&req.name), None,
            serde_json::json!({"description": req.description, "admin": caller.user.login, "operation": op.id}))
        .await?;
    let response = accepted(&mut tx, &idem, &op, None).await?;
    tx.commit().await?;
    state.work.notify_waiters();
    Ok(Answer::queued(response, op))
}

/// Queues an operation in `tx`.
/// What an operation is, as queued.
pub(crate) struct Queued<'a> {
    pub(crate) team: &'a str,
    pub(crate) environment: Option<&'a str>,
    pub(crate) kind: &'a str,
    pub(crate) stages: &'a [Stage],
    pub(crate) by: &'a str,
    pub(crate) retry_of: Option<&'a str>,
    pub(crate) request: Option<&'a str>,
}

pub(crate) async fn queue(tx: &mut WriteTx, q: Queued<'_>) -> ApiResult<db::Operation> {
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
pub(crate) async fn accepted(
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
pub(crate) async fn show_team(
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
pub(crate) async fn sync_team(
    tx: &mut WriteTx,
    team: &str,
    by: &str,
) -> ApiResult<Option<db::Operation>> {
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
    responses((status = 202, body = OperationView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "The team would have no admin left")))]
pub(crate) async fn set_member(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path((team, login)): Path<(String, String)>,
    body: Body<MemberRole>,
) -> ApiResult {
    let answer = put_member(&state, &ctx, &team, &login, body.value.role, &body.raw).await?;
    Ok(answer.response)
}

/// Adds a member or changes their role, and queues the team's sync: the API's `PUT
/// …/members/{login}` and the portal's member forms. `raw` is the request's body, for
/// idempotency.
pub(crate) async fn put_member(
    state: &AppState,
    ctx: &Ctx,
    team: &str,
    login: &str,
    role: Role,
    raw: &[u8],
) -> ApiResult<Answer> {
    let target = format!("teams/{team}/members/{login}");
    let caller = state
        .authorize(ctx, Action::ManageMembers { team }, &target)
        .await?;
    existing_team(state, team).await?;
    let user = state
        .db
        .user_by_login(login)
        .await?
        .ok_or_else(|| Problem::not_found(format!("person `{login}`")))?;
    let idem = Idempotency::of(ctx, "PUT", &target, raw)?;
    let mut tx = state.db.write().await?;
    if let Some(i) = &idem
        && let Some(replayed) = i.replay(&mut tx).await?
    {
        return Ok(Answer::replayed(replayed));
    }
    let before = tx.set_member(team, &user.id, role.name()).await?;
    if before.as_deref() == Some(Role::Admin.name()) && role != Role::Admin {
        ensure_an_admin_remains(&mut tx, team, &user.id).await?;
    }
    let op = sync_team(&mut tx, team, &caller.user.login).await?;
    audit(
        &mut tx,
        ctx,
        "team.member.set",
        &target,
        Some(team),
        None,
        serde_json::json!({"login": login, "role": role.name(), "before": before}),
    )
    .await?;
    let answer = match op {
        Some(op) => Answer::queued(accepted(&mut tx, &idem, &op, None).await?, op),
        None => Answer::replayed(StatusCode::NO_CONTENT.into_response()),
    };
    tx.commit().await?;
    state.work.notify_waiters();
    Ok(answer)
}

/// Refuses a change that leaves the team without an admin. Asked in the change's own
/// transaction: it holds the write lock, so reading through the pool instead would wait
/// for a connection that writers queued behind the lock hold (and race other changes).
pub(crate) async fn ensure_an_admin_remains(
    tx: &mut WriteTx,
    team: &str,
    leaving: &str,
) -> ApiResult<()> {
    if tx.other_admins(team, leaving).await? == 0 {
        return Err(Problem::conflict(format!(
            "team `{team}` would have no admin left; make someone else admin first"
        )));
    }
    Ok(())
}

#[utoipa::path(delete, path = "/api/v1/teams/{team}/members/{login}", tag = "teams",
    params(("team" = String, Path), ("login" = String, Path)),
    responses((status = 202, body = OperationView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "The team would have no admin left")))]
pub(crate) async fn remove_member(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path((team, login)): Path<(String, String)>,
) -> ApiResult {
    Ok(delete_member(&state, &ctx, &team, &login).await?.response)
}

/// Removes a member and queues the team's sync: the API's `DELETE …/members/{login}` and
/// the portal's remove form.
pub(crate) async fn delete_member(
    state: &AppState,
    ctx: &Ctx,
    team: &str,
    login: &str,
) -> ApiResult<Answer> {
    let target = format!("teams/{team}/members/{login}");
    let caller = state
        .authorize(ctx, Action::ManageMembers { team }, &target)
        .await?;
    existing_team(state, team).await?;
    let user = state
        .db
        .user_by_login(login)
        .await?
        .ok_or_else(|| Problem::not_found(format!("person `{login}`")))?;
    let mut tx = state.db.write().await?;
    ensure_an_admin_remains(&mut tx, team, &user.id).await?;
    let Some(before) = tx.remove_member(team, &user.id).await? else {
        return Err(Problem::not_found(format!(
            "member `{login}` of team `{team}`"
        )));
    };
    let op = sync_team(&mut tx, team, &caller.user.login).await?;
    audit(
        &mut tx,
        ctx,
        "team.member.remove",
        &target,
        Some(team),
        None,
        serde_json::json!({"login": login, "before": before}),
    )
    .await?;
    let answer = match op {
        Some(op) => Answer::queued(accepted(&mut tx, &None, &op, None).await?, op),
        None => Answer::replayed(StatusCode::NO_CONTENT.into_response()),
    };
    tx.commit().await?;
    state.work.notify_waiters();
    Ok(answer)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct Limit {
    /// At most this many (1 to 500; default 50).
    #[param(minimum = 1, maximum = 500)]
    pub(crate) limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/teams/{team}/operations", tag = "operations",
    params(("team" = String, Path), Limit),
    responses((status = 200, body = [OperationView]), (status = 403, body = Problem)))]
pub(crate) async fn team_operations(
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

pub(crate) fn limit(l: Option<i64>) -> ApiResult<i64> {
    match l {
        None => Ok(50),
        Some(n) if (1..=500).contains(&n) => Ok(n),
        Some(n) => Err(Problem::field(
            "limit",
            format!("{n} is out of range: 1 to 500"),
        )),
    }
}

pub(crate) async fn operation_views(state: &AppState, ops: &[db::Operation]) -> ApiResult {
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
