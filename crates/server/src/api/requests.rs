//! Environment requests — create and update — checked against one definition.
//!
//! A request's parameters are admitted against the published `environment` blueprint
//! version's parameters ([`paddock_engine::parameters`]: types, allowed values,
//! patterns, min/max, defaults, required), the same check for the API, the portal's
//! form and the CLI, with the same messages. What no schema can say — administrators
//! and contributors are members of the team, prod has an administrator — is checked
//! once, in [`platform_rules`]. Then the active policy pack decides (a denial is 422
//! `policy-denied`, audited; see `request_policy.rs`). Then the request is either queued as an `up` (202), or,
//! as a dry run, planned across the environment's stacks and shown per stack and per
//! system, writing nothing but its audit record.
//!
//! Order of refusals: not signed in (401), not allowed (403, audited), no such team or
//! environment (404), bad values (422, every field at once), denied by policy (422),
//! busy (409).

use std::collections::BTreeMap;

use paddock_engine::blueprint::Blueprint;
use paddock_engine::parameters::{self, Input};
use paddock_engine::plan::{Plan, StepKind};
use paddock_engine::{DesiredGraph, Value};

use super::*;

/// What a create or an update asks for, before any check.
pub struct EnvironmentRequest {
    /// The environment's name.
    pub name: String,
    /// The `environment` blueprint version; default the newest this server ships.
    pub blueprint_version: Option<String>,
    /// Parameter values: for a create all of them (defaults fill the rest), for an update
    /// those that change.
    pub values: BTreeMap<String, Value>,
    /// JSON values are typed; a form's and the CLI's are text, coerced by type.
    pub input: Input,
    /// When a created environment expires (an update ignores it: `PUT …/expiry`).
    pub expiry: ExpiryRequest,
}

impl EnvironmentRequest {
    pub fn from_json(
        name: String,
        blueprint_version: Option<String>,
        parameters: BTreeMap<String, serde_json::Value>,
    ) -> EnvironmentRequest {
        EnvironmentRequest {
            name,
            blueprint_version,
            values: parameters
                .into_iter()
                .map(|(k, v)| (k, Value::from_json(v)))
                .collect(),
            input: Input::Json,
            expiry: ExpiryRequest::default(),
        }
    }
}

/// What became of an accepted request.
pub(crate) enum Submitted {
    /// Queued: the operation, and the API's 202 response (remembered under the
    /// idempotency key).
    Queued {
        operation: Box<db::Operation>,
        response: Response,
    },
    /// A dry run: what it would do.
    Preview(Box<PreviewView>),
}

impl Submitted {
    fn into_response(self) -> Response {
        match self {
            Submitted::Queued {
                response,
                operation,
            } => {
                tracing::debug!(operation = %operation.id, kind = %operation.kind, "queued");
                response
            }
            Submitted::Preview(p) => json(&*p),
        }
    }
}

/// The bundle of the `environment` version a request names: by default the newest
/// published.
pub(crate) async fn request_blueprint(
    state: &AppState,
    version: Option<&str>,
) -> ApiResult<Result<Arc<paddock_platform::Bundle>, FieldError>> {
    let version = match version {
        Some(v) => v.to_owned(),
        None => state.latest_environment_version().await?,
    };
    Ok(match state.bundle(&version).await {
        Ok(b) => Ok(b),
        Err(crate::bundles::BundleError::Db(e)) => return Err(e.into()),
        Err(e @ crate::bundles::BundleError::Unknown(_)) => {
            let mut published = state.db.blueprint_versions("environment").await?;
            published.sort_by_key(|v| paddock_platform::Version::parse(v));
            Err(FieldError {
                field: "blueprintVersion".into(),
                message: format!("{e} (published: {})", published.join(", ")),
                rule: None,
            })
        }
        Err(e) => Err(FieldError {
            field: "blueprintVersion".into(),
            message: e.to_string(),
            rule: None,
        }),
    })
}

/// Stages named by a value, leniently: what authorization needs before the value is
/// checked (the check reports what is wrong with it).
fn stages_named(v: Option<&Value>) -> Vec<Stage> {
    let mut stages: Vec<Stage> = match v.map(Value::reveal) {
        Some(Value::List(items)) => items
            .iter()
            .filter_map(|i| i.as_str().and_then(Stage::parse))
            .collect(),
        Some(Value::String(s)) => s
            .split(',')
            .filter_map(|p| Stage::parse(p.trim()))
            .collect(),
        _ => Vec::new(),
    };
    stages.sort();
    stages.dedup();
    stages
}

/// The rules no schema can say: administrators and contributors are members of the
/// team (absent, they are the team's admins and contributors), and prod has an
/// administrator, who reviews its deployments.
pub(crate) fn platform_rules(
    team: &str,
    members: &[db::Member],
    admitted: &mut BTreeMap<String, Value>,
    errors: &mut Vec<FieldError>,
) {
    for (field, role) in [("admins", Role::Admin), ("contributors", Role::Contributor)] {
        let logins: Vec<String> = match admitted.get(field).map(Value::reveal) {
            Some(Value::List(items)) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect(),
            _ => members
                .iter()
                .filter(|m| m.role == role.name())
                .map(|m| m.login.clone())
                .collect(),
        };
        for (i, login) in logins.iter().enumerate() {
            if !members.iter().any(|m| &m.login == login) {
                errors.push(FieldError {
                    field: format!("{field}[{i}]"),
                    message: format!("`{login}` is not a member of team `{team}`"),
                    rule: None,
                });
            }
        }
        admitted.insert(
            field.to_owned(),
            Value::List(logins.into_iter().map(Value::String).collect()),
        );
    }
    let stages = stages_named(admitted.get("stages"));
    let no_admins = matches!(admitted.get("admins"), Some(Value::List(l)) if l.is_empty());
    if stages.contains(&Stage::Prod) && no_admins {
        errors.push(FieldError {
            field: "admins".into(),
            message: "prod needs at least one admin, who reviews its deployments".into(),
            rule: None,
        });
    }
}

fn field_errors(errors: Vec<parameters::FieldError>) -> Vec<FieldError> {
    errors
        .into_iter()
        .map(|e| FieldError {
            field: e.field,
            message: e.message,
            rule: None,
        })
        .collect()
}

/// The admitted values as stored (and as the platform's typed parameters).
fn stored(admitted: &BTreeMap<String, Value>) -> ApiResult<(String, EnvironmentParameters)> {
    let json = serde_json::Value::Object(
        admitted
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect(),
    );
    let params: EnvironmentParameters = serde_json::from_value(json.clone()).map_err(|e| {
        Problem::internal(format!(
            "the environment blueprint's parameters do not make an environment: {e}"
        ))
    })?;
    Ok((json.to_string(), params))
}

/// Checks a request without acting on it: the field errors a form shows inline, the same
/// ones a submission gets. `current` is the environment's values for an update.
pub(crate) async fn check(
    state: &AppState,
    team: &str,
    req: &EnvironmentRequest,
    current: Option<&BTreeMap<String, Value>>,
) -> ApiResult<(BTreeMap<String, Value>, Vec<FieldError>)> {
    let mut errors = Vec::new();
    if current.is_none() {
        check_name("name", &req.name, &mut errors);
    }
    let bundle = match request_blueprint(state, req.blueprint_version.as_deref()).await? {
        Ok(b) => b,
        Err(e) => {
            errors.push(e);
            return Ok((BTreeMap::new(), errors));
        }
    };
    let blueprint = &bundle.request;
    let admitted = match current {
        None => parameters::admit_request(blueprint, &req.values, req.input),
        Some(current) => parameters::admit_update(blueprint, current, &req.values, req.input),
    };
    let mut admitted = match admitted {
        Ok(a) => a,
        Err(e) => {
            errors.extend(field_errors(e));
            // Still report the platform's rules for what was admissible.
            let mut partial = req.values.clone();
            partial.retain(|k, _| !errors.iter().any(|e| e.field.split('[').next() == Some(k)));
            partial
        }
    };
    let members = state.db.members(team).await?;
    platform_rules(team, &members, &mut admitted, &mut errors);
    Ok((admitted, errors))
}

/// The policy's denials of a request that passed [`check`], as the form shows them
/// inline (nothing is audited while typing).
pub(crate) async fn check_policy(
    state: &AppState,
    ctx: &Ctx,
    team: &str,
    req: &EnvironmentRequest,
    current: Option<&BTreeMap<String, Value>>,
    admitted: &BTreeMap<String, Value>,
) -> ApiResult<Vec<FieldError>> {
    let Ok(blueprint) = request_blueprint(state, req.blueprint_version.as_deref()).await? else {
        return Ok(Vec::new());
    };
    let point = RequestPoint {
        action: if current.is_some() {
            "update"
        } else {
            "create"
        },
        team,
        environment: &req.name,
        blueprint_version: blueprint.version(),
        current: current.map(redacted),
        parameters: redacted(admitted),
        expiry: None,
    };
    let (_, decision) = request_decision(state, ctx.caller()?, &point).await?;
    Ok(denial_errors(&decision))
}

/// Creates an environment, or shows what creating it would do.
pub(crate) async fn create(
    state: &AppState,
    ctx: &Ctx,
    team: &str,
    req: EnvironmentRequest,
    dry_run: bool,
    raw: &[u8],
) -> ApiResult<Submitted> {
    ctx.caller()?;
    let target = format!(
        "teams/{team}/environments/{}",
        req.name.chars().take(64).collect::<String>()
    );
    let named = stages_named(req.values.get("stages"));
    let caller = state
        .authorize(
            ctx,
            Action::ChangeStages {
                team,
                stages: &named,
            },
            &target,
        )
        .await?;
    existing_team(state, team).await?;
    let (admitted, mut errors) = check(state, team, &req, None).await?;
    let now = now_ms();
    let expires_at = match req.expiry.resolve(now, state.config.max_ttl()) {
        Ok(at) => at,
        Err(e) => {
            errors.push(e);
            None
        }
    };
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let version = request_blueprint(state, req.blueprint_version.as_deref())
        .await?
        .map_err(|e| Problem::invalid(vec![e]))?
        .version()
        .to_owned();
    let (params_json, params) = stored(&admitted)?;
    let stages = params.stages.clone();
    // A request-point approval is the approvals work's to act on; only a denial stops here.
    enforce(
        state,
        ctx,
        "environment.create",
        &target,
        &RequestPoint {
            action: "create",
            team,
            environment: &req.name,
            blueprint_version: &version,
            current: None,
            parameters: redacted(&admitted),
            expiry: None,
        },
    )
    .await?;
    if stages != named {
        // Defaults or coercion changed the stages: decide on what will be made.
        state
            .authorize(
                ctx,
                Action::ChangeStages {
                    team,
                    stages: &stages,
                },
                &target,
            )
            .await?;
    }
    let record = Record {
        target: &target,
        team,
        env: &req.name,
        detail: serde_json::json!({
            "blueprint": format!("environment@{version}"),
            "parameters": redacted(&admitted),
            "expiresAt": expires_at.map(time),
        }),
    };
    if dry_run {
        if let Some(e) = state.db.environment(team, &req.name).await?
            && e.status != "destroyed"
        {
            return Err(Problem::conflict(format!(
                "environment `{}` of team `{team}` exists",
                req.name
            )));
        }
        let preview = preview(state, team, &req.name, &version, &params, &[]).await?;
        return previewed(state, ctx, &record, preview).await;
    }
    let idem = Idempotency::of(
        ctx,
        "POST",
        &format!("/api/v1/teams/{team}/environments"),
        raw,
    )?;
    let mut tx = state.db.write().await?;
    if let Some(replayed) = replay(&mut tx, &idem).await? {
        return Ok(replayed);
    }
    let env_id = match tx.environment(team, &req.name).await? {
        Some(e) if e.status == "destroyed" => {
            // A destroyed environment's name may be used again; its history stays.
            tx.update_environment(&e.id, &params_json, now).await?;
            tx.set_environment_status(&e.id, "creating", now).await?;
            tx.set_environment_blueprint(&e.id, &version).await?;
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
                team: team.to_owned(),
                name: req.name.clone(),
                blueprint: "environment".into(),
                blueprint_version: version.clone(),
                parameters: params_json.clone(),
                status: "creating".into(),
                created_at: now,
                created_by: caller.user.login.clone(),
                updated_at: now,
                pinned_version: None,
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
    // A name used again starts without the old environment's expiry.
    match expires_at {
        Some(at) => tx.set_expiry(&env_id, at, &caller.user.login, now).await?,
        None => tx.clear_expiry(&env_id).await?,
    }
    queue_up(
        state,
        tx,
        ctx,
        &idem,
        &env_id,
        &stages,
        "environment.create",
        record,
    )
    .await
}

/// Changes an environment's parameters (adding or removing stages among them), or shows
/// what the change would do.
pub(crate) async fn update(
    state: &AppState,
    ctx: &Ctx,
    team: &str,
    req: EnvironmentRequest,
    dry_run: bool,
    raw: &[u8],
) -> ApiResult<Submitted> {
    ctx.caller()?;
    let env = req.name.clone();
    let target = format!("teams/{team}/environments/{env}");
    let e = existing_environment(state, team, &env).await?;
    let current = current_values(&e)?;
    // A change keeps the environment's version; an upgrade is its own request.
    let mut req = req;
    match &req.blueprint_version {
        None => req.blueprint_version = Some(e.blueprint_version.clone()),
        Some(v) if *v != e.blueprint_version => {
            return Err(Problem::invalid(vec![FieldError {
                field: "blueprintVersion".into(),
                message: format!(
                    "environment `{env}` is on environment@{}; a change keeps its version \
                     (upgrade it with POST /api/v1/teams/{team}/environments/{env}/upgrade)",
                    e.blueprint_version
                ),
                rule: None,
            }]));
        }
        Some(_) => {}
    }
    let before = stages_named(current.get("stages"));
    let mut touched = stages_named(req.values.get("stages"));
    touched.extend(&before);
    touched.sort();
    touched.dedup();
    state
        .authorize(
            ctx,
            Action::ChangeStages {
                team,
                stages: &touched,
            },
            &target,
        )
        .await?;
    let (admitted, mut errors) = check(state, team, &req, Some(&current)).await?;
    if e.status == "destroyed" {
        errors.push(FieldError {
            field: "name".into(),
            message: format!("environment `{env}` was destroyed; create it again"),
            rule: None,
        });
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let version = request_blueprint(state, req.blueprint_version.as_deref())
        .await?
        .map_err(|e| Problem::invalid(vec![e]))?
        .version()
        .to_owned();
    let (params_json, params) = stored(&admitted)?;
    // The operation acts on every stage before and after: new ones are made, removed
    // ones destroyed.
    let mut stages = params.stages.clone();
    stages.extend(&before);
    stages.sort();
    stages.dedup();
    if stages != touched {
        state
            .authorize(
                ctx,
                Action::ChangeStages {
                    team,
                    stages: &stages,
                },
                &target,
            )
            .await?;
    }
    enforce(
        state,
        ctx,
        "environment.update",
        &target,
        &RequestPoint {
            action: "update",
            team,
            environment: &env,
            blueprint_version: &version,
            current: Some(redacted(&current)),
            parameters: redacted(&admitted),
            expiry: None,
        },
    )
    .await?;
    let retired: Vec<Stage> = before
        .iter()
        .copied()
        .filter(|s| !params.stages.contains(s))
        .collect();
    let record = Record {
        target: &target,
        team,
        env: &env,
        detail: serde_json::json!({
            "blueprint": format!("environment@{version}"),
            "before": redacted(&current),
            "parameters": redacted(&admitted),
        }),
    };
    if dry_run {
        let preview = preview(state, team, &env, &version, &params, &retired).await?;
        return previewed(state, ctx, &record, preview).await;
    }
    let idem = Idempotency::of(
        ctx,
        "PATCH",
        &format!("/api/v1/teams/{team}/environments/{env}"),
        raw,
    )?;
    let mut tx = state.db.write().await?;
    if let Some(replayed) = replay(&mut tx, &idem).await? {
        return Ok(replayed);
    }
    let now = now_ms();
    if let Some(active) = tx.active_operation(team, Some(&e.id)).await? {
        // A change waiting for approval is superseded by a newer request: its plan is
        // no longer what the environment asks for, so the new operation plans again and
        // asks for approval of what it will run.
        let superseded = active.state == "waiting_for_approval"
            && tx
                .end_waiting(
                    &active.id,
                    "cancelled",
                    &serde_json::json!({"cancelled": "superseded by a later change to the environment, which plans again"}).to_string(),
                    now,
                )
                .await?;
        if !superseded {
            return Err(Problem::conflict(format!(
                "operation {} ({}, {}) is {} on environment `{env}`; wait for it or cancel it",
                active.id, active.kind, active.requested_by, active.state
            ))
            .with_operation(&active.id));
        }
    }
    tx.update_environment(&e.id, &params_json, now).await?;
    tx.set_environment_status(&e.id, "updating", now).await?;
    queue_up(
        state,
        tx,
        ctx,
        &idem,
        &e.id,
        &stages,
        "environment.update",
        record,
    )
    .await
}

/// What the audit record of a request names, and its details.
struct Record<'a> {
    target: &'a str,
    team: &'a str,
    env: &'a str,
    detail: serde_json::Value,
}

/// A dry run's answer: the preview, and its audit record (the only thing written).
async fn previewed(
    state: &AppState,
    ctx: &Ctx,
    record: &Record<'_>,
    preview: PreviewView,
) -> ApiResult<Submitted> {
    let mut detail = record.detail.clone();
    detail["counts"] = serde_json::json!(preview.counts);
    detail["dryRun"] = serde_json::json!(true);
    let mut tx = state.db.write().await?;
    audit(
        &mut tx,
        ctx,
        "environment.preview",
        record.target,
        Some(record.team),
        Some(record.env),
        detail,
    )
    .await?;
    tx.commit().await?;
    Ok(Submitted::Preview(Box::new(preview)))
}

/// The first answer to a request with the same `Idempotency-Key`, if there was one.
async fn replay(tx: &mut WriteTx, idem: &Option<Idempotency>) -> ApiResult<Option<Submitted>> {
    let Some(i) = idem else { return Ok(None) };
    let Some(response) = i.replay(tx).await? else {
        return Ok(None);
    };
    let id = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|l| l.rsplit('/').next())
        .unwrap_or_default()
        .to_owned();
    let operation = tx
        .operation(&id)
        .await?
        .ok_or_else(|| Problem::internal("the replayed operation is missing"))?;
    Ok(Some(Submitted::Queued {
        operation: Box::new(operation),
        response,
    }))
}

/// Queues the `up` that carries out a request, with its audit record, in `tx`, and
/// commits: the 202 the API answers.
#[allow(clippy::too_many_arguments)]
async fn queue_up(
    state: &AppState,
    mut tx: WriteTx,
    ctx: &Ctx,
    idem: &Option<Idempotency>,
    env_id: &str,
    stages: &[Stage],
    action: &str,
    record: Record<'_>,
) -> ApiResult<Submitted> {
    let by = ctx.caller()?.user.login.clone();
    let op = queue(
        &mut tx,
        Queued {
            team: record.team,
            environment: Some(env_id),
            kind: "up",
            stages,
            by: &by,
            retry_of: None,
            request: None,
        },
    )
    .await?;
    let mut detail = record.detail;
    detail["operation"] = serde_json::json!(op.id);
    audit(
        &mut tx,
        ctx,
        action,
        record.target,
        Some(record.team),
        Some(record.env),
        detail,
    )
    .await?;
    let response = accepted(&mut tx, idem, &op, Some(record.env.to_owned())).await?;
    tx.commit().await?;
    state.work.notify_waiters();
    Ok(Submitted::Queued {
        operation: Box::new(op),
        response,
    })
}

/// An environment's stored parameter values.
pub(crate) fn current_values(e: &db::Environment) -> ApiResult<BTreeMap<String, Value>> {
    match serde_json::from_str::<serde_json::Value>(&e.parameters) {
        Ok(serde_json::Value::Object(m)) => Ok(m
            .into_iter()
            .map(|(k, v)| (k, Value::from_json(v)))
            .collect()),
        _ => Err(Problem::internal(format!(
            "environment {}'s parameters are unreadable",
            e.id
        ))),
    }
}

pub(crate) fn redacted(values: &BTreeMap<String, Value>) -> serde_json::Value {
    serde_json::Value::Object(
        values
            .iter()
            .map(|(k, v)| (k.clone(), v.to_redacted_json()))
            .collect(),
    )
}

/// The system a resource type belongs to, as people know it.
pub(crate) fn system_of(ty: &str) -> &'static str {
    match ty.split(':').next().unwrap_or_default() {
        "azure" => "Azure",
        "entra" => "Entra ID",
        "kubernetes" => "Kubernetes",
        "github" => "GitHub",
        _ => "Paddock",
    }
}

const SYSTEMS: [&str; 5] = ["Azure", "Entra ID", "Kubernetes", "GitHub", "Paddock"];

fn counts_of<'a>(
    steps: impl Iterator<Item = &'a paddock_engine::plan::Step>,
) -> BTreeMap<String, usize> {
    let mut counts: BTreeMap<String, usize> = ["create", "update", "replace", "delete", "same"]
        .into_iter()
        .map(|k| (k.to_owned(), 0))
        .collect();
    for s in steps {
        *counts.entry(s.kind.verb().to_owned()).or_default() += 1;
    }
    counts
}

pub(crate) fn stack_preview(plan: &Plan, stage: Option<Stage>, action: &str) -> StackPreview {
    let shown = |v: &Value| v.to_redacted_json();
    let mut systems = Vec::new();
    for system in SYSTEMS {
        let steps: Vec<&paddock_engine::plan::Step> = plan
            .steps
            .iter()
            .filter(|s| system_of(&s.ty) == system)
            .collect();
        if steps.is_empty() {
            continue;
        }
        let changes = steps
            .iter()
            .filter(|s| s.kind != StepKind::Same)
            .map(|s| ChangePreview {
                name: s.name.clone(),
                ty: s.ty.clone(),
                kind: s.kind.verb().to_owned(),
                diffs: if s.kind == StepKind::Create && s.diffs.is_empty() {
                    // A create's diff is every input it will be made with.
                    s.inputs
                        .iter()
                        .map(|(k, v)| DiffPreview {
                            property: k.clone(),
                            old: None,
                            new: Some(shown(v)),
                            forces_replace: false,
                        })
                        .collect()
                } else {
                    s.diffs
                        .iter()
                        .map(|d| DiffPreview {
                            property: d.property.clone(),
                            old: d.old.as_ref().map(shown),
                            new: d.new.as_ref().map(shown),
                            forces_replace: d.forces_replace,
                        })
                        .collect()
                },
            })
            .collect();
        systems.push(SystemPreview {
            system: system.to_owned(),
            counts: counts_of(steps.iter().copied()),
            changes,
        });
    }
    StackPreview {
        stack: plan.stack.clone(),
        stage: stage.map(|s| s.name().to_owned()),
        action: action.to_owned(),
        hash: plan.hash.clone(),
        counts: counts_of(plan.steps.iter()),
        systems,
    }
}

/// Plans the environment's stacks as `params` describe them with `version`'s bundle, and
/// the destruction of `retired` stages' stacks; writes nothing.
pub(crate) async fn preview(
    state: &AppState,
    team: &str,
    env: &str,
    version: &str,
    params: &EnvironmentParameters,
    retired: &[Stage],
) -> ApiResult<PreviewView> {
    let spec = params.spec(team, env);
    let bundle = state.bundle(version).await.map_err(|e| {
        Problem::invalid(vec![FieldError {
            field: "blueprintVersion".into(),
            message: e.to_string(),
            rule: None,
        }])
    })?;
    let runs = bundle
        .environment_stacks(&spec, &state.settings)
        .map_err(|e| {
            Problem::invalid(vec![FieldError {
                field: "parameters".into(),
                message: e.to_string(),
                rule: None,
            }])
        })?;
    let empty = DesiredGraph::new();
    let existing: Vec<String> = state
        .engine
        .list_stacks()
        .await
        .map_err(|e| Problem::unavailable(format!("reading the stacks: {e}")))?
        .into_iter()
        .map(|s| s.name)
        .collect();
    let mut order: Vec<(&str, &DesiredGraph, Option<Stage>, &str)> = Vec::new();
    let stage_of = |stack: &str| {
        Stage::ALL
            .into_iter()
            .find(|s| stack == paddock_platform::stage_stack_name(team, env, *s))
    };
    for run in &runs {
        order.push((&run.stack, &run.graph, stage_of(&run.stack), "up"));
    }
    let retired_stacks: Vec<(String, Stage)> = retired
        .iter()
        .map(|s| (paddock_platform::stage_stack_name(team, env, *s), *s))
        .filter(|(name, _)| existing.contains(name))
        .collect();
    for (stack, stage) in &retired_stacks {
        order.push((stack, &empty, Some(*stage), "destroy"));
    }
    let plans = state
        .engine
        .preview_all(
            &order
                .iter()
                .map(|(s, g, _, _)| (*s, *g))
                .collect::<Vec<_>>(),
        )
        .await
        .map_err(|e| {
            Problem::conflict(format!(
                "the environment cannot be planned now: {e}; if the team was just \
                 created, wait for its provisioning to finish"
            ))
        })?;
    let stacks: Vec<StackPreview> = plans
        .iter()
        .zip(&order)
        .map(|(plan, (_, _, stage, action))| stack_preview(plan, *stage, action))
        .collect();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for s in &stacks {
        for (k, n) in &s.counts {
            *counts.entry(k.clone()).or_default() += n;
        }
    }
    Ok(PreviewView {
        team: team.to_owned(),
        environment: env.to_owned(),
        blueprint_version: version.to_owned(),
        parameters: serde_json::to_value(params).unwrap_or_default(),
        counts,
        stacks,
    })
}

#[utoipa::path(post, path = "/api/v1/teams/{team}/environments", tag = "environments",
    params(("team" = String, Path), DryRun), request_body = NewEnvironment,
    responses((status = 202, body = OperationView, description = "The operation that provisions it; Location is its URL"),
        (status = 200, body = PreviewView, description = "With `dryRun=true`: what it would do; nothing is written but the audit record"),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem, description = "A parameter is not what the blueprint's schema allows; `errors` names each field")))]
pub(crate) async fn create_environment(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(team): Path<String>,
    Query(q): Query<DryRun>,
    body: Body<NewEnvironment>,
) -> ApiResult {
    let NewEnvironment {
        name,
        blueprint_version,
        expires_at,
        ttl,
        parameters,
    } = body.value;
    let mut req = EnvironmentRequest::from_json(name, blueprint_version, parameters);
    req.expiry = ExpiryRequest { expires_at, ttl };
    let submitted = create(
        &state,
        &ctx,
        &team,
        req,
        q.dry_run.unwrap_or(false),
        &body.raw,
    )
    .await?;
    Ok(submitted.into_response())
}

#[utoipa::path(patch, path = "/api/v1/teams/{team}/environments/{env}", tag = "environments",
    params(("team" = String, Path), ("env" = String, Path), DryRun), request_body = EnvironmentUpdate,
    responses((status = 202, body = OperationView, description = "The `up` operation that applies the change (a removed stage is destroyed)"),
        (status = 200, body = PreviewView, description = "With `dryRun=true`: what it would do; nothing is written but the audit record"),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn update_environment(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path((team, env)): Path<(String, String)>,
    Query(q): Query<DryRun>,
    body: Body<EnvironmentUpdate>,
) -> ApiResult {
    let EnvironmentUpdate {
        blueprint_version,
        parameters,
    } = body.value;
    let req = EnvironmentRequest::from_json(env, blueprint_version, parameters);
    let submitted = update(
        &state,
        &ctx,
        &team,
        req,
        q.dry_run.unwrap_or(false),
        &body.raw,
    )
    .await?;
    Ok(submitted.into_response())
}

/// The JSON Schema of a blueprint version's parameters, `$id` its URL here.
pub(crate) fn schema_of(blueprint: &Blueprint) -> serde_json::Value {
    parameters::json_schema(
        blueprint,
        &format!(
            "/api/v1/blueprints/{}/versions/{}/schema",
            blueprint.name, blueprint.version
        ),
    )
}
