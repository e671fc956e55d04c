//! `azure:roleAssignment`: a role granted to a principal at a scope (a resource group's
//! id, usually).
//!
//! The assignment's name is derived from what it grants, (scope, principal, role
//! definition), so a create that is retried, or re-run after a crash, addresses the same
//! assignment instead of making a second one; an equal assignment that exists under
//! another name (`RoleAssignmentExists`) is adopted only if it carries this stack's mark,
//! which ends the assignment's `description` (assignments have no tags). `principalType` is always sent, so ARM
//! does not look the principal up in a directory replica that may not know it yet
//! (`PrincipalNotFound` right after the principal is created).

use std::sync::Arc;

use async_trait::async_trait;
use paddock_engine::provider::{
    Created, PropertySchema, PropertyType, ReadResult, ResourceRef, TypeSchema,
};
use paddock_engine::{Props, ProviderError, Value};
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};

use super::{AUTHORIZATION_API_VERSION, Arm, arm_error, id_path, is_guid};
use crate::family::{PropsExt, ResourceType, found, props};
use crate::http::Call;
use crate::ownership::{self, Mark, Owner, Place};

const TYPE: &str = "azure:roleAssignment";
const ASSIGNMENT: &str =
    "{scope}/providers/Microsoft.Authorization/roleAssignments/{roleAssignmentName}";
const ASSIGNMENTS: &str = "{scope}/providers/Microsoft.Authorization/roleAssignments";
const DEFINITIONS: &str = "{scope}/providers/Microsoft.Authorization/roleDefinitions";
const DEFINITION: &str = "{roleDefinitionId}";
const DEFAULT_PRINCIPAL_TYPE: &str = "ServicePrincipal";
/// What separates a role assignment's scope from its name in its id.
const ASSIGNMENTS_SEGMENT: &str = "/providers/microsoft.authorization/roleassignments/";
const DEFINITIONS_SEGMENT: &str = "/providers/microsoft.authorization/roledefinitions/";
/// ARM's codes for a scope that does not exist.
const SCOPE_NOT_FOUND: &[&str] = &[
    "ResourceGroupNotFound",
    "SubscriptionNotFound",
    "ResourceNotFound",
    "ParentResourceNotFound",
];

pub(super) struct RoleAssignment {
    arm: Arc<Arm>,
}

/// A resolved role definition.
struct Role {
    /// Lower-case GUID: what the assignment's name is derived from.
    guid: String,
    /// The `roleDefinitionId` sent to ARM.
    definition_id: String,
}

/// What the inputs ask for, resolved.
struct Wanted {
    scope: String,
    principal_id: String,
    role: Role,
    principal_type: String,
    description: Option<String>,
}

impl Wanted {
    /// The assignment as PUT: an assignment has no tags, so the mark ends its description.
    fn body(&self, mark: &Mark) -> Json {
        json!({ "properties": {
            "roleDefinitionId": self.role.definition_id,
            "principalId": self.principal_id,
            "principalType": self.principal_type,
            "description": mark.append_to(self.description.as_deref()),
        }})
    }

    /// Where the assignment is, for a conflict: `existing` is what holds its place.
    fn place(&self, existing: &Json) -> Place {
        Place {
            ty: TYPE.into(),
            name: format!(
                "granting role {} to principal {}",
                self.role.guid, self.principal_id
            ),
            location: format!("scope `{}`", self.scope),
            id: existing["id"].as_str().unwrap_or_default().to_owned(),
        }
    }

    /// The assignment's deterministic name.
    fn name(&self) -> String {
        assignment_name(&self.scope, &self.principal_id, &self.role.guid)
    }

    /// Whether an assignment grants what this asks for.
    fn granted_by(&self, assignment: &Json) -> bool {
        let p = &assignment["properties"];
        let text = |k: &str| p[k].as_str().unwrap_or_default();
        text("principalId").eq_ignore_ascii_case(&self.principal_id)
            && text("scope").eq_ignore_ascii_case(&self.scope)
            && definition_guid(text("roleDefinitionId")).as_deref() == Some(self.role.guid.as_str())
    }
}

/// A v4-shaped UUID from SHA-256 over (scope, principal, role definition), all compared
/// case-insensitively by ARM and so lower-cased here.
fn assignment_name(scope: &str, principal_id: &str, role_guid: &str) -> String {
    let digest = Sha256::digest(format!(
        "paddock:azure:roleAssignment\n{}\n{}\n{}",
        scope.trim_end_matches('/').to_lowercase(),
        principal_id.to_lowercase(),
        role_guid.to_lowercase()
    ));
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The GUID a role definition id (full or bare) ends with, lower-cased.
fn definition_guid(role: &str) -> Option<String> {
    if is_guid(role) {
        return Some(role.to_lowercase());
    }
    let lower = role.to_lowercase();
    let at = lower.rfind(DEFINITIONS_SEGMENT)?;
    let guid = &lower[at + DEFINITIONS_SEGMENT.len()..];
    is_guid(guid).then(|| guid.to_owned())
}

/// Whether `role` names a role definition by id rather than by name.
fn is_definition_id(role: &str) -> bool {
    is_guid(role) || role.starts_with('/')
}

/// The scope part of an assignment's id.
fn scope_of_id(id: &str) -> Option<&str> {
    let at = id.to_lowercase().rfind(ASSIGNMENTS_SEGMENT)?;
    Some(&id[..at])
}

fn outputs(assignment: &Json) -> Props {
    props([
        (
            "roleAssignmentId",
            Value::from(assignment["id"].as_str().unwrap_or_default()),
        ),
        (
            "roleDefinitionId",
            Value::from(
                assignment["properties"]["roleDefinitionId"]
                    .as_str()
                    .unwrap_or_default(),
            ),
        ),
    ])
}

/// Who made an assignment, by the mark ending its description.
fn owner(assignment: &Json) -> Owner {
    ownership::owner_in_text(assignment["properties"]["description"].as_str())
}

fn created(assignment: &Json) -> Created {
    Created {
        id: assignment["id"].as_str().unwrap_or_default().to_owned(),
        outputs: outputs(assignment),
    }
}

/// `given` if ARM means the same (ARM compares ids case-insensitively), else ARM's.
fn same_or(given: Option<String>, arm: &str) -> Value {
    Value::from(
        given
            .filter(|g| g.eq_ignore_ascii_case(arm))
            .unwrap_or_else(|| arm.to_owned()),
    )
}

impl RoleAssignment {
    pub(super) fn new(arm: Arc<Arm>) -> RoleAssignment {
        RoleAssignment { arm }
    }

    async fn wanted(&self, inputs: &Props) -> Result<Wanted, ProviderError> {
        let scope = inputs.text("scope")?;
        let scope = id_path(TYPE, &scope).map_err(|_| {
            ProviderError::new(
                "InvalidInput",
                format!("`scope` must be an Azure resource id, such as a resource group's `resourceGroupId`; got `{scope}`"),
            )
        })?;
        let principal_id = inputs.text("principalId")?;
        let role = self.resolve(&scope, &inputs.text("role")?).await?;
        Ok(Wanted {
            scope,
            principal_id,
            role,
            principal_type: inputs.text_or("principalType", DEFAULT_PRINCIPAL_TYPE),
            description: inputs.opt_text("description").filter(|d| !d.is_empty()),
        })
    }

    /// A role's definition: by id as given, or by name looked up at the scope.
    async fn resolve(&self, scope: &str, role: &str) -> Result<Role, ProviderError> {
        let by_id = |guid: String| {
            let definition_id = if role.starts_with('/') {
                role.to_owned()
            } else {
                format!(
                    "/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{guid}",
                    self.arm.subscription_id
                )
            };
            Role {
                guid,
                definition_id,
            }
        };
        if is_definition_id(role) {
            return definition_guid(role).map(by_id).ok_or_else(|| {
                ProviderError::new(
                    "InvalidInput",
                    format!("`role` `{role}` is neither a role name nor a role definition id (…/providers/Microsoft.Authorization/roleDefinitions/<GUID>)"),
                )
            });
        }
        if let Some(guid) = self.arm.role_guid(role) {
            return Ok(by_id(guid));
        }
        let filter = format!("roleName eq '{}'", role.replace('\'', "''"));
        let mut call = Call::get(
            DEFINITIONS,
            format!("{scope}/providers/Microsoft.Authorization/roleDefinitions"),
        )
        .query("$filter", filter)
        .query("api-version", AUTHORIZATION_API_VERSION);
        loop {
            let page = self.arm.http.send(call).await.map_err(arm_error)?;
            let definitions = page.body["value"].as_array().cloned().unwrap_or_default();
            for d in &definitions {
                if let (Some(name), Some(guid)) = (
                    d["properties"]["roleName"].as_str(),
                    d["name"].as_str().filter(|g| is_guid(g)),
                ) {
                    self.arm.remember_role(name, guid);
                }
            }
            if let Some(guid) = self.arm.role_guid(role) {
                return Ok(by_id(guid));
            }
            match page.body["nextLink"].as_str() {
                Some(next) => call = Call::get(DEFINITIONS, next),
                None => break,
            }
        }
        Err(ProviderError::new(
            "RoleDefinitionDoesNotExist",
            format!("no role named `{role}` is defined at `{scope}`"),
        )
        .with_hint(
            "use a role's name as Azure spells it (Owner, Contributor, Reader, User Access Administrator, …) or a role definition id",
        ))
    }

    /// The role's name, for the inputs of an assignment read back: `given` if it names
    /// the same role, else the name ARM has.
    async fn role_input(
        &self,
        definition_id: &str,
        given: Option<String>,
    ) -> Result<Value, ProviderError> {
        let Some(guid) = definition_guid(definition_id) else {
            return Ok(Value::from(definition_id));
        };
        if let Some(g) = &given {
            let same = if is_definition_id(g) {
                definition_guid(g).as_deref() == Some(guid.as_str())
            } else {
                self.arm.role_guid(g).as_deref() == Some(guid.as_str())
            };
            if same {
                return Ok(Value::from(g.clone()));
            }
        }
        let name = match self.arm.role_name(&guid) {
            Some(name) => name,
            None => {
                let definition = found(
                    self.arm
                        .http
                        .send(
                            Call::get(DEFINITION, definition_id.to_owned())
                                .query("api-version", AUTHORIZATION_API_VERSION),
                        )
                        .await,
                )
                .map_err(arm_error)?;
                match definition
                    .as_ref()
                    .and_then(|d| d.body["properties"]["roleName"].as_str())
                {
                    Some(name) => {
                        self.arm.remember_role(name, &guid);
                        name.to_owned()
                    }
                    // A role deleted since: its id is all there is.
                    None => return Ok(Value::from(definition_id)),
                }
            }
        };
        Ok(same_or(given.filter(|g| !is_definition_id(g)), &name))
    }

    async fn get(&self, path: String) -> Result<Option<Json>, ProviderError> {
        let reply = found(
            self.arm
                .http
                .send(Call::get(ASSIGNMENT, path).query("api-version", AUTHORIZATION_API_VERSION))
                .await,
        )
        .map_err(arm_error)?;
        Ok(reply.map(|r| r.body))
    }

    /// The assignment that grants what `w` asks for: by its deterministic name, else any
    /// equal one at the scope (made by hand, or by an earlier version of Paddock).
    async fn lookup(&self, w: &Wanted) -> Result<Option<Json>, ProviderError> {
        let path = format!(
            "{}/providers/Microsoft.Authorization/roleAssignments/{}",
            w.scope,
            w.name()
        );
        if let Some(a) = self.get(path).await?
            && w.granted_by(&a)
        {
            return Ok(Some(a));
        }
        let first = Call::get(
            ASSIGNMENTS,
            format!(
                "{}/providers/Microsoft.Authorization/roleAssignments",
                w.scope
            ),
        )
        .query("$filter", format!("principalId eq '{}'", w.principal_id))
        .query("api-version", AUTHORIZATION_API_VERSION);
        let mut call = Some(first);
        while let Some(c) = call.take() {
            let Some(page) = found(self.arm.http.send(c).await).map_err(arm_error)? else {
                return Ok(None);
            };
            if let Some(a) = page.body["value"]
                .as_array()
                .and_then(|all| all.iter().find(|a| w.granted_by(a)))
            {
                return Ok(Some(a.clone()));
            }
            call = page.body["nextLink"]
                .as_str()
                .map(|next| Call::get(ASSIGNMENTS, next));
        }
        Ok(None)
    }

    /// PUTs the assignment at `path` for `r`; one that exists under another name is
    /// adopted if it carries the mark of `r`'s stack, and a conflict otherwise.
    async fn put(
        &self,
        path: String,
        w: &Wanted,
        r: &ResourceRef<'_>,
    ) -> Result<Json, ProviderError> {
        let sent = self
            .arm
            .http
            .send(
                Call::put(ASSIGNMENT, path.clone())
                    .query("api-version", AUTHORIZATION_API_VERSION)
                    .json(w.body(&Mark::of(r))),
            )
            .await;
        match sent {
            Ok(reply) if reply.body["id"].is_string() => Ok(reply.body),
            Ok(_) => self.get(path).await?.ok_or_else(|| {
                ProviderError::new(
                    "RoleAssignmentNotFound",
                    "ARM accepted the role assignment but does not show it",
                )
            }),
            Err(e) if e.code() == "RoleAssignmentExists" => match self.lookup(w).await? {
                Some(existing) => {
                    ownership::admit(r, &owner(&existing), &w.place(&existing))?;
                    Ok(existing)
                }
                None => Err(arm_error(e)),
            },
            Err(e) => Err(arm_error(e)),
        }
    }
}

fn scope_not_found(e: &ProviderError) -> bool {
    SCOPE_NOT_FOUND.contains(&e.code.as_str())
}

#[async_trait]
impl ResourceType for RoleAssignment {
    fn schema(&self) -> TypeSchema {
        TypeSchema {
            name: TYPE.into(),
            description: "An Azure role assignment: a role granted to a principal at a scope.".into(),
            inputs: vec![
                PropertySchema::new("scope", PropertyType::String)
                    .required()
                    .replace_on_change()
                    .describe("Where the role applies: an ARM id, such as a resource group's `resourceGroupId`."),
                PropertySchema::new("principalId", PropertyType::String)
                    .required()
                    .replace_on_change()
                    .describe("The object id of the service principal (or user, or group) granted the role."),
                PropertySchema::new("role", PropertyType::String)
                    .required()
                    .replace_on_change()
                    .describe("A role's name, such as Contributor, or a role definition id."),
                PropertySchema::new("principalType", PropertyType::String).describe(
                    "ServicePrincipal (the default), User, Group, ForeignGroup or Device: always sent, so a principal created moments ago is found.",
                ),
                PropertySchema::new("description", PropertyType::String)
                    .describe("Why the role is granted."),
            ],
            outputs: vec![
                PropertySchema::new("roleAssignmentId", PropertyType::String)
                    .describe("The assignment's ARM id."),
                PropertySchema::new("roleDefinitionId", PropertyType::String)
                    .describe("The id of the role definition assigned."),
            ],
        }
    }

    async fn create(&self, r: ResourceRef<'_>, inputs: &Props) -> Result<Created, ProviderError> {
        let w = self.wanted(inputs).await?;
        let path = format!(
            "{}/providers/Microsoft.Authorization/roleAssignments/{}",
            w.scope,
            w.name()
        );
        // The name is Paddock's, but another stack may grant the same: a PUT would take
        // its assignment over.
        if let Some(existing) = self.get(path.clone()).await? {
            ownership::admit(&r, &owner(&existing), &w.place(&existing))?;
        }
        Ok(created(&self.put(path, &w, &r).await?))
    }

    async fn read(&self, id: &str, inputs: &Props) -> Result<Option<ReadResult>, ProviderError> {
        let Some(a) = self.get(id_path(TYPE, id)?).await? else {
            return Ok(None);
        };
        let p = &a["properties"];
        let text = |k: &str| p[k].as_str().unwrap_or_default();
        let scope = match text("scope") {
            "" => scope_of_id(id).unwrap_or_default(),
            s => s,
        };
        let mut read = props([
            (
                "scope",
                same_or(
                    inputs
                        .opt_text("scope")
                        .map(|s| s.trim_end_matches('/').to_owned()),
                    scope,
                ),
            ),
            (
                "principalId",
                same_or(inputs.opt_text("principalId"), text("principalId")),
            ),
            (
                "role",
                self.role_input(text("roleDefinitionId"), inputs.opt_text("role"))
                    .await?,
            ),
        ]);
        let principal_type = text("principalType");
        if inputs.contains_key("principalType")
            || !(principal_type.is_empty() || principal_type == DEFAULT_PRINCIPAL_TYPE)
        {
            read.insert(
                "principalType".into(),
                same_or(inputs.opt_text("principalType"), principal_type),
            );
        }
        let (description, _) = Mark::split(text("description"));
        match description.as_str() {
            "" if inputs.opt_text("description").as_deref() == Some("") => {
                read.insert("description".into(), Value::from(""));
            }
            "" => {}
            d => {
                read.insert("description".into(), Value::from(d));
            }
        }
        Ok(Some(ReadResult {
            inputs: Some(read),
            outputs: outputs(&a),
        }))
    }

    async fn update(
        &self,
        r: ResourceRef<'_>,
        id: &str,
        _olds: &Props,
        news: &Props,
    ) -> Result<Props, ProviderError> {
        // Scope, principal and role force a replacement: what changes here (description,
        // principal type) is PUT to the same assignment.
        let w = self.wanted(news).await?;
        Ok(outputs(&self.put(id_path(TYPE, id)?, &w, &r).await?))
    }

    async fn delete(&self, id: &str, _: &Props) -> Result<(), ProviderError> {
        let deleted = self
            .arm
            .http
            .send(
                Call::delete(ASSIGNMENT, id_path(TYPE, id)?)
                    .query("api-version", AUTHORIZATION_API_VERSION),
            )
            .await;
        match deleted {
            Ok(_) => Ok(()),
            // The assignment is gone, or its scope is (and the assignment with it).
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(arm_error(e)),
        }
    }

    async fn find(
        &self,
        r: ResourceRef<'_>,
        inputs: &Props,
    ) -> Result<Option<Created>, ProviderError> {
        let w = match self.wanted(inputs).await {
            Ok(w) => w,
            Err(e) if scope_not_found(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(self
            .lookup(&w)
            .await?
            .filter(|a| owner(a).made_by(&r))
            .as_ref()
            .map(created))
    }

    async fn owner(&self, id: &str, _: &Props) -> Result<Owner, ProviderError> {
        Ok(self
            .get(id_path(TYPE, id)?)
            .await?
            .map_or(Owner::Gone, |a| owner(&a)))
    }

    async fn mark_imported(
        &self,
        r: ResourceRef<'_>,
        id: &str,
        _: &Props,
    ) -> Result<(), ProviderError> {
        let path = id_path(TYPE, id)?;
        let Some(a) = self.get(path.clone()).await? else {
            return Ok(());
        };
        let p = &a["properties"];
        let (description, _) = Mark::split(p["description"].as_str().unwrap_or_default());
        let body = json!({ "properties": {
            "roleDefinitionId": p["roleDefinitionId"],
            "principalId": p["principalId"],
            "principalType": p["principalType"],
            "description": Mark::of(&r).append_to(Some(&description)),
        }});
        self.arm
            .http
            .send(
                Call::put(ASSIGNMENT, path)
                    .query("api-version", AUTHORIZATION_API_VERSION)
                    .json(body),
            )
            .await
            .map_err(arm_error)?;
        Ok(())
    }
}
