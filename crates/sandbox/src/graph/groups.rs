//! `/groups/{id}`: a security group, its members and owners by reference (`$ref`).

use super::*;

impl Graph {
    pub(super) async fn group_item(
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
}
