//! `/applications`: created, found by id, `appId` or `uniqueName` (upserted with
//! `Prefer: create-if-missing`), updated and deleted, with their passwords and federated
//! identity credentials.

use super::*;

impl Graph {
    pub(super) async fn new_application(&self, request: Value) -> GraphResult {
        require(&request, &["displayName"])?;
        let app = create_application(&self.docs, request).await?;
        Ok(entity(
            StatusCode::CREATED,
            &self.context("applications/$entity"),
            app,
        ))
    }

    pub(super) async fn application(
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
    pub(super) async fn upsert_application(
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

    pub(super) async fn application_item(
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
}
