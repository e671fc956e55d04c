//! `github:environment`: a deployment environment of a repository, with required
//! reviewers, a wait timer and the branches that may deploy to it; id
//! `repository/name`.

use std::sync::Arc;

use async_trait::async_trait;
use paddock_engine::provider::{Created, PropertyType, ReadResult, ResourceRef, TypeSchema};
use paddock_engine::{Props, ProviderError, Value};
use serde_json::{Value as Json, json};

use super::{
    GitHub, ReadBack, github_error, input_error, int_or, plain, prop, seg, spelled, split_id, text,
};
use crate::family::{PropsExt, found, gone_ok, props};
use crate::http::Call;

pub(crate) struct Environment(pub Arc<GitHub>);

const TYPE: &str = "github:environment";
const TEMPLATE: &str = "/repos/{owner}/{repo}/environments/{environment_name}";
const POLICIES: &str =
    "/repos/{owner}/{repo}/environments/{environment_name}/deployment-branch-policies";

impl GitHub {
    pub(crate) fn environment_path(&self, repo: &str, env: &str, rest: &str) -> String {
        self.repo_path(repo, &format!("/environments/{}{rest}", seg(env)))
    }
}

impl Environment {
    async fn get(&self, repo: &str, env: &str) -> Result<Option<Json>, ProviderError> {
        let gh = &self.0;
        found(
            gh.send(Call::get(TEMPLATE, gh.environment_path(repo, env, "")))
                .await,
        )
        .map_err(plain)
    }

    /// The reviewers as GitHub wants them: `{type, id}`, users and teams looked up.
    async fn reviewers(&self, inputs: &Props) -> Result<Vec<Json>, ProviderError> {
        let gh = &self.0;
        let mut reviewers = Vec::new();
        for login in inputs.strings("reviewers") {
            let user = found(
                gh.send(Call::get(
                    "/users/{username}",
                    format!("/users/{}", seg(&login)),
                ))
                .await,
            )
            .map_err(plain)?
            .ok_or_else(|| {
                ProviderError::new("404", format!("reviewer `{login}` is not a GitHub user"))
                    .with_hint("`reviewers` lists user logins; teams go in `reviewerTeams`")
            })?;
            reviewers.push(json!({"type": "User", "id": user["id"]}));
        }
        for slug in inputs.strings("reviewerTeams") {
            let team = gh.team(&slug).await.map_err(plain)?.ok_or_else(|| {
                ProviderError::new(
                    "404",
                    format!("reviewer team `{slug}` is not a team of {}", gh.org),
                )
                .with_hint("`reviewerTeams` lists team slugs (a `github:team`'s `slug` output)")
            })?;
            reviewers.push(json!({"type": "Team", "id": team["id"]}));
        }
        if reviewers.len() > 6 {
            return Err(input_error(
                "an environment takes at most six reviewers, users and teams together",
            ));
        }
        Ok(reviewers)
    }

    /// The custom deployment branch policies (branch name patterns), with their ids.
    async fn policies(&self, repo: &str, env: &str) -> Result<Vec<(i64, String)>, ProviderError> {
        let gh = &self.0;
        let all = gh
            .list_all(
                Call::get(
                    POLICIES,
                    gh.environment_path(repo, env, "/deployment-branch-policies"),
                ),
                Some("branch_policies"),
            )
            .await
            .map_err(plain)?;
        Ok(all
            .iter()
            .filter(|p| p["type"].as_str().is_none_or(|t| t == "branch"))
            .map(|p| (p["id"].as_i64().unwrap_or_default(), text(&p["name"])))
            .collect())
    }

    /// Creates or updates the environment to match `inputs`.
    async fn put(&self, inputs: &Props) -> Result<Created, ProviderError> {
        let gh = &self.0;
        let (repo, name) = (inputs.text("repository")?, inputs.text("name")?);
        let wait_timer = int_or(inputs, "waitTimer", 0);
        if !(0..=43_200).contains(&wait_timer) {
            return Err(input_error(format!(
                "`waitTimer` is minutes between 0 and 43200 (30 days), not {wait_timer}"
            )));
        }
        let branches = inputs.strings("branches");
        let body = json!({
            "wait_timer": wait_timer,
            "reviewers": self.reviewers(inputs).await?,
            "deployment_branch_policy": if branches.is_empty() {
                Json::Null
            } else {
                json!({"protected_branches": false, "custom_branch_policies": true})
            },
        });
        let environment = gh
            .send(Call::put(TEMPLATE, gh.environment_path(&repo, &name, "")).json(body))
            .await
            .map_err(|e| {
                github_error(
                    e,
                    format!(
                        "the repository `{repo}` must exist, and reviewers need read access to it"
                    ),
                )
            })?;
        if !branches.is_empty() {
            let existing = self.policies(&repo, &name).await?;
            for branch in &branches {
                if !existing.iter().any(|(_, n)| n == branch) {
                    gh.send(
                        Call::post(
                            POLICIES,
                            gh.environment_path(&repo, &name, "/deployment-branch-policies"),
                        )
                        .json(json!({"name": branch, "type": "branch"})),
                    )
                    .await
                    .map_err(plain)?;
                }
            }
            for (id, pattern) in existing {
                if !branches.contains(&pattern) {
                    gone_ok(
                        gh.send(Call::delete(
                            "/repos/{owner}/{repo}/environments/{environment_name}/deployment-branch-policies/{branch_policy_id}",
                            gh.environment_path(&repo, &name, &format!("/deployment-branch-policies/{id}")),
                        ))
                        .await,
                    )?;
                }
            }
        }
        Ok(Created {
            id: format!("{repo}/{name}"),
            outputs: outputs(&environment),
        })
    }
}

fn outputs(environment: &Json) -> Props {
    props([
        (
            "environmentId",
            Value::Int(environment["id"].as_i64().unwrap_or_default()),
        ),
        ("htmlUrl", Value::String(text(&environment["html_url"]))),
    ])
}

#[async_trait]
impl crate::family::ResourceType for Environment {
    fn schema(&self) -> TypeSchema {
        use PropertyType::*;
        TypeSchema {
            name: TYPE.into(),
            description: "A deployment environment of a repository: who must approve a deployment, how long it waits, which branches may deploy.".into(),
            inputs: vec![
                prop("repository", String, "The repository's name.")
                    .required()
                    .replace_on_change(),
                prop("name", String, "The environment's name.").required().replace_on_change(),
                prop("reviewers", List, "Logins of users who may approve deployments."),
                prop("reviewerTeams", List, "Slugs of teams who may approve deployments."),
                prop("waitTimer", Int, "Minutes a deployment waits before it starts (default 0)."),
                prop("branches", List, "Branch name patterns that may deploy (`release/*`); empty: any branch."),
            ],
            outputs: vec![
                prop("environmentId", Int, "The environment's numeric id."),
                prop("htmlUrl", String, "The environment's page."),
            ],
        }
    }

    async fn create(&self, _r: ResourceRef<'_>, inputs: &Props) -> Result<Created, ProviderError> {
        // PUT creates or updates: a retried create lands on the same environment.
        self.put(inputs).await
    }

    async fn read(&self, id: &str, inputs: &Props) -> Result<Option<ReadResult>, ProviderError> {
        let [repo, name] = split_id(TYPE, id, "repository/name")?;
        let Some(environment) = self.get(repo, name).await? else {
            return Ok(None);
        };
        let (mut wait_timer, mut users, mut teams) = (0, Vec::new(), Vec::new());
        for rule in environment["protection_rules"]
            .as_array()
            .into_iter()
            .flatten()
        {
            match rule["type"].as_str() {
                Some("wait_timer") => wait_timer = rule["wait_timer"].as_i64().unwrap_or(0),
                Some("required_reviewers") => {
                    for r in rule["reviewers"].as_array().into_iter().flatten() {
                        match r["type"].as_str() {
                            Some("User") => users.push(text(&r["reviewer"]["login"])),
                            Some("Team") => teams.push(text(&r["reviewer"]["slug"])),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        let branches =
            if environment["deployment_branch_policy"]["custom_branch_policies"] == json!(true) {
                self.policies(repo, name)
                    .await?
                    .into_iter()
                    .map(|(_, n)| n)
                    .collect()
            } else {
                Vec::new()
            };
        let mut read = ReadBack::new(inputs);
        read.set("repository", spelled(inputs.opt_text("repository"), repo));
        read.set("name", spelled(inputs.opt_text("name"), name));
        read.names("reviewers", users);
        read.names("reviewerTeams", teams);
        read.unless_default("waitTimer", Value::Int(wait_timer), Value::Int(0));
        read.names("branches", branches);
        Ok(Some(ReadResult {
            inputs: Some(read.done()),
            outputs: outputs(&environment),
        }))
    }

    async fn update(
        &self,
        _r: ResourceRef<'_>,
        _id: &str,
        _olds: &Props,
        news: &Props,
    ) -> Result<Props, ProviderError> {
        Ok(self.put(news).await?.outputs)
    }

    async fn delete(&self, id: &str, _props: &Props) -> Result<(), ProviderError> {
        let [repo, name] = split_id(TYPE, id, "repository/name")?;
        let gh = &self.0;
        gone_ok(
            gh.send(Call::delete(TEMPLATE, gh.environment_path(repo, name, "")))
                .await,
        )
    }

    async fn find(
        &self,
        _r: ResourceRef<'_>,
        inputs: &Props,
    ) -> Result<Option<Created>, ProviderError> {
        let (repo, name) = (inputs.text("repository")?, inputs.text("name")?);
        if self.get(&repo, &name).await?.is_none() {
            return Ok(None);
        }
        // A create cut short between the environment's PUT and its branch policies' POSTs
        // left it half made, and what is adopted is recorded with these inputs: finish it
        // (the PUT and the policy sync are idempotent).
        Ok(Some(self.put(inputs).await?))
    }
}
