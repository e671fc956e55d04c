//! `azure:resourceGroup`: created and updated with `PUT` (the whole group: location and
//! tags); deleted with ARM's long-running `DELETE`, waited for, so that a group is really
//! gone (and everything in it) before a dependent step or a replacement goes on.

use std::sync::Arc;

use async_trait::async_trait;
use paddock_engine::provider::{
    Created, PropertySchema, PropertyType, ReadResult, ResourceRef, TypeSchema,
};
use paddock_engine::{Props, ProviderError, Value};
use serde_json::{Value as Json, json};

use super::management_lock;
use super::{Arm, RESOURCES_API_VERSION, arm_error, id_path, segment};
use crate::family::{PropsExt, ResourceType, found, props};
use crate::http::Call;
use crate::ownership::{self, Mark, Owner, Place, STACK_KEY, TOKEN_KEY, owner_of};

const TYPE: &str = "azure:resourceGroup";
const GROUP: &str = "/subscriptions/{subscriptionId}/resourcegroups/{resourceGroupName}";
const OPERATION: &str = "resource group delete operation";

pub(super) struct ResourceGroup {
    arm: Arc<Arm>,
}

impl ResourceGroup {
    pub(super) fn new(arm: Arc<Arm>) -> ResourceGroup {
        ResourceGroup { arm }
    }

    fn path(&self, name: &str) -> String {
        format!(
            "/subscriptions/{}/resourcegroups/{}",
            segment(&self.arm.subscription_id),
            segment(name)
        )
    }

    /// Creates or updates the group as `inputs` describe it, with `mark` among its tags.
    /// A missing location is left to ARM to refuse, so the error carries ARM's own code.
    async fn put(&self, inputs: &Props, mark: &Mark) -> Result<Json, ProviderError> {
        let name = inputs.text("name")?;
        let mut tags = tags(inputs)?;
        tags[STACK_KEY] = json!(mark.stack);
        tags[TOKEN_KEY] = json!(mark.token);
        let mut body = json!({ "tags": tags });
        if let Some(location) = inputs.opt_text("location") {
            body["location"] = json!(location);
        }
        let reply = self
            .arm
            .http
            .send(
                Call::put(GROUP, self.path(&name))
                    .query("api-version", RESOURCES_API_VERSION)
                    .json(body),
            )
            .await
            .map_err(arm_error)?;
        Ok(reply.body)
    }

    async fn get(&self, path: String) -> Result<Option<Json>, ProviderError> {
        let reply = found(
            self.arm
                .http
                .send(Call::get(GROUP, path).query("api-version", RESOURCES_API_VERSION))
                .await,
        )
        .map_err(arm_error)?;
        Ok(reply.map(|r| r.body))
    }
}

/// The `tags` input as ARM takes them: a map of strings.
fn tags(inputs: &Props) -> Result<Json, ProviderError> {
    match inputs.json("tags") {
        Json::Null => Ok(json!({})),
        Json::Object(map) => {
            if let Some((k, _)) = map.iter().find(|(_, v)| !v.is_string()) {
                return Err(ProviderError::new(
                    "InvalidInput",
                    format!("`tags.{k}` must be a string: Azure tags are strings"),
                ));
            }
            Ok(Json::Object(map))
        }
        _ => Err(ProviderError::new(
            "InvalidInput",
            "`tags` must be a map of strings",
        )),
    }
}

/// Who made a group, by its tags.
fn owner(group: &Json) -> Owner {
    let tag = |k: &str| group["tags"][k].as_str();
    owner_of(Mark::from_parts(tag(STACK_KEY), tag(TOKEN_KEY)))
}

fn created(group: &Json) -> Created {
    Created {
        id: group["id"].as_str().unwrap_or_default().to_owned(),
        outputs: outputs(group),
    }
}

/// ARM's spelling of a region: `West Europe` is `westeurope`.
fn region(location: &str) -> String {
    location.to_lowercase().replace(' ', "")
}

fn outputs(group: &Json) -> Props {
    let text = |k: &str| Value::from(group[k].as_str().unwrap_or_default());
    props([
        ("resourceGroupId", text("id")),
        ("name", text("name")),
        ("location", text("location")),
    ])
}

/// The inputs that would make this group, spelled as `given` spells them where ARM
/// means the same (names are case-insensitive, regions have two spellings).
fn inputs_of(group: &Json, given: &Props) -> Props {
    let name = group["name"].as_str().unwrap_or_default();
    let location = group["location"].as_str().unwrap_or_default();
    let mut inputs = props([
        (
            "name",
            Value::from(
                given
                    .opt_text("name")
                    .filter(|n| n.eq_ignore_ascii_case(name))
                    .unwrap_or_else(|| name.to_owned()),
            ),
        ),
        (
            "location",
            Value::from(
                given
                    .opt_text("location")
                    .filter(|l| region(l) == region(location))
                    .unwrap_or_else(|| location.to_owned()),
            ),
        ),
    ]);
    let tags = group["tags"].as_object().map(|t| {
        let mut t = t.clone();
        t.remove(STACK_KEY);
        t.remove(TOKEN_KEY);
        t
    });
    let tags = tags.as_ref().filter(|t| !t.is_empty());
    if tags.is_some() || given.contains_key("tags") {
        inputs.insert(
            "tags".into(),
            Value::from_json(Json::Object(tags.cloned().unwrap_or_default())),
        );
    }
    inputs
}

#[async_trait]
impl ResourceType for ResourceGroup {
    fn schema(&self) -> TypeSchema {
        TypeSchema {
            name: TYPE.into(),
            description: "An Azure resource group: a subscription's unit of ownership, location and deletion.".into(),
            inputs: vec![
                PropertySchema::new("name", PropertyType::String)
                    .required()
                    .replace_on_change()
                    .describe("The group's name: 1-90 letters, digits, '-', '_', '.', '(' or ')'."),
                PropertySchema::new("location", PropertyType::String)
                    .required()
                    .replace_on_change()
                    .describe("The Azure region the group's metadata lives in, e.g. westeurope."),
                PropertySchema::new("tags", PropertyType::Map)
                    .describe("Tags, names to string values."),
            ],
            outputs: vec![
                PropertySchema::new("resourceGroupId", PropertyType::String)
                    .describe("The group's ARM id: the scope for role assignments."),
                PropertySchema::new("name", PropertyType::String),
                PropertySchema::new("location", PropertyType::String),
            ],
        }
    }

    async fn create(&self, r: ResourceRef<'_>, inputs: &Props) -> Result<Created, ProviderError> {
        let name = inputs.text("name")?;
        if let Some(existing) = self.get(self.path(&name)).await? {
            let place = Place {
                ty: TYPE.into(),
                name,
                location: format!("subscription `{}`", self.arm.subscription_id),
                id: existing["id"].as_str().unwrap_or_default().to_owned(),
            };
            ownership::admit(&r, &owner(&existing), &place)?;
        }
        Ok(created(&self.put(inputs, &Mark::of(&r)).await?))
    }

    async fn read(&self, id: &str, inputs: &Props) -> Result<Option<ReadResult>, ProviderError> {
        let Some(group) = self.get(id_path(TYPE, id)?).await? else {
            return Ok(None);
        };
        Ok(Some(ReadResult {
            inputs: Some(inputs_of(&group, inputs)),
            outputs: outputs(&group),
        }))
    }

    async fn update(
        &self,
        r: ResourceRef<'_>,
        _id: &str,
        _olds: &Props,
        news: &Props,
    ) -> Result<Props, ProviderError> {
        // Name and location force a replacement, so the same group is PUT with new tags.
        Ok(outputs(&self.put(news, &Mark::of(&r)).await?))
    }

    async fn delete(&self, id: &str, _: &Props) -> Result<(), ProviderError> {
        let path = id_path(TYPE, id)?;
        let started = self
            .arm
            .http
            .send(Call::delete(GROUP, path.clone()).query("api-version", RESOURCES_API_VERSION))
            .await;
        let reply = match started {
            Ok(reply) => reply,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(arm_error(e)),
        };
        match self.arm.http.wait_for_operation(reply, OPERATION).await {
            Ok(_) => Ok(()),
            // The operation is no longer known: what counts is whether the group is.
            Err(e) if e.is_not_found() => match self.get(path).await? {
                None => Ok(()),
                Some(_) => Err(arm_error(e)),
            },
            Err(e) => Err(arm_error(e)),
        }
    }

    async fn find(
        &self,
        r: ResourceRef<'_>,
        inputs: &Props,
    ) -> Result<Option<Created>, ProviderError> {
        let name = inputs.text("name")?;
        Ok(self
            .get(self.path(&name))
            .await?
            .filter(|group| owner(group).made_by(&r))
            .as_ref()
            .map(created))
    }

    async fn owner(&self, id: &str, _: &Props) -> Result<Owner, ProviderError> {
        Ok(self
            .get(id_path(TYPE, id)?)
            .await?
            .map_or(Owner::Gone, |group| owner(&group)))
    }

    /// The team may replace its group's tags (and so remove the mark), but no lock: a
    /// lock this stack placed on the group proves the group is the one it made, since a
    /// locked group cannot have been deleted and made again.
    async fn restore_mark(
        &self,
        r: ResourceRef<'_>,
        id: &str,
        props: &Props,
    ) -> Result<bool, ProviderError> {
        let vouched = management_lock::placed_at(&self.arm, &id_path(TYPE, id)?)
            .await?
            .iter()
            .any(|owner| matches!(owner, Owner::Marked(m) if m.stack == r.stack()));
        if vouched {
            self.mark_imported(r, id, props).await?;
        }
        Ok(vouched)
    }

    async fn mark_imported(
        &self,
        r: ResourceRef<'_>,
        id: &str,
        _: &Props,
    ) -> Result<(), ProviderError> {
        let Some(group) = self.get(id_path(TYPE, id)?).await? else {
            return Ok(());
        };
        let mut inputs = inputs_of(&group, &Props::new());
        // The group's own tags are kept as they are, besides the mark.
        inputs.insert("tags".into(), Value::from_json(group["tags"].clone()));
        self.put(&inputs, &Mark::of(&r)).await.map(|_| ())
    }
}
