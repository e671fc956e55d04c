//! The resource types. Each is a [`Shape`]: its schema, the object its inputs describe,
//! and the inputs an object was made from; [`Typed`] gives every shape the five calls,
//! the same way: server-side apply to create and update, GET to read and find, DELETE
//! with the incarnation's `uid` as precondition to delete.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use paddock_engine::provider::{
    Created, PropertySchema, PropertyType, ReadResult, ResourceRef, TypeSchema,
};
use paddock_engine::{Props, ProviderError, Value};
use serde_json::{Map, Value as Json, json};

mod role;

use super::client::{Cluster, Kind, Pause, same_incarnation};
use super::kubeconfig;
use crate::family::{PropsExt, ResourceType, found, props};
use crate::ownership::{
    self, MANAGED_BY, MANAGED_BY_LABEL, Mark, Owner, Place, STACK_ANNOTATION, TOKEN_ANNOTATION,
    owner_of,
};

/// How long a namespace may take to terminate (its delete, or a create of a name whose
/// previous namespace is still terminating).
const TERMINATION_WAIT: Duration = Duration::from_secs(300);
/// How long the token controller may take to fill a service-account token Secret.
const TOKEN_WAIT: Duration = Duration::from_secs(120);

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
const TOKEN_TYPE: &str = "kubernetes.io/service-account-token";
const ACCOUNT_ANNOTATION: &str = "kubernetes.io/service-account.name";

static NAMESPACE: Kind = Kind {
    api_version: "v1",
    kind: "Namespace",
    plural: "namespaces",
    namespaced: false,
    template: "/api/v1/namespaces/{name}",
    terminates: true,
};
static SERVICE_ACCOUNT: Kind = Kind {
    api_version: "v1",
    kind: "ServiceAccount",
    plural: "serviceaccounts",
    namespaced: true,
    template: "/api/v1/namespaces/{namespace}/serviceaccounts/{name}",
    terminates: false,
};
static SECRET: Kind = Kind {
    api_version: "v1",
    kind: "Secret",
    plural: "secrets",
    namespaced: true,
    template: "/api/v1/namespaces/{namespace}/secrets/{name}",
    terminates: false,
};
static ROLE_BINDING: Kind = Kind {
    api_version: "rbac.authorization.k8s.io/v1",
    kind: "RoleBinding",
    plural: "rolebindings",
    namespaced: true,
    template: "/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings/{name}",
    terminates: false,
};
static RESOURCE_QUOTA: Kind = Kind {
    api_version: "v1",
    kind: "ResourceQuota",
    plural: "resourcequotas",
    namespaced: true,
    template: "/api/v1/namespaces/{namespace}/resourcequotas/{name}",
    terminates: false,
};
static LIMIT_RANGE: Kind = Kind {
    api_version: "v1",
    kind: "LimitRange",
    plural: "limitranges",
    namespaced: true,
    template: "/api/v1/namespaces/{namespace}/limitranges/{name}",
    terminates: false,
};
static NETWORK_POLICY: Kind = Kind {
    api_version: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    plural: "networkpolicies",
    namespaced: true,
    template: "/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies/{name}",
    terminates: false,
};

/// Every type of the provider.
pub(super) fn all(cluster: &Arc<Cluster>) -> Vec<Box<dyn ResourceType>> {
    fn typed(cluster: &Arc<Cluster>, shape: impl Shape + 'static) -> Box<dyn ResourceType> {
        Box::new(Typed {
            cluster: cluster.clone(),
            shape: Box::new(shape),
        })
    }
    vec![
        typed(cluster, Namespace),
        typed(cluster, ServiceAccount),
        typed(cluster, role::Role),
        typed(cluster, RoleBinding),
        typed(cluster, ResourceQuota),
        typed(cluster, LimitRange),
        typed(cluster, NetworkPolicy),
        typed(cluster, ServiceAccountToken),
    ]
}

/// What makes one resource type: the rest is [`Typed`]'s.
#[async_trait]
trait Shape: Send + Sync {
    fn kind(&self) -> &'static Kind;

    fn schema(&self) -> TypeSchema;

    /// The object the inputs describe; `apiVersion`, `kind`, `metadata.name` and
    /// `metadata.namespace` are added by the caller.
    fn manifest(&self, inputs: &Props) -> Result<Json, ProviderError>;

    /// The inputs an object was made from, every one the object tells (the caller drops
    /// the empty ones the user did not set).
    fn inputs(&self, object: &Json) -> Json;

    /// Takes out of `inputs` what the API server defaulted rather than the user set:
    /// values equal to the default, where `prior` (the inputs Paddock knew; `{}` on
    /// import) does not set them. Quantities the server rewrote in another form keep the
    /// user's.
    fn normalize(&self, _inputs: &mut Json, _prior: &Json) {}

    /// Whether the object `live` cannot become `desired` in place (an immutable field
    /// differs): it is then deleted and created again.
    fn must_recreate(&self, _live: &Json, _desired: &Json) -> bool {
        false
    }

    /// Checks made before the object is written.
    async fn prepare(
        &self,
        _cluster: &Cluster,
        _ns: Option<&str>,
        _inputs: &Props,
    ) -> Result<(), ProviderError> {
        Ok(())
    }

    /// The outputs of an object as the API returned it.
    async fn outputs(&self, _cluster: &Cluster, object: Json) -> Result<Props, ProviderError> {
        Ok(uid_of(&object))
    }
}

fn uid_of(object: &Json) -> Props {
    props([(
        "uid",
        Value::from(object["metadata"]["uid"].as_str().unwrap_or_default()),
    )])
}

fn invalid(message: impl Into<String>) -> ProviderError {
    ProviderError::new("InvalidInput", message)
}

fn is_terminating(object: &Json) -> bool {
    object["metadata"]["deletionTimestamp"].is_string()
}

/// A resource type made of a [`Shape`].
struct Typed {
    cluster: Arc<Cluster>,
    shape: Box<dyn Shape>,
}

impl Typed {
    fn kind(&self) -> &'static Kind {
        self.shape.kind()
    }

    /// The natural key the inputs name.
    fn key(&self, inputs: &Props) -> Result<(Option<String>, String), ProviderError> {
        let ns = if self.kind().namespaced {
            Some(inputs.text("namespace")?)
        } else {
            None
        };
        Ok((ns, inputs.text("name")?))
    }

    fn id(ns: Option<&str>, name: &str) -> String {
        match ns {
            Some(ns) => format!("{ns}/{name}"),
            None => name.to_owned(),
        }
    }

    fn parse_id(&self, id: &str) -> Result<(Option<String>, String), ProviderError> {
        let bad = |form: &str| {
            ProviderError::new(
                "InvalidId",
                format!(
                    "`{id}` is not an id of a {}: expected `{form}`",
                    self.kind().kind
                ),
            )
        };
        if self.kind().namespaced {
            match id.split_once('/') {
                Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                    Ok((Some(ns.to_owned()), name.to_owned()))
                }
                _ => Err(bad("namespace/name")),
            }
        } else if id.is_empty() || id.contains('/') {
            Err(bad("name"))
        } else {
            Ok((None, id.to_owned()))
        }
    }

    fn desired(&self, ns: Option<&str>, name: &str, inputs: &Props) -> Result<Json, ProviderError> {
        let kind = self.kind();
        let mut object = self.shape.manifest(inputs)?;
        object["apiVersion"] = json!(kind.api_version);
        object["kind"] = json!(kind.kind);
        object["metadata"]["name"] = json!(name);
        if let Some(ns) = ns {
            object["metadata"]["namespace"] = json!(ns);
        }
        Ok(object)
    }

    /// Where an object is, for a conflict.
    fn place(&self, ns: Option<&str>, name: &str) -> Place {
        Place {
            ty: self.shape.schema().name,
            name: name.to_owned(),
            location: match ns {
                Some(ns) => format!("namespace `{ns}` of cluster {}", self.cluster.server),
                None => format!("cluster {}", self.cluster.server),
            },
            id: Self::id(ns, name),
        }
    }

    /// Makes the object what the inputs say, marked as `r`'s: waits out a previous
    /// incarnation still terminating, recreates one that cannot be changed in place,
    /// then applies. An object of the name that is not this stack's is left alone.
    async fn apply(&self, inputs: &Props, r: &ResourceRef<'_>) -> Result<Created, ProviderError> {
        let kind = self.kind();
        let (ns, name) = self.key(inputs)?;
        let ns = ns.as_deref();
        let mut desired = self.desired(ns, &name, inputs)?;
        stamp(&mut desired, &Mark::of(r));
        self.shape.prepare(&self.cluster, ns, inputs).await?;
        if let Some(live) = found(self.cluster.get(kind, ns, &name).await)? {
            let uid = live["metadata"]["uid"].as_str();
            if !is_terminating(&live) {
                ownership::admit(r, &owner(&live), &self.place(ns, &name))?;
            }
            if is_terminating(&live) {
                self.cluster
                    .wait_gone(kind, ns, &name, uid, TERMINATION_WAIT)
                    .await?;
            } else if self.shape.must_recreate(&live, &desired) {
                self.cluster
                    .delete_and_wait(kind, ns, &name, uid, TERMINATION_WAIT)
                    .await?;
                self.cluster
                    .wait_gone(kind, ns, &name, uid, TERMINATION_WAIT)
                    .await?;
            }
        }
        let object = self.cluster.apply(kind, ns, &name, desired).await?;
        let outputs = self.shape.outputs(&self.cluster, object).await?;
        Ok(Created {
            id: Self::id(ns, &name),
            outputs,
        })
    }

    /// The inputs Paddock knew, as JSON: only the type's inputs, nulls left out.
    fn prior(&self, known: &Props) -> Json {
        let schema = self.shape.schema();
        let map: Map<String, Json> = schema
            .inputs
            .iter()
            .filter_map(|p| known.get(&p.name).map(|v| (p.name.clone(), v.to_json())))
            .filter(|(_, v)| !v.is_null())
            .collect();
        Json::Object(map)
    }
}

#[async_trait]
impl ResourceType for Typed {
    fn schema(&self) -> TypeSchema {
        self.shape.schema()
    }

    async fn create(&self, r: ResourceRef<'_>, inputs: &Props) -> Result<Created, ProviderError> {
        self.apply(inputs, &r).await
    }

    async fn read(&self, id: &str, known: &Props) -> Result<Option<ReadResult>, ProviderError> {
        let (ns, name) = self.parse_id(id)?;
        let Some(object) = found(self.cluster.get(self.kind(), ns.as_deref(), &name).await)? else {
            return Ok(None);
        };
        // Another incarnation of the name is not the object Paddock made.
        if !same_incarnation(&object, known.opt_text("uid").as_deref()) {
            return Ok(None);
        }
        let prior = self.prior(known);
        let mut inputs = self.shape.inputs(&object);
        self.shape.normalize(&mut inputs, &prior);
        let inputs = conform(inputs, Some(&prior));
        let outputs = self.shape.outputs(&self.cluster, object).await?;
        Ok(Some(ReadResult {
            inputs: Some(to_props(inputs)),
            outputs,
        }))
    }

    async fn update(
        &self,
        r: ResourceRef<'_>,
        _id: &str,
        _olds: &Props,
        news: &Props,
    ) -> Result<Props, ProviderError> {
        Ok(self.apply(news, &r).await?.outputs)
    }

    async fn delete(&self, id: &str, known: &Props) -> Result<(), ProviderError> {
        let (ns, name) = self.parse_id(id)?;
        let uid = known.opt_text("uid").filter(|u| !u.is_empty());
        self.cluster
            .delete_and_wait(
                self.kind(),
                ns.as_deref(),
                &name,
                uid.as_deref(),
                TERMINATION_WAIT,
            )
            .await
    }

    /// The object of this natural key, if this create made it and it can be what the
    /// inputs say; the create is then completed (applying is idempotent), so what was
    /// adopted is what the inputs describe.
    async fn find(
        &self,
        r: ResourceRef<'_>,
        inputs: &Props,
    ) -> Result<Option<Created>, ProviderError> {
        let (ns, name) = self.key(inputs)?;
        let Some(live) = found(self.cluster.get(self.kind(), ns.as_deref(), &name).await)? else {
            return Ok(None);
        };
        let desired = self.desired(ns.as_deref(), &name, inputs)?;
        if is_terminating(&live)
            || self.shape.must_recreate(&live, &desired)
            || !owner(&live).made_by(&r)
        {
            return Ok(None);
        }
        self.apply(inputs, &r).await.map(Some)
    }

    /// Every kind carries the mark itself, those inside a namespace Paddock owns too:
    /// one code path marks them all.
    async fn owner(&self, id: &str, known: &Props) -> Result<Owner, ProviderError> {
        let (ns, name) = self.parse_id(id)?;
        let live = found(self.cluster.get(self.kind(), ns.as_deref(), &name).await)?;
        Ok(match live {
            // Another incarnation of the name is not the object Paddock made: the delete's
            // uid precondition leaves it alone.
            Some(live) if same_incarnation(&live, known.opt_text("uid").as_deref()) => owner(&live),
            _ => Owner::Gone,
        })
    }

    async fn mark_imported(
        &self,
        r: ResourceRef<'_>,
        id: &str,
        _: &Props,
    ) -> Result<(), ProviderError> {
        let (ns, name) = self.parse_id(id)?;
        let mut patch = json!({});
        stamp(&mut patch, &Mark::of(&r));
        found(
            self.cluster
                .merge_patch(self.kind(), ns.as_deref(), &name, patch)
                .await,
        )?;
        Ok(())
    }
}

/// Marks an object as Paddock's: the recommended `managed-by` label, and annotations
/// naming the stack and the creation token.
fn stamp(object: &mut Json, mark: &Mark) {
    object["metadata"]["labels"][MANAGED_BY_LABEL] = json!(MANAGED_BY);
    object["metadata"]["annotations"][STACK_ANNOTATION] = json!(mark.stack);
    object["metadata"]["annotations"][TOKEN_ANNOTATION] = json!(mark.token);
}

/// Who made an object, by its annotations.
fn owner(object: &Json) -> Owner {
    let annotations = &object["metadata"]["annotations"];
    owner_of(Mark::from_parts(
        annotations[STACK_ANNOTATION].as_str(),
        annotations[TOKEN_ANNOTATION].as_str(),
    ))
}

fn to_props(json: Json) -> Props {
    match Value::from_json(json) {
        Value::Map(m) => m,
        _ => Props::new(),
    }
}

fn is_empty(v: &Json) -> bool {
    match v {
        Json::Null => true,
        Json::String(s) => s.is_empty(),
        Json::Array(a) => a.is_empty(),
        Json::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Shapes the rebuilt inputs `live` like `prior`: a property the user did not set whose
/// value is empty is left out (the API returns `{}` and `[]` for what was never given);
/// within properties nothing is left out (an empty selector means "all"), but a string the
/// user gave as a number or a boolean is given back as one.
fn conform(live: Json, prior: Option<&Json>) -> Json {
    let Json::Object(map) = live else {
        return restore(live, prior);
    };
    let p = prior.and_then(Json::as_object);
    Json::Object(
        map.into_iter()
            .filter_map(|(k, v)| {
                let pv = p.and_then(|p| p.get(&k)).filter(|pv| !pv.is_null());
                if pv.is_none() && is_empty(&v) {
                    return None;
                }
                let v = restore(v, pv);
                Some((k, v))
            })
            .collect(),
    )
}

/// `live` with the scalars `prior` gave as numbers or booleans (and the API returns as
/// text) in the prior's form.
fn restore(live: Json, prior: Option<&Json>) -> Json {
    match live {
        Json::Object(map) => Json::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let pv = prior.and_then(|p| p.get(&k));
                    (k, restore(v, pv))
                })
                .collect(),
        ),
        Json::Array(items) => Json::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| restore(v, prior.and_then(|p| p.get(i))))
                .collect(),
        ),
        Json::String(s) => match prior {
            Some(p @ (Json::Number(_) | Json::Bool(_)))
                if serde_json::from_str::<Json>(&s).is_ok_and(|v| v == *p) =>
            {
                p.clone()
            }
            _ => Json::String(s),
        },
        other => other,
    }
}

/// Removes `key` from `object` if `prior` does not set it and its value is `default`.
fn drop_default(object: &mut Json, prior: &Json, key: &str, is_default: impl Fn(&Json) -> bool) {
    if prior.get(key).is_none_or(Json::is_null)
        && object.get(key).is_some_and(is_default)
        && let Some(map) = object.as_object_mut()
    {
        map.remove(key);
    }
}

/// A resource quantity's value (`500m`, `2Gi`, `1e3`), to compare forms.
fn quantity(v: &Json) -> Option<f64> {
    let s = match v {
        Json::Number(n) => return n.as_f64(),
        Json::String(s) => s.trim(),
        _ => return None,
    };
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '+' | '-')))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e => 10f64.powi(e.strip_prefix(['e', 'E'])?.parse().ok()?),
    };
    Some(number * scale)
}

fn same_quantity(a: &Json, b: &Json) -> bool {
    match (quantity(a), quantity(b)) {
        (Some(x), Some(y)) => x == y || (x - y).abs() <= f64::EPSILON * 16.0 * x.abs().max(y.abs()),
        _ => false,
    }
}

/// Quantities the server wrote in another form (`1000m` as `1`) take the user's form.
fn keep_prior_quantities(live: &mut Json, prior: &Json) {
    for (k, v) in live.as_object_mut().into_iter().flatten() {
        if let Some(p) = prior.get(k)
            && p != v
            && same_quantity(p, v)
        {
            *v = p.clone();
        }
    }
}

/// A map of strings (labels, annotations): numbers and booleans written in a blueprint
/// become their text, as Kubernetes wants strings.
fn string_map(inputs: &Props, key: &str) -> Result<Option<Json>, ProviderError> {
    let Json::Object(map) = inputs.json(key) else {
        return Ok(None);
    };
    let mut out = Map::new();
    for (k, v) in map {
        let text = match v {
            Json::String(s) => s,
            Json::Number(n) => n.to_string(),
            Json::Bool(b) => b.to_string(),
            Json::Null => continue,
            other => {
                return Err(invalid(format!(
                    "`{key}.{k}` must be a string, got {}",
                    if other.is_array() { "a list" } else { "a map" }
                )));
            }
        };
        out.insert(k, Json::String(text));
    }
    Ok((!out.is_empty()).then_some(Json::Object(out)))
}

/// Quantities as the strings Kubernetes' `Quantity` expects.
fn quantity_map(v: &Json) -> Json {
    match v {
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, q)| {
                    let q = match q {
                        Json::Number(n) => Json::String(n.to_string()),
                        other => other.clone(),
                    };
                    (k.clone(), q)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A list input whose items must be maps.
fn list_of_maps(inputs: &Props, key: &str) -> Result<Option<Vec<Json>>, ProviderError> {
    match inputs.json(key) {
        Json::Null => Ok(None),
        Json::Array(items) => {
            if let Some(i) = items.iter().position(|i| !i.is_object()) {
                return Err(invalid(format!("`{key}[{i}]` must be a map")));
            }
            Ok(Some(items))
        }
        _ => Err(invalid(format!("`{key}` must be a list"))),
    }
}

/// Labels minus the ones the API server sets itself.
fn user_labels(object: &Json) -> Json {
    let mut labels = object["metadata"]["labels"].clone();
    if let Some(m) = labels.as_object_mut() {
        m.remove("kubernetes.io/metadata.name");
        m.remove(MANAGED_BY_LABEL);
    }
    labels
}

fn user_annotations(object: &Json) -> Json {
    let mut annotations = object["metadata"]["annotations"].clone();
    if let Some(m) = annotations.as_object_mut() {
        m.remove("kubectl.kubernetes.io/last-applied-configuration");
        m.remove("kubernetes.io/service-account.uid");
        m.remove(ACCOUNT_ANNOTATION);
        m.remove(STACK_ANNOTATION);
        m.remove(TOKEN_ANNOTATION);
    }
    annotations
}

/// `namespace` and `name` of a namespaced object.
fn key_inputs(object: &Json) -> Map<String, Json> {
    let mut m = Map::new();
    m.insert("namespace".into(), object["metadata"]["namespace"].clone());
    m.insert("name".into(), object["metadata"]["name"].clone());
    m
}

fn namespace_input() -> PropertySchema {
    PropertySchema::new("namespace", PropertyType::String)
        .required()
        .replace_on_change()
        .describe("The namespace it lives in.")
}

fn name_input(what: &str) -> PropertySchema {
    PropertySchema::new("name", PropertyType::String)
        .required()
        .replace_on_change()
        .describe(&format!(
            "The {what}'s name; changing it replaces the {what}."
        ))
}

fn labels_input() -> PropertySchema {
    PropertySchema::new("labels", PropertyType::Map).describe("Labels, name to value.")
}

fn uid_output() -> PropertySchema {
    PropertySchema::new("uid", PropertyType::String)
        .describe("The object's uid: which incarnation of its name Paddock made.")
}

// --- kubernetes:namespace ------------------------------------------------------------

struct Namespace;

#[async_trait]
impl Shape for Namespace {
    fn kind(&self) -> &'static Kind {
        &NAMESPACE
    }

    fn schema(&self) -> TypeSchema {
        TypeSchema {
            name: "kubernetes:namespace".into(),
            description: "A namespace. Deleting it waits until it and everything in it are gone."
                .into(),
            inputs: vec![
                name_input("namespace"),
                labels_input(),
                PropertySchema::new("annotations", PropertyType::Map)
                    .describe("Annotations, name to value."),
            ],
            outputs: vec![uid_output()],
        }
    }

    fn manifest(&self, inputs: &Props) -> Result<Json, ProviderError> {
        let mut object = json!({"metadata": {}});
        if let Some(labels) = string_map(inputs, "labels")? {
            object["metadata"]["labels"] = labels;
        }
        if let Some(annotations) = string_map(inputs, "annotations")? {
            object["metadata"]["annotations"] = annotations;
        }
        Ok(object)
    }

    fn inputs(&self, object: &Json) -> Json {
        json!({
            "name": object["metadata"]["name"],
            "labels": user_labels(object),
            "annotations": user_annotations(object),
        })
    }
}

// --- kubernetes:serviceAccount -------------------------------------------------------

struct ServiceAccount;

#[async_trait]
impl Shape for ServiceAccount {
    fn kind(&self) -> &'static Kind {
        &SERVICE_ACCOUNT
    }

    fn schema(&self) -> TypeSchema {
        TypeSchema {
            name: "kubernetes:serviceAccount".into(),
            description: "A service account: the identity a team's deployments act as.".into(),
            inputs: vec![
                namespace_input(),
                name_input("service account"),
                labels_input(),
            ],
            outputs: vec![uid_output()],
        }
    }

    fn manifest(&self, inputs: &Props) -> Result<Json, ProviderError> {
        let mut object = json!({"metadata": {}});
        if let Some(labels) = string_map(inputs, "labels")? {
            object["metadata"]["labels"] = labels;
        }
        Ok(object)
    }

    fn inputs(&self, object: &Json) -> Json {
        let mut m = key_inputs(object);
        m.insert("labels".into(), user_labels(object));
        Json::Object(m)
    }
}

// --- kubernetes:roleBinding ----------------------------------------------------------

struct RoleBinding;

/// The API group a subject of `kind` belongs to, when not given.
fn subject_group(kind: &Json) -> &'static str {
    match kind.as_str() {
        Some("User" | "Group") => RBAC_GROUP,
        _ => "",
    }
}

#[async_trait]
impl Shape for RoleBinding {
    fn kind(&self) -> &'static Kind {
        &ROLE_BINDING
    }

    fn schema(&self) -> TypeSchema {
        TypeSchema {
            name: "kubernetes:roleBinding".into(),
            description: "A role binding: grants a ClusterRole (`admin`, `edit`, `view`) or a Role to subjects within one namespace."
                .into(),
            inputs: vec![
                namespace_input(),
                name_input("role binding"),
                PropertySchema::new("roleKind", PropertyType::String)
                    .replace_on_change()
                    .describe("`ClusterRole` (the default) or `Role`."),
                PropertySchema::new("role", PropertyType::String)
                    .required()
                    .replace_on_change()
                    .describe("The role granted, e.g. `admin`."),
                PropertySchema::new("subjects", PropertyType::List).describe(
                    "Who is granted it: maps of `kind` (ServiceAccount, User or Group), `name` and, for a service account, `namespace`.",
                ),
            ],
            outputs: vec![uid_output()],
        }
    }

    fn manifest(&self, inputs: &Props) -> Result<Json, ProviderError> {
        let role_kind = inputs.text_or("roleKind", "ClusterRole");
        if role_kind != "ClusterRole" && role_kind != "Role" {
            return Err(invalid(format!(
                "`roleKind` must be `ClusterRole` or `Role`, got `{role_kind}`"
            )));
        }
        let role = inputs.text("role")?;
        let mut object = json!({
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": role_kind, "name": role},
        });
        if let Some(subjects) = list_of_maps(inputs, "subjects")? {
            let subjects: Vec<Json> = subjects
                .into_iter()
                .map(|mut s| {
                    let group = subject_group(&s["kind"]);
                    if s.get("apiGroup").is_none_or(Json::is_null) && !group.is_empty() {
                        s["apiGroup"] = json!(group);
                    }
                    s
                })
                .collect();
            object["subjects"] = Json::Array(subjects);
        }
        Ok(object)
    }

    fn inputs(&self, object: &Json) -> Json {
        let mut m = key_inputs(object);
        m.insert("roleKind".into(), object["roleRef"]["kind"].clone());
        m.insert("role".into(), object["roleRef"]["name"].clone());
        m.insert("subjects".into(), object["subjects"].clone());
        Json::Object(m)
    }

    fn normalize(&self, inputs: &mut Json, prior: &Json) {
        drop_default(inputs, prior, "roleKind", |v| v == "ClusterRole");
        if let Some(subjects) = inputs.get_mut("subjects").and_then(Json::as_array_mut) {
            for (i, s) in subjects.iter_mut().enumerate() {
                let group = subject_group(&s["kind"]);
                drop_default(s, &prior["subjects"][i], "apiGroup", |g| g == group);
            }
        }
    }

    fn must_recreate(&self, live: &Json, desired: &Json) -> bool {
        live["roleRef"] != desired["roleRef"]
    }
}

// --- kubernetes:resourceQuota --------------------------------------------------------

struct ResourceQuota;

#[async_trait]
impl Shape for ResourceQuota {
    fn kind(&self) -> &'static Kind {
        &RESOURCE_QUOTA
    }

    fn schema(&self) -> TypeSchema {
        TypeSchema {
            name: "kubernetes:resourceQuota".into(),
            description: "A resource quota: what a namespace may consume in all.".into(),
            inputs: vec![
                namespace_input(),
                name_input("quota"),
                PropertySchema::new("hard", PropertyType::Map).describe(
                    "Limits by resource name, as quantities: `requests.cpu: \"4\"`, `limits.memory: 8Gi`, `pods: \"20\"`.",
                ),
            ],
            outputs: vec![uid_output()],
        }
    }

    fn manifest(&self, inputs: &Props) -> Result<Json, ProviderError> {
        Ok(match inputs.json("hard") {
            Json::Null => json!({"spec": {}}),
            hard @ Json::Object(_) => json!({"spec": {"hard": quantity_map(&hard)}}),
            _ => return Err(invalid("`hard` must be a map")),
        })
    }

    fn inputs(&self, object: &Json) -> Json {
        let mut m = key_inputs(object);
        m.insert("hard".into(), object["spec"]["hard"].clone());
        Json::Object(m)
    }

    fn normalize(&self, inputs: &mut Json, prior: &Json) {
        if let Some(hard) = inputs.get_mut("hard") {
            keep_prior_quantities(hard, &prior["hard"]);
        }
    }
}

// --- kubernetes:limitRange -----------------------------------------------------------

struct LimitRange;

const LIMIT_QUANTITIES: [&str; 5] = [
    "default",
    "defaultRequest",
    "max",
    "min",
    "maxLimitRequestRatio",
];

#[async_trait]
impl Shape for LimitRange {
    fn kind(&self) -> &'static Kind {
        &LIMIT_RANGE
    }

    fn schema(&self) -> TypeSchema {
        TypeSchema {
            name: "kubernetes:limitRange".into(),
            description: "A limit range: defaults and bounds for each pod or container in a namespace."
                .into(),
            inputs: vec![
                namespace_input(),
                name_input("limit range"),
                PropertySchema::new("limits", PropertyType::List)
                    .required()
                    .describe("LimitRangeItems as in the API: `type` (Container, Pod, PersistentVolumeClaim) with `default`, `defaultRequest`, `max`, `min`, `maxLimitRequestRatio`."),
            ],
            outputs: vec![uid_output()],
        }
    }

    fn manifest(&self, inputs: &Props) -> Result<Json, ProviderError> {
        let limits: Vec<Json> = list_of_maps(inputs, "limits")?
            .unwrap_or_default()
            .into_iter()
            .map(|mut item| {
                for part in LIMIT_QUANTITIES {
                    if item[part].is_object() {
                        item[part] = quantity_map(&item[part]);
                    }
                }
                item
            })
            .collect();
        Ok(json!({"spec": {"limits": limits}}))
    }

    fn inputs(&self, object: &Json) -> Json {
        let mut m = key_inputs(object);
        m.insert("limits".into(), object["spec"]["limits"].clone());
        Json::Object(m)
    }

    /// A container item's `default` is defaulted from `max`, its `defaultRequest` from
    /// `default` or `min`, resource by resource.
    fn normalize(&self, inputs: &mut Json, prior: &Json) {
        let Some(items) = inputs.get_mut("limits").and_then(Json::as_array_mut) else {
            return;
        };
        for (i, item) in items.iter_mut().enumerate() {
            let given = &prior["limits"][i];
            let original = item.clone();
            if item["type"] == "Container" {
                for (part, sources) in [
                    ("default", &["max"][..]),
                    ("defaultRequest", &["default", "min"][..]),
                ] {
                    let keys: Vec<String> = item[part]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, _)| k.clone())
                        .collect();
                    for k in keys {
                        let defaulted = given[part].get(&k).is_none()
                            && sources.iter().any(|s| {
                                original[*s]
                                    .get(&k)
                                    .is_some_and(|v| same_quantity(v, &original[part][&k]))
                            });
                        if defaulted && let Some(m) = item[part].as_object_mut() {
                            m.remove(&k);
                        }
                    }
                }
            }
            for part in LIMIT_QUANTITIES {
                if let Some(quantities) = item.get_mut(part) {
                    keep_prior_quantities(quantities, &given[part]);
                }
            }
        }
    }
}

// --- kubernetes:networkPolicy --------------------------------------------------------

struct NetworkPolicy;

#[async_trait]
impl Shape for NetworkPolicy {
    fn kind(&self) -> &'static Kind {
        &NETWORK_POLICY
    }

    fn schema(&self) -> TypeSchema {
        TypeSchema {
            name: "kubernetes:networkPolicy".into(),
            description: "A network policy: which traffic the selected pods may receive and send."
                .into(),
            inputs: vec![
                namespace_input(),
                name_input("network policy"),
                PropertySchema::new("podSelector", PropertyType::Map)
                    .describe("The pods it applies to, a LabelSelector; `{}` (the default) selects every pod in the namespace."),
                PropertySchema::new("policyTypes", PropertyType::List)
                    .describe("`Ingress`, `Egress` or both."),
                PropertySchema::new("ingress", PropertyType::List)
                    .describe("NetworkPolicyIngressRules as in the API."),
                PropertySchema::new("egress", PropertyType::List)
                    .describe("NetworkPolicyEgressRules as in the API."),
            ],
            outputs: vec![uid_output()],
        }
    }

    fn manifest(&self, inputs: &Props) -> Result<Json, ProviderError> {
        let selector = match inputs.json("podSelector") {
            Json::Null => json!({}),
            s @ Json::Object(_) => s,
            _ => return Err(invalid("`podSelector` must be a map")),
        };
        let mut spec = json!({"podSelector": selector});
        match inputs.json("policyTypes") {
            Json::Null => {}
            types @ Json::Array(_) => spec["policyTypes"] = types,
            _ => return Err(invalid("`policyTypes` must be a list")),
        }
        for key in ["ingress", "egress"] {
            if let Some(rules) = list_of_maps(inputs, key)? {
                spec[key] = Json::Array(rules);
            }
        }
        Ok(json!({"spec": spec}))
    }

    fn inputs(&self, object: &Json) -> Json {
        let spec = &object["spec"];
        let mut m = key_inputs(object);
        for key in ["podSelector", "policyTypes", "ingress", "egress"] {
            m.insert(key.into(), spec[key].clone());
        }
        Json::Object(m)
    }

    /// `policyTypes` defaults to `Ingress`, plus `Egress` when there are egress rules;
    /// a port's `protocol` to `TCP`.
    fn normalize(&self, inputs: &mut Json, prior: &Json) {
        let mut default_types = vec![json!("Ingress")];
        if inputs["egress"].as_array().is_some_and(|e| !e.is_empty()) {
            default_types.push(json!("Egress"));
        }
        drop_default(inputs, prior, "policyTypes", |v| {
            *v == Json::Array(default_types.clone())
        });
        for key in ["ingress", "egress"] {
            let rules = inputs.get_mut(key).and_then(Json::as_array_mut);
            for (i, rule) in rules.into_iter().flatten().enumerate() {
                let ports = rule.get_mut("ports").and_then(Json::as_array_mut);
                for (j, port) in ports.into_iter().flatten().enumerate() {
                    drop_default(port, &prior[key][i]["ports"][j], "protocol", |p| p == "TCP");
                }
            }
        }
    }
}

// --- kubernetes:serviceAccountToken --------------------------------------------------

struct ServiceAccountToken;

#[async_trait]
impl Shape for ServiceAccountToken {
    fn kind(&self) -> &'static Kind {
        &SECRET
    }

    fn schema(&self) -> TypeSchema {
        TypeSchema {
            name: "kubernetes:serviceAccountToken".into(),
            description: "A long-lived token of a service account (a Secret of type kubernetes.io/service-account-token), and a kubeconfig that acts as the account in its namespace."
                .into(),
            inputs: vec![
                namespace_input(),
                PropertySchema::new("serviceAccount", PropertyType::String)
                    .required()
                    .replace_on_change()
                    .describe("The service account the token is for; it must exist."),
                name_input("token Secret"),
            ],
            outputs: vec![
                uid_output(),
                PropertySchema::new("token", PropertyType::String)
                    .secret()
                    .describe("The bearer token."),
                PropertySchema::new("caCertificate", PropertyType::String).describe(
                    "The CA (PEM) to trust for the API server, as Paddock trusts it; empty when the system's roots do.",
                ),
                PropertySchema::new("kubeconfig", PropertyType::String)
                    .secret()
                    .describe("A kubeconfig acting as the service account, its context's namespace the account's."),
            ],
        }
    }

    fn manifest(&self, inputs: &Props) -> Result<Json, ProviderError> {
        let account = inputs.text("serviceAccount")?;
        Ok(json!({
            "type": TOKEN_TYPE,
            "metadata": {"annotations": {ACCOUNT_ANNOTATION: account}},
        }))
    }

    fn inputs(&self, object: &Json) -> Json {
        let mut m = key_inputs(object);
        m.insert(
            "serviceAccount".into(),
            object["metadata"]["annotations"][ACCOUNT_ANNOTATION].clone(),
        );
        Json::Object(m)
    }

    fn must_recreate(&self, live: &Json, desired: &Json) -> bool {
        live["type"] != desired["type"]
            || live["metadata"]["annotations"][ACCOUNT_ANNOTATION]
                != desired["metadata"]["annotations"][ACCOUNT_ANNOTATION]
    }

    /// The account must exist: the token controller deletes a token Secret naming none.
    async fn prepare(
        &self,
        cluster: &Cluster,
        ns: Option<&str>,
        inputs: &Props,
    ) -> Result<(), ProviderError> {
        let account = inputs.text("serviceAccount")?;
        if found(cluster.get(&SERVICE_ACCOUNT, ns, &account).await)?.is_none() {
            return Err(ProviderError::new(
                "NotFound",
                format!(
                    "service account {}/{account} does not exist",
                    ns.unwrap_or_default()
                ),
            )
            .with_hint("create it first (a `kubernetes:serviceAccount`) and refer to it, so the token waits for it"));
        }
        Ok(())
    }

    /// Waits for the token controller to fill the Secret's `data.token`.
    async fn outputs(&self, cluster: &Cluster, mut object: Json) -> Result<Props, ProviderError> {
        let ns = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if object["type"] != TOKEN_TYPE {
            return Err(ProviderError::new(
                "WrongType",
                format!(
                    "secret {ns}/{name} is of type {}, not a service-account token",
                    object["type"]
                ),
            ));
        }
        let mut pause = Pause::new(TOKEN_WAIT);
        while object["data"]["token"].as_str().is_none_or(str::is_empty) {
            if !pause.wait().await {
                let mut e = ProviderError::new(
                    "Timeout",
                    format!("the token controller has not filled secret {ns}/{name} after {}", humantime::format_duration(TOKEN_WAIT)),
                )
                .with_hint("the cluster's token controller (kube-controller-manager) may be down, or the service account gone");
                e.retryable = true;
                return Err(e);
            }
            object = match found(cluster.get(&SECRET, Some(&ns), &name).await)? {
                Some(o) => o,
                None => {
                    return Err(ProviderError::new(
                        "NotFound",
                        format!(
                            "secret {ns}/{name} was deleted before the token controller filled it: its service account is gone"
                        ),
                    ));
                }
            };
        }
        let decode = |field: &str| -> Result<String, ProviderError> {
            let b64 = object["data"][field].as_str().unwrap_or_default();
            STANDARD
                .decode(b64)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| {
                    ProviderError::new(
                        "InvalidResponse",
                        format!("secret {ns}/{name}: data.{field} is not base64 text"),
                    )
                })
        };
        let token = decode("token")?;
        let account = object["metadata"]["annotations"][ACCOUNT_ANNOTATION]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let ca = cluster.ca_pem.clone().unwrap_or_default();
        let config =
            kubeconfig::for_service_account(&cluster.server, Some(&ca), &ns, &account, &token);
        let mut outputs = uid_of(&object);
        outputs.insert("token".into(), Value::secret(Value::from(token)));
        outputs.insert(
            "caCertificate".into(),
            Value::from(String::from_utf8_lossy(&ca).into_owned()),
        );
        outputs.insert("kubeconfig".into(), Value::secret(Value::from(config)));
        Ok(outputs)
    }
}
