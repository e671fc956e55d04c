//! The provider contract: what the engine asks of every resource type's implementation.
//!
//! A provider owns a family of resource types (`test:resource`, `github:team`, …), the
//! part before the colon naming the provider. It declares a schema per type, and performs
//! the calls that change the world. The engine never calls a provider for a mutating step
//! without having journaled it first; providers help the engine recover from crashes by
//! finding, by natural key, a resource that a crashed run may have created.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;

use crate::value::{Props, Value};

/// The declared type of a property.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PropertyType {
    String,
    Int,
    Bool,
    Number,
    List,
    Map,
    Any,
}

impl PropertyType {
    pub fn admits(self, v: &Value) -> bool {
        match (self, v) {
            (_, Value::Unknown | Value::Null) | (PropertyType::Any, _) => true,
            (t, Value::Secret(inner)) => t.admits(inner),
            (PropertyType::String, Value::String(_))
            | (PropertyType::Int, Value::Int(_))
            | (PropertyType::Bool, Value::Bool(_))
            | (PropertyType::Number, Value::Int(_) | Value::Float(_))
            | (PropertyType::List, Value::List(_))
            | (PropertyType::Map, Value::Map(_)) => true,
            _ => false,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PropertyType::String => "string",
            PropertyType::Int => "int",
            PropertyType::Bool => "bool",
            PropertyType::Number => "number",
            PropertyType::List => "list",
            PropertyType::Map => "map",
            PropertyType::Any => "any",
        }
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct PropertySchema {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: PropertyType,
    pub required: bool,
    /// Stored encrypted and printed as `[secret]`, whatever the blueprint says.
    pub secret: bool,
    /// A change to this property cannot be made in place: the resource is replaced.
    pub replace_on_change: bool,
    pub description: String,
}

impl PropertySchema {
    pub fn new(name: &str, ty: PropertyType) -> PropertySchema {
        PropertySchema {
            name: name.into(),
            ty,
            required: false,
            secret: false,
            replace_on_change: false,
            description: String::new(),
        }
    }
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
    pub fn secret(mut self) -> Self {
        self.secret = true;
        self
    }
    pub fn replace_on_change(mut self) -> Self {
        self.replace_on_change = true;
        self
    }
    pub fn describe(mut self, text: &str) -> Self {
        self.description = text.into();
        self
    }
}

/// The schema of one resource type.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TypeSchema {
    /// `provider:type`, e.g. `test:resource`.
    pub name: String,
    pub description: String,
    pub inputs: Vec<PropertySchema>,
    pub outputs: Vec<PropertySchema>,
}

impl TypeSchema {
    pub fn input(&self, name: &str) -> Option<&PropertySchema> {
        self.inputs.iter().find(|p| p.name == name)
    }

    fn is_secret(&self, name: &str) -> bool {
        self.inputs
            .iter()
            .chain(&self.outputs)
            .any(|p| p.name == name && p.secret)
    }

    /// Marks as secret the properties the schema declares secret.
    pub fn mark_secrets(&self, props: Props) -> Props {
        props
            .into_iter()
            .map(|(k, v)| {
                let v = if self.is_secret(&k) {
                    Value::secret(v)
                } else {
                    v
                };
                (k, v)
            })
            .collect()
    }

    /// Checks inputs against the schema: unknown properties, missing required ones, and
    /// type mismatches. Unknown values (planned) pass.
    pub fn check(&self, inputs: &Props) -> Vec<CheckFailure> {
        let mut failures = self.check_names(inputs.keys());
        for (k, v) in inputs {
            if let Some(p) = self.input(k).filter(|p| !p.ty.admits(v)) {
                failures.push(CheckFailure {
                    property: k.clone(),
                    reason: format!("expected {}, got {}", p.ty.name(), v.kind()),
                });
            }
        }
        failures
    }

    /// Checks property names alone: unknown properties and missing required ones.
    pub fn check_names<'k>(
        &self,
        names: impl Iterator<Item = &'k String> + Clone,
    ) -> Vec<CheckFailure> {
        let mut failures = Vec::new();
        for k in names.clone() {
            if self.input(k).is_none() {
                failures.push(CheckFailure {
                    property: k.clone(),
                    reason: format!(
                        "unknown property of `{}` (known: {})",
                        self.name,
                        self.inputs
                            .iter()
                            .map(|p| p.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
        }
        for p in self.inputs.iter().filter(|p| p.required) {
            if !names.clone().any(|k| *k == p.name) {
                failures.push(CheckFailure {
                    property: p.name.clone(),
                    reason: "required property is missing".into(),
                });
            }
        }
        failures
    }

    /// The diff the schema implies: changed properties, and which of them force a
    /// replacement. `Unknown` new values count as changed.
    pub fn diff(&self, olds: &Props, news: &Props) -> DiffResult {
        let mut result = DiffResult::default();
        let keys: std::collections::BTreeSet<&String> = olds.keys().chain(news.keys()).collect();
        for k in keys {
            let (o, n) = (olds.get(k), news.get(k));
            let changed = match (o, n) {
                (_, Some(Value::Unknown)) => true,
                (Some(a), Some(b)) => a != b,
                (None, Some(Value::Null)) | (Some(Value::Null), None) => false,
                _ => true,
            };
            if changed {
                result.changed.push(k.clone());
                if self.input(k).is_some_and(|p| p.replace_on_change) {
                    result.replace.push(k.clone());
                }
            }
        }
        result
    }
}

/// One reason a provider refuses a resource's inputs.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CheckFailure {
    pub property: String,
    pub reason: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct DiffResult {
    pub changed: Vec<String>,
    pub replace: Vec<String>,
}

/// An error from a provider, translated so a developer can act on it. `code` keeps the
/// cloud's own error code.
#[derive(Clone, Debug, thiserror::Error, serde::Serialize)]
#[error("{message}{}", hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
pub struct ProviderError {
    pub code: String,
    pub message: String,
    pub hint: Option<String>,
    /// Safe to try the same call again.
    pub retryable: bool,
}

impl ProviderError {
    pub fn new(code: &str, message: impl Into<String>) -> ProviderError {
        ProviderError {
            code: code.into(),
            message: message.into(),
            hint: None,
            retryable: false,
        }
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Identifies the resource a mutating call is for. `urn` is stable for a logical
/// resource; `token` is unique to one creation attempt (recorded in the journal before
/// the create is sent), so that a provider can mark what it creates with its stack and
/// token, and `find` can tell this attempt's object from anyone else's.
#[derive(Clone, Debug)]
pub struct ResourceRef<'a> {
    pub ty: &'a str,
    pub urn: &'a str,
    pub token: &'a str,
    /// The object was taken over by `import`, deliberately, or recorded before Paddock
    /// marked what it made: it may lack Paddock's mark.
    pub imported: bool,
}

impl ResourceRef<'_> {
    /// The stack the resource belongs to: the second part of `paddock:STACK:TYPE:NAME`
    /// (any other urn, as tests write them, `urn:…`, by its first part).
    pub fn stack(&self) -> &str {
        match self.urn.strip_prefix("paddock:") {
            Some(rest) => rest.split_once(':').map_or(rest, |(stack, _)| stack),
            None => self
                .urn
                .split_once(':')
                .map_or(self.urn, |(first, _)| first),
        }
    }

    /// The resource's name in its blueprint: what follows `paddock:STACK:TYPE:`.
    pub fn name(&self) -> &str {
        self.urn
            .strip_prefix("paddock:")
            .and_then(|rest| rest.split_once(':'))
            .and_then(|(_, rest)| rest.strip_prefix(self.ty))
            .and_then(|rest| rest.strip_prefix(':'))
            .unwrap_or(self.urn)
    }
}

#[derive(Clone, Debug)]
pub struct Created {
    pub id: String,
    pub outputs: Props,
}

#[derive(Clone, Debug)]
pub struct ReadResult {
    /// The inputs as the cloud now has them, when the provider can tell (import, drift).
    pub inputs: Option<Props>,
    pub outputs: Props,
}

/// A resource provider. All values handed to a provider have secrets revealed; the engine
/// re-marks secret outputs from the schema.
#[async_trait]
pub trait Provider: Send + Sync {
    /// The prefix of the types this provider owns (`test` for `test:resource`).
    fn name(&self) -> &str;

    fn schemas(&self) -> &[TypeSchema];

    fn schema(&self, ty: &str) -> Option<&TypeSchema> {
        self.schemas().iter().find(|s| s.name == ty)
    }

    /// Validates inputs before any plan is made.
    async fn check(&self, ty: &str, inputs: &Props) -> Vec<CheckFailure> {
        self.schema(ty).map(|s| s.check(inputs)).unwrap_or_default()
    }

    /// Which properties changed and which of them force replacement.
    async fn diff(
        &self,
        ty: &str,
        olds: &Props,
        news: &Props,
    ) -> Result<DiffResult, ProviderError> {
        Ok(self
            .schema(ty)
            .map(|s| s.diff(olds, news))
            .unwrap_or_default())
    }

    async fn create(&self, r: ResourceRef<'_>, inputs: &Props) -> Result<Created, ProviderError>;

    /// Current state of the resource, or `None` if it no longer exists.
    async fn read(
        &self,
        ty: &str,
        id: &str,
        inputs: &Props,
    ) -> Result<Option<ReadResult>, ProviderError>;

    async fn update(
        &self,
        r: ResourceRef<'_>,
        id: &str,
        olds: &Props,
        news: &Props,
    ) -> Result<Props, ProviderError>;

    /// Deletes the resource; deleting what is already gone succeeds.
    async fn delete(&self, ty: &str, id: &str, props: &Props) -> Result<(), ProviderError>;

    /// Deletes the resource as `destroy` does: only if it carries the mark of `r`'s stack,
    /// or `r.imported` says it was taken over deliberately. Providers whose objects carry
    /// no mark (nothing exists outside Paddock's state) delete as `delete` does.
    async fn delete_owned(
        &self,
        r: ResourceRef<'_>,
        id: &str,
        props: &Props,
    ) -> Result<(), ProviderError> {
        self.delete(r.ty, id, props).await
    }

    /// Asked for every object a deletion phase is about to delete, before it deletes any:
    /// fails as [`Provider::delete_owned`] would refuse, so that a destroy that cannot
    /// finish stops before it has begun. Where the team could remove an object's mark
    /// (a resource group's tags) and something the team cannot write vouches for it (the
    /// lock Paddock placed on it), the mark is written back first, while the witness
    /// still exists.
    async fn confirm_owned(
        &self,
        _r: ResourceRef<'_>,
        _id: &str,
        _props: &Props,
    ) -> Result<(), ProviderError> {
        Ok(())
    }

    /// Writes `r`'s mark on an object `import` takes over, so that it is Paddock's from
    /// then on (and a later recovery or destroy knows it).
    async fn mark_imported(
        &self,
        _r: ResourceRef<'_>,
        _id: &str,
        _props: &Props,
    ) -> Result<(), ProviderError> {
        Ok(())
    }

    /// Finds the object a `create` with this urn and token (or these inputs' natural key)
    /// made, if it exists: how a crashed run's creation is adopted instead of duplicated.
    async fn find(
        &self,
        r: ResourceRef<'_>,
        inputs: &Props,
    ) -> Result<Option<Created>, ProviderError>;
}

/// The providers an engine can use, by name.
#[derive(Clone, Default)]
pub struct ProviderRegistry {
    providers: HashMap<String, Arc<dyn Provider>>,
}

impl ProviderRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, provider: Arc<dyn Provider>) -> Self {
        self.providers.insert(provider.name().to_owned(), provider);
        self
    }

    /// The provider for a `provider:type` name.
    pub fn for_type(&self, ty: &str) -> Option<&Arc<dyn Provider>> {
        let prefix = ty.split(':').next().unwrap_or(ty);
        self.providers.get(prefix)
    }

    pub fn schema(&self, ty: &str) -> Option<&TypeSchema> {
        self.for_type(ty)?.schema(ty)
    }

    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.providers.keys().map(String::as_str).collect();
        v.sort();
        v
    }

    /// Every type every provider declares, by name.
    pub fn types(&self) -> BTreeMap<&str, &TypeSchema> {
        self.providers
            .values()
            .flat_map(|p| p.schemas())
            .map(|s| (s.name.as_str(), s))
            .collect()
    }
}
