//! The environment page: its stages side by side, each stage's resources grouped by
//! system (Azure, Entra ID, Kubernetes, GitHub) with their status and where each lives,
//! the outputs (secrets masked; revealed only through the API's audited path), the live
//! log of a running operation, the operation history, and the actions a viewer may take
//! (refresh, preview, destroy with the name typed).
//!
//! Invariants: the page reads a fixed number of things — the environment, its stacks'
//! state (one per stage plus the repository's), one page of operations and the running
//! operation's events — whatever the number of environments; every action calls
//! `api::request_operation` (or `api::read_outputs` for a reveal), which authorizes and
//! audits; a revealed page is never cached.
//!
//! Must not: render a secret unless the viewer revealed it just now, or decide who may
//! act (controls show by `Viewer::may`; the server decides again on the post).
//!
//! The create and update forms are the lead's (blueprint-driven, `api::environments`):
//! [`new_environment`] is their slot.

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use paddock_platform::Stage;
use paddock_store::db;
use serde::Deserialize;

use crate::AppState;
use crate::api::{self, Query};
use crate::policy::Action;
use crate::views::{EnvironmentParameters, NewOperation, OperationKind, OutputsView};

use super::home::operation_words;
use super::operations::{LiveLog, live_log};
use super::*;

const OPERATIONS_PER_PAGE: i64 = 10;

/// The systems resources belong to, by type prefix, in the order a page shows them.
pub(crate) const SYSTEMS: &[(&str, &str)] = &[
    ("azure", "Azure"),
    ("entra", "Entra ID"),
    ("kubernetes", "Kubernetes"),
    ("github", "GitHub"),
];

/// The system of a resource type (`azure:resourceGroup` → "Azure").
pub(crate) fn system_of(ty: &str) -> &'static str {
    let prefix = ty.split(':').next().unwrap_or("");
    SYSTEMS
        .iter()
        .find(|(p, _)| *p == prefix)
        .map(|(_, name)| *name)
        .unwrap_or("Other")
}

/// A stack's declared resources: (name, type).
type Declared = Vec<(String, String)>;

pub(crate) struct ResourceRow {
    pub name: String,
    pub ty: String,
    pub id: String,
    pub status: Status,
    pub link: Option<(String, &'static str)>,
    /// `stack/resource`: how live events find the row.
    pub key: String,
    /// What happened to it last (on an operation's timeline).
    pub note: String,
}

pub(crate) struct SystemGroup {
    pub name: &'static str,
    pub resources: Vec<ResourceRow>,
}

/// Resources grouped by system, in [`SYSTEMS`] order.
pub(crate) fn group_by_system(rows: Vec<ResourceRow>) -> Vec<SystemGroup> {
    let mut groups: Vec<SystemGroup> = SYSTEMS
        .iter()
        .map(|(_, name)| SystemGroup {
            name,
            resources: Vec::new(),
        })
        .chain(std::iter::once(SystemGroup {
            name: "Other",
            resources: Vec::new(),
        }))
        .collect();
    for r in rows {
        let system = system_of(&r.ty);
        if let Some(g) = groups.iter_mut().find(|g| g.name == system) {
            g.resources.push(r);
        }
    }
    groups.retain(|g| !g.resources.is_empty());
    groups
}

struct Column {
    title: String,
    stack: String,
    status: Status,
    systems: Vec<SystemGroup>,
    pending: usize,
}

struct OutputRow {
    stack: String,
    key: String,
    value: String,
    secret: bool,
}

struct HistoryRow {
    id: String,
    what: String,
    stages: String,
    status: Status,
    by: String,
    when: When,
}

#[derive(Template)]
#[template(path = "environment.html")]
struct EnvironmentPage {
    chrome: Chrome,
    team: String,
    env: String,
    status: Status,
    blueprint: String,
    params: EnvironmentParameters,
    created_by: String,
    created: When,
    repository: Option<Column>,
    columns: Vec<Column>,
    outputs: Vec<OutputRow>,
    revealed: bool,
    may_reveal: bool,
    may_change: bool,
    may_destroy: bool,
    live: Option<LiveLog>,
    failure: Option<(String, String)>,
    history: Vec<HistoryRow>,
    history_pager: Pager,
    /// Expiry and drift (`lifecycle.rs`), rendered.
    lifecycle: String,
    /// The latest approvals asked for on this environment (pending ones first shown as
    /// a notice).
    approvals: Vec<super::approvals::Row>,
    upgrade: Option<super::fleet::UpgradeSection>,
    pin: super::fleet::PinSection,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnvQuery {
    /// Operations older than this `seq`.
    before: Option<i64>,
}

pub(crate) async fn show(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path((team, env)): Path<(String, String)>,
    Query(q): Query<EnvQuery>,
) -> PageResult {
    let outputs = api::read_outputs(&state, &viewer.ctx, &team, &env, false).await?;
    environment_page(&state, &viewer, &team, &env, q.before, outputs, None).await
}

/// Reveals the secret outputs (team admins), through the API's audited path.
pub(crate) async fn reveal(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path((team, env)): Path<(String, String)>,
    body: Bytes,
) -> PageResult {
    let f: TokenForm = form(&body)?;
    viewer.check_form(f.csrf_token.as_deref())?;
    let revealed = api::read_outputs(&state, &viewer.ctx, &team, &env, true).await?;
    let masked = api::read_outputs(&state, &viewer.ctx, &team, &env, false).await?;
    let mut response =
        environment_page(&state, &viewer, &team, &env, None, masked, Some(revealed)).await?;
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store, private"),
    );
    Ok(response)
}

#[derive(Deserialize)]
pub(crate) struct TokenForm {
    pub csrf_token: Option<String>,
}

async fn environment_page(
    state: &AppState,
    viewer: &Viewer,
    team: &str,
    env: &str,
    before: Option<i64>,
    outputs: OutputsView,
    revealed: Option<OutputsView>,
) -> PageResult {
    let e = api::existing_environment(state, team, env).await?;
    let params: EnvironmentParameters = serde_json::from_str(&e.parameters)
        .map_err(|err| Problem::internal(format!("environment parameters unreadable: {err}")))?;
    let stacks = api::stack_resources(state, &e).await?;
    let mut ops = state
        .db
        .operation_page(team, Some(&e.id), before, OPERATIONS_PER_PAGE + 1)
        .await?;
    let more = ops.len() as i64 > OPERATIONS_PER_PAGE;
    ops.truncate(OPERATIONS_PER_PAGE as usize);
    let newest = match (before, ops.first()) {
        (None, Some((o, _))) => Some(o.clone()),
        _ => state
            .db
            .operation_page(team, Some(&e.id), None, 1)
            .await?
            .into_iter()
            .next()
            .map(|(o, _)| o),
    };
    let active = newest
        .as_ref()
        .filter(|o| matches!(o.state.as_str(), "queued" | "running"));
    let live = match active {
        Some(op) => Some(live_log(state, op, Some(&e)).await?),
        None => None,
    };
    let failed = newest.as_ref().filter(|o| o.state == "failed");
    let failure = failed.and_then(|o| {
        let outcome: serde_json::Value =
            serde_json::from_str(o.outcome.as_deref().unwrap_or("null")).ok()?;
        let f = &outcome["failure"];
        let text = match f["resource"].as_str() {
            Some(r) => format!(
                "{r} failed{}: {}",
                f["code"]
                    .as_str()
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default(),
                f["message"].as_str().unwrap_or("")
            ),
            None => outcome["error"]
                .as_str()
                .unwrap_or("the last operation failed")
                .to_owned(),
        };
        Some((o.id.clone(), text))
    });
    let failed_resource = failed.and_then(|o| {
        let outcome: serde_json::Value =
            serde_json::from_str(o.outcome.as_deref().unwrap_or("null")).ok()?;
        Some((
            outcome["failure"]["stack"].as_str()?.to_owned(),
            outcome["failure"]["resource"].as_str()?.to_owned(),
        ))
    });

    // Expected resources: what each stack's blueprint declares, so that resources not
    // made yet show as waiting.
    let spec = params.spec(team, env);
    let mut expected: Vec<(String, String, Declared)> = Vec::new();
    if let Ok(run) = paddock_platform::repository_stack(&spec, &state.settings) {
        expected.push((
            "Repository".into(),
            run.stack.clone(),
            run.graph
                .resources
                .iter()
                .map(|r| (r.name.clone(), r.ty.clone()))
                .collect(),
        ));
    }
    for stage in &params.stages {
        if let Ok(run) = paddock_platform::stage_stack(&spec, *stage, &state.settings) {
            expected.push((
                stage.name().to_owned(),
                run.stack.clone(),
                run.graph
                    .resources
                    .iter()
                    .map(|r| (r.name.clone(), r.ty.clone()))
                    .collect(),
            ));
        }
    }
    let active_stages: Vec<Stage> = active
        .map(|o| serde_json::from_str(&o.stages).unwrap_or_default())
        .unwrap_or_default();
    let mut columns = Vec::new();
    for (title, stack, declared) in expected {
        let have = stacks.iter().find(|s| s.stack == stack);
        let mut rows = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for (name, ty) in &declared {
            let made = have.and_then(|s| s.resources.iter().find(|r| &r.name == name));
            seen.insert(name.clone());
            rows.push(resource_row(
                state,
                &stack,
                name,
                ty,
                made,
                &e,
                active.is_some(),
                failed_resource.as_ref(),
            ));
        }
        // Resources in state the blueprint no longer declares (to be deleted).
        for r in have.map(|s| s.resources.as_slice()).unwrap_or_default() {
            if !seen.contains(&r.name) {
                rows.push(resource_row(
                    state,
                    &stack,
                    &r.name,
                    &r.ty,
                    Some(r),
                    &e,
                    active.is_some(),
                    failed_resource.as_ref(),
                ));
            }
        }
        if let Some(live) = &live {
            for row in &mut rows {
                if let Some(s) = live.statuses.get(&row.key) {
                    row.status = s.clone();
                }
            }
        }
        let running = active.is_some()
            && (title == "Repository"
                || active_stages.is_empty()
                || active_stages.iter().any(|s| s.name() == title));
        let status = column_status(&rows, running, &e.status);
        columns.push(Column {
            title: if title == "Repository" {
                title
            } else {
                format!("{title} stage")
            },
            stack,
            status,
            systems: group_by_system(rows),
            pending: have.map(|s| s.pending).unwrap_or(0),
        });
    }
    let mut outputs_rows = Vec::new();
    for s in &outputs.stacks {
        let clear = revealed
            .as_ref()
            .and_then(|r| r.stacks.iter().find(|r| r.stack == s.stack));
        for (k, v) in s.outputs.as_object().into_iter().flatten() {
            let secret = v.as_str() == Some("[secret]");
            let shown = match clear {
                Some(c) if secret => &c.outputs[k],
                _ => v,
            };
            outputs_rows.push(OutputRow {
                stack: s.stack.clone(),
                key: k.clone(),
                secret,
                value: match shown {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
            });
        }
    }
    let history = ops
        .iter()
        .map(|(o, _)| HistoryRow {
            id: o.id.clone(),
            what: operation_words(&o.kind).to_owned(),
            stages: serde_json::from_str::<Vec<Stage>>(&o.stages)
                .unwrap_or_default()
                .iter()
                .map(|s| s.name())
                .collect::<Vec<_>>()
                .join(", "),
            status: Status::of(&o.state),
            by: o.requested_by.clone(),
            when: When::at(o.created_at),
        })
        .collect();
    let base = format!("/teams/{team}/environments/{env}");
    let history_pager = Pager::keyset(
        before.map(|_| format!("{base}#history")),
        if more {
            ops.last()
                .map(|(o, _)| format!("{base}?before={}#history", o.seq))
        } else {
            None
        },
    );
    let mut chrome = viewer
        .chrome(format!("{env} · {team}"))
        .in_team(team)
        .crumb(env, base.clone());
    if live.is_some() {
        chrome = chrome.live();
    }
    let lifecycle = super::lifecycle::panel(state, viewer, &e, &params, active.is_some()).await?;
    let mut approvals = Vec::new();
    for a in state.db.approvals_of_environment(&e.id, 5).await? {
        approvals.push(super::approvals::row(state, viewer, &a).await?);
    }
    let (upgrade, pin) = super::fleet::sections(state, viewer, &e, live.is_some()).await?;
    let page = EnvironmentPage {
        lifecycle,
        approvals,
        upgrade,
        pin,
        chrome,
        team: team.to_owned(),
        env: env.to_owned(),
        status: Status::of(&e.status),
        blueprint: format!("{}@{}", e.blueprint, e.blueprint_version),
        created_by: e.created_by.clone(),
        created: When::at(e.created_at),
        repository: if columns.first().is_some_and(|c| c.title == "Repository") {
            Some(columns.remove(0))
        } else {
            None
        },
        columns,
        outputs: outputs_rows,
        revealed: revealed.is_some(),
        may_reveal: viewer.may(&Action::RevealSecrets { team }),
        may_change: e.status != "destroyed"
            && viewer.may(&Action::ChangeStages {
                team,
                stages: &params.stages,
            }),
        may_destroy: e.status != "destroyed" && viewer.may(&Action::Destroy { team }),
        params,
        live,
        failure,
        history,
        history_pager,
    };
    ok(&page)
}

#[allow(clippy::too_many_arguments)]
fn resource_row(
    state: &AppState,
    stack: &str,
    name: &str,
    ty: &str,
    made: Option<&crate::views::ResourceView>,
    e: &db::Environment,
    active: bool,
    failed: Option<&(String, String)>,
) -> ResourceRow {
    let is_failed = failed.is_some_and(|(s, r)| s == stack && r == name);
    let status = match made {
        _ if is_failed => Status::of("failed"),
        Some(r) if r.delete_pending => Status::new("to be deleted", "waiting"),
        Some(_) => Status::of("ready"),
        None if e.status == "destroyed" => Status::of("destroyed"),
        None if active => Status::of("waiting"),
        None => Status::new("not created", "waiting"),
    };
    ResourceRow {
        name: name.to_owned(),
        ty: ty.to_owned(),
        id: made.map(|r| r.id.clone()).unwrap_or_default(),
        status,
        link: made.and_then(|r| console_link(state, ty, &r.id, &r.outputs)),
        key: format!("{stack}/{name}"),
        note: String::new(),
    }
}

fn column_status(rows: &[ResourceRow], running: bool, env_status: &str) -> Status {
    if running {
        return Status::of(match env_status {
            "creating" | "updating" | "destroying" => env_status,
            _ => "running",
        });
    }
    if rows.iter().any(|r| r.status.group == "failed") {
        return Status::of("failed");
    }
    if env_status == "destroyed" {
        return Status::of("destroyed");
    }
    if !rows.is_empty() && rows.iter().all(|r| r.status.word == "ready") {
        return Status::of("ready");
    }
    Status::of("waiting")
}

/// Where a resource lives: the sandbox's inspection page, or the real cloud's console.
pub(crate) fn console_link(
    state: &AppState,
    ty: &str,
    id: &str,
    outputs: &serde_json::Value,
) -> Option<(String, &'static str)> {
    if id.is_empty() {
        return None;
    }
    if let Some(control) = &state.sandbox_console {
        return Some((format!("{}/", control.trim_end_matches('/')), "sandbox"));
    }
    let tenant = &state.settings.tenant_id;
    let entra = "https://entra.microsoft.com/#view";
    let url = match ty {
        t if t.starts_with("azure:") && id.starts_with("/subscriptions/") => {
            format!("https://portal.azure.com/#@{tenant}/resource{id}")
        }
        "entra:group" => {
            format!("{entra}/Microsoft_AAD_IAM/GroupDetailsMenuBlade/~/Overview/groupId/{id}")
        }
        "entra:application" => format!(
            "{entra}/Microsoft_AAD_RegisteredApps/ApplicationMenuBlade/~/Overview/appId/{}",
            outputs["appId"].as_str()?
        ),
        "entra:servicePrincipal" => {
            format!("{entra}/Microsoft_AAD_IAM/ManagedAppMenuBlade/~/Overview/objectId/{id}")
        }
        t if t.starts_with("github:") => match outputs["htmlUrl"].as_str() {
            Some(u) if u.starts_with("https://") => u.to_owned(),
            _ if t == "github:team" => format!(
                "https://github.com/orgs/{}/teams/{}",
                state.settings.github_org,
                outputs["slug"].as_str()?
            ),
            _ => return None,
        },
        _ => return None,
    };
    Some((url, "console"))
}

#[derive(Deserialize)]
struct ActForm {
    csrf_token: Option<String>,
    #[serde(default)]
    kind: String,
}

/// Refresh or preview, from the page's buttons: queued, then its page.
pub(crate) async fn act(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path((team, env)): Path<(String, String)>,
    body: Bytes,
) -> PageResult {
    let f: ActForm = form(&body)?;
    viewer.check_form(f.csrf_token.as_deref())?;
    let kind = match f.kind.as_str() {
        "refresh" => OperationKind::Refresh,
        "preview" => OperationKind::Preview,
        "up" => OperationKind::Up,
        other => {
            return Err(Problem::field(
                "kind",
                format!("`{other}` is not an action here: refresh, preview or up"),
            ));
        }
    };
    let req = NewOperation {
        kind,
        stages: None,
        resources: None,
    };
    let answer = api::request_operation(&state, &viewer.ctx, &team, &env, &req, b"").await?;
    queued(answer, &format!("/teams/{team}/environments/{env}"))
}

/// To the operation just queued (or back to `fallback`).
pub(crate) fn queued(answer: api::Answer, fallback: &str) -> PageResult {
    match answer.operation {
        Some(op) => see(&format!("/operations/{}", op.id)),
        None => see(fallback),
    }
}

#[derive(Template)]
#[template(path = "destroy.html")]
struct DestroyPage {
    chrome: Chrome,
    team: String,
    env: String,
    stages: String,
    error: String,
}

fn destroy_page(
    viewer: &Viewer,
    team: &str,
    env: &str,
    params: &EnvironmentParameters,
    error: &str,
) -> DestroyPage {
    DestroyPage {
        chrome: viewer
            .chrome(format!("Destroy {env}"))
            .in_team(team)
            .crumb(env, format!("/teams/{team}/environments/{env}"))
            .crumb(
                "Destroy",
                format!("/teams/{team}/environments/{env}/destroy"),
            ),
        team: team.to_owned(),
        env: env.to_owned(),
        stages: params
            .stages
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", "),
        error: error.to_owned(),
    }
}

async fn destroyable(
    state: &AppState,
    viewer: &Viewer,
    team: &str,
    env: &str,
) -> Result<EnvironmentParameters, Problem> {
    state
        .authorize(
            &viewer.ctx,
            Action::Destroy { team },
            &format!("teams/{team}/environments/{env}"),
        )
        .await?;
    let e = api::existing_environment(state, team, env).await?;
    serde_json::from_str(&e.parameters)
        .map_err(|err| Problem::internal(format!("environment parameters unreadable: {err}")))
}

/// Destroy asks for the environment's name to be typed.
pub(crate) async fn confirm_destroy(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path((team, env)): Path<(String, String)>,
) -> PageResult {
    let params = destroyable(&state, &viewer, &team, &env).await?;
    ok(&destroy_page(&viewer, &team, &env, &params, ""))
}

#[derive(Deserialize)]
struct DestroyForm {
    csrf_token: Option<String>,
    #[serde(default)]
    confirm: String,
}

pub(crate) async fn destroy(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path((team, env)): Path<(String, String)>,
    body: Bytes,
) -> PageResult {
    let f: DestroyForm = form(&body)?;
    viewer.check_form(f.csrf_token.as_deref())?;
    let params = destroyable(&state, &viewer, &team, &env).await?;
    if f.confirm.trim() != env {
        let error = format!("Type `{env}` exactly to destroy it; nothing was destroyed.");
        return Ok(render(
            StatusCode::UNPROCESSABLE_ENTITY,
            &destroy_page(&viewer, &team, &env, &params, &error),
        ));
    }
    let req = NewOperation {
        kind: OperationKind::Destroy,
        stages: None,
        resources: None,
    };
    let answer = api::request_operation(&state, &viewer.ctx, &team, &env, &req, b"").await?;
    queued(answer, &format!("/teams/{team}/environments/{env}"))
}

/// Statuses by `stack/resource` after a run's events so far.
pub(crate) fn statuses_after(events: &[db::EventRow]) -> BTreeMap<String, Status> {
    let mut out = BTreeMap::new();
    for ev in events {
        let data: serde_json::Value = serde_json::from_str(&ev.data).unwrap_or_default();
        let (Some(stack), Some(resource)) = (data["stack"].as_str(), data["resource"].as_str())
        else {
            continue;
        };
        let key = format!("{stack}/{resource}");
        let step = data["kind"].as_str().unwrap_or("");
        let status = match ev.kind.as_str() {
            "stepStarted" => Status::new(step_word(step), "running"),
            "stepSucceeded" if step == "delete" => Status::of("destroyed"),
            "stepSucceeded" => Status::of("ready"),
            "stepFailed" => Status::of("failed"),
            "drift" => Status::of("drifted"),
            _ => continue,
        };
        out.insert(key, status);
    }
    out
}

/// A step kind as a running status word.
pub(crate) fn step_word(kind: &str) -> &'static str {
    match kind {
        "create" => "creating",
        "update" => "updating",
        "replace" => "replacing",
        "delete" => "destroying",
        "read" => "reading",
        _ => "running",
    }
}
