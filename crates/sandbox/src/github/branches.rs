//! Branches and their protection.

use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::errors::{GitHubResult, error, not_found, parse_json};
use super::{API, GitHub, PROTECTION, json_ok};

impl GitHub {
    /// `GET /repos/{owner}/{repo}/branches/{branch}`: 404 until the branch exists (a
    /// repository generated from a template has none until its files are copied).
    pub(super) async fn branch(&self, repo_key: &str, repo: &Value, branch: &str) -> GitHubResult {
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
                "commit": self.commit_full(&full, &commit),
                "_links": {"self": format!("{api}/branches/{branch}"), "html": format!("{}/{full}/tree/{branch}", self.base_url)},
                "protected": protected,
                "protection": {"enabled": protected},
                "protection_url": protection_url,
            }),
        ))
    }

    /// Branch protection of a branch the repository has.
    pub(super) async fn protection(
        &self,
        method: &Method,
        repo_key: &str,
        repo: &Value,
        branch: &str,
        part: &[&str],
        body: &[u8],
    ) -> GitHubResult {
        const DOCS: &str = "https://docs.github.com/rest/branches/branch-protection";
        if part.len() > 1 || (!part.is_empty() && *method != Method::GET) {
            return Err(not_found(DOCS));
        }
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
                // `enforce_admins` and `required_pull_request_reviews` have URLs of
                // their own.
                if let [part] = part {
                    return match p.get(*part) {
                        Some(section) if section["url"].is_string() => {
                            Ok(json_ok(StatusCode::OK, section.clone()))
                        }
                        _ => Err(not_found(DOCS)),
                    };
                }
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
}
