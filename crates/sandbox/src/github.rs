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

use std::collections::{BTreeSet, HashSet, VecDeque};
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

/// GitHub's secondary rate limit on content-creating requests: at most so many in any
/// minute. A sliding window, so `retry-after` says when the oldest one leaves it.
pub(crate) struct MutationLimit {
    per_minute: usize,
    recent: Mutex<VecDeque<i64>>,
}

impl MutationLimit {
    pub(crate) fn per_minute(per_minute: u32) -> MutationLimit {
        MutationLimit {
            per_minute: per_minute as usize,
            recent: Mutex::default(),
        }
    }

    /// Counts a mutation at `now_ms`, or refuses it with the seconds until one is allowed.
    /// A refused mutation does not count, so a client that waits as told gets through.
    fn admit(&self, now_ms: i64) -> Result<(), u64> {
        let mut recent = self.recent.lock().expect("mutations lock");
        while recent.front().is_some_and(|&at| at <= now_ms - 60_000) {
            recent.pop_front();
        }
        if recent.len() < self.per_minute {
            recent.push_back(now_ms);
            return Ok(());
        }
        let frees_at = recent.front().map_or(now_ms, |&oldest| oldest + 60_000);
        Err(((frees_at - now_ms + 999) / 1000).max(1) as u64)
    }
}

/// Who a request acts as: the org admin (the sandbox's personal access token) or the
/// GitHub App's installation. Pull requests are authored by them.
#[derive(Clone, Copy, PartialEq)]
enum Caller {
    Admin,
    Installation,
}

pub(crate) struct GitHubError {
    status: StatusCode,
    message: String,
    docs: &'static str,
    errors: Option<Value>,
    /// `retry-after` of a rate-limited request, in seconds.
    retry_after: Option<u64>,
}

fn error(status: StatusCode, message: impl Into<String>, docs: &'static str) -> GitHubError {
    GitHubError {
        status,
        message: message.into(),
        docs,
        errors: None,
        retry_after: None,
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
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
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

/// 422 "Validation Failed" with GitHub's `errors` items (`resource`, `code`, `field`,
/// `message`), as pull requests report what is wrong with them.
fn validation_failed(errors: Value, docs: &'static str) -> GitHubError {
    GitHubError {
        errors: Some(errors),
        ..error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed", docs)
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

/// What merging one branch into another would bring.
struct Comparison {
    /// Commits on the head branch since the merge base.
    commits: usize,
    /// Paths the head branch changed since the merge base.
    changed_files: usize,
    /// Whether both branches changed a path, differently.
    conflicts: bool,
}

/// A git-style object id: 40 hex digits of a digest over the object's type, length and
/// content (SHA-256 cut to SHA-1's length: the sandbox need not match git's ids).
fn object_id(kind: &str, content: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest([format!("{kind} {}\0", content.len()).as_bytes(), content].concat())[..20]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Git's rules for ref names (`git check-ref-format`), which GitHub applies.
fn valid_ref_name(name: &str) -> bool {
    !name.contains("..")
        && !name.contains("@{")
        && !name.ends_with(".lock")
        && !name.ends_with('.')
        && name
            .split('/')
            .all(|part| !part.is_empty() && !part.starts_with('.'))
        && !name
            .chars()
            .any(|c| c.is_ascii_control() || " ~^:?*[\\".contains(c))
}

/// `name=value` pairs of a query string, decoded (`+` is a space).
fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| percent_decode(&s.replace('+', " "));
            (decode(k), decode(v))
        })
        .collect()
}

fn param<'q>(query: &'q [(String, String)], name: &str) -> Option<&'q str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The inverse of `query_pairs`, for the URLs of `Link` headers.
fn encode_query(pairs: &[(String, String)]) -> String {
    let encode = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// GitHub's paging of a list: `per_page` (default 30, at most 100) items on page `page`
/// (from 1); anything else in those parameters falls back to the default, as GitHub does.
struct Paging {
    per_page: usize,
    page: usize,
}

impl Paging {
    fn of(query: &[(String, String)]) -> Paging {
        Paging::sized(query, 30, 100)
    }

    /// With another default and most per page (environment variables: 10 and 30).
    fn sized(query: &[(String, String)], default: usize, most: usize) -> Paging {
        let number = |name: &str| param(query, name).and_then(|v| v.parse::<usize>().ok());
        Paging {
            per_page: number("per_page").unwrap_or(default).clamp(1, most),
            page: number("page").unwrap_or(1).max(1),
        }
    }

    /// A page of `items` as `{"total_count": …, field: […]}`, with its `Link` header.
    fn counted(
        &self,
        field: &str,
        items: &[Value],
        url: &str,
        query: &[(String, String)],
    ) -> Response {
        let body = json!({"total_count": items.len(), field: self.slice(items)});
        self.link(json_ok(StatusCode::OK, body), url, query, items.len())
    }

    /// A page of `items` as a JSON array, with its `Link` header.
    fn array(&self, items: &[Value], url: &str, query: &[(String, String)]) -> Response {
        let body = json!(self.slice(items));
        self.link(json_ok(StatusCode::OK, body), url, query, items.len())
    }

    /// This page's share of `items`.
    fn slice<'a, T>(&self, items: &'a [T]) -> &'a [T] {
        let start = ((self.page - 1) * self.per_page).min(items.len());
        &items[start..(start + self.per_page).min(items.len())]
    }

    /// `response` with the `Link` header GitHub sends with a list of `total` items at
    /// `url` (the request's other parameters kept): `prev` and `first` after the first
    /// page, `next` and `last` before the last; none when everything fits on one page.
    fn link(
        &self,
        mut response: Response,
        url: &str,
        query: &[(String, String)],
        total: usize,
    ) -> Response {
        let last = total.div_ceil(self.per_page).max(1);
        let at = |n: usize| {
            let mut pairs: Vec<(String, String)> =
                query.iter().filter(|(k, _)| k != "page").cloned().collect();
            pairs.push(("page".to_owned(), n.to_string()));
            format!("<{url}?{}>", encode_query(&pairs))
        };
        let mut rels = Vec::new();
        if self.page > 1 {
            rels.push(format!("{}; rel=\"prev\"", at((self.page - 1).min(last))));
        }
        if self.page < last {
            rels.push(format!("{}; rel=\"next\"", at(self.page + 1)));
            rels.push(format!("{}; rel=\"last\"", at(last)));
        }
        if self.page > 1 {
            rels.push(format!("{}; rel=\"first\"", at(1)));
        }
        if let Ok(value) = HeaderValue::from_str(&rels.join(", "))
            && !rels.is_empty()
        {
            response.headers_mut().insert(header::LINK, value);
        }
        response
    }
}

/// Adds the `Location` of what a request created.
fn with_location(mut response: Response, url: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(url) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
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
                self.serve(method, &segments, &query, caller, body).await
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

    /// GitHub's secondary limit: a content-creating request beyond the minute's budget is
    /// refused with 403 and `retry-after`; reads are never held back by it.
    fn admit(&self, method: &Method) -> Result<(), GitHubError> {
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return Ok(());
        }
        self.mutations.admit(now_ms()).map_err(|secs| GitHubError {
            retry_after: Some(secs),
            ..error(
                StatusCode::FORBIDDEN,
                "You have exceeded a secondary rate limit and have been temporarily blocked from content creation. Please retry your request again later. If you reach out to GitHub Support for help, please include the request ID.",
                SECONDARY_LIMIT_DOCS,
            )
        })
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
                    (["branches", branch, "protection"], m) => {
                        self.protection(m, &key, &stored, branch, body).await
                    }
                    (["environments", env, tail @ ..], m) => {
                        self.environment(m, &stored, env, tail, query, body).await
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

    async fn teams(
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
            "owner": self.owner(), "private": stored["private"], "visibility": stored["visibility"].as_str().unwrap_or(if stored["private"] == json!(true) { "private" } else { "public" }),
            "html_url": web, "description": stored["description"], "fork": false, "url": api,
            "clone_url": format!("{web}.git"), "git_url": format!("git://{}/{full}.git", self.host()),
            "ssh_url": format!("git@sandbox:{full}.git"), "svn_url": web, "mirror_url": null, "homepage": stored.get("homepage").unwrap_or(&Value::Null), "language": null,
            "default_branch": "main", "forks": 0, "forks_count": 0, "open_issues": 0, "open_issues_count": 0,
            "stargazers_count": 0, "watchers": 0, "watchers_count": 0, "size": 0, "network_count": 0, "subscribers_count": 0,
            "has_issues": stored["has_issues"].as_bool().unwrap_or(true), "has_projects": stored["has_projects"].as_bool().unwrap_or(false),
            "has_wiki": stored["has_wiki"].as_bool().unwrap_or(false), "has_pages": false, "has_discussions": stored["has_discussions"].as_bool().unwrap_or(false),
            "archived": false, "disabled": false, "license": null, "is_template": stored["is_template"],
            "created_at": stored["created_at"], "updated_at": stored.get("updated_at").unwrap_or(&stored["created_at"]), "pushed_at": stored["created_at"],
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

    /// `GET /orgs/{org}/repos`: the organization's repositories as `minimal-repository`
    /// items, filtered by `type` (`all`, the default; `public`, `private` and, as GitHub
    /// Enterprise has it, `internal` by visibility; `sources`, every one, as the sandbox
    /// has no forks; `forks`, none; `member`, every one, as both the org admin and the
    /// app's installation reach them all), sorted by `sort` (`created`, the default,
    /// `updated`, `pushed` or `full_name`) in `direction` (`asc` by default for
    /// `full_name`, otherwise `desc`), paged by `per_page` and `page` with a `Link` header.
    async fn list_repos(&self, query: &[(String, String)]) -> GitHubResult {
        const DOCS: &str =
            "https://docs.github.com/rest/repos/repos#list-organization-repositories";
        let refuse = |field: &str| {
            validation_failed(
                json!([{"resource": "Repository", "field": field, "code": "invalid"}]),
                DOCS,
            )
        };
        let kind = param(query, "type").unwrap_or("all");
        let wanted = |repo: &Value| match kind {
            "public" | "private" | "internal" => repo["visibility"] == kind,
            "forks" => repo["fork"] == true,
            _ => true,
        };
        let kinds = [
            "all", "public", "private", "internal", "forks", "sources", "member",
        ];
        if !kinds.contains(&kind) {
            return Err(refuse("type"));
        }
        let sort = param(query, "sort").unwrap_or("created");
        // By what the repository reports (`pushed_at` is its creation: the sandbox does
        // not track pushes on the repository), then, as the timestamps are whole seconds,
        // by the millisecond it was created or updated, then by name.
        let (field, ms) = match sort {
            "created" | "pushed" => ("created_at", "created_ms"),
            "updated" => ("updated_at", "updated_ms"),
            "full_name" => ("full_name", "created_ms"),
            _ => return Err(refuse("sort")),
        };
        let ascending = match param(query, "direction") {
            Some("asc") => true,
            Some("desc") => false,
            None => sort == "full_name",
            Some(_) => return Err(refuse("direction")),
        };
        let mut repos: Vec<(Value, Value)> = self
            .docs
            .values(API, REPO, "")
            .await?
            .into_iter()
            .map(|stored| (self.repository(&stored), stored))
            .filter(|(repo, _)| wanted(repo))
            .collect();
        repos.sort_by(|(a, a_stored), (b, b_stored)| {
            let key = |r: &Value, stored: &Value| {
                (
                    r[field].as_str().unwrap_or_default().to_lowercase(),
                    stored[ms]
                        .as_i64()
                        .or_else(|| stored["created_ms"].as_i64())
                        .unwrap_or_default(),
                    r["name"].as_str().unwrap_or_default().to_lowercase(),
                )
            };
            key(a, a_stored).cmp(&key(b, b_stored))
        });
        if !ascending {
            repos.reverse();
        }
        let items: Vec<Value> = repos
            .into_iter()
            .map(|(mut repo, _)| {
                // The org admin and the app's installation may do anything with each.
                repo["permissions"] = json!({"admin": true, "maintain": true, "push": true, "triage": true, "pull": true});
                repo
            })
            .collect();
        let url = format!("{}/orgs/{}/repos", self.api(), self.org);
        Ok(Paging::of(query).array(&items, &url, query))
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
        let visibility = match request["visibility"].as_str() {
            Some(v @ ("public" | "private" | "internal")) => v,
            Some(_) => {
                return Err(invalid(
                    "Repository creation failed.",
                    "Repository",
                    "visibility",
                    "visibility must be public, private or internal",
                    DOCS,
                ));
            }
            // `private` defaults to false, as the description says.
            None if request["private"] == json!(true) => "private",
            None => "public",
        };
        let mut stored = json!({
            "name": name,
            "description": request["description"],
            "homepage": request["homepage"].as_str(),
            "private": visibility != "public",
            "visibility": visibility,
            "is_template": request["is_template"].as_bool().unwrap_or(false),
            "created_at": now_iso(),
            "created_ms": now_ms(),
        });
        for field in ["has_issues", "has_projects", "has_wiki"] {
            if let Some(on) = request[field].as_bool() {
                stored[field] = json!(on);
            }
        }
        let key = name.to_lowercase();
        if !self.docs.insert_new(API, REPO, &key, &stored).await? {
            return Err(invalid(
                "Repository creation failed.",
                "Repository",
                "name",
                "name already exists on this account",
                DOCS,
            ));
        }
        // `auto_init`: a first commit on the default branch with a README, as GitHub
        // makes it (the name as a heading, then the description).
        if request["auto_init"] == json!(true) {
            let mut readme = format!("# {name}");
            if let Some(description) = request["description"].as_str() {
                readme.push_str(&format!("\n{description}"));
            }
            let _git = self.git.lock().await;
            let blob_sha = object_id("blob", readme.as_bytes());
            let blob = json!({"content": B64.encode(&readme), "size": readme.len()});
            self.docs
                .put(API, BLOB, &format!("{key}/{blob_sha}"), &blob)
                .await?;
            let mut tree = serde_json::Map::new();
            tree.insert("README.md".to_owned(), json!(blob_sha));
            let commit = self
                .write_commit(&key, None, &tree, "Initial commit", &Value::Null)
                .await?;
            self.docs
                .put(
                    API,
                    REF,
                    &format!("{key}/heads/{DEFAULT_BRANCH}"),
                    &json!({"sha": commit["sha"]}),
                )
                .await?;
        }
        Ok(json_ok(StatusCode::CREATED, self.repository(&stored)))
    }

    /// An environment of `stored_repo` (kept by its name in lower case, as the repository
    /// is), and what lives under it.
    async fn environment(
        &self,
        method: &Method,
        stored_repo: &Value,
        env: &str,
        tail: &[&str],
        query: &[(String, String)],
        body: &[u8],
    ) -> GitHubResult {
        const DOCS: &str = "https://docs.github.com/rest/deployments/environments";
        let repo = stored_repo["name"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase();
        let key = format!("{repo}/{}", env.to_lowercase());
        let existing = self.docs.get(API, ENV, &key).await?;
        match (tail, method) {
            ([], &Method::PUT) => {
                let request = parse_json(body, DOCS)?;
                let reviewers = request["reviewers"].as_array().cloned().unwrap_or_default();
                let wait_timer = request["wait_timer"].as_i64().unwrap_or(0);
                if !(0..=43_200).contains(&wait_timer) {
                    return Err(invalid(
                        "Validation Failed",
                        "Environment",
                        "wait_timer",
                        "wait_timer must be an integer between 0 and 43200",
                        DOCS,
                    ));
                }
                let policy = request
                    .get("deployment_branch_policy")
                    .cloned()
                    .unwrap_or(Value::Null);
                let (protected, custom) = (
                    policy["protected_branches"].as_bool(),
                    policy["custom_branch_policies"].as_bool(),
                );
                if !policy.is_null() && (protected.is_none() || protected == custom) {
                    return Err(invalid(
                        "Validation Failed",
                        "Environment",
                        "deployment_branch_policy",
                        "one of protected_branches and custom_branch_policies must be true, the other false",
                        DOCS,
                    ));
                }
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
                if wait_timer > 0 {
                    rules.push(json!({"id": numeric_id(&format!("{key}/wait_timer")), "node_id": format!("GA_{}", numeric_id(&format!("{key}/wait_timer"))), "type": "wait_timer", "wait_timer": wait_timer}));
                }
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
                    "deployment_branch_policy": policy,
                });
                if custom != Some(true) {
                    self.docs
                        .delete_prefix(API, &[BRANCH_POLICY], &format!("{key}/"))
                        .await?;
                }
                self.docs.put(API, ENV, &key, &environment).await?;
                Ok(json_ok(StatusCode::OK, environment))
            }
            ([], &Method::GET) => Ok(json_ok(
                StatusCode::OK,
                existing.ok_or_else(|| not_found(DOCS))?,
            )),
            ([], &Method::DELETE) => {
                existing.ok_or_else(|| not_found(DOCS))?;
                self.docs.delete(API, ENV, &key).await?;
                self.docs.delete(API, ENV_KEY, &key).await?;
                // `{key}/`, not `{key}`: deleting `prod` must leave `production` alone.
                self.docs
                    .delete_prefix(API, &[SECRET, VARIABLE, BRANCH_POLICY], &format!("{key}/"))
                    .await?;
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            (["deployment-branch-policies", rest @ ..], m) => {
                let environment = existing.ok_or_else(|| not_found(DOCS))?;
                self.branch_policies(m, &key, &environment, rest, query, body)
                    .await
            }
            ([kind @ ("secrets" | "variables"), rest @ ..], m) => {
                let environment = existing.ok_or_else(|| not_found(DOCS))?;
                let url = format!("{}/{kind}", environment["url"].as_str().unwrap_or_default());
                if *kind == "secrets" {
                    self.secrets(m, &key, rest, (&url, query), body).await
                } else {
                    self.variables(m, &key, rest, (&url, query), body).await
                }
            }
            _ => Err(not_found(DOCS)),
        }
    }

    /// `POST /repos/{template}/generate`: a new repository whose one commit holds the
    /// template's files; its branch appears after `template_delay`, as GitHub copies the
    /// files asynchronously.
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
        let (source, target) = (template.to_lowercase(), name.to_lowercase());
        let _git = self.git.lock().await;
        let Some(head) = self.branch_head(&source, DEFAULT_BRANCH).await? else {
            return Ok(response);
        };
        let tree = self
            .commit(&source, &head)
            .await?
            .and_then(|c| c["tree"].as_object().cloned())
            .unwrap_or_default();
        for blob_sha in tree.values().filter_map(Value::as_str) {
            if let Some(blob) = self
                .docs
                .get(API, BLOB, &format!("{source}/{blob_sha}"))
                .await?
            {
                self.docs
                    .put(API, BLOB, &format!("{target}/{blob_sha}"), &blob)
                    .await?;
            }
        }
        let commit = self
            .write_commit(&target, None, &tree, "Initial commit", &json!({}))
            .await?;
        let ready = now_ms() + self.template_delay.as_millis() as i64;
        self.docs
            .put(
                API,
                REF,
                &format!("{target}/heads/{DEFAULT_BRANCH}"),
                &json!({"sha": commit["sha"], "readyAtMs": ready}),
            )
            .await?;
        Ok(response)
    }

    fn full_name(&self, repo: &Value) -> String {
        format!("{}/{}", self.org, repo["name"].as_str().unwrap_or_default())
    }

    /// The commit a ref (`heads/main`, `tags/v1`) names, once it is visible (a generated
    /// repository's branch appears with its files).
    async fn ref_target(&self, repo_key: &str, name: &str) -> Result<Option<String>, GitHubError> {
        Ok(self
            .docs
            .get(API, REF, &format!("{repo_key}/{name}"))
            .await?
            .filter(|r| r["readyAtMs"].as_i64().is_none_or(|at| at <= now_ms()))
            .and_then(|r| r["sha"].as_str().map(str::to_owned)))
    }

    async fn branch_head(
        &self,
        repo_key: &str,
        branch: &str,
    ) -> Result<Option<String>, GitHubError> {
        self.ref_target(repo_key, &format!("heads/{branch}")).await
    }

    /// Whether the repository has no refs at all: what GitHub calls an empty repository.
    async fn is_empty(&self, repo_key: &str) -> Result<bool, GitHubError> {
        Ok(self
            .docs
            .list(API, REF, &format!("{repo_key}/"))
            .await?
            .is_empty())
    }

    async fn commit(&self, repo_key: &str, sha: &str) -> Result<Option<Value>, GitHubError> {
        Ok(self
            .docs
            .get(API, COMMIT, &format!("{repo_key}/{sha}"))
            .await?)
    }

    /// What a `ref` parameter may name: a branch, a tag, a full ref or a commit sha.
    async fn resolve(&self, repo_key: &str, rev: &str) -> Result<Option<String>, GitHubError> {
        let name = rev.strip_prefix("refs/").unwrap_or(rev);
        for candidate in [
            name.to_owned(),
            format!("heads/{name}"),
            format!("tags/{name}"),
        ] {
            if (candidate.starts_with("heads/") || candidate.starts_with("tags/"))
                && let Some(sha) = self.ref_target(repo_key, &candidate).await?
            {
                return Ok(Some(sha));
            }
        }
        Ok(self.commit(repo_key, rev).await?.map(|_| rev.to_owned()))
    }

    /// Records a commit of `tree` (path → blob sha) on top of `parent`; its sha covers the
    /// tree, the parent, the time and the message, as a git commit's does.
    async fn write_commit(
        &self,
        repo_key: &str,
        parent: Option<&str>,
        tree: &serde_json::Map<String, Value>,
        message: &str,
        committer: &Value,
    ) -> Result<Value, GitHubError> {
        let mut entries: Vec<(&String, &Value)> = tree.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        let listing: String = entries
            .iter()
            .map(|(path, blob)| format!("{} {path}\n", blob.as_str().unwrap_or_default()))
            .collect();
        let tree_sha = object_id("tree", listing.as_bytes());
        let parents: Vec<&str> = parent.into_iter().collect();
        let text = format!(
            "tree {tree_sha}\n{}time {}\n\n{message}",
            parents
                .iter()
                .map(|p| format!("parent {p}\n"))
                .collect::<String>(),
            now_ms()
        );
        let sha = object_id("commit", text.as_bytes());
        let commit = json!({
            "sha": sha, "tree": tree, "tree_sha": tree_sha, "parents": parents, "message": message,
            "date": now_iso(),
            "name": committer["name"].as_str().unwrap_or("paddock"),
            "email": committer["email"].as_str().unwrap_or("paddock@sandbox"),
        });
        self.docs
            .put(API, COMMIT, &format!("{repo_key}/{sha}"), &commit)
            .await?;
        Ok(commit)
    }

    /// The commits reachable from `sha`, newest first (one parent each: the sandbox makes
    /// no merges).
    async fn history(&self, repo_key: &str, sha: &str) -> Result<Vec<Value>, GitHubError> {
        let mut commits = Vec::new();
        let mut next = Some(sha.to_owned());
        while let Some(sha) = next {
            let Some(commit) = self.commit(repo_key, &sha).await? else {
                break;
            };
            next = commit["parents"][0].as_str().map(str::to_owned);
            commits.push(commit);
        }
        Ok(commits)
    }

    /// What merging `head` into `base` would bring, from their merge base.
    async fn compare(
        &self,
        repo_key: &str,
        base_sha: &str,
        head_sha: &str,
    ) -> Result<Comparison, GitHubError> {
        let base = self.history(repo_key, base_sha).await?;
        let head = self.history(repo_key, head_sha).await?;
        let in_base: HashSet<&str> = base.iter().filter_map(|c| c["sha"].as_str()).collect();
        let ahead = head
            .iter()
            .take_while(|c| !c["sha"].as_str().is_some_and(|s| in_base.contains(s)))
            .count();
        let empty = json!({});
        let tree = |c: Option<&Value>| c.map_or(&empty, |c| &c["tree"]).clone();
        let (merge_base, ours, theirs) = (
            tree(head.get(ahead)),
            tree(head.first()),
            tree(base.first()),
        );
        let changed = |side: &Value| -> BTreeSet<String> {
            let paths = side.as_object().into_iter().chain(merge_base.as_object());
            paths
                .flat_map(|t| t.keys())
                .filter(|p| side[p.as_str()] != merge_base[p.as_str()])
                .cloned()
                .collect()
        };
        let (changed_here, changed_there) = (changed(&ours), changed(&theirs));
        let conflicts = changed_here
            .intersection(&changed_there)
            .any(|p| ours[p.as_str()] != theirs[p.as_str()]);
        Ok(Comparison {
            commits: ahead,
            changed_files: changed_here.len(),
            conflicts,
        })
    }

    /// A `content-file`, as read at `reference`.
    fn content_file(
        &self,
        repo: &Value,
        path: &str,
        sha: &str,
        blob: &Value,
        reference: &str,
    ) -> Value {
        let full = self.full_name(repo);
        let url = format!("{}/repos/{full}/contents/{path}", self.api());
        let html = format!("{}/{full}/blob/{reference}/{path}", self.base_url);
        let git = format!("{}/repos/{full}/git/blobs/{sha}", self.api());
        json!({
            "type": "file", "encoding": "base64", "size": blob["size"], "name": path.rsplit('/').next().unwrap_or(path), "path": path,
            "content": blob["content"], "sha": sha, "url": url, "git_url": git, "html_url": html,
            "download_url": format!("{}/{full}/raw/{reference}/{path}", self.base_url),
            "_links": {"self": url, "git": git, "html": html},
        })
    }

    /// A commit as a file write returns it.
    fn commit_json(&self, full: &str, commit: &Value) -> Value {
        let sha = commit["sha"].as_str().unwrap_or_default();
        let api = format!("{}/repos/{full}", self.api());
        let web = format!("{}/{full}", self.base_url);
        let person =
            json!({"date": commit["date"], "name": commit["name"], "email": commit["email"]});
        let parents: Vec<Value> = commit["parents"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|p| json!({"sha": p, "url": format!("{api}/git/commits/{p}"), "html_url": format!("{web}/commit/{p}")}))
            .collect();
        json!({
            "sha": sha, "node_id": format!("C_{sha}"),
            "url": format!("{api}/git/commits/{sha}"), "html_url": format!("{web}/commit/{sha}"),
            "author": person, "committer": person, "message": commit["message"],
            "tree": {"url": format!("{api}/git/trees/{}", commit["tree_sha"].as_str().unwrap_or_default()), "sha": commit["tree_sha"]},
            "parents": parents,
            "verification": {"verified": false, "reason": "unsigned", "signature": null, "payload": null, "verified_at": null},
        })
    }

    async fn contents(
        &self,
        method: &Method,
        repo_key: &str,
        repo: &Value,
        path: &str,
        query: &[(String, String)],
        body: &[u8],
    ) -> GitHubResult {
        const DOCS: &str = "https://docs.github.com/rest/repos/contents";
        match *method {
            Method::GET => {
                let wanted = param(query, "ref");
                let reference = wanted.unwrap_or(DEFAULT_BRANCH);
                let Some(sha) = self.resolve(repo_key, reference).await? else {
                    return Err(match wanted {
                        Some(r) => error(
                            StatusCode::NOT_FOUND,
                            format!("No commit found for the ref {r}"),
                            DOCS,
                        ),
                        None => not_found(DOCS),
                    });
                };
                let commit = self
                    .commit(repo_key, &sha)
                    .await?
                    .ok_or_else(|| not_found(DOCS))?;
                let blob_sha = commit["tree"][path]
                    .as_str()
                    .ok_or_else(|| not_found(DOCS))?;
                let blob = self
                    .docs
                    .get(API, BLOB, &format!("{repo_key}/{blob_sha}"))
                    .await?
                    .ok_or_else(|| not_found(DOCS))?;
                Ok(json_ok(
                    StatusCode::OK,
                    self.content_file(repo, path, blob_sha, &blob, reference),
                ))
            }
            Method::PUT => self.write_file(repo_key, repo, path, body).await,
            Method::DELETE => self.delete_file(repo_key, repo, path, body).await,
            _ => Err(not_found(DOCS)),
        }
    }

    /// `PUT contents/{path}`: a commit on `branch` (the default branch unless named) whose
    /// tree has the file. The first write to an empty repository creates the branch.
    async fn write_file(
        &self,
        repo_key: &str,
        repo: &Value,
        path: &str,
        body: &[u8],
    ) -> GitHubResult {
        const DOCS: &str = "https://docs.github.com/rest/repos/contents";
        let request: Value = parse_json(body, DOCS)?;
        let unsupplied = |field: &str| {
            error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("Invalid request.\n\n\"{field}\" wasn't supplied."),
                DOCS,
            )
        };
        let message = request["message"]
            .as_str()
            .ok_or_else(|| unsupplied("message"))?;
        let Some(bytes) = request["content"].as_str().and_then(|c| B64.decode(c).ok()) else {
            return Err(invalid(
                "Invalid request.",
                "File",
                "content",
                "content is not valid Base64",
                DOCS,
            ));
        };
        let branch = request["branch"].as_str().unwrap_or(DEFAULT_BRANCH);
        let _git = self.git.lock().await;
        let parent = match self.branch_head(repo_key, branch).await? {
            Some(sha) => self.commit(repo_key, &sha).await?,
            None if self.is_empty(repo_key).await? => None,
            None => {
                return Err(error(
                    StatusCode::NOT_FOUND,
                    format!("Branch {branch} not found"),
                    DOCS,
                ));
            }
        };
        let mut tree = parent
            .as_ref()
            .and_then(|c| c["tree"].as_object().cloned())
            .unwrap_or_default();
        let existed = tree.contains_key(path);
        if let Some(old) = tree.get(path).and_then(Value::as_str) {
            match request["sha"].as_str() {
                None => return Err(unsupplied("sha")),
                Some(given) if given != old => {
                    return Err(error(
                        StatusCode::CONFLICT,
                        format!("{path} does not match {given}"),
                        DOCS,
                    ));
                }
                Some(_) => {}
            }
        }
        let sha = object_id("blob", &bytes);
        let blob = json!({"content": B64.encode(&bytes), "size": bytes.len()});
        self.docs
            .put(API, BLOB, &format!("{repo_key}/{sha}"), &blob)
            .await?;
        tree.insert(path.to_owned(), json!(sha));
        let committer = request.get("committer").unwrap_or(&Value::Null);
        let parent_sha = parent.as_ref().and_then(|c| c["sha"].as_str());
        let commit = self
            .write_commit(repo_key, parent_sha, &tree, message, committer)
            .await?;
        self.docs
            .put(
                API,
                REF,
                &format!("{repo_key}/heads/{branch}"),
                &json!({"sha": commit["sha"]}),
            )
            .await?;
        let status = if existed {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        Ok(json_ok(
            status,
            json!({
                "content": self.content_file(repo, path, &sha, &blob, branch),
                "commit": self.commit_json(&self.full_name(repo), &commit),
            }),
        ))
    }

    /// `POST git/refs`: a new ref (`refs/heads/x` is a branch) at a commit the repository
    /// knows.
    async fn create_ref(&self, repo_key: &str, repo: &Value, body: &[u8]) -> GitHubResult {
        const DOCS: &str = "https://docs.github.com/rest/git/refs#create-a-reference";
        let request = parse_json(body, DOCS)?;
        let unprocessable =
            |message: String| error(StatusCode::UNPROCESSABLE_ENTITY, message, DOCS);
        let field = |name: &str| {
            request[name].as_str().ok_or_else(|| {
                unprocessable(format!("Invalid request.\n\n\"{name}\" wasn't supplied."))
            })
        };
        let (name, sha) = (field("ref")?, field("sha")?);
        let Some(short) = name.strip_prefix("refs/").filter(|rest| rest.contains('/')) else {
            return Err(unprocessable(
                "Reference name must contain at least three slash-separated components.".to_owned(),
            ));
        };
        if !valid_ref_name(name) {
            return Err(unprocessable(format!("{name} is not a valid ref name.")));
        }
        let _git = self.git.lock().await;
        if self.is_empty(repo_key).await? {
            return Err(error(
                StatusCode::CONFLICT,
                "Git Repository is empty.",
                DOCS,
            ));
        }
        if self.commit(repo_key, sha).await?.is_none() {
            return Err(unprocessable("Object does not exist".to_owned()));
        }
        if !self
            .docs
            .insert_new(
                API,
                REF,
                &format!("{repo_key}/{short}"),
                &json!({ "sha": sha }),
            )
            .await?
        {
            return Err(unprocessable("Reference already exists".to_owned()));
        }
        let (api, full) = (self.api(), self.full_name(repo));
        let url = format!("{api}/repos/{full}/git/{name}");
        let reference = json!({
            "ref": name, "node_id": format!("REF_{}", numeric_id(&format!("{full}/{name}"))), "url": url,
            "object": {"type": "commit", "sha": sha, "url": format!("{api}/repos/{full}/git/commits/{sha}")},
        });
        Ok(with_location(json_ok(StatusCode::CREATED, reference), &url))
    }

    /// The user a caller acts as: the org admin, or the app's bot.
    fn caller_user(&self, caller: &str) -> Value {
        let (login, kind) = if caller == "installation" {
            ("paddock[bot]", "Bot")
        } else {
            (ADMIN_LOGIN, "User")
        };
        self.simple_user(login, numeric_id(&format!("user:{login}")), kind)
    }

    /// A `pull-request-simple`, or with `detail` a `pull-request`. An open pull request
    /// follows its branches' heads.
    async fn pull(
        &self,
        repo_key: &str,
        repo: &Value,
        stored: &Value,
        detail: bool,
    ) -> Result<Value, GitHubError> {
        let (full, n) = (
            self.full_name(repo),
            stored["number"].as_i64().unwrap_or_default(),
        );
        let (api, web) = (
            format!("{}/repos/{full}", self.api()),
            format!("{}/{full}", self.base_url),
        );
        let head = stored["head"].as_str().unwrap_or_default();
        let base = stored["base"].as_str().unwrap_or_default();
        let kept = |field: &str| stored[field].as_str().unwrap_or_default().to_owned();
        let (mut head_sha, mut base_sha) = (kept("head_sha"), kept("base_sha"));
        if stored["state"] == "open" {
            if let Some(sha) = self.branch_head(repo_key, head).await? {
                head_sha = sha;
            }
            if let Some(sha) = self.branch_head(repo_key, base).await? {
                base_sha = sha;
            }
        }
        let mut repository = self.repository(repo);
        repository["has_downloads"] = json!(true);
        let side = |branch: &str, sha: &str| json!({"label": format!("{}:{branch}", self.org), "ref": branch, "sha": sha, "user": self.owner(), "repo": repository});
        let link = |href: String| json!({ "href": href });
        let id = numeric_id(&format!("{full}#{n}"));
        let mut pull = json!({
            "url": format!("{api}/pulls/{n}"), "id": id, "node_id": format!("PR_{id}"),
            "html_url": format!("{web}/pull/{n}"), "diff_url": format!("{web}/pull/{n}.diff"), "patch_url": format!("{web}/pull/{n}.patch"),
            "issue_url": format!("{api}/issues/{n}"), "commits_url": format!("{api}/pulls/{n}/commits"),
            "review_comments_url": format!("{api}/pulls/{n}/comments"), "review_comment_url": format!("{api}/pulls/comments{{/number}}"),
            "comments_url": format!("{api}/issues/{n}/comments"), "statuses_url": format!("{api}/statuses/{head_sha}"),
            "head": side(head, &head_sha), "base": side(base, &base_sha),
            "_links": {
                "self": link(format!("{api}/pulls/{n}")), "html": link(format!("{web}/pull/{n}")), "issue": link(format!("{api}/issues/{n}")),
                "comments": link(format!("{api}/issues/{n}/comments")), "review_comments": link(format!("{api}/pulls/{n}/comments")),
                "review_comment": link(format!("{api}/pulls/comments{{/number}}")), "commits": link(format!("{api}/pulls/{n}/commits")),
                "statuses": link(format!("{api}/statuses/{head_sha}")),
            },
        });
        let author = stored["author"].as_str().unwrap_or_default();
        for (field, value) in [
            ("number", json!(n)),
            ("state", stored["state"].clone()),
            ("locked", json!(false)),
            ("title", stored["title"].clone()),
            ("user", self.caller_user(author)),
            ("body", stored["body"].clone()),
            ("labels", json!([])),
            ("milestone", Value::Null),
            ("active_lock_reason", Value::Null),
            ("created_at", stored["created_at"].clone()),
            ("updated_at", stored["created_at"].clone()),
            ("closed_at", Value::Null),
            ("merged_at", Value::Null),
            ("merge_commit_sha", Value::Null),
            ("assignee", Value::Null),
            ("assignees", json!([])),
            ("requested_reviewers", json!([])),
            ("requested_teams", json!([])),
            (
                "author_association",
                json!(if author == "installation" {
                    "NONE"
                } else {
                    "MEMBER"
                }),
            ),
            ("auto_merge", Value::Null),
            ("draft", stored["draft"].clone()),
        ] {
            pull[field] = value;
        }
        if detail {
            let comparison = self.compare(repo_key, &base_sha, &head_sha).await?;
            for (field, value) in [
                ("merged", json!(false)),
                ("mergeable", json!(!comparison.conflicts)),
                ("rebaseable", json!(!comparison.conflicts)),
                (
                    "mergeable_state",
                    json!(if comparison.conflicts {
                        "dirty"
                    } else {
                        "clean"
                    }),
                ),
                ("merged_by", Value::Null),
                ("comments", json!(0)),
                ("review_comments", json!(0)),
                (
                    "maintainer_can_modify",
                    stored["maintainer_can_modify"].clone(),
                ),
                ("commits", json!(comparison.commits)),
                // Line counts would need a diff; the sandbox does not count lines.
                ("additions", json!(0)),
                ("deletions", json!(0)),
                ("changed_files", json!(comparison.changed_files)),
            ] {
                pull[field] = value;
            }
        }
        Ok(pull)
    }

    /// `POST pulls`: a pull request from a branch of the repository into another, refused
    /// in GitHub's validation shape when a branch is missing, `head` brings no commits, or
    /// one is already open between them.
    async fn create_pull(
        &self,
        repo_key: &str,
        repo: &Value,
        caller: Caller,
        body: &[u8],
    ) -> GitHubResult {
        const DOCS: &str = "https://docs.github.com/rest/pulls/pulls#create-a-pull-request";
        let request = parse_json(body, DOCS)?;
        let missing: Vec<Value> = ["head", "base", "title"]
            .iter()
            .filter(|f| !request[**f].is_string())
            .map(|f| json!({"resource": "PullRequest", "code": "missing_field", "field": f}))
            .collect();
        if !missing.is_empty() {
            return Err(validation_failed(json!(missing), DOCS));
        }
        let field_invalid = |field: &str| {
            validation_failed(
                json!([{"resource": "PullRequest", "field": field, "code": "invalid"}]),
                DOCS,
            )
        };
        let custom = |message: String| {
            validation_failed(
                json!([{"resource": "PullRequest", "code": "custom", "message": message}]),
                DOCS,
            )
        };
        let text = |f: &str| request[f].as_str().unwrap_or_default();
        // `owner:branch` names a fork's branch; the sandbox's repositories have no forks.
        let head = match text("head").split_once(':') {
            Some((owner, branch)) if self.is_org(owner) => branch,
            Some(_) => return Err(field_invalid("head")),
            None => text("head"),
        };
        let base = text("base");
        let _git = self.git.lock().await;
        let head_sha = self
            .branch_head(repo_key, head)
            .await?
            .ok_or_else(|| field_invalid("head"))?;
        let base_sha = self
            .branch_head(repo_key, base)
            .await?
            .ok_or_else(|| field_invalid("base"))?;
        if self.compare(repo_key, &base_sha, &head_sha).await?.commits == 0 {
            return Err(custom(format!("No commits between {base} and {head}")));
        }
        let pulls = self.docs.values(API, PULL, &format!("{repo_key}/")).await?;
        if pulls
            .iter()
            .any(|p| p["state"] == "open" && p["head"] == head && p["base"] == base)
        {
            return Err(custom(format!(
                "A pull request already exists for {}:{head}.",
                self.org
            )));
        }
        let number = pulls.len() + 1;
        let stored = json!({
            "number": number, "title": text("title"), "body": request["body"].as_str(), "head": head, "base": base,
            "head_sha": head_sha, "base_sha": base_sha, "state": "open", "draft": request["draft"].as_bool().unwrap_or(false),
            "maintainer_can_modify": request["maintainer_can_modify"].as_bool().unwrap_or(false), "created_at": now_iso(),
            "author": if caller == Caller::Installation { "installation" } else { "admin" },
        });
        self.docs
            .put(API, PULL, &format!("{repo_key}/{number:08}"), &stored)
            .await?;
        let pull = self.pull(repo_key, repo, &stored, true).await?;
        let url = pull["url"].as_str().unwrap_or_default().to_owned();
        Ok(with_location(json_ok(StatusCode::CREATED, pull), &url))
    }

    /// `GET pulls`: newest first unless `direction=asc`, filtered by `state` (default
    /// `open`), `head` (`owner:branch`) and `base`, paged by `per_page` and `page` with a
    /// `Link` header.
    async fn list_pulls(
        &self,
        repo_key: &str,
        repo: &Value,
        query: &[(String, String)],
    ) -> GitHubResult {
        const DOCS: &str = "https://docs.github.com/rest/pulls/pulls#list-pull-requests";
        let state = param(query, "state").unwrap_or("open");
        if !["open", "closed", "all"].contains(&state) {
            return Err(validation_failed(
                json!([{"resource": "PullRequest", "field": "state", "code": "invalid"}]),
                DOCS,
            ));
        }
        let head = param(query, "head").map(|h| match h.split_once(':') {
            Some((owner, branch)) if self.is_org(owner) => Some(branch),
            Some(_) => None,
            None => Some(h),
        });
        let base = param(query, "base");
        let paging = Paging::of(query);
        let mut pulls: Vec<Value> = self
            .docs
            .values(API, PULL, &format!("{repo_key}/"))
            .await?
            .into_iter()
            .filter(|p| state == "all" || p["state"] == state)
            .filter(|p| head.is_none_or(|h| h.is_some_and(|h| p["head"] == h)))
            .filter(|p| base.is_none_or(|b| p["base"] == b))
            .collect();
        if param(query, "direction") != Some("asc") {
            pulls.reverse();
        }
        let mut shown = Vec::new();
        for stored in paging.slice(&pulls) {
            shown.push(self.pull(repo_key, repo, stored, false).await?);
        }
        let url = format!("{}/repos/{}/pulls", self.api(), self.full_name(repo));
        Ok(paging.link(
            json_ok(StatusCode::OK, json!(shown)),
            &url,
            query,
            pulls.len(),
        ))
    }

    /// `GET /user`: a `private-user` for a user's token; integrations have no user.
    async fn authenticated_user(&self, token: &str) -> GitHubResult {
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
        let mut user = self.public_user(&stored);
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

    /// Branch protection of a branch the repository has.
    async fn protection(
        &self,
        method: &Method,
        repo_key: &str,
        repo: &Value,
        branch: &str,
        body: &[u8],
    ) -> GitHubResult {
        const DOCS: &str = "https://docs.github.com/rest/branches/branch-protection";
        if self.branch_head(repo_key, branch).await?.is_none() {
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

    /// `list` is the list's URL and the request's query, for paging.
    async fn secrets(
        &self,
        method: &Method,
        env_key: &str,
        rest: &[&str],
        list: (&str, &[(String, String)]),
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
                let (url, query) = list;
                Ok(Paging::of(query).counted("secrets", &secrets, url, query))
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

    /// `list` is the list's URL and the request's query, for paging.
    async fn variables(
        &self,
        method: &Method,
        env_key: &str,
        rest: &[&str],
        list: (&str, &[(String, String)]),
        body: &[u8],
    ) -> GitHubResult {
        const DOCS: &str = "https://docs.github.com/rest/actions/variables";
        match (rest, method) {
            ([], &Method::GET) => {
                let vars: Vec<Value> = self
                    .docs
                    .values(API, VARIABLE, &format!("{env_key}/"))
                    .await?;
                let (url, query) = list;
                // GitHub pages variables 10 at a time, at most 30.
                Ok(Paging::sized(query, 10, 30).counted("variables", &vars, url, query))
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

/// What Paddock's GitHub provider added to the sandbox: editing a repository and listing
/// and creating deployment branch policies (both in the cut description), and what GitHub
/// has beyond the cut description (see `specs/github/README.md`): team members, deleting
/// a file, a branch, reading and deleting one deployment branch policy.
impl GitHub {
    /// `GET /orgs/{org}/teams/{team_slug}/members`: the team's members (`role`: `all`,
    /// `member` or `maintainer`), paged.
    async fn members(&self, slug: &str, query: &[(String, String)]) -> GitHubResult {
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

    /// `PATCH /repos/{owner}/{repo}` (`repos/update`): description, homepage, visibility
    /// (`private`, or `visibility` with GitHub Enterprise's `internal`), `is_template` and
    /// the `has_issues`/`has_projects`/`has_wiki` switches. What the sandbox cannot do is
    /// refused rather than ignored: a rename (it keys everything of a repository by its
    /// name), another default branch, archiving. The merge and security settings GitHub
    /// also takes are accepted and not kept (the sandbox merges nothing).
    async fn update_repo(&self, key: &str, mut stored: Value, body: &[u8]) -> GitHubResult {
        const DOCS: &str = "https://docs.github.com/rest/repos/repos#update-a-repository";
        let request = parse_json(body, DOCS)?;
        let refuse = |field: &str, message: &str| {
            validation_failed(
                json!([{"resource": "Repository", "code": "custom", "field": field, "message": message}]),
                DOCS,
            )
        };
        if let Some(name) = request.get("name") {
            let current = stored["name"].as_str().unwrap_or_default();
            if !name
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(current))
            {
                return Err(refuse("name", "the sandbox does not rename repositories"));
            }
        }
        for field in ["description", "homepage"] {
            match request.get(field) {
                Some(v @ (Value::String(_) | Value::Null)) => stored[field] = v.clone(),
                Some(_) => return Err(refuse(field, &format!("{field} must be a string"))),
                None => {}
            }
        }
        let visibility = match (request.get("visibility"), request.get("private")) {
            (Some(Value::String(v)), _)
                if ["public", "private", "internal"].contains(&v.as_str()) =>
            {
                Some(v.as_str())
            }
            (Some(_), _) => {
                return Err(refuse(
                    "visibility",
                    "visibility must be public, private or internal",
                ));
            }
            (None, Some(Value::Bool(private))) => Some(if *private { "private" } else { "public" }),
            (None, Some(_)) => return Err(refuse("private", "private must be a boolean")),
            (None, None) => None,
        };
        if let Some(v) = visibility {
            stored["visibility"] = json!(v);
            stored["private"] = json!(v != "public");
        }
        if let Some(branch) = request.get("default_branch")
            && branch != DEFAULT_BRANCH
        {
            return Err(refuse(
                "default_branch",
                &format!("the sandbox's default branch is always {DEFAULT_BRANCH}"),
            ));
        }
        if request["archived"] == json!(true) {
            return Err(refuse(
                "archived",
                "the sandbox does not archive repositories",
            ));
        }
        for field in ["is_template", "has_issues", "has_projects", "has_wiki"] {
            match request.get(field) {
                Some(v @ Value::Bool(_)) => stored[field] = v.clone(),
                Some(_) => return Err(refuse(field, &format!("{field} must be a boolean"))),
                None => {}
            }
        }
        stored["updated_at"] = json!(now_iso());
        stored["updated_ms"] = json!(now_ms());
        self.docs.put(API, REPO, key, &stored).await?;
        Ok(json_ok(StatusCode::OK, self.repository(&stored)))
    }

    /// `DELETE contents/{path}`: a commit on `branch` (the default branch unless named)
    /// whose tree no longer has the file; `sha` must be the file's current blob.
    async fn delete_file(
        &self,
        repo_key: &str,
        repo: &Value,
        path: &str,
        body: &[u8],
    ) -> GitHubResult {
        const DOCS: &str = "https://docs.github.com/rest/repos/contents#delete-a-file";
        let request: Value = parse_json(body, DOCS)?;
        let unsupplied = |field: &str| {
            error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("Invalid request.\n\n\"{field}\" wasn't supplied."),
                DOCS,
            )
        };
        let message = request["message"]
            .as_str()
            .ok_or_else(|| unsupplied("message"))?;
        let given = request["sha"].as_str().ok_or_else(|| unsupplied("sha"))?;
        let branch = request["branch"].as_str().unwrap_or(DEFAULT_BRANCH);
        let _git = self.git.lock().await;
        let head = self.branch_head(repo_key, branch).await?.ok_or_else(|| {
            error(
                StatusCode::NOT_FOUND,
                format!("Branch {branch} not found"),
                DOCS,
            )
        })?;
        let parent = self
            .commit(repo_key, &head)
            .await?
            .ok_or_else(|| not_found(DOCS))?;
        let mut tree = parent["tree"].as_object().cloned().unwrap_or_default();
        match tree.get(path).and_then(Value::as_str) {
            None => return Err(not_found(DOCS)),
            Some(old) if old != given => {
                return Err(error(
                    StatusCode::CONFLICT,
                    format!("{path} does not match {given}"),
                    DOCS,
                ));
            }
            Some(_) => {}
        }
        tree.remove(path);
        let committer = request.get("committer").unwrap_or(&Value::Null);
        let commit = self
            .write_commit(repo_key, Some(&head), &tree, message, committer)
            .await?;
        self.docs
            .put(
                API,
                REF,
                &format!("{repo_key}/heads/{branch}"),
                &json!({"sha": commit["sha"]}),
            )
            .await?;
        Ok(json_ok(
            StatusCode::OK,
            json!({"content": null, "commit": self.commit_json(&self.full_name(repo), &commit)}),
        ))
    }

    /// `GET /repos/{owner}/{repo}/branches/{branch}`: 404 until the branch exists (a
    /// repository generated from a template has none until its files are copied).
    async fn branch(&self, repo_key: &str, repo: &Value, branch: &str) -> GitHubResult {
        const DOCS: &str = "https://docs.github.com/rest/branches/branches#get-a-branch";
        let Some(sha) = self.branch_head(repo_key, branch).await? else {
            return Err(error(StatusCode::NOT_FOUND, "Branch not found", DOCS));
        };
        let commit = self
            .commit(repo_key, &sha)
            .await?
            .ok_or_else(|| not_found(DOCS))?;
        let full = self.full_name(repo);
        let api = format!("{}/repos/{full}", self.api());
        let git = self.commit_json(&full, &commit);
        let protected = self
            .docs
            .get(API, PROTECTION, &format!("{repo_key}/{branch}"))
            .await?
            .is_some();
        let protection_url = format!("{api}/branches/{branch}/protection");
        Ok(json_ok(
            StatusCode::OK,
            json!({
                "name": branch,
                "commit": {
                    "sha": sha, "node_id": git["node_id"], "url": format!("{api}/commits/{sha}"),
                    "html_url": git["html_url"], "comments_url": format!("{api}/commits/{sha}/comments"),
                    "commit": {"url": git["url"], "author": git["author"], "committer": git["committer"], "message": git["message"], "comment_count": 0, "tree": git["tree"], "verification": git["verification"]},
                    "author": null, "committer": null, "parents": git["parents"],
                },
                "_links": {"self": format!("{api}/branches/{branch}"), "html": format!("{}/{full}/tree/{branch}", self.base_url)},
                "protected": protected,
                "protection": {"enabled": protected},
                "protection_url": protection_url,
            }),
        ))
    }

    /// Custom deployment branch policies of an environment whose
    /// `deployment_branch_policy.custom_branch_policies` is true (404 otherwise): listed
    /// (paged), created (200; a pattern the environment has is answered with a `303` to
    /// it), read and deleted by id.
    async fn branch_policies(
        &self,
        method: &Method,
        env_key: &str,
        environment: &Value,
        rest: &[&str],
        query: &[(String, String)],
        body: &[u8],
    ) -> GitHubResult {
        const DOCS: &str = "https://docs.github.com/rest/deployments/branch-policies";
        if environment["deployment_branch_policy"]["custom_branch_policies"] != json!(true) {
            return Err(not_found(DOCS));
        }
        let url = |id: i64| {
            format!(
                "{}/deployment-branch-policies/{id}",
                environment["url"].as_str().unwrap_or_default()
            )
        };
        let policies = self
            .docs
            .values(API, BRANCH_POLICY, &format!("{env_key}/"))
            .await?;
        let by_id = |id: &str| {
            policies
                .iter()
                .find(|p| p["id"].as_i64() == id.parse().ok())
                .cloned()
                .ok_or_else(|| not_found(DOCS))
        };
        match (rest, method) {
            ([], &Method::GET) => {
                let url = format!(
                    "{}/deployment-branch-policies",
                    environment["url"].as_str().unwrap_or_default()
                );
                Ok(Paging::of(query).counted("branch_policies", &policies, &url, query))
            }
            ([], &Method::POST) => {
                let request = parse_json(body, DOCS)?;
                let name = request["name"].as_str().filter(|n| !n.is_empty());
                let kind = request["type"].as_str().unwrap_or("branch");
                let (Some(name), true) = (name, ["branch", "tag"].contains(&kind)) else {
                    return Err(invalid(
                        "Validation Failed",
                        "DeploymentBranchPolicy",
                        "name",
                        "name is required and type must be branch or tag",
                        DOCS,
                    ));
                };
                let key = format!("{env_key}/{kind}:{name}");
                let id = numeric_id(&key);
                let policy =
                    json!({"id": id, "node_id": format!("DBP_{id}"), "name": name, "type": kind});
                if !self
                    .docs
                    .insert_new(API, BRANCH_POLICY, &key, &policy)
                    .await?
                {
                    // GitHub answers a pattern it has with a redirect to it.
                    let response = StatusCode::SEE_OTHER.into_response();
                    return Ok(with_location(response, &url(id)));
                }
                Ok(json_ok(StatusCode::OK, policy))
            }
            ([id], &Method::GET) => Ok(json_ok(StatusCode::OK, by_id(id)?)),
            ([id], &Method::DELETE) => {
                let policy = by_id(id)?;
                let key = format!(
                    "{env_key}/{}:{}",
                    policy["type"].as_str().unwrap_or("branch"),
                    policy["name"].as_str().unwrap_or_default()
                );
                self.docs.delete(API, BRANCH_POLICY, &key).await?;
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            _ => Err(not_found(DOCS)),
        }
    }
}

/// A team's `description`, `privacy` (`secret` or `closed`) and `notification_setting`
/// from a create or edit request, each kept unless the request names it.
fn team_settings(request: &Value, stored: &mut Value) -> Result<(), GitHubError> {
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
