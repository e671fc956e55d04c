//! GitHub REST, GitHub Enterprise style (`{base}/api/v3`): the organization, repositories,
//! deployment environments with required reviewers, environment secrets (libsodium sealed
//! boxes, opened with the environment's key so tests can check what arrived) and
//! environment variables; `X-RateLimit-*` headers on every response and `/rate_limit`, and
//! the secondary limit on content-creating requests (403 with `retry-after`).
//! Errors have GitHub's shape: `message`, `documentation_url`, `status`, and `errors`.
//!
//! Repositories hold git objects the way git does, content-addressed: blobs, commits (each
//! with the whole tree, path → blob sha, and its parent), and refs (`heads/…`, `tags/…`)
//! naming commits. A file write is a commit on its branch; a new branch is a ref to a
//! commit the repository knows; a pull request compares two branches' commits.
//!
//! This module authenticates and routes; each concept lives in its own module.

mod apps;
mod archive;
mod branches;
mod contents;
mod environments;
mod errors;
mod git;
mod git_reads;
mod hypermedia;
mod ids;
mod paging;
mod pulls;
mod rate;
mod repos;
mod secrets;
mod teams;
mod users;
pub(crate) mod web;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::documents::Documents;
use crate::{now_ms, percent_decode};

use errors::{GitHubResult, error, not_found};
use paging::{Paging, query_pairs};
pub(crate) use rate::MutationLimit;
pub(crate) use secrets::{secret_value, workflow_vars};
pub(crate) use users::create_user;

/// The API root, as GitHub Enterprise Server serves it.
pub const ROOT: &str = "/api/v3";
const API: &str = "github";
const REPO: &str = "repo";
const ENV: &str = "environment";
const ENV_KEY: &str = "environmentKey";
const SECRET: &str = "secret";
const VARIABLE: &str = "variable";
/// A repository's own Actions variables (`vars.X` in every workflow of the repository,
/// unless the job's environment has a variable of the same name).
const REPO_VARIABLE: &str = "repositoryVariable";
const TEAM: &str = "team";
const MEMBERSHIP: &str = "membership";
const TEAM_REPO: &str = "teamRepo";
const USER: &str = "user";
const BLOB: &str = "blob";
const COMMIT: &str = "commit";
const REF: &str = "ref";
const PULL: &str = "pull";
const PROTECTION: &str = "branchProtection";
const BRANCH_POLICY: &str = "branchPolicy";
const INSTALLATION_TOKEN: &str = "installationToken";
/// The sandbox's GitHub App and its installation on the organization.
pub const APP_ID: i64 = 424242;
pub const INSTALLATION_ID: i64 = 4242;
/// Requests an hour, as GitHub grants a token.
pub const RATE_LIMIT: u64 = 5000;
/// The branch a repository's first commit lands on: every repository's `default_branch`.
const DEFAULT_BRANCH: &str = "main";
/// The user the sandbox's personal access token (the org admin) belongs to.
const ADMIN_LOGIN: &str = "paddock-admin";
/// The user the app's installation acts as.
const BOT_LOGIN: &str = "paddock[bot]";
const SECONDARY_LIMIT_DOCS: &str = "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api#about-secondary-rate-limits";

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
    /// GitHub's secondary limit on content-creating requests.
    pub mutations: MutationLimit,
    /// Held while a repository's refs move or a pull request is numbered, so concurrent
    /// writes to a branch each see the other's commit, as git's ref locks ensure.
    pub git: tokio::sync::Mutex<()>,
}

/// Who a request acts as: the org admin (the sandbox's personal access token) or the
/// GitHub App's installation. Pull requests are authored by them.
#[derive(Clone, Copy, PartialEq)]
enum Caller {
    Admin,
    Installation,
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

/// The token of `Authorization: Bearer …` (or GitHub's older `token …`), if any.
fn bearer(headers: &HeaderMap) -> String {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("token "))
        })
        .unwrap_or_default()
        .to_owned()
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

    async fn route(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> GitHubResult {
        let token = bearer(headers);
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
        // `GET /user` names whoever the token belongs to: a user's OAuth token (from the
        // OAuth web flow, `github_oauth.rs`) or the admin's personal access token.
        if segments == ["user"] && *method == Method::GET {
            return self.authenticated_user(&token).await;
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
            // The sandbox serves no search, so that budget (30 a minute) stays whole.
            let search =
                json!({"limit": 30, "used": 0, "remaining": 30, "reset": now_ms() / 1000 + 60});
            return Ok(json_ok(
                StatusCode::OK,
                json!({"resources": {"core": core, "search": search}, "rate": core}),
            ));
        }
        let caller = if token == self.admin_token {
            Caller::Admin
        } else {
            Caller::Installation
        };
        let counted = self.count()?;
        let served = match self.admit(method) {
            Ok(()) => {
                let query = query_pairs(uri.query().unwrap_or_default());
                match self.by_name(&segments).await {
                    Ok(Some(named)) => {
                        let named: Vec<&str> = named.iter().map(String::as_str).collect();
                        self.serve(method, &named, &query, caller, body).await
                    }
                    Ok(None) => self.serve(method, &segments, &query, caller, body).await,
                    Err(e) => Err(e),
                }
            }
            Err(refused) => Err(refused),
        };
        let mut response = served.unwrap_or_else(IntoResponse::into_response);
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

    async fn serve(
        &self,
        method: &Method,
        segments: &[&str],
        query: &[(String, String)],
        caller: Caller,
        body: &[u8],
    ) -> GitHubResult {
        const REPOS_DOCS: &str = "https://docs.github.com/rest/repos/repos";
        const ENV_DOCS: &str = "https://docs.github.com/rest/deployments/environments";
        const SECRET_DOCS: &str = "https://docs.github.com/rest/actions/secrets";
        const VAR_DOCS: &str = "https://docs.github.com/rest/actions/variables";
        match (segments, method) {
            (["orgs", org], &Method::GET) if self.is_org(org) => {
                Ok(json_ok(StatusCode::OK, self.organization()))
            }
            (["orgs", org, "repos"], &Method::GET) if self.is_org(org) => {
                self.list_repos(query).await
            }
            (["orgs", org, "repos"], &Method::POST) if self.is_org(org) => {
                self.create_repo(body).await
            }
            (["orgs", org, "teams", rest @ ..], m) if self.is_org(org) => {
                self.teams(m, rest, query, caller, body).await
            }
            (["repos", owner, template, "generate"], &Method::POST) if self.is_org(owner) => {
                self.generate(template, body).await
            }
            (["users", login, rest @ ..], &Method::GET) => {
                let user = self
                    .known_user(login)
                    .await?
                    .ok_or_else(|| not_found("https://docs.github.com/rest/users/users"))?;
                match rest {
                    [] => Ok(json_ok(StatusCode::OK, user)),
                    _ => self.user_link(&user, rest, query).await,
                }
            }
            (["orgs", org, rest @ ..], &Method::GET) if self.is_org(org) && !rest.is_empty() => {
                self.org_link(rest, query).await
            }
            (["installation", "repositories"], &Method::GET) => {
                self.installation_repositories(query).await
            }
            (["repos", owner, repo, rest @ ..], m) if self.is_org(owner) => {
                let key = repo.to_lowercase();
                let Some(stored) = self.docs.get(API, REPO, &key).await? else {
                    return Err(not_found(REPOS_DOCS));
                };
                match (rest, m) {
                    ([], &Method::GET) => Ok(json_ok(StatusCode::OK, self.repository(&stored))),
                    ([], &Method::PATCH) => self.update_repo(&key, stored, body).await,
                    ([], &Method::DELETE) => {
                        self.docs
                            .delete_prefix(
                                API,
                                &[
                                    ENV,
                                    ENV_KEY,
                                    SECRET,
                                    VARIABLE,
                                    REPO_VARIABLE,
                                    BLOB,
                                    COMMIT,
                                    REF,
                                    PULL,
                                    PROTECTION,
                                    BRANCH_POLICY,
                                ],
                                &format!("{key}/"),
                            )
                            .await?;
                        self.docs.delete(API, REPO, &key).await?;
                        Ok(StatusCode::NO_CONTENT.into_response())
                    }
                    (["environments"], &Method::GET) => {
                        let envs: Vec<Value> =
                            self.docs.values(API, ENV, &format!("{key}/")).await?;
                        let url = format!(
                            "{}/repos/{}/environments",
                            self.api(),
                            self.full_name(&stored)
                        );
                        Ok(Paging::of(query).counted("environments", &envs, &url, query))
                    }
                    (["contents", path @ ..], m) if !path.is_empty() => {
                        self.contents(m, &key, &stored, &path.join("/"), query, body)
                            .await
                    }
                    (["git", "refs"], &Method::POST) => self.create_ref(&key, &stored, body).await,
                    (["pulls"], &Method::GET) => self.list_pulls(&key, &stored, query).await,
                    (["pulls"], &Method::POST) => {
                        self.create_pull(&key, &stored, caller, body).await
                    }
                    (["branches", branch], &Method::GET) => {
                        self.branch(&key, &stored, branch).await
                    }
                    (["branches", branch, "protection", part @ ..], m) => {
                        self.protection(m, &key, &stored, branch, part, body).await
                    }
                    (["actions", "variables", rest @ ..], m) => {
                        let url = format!(
                            "{}/repos/{}/actions/variables",
                            self.api(),
                            self.full_name(&stored)
                        );
                        self.variables(m, REPO_VARIABLE, &key, rest, (&url, query), body)
                            .await
                    }
                    (["environments", env, tail @ ..], m) => {
                        self.environment(m, &stored, env, tail, query, body).await
                    }
                    (rest, &Method::GET) => self.repo_link(&key, &stored, rest, query).await,
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

    fn full_name(&self, repo: &Value) -> String {
        format!("{}/{}", self.org, repo["name"].as_str().unwrap_or_default())
    }
}
