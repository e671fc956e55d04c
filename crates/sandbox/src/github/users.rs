//! Users and the organization: `simple-user`, `public-user`, the organization, `GET
//! /user`, and the control API's users.

use axum::http::{HeaderValue, StatusCode};
use serde_json::{Value, json};

use crate::SandboxError;
use crate::documents::Documents;

use super::errors::{GitHubError, GitHubResult, error};
use super::{ADMIN_LOGIN, API, BOT_LOGIN, GitHub, MEMBERSHIP, USER, json_ok, now_iso, numeric_id};

/// Control API: creates a user of the sandbox (GitHub users exist outside any
/// organization; tests and the demo make the people they need).
pub(crate) async fn create_user(
    docs: &Documents,
    login: &str,
    name: Option<&str>,
) -> Result<Value, SandboxError> {
    let user = json!({"login": login, "id": numeric_id(&format!("user:{login}")), "name": name, "created_at": now_iso()});
    docs.put(API, USER, &login.to_lowercase(), &user).await?;
    Ok(user)
}

impl GitHub {
    pub(super) fn owner(&self) -> Value {
        self.simple_user(&self.org, numeric_id(&self.org), "Organization")
    }

    /// A `simple-user`.
    pub(super) fn simple_user(&self, login: &str, id: i64, kind: &str) -> Value {
        let api = self.api();
        json!({
            "login": login, "id": id, "node_id": format!("{}_{id}", if kind == "Organization" { "O" } else { "U" }),
            "avatar_url": format!("{}/avatars/{login}", self.base_url), "gravatar_id": "",
            "url": format!("{api}/users/{login}"), "html_url": format!("{}/{login}", self.base_url),
            "followers_url": format!("{api}/users/{login}/followers"), "following_url": format!("{api}/users/{login}/following{{/other_user}}"),
            "gists_url": format!("{api}/users/{login}/gists{{/gist_id}}"), "starred_url": format!("{api}/users/{login}/starred{{/owner}}{{/repo}}"),
            "subscriptions_url": format!("{api}/users/{login}/subscriptions"), "organizations_url": format!("{api}/users/{login}/orgs"),
            "repos_url": format!("{api}/users/{login}/repos"), "events_url": format!("{api}/users/{login}/events{{/privacy}}"),
            "received_events_url": format!("{api}/users/{login}/received_events"), "type": kind, "site_admin": false,
        })
    }

    /// A `public-user` (of `kind` `User`, `Bot` or `Organization`).
    pub(super) fn public_user(&self, user: &Value, kind: &str) -> Value {
        let login = user["login"].as_str().unwrap_or_default();
        let mut u = self.simple_user(login, user["id"].as_i64().unwrap_or_default(), kind);
        for (k, v) in [
            ("bio", Value::Null),
            ("blog", json!("")),
            ("company", Value::Null),
            ("email", Value::Null),
            ("hireable", Value::Null),
            ("location", Value::Null),
            ("name", user["name"].clone()),
            ("followers", json!(0)),
            ("following", json!(0)),
            ("public_gists", json!(0)),
            ("public_repos", json!(0)),
            ("created_at", user["created_at"].clone()),
            ("updated_at", user["created_at"].clone()),
        ] {
            u[k] = v;
        }
        u
    }

    pub(super) fn organization(&self) -> Value {
        let (api, login) = (self.api(), &self.org);
        json!({
            "login": login, "id": numeric_id(login), "node_id": format!("O_{}", numeric_id(login)),
            "url": format!("{api}/orgs/{login}"), "repos_url": format!("{api}/orgs/{login}/repos"),
            "events_url": format!("{api}/orgs/{login}/events"), "hooks_url": format!("{api}/orgs/{login}/hooks"),
            "issues_url": format!("{api}/orgs/{login}/issues"), "members_url": format!("{api}/orgs/{login}/members{{/member}}"),
            "public_members_url": format!("{api}/orgs/{login}/public_members{{/member}}"), "avatar_url": format!("{}/avatars/{login}", self.base_url),
            "description": "The Paddock sandbox organization", "html_url": format!("{}/{login}", self.base_url),
            "has_organization_projects": false, "has_repository_projects": false, "public_repos": 0, "public_gists": 0,
            "followers": 0, "following": 0, "type": "Organization", "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z", "archived_at": null,
        })
    }

    /// The user a caller acts as: the org admin, or the app's bot.
    pub(super) fn caller_user(&self, caller: &str) -> Value {
        let (login, kind) = if caller == "installation" {
            (BOT_LOGIN, "Bot")
        } else {
            (ADMIN_LOGIN, "User")
        };
        self.simple_user(login, numeric_id(&format!("user:{login}")), kind)
    }

    /// `GET /user`: a `private-user` for a user's token; integrations have no user.
    pub(super) async fn authenticated_user(&self, token: &str) -> GitHubResult {
        const DOCS: &str = "https://docs.github.com/rest/users/users#get-the-authenticated-user";
        let login = if token == self.admin_token {
            ADMIN_LOGIN.to_owned()
        } else if let Some(login) = crate::github_oauth::token_login(&self.docs, token).await? {
            login
        } else if self.token_ok(token).await? {
            return Err(error(
                StatusCode::FORBIDDEN,
                "Resource not accessible by integration",
                DOCS,
            ));
        } else {
            return Err(error(StatusCode::UNAUTHORIZED, "Bad credentials", DOCS));
        };
        let counted = self.count()?;
        let stored = self.docs.get(API, USER, &login.to_lowercase()).await?;
        let stored = stored.unwrap_or_else(|| {
            json!({"login": login, "id": numeric_id(&format!("user:{login}")), "name": null, "created_at": now_iso()})
        });
        let mut user = self.public_user(&stored, "User");
        user["email"] = stored.get("email").cloned().unwrap_or(Value::Null);
        for (k, v) in [
            ("private_gists", json!(0)),
            ("total_private_repos", json!(0)),
            ("owned_private_repos", json!(0)),
            ("disk_usage", json!(0)),
            ("collaborators", json!(0)),
            ("two_factor_authentication", json!(true)),
        ] {
            user[k] = v;
        }
        let mut response = json_ok(StatusCode::OK, user);
        for (name, value) in counted {
            response
                .headers_mut()
                .insert(name, HeaderValue::from(value));
        }
        Ok(response)
    }

    /// `GET /users/{login}`: a user the sandbox made, the org admin, the app's bot, or the
    /// organization itself (GitHub answers an organization's login with its user view).
    pub(super) async fn known_user(&self, login: &str) -> Result<Option<Value>, GitHubError> {
        let made = |login: &str| json!({"login": login, "id": numeric_id(&format!("user:{login}")), "name": null, "created_at": "2026-01-01T00:00:00Z"});
        if self.is_org(login) {
            let org = json!({"login": self.org, "id": numeric_id(&self.org), "name": self.org, "created_at": "2026-01-01T00:00:00Z"});
            return Ok(Some(self.public_user(&org, "Organization")));
        }
        if login.eq_ignore_ascii_case(ADMIN_LOGIN) {
            return Ok(Some(self.public_user(&made(ADMIN_LOGIN), "User")));
        }
        if login.eq_ignore_ascii_case(BOT_LOGIN) {
            return Ok(Some(self.public_user(&made(BOT_LOGIN), "Bot")));
        }
        let stored = self.docs.get(API, USER, &login.to_lowercase()).await?;
        Ok(stored.map(|user| self.public_user(&user, "User")))
    }

    /// The login whose account id is `id` (`GET /user/{account_id}`).
    pub(super) async fn login_of(&self, id: i64) -> Result<Option<String>, GitHubError> {
        let mut logins = vec![ADMIN_LOGIN.to_owned(), BOT_LOGIN.to_owned()];
        for (_, user) in self.docs.list(API, USER, "").await? {
            logins.extend(user["login"].as_str().map(str::to_owned));
        }
        if id == numeric_id(&self.org) {
            return Ok(Some(self.org.clone()));
        }
        Ok(logins
            .into_iter()
            .find(|login| numeric_id(&format!("user:{login}")) == id))
    }

    /// The organization's members: the org admin and everyone on one of its teams.
    pub(super) async fn org_members(&self) -> Result<Vec<Value>, GitHubError> {
        let mut logins = vec![ADMIN_LOGIN.to_owned()];
        for (key, _) in self.docs.list(API, MEMBERSHIP, "").await? {
            let login = key.rsplit('/').next().unwrap_or_default().to_owned();
            if !logins.iter().any(|l| l.eq_ignore_ascii_case(&login)) {
                logins.push(login);
            }
        }
        let mut members = Vec::new();
        for login in logins {
            if let Some(user) = self.known_user(&login).await? {
                members.push(self.simple_user(
                    &login,
                    user["id"].as_i64().unwrap_or_default(),
                    "User",
                ));
            }
        }
        Ok(members)
    }
}
