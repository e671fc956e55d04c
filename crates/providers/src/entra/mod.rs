//! Entra ID over Microsoft Graph: security groups with members and owners, applications
//! (idempotent by `uniqueName`), service principals and federated identity credentials.
//!
//! Graph is eventually consistent: an object just created may be missing from the next
//! request for a while, so what follows a create retries a 404 for [`CONSISTENCY`].
//! Every create is idempotent by natural key (`uniqueName`, `appId`, a credential's name,
//! a group's `displayName` + `mailNickname`), so a retried or crashed create is adopted,
//! never duplicated. No password is ever created: environments sign in by federation.

mod application;
mod federated;
mod group;

use std::sync::Arc;
use std::time::Duration;

use paddock_engine::{Props, ProviderError, Value};
use serde_json::Value as Json;

use crate::family::Family;
use crate::http::auth::{EntraSignIn, EntraToken};
use crate::http::{Api, Call, HttpClient, HttpError, reqwest_client};

/// How to reach a tenant's directory.
#[derive(Clone)]
pub struct EntraConfig {
    /// Graph's root: `https://graph.microsoft.com/v1.0`.
    pub graph_url: String,
    pub tenant_id: String,
    pub sign_in: Arc<EntraSignIn>,
    /// The domain of the directory's users: a bare person name `ada` in a group's members
    /// means `ada@{user_domain}`.
    pub user_domain: Option<String>,
    /// A CA to trust besides the system's (the sandbox's), PEM.
    pub ca_pem: Option<Vec<u8>>,
}

/// The Entra ID provider: `entra:group`, `entra:application`, `entra:servicePrincipal`
/// and `entra:federatedCredential`.
// The error is the shared HTTP layer's, as every provider's constructor returns it.
pub fn provider(config: &EntraConfig) -> Result<Family, HttpError> {
    let credential = EntraToken {
        sign_in: config.sign_in.clone(),
        scope: "https://graph.microsoft.com/.default".to_owned(),
    };
    let http = HttpClient::new(
        reqwest_client(config.ca_pem.as_deref(), None)?,
        Api::Graph,
        &config.graph_url,
        Arc::new(credential),
    );
    let directory = Arc::new(Directory {
        graph_url: http.base().to_owned(),
        tenant_id: config.tenant_id.clone(),
        http,
        user_domain: config
            .user_domain
            .as_deref()
            .map(|d| d.trim_start_matches('@').to_owned())
            .filter(|d| !d.is_empty()),
    });
    Ok(Family::new(
        "entra",
        vec![
            Box::new(group::Group(directory.clone())),
            Box::new(application::Application(directory.clone())),
            Box::new(application::ServicePrincipal(directory.clone())),
            Box::new(federated::FederatedCredential(directory)),
        ],
    ))
}

/// How long a request that follows a create retries Graph's 404 (the object has not yet
/// replicated).
pub(crate) const CONSISTENCY: Duration = Duration::from_secs(30);

/// The directory: one Graph client shared by the resource types.
pub(crate) struct Directory {
    http: HttpClient,
    /// Graph's root, as `@odata.id` references name objects.
    graph_url: String,
    /// Where the directory's objects are, for the messages that name them.
    tenant_id: String,
    user_domain: Option<String>,
}

impl Directory {
    async fn send(&self, call: Call) -> Result<crate::http::Reply, HttpError> {
        self.http.send(call).await
    }

    /// Every item of a collection, following `@odata.nextLink`.
    async fn list_all(&self, call: Call) -> Result<Vec<Json>, HttpError> {
        let template = call.template;
        let mut page = self.send(call).await?.body;
        let mut items = Vec::new();
        loop {
            if let Some(values) = page["value"].as_array() {
                items.extend(values.iter().cloned());
            }
            match page["@odata.nextLink"].as_str() {
                Some(next) => page = self.send(Call::get(template, next)).await?.body,
                None => return Ok(items),
            }
        }
    }

    /// Where an object of the directory is, for a conflict.
    fn place(&self, ty: &str, name: String, id: String) -> crate::ownership::Place {
        crate::ownership::Place {
            ty: ty.into(),
            name,
            location: format!("tenant `{}`", self.tenant_id),
            id,
        }
    }

    /// `@odata.id` of a directory object, for `$ref` requests.
    fn reference(&self, object_id: &str) -> Json {
        serde_json::json!({
            "@odata.id": format!("{}/directoryObjects/{object_id}", self.graph_url)
        })
    }
}

/// An OData string literal: quoted, a quote inside doubled.
pub(crate) fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// An alternate-key segment, `applications(uniqueName='…')`, percent-encoded for a path.
pub(crate) fn keyed(collection: &str, key: &str, value: &str) -> String {
    format!("/{collection}({key}={})", segment(&literal(value)))
}

/// Percent-encodes a path segment, leaving what Graph's keys and user names use.
pub(crate) fn segment(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'\'' | b'@' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A `$filter` of `property eq 'value'` clauses joined by `and`.
pub(crate) fn filter(clauses: &[(&str, &str)]) -> String {
    clauses
        .iter()
        .map(|(property, value)| format!("{property} eq {}", literal(value)))
        .collect::<Vec<_>>()
        .join(" and ")
}

/// Whether `s` is an object id (a GUID).
pub(crate) fn is_object_id(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A string property of a Graph entity.
pub(crate) fn text(entity: &Json, name: &str) -> String {
    entity[name].as_str().unwrap_or_default().to_owned()
}

/// A provider error for `what`, keeping Graph's code.
pub(crate) fn failed(what: &str, e: HttpError) -> ProviderError {
    let mut error = ProviderError::from(e);
    error.message = format!("{what}: {}", error.message);
    error
}

/// Whether an input is set (neither absent nor null).
pub(crate) fn is_set(inputs: &Props, name: &str) -> bool {
    !matches!(inputs.get(name), None | Some(Value::Null))
}

/// A list of strings as a value.
pub(crate) fn string_list(items: &[String]) -> Value {
    Value::List(items.iter().map(|s| Value::String(s.clone())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_filters_are_odata_literals() {
        assert_eq!(
            keyed("applications", "uniqueName", "o'brien x/y"),
            "/applications(uniqueName='o''brien%20x%2Fy')"
        );
        assert_eq!(
            filter(&[("displayName", "team's"), ("mailNickname", "teams")]),
            "displayName eq 'team''s' and mailNickname eq 'teams'"
        );
    }

    #[test]
    fn object_ids_are_guids() {
        assert!(is_object_id("0f8fad5b-d9cb-469f-a165-70867728950e"));
        assert!(!is_object_id("ada"));
        assert!(!is_object_id("0f8fad5b-d9cb-469f-a165-70867728950"));
        assert!(!is_object_id("0f8fad5b-d9cb-469f-a165-70867728950g"));
    }
}
