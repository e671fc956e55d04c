//! What the `*_url` fields of the sandbox's users, organization and repositories lead to,
//! so that every URL it returns is served. Most name things the sandbox has none of
//! (events, hooks, issues' labels, releases, stars…): those are empty lists, as on a
//! GitHub account or repository that has none. The rest are derived from what the sandbox
//! keeps: members, collaborators (through teams), teams, branches, tags, commits, pull
//! requests (which GitHub also lists as issues), git objects.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::errors::{GitHubError, GitHubResult, not_found};
use super::paging::Paging;
use super::{ADMIN_LOGIN, API, GitHub, MEMBERSHIP, PULL, REPO, TEAM_REPO, json_ok};

const DOCS: &str = "https://docs.github.com/rest";

/// Lists of a repository the sandbox has nothing in.
const EMPTY_REPO_LISTS: &[&str] = &[
    "comments",
    "contributors",
    "deployments",
    "downloads",
    "events",
    "forks",
    "hooks",
    "keys",
    "labels",
    "milestones",
    "notifications",
    "releases",
    "stargazers",
];

fn no_content() -> GitHubResult {
    Ok(StatusCode::NO_CONTENT.into_response())
}

impl GitHub {
    /// `GET /users/{login}/…`: the organizations a member belongs to, the organization's
    /// repositories; nothing else (followers, gists, stars, events…).
    pub(super) async fn user_link(
        &self,
        user: &Value,
        rest: &[&str],
        query: &[(String, String)],
    ) -> GitHubResult {
        let login = user["login"].as_str().unwrap_or_default();
        let url = format!("{}/users/{login}/{}", self.api(), rest.join("/"));
        let items = match rest {
            ["orgs"] => {
                let members = self.org_members().await?;
                if members.iter().any(|m| m["login"] == login) {
                    vec![self.organization_simple()]
                } else {
                    Vec::new()
                }
            }
            ["repos"] if self.is_org(login) => self.all_repositories().await?,
            [
                "followers" | "following" | "gists" | "starred" | "subscriptions" | "repos"
                | "events" | "received_events",
            ]
            | ["events" | "received_events", "public"] => Vec::new(),
            _ => return Err(not_found(DOCS)),
        };
        Ok(Paging::of(query).array(&items, &url, query))
    }

    /// `GET /orgs/{org}/…`: its members (and whether one is), and its events, hooks,
    /// issues and public members, of which the sandbox has none.
    pub(super) async fn org_link(&self, rest: &[&str], query: &[(String, String)]) -> GitHubResult {
        let url = format!("{}/orgs/{}/{}", self.api(), self.org, rest.join("/"));
        let items = match rest {
            ["members"] => self.org_members().await?,
            ["members", login] => {
                let members = self.org_members().await?;
                return match members.iter().any(|m| {
                    m["login"]
                        .as_str()
                        .is_some_and(|l| l.eq_ignore_ascii_case(login))
                }) {
                    true => no_content(),
                    false => Err(not_found(DOCS)),
                };
            }
            ["events" | "hooks" | "issues" | "public_members"] => Vec::new(),
            _ => return Err(not_found(DOCS)),
        };
        Ok(Paging::of(query).array(&items, &url, query))
    }

    /// `GET /installation/repositories`: every repository, as the app is installed on
    /// all of the organization's.
    pub(super) async fn installation_repositories(
        &self,
        query: &[(String, String)],
    ) -> GitHubResult {
        let repos = self.all_repositories().await?;
        let url = format!("{}/installation/repositories", self.api());
        let paging = Paging::of(query);
        let body = json!({"total_count": repos.len(), "repository_selection": "all", "repositories": paging.slice(&repos)});
        Ok(paging.link(json_ok(StatusCode::OK, body), &url, query, repos.len()))
    }

    /// An organization as a `organization-simple`.
    fn organization_simple(&self) -> Value {
        let mut org = self.organization();
        let fields = [
            "login",
            "id",
            "node_id",
            "url",
            "repos_url",
            "events_url",
            "hooks_url",
            "issues_url",
            "members_url",
            "public_members_url",
            "avatar_url",
            "description",
        ];
        if let Some(map) = org.as_object_mut() {
            map.retain(|k, _| fields.contains(&k.as_str()));
        }
        org
    }

    async fn all_repositories(&self) -> Result<Vec<Value>, GitHubError> {
        Ok(self
            .docs
            .values(API, REPO, "")
            .await?
            .iter()
            .map(|stored| self.repository(stored))
            .collect())
    }

    /// The repository's collaborators: the org admin, and the members of the teams with a
    /// permission on it (the highest of their teams' permissions).
    async fn collaborators(&self, repo_key: &str) -> Result<Vec<Value>, GitHubError> {
        const LEVELS: [&str; 5] = ["pull", "triage", "push", "maintain", "admin"];
        let mut best: Vec<(String, usize)> = vec![(ADMIN_LOGIN.to_owned(), 4)];
        for (key, grant) in self.docs.list(API, TEAM_REPO, "").await? {
            let Some(slug) = key.strip_suffix(&format!("/{repo_key}")) else {
                continue;
            };
            let level = LEVELS
                .iter()
                .position(|p| grant["permission"] == *p)
                .unwrap_or(0);
            for (member, _) in self.docs.list(API, MEMBERSHIP, &format!("{slug}/")).await? {
                let login = member.rsplit('/').next().unwrap_or_default().to_owned();
                match best
                    .iter_mut()
                    .find(|(l, _)| l.eq_ignore_ascii_case(&login))
                {
                    Some((_, at)) => *at = (*at).max(level),
                    None => best.push((login, level)),
                }
            }
        }
        let mut collaborators = Vec::new();
        for (login, level) in best {
            let Some(user) = self.known_user(&login).await? else {
                continue;
            };
            let mut c = self.simple_user(&login, user["id"].as_i64().unwrap_or_default(), "User");
            c["permissions"] = json!({"pull": true, "triage": level >= 1, "push": level >= 2, "maintain": level >= 3, "admin": level >= 4});
            c["role_name"] = json!(LEVELS[level]);
            collaborators.push(c);
        }
        Ok(collaborators)
    }

    /// A pull request as GitHub lists it among issues.
    async fn pull_issue(
        &self,
        repo_key: &str,
        repo: &Value,
        stored: &Value,
    ) -> Result<Value, GitHubError> {
        let pull = self.pull(repo_key, repo, stored, false).await?;
        let n = pull["number"].clone();
        let api = format!("{}/repos/{}", self.api(), self.full_name(repo));
        let issue = format!("{api}/issues/{n}");
        Ok(json!({
            "id": pull["id"], "node_id": pull["node_id"], "url": issue, "repository_url": api,
            "labels_url": format!("{issue}/labels{{/name}}"), "comments_url": format!("{issue}/comments"),
            "events_url": format!("{issue}/events"), "html_url": pull["html_url"], "number": n,
            "state": pull["state"], "title": pull["title"], "body": pull["body"], "user": pull["user"],
            "labels": [], "assignee": null, "assignees": [], "milestone": null, "locked": false,
            "active_lock_reason": null, "comments": 0, "closed_at": null, "created_at": pull["created_at"],
            "updated_at": pull["updated_at"], "author_association": pull["author_association"], "draft": pull["draft"],
            "pull_request": {"url": pull["url"], "html_url": pull["html_url"], "diff_url": pull["diff_url"], "patch_url": pull["patch_url"], "merged_at": null},
        }))
    }

    async fn stored_pull(&self, repo_key: &str, number: &str) -> Result<Value, GitHubError> {
        let n: u64 = number.parse().map_err(|_| not_found(DOCS))?;
        self.docs
            .get(API, PULL, &format!("{repo_key}/{n:08}"))
            .await?
            .ok_or_else(|| not_found(DOCS))
    }

    /// `GET /repos/{owner}/{repo}/…` beyond what Paddock's provider uses: what the
    /// repository's links lead to.
    pub(super) async fn repo_link(
        &self,
        repo_key: &str,
        repo: &Value,
        rest: &[&str],
        query: &[(String, String)],
    ) -> GitHubResult {
        let api = format!("{}/repos/{}", self.api(), self.full_name(repo));
        let url = format!("{api}/{}", rest.join("/"));
        let list = |items: Vec<Value>| Ok(Paging::of(query).array(&items, &url, query));
        let is_one_of = |people: &[Value], login: &str| {
            people.iter().any(|p| {
                p["login"]
                    .as_str()
                    .is_some_and(|l| l.eq_ignore_ascii_case(login))
            })
        };
        match rest {
            [kind] if EMPTY_REPO_LISTS.contains(kind) => list(Vec::new()),
            ["issues" | "pulls", "comments" | "events"] => list(Vec::new()),
            ["languages"] => Ok(json_ok(StatusCode::OK, json!({}))),
            ["assignees"] => list(self.org_members().await?),
            ["assignees", login] => match is_one_of(&self.org_members().await?, login) {
                true => no_content(),
                false => Err(not_found(DOCS)),
            },
            ["collaborators"] => list(self.collaborators(repo_key).await?),
            ["collaborators", login, tail @ ..] => {
                let all = self.collaborators(repo_key).await?;
                let found = all
                    .into_iter()
                    .find(|c| is_one_of(std::slice::from_ref(c), login))
                    .ok_or_else(|| not_found(DOCS))?;
                match tail {
                    [] => no_content(),
                    ["permission"] => {
                        let role = found["role_name"].clone();
                        let permission = match role.as_str() {
                            Some("maintain") => json!("write"),
                            Some("triage") => json!("read"),
                            Some("pull") => json!("read"),
                            Some("push") => json!("write"),
                            _ => role.clone(),
                        };
                        Ok(json_ok(
                            StatusCode::OK,
                            json!({"permission": permission, "role_name": role, "user": found}),
                        ))
                    }
                    _ => Err(not_found(DOCS)),
                }
            }
            ["teams"] => list(self.repo_teams(repo_key).await?),
            // The creator of a repository watches it, as on GitHub.
            ["subscribers"] => list(self.known_user(ADMIN_LOGIN).await?.into_iter().collect()),
            ["subscription"] => Ok(json_ok(
                StatusCode::OK,
                json!({"subscribed": true, "ignored": false, "reason": null, "created_at": repo["created_at"], "url": url, "repository_url": api}),
            )),
            ["issues"] => {
                let mut issues = Vec::new();
                for stored in self.docs.values(API, PULL, &format!("{repo_key}/")).await? {
                    if stored["state"] == "open" {
                        issues.push(self.pull_issue(repo_key, repo, &stored).await?);
                    }
                }
                issues.reverse();
                list(issues)
            }
            ["issues", n] => {
                let stored = self.stored_pull(repo_key, n).await?;
                Ok(json_ok(
                    StatusCode::OK,
                    self.pull_issue(repo_key, repo, &stored).await?,
                ))
            }
            ["issues", n, "comments" | "events" | "labels"] => {
                self.stored_pull(repo_key, n).await?;
                list(Vec::new())
            }
            ["pulls", n] => {
                let stored = self.stored_pull(repo_key, n).await?;
                Ok(json_ok(
                    StatusCode::OK,
                    self.pull(repo_key, repo, &stored, true).await?,
                ))
            }
            ["pulls", n, "commits"] => {
                let stored = self.stored_pull(repo_key, n).await?;
                self.pull_commits(repo_key, repo, &stored, query).await
            }
            ["pulls", n, "comments" | "reviews"] => {
                self.stored_pull(repo_key, n).await?;
                list(Vec::new())
            }
            ["statuses", sha] | ["commits", sha, "statuses" | "comments"] => {
                if self.resolve(repo_key, sha).await?.is_none() {
                    return Err(not_found(DOCS));
                }
                list(Vec::new())
            }
            ["branches"] => self.branches(repo_key, repo, query).await,
            ["tags"] => self.tags(repo_key, repo, query).await,
            ["commits"] => self.commits(repo_key, repo, None, query).await,
            ["commits", sha] => self.commits(repo_key, repo, Some(sha), query).await,
            ["compare", spec @ ..] => self.comparison(repo_key, repo, &spec.join("/")).await,
            ["git", "blobs", sha] => self.blob(repo_key, repo, sha).await,
            ["git", "commits", sha] => self.git_commit(repo_key, repo, sha).await,
            ["git", "trees", sha] => self.tree(repo_key, repo, sha).await,
            ["git", "refs", name @ ..] => self.read_refs(repo_key, repo, false, name).await,
            ["git", "ref", name @ ..] => self.read_refs(repo_key, repo, true, name).await,
            [format @ ("tarball" | "zipball"), reference @ ..] => {
                self.archive(repo_key, repo, format, &reference.join("/"))
                    .await
            }
            _ => Err(not_found(DOCS)),
        }
    }
}
