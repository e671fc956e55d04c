//! The Entra ID token endpoint (`/{tenant}/oauth2/v2.0/token`, client credentials with a
//! client secret) and its OpenID Connect discovery document and keys, as MSAL-based
//! clients expect them. Errors carry Entra's `AADSTS` codes.

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

fn aad_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {description}"),
        "error_codes": [code],
        "timestamp": rfc3339(now_ms()),
        "trace_id": uuid_v4(),
        "correlation_id": uuid_v4(),
    });
    (status, axum::Json(body)).into_response()
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
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        );
    }
    let params = form(&body);
    let get = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    if get("grant_type") != Some("client_credentials") {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type. Use client_credentials.",
        );
    }
    let Some(client_id) = get("client_id") else {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    };
    let Some(scope) = get("scope") else {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        );
    };
    let Some(resource) = scope.split(' ').find_map(|s| s.strip_suffix("/.default")) else {
        return aad_error(
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
        return aad_error(
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
            Ok(false) => Err(aad_error(
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
        _ => Err(aad_error(
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
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            7000229,
            &format!(
                "The client application {client_id} is missing service principal in the tenant {tenant}."
            ),
        );
    };
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
    /// Accepts a client assertion signed by a trusted issuer (the sandbox's GitHub Actions
    /// issuer) if one of the application's federated credentials matches its issuer,
    /// subject and audience exactly — the check that keeps a test workflow from acting as
    /// prod.
    async fn check_assertion(&self, app: &Value, assertion: &str) -> Result<(), Response> {
        let claims = match self.signer.verify(assertion, now_ms() / 1000) {
            Ok(claims) => claims,
            Err(crate::tokens::TokenError::Expired) => {
                return Err(aad_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_client",
                    700024,
                    "Client assertion is not within its valid time range.",
                ));
            }
            Err(_) => {
                return Err(aad_error(
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
            return Err(aad_error(
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
            Err(aad_error(
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
