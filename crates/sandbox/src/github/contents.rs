//! Repository contents: a file read at a ref, written or deleted (each a commit on its
//! branch).

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use super::errors::{GitHubResult, error, invalid, not_found, parse_json};
use super::git::object_id;
use super::paging::param;
use super::{API, BLOB, DEFAULT_BRANCH, GitHub, REF, json_ok};

impl GitHub {
    /// A `content-file`, as read at `reference`.
    pub(super) fn content_file(
        &self,
        repo: &Value,
        path: &str,
        sha: &str,
        blob: &Value,
        reference: &str,
    ) -> Value {
        let full = self.full_name(repo);
        // Read elsewhere than the default branch, the file's URL names where (`?ref=`).
        let mut url = format!("{}/repos/{full}/contents/{path}", self.api());
        if reference != DEFAULT_BRANCH {
            let query = [("ref".to_owned(), reference.to_owned())];
            url = format!("{url}?{}", super::paging::encode_query(&query));
        }
        let html = format!("{}/{full}/blob/{reference}/{path}", self.base_url);
        let git = format!("{}/repos/{full}/git/blobs/{sha}", self.api());
        json!({
            "type": "file", "encoding": "base64", "size": blob["size"], "name": path.rsplit('/').next().unwrap_or(path), "path": path,
            "content": blob["content"], "sha": sha, "url": url, "git_url": git, "html_url": html,
            "download_url": format!("{}/{full}/raw/{reference}/{path}", self.base_url),
            "_links": {"self": url, "git": git, "html": html},
        })
    }

    pub(super) async fn contents(
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
    pub(super) async fn write_file(
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

    /// `DELETE contents/{path}`: a commit on `branch` (the default branch unless named)
    /// whose tree no longer has the file; `sha` must be the file's current blob.
    pub(super) async fn delete_file(
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
}
