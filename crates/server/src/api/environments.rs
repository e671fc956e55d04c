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
    let latest = state.latest_environment_version().await?;
    let expiries = state.db.expiries(Some(&team)).await?;
    let (warning, now) = (state.config.expiry_warning(), now_ms());
    Ok(json(
        &envs
            .iter()
            .map(|e| {
                let expiry = expiries.iter().find(|x| x.environment_id == e.id);
                Ok(EnvironmentView::of(e)?
                    .with_latest(&latest)
                    .with_expiry(expiry, warning, now))
            })
            .collect::<ApiResult<Vec<_>>>()?,
    ))
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
    let latest = state.latest_environment_version().await?;
    let expiry = state.db.expiry(&e.id).await?;
    Ok(json(
        &EnvironmentView::of(&e)?.with_latest(&latest).with_expiry(
            expiry.as_ref(),
            state.config.expiry_warning(),
            now_ms(),
        ),
    ))
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
            rule: None,
        });
    }
    for (i, s) in stages.iter().enumerate() {
        if !params.stages.contains(s) {
            errors.push(FieldError {
                field: format!("stages[{i}]"),
                message: format!("environment `{env}` has no {} stage", s.name()),
                rule: None,
            });
        }
    }
    if stages.is_empty() {
        errors.push(FieldError {
            field: "stages".into(),
            message: "name at least one of the environment's stages".into(),
            rule: None,
        });
    }
    if e.status == "destroyed" {
        errors.push(FieldError {
            field: "kind".into(),
            message: format!("environment `{env}` was destroyed; create it again"),
            rule: None,
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
                rule: None,
            });
            None
        }
        (_, None) => None,
    };
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    if kind == OperationKind::Destroy {
        let current = redacted(&current_values(&e)?);
        enforce(
            state,
            ctx,
            "environment.destroy",
            &target,
            &RequestPoint {
                action: "destroy",
                team: &team,
                environment: &env,
                blueprint_version: &e.blueprint_version,
                current: Some(current.clone()),
                parameters: current,
                expiry: None,
            },
        )
        .await?;
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
    let field = |field: String, message: String| FieldError {
        field,
        message,
        rule: None,
    };
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
#[into_params(parameter_in = Query)]
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
