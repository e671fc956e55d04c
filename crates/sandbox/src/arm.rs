//! Azure Resource Manager: resource groups, with the long-running delete real clients
//! poll, `api-version` checked, names validated and errors in ARM's shape; role
//! definitions and assignments (`arm/authorization.rs`) and management locks, enforced
//! on every write and delete they cover (`arm/locks.rs`).
//!
//! ARM paths are case-insensitive in their fixed segments (`resourceGroups`,
//! `resourcegroups`), so requests are routed by parsing the path, not by a route table.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::documents::Documents;

mod authorization;
mod locks;
mod metadata;
mod subscriptions;

use crate::tokens::{Signer, TokenError};
use crate::{Identity, SandboxError, new_id, now_ms, percent_decode, rfc3339};
pub(crate) use authorization::grant;
pub use authorization::{AUTHORIZATION_API_VERSIONS, OWNER_ROLE_ID};
pub use locks::LOCKS_API_VERSIONS;
pub use metadata::{CLOUD_NAME, METADATA_API_VERSIONS};
pub use subscriptions::SUBSCRIPTIONS_API_VERSIONS;
use subscriptions::subscription_not_found;

/// The api-versions of `Microsoft.Resources` the sandbox accepts: current stable ones.
pub const RESOURCES_API_VERSIONS: &[&str] = &[
    "2025-04-01",
    "2024-11-01",
    "2024-07-01",
    "2024-03-01",
    "2023-07-01",
    "2022-09-01",
    "2021-04-01",
];

/// Regions a resource group may be created in.
pub const LOCATIONS: &[&str] = &[
    "westeurope",
    "northeurope",
    "swedencentral",
    "norwayeast",
    "germanywestcentral",
    "francecentral",
    "uksouth",
    "eastus",
    "eastus2",
    "westus2",
    "westus3",
    "centralus",
    "canadacentral",
    "australiaeast",
    "japaneast",
    "southeastasia",
];

#[derive(Clone, Debug)]
pub struct ArmConfig {
    /// How long a resource group delete takes.
    pub delete_delay: Duration,
    /// Resource groups per list page (ARM's `$top` can lower it).
    pub page_size: usize,
    /// The `Retry-After` ARM advertises while an operation runs, in seconds.
    pub retry_after_secs: u64,
    /// Requests a principal may make in an hour, as ARM throttles them.
    pub reads_per_hour: u64,
    pub writes_per_hour: u64,
    pub deletes_per_hour: u64,
    /// How long a new principal stays invisible to role assignments made without
    /// `principalType` (Azure's directory replication delay).
    pub principal_replication_delay: Duration,
}

impl Default for ArmConfig {
    fn default() -> Self {
        ArmConfig {
            delete_delay: Duration::from_secs(2),
            page_size: 100,
            retry_after_secs: 1,
            principal_replication_delay: Duration::from_secs(5),
            reads_per_hour: 12_000,
            writes_per_hour: 1_200,
            deletes_per_hour: 15_000,
        }
    }
}

pub(crate) struct Arm {
    pub docs: Documents,
    pub identity: Identity,
    pub config: ArmConfig,
    /// Where clients reach ARM, for the URLs in `Location` headers and `nextLink`s.
    pub base_url: String,
    /// Where a person looks at the sandbox (the control API's page): the metadata
    /// document's `portal`.
    pub portal_url: String,
    /// Verifies the bearer tokens callers present.
    pub signer: Arc<Signer>,
    /// Requests left in the current hour, by (principal, kind).
    pub budgets: std::sync::Mutex<Budgets>,
}

/// ARM's throttling: each principal gets so many reads, writes and deletes an hour.
#[derive(Default)]
pub(crate) struct Budgets {
    window_start_ms: i64,
    used: std::collections::HashMap<(String, &'static str), u64>,
}

pub(crate) const API: &str = "arm";
const GROUP: &str = "resourceGroup";
const OPERATION: &str = "operation";

/// An ARM error: status and `{"error": {"code", "message"}}`.
#[derive(Debug)]
pub(crate) struct ArmError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// `WWW-Authenticate` of a 401.
    challenge: Option<String>,
    /// `Retry-After` of a 429, in seconds.
    retry_after: Option<u64>,
}

impl ArmError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ArmError {
        ArmError {
            status,
            code,
            message: message.into(),
            challenge: None,
            retry_after: None,
        }
    }
}

impl From<SandboxError> for ArmError {
    fn from(e: SandboxError) -> Self {
        ArmError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            e.to_string(),
        )
    }
}

impl IntoResponse for ArmError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            axum::Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response();
        r.headers_mut()
            .insert("x-ms-failure-cause", HeaderValue::from_static("gateway"));
        if let Some(secs) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(challenge) = self
            .challenge
            .as_deref()
            .and_then(|c| HeaderValue::from_str(c).ok())
        {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
        }
        r
    }
}

pub(crate) type ArmResult = Result<Response, ArmError>;

/// The query's `api-version`, checked against those the addressed provider serves.
fn api_version(uri: &Uri, supported: &[&str]) -> Result<String, ArmError> {
    let version = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|kv| kv.strip_prefix("api-version="))
        .map(str::to_owned);
    match version {
        None => Err(ArmError::new(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )),
        Some(v) if supported.contains(&v.as_str()) => Ok(v),
        Some(v) => Err(ArmError::new(
            StatusCode::BAD_REQUEST,
            "InvalidApiVersionParameter",
            format!(
                "The api-version '{v}' is invalid. The supported versions are '{}'.",
                supported.join(",")
            ),
        )),
    }
}

pub(crate) fn query_param<'a>(uri: &'a Uri, name: &str) -> Option<&'a str> {
    uri.query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// ARM's rule for resource group names: 1–90 letters, digits, `-`, `_`, `.`, `(`, `)`,
/// not ending with a period.
pub(crate) fn check_group_name(name: &str) -> Result<(), ArmError> {
    let invalid: String = name
        .chars()
        .filter(|c| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '(' | ')')))
        .collect();
    let problem = if name.is_empty() || name.chars().count() > 90 {
        Some("The name must be 1 to 90 characters long.".to_owned())
    } else if !invalid.is_empty() {
        Some(format!(
            "has these invalid characters: '{invalid}'. The name can only be a letter, digit, '-', '.', '(', ')' or '_'."
        ))
    } else if name.ends_with('.') {
        Some("The name cannot end with a period.".to_owned())
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(p) => Err(ArmError::new(
            StatusCode::BAD_REQUEST,
            "InvalidResourceGroup",
            format!("The provided resource group name '{name}' {p}"),
        )),
    }
}

fn group_key(sub: &str, name: &str) -> String {
    format!("{}/{}", sub.to_lowercase(), name.to_lowercase())
}

fn not_found(name: &str) -> ArmError {
    ArmError::new(
        StatusCode::NOT_FOUND,
        "ResourceGroupNotFound",
        format!("Resource group '{name}' could not be found."),
    )
}

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    (status, axum::Json(body.clone())).into_response()
}

/// Audiences ARM accepts in a token.
pub(crate) const ARM_AUDIENCES: &[&str] = &[
    "https://management.core.windows.net/",
    "https://management.core.windows.net",
    "https://management.azure.com/",
    "https://management.azure.com",
];

/// Who is calling, from the token.
pub(crate) struct Caller {
    pub object_id: String,
    pub client_id: String,
}

/// The ARM entry point: every request not claimed by another API lands here.
pub(crate) async fn dispatch(
    State(arm): State<Arc<Arm>>,
    method: Method,
    uri: Uri,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    arm.route(method, &uri, &headers, &body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

impl Arm {
    async fn route(
        &self,
        method: Method,
        uri: &Uri,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> ArmResult {
        // The one document ARM serves to anyone: how to reach the cloud and sign in to it.
        if uri.path().eq_ignore_ascii_case(metadata::PATH) && method == Method::GET {
            return self.metadata(uri);
        }
        let caller = self.authenticate(headers)?;
        let (header_name, remaining) = self.throttle(&caller, &method)?;
        let mut response = self.serve(method, uri, &caller, body).await?;
        response
            .headers_mut()
            .insert(header_name, HeaderValue::from(remaining));
        Ok(response)
    }

    /// Counts the request against the caller's hourly budget for its kind; `429
    /// SubscriptionRequestsThrottled` once it is spent.
    fn throttle(&self, caller: &Caller, method: &Method) -> Result<(&'static str, u64), ArmError> {
        let (kind, limit) = match *method {
            Method::GET | Method::HEAD => ("reads", self.config.reads_per_hour),
            Method::DELETE => ("deletes", self.config.deletes_per_hour),
            _ => ("writes", self.config.writes_per_hour),
        };
        let now = now_ms();
        let mut budgets = self.budgets.lock().expect("budgets lock");
        if now - budgets.window_start_ms >= 3_600_000 {
            *budgets = Budgets {
                window_start_ms: now,
                used: Default::default(),
            };
        }
        let window_end = budgets.window_start_ms + 3_600_000;
        let used = budgets
            .used
            .entry((caller.object_id.clone(), kind))
            .or_insert(0);
        if *used >= limit {
            let retry = ((window_end - now) / 1000).max(1);
            let mut r = ArmError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "SubscriptionRequestsThrottled",
                format!(
                    "Number of '{kind}' requests for subscription '{}' actor '{}' exceeded. Please try again after '{retry}' seconds after the last request.",
                    self.identity.subscription_id, caller.object_id
                ),
            );
            r.retry_after = Some(retry as u64);
            return Err(r);
        }
        *used += 1;
        let header_name = match kind {
            "reads" => "x-ms-ratelimit-remaining-subscription-reads",
            "deletes" => "x-ms-ratelimit-remaining-subscription-deletes",
            _ => "x-ms-ratelimit-remaining-subscription-writes",
        };
        Ok((header_name, limit - *used))
    }

    async fn serve(&self, method: Method, uri: &Uri, caller: &Caller, body: &[u8]) -> ArmResult {
        let segments: Vec<String> = uri
            .path()
            .trim_matches('/')
            .split('/')
            .map(percent_decode)
            .collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let lower: Vec<String> = segments.iter().map(|s| s.to_lowercase()).collect();
        let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
        if let Some(at) = lower
            .windows(2)
            .position(|w| w == ["providers", "microsoft.authorization"])
        {
            let rest = &segments[at + 2..];
            let is_lock = lower.get(at + 2) == Some(&"locks");
            let versions = if is_lock {
                LOCKS_API_VERSIONS
            } else {
                AUTHORIZATION_API_VERSIONS
            };
            api_version(uri, versions)?;
            self.settle().await?;
            let raw_scope = format!("/{}", segments[..at].join("/"));
            let action = authorization::action(&method, &lower[at + 2..]);
            if is_lock {
                // ARM names the lock itself as the scope it refuses.
                self.authorize(caller, &action, uri.path()).await?;
                let scope = self.scope(&segments[..at]).await?;
                return self.locks(&method, uri, &scope, rest, body).await;
            }
            self.authorize(caller, &action, &raw_scope).await?;
            let scope = self.scope(&segments[..at]).await?;
            if matches!(
                rest.first().map(|s| s.to_lowercase()).as_deref(),
                Some("roleassignments")
            ) && rest.len() == 2
            {
                self.check_locks(&method, uri.path()).await?;
            }
            return self.authorization(&method, uri, &scope, rest, body).await;
        }
        if let (["subscriptions"] | ["subscriptions", _] | ["tenants"], &Method::GET) =
            (lower.as_slice(), &method)
        {
            return self.subscriptions(uri, caller, &segments).await;
        }
        let version = api_version(uri, RESOURCES_API_VERSIONS)?;
        self.settle().await?;
        match (lower.as_slice(), &method) {
            (["subscriptions", _, rest @ ..], _) => {
                let sub = segments[1];
                if !sub.eq_ignore_ascii_case(&self.identity.subscription_id) {
                    return Err(subscription_not_found(sub));
                }
                const GROUPS: &str = "Microsoft.Resources/subscriptions/resourceGroups";
                match (rest, &method) {
                    (["resourcegroups"], &Method::GET) => {
                        self.authorize(
                            caller,
                            &format!("{GROUPS}/read"),
                            &format!("/subscriptions/{sub}"),
                        )
                        .await?;
                        self.list(uri, &version).await
                    }
                    (["resourcegroups", _], m) => {
                        let name = segments[3];
                        check_group_name(name)?;
                        let verb = match *m {
                            Method::GET | Method::HEAD => "read",
                            Method::DELETE => "delete",
                            _ => "write",
                        };
                        self.authorize(
                            caller,
                            &format!("{GROUPS}/{verb}"),
                            &format!("/subscriptions/{sub}/resourceGroups/{name}"),
                        )
                        .await?;
                        if self.load(name).await?.is_some() {
                            self.check_locks(m, &self.group_id(name)).await?;
                        }
                        match *m {
                            Method::PUT => self.create_or_update(name, body).await,
                            Method::GET => self.get(name).await,
                            Method::HEAD => self.exists(name).await,
                            Method::PATCH => self.update(name, body).await,
                            Method::DELETE => self.delete(name, &version).await,
                            _ => Err(method_not_allowed(&method)),
                        }
                    }
                    (["operationresults", _], &Method::GET) => {
                        self.operation_result(segments[3], &version).await
                    }
                    (
                        ["providers", "microsoft.resources", "operationstatuses", _],
                        &Method::GET,
                    ) => self.operation_status(segments[5]).await,
                    _ => Err(no_route(uri)),
                }
            }
            _ => Err(no_route(uri)),
        }
    }

    /// The caller a bearer token names, if ARM would accept the token.
    fn authenticate(&self, headers: &axum::http::HeaderMap) -> Result<Caller, ArmError> {
        let unauthorized = |code: &'static str, message: String| {
            let challenge = format!(
                "Bearer authorization_uri=\"{}/{}\", error=\"invalid_token\", error_description=\"{message}\"",
                self.base_url, self.identity.tenant_id
            );
            ArmError {
                challenge: Some(challenge),
                ..ArmError::new(StatusCode::UNAUTHORIZED, code, message)
            }
        };
        let header = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                unauthorized(
                    "AuthenticationFailed",
                    "Authentication failed. The 'Authorization' header is missing.".into(),
                )
            })?;
        let token = header.strip_prefix("Bearer ").ok_or_else(|| {
            unauthorized("AuthenticationFailed", "Authentication failed. The 'Authorization' header is provided in an invalid format.".into())
        })?;
        let claims = match self.signer.verify(token, now_ms() / 1000) {
            Ok(claims) => claims,
            Err(TokenError::Expired) => {
                return Err(unauthorized(
                    "ExpiredAuthenticationToken",
                    "The access token expiry UTC time is earlier than current UTC time.".into(),
                ));
            }
            Err(_) => {
                return Err(unauthorized(
                    "InvalidAuthenticationToken",
                    "The access token is invalid.".into(),
                ));
            }
        };
        let audience = claims["aud"].as_str().unwrap_or_default();
        if !ARM_AUDIENCES.contains(&audience) {
            return Err(unauthorized(
                "InvalidAuthenticationTokenAudience",
                format!(
                    "The access token has been obtained for wrong audience or resource '{audience}'. It should exactly match with one of the allowed audiences '{}'.",
                    ARM_AUDIENCES.join("','")
                ),
            ));
        }
        if claims["tid"] != json!(self.identity.tenant_id) {
            return Err(unauthorized(
                "InvalidAuthenticationTokenTenant",
                "The access token is from the wrong issuer.".into(),
            ));
        }
        Ok(Caller {
            object_id: claims["oid"].as_str().unwrap_or_default().to_owned(),
            client_id: claims["appid"].as_str().unwrap_or_default().to_owned(),
        })
    }

    /// Allows the call if a role assigned to the caller at `scope` or above grants
    /// `action` (its `actions` match and its `notActions` do not), as Azure RBAC does.
    async fn authorize(&self, caller: &Caller, action: &str, scope: &str) -> Result<(), ArmError> {
        if self.allowed(&caller.object_id, action, scope).await? {
            return Ok(());
        }
        Err(ArmError::new(
            StatusCode::FORBIDDEN,
            "AuthorizationFailed",
            format!(
                "The client '{}' with object id '{}' does not have authorization to perform action '{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your credentials.",
                caller.client_id, caller.object_id
            ),
        ))
    }

    /// The canonical id of a subscription or resource-group scope that exists.
    async fn scope(&self, segments: &[&str]) -> Result<String, ArmError> {
        let lower: Vec<String> = segments.iter().map(|s| s.to_lowercase()).collect();
        let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
        let sub = match lower.as_slice() {
            ["subscriptions", sub] | ["subscriptions", sub, "resourcegroups", _] => *sub,
            _ => {
                return Err(ArmError::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidResourceType",
                    format!(
                        "The scope '/{}' is not a subscription or resource group.",
                        segments.join("/")
                    ),
                ));
            }
        };
        if !sub.eq_ignore_ascii_case(&self.identity.subscription_id) {
            return Err(subscription_not_found(segments[1]));
        }
        match segments.get(3) {
            None => Ok(format!("/subscriptions/{}", self.identity.subscription_id)),
            Some(name) => {
                let group = self.load(name).await?.ok_or_else(|| not_found(name))?;
                Ok(group["id"].as_str().unwrap_or_default().to_owned())
            }
        }
    }

    /// Finishes the long-running operations whose time has come.
    async fn settle(&self) -> Result<(), ArmError> {
        let now = now_ms();
        for (key, mut op) in self.docs.list(API, OPERATION, "").await? {
            let due = op["dueAtMs"].as_i64().unwrap_or(0);
            if op["status"] == "InProgress" && due <= now {
                if let Some(target) = op["target"].as_str() {
                    if let Some(group) = self.docs.get(API, GROUP, target).await? {
                        let id = group["id"].as_str().unwrap_or_default();
                        self.remove_assignments_within(id).await?;
                        self.remove_locks_within(id).await?;
                    }
                    self.docs.delete(API, GROUP, target).await?;
                }
                op["status"] = json!("Succeeded");
                op["endTime"] = json!(rfc3339(due));
                self.docs.put(API, OPERATION, &key, &op).await?;
            }
        }
        Ok(())
    }

    fn group_id(&self, name: &str) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{name}",
            self.identity.subscription_id
        )
    }

    async fn load(&self, name: &str) -> Result<Option<Value>, ArmError> {
        Ok(self
            .docs
            .get(API, GROUP, &group_key(&self.identity.subscription_id, name))
            .await?)
    }

    async fn create_or_update(&self, name: &str, body: &[u8]) -> ArmResult {
        let request: Value = serde_json::from_slice(body)
            .ok()
            .filter(Value::is_object)
            .ok_or_else(|| ArmError::new(StatusCode::BAD_REQUEST, "InvalidRequestContent", "The request content was invalid and could not be deserialized: the body must be a JSON object."))?;
        let location = request["location"]
            .as_str()
            .map(|l| l.to_lowercase().replace(' ', ""))
            .filter(|l| !l.is_empty())
            .ok_or_else(|| {
                ArmError::new(
                    StatusCode::BAD_REQUEST,
                    "LocationRequired",
                    "The location property is required for this definition.",
                )
            })?;
        if !LOCATIONS.contains(&location.as_str()) {
            return Err(ArmError::new(
                StatusCode::BAD_REQUEST,
                "LocationNotAvailableForResourceGroup",
                format!(
                    "The provided location '{location}' is not available for resource group. List of available regions is '{}'.",
                    LOCATIONS.join(",")
                ),
            ));
        }
        let tags = match &request["tags"] {
            Value::Null => json!({}),
            Value::Object(t) if t.values().all(Value::is_string) => Value::Object(t.clone()),
            _ => {
                return Err(ArmError::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidTagNameCharacters",
                    "Tags must be a map of names to string values.",
                ));
            }
        };
        let existing = self.load(name).await?;
        if let Some(old) = &existing {
            if old["properties"]["provisioningState"] == "Deleting" {
                return Err(ArmError::new(
                    StatusCode::CONFLICT,
                    "ResourceGroupBeingDeleted",
                    format!(
                        "The resource group '{name}' is in deprovisioning state and cannot perform this operation."
                    ),
                ));
            }
            if old["location"] != json!(location) {
                return Err(ArmError::new(
                    StatusCode::CONFLICT,
                    "InvalidResourceGroupLocation",
                    format!(
                        "Invalid resource group location '{location}'. The Resource group already exists in location '{}'.",
                        old["location"].as_str().unwrap_or_default()
                    ),
                ));
            }
        }
        let name = existing
            .as_ref()
            .and_then(|o| o["name"].as_str().map(str::to_owned))
            .unwrap_or_else(|| name.to_owned());
        let mut group = json!({
            "id": self.group_id(&name),
            "name": name,
            "type": "Microsoft.Resources/resourceGroups",
            "location": location,
            "tags": tags,
            "properties": {"provisioningState": "Succeeded"},
        });
        if let Some(managed_by) = request["managedBy"].as_str() {
            group["managedBy"] = json!(managed_by);
        }
        self.docs
            .put(
                API,
                GROUP,
                &group_key(&self.identity.subscription_id, &name),
                &group,
            )
            .await?;
        let status = if existing.is_some() {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        Ok(json_response(status, &group))
    }

    async fn get(&self, name: &str) -> ArmResult {
        let group = self.load(name).await?.ok_or_else(|| not_found(name))?;
        Ok(json_response(StatusCode::OK, &group))
    }

    async fn exists(&self, name: &str) -> ArmResult {
        let status = if self.load(name).await?.is_some() {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::NOT_FOUND
        };
        Ok(status.into_response())
    }

    async fn update(&self, name: &str, body: &[u8]) -> ArmResult {
        let mut group = self.load(name).await?.ok_or_else(|| not_found(name))?;
        let patch: Value = serde_json::from_slice(body)
            .ok()
            .filter(Value::is_object)
            .ok_or_else(|| ArmError::new(StatusCode::BAD_REQUEST, "InvalidRequestContent", "The request content was invalid and could not be deserialized: the body must be a JSON object."))?;
        if let Some(tags) = patch.get("tags").filter(|t| t.is_object()) {
            group["tags"] = tags.clone();
        }
        if let Some(managed_by) = patch.get("managedBy").and_then(Value::as_str) {
            group["managedBy"] = json!(managed_by);
        }
        self.docs
            .put(
                API,
                GROUP,
                &group_key(&self.identity.subscription_id, name),
                &group,
            )
            .await?;
        Ok(json_response(StatusCode::OK, &group))
    }

    /// Starts the delete; the group goes on existing, `Deleting`, for `delete_delay`.
    async fn delete(&self, name: &str, version: &str) -> ArmResult {
        let mut group = self.load(name).await?.ok_or_else(|| not_found(name))?;
        let key = group_key(&self.identity.subscription_id, name);
        // A second delete while one runs answers with the same operation.
        let running = self
            .docs
            .list(API, OPERATION, "")
            .await?
            .into_iter()
            .find(|(_, op)| op["target"] == json!(key) && op["status"] == "InProgress");
        let op_id = match running {
            Some((op_id, _)) => op_id,
            None => {
                let op_id = new_id();
                let now = now_ms();
                let op = json!({
                    "id": op_id,
                    "status": "InProgress",
                    "target": key,
                    "startTime": rfc3339(now),
                    "dueAtMs": now + self.config.delete_delay.as_millis() as i64,
                });
                self.docs.put(API, OPERATION, &op_id, &op).await?;
                group["properties"]["provisioningState"] = json!("Deleting");
                self.docs.put(API, GROUP, &key, &group).await?;
                op_id
            }
        };
        Ok(self.accepted(&op_id, version))
    }

    /// 202 with where to poll, as ARM answers a long-running operation.
    fn accepted(&self, op_id: &str, version: &str) -> Response {
        let sub = &self.identity.subscription_id;
        let location = format!(
            "{}/subscriptions/{sub}/operationresults/{op_id}?api-version={version}",
            self.base_url
        );
        let status = format!(
            "{}/subscriptions/{sub}/providers/Microsoft.Resources/operationStatuses/{op_id}?api-version={version}",
            self.base_url
        );
        let mut r = StatusCode::ACCEPTED.into_response();
        let h = r.headers_mut();
        h.insert(
            header::LOCATION,
            HeaderValue::from_str(&location).expect("URL is a valid header"),
        );
        h.insert(
            "azure-asyncoperation",
            HeaderValue::from_str(&status).expect("URL is a valid header"),
        );
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from(self.config.retry_after_secs),
        );
        r
    }

    async fn operation(&self, op_id: &str) -> Result<Value, ArmError> {
        self.docs.get(API, OPERATION, op_id).await?.ok_or_else(|| {
            ArmError::new(
                StatusCode::NOT_FOUND,
                "OperationNotFound",
                format!("The operation '{op_id}' could not be found."),
            )
        })
    }

    /// The `Location` URL: 202 while running, then 200.
    async fn operation_result(&self, op_id: &str, version: &str) -> ArmResult {
        let op = self.operation(op_id).await?;
        Ok(if op["status"] == "InProgress" {
            self.accepted(op_id, version)
        } else {
            StatusCode::OK.into_response()
        })
    }

    /// The `Azure-AsyncOperation` URL: the operation's status document.
    async fn operation_status(&self, op_id: &str) -> ArmResult {
        let op = self.operation(op_id).await?;
        let mut body =
            json!({"id": op["id"], "status": op["status"], "startTime": op["startTime"]});
        if let Some(end) = op.get("endTime") {
            body["endTime"] = end.clone();
        }
        Ok(json_response(StatusCode::OK, &body))
    }

    async fn list(&self, uri: &Uri, version: &str) -> ArmResult {
        let top = query_param(uri, "%24top")
            .or_else(|| query_param(uri, "$top"))
            .and_then(|t| t.parse::<usize>().ok());
        let page = top
            .unwrap_or(self.config.page_size)
            .clamp(1, self.config.page_size);
        let skip = query_param(uri, "%24skiptoken")
            .or_else(|| query_param(uri, "$skiptoken"))
            .and_then(|t| t.parse::<usize>().ok())
            .unwrap_or(0);
        let prefix = format!("{}/", self.identity.subscription_id.to_lowercase());
        let groups = self.docs.list(API, GROUP, &prefix).await?;
        let value: Vec<Value> = groups
            .iter()
            .skip(skip)
            .take(page)
            .map(|(_, g)| g.clone())
            .collect();
        let mut body = json!({ "value": value });
        if skip + page < groups.len() {
            body["nextLink"] = json!(format!(
                "{}/subscriptions/{}/resourcegroups?api-version={version}&%24top={page}&%24skiptoken={}",
                self.base_url,
                self.identity.subscription_id,
                skip + page
            ));
        }
        Ok(json_response(StatusCode::OK, &body))
    }
}

pub(crate) fn method_not_allowed(method: &Method) -> ArmError {
    ArmError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        format!("The requested resource does not support http method '{method}'."),
    )
}

pub(crate) fn no_route(uri: &Uri) -> ArmError {
    ArmError::new(
        StatusCode::NOT_FOUND,
        "InvalidResourceType",
        format!(
            "The resource path '{}' is not served by this endpoint.",
            uri.path()
        ),
    )
}
