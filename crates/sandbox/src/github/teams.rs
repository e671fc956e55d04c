//! Teams of the organization: the teams themselves, their memberships and members, and
//! their permissions on repositories.

use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::errors::{GitHubError, GitHubResult, invalid, not_found, parse_json};
use super::paging::{Paging, param};
use super::{
    ADMIN_LOGIN, API, Caller, GitHub, MEMBERSHIP, REPO, TEAM, TEAM_REPO, USER, json_ok, now_iso,
    numeric_id,
};

/// A team's `description`, `privacy` (`secret` or `closed`) and `notification_setting`
/// from a create or edit request, each kept unless the request names it.
pub(super) fn team_settings(request: &Value, stored: &mut Value) -> Result<(), GitHubError> {
    const DOCS: &str = "https://docs.github.com/rest/teams/teams";
    let settings: [(&str, &[&str]); 2] = [
        ("privacy", &["secret", "closed"]),
        (
            "notification_setting",
            &["notifications_enabled", "notifications_disabled"],
        ),
    ];
    for (field, allowed) in settings {
        match request.get(field) {
            Some(Value::String(v)) if allowed.contains(&v.as_str()) => stored[field] = json!(v),
            Some(_) => {
                return Err(invalid(
                    "Validation Failed",
                    "Team",
                    field,
                    &format!("{field} must be one of: {}", allowed.join(", ")),
                    DOCS,
                ));
            }
            None => {}
        }
    }
    match request.get("description") {
        Some(v @ (Value::String(_) | Value::Null)) => stored["description"] = v.clone(),
        Some(_) => {
            return Err(invalid(
                "Validation Failed",
                "Team",
                "description",
                "description must be a string",
                DOCS,
            ));
        }
        None => {}
    }
    Ok(())
}

impl GitHub {
    /// A `team` (or, with `full`, a `team-full`).
    pub(super) fn team(&self, stored: &Value, full: bool) -> Value {
        let slug = stored["slug"].as_str().unwrap_or_default();
        let api = format!(
            "{}/organizations/{}/team/{}",
            self.api(),
            numeric_id(&self.org),
            numeric_id(slug)
        );
        let mut team = json!({
            "id": numeric_id(slug), "node_id": format!("T_{}", numeric_id(slug)), "url": api, "members_url": format!("{api}/members{{/member}}"),
            "name": stored["name"], "slug": slug, "description": stored["description"], "privacy": stored["privacy"],
            "notification_setting": stored["notification_setting"].as_str().unwrap_or("notifications_enabled"),
            "permission": "pull", "html_url": format!("{}/orgs/{}/teams/{slug}", self.base_url, self.org), "repositories_url": format!("{api}/repos"),
            "parent": null, "type": "organization",
        });
        if full {
            team["created_at"] = stored["created_at"].clone();
            team["updated_at"] = stored["created_at"].clone();
            team["members_count"] = stored["members_count"].clone();
            team["repos_count"] = stored["repos_count"].clone();
            team["organization"] = self.organization();
            team.as_object_mut().expect("an object").remove("parent");
        }
        team
    }

    pub(super) async fn teams(
        &self,
        method: &Method,
        rest: &[&str],
        query: &[(String, String)],
        caller: Caller,
        body: &[u8],
    ) -> GitHubResult {
        const DOCS: &str = "https://docs.github.com/rest/teams/teams";
        match (rest, method) {
            ([], &Method::GET) => {
                let teams: Vec<Value> = self
                    .docs
                    .list(API, TEAM, "")
                    .await?
                    .iter()
                    .map(|(_, t)| self.team(t, false))
                    .collect();
                let url = format!("{}/orgs/{}/teams", self.api(), self.org);
                Ok(Paging::of(query).array(&teams, &url, query))
            }
            ([], &Method::POST) => {
                let request = parse_json(body, DOCS)?;
                let name = request["name"]
                    .as_str()
                    .filter(|n| !n.trim().is_empty())
                    .ok_or_else(|| {
                        invalid(
                            "Validation Failed",
                            "Team",
                            "name",
                            "name is required",
                            DOCS,
                        )
                    })?;
                let slug: String = name
                    .to_lowercase()
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                    .collect();
                let mut stored = json!({
                    "name": name, "slug": slug, "description": request["description"], "privacy": "secret",
                    "notification_setting": "notifications_enabled", "created_at": now_iso(), "members_count": 0, "repos_count": 0,
                });
                team_settings(&request, &mut stored)?;
                if !self.docs.insert_new(API, TEAM, &slug, &stored).await? {
                    return Err(invalid(
                        "Validation Failed",
                        "Team",
                        "name",
                        "Name must be unique for this org",
                        DOCS,
                    ));
                }
                // A user who creates a team becomes its maintainer (an app's bot does not).
                if caller == Caller::Admin {
                    let url = format!(
                        "{}/organizations/{}/team/{}/memberships/{ADMIN_LOGIN}",
                        self.api(),
                        numeric_id(&self.org),
                        numeric_id(&slug)
                    );
                    let membership = json!({"url": url, "role": "maintainer", "state": "active"});
                    self.docs
                        .put(
                            API,
                            MEMBERSHIP,
                            &format!("{slug}/{ADMIN_LOGIN}"),
                            &membership,
                        )
                        .await?;
                }
                Ok(json_ok(StatusCode::CREATED, self.team(&stored, true)))
            }
            ([slug, tail @ ..], m) => {
                let mut stored = self
                    .docs
                    .get(API, TEAM, slug)
                    .await?
                    .ok_or_else(|| not_found(DOCS))?;
                match (tail, m) {
                    ([], &Method::GET) => Ok(json_ok(StatusCode::OK, self.team(&stored, true))),
                    ([], &Method::PATCH) => {
                        let request = parse_json(body, DOCS)?;
                        // A new name would be a new slug, which everything of the team is
                        // kept by: the sandbox refuses a rename rather than ignore it.
                        if let Some(name) = request.get("name")
                            && name != &stored["name"]
                        {
                            return Err(invalid(
                                "Validation Failed",
                                "Team",
                                "name",
                                "the sandbox does not rename teams",
                                DOCS,
                            ));
                        }
                        team_settings(&request, &mut stored)?;
                        self.docs.put(API, TEAM, slug, &stored).await?;
                        Ok(json_ok(StatusCode::OK, self.team(&stored, true)))
                    }
                    ([], &Method::DELETE) => {
                        self.docs
                            .delete_prefix(API, &[MEMBERSHIP, TEAM_REPO], &format!("{slug}/"))
                            .await?;
                        self.docs.delete(API, TEAM, slug).await?;
                        Ok(StatusCode::NO_CONTENT.into_response())
                    }
                    (["memberships", login], m) => self.membership(m, slug, login, body).await,
                    (["members"], &Method::GET) => self.members(slug, query).await,
                    // The legacy "get team member" that a team's `members_url` leads to.
                    (["members", login], &Method::GET) => {
                        let key = format!("{slug}/{}", login.to_lowercase());
                        match self.docs.get(API, MEMBERSHIP, &key).await? {
                            Some(_) => Ok(StatusCode::NO_CONTENT.into_response()),
                            None => Err(not_found("https://docs.github.com/rest/teams/members")),
                        }
                    }
                    (["repos"], &Method::GET) => self.team_repos(slug, query).await,
                    (["repos", owner, repo], m) if self.is_org(owner) => {
                        self.team_repo(m, slug, repo, body).await
                    }
                    _ => Err(not_found(DOCS)),
                }
            }
            _ => Err(not_found(DOCS)),
        }
    }

    pub(super) async fn membership(
        &self,
        method: &Method,
        slug: &str,
        login: &str,
        body: &[u8],
    ) -> GitHubResult {
        const DOCS: &str = "https://docs.github.com/rest/teams/members";
        let key = format!("{slug}/{}", login.to_lowercase());
        let url = format!(
            "{}/organizations/{}/team/{}/memberships/{login}",
            self.api(),
            numeric_id(&self.org),
            numeric_id(slug)
        );
        match *method {
            Method::PUT => {
                if self
                    .docs
                    .get(API, USER, &login.to_lowercase())
                    .await?
                    .is_none()
                {
                    return Err(not_found(DOCS));
                }
                let request = parse_json(body, DOCS)?;
                let role = request["role"].as_str().unwrap_or("member");
                if !["member", "maintainer"].contains(&role) {
                    return Err(invalid(
                        "Validation Failed",
                        "TeamMember",
                        "role",
                        "role must be member or maintainer",
                        DOCS,
                    ));
                }
                let membership = json!({"url": url, "role": role, "state": "active"});
                self.docs.put(API, MEMBERSHIP, &key, &membership).await?;
                Ok(json_ok(StatusCode::OK, membership))
            }
            Method::GET => Ok(json_ok(
                StatusCode::OK,
                self.docs
                    .get(API, MEMBERSHIP, &key)
                    .await?
                    .ok_or_else(|| not_found(DOCS))?,
            )),
            Method::DELETE => {
                self.docs.delete(API, MEMBERSHIP, &key).await?;
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            _ => Err(not_found(DOCS)),
        }
    }

    pub(super) async fn team_repo(
        &self,
        method: &Method,
        slug: &str,
        repo: &str,
        body: &[u8],
    ) -> GitHubResult {
        const DOCS: &str = "https://docs.github.com/rest/teams/teams";
        let stored_repo = self
            .docs
            .get(API, REPO, &repo.to_lowercase())
            .await?
            .ok_or_else(|| not_found(DOCS))?;
        let key = format!("{slug}/{}", repo.to_lowercase());
        match *method {
            Method::PUT => {
                let request = parse_json(body, DOCS)?;
                let permission = request["permission"].as_str().unwrap_or("push");
                if !["pull", "triage", "push", "maintain", "admin"].contains(&permission) {
                    return Err(invalid(
                        "Validation Failed",
                        "Team",
                        "permission",
                        "permission must be pull, triage, push, maintain or admin",
                        DOCS,
                    ));
                }
                self.docs
                    .put(API, TEAM_REPO, &key, &json!({ "permission": permission }))
                    .await?;
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            Method::GET => {
                let grant = self
                    .docs
                    .get(API, TEAM_REPO, &key)
                    .await?
                    .ok_or_else(|| not_found(DOCS))?;
                Ok(json_ok(
                    StatusCode::OK,
                    self.granted_repository(&stored_repo, &grant["permission"]),
                ))
            }
            Method::DELETE => {
                self.docs.delete(API, TEAM_REPO, &key).await?;
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            _ => Err(not_found(DOCS)),
        }
    }

    /// `GET /orgs/{org}/teams/{team_slug}/members`: the team's members (`role`: `all`,
    /// `member` or `maintainer`), paged.
    pub(super) async fn members(&self, slug: &str, query: &[(String, String)]) -> GitHubResult {
        let role = param(query, "role").unwrap_or("all");
        let mut users = Vec::new();
        for (key, membership) in self.docs.list(API, MEMBERSHIP, &format!("{slug}/")).await? {
            if role != "all" && membership["role"] != json!(role) {
                continue;
            }
            let login = key.rsplit('/').next().unwrap_or_default();
            let user = self.docs.get(API, USER, login).await?;
            let (login, id) = match &user {
                Some(u) => (
                    u["login"].as_str().unwrap_or(login),
                    u["id"].as_i64().unwrap_or_default(),
                ),
                None => (login, numeric_id(&format!("user:{login}"))),
            };
            users.push(self.simple_user(login, id, "User"));
        }
        let url = format!("{}/orgs/{}/teams/{slug}/members", self.api(), self.org);
        Ok(Paging::of(query).array(&users, &url, query))
    }

    /// A `team-repository`: the repository with what the team may do with it.
    fn granted_repository(&self, stored_repo: &Value, permission: &Value) -> Value {
        let level = ["pull", "triage", "push", "maintain", "admin"]
            .iter()
            .position(|p| permission == &json!(p))
            .unwrap_or(0);
        let mut r = self.repository(stored_repo);
        r["has_downloads"] = json!(false);
        r["role_name"] = permission.clone();
        r["permissions"] = json!({"pull": true, "triage": level >= 1, "push": level >= 2, "maintain": level >= 3, "admin": level >= 4});
        r
    }

    /// `GET /orgs/{org}/teams/{team_slug}/repos`: the repositories the team has a
    /// permission on (a team's `repositories_url`), paged.
    async fn team_repos(&self, slug: &str, query: &[(String, String)]) -> GitHubResult {
        let mut repos = Vec::new();
        for (key, grant) in self.docs.list(API, TEAM_REPO, &format!("{slug}/")).await? {
            let name = key.rsplit('/').next().unwrap_or_default();
            if let Some(stored) = self.docs.get(API, REPO, name).await? {
                repos.push(self.granted_repository(&stored, &grant["permission"]));
            }
        }
        let url = format!("{}/orgs/{}/teams/{slug}/repos", self.api(), self.org);
        Ok(Paging::of(query).array(&repos, &url, query))
    }

    /// The teams with a permission on a repository, each with its permission.
    pub(super) async fn repo_teams(&self, repo_key: &str) -> Result<Vec<Value>, GitHubError> {
        let mut teams = Vec::new();
        for (slug, team) in self.docs.list(API, TEAM, "").await? {
            let key = format!("{slug}/{repo_key}");
            if let Some(grant) = self.docs.get(API, TEAM_REPO, &key).await? {
                let mut team = self.team(&team, false);
                team["permission"] = grant["permission"].clone();
                teams.push(team);
            }
        }
        Ok(teams)
    }
}
