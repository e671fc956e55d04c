//! A Kubernetes client for the tests that checks every exchange against the official
//! object schemas (`specs/kubernetes/kubernetes.json`), strictly: a property a definition
//! does not declare is an error. Errors must be `Status` objects. It remembers which
//! `verb resource` pairs it exercised, so a test can assert coverage.

use std::cell::RefCell;
use std::collections::BTreeSet;

use paddock_sandbox::Sandbox;
use reqwest::Method;
use serde_json::{Value, json};

pub struct Schemas {
    defs: Value,
}

impl Schemas {
    pub fn load() -> Schemas {
        let path = format!(
            "{}/specs/kubernetes/kubernetes.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let doc: Value = serde_json::from_str(&text).unwrap();
        let mut defs = doc["$defs"].clone();
        for def in defs.as_object_mut().unwrap().values_mut() {
            let declares = def["properties"].as_object().is_some_and(|p| !p.is_empty());
            if declares && def.get("additionalProperties").is_none() {
                def["additionalProperties"] = json!(false);
            }
        }
        Schemas { defs }
    }

    /// Validates `instance` against the definition `name` (`io.k8s.api.core.v1.Namespace`).
    pub fn check(&self, name: &str, instance: &Value) -> Result<(), String> {
        assert!(self.defs.get(name).is_some(), "no definition {name}");
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$defs": self.defs,
            "$ref": format!("#/$defs/{name}"),
        });
        let validator = jsonschema::draft202012::new(&schema).map_err(|e| e.to_string())?;
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!("{name}: {}\n{instance:#}", errors.join("; ")))
        }
    }
}

/// The schema definition of a served kind, and of its list.
pub fn definition(kind: &str) -> &'static str {
    match kind {
        "Namespace" => "io.k8s.api.core.v1.Namespace",
        "NamespaceList" => "io.k8s.api.core.v1.NamespaceList",
        "ServiceAccount" => "io.k8s.api.core.v1.ServiceAccount",
        "ServiceAccountList" => "io.k8s.api.core.v1.ServiceAccountList",
        "Secret" => "io.k8s.api.core.v1.Secret",
        "ConfigMap" => "io.k8s.api.core.v1.ConfigMap",
        "ConfigMapList" => "io.k8s.api.core.v1.ConfigMapList",
        "Deployment" => "io.k8s.api.apps.v1.Deployment",
        "DeploymentList" => "io.k8s.api.apps.v1.DeploymentList",
        "ResourceQuota" => "io.k8s.api.core.v1.ResourceQuota",
        "ResourceQuotaList" => "io.k8s.api.core.v1.ResourceQuotaList",
        "LimitRange" => "io.k8s.api.core.v1.LimitRange",
        "LimitRangeList" => "io.k8s.api.core.v1.LimitRangeList",
        "Event" => "io.k8s.api.core.v1.Event",
        "EventList" => "io.k8s.api.core.v1.EventList",
        "Role" => "io.k8s.api.rbac.v1.Role",
        "RoleList" => "io.k8s.api.rbac.v1.RoleList",
        "RoleBinding" => "io.k8s.api.rbac.v1.RoleBinding",
        "RoleBindingList" => "io.k8s.api.rbac.v1.RoleBindingList",
        "ClusterRole" => "io.k8s.api.rbac.v1.ClusterRole",
        "NetworkPolicy" => "io.k8s.api.networking.v1.NetworkPolicy",
        "NetworkPolicyList" => "io.k8s.api.networking.v1.NetworkPolicyList",
        "TokenRequest" => "io.k8s.api.authentication.v1.TokenRequest",
        "Status" => "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
        "DeleteOptions" => "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
        "APIResourceList" => "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList",
        // Lists the cut-down schemas do not carry (SecretList, ClusterRoleList) are
        // checked item by item.
        _ => "",
    }
}

pub struct Kube {
    pub http: reqwest::Client,
    /// The API server, as the kubeconfig names it.
    pub server: String,
    pub token: String,
    pub schemas: Schemas,
    pub seen: RefCell<BTreeSet<String>>,
}

impl Kube {
    /// A client acting as the cluster admin.
    pub fn admin(s: &Sandbox) -> Kube {
        Kube::with_token(s, &s.kubernetes_token)
    }

    pub fn with_token(s: &Sandbox, token: &str) -> Kube {
        Kube {
            http: reqwest::Client::new(),
            server: s.kubernetes_url(),
            token: token.to_owned(),
            schemas: Schemas::load(),
            seen: RefCell::default(),
        }
    }

    /// Sends a request, checks the body sent (unless it is a merge patch) and the answer:
    /// a success against the kind's definition (the `kind` it names), a failure against
    /// `Status`. Records `verb resource` for coverage.
    pub async fn call(
        &self,
        verb: &str,
        method: Method,
        path: &str,
        content_type: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        if let Some(body) = &body
            && !content_type.contains("merge-patch")
        {
            let def = definition(body["kind"].as_str().unwrap_or_default());
            if !def.is_empty() {
                self.schemas.check(def, body).expect("the request is valid");
            }
        }
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.server))
            .bearer_auth(&self.token);
        if let Some(body) = &body {
            request = request
                .header("content-type", content_type)
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let value: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{verb} {path}: not JSON ({e}): {text}"));
        self.check_answer(status, &value);
        if status < 400 {
            self.seen
                .borrow_mut()
                .insert(format!("{verb} {}", resource_of(path)));
        }
        (status, value)
    }

    fn check_answer(&self, status: u16, value: &Value) {
        let kind = value["kind"].as_str().unwrap_or_default();
        if status >= 400 {
            assert_eq!(kind, "Status", "a failure is a Status: {value}");
            assert_eq!(value["code"], status, "{value}");
        }
        let def = definition(kind);
        if !def.is_empty() {
            self.schemas.check(def, value).unwrap();
        } else if let Some(items) = value["items"].as_array() {
            let item_kind = kind.trim_end_matches("List");
            for item in items {
                let mut item = item.clone();
                item["kind"] = json!(item_kind);
                self.schemas.check(definition(item_kind), &item).unwrap();
            }
        } else if kind != "APIVersions" && kind != "APIGroupList" && status < 400 {
            assert!(
                value.get("gitVersion").is_some(),
                "an answer of no known kind: {value}"
            );
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let verb = if is_collection(path) { "list" } else { "get" };
        self.call(verb, Method::GET, path, "", None).await
    }

    pub async fn create(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("create", Method::POST, path, "application/json", Some(body))
            .await
    }

    pub async fn update(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("update", Method::PUT, path, "application/json", Some(body))
            .await
    }

    pub async fn merge_patch(&self, path: &str, body: Value) -> (u16, Value) {
        let ct = "application/merge-patch+json";
        self.call("patch", Method::PATCH, path, ct, Some(body))
            .await
    }

    /// Server-side apply as `manager`.
    pub async fn apply(&self, path: &str, manager: &str, force: bool, body: Value) -> (u16, Value) {
        let path = format!("{path}?fieldManager={manager}&force={force}");
        let ct = "application/apply-patch+yaml";
        self.call("patch", Method::PATCH, &path, ct, Some(body))
            .await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.call("delete", Method::DELETE, path, "", None).await
    }
}

/// `/api/v1/namespaces/a/serviceaccounts/x` → `serviceaccounts`; `…/x/token` →
/// `serviceaccounts/token`.
fn resource_of(path: &str) -> String {
    let path = path.split('?').next().unwrap_or_default();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match parts.as_slice() {
        ["api", _, rest @ ..] | ["apis", _, _, rest @ ..] => rest,
        _ => return path.to_owned(),
    };
    match rest {
        ["namespaces", _, plural, _, sub] => format!("{plural}/{sub}"),
        ["namespaces", _, plural, ..] => (*plural).to_owned(),
        [plural, ..] => (*plural).to_owned(),
        [] => "discovery".to_owned(),
    }
}

fn is_collection(path: &str) -> bool {
    let path = path.split('?').next().unwrap_or_default();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match parts.as_slice() {
        ["api", _, rest @ ..] | ["apis", _, _, rest @ ..] => rest,
        _ => return false,
    };
    matches!(rest, [_] | ["namespaces", _, _])
}
