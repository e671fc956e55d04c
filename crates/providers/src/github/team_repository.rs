//! `github:teamRepository`: a team's permission on a repository, id `team/repository`.

use std::sync::Arc;

use async_trait::async_trait;
use paddock_engine::provider::{Created, PropertyType, ReadResult, ResourceRef, TypeSchema};
use paddock_engine::{Props, ProviderError};
use serde_json::{Value as Json, json};

use super::{GitHub, ReadBack, github_error, input_error, plain, prop, seg, spelled, split_id};
use crate::family::{PropsExt, found, gone_ok};
use crate::http::Call;

pub(crate) struct TeamRepository(pub Arc<GitHub>);

const TYPE: &str = "github:teamRepository";
const TEMPLATE: &str = "/orgs/{org}/teams/{team_slug}/repos/{owner}/{repo}";
const PERMISSIONS: [&str; 5] = ["pull", "triage", "push", "maintain", "admin"];
/// GitHub's default when a team is given a repository.
const DEFAULT_PERMISSION: &str = "push";

impl TeamRepository {
    fn path(&self, team: &str, repo: &str) -> String {
        let gh = &self.0;
        gh.org_path(&format!(
            "/teams/{}/repos/{}/{}",
            seg(team),
            seg(&gh.org),
            seg(repo)
        ))
    }

    /// The team's grant on the repository, if it has one.
    async fn get(&self, team: &str, repo: &str) -> Result<Option<Json>, ProviderError> {
        // Without this media type GitHub answers 204 and no permissions.
        let call = Call::get(TEMPLATE, self.path(team, repo))
            .header("accept", "application/vnd.github.v3.repository+json");
        found(self.0.http.send(call).await.map(|r| r.body)).map_err(plain)
    }

    async fn put(&self, inputs: &Props) -> Result<Created, ProviderError> {
        let (team, repo) = (inputs.text("team")?, inputs.text("repository")?);
        let permission = inputs.text_or("permission", DEFAULT_PERMISSION);
        if !PERMISSIONS.contains(&permission.as_str()) {
            return Err(input_error(format!(
                "`permission` must be one of {}, not `{permission}`",
                PERMISSIONS.join(", ")
            )));
        }
        self.0
            .send(Call::put(TEMPLATE, self.path(&team, &repo)).json(json!({ "permission": permission })))
            .await
            .map_err(|e| {
                github_error(
                    e,
                    format!("the team `{team}` and the repository `{repo}` must both exist in the organization"),
                )
            })?;
        Ok(Created {
            id: format!("{team}/{repo}"),
            outputs: Props::new(),
        })
    }
}

/// The permission a grant gives: the highest of its `permissions`, else its role's.
fn permission_of(grant: &Json) -> Option<String> {
    if let Some(p) = PERMISSIONS
        .iter()
        .rev()
        .find(|p| grant["permissions"][**p] == json!(true))
    {
        return Some((*p).to_owned());
    }
    match grant["role_name"].as_str()? {
        "read" => Some("pull".into()),
        "write" => Some("push".into()),
        other => Some(other.to_owned()),
    }
}

#[async_trait]
impl crate::family::ResourceType for TeamRepository {
    fn schema(&self) -> TypeSchema {
        use PropertyType::*;
        TypeSchema {
            name: TYPE.into(),
            description: "A team's permission on a repository.".into(),
            inputs: vec![
                prop("team", String, "The team's slug.")
                    .required()
                    .replace_on_change(),
                prop("repository", String, "The repository's name.")
                    .required()
                    .replace_on_change(),
                prop(
                    "permission",
                    String,
                    "`pull`, `triage`, `push` (the default), `maintain` or `admin`.",
                ),
            ],
            outputs: vec![],
        }
    }

    async fn create(&self, _r: ResourceRef<'_>, inputs: &Props) -> Result<Created, ProviderError> {
        // PUT is idempotent: a retried create lands on the same grant.
        self.put(inputs).await
    }

    async fn read(&self, id: &str, inputs: &Props) -> Result<Option<ReadResult>, ProviderError> {
        let [team, repo] = split_id(TYPE, id, "team/repository")?;
        let Some(grant) = self.get(team, repo).await? else {
            return Ok(None);
        };
        let permission = permission_of(&grant)
            .or_else(|| inputs.opt_text("permission"))
            .unwrap_or_else(|| DEFAULT_PERMISSION.to_owned());
        let mut read = ReadBack::new(inputs);
        read.set("team", spelled(inputs.opt_text("team"), team));
        read.set("repository", spelled(inputs.opt_text("repository"), repo));
        read.unless_default("permission", permission, DEFAULT_PERMISSION);
        Ok(Some(ReadResult {
            inputs: Some(read.done()),
            outputs: Props::new(),
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
        let [team, repo] = split_id(TYPE, id, "team/repository")?;
        gone_ok(
            self.0
                .send(Call::delete(TEMPLATE, self.path(team, repo)))
                .await,
        )
    }

    async fn find(
        &self,
        _r: ResourceRef<'_>,
        inputs: &Props,
    ) -> Result<Option<Created>, ProviderError> {
        let (team, repo) = (inputs.text("team")?, inputs.text("repository")?);
        Ok(self.get(&team, &repo).await?.map(|_| Created {
            id: format!("{team}/{repo}"),
            outputs: Props::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn the_highest_permission_is_the_grant() {
        let grant = json!({"permissions": {"pull": true, "triage": true, "push": true, "maintain": false, "admin": false}});
        assert_eq!(super::permission_of(&grant).as_deref(), Some("push"));
        assert_eq!(
            super::permission_of(&json!({"role_name": "write"})).as_deref(),
            Some("push")
        );
    }
}
