//! The pages around signing in: the sign-in page, the first-start welcome, and home (my
//! teams and their environments at a glance).
//!
//! Invariant: home reads one page of the viewer's teams with four queries, whatever
//! the number of environments (each team shows its first few; its page has the rest).
//!
//! Must not: decide permissions (controls show by `Viewer::may`).

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use paddock_platform::Stage;
use serde::Deserialize;

use crate::AppState;
use crate::api::Query;
use crate::policy::Action;

use super::*;

const TEAMS_PER_PAGE: i64 = 12;
const ENVIRONMENTS_PER_TEAM: i64 = 8;

/// One environment row on home or a team page.
pub(crate) struct EnvRow {
    pub name: String,
    pub status: Status,
    pub href: String,
    /// "up succeeded", with who and when.
    pub last: Option<(String, Status, String, When)>,
    /// When it expires, and whether that is within the warning window.
    pub expiry: Option<(When, bool)>,
}

impl EnvRow {
    pub(crate) fn of(s: &paddock_store::db::EnvironmentSummary) -> EnvRow {
        let e = &s.environment;
        EnvRow {
            name: e.name.clone(),
            status: Status::of(&e.status),
            href: format!("/teams/{}/environments/{}", e.team, e.name),
            last: s.last.as_ref().map(|l| {
                (
                    operation_words(&l.kind).to_owned(),
                    Status::of(&l.state),
                    l.by.clone(),
                    When::at(l.at),
                )
            }),
            expiry: None,
        }
    }

    /// With its expiry, looked up among `expiries` (one page's).
    pub(crate) fn with_expiry(
        mut self,
        id: &str,
        expiries: &[paddock_store::db::Expiry],
        warning: std::time::Duration,
    ) -> EnvRow {
        self.expiry = super::lifecycle::expiry_of(id, expiries, warning);
        self
    }
}

/// An operation kind as people say it.
pub(crate) fn operation_words(kind: &str) -> &str {
    match kind {
        "up" => "create or update",
        "preview" => "preview",
        "refresh" => "refresh",
        "destroy" => "destroy",
        "import" => "import",
        "accept-drift" => "accept drift",
        other => other,
    }
}

struct TeamCard {
    name: String,
    role: String,
    counts: Vec<(Status, i64)>,
    total: i64,
    environments: Vec<EnvRow>,
    may_create: bool,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    chrome: Chrome,
    teams: Vec<TeamCard>,
    pager: Pager,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    pub page: Option<i64>,
}

pub(crate) async fn home(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Query(q): Query<PageQuery>,
) -> PageResult {
    let principal = &viewer.caller().principal;
    let all: Vec<(&String, &crate::policy::Role)> = principal.roles.iter().collect();
    let offset = offset_of(q.page, TEAMS_PER_PAGE);
    let page: Vec<String> = all
        .iter()
        .skip(offset as usize)
        .take(TEAMS_PER_PAGE as usize)
        .map(|(t, _)| (*t).clone())
        .collect();
    let envs = state
        .db
        .environments_of_teams(&page, ENVIRONMENTS_PER_TEAM)
        .await?;
    let counts = state.db.status_counts(&page).await?;
    let ids: Vec<String> = envs.iter().map(|e| e.environment.id.clone()).collect();
    let expiries = state.db.expiries_for(&ids).await?;
    let mut by_team: BTreeMap<&str, Vec<&paddock_store::db::EnvironmentSummary>> = BTreeMap::new();
    for e in &envs {
        by_team.entry(&e.environment.team).or_default().push(e);
    }
    let teams = page
        .iter()
        .map(|t| {
            let rows = by_team.get(t.as_str()).cloned().unwrap_or_default();
            let counts: Vec<(Status, i64)> = counts
                .iter()
                .filter(|c| &c.team == t)
                .map(|c| (Status::of(&c.status), c.count))
                .collect();
            TeamCard {
                name: t.clone(),
                role: principal.roles[t].name().to_owned(),
                total: counts.iter().map(|c| c.1).sum(),
                counts,
                environments: rows
                    .into_iter()
                    .map(|s| {
                        EnvRow::of(s).with_expiry(
                            &s.environment.id,
                            &expiries,
                            state.config.expiry_warning(),
                        )
                    })
                    .collect(),
                may_create: viewer.may(&Action::ChangeStages {
                    team: t,
                    stages: &[Stage::Dev],
                }),
            }
        })
        .collect();
    let pager = Pager::offsets(offset, TEAMS_PER_PAGE, page.len(), all.len() as i64, |o| {
        format!("/?page={}", o / TEAMS_PER_PAGE + 1)
    });
    ok(&HomePage {
        chrome: viewer.chrome("Home").section("home"),
        teams,
        pager: if all.len() as i64 > TEAMS_PER_PAGE {
            pager
        } else {
            Pager::default()
        },
    })
}

#[derive(Template)]
#[template(path = "welcome.html")]
struct WelcomePage {
    chrome: Chrome,
    platform_admin: bool,
}

/// Where the first-start link lands: what to do next.
pub(crate) async fn welcome(viewer: Viewer) -> PageResult {
    ok(&WelcomePage {
        platform_admin: viewer.caller().principal.platform_admin,
        chrome: viewer.chrome("Welcome").section("home"),
    })
}

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    chrome: Chrome,
    form_token: String,
    local: bool,
    providers: Vec<String>,
    next: String,
    error: String,
    login: String,
}

/// The sign-in page: the local form (if local accounts are on) and a button per
/// identity provider. `error` is shown above the form (after a wrong password).
pub(crate) fn sign_in_page(
    state: &AppState,
    form_token: &str,
    next: Option<&str>,
    error: &str,
    login: &str,
) -> Response {
    let page = SignInPage {
        chrome: Chrome::of(None, "", "Sign in".into()),
        form_token: form_token.to_owned(),
        local: state.config.local_accounts(),
        providers: state
            .identity_providers
            .iter()
            .map(|p| p.name().to_owned())
            .collect(),
        next: safe_next(next),
        error: error.to_owned(),
        login: login.to_owned(),
    };
    let status = if error.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    };
    render(status, &page)
}
