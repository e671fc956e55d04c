//! Deployment environments: protection rules (wait timer, required reviewers) and custom
//! deployment branch policies.

use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::errors::{GitHubError, GitHubResult, invalid, not_found, parse_json};
use super::paging::{Paging, with_location};
use super::{
    API, BRANCH_POLICY, ENV, ENV_KEY, GitHub, SECRET, TEAM, USER, VARIABLE, json_ok, now_iso,
    numeric_id,
};

impl GitHub {
    /// An environment of `stored_repo` (kept by its name in lower case, as the repository
    /// is), and what lives under it.
    pub(super) async fn environment(
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
                    self.variables(m, VARIABLE, &key, rest, (&url, query), body)
                        .await
                }
            }
            _ => Err(not_found(DOCS)),
        }
    }

    /// A reviewer (`{type, id}`) as GitHub returns it, if that user or team exists.
    pub(super) async fn reviewer(&self, r: &Value) -> Result<Option<Value>, GitHubError> {
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

    /// Custom deployment branch policies of an environment whose
    /// `deployment_branch_policy.custom_branch_policies` is true (404 otherwise): listed
    /// (paged), created (200; a pattern the environment has is answered with a `303` to
    /// it), read and deleted by id.
    pub(super) async fn branch_policies(
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
