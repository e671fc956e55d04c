//! The web side of the sandbox's GitHub, where the `html_url`, `download_url`,
//! `avatar_url`, `diff_url` and `patch_url` it returns lead: on the web host, next to the
//! API, as GitHub Enterprise Server lays them out (`{base}/{owner}/{repo}`,
//! `{base}/{owner}/{repo}/blob/{ref}/{path}`…). The sandbox has no web interface: each
//! page names what it shows and links to it in the API; `raw/` serves a file's bytes,
//! `.diff` and `.patch` plain text, `avatars/` a picture. A private repository's pages
//! need a token of the API (`Authorization`), as `raw` does on GitHub; otherwise 404.
//!
//! Served as a layer over the sandbox's HTTP router: a path that names nothing of GitHub's
//! passes on, so ARM and the identity endpoints at the same root are untouched.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

use crate::percent_decode;

use super::errors::GitHubError;
use super::{API, BLOB, GitHub, INSTALLATION_ID, PULL, REPO, ROOT, TEAM};

/// First segments of the root's other APIs (ARM, Kubernetes, Graph, the Actions
/// issuer), never taken for a GitHub login.
const OTHER_APIS: &[&str] = &[
    "subscriptions",
    "providers",
    "tenants",
    "metadata",
    "kubernetes",
    "graph",
    "github-actions",
];

pub(crate) async fn pages(State(gh): State<Arc<GitHub>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if !matches!(*request.method(), Method::GET | Method::HEAD)
        || path.starts_with(ROOT)
        || path.starts_with("/login/")
    {
        return next.run(request).await;
    }
    let segments: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let token = super::bearer(request.headers());
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match gh.page(&segments, &token).await {
        Ok(Some(page)) => page,
        Ok(None) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A page naming `title`, linking to `api_url`.
fn page(title: &str, api_url: &str) -> Option<Response> {
    let (title, api_url) = (escape(title), escape(api_url));
    Some(Html(format!(
        "<!doctype html><html><head><title>{title} · GitHub (Paddock sandbox)</title></head><body><h1>{title}</h1>\
         <p>The sandbox's GitHub has no web interface. In its API: <a href=\"{api_url}\">{api_url}</a></p></body></html>"
    )).into_response())
}

fn not_found() -> Option<Response> {
    Some(
        (
            StatusCode::NOT_FOUND,
            Html("<!doctype html><html><body><h1>404</h1><p>This is not the web page you are looking for.</p></body></html>"),
        )
            .into_response(),
    )
}

fn text(kind: &'static str, body: Vec<u8>) -> Option<Response> {
    let mut response = (StatusCode::OK, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    Some(response)
}

impl GitHub {
    /// The page at `segments`, `None` when the path is not GitHub's.
    async fn page(&self, segments: &[&str], token: &str) -> Result<Option<Response>, GitHubError> {
        let api = self.api();
        Ok(match segments {
            ["avatars", login] => match self.known_user(login).await? {
                Some(_) => {
                    let initial = escape(
                        &login
                            .chars()
                            .next()
                            .unwrap_or('?')
                            .to_uppercase()
                            .to_string(),
                    );
                    let svg = format!(
                        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"64\" height=\"64\"><rect width=\"64\" height=\"64\" fill=\"#6e7781\"/><text x=\"32\" y=\"42\" font-size=\"32\" text-anchor=\"middle\" fill=\"#fff\">{initial}</text></svg>"
                    );
                    text("image/svg+xml", svg.into_bytes())
                }
                None => not_found(),
            },
            ["apps", "paddock"] => page("The Paddock app", &format!("{api}/app")),
            ["orgs", org, "teams", slug] if self.is_org(org) => {
                match self.docs.get(API, TEAM, slug).await? {
                    Some(team) => page(
                        &format!("{org}/{}", team["name"].as_str().unwrap_or(slug)),
                        &format!("{api}/orgs/{org}/teams/{slug}"),
                    ),
                    None => not_found(),
                }
            }
            ["organizations", org, "settings", "installations", id] if self.is_org(org) => {
                match *id == INSTALLATION_ID.to_string() {
                    true => page(
                        "The Paddock app's installation",
                        &format!("{api}/orgs/{org}/installation"),
                    ),
                    false => not_found(),
                }
            }
            [org, repo, rest @ ..] if self.is_org(org) => {
                let name = repo.strip_suffix(".git").unwrap_or(repo);
                let key = name.to_lowercase();
                match self.docs.get(API, REPO, &key).await? {
                    Some(stored) if stored["private"] != true || self.token_ok(token).await? => {
                        self.repo_page(&key, &stored, rest).await?
                    }
                    _ => not_found(),
                }
            }
            [login] if !OTHER_APIS.contains(login) => match self.known_user(login).await? {
                Some(user) => page(login, user["url"].as_str().unwrap_or_default()),
                None => None,
            },
            _ => None,
        })
    }

    async fn repo_page(
        &self,
        key: &str,
        repo: &Value,
        rest: &[&str],
    ) -> Result<Option<Response>, GitHubError> {
        let full = self.full_name(repo);
        let api = format!("{}/repos/{full}", self.api());
        Ok(match rest {
            [] => page(&full, &api),
            [kind @ ("blob" | "raw"), at @ ..] => {
                // A ref may have slashes: the longest one that resolves leaves the path.
                for split in (1..at.len()).rev() {
                    let (reference, path) = (at[..split].join("/"), at[split..].join("/"));
                    let Some(sha) = self.resolve(key, &reference).await? else {
                        continue;
                    };
                    let commit = self.commit(key, &sha).await?.unwrap_or_default();
                    let Some(blob_sha) = commit["tree"][&path].as_str() else {
                        return Ok(not_found());
                    };
                    if *kind == "blob" {
                        return Ok(page(
                            &format!("{full}/{path} at {reference}"),
                            &format!("{api}/contents/{path}?ref={reference}"),
                        ));
                    }
                    let blob = self
                        .docs
                        .get(API, BLOB, &format!("{key}/{blob_sha}"))
                        .await?;
                    let bytes = blob
                        .and_then(|b| B64.decode(b["content"].as_str().unwrap_or_default()).ok())
                        .unwrap_or_default();
                    return Ok(text("text/plain; charset=utf-8", bytes));
                }
                not_found()
            }
            ["tree", branch @ ..] => match self.resolve(key, &branch.join("/")).await? {
                Some(_) => page(
                    &format!("{full} at {}", branch.join("/")),
                    &format!("{api}/branches/{}", branch.join("/")),
                ),
                None => not_found(),
            },
            ["commit", sha] => match self.commit(key, sha).await? {
                Some(_) => page(&format!("{full}@{sha}"), &format!("{api}/commits/{sha}")),
                None => not_found(),
            },
            ["pull", n] => {
                let (number, suffix) = n.split_once('.').unwrap_or((n, ""));
                let exists = match number.parse::<u64>() {
                    Ok(n) => self
                        .docs
                        .get(API, PULL, &format!("{key}/{n:08}"))
                        .await?
                        .is_some(),
                    Err(_) => false,
                };
                match (exists, suffix) {
                    (true, "") => page(
                        &format!("{full}#{number}"),
                        &format!("{api}/pulls/{number}"),
                    ),
                    // The sandbox keeps no line diffs: the text names the pull request.
                    (true, "diff" | "patch") => text(
                        "text/plain; charset=utf-8",
                        format!("{full}#{number}\n").into_bytes(),
                    ),
                    _ => not_found(),
                }
            }
            ["compare", spec @ ..] => {
                let spec = spec.join("/");
                match spec.rsplit_once('.') {
                    Some((_, "diff" | "patch")) => text(
                        "text/plain; charset=utf-8",
                        format!("{full} {spec}\n").into_bytes(),
                    ),
                    _ => page(&format!("{full}: {spec}"), &format!("{api}/compare/{spec}")),
                }
            }
            ["deployments", "activity_log"] => page(
                &format!("{full}: deployments"),
                &format!("{api}/environments"),
            ),
            _ => not_found(),
        })
    }
}
