//! Azure Resource Manager: resource groups (delete waits for the long-running operation),
//! role assignments (deterministic names, `principalType` set, scoped to a resource
//! group) and management locks (`CanNotDelete`/`ReadOnly` on a scope).
//!
//! The types are built on the shared HTTP layer (Entra client credentials for ARM's
//! audience, retries on 429/5xx honouring `Retry-After`, long-running operations polled
//! as ARM advertises them). Ids are ARM ids, so `read` works from an id alone and
//! `paddock import` can adopt what already exists.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use paddock_engine::ProviderError;

use crate::family::Family;
use crate::http::auth::{EntraSignIn, EntraToken};
use crate::http::{Api, HttpClient, HttpError, reqwest_client};

mod management_lock;
mod resource_group;
mod role_assignment;

pub use management_lock::LOCKS_API_VERSION;

/// How to reach a subscription.
#[derive(Clone)]
pub struct AzureConfig {
    /// ARM's endpoint: `https://management.azure.com`.
    pub arm_url: String,
    pub subscription_id: String,
    /// The platform identity's sign-in (shared with the Entra provider, one token per
    /// audience).
    pub sign_in: Arc<EntraSignIn>,
    /// A CA to trust besides the system's (the sandbox's), PEM.
    pub ca_pem: Option<Vec<u8>>,
}

/// The audience ARM tokens are asked for.
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";
/// `Microsoft.Resources` (resource groups).
pub const RESOURCES_API_VERSION: &str = "2025-04-01";
/// `Microsoft.Authorization` (role assignments and definitions).
pub const AUTHORIZATION_API_VERSION: &str = "2022-04-01";

/// The Azure provider: `azure:resourceGroup`, `azure:roleAssignment` and
/// `azure:managementLock`.
// `HttpError` is the error every provider's constructor returns; its size is the HTTP
// layer's choice.
pub fn provider(config: &AzureConfig) -> Result<Family, HttpError> {
    let inner = reqwest_client(config.ca_pem.as_deref(), None)?;
    let credential = Arc::new(EntraToken {
        sign_in: config.sign_in.clone(),
        scope: ARM_SCOPE.to_owned(),
    });
    let arm = Arc::new(Arm {
        http: HttpClient::new(inner, Api::Arm, config.arm_url.clone(), credential),
        subscription_id: config.subscription_id.clone(),
        roles: Mutex::new(RoleNames::default()),
    });
    Ok(Family::new(
        "azure",
        vec![
            Box::new(resource_group::ResourceGroup::new(arm.clone())),
            Box::new(role_assignment::RoleAssignment::new(arm.clone())),
            Box::new(management_lock::ManagementLock::new(arm)),
        ],
    ))
}

/// What the resource types share: the client and the subscription.
pub(crate) struct Arm {
    http: HttpClient,
    subscription_id: String,
    /// Role definitions already resolved, both ways: built-in and custom role names are
    /// unique in a tenant and their ids never change, so each is looked up once.
    roles: Mutex<RoleNames>,
}

#[derive(Default)]
struct RoleNames {
    /// Lower-cased role name → role definition GUID (lower-case).
    ids: HashMap<String, String>,
    /// Role definition GUID (lower-case) → role name.
    names: HashMap<String, String>,
}

impl Arm {
    fn remember_role(&self, name: &str, guid: &str) {
        let mut roles = self.roles.lock().expect("roles lock");
        roles.ids.insert(name.to_lowercase(), guid.to_lowercase());
        roles.names.insert(guid.to_lowercase(), name.to_owned());
    }

    fn role_guid(&self, name: &str) -> Option<String> {
        self.roles
            .lock()
            .expect("roles lock")
            .ids
            .get(&name.to_lowercase())
            .cloned()
    }

    fn role_name(&self, guid: &str) -> Option<String> {
        self.roles
            .lock()
            .expect("roles lock")
            .names
            .get(&guid.to_lowercase())
            .cloned()
    }
}

/// An ARM failure as a provider error: the code kept, with a hint for the ARM codes a
/// blueprint author meets that the shared hints do not cover.
pub(crate) fn arm_error(e: HttpError) -> ProviderError {
    let hint = match e.code() {
        "InvalidResourceGroupLocation" => Some(
            "a resource group's location cannot change in place: give the group a new name, or set `deleteBeforeReplace: true` on it (everything in it is deleted)",
        ),
        "ResourceGroupBeingDeleted" => {
            Some("the group is still being deleted; run the operation again once it is gone")
        }
        "LocationRequired" | "LocationNotAvailableForResourceGroup" => {
            Some("set `location` to an Azure region's name, such as westeurope or swedencentral")
        }
        "InvalidResourceGroup" => Some(
            "resource group names are 1-90 letters, digits, '-', '_', '.', '(' or ')', not ending with '.'",
        ),
        "RoleAssignmentUpdateNotPermitted" => Some(
            "an assignment's principal, role and scope cannot change in place; the assignment must be replaced",
        ),
        "ScopeLocked" => Some(
            "a management lock covers this scope: remove the lock (`azure:managementLock`, deleted before what it locks) and run the operation again",
        ),
        "InvalidPrincipalId" => Some(
            "`principalId` must be the object id (a GUID) of a service principal, user or group",
        ),
        _ => None,
    };
    let retryable = e.code() == "ResourceGroupBeingDeleted";
    let mut error = ProviderError::from(e);
    if let Some(hint) = hint
        && error.hint.is_none()
    {
        error.hint = Some(hint.to_owned());
    }
    error.retryable |= retryable;
    error
}

/// A path segment, percent-encoded (ARM decodes every segment).
pub(crate) fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'(' | b')' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An id as a path: ARM ids start with `/`; anything else is refused before it is sent.
pub(crate) fn id_path(ty: &str, id: &str) -> Result<String, ProviderError> {
    if id.starts_with('/') && !id.contains(['?', '#']) && !id.contains("//") {
        Ok(id.trim_end_matches('/').to_owned())
    } else {
        Err(ProviderError::new(
            "InvalidResourceId",
            format!(
                "`{id}` is not an Azure resource id of `{ty}` (it starts with /subscriptions/…)"
            ),
        ))
    }
}

/// Whether `s` is a GUID (`8-4-4-4-12` hex digits).
pub(crate) fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}
