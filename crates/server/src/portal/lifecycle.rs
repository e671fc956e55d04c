//! The environment page's day-two panel: its expiry (relative time, the expiring badge,
//! the Extend form) and its drift (the latest refresh's diff per resource, with Reconcile
//! and, where the blueprint allows, Accept).
//!
//! Every change calls the API's own function (`api::change_expiry`,
//! `api::request_accept_drift`, `api::request_operation`), which authorizes and audits.
//! Must not: decide who may act (controls show by `Viewer::may`).

use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use paddock_store::db;
use serde::Deserialize;

use crate::AppState;
use crate::api;
use crate::policy::Action;
use crate::views::EnvironmentParameters;

use super::environments::queued;
use super::*;

/// When an environment expires, and whether that is within the warning window.
pub(crate) fn expiry_of(
    id: &str,
    expiries: &[db::Expiry],
    warning: Duration,
) -> Option<(When, bool)> {
    let now = db::now_ms();
    expiries.iter().find(|x| x.environment_id == id).map(|x| {
        (
            When::at(x.expires_at),
            x.expires_at - warning.as_millis() as i64 <= now,
        )
    })
}

struct DriftRow {
    stack: String,
    stage: String,
    resource: String,
    ty: String,
    change: Status,
    /// (path, in state, in the cloud)
    diff: Vec<(String, String, String)>,
    acceptable: Vec<String>,
}

#[derive(Template)]
#[template(path = "environment_lifecycle.html")]
struct Panel {
    csrf: String,
    team: String,
    env: String,
    expiry: Option<(When, bool)>,
    set_by: String,
    max_ttl: String,
    may_extend: bool,
    may_change: bool,
    busy: bool,
    drift_found: Option<When>,
    drift: Vec<DriftRow>,
    schedule: String,
}

fn shown(v: &Option<serde_json::Value>) -> String {
    match v {
        None => "(absent)".into(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The panel's HTML, for the environment page. `busy`: an operation is queued or running.
pub(crate) async fn panel(
    state: &AppState,
    viewer: &Viewer,
    e: &db::Environment,
    params: &EnvironmentParameters,
    busy: bool,
) -> Result<String, Problem> {
    if e.status == "destroyed" {
        return Ok(String::new());
    }
    let expiry = state.db.expiry(&e.id).await?;
    let drift = api::drift_view(state, e).await?;
    let may_change = viewer.may(&Action::ChangeStages {
        team: &e.team,
        stages: &params.stages,
    });
    let rows = drift
        .stacks
        .iter()
        .flat_map(|s| {
            s.resources.iter().map(|r| DriftRow {
                stack: s.stack.clone(),
                stage: s.stage.clone().unwrap_or_else(|| "repository".into()),
                resource: r.resource.clone(),
                ty: r.ty.clone(),
                change: Status::new(&r.change, "drifted"),
                diff: r
                    .diff
                    .iter()
                    .map(|d| (d.path.clone(), shown(&d.state), shown(&d.cloud)))
                    .collect(),
                acceptable: r.acceptable.clone(),
            })
        })
        .collect();
    let panel = Panel {
        csrf: viewer.csrf().to_owned(),
        team: e.team.clone(),
        env: e.name.clone(),
        expiry: expiry_of(&e.id, expiry.as_slice(), state.config.expiry_warning()),
        set_by: expiry.map(|x| x.set_by).unwrap_or_default(),
        max_ttl: span_words(state.config.max_ttl()),
        may_extend: viewer.may(&Action::SetExpiry {
            team: &e.team,
            stages: &params.stages,
        }),
        may_change,
        busy,
        drift_found: state
            .db
            .drift_report(&e.id)
            .await?
            .map(|r| When::at(r.found_at)),
        drift: rows,
        schedule: match state.config.drift_interval() {
            Some(i) => format!(
                "Paddock refreshes every environment every {} to find drift.",
                humantime::format_duration(i)
            ),
            None => "Scheduled drift refresh is off; use Refresh.".into(),
        },
    };
    panel
        .render()
        .map_err(|err| Problem::internal(format!("rendering the environment's panel: {err}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExpiryForm {
    csrf_token: Option<String>,
    #[serde(default)]
    ttl: String,
    /// Present when "Remove expiry" was pressed.
    remove: Option<String>,
}

/// The Extend form: a span from now, or removing the expiry.
pub(crate) async fn set_expiry(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path((team, env)): Path<(String, String)>,
    body: Bytes,
) -> PageResult {
    let f: ExpiryForm = form(&body)?;
    viewer.check_form(f.csrf_token.as_deref())?;
    let req = api::ExpiryRequest {
        expires_at: None,
        ttl: if f.remove.is_some() {
            None
        } else if f.ttl.trim().is_empty() {
            return Err(Problem::field("ttl", "say how long from now, e.g. `7d`"));
        } else {
            Some(f.ttl.trim().to_owned())
        },
    };
    api::change_expiry(&state, &viewer.ctx, &team, &env, &req).await?;
    see(&format!("/teams/{team}/environments/{env}#expiry"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AcceptForm {
    csrf_token: Option<String>,
    stack: String,
    resource: String,
}

/// An Accept button: every acceptable drifted property of one resource.
pub(crate) async fn accept_drift(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path((team, env)): Path<(String, String)>,
    body: Bytes,
) -> PageResult {
    let f: AcceptForm = form(&body)?;
    viewer.check_form(f.csrf_token.as_deref())?;
    let req = api::AcceptDrift {
        stack: f.stack,
        resource: f.resource,
        properties: None,
    };
    let answer = api::request_accept_drift(&state, &viewer.ctx, &team, &env, &req, b"").await?;
    queued(answer, &format!("/teams/{team}/environments/{env}#drift"))
}

/// A span as people type one: whole days as `90d`, else hours (`36h`), else humantime's.
fn span_words(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    match secs {
        s if s > 0 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s > 0 && s % 3_600 == 0 => format!("{}h", s / 3_600),
        _ => humantime::format_duration(d).to_string(),
    }
}
