//! GitHub: teams and memberships, repositories (from a template too) and their files,
//! team permissions, branch protection, deployment environments with their secrets and
//! variables, repository variables, over GitHub's REST API (github.com or GitHub Enterprise, whose API root ends
//! in `/api/v3`).
//!
//! Job: the `github` provider, over the shared HTTP layer ([`crate::http`]): a token or a
//! GitHub App installation, retries, GitHub's pacing.
//!
//! Invariants:
//! - An id is the object's natural key within the organization: a team's slug, a
//!   repository's name, `repository/branch`, `repository/environment/name`… so `read`
//!   works from an id alone (`paddock import`), and `find` (and a create that meets "already
//!   exists") adopts what a retried or crashed create made instead of duplicating it.
//! - `read` rebuilds the inputs from GitHub, shaped like the recorded ones (a property a
//!   blueprint left out is reported only if GitHub's value differs from its default; lists
//!   keep the recorded order), so a refresh reports only real drift.
//! - `delete` of something gone succeeds.
//!
//! Must not: log or return a secret's value (it is sealed for the environment's key
//! before it leaves the process, and never read back).

mod branch_protection;
mod environment;
mod file;
mod repository;
mod secrets;
mod team;
mod team_membership;
mod team_repository;
mod variables;

use std::sync::Arc;
use std::time::Duration;

use paddock_engine::provider::{PropertySchema, ResourceRef};
use paddock_engine::{Props, ProviderError, Value};
use serde_json::Value as Json;

use crate::family::{Family, PropsExt};
use crate::http::auth::{Credential, GitHubApp, StaticToken};
use crate::http::{Api, Call, HttpClient, HttpError, reqwest_client};
use crate::ownership::{Mark, Place};

/// How to reach an organization.
#[derive(Clone, Debug)]
pub struct GitHubConfig {
    /// The REST API root: `https://api.github.com`, or `https://HOST/api/v3`.
    pub api_url: String,
    pub org: String,
    pub auth: GitHubAuth,
    /// A CA to trust besides the system's (the sandbox's), PEM.
    pub ca_pem: Option<Vec<u8>>,
    /// How long a repository generated from a template may take to get its files.
    pub template_wait: Duration,
}

#[derive(Clone)]
pub enum GitHubAuth {
    /// A token with admin rights on the organization.
    Token(String),
    /// A GitHub App installed on the organization.
    App {
        app_id: String,
        installation_id: String,
        private_key_pem: String,
    },
}

impl std::fmt::Debug for GitHubAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GitHubAuth::Token(_) => f.write_str("Token([redacted])"),
            GitHubAuth::App {
                app_id,
                installation_id,
                ..
            } => write!(
                f,
                "App {{ app_id: {app_id}, installation_id: {installation_id} }}"
            ),
        }
    }
}

/// The `github` provider for the organization `config` names.
pub fn provider(config: &GitHubConfig) -> Result<Family, HttpError> {
    let inner = reqwest_client(config.ca_pem.as_deref(), None)?;
    let credential: Arc<dyn Credential> = match &config.auth {
        GitHubAuth::Token(token) => Arc::new(StaticToken::bearer(token)),
        GitHubAuth::App {
            app_id,
            installation_id,
            private_key_pem,
        } => Arc::new(GitHubApp::new(
            &config.api_url,
            app_id,
            installation_id,
            private_key_pem,
        )?),
    };
    let gh = Arc::new(GitHub {
        http: HttpClient::new(inner, Api::GitHub, config.api_url.clone(), credential),
        org: config.org.clone(),
        template_wait: config.template_wait,
    });
    Ok(Family::new(
        "github",
        vec![
            Box::new(team::Team(gh.clone())),
            Box::new(team_membership::TeamMembership(gh.clone())),
            Box::new(repository::Repository(gh.clone())),
            Box::new(file::File(gh.clone())),
            Box::new(team_repository::TeamRepository(gh.clone())),
            Box::new(branch_protection::BranchProtection(gh.clone())),
            Box::new(environment::Environment(gh.clone())),
            Box::new(secrets::EnvironmentSecret(gh.clone())),
            Box::new(variables::environment(gh.clone())),
            Box::new(variables::repository(gh)),
        ],
    ))
}

/// What the resource types share: the client and the organization.
pub(crate) struct GitHub {
    http: HttpClient,
    org: String,
    template_wait: Duration,
}

/// Pages followed at most when listing (100 items each).
const MAX_PAGES: usize = 100;

impl GitHub {
    /// `/orgs/{org}` followed by `rest`.
    /// Where an object of the organization is, for a conflict.
    fn place(&self, ty: &str, name: String, id: String) -> Place {
        Place {
            ty: ty.into(),
            name,
            location: format!("organization `{}`", self.org),
            id,
        }
    }

    fn org_path(&self, rest: &str) -> String {
        format!("/orgs/{}{rest}", seg(&self.org))
    }

    /// `/repos/{org}/{repo}` followed by `rest`.
    fn repo_path(&self, repo: &str, rest: &str) -> String {
        format!("/repos/{}/{}{rest}", seg(&self.org), seg(repo))
    }

    async fn send(&self, call: Call) -> Result<Json, HttpError> {
        Ok(self.http.send(call).await?.body)
    }

    /// Every item of a list, following the `Link: <…>; rel="next"` pages; `field` names
    /// the array in an object-shaped answer (`{"total_count": …, "secrets": […]}`).
    async fn list_all(&self, call: Call, field: Option<&str>) -> Result<Vec<Json>, HttpError> {
        let template = call.template;
        let mut call = call.query("per_page", "100");
        let mut items = Vec::new();
        for _ in 0..MAX_PAGES {
            let reply = self.http.send(call).await?;
            let page = match field {
                Some(f) => &reply.body[f],
                None => &reply.body,
            };
            items.extend(page.as_array().cloned().unwrap_or_default());
            match reply.header("link").and_then(next_link) {
                Some(url) => call = Call::get(template, url),
                None => break,
            }
        }
        Ok(items)
    }
}

/// The `rel="next"` URL of a `Link` header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == "rel=\"next\"")
            .then(|| {
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_owned()
            })
    })
}

/// A path segment, percent-encoded: environment names may hold spaces, branch names `/`.
pub(crate) fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A GitHub failure as a provider error: GitHub's code kept; `hint` added unless the
/// shared hints (credentials, permissions, throttling) already say what to do.
/// A team's or a repository's description: the user's, then `r`'s mark (GitHub has no
/// tags; topics cannot spell a stack's name).
pub(crate) fn marked_description(inputs: &Props, r: &ResourceRef<'_>) -> String {
    Mark::of(r).append_to(inputs.opt_text("description").as_deref())
}

pub(crate) fn github_error(e: HttpError, hint: impl Into<String>) -> ProviderError {
    let mut error = ProviderError::from(e);
    if error.hint.is_none() {
        error.hint = Some(hint.into());
    }
    error
}

/// A failure without a hint of its own.
pub(crate) fn plain(e: HttpError) -> ProviderError {
    ProviderError::from(e)
}

/// Whether GitHub refused a create because the object exists: `422` with "already
/// exists" or a uniqueness message (repositories, teams), or `409` (variables).
pub(crate) fn already_exists(e: &HttpError) -> bool {
    match e.status() {
        Some(409) => true,
        Some(422) => {
            let text = format!("{} {}", e.code(), e.message()).to_lowercase();
            text.contains("already exists")
                || text.contains("already_exists")
                || text.contains("must be unique")
        }
        _ => false,
    }
}

/// An id made of `N` non-empty segments separated by `/`; the last one may itself hold
/// `/` (a branch or environment name).
pub(crate) fn split_id<'a, const N: usize>(
    ty: &str,
    id: &'a str,
    shape: &str,
) -> Result<[&'a str; N], ProviderError> {
    let split: Vec<&str> = id.splitn(N, '/').collect();
    match <[&str; N]>::try_from(split) {
        Ok(parts) if parts.iter().all(|s| !s.is_empty()) => Ok(parts),
        _ => Err(ProviderError::new(
            "InvalidId",
            format!("`{id}` is not an id of `{ty}`: expected `{shape}`"),
        )),
    }
}

pub(crate) fn input_error(message: impl Into<String>) -> ProviderError {
    ProviderError::new("InvalidInput", message)
}

/// An `int` input, or its default.
pub(crate) fn int_or(props: &Props, name: &str, default: i64) -> i64 {
    props.get(name).and_then(Value::as_i64).unwrap_or(default)
}

pub(crate) fn string_list(items: Vec<String>) -> Value {
    Value::List(items.into_iter().map(Value::String).collect())
}

/// `s`, or `prior` if it names the same thing (GitHub's names and logins are
/// case-insensitive; the blueprint's spelling is kept).
pub(crate) fn spelled(prior: Option<String>, actual: &str) -> String {
    match prior {
        Some(p) if p.eq_ignore_ascii_case(actual) => p,
        _ => actual.to_owned(),
    }
}

/// Inputs read back from GitHub, shaped like the recorded ones so that a refresh reports
/// only real drift and an import records what matters: a property is reported when the
/// recorded inputs have it, or when GitHub's value differs from its default.
pub(crate) struct ReadBack<'a> {
    prior: &'a Props,
    props: Props,
}

impl<'a> ReadBack<'a> {
    pub(crate) fn new(prior: &'a Props) -> ReadBack<'a> {
        ReadBack {
            prior,
            props: Props::new(),
        }
    }

    pub(crate) fn set(&mut self, name: &str, value: impl Into<Value>) {
        self.props.insert(name.to_owned(), value.into());
    }

    pub(crate) fn unless_default(
        &mut self,
        name: &str,
        value: impl Into<Value>,
        default: impl Into<Value>,
    ) {
        let value = value.into();
        if self.prior.contains_key(name) || value != default.into() {
            self.set(name, value);
        }
    }

    /// A list of names (logins, slugs, patterns): in the recorded order and spelling for
    /// those GitHub has, then the rest sorted; reported if recorded or not empty.
    pub(crate) fn names(&mut self, name: &str, actual: Vec<String>) {
        let recorded = crate::family::PropsExt::strings(self.prior, name);
        let lower: Vec<String> = actual.iter().map(|a| a.to_lowercase()).collect();
        let mut out: Vec<String> = Vec::new();
        for r in &recorded {
            if lower.contains(&r.to_lowercase()) && !out.iter().any(|o| o.eq_ignore_ascii_case(r)) {
                out.push(r.clone());
            }
        }
        let mut rest: Vec<String> = actual
            .into_iter()
            .filter(|a| !out.iter().any(|o| o.eq_ignore_ascii_case(a)))
            .collect();
        rest.sort();
        out.extend(rest);
        if self.prior.contains_key(name) || !out.is_empty() {
            self.set(name, string_list(out));
        }
    }

    pub(crate) fn done(self) -> Props {
        self.props
    }
}

/// A schema property with its description.
pub(crate) fn prop(
    name: &str,
    ty: paddock_engine::provider::PropertyType,
    description: &str,
) -> PropertySchema {
    PropertySchema::new(name, ty).describe(description)
}

/// A JSON string field, or "".
pub(crate) fn text(v: &Json) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_are_found_among_the_others() {
        let header = r#"<https://api.github.com/orgs/o/teams?page=3>; rel="next", <https://api.github.com/orgs/o/teams?page=9>; rel="last""#;
        assert_eq!(
            next_link(header).as_deref(),
            Some("https://api.github.com/orgs/o/teams?page=3")
        );
        assert_eq!(next_link(r#"<https://x/?page=1>; rel="prev""#), None);
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(seg("release/v1 beta"), "release%2Fv1%20beta");
        assert_eq!(seg("my-repo_1.x"), "my-repo_1.x");
    }

    #[test]
    fn read_back_keeps_the_recorded_order_and_spelling() {
        let prior: Props = [(
            "members".to_owned(),
            string_list(vec!["Grace".into(), "ada".into(), "gone".into()]),
        )]
        .into_iter()
        .collect();
        let mut read = ReadBack::new(&prior);
        read.names(
            "members",
            vec!["linus".into(), "ada".into(), "grace".into(), "alan".into()],
        );
        read.names("maintainers", Vec::new());
        read.unless_default("privacy", "closed", "closed");
        read.unless_default("waitTimer", 5, 0);
        let props = read.done();
        assert_eq!(
            props.get("members"),
            Some(&string_list(vec![
                "Grace".into(),
                "ada".into(),
                "alan".into(),
                "linus".into()
            ]))
        );
        assert!(!props.contains_key("maintainers"));
        assert!(!props.contains_key("privacy"));
        assert_eq!(props.get("waitTimer"), Some(&Value::Int(5)));
    }
}
