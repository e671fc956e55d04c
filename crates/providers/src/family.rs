//! What the cloud providers have in common: a provider is a family of resource types,
//! each a [`ResourceType`] with its schema and its five calls; the family dispatches by
//! type name and turns HTTP failures into [`ProviderError`]s a developer can act on.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::Mutex;

use async_trait::async_trait;
use paddock_engine::provider::{Created, ReadResult, ResourceRef, TypeSchema};
use paddock_engine::{Props, Provider, ProviderError, Value};

use crate::http::{CallCost, CallStats, HttpError};
use crate::ownership::Owner;

/// One resource type of a cloud.
#[async_trait]
pub trait ResourceType: Send + Sync {
    fn schema(&self) -> TypeSchema;

    async fn create(&self, r: ResourceRef<'_>, inputs: &Props) -> Result<Created, ProviderError>;

    /// The resource as the cloud has it, `None` if it is gone.
    async fn read(&self, id: &str, inputs: &Props) -> Result<Option<ReadResult>, ProviderError>;

    async fn update(
        &self,
        r: ResourceRef<'_>,
        id: &str,
        olds: &Props,
        news: &Props,
    ) -> Result<Props, ProviderError>;

    /// Deleting what is already gone succeeds.
    async fn delete(&self, id: &str, props: &Props) -> Result<(), ProviderError>;

    /// The object these inputs name, if it exists (by natural key) and the create `r`
    /// made it ([`Owner::made_by`]): how a crashed or retried create is adopted rather
    /// than duplicated, and never someone else's object.
    async fn find(
        &self,
        r: ResourceRef<'_>,
        inputs: &Props,
    ) -> Result<Option<Created>, ProviderError>;

    /// Who made the object `id`, as the cloud has it now. By default an object lives
    /// inside another Paddock owns and follows its parent's mark: the types that are
    /// marked themselves say so.
    async fn owner(&self, _id: &str, _props: &Props) -> Result<Owner, ProviderError> {
        Ok(Owner::Parent)
    }

    /// Writes `r`'s mark back on the unmarked object `id` if something the team cannot
    /// write proves it this stack's (a resource group's tags are the team's to change;
    /// the lock Paddock placed on it is not). Returns whether it did.
    async fn restore_mark(
        &self,
        _r: ResourceRef<'_>,
        _id: &str,
        _props: &Props,
    ) -> Result<bool, ProviderError> {
        Ok(false)
    }

    /// Writes `r`'s mark on the object `id`, which `import` takes over.
    async fn mark_imported(
        &self,
        _r: ResourceRef<'_>,
        _id: &str,
        _props: &Props,
    ) -> Result<(), ProviderError> {
        Ok(())
    }
}

/// Whether the object `id` is still there for a destroy of `r` to delete: `false` when it
/// is gone; fails unless it is `r`'s stack's (or imported), after writing back a mark the
/// team removed where the type can prove the object this stack's.
async fn still_owned(
    ty: &dyn ResourceType,
    r: &ResourceRef<'_>,
    id: &str,
    props: &Props,
) -> Result<bool, ProviderError> {
    match ty.owner(id, props).await? {
        Owner::Gone => Ok(false),
        owner if owner.may_delete(r) => Ok(true),
        Owner::Unmarked if ty.restore_mark(r.clone(), id, props).await? => Ok(true),
        owner => Err(crate::ownership::not_owned(r, &owner, id)),
    }
}

/// What the mutating calls of one resource cost: their requests, and their time in all
/// (requests, and whatever the provider did between them: polls' pauses, sealing).
#[derive(Clone, Copy, Debug, Default)]
pub struct UrnCost {
    pub requests: CallCost,
    pub elapsed: std::time::Duration,
}

/// A provider made of resource types.
pub struct Family {
    name: &'static str,
    schemas: Vec<TypeSchema>,
    types: BTreeMap<String, Box<dyn ResourceType>>,
    /// What the mutating calls cost, by resource urn (for benchmarks).
    calls: Mutex<HashMap<String, UrnCost>>,
}

impl Family {
    pub fn new(name: &'static str, types: Vec<Box<dyn ResourceType>>) -> Family {
        let schemas: Vec<TypeSchema> = types.iter().map(|t| t.schema()).collect();
        let types = schemas.iter().map(|s| s.name.clone()).zip(types).collect();
        Family {
            name,
            schemas,
            types,
            calls: Mutex::new(HashMap::new()),
        }
    }

    /// Requests each resource's creates, updates and deletes have sent, by urn.
    pub fn calls_by_urn(&self) -> HashMap<String, u64> {
        self.costs_by_urn()
            .into_iter()
            .map(|(urn, c)| (urn, c.requests.requests))
            .collect()
    }

    /// What each resource's creates and updates have cost, by urn.
    pub fn costs_by_urn(&self) -> HashMap<String, UrnCost> {
        self.calls.lock().expect("calls lock").clone()
    }

    /// Runs one mutating call of resource `urn`, counting its requests and timing it.
    async fn counted<T>(&self, urn: &str, work: impl std::future::Future<Output = T>) -> T {
        let stats = Arc::new(CallStats::default());
        let started = std::time::Instant::now();
        let result = crate::http::counting(stats.clone(), work).await;
        let mut calls = self.calls.lock().expect("calls lock");
        let cost = calls.entry(urn.to_owned()).or_default();
        cost.requests += stats.snapshot();
        cost.elapsed += started.elapsed();
        result
    }

    fn of(&self, ty: &str) -> Result<&dyn ResourceType, ProviderError> {
        self.types.get(ty).map(|t| t.as_ref()).ok_or_else(|| {
            ProviderError::new(
                "UnknownType",
                format!("`{ty}` is not a type of the {} provider", self.name),
            )
        })
    }
}

#[async_trait]
impl Provider for Family {
    fn name(&self) -> &str {
        self.name
    }

    fn schemas(&self) -> &[TypeSchema] {
        &self.schemas
    }

    async fn create(&self, r: ResourceRef<'_>, inputs: &Props) -> Result<Created, ProviderError> {
        let urn = r.urn;
        self.counted(urn, self.of(r.ty)?.create(r, inputs)).await
    }

    async fn read(
        &self,
        ty: &str,
        id: &str,
        inputs: &Props,
    ) -> Result<Option<ReadResult>, ProviderError> {
        self.of(ty)?.read(id, inputs).await
    }

    async fn update(
        &self,
        r: ResourceRef<'_>,
        id: &str,
        olds: &Props,
        news: &Props,
    ) -> Result<Props, ProviderError> {
        let urn = r.urn;
        self.counted(urn, self.of(r.ty)?.update(r, id, olds, news))
            .await
    }

    async fn delete(&self, ty: &str, id: &str, props: &Props) -> Result<(), ProviderError> {
        self.of(ty)?.delete(id, props).await
    }

    async fn find(
        &self,
        r: ResourceRef<'_>,
        inputs: &Props,
    ) -> Result<Option<Created>, ProviderError> {
        self.of(r.ty)?.find(r, inputs).await
    }

    async fn delete_owned(
        &self,
        r: ResourceRef<'_>,
        id: &str,
        props: &Props,
    ) -> Result<(), ProviderError> {
        let ty = self.of(r.ty)?;
        if still_owned(ty, &r, id, props).await? {
            ty.delete(id, props).await?;
        }
        Ok(())
    }

    async fn confirm_owned(
        &self,
        r: ResourceRef<'_>,
        id: &str,
        props: &Props,
    ) -> Result<(), ProviderError> {
        still_owned(self.of(r.ty)?, &r, id, props).await.map(drop)
    }

    async fn mark_imported(
        &self,
        r: ResourceRef<'_>,
        id: &str,
        props: &Props,
    ) -> Result<(), ProviderError> {
        self.of(r.ty)?.mark_imported(r, id, props).await
    }
}

/// An HTTP failure as a provider error: the cloud's code kept, the message saying what
/// failed, and a hint for the codes a developer meets.
impl From<HttpError> for ProviderError {
    fn from(e: HttpError) -> ProviderError {
        let retryable =
            matches!(e.status(), Some(429 | 500..=599)) || matches!(e, HttpError::Transport { .. });
        let hint = hint(&e);
        let mut error = ProviderError::new(e.code(), e.to_string());
        error.retryable = retryable;
        error.hint = hint;
        error
    }
}

/// What to do about the errors developers meet, by the cloud's own code.
fn hint(e: &HttpError) -> Option<String> {
    let hint = match (e.code(), e.status()) {
        ("AuthorizationFailed", _) => {
            "the caller lacks an Azure role at this scope; Paddock's platform identity needs Owner (or Contributor + User Access Administrator) on the subscription"
        }
        ("PrincipalNotFound", _) => {
            "the service principal is not yet visible to Azure RBAC; set principalType, or retry in a minute"
        }
        ("InvalidAuthenticationToken" | "ExpiredAuthenticationToken", _) => {
            "the Azure token was refused: check the tenant and the platform identity's credentials"
        }
        ("Authorization_RequestDenied", _) => {
            "the platform identity lacks a Graph permission: grant Application.ReadWrite.OwnedBy and Group.ReadWrite.All (application) and admin-consent them"
        }
        ("Forbidden", _)
            if matches!(
                e,
                HttpError::Status {
                    api: "kubernetes",
                    ..
                }
            ) =>
        {
            "the cluster's RBAC refuses the caller; Paddock's own identity needs cluster-admin, or a role that may manage namespaces, RBAC and quotas"
        }
        (_, Some(401)) => {
            "the credentials were refused: check the token, its expiry and its audience"
        }
        (_, Some(403)) if matches!(e, HttpError::Status { api: "github", .. }) => {
            "the GitHub App or token lacks a permission: it needs administration, members, contents, environments and secrets write on the organization"
        }
        (_, Some(429)) => "the API is throttling Paddock; the operation can be retried later",
        (_, Some(500..=599)) => "the cloud failed; retrying the operation is safe",
        ("ConnectionFailed", _) => "the API could not be reached: check its URL and the network",
        _ => return None,
    };
    Some(hint.to_owned())
}

/// Reading typed inputs, with errors that name the property.
pub trait PropsExt {
    fn text(&self, name: &str) -> Result<String, ProviderError>;
    fn text_or(&self, name: &str, default: &str) -> String;
    fn opt_text(&self, name: &str) -> Option<String>;
    fn strings(&self, name: &str) -> Vec<String>;
    fn boolean(&self, name: &str, default: bool) -> bool;
    fn json(&self, name: &str) -> serde_json::Value;
}

impl PropsExt for Props {
    fn text(&self, name: &str) -> Result<String, ProviderError> {
        self.opt_text(name).ok_or_else(|| {
            ProviderError::new(
                "InvalidInput",
                format!("`{name}` is required and must be a string"),
            )
        })
    }

    fn text_or(&self, name: &str, default: &str) -> String {
        self.opt_text(name).unwrap_or_else(|| default.to_owned())
    }

    fn opt_text(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(Value::reveal)
            .and_then(|v| v.as_str().map(str::to_owned))
    }

    fn strings(&self, name: &str) -> Vec<String> {
        match self.get(name).map(Value::reveal) {
            Some(Value::List(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn boolean(&self, name: &str, default: bool) -> bool {
        self.get(name).and_then(Value::as_bool).unwrap_or(default)
    }

    fn json(&self, name: &str) -> serde_json::Value {
        self.get(name)
            .map(Value::to_json)
            .unwrap_or(serde_json::Value::Null)
    }
}

/// Props from `(name, value)` pairs.
pub fn props<const N: usize>(pairs: [(&str, Value); N]) -> Props {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// `Ok(None)` for a 404, the value otherwise.
pub fn found<T>(result: Result<T, HttpError>) -> Result<Option<T>, HttpError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Deleting what is gone succeeds.
pub fn gone_ok<T>(result: Result<T, HttpError>) -> Result<(), ProviderError> {
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e.into()),
    }
}
