//! Microsoft Graph v1.0, the directory: applications (addressable by `appId` and by
//! `uniqueName`, with `Prefer: create-if-missing` upsert), their passwords and federated
//! identity credentials, service principals, and security groups with members and owners
//! (`$ref`). Lists page with `@odata.nextLink`; errors have Graph's shape. Each application
//! has a request budget per ten seconds, past which Graph answers 429 `TooManyRequests`
//! with `Retry-After`, as Graph throttles.
//!
//! The Entra token endpoint authenticates the applications registered here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::documents::Documents;
use crate::tokens::{Signer, TokenError};
use crate::{SandboxError, new_id, now_ms, percent_decode, rfc3339, uuid_v4};

mod access;
mod applications;
mod directory;
mod groups;

use access::metadata;
pub use access::resource_id;
pub(crate) use access::{Throttle, is_audience};
pub(crate) use directory::*;

pub(crate) const API: &str = "graph";
/// The sandbox tenant's default domain: its users are `name@USER_DOMAIN`.
pub const USER_DOMAIN: &str = "paddock-sandbox.onmicrosoft.com";
const APPLICATION: &str = "application";
const SECRET: &str = "secret";
const SERVICE_PRINCIPAL: &str = "servicePrincipal";
const FIC: &str = "federatedIdentityCredential";
const GROUP: &str = "group";
const MEMBER: &str = "member";
const OWNER: &str = "owner";
const PRINCIPAL_BORN: &str = "principalCreated";
const USER: &str = "user";

/// The path prefix Graph is served under: clients use `{base}/graph/v1.0` as their root.
pub const ROOT: &str = "/graph/v1.0";

pub(crate) struct Graph {
    pub docs: Documents,
    pub signer: Arc<Signer>,
    pub base_url: String,
    /// The platform's application id: the one identity allowed to change the directory.
    pub admin_app_id: String,
    pub page_size: usize,
    /// Requests each application has left in its current ten seconds.
    pub throttle: Throttle,
}

/// A Graph error: status, `code`, `message` and `innerError`.
pub(crate) struct GraphError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// `Retry-After` of a throttled request, in seconds.
    retry_after: Option<u64>,
}

impl GraphError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> GraphError {
        GraphError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl From<SandboxError> for GraphError {
    fn from(e: SandboxError) -> Self {
        GraphError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "generalException",
            e.to_string(),
        )
    }
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let body = json!({"error": {
            "code": self.code,
            "message": self.message,
            "innerError": {"date": rfc3339(now_ms()), "request-id": uuid_v4(), "client-request-id": uuid_v4()},
        }});
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

type GraphResult = Result<Response, GraphError>;

fn not_found(id: &str) -> GraphError {
    GraphError::new(
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        format!(
            "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
        ),
    )
}

fn bad_request(message: impl Into<String>) -> GraphError {
    GraphError::new(StatusCode::BAD_REQUEST, "Request_BadRequest", message)
}

fn entity(status: StatusCode, context: &str, mut body: Value) -> Response {
    body["@odata.context"] = json!(context);
    (status, axum::Json(body)).into_response()
}

pub(crate) fn secret_digest(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `applications(appId='x')` → `("applications", Some(("appId", "x")))`.
fn key_segment(segment: &str) -> (&str, Option<(&str, String)>) {
    match segment.split_once('(') {
        Some((name, rest)) => {
            let inner = rest.strip_suffix(')').unwrap_or(rest);
            let (k, v) = inner.split_once('=').unwrap_or(("id", inner));
            // An OData string literal: quoted, a quote inside doubled.
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(v);
            (name, Some((k, v.replace("''", "'"))))
        }
        None => (segment, None),
    }
}

/// Refuses a request that lacks one of `fields` as a string, naming it.
fn require(request: &Value, fields: &[&str]) -> Result<(), GraphError> {
    match fields.iter().find(|f| !request[**f].is_string()) {
        Some(f) => Err(bad_request(format!("Property '{f}' is required."))),
        None => Ok(()),
    }
}

fn object(body: &[u8]) -> Result<Value, GraphError> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| bad_request("The request body must be a JSON object."))
}

/// A `$filter` as the directory takes it here: `property eq 'value'` clauses joined by
/// `and` (a quote inside a value doubled, as OData writes it). Strings compare without
/// regard to case, as the directory's do.
fn parse_filter(filter: &str) -> Result<Vec<(String, String)>, GraphError> {
    let unsupported = || {
        GraphError::new(
            StatusCode::BAD_REQUEST,
            "Request_UnsupportedQuery",
            format!("Unsupported or invalid query filter clause specified: '{filter}'."),
        )
    };
    let mut clauses = Vec::new();
    let mut rest = filter.trim();
    loop {
        let (property, after) = rest.split_once(" eq '").ok_or_else(unsupported)?;
        let property = property.trim();
        if property.is_empty() || !property.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(unsupported());
        }
        let mut value = String::new();
        let mut chars = after.char_indices().peekable();
        let end = loop {
            match chars.next() {
                Some((_, '\'')) if chars.peek().is_some_and(|(_, c)| *c == '\'') => {
                    chars.next();
                    value.push('\'');
                }
                Some((i, '\'')) => break i,
                Some((_, c)) => value.push(c),
                None => return Err(unsupported()),
            }
        };
        clauses.push((property.to_owned(), value));
        rest = after[end + 1..].trim_start();
        if rest.is_empty() {
            return Ok(clauses);
        }
        rest = rest.strip_prefix("and ").ok_or_else(unsupported)?;
    }
}

pub(crate) async fn dispatch(
    State(graph): State<Arc<Graph>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    graph
        .route(&method, &uri, &headers, &body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

impl Graph {
    fn context(&self, what: &str) -> String {
        format!("{}{ROOT}/$metadata#{what}", self.base_url)
    }

    async fn route(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> GraphResult {
        // The service's description is public, as Graph's is: what `@odata.context` names.
        if *method == Method::GET && uri.path() == format!("{ROOT}/$metadata") {
            return Ok(metadata());
        }
        let caller = self.authenticate(headers)?;
        self.throttle.admit(&caller, now_ms()).map_err(|secs| GraphError {
            retry_after: Some(secs),
            ..GraphError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                format!("Too many requests from Identifier:{caller} under category:throttle.sandbox.directory. Please try again later."),
            )
        })?;
        if *method != Method::GET && !caller.eq_ignore_ascii_case(&self.admin_app_id) {
            return Err(GraphError::new(
                StatusCode::FORBIDDEN,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            ));
        }
        let path = uri.path().strip_prefix(ROOT).unwrap_or_default();
        let segments: Vec<String> = path
            .trim_matches('/')
            .split('/')
            .map(percent_decode)
            .collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let (collection, key) = key_segment(segments.first().copied().unwrap_or_default());
        let rest = &segments[1.min(segments.len())..];
        match (collection, key, rest, method) {
            ("applications", None, [], &Method::GET) => {
                self.list(uri, APPLICATION, "applications").await
            }
            ("applications", None, [], &Method::POST) => self.new_application(object(body)?).await,
            ("applications", Some(("uniqueName", name)), [], &Method::PATCH) => {
                self.upsert_application(&name, headers, body).await
            }
            ("applications", key, rest, _) => {
                let keyed = key.is_some();
                let app = self.application(key, rest.first().copied()).await?;
                let id = app["id"].as_str().unwrap_or_default().to_owned();
                let rest = if keyed {
                    rest
                } else {
                    &rest[1.min(rest.len())..]
                };
                self.application_item(method, app, &id, rest, body).await
            }
            ("servicePrincipals", None, [], &Method::GET) => {
                self.list(uri, SERVICE_PRINCIPAL, "servicePrincipals").await
            }
            ("servicePrincipals", None, [], &Method::POST) => {
                let request = object(body)?;
                let app_id = request["appId"]
                    .as_str()
                    .ok_or_else(|| bad_request("Property 'appId' is required."))?;
                let app = application_by_app_id(&self.docs, app_id).await?.ok_or_else(|| bad_request(format!("The appId '{app_id}' of the service principal does not reference a valid application object.")))?;
                if service_principal_by_app_id(&self.docs, app_id)
                    .await?
                    .is_some()
                {
                    return Err(GraphError::new(
                        StatusCode::CONFLICT,
                        "Request_MultipleObjectsWithSameKeyValue",
                        "The service principal cannot be created, updated, or restored because the service principal name is already in use.",
                    ));
                }
                let mut sp = create_service_principal(&self.docs, &app).await?;
                // What the caller may set besides `appId` is kept, as Graph does.
                if merge_writable(&mut sp, &request) {
                    let id = sp["id"].as_str().unwrap_or_default().to_owned();
                    self.docs.put(API, SERVICE_PRINCIPAL, &id, &sp).await?;
                }
                Ok(entity(
                    StatusCode::CREATED,
                    &self.context("servicePrincipals/$entity"),
                    sp,
                ))
            }
            ("servicePrincipals", key, rest, _) => {
                let sp = match key {
                    Some(("appId", app_id)) => service_principal_by_app_id(&self.docs, &app_id)
                        .await?
                        .ok_or_else(|| not_found(&app_id))?,
                    Some((_, id)) => self
                        .docs
                        .get(API, SERVICE_PRINCIPAL, &id)
                        .await?
                        .ok_or_else(|| not_found(&id))?,
                    None => {
                        let id = rest.first().copied().unwrap_or_default();
                        self.docs
                            .get(API, SERVICE_PRINCIPAL, id)
                            .await?
                            .ok_or_else(|| not_found(id))?
                    }
                };
                match *method {
                    Method::GET => Ok(entity(
                        StatusCode::OK,
                        &self.context("servicePrincipals/$entity"),
                        sp,
                    )),
                    Method::PATCH => {
                        let mut sp = sp;
                        merge_writable(&mut sp, &object(body)?);
                        let id = sp["id"].as_str().unwrap_or_default().to_owned();
                        self.docs.put(API, SERVICE_PRINCIPAL, &id, &sp).await?;
                        Ok(StatusCode::NO_CONTENT.into_response())
                    }
                    Method::DELETE => {
                        self.docs
                            .delete(
                                API,
                                SERVICE_PRINCIPAL,
                                sp["id"].as_str().unwrap_or_default(),
                            )
                            .await?;
                        Ok(StatusCode::NO_CONTENT.into_response())
                    }
                    _ => Err(bad_request("Unsupported method.")),
                }
            }
            ("users", None, [], &Method::GET) => self.list(uri, USER, "users").await,
            ("users", None, [], &Method::POST) => {
                let mut user = object(body)?;
                require(&user, &["displayName", "userPrincipalName", "mailNickname"])?;
                if !user["accountEnabled"].is_boolean() {
                    return Err(bad_request("Property 'accountEnabled' is required."));
                }
                let upn = user["userPrincipalName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_lowercase();
                if self.docs.list(API, USER, "").await?.iter().any(|(_, u)| {
                    u["userPrincipalName"]
                        .as_str()
                        .is_some_and(|x| x.to_lowercase() == upn)
                }) {
                    return Err(bad_request(
                        "Another object with the same value for property userPrincipalName already exists.",
                    ));
                }
                // The password is write-only: Graph never returns it.
                user.as_object_mut()
                    .expect("an object")
                    .remove("passwordProfile");
                let id = uuid_v4();
                user["id"] = json!(id);
                self.docs.put(API, USER, &id, &user).await?;
                self.docs
                    .put(API, PRINCIPAL_BORN, &id, &json!({ "atMs": now_ms() }))
                    .await?;
                Ok(entity(
                    StatusCode::CREATED,
                    &self.context("users/$entity"),
                    user,
                ))
            }
            ("users", None, [id], &Method::GET) => {
                // A user is addressed by object id or by userPrincipalName.
                let user = match self.docs.get(API, USER, id).await? {
                    Some(user) => Some(user),
                    None if id.contains('@') => self
                        .docs
                        .values(API, USER, "")
                        .await?
                        .into_iter()
                        .find(|u| {
                            u["userPrincipalName"]
                                .as_str()
                                .is_some_and(|upn| upn.eq_ignore_ascii_case(id))
                        }),
                    None => None,
                }
                .ok_or_else(|| not_found(id))?;
                Ok(entity(StatusCode::OK, &self.context("users/$entity"), user))
            }
            ("groups", None, [], &Method::GET) => self.list(uri, GROUP, "groups").await,
            ("groups", None, [], &Method::POST) => {
                let mut group = object(body)?;
                require(&group, &["displayName", "mailNickname"])?;
                let id = uuid_v4();
                group["id"] = json!(id);
                group["createdDateTime"] = json!(rfc3339(now_ms()));
                group["groupTypes"] = group.get("groupTypes").cloned().unwrap_or(json!([]));
                self.docs.put(API, GROUP, &id, &group).await?;
                self.docs
                    .put(API, PRINCIPAL_BORN, &id, &json!({ "atMs": now_ms() }))
                    .await?;
                Ok(entity(
                    StatusCode::CREATED,
                    &self.context("groups/$entity"),
                    group,
                ))
            }
            ("groups", None, [id, rest @ ..], _) => self.group_item(method, id, rest, body).await,
            _ => Err(GraphError::new(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("Resource not found for the segment '{collection}'."),
            )),
        }
    }

    /// A page of a collection, `$top` and `$filter` (see [`parse_filter`]) honoured, with
    /// `@odata.nextLink` to the next (keeping the filter).
    async fn list(&self, uri: &Uri, kind: &str, name: &str) -> GraphResult {
        let query = uri.query().unwrap_or_default();
        let raw = |p: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(p)?.strip_prefix('='))
        };
        // `+` is a space in a query: replaced before decoding, so `%2B` stays a plus.
        let param = |p: &str| raw(p).map(|v| percent_decode(&v.replace('+', " ")));
        let top = param("%24top")
            .or_else(|| param("$top"))
            .and_then(|t| t.parse::<usize>().ok())
            .unwrap_or(self.page_size)
            .clamp(1, 999);
        let skip = param("%24skiptoken")
            .or_else(|| param("$skiptoken"))
            .and_then(|t| t.parse::<usize>().ok())
            .unwrap_or(0);
        let raw_filter = raw("%24filter").or_else(|| raw("$filter"));
        let clauses = match param("%24filter").or_else(|| param("$filter")) {
            Some(filter) => parse_filter(&filter)?,
            None => Vec::new(),
        };
        let all: Vec<Value> = self
            .docs
            .list(API, kind, "")
            .await?
            .into_iter()
            .map(|(_, v)| v)
            .filter(|v| {
                clauses.iter().all(|(property, wanted)| {
                    v[property]
                        .as_str()
                        .is_some_and(|x| x.eq_ignore_ascii_case(wanted))
                })
            })
            .collect();
        let value: Vec<Value> = all.iter().skip(skip).take(top).cloned().collect();
        let mut body = json!({ "value": value });
        if skip + top < all.len() {
            let filter = raw_filter.map_or(String::new(), |f| format!("&$filter={f}"));
            body["@odata.nextLink"] = json!(format!(
                "{}{ROOT}/{name}?$top={top}&$skiptoken={}{filter}",
                self.base_url,
                skip + top
            ));
        }
        Ok(entity(StatusCode::OK, &self.context(name), body))
    }
}

/// The properties of a service principal a caller may write that the sandbox keeps
/// (`tags`, `notes`, `description`, `displayName`, `accountEnabled`): merged from
/// `request` into `sp`; whether any was.
fn merge_writable(sp: &mut Value, request: &Value) -> bool {
    let mut changed = false;
    for k in [
        "tags",
        "notes",
        "description",
        "displayName",
        "accountEnabled",
    ] {
        if let Some(v) = request.get(k) {
            sp[k] = v.clone();
            changed = true;
        }
    }
    changed
}
