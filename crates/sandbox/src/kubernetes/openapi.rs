//! `/openapi/v2` and `/openapi/v3`: the OpenAPI documents of exactly what the cluster
//! serves, derived from the official object schemas its contract tests check it against
//! (`specs/kubernetes/kubernetes.json`, JSON Schema cut from the Kubernetes OpenAPI
//! document). kubectl reads them: `apply` for strategic-merge metadata and to learn that
//! the server validates fields (operations declaring `fieldValidation`), `explain` for the
//! schemas. The v3 index names each group version's document with a `hash` query, as a
//! real API server does, so clients may cache it.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha512};

use super::kinds::{KINDS, Kind};
use super::{KubeError, not_served, query};

const SCHEMAS: &str = include_str!("../../specs/kubernetes/kubernetes.json");
const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";

/// The object schemas in OpenAPI form, keyed by definition name.
pub(super) struct Definitions {
    pub defs: Map<String, Value>,
    /// `group/version/Kind` → definition name.
    by_kind: BTreeMap<String, String>,
}

impl Definitions {
    /// The definition of a kind's objects.
    pub fn of(&self, group: &str, version: &str, kind: &str) -> Option<&Value> {
        let name = self.by_kind.get(&format!("{group}/{version}/{kind}"))?;
        self.defs.get(name)
    }

    /// Follows a `$ref` (or the `allOf: [{$ref}]` wrapping of one) to its definition.
    pub fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        let target = schema["$ref"]
            .as_str()
            .or_else(|| schema["allOf"][0]["$ref"].as_str());
        match target.and_then(|r| r.rsplit('/').next()) {
            Some(name) => self.defs.get(name).unwrap_or(&Value::Null),
            None => schema,
        }
    }
}

/// The definitions, converted once: JSON Schema's `type: [t, "null"]` back to OpenAPI's
/// `type: t`, references to `#/components/schemas/`, and the list kinds the cut leaves
/// out (SecretList, ClusterRoleList) built as every list kind is.
pub(super) static DEFINITIONS: LazyLock<Definitions> = LazyLock::new(|| {
    let doc: Value = serde_json::from_str(SCHEMAS).expect("the bundled schemas are JSON");
    let mut defs = Map::new();
    for (name, def) in doc["$defs"].as_object().expect("$defs") {
        defs.insert(name.clone(), to_openapi(def));
    }
    for k in KINDS {
        let list = format!("{}List", k.kind);
        let item = defs
            .iter()
            .find(|(_, d)| has_gvk(d, k.group, k.version, k.kind))
            .map(|(n, _)| n.clone());
        let has_list = defs.values().any(|d| has_gvk(d, k.group, k.version, &list));
        if let (Some(item), false) = (item, has_list) {
            let name = format!("{}List", item);
            defs.insert(name, list_definition(k, &item));
        }
    }
    defs.insert(
        format!("{META}.Patch"),
        json!({"description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.", "type": "object"}),
    );
    let mut by_kind = BTreeMap::new();
    for (name, def) in &defs {
        for gvk in def["x-kubernetes-group-version-kind"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let key = format!(
                "{}/{}/{}",
                gvk["group"].as_str().unwrap_or_default(),
                gvk["version"].as_str().unwrap_or_default(),
                gvk["kind"].as_str().unwrap_or_default()
            );
            by_kind.entry(key).or_insert_with(|| name.clone());
        }
    }
    Definitions { defs, by_kind }
});

fn has_gvk(def: &Value, group: &str, version: &str, kind: &str) -> bool {
    def["x-kubernetes-group-version-kind"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|g| g["group"] == group && g["version"] == version && g["kind"] == kind)
}

fn list_definition(k: &Kind, item: &str) -> Value {
    json!({
        "description": format!("{}List is a list of {} objects.", k.kind, k.kind),
        "properties": {
            "apiVersion": {"description": "APIVersion defines the versioned schema of this representation of an object.", "type": "string"},
            "items": {"description": format!("Items is a list of {} objects.", k.kind), "items": {"$ref": format!("#/components/schemas/{item}")}, "type": "array"},
            "kind": {"description": "Kind is a string value representing the REST resource this object represents.", "type": "string"},
            "metadata": {"allOf": [{"$ref": format!("#/components/schemas/{META}.ListMeta")}], "description": "Standard list metadata."},
        },
        "required": ["items"],
        "type": "object",
        "x-kubernetes-group-version-kind": [{"group": k.group, "kind": format!("{}List", k.kind), "version": k.version}],
    })
}

/// One JSON Schema node in OpenAPI v3 form.
fn to_openapi(node: &Value) -> Value {
    match node {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("type", Value::Array(types)) => {
                        if let Some(t) = types.iter().find(|t| *t != "null") {
                            out.insert(k.clone(), t.clone());
                        }
                    }
                    ("$ref", Value::String(r)) => {
                        let name = r.trim_start_matches("#/$defs/");
                        out.insert(k.clone(), json!(format!("#/components/schemas/{name}")));
                    }
                    ("properties", Value::Object(props)) => {
                        let props = props
                            .iter()
                            .map(|(name, p)| {
                                let mut p = to_openapi(p);
                                // The generator's `enum` on apiVersion and kind is not in
                                // the API server's document.
                                if name == "apiVersion" || name == "kind" {
                                    p.as_object_mut().map(|m| m.remove("enum"));
                                }
                                (name.clone(), p)
                            })
                            .collect();
                        out.insert(k.clone(), Value::Object(props));
                    }
                    _ => {
                        out.insert(k.clone(), to_openapi(v));
                    }
                }
            }
            // A reference with siblings is wrapped in `allOf`, as kube-openapi writes v3.
            if out.len() > 1
                && let Some(r) = out.remove("$ref")
            {
                out.insert("allOf".into(), json!([{"$ref": r}]));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(to_openapi).collect()),
        other => other.clone(),
    }
}

/// v3 → v2: `#/definitions/` references, no `allOf` wrapping, one `type` for the
/// int-or-string and quantity unions.
fn to_v2(node: &Value) -> Value {
    match node {
        Value::Object(map) => {
            if let Some(r) = map.get("allOf").and_then(|a| a[0]["$ref"].as_str()) {
                let mut out = map.clone();
                out.remove("allOf");
                out.insert("$ref".into(), json!(r));
                return to_v2(&Value::Object(out));
            }
            let mut out = Map::new();
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => {
                        let name = r.trim_start_matches("#/components/schemas/");
                        out.insert(k.clone(), json!(format!("#/definitions/{name}")));
                    }
                    ("oneOf", _) => {
                        out.insert("type".into(), json!("string"));
                    }
                    _ => {
                        out.insert(k.clone(), to_v2(v));
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(to_v2).collect()),
        other => other.clone(),
    }
}

/// `Core`, `RbacAuthorization`, `Apps`: how operation ids name a group.
fn group_word(group: &str) -> String {
    if group.is_empty() {
        return "Core".into();
    }
    group
        .trim_end_matches(".k8s.io")
        .split('.')
        .map(capitalized)
        .collect()
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect::<String>())
        .unwrap_or_default()
}

/// A query or path parameter, as the API server's documents describe it.
fn parameter(name: &str) -> Value {
    let (inn, description, ty) = match name {
        "name" => ("path", "name of the object", "string"),
        "namespace" => (
            "path",
            "object name and auth scope, such as for teams and projects",
            "string",
        ),
        "pretty" => (
            "query",
            "If 'true', then the output is pretty printed.",
            "string",
        ),
        "dryRun" => (
            "query",
            "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed",
            "string",
        ),
        "fieldManager" => (
            "query",
            "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint. This field is required for apply requests (application/apply-patch) but optional for non-apply patch types (JsonPatch, MergePatch, StrategicMergePatch).",
            "string",
        ),
        "fieldValidation" => (
            "query",
            "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. This is the default behavior prior to v1.23. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. The request will still succeed if there are no other errors, and will only persist the last of any duplicate fields. This is the default in v1.23+ - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered.",
            "string",
        ),
        "force" => (
            "query",
            "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.",
            "boolean",
        ),
        "labelSelector" => (
            "query",
            "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
            "string",
        ),
        "limit" => (
            "query",
            "limit is a maximum number of responses to return for a list call. If more items exist, the server will set the `continue` field on the list metadata to a value that can be used with the same initial query to retrieve the next set of results.",
            "integer",
        ),
        "continue" => (
            "query",
            "The continue option should be set when retrieving more results from the server. The value is the `continue` field of the previous list's metadata.",
            "string",
        ),
        _ => unreachable!("a parameter the documents describe: {name}"),
    };
    let mut p = json!({"name": name, "in": inn, "description": description, "schema": {"type": ty, "uniqueItems": true}});
    if inn == "path" {
        p["required"] = json!(true);
    }
    p
}

/// One operation of a served kind.
struct Operation {
    method: &'static str,
    action: &'static str,
    id: String,
    description: String,
    params: &'static [&'static str],
    /// The request body's definition and media types.
    body: Option<(String, &'static [&'static str])>,
    /// Status codes and the definition each returns.
    responses: Vec<(u16, String)>,
}

const WRITE_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation"];
const PATCH_TYPES: &[&str] = &[
    "application/apply-patch+yaml",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];

/// The path items of one kind: collection, item, and (for service accounts) `token`.
fn kind_paths(k: &Kind) -> Vec<(String, Vec<&'static str>, Vec<Operation>)> {
    let defs = &*DEFINITIONS;
    let Some(def) = defs
        .by_kind
        .get(&format!("{}/{}/{}", k.group, k.version, k.kind))
    else {
        return Vec::new();
    };
    let list_def = defs
        .by_kind
        .get(&format!("{}/{}/{}List", k.group, k.version, k.kind))
        .cloned()
        .unwrap_or_default();
    let prefix = if k.group.is_empty() {
        format!("/api/{}", k.version)
    } else {
        format!("/apis/{}/{}", k.group, k.version)
    };
    let word = format!("{}{}", group_word(k.group), capitalized(k.version));
    let scope = if k.namespaced { "Namespaced" } else { "" };
    let status = format!("{META}.Status");
    let (collection, item, path_params): (String, String, Vec<&str>) = if k.namespaced {
        (
            format!("{prefix}/namespaces/{{namespace}}/{}", k.plural),
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", k.plural),
            vec!["namespace"],
        )
    } else {
        (
            format!("{prefix}/{}", k.plural),
            format!("{prefix}/{}/{{name}}", k.plural),
            vec![],
        )
    };
    let mut item_params = vec!["name"];
    item_params.extend(&path_params);
    let mut out = vec![
        (
            collection,
            [path_params.clone(), vec!["pretty"]].concat(),
            vec![
                Operation {
                    method: "get",
                    action: "list",
                    id: format!("list{word}{scope}{}", k.kind),
                    description: format!("list or watch objects of kind {}", k.kind),
                    params: &["labelSelector", "limit", "continue"],
                    body: None,
                    responses: vec![(200, list_def.clone())],
                },
                Operation {
                    method: "post",
                    action: "post",
                    id: format!("create{word}{scope}{}", k.kind),
                    description: format!("create a {}", k.kind),
                    params: WRITE_PARAMS,
                    body: Some((def.clone(), &["*/*"])),
                    responses: vec![(200, def.clone()), (201, def.clone()), (202, def.clone())],
                },
            ],
        ),
        (
            item,
            [item_params, vec!["pretty"]].concat(),
            vec![
                Operation {
                    method: "get",
                    action: "get",
                    id: format!("read{word}{scope}{}", k.kind),
                    description: format!("read the specified {}", k.kind),
                    params: &[],
                    body: None,
                    responses: vec![(200, def.clone())],
                },
                Operation {
                    method: "put",
                    action: "put",
                    id: format!("replace{word}{scope}{}", k.kind),
                    description: format!("replace the specified {}", k.kind),
                    params: WRITE_PARAMS,
                    body: Some((def.clone(), &["*/*"])),
                    responses: vec![(200, def.clone()), (201, def.clone())],
                },
                Operation {
                    method: "patch",
                    action: "patch",
                    id: format!("patch{word}{scope}{}", k.kind),
                    description: format!("partially update the specified {}", k.kind),
                    params: &["dryRun", "fieldManager", "fieldValidation", "force"],
                    body: Some((format!("{META}.Patch"), PATCH_TYPES)),
                    responses: vec![(200, def.clone()), (201, def.clone())],
                },
                Operation {
                    method: "delete",
                    action: "delete",
                    id: format!("delete{word}{scope}{}", k.kind),
                    description: format!("delete a {}", k.kind),
                    params: &["dryRun"],
                    body: Some((format!("{META}.DeleteOptions"), &["*/*"])),
                    // Quotas answer with the deleted object, as their registry does.
                    responses: if k.kind == "ResourceQuota" {
                        vec![(200, def.clone()), (202, def.clone())]
                    } else {
                        vec![(200, status.clone()), (202, status.clone())]
                    },
                },
            ],
        ),
    ];
    if k.namespaced {
        out.push((
            format!("{prefix}/{}", k.plural),
            vec!["pretty"],
            vec![Operation {
                method: "get",
                action: "list",
                id: format!("list{word}{}ForAllNamespaces", k.kind),
                description: format!("list or watch objects of kind {}", k.kind),
                params: &["labelSelector", "limit", "continue"],
                body: None,
                responses: vec![(200, list_def)],
            }],
        ));
    }
    if k.plural == "serviceaccounts" {
        let token = "io.k8s.api.authentication.v1.TokenRequest".to_owned();
        out.push((
            format!("{prefix}/namespaces/{{namespace}}/serviceaccounts/{{name}}/token"),
            vec!["name", "namespace", "pretty"],
            vec![Operation {
                method: "post",
                action: "post",
                id: "createCoreV1NamespacedServiceAccountToken".into(),
                description: "create token of a ServiceAccount".into(),
                params: WRITE_PARAMS,
                body: Some((token.clone(), &["*/*"])),
                responses: vec![(200, token.clone()), (201, token.clone()), (202, token)],
            }],
        ));
    }
    out
}

fn gvk_of(k: &Kind, op: &Operation) -> Value {
    if op.id.ends_with("Token") {
        json!({"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"})
    } else {
        json!({"group": k.group, "version": k.version, "kind": k.kind})
    }
}

fn tag(k: &Kind) -> String {
    let g = if k.group.is_empty() {
        "core"
    } else {
        k.group.trim_end_matches(".k8s.io")
    };
    format!("{}_{}", g.replace('.', "_"), k.version)
}

/// Every `$ref` a node makes, transitively closed over the definitions.
fn referenced(roots: impl IntoIterator<Item = String>) -> Vec<String> {
    fn refs(node: &Value, out: &mut Vec<String>) {
        match node {
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v.as_str()) {
                        ("$ref", Some(r)) => {
                            out.push(r.rsplit('/').next().unwrap_or_default().into())
                        }
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut keep = std::collections::BTreeSet::new();
    let mut todo: Vec<String> = roots.into_iter().collect();
    while let Some(name) = todo.pop() {
        if !keep.insert(name.clone()) {
            continue;
        }
        if let Some(def) = DEFINITIONS.defs.get(&name) {
            refs(def, &mut todo);
        }
    }
    keep.into_iter().collect()
}

fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut gvs: Vec<(&str, &str)> = KINDS.iter().map(|k| (k.group, k.version)).collect();
    gvs.dedup();
    gvs
}

/// `api/v1`, `apis/apps/v1`: a group version's key in the v3 index.
fn gv_key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The v3 document of one group version.
fn v3_document(group: &str, version: &str) -> Value {
    let mut paths = Map::new();
    let mut roots = vec![format!("{META}.Status")];
    for k in KINDS
        .iter()
        .filter(|k| k.group == group && k.version == version)
    {
        for (path, path_params, ops) in kind_paths(k) {
            let mut item = Map::new();
            item.insert(
                "parameters".into(),
                Value::Array(path_params.iter().map(|p| parameter(p)).collect()),
            );
            for op in ops {
                let mut o = json!({
                    "tags": [tag(k)],
                    "description": op.description,
                    "operationId": op.id,
                    "parameters": op.params.iter().map(|p| parameter(p)).collect::<Vec<_>>(),
                    "x-kubernetes-action": op.action,
                    "x-kubernetes-group-version-kind": gvk_of(k, &op),
                });
                if let Some((def, types)) = &op.body {
                    roots.push(def.clone());
                    let content: Map<String, Value> = types
                        .iter()
                        .map(|t| {
                            (
                                t.to_string(),
                                json!({"schema": {"$ref": format!("#/components/schemas/{def}")}}),
                            )
                        })
                        .collect();
                    o["requestBody"] =
                        json!({"content": content, "required": op.method != "delete"});
                }
                let mut responses = Map::new();
                for (code, def) in &op.responses {
                    roots.push(def.clone());
                    responses.insert(
                        code.to_string(),
                        json!({"description": if *code == 201 { "Created" } else if *code == 202 { "Accepted" } else { "OK" },
                            "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{def}")}}}}),
                    );
                }
                responses.insert("401".into(), json!({"description": "Unauthorized"}));
                o["responses"] = Value::Object(responses);
                item.insert(op.method.into(), o);
            }
            paths.insert(path, Value::Object(item));
        }
    }
    let schemas: Map<String, Value> = referenced(roots)
        .into_iter()
        .filter_map(|n| DEFINITIONS.defs.get(&n).map(|d| (n, d.clone())))
        .collect();
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": super::version()["gitVersion"]},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"BearerToken": {"type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header"}},
        },
        "security": [{"BearerToken": []}],
    })
}

/// The v2 document of everything served, from the v3 documents.
fn v2_document() -> Value {
    let mut paths = Map::new();
    let mut definitions = Map::new();
    for (group, version) in group_versions() {
        let v3 = v3_document(group, version);
        for (name, def) in v3["components"]["schemas"]
            .as_object()
            .into_iter()
            .flatten()
        {
            definitions.insert(name.clone(), to_v2(def));
        }
        for (path, item) in v3["paths"].as_object().into_iter().flatten() {
            let mut out = Map::new();
            for (method, op) in item.as_object().into_iter().flatten() {
                if method == "parameters" {
                    out.insert(method.clone(), v2_parameters(op, None));
                    continue;
                }
                let mut op = op.clone();
                let body = op.as_object_mut().and_then(|o| o.remove("requestBody"));
                let consumes: Vec<String> = body
                    .as_ref()
                    .and_then(|b| b["content"].as_object())
                    .map(|c| c.keys().cloned().collect())
                    .unwrap_or_default();
                op["parameters"] = v2_parameters(&op["parameters"], body.as_ref());
                if !consumes.is_empty() {
                    op["consumes"] = json!(consumes);
                }
                op["produces"] = json!(["application/json"]);
                op["schemes"] = json!(["https"]);
                if let Some(responses) = op["responses"].as_object_mut() {
                    for r in responses.values_mut() {
                        if let Some(schema) = r.as_object_mut().and_then(|r| r.remove("content")) {
                            r["schema"] = to_v2(&schema["application/json"]["schema"]);
                        }
                    }
                }
                out.insert(method.clone(), op);
            }
            paths.insert(path.clone(), Value::Object(out));
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": super::version()["gitVersion"]},
        "paths": paths,
        "definitions": definitions,
        "securityDefinitions": {"BearerToken": {"type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header"}},
        "security": [{"BearerToken": []}],
    })
}

fn v2_parameters(params: &Value, body: Option<&Value>) -> Value {
    let mut out: Vec<Value> = params
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let mut p = p.clone();
            if let Some(schema) = p.as_object_mut().and_then(|p| p.remove("schema")) {
                p["type"] = schema["type"].clone();
                p["uniqueItems"] = json!(true);
            }
            p
        })
        .collect();
    if let Some(schema) = body.and_then(|b| b["content"].as_object()?.values().next().cloned()) {
        out.push(json!({"name": "body", "in": "body", "required": true, "schema": to_v2(&schema["schema"])}));
    }
    Value::Array(out)
}

/// The served documents, rendered once with their hashes.
struct Served {
    /// `api/v1` → (hash, document text).
    v3: BTreeMap<String, (String, String)>,
    v2: String,
}

static SERVED: LazyLock<Served> = LazyLock::new(|| {
    let v3 = group_versions()
        .into_iter()
        .map(|(g, v)| {
            let text = v3_document(g, v).to_string();
            let hash = format!("{:X}", Sha512::digest(text.as_bytes()));
            (gv_key(g, v), (hash, text))
        })
        .collect();
    Served {
        v3,
        v2: v2_document().to_string(),
    }
});

fn json_text(text: &str, cache: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        text.to_owned(),
    )
        .into_response()
}

/// `GET /openapi/v2`, `/openapi/v3`, `/openapi/v3/{api/v1|apis/g/v}`.
pub(super) fn answer(
    segments: &[&str],
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Response, KubeError> {
    let path = uri.path();
    match segments {
        ["openapi", "v2"] => {
            let accept = headers
                .get(header::ACCEPT)
                .and_then(|a| a.to_str().ok())
                .unwrap_or("*/*");
            let json_ok = accept.split(',').any(|t| {
                let t = t.split(';').next().unwrap_or_default().trim();
                t == "application/json" || t == "*/*" || t == "application/*"
            });
            if !json_ok {
                // The protobuf form of v2 is not served; kubectl then reads v3.
                return Err(KubeError::new(
                    StatusCode::NOT_ACCEPTABLE,
                    "NotAcceptable",
                    format!(
                        "only the following media types are accepted: application/json (asked for {accept})"
                    ),
                ));
            }
            Ok(json_text(&SERVED.v2, "no-cache, private"))
        }
        ["openapi", "v3"] => {
            let paths: Map<String, Value> = SERVED
                .v3
                .iter()
                .map(|(k, (hash, _))| {
                    (
                        k.clone(),
                        json!({"serverRelativeURL": format!("/openapi/v3/{k}?hash={hash}")}),
                    )
                })
                .collect();
            Ok(json_text(
                &json!({"paths": paths}).to_string(),
                "no-cache, private",
            ))
        }
        ["openapi", "v3", rest @ ..] => {
            let key = rest.join("/");
            let (hash, text) = SERVED.v3.get(&key).ok_or_else(|| not_served(path))?;
            let cache = if query(uri, "hash").as_deref() == Some(hash.as_str()) {
                "public, immutable"
            } else {
                "no-cache, private"
            };
            Ok(json_text(text, cache))
        }
        _ => Err(not_served(path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_kind_has_a_definition_and_a_list_definition() {
        for k in KINDS {
            assert!(
                DEFINITIONS.of(k.group, k.version, k.kind).is_some(),
                "{}",
                k.kind
            );
            let list = format!("{}List", k.kind);
            assert!(
                DEFINITIONS.of(k.group, k.version, &list).is_some(),
                "{list}"
            );
        }
    }

    #[test]
    fn every_reference_in_the_documents_resolves() {
        for (key, (_, text)) in &SERVED.v3 {
            let doc: Value = serde_json::from_str(text).unwrap();
            let schemas = doc["components"]["schemas"].as_object().unwrap();
            for name in referenced(schemas.keys().cloned()) {
                assert!(
                    schemas.contains_key(&name),
                    "{key}: {name} is referenced, not included"
                );
            }
        }
        let v2: Value = serde_json::from_str(&SERVED.v2).unwrap();
        assert!(
            !SERVED.v2.contains("#/components/"),
            "v2 refers to v3 components"
        );
        assert!(v2["definitions"]["io.k8s.api.core.v1.ConfigMap"].is_object());
    }
}
