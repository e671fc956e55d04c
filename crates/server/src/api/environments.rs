//! Environments: create, read, operations on them, their resources and outputs.

use super::*;

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
pub(crate) async fn list_environments(
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
pub(crate) async fn create_environment(
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
pub(crate) async fn show_environment(
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
pub(crate) async fn environment_operations(
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
pub(crate) async fn create_operation(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path((team, env)): Path<(String, String)>,
    body: Body<NewOperation>,
) -> ApiResult {
    let answer = request_operation(&state, &ctx, &team, &env, &body.value, &body.raw).await?;
    Ok(answer.response)
}

/// Queues an operation on an environment (preview, up, refresh, destroy, import): the
/// API's `POST …/operations` and the portal's action buttons. `raw` is the request's
/// body, for idempotency.
pub(crate) async fn request_operation(
    state: &AppState,
    ctx: &Ctx,
    team: &str,
    env: &str,
    req: &NewOperation,
    raw: &[u8],
) -> ApiResult<Answer> {
    let (team, env) = (team.to_owned(), env.to_owned());
    let target = format!("teams/{team}/environments/{env}");
    ctx.caller()?;
    let e = existing_environment(state, &team, &env).await?;
    let params: EnvironmentParameters = serde_json::from_str(&e.parameters)
        .map_err(|err| Problem::internal(format!("environment parameters unreadable: {err}")))?;
    let kind = req.kind;
    let mut stages = match (&req.stages, kind) {
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
    let caller = state.authorize(ctx, action, &target).await?;
    let mut errors = Vec::new();
    if req.stages.is_some() && kind == OperationKind::Destroy {
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
    let request = match (kind, &req.resources) {
        (OperationKind::Import, resources) => {
            let resources = resources.clone().unwrap_or_default();
            check_import(state, &e, &params, &stages, &resources, &mut errors);
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
    let idem = Idempotency::of(ctx, "POST", &format!("/api/v1/{target}/operations"), raw)?;
    let mut tx = state.db.write().await?;
    if let Some(i) = &idem
        && let Some(replayed) = i.replay(&mut tx).await?
    {
        return Ok(Answer::replayed(replayed));
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
        ctx,
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
    Ok(Answer::queued(response, op))
}

/// An import adopts objects into one stage as resources its blueprint names, of the type
/// it names.
pub(crate) fn check_import(
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
pub(crate) fn stacks_of(e: &db::Environment) -> ApiResult<Vec<String>> {
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
pub(crate) async fn resources(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path((team, env)): Path<(String, String)>,
) -> ApiResult {
    let target = format!("teams/{team}/environments/{env}/resources");
    state
        .authorize(&ctx, Action::ReadEnvironment { team: &team }, &target)
        .await?;
    let e = existing_environment(&state, &team, &env).await?;
    Ok(json(&stack_resources(&state, &e).await?))
}

/// Each of an environment's stacks' resources, secret values masked (stacks not made yet
/// left out). The caller has authorized reading the environment.
pub(crate) async fn stack_resources(
    state: &AppState,
    e: &db::Environment,
) -> ApiResult<Vec<StackResources>> {
    let mut views = Vec::new();
    for stack in stacks_of(e)? {
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
    Ok(views)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct Reveal {
    /// Show secret outputs in clear (team admins; recorded in the audit log).
    pub(crate) reveal: Option<bool>,
}

#[utoipa::path(get, path = "/api/v1/teams/{team}/environments/{env}/outputs", tag = "environments",
    params(("team" = String, Path), ("env" = String, Path), Reveal),
    responses((status = 200, body = OutputsView), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn outputs(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path((team, env)): Path<(String, String)>,
    Query(q): Query<Reveal>,
) -> ApiResult {
    let reveal = q.reveal.unwrap_or(false);
    Ok(json(
        &read_outputs(&state, &ctx, &team, &env, reveal).await?,
    ))
}

/// An environment's outputs per stack, secrets masked unless `reveal` (team admins; the
/// reveal, allowed or denied, is audited): the API's `GET …/outputs` and the portal's
/// outputs with their Reveal control.
pub(crate) async fn read_outputs(
    state: &AppState,
    ctx: &Ctx,
    team: &str,
    env: &str,
    reveal: bool,
) -> ApiResult<OutputsView> {
    let target = format!("teams/{team}/environments/{env}/outputs");
    if reveal {
        state
            .authorize(ctx, Action::RevealSecrets { team }, &target)
            .await?;
    } else {
        state
            .authorize(ctx, Action::ReadEnvironment { team }, &target)
            .await?;
    }
    let e = existing_environment(state, team, env).await?;
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
            ctx,
            "environment.outputs.reveal",
            &target,
            Some(team),
            Some(env),
            serde_json::json!({"stacks": views.iter().map(|v| &v.stack).collect::<Vec<_>>()}),
        )
        .await?;
        tx.commit().await?;
    }
    Ok(OutputsView {
        revealed: reveal,
        stacks: views,
    })
}
