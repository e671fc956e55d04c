//! `Microsoft.Authorization`: built-in role definitions, and role assignments at
//! subscription and resource-group scope.

use axum::http::{Method, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::{API, Arm, ArmError, ArmResult, json_response, query_param};
use crate::documents::Documents;
use crate::{Identity, SandboxError};
use crate::{now_ms, rfc3339};

/// Current stable api-versions of role assignments and definitions.
pub const AUTHORIZATION_API_VERSIONS: &[&str] = &["2026-08-01", "2022-04-01", "2015-07-01"];

const ASSIGNMENT: &str = "roleAssignment";

/// A built-in role, as Azure defines it.
pub(crate) struct BuiltInRole {
    pub name: &'static str,
    pub id: &'static str,
    description: &'static str,
    pub actions: &'static [&'static str],
    pub not_actions: &'static [&'static str],
}

/// The built-in roles Paddock uses, with Azure's ids.
const BUILT_IN: &[BuiltInRole] = &[
    BuiltInRole {
        name: "Owner",
        id: "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
        description: "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
        actions: &["*"],
        not_actions: &[],
    },
    BuiltInRole {
        name: "Contributor",
        id: "b24988ac-6180-42a0-ab88-20f7382dd24c",
        description: "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC.",
        actions: &["*"],
        not_actions: &[
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/elevateAccess/Action",
        ],
    },
    BuiltInRole {
        name: "Reader",
        id: "acdd72a7-3c35-4c8d-ab8b-9ca3bf74b8e7",
        description: "View all resources, but does not allow you to make any changes.",
        actions: &["*/read"],
        not_actions: &[],
    },
    BuiltInRole {
        name: "User Access Administrator",
        id: "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
        description: "Lets you manage user access to Azure resources.",
        actions: &["*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"],
        not_actions: &[],
    },
];

/// Owner's role definition id.
pub const OWNER_ROLE_ID: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";

/// A role assignment document.
fn assignment_doc(
    identity: &Identity,
    scope: &str,
    name: &str,
    role: &BuiltInRole,
    principal_id: &str,
    principal_type: &str,
    description: Option<&str>,
) -> Value {
    let now = rfc3339(now_ms());
    let mut doc = json!({
        "id": format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"),
        "name": name,
        "type": "Microsoft.Authorization/roleAssignments",
        "properties": {
            "roleDefinitionId": format!("/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{}", identity.subscription_id, role.id),
            "principalId": principal_id,
            "principalType": principal_type,
            "scope": scope,
            "createdOn": now,
            "updatedOn": now,
        },
    });
    if let Some(description) = description {
        doc["properties"]["description"] = json!(description);
    }
    doc
}

/// Assigns a built-in role to a service principal at `scope` (how the sandbox seeds its
/// platform identity).
pub(crate) async fn grant(
    docs: &Documents,
    identity: &Identity,
    scope: &str,
    role_id: &str,
    principal_id: &str,
) -> Result<(), SandboxError> {
    let role = built_in(role_id).expect("a built-in role");
    let name = crate::uuid_v4();
    let doc = assignment_doc(
        identity,
        scope,
        &name,
        role,
        principal_id,
        "ServicePrincipal",
        None,
    );
    docs.put(API, ASSIGNMENT, &assignment_key(scope, &name), &doc)
        .await
}

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn role_definition(scope: &str, role: &BuiltInRole) -> Value {
    json!({
        "id": format!("{scope}/providers/Microsoft.Authorization/roleDefinitions/{}", role.id),
        "name": role.id,
        "type": "Microsoft.Authorization/roleDefinitions",
        "properties": {
            "roleName": role.name,
            "type": "BuiltInRole",
            "description": role.description,
            "assignableScopes": ["/"],
            "permissions": [{"actions": role.actions, "notActions": role.not_actions, "dataActions": [], "notDataActions": []}],
            "createdOn": "2015-02-02T21:55:09.8806423Z",
            "updatedOn": "2024-01-01T00:00:00.0000000Z",
        },
    })
}

/// The built-in role a `roleDefinitionId` names (full id or bare GUID).
pub(crate) fn built_in(role_definition_id: &str) -> Option<&'static BuiltInRole> {
    let guid = role_definition_id
        .rsplit('/')
        .next()
        .unwrap_or(role_definition_id);
    BUILT_IN.iter().find(|r| r.id.eq_ignore_ascii_case(guid))
}

/// The RBAC action a request under `providers/Microsoft.Authorization` performs.
pub(crate) fn action(method: &Method, rest: &[&str]) -> String {
    let what = match rest.first().copied() {
        Some("roledefinitions") => "roleDefinitions",
        Some("locks") => "locks",
        _ => "roleAssignments",
    };
    let verb = match *method {
        Method::PUT | Method::PATCH => "write",
        Method::DELETE => "delete",
        _ => "read",
    };
    format!("Microsoft.Authorization/{what}/{verb}")
}

/// `pattern` (with `*` wildcards, case-insensitive) matches `action`.
fn glob(pattern: &str, action: &str) -> bool {
    let (pattern, action) = (pattern.to_lowercase(), action.to_lowercase());
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = action.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i == parts.len() - 1 {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// `a` is `b` or lies below it (scopes are case-insensitive paths).
fn within(a: &str, b: &str) -> bool {
    let (a, b) = (a.to_lowercase(), b.to_lowercase());
    a == b || a.starts_with(&format!("{b}/"))
}

/// The query's `$filter`, decoded as a query value is (`+` is a space, as clients that
/// form-encode queries send it).
pub(super) fn odata_filter(uri: &Uri) -> String {
    query_param(uri, "%24filter")
        .or_else(|| query_param(uri, "$filter"))
        .map(|f| crate::percent_decode(&f.replace('+', " ")))
        .unwrap_or_default()
}

fn assignment_key(scope: &str, name: &str) -> String {
    format!("{}|{}", scope.to_lowercase(), name.to_lowercase())
}

impl Arm {
    /// Routes `{scope}/providers/Microsoft.Authorization/{rest}`.
    pub(super) async fn authorization(
        &self,
        method: &Method,
        uri: &Uri,
        scope: &str,
        rest: &[&str],
        body: &[u8],
    ) -> ArmResult {
        let lower: Vec<String> = rest.iter().map(|s| s.to_lowercase()).collect();
        let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
        match (lower.as_slice(), method) {
            (["roledefinitions"], &Method::GET) => {
                let filter = odata_filter(uri);
                let wanted = filter
                    .strip_prefix("roleName eq '")
                    .and_then(|f| f.strip_suffix('\''));
                let value: Vec<Value> = BUILT_IN
                    .iter()
                    .filter(|r| wanted.is_none_or(|w| w.eq_ignore_ascii_case(r.name)))
                    .map(|r| role_definition(scope, r))
                    .collect();
                Ok(json_response(StatusCode::OK, &json!({ "value": value })))
            }
            (["roledefinitions", _], &Method::GET) => {
                let role = built_in(rest[1]).ok_or_else(|| {
                    ArmError::new(
                        StatusCode::NOT_FOUND,
                        "RoleDefinitionDoesNotExist",
                        format!(
                            "The specified role definition with ID '{}' does not exist.",
                            rest[1]
                        ),
                    )
                })?;
                Ok(json_response(StatusCode::OK, &role_definition(scope, role)))
            }
            (["roleassignments"], &Method::GET) => self.list_assignments(uri, scope).await,
            (["roleassignments", _], m) => {
                let name = rest[1];
                if !is_guid(name) {
                    return Err(ArmError::new(
                        StatusCode::BAD_REQUEST,
                        "InvalidRoleAssignmentId",
                        format!(
                            "The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID."
                        ),
                    ));
                }
                match *m {
                    Method::PUT => self.create_assignment(scope, name, body).await,
                    Method::GET => {
                        let a = self
                            .docs
                            .get(API, ASSIGNMENT, &assignment_key(scope, name))
                            .await?
                            .ok_or_else(|| {
                                ArmError::new(
                                    StatusCode::NOT_FOUND,
                                    "RoleAssignmentNotFound",
                                    format!("The role assignment '{name}' is not found."),
                                )
                            })?;
                        Ok(json_response(StatusCode::OK, &a))
                    }
                    Method::DELETE => {
                        let key = assignment_key(scope, name);
                        match self.docs.get(API, ASSIGNMENT, &key).await? {
                            Some(a) => {
                                self.docs.delete(API, ASSIGNMENT, &key).await?;
                                Ok(json_response(StatusCode::OK, &a))
                            }
                            None => Ok(StatusCode::NO_CONTENT.into_response()),
                        }
                    }
                    _ => Err(super::method_not_allowed(method)),
                }
            }
            _ => Err(super::no_route(uri)),
        }
    }

    async fn create_assignment(&self, scope: &str, name: &str, body: &[u8]) -> ArmResult {
        let invalid = |m: &str| {
            ArmError::new(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContent",
                format!("The request content was invalid and could not be deserialized: {m}"),
            )
        };
        let request: Value = serde_json::from_slice(body).map_err(|e| invalid(&e.to_string()))?;
        let props = request
            .get("properties")
            .filter(|p| p.is_object())
            .ok_or_else(|| invalid("`properties` is required."))?;
        let role_definition_id = props["roleDefinitionId"]
            .as_str()
            .ok_or_else(|| invalid("`properties.roleDefinitionId` is required."))?;
        let principal_id = props["principalId"]
            .as_str()
            .ok_or_else(|| invalid("`properties.principalId` is required."))?;
        let role = built_in(role_definition_id).ok_or_else(|| {
            ArmError::new(
                StatusCode::BAD_REQUEST,
                "RoleDefinitionDoesNotExist",
                format!(
                    "The specified role definition with ID '{}' does not exist.",
                    role_definition_id.rsplit('/').next().unwrap_or_default()
                ),
            )
        })?;
        if !is_guid(principal_id) {
            return Err(ArmError::new(
                StatusCode::BAD_REQUEST,
                "InvalidPrincipalId",
                format!(
                    "The principal ID '{principal_id}' is not valid. Principal ID must be a GUID."
                ),
            ));
        }
        let principal_type = props["principalType"].as_str().unwrap_or("User");
        if ![
            "User",
            "Group",
            "ServicePrincipal",
            "ForeignGroup",
            "Device",
        ]
        .contains(&principal_type)
        {
            return Err(invalid(&format!(
                "`properties.principalType` '{principal_type}' is not one of User, Group, ServicePrincipal, ForeignGroup, Device."
            )));
        }
        let role_definition_id = format!(
            "/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{}",
            self.identity.subscription_id, role.id
        );
        let key = assignment_key(scope, name);
        let same = |a: &Value| {
            a["properties"]["principalId"]
                .as_str()
                .is_some_and(|p| p.eq_ignore_ascii_case(principal_id))
                && a["properties"]["roleDefinitionId"]
                    .as_str()
                    .is_some_and(|r| r.eq_ignore_ascii_case(&role_definition_id))
        };
        if let Some(existing) = self.docs.get(API, ASSIGNMENT, &key).await? {
            return if same(&existing) {
                // The description is the one thing a PUT may change (Set-AzRoleAssignment).
                let mut updated = existing.clone();
                match props["description"].as_str() {
                    Some(d) => updated["properties"]["description"] = json!(d),
                    None => {
                        if let Some(p) = updated["properties"].as_object_mut() {
                            p.remove("description");
                        }
                    }
                }
                if updated != existing {
                    updated["properties"]["updatedOn"] = json!(rfc3339(now_ms()));
                    self.docs.put(API, ASSIGNMENT, &key, &updated).await?;
                }
                Ok(json_response(StatusCode::OK, &updated))
            } else {
                Err(ArmError::new(
                    StatusCode::CONFLICT,
                    "RoleAssignmentUpdateNotPermitted",
                    "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
                ))
            };
        }
        // Without `principalType`, ARM looks the principal up in a directory replica that
        // lags behind Graph: a principal created moments ago is not found yet.
        if !props["principalType"].is_string() {
            let born = crate::graph::principal_created_ms(&self.docs, principal_id).await?;
            let visible = born.is_some_and(|at| {
                now_ms() - at >= self.config.principal_replication_delay.as_millis() as i64
            });
            if !visible {
                return Err(ArmError::new(
                    StatusCode::BAD_REQUEST,
                    "PrincipalNotFound",
                    format!(
                        "Principal {} does not exist in the directory {}. Check that you have the correct principal ID. If you are creating this principal and then immediately assigning a role, this error might be related to a replication delay. In this case, set the role assignment principalType property to a value, such as ServicePrincipal, User, or Group. See https://aka.ms/docs-principaltype",
                        principal_id.replace('-', ""),
                        self.identity.tenant_id
                    ),
                ));
            }
        }
        let at_scope = format!("{}|", scope.to_lowercase());
        if self
            .docs
            .list(API, ASSIGNMENT, &at_scope)
            .await?
            .iter()
            .any(|(_, a)| same(a))
        {
            return Err(ArmError::new(
                StatusCode::CONFLICT,
                "RoleAssignmentExists",
                "The role assignment already exists.",
            ));
        }
        let assignment = assignment_doc(
            &self.identity,
            scope,
            name,
            role,
            principal_id,
            principal_type,
            props["description"].as_str(),
        );
        self.docs.put(API, ASSIGNMENT, &key, &assignment).await?;
        Ok(json_response(StatusCode::CREATED, &assignment))
    }

    /// Assignments that apply at `scope`: above, at and below it; `atScope()` keeps those
    /// at or above; `principalId eq '…'` keeps one principal's.
    async fn list_assignments(&self, uri: &Uri, scope: &str) -> ArmResult {
        let filter = odata_filter(uri);
        let at_scope = filter.contains("atScope()");
        let principal = filter
            .split("principalId eq '")
            .nth(1)
            .and_then(|rest| rest.split('\'').next());
        let all = self.docs.list(API, ASSIGNMENT, "").await?;
        let value: Vec<Value> = all
            .into_iter()
            .map(|(_, a)| a)
            .filter(|a| {
                let s = a["properties"]["scope"].as_str().unwrap_or_default();
                within(scope, s) || (!at_scope && within(s, scope))
            })
            .filter(|a| {
                principal.is_none_or(|p| {
                    a["properties"]["principalId"]
                        .as_str()
                        .is_some_and(|id| id.eq_ignore_ascii_case(p))
                })
            })
            .collect();
        Ok(json_response(StatusCode::OK, &json!({ "value": value })))
    }

    /// Whether a role assigned to `principal` at `scope` or above grants `action`.
    pub(super) async fn allowed(
        &self,
        principal: &str,
        action: &str,
        scope: &str,
    ) -> Result<bool, ArmError> {
        for (_, a) in self.docs.list(API, ASSIGNMENT, "").await? {
            let p = &a["properties"];
            let applies = p["principalId"]
                .as_str()
                .is_some_and(|id| id.eq_ignore_ascii_case(principal))
                && p["scope"].as_str().is_some_and(|s| within(scope, s));
            let role = p["roleDefinitionId"].as_str().and_then(built_in);
            if let (true, Some(role)) = (applies, role)
                && role.actions.iter().any(|pat| glob(pat, action))
                && !role.not_actions.iter().any(|pat| glob(pat, action))
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether any role is assigned to `principal` at `scope` or below it.
    pub(super) async fn assigned_within(
        &self,
        principal: &str,
        scope: &str,
    ) -> Result<bool, ArmError> {
        Ok(self
            .docs
            .list(API, ASSIGNMENT, "")
            .await?
            .iter()
            .any(|(_, a)| {
                let p = &a["properties"];
                p["principalId"]
                    .as_str()
                    .is_some_and(|id| id.eq_ignore_ascii_case(principal))
                    && p["scope"].as_str().is_some_and(|s| within(s, scope))
            }))
    }

    /// Removes the assignments at or below a scope that is going away.
    pub(super) async fn remove_assignments_within(&self, scope: &str) -> Result<(), ArmError> {
        for (key, a) in self.docs.list(API, ASSIGNMENT, "").await? {
            if a["properties"]["scope"]
                .as_str()
                .is_some_and(|s| within(s, scope))
            {
                self.docs.delete(API, ASSIGNMENT, &key).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn permission_patterns_match_as_azure_rbac_does() {
        assert!(glob(
            "*",
            "Microsoft.Resources/subscriptions/resourceGroups/write"
        ));
        assert!(glob(
            "*/read",
            "Microsoft.Resources/subscriptions/resourceGroups/read"
        ));
        assert!(!glob(
            "*/read",
            "Microsoft.Resources/subscriptions/resourceGroups/write"
        ));
        assert!(glob(
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/roleAssignments/write"
        ));
        assert!(!glob(
            "Microsoft.Authorization/*/Write",
            "Microsoft.Resources/subscriptions/resourceGroups/write"
        ));
        assert!(glob(
            "Microsoft.Authorization/*",
            "microsoft.authorization/roleassignments/delete"
        ));
    }
}
