//! `entra:federatedCredential`: a trust on an application for tokens of another issuer
//! with exactly this subject (a GitHub Actions environment, a Kubernetes service account).
//! Its id is `applicationObjectId/credentialId`.

use std::sync::Arc;

use async_trait::async_trait;
use paddock_engine::provider::{
    Created, PropertySchema, PropertyType, ReadResult, ResourceRef, TypeSchema,
};
use paddock_engine::{Props, ProviderError, Value};
use serde_json::{Value as Json, json};

use super::{CONSISTENCY, Directory, failed, is_set, segment, string_list, text};
use crate::family::{PropsExt, ResourceType, found, gone_ok, props};
use crate::http::Call;
use crate::ownership::{self, Mark, Owner};

/// The audience Entra ID expects in a token it exchanges.
const DEFAULT_AUDIENCE: &str = "api://AzureADTokenExchange";

pub(crate) struct FederatedCredential(pub Arc<Directory>);

fn audiences(inputs: &Props) -> Vec<String> {
    if is_set(inputs, "audiences") {
        inputs.strings("audiences")
    } else {
        vec![DEFAULT_AUDIENCE.to_owned()]
    }
}

/// `applicationObjectId/credentialId`.
fn split(id: &str) -> Result<(&str, &str), ProviderError> {
    id.split_once('/')
        .filter(|(app, cred)| !app.is_empty() && !cred.is_empty())
        .ok_or_else(|| {
            ProviderError::new(
                "InvalidId",
                format!("`{id}` is not a federated credential id: expected applicationObjectId/credentialId"),
            )
        })
}

fn collection(app: &str) -> String {
    format!(
        "/applications/{}/federatedIdentityCredentials",
        segment(app)
    )
}

fn item(app: &str, credential: &str) -> String {
    format!("{}/{}", collection(app), segment(credential))
}

fn created(app: &str, credential: &Json) -> Created {
    let credential_id = text(credential, "id");
    Created {
        id: format!("{app}/{credential_id}"),
        outputs: outputs(&credential_id),
    }
}

fn outputs(credential_id: &str) -> Props {
    props([("credentialId", Value::String(credential_id.to_owned()))])
}

/// What a credential trusts, as Graph takes it (the name, being fixed, apart), with the
/// mark of `r` ending its description (credentials have no tags).
fn trust(inputs: &Props, r: &ResourceRef<'_>) -> Result<Json, ProviderError> {
    Ok(json!({
        "issuer": inputs.text("issuer")?,
        "subject": inputs.text("subject")?,
        "audiences": audiences(inputs),
        "description": Mark::of(r).append_to(inputs.opt_text("description").as_deref()),
    }))
}

/// Who made a credential, by the mark ending its description.
fn owner(credential: &Json) -> Owner {
    ownership::owner_in_text(credential["description"].as_str())
}

impl FederatedCredential {
    /// The credential `app/credential`, if it exists.
    async fn get(&self, app: &str, credential: &str) -> Result<Option<Json>, ProviderError> {
        Ok(found(
            self.0
                .send(Call::get(
                    "/applications/{id}/federatedIdentityCredentials/{credentialId}",
                    item(app, credential),
                ))
                .await,
        )
        .map_err(|e| {
            failed(
                &format!("reading federated credential {app}/{credential}"),
                e,
            )
        })?
        .map(|r| r.body))
    }

    /// The application's credential with this name, if both exist.
    async fn by_name(&self, app: &str, name: &str) -> Result<Option<Json>, ProviderError> {
        let listed = found(
            self.0
                .list_all(Call::get(
                    "/applications/{id}/federatedIdentityCredentials",
                    collection(app),
                ))
                .await,
        )
        .map_err(|e| {
            failed(
                &format!("listing the federated credentials of application {app}"),
                e,
            )
        })?;
        Ok(listed
            .unwrap_or_default()
            .into_iter()
            .find(|c| c["name"].as_str() == Some(name)))
    }

    async fn patch(&self, app: &str, credential: &str, body: Json) -> Result<(), ProviderError> {
        self.0
            .send(
                Call::patch(
                    "/applications/{id}/federatedIdentityCredentials/{credentialId}",
                    item(app, credential),
                )
                .json(body)
                .retry_not_found_for(CONSISTENCY),
            )
            .await
            .map_err(|e| {
                failed(
                    &format!("updating federated credential {app}/{credential}"),
                    e,
                )
            })?;
        Ok(())
    }
}

#[async_trait]
impl ResourceType for FederatedCredential {
    fn schema(&self) -> TypeSchema {
        TypeSchema {
            name: "entra:federatedCredential".into(),
            description: "A federated identity credential of an application: tokens from `issuer` whose subject is exactly `subject` sign in as the application, without any secret.".into(),
            inputs: vec![
                PropertySchema::new("application", PropertyType::String)
                    .required()
                    .replace_on_change()
                    .describe("The application's object id (`objectId` of an `entra:application`)."),
                PropertySchema::new("name", PropertyType::String)
                    .required()
                    .replace_on_change()
                    .describe("Unique among the application's credentials; immutable."),
                PropertySchema::new("issuer", PropertyType::String)
                    .required()
                    .describe("The token issuer, e.g. `https://token.actions.githubusercontent.com`."),
                PropertySchema::new("subject", PropertyType::String)
                    .required()
                    .describe("The exact subject trusted, e.g. `repo:ORG/REPO:environment:test`."),
                PropertySchema::new("audiences", PropertyType::List)
                    .describe("The audience the token must carry; by default `api://AzureADTokenExchange`."),
                PropertySchema::new("description", PropertyType::String),
            ],
            outputs: vec![PropertySchema::new("credentialId", PropertyType::String)
                .describe("The credential's id within its application.")],
        }
    }

    async fn create(&self, r: ResourceRef<'_>, inputs: &Props) -> Result<Created, ProviderError> {
        let app = inputs.text("application")?;
        let name = inputs.text("name")?;
        let mut body = trust(inputs, &r)?;
        body["name"] = json!(name);
        let result = self
            .0
            .send(
                Call::post(
                    "/applications/{id}/federatedIdentityCredentials",
                    collection(&app),
                )
                .json(body)
                // The application may have just been created.
                .retry_not_found_for(CONSISTENCY),
            )
            .await;
        match result {
            Ok(reply) => Ok(created(&app, &reply.body)),
            // A credential of that name exists: adopted, as given, if it is this stack's
            // (an earlier attempt's).
            Err(e) if e.status() == Some(409) => match self.by_name(&app, &name).await? {
                Some(existing) => {
                    let id = text(&existing, "id");
                    let place = self.0.place(
                        "entra:federatedCredential",
                        format!("{name} of application {app}"),
                        format!("{app}/{id}"),
                    );
                    ownership::admit(&r, &owner(&existing), &place)?;
                    let wanted = trust(inputs, &r)?;
                    let same = ["issuer", "subject", "audiences", "description"]
                        .iter()
                        .all(|k| existing[*k] == wanted[*k]);
                    if !same {
                        self.patch(&app, &id, wanted).await?;
                    }
                    Ok(created(&app, &existing))
                }
                None => Err(failed(
                    &format!("creating federated credential `{name}` of application {app}"),
                    e,
                )),
            },
            Err(e) => Err(failed(
                &format!("creating federated credential `{name}` of application {app}"),
                e,
            )),
        }
    }

    async fn read(&self, id: &str, inputs: &Props) -> Result<Option<ReadResult>, ProviderError> {
        let (app, credential) = split(id)?;
        let Some(c) = self.get(app, credential).await? else {
            return Ok(None);
        };
        let mut read = props([
            ("application", Value::String(app.to_owned())),
            ("name", Value::String(text(&c, "name"))),
            ("issuer", Value::String(text(&c, "issuer"))),
            ("subject", Value::String(text(&c, "subject"))),
        ]);
        let listed: Vec<String> = c["audiences"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if is_set(inputs, "audiences") || listed != [DEFAULT_AUDIENCE] {
            read.insert("audiences".into(), string_list(&listed));
        }
        let (description, _) = Mark::split(c["description"].as_str().unwrap_or_default());
        match Some(description.as_str()).filter(|d| !d.is_empty()) {
            Some(d) => {
                read.insert("description".into(), Value::String(d.to_owned()));
            }
            None if is_set(inputs, "description") => {
                read.insert("description".into(), Value::Null);
            }
            None => {}
        }
        Ok(Some(ReadResult {
            inputs: Some(read),
            outputs: outputs(credential),
        }))
    }

    async fn update(
        &self,
        r: ResourceRef<'_>,
        id: &str,
        _olds: &Props,
        news: &Props,
    ) -> Result<Props, ProviderError> {
        let (app, credential) = split(id)?;
        self.patch(app, credential, trust(news, &r)?).await?;
        Ok(outputs(credential))
    }

    async fn delete(&self, id: &str, _: &Props) -> Result<(), ProviderError> {
        let (app, credential) = split(id)?;
        gone_ok(
            self.0
                .send(Call::delete(
                    "/applications/{id}/federatedIdentityCredentials/{credentialId}",
                    item(app, credential),
                ))
                .await,
        )
    }

    async fn find(
        &self,
        r: ResourceRef<'_>,
        inputs: &Props,
    ) -> Result<Option<Created>, ProviderError> {
        let app = inputs.text("application")?;
        let name = inputs.text("name")?;
        Ok(self
            .by_name(&app, &name)
            .await?
            .filter(|c| owner(c).made_by(&r))
            .map(|c| created(&app, &c)))
    }

    async fn owner(&self, id: &str, _: &Props) -> Result<Owner, ProviderError> {
        let (app, credential) = split(id)?;
        Ok(self
            .get(app, credential)
            .await?
            .map_or(Owner::Gone, |c| owner(&c)))
    }

    async fn mark_imported(
        &self,
        r: ResourceRef<'_>,
        id: &str,
        _: &Props,
    ) -> Result<(), ProviderError> {
        let (app, credential) = split(id)?;
        let Some(c) = self.get(app, credential).await? else {
            return Ok(());
        };
        let (description, _) = Mark::split(c["description"].as_str().unwrap_or_default());
        let description = Mark::of(&r).append_to(Some(&description));
        self.patch(app, credential, json!({ "description": description }))
            .await
    }
}
