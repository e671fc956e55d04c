//! The kinds the sandbox cluster serves, as its discovery documents advertise them, and
//! the validation the API server applies to each before anything is stored.

use serde_json::{Value, json};

/// One served resource.
#[derive(Debug)]
pub(super) struct Kind {
    /// `""` for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// Whether `PUT` of a missing object creates it, as the RBAC and limit-range
    /// strategies allow.
    pub create_on_update: bool,
    /// Whether `status` is a subresource: writes to the object leave it alone.
    pub has_status: bool,
}

const VERBS: &[&str] = &["create", "delete", "get", "list", "patch", "update"];

pub(super) const KINDS: &[Kind] = &[
    Kind {
        group: "",
        version: "v1",
        plural: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        short_names: &["ns"],
        create_on_update: false,
        has_status: true,
    },
    Kind {
        group: "",
        version: "v1",
        plural: "serviceaccounts",
        singular: "serviceaccount",
        kind: "ServiceAccount",
        namespaced: true,
        short_names: &["sa"],
        create_on_update: false,
        has_status: false,
    },
    Kind {
        group: "",
        version: "v1",
        plural: "secrets",
        singular: "secret",
        kind: "Secret",
        namespaced: true,
        short_names: &[],
        create_on_update: false,
        has_status: false,
    },
    Kind {
        group: "",
        version: "v1",
        plural: "configmaps",
        singular: "configmap",
        kind: "ConfigMap",
        namespaced: true,
        short_names: &["cm"],
        create_on_update: false,
        has_status: false,
    },
    Kind {
        group: "",
        version: "v1",
        plural: "resourcequotas",
        singular: "resourcequota",
        kind: "ResourceQuota",
        namespaced: true,
        short_names: &["quota"],
        create_on_update: false,
        has_status: true,
    },
    Kind {
        group: "",
        version: "v1",
        plural: "limitranges",
        singular: "limitrange",
        kind: "LimitRange",
        namespaced: true,
        short_names: &["limits"],
        create_on_update: true,
        has_status: false,
    },
    Kind {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "roles",
        singular: "role",
        kind: "Role",
        namespaced: true,
        short_names: &[],
        create_on_update: true,
        has_status: false,
    },
    Kind {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "rolebindings",
        singular: "rolebinding",
        kind: "RoleBinding",
        namespaced: true,
        short_names: &[],
        create_on_update: true,
        has_status: false,
    },
    Kind {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "clusterroles",
        singular: "clusterrole",
        kind: "ClusterRole",
        namespaced: false,
        short_names: &[],
        create_on_update: true,
        has_status: false,
    },
    Kind {
        group: "networking.k8s.io",
        version: "v1",
        plural: "networkpolicies",
        singular: "networkpolicy",
        kind: "NetworkPolicy",
        namespaced: true,
        short_names: &["netpol"],
        create_on_update: false,
        has_status: false,
    },
    // Stored as written; `kubectl describe` lists an object's events with a field selector.
    Kind {
        group: "",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        create_on_update: false,
        has_status: false,
    },
    // Stored and validated, so a team can deploy; no controller turns them into pods.
    Kind {
        group: "apps",
        version: "v1",
        plural: "deployments",
        singular: "deployment",
        kind: "Deployment",
        namespaced: true,
        short_names: &["deploy"],
        create_on_update: false,
        has_status: true,
    },
];

impl Kind {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `roles.rbac.authorization.k8s.io`, or `secrets` in the core group: how the API
    /// server names the resource in its messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_owned()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The name a ResourceQuota counts objects of this kind under.
    pub fn count_resource(&self) -> String {
        format!("count/{}", self.qualified())
    }

    /// The store key of an object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace.filter(|_| self.namespaced) {
            Some(ns) => format!("{ns}/{name}"),
            None => name.to_owned(),
        }
    }
}

pub(super) fn find(group: &str, version: &str, plural: &str) -> Option<&'static Kind> {
    KINDS
        .iter()
        .find(|k| k.group == group && k.version == version && k.plural == plural)
}

/// `/api/v1` or `/apis/{group}/{version}`: the resources of one group version.
pub(super) fn resource_list(group: &str, version: &str) -> Option<Value> {
    let kinds: Vec<&Kind> = KINDS
        .iter()
        .filter(|k| k.group == group && k.version == version)
        .collect();
    if kinds.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for k in &kinds {
        let mut r = json!({
            "name": k.plural,
            "singularName": k.singular,
            "namespaced": k.namespaced,
            "kind": k.kind,
            "verbs": VERBS,
        });
        if !k.short_names.is_empty() {
            r["shortNames"] = json!(k.short_names);
        }
        // `kubectl get all` lists the kinds in the `all` category.
        if k.kind == "Deployment" {
            r["categories"] = json!(["all"]);
        }
        resources.push(r);
        if k.plural == "serviceaccounts" {
            resources.push(json!({
                "name": "serviceaccounts/token",
                "singularName": "",
                "namespaced": true,
                "group": "authentication.k8s.io",
                "version": "v1",
                "kind": "TokenRequest",
                "verbs": ["create"],
            }));
        }
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": kinds[0].api_version(),
        "resources": resources,
    }))
}

/// `/apis`: the named groups.
pub(super) fn group_list() -> Value {
    let mut groups: Vec<&str> = KINDS
        .iter()
        .map(|k| k.group)
        .filter(|g| !g.is_empty())
        .collect();
    groups.dedup();
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|g| {
            let gv = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// What the API server's defaulting fills in on create when the writer left it out
/// (`kubectl create secret` and `create deployment` leave these to it).
pub(super) fn set_defaults(kind: &Kind, object: &mut Value) {
    match kind.kind {
        "Secret" if object["type"].as_str().is_none_or(str::is_empty) => {
            object["type"] = json!("Opaque");
        }
        "Deployment" => {
            let spec = &mut object["spec"];
            for (field, default) in [
                ("replicas", json!(1)),
                ("revisionHistoryLimit", json!(10)),
                ("progressDeadlineSeconds", json!(600)),
            ] {
                if spec[field].is_null() {
                    spec[field] = default;
                }
            }
            if spec["strategy"]["type"].is_null() {
                spec["strategy"]["type"] = json!("RollingUpdate");
            }
            if spec["strategy"]["type"] == "RollingUpdate"
                && spec["strategy"]["rollingUpdate"].is_null()
            {
                spec["strategy"]["rollingUpdate"] =
                    json!({"maxSurge": "25%", "maxUnavailable": "25%"});
            }
        }
        _ => {}
    }
}

/// A field the API server refuses, as a `StatusCause`.
#[derive(Debug)]
pub(super) struct Invalid {
    pub reason: &'static str,
    pub field: String,
    pub message: String,
}

impl Invalid {
    pub fn value(field: impl Into<String>, value: &Value, why: &str) -> Invalid {
        let field = field.into();
        let shown = match value {
            Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        };
        Invalid {
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {shown}: {why}"),
            field,
        }
    }

    pub fn required(field: impl Into<String>, why: &str) -> Invalid {
        Invalid {
            reason: "FieldValueRequired",
            message: if why.is_empty() {
                "Required value".to_owned()
            } else {
                format!("Required value: {why}")
            },
            field: field.into(),
        }
    }

    pub fn unsupported(field: impl Into<String>, value: &Value, allowed: &[&str]) -> Invalid {
        let allowed: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
        Invalid {
            reason: "FieldValueNotSupported",
            message: format!(
                "Unsupported value: {value}: supported values: {}",
                allowed.join(", ")
            ),
            field: field.into(),
        }
    }
}

const DNS1123_LABEL: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Why `name` is not a valid name for `kind`, if it is not.
pub(super) fn check_name(kind: &Kind, name: &str) -> Option<String> {
    match kind.group {
        // RBAC objects take any name that is a valid path segment.
        "rbac.authorization.k8s.io" => {
            if name == "." || name == ".." {
                Some(format!("may not be '{name}'"))
            } else if name.contains('/') || name.contains('%') {
                Some(format!(
                    "may not contain '{}'",
                    if name.contains('/') { "/" } else { "%" }
                ))
            } else {
                None
            }
        }
        _ if kind.plural == "namespaces" => {
            if name.len() > 63 {
                Some("must be no more than 63 characters".to_owned())
            } else if !is_label(name) {
                Some(DNS1123_LABEL.to_owned())
            } else {
                None
            }
        }
        _ => {
            if name.len() > 253 {
                Some("must be no more than 253 characters".to_owned())
            } else if !name.split('.').all(is_label) {
                Some(DNS1123_SUBDOMAIN.to_owned())
            } else {
                None
            }
        }
    }
}

/// A resource quantity: `100m`, `2Gi`, `1.5`, `1e3`.
fn is_quantity(v: &Value) -> bool {
    let s = match v {
        Value::String(s) => s.as_str(),
        Value::Number(n) => return n.as_f64().is_some_and(|f| f >= 0.0),
        _ => return false,
    };
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(digits_end);
    let number = number.strip_prefix('+').unwrap_or(number);
    let number_ok = !number.is_empty()
        && !number.starts_with('-')
        && number.chars().filter(|c| *c == '.').count() <= 1
        && number.chars().any(|c| c.is_ascii_digit());
    let suffix_ok = matches!(
        suffix,
        "" | "n"
            | "u"
            | "m"
            | "k"
            | "M"
            | "G"
            | "T"
            | "P"
            | "E"
            | "Ki"
            | "Mi"
            | "Gi"
            | "Ti"
            | "Pi"
            | "Ei"
    ) || suffix
        .strip_prefix(['e', 'E'])
        .is_some_and(|e| e.trim_start_matches(['+', '-']).parse::<u32>().is_ok());
    number_ok && suffix_ok
}

fn check_quantities(map: &Value, field: &str, out: &mut Vec<Invalid>) {
    for (resource, q) in map.as_object().into_iter().flatten() {
        if !is_quantity(q) {
            out.push(Invalid::value(
                format!("{field}[{resource}]"),
                q,
                "must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            ));
        }
    }
}

fn strings(v: &Value) -> impl Iterator<Item = &str> {
    v.as_array().into_iter().flatten().filter_map(Value::as_str)
}

/// What the kind's own validation refuses in `object` (name and namespace already
/// checked).
pub(super) fn check(kind: &Kind, object: &Value) -> Vec<Invalid> {
    let mut out = Vec::new();
    match kind.kind {
        "ResourceQuota" => check_quantities(&object["spec"]["hard"], "spec.hard", &mut out),
        "LimitRange" => {
            let limits = &object["spec"]["limits"];
            if limits.as_array().is_none_or(Vec::is_empty) {
                out.push(Invalid::required("spec.limits", ""));
            }
            for (i, item) in limits.as_array().into_iter().flatten().enumerate() {
                let kinds = ["Pod", "Container", "PersistentVolumeClaim"];
                if !item["type"].as_str().is_some_and(|t| kinds.contains(&t)) {
                    out.push(Invalid::unsupported(
                        format!("spec.limits[{i}].type"),
                        &item["type"],
                        &kinds,
                    ));
                }
                for part in [
                    "default",
                    "defaultRequest",
                    "max",
                    "min",
                    "maxLimitRequestRatio",
                ] {
                    check_quantities(&item[part], &format!("spec.limits[{i}].{part}"), &mut out);
                }
            }
        }
        "Role" | "ClusterRole" => {
            for (i, rule) in object["rules"].as_array().into_iter().flatten().enumerate() {
                if strings(&rule["verbs"]).next().is_none() {
                    out.push(Invalid::required(
                        format!("rules[{i}].verbs"),
                        "verbs must contain at least one value",
                    ));
                }
                if strings(&rule["resources"]).next().is_some()
                    && rule["apiGroups"].as_array().is_none_or(Vec::is_empty)
                {
                    out.push(Invalid::required(
                        format!("rules[{i}].apiGroups"),
                        "resource rules must supply at least one api group",
                    ));
                }
            }
        }
        "RoleBinding" => {
            let role_ref = &object["roleRef"];
            if role_ref["apiGroup"] != "rbac.authorization.k8s.io" {
                out.push(Invalid::unsupported(
                    "roleRef.apiGroup",
                    &role_ref["apiGroup"],
                    &["rbac.authorization.k8s.io"],
                ));
            }
            if !matches!(role_ref["kind"].as_str(), Some("Role" | "ClusterRole")) {
                out.push(Invalid::unsupported(
                    "roleRef.kind",
                    &role_ref["kind"],
                    &["Role", "ClusterRole"],
                ));
            }
            if role_ref["name"].as_str().is_none_or(str::is_empty) {
                out.push(Invalid::required("roleRef.name", ""));
            }
            let subjects = object["subjects"].as_array().into_iter().flatten();
            for (i, s) in subjects.enumerate() {
                if s["name"].as_str().is_none_or(str::is_empty) {
                    out.push(Invalid::required(format!("subjects[{i}].name"), ""));
                }
                match s["kind"].as_str() {
                    Some("ServiceAccount") => {
                        if s["apiGroup"].as_str().is_some_and(|g| !g.is_empty()) {
                            out.push(Invalid::unsupported(
                                format!("subjects[{i}].apiGroup"),
                                &s["apiGroup"],
                                &[""],
                            ));
                        }
                    }
                    Some("User" | "Group") => {
                        if s["apiGroup"] != "rbac.authorization.k8s.io" {
                            out.push(Invalid::unsupported(
                                format!("subjects[{i}].apiGroup"),
                                &s["apiGroup"],
                                &["rbac.authorization.k8s.io"],
                            ));
                        }
                    }
                    _ => out.push(Invalid::unsupported(
                        format!("subjects[{i}].kind"),
                        &s["kind"],
                        &["ServiceAccount", "User", "Group"],
                    )),
                }
            }
        }
        "NetworkPolicy" => {
            for (i, t) in object["spec"]["policyTypes"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                if !matches!(t.as_str(), Some("Ingress" | "Egress")) {
                    out.push(Invalid::unsupported(
                        format!("spec.policyTypes[{i}]"),
                        t,
                        &["Ingress", "Egress"],
                    ));
                }
            }
        }
        "Deployment" => check_deployment(object, &mut out),
        "Secret" => {
            use base64::Engine as _;
            for (key, value) in object["data"].as_object().into_iter().flatten() {
                let ok = value
                    .as_str()
                    .is_some_and(|v| base64::engine::general_purpose::STANDARD.decode(v).is_ok());
                if !ok {
                    out.push(Invalid::value(
                        format!("data[{key}]"),
                        value,
                        "must be base64-encoded bytes",
                    ));
                }
            }
        }
        _ => {}
    }
    out
}

/// What the apps/v1 validation refuses first in a Deployment: a selector, a template
/// whose labels it selects, and containers with a name and an image.
fn check_deployment(object: &Value, out: &mut Vec<Invalid>) {
    let spec = &object["spec"];
    let selector = &spec["selector"]["matchLabels"];
    let labels = &spec["template"]["metadata"]["labels"];
    let has_selector = selector.as_object().is_some_and(|m| !m.is_empty())
        || spec["selector"]["matchExpressions"]
            .as_array()
            .is_some_and(|e| !e.is_empty());
    if !has_selector {
        out.push(Invalid::required("spec.selector", ""));
    } else if let Some(wanted) = selector.as_object() {
        let selected = wanted.iter().all(|(k, v)| &labels[k] == v);
        if !selected {
            out.push(Invalid::value(
                "spec.template.metadata.labels",
                labels,
                "`selector` does not match template `labels`",
            ));
        }
    }
    if spec["replicas"].as_i64().is_some_and(|r| r < 0) {
        out.push(Invalid::value(
            "spec.replicas",
            &spec["replicas"],
            "must be greater than or equal to 0",
        ));
    }
    let containers = &spec["template"]["spec"]["containers"];
    if containers.as_array().is_none_or(Vec::is_empty) {
        out.push(Invalid::required("spec.template.spec.containers", ""));
    }
    for (i, c) in containers.as_array().into_iter().flatten().enumerate() {
        for field in ["name", "image"] {
            if c[field].as_str().is_none_or(str::is_empty) {
                out.push(Invalid::required(
                    format!("spec.template.spec.containers[{i}].{field}"),
                    "",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_checked_like_the_api_server_does() {
        for ok in ["10", "100m", "2Gi", "1.5", "1e3", "500Mi", "0"] {
            assert!(is_quantity(&json!(ok)), "{ok}");
        }
        for bad in ["", "ten", "1.2.3", "-1", "5Xi", "Gi"] {
            assert!(!is_quantity(&json!(bad)), "{bad}");
        }
    }

    #[test]
    fn names_follow_each_kinds_rule() {
        let ns = find("", "v1", "namespaces").unwrap();
        let sa = find("", "v1", "serviceaccounts").unwrap();
        let role = find("rbac.authorization.k8s.io", "v1", "roles").unwrap();
        assert!(check_name(ns, "team-a").is_none());
        assert!(check_name(ns, "team.a").is_some(), "a namespace is a label");
        assert!(check_name(ns, "Team").is_some());
        assert!(check_name(sa, "deploy.bot").is_none());
        assert!(check_name(role, "system:Deployer").is_none());
        assert!(check_name(role, "a/b").is_some());
    }
}
