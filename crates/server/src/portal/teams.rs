//! Teams and people: the team page (members and roles, the team's environments), the
//! create-team form, the list of all teams, and the people page.
//!
//! Invariants: every change calls the API's own function (`api::new_team`,
//! `api::put_member`, `api::delete_member`, `api::new_user`), so the portal and the API
//! cannot disagree on a rule; controls show only when `Viewer::may` says so.
//!
//! Must not: write to the database or compare roles itself.

use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use paddock_platform::Stage;
use serde::Deserialize;

use crate::AppState;
use crate::api::{self, Query};
use crate::policy::{Action, Role};
use crate::views::{NewPerson, NewTeam};

use super::home::{EnvRow, PageQuery, operation_words};
use super::*;

const TEAMS_PER_PAGE: i64 = 25;
const ENVIRONMENTS_PER_PAGE: i64 = 20;
const MEMBERS_PER_PAGE: usize = 50;
const PEOPLE_PER_PAGE: i64 = 50;

struct MemberRow {
    login: String,
    name: String,
    role: String,
}

struct OpRow {
    id: String,
    what: String,
    environment: Option<String>,
    status: Status,
    by: String,
    when: When,
}

#[derive(Template)]
#[template(path = "team.html")]
struct TeamPage {
    chrome: Chrome,
    team: String,
    description: String,
    created_by: String,
    created: When,
    members: Vec<MemberRow>,
    members_pager: Pager,
    environments: Vec<EnvRow>,
    env_pager: Pager,
    env_total: i64,
    operations: Vec<OpRow>,
    may_manage: bool,
    may_create: bool,
    roles: &'static [&'static str],
    errors: FormErrors,
    add_login: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TeamQuery {
    page: Option<i64>,
    members: Option<i64>,
}

pub(crate) async fn show(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path(team): Path<String>,
    Query(q): Query<TeamQuery>,
) -> PageResult {
    team_page(&state, &viewer, &team, &q, FormErrors::default(), "").await
}

async fn team_page(
    state: &AppState,
    viewer: &Viewer,
    team: &str,
    q: &TeamQuery,
    errors: FormErrors,
    add_login: &str,
) -> PageResult {
    state
        .authorize(
            &viewer.ctx,
            Action::ReadTeam { team },
            &format!("teams/{team}"),
        )
        .await?;
    let t = api::existing_team(state, team).await?;
    let all_members = state.db.members(team).await?;
    let m_offset = offset_of(q.members, MEMBERS_PER_PAGE as i64);
    let members = all_members
        .iter()
        .skip(m_offset as usize)
        .take(MEMBERS_PER_PAGE)
        .map(|m| MemberRow {
            login: m.login.clone(),
            name: m.name.clone(),
            role: m.role.clone(),
        })
        .collect::<Vec<_>>();
    let members_pager = if all_members.len() > MEMBERS_PER_PAGE {
        Pager::offsets(
            m_offset,
            MEMBERS_PER_PAGE as i64,
            members.len(),
            all_members.len() as i64,
            |o| {
                format!(
                    "/teams/{team}?members={}#members",
                    o / MEMBERS_PER_PAGE as i64 + 1
                )
            },
        )
    } else {
        Pager::default()
    };
    let offset = offset_of(q.page, ENVIRONMENTS_PER_PAGE);
    let envs = state
        .db
        .environment_page(team, offset, ENVIRONMENTS_PER_PAGE)
        .await?;
    let env_total = match envs.first() {
        Some(e) => e.team_total,
        None if offset == 0 => 0,
        None => state.db.environment_count(team).await?,
    };
    let env_pager = Pager::offsets(offset, ENVIRONMENTS_PER_PAGE, envs.len(), env_total, |o| {
        format!(
            "/teams/{team}?page={}#environments",
            o / ENVIRONMENTS_PER_PAGE + 1
        )
    });
    let ids: Vec<String> = envs.iter().map(|e| e.environment.id.clone()).collect();
    let expiries = state.db.expiries_for(&ids).await?;
    let ops = state.db.operation_page(team, None, None, 5).await?;
    let operations = ops
        .into_iter()
        .map(|(o, env)| OpRow {
            what: operation_words(&o.kind).to_owned(),
            status: Status::of(&o.state),
            by: o.requested_by.clone(),
            when: When::at(o.created_at),
            environment: env,
            id: o.id,
        })
        .collect();
    ok(&TeamPage {
        chrome: viewer.chrome(team).in_team(team),
        team: team.to_owned(),
        description: t.description,
        created_by: t.created_by,
        created: When::at(t.created_at),
        members,
        members_pager,
        environments: envs
            .iter()
            .map(|s| {
                EnvRow::of(s).with_expiry(
                    &s.environment.id,
                    &expiries,
                    state.config.expiry_warning(),
                )
            })
            .collect(),
        env_pager: if env_total > ENVIRONMENTS_PER_PAGE {
            env_pager
        } else {
            Pager::default()
        },
        env_total,
        operations,
        may_manage: viewer.may(&Action::ManageMembers { team }),
        may_create: viewer.may(&Action::ChangeStages {
            team,
            stages: &[Stage::Dev],
        }),
        roles: &["reader", "contributor", "admin"],
        errors,
        add_login: add_login.to_owned(),
    })
}

#[derive(Deserialize)]
struct MemberForm {
    csrf_token: Option<String>,
    #[serde(default)]
    login: String,
    #[serde(default)]
    role: String,
}

fn role_of(s: &str) -> Result<Role, Problem> {
    Role::parse(s).ok_or_else(|| {
        Problem::field(
            "role",
            format!("`{s}` is not a role: reader, contributor or admin"),
        )
    })
}

/// Adds a member (or changes the role of one already there).
pub(crate) async fn add_member(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path(team): Path<String>,
    body: Bytes,
) -> PageResult {
    let f: MemberForm = form(&body)?;
    viewer.check_form(f.csrf_token.as_deref())?;
    let login = f.login.trim().to_owned();
    let done = async {
        let role = role_of(&f.role)?;
        if login.is_empty() {
            return Err(Problem::field("login", "give the person's login"));
        }
        api::put_member(&state, &viewer.ctx, &team, &login, role, b"").await
    }
    .await;
    member_done(&state, &viewer, &team, done, &login).await
}

/// Changes a member's role.
pub(crate) async fn change_member(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path((team, login)): Path<(String, String)>,
    body: Bytes,
) -> PageResult {
    let f: MemberForm = form(&body)?;
    viewer.check_form(f.csrf_token.as_deref())?;
    let done = async {
        let role = role_of(&f.role)?;
        api::put_member(&state, &viewer.ctx, &team, &login, role, b"").await
    }
    .await;
    member_done(&state, &viewer, &team, done, "").await
}

/// Removes a member.
pub(crate) async fn remove_member(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path((team, login)): Path<(String, String)>,
    body: Bytes,
) -> PageResult {
    let f: MemberForm = form(&body)?;
    viewer.check_form(f.csrf_token.as_deref())?;
    let done = api::delete_member(&state, &viewer.ctx, &team, &login).await;
    member_done(&state, &viewer, &team, done, "").await
}

/// Back to the team page; a refused change shows its reason there, next to the form.
async fn member_done(
    state: &AppState,
    viewer: &Viewer,
    team: &str,
    done: Result<api::Answer, Problem>,
    login: &str,
) -> PageResult {
    match done {
        Ok(_) => see(&format!("/teams/{team}#members")),
        Err(p) => {
            let errors = FormErrors::of(field_errors(p)?);
            let q = TeamQuery {
                page: None,
                members: None,
            };
            let mut r = team_page(state, viewer, team, &q, errors, login).await?;
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
    }
}

#[derive(Template)]
#[template(path = "team_new.html")]
struct NewTeamPage {
    chrome: Chrome,
    errors: FormErrors,
    name: String,
    description: String,
}

pub(crate) async fn new_team(State(state): State<Arc<AppState>>, viewer: Viewer) -> PageResult {
    state
        .authorize(&viewer.ctx, Action::CreateTeam, "teams")
        .await?;
    ok(&NewTeamPage {
        chrome: viewer
            .chrome("Create a team")
            .section("teams")
            .crumb("Create a team", "/teams/new"),
        errors: FormErrors::default(),
        name: String::new(),
        description: String::new(),
    })
}

#[derive(Deserialize)]
struct TeamForm {
    csrf_token: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
}

pub(crate) async fn create_team(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    body: Bytes,
) -> PageResult {
    let f: TeamForm = form(&body)?;
    viewer.check_form(f.csrf_token.as_deref())?;
    let req = NewTeam {
        name: f.name.trim().to_owned(),
        description: f.description.trim().to_owned(),
    };
    match api::new_team(&state, &viewer.ctx, &req, b"").await {
        Ok(_) => see(&format!("/teams/{}", req.name)),
        Err(p) => Ok(render(
            StatusCode::UNPROCESSABLE_ENTITY,
            &NewTeamPage {
                chrome: viewer
                    .chrome("Create a team")
                    .section("teams")
                    .crumb("Create a team", "/teams/new"),
                errors: FormErrors::of(field_errors(p)?),
                name: req.name,
                description: req.description,
            },
        )),
    }
}

#[derive(Template)]
#[template(path = "teams.html")]
struct TeamsPage {
    chrome: Chrome,
    teams: Vec<(String, String, Option<String>)>,
    pager: Pager,
}

/// Every team, paged: where to find a team to ask to join.
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Query(q): Query<PageQuery>,
) -> PageResult {
    state
        .authorize(&viewer.ctx, Action::ListTeams, "teams")
        .await?;
    let offset = offset_of(q.page, TEAMS_PER_PAGE);
    let (teams, total) = state.db.team_page(offset, TEAMS_PER_PAGE).await?;
    let roles = &viewer.caller().principal.roles;
    let pager = Pager::offsets(offset, TEAMS_PER_PAGE, teams.len(), total, |o| {
        format!("/teams?page={}", o / TEAMS_PER_PAGE + 1)
    });
    ok(&TeamsPage {
        chrome: viewer
            .chrome("All teams")
            .section("teams")
            .crumb("All teams", "/teams"),
        teams: teams
            .into_iter()
            .map(|(name, description)| {
                let role = roles.get(&name).map(|r| r.name().to_owned());
                (name, description, role)
            })
            .collect(),
        pager,
    })
}

#[derive(Template)]
#[template(path = "people.html")]
struct PeoplePage {
    chrome: Chrome,
    people: Vec<(String, String, String, bool, When)>,
    pager: Pager,
    may_manage: bool,
    local_accounts: bool,
    errors: FormErrors,
    form: PersonForm,
    created: String,
}

#[derive(Deserialize, Default)]
pub(crate) struct PersonForm {
    csrf_token: Option<String>,
    #[serde(default)]
    login: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    platform_admin: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PeopleQuery {
    page: Option<i64>,
    /// The login just created, to confirm it.
    created: Option<String>,
}

pub(crate) async fn people(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Query(q): Query<PeopleQuery>,
) -> PageResult {
    let form = PersonForm::default();
    let created = q.created.unwrap_or_default();
    people_page(
        &state,
        &viewer,
        q.page,
        FormErrors::default(),
        form,
        created,
    )
    .await
}

async fn people_page(
    state: &AppState,
    viewer: &Viewer,
    page: Option<i64>,
    errors: FormErrors,
    form: PersonForm,
    created: String,
) -> PageResult {
    state
        .authorize(&viewer.ctx, Action::ListPeople, "users")
        .await?;
    let offset = offset_of(page, PEOPLE_PER_PAGE);
    let users = state.db.user_page(offset, PEOPLE_PER_PAGE).await?;
    let total = state.db.user_count().await?;
    let pager = Pager::offsets(offset, PEOPLE_PER_PAGE, users.len(), total, |o| {
        format!("/people?page={}", o / PEOPLE_PER_PAGE + 1)
    });
    let status = if errors.any() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok(render(
        status,
        &PeoplePage {
            chrome: viewer
                .chrome("People")
                .section("people")
                .crumb("People", "/people"),
            people: users
                .into_iter()
                .map(|u| {
                    (
                        u.login,
                        u.name,
                        u.email.unwrap_or_default(),
                        u.platform_admin,
                        When::at(u.created_at),
                    )
                })
                .collect(),
            pager,
            may_manage: viewer.may(&Action::ManagePeople),
            local_accounts: state.config.local_accounts(),
            errors,
            form,
            created,
        },
    ))
}

pub(crate) async fn create_person(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    body: Bytes,
) -> PageResult {
    let mut f: PersonForm = form(&body)?;
    viewer.check_form(f.csrf_token.as_deref())?;
    let req = NewPerson {
        login: f.login.trim().to_owned(),
        name: f.name.trim().to_owned(),
        email: Some(f.email.trim().to_owned()).filter(|e| !e.is_empty()),
        password: Some(f.password.clone()).filter(|p| !p.is_empty()),
        platform_admin: f.platform_admin.is_some(),
    };
    match api::new_user(&state, &viewer.ctx, &req).await {
        Ok(user) => see(&format!("/people?created={}", url_encode(&user.login))),
        Err(p) => {
            let errors = FormErrors::of(field_errors(p)?);
            f.password.clear();
            people_page(&state, &viewer, None, errors, f, String::new()).await
        }
    }
}
