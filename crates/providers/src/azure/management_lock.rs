//! `azure:managementLock`: a `Microsoft.Authorization/locks` lock on a scope (a resource
//! group, a subscription), which ARM enforces over every principal's permissions —
//! `CanNotDelete` refuses deletes of the scope and everything in it, `ReadOnly` writes
//! too. It is how a guardrail holds against the identities a team is handed: placing or
//! lifting one needs `Microsoft.Authorization/locks/*`, which Contributor lacks.
//!
//! A lock's natural key is its scope and name, so its id is known before it exists and a
//! retried create adopts the lock the first attempt made. `PUT` creates and updates (the
//! level and notes change in place); `DELETE` of a lock already gone succeeds.
//!
//! The lock follows its scope's owner, but its notes end with Paddock's mark: the team
//! can change its resource group's tags (and so remove the group's mark) but never a
//! lock, so the lock vouches for the group it holds (see `ResourceGroup::restore_mark`).

use std::sync::Arc;

use async_trait::async_trait;
use paddock_engine::provider::{
    Created, PropertySchema, PropertyType, ReadResult, ResourceRef, TypeSchema,
};
use paddock_engine::{Props, ProviderError, Value};
use serde_json::{Value as Json, json};

use super::{Arm, arm_error, id_path, segment};
use crate::family::{PropsExt, ResourceType, found, props};
use crate::http::Call;
use crate::ownership::{Mark, Owner, owner_in_text};

const TYPE: &str = "azure:managementLock";
const LOCK: &str = "/{scope}/providers/Microsoft.Authorization/locks/{lockName}";
const LOCKS_AT: &str = "/{scope}/providers/Microsoft.Authorization/locks";
/// `Microsoft.Authorization/locks`, newest stable.
pub const LOCKS_API_VERSION: &str = "2020-05-01";
const LEVELS: [&str; 2] = ["CanNotDelete", "ReadOnly"];
const MARKER: &str = "/providers/microsoft.authorization/locks/";

pub(super) struct ManagementLock {
    arm: Arc<Arm>,
}

/// What the inputs ask for, checked.
struct Wanted {
    scope: String,
    name: String,
    level: &'static str,
    notes: Option<String>,
}

fn invalid(message: String) -> ProviderError {
    ProviderError::new("InvalidInput", message)
}

impl ManagementLock {
    pub(super) fn new(arm: Arc<Arm>) -> ManagementLock {
        ManagementLock { arm }
    }

    fn wanted(inputs: &Props) -> Result<Wanted, ProviderError> {
        let scope = inputs.text("scope")?;
        let scope = id_path(TYPE, &scope).map_err(|_| {
            invalid(format!(
                "`scope` must be an Azure resource id, such as a resource group's `resourceGroupId`; got `{scope}`"
            ))
        })?;
        let name = inputs.text("name")?;
        if name.is_empty()
            || name.chars().count() > 260
            || name
                .chars()
                .any(|c| c.is_control() || "<>%&:\\?/".contains(c))
        {
            return Err(invalid(format!(
                "`name` `{name}` is not a lock name: at most 260 characters, none of < > % & : \\ ? / or control characters"
            )));
        }
        let given = inputs.text("level")?;
        let level = LEVELS
            .into_iter()
            .find(|l| l.eq_ignore_ascii_case(&given))
            .ok_or_else(|| {
                invalid(format!(
                    "`level` must be `CanNotDelete` or `ReadOnly`, got `{given}`"
                ))
            })?;
        let notes = inputs.opt_text("notes").filter(|n| !n.is_empty());
        if notes.as_ref().is_some_and(|n| n.chars().count() > 512) {
            return Err(invalid("`notes` may hold at most 512 characters".into()));
        }
        Ok(Wanted {
            scope,
            name,
            level,
            notes,
        })
    }

    fn path(scope: &str, name: &str) -> String {
        format!(
            "{scope}/providers/Microsoft.Authorization/locks/{}",
            segment(name)
        )
    }

    async fn put(&self, wanted: &Wanted, mark: &Mark) -> Result<Json, ProviderError> {
        let notes = mark.append_to(wanted.notes.as_deref());
        if notes.chars().count() > 512 {
            return Err(invalid(format!(
                "`notes` may hold at most {} characters (ARM's 512, less Paddock's ownership mark)",
                512 - (notes.chars().count()
                    - wanted.notes.as_ref().map_or(0, |n| n.chars().count()))
            )));
        }
        let properties = json!({ "level": wanted.level, "notes": notes });
        let reply = self
            .arm
            .http
            .send(
                Call::put(LOCK, Self::path(&wanted.scope, &wanted.name))
                    .query("api-version", LOCKS_API_VERSION)
                    .json(json!({ "properties": properties })),
            )
            .await
            .map_err(arm_error)?;
        Ok(reply.body)
    }

    async fn get(&self, path: String) -> Result<Option<Json>, ProviderError> {
        let reply = found(
            self.arm
                .http
                .send(Call::get(LOCK, path).query("api-version", LOCKS_API_VERSION))
                .await,
        )
        .map_err(arm_error)?;
        Ok(reply.map(|r| r.body))
    }

    async fn create_or_update(
        &self,
        r: &ResourceRef<'_>,
        inputs: &Props,
    ) -> Result<Created, ProviderError> {
        let lock = self.put(&Self::wanted(inputs)?, &Mark::of(r)).await?;
        Ok(Created {
            id: lock["id"].as_str().unwrap_or_default().to_owned(),
            outputs: outputs(&lock),
        })
    }
}

/// Who placed each lock at `scope` (and below it), as the marks at the end of their notes
/// say: the lock of a stack vouches for the scope it holds (see the module's doc).
pub(super) async fn placed_at(arm: &Arm, scope: &str) -> Result<Vec<Owner>, ProviderError> {
    let sent = arm
        .http
        .send(
            Call::get(
                LOCKS_AT,
                format!("{scope}/providers/Microsoft.Authorization/locks"),
            )
            .query("api-version", LOCKS_API_VERSION),
        )
        .await;
    let Some(locks) = found(sent).map_err(arm_error)? else {
        return Ok(Vec::new());
    };
    Ok(locks.body["value"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|lock| owner_in_text(lock["properties"]["notes"].as_str()))
        .collect())
}

fn outputs(lock: &Json) -> Props {
    props([(
        "lockId",
        Value::from(lock["id"].as_str().unwrap_or_default()),
    )])
}

/// `given` if ARM means the same (ids and names are case-insensitive), else ARM's.
fn same_or(given: Option<String>, arm: &str) -> Value {
    Value::from(
        given
            .filter(|g| g.eq_ignore_ascii_case(arm))
            .unwrap_or_else(|| arm.to_owned()),
    )
}

/// The inputs that would make this lock, spelled as `given` spells them where ARM means
/// the same.
fn inputs_of(lock: &Json, given: &Props) -> Props {
    let id = lock["id"].as_str().unwrap_or_default();
    let scope = id.to_lowercase().rfind(MARKER).map_or(id, |at| &id[..at]);
    let properties = &lock["properties"];
    let mut inputs = props([
        ("scope", same_or(given.opt_text("scope"), scope)),
        (
            "name",
            same_or(
                given.opt_text("name"),
                lock["name"].as_str().unwrap_or_default(),
            ),
        ),
        (
            "level",
            same_or(
                given.opt_text("level"),
                properties["level"].as_str().unwrap_or_default(),
            ),
        ),
    ]);
    let (notes, _) = Mark::split(properties["notes"].as_str().unwrap_or_default());
    match Some(notes).filter(|n| !n.is_empty()) {
        Some(notes) => {
            inputs.insert("notes".into(), Value::from(notes));
        }
        // An empty note and none are the same lock.
        None if given.contains_key("notes") => {
            inputs.insert(
                "notes".into(),
                given.get("notes").cloned().unwrap_or(Value::Null),
            );
        }
        None => {}
    }
    inputs
}

#[async_trait]
impl ResourceType for ManagementLock {
    fn schema(&self) -> TypeSchema {
        TypeSchema {
            name: TYPE.into(),
            description: "An Azure management lock: `CanNotDelete` or `ReadOnly` on a scope and everything in it, for every principal, until it is removed by one allowed `Microsoft.Authorization/locks/delete`.".into(),
            inputs: vec![
                PropertySchema::new("scope", PropertyType::String)
                    .required()
                    .replace_on_change()
                    .describe("What is locked, as an ARM id: a resource group's `resourceGroupId`, or `/subscriptions/<id>`."),
                PropertySchema::new("name", PropertyType::String)
                    .required()
                    .replace_on_change()
                    .describe("The lock's name, unique at its scope: at most 260 characters, none of < > % & : \\ ? /."),
                PropertySchema::new("level", PropertyType::String)
                    .required()
                    .describe("`CanNotDelete` (reads and writes go on, deletes are refused) or `ReadOnly` (writes are refused too)."),
                PropertySchema::new("notes", PropertyType::String)
                    .describe("Why the lock is there, for whoever meets it (at most 512 characters)."),
            ],
            outputs: vec![
                PropertySchema::new("lockId", PropertyType::String)
                    .describe("The lock's ARM id."),
            ],
        }
    }

    async fn create(&self, r: ResourceRef<'_>, inputs: &Props) -> Result<Created, ProviderError> {
        self.create_or_update(&r, inputs).await
    }

    async fn read(&self, id: &str, inputs: &Props) -> Result<Option<ReadResult>, ProviderError> {
        let Some(lock) = self.get(id_path(TYPE, id)?).await? else {
            return Ok(None);
        };
        Ok(Some(ReadResult {
            inputs: Some(inputs_of(&lock, inputs)),
            outputs: outputs(&lock),
        }))
    }

    async fn update(
        &self,
        r: ResourceRef<'_>,
        _id: &str,
        _olds: &Props,
        news: &Props,
    ) -> Result<Props, ProviderError> {
        // Scope and name force a replacement: the same lock is PUT with its new level.
        Ok(self.create_or_update(&r, news).await?.outputs)
    }

    async fn delete(&self, id: &str, _: &Props) -> Result<(), ProviderError> {
        let sent = self
            .arm
            .http
            .send(Call::delete(LOCK, id_path(TYPE, id)?).query("api-version", LOCKS_API_VERSION))
            .await;
        // 204 when the lock is already gone, 404 when its scope is.
        found(sent).map_err(arm_error)?;
        Ok(())
    }

    async fn find(
        &self,
        _: ResourceRef<'_>,
        inputs: &Props,
    ) -> Result<Option<Created>, ProviderError> {
        let wanted = Self::wanted(inputs)?;
        Ok(self
            .get(Self::path(&wanted.scope, &wanted.name))
            .await?
            .map(|lock| Created {
                id: lock["id"].as_str().unwrap_or_default().to_owned(),
                outputs: outputs(&lock),
            }))
    }
}
