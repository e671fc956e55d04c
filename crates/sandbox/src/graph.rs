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
/// Audiences Graph accepts in a token, besides the sandbox's own resource id
/// ([`resource_id`]).
pub(crate) const AUDIENCES: &[&str] = &[
    "https://graph.microsoft.com",
    "https://graph.microsoft.com/",
    "00000003-0000-0000-c000-000000000000",
];

/// The sandbox's Microsoft Graph as a resource: `{base}/graph/`. The cloud metadata
/// document names it `microsoftGraphResourceId`, which az uses both as Graph's root
/// (`{id}v1.0`) and as the resource of its tokens.
pub fn resource_id(base_url: &str) -> String {
    format!("{base_url}/graph/")
}

/// Whether `audience` names Microsoft Graph (with or without its trailing slash).
pub(crate) fn is_audience(base_url: &str, audience: &str) -> bool {
    let own = resource_id(base_url);
    AUDIENCES.contains(&audience) || audience == own || audience == own.trim_end_matches('/')
}

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

/// Graph's throttling: each application (a token's `appid`) gets so many requests in a
/// ten-second window, which starts with its first request.
pub(crate) struct Throttle {
    per_window: u32,
    /// By application: (window start, requests in it).
    windows: Mutex<HashMap<String, (i64, u32)>>,
}

const THROTTLE_WINDOW_MS: i64 = 10_000;

impl Throttle {
    pub(crate) fn per_10s(per_window: u32) -> Throttle {
        Throttle {
            per_window,
            windows: Mutex::default(),
        }
    }

    /// Counts a request of `app_id` at `now_ms`, or refuses it with the seconds until its
    /// window ends.
    fn admit(&self, app_id: &str, now_ms: i64) -> Result<(), u64> {
        let mut windows = self.windows.lock().expect("throttle lock");
        let (start, used) = windows.entry(app_id.to_lowercase()).or_insert((now_ms, 0));
        if now_ms - *start >= THROTTLE_WINDOW_MS {
            (*start, *used) = (now_ms, 0);
        }
        if *used >= self.per_window {
            let left_ms = *start + THROTTLE_WINDOW_MS - now_ms;
            return Err(((left_ms + 999) / 1000).max(1) as u64);
        }
        *used += 1;
        Ok(())
    }
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

/// `GET /v1.0/$metadata`: the CSDL of what the sandbox's Graph serves (the cut of the
/// official description its contract tests check it against).
fn metadata() -> Response {
    (
        [(header::CONTENT_TYPE, "application/xml")],
        include_str!("../specs/graph/graph-v1.0.csdl.xml"),
    )
        .into_response()
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

/// Creates an application (and its service principal and a password when asked): the
/// path every registration takes, through Graph or the sandbox's own seeding.
pub(crate) async fn create_application(
    docs: &Documents,
    mut app: Value,
) -> Result<Value, SandboxError> {
    let id = uuid_v4();
    app["id"] = json!(id);
    app["appId"] = json!(uuid_v4());
    app["createdDateTime"] = json!(rfc3339(now_ms()));
    app["signInAudience"] = app
        .get("signInAudience")
        .cloned()
        .unwrap_or(json!("AzureADMyOrg"));
    for list in [
        "identifierUris",
        "passwordCredentials",
        "keyCredentials",
        "tags",
    ] {
        if app.get(list).is_none() {
            app[list] = json!([]);
        }
    }
    docs.put(API, APPLICATION, &id, &app).await?;
    Ok(app)
}

/// Adds a client secret to an application; the clear text is returned once, as Graph does.
pub(crate) async fn add_password(
    docs: &Documents,
    app_object_id: &str,
    display_name: &str,
) -> Result<Value, SandboxError> {
    let mut app = docs
        .get(API, APPLICATION, app_object_id)
        .await?
        .ok_or_else(|| SandboxError::Database(format!("no application {app_object_id}")))?;
    let secret = format!("sbx~{}", new_id());
    let now = now_ms();
    let credential = json!({
        "keyId": uuid_v4(),
        "displayName": display_name,
        "hint": &secret[..3],
        "startDateTime": rfc3339(now),
        "endDateTime": rfc3339(now + 365 * 24 * 3600 * 1000),
        "secretText": null,
        "customKeyIdentifier": null,
    });
    app["passwordCredentials"]
        .as_array_mut()
        .expect("a list")
        .push(credential.clone());
    docs.put(API, APPLICATION, app_object_id, &app).await?;
    let app_id = app["appId"].as_str().unwrap_or_default();
    docs.put(
        API,
        SECRET,
        &format!(
            "{app_id}|{}",
            credential["keyId"].as_str().unwrap_or_default()
        ),
        &json!({"sha256": secret_digest(&secret)}),
    )
    .await?;
    let mut shown = credential;
    shown["secretText"] = json!(secret);
    Ok(shown)
}

pub(crate) async fn create_service_principal(
    docs: &Documents,
    app: &Value,
) -> Result<Value, SandboxError> {
    let id = uuid_v4();
    let sp = json!({
        "id": id,
        "appId": app["appId"],
        "displayName": app["displayName"],
        "servicePrincipalType": "Application",
        "accountEnabled": true,
        "appOwnerOrganizationId": null,
        "servicePrincipalNames": [app["appId"]],
        "tags": [],
    });
    docs.put(API, SERVICE_PRINCIPAL, &id, &sp).await?;
    docs.put(API, PRINCIPAL_BORN, &id, &json!({ "atMs": now_ms() }))
        .await?;
    Ok(sp)
}

/// When a directory principal (service principal or group) was created, in milliseconds;
/// `None` if the directory has no such principal. (Kept apart from the entities, which
/// carry only Graph's properties.)
pub(crate) async fn principal_created_ms(
    docs: &Documents,
    id: &str,
) -> Result<Option<i64>, SandboxError> {
    Ok(docs
        .get(API, PRINCIPAL_BORN, &id.to_lowercase())
        .await?
        .and_then(|d| d["atMs"].as_i64()))
}

/// The first entity of a kind whose `appId` is this client id.
async fn by_app_id(
    docs: &Documents,
    kind: &str,
    app_id: &str,
) -> Result<Option<Value>, SandboxError> {
    Ok(docs
        .list(API, kind, "")
        .await?
        .into_iter()
        .map(|(_, v)| v)
        .find(|v| {
            v["appId"]
                .as_str()
                .is_some_and(|x| x.eq_ignore_ascii_case(app_id))
        }))
}

/// The application with this client id, if registered.
pub(crate) async fn application_by_app_id(
    docs: &Documents,
    app_id: &str,
) -> Result<Option<Value>, SandboxError> {
    by_app_id(docs, APPLICATION, app_id).await
}

/// The application a resource identifier names: its client id, or one of its
/// `identifierUris` (a trailing slash aside, as Entra matches them).
pub(crate) async fn application_by_identifier(
    docs: &Documents,
    resource: &str,
) -> Result<Option<Value>, SandboxError> {
    let wanted = resource.trim_end_matches('/');
    Ok(docs
        .values(API, APPLICATION, "")
        .await?
        .into_iter()
        .find(|app| {
            app["appId"]
                .as_str()
                .is_some_and(|id| id.eq_ignore_ascii_case(wanted))
                || app["identifierUris"].as_array().is_some_and(|uris| {
                    uris.iter()
                        .filter_map(Value::as_str)
                        .any(|u| u.trim_end_matches('/').eq_ignore_ascii_case(wanted))
                })
        }))
}

/// The service principal of a client id, if it has one.
pub(crate) async fn service_principal_by_app_id(
    docs: &Documents,
    app_id: &str,
) -> Result<Option<Value>, SandboxError> {
    by_app_id(docs, SERVICE_PRINCIPAL, app_id).await
}

/// Whether `secret` is one of the application's passwords.
pub(crate) async fn secret_matches(
    docs: &Documents,
    app_id: &str,
    secret: &str,
) -> Result<bool, SandboxError> {
    let digest = json!(secret_digest(secret));
    Ok(docs
        .list(API, SECRET, &format!("{app_id}|"))
        .await?
        .iter()
        .any(|(_, s)| s["sha256"] == digest))
}

/// Federated identity credentials of the application with this client id.
pub(crate) async fn federated_credentials(
    docs: &Documents,
    app_id: &str,
) -> Result<Vec<Value>, SandboxError> {
    let Some(app) = application_by_app_id(docs, app_id).await? else {
        return Ok(Vec::new());
    };
    let prefix = format!("{}|", app["id"].as_str().unwrap_or_default());
    docs.values(API, FIC, &prefix).await
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

    /// The caller's client id, from a valid Graph token; refusals worded as Graph words
    /// them.
    fn authenticate(&self, headers: &HeaderMap) -> Result<String, GraphError> {
        let unauthorized =
            |m: &str| GraphError::new(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", m);
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthorized("Access token is empty."))?;
        let claims = match self.signer.verify(token, now_ms() / 1000) {
            Ok(claims) => claims,
            Err(TokenError::Malformed) if !token.contains('.') => {
                return Err(unauthorized(
                    "IDX14100: JWT is not well formed, there are no dots (.).\nThe token needs to be in JWS or JWE Compact Serialization Format. (JWS): 'EncodedHeader.EncodedPayload.EncodedSignature'. (JWE): 'EncodedProtectedHeader.EncodedEncryptedKey.EncodedInitializationVector.EncodedCiphertext.EncodedAuthenticationTag'.",
                ));
            }
            Err(TokenError::Malformed) => {
                return Err(unauthorized(
                    "IDX14102: Unable to decode the header '[PII of type 'Microsoft.IdentityModel.Logging.SecurityArtifact' is hidden. For more details, see https://aka.ms/IdentityModel/PII.]' as Base64Url encoded string.",
                ));
            }
            Err(TokenError::Expired) => {
                return Err(unauthorized(
                    "Lifetime validation failed, the token is expired.",
                ));
            }
            Err(TokenError::BadSignature) => {
                return Err(unauthorized("Access token validation failure."));
            }
        };
        if !claims["aud"]
            .as_str()
            .is_some_and(|a| is_audience(&self.base_url, a))
        {
            return Err(unauthorized(
                "Access token validation failure. Invalid audience.",
            ));
        }
        Ok(claims["appid"].as_str().unwrap_or_default().to_owned())
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
                let sp = create_service_principal(&self.docs, &app).await?;
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

    async fn new_application(&self, request: Value) -> GraphResult {
        require(&request, &["displayName"])?;
        let app = create_application(&self.docs, request).await?;
        Ok(entity(
            StatusCode::CREATED,
            &self.context("applications/$entity"),
            app,
        ))
    }

    async fn application(
        &self,
        key: Option<(&str, String)>,
        first: Option<&str>,
    ) -> Result<Value, GraphError> {
        match key {
            Some(("appId", app_id)) => application_by_app_id(&self.docs, &app_id)
                .await?
                .ok_or_else(|| not_found(&app_id)),
            Some(("uniqueName", name)) => self
                .application_by_unique_name(&name)
                .await?
                .ok_or_else(|| not_found(&name)),
            Some((_, id)) => self
                .docs
                .get(API, APPLICATION, &id)
                .await?
                .ok_or_else(|| not_found(&id)),
            None => {
                let id = first.unwrap_or_default();
                self.docs
                    .get(API, APPLICATION, id)
                    .await?
                    .ok_or_else(|| not_found(id))
            }
        }
    }

    async fn application_by_unique_name(&self, name: &str) -> Result<Option<Value>, GraphError> {
        Ok(self
            .docs
            .list(API, APPLICATION, "")
            .await?
            .into_iter()
            .map(|(_, a)| a)
            .find(|a| a["uniqueName"] == json!(name)))
    }

    /// `PATCH /applications(uniqueName='…')`: updates, or with `Prefer: create-if-missing`
    /// creates (201); without it a missing application is 404.
    async fn upsert_application(
        &self,
        name: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> GraphResult {
        let patch = object(body)?;
        match self.application_by_unique_name(name).await? {
            Some(mut app) => {
                for (k, v) in patch.as_object().expect("an object") {
                    app[k] = v.clone();
                }
                self.docs
                    .put(
                        API,
                        APPLICATION,
                        app["id"].as_str().unwrap_or_default(),
                        &app,
                    )
                    .await?;
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            None => {
                let create = headers
                    .get("prefer")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|p| p.contains("create-if-missing"));
                if !create {
                    return Err(not_found(name));
                }
                let mut request = patch;
                request["uniqueName"] = json!(name);
                self.new_application(request).await
            }
        }
    }

    async fn application_item(
        &self,
        method: &Method,
        mut app: Value,
        id: &str,
        rest: &[&str],
        body: &[u8],
    ) -> GraphResult {
        match (rest, method) {
            ([], &Method::GET) => Ok(entity(
                StatusCode::OK,
                &self.context("applications/$entity"),
                app,
            )),
            ([], &Method::PATCH) => {
                for (k, v) in object(body)?.as_object().expect("an object") {
                    if !["id", "appId", "createdDateTime"].contains(&k.as_str()) {
                        app[k] = v.clone();
                    }
                }
                self.docs.put(API, APPLICATION, id, &app).await?;
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            ([], &Method::DELETE) => {
                self.docs.delete(API, APPLICATION, id).await?;
                // Its federated credentials go with it.
                self.docs
                    .delete_prefix(API, &[FIC], &format!("{id}|"))
                    .await?;
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            (["addPassword"], &Method::POST) => {
                let request: Value = serde_json::from_slice(body).unwrap_or_default();
                let name = request["passwordCredential"]["displayName"]
                    .as_str()
                    .unwrap_or("");
                let credential = add_password(&self.docs, id, name).await?;
                Ok(entity(
                    StatusCode::OK,
                    &self.context("microsoft.graph.passwordCredential"),
                    credential,
                ))
            }
            (["federatedIdentityCredentials"], &Method::GET) => {
                let value: Vec<Value> = self.docs.values(API, FIC, &format!("{id}|")).await?;
                Ok(entity(
                    StatusCode::OK,
                    &self.context(&format!(
                        "applications('{id}')/federatedIdentityCredentials"
                    )),
                    json!({ "value": value }),
                ))
            }
            (["federatedIdentityCredentials"], &Method::POST) => {
                let mut fic = object(body)?;
                require(&fic, &["name", "issuer", "subject"])?;
                if !fic["audiences"]
                    .as_array()
                    .is_some_and(|a| a.len() == 1 && a[0].is_string())
                {
                    return Err(bad_request(
                        "Property 'audiences' must hold exactly one audience.",
                    ));
                }
                let existing = self.docs.list(API, FIC, &format!("{id}|")).await?;
                if existing.iter().any(|(_, f)| f["name"] == fic["name"]) {
                    return Err(GraphError::new(
                        StatusCode::CONFLICT,
                        "Request_MultipleObjectsWithSameKeyValue",
                        "FederatedIdentityCredential with name already exists.",
                    ));
                }
                if existing
                    .iter()
                    .any(|(_, f)| f["issuer"] == fic["issuer"] && f["subject"] == fic["subject"])
                {
                    return Err(GraphError::new(
                        StatusCode::CONFLICT,
                        "Request_MultipleObjectsWithSameKeyValue",
                        "FederatedIdentityCredential with the same issuer and subject already exists.",
                    ));
                }
                let fid = uuid_v4();
                fic["id"] = json!(fid);
                self.docs
                    .put(API, FIC, &format!("{id}|{fid}"), &fic)
                    .await?;
                Ok(entity(
                    StatusCode::CREATED,
                    &self.context(&format!(
                        "applications('{id}')/federatedIdentityCredentials/$entity"
                    )),
                    fic,
                ))
            }
            (["federatedIdentityCredentials", fid], &Method::GET) => {
                let fic = self
                    .docs
                    .get(API, FIC, &format!("{id}|{fid}"))
                    .await?
                    .ok_or_else(|| not_found(fid))?;
                Ok(entity(
                    StatusCode::OK,
                    &self.context(&format!(
                        "applications('{id}')/federatedIdentityCredentials/$entity"
                    )),
                    fic,
                ))
            }
            (["federatedIdentityCredentials", fid], &Method::PATCH) => {
                let key = format!("{id}|{fid}");
                let mut fic = self
                    .docs
                    .get(API, FIC, &key)
                    .await?
                    .ok_or_else(|| not_found(fid))?;
                let patch = object(body)?;
                if patch.get("name").is_some_and(|n| *n != fic["name"]) {
                    return Err(bad_request(
                        "Property 'name' is read-only and cannot be set.",
                    ));
                }
                if patch.get("audiences").is_some_and(|a| {
                    !a.as_array()
                        .is_some_and(|a| a.len() == 1 && a[0].is_string())
                }) {
                    return Err(bad_request(
                        "Property 'audiences' must hold exactly one audience.",
                    ));
                }
                for (k, v) in patch.as_object().expect("an object") {
                    if k != "id" {
                        fic[k] = v.clone();
                    }
                }
                let others = self.docs.values(API, FIC, &format!("{id}|")).await?;
                if others.iter().any(|f| {
                    f["id"] != fic["id"]
                        && f["issuer"] == fic["issuer"]
                        && f["subject"] == fic["subject"]
                }) {
                    return Err(GraphError::new(
                        StatusCode::CONFLICT,
                        "Request_MultipleObjectsWithSameKeyValue",
                        "FederatedIdentityCredential with the same issuer and subject already exists.",
                    ));
                }
                self.docs.put(API, FIC, &key, &fic).await?;
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            (["federatedIdentityCredentials", fid], &Method::DELETE) => {
                if !self.docs.delete(API, FIC, &format!("{id}|{fid}")).await? {
                    return Err(not_found(fid));
                }
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            _ => Err(bad_request("Unsupported request.")),
        }
    }

    async fn group_item(
        &self,
        method: &Method,
        id: &str,
        rest: &[&str],
        body: &[u8],
    ) -> GraphResult {
        let group = self
            .docs
            .get(API, GROUP, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        let kind = |relation: &str| if relation == "owners" { OWNER } else { MEMBER };
        match (rest, method) {
            ([], &Method::GET) => Ok(entity(
                StatusCode::OK,
                &self.context("groups/$entity"),
                group,
            )),
            ([], &Method::PATCH) => {
                let mut group = group;
                for (k, v) in object(body)?.as_object().expect("an object") {
                    if !["id", "createdDateTime"].contains(&k.as_str()) {
                        group[k] = v.clone();
                    }
                }
                self.docs.put(API, GROUP, id, &group).await?;
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            ([], &Method::DELETE) => {
                self.docs.delete(API, GROUP, id).await?;
                // Its references go with it.
                self.docs
                    .delete_prefix(API, &[MEMBER, OWNER], &format!("{id}|"))
                    .await?;
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            ([relation @ ("members" | "owners")], &Method::GET) => {
                let mut value = Vec::new();
                for (_, m) in self
                    .docs
                    .list(API, kind(relation), &format!("{id}|"))
                    .await?
                {
                    let member_id = m["id"].as_str().unwrap_or_default();
                    if let Some(mut user) = self.docs.get(API, USER, member_id).await? {
                        user["@odata.type"] = json!("#microsoft.graph.user");
                        value.push(user);
                    } else if let Some(mut sp) =
                        self.docs.get(API, SERVICE_PRINCIPAL, member_id).await?
                    {
                        sp["@odata.type"] = json!("#microsoft.graph.servicePrincipal");
                        value.push(sp);
                    } else {
                        value.push(json!({"@odata.type": "#microsoft.graph.directoryObject", "id": m["id"]}));
                    }
                }
                Ok(entity(
                    StatusCode::OK,
                    &self.context("directoryObjects"),
                    json!({ "value": value }),
                ))
            }
            ([relation @ ("members" | "owners"), "$ref"], &Method::POST) => {
                let request = object(body)?;
                let target = request["@odata.id"]
                    .as_str()
                    .and_then(|u| u.rsplit('/').next())
                    .ok_or_else(|| bad_request("Property '@odata.id' is required."))?;
                let exists = self
                    .docs
                    .get(API, SERVICE_PRINCIPAL, target)
                    .await?
                    .is_some()
                    || self.docs.get(API, USER, target).await?.is_some();
                if !exists {
                    return Err(not_found(target));
                }
                let inserted = self
                    .docs
                    .insert_new(
                        API,
                        kind(relation),
                        &format!("{id}|{target}"),
                        &json!({"id": target}),
                    )
                    .await?;
                if !inserted {
                    return Err(bad_request(
                        "One or more added object references already exist for the following modified properties: 'members'.",
                    ));
                }
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            ([relation @ ("members" | "owners"), member, "$ref"], &Method::DELETE) => {
                if !self
                    .docs
                    .delete(API, kind(relation), &format!("{id}|{member}"))
                    .await?
                {
                    return Err(not_found(member));
                }
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            _ => Err(bad_request("Unsupported request.")),
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

/// The directory's users.
pub(crate) async fn users(docs: &Documents) -> Result<Vec<Value>, SandboxError> {
    docs.values(API, USER, "").await
}

/// The directory user with this object id.
pub(crate) async fn user(docs: &Documents, id: &str) -> Result<Option<Value>, SandboxError> {
    docs.get(API, USER, id).await
}

/// Creates a directory user `{login}@USER_DOMAIN` (for the control API and demos; the
/// platform identity can also create users through `POST /users`).
pub(crate) async fn create_user(docs: &Documents, login: &str) -> Result<Value, SandboxError> {
    let upn = format!("{login}@{USER_DOMAIN}");
    if let Some((_, existing)) = docs.list(API, USER, "").await?.into_iter().find(|(_, u)| {
        u["userPrincipalName"]
            .as_str()
            .is_some_and(|x| x.eq_ignore_ascii_case(&upn))
    }) {
        return Ok(existing);
    }
    let id = uuid_v4();
    let user = json!({
        "id": id,
        "accountEnabled": true,
        "displayName": login,
        "mailNickname": login,
        "mail": upn,
        "userPrincipalName": upn,
    });
    docs.put(API, USER, &id, &user).await?;
    docs.put(API, PRINCIPAL_BORN, &id, &json!({ "atMs": now_ms() }))
        .await?;
    Ok(user)
}
