//! Who am I, and what may I do: `SelfSubjectAccessReview` and `SelfSubjectRulesReview`
//! (`kubectl auth can-i`, `--list`), `SubjectAccessReview` (the admin asking about anyone),
//! and `SelfSubjectReview` (`kubectl auth whoami`). Answered by the same RBAC evaluation
//! that authorizes requests; any signed-in caller may ask about itself, as
//! `system:basic-user` allows.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::rbac::{self, Attributes, Caller};
use super::{KubeError, KubeResult, Kubernetes, created, parse_body};

const AUTHORIZATION: &str = "authorization.k8s.io";
const AUTHENTICATION: &str = "authentication.k8s.io";

/// The review resources: (group, plural, kind).
const REVIEWS: &[(&str, &str, &str)] = &[
    (
        AUTHORIZATION,
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
    ),
    (
        AUTHORIZATION,
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
    ),
    (AUTHORIZATION, "subjectaccessreviews", "SubjectAccessReview"),
    (AUTHENTICATION, "selfsubjectreviews", "SelfSubjectReview"),
];

/// `/apis` with the review groups added.
pub(super) fn with_review_groups(mut groups: Value) -> Value {
    for g in [AUTHENTICATION, AUTHORIZATION] {
        let gv = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
        if let Some(list) = groups["groups"].as_array_mut() {
            list.push(json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv}));
        }
    }
    groups
}

/// `/apis/{authorization|authentication}.k8s.io/v1`.
pub(super) fn resource_list(group: &str, version: &str) -> Option<Value> {
    let resources: Vec<Value> = REVIEWS
        .iter()
        .filter(|(g, _, _)| *g == group && version == "v1")
        .map(|(_, plural, kind)| {
            json!({"name": plural, "singularName": "", "namespaced": false, "kind": kind, "verbs": ["create"]})
        })
        .collect();
    (!resources.is_empty()).then(|| {
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": format!("{group}/{version}"), "resources": resources})
    })
}

/// The rules every signed-in caller holds (`system:basic-user`, `system:discovery`).
fn basic_rules() -> (Vec<Value>, Vec<Value>) {
    (
        vec![
            json!({"verbs": ["create"], "apiGroups": [AUTHORIZATION], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]}),
            json!({"verbs": ["create"], "apiGroups": [AUTHENTICATION], "resources": ["selfsubjectreviews"]}),
        ],
        vec![
            json!({"verbs": ["get"], "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/openapi", "/openapi/*", "/version", "/version/"]}),
        ],
    )
}

impl Kubernetes {
    /// A review, if `group/version/rest` names one; `None` leaves the path to the kinds.
    pub(super) async fn review(
        &self,
        caller: &Caller,
        method: &Method,
        group: &str,
        version: &str,
        rest: &[&str],
        body: &[u8],
    ) -> Option<KubeResult> {
        let [plural] = rest else { return None };
        let (_, _, kind) = REVIEWS
            .iter()
            .find(|(g, p, _)| *g == group && p == plural && version == "v1")?;
        if method != Method::POST {
            return Some(Err(KubeError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!(
                    "the server does not allow this method on the requested resource ({method} {plural})"
                ),
            )));
        }
        Some(self.answer_review(caller, group, kind, body).await)
    }

    async fn answer_review(
        &self,
        caller: &Caller,
        group: &str,
        kind: &str,
        body: &[u8],
    ) -> KubeResult {
        let mut review = if kind == "SelfSubjectReview" && body.is_empty() {
            json!({})
        } else {
            parse_body(body)?
        };
        if review.get("kind").is_some_and(|k| k != kind) {
            return Err(KubeError::bad_request(format!(
                "the kind in the data ({}) does not match the expected kind ({kind})",
                review["kind"].as_str().unwrap_or_default()
            )));
        }
        review["apiVersion"] = json!(format!("{group}/v1"));
        review["kind"] = json!(kind);
        review["metadata"] = json!({"creationTimestamp": null});
        review["status"] = match kind {
            "SelfSubjectAccessReview" => self.access(caller, &review["spec"]).await?,
            "SubjectAccessReview" => {
                if *caller != Caller::Admin {
                    return Err(KubeError::new(
                        StatusCode::FORBIDDEN,
                        "Forbidden",
                        format!(
                            "subjectaccessreviews.authorization.k8s.io is forbidden: User \"{}\" cannot create resource \"subjectaccessreviews\" in API group \"authorization.k8s.io\" at the cluster scope",
                            caller.user()
                        ),
                    )
                    .with_details(json!({"group": AUTHORIZATION, "kind": "subjectaccessreviews"})));
                }
                match subject(&review["spec"]) {
                    Some(subject) => self.access(&subject, &review["spec"]).await?,
                    None => json!({"allowed": false, "reason": "no RBAC policy matched"}),
                }
            }
            "SelfSubjectRulesReview" => self.rules(caller, &review["spec"]).await?,
            _ => json!({"userInfo": {"username": caller.user(), "groups": caller.groups()}}),
        };
        Ok(created(review))
    }

    /// The `status` of an access review: whether `who` may do what `spec` describes.
    async fn access(&self, who: &Caller, spec: &Value) -> Result<Value, KubeError> {
        if *who == Caller::Admin {
            return Ok(json!({"allowed": true}));
        }
        let (basic, discovery) = basic_rules();
        let attrs = &spec["resourceAttributes"];
        let allowed = if attrs.is_object() {
            let text = |f: &str| attrs[f].as_str().unwrap_or_default();
            let resource = match text("subresource") {
                "" => text("resource").to_owned(),
                sub => format!("{}/{sub}", text("resource")),
            };
            let namespace = Some(text("namespace")).filter(|n| !n.is_empty());
            let a = Attributes {
                verb: text("verb"),
                group: text("group"),
                resource,
                namespace,
                name: Some(text("name")).filter(|n| !n.is_empty()),
            };
            // Role bindings grant only in their namespace, as in `authorize`.
            let held = match namespace {
                Some(ns) => self.rules_held(who, ns).await?,
                None => Vec::new(),
            };
            basic.iter().chain(&held).any(|rule| rbac::allows(rule, &a))
        } else {
            let path = spec["nonResourceAttributes"]["path"]
                .as_str()
                .unwrap_or_default();
            let verb = spec["nonResourceAttributes"]["verb"]
                .as_str()
                .unwrap_or_default();
            discovery.iter().any(|r| {
                r["verbs"]
                    .as_array()
                    .is_some_and(|v| v.iter().any(|v| v == verb || v == "*"))
                    && r["nonResourceURLs"].as_array().is_some_and(|urls| {
                        urls.iter()
                            .filter_map(Value::as_str)
                            .any(|u| match u.strip_suffix('*') {
                                Some(prefix) => path.starts_with(prefix),
                                None => u == path,
                            })
                    })
            })
        };
        Ok(json!({"allowed": allowed}))
    }

    /// The `status` of a rules review: what the caller may do in `spec.namespace`.
    async fn rules(&self, caller: &Caller, spec: &Value) -> Result<Value, KubeError> {
        let (mut resource_rules, mut non_resource) = basic_rules();
        if *caller == Caller::Admin {
            resource_rules.insert(
                0,
                json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}),
            );
            non_resource.insert(0, json!({"verbs": ["*"], "nonResourceURLs": ["*"]}));
        } else if let Some(ns) = spec["namespace"].as_str().filter(|n| !n.is_empty()) {
            for rule in self.rules_held(caller, ns).await? {
                let mut r = json!({"verbs": rule["verbs"], "apiGroups": rule["apiGroups"], "resources": rule["resources"]});
                if rule["resourceNames"].is_array() {
                    r["resourceNames"] = rule["resourceNames"].clone();
                }
                resource_rules.push(r);
            }
        }
        Ok(
            json!({"resourceRules": resource_rules, "nonResourceRules": non_resource, "incomplete": false}),
        )
    }
}

/// The subject of a `SubjectAccessReview`: the admin (or `system:masters`), or a service
/// account by its user name; others hold nothing here.
fn subject(spec: &Value) -> Option<Caller> {
    let user = spec["user"].as_str().unwrap_or_default();
    let masters = spec["groups"]
        .as_array()
        .is_some_and(|g| g.iter().any(|g| g == "system:masters"));
    if masters || user == Caller::Admin.user() {
        return Some(Caller::Admin);
    }
    let rest = user.strip_prefix("system:serviceaccount:")?;
    let (namespace, name) = rest.split_once(':')?;
    Some(Caller::ServiceAccount {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    })
}
