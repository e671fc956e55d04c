//! Reading a repository's git objects, where the URLs the sandbox returns lead: blobs,
//! trees, commits (git's and the REST `commit`), refs, branches, tags, comparisons and
//! the commits of a pull request.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::errors::{GitHubError, GitHubResult, error, not_found};
use super::paging::{Paging, param};
use super::{API, BLOB, COMMIT, DEFAULT_BRANCH, GitHub, PROTECTION, REF, json_ok};

const DOCS: &str = "https://docs.github.com/rest/git";

impl GitHub {
    /// A `commit` as `GET /repos/{owner}/{repo}/commits/{ref}` returns it (the sandbox
    /// keeps no per-file patches, so `files` is empty).
    pub(super) fn commit_full(&self, full: &str, commit: &Value) -> Value {
        let git = self.commit_json(full, commit);
        let api = format!("{}/repos/{full}", self.api());
        let sha = commit["sha"].as_str().unwrap_or_default();
        let parents: Vec<Value> = git["parents"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                let parent = p["sha"].as_str().unwrap_or_default();
                json!({"sha": parent, "url": format!("{api}/commits/{parent}"), "html_url": p["html_url"]})
            })
            .collect();
        json!({
            "sha": sha, "node_id": git["node_id"], "url": format!("{api}/commits/{sha}"),
            "html_url": git["html_url"], "comments_url": format!("{api}/commits/{sha}/comments"),
            "commit": {"url": git["url"], "author": git["author"], "committer": git["committer"], "message": git["message"], "comment_count": 0, "tree": git["tree"], "verification": git["verification"]},
            "author": null, "committer": null, "parents": parents, "files": [],
        })
    }

    /// A ref as git's refs API returns it (`name` is `heads/main`, `tags/v1`…).
    fn git_ref(&self, full: &str, name: &str, sha: &str) -> Value {
        let api = format!("{}/repos/{full}", self.api());
        json!({
            "ref": format!("refs/{name}"), "node_id": format!("REF_{}", super::numeric_id(&format!("{full}/refs/{name}"))),
            "url": format!("{api}/git/refs/{name}"),
            "object": {"type": "commit", "sha": sha, "url": format!("{api}/git/commits/{sha}")},
        })
    }

    /// Every visible ref of a repository, by name (`heads/main`), sorted.
    async fn refs(&self, repo_key: &str) -> Result<Vec<(String, String)>, GitHubError> {
        let mut refs = Vec::new();
        for (key, _) in self.docs.list(API, REF, &format!("{repo_key}/")).await? {
            let name = key
                .strip_prefix(&format!("{repo_key}/"))
                .unwrap_or(&key)
                .to_owned();
            if let Some(sha) = self.ref_target(repo_key, &name).await? {
                refs.push((name, sha));
            }
        }
        refs.sort();
        Ok(refs)
    }

    /// `GET git/refs` (every ref), `git/refs/{prefix}` (the one ref of that name, else
    /// those under it, as `git/matching-refs`) and `git/ref/{ref}` (exactly one).
    pub(super) async fn read_refs(
        &self,
        repo_key: &str,
        repo: &Value,
        exact: bool,
        name: &[&str],
    ) -> GitHubResult {
        let (full, name) = (self.full_name(repo), name.join("/"));
        let refs = self.refs(repo_key).await?;
        if let Some((n, sha)) = refs.iter().find(|(n, _)| *n == name) {
            return Ok(json_ok(StatusCode::OK, self.git_ref(&full, n, sha)));
        }
        let under: Vec<Value> = refs
            .iter()
            .filter(|(n, _)| name.is_empty() || n.starts_with(&format!("{name}/")))
            .map(|(n, sha)| self.git_ref(&full, n, sha))
            .collect();
        if exact || under.is_empty() {
            return Err(not_found(DOCS));
        }
        Ok(json_ok(StatusCode::OK, json!(under)))
    }

    /// `GET git/blobs/{sha}`.
    pub(super) async fn blob(&self, repo_key: &str, repo: &Value, sha: &str) -> GitHubResult {
        let blob = self
            .docs
            .get(API, BLOB, &format!("{repo_key}/{sha}"))
            .await?
            .ok_or_else(|| not_found(DOCS))?;
        let url = format!(
            "{}/repos/{}/git/blobs/{sha}",
            self.api(),
            self.full_name(repo)
        );
        Ok(json_ok(
            StatusCode::OK,
            json!({"sha": sha, "node_id": format!("B_{sha}"), "size": blob["size"], "url": url, "content": blob["content"], "encoding": "base64"}),
        ))
    }

    /// `GET git/commits/{sha}`.
    pub(super) async fn git_commit(&self, repo_key: &str, repo: &Value, sha: &str) -> GitHubResult {
        let commit = self
            .commit(repo_key, sha)
            .await?
            .ok_or_else(|| not_found(DOCS))?;
        Ok(json_ok(
            StatusCode::OK,
            self.commit_json(&self.full_name(repo), &commit),
        ))
    }

    /// `GET git/trees/{sha}`: the tree of a commit that has it. The sandbox keeps a
    /// commit's tree flat (path → blob), so every file is listed with its whole path, as
    /// GitHub lists a tree with `recursive` (and without the subtrees).
    pub(super) async fn tree(&self, repo_key: &str, repo: &Value, sha: &str) -> GitHubResult {
        let commits = self
            .docs
            .values(API, COMMIT, &format!("{repo_key}/"))
            .await?;
        let commit = commits
            .iter()
            .find(|c| c["tree_sha"] == sha)
            .ok_or_else(|| not_found(DOCS))?;
        let api = format!("{}/repos/{}", self.api(), self.full_name(repo));
        let mut entries = Vec::new();
        for (path, blob_sha) in commit["tree"].as_object().into_iter().flatten() {
            let blob_sha = blob_sha.as_str().unwrap_or_default();
            let blob = self
                .docs
                .get(API, BLOB, &format!("{repo_key}/{blob_sha}"))
                .await?
                .unwrap_or_default();
            entries.push(json!({"path": path, "mode": "100644", "type": "blob", "sha": blob_sha, "size": blob["size"], "url": format!("{api}/git/blobs/{blob_sha}")}));
        }
        Ok(json_ok(
            StatusCode::OK,
            json!({"sha": sha, "url": format!("{api}/git/trees/{sha}"), "tree": entries, "truncated": false}),
        ))
    }

    /// `GET commits` (the history of `sha`, a branch or commit, the default branch
    /// unless named; paged) and `GET commits/{ref}`.
    pub(super) async fn commits(
        &self,
        repo_key: &str,
        repo: &Value,
        one: Option<&str>,
        query: &[(String, String)],
    ) -> GitHubResult {
        const DOCS: &str = "https://docs.github.com/rest/commits/commits";
        let full = self.full_name(repo);
        let rev = one.or(param(query, "sha")).unwrap_or(DEFAULT_BRANCH);
        let Some(sha) = self.resolve(repo_key, rev).await? else {
            return Err(match one {
                Some(r) => error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("No commit found for SHA: {r}"),
                    DOCS,
                ),
                None if self.is_empty(repo_key).await? => {
                    error(StatusCode::CONFLICT, "Git Repository is empty.", DOCS)
                }
                None => not_found(DOCS),
            });
        };
        let history = self.history(repo_key, &sha).await?;
        if one.is_some() {
            let commit = history.first().ok_or_else(|| not_found(DOCS))?;
            return Ok(json_ok(StatusCode::OK, self.commit_full(&full, commit)));
        }
        let commits: Vec<Value> = history.iter().map(|c| self.commit_full(&full, c)).collect();
        let url = format!("{}/repos/{full}/commits", self.api());
        Ok(Paging::of(query).array(&commits, &url, query))
    }

    /// `GET branches`: every branch, with whether it is protected, paged.
    pub(super) async fn branches(
        &self,
        repo_key: &str,
        repo: &Value,
        query: &[(String, String)],
    ) -> GitHubResult {
        let full = self.full_name(repo);
        let api = format!("{}/repos/{full}", self.api());
        let mut branches = Vec::new();
        for (name, sha) in self.refs(repo_key).await? {
            let Some(branch) = name.strip_prefix("heads/") else {
                continue;
            };
            let protected = self
                .docs
                .get(API, PROTECTION, &format!("{repo_key}/{branch}"))
                .await?
                .is_some();
            branches.push(json!({
                "name": branch, "commit": {"sha": sha, "url": format!("{api}/commits/{sha}")},
                "protected": protected,
            }));
        }
        Ok(Paging::of(query).array(&branches, &format!("{api}/branches"), query))
    }

    /// `GET tags`: the repository's tags, with their archives, paged.
    pub(super) async fn tags(
        &self,
        repo_key: &str,
        repo: &Value,
        query: &[(String, String)],
    ) -> GitHubResult {
        let full = self.full_name(repo);
        let api = format!("{}/repos/{full}", self.api());
        let tags: Vec<Value> = self
            .refs(repo_key)
            .await?
            .into_iter()
            .filter_map(|(name, sha)| {
                let tag = name.strip_prefix("tags/")?;
                Some(json!({
                    "name": tag, "commit": {"sha": sha, "url": format!("{api}/commits/{sha}")},
                    "zipball_url": format!("{api}/zipball/refs/tags/{tag}"), "tarball_url": format!("{api}/tarball/refs/tags/{tag}"),
                    "node_id": format!("REF_{}", super::numeric_id(&format!("{full}/refs/tags/{tag}"))),
                }))
            })
            .collect();
        Ok(Paging::of(query).array(&tags, &format!("{api}/tags"), query))
    }

    /// `GET compare/{base}...{head}`: how `head` stands against `base`.
    pub(super) async fn comparison(
        &self,
        repo_key: &str,
        repo: &Value,
        spec: &str,
    ) -> GitHubResult {
        const DOCS: &str = "https://docs.github.com/rest/commits/commits#compare-two-commits";
        let (full, web) = (self.full_name(repo), self.base_url.clone());
        let (base, head) = spec.split_once("...").ok_or_else(|| not_found(DOCS))?;
        let (Some(base_sha), Some(head_sha)) = (
            self.resolve(repo_key, base).await?,
            self.resolve(repo_key, head).await?,
        ) else {
            return Err(not_found(DOCS));
        };
        let ahead = self.compare(repo_key, &base_sha, &head_sha).await?;
        let behind = self.compare(repo_key, &head_sha, &base_sha).await?;
        let status = match (ahead.commits, behind.commits) {
            (0, 0) => "identical",
            (_, 0) => "ahead",
            (0, _) => "behind",
            _ => "diverged",
        };
        let history = self.history(repo_key, &head_sha).await?;
        let commits: Vec<Value> = history
            .iter()
            .take(ahead.commits)
            .rev()
            .map(|c| self.commit_full(&full, c))
            .collect();
        let base_commit = self
            .commit(repo_key, &base_sha)
            .await?
            .ok_or_else(|| not_found(DOCS))?;
        let merge_base = history
            .get(ahead.commits)
            .cloned()
            .unwrap_or(base_commit.clone());
        let api = format!("{}/repos/{full}", self.api());
        Ok(json_ok(
            StatusCode::OK,
            json!({
                "url": format!("{api}/compare/{spec}"), "html_url": format!("{web}/{full}/compare/{spec}"),
                "permalink_url": format!("{web}/{full}/compare/{base_sha}...{head_sha}"),
                "diff_url": format!("{web}/{full}/compare/{spec}.diff"), "patch_url": format!("{web}/{full}/compare/{spec}.patch"),
                "base_commit": self.commit_full(&full, &base_commit), "merge_base_commit": self.commit_full(&full, &merge_base),
                "status": status, "ahead_by": ahead.commits, "behind_by": behind.commits, "total_commits": ahead.commits,
                "commits": commits, "files": [],
            }),
        ))
    }

    /// `GET pulls/{number}/commits`: the commits the pull request brings, oldest first.
    pub(super) async fn pull_commits(
        &self,
        repo_key: &str,
        repo: &Value,
        pull: &Value,
        query: &[(String, String)],
    ) -> GitHubResult {
        let detail = self.pull(repo_key, repo, pull, true).await?;
        let head = detail["head"]["sha"].as_str().unwrap_or_default();
        let count = detail["commits"].as_u64().unwrap_or_default() as usize;
        let full = self.full_name(repo);
        let commits: Vec<Value> = self
            .history(repo_key, head)
            .await?
            .iter()
            .take(count)
            .rev()
            .map(|c| self.commit_full(&full, c))
            .collect();
        let url = format!("{}/commits", detail["url"].as_str().unwrap_or_default());
        Ok(Paging::of(query).array(&commits, &url, query))
    }
}
