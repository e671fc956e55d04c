//! GitHub REST, GitHub Enterprise style (`{base}/api/v3`): the organization, repositories,
//! deployment environments with required reviewers, environment secrets (libsodium sealed
//! boxes, opened with the environment's key so tests can check what arrived) and
//! environment variables; `X-RateLimit-*` headers on every response and `/rate_limit`.
//! Errors have GitHub's shape: `message`, `documentation_url`, `status`, and `errors`.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use crate::documents::Documents;
use crate::{SandboxError, now_ms, percent_decode, uuid_v4};

/// The API root, as GitHub Enterprise Server serves it.
pub const ROOT: &str = "/api/v3";
const API: &str = "github";
const REPO: &str = "repo";
const ENV: &str = "environment";
const ENV_KEY: &str = "environmentKey";
const SECRET: &str = "secret";
const VARIABLE: &str = "variable";
const TEAM: &str = "team";
const MEMBERSHIP: &str = "membership";
const TEAM_REPO: &str = "teamRepo";
const USER: &str = "user";
const CONTENT: &str = "content";
const PROTECTION: &str = "branchProtection";
const INSTALLATION_TOKEN: &str = "installationToken";
/// The sandbox's GitHub App and its installation on the organization.
pub const APP_ID: i64 = 424242;
pub const INSTALLATION_ID: i64 = 4242;
/// Requests an hour, as GitHub grants a token.
pub const RATE_LIMIT: u64 = 5000;

pub(crate) struct GitHub {
    pub docs: Documents,
    pub base_url: String,
    pub org: String,
    pub admin_token: String,
    /// (window start, used) of the admin token's hourly budget.
    pub rate: Mutex<(i64, u64)>,
    /// How long a repository generated from a template waits for its files, as GitHub
    /// copies them asynchronously.
    pub template_delay: std::time::Duration,
    /// The GitHub App's key: JWTs signed with its private half authenticate as the app.
    pub app_key: Arc<crate::tokens::Signer>,
}

pub(crate) struct GitHubError {
    status: StatusCode,
    message: String,
    docs: &'static str,
    errors: Option<Value>,
}

fn error(status: StatusCode, message: impl Into<String>, docs: &'static str) -> GitHubError {
    GitHubError {
        status,
        message: message.into(),
        docs,
        errors: None,
    }
}

impl From<SandboxError> for GitHubError {
    fn from(e: SandboxError) -> Self {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
            "https://docs.github.com/rest",
        )
    }
}

impl IntoResponse for GitHubError {
    fn into_response(self) -> Response {
        let mut body = json!({"message": self.message, "documentation_url": self.docs, "status": self.status.as_u16().to_string()});
        if let Some(errors) = self.errors {
            body["errors"] = errors;
        }
        (self.status, axum::Json(body)).into_response()
    }
}

type GitHubResult = Result<Response, GitHubError>;

fn not_found(docs: &'static str) -> GitHubError {
    error(StatusCode::NOT_FOUND, "Not Found", docs)
}

/// 422 with one field error, as GitHub reports validation failures.
fn invalid(
    message: &str,
    resource: &str,
    field: &str,
    detail: &str,
    docs: &'static str,
) -> GitHubError {
    GitHubError {
        errors: Some(
            json!([{"resource": resource, "code": "custom", "field": field, "message": detail}]),
        ),
        ..error(StatusCode::UNPROCESSABLE_ENTITY, message, docs)
    }
}

/// A JSON request body (`{}` when empty), or GitHub's 400.
fn parse_json(body: &[u8], docs: &'static str) -> Result<Value, GitHubError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("Problems parsing JSON: {e}"),
            docs,
        )
    })
}

fn now_iso() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

fn json_ok(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// A stable positive integer id from a string.
fn numeric_id(s: &str) -> i64 {
    s.bytes().fold(17i64, |h, b| {
        (h.wrapping_mul(31).wrapping_add(b as i64)) & 0x3fff_ffff
    })
}

pub(crate) async fn dispatch(
    State(gh): State<Arc<GitHub>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    gh.route(&method, &uri, &headers, &body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

impl GitHub {
    fn api(&self) -> String {
        format!("{}{ROOT}", self.base_url)
    }

    /// `base_url` without its scheme (`http://` or, with HTTPS on, `https://`).
    fn host(&self) -> &str {
        self.base_url
            .split_once("://")
            .map_or(&self.base_url, |(_, host)| host)
    }

    /// The headers GitHub puts on every response, after counting this request.
    fn count(&self) -> Result<[(&'static str, u64); 4], GitHubError> {
        let now = now_ms();
        let mut rate = self.rate.lock().expect("rate lock");
        if now - rate.0 >= 3_600_000 {
            *rate = (now, 0);
        }
        let reset = ((rate.0 + 3_600_000) / 1000) as u64;
        if rate.1 >= RATE_LIMIT {
            return Err(error(
                StatusCode::FORBIDDEN,
                "API rate limit exceeded for installation. If you reach out to GitHub Support for help, please include the request ID.",
                "https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting",
            ));
        }
        rate.1 += 1;
        Ok([
            ("x-ratelimit-limit", RATE_LIMIT),
            ("x-ratelimit-remaining", RATE_LIMIT - rate.1),
            ("x-ratelimit-used", rate.1),
            ("x-ratelimit-reset", reset),
        ])
    }

    async fn route(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> GitHubResult {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("token "))
            })
            .unwrap_or_default()
            .to_owned();
        let path = uri.path().strip_prefix(ROOT).unwrap_or_default().to_owned();
        let segments: Vec<String> = path
            .trim_matches('/')
            .split('/')
            .map(percent_decode)
            .collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        // The app's own endpoints take the app's JWT; everything else an installation or
        // admin token.
        let as_app = matches!(
            segments.as_slice(),
            ["app", ..] | ["orgs", _, "installation"]
        );
        if as_app {
            self.check_app_jwt(&token)?;
            return self.app(method, &segments).await;
        }
        if !self.token_ok(&token).await? {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "Bad credentials",
                "https://docs.github.com/rest",
            ));
        }
        if segments == ["rate_limit"] {
            let rate = *self.rate.lock().expect("rate lock");
            let core = json!({"limit": RATE_LIMIT, "used": rate.1, "remaining": RATE_LIMIT - rate.1, "reset": (rate.0 + 3_600_000) / 1000});
            return Ok(json_ok(
                StatusCode::OK,
                json!({"resources": {"core": core}, "rate": core}),
            ));
        }
        let counted = self.count()?;
        let mut response = self.serve(method, &segments, body).await?;
        for (name, value) in counted {
            response
                .headers_mut()
                .insert(name, HeaderValue::from(value));
        }
        response
            .headers_mut()
            .insert("x-ratelimit-resource", HeaderValue::from_static("core"));
        Ok(response)
    }

    async fn serve(&self, method: &Method, segments: &[&str], body: &[u8]) -> GitHubResult {
        const REPOS_DOCS: &str = "https://docs.github.com/rest/repos/repos";
        const ENV_DOCS: &str = "https://docs.github.com/rest/deployments/environments";
        const SECRET_DOCS: &str = "https://docs.github.com/rest/actions/secrets";
        const VAR_DOCS: &str = "https://docs.github.com/rest/actions/variables";
        match (segments, method) {
            (["orgs", org], &Method::GET) if self.is_org(org) => {
                Ok(json_ok(StatusCode::OK, self.organization()))
            }
            (["orgs", org, "repos"], &Method::POST) if self.is_org(org) => {
                self.create_repo(body).await
            }
            (["orgs", org, "teams", rest @ ..], m) if self.is_org(org) => {
                self.teams(m, rest, body).await
            }
            (["repos", owner, template, "generate"], &Method::POST) if self.is_org(owner) => {
                self.generate(template, body).await
            }
            (["users", login], &Method::GET) => {
                let user = self
                    .docs
                    .get(API, USER, &login.to_lowercase())
                    .await?
                    .ok_or_else(|| not_found("https://docs.github.com/rest/users/users"))?;
                Ok(json_ok(StatusCode::OK, self.public_user(&user)))
            }
            (["repos", owner, repo, rest @ ..], m) if self.is_org(owner) => {
                let key = repo.to_lowercase();
                let Some(stored) = self.docs.get(API, REPO, &key).await? else {
                    return Err(not_found(REPOS_DOCS));
                };
                match (rest, m) {
                    ([], &Method::GET) => Ok(json_ok(StatusCode::OK, self.repository(&stored))),
                    ([], &Method::DELETE) => {
                        self.docs
                            .delete_prefix(
                                API,
                                &[ENV, ENV_KEY, SECRET, VARIABLE, CONTENT, PROTECTION],
                                &format!("{key}/"),
                            )
                            .await?;
                        self.docs.delete(API, REPO, &key).await?;
                        Ok(StatusCode::NO_CONTENT.into_response())
                    }
                    (["environments"], &Method::GET) => {
                        let envs: Vec<Value> =
                            self.docs.values(API, ENV, &format!("{key}/")).await?;
                        Ok(json_ok(
                            StatusCode::OK,
                            json!({"total_count": envs.len(), "environments": envs}),
                        ))
                    }
                    (["contents", path @ ..], m) if !path.is_empty() => {
                        self.contents(m, &key, &stored, &path.join("/"), body).await
                    }
                    (["branches", branch, "protection"], m) => {
                        self.protection(m, &key, &stored, branch, body).await
                    }
                    (["environments", env, tail @ ..], m) => {
                        self.environment(m, &key, &stored, env, tail, body).await
                    }
                    _ => Err(not_found(ENV_DOCS)),
                }
            }
            (["orgs", ..] | ["repos", ..], _) => Err(not_found(REPOS_DOCS)),
            _ => Err(not_found(if segments.contains(&"secrets") {
                SECRET_DOCS
            } else {
                VAR_DOCS
            })),
        }
    }

    fn is_org(&self, name: &str) -> bool {
        name.eq_ignore_ascii_case(&self.org)
    }

    fn owner(&self) -> Value {
        self.simple_user(&self.org, numeric_id(&self.org), "Organization")
    }

    /// A `simple-user`.
    fn simple_user(&self, login: &str, id: i64, kind: &str) -> Value {
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

    /// A `public-user`.
    fn public_user(&self, user: &Value) -> Value {
        let login = user["login"].as_str().unwrap_or_default();
        let mut u = self.simple_user(login, user["id"].as_i64().unwrap_or_default(), "User");
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

    /// A `team` (or, with `full`, a `team-full`).
    fn team(&self, stored: &Value, full: bool) -> Value {
        let slug = stored["slug"].as_str().unwrap_or_default();
        let api = format!(
            "{}/organizations/{}/team/{}",
            self.api(),
            numeric_id(&self.org),
            numeric_id(slug)
        );
        let mut team = json!({
            "id": numeric_id(slug), "node_id": format!("T_{}", numeric_id(slug)), "url": api, "members_url": format!("{api}/members{{/member}}"),
            "name": stored["name"], "slug": slug, "description": stored["description"], "privacy": stored["privacy"], "notification_setting": "notifications_enabled",
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

    async fn teams(&self, method: &Method, rest: &[&str], body: &[u8]) -> GitHubResult {
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
                Ok(json_ok(StatusCode::OK, json!(teams)))
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
                let stored = json!({
                    "name": name, "slug": slug, "description": request["description"], "privacy": request["privacy"].as_str().unwrap_or("secret"),
                    "created_at": now_iso(), "members_count": 0, "repos_count": 0,
                });
                if !self.docs.insert_new(API, TEAM, &slug, &stored).await? {
                    return Err(invalid(
                        "Validation Failed",
                        "Team",
                        "name",
                        "Name must be unique for this org",
                        DOCS,
                    ));
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
                        for field in ["description", "privacy"] {
                            if let Some(v) = request.get(field) {
                                stored[field] = v.clone();
                            }
                        }
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
                    (["repos", owner, repo], m) if self.is_org(owner) => {
                        self.team_repo(m, slug, repo, body).await
                    }
                    _ => Err(not_found(DOCS)),
                }
            }
            _ => Err(not_found(DOCS)),
        }
    }

    async fn membership(
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

    async fn team_repo(
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
                let level = ["pull", "triage", "push", "maintain", "admin"]
                    .iter()
                    .position(|p| grant["permission"] == json!(p))
                    .unwrap_or(0);
                let mut r = self.repository(&stored_repo);
                r["has_downloads"] = json!(false);
                r["role_name"] = grant["permission"].clone();
                r["permissions"] = json!({"pull": true, "triage": level >= 1, "push": level >= 2, "maintain": level >= 3, "admin": level >= 4});
                Ok(json_ok(StatusCode::OK, r))
            }
            Method::DELETE => {
                self.docs.delete(API, TEAM_REPO, &key).await?;
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            _ => Err(not_found(DOCS)),
        }
    }

    fn organization(&self) -> Value {
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

    /// A repository as `GET /repos/{owner}/{repo}` returns it (every field the description
    /// requires).
    fn repository(&self, stored: &Value) -> Value {
        let name = stored["name"].as_str().unwrap_or_default();
        let full = format!("{}/{name}", self.org);
        let api = format!("{}/repos/{full}", self.api());
        let web = format!("{}/{full}", self.base_url);
        let mut repo = json!({
            "id": numeric_id(&full), "node_id": format!("R_{}", numeric_id(&full)), "name": name, "full_name": full,
            "owner": self.owner(), "private": stored["private"], "visibility": if stored["private"] == json!(true) { "private" } else { "public" },
            "html_url": web, "description": stored["description"], "fork": false, "url": api,
            "clone_url": format!("{web}.git"), "git_url": format!("git://{}/{full}.git", self.host()),
            "ssh_url": format!("git@sandbox:{full}.git"), "svn_url": web, "mirror_url": null, "homepage": null, "language": null,
            "default_branch": "main", "forks": 0, "forks_count": 0, "open_issues": 0, "open_issues_count": 0,
            "stargazers_count": 0, "watchers": 0, "watchers_count": 0, "size": 0, "network_count": 0, "subscribers_count": 0,
            "has_issues": true, "has_projects": false, "has_wiki": false, "has_pages": false, "has_discussions": false,
            "archived": false, "disabled": false, "license": null, "is_template": stored["is_template"],
            "created_at": stored["created_at"], "updated_at": stored["created_at"], "pushed_at": stored["created_at"],
        });
        for (field, suffix) in [
            ("archive_url", "{archive_format}{/ref}"),
            ("assignees_url", "assignees{/user}"),
            ("blobs_url", "git/blobs{/sha}"),
            ("branches_url", "branches{/branch}"),
            ("collaborators_url", "collaborators{/collaborator}"),
            ("comments_url", "comments{/number}"),
            ("commits_url", "commits{/sha}"),
            ("compare_url", "compare/{base}...{head}"),
            ("contents_url", "contents/{+path}"),
            ("contributors_url", "contributors"),
            ("deployments_url", "deployments"),
            ("downloads_url", "downloads"),
            ("events_url", "events"),
            ("forks_url", "forks"),
            ("git_commits_url", "git/commits{/sha}"),
            ("git_refs_url", "git/refs{/sha}"),
            ("git_tags_url", "git/tags{/sha}"),
            ("hooks_url", "hooks"),
            ("issue_comment_url", "issues/comments{/number}"),
            ("issue_events_url", "issues/events{/number}"),
            ("issues_url", "issues{/number}"),
            ("keys_url", "keys{/key_id}"),
            ("labels_url", "labels{/name}"),
            ("languages_url", "languages"),
            ("merges_url", "merges"),
            ("milestones_url", "milestones{/number}"),
            (
                "notifications_url",
                "notifications{?since,all,participating}",
            ),
            ("pulls_url", "pulls{/number}"),
            ("releases_url", "releases{/id}"),
            ("stargazers_url", "stargazers"),
            ("statuses_url", "statuses/{sha}"),
            ("subscribers_url", "subscribers"),
            ("subscription_url", "subscription"),
            ("tags_url", "tags"),
            ("teams_url", "teams"),
            ("trees_url", "git/trees{/sha}"),
        ] {
            repo[field] = json!(format!("{api}/{suffix}"));
        }
        repo
    }

    async fn create_repo(&self, body: &[u8]) -> GitHubResult {
        const DOCS: &str =
            "https://docs.github.com/rest/repos/repos#create-an-organization-repository";
        let request: Value = parse_json(body, DOCS)?;
        let name = request["name"].as_str().unwrap_or_default();
        let valid = !name.is_empty()
            && name.len() <= 100
            && name != "."
            && name != ".."
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(invalid(
                "Repository creation failed.",
                "Repository",
                "name",
                "name is invalid: use letters, digits, '-', '_' and '.'",
                DOCS,
            ));
        }
        let stored = json!({
            "name": name,
            "description": request["description"],
            "private": request["private"].as_bool().unwrap_or(request["visibility"] != json!("public")),
            "is_template": request["is_template"].as_bool().unwrap_or(false),
            "created_at": now_iso(),
        });
        if !self
            .docs
            .insert_new(API, REPO, &name.to_lowercase(), &stored)
            .await?
        {
            return Err(invalid(
                "Repository creation failed.",
                "Repository",
                "name",
                "name already exists on this account",
                DOCS,
            ));
        }
        Ok(json_ok(StatusCode::CREATED, self.repository(&stored)))
    }

    async fn environment(
        &self,
        method: &Method,
        repo: &str,
        stored_repo: &Value,
        env: &str,
        tail: &[&str],
        body: &[u8],
    ) -> GitHubResult {
        const DOCS: &str = "https://docs.github.com/rest/deployments/environments";
        let key = format!("{repo}/{}", env.to_lowercase());
        let existing = self.docs.get(API, ENV, &key).await?;
        match (tail, method) {
            ([], &Method::PUT) => {
                let request = parse_json(body, DOCS)?;
                let reviewers = request["reviewers"].as_array().cloned().unwrap_or_default();
                if reviewers.len() > 6 {
                    return Err(invalid(
                        "Validation Failed",
                        "Environment",
                        "reviewers",
                        "You can list up to six users or teams as reviewers.",
                        DOCS,
                    ));
                }
                let full = format!(
                    "{}/{}",
                    self.org,
                    stored_repo["name"].as_str().unwrap_or_default()
                );
                let now = now_iso();
                let mut rules = Vec::new();
                if !reviewers.is_empty() {
                    let mut resolved = Vec::new();
                    for r in &reviewers {
                        resolved.push(self.reviewer(r).await?.ok_or_else(|| {
                            invalid(
                                "Validation Failed",
                                "Environment",
                                "reviewers",
                                "each reviewer must be a user or team of the organization",
                                DOCS,
                            )
                        })?);
                    }
                    let reviewers = resolved;
                    rules.push(json!({"id": numeric_id(&format!("{key}/reviewers")), "node_id": format!("GA_{}", numeric_id(&key)), "type": "required_reviewers", "prevent_self_review": request["prevent_self_review"].as_bool().unwrap_or(false), "reviewers": reviewers}));
                }
                let environment = json!({
                    "id": numeric_id(&key), "node_id": format!("EN_{}", numeric_id(&key)), "name": env,
                    "url": format!("{}/repos/{full}/environments/{env}", self.api()),
                    "html_url": format!("{}/{full}/deployments/activity_log?environments_filter={env}", self.base_url),
                    "created_at": existing.as_ref().and_then(|e| e["created_at"].as_str().map(str::to_owned)).unwrap_or_else(|| now.clone()),
                    "updated_at": now,
                    "protection_rules": rules,
                    "deployment_branch_policy": request.get("deployment_branch_policy").cloned().unwrap_or(Value::Null),
                });
                self.docs.put(API, ENV, &key, &environment).await?;
                Ok(json_ok(StatusCode::OK, environment))
            }
            ([], &Method::GET) => Ok(json_ok(
                StatusCode::OK,
                existing.ok_or_else(|| not_found(DOCS))?,
            )),
            ([], &Method::DELETE) => {
                existing.ok_or_else(|| not_found(DOCS))?;
                self.docs
                    .delete_prefix(API, &[ENV, ENV_KEY, SECRET, VARIABLE], &key)
                    .await?;
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            ([kind @ ("secrets" | "variables"), rest @ ..], m) => {
                existing.ok_or_else(|| not_found(DOCS))?;
                if *kind == "secrets" {
                    self.secrets(m, &key, rest, body).await
                } else {
                    self.variables(m, &key, rest, body).await
                }
            }
            _ => Err(not_found(DOCS)),
        }
    }

    /// `POST /repos/{template}/generate`: a new repository whose files arrive from the
    /// template after `template_delay`.
    async fn generate(&self, template: &str, body: &[u8]) -> GitHubResult {
        const DOCS: &str =
            "https://docs.github.com/rest/repos/repos#create-a-repository-using-a-template";
        let source = self
            .docs
            .get(API, REPO, &template.to_lowercase())
            .await?
            .ok_or_else(|| not_found(DOCS))?;
        if source["is_template"] != json!(true) {
            return Err(invalid(
                "Validation Failed",
                "Repository",
                "template_repo",
                "the repository is not a template",
                DOCS,
            ));
        }
        let request: Value = parse_json(body, DOCS)?;
        let name = request["name"].as_str().unwrap_or_default();
        let mut create = json!({"name": name, "private": request["private"].as_bool().unwrap_or(false), "description": request["description"]});
        create["visibility"] = json!(if create["private"] == json!(true) {
            "private"
        } else {
            "public"
        });
        let response = self.create_repo(create.to_string().as_bytes()).await?;
        let ready = now_ms() + self.template_delay.as_millis() as i64;
        let prefix = format!("{}/", template.to_lowercase());
        for (key, mut file) in self.docs.list(API, CONTENT, &prefix).await? {
            file["readyAtMs"] = json!(ready);
            self.docs
                .put(
                    API,
                    CONTENT,
                    &format!("{}/{}", name.to_lowercase(), &key[prefix.len()..]),
                    &file,
                )
                .await?;
        }
        Ok(response)
    }

    /// A `content-file`.
    fn content_file(&self, repo: &Value, file: &Value) -> Value {
        let full = format!("{}/{}", self.org, repo["name"].as_str().unwrap_or_default());
        let path = file["path"].as_str().unwrap_or_default();
        let sha = file["sha"].as_str().unwrap_or_default();
        let url = format!("{}/repos/{full}/contents/{path}", self.api());
        let html = format!("{}/{full}/blob/main/{path}", self.base_url);
        let git = format!("{}/repos/{full}/git/blobs/{sha}", self.api());
        json!({
            "type": "file", "encoding": "base64", "size": file["size"], "name": path.rsplit('/').next().unwrap_or(path), "path": path,
            "content": file["content"], "sha": sha, "url": url, "git_url": git, "html_url": html,
            "download_url": format!("{}/{full}/raw/main/{path}", self.base_url),
            "_links": {"self": url, "git": git, "html": html},
        })
    }

    async fn contents(
        &self,
        method: &Method,
        repo_key: &str,
        repo: &Value,
        path: &str,
        body: &[u8],
    ) -> GitHubResult {
        const DOCS: &str = "https://docs.github.com/rest/repos/contents";
        let key = format!("{repo_key}/{path}");
        let existing = self
            .docs
            .get(API, CONTENT, &key)
            .await?
            .filter(|f| f["readyAtMs"].as_i64().is_none_or(|at| at <= now_ms()));
        match *method {
            Method::GET => Ok(json_ok(
                StatusCode::OK,
                self.content_file(repo, &existing.ok_or_else(|| not_found(DOCS))?),
            )),
            Method::PUT => {
                let request: Value = parse_json(body, DOCS)?;
                let Some(bytes) = request["content"].as_str().and_then(|c| B64.decode(c).ok())
                else {
                    return Err(invalid(
                        "Invalid request.",
                        "File",
                        "content",
                        "content is not valid Base64",
                        DOCS,
                    ));
                };
                if let Some(old) = &existing
                    && request["sha"] != old["sha"]
                {
                    return Err(error(
                        StatusCode::CONFLICT,
                        format!(
                            "{path} does not match {}",
                            request["sha"].as_str().unwrap_or("\"\"")
                        ),
                        DOCS,
                    ));
                }
                use sha2::Digest as _;
                let sha: String = sha2::Sha256::digest(
                    [format!("blob {}\0", bytes.len()).as_bytes(), &bytes].concat(),
                )[..20]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                let file = json!({"path": path, "content": B64.encode(&bytes), "sha": sha, "size": bytes.len()});
                self.docs.put(API, CONTENT, &key, &file).await?;
                let full = format!("{}/{}", self.org, repo["name"].as_str().unwrap_or_default());
                let commit_sha = format!("{}{}", crate::new_id(), &crate::new_id()[..8]);
                let commit = json!({
                    "sha": commit_sha, "node_id": format!("C_{commit_sha}"),
                    "url": format!("{}/repos/{full}/git/commits/{commit_sha}", self.api()), "html_url": format!("{}/{full}/commit/{commit_sha}", self.base_url),
                    "author": {"date": now_iso(), "name": "paddock", "email": "paddock@sandbox"},
                    "committer": {"date": now_iso(), "name": "paddock", "email": "paddock@sandbox"},
                    "message": request["message"], "tree": {"url": format!("{}/repos/{full}/git/trees/{sha}", self.api()), "sha": sha},
                    "parents": [], "verification": {"verified": false, "reason": "unsigned", "signature": null, "payload": null, "verified_at": null},
                });
                let status = if existing.is_some() {
                    StatusCode::OK
                } else {
                    StatusCode::CREATED
                };
                Ok(json_ok(
                    status,
                    json!({"content": self.content_file(repo, &file), "commit": commit}),
                ))
            }
            _ => Err(not_found(DOCS)),
        }
    }

    /// The admin token, or an installation token that has not expired.
    async fn token_ok(&self, token: &str) -> Result<bool, GitHubError> {
        if token == self.admin_token {
            return Ok(true);
        }
        let stored = self.docs.get(API, INSTALLATION_TOKEN, token).await?;
        Ok(stored.is_some_and(|t| t["expiresAtMs"].as_i64().is_some_and(|at| at > now_ms())))
    }

    /// A JWT as GitHub wants it from an app: RS256 with the app's key, issued by the app's
    /// id, expiring within ten minutes.
    fn check_app_jwt(&self, token: &str) -> Result<(), GitHubError> {
        const DOCS: &str = "https://docs.github.com/rest";
        let now = now_ms() / 1000;
        let claims = self.app_key.verify(token, now).map_err(|_| {
            error(
                StatusCode::UNAUTHORIZED,
                "A JSON web token could not be decoded",
                DOCS,
            )
        })?;
        let issuer = claims["iss"]
            .as_i64()
            .or_else(|| claims["iss"].as_str().and_then(|s| s.parse().ok()));
        if issuer != Some(APP_ID) {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "'Issuer' claim ('iss') must be an Integer",
                DOCS,
            ));
        }
        if claims["exp"]
            .as_i64()
            .is_some_and(|exp| exp > now + 600 + 60)
        {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "'Expiration time' claim ('exp') is too far in the future",
                DOCS,
            ));
        }
        Ok(())
    }

    fn installation(&self) -> Value {
        let api = self.api();
        json!({
            "id": INSTALLATION_ID, "app_id": APP_ID, "app_slug": "paddock", "target_id": numeric_id(&self.org), "target_type": "Organization",
            "account": self.owner(), "single_file_name": null, "repository_selection": "all",
            "access_tokens_url": format!("{api}/app/installations/{INSTALLATION_ID}/access_tokens"),
            "html_url": format!("{}/organizations/{}/settings/installations/{INSTALLATION_ID}", self.base_url, self.org),
            "repositories_url": format!("{api}/installation/repositories"), "events": [],
            "permissions": app_permissions(), "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
            "suspended_by": null, "suspended_at": null,
        })
    }

    async fn app(&self, method: &Method, segments: &[&str]) -> GitHubResult {
        const DOCS: &str = "https://docs.github.com/rest/apps/apps";
        match (segments, method) {
            (["app"], &Method::GET) => Ok(json_ok(
                StatusCode::OK,
                json!({
                    "id": APP_ID, "slug": "paddock", "node_id": format!("A_{APP_ID}"), "owner": self.owner(), "name": "Paddock",
                    "description": "Self-service infrastructure", "external_url": self.base_url, "html_url": format!("{}/apps/paddock", self.base_url),
                    "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z", "permissions": app_permissions(), "events": [],
                }),
            )),
            (["orgs", org, "installation"], &Method::GET) if self.is_org(org) => {
                Ok(json_ok(StatusCode::OK, self.installation()))
            }
            (["app", "installations", id, "access_tokens"], &Method::POST)
                if *id == INSTALLATION_ID.to_string() =>
            {
                let token = format!("ghs_{}", crate::new_id());
                let expires = now_ms() + 3_600_000;
                self.docs
                    .put(
                        API,
                        INSTALLATION_TOKEN,
                        &token,
                        &json!({ "expiresAtMs": expires }),
                    )
                    .await?;
                let expires_at = humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_millis(expires as u64),
                )
                .to_string();
                Ok(json_ok(
                    StatusCode::CREATED,
                    json!({"token": token, "expires_at": expires_at, "permissions": app_permissions(), "repository_selection": "all"}),
                ))
            }
            _ => Err(not_found(DOCS)),
        }
    }

    /// Branch protection of the default branch (the only branch a new repository has).
    async fn protection(
        &self,
        method: &Method,
        repo_key: &str,
        repo: &Value,
        branch: &str,
        body: &[u8],
    ) -> GitHubResult {
        const DOCS: &str = "https://docs.github.com/rest/branches/branch-protection";
        if branch != "main" {
            return Err(error(StatusCode::NOT_FOUND, "Branch not found", DOCS));
        }
        let full = format!("{}/{}", self.org, repo["name"].as_str().unwrap_or_default());
        let url = format!("{}/repos/{full}/branches/{branch}/protection", self.api());
        let key = format!("{repo_key}/{branch}");
        let shape = |rules: &Value| {
            let mut p = json!({
                "url": url,
                "enforce_admins": {"url": format!("{url}/enforce_admins"), "enabled": rules["enforce_admins"].as_bool().unwrap_or(false)},
                "required_linear_history": {"enabled": rules["required_linear_history"].as_bool().unwrap_or(false)},
                "allow_force_pushes": {"enabled": rules["allow_force_pushes"].as_bool().unwrap_or(false)},
                "allow_deletions": {"enabled": rules["allow_deletions"].as_bool().unwrap_or(false)},
            });
            if let Some(reviews) = rules["required_pull_request_reviews"].as_object() {
                p["required_pull_request_reviews"] = json!({
                    "url": format!("{url}/required_pull_request_reviews"),
                    "dismiss_stale_reviews": reviews.get("dismiss_stale_reviews").and_then(Value::as_bool).unwrap_or(false),
                    "require_code_owner_reviews": reviews.get("require_code_owner_reviews").and_then(Value::as_bool).unwrap_or(false),
                    "required_approving_review_count": reviews.get("required_approving_review_count").and_then(Value::as_i64).unwrap_or(1),
                });
            }
            p
        };
        match *method {
            Method::PUT => {
                let rules: Value = parse_json(body, DOCS)?;
                if let Some(missing) = [
                    "required_status_checks",
                    "enforce_admins",
                    "required_pull_request_reviews",
                    "restrictions",
                ]
                .iter()
                .find(|f| rules.get(**f).is_none())
                {
                    return Err(error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!("Invalid request.\n\n\"{missing}\" wasn't supplied."),
                        DOCS,
                    ));
                }
                self.docs.put(API, PROTECTION, &key, &rules).await?;
                Ok(json_ok(StatusCode::OK, shape(&rules)))
            }
            Method::GET => {
                let rules =
                    self.docs.get(API, PROTECTION, &key).await?.ok_or_else(|| {
                        error(StatusCode::NOT_FOUND, "Branch not protected", DOCS)
                    })?;
                let mut p = shape(&rules);
                p["enabled"] = json!(true);
                p["name"] = json!(branch);
                p["protection_url"] = json!(url);
                Ok(json_ok(StatusCode::OK, p))
            }
            Method::DELETE => {
                if !self.docs.delete(API, PROTECTION, &key).await? {
                    return Err(error(StatusCode::NOT_FOUND, "Branch not protected", DOCS));
                }
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            _ => Err(not_found(DOCS)),
        }
    }

    /// A reviewer (`{type, id}`) as GitHub returns it, if that user or team exists.
    async fn reviewer(&self, r: &Value) -> Result<Option<Value>, GitHubError> {
        let id = r["id"].as_i64();
        let found = match r["type"].as_str() {
            Some("User") => self
                .docs
                .list(API, USER, "")
                .await?
                .into_iter()
                .map(|(_, u)| u)
                .find(|u| u["id"].as_i64() == id)
                .map(|u| {
                    self.simple_user(
                        u["login"].as_str().unwrap_or_default(),
                        u["id"].as_i64().unwrap_or_default(),
                        "User",
                    )
                }),
            Some("Team") => self
                .docs
                .list(API, TEAM, "")
                .await?
                .into_iter()
                .map(|(_, t)| t)
                .find(|t| Some(numeric_id(t["slug"].as_str().unwrap_or_default())) == id)
                .map(|t| self.team(&t, false)),
            _ => None,
        };
        Ok(found.map(|reviewer| json!({"type": r["type"], "reviewer": reviewer})))
    }

    /// The environment's key pair, created on first use.
    async fn key_pair(
        &self,
        env_key: &str,
    ) -> Result<(String, crypto_box::SecretKey), GitHubError> {
        if let Some(stored) = self.docs.get(API, ENV_KEY, env_key).await? {
            let bytes: [u8; 32] = B64
                .decode(stored["secret"].as_str().unwrap_or_default())
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| {
                    error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "corrupt environment key",
                        "https://docs.github.com/rest",
                    )
                })?;
            return Ok((
                stored["key_id"].as_str().unwrap_or_default().to_owned(),
                crypto_box::SecretKey::from(bytes),
            ));
        }
        let secret = crypto_box::SecretKey::generate(&mut rand::rngs::OsRng);
        let key_id = numeric_id(&uuid_v4()).to_string();
        self.docs
            .put(
                API,
                ENV_KEY,
                env_key,
                &json!({"key_id": key_id, "secret": B64.encode(secret.to_bytes())}),
            )
            .await?;
        Ok((key_id, secret))
    }

    async fn secrets(
        &self,
        method: &Method,
        env_key: &str,
        rest: &[&str],
        body: &[u8],
    ) -> GitHubResult {
        const DOCS: &str = "https://docs.github.com/rest/actions/secrets";
        match (rest, method) {
            (["public-key"], &Method::GET) => {
                let (key_id, secret) = self.key_pair(env_key).await?;
                Ok(json_ok(
                    StatusCode::OK,
                    json!({"key_id": key_id, "key": B64.encode(secret.public_key().as_bytes())}),
                ))
            }
            ([], &Method::GET) => {
                let secrets: Vec<Value> = self.docs.list(API, SECRET, &format!("{env_key}/")).await?.into_iter().map(|(_, s)| json!({"name": s["name"], "created_at": s["created_at"], "updated_at": s["updated_at"]})).collect();
                Ok(json_ok(
                    StatusCode::OK,
                    json!({"total_count": secrets.len(), "secrets": secrets}),
                ))
            }
            ([name], m) => {
                let key = format!("{env_key}/{}", name.to_uppercase());
                let existing = self.docs.get(API, SECRET, &key).await?;
                match *m {
                    Method::GET => {
                        let s = existing.ok_or_else(|| not_found(DOCS))?;
                        Ok(json_ok(
                            StatusCode::OK,
                            json!({"name": s["name"], "created_at": s["created_at"], "updated_at": s["updated_at"]}),
                        ))
                    }
                    Method::DELETE => {
                        existing.ok_or_else(|| not_found(DOCS))?;
                        self.docs.delete(API, SECRET, &key).await?;
                        Ok(StatusCode::NO_CONTENT.into_response())
                    }
                    Method::PUT => {
                        check_secret_name(name, DOCS)?;
                        let request: Value = parse_json(body, DOCS)?;
                        let (key_id, secret_key) = self.key_pair(env_key).await?;
                        if request["key_id"] != json!(key_id) {
                            return Err(invalid(
                                "Validation Failed",
                                "Secret",
                                "key_id",
                                "key_id does not match the environment's public key",
                                DOCS,
                            ));
                        }
                        let sealed = request["encrypted_value"]
                            .as_str()
                            .and_then(|v| B64.decode(v).ok())
                            .unwrap_or_default();
                        let value = secret_key
                            .unseal(&sealed)
                            .ok()
                            .and_then(|v| String::from_utf8(v).ok())
                            .ok_or_else(|| {
                                invalid(
                                    "Validation Failed",
                                    "Secret",
                                    "encrypted_value",
                                    "encrypted_value is not a sealed box for this key",
                                    DOCS,
                                )
                            })?;
                        let now = now_iso();
                        let created = existing
                            .as_ref()
                            .and_then(|e| e["created_at"].as_str().map(str::to_owned))
                            .unwrap_or_else(|| now.clone());
                        self.docs.put(API, SECRET, &key, &json!({"name": name.to_uppercase(), "value": value, "created_at": created, "updated_at": now})).await?;
                        Ok(if existing.is_some() {
                            StatusCode::NO_CONTENT
                        } else {
                            StatusCode::CREATED
                        }
                        .into_response())
                    }
                    _ => Err(not_found(DOCS)),
                }
            }
            _ => Err(not_found(DOCS)),
        }
    }

    async fn variables(
        &self,
        method: &Method,
        env_key: &str,
        rest: &[&str],
        body: &[u8],
    ) -> GitHubResult {
        const DOCS: &str = "https://docs.github.com/rest/actions/variables";
        match (rest, method) {
            ([], &Method::GET) => {
                let vars: Vec<Value> = self
                    .docs
                    .values(API, VARIABLE, &format!("{env_key}/"))
                    .await?;
                Ok(json_ok(
                    StatusCode::OK,
                    json!({"total_count": vars.len(), "variables": vars}),
                ))
            }
            ([], &Method::POST) => {
                let request = parse_json(body, DOCS)?;
                let (Some(name), Some(value)) =
                    (request["name"].as_str(), request["value"].as_str())
                else {
                    return Err(invalid(
                        "Validation Failed",
                        "Variable",
                        "name",
                        "name and value are required",
                        DOCS,
                    ));
                };
                check_secret_name(name, DOCS)?;
                let now = now_iso();
                let var = json!({"name": name.to_uppercase(), "value": value, "created_at": now, "updated_at": now});
                if !self
                    .docs
                    .insert_new(
                        API,
                        VARIABLE,
                        &format!("{env_key}/{}", name.to_uppercase()),
                        &var,
                    )
                    .await?
                {
                    return Err(error(
                        StatusCode::CONFLICT,
                        "Already exists - Variable already exists",
                        DOCS,
                    ));
                }
                Ok(json_ok(StatusCode::CREATED, json!({})))
            }
            ([name], m) => {
                let key = format!("{env_key}/{}", name.to_uppercase());
                let mut var = self
                    .docs
                    .get(API, VARIABLE, &key)
                    .await?
                    .ok_or_else(|| not_found(DOCS))?;
                match *m {
                    Method::GET => Ok(json_ok(StatusCode::OK, var)),
                    Method::PATCH => {
                        let request = parse_json(body, DOCS)?;
                        if let Some(value) = request["value"].as_str() {
                            var["value"] = json!(value);
                        }
                        var["updated_at"] = json!(now_iso());
                        self.docs.put(API, VARIABLE, &key, &var).await?;
                        Ok(StatusCode::NO_CONTENT.into_response())
                    }
                    Method::DELETE => {
                        self.docs.delete(API, VARIABLE, &key).await?;
                        Ok(StatusCode::NO_CONTENT.into_response())
                    }
                    _ => Err(not_found(DOCS)),
                }
            }
            _ => Err(not_found(DOCS)),
        }
    }
}

/// GitHub's rule for secret and variable names.
fn check_secret_name(name: &str, docs: &'static str) -> Result<(), GitHubError> {
    let upper = name.to_uppercase();
    let ok = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && !upper.starts_with("GITHUB_");
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "Validation Failed",
            "Secret",
            "name",
            "names may only contain letters, digits and '_', may not start with a digit or GITHUB_",
            docs,
        ))
    }
}

/// Control API: the clear value of an environment secret, as it arrived.
pub(crate) async fn secret_value(
    docs: &Documents,
    repo: &str,
    env: &str,
    name: &str,
) -> Result<Option<String>, SandboxError> {
    let key = format!(
        "{}/{}/{}",
        repo.to_lowercase(),
        env.to_lowercase(),
        name.to_uppercase()
    );
    Ok(docs
        .get(API, SECRET, &key)
        .await?
        .and_then(|s| s["value"].as_str().map(str::to_owned)))
}

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

/// What the sandbox's app may do: what Paddock's provider needs.
fn app_permissions() -> Value {
    json!({"administration": "write", "contents": "write", "environments": "write", "secrets": "write", "actions_variables": "write", "members": "write", "metadata": "read"})
}
