//! The Entra ID token endpoint (`/{tenant}/oauth2/v2.0/token`: client credentials with a
//! client secret or a federated assertion, and the authorization code grant), the
//! authorize endpoint (`/{tenant}/oauth2/v2.0/authorize`: OpenID Connect sign-in of a
//! directory user, PKCE S256 required), and the OpenID Connect discovery document and
//! keys, as MSAL-based clients expect them. Errors carry Entra's `AADSTS` codes.
//!
//! Sign-in needs no password: `login_hint=<userPrincipalName>` signs that user in at once
//! (scripts and tests), otherwise a page lists the directory's users to pick from.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::documents::Documents;
use crate::graph;
use crate::tokens::Signer;
use crate::{Identity, SandboxError, now_ms, percent_decode, rfc3339, uuid_v4};

/// Lifetime of the tokens the sandbox issues, in seconds.
pub const TOKEN_LIFETIME_SECS: i64 = 3599;

pub(crate) struct Entra {
    pub docs: Documents,
    pub identity: Identity,
    pub signer: Arc<Signer>,
    pub base_url: String,
    /// Authorization codes issued and not yet expired.
    pub codes: crate::signin::Codes,
}

/// An application's credentials, as the sandbox hands them out.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppCredentials {
    pub client_id: String,
    pub client_secret: String,
    /// The object id of its service principal: what role assignments name.
    pub object_id: String,
}

/// Registers an application with a service principal and a client secret, in the Graph
/// directory.
pub(crate) async fn register_app(
    docs: &Documents,
    display_name: &str,
) -> Result<AppCredentials, SandboxError> {
    let app = graph::create_application(docs, json!({ "displayName": display_name })).await?;
    let id = app["id"].as_str().unwrap_or_default();
    let password = graph::add_password(docs, id, "sandbox").await?;
    let sp = graph::create_service_principal(docs, &app).await?;
    Ok(AppCredentials {
        client_id: app["appId"].as_str().unwrap_or_default().to_owned(),
        client_secret: password["secretText"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        object_id: sp["id"].as_str().unwrap_or_default().to_owned(),
    })
}

/// The issuer of the sandbox's tokens for a tenant.
pub(crate) fn issuer(base_url: &str, tenant: &str) -> String {
    format!("{base_url}/{tenant}/v2.0")
}

impl Entra {
    /// An error of the token endpoint, as Entra shapes it: the `AADSTS` code in
    /// `error_description` (followed by the trace ids and time), `error_codes`, and
    /// `error_uri`, a page about the code.
    fn aad_error(&self, status: StatusCode, error: &str, code: u32, description: &str) -> Response {
        let (trace_id, correlation_id, timestamp) = (uuid_v4(), uuid_v4(), rfc3339(now_ms()));
        let body = json!({
            "error": error,
            "error_description": format!(
                "AADSTS{code}: {description} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {timestamp}"
            ),
            "error_codes": [code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("{}{ERROR_PAGE}?code={code}", self.base_url),
        });
        (status, axum::Json(body)).into_response()
    }
}

/// Where `error_uri` points: a page about an `AADSTS` code.
pub(crate) const ERROR_PAGE: &str = "/error";

/// `GET /error?code=N`: what `error_uri` names.
pub(crate) async fn error_page(uri: axum::http::Uri) -> Response {
    let code: String = crate::arm::query_param(&uri, "code")
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>AADSTS{code}</title></head><body>\
         <h1>Error code AADSTS{code}</h1><p>The sandbox's token endpoint refused a request with this code; \
         the response's <code>error_description</code> says why.</p></body></html>"
    );
    axum::response::Html(html).into_response()
}

/// Parses an `application/x-www-form-urlencoded` body.
fn form(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

pub(crate) async fn token(
    State(entra): State<Arc<Entra>>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Response {
    if !tenant.eq_ignore_ascii_case(&entra.identity.tenant_id) {
        return entra.aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        );
    }
    let params = form(&body);
    match params
        .iter()
        .find(|(k, _)| k == "grant_type")
        .map(|(_, v)| v.as_str())
    {
        Some("client_credentials") => client_credentials(&entra, &tenant, &params).await,
        Some("authorization_code") => entra.authorization_code(&params).await,
        _ => entra.aad_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        ),
    }
}

async fn client_credentials(entra: &Entra, tenant: &str, params: &[(String, String)]) -> Response {
    let get = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let Some(client_id) = get("client_id") else {
        return entra.aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    };
    let Some(scope) = get("scope") else {
        return entra.aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        );
    };
    let Some(resource) = scope.split(' ').find_map(|s| s.strip_suffix("/.default")) else {
        return entra.aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            &format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        );
    };
    let found = async {
        let app = graph::application_by_app_id(&entra.docs, client_id).await?;
        let sp = graph::service_principal_by_app_id(&entra.docs, client_id).await?;
        Ok::<_, SandboxError>((app, sp))
    };
    let (app, sp) = match found.await {
        Ok(found) => found,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let Some(app) = app else {
        return entra.aad_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
            ),
        );
    };
    // The client proves itself with a secret, or with an assertion from a trusted issuer
    // that one of its federated identity credentials names exactly.
    let proof = match (
        get("client_secret"),
        get("client_assertion_type"),
        get("client_assertion"),
    ) {
        (Some(secret), _, _) => match graph::secret_matches(&entra.docs, client_id, secret).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(entra.aad_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app.",
            )),
            Err(e) => Err((StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()),
        },
        (None, Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"), Some(assertion)) => {
            entra.check_assertion(&app, assertion).await
        }
        _ => Err(entra.aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )),
    };
    if let Err(refusal) = proof {
        return refusal;
    }
    let Some(sp) = sp else {
        return entra.aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            7000229,
            &format!(
                "The client application {client_id} is missing service principal in the tenant {tenant}."
            ),
        );
    };
    match entra.knows_resource(resource).await {
        Ok(true) => {}
        Ok(false) => {
            return entra.aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_resource",
                500011,
                &format!(
                    "The resource principal named {resource} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
                ),
            );
        }
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
    let now = now_ms() / 1000;
    let claims = json!({
        "aud": resource,
        "iss": issuer(&entra.base_url, &entra.identity.tenant_id),
        "iat": now,
        "nbf": now,
        "exp": now + TOKEN_LIFETIME_SECS,
        "appid": client_id,
        "azp": client_id,
        "oid": sp["id"],
        "sub": sp["id"],
        "tid": entra.identity.tenant_id,
        "idtyp": "app",
        "ver": "2.0",
    });
    let body: Value = json!({
        "token_type": "Bearer",
        "expires_in": TOKEN_LIFETIME_SECS,
        "ext_expires_in": TOKEN_LIFETIME_SECS,
        "access_token": entra.signer.sign(&claims),
    });
    axum::Json(body).into_response()
}

impl Entra {
    /// Whether the tenant has a resource principal named `resource` (a scope without its
    /// `/.default`): Azure Resource Manager, Microsoft Graph (public or the sandbox's own
    /// root), or a registered application, by client id or identifier URI.
    async fn knows_resource(&self, resource: &str) -> Result<bool, SandboxError> {
        if crate::arm::ARM_AUDIENCES.contains(&resource)
            || graph::is_audience(&self.base_url, resource)
        {
            return Ok(true);
        }
        Ok(graph::application_by_identifier(&self.docs, resource)
            .await?
            .is_some())
    }

    /// Accepts a client assertion signed by a trusted issuer (the sandbox's GitHub Actions
    /// issuer) if one of the application's federated credentials matches its issuer,
    /// subject and audience exactly — the check that keeps a test workflow from acting as
    /// prod.
    async fn check_assertion(&self, app: &Value, assertion: &str) -> Result<(), Response> {
        let claims = match self.signer.verify(assertion, now_ms() / 1000) {
            Ok(claims) => claims,
            Err(crate::tokens::TokenError::Expired) => {
                return Err(self.aad_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_client",
                    700024,
                    "Client assertion is not within its valid time range.",
                ));
            }
            Err(_) => {
                return Err(self.aad_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    50027,
                    "JWT token is invalid or malformed.",
                ));
            }
        };
        let (issuer, subject) = (
            claims["iss"].as_str().unwrap_or_default(),
            claims["sub"].as_str().unwrap_or_default(),
        );
        let audience = claims["aud"].as_str().unwrap_or_default();
        if issuer != crate::actions::issuer(&self.base_url) {
            return Err(self.aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                700211,
                &format!(
                    "No matching federated identity record found for presented assertion issuer '{issuer}'."
                ),
            ));
        }
        let app_id = app["appId"].as_str().unwrap_or_default();
        let credentials = graph::federated_credentials(&self.docs, app_id)
            .await
            .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response())?;
        let matched = credentials.iter().any(|f| {
            f["issuer"] == json!(issuer)
                && f["subject"] == json!(subject)
                && f["audiences"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x == audience))
        });
        if matched {
            Ok(())
        } else {
            Err(self.aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                70021,
                &format!(
                    "No matching federated identity record found for presented assertion. Assertion Issuer: '{issuer}'. Assertion Subject: '{subject}'. Assertion Audience: '{audience}'."
                ),
            ))
        }
    }
}

pub(crate) async fn discovery(
    State(entra): State<Arc<Entra>>,
    Path(tenant): Path<String>,
) -> Response {
    let base = format!("{}/{tenant}", entra.base_url);
    axum::Json(json!({
        "issuer": issuer(&entra.base_url, &tenant),
        "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
        "token_endpoint": format!("{base}/oauth2/v2.0/token"),
        "jwks_uri": format!("{base}/discovery/v2.0/keys"),
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "tenant_region_scope": "EU",
        "cloud_instance_name": "paddock.sandbox",
    }))
    .into_response()
}

pub(crate) async fn keys(State(entra): State<Arc<Entra>>) -> Response {
    axum::Json(entra.signer.jwks()).into_response()
}

/// An error the authorize endpoint cannot send back to the client (unknown tenant or
/// application, a redirect URI not registered): Entra shows it to the person instead.
fn sign_in_error_page(code: u32, description: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sign in</title></head><body>\
         <h1>Sorry, but we're having trouble signing you in.</h1><p>AADSTS{code}: {}</p></body></html>",
        crate::signin::escape(description)
    );
    (StatusCode::BAD_REQUEST, axum::response::Html(html)).into_response()
}

/// `GET /{tenant}/oauth2/v2.0/authorize`: the OpenID Connect authorization code flow.
/// Errors about the client or the redirect URI are shown as a page (never sent to an
/// unregistered address); the others go back to `redirect_uri` with `error`,
/// `error_description` and `state`, as Entra sends them.
pub(crate) async fn authorize(
    State(entra): State<Arc<Entra>>,
    Path(tenant): Path<String>,
    uri: axum::http::Uri,
) -> Response {
    use crate::signin::{get, pairs, redirect, with_query};
    if !tenant.eq_ignore_ascii_case(&entra.identity.tenant_id) {
        return sign_in_error_page(90002, &format!("Tenant '{tenant}' not found."));
    }
    let query = pairs(uri.query().unwrap_or_default());
    let Some(client_id) = get(&query, "client_id") else {
        return sign_in_error_page(
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    };
    let app = match graph::application_by_app_id(&entra.docs, client_id).await {
        Ok(app) => app,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let Some(app) = app else {
        return sign_in_error_page(
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant."
            ),
        );
    };
    let Some(redirect_uri) = get(&query, "redirect_uri") else {
        return sign_in_error_page(
            900144,
            "The request body must contain the following parameter: 'redirect_uri'.",
        );
    };
    // Compared exactly, as Entra does for web redirect URIs.
    let registered = app["web"]["redirectUris"]
        .as_array()
        .is_some_and(|uris| uris.iter().any(|u| u.as_str() == Some(redirect_uri)));
    if !registered {
        return sign_in_error_page(
            50011,
            &format!(
                "The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application '{client_id}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal."
            ),
        );
    }
    let state = get(&query, "state");
    let refuse = |error: &str, code: u32, description: &str| {
        let description = format!("AADSTS{code}: {description}");
        let mut params = vec![
            ("error", error),
            ("error_description", description.as_str()),
        ];
        if let Some(state) = state {
            params.push(("state", state));
        }
        redirect(&with_query(redirect_uri, &params))
    };
    let response_type = get(&query, "response_type").unwrap_or_default();
    if response_type != "code" {
        return refuse(
            "unsupported_response_type",
            700054,
            &format!(
                "response_type '{response_type}' is not enabled for the application. The sandbox serves the authorization code flow (response_type=code)."
            ),
        );
    }
    if get(&query, "response_mode").is_some_and(|m| m != "query") {
        return refuse(
            "invalid_request",
            70011,
            "The provided value for the input parameter 'response_mode' is not valid. The sandbox answers with response_mode=query.",
        );
    }
    let Some(scope) = get(&query, "scope") else {
        return refuse(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        );
    };
    if !scope.split(' ').any(|s| s == "openid") {
        return refuse(
            "invalid_scope",
            70011,
            &format!(
                "The provided value for the input parameter 'scope' is not valid. The scope '{scope}' does not include 'openid', which sign-in requires."
            ),
        );
    }
    let Some(challenge) = get(&query, "code_challenge") else {
        return refuse(
            "invalid_request",
            9002325,
            "Proof Key for Code Exchange is required for authorization code redemption: send code_challenge and code_challenge_method=S256.",
        );
    };
    // RFC 7636: the method defaults to `plain`, which this tenant does not accept.
    if get(&query, "code_challenge_method") != Some("S256") {
        return refuse(
            "invalid_request",
            70011,
            "The provided value for the input parameter 'code_challenge_method' is not valid. Expected 'S256'.",
        );
    }
    let well_formed = challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed {
        return refuse(
            "invalid_request",
            70011,
            "The provided value for the input parameter 'code_challenge' is not valid: an S256 challenge is 43 base64url characters.",
        );
    }
    let users = match graph::users(&entra.docs).await {
        Ok(users) => users,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let upn = |u: &Value| {
        u["userPrincipalName"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let people: Vec<(String, String)> = users
        .iter()
        .filter(|u| u["accountEnabled"] != json!(false))
        .map(|u| {
            let label = format!(
                "{} ({})",
                u["displayName"].as_str().unwrap_or_default(),
                upn(u)
            );
            (upn(u), label)
        })
        .collect();
    let Some(hint) = get(&query, "login_hint") else {
        return crate::signin::picker(
            "Sign in to the sandbox tenant",
            None,
            &query,
            "login_hint",
            &people,
        );
    };
    let Some(user) = users.iter().find(|u| upn(u).eq_ignore_ascii_case(hint)) else {
        let notice = format!(
            "AADSTS50034: The user account {hint} does not exist in the '{tenant}' directory. To sign into this application, the account must be added to the directory."
        );
        return crate::signin::picker(
            "Sign in to the sandbox tenant",
            Some(&notice),
            &query,
            "login_hint",
            &people,
        );
    };
    if user["accountEnabled"] == json!(false) {
        return refuse("access_denied", 50057, "The user account is disabled.");
    }
    let code = entra.codes.issue(crate::signin::Grant {
        client_id: app["appId"].as_str().unwrap_or(client_id).to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        code_challenge: Some(challenge.to_owned()),
        user: user["id"].as_str().unwrap_or_default().to_owned(),
        nonce: get(&query, "nonce").map(str::to_owned),
        scope: scope.to_owned(),
        issued_ms: now_ms(),
    });
    let session = uuid_v4();
    let mut params = vec![("code", code.as_str())];
    if let Some(state) = state {
        params.push(("state", state));
    }
    params.push(("session_state", session.as_str()));
    redirect(&with_query(redirect_uri, &params))
}

impl Entra {
    /// `grant_type=authorization_code`: redeems a code from the authorize endpoint for an
    /// ID token (and a Graph access token), checking the code is this client's, unspent,
    /// unexpired, for the same redirect URI, and that `code_verifier` answers its PKCE
    /// challenge.
    async fn authorization_code(&self, params: &[(String, String)]) -> Response {
        use crate::signin::Redeem;
        let get = |k: &str| crate::signin::get(params, k);
        let missing = |name: &str| {
            self.aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
                &format!("The request body must contain the following parameter: '{name}'."),
            )
        };
        let Some(client_id) = get("client_id") else {
            return missing("client_id");
        };
        let Some(code) = get("code") else {
            return missing("code");
        };
        let Some(redirect_uri) = get("redirect_uri") else {
            return missing("redirect_uri");
        };
        let Some(verifier) = get("code_verifier") else {
            return missing("code_verifier");
        };
        let app = match graph::application_by_app_id(&self.docs, client_id).await {
            Ok(app) => app,
            Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        };
        let Some(app) = app else {
            return self.aad_error(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                700016,
                &format!(
                    "Application with identifier '{client_id}' was not found in the directory '{}'.",
                    self.identity.tenant_id
                ),
            );
        };
        let app_id = app["appId"].as_str().unwrap_or(client_id).to_owned();
        // A confidential client may authenticate; if it does, the secret must be right.
        if let Some(secret) = get("client_secret") {
            match graph::secret_matches(&self.docs, &app_id, secret).await {
                Ok(true) => {}
                Ok(false) => {
                    return self.aad_error(
                        StatusCode::UNAUTHORIZED,
                        "invalid_client",
                        7000215,
                        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app.",
                    );
                }
                Err(e) => {
                    return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
                }
            }
        }
        let invalid_grant = |code: u32, description: &str| {
            self.aad_error(StatusCode::BAD_REQUEST, "invalid_grant", code, description)
        };
        let grant = match self.codes.redeem(code) {
            Ok(grant) => grant,
            Err(Redeem::Unknown) => {
                return invalid_grant(70000, "Provided grant is invalid or malformed.");
            }
            Err(Redeem::Expired) => {
                return invalid_grant(
                    70008,
                    "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.",
                );
            }
            Err(Redeem::AlreadyRedeemed) => {
                return invalid_grant(
                    54005,
                    "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
                );
            }
        };
        if !grant.client_id.eq_ignore_ascii_case(&app_id) {
            return invalid_grant(
                70000,
                "Provided grant is invalid or malformed: the code was issued to another application.",
            );
        }
        if grant.redirect_uri != redirect_uri {
            return invalid_grant(
                500112,
                &format!(
                    "The reply address '{redirect_uri}' does not match the reply address '{}' provided when requesting Authorization code.",
                    grant.redirect_uri
                ),
            );
        }
        let challenge = grant.code_challenge.as_deref().unwrap_or_default();
        if !crate::signin::verifier_matches(verifier, challenge) {
            return invalid_grant(
                501481,
                "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
            );
        }
        let user = match graph::user(&self.docs, &grant.user).await {
            Ok(Some(user)) => user,
            Ok(None) => {
                return invalid_grant(
                    50034,
                    &format!(
                        "The user account does not exist in the '{}' directory.",
                        self.identity.tenant_id
                    ),
                );
            }
            Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        };
        axum::Json(self.sign_in_tokens(&app_id, &grant, &user)).into_response()
    }

    /// The token response of a sign-in: an ID token for the client and an access token
    /// for Graph. Which claims the ID token carries follows the scopes, as in Entra:
    /// `name` and `preferred_username` need `profile`, `email` needs `email` (and a mail
    /// address on the user).
    fn sign_in_tokens(&self, client_id: &str, grant: &crate::signin::Grant, user: &Value) -> Value {
        let scopes: Vec<&str> = grant.scope.split(' ').filter(|s| !s.is_empty()).collect();
        let oid = user["id"].as_str().unwrap_or_default();
        let tenant = &self.identity.tenant_id;
        // Entra's `sub` is pairwise: the same person has a different subject in each app.
        let sub = {
            use base64::Engine as _;
            use sha2::Digest as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(
                format!("{oid}|{client_id}").as_bytes(),
            ))
        };
        let now = now_ms() / 1000;
        let mut id_claims = json!({
            "aud": client_id,
            "iss": issuer(&self.base_url, tenant),
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME_SECS,
            "sub": sub,
            "oid": oid,
            "tid": tenant,
            "ver": "2.0",
            "uti": crate::new_id(),
        });
        if let Some(nonce) = &grant.nonce {
            id_claims["nonce"] = json!(nonce);
        }
        if scopes.contains(&"profile") {
            id_claims["name"] = user["displayName"].clone();
            id_claims["preferred_username"] = user["userPrincipalName"].clone();
        }
        if scopes.contains(&"email")
            && let Some(mail) = user["mail"].as_str()
        {
            id_claims["email"] = json!(mail);
        }
        let access_claims = json!({
            "aud": "00000003-0000-0000-c000-000000000000",
            "iss": issuer(&self.base_url, tenant),
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME_SECS,
            "appid": client_id,
            "azp": client_id,
            "oid": oid,
            "sub": sub,
            "tid": tenant,
            "upn": user["userPrincipalName"],
            "scp": "openid profile email User.Read",
            "idtyp": "user",
            "ver": "2.0",
        });
        let mut granted: Vec<&str> = ["openid", "profile", "email", "offline_access"]
            .into_iter()
            .filter(|s| scopes.contains(s))
            .collect();
        granted.push("https://graph.microsoft.com/User.Read");
        json!({
            "token_type": "Bearer",
            "scope": granted.join(" "),
            "expires_in": TOKEN_LIFETIME_SECS,
            "ext_expires_in": TOKEN_LIFETIME_SECS,
            "access_token": self.signer.sign(&access_claims),
            "id_token": self.signer.sign(&id_claims),
        })
    }
}
