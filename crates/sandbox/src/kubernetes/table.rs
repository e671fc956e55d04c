//! Server-side printing: when a client asks for `application/json;as=Table;g=meta.k8s.io;
//! v=v1` (as `kubectl get` does), a get or a list is answered with a `meta.k8s.io` Table —
//! the columns kube-apiserver's printers give each kind (priority 1: shown by `-o wide`),
//! one row per object, and the object itself as `includeObject` asks (`Metadata` by
//! default: a `PartialObjectMetadata`).

use std::time::Duration;

use axum::http::{HeaderMap, Uri, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::kinds::Kind;
use super::{KubeError, ok, query};
use crate::now_ms;

/// The Table version the `Accept` header asks for, if it asks for one.
fn table_version(headers: &HeaderMap) -> Option<&'static str> {
    let accept = headers.get(header::ACCEPT)?.to_str().ok()?;
    for media in accept.split(',') {
        let mut parts = media.split(';').map(str::trim);
        if parts.next() != Some("application/json") {
            continue;
        }
        let params: Vec<&str> = parts.collect();
        let is_table = params.contains(&"as=Table") && params.contains(&"g=meta.k8s.io");
        if is_table && params.contains(&"v=v1") {
            return Some("meta.k8s.io/v1");
        }
        if is_table && params.contains(&"v=v1beta1") {
            return Some("meta.k8s.io/v1beta1");
        }
    }
    None
}

/// A get's or a list's answer: the object or list itself, or its Table.
pub(super) fn answer(
    headers: &HeaderMap,
    uri: &Uri,
    kind: &Kind,
    v: Value,
) -> Result<Response, KubeError> {
    let Some(api_version) = table_version(headers) else {
        return Ok(ok(v));
    };
    let include = query(uri, "includeObject").unwrap_or_else(|| "Metadata".into());
    if !matches!(include.as_str(), "None" | "Metadata" | "Object") {
        return Err(KubeError::bad_request(format!(
            "includeObject: Unsupported value: {include:?}: supported values: \"Metadata\", \"None\", \"Object\""
        )));
    }
    let (objects, metadata) = match v["items"].as_array() {
        Some(items) => (items.clone(), v["metadata"].clone()),
        None => (
            vec![v.clone()],
            json!({"resourceVersion": v["metadata"]["resourceVersion"]}),
        ),
    };
    let rows: Vec<Value> = objects
        .into_iter()
        .map(|o| {
            let mut row = json!({"cells": cells(kind, &o)});
            match include.as_str() {
                "Object" => {
                    let mut o = o;
                    o["apiVersion"] = json!(kind.api_version());
                    o["kind"] = json!(kind.kind);
                    row["object"] = o;
                }
                "Metadata" => {
                    row["object"] = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]});
                }
                _ => {}
            }
            row
        })
        .collect();
    let columns: Vec<Value> = columns(kind)
        .iter()
        .map(|(name, ty, format, priority, description)| {
            json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
        })
        .collect();
    Ok(ok(json!({
        "kind": "Table",
        "apiVersion": api_version,
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })))
}

const NAME: (&str, &str, &str, u8, &str) = (
    "Name",
    "string",
    "name",
    0,
    "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
);
const AGE: (&str, &str, &str, u8, &str) = (
    "Age",
    "string",
    "",
    0,
    "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
);
const CREATED_AT: (&str, &str, &str, u8, &str) = (
    "Created At",
    "date",
    "",
    0,
    "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
);

/// The columns kube-apiserver's printers (`pkg/printers/internalversion`) define.
fn columns(kind: &Kind) -> Vec<(&'static str, &'static str, &'static str, u8, &'static str)> {
    match kind.kind {
        "Namespace" => vec![
            NAME,
            ("Status", "string", "", 0, "The status of the namespace"),
            AGE,
        ],
        "ServiceAccount" => vec![
            NAME,
            (
                "Secrets",
                "string",
                "",
                0,
                "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
            ),
            AGE,
        ],
        "Secret" => vec![
            NAME,
            (
                "Type",
                "string",
                "",
                0,
                "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types",
            ),
            (
                "Data",
                "string",
                "",
                0,
                "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'.",
            ),
            AGE,
        ],
        "ConfigMap" => vec![
            NAME,
            (
                "Data",
                "string",
                "",
                0,
                "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'.",
            ),
            AGE,
        ],
        "ResourceQuota" => vec![
            NAME,
            AGE,
            (
                "Request",
                "string",
                "",
                0,
                "Request represents a minimum amount of cpu/memory that a container may consume.",
            ),
            (
                "Limit",
                "string",
                "",
                0,
                "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
            ),
        ],
        "LimitRange" | "Role" | "ClusterRole" => vec![NAME, CREATED_AT],
        "RoleBinding" => vec![
            NAME,
            (
                "Role",
                "string",
                "",
                0,
                "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace.",
            ),
            AGE,
            ("Users", "string", "", 1, "Users in the roleBinding"),
            ("Groups", "string", "", 1, "Groups in the roleBinding"),
            (
                "ServiceAccounts",
                "string",
                "",
                1,
                "ServiceAccounts in the roleBinding",
            ),
        ],
        "NetworkPolicy" => vec![
            NAME,
            (
                "Pod-Selector",
                "string",
                "",
                0,
                "Select the pods to which this NetworkPolicy object applies.",
            ),
            AGE,
        ],
        "Deployment" => vec![
            NAME,
            (
                "Ready",
                "string",
                "",
                0,
                "Number of the pod with ready state",
            ),
            (
                "Up-to-date",
                "string",
                "",
                0,
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
            ),
            (
                "Available",
                "string",
                "",
                0,
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
            ),
            AGE,
            (
                "Containers",
                "string",
                "",
                1,
                "Names of each container in the template.",
            ),
            (
                "Images",
                "string",
                "",
                1,
                "Images referenced by each container in the template.",
            ),
            (
                "Selector",
                "string",
                "",
                1,
                "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
            ),
        ],
        _ => vec![NAME, AGE],
    }
}

fn cells(kind: &Kind, o: &Value) -> Vec<Value> {
    let name = json!(o["metadata"]["name"]);
    let created = o["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap_or_default();
    let age = json!(age(created));
    let count = |v: &Value| v.as_object().map_or(0, |m| m.len());
    match kind.kind {
        "Namespace" => vec![name, o["status"]["phase"].clone(), age],
        "ServiceAccount" => vec![
            name,
            json!(o["secrets"].as_array().map_or(0, Vec::len)),
            age,
        ],
        "Secret" => vec![name, o["type"].clone(), json!(count(&o["data"])), age],
        "ConfigMap" => vec![
            name,
            json!(count(&o["data"]) + count(&o["binaryData"])),
            age,
        ],
        "ResourceQuota" => {
            let (request, limit) = quota_columns(o);
            vec![name, age, json!(request), json!(limit)]
        }
        "LimitRange" | "Role" | "ClusterRole" => vec![name, json!(created)],
        "RoleBinding" => {
            let subjects = |k: &str| -> String {
                o["subjects"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|s| s["kind"] == k)
                    .map(|s| match (k, s["namespace"].as_str()) {
                        ("ServiceAccount", Some(ns)) => {
                            format!("{ns}/{}", s["name"].as_str().unwrap_or_default())
                        }
                        _ => s["name"].as_str().unwrap_or_default().to_owned(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let role = format!(
                "{}/{}",
                o["roleRef"]["kind"].as_str().unwrap_or_default(),
                o["roleRef"]["name"].as_str().unwrap_or_default()
            );
            vec![
                name,
                json!(role),
                age,
                json!(subjects("User")),
                json!(subjects("Group")),
                json!(subjects("ServiceAccount")),
            ]
        }
        "NetworkPolicy" => vec![name, json!(format_selector(&o["spec"]["podSelector"])), age],
        "Deployment" => {
            let number = |v: &Value| v.as_i64().unwrap_or(0);
            let desired = o["spec"]["replicas"].as_i64().unwrap_or(1);
            let containers = o["spec"]["template"]["spec"]["containers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let field = |f: &str| {
                containers
                    .iter()
                    .map(|c| c[f].as_str().unwrap_or_default().to_owned())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            vec![
                name,
                json!(format!(
                    "{}/{desired}",
                    number(&o["status"]["readyReplicas"])
                )),
                json!(number(&o["status"]["updatedReplicas"])),
                json!(number(&o["status"]["availableReplicas"])),
                age,
                json!(field("name")),
                json!(field("image")),
                json!(format_selector(&o["spec"]["selector"])),
            ]
        }
        _ => vec![name, age],
    }
}

/// `requests.cpu: 0/4, pods: 1/10` and `limits.memory: 0/8Gi`, sorted by resource.
fn quota_columns(o: &Value) -> (String, String) {
    let hard = o["status"]["hard"]
        .as_object()
        .or(o["spec"]["hard"].as_object());
    let (mut request, mut limit) = (Vec::new(), Vec::new());
    let mut names: Vec<&String> = hard.into_iter().flat_map(|h| h.keys()).collect();
    names.sort();
    for r in names {
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            Value::Null => "0".into(),
            other => other.to_string(),
        };
        let used = text(&o["status"]["used"][r.as_str()]);
        let entry = format!(
            "{r}: {used}/{}",
            text(&hard.map(|h| h[r.as_str()].clone()).unwrap_or_default())
        );
        if r.split('.').next() == Some("limits") && r.contains('.') {
            limit.push(entry);
        } else {
            request.push(entry);
        }
    }
    (request.join(", "), limit.join(", "))
}

/// A label selector as `metav1.FormatLabelSelector` prints it; `<none>` when empty.
pub(super) fn format_selector(selector: &Value) -> String {
    let mut parts: Vec<(String, String)> = Vec::new();
    for (k, v) in selector["matchLabels"].as_object().into_iter().flatten() {
        parts.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or_default())));
    }
    for e in selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let key = e["key"].as_str().unwrap_or_default();
        let mut values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        values.sort();
        let text = match e["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_owned(),
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other}"),
        };
        parts.push((key.to_owned(), text));
    }
    if parts.is_empty() {
        return "<none>".into();
    }
    parts.sort();
    parts
        .into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(",")
}

/// How long ago an RFC 3339 time was, as `kubectl` ages read: `45s`, `3m20s`, `5h`, `12d`.
fn age(created: &str) -> String {
    let Ok(t) = humantime::parse_rfc3339(created) else {
        return "<unknown>".into();
    };
    let then = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    human_duration(Duration::from_millis((now_ms() - then).max(0) as u64))
}

/// `k8s.io/apimachinery/pkg/util/duration.HumanDuration`.
fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (m, h, days) = (s / 60, s / 3600, s / 86400);
    let years = days / 365;
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        match s % 60 {
            0 => format!("{m}m"),
            r => format!("{m}m{r}s"),
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        match m % 60 {
            0 => format!("{h}h"),
            r => format!("{h}h{r}m"),
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        match h % 24 {
            0 => format!("{days}d"),
            r => format!("{days}d{r}h"),
        }
    } else if h < 24 * 365 * 2 {
        format!("{days}d")
    } else if h < 24 * 365 * 8 {
        match days % 365 {
            0 => format!("{years}y"),
            r => format!("{years}y{r}d"),
        }
    } else {
        format!("{years}y")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_kubectl_prints_them() {
        for (secs, text) in [
            (5, "5s"),
            (119, "119s"),
            (200, "3m20s"),
            (600, "10m"),
            (3 * 3600 + 120, "3h2m"),
            (9 * 3600, "9h"),
            (3 * 86400 + 3600, "3d1h"),
            (20 * 86400, "20d"),
        ] {
            assert_eq!(human_duration(Duration::from_secs(secs)), text);
        }
    }

    #[test]
    fn selectors_print_sorted_and_empty_ones_as_none() {
        assert_eq!(format_selector(&json!({})), "<none>");
        assert_eq!(
            format_selector(
                &json!({"matchLabels": {"tier": "web", "app": "x"}, "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]}]})
            ),
            "app=x,env in (dev,prod),tier=web"
        );
    }

    #[test]
    fn a_table_is_answered_only_when_asked_for() {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, "application/json;as=Table;g=meta.k8s.io;v=v1,application/json;as=Table;g=meta.k8s.io;v=v1beta1,application/json".parse().unwrap());
        assert_eq!(table_version(&h), Some("meta.k8s.io/v1"));
        h.insert(header::ACCEPT, "application/json, */*".parse().unwrap());
        assert_eq!(table_version(&h), None);
    }
}
