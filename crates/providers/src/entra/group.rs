//! `entra:group`: a security group whose members and owners, when given, are exactly the
//! listed principals.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use paddock_engine::provider::{
    Created, PropertySchema, PropertyType, ReadResult, ResourceRef, TypeSchema,
};
use paddock_engine::{Props, ProviderError, Value};
use serde_json::{Value as Json, json};

use super::{
    CONSISTENCY, Directory, failed, filter, is_object_id, is_set, segment, string_list, text,
};
use crate::family::{PropsExt, ResourceType, found, gone_ok, props};
use crate::http::{Call, HttpError};
use crate::ownership::{self, Mark, Owner};

const TYPE: &str = "entra:group";

pub(crate) struct Group(pub Arc<Directory>);

/// The two relations a group's principals are listed in.
#[derive(Clone, Copy)]
enum Relation {
    Members,
    Owners,
}

impl Relation {
    fn input(self) -> &'static str {
        match self {
            Relation::Members => "members",
            Relation::Owners => "owners",
        }
    }
}

/// The `mailNickname` a group gets when none is given: its display name in lower case,
/// runs of anything but letters, digits, `-` and `_` made one `-` (Graph refuses spaces,
/// `@`, brackets and non-ASCII), at most 64 characters.
pub(crate) fn default_nickname(display_name: &str) -> String {
    let mut nickname = String::new();
    for c in display_name.chars() {
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            nickname.push(c.to_ascii_lowercase());
        } else if !nickname.is_empty() && !nickname.ends_with('-') {
            nickname.push('-');
        }
    }
    let mut nickname: String = nickname.trim_end_matches('-').chars().take(64).collect();
    if nickname.is_empty() {
        nickname.push_str("group");
    }
    nickname
}

/// What a group is known by: its display name and mail nickname.
struct Key {
    display_name: String,
    nickname: String,
}

impl Key {
    fn of(inputs: &Props) -> Result<Key, ProviderError> {
        let display_name = inputs.text("displayName")?;
        let nickname = inputs
            .opt_text("mailNickname")
            .unwrap_or_else(|| default_nickname(&display_name));
        Ok(Key {
            display_name,
            nickname,
        })
    }
}

impl Group {
    fn dir(&self) -> &Directory {
        &self.0
    }

    /// The object ids of a relation's entries, if the relation is given: a user principal
    /// name (with `@`), an object id, or a bare name in the directory's user domain.
    async fn resolve(
        &self,
        inputs: &Props,
        relation: Relation,
    ) -> Result<Option<BTreeSet<String>>, ProviderError> {
        if !is_set(inputs, relation.input()) {
            return Ok(None);
        }
        let mut ids = BTreeSet::new();
        for entry in inputs.strings(relation.input()) {
            ids.insert(self.resolve_one(relation, &entry).await?);
        }
        Ok(Some(ids))
    }

    async fn resolve_one(&self, relation: Relation, entry: &str) -> Result<String, ProviderError> {
        let entry = entry.trim();
        if is_object_id(entry) {
            return Ok(entry.to_lowercase());
        }
        let upn = if entry.contains('@') {
            entry.to_owned()
        } else {
            let domain = self.dir().user_domain.as_deref().ok_or_else(|| {
                ProviderError::new(
                    "InvalidInput",
                    format!(
                        "{}: `{entry}` is a bare name, but no user domain is configured",
                        relation.input()
                    ),
                )
                .with_hint("write the user principal name (name@domain) or the object id, or configure the directory's user domain")
            })?;
            format!("{entry}@{domain}")
        };
        let user = self
            .dir()
            .send(
                Call::get(
                    "/users/{userPrincipalName}",
                    format!("/users/{}", segment(&upn)),
                )
                .query("$select", "id,userPrincipalName"),
            )
            .await
            .map_err(|e| {
                let not_found = e.is_not_found();
                let error = failed(&format!("{}: `{entry}` ({upn})", relation.input()), e);
                if not_found {
                    error.with_hint(
                        "no such user in the directory: create the user first, or check the name",
                    )
                } else {
                    error
                }
            })?;
        Ok(text(&user.body, "id").to_lowercase())
    }

    /// The group with this id, if it exists.
    async fn get(&self, id: &str) -> Result<Option<Json>, ProviderError> {
        Ok(found(
            self.dir()
                .send(Call::get(
                    "/groups/{id}",
                    format!("/groups/{}", segment(id)),
                ))
                .await,
        )
        .map_err(|e| failed(&format!("reading group {id}"), e))?
        .map(|r| r.body))
    }

    /// The group with this key, if exactly one exists.
    async fn lookup(&self, key: &Key) -> Result<Option<Json>, ProviderError> {
        let groups = self
            .dir()
            .list_all(Call::get("/groups", "/groups").query(
                "$filter",
                filter(&[
                    ("displayName", &key.display_name),
                    ("mailNickname", &key.nickname),
                ]),
            ))
            .await
            .map_err(|e| failed(&format!("looking up group `{}`", key.display_name), e))?;
        match groups.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one.clone())),
            many => Err(ProviderError::new(
                "AmbiguousNaturalKey",
                format!(
                    "{} groups are named `{}` with mailNickname `{}`: {}",
                    many.len(),
                    key.display_name,
                    key.nickname,
                    many.iter()
                        .map(|g| text(g, "id"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .with_hint("delete the duplicates, or import the right one by its object id")),
        }
    }

    /// Creates the group. The request is sent once at a time: if its outcome is unknown
    /// (a dropped connection, a 5xx), the group is looked up by its key before trying
    /// again, so a retry never makes a second group.
    async fn post(
        &self,
        key: &Key,
        inputs: &Props,
        r: &ResourceRef<'_>,
    ) -> Result<Json, ProviderError> {
        let body = json!({
            "displayName": key.display_name,
            "mailNickname": key.nickname,
            "securityEnabled": true,
            "mailEnabled": false,
            "description": description(inputs, r),
        });
        let once = self
            .dir()
            .http
            .clone()
            .with_retry(crate::http::RetryPolicy {
                max_attempts: 1,
                ..self.dir().http.retry.clone()
            });
        let mut delay = Duration::from_millis(500);
        let attempts = 6;
        for attempt in 1..=attempts {
            let result = once
                .send(Call::post("/groups", "/groups").json(body.clone()))
                .await;
            match result {
                Ok(reply) => return Ok(reply.body),
                Err(e) if attempt < attempts && unsure(&e) => {
                    tracing::debug!(
                        attempt,
                        code = e.code(),
                        "creating a group failed; looking it up before retrying"
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                    // Only this create's group: a namesake someone else made meanwhile
                    // is not it.
                    if let Some(group) = self.lookup(key).await?
                        && owner(&group).made_by(r)
                    {
                        return Ok(group);
                    }
                }
                Err(e) => return Err(failed(&format!("creating group `{}`", key.display_name), e)),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Makes a relation hold exactly `wanted`: adds what is missing, removes the rest.
    async fn sync(
        &self,
        id: &str,
        relation: Relation,
        wanted: &BTreeSet<String>,
    ) -> Result<(), ProviderError> {
        let name = relation.input();
        let current: BTreeSet<String> = self
            .principals(id, relation, Some(CONSISTENCY))
            .await?
            .iter()
            .map(|p| text(p, "id").to_lowercase())
            .collect();
        for add in wanted.difference(&current) {
            let call = Call::post(
                "/groups/{id}/{relation}/$ref",
                format!("/groups/{id}/{name}/$ref"),
            )
            .json(self.dir().reference(add))
            .retry_not_found_for(CONSISTENCY);
            match self.dir().send(call).await {
                Ok(_) => {}
                // Added meanwhile (or by an earlier attempt of this request).
                Err(e) if e.status() == Some(400) && e.message().contains("already exist") => {}
                Err(e) => {
                    return Err(failed(
                        &format!("adding {add} to the {name} of group {id}"),
                        e,
                    ));
                }
            }
        }
        for remove in current.difference(wanted) {
            let call = Call::delete(
                "/groups/{id}/{relation}/{principal}/$ref",
                format!("/groups/{id}/{name}/{remove}/$ref"),
            );
            gone_ok(self.dir().send(call).await).map_err(|e| ProviderError {
                message: format!(
                    "removing {remove} from the {name} of group {id}: {}",
                    e.message
                ),
                ..e
            })?;
        }
        Ok(())
    }

    /// The principals of a relation, as Graph lists them.
    async fn principals(
        &self,
        id: &str,
        relation: Relation,
        retry: Option<Duration>,
    ) -> Result<Vec<Json>, ProviderError> {
        let name = relation.input();
        let mut call = Call::get("/groups/{id}/{relation}", format!("/groups/{id}/{name}"))
            .query("$select", "id,userPrincipalName");
        if let Some(window) = retry {
            call = call.retry_not_found_for(window);
        }
        self.dir()
            .list_all(call)
            .await
            .map_err(|e| failed(&format!("listing the {name} of group {id}"), e))
    }

    /// The principals of a relation written as the prior inputs wrote them where they
    /// name the same principal (so an unchanged list reads back equal), the others as a
    /// bare name in the user domain, a user principal name, or an object id; the prior's
    /// order first, then the others sorted.
    fn spell(&self, principals: &[Json], prior: &[String]) -> Vec<String> {
        let domain = self.dir().user_domain.as_deref();
        let names = |entry: &str, principal: &Json| {
            let upn = principal["userPrincipalName"].as_str().unwrap_or_default();
            if is_object_id(entry) {
                entry.eq_ignore_ascii_case(principal["id"].as_str().unwrap_or_default())
            } else if entry.contains('@') {
                entry.eq_ignore_ascii_case(upn)
            } else {
                domain.is_some_and(|d| format!("{entry}@{d}").eq_ignore_ascii_case(upn))
            }
        };
        let mut spelled = Vec::new();
        for entry in prior {
            if principals.iter().any(|p| names(entry, p)) && !spelled.contains(entry) {
                spelled.push(entry.clone());
            }
        }
        let mut others: Vec<String> = principals
            .iter()
            .filter(|p| !prior.iter().any(|entry| names(entry, p)))
            .map(|p| {
                let upn = p["userPrincipalName"].as_str().unwrap_or_default();
                match (upn.rsplit_once('@'), domain) {
                    (Some((name, d)), Some(domain)) if d.eq_ignore_ascii_case(domain) => {
                        name.to_owned()
                    }
                    _ if !upn.is_empty() => upn.to_owned(),
                    _ => text(p, "id"),
                }
            })
            .collect();
        others.sort();
        spelled.extend(others);
        spelled
    }

    /// Sets what differs of the group's own properties, `r`'s mark ending its description.
    async fn patch(
        &self,
        id: &str,
        group: Option<&Json>,
        inputs: &Props,
        r: &ResourceRef<'_>,
    ) -> Result<(), ProviderError> {
        let display_name = inputs.text("displayName")?;
        let description = description(inputs, r);
        let mut patch = serde_json::Map::new();
        if group.is_none_or(|g| g["displayName"].as_str() != Some(display_name.as_str())) {
            patch.insert("displayName".into(), json!(display_name));
        }
        if group.is_none_or(|g| g["description"].as_str() != Some(description.as_str())) {
            patch.insert("description".into(), json!(description));
        }
        if patch.is_empty() {
            return Ok(());
        }
        self.dir()
            .send(
                Call::patch("/groups/{id}", format!("/groups/{id}"))
                    .json(Json::Object(patch))
                    .retry_not_found_for(CONSISTENCY),
            )
            .await
            .map_err(|e| failed(&format!("updating group {id}"), e))?;
        Ok(())
    }

    /// Members and owners as given, after the group itself is right.
    async fn sync_all(
        &self,
        id: &str,
        members: Option<BTreeSet<String>>,
        owners: Option<BTreeSet<String>>,
    ) -> Result<(), ProviderError> {
        if let Some(owners) = owners {
            self.sync(id, Relation::Owners, &owners).await?;
        }
        if let Some(members) = members {
            self.sync(id, Relation::Members, &members).await?;
        }
        Ok(())
    }
}

/// Whether a failed create may have happened, or may succeed if tried again.
fn unsure(e: &HttpError) -> bool {
    matches!(e, HttpError::Transport { .. }) || matches!(e.status(), Some(401 | 429 | 500..=599))
}

/// The description a group of `r` has: the user's, then the mark (groups have no tags).
fn description(inputs: &Props, r: &ResourceRef<'_>) -> String {
    Mark::of(r).append_to(inputs.opt_text("description").as_deref())
}

/// Who made a group, by the mark ending its description.
fn owner(group: &Json) -> Owner {
    ownership::owner_in_text(group["description"].as_str())
}

fn outputs(id: &str) -> Props {
    props([("objectId", Value::String(id.to_owned()))])
}

#[async_trait]
impl ResourceType for Group {
    fn schema(&self) -> TypeSchema {
        TypeSchema {
            name: TYPE.into(),
            description: "An Entra ID security group. When `members` or `owners` is given, the group holds exactly those principals.".into(),
            inputs: vec![
                PropertySchema::new("displayName", PropertyType::String)
                    .required()
                    .describe("The group's name in the directory."),
                PropertySchema::new("mailNickname", PropertyType::String)
                    .replace_on_change()
                    .describe("The group's mail alias; by default its display name in lower case with `-` for spaces and symbols."),
                PropertySchema::new("description", PropertyType::String),
                PropertySchema::new("members", PropertyType::List).describe(
                    "Exactly the group's members: user principal names (`ada@example.com`), object ids, or bare names in the directory's user domain (`ada`). Left alone when not given.",
                ),
                PropertySchema::new("owners", PropertyType::List)
                    .describe("Exactly the group's owners, written as `members` are. Left alone when not given."),
            ],
            outputs: vec![PropertySchema::new("objectId", PropertyType::String)
                .describe("The group's object id.")],
        }
    }

    async fn create(&self, r: ResourceRef<'_>, inputs: &Props) -> Result<Created, ProviderError> {
        let key = Key::of(inputs)?;
        // Every principal is resolved first, so a misspelt name leaves nothing behind.
        let members = self.resolve(inputs, Relation::Members).await?;
        let owners = self.resolve(inputs, Relation::Owners).await?;
        let id = match self.lookup(&key).await? {
            Some(existing) => {
                let id = text(&existing, "id");
                let name = format!("{} (mailNickname {})", key.display_name, key.nickname);
                let place = self.dir().place(TYPE, name, id.clone());
                ownership::admit(&r, &owner(&existing), &place)?;
                self.patch(&id, Some(&existing), inputs, &r).await?;
                id
            }
            None => text(&self.post(&key, inputs, &r).await?, "id"),
        };
        self.sync_all(&id, members, owners).await?;
        Ok(Created {
            outputs: outputs(&id),
            id,
        })
    }

    async fn read(&self, id: &str, inputs: &Props) -> Result<Option<ReadResult>, ProviderError> {
        let Some(group) = self.get(id).await? else {
            return Ok(None);
        };
        let importing = inputs.is_empty();
        let display_name = text(&group, "displayName");
        let mut read = props([("displayName", Value::String(display_name.clone()))]);
        let nickname = text(&group, "mailNickname");
        if is_set(inputs, "mailNickname")
            || importing && nickname != default_nickname(&display_name)
        {
            read.insert("mailNickname".into(), Value::String(nickname));
        }
        let (description, _) = Mark::split(group["description"].as_str().unwrap_or_default());
        match Some(description.as_str()).filter(|d| !d.is_empty()) {
            Some(d) => {
                read.insert("description".into(), Value::String(d.to_owned()));
            }
            None if is_set(inputs, "description") => {
                read.insert("description".into(), Value::Null);
            }
            None => {}
        }
        for relation in [Relation::Members, Relation::Owners] {
            let managed = is_set(inputs, relation.input());
            if !managed && !importing {
                continue;
            }
            let principals = match self.principals(id, relation, None).await {
                Err(e) if e.code == "Request_ResourceNotFound" => return Ok(None),
                other => other?,
            };
            if managed || !principals.is_empty() {
                let spelled = self.spell(&principals, &inputs.strings(relation.input()));
                read.insert(relation.input().into(), string_list(&spelled));
            }
        }
        Ok(Some(ReadResult {
            inputs: Some(read),
            outputs: outputs(id),
        }))
    }

    async fn update(
        &self,
        r: ResourceRef<'_>,
        id: &str,
        olds: &Props,
        news: &Props,
    ) -> Result<Props, ProviderError> {
        let members = self.resolve(news, Relation::Members).await?;
        let owners = self.resolve(news, Relation::Owners).await?;
        if olds.opt_text("displayName") != news.opt_text("displayName")
            || olds.opt_text("description") != news.opt_text("description")
        {
            self.patch(id, None, news, &r).await?;
        }
        self.sync_all(id, members, owners).await?;
        Ok(outputs(id))
    }

    async fn delete(&self, id: &str, _: &Props) -> Result<(), ProviderError> {
        gone_ok(
            self.dir()
                .send(Call::delete(
                    "/groups/{id}",
                    format!("/groups/{}", segment(id)),
                ))
                .await,
        )
    }

    async fn find(
        &self,
        r: ResourceRef<'_>,
        inputs: &Props,
    ) -> Result<Option<Created>, ProviderError> {
        let group = self.lookup(&Key::of(inputs)?).await?;
        Ok(group.filter(|g| owner(g).made_by(&r)).map(|group| {
            let id = text(&group, "id");
            Created {
                outputs: outputs(&id),
                id,
            }
        }))
    }

    async fn owner(&self, id: &str, _: &Props) -> Result<Owner, ProviderError> {
        Ok(self.get(id).await?.map_or(Owner::Gone, |g| owner(&g)))
    }

    async fn mark_imported(
        &self,
        r: ResourceRef<'_>,
        id: &str,
        _: &Props,
    ) -> Result<(), ProviderError> {
        let Some(group) = self.get(id).await? else {
            return Ok(());
        };
        let (description, _) = Mark::split(group["description"].as_str().unwrap_or_default());
        let description = Mark::of(&r).append_to(Some(&description));
        self.dir()
            .send(
                Call::patch("/groups/{id}", format!("/groups/{}", segment(id)))
                    .json(json!({ "description": description })),
            )
            .await
            .map_err(|e| failed(&format!("marking group {id}"), e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::default_nickname;

    #[test]
    fn nicknames_derive_from_display_names() {
        assert_eq!(default_nickname("Team Payments"), "team-payments");
        assert_eq!(default_nickname("  Ops (EU) / on-call! "), "ops-eu-on-call");
        assert_eq!(default_nickname("Équipe ü"), "quipe");
        assert_eq!(default_nickname("!!!"), "group");
        assert_eq!(default_nickname(&"x".repeat(100)).len(), 64);
    }
}
