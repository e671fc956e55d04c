//! `github:teamMembership`: one user's membership of a team, id `team/username`.

use std::sync::Arc;

use async_trait::async_trait;
use paddock_engine::provider::{Created, PropertyType, ReadResult, ResourceRef, TypeSchema};
use paddock_engine::{Props, ProviderError, Value};
use serde_json::{Value as Json, json};

use super::team::membership_error;
use super::{GitHub, ReadBack, input_error, plain, prop, seg, spelled, split_id, text};
use crate::family::{PropsExt, found, gone_ok, props};
use crate::http::Call;

pub(crate) struct TeamMembership(pub Arc<GitHub>);

const TYPE: &str = "github:teamMembership";
const TEMPLATE: &str = "/orgs/{org}/teams/{team_slug}/memberships/{username}";

impl TeamMembership {
    fn path(&self, team: &str, username: &str) -> String {
        self.0.org_path(&format!(
            "/teams/{}/memberships/{}",
            seg(team),
            seg(username)
        ))
    }

    async fn get(&self, team: &str, username: &str) -> Result<Option<Json>, ProviderError> {
        found(
            self.0
                .send(Call::get(TEMPLATE, self.path(team, username)))
                .await,
        )
        .map_err(plain)
    }

    async fn put(&self, inputs: &Props) -> Result<Created, ProviderError> {
        let (team, username) = (inputs.text("team")?, inputs.text("username")?);
        let role = inputs.text_or("role", "member");
        if role != "member" && role != "maintainer" {
            return Err(input_error(format!(
                "`role` must be `member` or `maintainer`, not `{role}`"
            )));
        }
        let membership = self
            .0
            .send(Call::put(TEMPLATE, self.path(&team, &username)).json(json!({ "role": role })))
            .await
            .map_err(|e| membership_error(e, &username))?;
        Ok(Created {
            id: format!("{team}/{username}"),
            outputs: outputs(&membership),
        })
    }
}

fn outputs(membership: &Json) -> Props {
    props([("state", Value::String(text(&membership["state"])))])
}

#[async_trait]
impl crate::family::ResourceType for TeamMembership {
    fn schema(&self) -> TypeSchema {
        use PropertyType::*;
        TypeSchema {
            name: TYPE.into(),
            description:
                "One user's membership of a team (for teams whose `github:team` lists no members)."
                    .into(),
            inputs: vec![
                prop("team", String, "The team's slug.")
                    .required()
                    .replace_on_change(),
                prop("username", String, "The user's login.")
                    .required()
                    .replace_on_change(),
                prop("role", String, "`member` (the default) or `maintainer`."),
            ],
            outputs: vec![prop(
                "state",
                String,
                "`active`, or `pending` until the user accepts the organization's invitation.",
            )],
        }
    }

    async fn create(&self, _r: ResourceRef<'_>, inputs: &Props) -> Result<Created, ProviderError> {
        // PUT is idempotent: a retried create lands on the same membership.
        self.put(inputs).await
    }

    async fn read(&self, id: &str, inputs: &Props) -> Result<Option<ReadResult>, ProviderError> {
        let [team, username] = split_id(TYPE, id, "team/username")?;
        let Some(membership) = self.get(team, username).await? else {
            return Ok(None);
        };
        let mut read = ReadBack::new(inputs);
        read.set("team", spelled(inputs.opt_text("team"), team));
        read.set("username", spelled(inputs.opt_text("username"), username));
        read.unless_default("role", text(&membership["role"]), "member");
        Ok(Some(ReadResult {
            inputs: Some(read.done()),
            outputs: outputs(&membership),
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
        let [team, username] = split_id(TYPE, id, "team/username")?;
        gone_ok(
            self.0
                .send(Call::delete(TEMPLATE, self.path(team, username)))
                .await,
        )
    }

    async fn find(
        &self,
        _r: ResourceRef<'_>,
        inputs: &Props,
    ) -> Result<Option<Created>, ProviderError> {
        let (team, username) = (inputs.text("team")?, inputs.text("username")?);
        Ok(self.get(&team, &username).await?.map(|m| Created {
            id: format!("{team}/{username}"),
            outputs: outputs(&m),
        }))
    }
}
