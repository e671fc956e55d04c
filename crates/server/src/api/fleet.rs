//! Blueprint versions published through the API, environment upgrades and pins, and
//! fleet rollouts (their driver is [`crate::rollouts`]).

use std::collections::BTreeMap;

use paddock_platform::{Bundle, Version};
use serde::Serialize;
use utoipa::ToSchema;

use super::*;
use crate::rollouts::{self, TargetReport};

/// A new version of a blueprint: its files, each the YAML text of `blueprints/…`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewBlueprintVersion {
    /// A semantic version (MAJOR.MINOR.PATCH) greater than every published one; the
    /// request blueprint (`environment.yaml`) declares the same.
    pub version: String,
    /// `environment.yaml` (the request's parameters), `environment/repository.yaml` and
    /// `environment/stage.yaml` (the stacks).
    pub files: BTreeMap<String, String>,
}

/// An environment's pin: fleet rollouts to any other version skip it.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pin {
    /// A published version, or null to unpin.
    pub version: Option<String>,
}

/// An upgrade of one environment.
#[derive(Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Upgrade {
    /// The version to bring it to; default the newest published.
    #[serde(default)]
    pub version: Option<String>,
}

/// Which environments a rollout takes (all given conditions hold).
#[derive(Clone, Deserialize, Serialize, ToSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutFilter {
    /// Only these teams' environments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub teams: Vec<String>,
    /// Only environments on these versions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<String>,
    /// Only environments whose name matches this glob (`*` any run, `?` one character).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environments: Option<String>,
}

/// A fleet upgrade to start.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewRollout {
    pub target_version: String,
    #[serde(default)]
    pub filter: RolloutFilter,
    /// Environments in the canary wave (default 1).
    #[schema(minimum = 0, maximum = 1000)]
    pub canary: Option<i64>,
    /// Environments in each later wave (default 5).
    #[schema(minimum = 1, maximum = 1000)]
    pub batch_size: Option<i64>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutView {
    pub id: String,
    pub blueprint: String,
    pub target_version: String,
    /// `running`, `succeeded`, `failed` or `cancelled`.
    pub state: String,
    /// The wave whose upgrades were queued last (0 is the canary wave).
    pub current_wave: i64,
    pub canary: i64,
    pub batch_size: i64,
    pub filter: RolloutFilter,
    pub requested_by: String,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Why it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Environments per status.
    pub counts: BTreeMap<String, usize>,
    /// Every environment it considered, in wave order.
    pub environments: Vec<TargetReport>,
}

impl RolloutView {
    pub(crate) fn of(r: &db::Rollout, report: Vec<TargetReport>) -> RolloutView {
        RolloutView {
            id: r.id.clone(),
            blueprint: r.blueprint.clone(),
            target_version: r.target_version.clone(),
            state: r.state.clone(),
            current_wave: r.current_wave,
            canary: r.canary,
            batch_size: r.batch_size,
            filter: serde_json::from_str(&r.filter).unwrap_or_default(),
            requested_by: r.requested_by.clone(),
            created_at: time(r.created_at),
            finished_at: r.finished_at.map(time),
            reason: r.reason.clone(),
            counts: rollouts::counts(&report),
            environments: report,
        }
    }
}

fn environment_only(name: &str) -> ApiResult<()> {
    match name {
        "environment" => Ok(()),
        "team" => Err(Problem::field(
            "name",
            "the team blueprint ships with the server; only `environment` has versions \
             published through the API",
        )),
        other => Err(Problem::not_found(format!("blueprint `{other}`"))),
    }
}

/// Diagnostics as field errors: the field is the file (`files.environment/stage.yaml`),
/// the message starts with its file, line and column and the dotted field.
fn diagnostics(d: &paddock_engine::graph::Diagnostics) -> Vec<FieldError> {
    d.0.iter()
        .map(|d| FieldError {
            field: format!(
                "files.{}",
                d.site
                    .file
                    .as_deref()
                    .unwrap_or(paddock_platform::REQUEST_FILE)
            ),
            message: d.to_string(),
            rule: None,
        })
        .collect()
}

#[utoipa::path(post, path = "/api/v1/blueprints/{name}/versions", tag = "blueprints",
    params(("name" = String, Path)), request_body = NewBlueprintVersion,
    responses((status = 201, body = BlueprintView, description = "Published; environments on older versions now show `upgradeAvailable`"),
        (status = 200, body = BlueprintView, description = "This exact version was already published"),
        (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem, description = "Only platform admins publish"),
        (status = 404, body = Problem),
        (status = 409, body = Problem, description = "The version exists with other content, or is not greater than the newest"),
        (status = 422, body = Problem, description = "A file does not parse or validate (`errors`: the file as the field, the line, column and field in the message), or its parameters are incompatible")))]
pub(crate) async fn publish_version(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(name): Path<String>,
    body: Body<NewBlueprintVersion>,
) -> ApiResult {
    let target = format!("blueprints/{name}/versions");
    state
        .authorize(&ctx, Action::PublishBlueprint, &target)
        .await?;
    environment_only(&name)?;
    let NewBlueprintVersion { version, files } = body.value;
    if Version::parse(&version).is_none() {
        return Err(Problem::field(
            "version",
            format!("`{version}` is not a semantic version (MAJOR.MINOR.PATCH, numbers only)"),
        ));
    }
    let bundle = Bundle::parse(files).map_err(|d| Problem::invalid(diagnostics(&d)))?;
    if bundle.version() != version {
        let line = bundle.files[paddock_platform::REQUEST_FILE]
            .lines()
            .position(|l| l.starts_with("version:"))
            .map_or(0, |i| i + 1);
        return Err(Problem::invalid(vec![FieldError {
            field: format!("files.{}", paddock_platform::REQUEST_FILE),
            message: format!(
                "{}:{line}: version: says {}, the request publishes {version}; they must agree",
                paddock_platform::REQUEST_FILE,
                bundle.version()
            ),
            rule: None,
        }]));
    }
    let latest = state.latest_environment_version().await?;
    let previous = state
        .bundle(&latest)
        .await
        .map_err(|e| Problem::internal(e.to_string()))?;
    bundle
        .check(Some(&previous), &state.settings, state.engine.providers())
        .map_err(|d| Problem::invalid(diagnostics(&d)))?;
    let digest = crate::bundles::digest(&bundle.files);
    if let Some(existing) = state.db.blueprint(&name, &version).await? {
        if existing.digest == digest {
            return Ok(json(&BlueprintView::from(&existing)));
        }
        return Err(Problem::conflict(format!(
            "environment@{version} is published with other content (digest {}); a \
             published version never changes: publish the new content as a new version",
            existing.digest
        )));
    }
    if !paddock_platform::older(&latest, &version) {
        return Err(Problem::conflict(format!(
            "environment@{version} is not greater than the newest published version, \
             {latest}"
        )));
    }
    let row = db::BlueprintVersion {
        name: name.clone(),
        version: version.clone(),
        digest: digest.clone(),
        description: bundle.request.description.clone(),
        parameters: schema_of(&bundle.request).to_string(),
        published_at: now_ms(),
        sources: Some(serde_json::to_string(&bundle.files).unwrap_or_default()),
    };
    let mut tx = state.db.write().await?;
    tx.publish_blueprint(&row).await.map_err(|e| match e {
        db::DbError::Conflict(m) => Problem::conflict(m),
        other => other.into(),
    })?;
    audit(
        &mut tx,
        &ctx,
        "blueprint.publish",
        &format!("blueprints/{name}/versions/{version}"),
        None,
        None,
        serde_json::json!({"digest": digest, "previous": latest,
            "files": bundle.files.keys().collect::<Vec<_>>()}),
    )
    .await?;
    tx.commit().await?;
    let location = format!("/api/v1/blueprints/{name}/versions/{version}");
    let body = serde_json::to_string(&BlueprintView::from(&row)).unwrap_or_default();
    Ok(json_response(StatusCode::CREATED, &body, Some(&location)))
}

/// The version an upgrade of `e` goes to, checked: published, newer than its own, and
/// not against its pin.
async fn upgrade_target(
    state: &AppState,
    e: &db::Environment,
    version: Option<&str>,
) -> ApiResult<String> {
    let target = match version {
        Some(v) => v.to_owned(),
        None => state.latest_environment_version().await?,
    };
    let field = |message: String| Problem::field("version", message);
    if e.status == "destroyed" {
        return Err(field(format!(
            "environment `{}` was destroyed; create it again",
            e.name
        )));
    }
    if state.db.blueprint("environment", &target).await?.is_none() {
        return Err(field(format!(
            "environment@{target} is not a published version"
        )));
    }
    if !paddock_platform::older(&e.blueprint_version, &target) {
        return Err(field(format!(
            "environment `{}` is on environment@{}; there is nothing newer to upgrade to{}",
            e.name,
            e.blueprint_version,
            if version.is_some() {
                format!(" than {target}")
            } else {
                String::new()
            }
        )));
    }
    if let Some(pin) = e.pinned_version.as_deref().filter(|p| *p != target) {
        return Err(field(format!(
            "environment `{}` is pinned to {pin}; unpin it (PUT …/pin with null) to upgrade \
             it to {target}",
            e.name
        )));
    }
    Ok(target)
}

/// What upgrading an environment to `version` would do (for readers of the
/// environment): the plan of each of its stacks with that version's blueprints.
pub(crate) async fn upgrade_plan(
    state: &AppState,
    e: &db::Environment,
    version: &str,
) -> ApiResult<PreviewView> {
    let params: EnvironmentParameters = serde_json::from_str(&e.parameters)
        .map_err(|err| Problem::internal(format!("environment parameters unreadable: {err}")))?;
    preview(state, &e.team, &e.name, version, &params, &[]).await
}

#[utoipa::path(get, path = "/api/v1/teams/{team}/environments/{env}/upgrade", tag = "environments",
    params(("team" = String, Path), ("env" = String, Path), ("version" = Option<String>, Query, description = "Default: the newest published")),
    responses((status = 200, body = PreviewView, description = "The plan the upgrade would run; nothing is written"),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn show_upgrade(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path((team, env)): Path<(String, String)>,
    Query(q): Query<Upgrade>,
) -> ApiResult {
    state
        .authorize(
            &ctx,
            Action::ReadEnvironment { team: &team },
            &format!("teams/{team}/environments/{env}"),
        )
        .await?;
    let e = existing_environment(&state, &team, &env).await?;
    let target = upgrade_target(&state, &e, q.version.as_deref()).await?;
    Ok(json(&upgrade_plan(&state, &e, &target).await?))
}

#[utoipa::path(post, path = "/api/v1/teams/{team}/environments/{env}/upgrade", tag = "environments",
    params(("team" = String, Path), ("env" = String, Path)), request_body = Upgrade,
    responses((status = 202, body = OperationView, description = "The `up` that brings it to the version; on success the environment is on it"),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
pub(crate) async fn upgrade_environment(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path((team, env)): Path<(String, String)>,
    body: Body<Upgrade>,
) -> ApiResult {
    Ok(
        request_upgrade(&state, &ctx, &team, &env, &body.value, &body.raw)
            .await?
            .response,
    )
}

/// Queues the upgrade of one environment: the API's `POST …/upgrade` and the portal's
/// Upgrade button.
pub(crate) async fn request_upgrade(
    state: &AppState,
    ctx: &Ctx,
    team: &str,
    env: &str,
    req: &Upgrade,
    raw: &[u8],
) -> ApiResult<Answer> {
    let target = format!("teams/{team}/environments/{env}");
    let caller = state
        .authorize(ctx, Action::UpgradeEnvironment { team }, &target)
        .await?;
    let e = existing_environment(state, team, env).await?;
    let version = upgrade_target(state, &e, req.version.as_deref()).await?;
    let params: EnvironmentParameters = serde_json::from_str(&e.parameters)
        .map_err(|err| Problem::internal(format!("environment parameters unreadable: {err}")))?;
    let idem = Idempotency::of(ctx, "POST", &format!("/api/v1/{target}/upgrade"), raw)?;
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
    let request = serde_json::json!({"targetVersion": version}).to_string();
    let op = queue(
        &mut tx,
        Queued {
            team,
            environment: Some(&e.id),
            kind: "up",
            stages: &params.stages,
            by: &caller.user.login,
            retry_of: None,
            request: Some(&request),
        },
    )
    .await?;
    tx.set_environment_status(&e.id, "updating", now_ms())
        .await?;
    audit(
        &mut tx,
        ctx,
        "environment.upgrade",
        &target,
        Some(team),
        Some(env),
        serde_json::json!({"from": e.blueprint_version, "to": version, "operation": op.id}),
    )
    .await?;
    let response = accepted(&mut tx, &idem, &op, Some(env.to_owned())).await?;
    tx.commit().await?;
    state.work.notify_waiters();
    Ok(Answer::queued(response, op))
}

#[utoipa::path(put, path = "/api/v1/teams/{team}/environments/{env}/pin", tag = "environments",
    params(("team" = String, Path), ("env" = String, Path)), request_body = Pin,
    responses((status = 200, body = EnvironmentView), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn pin_environment(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path((team, env)): Path<(String, String)>,
    body: Body<Pin>,
) -> ApiResult {
    let view = pin(&state, &ctx, &team, &env, body.value.version.as_deref()).await?;
    Ok(json(&view))
}

/// Pins (or unpins) an environment: the API and the portal.
pub(crate) async fn pin(
    state: &AppState,
    ctx: &Ctx,
    team: &str,
    env: &str,
    version: Option<&str>,
) -> ApiResult<EnvironmentView> {
    let target = format!("teams/{team}/environments/{env}");
    state
        .authorize(ctx, Action::PinEnvironment { team }, &target)
        .await?;
    let e = existing_environment(state, team, env).await?;
    if let Some(v) = version
        && state.db.blueprint("environment", v).await?.is_none()
    {
        return Err(Problem::field(
            "version",
            format!("environment@{v} is not a published version"),
        ));
    }
    let mut tx = state.db.write().await?;
    tx.set_environment_pin(&e.id, version).await?;
    audit(
        &mut tx,
        ctx,
        "environment.pin",
        &target,
        Some(team),
        Some(env),
        serde_json::json!({"before": e.pinned_version, "after": version}),
    )
    .await?;
    tx.commit().await?;
    let e = existing_environment(state, team, env).await?;
    let latest = state.latest_environment_version().await?;
    Ok(EnvironmentView::of(&e)?.with_latest(&latest))
}

/// `*` matches any run of characters, `?` one.
fn glob(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

#[utoipa::path(post, path = "/api/v1/blueprints/{name}/rollouts", tag = "blueprints",
    params(("name" = String, Path)), request_body = NewRollout,
    responses((status = 201, body = RolloutView, description = "Started: the canary wave is queued; Location is its report"),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "A rollout of this blueprint is running"),
        (status = 422, body = Problem)))]
pub(crate) async fn start_rollout(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(name): Path<String>,
    body: Body<NewRollout>,
) -> ApiResult {
    let view = new_rollout(&state, &ctx, &name, body.value).await?;
    let location = format!("/api/v1/blueprints/{name}/rollouts/{}", view.id);
    let body = serde_json::to_string(&view).unwrap_or_default();
    Ok(json_response(StatusCode::CREATED, &body, Some(&location)))
}

/// Starts a rollout: the API and the portal's form.
pub(crate) async fn new_rollout(
    state: &AppState,
    ctx: &Ctx,
    name: &str,
    req: NewRollout,
) -> ApiResult<RolloutView> {
    let caller = state
        .authorize(
            ctx,
            Action::ManageRollouts,
            &format!("blueprints/{name}/rollouts"),
        )
        .await?;
    environment_only(name)?;
    let mut errors = Vec::new();
    let canary = req.canary.unwrap_or(1);
    let batch = req.batch_size.unwrap_or(5);
    if !(0..=1000).contains(&canary) {
        errors.push(FieldError {
            field: "canary".into(),
            message: "between 0 and 1000 environments".into(),
            rule: None,
        });
    }
    if !(1..=1000).contains(&batch) {
        errors.push(FieldError {
            field: "batchSize".into(),
            message: "between 1 and 1000 environments".into(),
            rule: None,
        });
    }
    let target = req.target_version.clone();
    if state.db.blueprint(name, &target).await?.is_none() {
        errors.push(FieldError {
            field: "targetVersion".into(),
            message: format!("environment@{target} is not a published version"),
            rule: None,
        });
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let f = &req.filter;
    let chosen: Vec<db::Environment> = state
        .db
        .environments(None)
        .await?
        .into_iter()
        .filter(|e| e.blueprint == name && e.status != "destroyed")
        .filter(|e| paddock_platform::older(&e.blueprint_version, &target))
        .filter(|e| f.teams.is_empty() || f.teams.contains(&e.team))
        .filter(|e| f.versions.is_empty() || f.versions.contains(&e.blueprint_version))
        .filter(|e| f.environments.as_deref().is_none_or(|g| glob(g, &e.name)))
        .collect();
    if chosen.is_empty() {
        return Err(Problem::field(
            "filter",
            format!("no environment older than environment@{target} matches the filter"),
        ));
    }
    let id = auth::new_id("ro");
    let mut targets = Vec::new();
    let mut eligible = 0i64;
    for (position, e) in chosen.iter().enumerate() {
        let pinned = e.pinned_version.as_deref().filter(|p| *p != target);
        let wave = match pinned {
            Some(_) => None,
            None => {
                let i = eligible;
                eligible += 1;
                Some(if i < canary {
                    0
                } else {
                    1 + (i - canary) / batch
                })
            }
        };
        targets.push(db::RolloutTarget {
            position: position as i64,
            environment_id: e.id.clone(),
            from_version: e.blueprint_version.clone(),
            wave,
            skipped: pinned.map(|p| format!("pinned to {p}")),
            operation_id: None,
        });
    }
    // Waves in order: the canary first, then each batch.
    targets.sort_by_key(|t| (t.wave.is_none(), t.wave, t.position));
    for (i, t) in targets.iter_mut().enumerate() {
        t.position = i as i64;
    }
    // With no canary the first batch opens the rollout.
    let first = targets.iter().filter_map(|t| t.wave).min().unwrap_or(0);
    let rollout = db::Rollout {
        id: id.clone(),
        blueprint: name.to_owned(),
        target_version: target.clone(),
        filter: serde_json::to_string(f).unwrap_or_else(|_| "{}".into()),
        canary,
        batch_size: batch,
        state: "running".into(),
        current_wave: first,
        requested_by: caller.user.login.clone(),
        created_at: now_ms(),
        finished_at: None,
        reason: None,
    };
    let environments = rollouts::environments(state).await?;
    let mut tx = state.db.write().await?;
    if let Some(running) = tx.running_rollout(name).await? {
        return Err(Problem::conflict(format!(
            "rollout {} of {name} to {} is running; wait for it or cancel it",
            running.id, running.target_version
        )));
    }
    tx.insert_rollout(&rollout, &targets).await?;
    audit(
        &mut tx,
        ctx,
        "rollout.start",
        &format!("blueprints/{name}/rollouts/{id}"),
        None,
        None,
        serde_json::json!({"targetVersion": target, "filter": f, "canary": canary,
            "batchSize": batch, "environments": targets.len(), "eligible": eligible}),
    )
    .await?;
    rollouts::queue_wave(&mut tx, &environments, &rollout, &targets, first).await?;
    tx.commit().await?;
    state.work.notify_waiters();
    rollout_view(state, &id).await
}

async fn rollout_view(state: &AppState, id: &str) -> ApiResult<RolloutView> {
    let r = state
        .db
        .rollout(id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("rollout {id}")))?;
    let report = rollouts::report(state, &r).await?;
    Ok(RolloutView::of(&r, report))
}

/// A rollout of blueprint `name`, for platform admins.
pub(crate) async fn find_rollout(
    state: &AppState,
    ctx: &Ctx,
    name: &str,
    id: &str,
) -> ApiResult<RolloutView> {
    state
        .authorize(
            ctx,
            Action::ReadRollouts,
            &format!("blueprints/{name}/rollouts/{id}"),
        )
        .await?;
    let view = rollout_view(state, id).await?;
    if view.blueprint != name {
        return Err(Problem::not_found(format!("rollout {id} of {name}")));
    }
    Ok(view)
}

#[utoipa::path(get, path = "/api/v1/blueprints/{name}/rollouts/{id}", tag = "blueprints",
    params(("name" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = RolloutView, description = "The report: per environment upgraded, failed (with the operation and the error), running, pinned, skipped or not started"),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn show_rollout(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path((name, id)): Path<(String, String)>,
) -> ApiResult {
    Ok(json(&find_rollout(&state, &ctx, &name, &id).await?))
}

#[utoipa::path(get, path = "/api/v1/blueprints/{name}/rollouts", tag = "blueprints",
    params(("name" = String, Path), Limit),
    responses((status = 200, body = [RolloutView], description = "Newest first"), (status = 403, body = Problem)))]
pub(crate) async fn list_rollouts(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(name): Path<String>,
    Query(q): Query<Limit>,
) -> ApiResult {
    Ok(json(
        &rollout_list(&state, &ctx, &name, limit(q.limit)?).await?,
    ))
}

pub(crate) async fn rollout_list(
    state: &AppState,
    ctx: &Ctx,
    name: &str,
    limit: i64,
) -> ApiResult<Vec<RolloutView>> {
    state
        .authorize(
            ctx,
            Action::ReadRollouts,
            &format!("blueprints/{name}/rollouts"),
        )
        .await?;
    let mut views = Vec::new();
    for r in state.db.rollouts(name, limit).await? {
        let report = rollouts::report(state, &r).await?;
        views.push(RolloutView::of(&r, report));
    }
    Ok(views)
}

#[utoipa::path(post, path = "/api/v1/blueprints/{name}/rollouts/{id}/cancel", tag = "blueprints",
    params(("name" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = RolloutView, description = "Cancelled: no further wave starts; upgrades already queued run on (cancel them as operations)"),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(crate) async fn cancel_rollout(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path((name, id)): Path<(String, String)>,
) -> ApiResult {
    Ok(json(&stop_rollout(&state, &ctx, &name, &id).await?))
}

pub(crate) async fn stop_rollout(
    state: &AppState,
    ctx: &Ctx,
    name: &str,
    id: &str,
) -> ApiResult<RolloutView> {
    let target = format!("blueprints/{name}/rollouts/{id}");
    let caller = state
        .authorize(ctx, Action::ManageRollouts, &target)
        .await?;
    let r = state
        .db
        .rollout(id)
        .await?
        .filter(|r| r.blueprint == name)
        .ok_or_else(|| Problem::not_found(format!("rollout {id} of {name}")))?;
    let mut tx = state.db.write().await?;
    let reason = format!(
        "cancelled by {} during {}",
        caller.user.login,
        rollouts::wave_name(r.current_wave)
    );
    if !tx
        .end_rollout(id, "cancelled", Some(&reason), now_ms())
        .await?
    {
        return Err(Problem::conflict(format!("rollout {id} has already ended")));
    }
    audit(
        &mut tx,
        ctx,
        "rollout.cancel",
        &target,
        None,
        None,
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    rollout_view(state, id).await
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs_match_whole_names() {
        assert!(glob("env*", "env07"));
        assert!(glob("*-api", "payments-api"));
        assert!(glob("env?7", "env07"));
        assert!(!glob("env?", "env07"));
        assert!(!glob("api", "payments-api"));
        assert!(glob("*", ""));
    }
}
