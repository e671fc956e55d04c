//! Who is calling, and may they: bearer tokens (the cluster admin's static token, bound
//! service-account tokens from `TokenRequest`, legacy tokens from service-account-token
//! Secrets), and RBAC — role bindings in the request's namespace granting a Role or a
//! ClusterRole — including the escalation check that keeps a namespace admin from
//! granting what it does not hold.

use serde_json::{Value, json};

/// The issuer of bound service-account tokens, and the audience the API server accepts.
pub(super) const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The issuer of the tokens the token controller puts in service-account-token Secrets.
pub(super) const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Caller {
    /// The kubeconfig's user: in `system:masters`, allowed everything.
    Admin,
    ServiceAccount {
        namespace: String,
        name: String,
    },
}

impl Caller {
    pub(super) fn user(&self) -> String {
        match self {
            Caller::Admin => "kubernetes-admin".to_owned(),
            Caller::ServiceAccount { namespace, name } => {
                format!("system:serviceaccount:{namespace}:{name}")
            }
        }
    }

    pub(super) fn groups(&self) -> Vec<String> {
        match self {
            Caller::Admin => vec!["system:masters".into(), "system:authenticated".into()],
            Caller::ServiceAccount { namespace, .. } => vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
        }
    }

    /// Whether a RoleBinding subject (in a binding of `binding_namespace`) names us.
    pub(super) fn is_subject(&self, subject: &Value, binding_namespace: &str) -> bool {
        let name = subject["name"].as_str().unwrap_or_default();
        match subject["kind"].as_str().unwrap_or_default() {
            "ServiceAccount" => {
                let ns = subject["namespace"].as_str().unwrap_or(binding_namespace);
                matches!(self, Caller::ServiceAccount { namespace, name: n } if n == name && namespace == ns)
            }
            "User" => self.user() == name,
            "Group" => self.groups().iter().any(|g| g == name),
            _ => false,
        }
    }
}

/// What a request asks to do, in RBAC's terms.
#[derive(Debug)]
pub(super) struct Attributes<'a> {
    pub verb: &'a str,
    pub group: &'a str,
    /// `serviceaccounts`, or with a subresource: `serviceaccounts/token`.
    pub resource: String,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
}

fn has(list: &Value, wanted: &str) -> bool {
    list.as_array()
        .into_iter()
        .flatten()
        .any(|v| v == "*" || v == wanted)
}

/// Whether a PolicyRule allows the request.
pub(super) fn allows(rule: &Value, a: &Attributes) -> bool {
    let names = rule["resourceNames"].as_array().filter(|n| !n.is_empty());
    has(&rule["verbs"], a.verb)
        && has(&rule["apiGroups"], a.group)
        && has(&rule["resources"], &a.resource)
        && names.is_none_or(|names| a.name.is_some_and(|n| names.iter().any(|x| x == n)))
}

/// The smallest grants a rule makes: (group, resource, verb, resource name).
fn atoms(rule: &Value) -> Vec<(String, String, String, Option<String>)> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    let names: Vec<Option<String>> = match strings(&rule["resourceNames"]) {
        n if n.is_empty() => vec![None],
        n => n.into_iter().map(Some).collect(),
    };
    let mut out = Vec::new();
    for g in strings(&rule["apiGroups"]) {
        for r in strings(&rule["resources"]) {
            for v in strings(&rule["verbs"]) {
                for n in &names {
                    out.push((g.clone(), r.clone(), v.clone(), n.clone()));
                }
            }
        }
    }
    out
}

/// The grants in `wanted` that `held` does not cover, for the escalation check.
pub(super) fn not_covered(held: &[Value], wanted: &[Value]) -> Vec<Value> {
    let mut missing = Vec::new();
    for rule in wanted {
        for (group, resource, verb, name) in atoms(rule) {
            let a = Attributes {
                verb: &verb,
                group: &group,
                resource: resource.clone(),
                namespace: None,
                name: name.as_deref(),
            };
            // A wildcard is held only as a wildcard.
            let covered = held.iter().any(|h| {
                allows(h, &a)
                    && (group != "*" || has_literal(&h["apiGroups"], "*"))
                    && (resource != "*" || has_literal(&h["resources"], "*"))
                    && (verb != "*" || has_literal(&h["verbs"], "*"))
            });
            if !covered {
                let mut m = json!({"apiGroups": [group], "resources": [resource], "verbs": [verb]});
                if let Some(n) = name {
                    m["resourceNames"] = json!([n]);
                }
                missing.push(m);
            }
        }
    }
    missing
}

fn has_literal(list: &Value, wanted: &str) -> bool {
    list.as_array().into_iter().flatten().any(|v| v == wanted)
}

/// `{APIGroups:[""], Resources:["resourcequotas"], Verbs:["update"]}`, as the API server
/// prints a rule.
pub(super) fn describe_rule(rule: &Value) -> String {
    let list = |v: &Value| {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|s| format!("{s}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut out = format!(
        "{{APIGroups:[{}], Resources:[{}]",
        list(&rule["apiGroups"]),
        list(&rule["resources"])
    );
    if rule["resourceNames"].is_array() {
        out.push_str(&format!(
            ", ResourceNames:[{}]",
            list(&rule["resourceNames"])
        ));
    }
    out.push_str(&format!(", Verbs:[{}]}}", list(&rule["verbs"])));
    out
}

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

/// The default user-facing ClusterRoles, as Kubernetes bootstraps them, cut to the
/// resources this cluster serves plus the workloads a team deploys. `admin` may manage
/// roles and bindings in its namespace but not quotas or limit ranges: that is the
/// guardrail a platform relies on.
pub(super) fn default_cluster_roles() -> Vec<(&'static str, Vec<Value>)> {
    let workloads_core = [
        "pods",
        "services",
        "configmaps",
        "secrets",
        "serviceaccounts",
        "persistentvolumeclaims",
    ];
    let workloads_apps = ["deployments", "statefulsets", "replicasets", "daemonsets"];
    let view = vec![
        rule(
            &[""],
            &[
                "pods",
                "services",
                "configmaps",
                "serviceaccounts",
                "persistentvolumeclaims",
                "limitranges",
                "resourcequotas",
                "namespaces",
                "events",
            ],
            READ,
        ),
        rule(&["apps"], &workloads_apps, READ),
        rule(
            &["networking.k8s.io"],
            &["networkpolicies", "ingresses"],
            READ,
        ),
    ];
    let mut edit = view.clone();
    edit.extend([
        rule(&[""], &workloads_core, WRITE),
        rule(&[""], &["secrets"], READ),
        rule(&[""], &["serviceaccounts/token"], &["create"]),
        rule(&["apps"], &workloads_apps, WRITE),
        rule(
            &["networking.k8s.io"],
            &["networkpolicies", "ingresses"],
            WRITE,
        ),
    ]);
    let mut admin = edit.clone();
    admin.push(rule(
        &["rbac.authorization.k8s.io"],
        &["roles", "rolebindings"],
        &[READ, WRITE].concat(),
    ));
    vec![
        ("cluster-admin", vec![rule(&["*"], &["*"], &["*"])]),
        ("admin", admin),
        ("edit", edit),
        ("view", view),
    ]
}
