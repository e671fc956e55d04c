//! The directory's entities as the rest of the sandbox reaches them, beneath Graph's API:
//! registering applications with passwords and service principals, finding them by client
//! id or identifier, checking secrets, reading federated credentials, and its users.

use super::*;

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
