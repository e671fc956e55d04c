//! The Kubernetes API of a one-node sandbox cluster, served under [`ROOT`]: namespaces
//! (deleted asynchronously: `Terminating` until their contents are gone), service accounts
//! with `TokenRequest` and legacy token Secrets, secrets, config maps, resource quotas
//! (object counts enforced), limit ranges, roles, role bindings, cluster roles, network
//! policies and deployments (stored and validated; no controller runs them), and events.
//! Bodies and answers are JSON or, as kubectl's typed commands prefer, Kubernetes
//! protobuf ([`protobuf`], negotiated by `Content-Type` and `Accept`).
//!
//! Invariants: every write goes through one lock, so `resourceVersion`s increase and a
//! stale `resourceVersion` is a 409 `Conflict`; `managedFields` records who set what, so
//! server-side apply removes what an applier dropped and reports conflicts with other
//! managers; service-account tokens are checked (signature, expiry, audience, the account
//! still existing with the same uid) and their requests authorized by RBAC in the
//! request's namespace, escalation check included. Errors are `Status` objects.
//!
//! For kubectl: protobuf bodies and answers (`protobuf`), Tables (`table`), the OpenAPI
//! documents (`openapi`), `fieldValidation`
//! (`fields`), access and identity reviews (`review`).
//!
//! Not served: watch, `deletecollection`, JSON patch, workloads other than deployments.

mod apply;
mod fields;
mod kinds;
mod openapi;
pub mod protobuf;
mod rbac;
mod review;
mod table;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::documents::Documents;
use crate::tokens::Signer;
use crate::{SandboxError, new_id, now_ms, percent_decode, uuid_v4};
use kinds::{Invalid, KINDS, Kind};
use rbac::{Attributes, Caller};

/// Where the cluster's API server is served: the kubeconfig's `server` ends with it.
pub const ROOT: &str = "/kubernetes";
pub(crate) const API: &str = "kubernetes";
/// Namespaces the cluster starts with; the first three may not be deleted.
const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

#[derive(Clone, Debug)]
pub struct KubernetesConfig {
    /// How long a deleted namespace stays `Terminating` before it and its contents go.
    pub namespace_termination: Duration,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            namespace_termination: Duration::from_secs(2),
        }
    }
}

pub(crate) struct Kubernetes {
    docs: Documents,
    signer: Arc<Signer>,
    config: KubernetesConfig,
    /// Where the sandbox keeps its CA certificate, which token Secrets carry.
    data_dir: std::path::PathBuf,
    /// The kubeconfig user's token (in `system:masters`).
    pub admin_token: String,
    /// Held across every read-modify-write; guards the last `resourceVersion` issued.
    write: tokio::sync::Mutex<u64>,
}

/// A Kubernetes `Status` error.
#[derive(Debug)]
pub(crate) struct KubeError {
    status: StatusCode,
    reason: &'static str,
    message: String,
    details: Option<Value>,
}

impl KubeError {
    fn new(status: StatusCode, reason: &'static str, message: impl Into<String>) -> KubeError {
        KubeError {
            status,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, details: Value) -> KubeError {
        self.details = Some(details);
        self
    }

    fn bad_request(message: impl Into<String>) -> KubeError {
        KubeError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    fn not_found(kind: &Kind, name: &str) -> KubeError {
        KubeError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{} \"{name}\" not found", kind.qualified()),
        )
        .with_details(json!({"name": name, "group": kind.group, "kind": kind.plural}))
    }

    fn invalid(kind: &Kind, name: &str, causes: Vec<Invalid>) -> KubeError {
        let summary: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let message = match summary.as_slice() {
            [one] => format!("{} \"{name}\" is invalid: {one}", kind.kind),
            many => format!("{} \"{name}\" is invalid: [{}]", kind.kind, many.join(", ")),
        };
        let causes: Vec<Value> = causes
            .into_iter()
            .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
            .collect();
        KubeError::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message).with_details(
            json!({"name": name, "group": kind.group, "kind": kind.kind, "causes": causes}),
        )
    }

    fn forbidden(kind: &Kind, name: Option<&str>, why: &str) -> KubeError {
        let what = match name {
            Some(n) => format!("{} \"{n}\"", kind.qualified()),
            None => kind.qualified(),
        };
        let mut details = json!({"group": kind.group, "kind": kind.plural});
        if let Some(n) = name {
            details["name"] = json!(n);
        }
        KubeError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!("{what} is forbidden: {why}"),
        )
        .with_details(details)
    }

    fn unauthorized() -> KubeError {
        KubeError::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
    }
}

impl From<SandboxError> for KubeError {
    fn from(e: SandboxError) -> Self {
        KubeError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!("Internal error occurred: {e}"),
        )
    }
}

/// The `Status` object of a failure, in Kubernetes' shape.
pub(crate) fn status_body(status: StatusCode, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": status.as_u16(),
    })
}

impl IntoResponse for KubeError {
    fn into_response(self) -> Response {
        let mut body = status_body(self.status, self.reason, &self.message);
        if let Some(details) = self.details {
            body["details"] = details;
        }
        (self.status, axum::Json(body)).into_response()
    }
}

type KubeResult = Result<Response, KubeError>;

fn created(v: Value) -> Response {
    (StatusCode::CREATED, axum::Json(v)).into_response()
}

fn ok(v: Value) -> Response {
    axum::Json(v).into_response()
}

/// Kubernetes writes times to the second.
fn timestamp(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn query(uri: &Uri, name: &str) -> Option<String> {
    uri.query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .map(|v| percent_decode(&v.replace('+', " ")))
}

/// What a request addresses, once its path is parsed.
struct Target {
    kind: &'static Kind,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

impl Target {
    fn key(&self) -> String {
        self.kind.key(
            self.namespace.as_deref(),
            self.name.as_deref().unwrap_or_default(),
        )
    }

    /// The namespace RBAC sees: a namespace addresses itself.
    fn rbac_namespace(&self) -> Option<&str> {
        if self.kind.plural == "namespaces" {
            self.name.as_deref()
        } else {
            self.namespace.as_deref()
        }
    }
}

pub(crate) async fn dispatch(
    State(k8s): State<Arc<Kubernetes>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let format = protobuf::response_format(&headers);
    let response = match protobuf::request_body(&method, &headers, body) {
        Ok(body) => k8s.route(&method, &uri, &headers, &body).await,
        // Who is asking comes first: a stranger learns nothing about the body.
        Err(e) => Err(k8s.caller(&headers).await.err().unwrap_or(e)),
    };
    let response = response.unwrap_or_else(IntoResponse::into_response);
    protobuf::respond(format, response).await
}

impl Kubernetes {
    /// Opens the cluster: the admin token, the last `resourceVersion`, and on first start
    /// the system namespaces, their `default` service accounts and the default cluster
    /// roles.
    pub(crate) async fn open(
        docs: Documents,
        signer: Arc<Signer>,
        config: KubernetesConfig,
        data_dir: std::path::PathBuf,
    ) -> Result<Arc<Kubernetes>, SandboxError> {
        docs.insert_new(
            "sandbox",
            "kubernetesToken",
            "admin",
            &json!({"token": format!("sandbox-admin.{}", new_id())}),
        )
        .await?;
        let admin_token = docs
            .get("sandbox", "kubernetesToken", "admin")
            .await?
            .and_then(|v| v["token"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let last = docs
            .get("sandbox", "kubernetesResourceVersion", "last")
            .await?
            .and_then(|v| v["value"].as_u64())
            .unwrap_or(0);
        let k8s = Arc::new(Kubernetes {
            docs,
            signer,
            config,
            data_dir,
            admin_token,
            write: tokio::sync::Mutex::new(last),
        });
        for ns in SYSTEM_NAMESPACES {
            let object = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            k8s.seed(kind("namespaces"), None, ns, object).await?;
        }
        for (name, rules) in rbac::default_cluster_roles() {
            let object = json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
                "rules": rules,
            });
            k8s.seed(kind("clusterroles"), None, name, object).await?;
        }
        Ok(k8s)
    }

    /// Creates an object at start unless it exists (a user may have changed it since).
    async fn seed(
        &self,
        kind: &'static Kind,
        namespace: Option<&str>,
        name: &str,
        object: Value,
    ) -> Result<(), SandboxError> {
        if self
            .docs
            .get(API, kind.plural, &kind.key(namespace, name))
            .await?
            .is_some()
        {
            return Ok(());
        }
        let mut last = self.write.lock().await;
        self.insert(&mut last, kind, object, "kube-apiserver", "Update")
            .await
            .map_err(|e| SandboxError::Database(e.message))?;
        Ok(())
    }

    async fn route(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> KubeResult {
        self.finish_terminations().await?;
        let caller = self.caller(headers).await?;
        let path = uri.path().strip_prefix(ROOT).unwrap_or_default();
        let segments: Vec<String> = path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decode)
            .collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let (group, version, rest) = match segments.as_slice() {
            ["version"] => return Ok(ok(version())),
            ["api"] => {
                return Ok(ok(json!({
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
                })));
            }
            ["apis"] => return Ok(ok(review::with_review_groups(kinds::group_list()))),
            ["openapi", ..] => return openapi::answer(&segments, uri, headers),
            ["api", version, rest @ ..] => ("", *version, rest),
            ["apis", group, version, rest @ ..] => (*group, *version, rest),
            _ => return Err(not_served(path)),
        };
        let plural = match rest {
            [] => {
                return kinds::resource_list(group, version)
                    .or_else(|| review::resource_list(group, version))
                    .map(ok)
                    .ok_or_else(|| not_served(path));
            }
            ["namespaces", _, plural, ..] | [plural, ..] => *plural,
        };
        if let Some(answer) = self
            .review(&caller, method, group, version, rest, body)
            .await
        {
            return answer;
        }
        let target = match (kinds::find(group, version, plural), rest) {
            (Some(kind), [_]) => Target {
                kind,
                namespace: None,
                name: None,
                subresource: None,
            },
            (Some(kind), [_, name]) if !kind.namespaced => Target {
                kind,
                namespace: None,
                name: Some(name.to_string()),
                subresource: None,
            },
            (Some(kind), ["namespaces", ns, _, tail @ ..])
                if kind.namespaced && tail.len() <= 2 =>
            {
                Target {
                    kind,
                    namespace: Some(ns.to_string()),
                    name: tail.first().map(|n| n.to_string()),
                    subresource: tail.get(1).map(|s| s.to_string()),
                }
            }
            // `namespaces/{name}` when the path is `/api/v1/namespaces/{name}`.
            (None, ["namespaces", name]) if group.is_empty() => Target {
                kind: kind("namespaces"),
                namespace: None,
                name: Some(name.to_string()),
                subresource: None,
            },
            _ => return Err(not_served(path)),
        };
        let verb = match (method.as_str(), &target.name, &target.subresource) {
            ("GET", Some(_), None) => "get",
            ("GET", None, _) if query(uri, "watch").is_some_and(|w| w == "true" || w == "1") => {
                return Err(KubeError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    "the sandbox cluster does not serve watch; poll with get or list",
                ));
            }
            ("GET", None, _) => "list",
            ("POST", None, _) => "create",
            ("POST", Some(_), Some(s))
                if s == "token" && target.kind.plural == "serviceaccounts" =>
            {
                "create"
            }
            ("PUT", Some(_), None) => "update",
            ("PATCH", Some(_), None) => "patch",
            ("DELETE", Some(_), None) => "delete",
            _ => {
                return Err(KubeError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    format!(
                        "the server does not allow this method on the requested resource ({method} {path})"
                    ),
                ));
            }
        };
        let resource = match &target.subresource {
            Some(s) => format!("{}/{s}", target.kind.plural),
            None => target.kind.plural.to_owned(),
        };
        self.authorize(
            &caller,
            &target,
            &Attributes {
                verb,
                group: target.kind.group,
                resource,
                namespace: target.rbac_namespace(),
                name: target.name.as_deref(),
            },
        )
        .await?;
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let fields = match verb {
            "create" | "update" | "patch" if target.subresource.is_none() => {
                Some(fields::check(uri, target.kind, content_type, body)?)
            }
            _ => None,
        };
        let body = fields.as_ref().map_or(body, |f| &f.body[..]);
        let answer = self
            .serve(&caller, &target, verb, uri, headers, body)
            .await?;
        Ok(match &fields {
            Some(f) => f.warn(answer),
            None => answer,
        })
    }

    /// Carries out an authorized request on a served kind.
    async fn serve(
        &self,
        caller: &Caller,
        target: &Target,
        verb: &str,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> KubeResult {
        let dry_run = query(uri, "dryRun").is_some_and(|d| d == "All");
        let manager = query(uri, "fieldManager").unwrap_or_else(|| default_manager(headers));
        match verb {
            "get" => table::answer(headers, uri, target.kind, self.get(target).await?),
            "list" => table::answer(headers, uri, target.kind, self.list(target, uri).await?),
            "create" if target.subresource.is_some() => self.token_request(target, body).await,
            "create" => {
                let object = parse_body(body)?;
                let mut last = self.write.lock().await;
                let object = self.prepare_create(caller, target, object).await?;
                if dry_run {
                    return Ok(created(object));
                }
                self.insert(&mut last, target.kind, object, &manager, "Update")
                    .await
                    .map(created)
            }
            "update" => {
                let object = parse_body(body)?;
                self.update(caller, target, object, &manager, dry_run).await
            }
            "patch" => {
                let content_type = headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                let force = query(uri, "force").is_some_and(|f| f == "true");
                let manager = query(uri, "fieldManager");
                self.patch(
                    caller,
                    target,
                    content_type,
                    body,
                    manager,
                    force,
                    dry_run,
                    headers,
                )
                .await
            }
            "delete" => self.delete(target, body, dry_run).await,
            _ => unreachable!("verbs are mapped above"),
        }
    }

    // --- authentication and authorization ---------------------------------------------

    /// Who presents the request's bearer token.
    async fn caller(&self, headers: &HeaderMap) -> Result<Caller, KubeError> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(KubeError::unauthorized)?;
        if token == self.admin_token {
            return Ok(Caller::Admin);
        }
        let claims = self
            .signer
            .verify_signature(token)
            .map_err(|_| KubeError::unauthorized())?;
        let (namespace, name, uid) = match claims["iss"].as_str() {
            Some(rbac::ISSUER) => {
                let audience_ok = match &claims["aud"] {
                    Value::Array(a) => a.iter().any(|a| a == rbac::ISSUER),
                    a => a == rbac::ISSUER,
                };
                let live = claims["exp"].as_i64().is_some_and(|e| e > now_ms() / 1000);
                if !audience_ok || !live {
                    return Err(KubeError::unauthorized());
                }
                let k = &claims["kubernetes.io"];
                (
                    k["namespace"].as_str(),
                    k["serviceaccount"]["name"].as_str(),
                    k["serviceaccount"]["uid"].as_str(),
                )
            }
            // A legacy token lives as long as its Secret does.
            Some(rbac::LEGACY_ISSUER) => {
                let ns = claims["kubernetes.io/serviceaccount/namespace"].as_str();
                let secret = claims["kubernetes.io/serviceaccount/secret.name"].as_str();
                let secret_live = match (ns, secret) {
                    (Some(ns), Some(secret)) => self
                        .docs
                        .get(API, "secrets", &format!("{ns}/{secret}"))
                        .await?
                        .is_some(),
                    _ => false,
                };
                if !secret_live {
                    return Err(KubeError::unauthorized());
                }
                (
                    ns,
                    claims["kubernetes.io/serviceaccount/service-account.name"].as_str(),
                    claims["kubernetes.io/serviceaccount/service-account.uid"].as_str(),
                )
            }
            _ => return Err(KubeError::unauthorized()),
        };
        let (Some(namespace), Some(name), Some(uid)) = (namespace, name, uid) else {
            return Err(KubeError::unauthorized());
        };
        let account = self
            .docs
            .get(API, "serviceaccounts", &format!("{namespace}/{name}"))
            .await?;
        if account.is_none_or(|a| a["metadata"]["uid"] != uid) {
            return Err(KubeError::unauthorized());
        }
        Ok(Caller::ServiceAccount {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }

    /// The rules the caller holds in a namespace, through the role bindings there.
    async fn rules_held(&self, caller: &Caller, namespace: &str) -> Result<Vec<Value>, KubeError> {
        let mut rules = Vec::new();
        for binding in self
            .docs
            .values(API, "rolebindings", &format!("{namespace}/"))
            .await?
        {
            let names_caller = binding["subjects"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| caller.is_subject(s, namespace));
            if !names_caller {
                continue;
            }
            let role_name = binding["roleRef"]["name"].as_str().unwrap_or_default();
            let role = match binding["roleRef"]["kind"].as_str() {
                Some("Role") => {
                    self.docs
                        .get(API, "roles", &format!("{namespace}/{role_name}"))
                        .await?
                }
                Some("ClusterRole") => self.docs.get(API, "clusterroles", role_name).await?,
                _ => None,
            };
            if let Some(role) = role {
                rules.extend(role["rules"].as_array().into_iter().flatten().cloned());
            }
        }
        Ok(rules)
    }

    async fn authorize(
        &self,
        caller: &Caller,
        target: &Target,
        attributes: &Attributes<'_>,
    ) -> Result<(), KubeError> {
        if *caller == Caller::Admin {
            return Ok(());
        }
        // Role bindings grant only within their namespace; cluster-wide requests need
        // cluster role bindings, which this cluster gives to nobody but its admin.
        let allowed = match attributes.namespace {
            Some(ns) => self
                .rules_held(caller, ns)
                .await?
                .iter()
                .any(|rule| rbac::allows(rule, attributes)),
            None => false,
        };
        if allowed {
            return Ok(());
        }
        let scope = match attributes.namespace {
            Some(ns) => format!("in the namespace \"{ns}\""),
            None => "at the cluster scope".to_owned(),
        };
        Err(KubeError::forbidden(
            target.kind,
            target.name.as_deref(),
            &format!(
                "User \"{}\" cannot {} resource \"{}\" in API group \"{}\" {scope}",
                caller.user(),
                attributes.verb,
                attributes.resource,
                attributes.group,
            ),
        ))
    }

    /// RBAC's escalation check: a caller may write a role, or bind one, only if it holds
    /// every permission the role grants.
    async fn check_escalation(
        &self,
        caller: &Caller,
        target: &Target,
        object: &Value,
    ) -> Result<(), KubeError> {
        if *caller == Caller::Admin {
            return Ok(());
        }
        let Some(namespace) = target.namespace.as_deref() else {
            return Ok(());
        };
        // Holding `escalate` on the role, or `bind` on the role a binding refers to,
        // passes the check, as in Kubernetes' `EscalationAllowed`/`BindingAuthorized`.
        let (waiver_verb, waiver_resource, waiver_name) = match target.kind.kind {
            "Role" => ("escalate", "roles", object["metadata"]["name"].as_str()),
            "RoleBinding" => (
                "bind",
                match object["roleRef"]["kind"].as_str() {
                    Some("ClusterRole") => "clusterroles",
                    _ => "roles",
                },
                object["roleRef"]["name"].as_str(),
            ),
            _ => return Ok(()),
        };
        let held = self.rules_held(caller, namespace).await?;
        let waived = held.iter().any(|rule| {
            rbac::allows(
                rule,
                &Attributes {
                    verb: waiver_verb,
                    group: "rbac.authorization.k8s.io",
                    resource: waiver_resource.to_owned(),
                    namespace: Some(namespace),
                    name: waiver_name,
                },
            )
        });
        if waived {
            return Ok(());
        }
        let granted: Vec<Value> = match target.kind.kind {
            "Role" => object["rules"].as_array().cloned().unwrap_or_default(),
            "RoleBinding" => {
                let name = object["roleRef"]["name"].as_str().unwrap_or_default();
                let role = match object["roleRef"]["kind"].as_str() {
                    Some("Role") => {
                        self.docs
                            .get(API, "roles", &format!("{namespace}/{name}"))
                            .await?
                    }
                    Some("ClusterRole") => self.docs.get(API, "clusterroles", name).await?,
                    _ => None,
                };
                role.and_then(|r| r["rules"].as_array().cloned())
                    .unwrap_or_default()
            }
            _ => return Ok(()),
        };
        let missing = rbac::not_covered(&held, &granted);
        if missing.is_empty() {
            return Ok(());
        }
        let groups: Vec<String> = caller.groups().iter().map(|g| format!("{g:?}")).collect();
        let rules: Vec<String> = missing.iter().map(rbac::describe_rule).collect();
        Err(KubeError::forbidden(
            target.kind,
            object["metadata"]["name"].as_str(),
            &format!(
                "user \"{}\" (groups=[{}]) is attempting to grant RBAC permissions not currently held:\n{}",
                caller.user(),
                groups.join(" "),
                rules.join("\n")
            ),
        ))
    }

    // --- reads -----------------------------------------------------------------------

    async fn load(&self, kind: &Kind, key: &str) -> Result<Option<Value>, KubeError> {
        Ok(self.docs.get(API, kind.plural, key).await?)
    }

    async fn get(&self, target: &Target) -> Result<Value, KubeError> {
        let name = target.name.as_deref().unwrap_or_default();
        self.require_namespace(target, false).await?;
        let object = self
            .load(target.kind, &target.key())
            .await?
            .ok_or_else(|| KubeError::not_found(target.kind, name))?;
        self.with_status(target.kind, object).await
    }

    /// Adds what the controllers would have written: a quota's usage.
    async fn with_status(&self, kind: &Kind, mut object: Value) -> Result<Value, KubeError> {
        if kind.kind == "ResourceQuota" {
            let ns = object["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let hard = object["spec"]["hard"].clone();
            let mut used = serde_json::Map::new();
            for resource in hard.as_object().into_iter().flatten().map(|(r, _)| r) {
                let count = match counted_kind(resource) {
                    Some(k) => self
                        .docs
                        .list(API, k.plural, &format!("{ns}/"))
                        .await?
                        .len(),
                    None => 0,
                };
                used.insert(resource.clone(), json!(count.to_string()));
            }
            object["status"] = json!({"hard": hard, "used": used});
        }
        Ok(object)
    }

    async fn list(&self, target: &Target, uri: &Uri) -> Result<Value, KubeError> {
        let kind = target.kind;
        let prefix = match &target.namespace {
            Some(ns) => format!("{ns}/"),
            None => String::new(),
        };
        let selector = query(uri, "labelSelector")
            .map(|s| parse_selector(&s))
            .transpose()?
            .unwrap_or_default();
        let fields = query(uri, "fieldSelector")
            .map(|s| parse_selector(&s))
            .transpose()?
            .unwrap_or_default();
        let after = match query(uri, "continue").filter(|c| !c.is_empty()) {
            Some(token) => Some(
                URL_SAFE_NO_PAD
                    .decode(&token)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        KubeError::bad_request("continue key is not valid: illegal base64 data")
                    })?,
            ),
            None => None,
        };
        let limit = match query(uri, "limit") {
            Some(l) => Some(l.parse::<usize>().map_err(|_| {
                KubeError::bad_request(format!("limit: Invalid value: \"{l}\": must be an integer"))
            })?),
            None => None,
        }
        .filter(|l| *l > 0);
        let mut matching = Vec::new();
        for (key, object) in self.docs.list(API, kind.plural, &prefix).await? {
            if after.as_ref().is_some_and(|a| key.as_str() <= a.as_str()) {
                continue;
            }
            if selector
                .iter()
                .all(|r| r.matches(&object["metadata"]["labels"]))
                && fields.iter().all(|r| r.matches_field(&object))
            {
                matching.push((key, object));
            }
        }
        let total = matching.len();
        let page: Vec<(String, Value)> = matching
            .into_iter()
            .take(limit.unwrap_or(usize::MAX))
            .collect();
        let mut meta = json!({"resourceVersion": self.write.lock().await.to_string()});
        if page.len() < total {
            let last = &page.last().expect("a page of at least one").0;
            meta["continue"] = json!(URL_SAFE_NO_PAD.encode(last));
            meta["remainingItemCount"] = json!(total - page.len());
        }
        let mut items = Vec::with_capacity(page.len());
        for (_, mut object) in page {
            if let Some(map) = object.as_object_mut() {
                map.remove("apiVersion");
                map.remove("kind");
            }
            items.push(self.with_status(kind, object).await?);
        }
        Ok(json!({
            "kind": format!("{}List", kind.kind),
            "apiVersion": kind.api_version(),
            "metadata": meta,
            "items": items,
        }))
    }

    /// The request's namespace must exist (and, to create in it, not be terminating).
    async fn require_namespace(&self, target: &Target, creating: bool) -> Result<(), KubeError> {
        let Some(ns) = target
            .namespace
            .as_deref()
            .filter(|_| target.kind.namespaced)
        else {
            return Ok(());
        };
        let Some(namespace) = self.docs.get(API, "namespaces", ns).await? else {
            return Err(KubeError::not_found(kind("namespaces"), ns));
        };
        if creating && namespace["status"]["phase"] == "Terminating" {
            return Err(KubeError::forbidden(
                target.kind,
                target.name.as_deref(),
                &format!("unable to create new content in namespace {ns} because it is being terminated"),
            )
            .with_details(json!({"causes": [{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]})));
        }
        Ok(())
    }

    // --- writes ----------------------------------------------------------------------

    /// Checks a new object and fills in what the API server sets on create.
    async fn prepare_create(
        &self,
        caller: &Caller,
        target: &Target,
        mut object: Value,
    ) -> Result<Value, KubeError> {
        let kind = target.kind;
        check_type(kind, &mut object)?;
        check_namespace_field(target, &mut object)?;
        if object["metadata"]["name"]
            .as_str()
            .is_none_or(str::is_empty)
        {
            match object["metadata"]["generateName"].as_str() {
                Some(prefix) if !prefix.is_empty() => {
                    object["metadata"]["name"] = json!(format!("{prefix}{}", random_suffix()));
                }
                _ => {
                    return Err(KubeError::invalid(
                        kind,
                        "",
                        vec![Invalid::required(
                            "metadata.name",
                            "name or generateName is required",
                        )],
                    ));
                }
            }
        }
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let target = Target {
            kind,
            namespace: target.namespace.clone(),
            name: Some(name.clone()),
            subresource: None,
        };
        self.require_namespace(&target, true).await?;
        self.validate(kind, &name, &object)?;
        if self.load(kind, &target.key()).await?.is_some() {
            return Err(KubeError::new(
                StatusCode::CONFLICT,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", kind.qualified()),
            )
            .with_details(json!({"name": name, "group": kind.group, "kind": kind.plural})));
        }
        self.check_escalation(caller, &target, &object).await?;
        self.check_quota(&target).await?;
        Ok(object)
    }

    fn validate(&self, kind: &Kind, name: &str, object: &Value) -> Result<(), KubeError> {
        let mut causes = Vec::new();
        if let Some(why) = kinds::check_name(kind, name) {
            causes.push(Invalid::value("metadata.name", &json!(name), &why));
        }
        causes.extend(kinds::check(kind, object));
        if causes.is_empty() {
            Ok(())
        } else {
            Err(KubeError::invalid(kind, name, causes))
        }
    }

    /// Object-count quotas in the namespace: one more object of this kind must fit.
    async fn check_quota(&self, target: &Target) -> Result<(), KubeError> {
        let Some(ns) = target
            .namespace
            .as_deref()
            .filter(|_| target.kind.namespaced)
        else {
            return Ok(());
        };
        let names = [target.kind.count_resource(), target.kind.plural.to_owned()];
        for quota in self
            .docs
            .values(API, "resourcequotas", &format!("{ns}/"))
            .await?
        {
            for resource in &names {
                let Some(hard) = quota["spec"]["hard"][resource]
                    .as_str()
                    .and_then(|h| h.parse::<usize>().ok())
                    .or_else(|| quota["spec"]["hard"][resource].as_u64().map(|h| h as usize))
                else {
                    continue;
                };
                if counted_kind(resource).is_none_or(|k| k.plural != target.kind.plural) {
                    continue;
                }
                let used = self
                    .docs
                    .list(API, target.kind.plural, &format!("{ns}/"))
                    .await?
                    .len();
                if used + 1 > hard {
                    let q = quota["metadata"]["name"].as_str().unwrap_or_default();
                    return Err(KubeError::forbidden(
                        target.kind,
                        target.name.as_deref(),
                        &format!(
                            "exceeded quota: {q}, requested: {resource}=1, used: {resource}={used}, limited: {resource}={hard}"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The next `resourceVersion`, kept across restarts.
    async fn bump(&self, last: &mut u64) -> Result<String, SandboxError> {
        *last += 1;
        self.docs
            .put(
                "sandbox",
                "kubernetesResourceVersion",
                "last",
                &json!({"value": *last}),
            )
            .await?;
        Ok(last.to_string())
    }

    /// Stores a checked new object with the metadata the API server sets, and runs what
    /// the controllers do on creation.
    async fn insert(
        &self,
        last: &mut u64,
        kind: &'static Kind,
        mut object: Value,
        manager: &str,
        operation: &str,
    ) -> Result<Value, KubeError> {
        let now = now_ms();
        // What the manager set: the server's own defaults below belong to nobody.
        let fields = apply::fields_of(&object);
        kinds::set_defaults(kind, &mut object);
        object["apiVersion"] = json!(kind.api_version());
        object["kind"] = json!(kind.kind);
        let meta = &mut object["metadata"];
        if let Some(m) = meta.as_object_mut() {
            m.remove("generateName");
            m.remove("resourceVersion");
            m.remove("managedFields");
        }
        meta["uid"] = json!(uuid_v4());
        meta["creationTimestamp"] = json!(timestamp(now));
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let namespace = object["metadata"]["namespace"].as_str().map(str::to_owned);
        match kind.kind {
            "Namespace" => {
                object["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
                object["spec"] = json!({"finalizers": ["kubernetes"]});
                object["status"] = json!({"phase": "Active"});
            }
            "Secret" => {
                fold_string_data(&mut object);
                self.issue_legacy_token(&mut object).await?;
            }
            _ if kind.has_status => {
                if let Some(m) = object.as_object_mut() {
                    m.remove("status");
                }
            }
            _ => {}
        }
        object["metadata"]["managedFields"] = json!([apply::managed_entry(
            manager,
            operation,
            &fields,
            &timestamp(now),
            &kind.api_version()
        )]);
        object["metadata"]["resourceVersion"] = json!(self.bump(last).await?);
        self.docs
            .put(
                API,
                kind.plural,
                &kind.key(namespace.as_deref(), &name),
                &object,
            )
            .await?;
        if kind.kind == "Namespace" {
            // The service-account controller gives every namespace a `default` account.
            let account = json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "default", "namespace": name}});
            let accounts = self::kind("serviceaccounts");
            Box::pin(self.insert(last, accounts, account, "kube-controller-manager", "Update"))
                .await?;
        }
        self.with_status(kind, object).await
    }

    /// What the token controller writes into a service-account-token Secret: a legacy
    /// token, the namespace, the CA.
    async fn issue_legacy_token(&self, object: &mut Value) -> Result<(), SandboxError> {
        if object["type"] != "kubernetes.io/service-account-token" {
            return Ok(());
        }
        let ns = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let annotations = &object["metadata"]["annotations"];
        let Some(account_name) = annotations["kubernetes.io/service-account.name"].as_str() else {
            return Ok(());
        };
        let Some(account) = self
            .docs
            .get(API, "serviceaccounts", &format!("{ns}/{account_name}"))
            .await?
        else {
            return Ok(());
        };
        let uid = account["metadata"]["uid"].clone();
        let secret_name = object["metadata"]["name"].clone();
        let token = self.signer.sign(&json!({
            "iss": rbac::LEGACY_ISSUER,
            "sub": format!("system:serviceaccount:{ns}:{account_name}"),
            "kubernetes.io/serviceaccount/namespace": ns,
            "kubernetes.io/serviceaccount/secret.name": secret_name,
            "kubernetes.io/serviceaccount/service-account.name": account_name,
            "kubernetes.io/serviceaccount/service-account.uid": uid,
        }));
        object["metadata"]["annotations"]["kubernetes.io/service-account.uid"] = uid;
        object["data"]["token"] = json!(STANDARD.encode(token));
        object["data"]["namespace"] = json!(STANDARD.encode(&ns));
        let ca = std::fs::read(self.ca_file()).unwrap_or_default();
        object["data"]["ca.crt"] = json!(STANDARD.encode(ca));
        Ok(())
    }

    /// The CA a client should trust, if the sandbox serves HTTPS.
    fn ca_file(&self) -> std::path::PathBuf {
        self.data_dir.join("ca.pem")
    }

    async fn update(
        &self,
        caller: &Caller,
        target: &Target,
        mut object: Value,
        manager: &str,
        dry_run: bool,
    ) -> KubeResult {
        let kind = target.kind;
        let name = target.name.clone().unwrap_or_default();
        check_type(kind, &mut object)?;
        check_namespace_field(target, &mut object)?;
        check_name_field(&mut object, &name)?;
        let mut last = self.write.lock().await;
        let Some(old) = self.load(kind, &target.key()).await? else {
            if !kind.create_on_update {
                return Err(KubeError::not_found(kind, &name));
            }
            let object = self.prepare_create(caller, target, object).await?;
            if dry_run {
                return Ok(created(object));
            }
            return self
                .insert(&mut last, kind, object, manager, "Update")
                .await
                .map(created);
        };
        if let Some(rv) = object["metadata"]["resourceVersion"].as_str()
            && old["metadata"]["resourceVersion"] != rv
        {
            return Err(conflict(kind, &name));
        }
        let owners = apply::update_ownership(
            &old,
            &object,
            manager,
            &timestamp(now_ms()),
            &kind.api_version(),
        );
        object["metadata"]["managedFields"] = owners;
        self.replace(&mut last, caller, target, old, object, dry_run)
            .await
            .map(ok)
    }

    #[allow(clippy::too_many_arguments)]
    async fn patch(
        &self,
        caller: &Caller,
        target: &Target,
        content_type: &str,
        body: &[u8],
        manager: Option<String>,
        force: bool,
        dry_run: bool,
        headers: &HeaderMap,
    ) -> KubeResult {
        let kind = target.kind;
        let name = target.name.clone().unwrap_or_default();
        let media = content_type.split(';').next().unwrap_or_default().trim();
        let patch = parse_body(body)?;
        let now = timestamp(now_ms());
        match media {
            "application/apply-patch+yaml" => {
                let Some(manager) = manager.filter(|m| !m.is_empty()) else {
                    return Err(KubeError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "Invalid",
                        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                    ));
                };
                let mut config = patch;
                if config.get("apiVersion").is_none() || config.get("kind").is_none() {
                    return Err(KubeError::bad_request(
                        "apiVersion and kind must be set in an applied configuration",
                    ));
                }
                check_type(kind, &mut config)?;
                check_namespace_field(target, &mut config)?;
                check_name_field(&mut config, &name)?;
                let mut last = self.write.lock().await;
                let Some(old) = self.load(kind, &target.key()).await? else {
                    let object = self.prepare_create(caller, target, config).await?;
                    if dry_run {
                        return Ok(created(object));
                    }
                    return self
                        .insert(&mut last, kind, object, &manager, "Apply")
                        .await
                        .map(created);
                };
                let merged =
                    apply::apply(&old, &config, &manager, force, &now, &kind.api_version())
                        .map_err(|conflicts| apply_conflict(kind, &name, conflicts))?;
                self.replace(&mut last, caller, target, old, merged, dry_run)
                    .await
                    .map(ok)
            }
            "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                let manager = manager.unwrap_or_else(|| default_manager(headers));
                let mut last = self.write.lock().await;
                let old = self
                    .load(kind, &target.key())
                    .await?
                    .ok_or_else(|| KubeError::not_found(kind, &name))?;
                if let Some(rv) = patch["metadata"]["resourceVersion"].as_str()
                    && old["metadata"]["resourceVersion"] != rv
                {
                    return Err(conflict(kind, &name));
                }
                let mut object = old.clone();
                apply::merge_patch(&mut object, &patch);
                check_type(kind, &mut object)?;
                check_namespace_field(target, &mut object)?;
                check_name_field(&mut object, &name)?;
                object["metadata"]["managedFields"] =
                    apply::update_ownership(&old, &object, &manager, &now, &kind.api_version());
                self.replace(&mut last, caller, target, old, object, dry_run)
                    .await
                    .map(ok)
            }
            other => Err(KubeError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (got {other:?})"
                ),
            )),
        }
    }

    /// Stores `new` in place of `old`: what may not change is kept or refused, the result
    /// validated; a write that changes nothing keeps the `resourceVersion`.
    async fn replace(
        &self,
        last: &mut u64,
        caller: &Caller,
        target: &Target,
        old: Value,
        mut new: Value,
        dry_run: bool,
    ) -> Result<Value, KubeError> {
        let kind = target.kind;
        let name = target.name.clone().unwrap_or_default();
        for field in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "resourceVersion",
        ] {
            match old["metadata"].get(field) {
                Some(v) => new["metadata"][field] = v.clone(),
                None => {
                    if let Some(m) = new["metadata"].as_object_mut() {
                        m.remove(field);
                    }
                }
            }
        }
        new["apiVersion"] = json!(kind.api_version());
        new["kind"] = json!(kind.kind);
        if kind.has_status {
            new["status"] = old["status"].clone();
            if new["status"].is_null()
                && let Some(m) = new.as_object_mut()
            {
                m.remove("status");
            }
        }
        let mut immutable = Vec::new();
        match kind.kind {
            // Finalizers change only through `/finalize`.
            "Namespace" => new["spec"] = old["spec"].clone(),
            "Secret" => {
                fold_string_data(&mut new);
                if new["type"].is_null() {
                    new["type"] = old["type"].clone();
                }
                if new["type"] != old["type"] {
                    immutable.push(Invalid::value("type", &new["type"], "field is immutable"));
                }
                if old["immutable"] == true
                    && (new["data"] != old["data"] || new["immutable"] != true)
                {
                    immutable.push(Invalid::value(
                        "data",
                        &json!("<secret contents redacted>"),
                        "field is immutable when `immutable` is set",
                    ));
                }
            }
            "RoleBinding" if new["roleRef"] != old["roleRef"] => {
                immutable.push(Invalid::value(
                    "roleRef",
                    &new["roleRef"],
                    "cannot change roleRef",
                ));
            }
            _ => {}
        }
        if !immutable.is_empty() {
            return Err(KubeError::invalid(kind, &name, immutable));
        }
        self.validate(kind, &name, &new)?;
        self.check_escalation(caller, target, &new).await?;
        if without_bookkeeping(&new) == without_bookkeeping(&old) {
            return self.with_status(kind, old).await;
        }
        if dry_run {
            return self.with_status(kind, new).await;
        }
        new["metadata"]["resourceVersion"] = json!(self.bump(last).await?);
        self.docs.put(API, kind.plural, &target.key(), &new).await?;
        self.with_status(kind, new).await
    }

    async fn delete(&self, target: &Target, body: &[u8], dry_run: bool) -> KubeResult {
        let kind = target.kind;
        let name = target.name.clone().unwrap_or_default();
        let options = if body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            parse_body(body)?
        };
        let mut last = self.write.lock().await;
        let mut old = self
            .load(kind, &target.key())
            .await?
            .ok_or_else(|| KubeError::not_found(kind, &name))?;
        let preconditions = &options["preconditions"];
        for (field, what) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
            if let Some(wanted) = preconditions[field].as_str()
                && old["metadata"][field] != wanted
            {
                return Err(KubeError::new(
                    StatusCode::CONFLICT,
                    "Conflict",
                    format!(
                        "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: {what} in precondition: {wanted}, {what} in object meta: {}",
                        kind.qualified(),
                        old["metadata"][field].as_str().unwrap_or_default()
                    ),
                ));
            }
        }
        if kind.kind == "Namespace" {
            if SYSTEM_NAMESPACES[..3].contains(&name.as_str()) {
                return Err(KubeError::forbidden(
                    kind,
                    Some(&name),
                    "this namespace may not be deleted",
                ));
            }
            if old["status"]["phase"] == "Terminating" || dry_run {
                return Ok(ok(old));
            }
            let now = now_ms();
            old["metadata"]["deletionTimestamp"] = json!(timestamp(now));
            old["status"] = json!({"phase": "Terminating"});
            old["metadata"]["resourceVersion"] = json!(self.bump(&mut last).await?);
            self.docs.put(API, kind.plural, &name, &old).await?;
            let due = now + self.config.namespace_termination.as_millis() as i64;
            self.docs
                .put(
                    "sandbox",
                    "kubernetesTermination",
                    &name,
                    &json!({"dueAtMs": due}),
                )
                .await?;
            return Ok(ok(old));
        }
        if !dry_run {
            self.docs.delete(API, kind.plural, &target.key()).await?;
            if kind.kind == "ServiceAccount" {
                // The token controller removes the account's legacy token Secrets.
                let ns = target.namespace.as_deref().unwrap_or_default();
                for secret in self.docs.values(API, "secrets", &format!("{ns}/")).await? {
                    let annotations = &secret["metadata"]["annotations"];
                    if secret["type"] == "kubernetes.io/service-account-token"
                        && annotations["kubernetes.io/service-account.name"] == name.as_str()
                    {
                        let secret_name = secret["metadata"]["name"].as_str().unwrap_or_default();
                        self.docs
                            .delete(API, "secrets", &format!("{ns}/{secret_name}"))
                            .await?;
                    }
                }
            }
            self.bump(&mut last).await?;
        }
        // Quota deletion answers with the object, as its registry does
        // (`ReturnDeletedObject`); the others with a `Status`.
        if kind.kind == "ResourceQuota" {
            return Ok(ok(self.with_status(kind, old).await?));
        }
        Ok(ok(json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {"name": name, "group": kind.group, "kind": kind.plural, "uid": old["metadata"]["uid"]},
        })))
    }

    /// Removes namespaces whose termination is due, with everything in them.
    async fn finish_terminations(&self) -> Result<(), KubeError> {
        let now = now_ms();
        for (ns, due) in self
            .docs
            .list("sandbox", "kubernetesTermination", "")
            .await?
        {
            if due["dueAtMs"].as_i64().is_some_and(|d| d > now) {
                continue;
            }
            let mut last = self.write.lock().await;
            let namespaced: Vec<&str> = KINDS
                .iter()
                .filter(|k| k.namespaced)
                .map(|k| k.plural)
                .collect();
            self.docs
                .delete_prefix(API, &namespaced, &format!("{ns}/"))
                .await?;
            self.docs.delete(API, "namespaces", &ns).await?;
            self.docs
                .delete("sandbox", "kubernetesTermination", &ns)
                .await?;
            self.bump(&mut last).await?;
        }
        Ok(())
    }

    /// `POST …/serviceaccounts/{name}/token`: a bound token for the account.
    async fn token_request(&self, target: &Target, body: &[u8]) -> KubeResult {
        let ns = target.namespace.clone().unwrap_or_default();
        let name = target.name.clone().unwrap_or_default();
        self.require_namespace(target, false).await?;
        let account = self
            .load(target.kind, &target.key())
            .await?
            .ok_or_else(|| KubeError::not_found(target.kind, &name))?;
        let request = if body.is_empty() {
            json!({})
        } else {
            parse_body(body)?
        };
        if request.get("kind").is_some_and(|k| k != "TokenRequest") {
            return Err(KubeError::bad_request(format!(
                "the kind in the data ({}) does not match the expected kind (TokenRequest)",
                request["kind"].as_str().unwrap_or_default()
            )));
        }
        let seconds = request["spec"]["expirationSeconds"]
            .as_i64()
            .unwrap_or(3600);
        let too = if seconds < 600 {
            Some("may not specify a duration less than 10 minutes")
        } else if seconds > 1 << 32 {
            Some("may not specify a duration larger than 2^32 seconds")
        } else {
            None
        };
        if let Some(why) = too {
            return Err(KubeError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                format!("TokenRequest.authentication.k8s.io \"{name}\" is invalid: spec.expirationSeconds: Invalid value: {seconds}: {why}"),
            )
            .with_details(json!({"name": name, "group": "authentication.k8s.io", "kind": "TokenRequest",
                "causes": [{"reason": "FieldValueInvalid", "message": format!("Invalid value: {seconds}: {why}"), "field": "spec.expirationSeconds"}]})));
        }
        let audiences = match request["spec"]["audiences"].as_array() {
            Some(a) if !a.is_empty() => Value::Array(a.clone()),
            _ => json!([rbac::ISSUER]),
        };
        let now = now_ms() / 1000;
        let token = self.signer.sign(&json!({
            "iss": rbac::ISSUER,
            "sub": format!("system:serviceaccount:{ns}:{name}"),
            "aud": audiences,
            "iat": now,
            "nbf": now,
            "exp": now + seconds,
            "jti": uuid_v4(),
            "kubernetes.io": {
                "namespace": ns,
                "serviceaccount": {"name": name, "uid": account["metadata"]["uid"]},
            },
        }));
        Ok(created(json!({
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": timestamp(now * 1000)},
            "spec": {"audiences": audiences, "expirationSeconds": seconds},
            "status": {"token": token, "expirationTimestamp": timestamp((now + seconds) * 1000)},
        })))
    }
}

fn kind(plural: &str) -> &'static Kind {
    KINDS
        .iter()
        .find(|k| k.plural == plural)
        .expect("a served kind")
}

/// The kind whose objects a quota resource name counts: `secrets`, `count/secrets`,
/// `count/roles.rbac.authorization.k8s.io`.
fn counted_kind(resource: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| {
        resource == k.count_resource() || (resource == "secrets" && k.plural == "secrets")
    })
}

fn version() -> Value {
    json!({
        "major": "1",
        "minor": "37",
        "gitVersion": "v1.37.0+paddock-sandbox",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.25.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn not_served(path: &str) -> KubeError {
    KubeError::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the server could not find the requested resource",
    )
    .with_details(json!({"causes": [{"reason": "UnexpectedServerResponse", "message": format!("404 page not found: {path}")}]}))
}

fn parse_body(body: &[u8]) -> Result<Value, KubeError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(KubeError::bad_request(
            "the body of the request must be a JSON object",
        )),
        Err(e) => Err(KubeError::bad_request(format!(
            "the object provided is unrecognized or is not valid JSON: {e}"
        ))),
    }
}

/// `apiVersion` and `kind`, when given, must be the addressed resource's.
fn check_type(kind: &Kind, object: &mut Value) -> Result<(), KubeError> {
    if let Some(v) = object["apiVersion"].as_str()
        && v != kind.api_version()
    {
        return Err(KubeError::bad_request(format!(
            "the API version in the data ({v}) does not match the expected API version ({})",
            kind.api_version()
        )));
    }
    if let Some(k) = object["kind"].as_str()
        && k != kind.kind
    {
        return Err(KubeError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            kind.kind
        )));
    }
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    Ok(())
}

fn check_namespace_field(target: &Target, object: &mut Value) -> Result<(), KubeError> {
    let meta = &mut object["metadata"];
    if !target.kind.namespaced {
        if let Some(m) = meta.as_object_mut() {
            m.remove("namespace");
        }
        return Ok(());
    }
    let ns = target.namespace.as_deref().unwrap_or_default();
    match meta["namespace"].as_str() {
        Some(given) if !given.is_empty() && given != ns => Err(KubeError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => {
            meta["namespace"] = json!(ns);
            Ok(())
        }
    }
}

fn check_name_field(object: &mut Value, name: &str) -> Result<(), KubeError> {
    match object["metadata"]["name"].as_str() {
        Some(n) if n != name => Err(KubeError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        ))),
        _ => {
            object["metadata"]["name"] = json!(name);
            Ok(())
        }
    }
}

fn conflict(kind: &Kind, name: &str) -> KubeError {
    KubeError::new(
        StatusCode::CONFLICT,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
            kind.qualified()
        ),
    )
    .with_details(json!({"name": name, "group": kind.group, "kind": kind.plural}))
}

fn apply_conflict(kind: &Kind, name: &str, conflicts: Vec<apply::Conflict>) -> KubeError {
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|c| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{}\"", c.manager), "field": c.field}))
        .collect();
    let lines: Vec<String> = conflicts
        .iter()
        .map(|c| format!("conflict with \"{}\": {}", c.manager, c.field))
        .collect();
    let message = match lines.as_slice() {
        [one] => format!("Apply failed with 1 conflict: {one}"),
        many => format!(
            "Apply failed with {} conflicts: {}",
            many.len(),
            many.join("\n")
        ),
    };
    KubeError::new(StatusCode::CONFLICT, "Conflict", message).with_details(
        json!({"name": name, "group": kind.group, "kind": kind.plural, "causes": causes}),
    )
}

/// An object as compared for "did this write change anything": who owns which fields
/// counts (a new applier of the same values is recorded), when and in which order not.
fn without_bookkeeping(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v["metadata"].as_object_mut() {
        m.remove("resourceVersion");
        if let Some(Value::Array(entries)) = m.get_mut("managedFields") {
            for entry in entries.iter_mut() {
                entry.as_object_mut().map(|e| e.remove("time"));
            }
            entries.sort_by_key(Value::to_string);
        }
    }
    v
}

/// `stringData` is write-only: it is folded into `data`, base64-encoded.
fn fold_string_data(object: &mut Value) {
    if let Some(Value::Object(strings)) =
        object.as_object_mut().and_then(|o| o.remove("stringData"))
    {
        for (k, v) in strings {
            object["data"][k] = json!(STANDARD.encode(v.as_str().unwrap_or_default()));
        }
    }
}

/// The five characters `generateName` appends, from the API server's alphabet.
fn random_suffix() -> String {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::thread_rng();
    (0..5)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The field manager of a write that names none: the client's program, from its
/// `User-Agent`, as the API server derives it.
fn default_manager(headers: &HeaderMap) -> String {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|m| !m.is_empty())
        .unwrap_or("unknown")
        .to_owned()
}

/// One requirement of a label selector.
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    Absent(String),
}

impl Requirement {
    fn matches(&self, labels: &Value) -> bool {
        match self {
            Requirement::Equals(k, v) => labels[k] == v.as_str(),
            Requirement::NotEquals(k, v) => labels[k] != v.as_str(),
            Requirement::Exists(k) => labels.get(k).is_some(),
            Requirement::Absent(k) => labels.get(k).is_none(),
        }
    }
}

impl Requirement {
    /// A field selector's requirement (`involvedObject.name=web`): a dotted path into the
    /// object, an absent field reading as empty.
    fn matches_field(&self, object: &Value) -> bool {
        let value = |path: &str| match path.split('.').fold(object, |v, key| &v[key]) {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        match self {
            Requirement::Equals(k, v) => value(k) == *v,
            Requirement::NotEquals(k, v) => value(k) != *v,
            Requirement::Exists(k) => !value(k).is_empty(),
            Requirement::Absent(k) => value(k).is_empty(),
        }
    }
}

/// `a=b,c!=d,e,!f` (set-based `in`/`notin` are not served).
fn parse_selector(selector: &str) -> Result<Vec<Requirement>, KubeError> {
    let mut out = Vec::new();
    for part in selector.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let requirement = if let Some((k, v)) = part.split_once("!=") {
            Requirement::NotEquals(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
            Requirement::Equals(k.trim().into(), v.trim().into())
        } else if let Some(k) = part.strip_prefix('!') {
            Requirement::Absent(k.trim().into())
        } else if part.contains(' ') || part.contains('(') {
            return Err(KubeError::bad_request(format!(
                "unable to parse requirement: {part:?}: set-based selectors are not served by the sandbox"
            )));
        } else {
            Requirement::Exists(part.into())
        };
        out.push(requirement);
    }
    Ok(out)
}
