//! Pull requests between two branches of a repository.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::errors::{GitHubError, GitHubResult, parse_json, validation_failed};
use super::paging::{Paging, param, with_location};
use super::{API, Caller, GitHub, PULL, json_ok, now_iso, numeric_id};

impl GitHub {
    /// A `pull-request-simple`, or with `detail` a `pull-request`. An open pull request
    /// follows its branches' heads.
    pub(super) async fn pull(
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
    pub(super) async fn create_pull(
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
    pub(super) async fn list_pulls(
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
}
