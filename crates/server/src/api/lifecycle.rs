//! Day two through the API: an environment's expiry (set at creation, extended or removed
//! later, limited by the platform's maximum TTL) and its drift (what the latest refresh
//! found, per stack and resource with the diff, and accepting it where the blueprint
//! allows; reconciling is an `up`).

use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;

use super::*;

/// The expiry a request asks for, before any check: an absolute time or a span from now
/// (neither: no expiry).
#[derive(Clone, Debug, Default)]
pub struct ExpiryRequest {
    pub expires_at: Option<String>,
    pub ttl: Option<String>,
}

impl ExpiryRequest {
    /// When it expires (Unix milliseconds), `None` for no expiry; an error names the
    /// field at fault.
    pub(crate) fn resolve(&self, now: i64, max: Duration) -> Result<Option<i64>, FieldError> {
        let field = |field: &str, message: String| FieldError {
            field: field.to_owned(),
            message,
            rule: None,
        };
        let max_ms = max.as_millis() as i64;
        let (name, at) = match (&self.expires_at, &self.ttl) {
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => {
                return Err(field(
                    "ttl",
                    "give `expiresAt` or `ttl`, not both".to_owned(),
                ));
            }
            (Some(text), None) => {
                let parsed = humantime::parse_rfc3339_weak(text.trim()).map_err(|_| {
                    field(
                        "expiresAt",
                        format!(
                            "`{}` is not a time in RFC 3339, UTC, e.g. 2026-12-24T18:00:00Z",
                            text.chars().take(40).collect::<String>()
                        ),
                    )
                })?;
                let ms = parsed
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(0);
                ("expiresAt", ms)
            }
            (None, Some(text)) => {
                let span = crate::config::parse_span(text).map_err(|m| field("ttl", m))?;
                if span.is_zero() {
                    return Err(field(
                        "ttl",
                        "must be longer than nothing, e.g. `12h`; to remove the expiry send null"
                            .into(),
                    ));
                }
                ("ttl", now.saturating_add(span.as_millis() as i64))
            }
        };
        if at <= now {
            return Err(field(name, format!("{} is already past", time(at))));
        }
        if at - now > max_ms {
            return Err(field(
                name,
                format!(
                    "at most {} from now (the platform's maximum TTL); that is until {}",
                    humantime::format_duration(max),
                    time(now + max_ms)
                ),
            ));
        }
        Ok(Some(at))
    }
}

/// `PUT …/expiry`: `{"expiresAt": "2026-12-24T18:00:00Z"}`, `{"ttl": "3d"}`, or
/// `{"expiresAt": null}` (or `{}`) to remove it.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExpiryUpdate {
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub ttl: Option<String>,
}

#[utoipa::path(put, path = "/api/v1/teams/{team}/environments/{env}/expiry", tag = "environments",
    params(("team" = String, Path), ("env" = String, Path)), request_body = ExpiryUpdate,
    responses((status = 200, body = EnvironmentView, description = "The environment with its new expiry"),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem, description = "Not a time, already past, or beyond the maximum TTL; `errors` names the field")))]
pub(crate) async fn put_expiry(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path((team, env)): Path<(String, String)>,
    body: Body<ExpiryUpdate>,
) -> ApiResult {
    let req = ExpiryRequest {
        expires_at: body.value.expires_at,
        ttl: body.value.ttl,
    };
    Ok(json(&change_expiry(&state, &ctx, &team, &env, &req).await?))
}

/// Sets, extends or removes an environment's expiry, audited as `environment.expiry`:
/// the API's `PUT …/expiry` and the portal's Extend form. The person who sets it is the
/// one its teardown is attributed to. A teardown already queued for the old expiry is
/// called off if no worker has started it (one that has started runs to its end).
pub(crate) async fn change_expiry(
    state: &AppState,
    ctx: &Ctx,
    team: &str,
    env: &str,
    req: &ExpiryRequest,
) -> ApiResult<EnvironmentView> {
    ctx.caller()?;
    let target = format!("teams/{team}/environments/{env}/expiry");
    let e = existing_environment(state, team, env).await?;
    let params = parameters_of(&e)?;
    let caller = state
        .authorize(
            ctx,
            Action::SetExpiry {
                team,
                stages: &params.stages,
            },
            &target,
        )
        .await?;
    if e.status == "destroyed" {
        return Err(Problem::conflict(format!(
            "environment `{env}` was destroyed; create it again"
        )));
    }
    let now = now_ms();
    let at = req
        .resolve(now, state.config.max_ttl())
        .map_err(|e| Problem::invalid(vec![e]))?;
    // Setting or extending an expiry is a request the policy pack may limit.
    if let Some(at) = at {
        let values = serde_json::to_value(&params).unwrap_or_default();
        let days = ((at - now).max(0) as u64).div_ceil(86_400_000);
        enforce(
            state,
            ctx,
            "environment.expiry",
            &target,
            &RequestPoint {
                action: "extend",
                team,
                environment: env,
                blueprint_version: &e.blueprint_version,
                current: Some(values.clone()),
                parameters: values,
                expiry: Some(serde_json::json!({"days": days})),
            },
        )
        .await?;
    }
    let mut tx = state.db.write().await?;
    let before = tx.expiry(&e.id).await?;
    // A teardown queued for the old expiry that has not started yet is called off.
    let mut called_off = None;
    if let Some(op) = before.as_ref().and_then(|b| b.teardown_operation.as_ref())
        && tx.cancel_if_queued(op, now).await?
    {
        tx.set_environment_status(&e.id, "ready", now).await?;
        called_off = Some(op.clone());
    }
    match at {
        Some(at) => tx.set_expiry(&e.id, at, &caller.user.login, now).await?,
        None => tx.clear_expiry(&e.id).await?,
    }
    audit(
        &mut tx,
        ctx,
        "environment.expiry",
        &target,
        Some(team),
        Some(env),
        serde_json::json!({
            "expiresAt": at.map(time),
            "ttl": req.ttl,
            "before": before.map(|b| time(b.expires_at)),
            "teardownCalledOff": called_off,
        }),
    )
    .await?;
    tx.commit().await?;
    let expiry = state.db.expiry(&e.id).await?;
    Ok(EnvironmentView::of(&e)?.with_expiry(expiry.as_ref(), state.config.expiry_warning(), now))
}

fn parameters_of(e: &db::Environment) -> ApiResult<EnvironmentParameters> {
    serde_json::from_str(&e.parameters)
        .map_err(|err| Problem::internal(format!("environment parameters unreadable: {err}")))
}

// --- drift ------------------------------------------------------------------------------

/// What an environment's latest refresh found changed in the clouds.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftView {
    pub team: String,
    pub environment: String,
    /// The environment's status (`drifted` while drift is recorded).
    pub status: String,
    /// How many resources drifted.
    pub resources: i64,
    /// When the refresh that found it ran; absent if no drift is recorded.
    pub found_at: Option<String>,
    /// The refresh operation that found it.
    pub operation: Option<String>,
    pub stacks: Vec<StackDrift>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StackDrift {
    pub stack: String,
    /// The stage this stack is, if it is one.
    pub stage: Option<String>,
    pub resources: Vec<ResourceDrift>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceDrift {
    pub resource: String,
    #[serde(rename = "type")]
    pub ty: String,
    /// `changed` or `deleted`.
    pub change: String,
    /// The top-level properties that changed.
    pub properties: Vec<String>,
    pub diff: Vec<DriftDiff>,
    /// Those of `properties` whose drift the blueprint lets be accepted.
    pub acceptable: Vec<String>,
}

/// One changed value; secrets as `"[secret]"`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftDiff {
    /// Dotted: `tags.costCenter`.
    pub path: String,
    /// What Paddock last applied; absent if it was not there.
    #[schema(value_type = Option<Object>)]
    pub state: Option<serde_json::Value>,
    /// What the cloud has; absent if it was removed.
    #[schema(value_type = Option<Object>)]
    pub cloud: Option<serde_json::Value>,
}

#[utoipa::path(get, path = "/api/v1/teams/{team}/environments/{env}/drift", tag = "environments",
    params(("team" = String, Path), ("env" = String, Path)),
    responses((status = 200, body = DriftView, description = "The drift the latest refresh found, per stack and resource"),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn show_drift(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path((team, env)): Path<(String, String)>,
) -> ApiResult {
    state
        .authorize(
            &ctx,
            Action::ReadEnvironment { team: &team },
            &format!("teams/{team}/environments/{env}/drift"),
        )
        .await?;
    let e = existing_environment(&state, &team, &env).await?;
    Ok(json(&drift_view(&state, &e).await?))
}

/// The recorded drift of an environment, with what the blueprint lets be accepted. The
/// caller has authorized reading the environment.
pub(crate) async fn drift_view(state: &AppState, e: &db::Environment) -> ApiResult<DriftView> {
    let report = state.db.drift_report(&e.id).await?;
    let mut view = DriftView {
        team: e.team.clone(),
        environment: e.name.clone(),
        status: e.status.clone(),
        resources: 0,
        found_at: None,
        operation: None,
        stacks: Vec::new(),
    };
    let Some(report) = report else {
        return Ok(view);
    };
    let params = parameters_of(e)?;
    // What may be accepted is what the version the environment is on says.
    let runs = match state.bundle(&e.blueprint_version).await {
        Ok(bundle) => bundle
            .environment_stacks(&params.spec(&e.team, &e.name), &state.settings)
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let recorded: Vec<crate::lifecycle::RecordedStack> = serde_json::from_str(&report.drift)
        .map_err(|err| Problem::internal(format!("recorded drift unreadable: {err}")))?;
    for s in recorded {
        let graph = runs.iter().find(|r| r.stack == s.stack).map(|r| &r.graph);
        let resources = s
            .resources
            .into_iter()
            .map(|r| {
                let allowed = graph
                    .and_then(|g| g.resources.iter().find(|d| d.name == r.resource))
                    .map(|d| d.options.accept_drift.clone())
                    .unwrap_or_default();
                ResourceDrift {
                    acceptable: r
                        .properties
                        .iter()
                        .filter(|p| allowed.contains(p))
                        .cloned()
                        .collect(),
                    resource: r.resource,
                    ty: r.ty,
                    change: r.change,
                    properties: r.properties,
                    diff: r.diff,
                }
            })
            .collect();
        view.stacks.push(StackDrift {
            stage: stage_of(e, &params, &s.stack).map(|st| st.name().to_owned()),
            stack: s.stack,
            resources,
        });
    }
    view.resources = report.resources;
    view.found_at = Some(time(report.found_at));
    view.operation = Some(report.operation_id);
    Ok(view)
}

fn stage_of(e: &db::Environment, params: &EnvironmentParameters, stack: &str) -> Option<Stage> {
    params
        .stages
        .iter()
        .copied()
        .find(|s| paddock_platform::stage_stack_name(&e.team, &e.name, *s) == stack)
}

/// Accept the drift of a resource's properties: the cloud's values are kept instead of
/// the blueprint's, for as long as the blueprint declares what it declares now.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcceptDrift {
    pub stack: String,
    pub resource: String,
    /// Default: every drifted property of the resource that the blueprint lets be
    /// accepted.
    #[serde(default)]
    pub properties: Option<Vec<String>>,
}

#[utoipa::path(post, path = "/api/v1/teams/{team}/environments/{env}/drift/accept", tag = "environments",
    params(("team" = String, Path), ("env" = String, Path)), request_body = AcceptDrift,
    responses((status = 202, body = OperationView, description = "The `accept-drift` operation"),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem, description = "No such drift, or the blueprint does not let it be accepted")))]
pub(crate) async fn accept_drift(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path((team, env)): Path<(String, String)>,
    body: Body<AcceptDrift>,
) -> ApiResult {
    Ok(
        request_accept_drift(&state, &ctx, &team, &env, &body.value, &body.raw)
            .await?
            .response,
    )
}

/// Queues an `accept-drift` operation, audited as `environment.drift.accept`: the API's
/// `POST …/drift/accept` and the portal's Accept buttons.
pub(crate) async fn request_accept_drift(
    state: &AppState,
    ctx: &Ctx,
    team: &str,
    env: &str,
    req: &AcceptDrift,
    raw: &[u8],
) -> ApiResult<Answer> {
    ctx.caller()?;
    let target = format!("teams/{team}/environments/{env}/drift");
    let e = existing_environment(state, team, env).await?;
    let params = parameters_of(&e)?;
    let repo = paddock_platform::repository_stack_name(team, env);
    let stages: Vec<Stage> = match stage_of(&e, &params, &req.stack) {
        Some(s) => vec![s],
        // The repository holds every stage's GitHub environment.
        None if req.stack == repo => params.stages.clone(),
        None => {
            return Err(Problem::field(
                "stack",
                format!(
                    "`{}` is not one of environment `{env}`'s stacks",
                    req.stack.chars().take(64).collect::<String>()
                ),
            ));
        }
    };
    let caller = state
        .authorize(
            ctx,
            Action::ChangeStages {
                team,
                stages: &stages,
            },
            &target,
        )
        .await?;
    let view = drift_view(state, &e).await?;
    let Some(resource) = view
        .stacks
        .iter()
        .filter(|s| s.stack == req.stack)
        .flat_map(|s| &s.resources)
        .find(|r| r.resource == req.resource)
    else {
        return Err(Problem::field(
            "resource",
            format!(
                "no drift of `{}` is recorded in stack `{}`; the latest refresh found it unchanged",
                req.resource.chars().take(64).collect::<String>(),
                req.stack
            ),
        ));
    };
    let properties = match &req.properties {
        None => resource.acceptable.clone(),
        Some(given) => {
            let mut errors = Vec::new();
            for (i, p) in given.iter().enumerate() {
                if !resource.properties.contains(p) {
                    errors.push(FieldError {
                        field: format!("properties[{i}]"),
                        message: format!("`{}.{p}` has not drifted", req.resource),
                        rule: None,
                    });
                } else if !resource.acceptable.contains(p) {
                    errors.push(FieldError {
                        field: format!("properties[{i}]"),
                        message: format!(
                            "the blueprint does not let drift of `{}.{p}` be accepted; reconcile it instead",
                            req.resource
                        ),
                        rule: None,
                    });
                }
            }
            if !errors.is_empty() {
                return Err(Problem::invalid(errors));
            }
            given.clone()
        }
    };
    if properties.is_empty() {
        return Err(Problem::field(
            "properties",
            format!(
                "the blueprint lets none of `{}`'s drifted properties ({}) be accepted; reconcile it instead",
                req.resource,
                resource.properties.join(", ")
            ),
        ));
    }
    let idem = Idempotency::of(ctx, "POST", &format!("/api/v1/{target}/accept"), raw)?;
    let mut tx = state.db.write().await?;
    if let Some(i) = &idem
        && let Some(replayed) = i.replay(&mut tx).await?
    {
        return Ok(Answer::replayed(replayed));
    }
    if let Some(active) = tx.active_operation(team, Some(&e.id)).await? {
        return Err(Problem::conflict(format!(
            "operation {} ({}, {}) is {} on environment `{env}`; wait for it or cancel it",
            active.id, active.kind, active.requested_by, active.state
        ))
        .with_operation(&active.id));
    }
    let request = serde_json::json!({
        "stack": req.stack, "resource": req.resource, "properties": properties,
    });
    let op = queue(
        &mut tx,
        Queued {
            team,
            environment: Some(&e.id),
            kind: "accept-drift",
            stages: &stages,
            by: &caller.user.login,
            retry_of: None,
            request: Some(&request.to_string()),
        },
    )
    .await?;
    let mut detail = request;
    detail["operation"] = serde_json::json!(op.id);
    audit(
        &mut tx,
        ctx,
        "environment.drift.accept",
        &target,
        Some(team),
        Some(env),
        detail,
    )
    .await?;
    let response = accepted(&mut tx, &idem, &op, Some(env.to_owned())).await?;
    tx.commit().await?;
    state.work.notify_waiters();
    Ok(Answer::queued(response, op))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    #[test]
    fn an_expiry_is_a_time_or_a_span_within_the_maximum_and_errors_name_the_field() {
        let now = 1_800_000_000_000;
        let max = Duration::from_secs(30 * 86_400);
        let ask = |expires_at: Option<&str>, ttl: Option<&str>| {
            ExpiryRequest {
                expires_at: expires_at.map(str::to_owned),
                ttl: ttl.map(str::to_owned),
            }
            .resolve(now, max)
        };
        assert_eq!(ask(None, None), Ok(None));
        assert_eq!(ask(None, Some("7d")), Ok(Some(now + 7 * DAY)));
        assert_eq!(ask(None, Some("12h")), Ok(Some(now + DAY / 2)));
        assert_eq!(
            ask(Some("2027-01-16T08:00:00Z"), None),
            Ok(Some(1_800_086_400_000))
        );
        let refused: Vec<String> = [
            ask(None, Some("31d")),
            ask(None, Some("soon")),
            ask(None, Some("0")),
            ask(Some("yesterday"), None),
            ask(Some("2020-01-01T00:00:00Z"), None),
            ask(Some("2027-01-16T08:00:00Z"), Some("1d")),
        ]
        .into_iter()
        .map(|r| {
            let e = r.unwrap_err();
            format!("{}: {}", e.field, e.message)
        })
        .collect();
        insta::assert_snapshot!(refused.join("\n"));
    }
}
