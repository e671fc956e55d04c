//! `entra:application` (an app registration, upserted by `uniqueName`) and
//! `entra:servicePrincipal` (its identity in the tenant, adopted if it exists and carries
//! this stack's mark). Both carry the mark in their Graph `tags`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use paddock_engine::provider::{
    Created, PropertySchema, PropertyType, ReadResult, ResourceRef, TypeSchema,
};
use paddock_engine::{Props, ProviderError, Value};
use serde_json::{Value as Json, json};

use super::{CONSISTENCY, Directory, failed, is_set, keyed, segment, text};
use crate::family::{PropsExt, ResourceType, found, gone_ok, props};
use crate::http::Call;
use crate::ownership::{self, Mark, Owner, owner_of};

const DEFAULT_AUDIENCE: &str = "AzureADMyOrg";

pub(crate) struct Application(pub Arc<Directory>);

fn application_outputs(app: &Json) -> Props {
    props([
        ("objectId", Value::String(text(app, "id"))),
        ("appId", Value::String(text(app, "appId"))),
    ])
}

/// The object an alternate-key path names (`/applications(uniqueName='…')`), if any;
/// `retry` waits out Graph's replication after a create.
async fn by_alternate_key(
    directory: &Directory,
    template: &'static str,
    path: String,
    retry: Option<Duration>,
    what: &str,
) -> Result<Option<Json>, ProviderError> {
    let mut call = Call::get(template, path);
    if let Some(window) = retry {
        call = call.retry_not_found_for(window);
    }
    Ok(found(directory.send(call).await)
        .map_err(|e| failed(what, e))?
        .map(|r| r.body))
}

/// An application or a service principal by object id, if it exists.
async fn by_id(
    directory: &Directory,
    collection: &'static str,
    id: &str,
) -> Result<Option<Json>, ProviderError> {
    let template = match collection {
        "applications" => "/applications/{id}",
        _ => "/servicePrincipals/{id}",
    };
    Ok(found(
        directory
            .send(Call::get(
                template,
                format!("/{collection}/{}", segment(id)),
            ))
            .await,
    )
    .map_err(|e| failed(&format!("reading {collection} {id}"), e))?
    .map(|r| r.body))
}

/// Who made an application or a service principal, by its `tags`.
fn owner(entity: &Json) -> Owner {
    owner_of(Mark::from_tag_list(&entity["tags"]))
}

/// Who made the object `id` of a collection (`Gone` if it is gone).
async fn owner_by_id(
    directory: &Directory,
    collection: &'static str,
    id: &str,
) -> Result<Owner, ProviderError> {
    Ok(by_id(directory, collection, id)
        .await?
        .map_or(Owner::Gone, |e| owner(&e)))
}

/// Writes `r`'s mark among the tags of the object `id` of a collection, which `import`
/// takes over; its other tags are kept.
async fn mark_by_id(
    directory: &Directory,
    collection: &'static str,
    r: &ResourceRef<'_>,
    id: &str,
) -> Result<(), ProviderError> {
    let Some(entity) = by_id(directory, collection, id).await? else {
        return Ok(());
    };
    let template = match collection {
        "applications" => "/applications/{id}",
        _ => "/servicePrincipals/{id}",
    };
    let tags = Mark::of(r).into_tag_list(&entity["tags"]);
    directory
        .send(
            Call::patch(template, format!("/{collection}/{}", segment(id)))
                .json(json!({ "tags": tags })),
        )
        .await
        .map_err(|e| failed(&format!("marking {collection} {id}"), e))?;
    Ok(())
}

impl Application {
    /// The application with this `uniqueName`, if any; `retry` waits out replication.
    async fn by_unique_name(
        &self,
        unique_name: &str,
        retry: Option<Duration>,
    ) -> Result<Option<Json>, ProviderError> {
        by_alternate_key(
            &self.0,
            "/applications(uniqueName={uniqueName})",
            keyed("applications", "uniqueName", unique_name),
            retry,
            &format!("looking up application `{unique_name}`"),
        )
        .await
    }
}

#[async_trait]
impl ResourceType for Application {
    fn schema(&self) -> TypeSchema {
        TypeSchema {
            name: "entra:application".into(),
            description: "An Entra ID application registration, known by its uniqueName: creating it twice yields one application. It never gets a password: environments sign in by federation.".into(),
            inputs: vec![
                PropertySchema::new("displayName", PropertyType::String).required(),
                PropertySchema::new("uniqueName", PropertyType::String)
                    .required()
                    .replace_on_change()
                    .describe("The application's alternate key in the directory; immutable."),
                PropertySchema::new("signInAudience", PropertyType::String)
                    .describe("Who may sign in: `AzureADMyOrg` (the default), `AzureADMultipleOrgs`, …"),
            ],
            outputs: vec![
                PropertySchema::new("objectId", PropertyType::String)
                    .describe("The application object's id."),
                PropertySchema::new("appId", PropertyType::String)
                    .describe("The client id, which tokens and federated sign-ins name."),
            ],
        }
    }

    async fn create(&self, r: ResourceRef<'_>, inputs: &Props) -> Result<Created, ProviderError> {
        let unique_name = inputs.text("uniqueName")?;
        // The upsert below would take over an application of that name: only this
        // stack's is.
        let existing = self.by_unique_name(&unique_name, None).await?;
        if let Some(app) = &existing {
            let place = self.0.place(
                "entra:application",
                format!("uniqueName {unique_name}"),
                text(app, "id"),
            );
            ownership::admit(&r, &owner(app), &place)?;
        }
        let tags = existing
            .as_ref()
            .map_or(Json::Null, |app| app["tags"].clone());
        let body = json!({
            "displayName": inputs.text("displayName")?,
            "signInAudience": inputs.text_or("signInAudience", DEFAULT_AUDIENCE),
            "tags": Mark::of(&r).into_tag_list(&tags),
        });
        // An upsert: repeating it (a retry, a crashed run) changes nothing more.
        let reply = self
            .0
            .send(
                Call::patch(
                    "/applications(uniqueName={uniqueName})",
                    keyed("applications", "uniqueName", &unique_name),
                )
                .header("Prefer", "create-if-missing")
                .json(body),
            )
            .await
            .map_err(|e| failed(&format!("creating application `{unique_name}`"), e))?;
        let app = if reply.body["id"].is_string() && reply.body["appId"].is_string() {
            reply.body
        } else {
            // 204: it existed and was updated; Graph returns no body.
            self.by_unique_name(&unique_name, Some(CONSISTENCY))
                .await?
                .ok_or_else(|| {
                    ProviderError::new(
                        "Request_ResourceNotFound",
                        format!("application `{unique_name}` was upserted but cannot be read"),
                    )
                })?
        };
        Ok(Created {
            id: text(&app, "id"),
            outputs: application_outputs(&app),
        })
    }

    async fn read(&self, id: &str, inputs: &Props) -> Result<Option<ReadResult>, ProviderError> {
        let Some(reply) = found(
            self.0
                .send(Call::get(
                    "/applications/{id}",
                    format!("/applications/{}", segment(id)),
                ))
                .await,
        )
        .map_err(|e| failed(&format!("reading application {id}"), e))?
        else {
            return Ok(None);
        };
        let app = reply.body;
        let mut read = props([("displayName", Value::String(text(&app, "displayName")))]);
        if let Some(unique_name) = app["uniqueName"].as_str() {
            read.insert("uniqueName".into(), Value::String(unique_name.to_owned()));
        }
        let audience = app["signInAudience"].as_str().unwrap_or(DEFAULT_AUDIENCE);
        if is_set(inputs, "signInAudience") || audience != DEFAULT_AUDIENCE {
            read.insert("signInAudience".into(), Value::String(audience.to_owned()));
        }
        Ok(Some(ReadResult {
            inputs: Some(read),
            outputs: application_outputs(&app),
        }))
    }

    async fn update(
        &self,
        _: ResourceRef<'_>,
        id: &str,
        _olds: &Props,
        news: &Props,
    ) -> Result<Props, ProviderError> {
        let body = json!({
            "displayName": news.text("displayName")?,
            "signInAudience": news.text_or("signInAudience", DEFAULT_AUDIENCE),
        });
        let path = format!("/applications/{}", segment(id));
        self.0
            .send(
                Call::patch("/applications/{id}", path.clone())
                    .json(body)
                    .retry_not_found_for(CONSISTENCY),
            )
            .await
            .map_err(|e| failed(&format!("updating application {id}"), e))?;
        let app = self
            .0
            .send(Call::get("/applications/{id}", path).retry_not_found_for(CONSISTENCY))
            .await
            .map_err(|e| failed(&format!("reading application {id}"), e))?
            .body;
        Ok(application_outputs(&app))
    }

    async fn delete(&self, id: &str, _: &Props) -> Result<(), ProviderError> {
        gone_ok(
            self.0
                .send(Call::delete(
                    "/applications/{id}",
                    format!("/applications/{}", segment(id)),
                ))
                .await,
        )
    }

    async fn find(
        &self,
        r: ResourceRef<'_>,
        inputs: &Props,
    ) -> Result<Option<Created>, ProviderError> {
        let unique_name = inputs.text("uniqueName")?;
        Ok(self
            .by_unique_name(&unique_name, None)
            .await?
            .filter(|app| owner(app).made_by(&r))
            .map(|app| Created {
                id: text(&app, "id"),
                outputs: application_outputs(&app),
            }))
    }

    async fn owner(&self, id: &str, _: &Props) -> Result<Owner, ProviderError> {
        owner_by_id(&self.0, "applications", id).await
    }

    async fn mark_imported(
        &self,
        r: ResourceRef<'_>,
        id: &str,
        _: &Props,
    ) -> Result<(), ProviderError> {
        mark_by_id(&self.0, "applications", &r, id).await
    }
}

pub(crate) struct ServicePrincipal(pub Arc<Directory>);

fn principal_outputs(sp: &Json) -> Props {
    props([("objectId", Value::String(text(sp, "id")))])
}

impl ServicePrincipal {
    /// The service principal of a client id, if it has one.
    async fn by_app_id(
        &self,
        app_id: &str,
        retry: Option<Duration>,
    ) -> Result<Option<Json>, ProviderError> {
        by_alternate_key(
            &self.0,
            "/servicePrincipals(appId={appId})",
            keyed("servicePrincipals", "appId", app_id),
            retry,
            &format!("looking up the service principal of {app_id}"),
        )
        .await
    }
}

#[async_trait]
impl ResourceType for ServicePrincipal {
    fn schema(&self) -> TypeSchema {
        TypeSchema {
            name: "entra:servicePrincipal".into(),
            description: "The service principal of an application: what role assignments and group memberships name. One that exists for the appId is adopted.".into(),
            inputs: vec![PropertySchema::new("appId", PropertyType::String)
                .required()
                .replace_on_change()
                .describe("The application's client id.")],
            outputs: vec![PropertySchema::new("objectId", PropertyType::String)
                .describe("The service principal's object id.")],
        }
    }

    async fn create(&self, r: ResourceRef<'_>, inputs: &Props) -> Result<Created, ProviderError> {
        let app_id = inputs.text("appId")?;
        let admit = |sp: &Json| {
            let place = self.0.place(
                "entra:servicePrincipal",
                format!("of appId {app_id}"),
                text(sp, "id"),
            );
            ownership::admit(&r, &owner(sp), &place)
        };
        if let Some(sp) = self.by_app_id(&app_id, None).await? {
            admit(&sp)?;
            return Ok(Created {
                id: text(&sp, "id"),
                outputs: principal_outputs(&sp),
            });
        }
        let tags = json!(Mark::of(&r).tag_list());
        let started = Instant::now();
        let mut delay = Duration::from_millis(500);
        let sp = loop {
            let result = self
                .0
                .send(
                    Call::post("/servicePrincipals", "/servicePrincipals")
                        .json(json!({ "appId": app_id, "tags": tags })),
                )
                .await;
            match result {
                Ok(reply) => break reply.body,
                // Made by an earlier attempt of this request, or by someone else meanwhile.
                Err(e) if e.status() == Some(409) => {
                    match self.by_app_id(&app_id, Some(CONSISTENCY)).await? {
                        Some(sp) => {
                            admit(&sp)?;
                            break sp;
                        }
                        None => {
                            return Err(failed(
                                &format!("creating the service principal of {app_id}"),
                                e,
                            ));
                        }
                    }
                }
                // The application has not replicated yet: Graph says it does not exist.
                Err(e)
                    if e.status() == Some(400)
                        && e.message()
                            .contains("does not reference a valid application")
                        && started.elapsed() < CONSISTENCY =>
                {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    return Err(failed(
                        &format!("creating the service principal of {app_id}"),
                        e,
                    ));
                }
            }
        };
        Ok(Created {
            id: text(&sp, "id"),
            outputs: principal_outputs(&sp),
        })
    }

    async fn read(&self, id: &str, _: &Props) -> Result<Option<ReadResult>, ProviderError> {
        let Some(reply) = found(
            self.0
                .send(Call::get(
                    "/servicePrincipals/{id}",
                    format!("/servicePrincipals/{}", segment(id)),
                ))
                .await,
        )
        .map_err(|e| failed(&format!("reading service principal {id}"), e))?
        else {
            return Ok(None);
        };
        Ok(Some(ReadResult {
            inputs: Some(props([(
                "appId",
                Value::String(text(&reply.body, "appId")),
            )])),
            outputs: principal_outputs(&reply.body),
        }))
    }

    async fn update(
        &self,
        _: ResourceRef<'_>,
        id: &str,
        _olds: &Props,
        _news: &Props,
    ) -> Result<Props, ProviderError> {
        // Its only input replaces it: nothing changes in place.
        Ok(props([("objectId", Value::String(id.to_owned()))]))
    }

    async fn delete(&self, id: &str, _: &Props) -> Result<(), ProviderError> {
        gone_ok(
            self.0
                .send(Call::delete(
                    "/servicePrincipals/{id}",
                    format!("/servicePrincipals/{}", segment(id)),
                ))
                .await,
        )
    }

    async fn find(
        &self,
        r: ResourceRef<'_>,
        inputs: &Props,
    ) -> Result<Option<Created>, ProviderError> {
        let app_id = inputs.text("appId")?;
        Ok(self
            .by_app_id(&app_id, None)
            .await?
            .filter(|sp| owner(sp).made_by(&r))
            .map(|sp| Created {
                id: text(&sp, "id"),
                outputs: principal_outputs(&sp),
            }))
    }

    async fn owner(&self, id: &str, _: &Props) -> Result<Owner, ProviderError> {
        owner_by_id(&self.0, "servicePrincipals", id).await
    }

    async fn mark_imported(
        &self,
        r: ResourceRef<'_>,
        id: &str,
        _: &Props,
    ) -> Result<(), ProviderError> {
        mark_by_id(&self.0, "servicePrincipals", &r, id).await
    }
}
