//! Blueprint versions and fleet upgrades in the portal: the environment page's "Upgrade
//! available" section (the plan the upgrade would run, the Upgrade button, the pin), and
//! the rollouts of a blueprint for platform admins (list, start form, report, cancel).
//!
//! Every change calls the API's function for it (`api::request_upgrade`, `api::pin`,
//! `api::new_rollout`, `api::stop_rollout`), which authorizes, audits and writes in one
//! transaction; controls show by `Viewer::may`.

use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use paddock_store::db;
use serde::Deserialize;

use crate::AppState;
use crate::api::{self, NewRollout, RolloutFilter, RolloutView, Upgrade};
use crate::policy::Action;

use super::environments::queued;
use super::*;

/// One change the upgrade would make.
pub(crate) struct PlannedChange {
    pub stack: String,
    pub kind: String,
    pub name: String,
    pub ty: String,
    /// property: old → new.
    pub diffs: Vec<String>,
}

/// The environment page's upgrade section.
pub(crate) struct UpgradeSection {
    pub version: String,
    /// The changes, or why they cannot be planned now.
    pub plan: Result<Vec<PlannedChange>, String>,
    pub may_upgrade: bool,
    /// Why the Upgrade button is not offered, when the viewer may upgrade.
    pub blocked: Option<String>,
}

/// The pin, and whether the viewer may change it.
pub(crate) struct PinSection {
    pub pinned: Option<String>,
    pub may_pin: bool,
    pub versions: Vec<String>,
}

fn shown(v: &Option<serde_json::Value>) -> String {
    match v {
        None => "—".into(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// What the environment page shows about versions: the upgrade (when a newer version is
/// published) with its plan, and the pin.
pub(crate) async fn sections(
    state: &AppState,
    viewer: &Viewer,
    e: &db::Environment,
    busy: bool,
) -> Result<(Option<UpgradeSection>, PinSection), Problem> {
    let team = e.team.as_str();
    let mut versions = state.db.blueprint_versions(&e.blueprint).await?;
    versions.sort_by_key(|v| paddock_platform::Version::parse(v));
    let pin = PinSection {
        pinned: e.pinned_version.clone(),
        may_pin: e.status != "destroyed" && viewer.may(&Action::PinEnvironment { team }),
        versions: versions.clone(),
    };
    let latest = paddock_platform::newest(versions.iter().map(String::as_str))
        .unwrap_or(&e.blueprint_version)
        .to_owned();
    let Some(version) = crate::bundles::upgrade_available(&e.blueprint_version, &latest)
        .filter(|_| e.status != "destroyed")
    else {
        return Ok((None, pin));
    };
    let plan = match api::upgrade_plan(state, e, &version).await {
        Ok(p) => Ok(p
            .stacks
            .iter()
            .flat_map(|s| {
                let stack = s.stage.clone().unwrap_or_else(|| "repository".into());
                s.systems.iter().flat_map(move |sys| {
                    let stack = stack.clone();
                    sys.changes.iter().map(move |c| PlannedChange {
                        stack: stack.clone(),
                        kind: c.kind.clone(),
                        name: c.name.clone(),
                        ty: c.ty.clone(),
                        diffs: c
                            .diffs
                            .iter()
                            .map(|d| {
                                format!("{}: {} → {}", d.property, shown(&d.old), shown(&d.new))
                            })
                            .collect(),
                    })
                })
            })
            .collect()),
        Err(p) => Err(p.detail),
    };
    let blocked = if busy {
        Some("an operation is running; upgrade once it ends".into())
    } else {
        e.pinned_version
            .as_deref()
            .filter(|p| *p != version)
            .map(|p| format!("pinned to {p}; unpin it to upgrade"))
    };
    Ok((
        Some(UpgradeSection {
            version,
            plan,
            may_upgrade: viewer.may(&Action::UpgradeEnvironment { team }),
            blocked,
        }),
        pin,
    ))
}

#[derive(Deserialize)]
struct UpgradeForm {
    csrf_token: Option<String>,
    #[serde(default)]
    version: Option<String>,
}

/// The Upgrade button: queued, then the operation's page.
pub(crate) async fn upgrade(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path((team, env)): Path<(String, String)>,
    body: Bytes,
) -> PageResult {
    let f: UpgradeForm = form(&body)?;
    viewer.check_form(f.csrf_token.as_deref())?;
    let req = Upgrade {
        version: f.version.filter(|v| !v.is_empty()),
    };
    let answer = api::request_upgrade(&state, &viewer.ctx, &team, &env, &req, b"").await?;
    queued(answer, &format!("/teams/{team}/environments/{env}"))
}

#[derive(Deserialize)]
struct PinForm {
    csrf_token: Option<String>,
    /// Empty: unpin.
    #[serde(default)]
    version: String,
}

pub(crate) async fn pin(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path((team, env)): Path<(String, String)>,
    body: Bytes,
) -> PageResult {
    let f: PinForm = form(&body)?;
    viewer.check_form(f.csrf_token.as_deref())?;
    let version = Some(f.version.trim()).filter(|v| !v.is_empty());
    api::pin(&state, &viewer.ctx, &team, &env, version).await?;
    see(&format!("/teams/{team}/environments/{env}#versions"))
}

#[derive(Template)]
#[template(path = "rollouts.html")]
struct RolloutsPage {
    chrome: Chrome,
    blueprint: String,
    rollouts: Vec<RolloutView>,
    versions: Vec<String>,
    may_start: bool,
    error: Option<String>,
    errors: Vec<FieldError>,
}

async fn rollouts_page(
    state: &AppState,
    viewer: &Viewer,
    name: &str,
    error: Option<Problem>,
) -> Result<RolloutsPage, Problem> {
    let rollouts = api::rollout_list(state, &viewer.ctx, name, 50).await?;
    let mut versions = state.db.blueprint_versions(name).await?;
    versions.sort_by_key(|v| std::cmp::Reverse(paddock_platform::Version::parse(v)));
    let (error, errors) = match error {
        Some(p) => (Some(p.detail), p.errors),
        None => (None, Vec::new()),
    };
    Ok(RolloutsPage {
        chrome: viewer
            .chrome(format!("Rollouts of {name}"))
            .section("blueprints")
            .crumb("Blueprints", "/blueprints")
            .crumb("Rollouts", format!("/blueprints/{name}/rollouts")),
        blueprint: name.to_owned(),
        rollouts,
        versions,
        may_start: viewer.may(&Action::ManageRollouts),
        error,
        errors,
    })
}

pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> PageResult {
    ok(&rollouts_page(&state, &viewer, &name, None).await?)
}

#[derive(Deserialize)]
struct RolloutForm {
    csrf_token: Option<String>,
    target_version: String,
    #[serde(default)]
    canary: String,
    #[serde(default)]
    batch_size: String,
    /// Comma-separated.
    #[serde(default)]
    teams: String,
    #[serde(default)]
    environments: String,
}

pub(crate) async fn start(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path(name): Path<String>,
    body: Bytes,
) -> PageResult {
    let f: RolloutForm = form(&body)?;
    viewer.check_form(f.csrf_token.as_deref())?;
    let number = |field: &str, text: &str| -> Result<Option<i64>, Problem> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        text.parse()
            .map(Some)
            .map_err(|_| Problem::field(field, format!("`{text}` is not a whole number")))
    };
    let req = match (
        number("canary", &f.canary),
        number("batchSize", &f.batch_size),
    ) {
        (Ok(canary), Ok(batch_size)) => NewRollout {
            target_version: f.target_version,
            filter: RolloutFilter {
                teams: f
                    .teams
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect(),
                versions: Vec::new(),
                environments: Some(f.environments.trim().to_owned()).filter(|g| !g.is_empty()),
            },
            canary,
            batch_size,
        },
        (Err(p), _) | (_, Err(p)) => {
            let page = rollouts_page(&state, &viewer, &name, Some(p)).await?;
            return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
    };
    match api::new_rollout(&state, &viewer.ctx, &name, req).await {
        Ok(view) => see(&format!("/blueprints/{name}/rollouts/{}", view.id)),
        Err(p) if matches!(p.status, 409 | 422) => {
            let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_REQUEST);
            let page = rollouts_page(&state, &viewer, &name, Some(p)).await?;
            Ok(render(status, &page))
        }
        Err(p) => Err(p),
    }
}

#[derive(Template)]
#[template(path = "rollout.html")]
struct RolloutPage {
    chrome: Chrome,
    rollout: RolloutView,
    status: Status,
    may_cancel: bool,
}

pub(crate) async fn show(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path((name, id)): Path<(String, String)>,
) -> PageResult {
    let rollout = api::find_rollout(&state, &viewer.ctx, &name, &id).await?;
    let status = Status::of(&rollout.state);
    ok(&RolloutPage {
        chrome: viewer
            .chrome(format!("Rollout {id}"))
            .section("blueprints")
            .crumb("Blueprints", "/blueprints")
            .crumb("Rollouts", format!("/blueprints/{name}/rollouts"))
            .crumb(id.clone(), format!("/blueprints/{name}/rollouts/{id}")),
        may_cancel: rollout.state == "running" && viewer.may(&Action::ManageRollouts),
        status,
        rollout,
    })
}

pub(crate) async fn cancel(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path((name, id)): Path<(String, String)>,
    body: Bytes,
) -> PageResult {
    let f: super::environments::TokenForm = form(&body)?;
    viewer.check_form(f.csrf_token.as_deref())?;
    api::stop_rollout(&state, &viewer.ctx, &name, &id).await?;
    see(&format!("/blueprints/{name}/rollouts/{id}"))
}

/// A rollout target's status as the portal colours it.
pub(crate) fn target_status(status: &str) -> Status {
    match status {
        "upgraded" => Status::new("upgraded", "ready"),
        "failed" => Status::of("failed"),
        "running" => Status::of("running"),
        other => Status::new(other, "waiting"),
    }
}
