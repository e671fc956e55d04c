//! The environment request forms: create, and change an environment's parameters.
//!
//! Both are generated from the `environment` blueprint's parameters ([`crate::forms`]),
//! checked inline while typing (htmx posts the form to `…/check`, which answers with
//! each field's message, swapped in next to its control) and again on submit, by the
//! same check the API runs ([`api::check`]), so the messages are the API's. Submitting
//! shows the preview (the API's dry run, per stack and per system) and nothing is
//! created until it is confirmed. Without JavaScript the same forms work as plain posts.
//!
//! Must not: check values or decide who may act: the API's functions do both.

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use paddock_engine::Value;
use paddock_engine::blueprint::Blueprint;
use paddock_platform::Stage;

use super::*;
use crate::api::{self, EnvironmentRequest, Submitted};
use crate::forms::{self, Control, Field};
use crate::policy::Action;
use crate::views::PreviewView;

#[derive(Template)]
#[template(path = "environment_form.html")]
struct FormPage {
    chrome: Chrome,
    heading: String,
    intro: String,
    creating: bool,
    name: String,
    version: String,
    fields: Vec<Field>,
    errors: FormErrors,
    action: String,
    check: String,
    cancel: String,
}

#[derive(Template)]
#[template(path = "environment_preview.html")]
struct PreviewPage {
    chrome: Chrome,
    heading: String,
    preview: PreviewView,
    action: String,
    confirm: String,
    /// The request again, to confirm it as it was previewed.
    hidden: Vec<(String, String)>,
}

impl PreviewPage {
    fn ordered(&self, counts: &BTreeMap<String, usize>) -> Vec<(&'static str, usize)> {
        plan_counts(counts)
    }
}

/// The inline check's answer: each field's message, swapped in out of band.
#[derive(Template)]
#[template(path = "environment_check.html")]
struct CheckSlots {
    slots: Vec<(String, String)>,
}

/// Which form: a new environment of a team, or an existing one's change.
struct Target {
    team: String,
    env: Option<String>,
}

impl Target {
    /// The environment's name: the one changed, or the one the create form asks for.
    fn name(&self, pairs: &[(String, String)]) -> String {
        match &self.env {
            Some(env) => env.clone(),
            None => pairs
                .iter()
                .find(|(k, _)| k == "name")
                .map(|(_, v)| v.trim().to_owned())
                .unwrap_or_default(),
        }
    }

    /// The layout, with the breadcrumbs to this form.
    fn chrome(&self, viewer: &Viewer, title: String) -> Chrome {
        let chrome = viewer.chrome(title).in_team(&self.team);
        match &self.env {
            None => chrome.crumb("Create environment", self.path()),
            Some(env) => chrome
                .crumb(
                    env.clone(),
                    format!("/teams/{}/environments/{env}", self.team),
                )
                .crumb("Change parameters", self.path()),
        }
    }

    fn path(&self) -> String {
        match &self.env {
            None => format!("/teams/{}/environments/new", self.team),
            Some(env) => format!("/teams/{}/environments/{env}/edit", self.team),
        }
    }
}

fn blueprint() -> &'static Blueprint {
    paddock_platform::environment_request()
}

#[allow(clippy::too_many_arguments)]
fn form_page(
    viewer: &Viewer,
    target: &Target,
    members: &[paddock_store::db::Member],
    name: &str,
    values: &BTreeMap<String, Value>,
    errors: Vec<FieldError>,
) -> FormPage {
    let bp = blueprint();
    let creating = target.env.is_none();
    let chrome = target.chrome(
        viewer,
        match &target.env {
            None => format!("Create an environment · {}", target.team),
            Some(env) => format!("Change {env} · {}", target.team),
        },
    );
    FormPage {
        chrome,
        heading: match &target.env {
            None => format!("Create an environment for {}", target.team),
            Some(env) => format!("Change {env}"),
        },
        intro: if creating {
            "Pick the stages and the values; Paddock provisions each stage isolated from the \
             others, in Azure, Entra ID, Kubernetes and GitHub."
                .into()
        } else {
            "Change what the environment was asked for: adding a stage provisions it, \
             removing one destroys it."
                .into()
        },
        creating,
        name: name.to_owned(),
        version: bp.version.clone(),
        fields: forms::fields(bp, members, values, &errors),
        errors: FormErrors::of(errors),
        action: target.path(),
        check: format!("{}/check", target.path()),
        cancel: match &target.env {
            None => format!("/teams/{}", target.team),
            Some(env) => format!("/teams/{}/environments/{env}", target.team),
        },
    }
}

/// Decoded form pairs, the CSRF token checked first.
fn pairs_of(viewer: &Viewer, body: &[u8]) -> Result<Vec<(String, String)>, Problem> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let token = pairs
        .iter()
        .find(|(k, _)| k == "csrf_token")
        .map(|(_, v)| v.as_str());
    viewer.check_form(token)?;
    Ok(pairs)
}

fn action_of(pairs: &[(String, String)]) -> &str {
    pairs
        .iter()
        .find(|(k, _)| k == "_action")
        .map(|(_, v)| v.as_str())
        .unwrap_or("preview")
}

/// The pairs to carry from the preview to the confirmation.
fn carried(pairs: &[(String, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .filter(|(k, _)| k != "csrf_token" && k != "_action")
        .cloned()
        .collect()
}

pub(crate) async fn new_form(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path(team): Path<String>,
) -> PageResult {
    state
        .authorize(
            &viewer.ctx,
            Action::ChangeStages {
                team: &team,
                stages: &[Stage::Dev],
            },
            &format!("teams/{team}/environments"),
        )
        .await?;
    api::existing_team(&state, &team).await?;
    let members = state.db.members(&team).await?;
    let target = Target { team, env: None };
    ok(&form_page(
        &viewer,
        &target,
        &members,
        "",
        &BTreeMap::new(),
        Vec::new(),
    ))
}

pub(crate) async fn edit_form(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path((team, env)): Path<(String, String)>,
) -> PageResult {
    let e = api::existing_environment(&state, &team, &env).await?;
    let current = api::current_values(&e)?;
    let stages: Vec<Stage> = serde_json::from_value(
        current
            .get("stages")
            .map(Value::to_json)
            .unwrap_or_default(),
    )
    .unwrap_or_default();
    state
        .authorize(
            &viewer.ctx,
            Action::ChangeStages {
                team: &team,
                stages: &stages,
            },
            &format!("teams/{team}/environments/{env}"),
        )
        .await?;
    let members = state.db.members(&team).await?;
    let target = Target {
        team,
        env: Some(env.clone()),
    };
    ok(&form_page(
        &viewer,
        &target,
        &members,
        &env,
        &current,
        Vec::new(),
    ))
}

pub(crate) async fn submit_new(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path(team): Path<String>,
    body: Bytes,
) -> PageResult {
    submit(&state, &viewer, Target { team, env: None }, &body).await
}

pub(crate) async fn submit_edit(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path((team, env)): Path<(String, String)>,
    body: Bytes,
) -> PageResult {
    submit(
        &state,
        &viewer,
        Target {
            team,
            env: Some(env),
        },
        &body,
    )
    .await
}

/// Preview (the API's dry run), confirm (the API's request), or back to the form.
async fn submit(state: &AppState, viewer: &Viewer, target: Target, body: &[u8]) -> PageResult {
    let pairs = pairs_of(viewer, body)?;
    let name = target.name(&pairs);
    let req = forms::request(blueprint(), &name, &pairs);
    let action = action_of(&pairs).to_owned();
    let values = req.values.clone();
    let members = state.db.members(&target.team).await?;
    let again = |errors: Vec<FieldError>| {
        let status = if errors.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        Ok(render(
            status,
            &form_page(viewer, &target, &members, &name, &values, errors),
        ))
    };
    if action == "edit" {
        return again(Vec::new());
    }
    let dry_run = action != "apply";
    let submitted = match &target.env {
        None => api::create(state, &viewer.ctx, &target.team, req, dry_run, &[]).await,
        Some(_) => api::update(state, &viewer.ctx, &target.team, req, dry_run, &[]).await,
    };
    match submitted {
        Ok(Submitted::Queued { operation, .. }) => see(&format!("/operations/{}", operation.id)),
        Ok(Submitted::Preview(preview)) => {
            let env = preview.environment.clone();
            let chrome = target.chrome(viewer, format!("Preview · {env}"));
            ok(&PreviewPage {
                chrome: chrome.crumb("Preview", target.path()),
                heading: match &target.env {
                    None => format!("Preview: create {env}"),
                    Some(_) => format!("Preview: change {env}"),
                },
                preview: *preview,
                action: target.path(),
                confirm: match &target.env {
                    None => format!("Create {env}"),
                    Some(_) => format!("Apply the changes to {env}"),
                },
                hidden: carried(&pairs),
            })
        }
        Err(problem) => again(field_errors(problem)?),
    }
}

pub(crate) async fn check_new(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path(team): Path<String>,
    body: Bytes,
) -> PageResult {
    check(&state, &viewer, Target { team, env: None }, &body).await
}

pub(crate) async fn check_edit(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path((team, env)): Path<(String, String)>,
    body: Bytes,
) -> PageResult {
    check(
        &state,
        &viewer,
        Target {
            team,
            env: Some(env),
        },
        &body,
    )
    .await
}

/// Each field's message for the values typed so far: the same check a submission gets.
async fn check(state: &AppState, viewer: &Viewer, target: Target, body: &[u8]) -> PageResult {
    let pairs = pairs_of(viewer, body)?;
    state
        .authorize(
            &viewer.ctx,
            Action::ReadEnvironment { team: &target.team },
            &format!("teams/{}/environments", target.team),
        )
        .await?;
    let name = target.name(&pairs);
    let req: EnvironmentRequest = forms::request(blueprint(), &name, &pairs);
    let current = match &target.env {
        Some(env) => Some(api::current_values(
            &api::existing_environment(state, &target.team, env).await?,
        )?),
        None => None,
    };
    let (_, mut errors) = api::check(state, &target.team, &req, current.as_ref()).await?;
    // While typing, say nothing about a name not yet begun.
    if target.env.is_none() && name.is_empty() {
        errors.retain(|e| e.field != "name");
    }
    let fields = forms::fields(blueprint(), &[], &req.values, &errors);
    let mut slots: Vec<(String, String)> = fields
        .iter()
        .map(|f| {
            (
                format!("error-{}", f.name),
                f.error.clone().unwrap_or_default(),
            )
        })
        .collect();
    if target.env.is_none() {
        let message = errors
            .iter()
            .find(|e| e.field == "name")
            .map(|e| e.message.clone())
            .unwrap_or_default();
        slots.push(("error-name".into(), message));
    }
    // Controls of kinds a form cannot send wrongly need no slot of their own.
    slots.retain(|(id, _)| {
        fields.iter().all(|f| {
            format!("error-{}", f.name) != *id || !matches!(f.control, Control::Checkbox { .. })
        })
    });
    ok(&CheckSlots { slots })
}
