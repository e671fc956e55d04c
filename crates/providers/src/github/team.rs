//! `github:team`: a team of the organization, with authoritative membership lists.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use paddock_engine::provider::{Created, PropertyType, ReadResult, ResourceRef, TypeSchema};
use paddock_engine::{Props, ProviderError, Value};
use serde_json::{Value as Json, json};

use super::{GitHub, ReadBack, already_exists, github_error, input_error, plain, prop, seg, text};
use crate::family::{PropsExt, found, gone_ok, props};
use crate::http::{Call, HttpError};
use crate::ownership::{self, Mark, Owner};

pub(crate) struct Team(pub Arc<GitHub>);

const PRIVACY: [&str; 2] = ["closed", "secret"];

/// The roles a login has in a team, by lower-cased login: (login, role).
type Roster = BTreeMap<String, (String, &'static str)>;

impl GitHub {
    pub(crate) async fn team(&self, slug: &str) -> Result<Option<Json>, HttpError> {
        found(
            self.send(Call::get(
                "/orgs/{org}/teams/{team_slug}",
                self.org_path(&format!("/teams/{}", seg(slug))),
            ))
            .await,
        )
    }

    /// The team named `name` (names are unique in an organization, ignoring case): looked
    /// up by the slug GitHub would give it, then among all the teams.
    async fn team_named(&self, name: &str) -> Result<Option<Json>, HttpError> {
        let same = |t: &Json| {
            t["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        };
        if let Some(team) = self.team(&slugify(name)).await?
            && same(&team)
        {
            return Ok(Some(team));
        }
        let teams = self
            .list_all(
                Call::get("/orgs/{org}/teams", self.org_path("/teams")),
                None,
            )
            .await?;
        match teams.into_iter().find(same) {
            Some(t) => self.team(&text(&t["slug"])).await,
            None => Ok(None),
        }
    }

    /// Who is in the team, with their roles.
    async fn roster(&self, slug: &str) -> Result<Roster, HttpError> {
        let mut roster = Roster::new();
        for role in ["member", "maintainer"] {
            let users = self
                .list_all(
                    Call::get(
                        "/orgs/{org}/teams/{team_slug}/members",
                        self.org_path(&format!("/teams/{}/members", seg(slug))),
                    )
                    .query("role", role),
                    None,
                )
                .await?;
            for u in users {
                let login = text(&u["login"]);
                roster.insert(login.to_lowercase(), (login, role));
            }
        }
        Ok(roster)
    }

    /// Makes the team's membership exactly `desired`: adds or re-roles who is listed,
    /// removes who is not (a creator GitHub made maintainer too).
    async fn set_roster(&self, slug: &str, desired: &Roster) -> Result<(), ProviderError> {
        let current = self.roster(slug).await.map_err(plain)?;
        for (key, (login, role)) in desired {
            if current.get(key).is_some_and(|(_, r)| r == role) {
                continue;
            }
            self.send(
                Call::put(
                    "/orgs/{org}/teams/{team_slug}/memberships/{username}",
                    self.org_path(&format!("/teams/{}/memberships/{}", seg(slug), seg(login))),
                )
                .json(json!({ "role": role })),
            )
            .await
            .map_err(|e| membership_error(e, login))?;
        }
        for (key, (login, _)) in &current {
            if !desired.contains_key(key) {
                gone_ok(
                    self.send(Call::delete(
                        "/orgs/{org}/teams/{team_slug}/memberships/{username}",
                        self.org_path(&format!("/teams/{}/memberships/{}", seg(slug), seg(login))),
                    ))
                    .await,
                )?;
            }
        }
        Ok(())
    }
}

pub(crate) fn membership_error(e: HttpError, login: &str) -> ProviderError {
    let hint = if e.is_not_found() {
        format!(
            "`{login}` is not a GitHub user, or the team does not exist: check the login and the team's slug"
        )
    } else {
        "a role is `member` or `maintainer`".to_owned()
    };
    github_error(e, hint)
}

/// The slug GitHub gives a team name: lower case, runs of other characters as one `-`.
fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.trim_matches('-').to_owned()
}

/// The membership the inputs ask for, if they manage membership at all (`maintainers` or
/// `members` given): a login in both lists is a maintainer.
fn desired_roster(inputs: &Props) -> Option<Roster> {
    if !inputs.contains_key("maintainers") && !inputs.contains_key("members") {
        return None;
    }
    let mut roster = Roster::new();
    for login in inputs.strings("members") {
        roster.insert(login.to_lowercase(), (login, "member"));
    }
    for login in inputs.strings("maintainers") {
        roster.insert(login.to_lowercase(), (login, "maintainer"));
    }
    Some(roster)
}

/// Who made a team, by the mark ending its description.
fn owner(team: &Json) -> Owner {
    ownership::owner_in_text(team["description"].as_str())
}

fn outputs(team: &Json) -> Props {
    props([
        ("slug", Value::String(text(&team["slug"]))),
        (
            "teamId",
            Value::Int(team["id"].as_i64().unwrap_or_default()),
        ),
    ])
}

fn privacy(inputs: &Props) -> Result<String, ProviderError> {
    let privacy = inputs.text_or("privacy", "closed");
    if PRIVACY.contains(&privacy.as_str()) {
        Ok(privacy)
    } else {
        Err(input_error(format!(
            "`privacy` must be `closed` or `secret`, not `{privacy}`"
        )))
    }
}

impl Team {
    /// Sets description (ending with `r`'s mark) and privacy on an existing team, if
    /// they differ.
    async fn conform(
        &self,
        team: Json,
        inputs: &Props,
        r: &ResourceRef<'_>,
    ) -> Result<Json, ProviderError> {
        let description = super::marked_description(inputs, r);
        let privacy = privacy(inputs)?;
        if text(&team["description"]) == description && text(&team["privacy"]) == privacy {
            return Ok(team);
        }
        let gh = &self.0;
        gh.send(
            Call::patch(
                "/orgs/{org}/teams/{team_slug}",
                gh.org_path(&format!("/teams/{}", seg(&text(&team["slug"])))),
            )
            .json(json!({"description": description, "privacy": privacy})),
        )
        .await
        .map_err(plain)
    }

    async fn members(&self, slug: &str, inputs: &Props) -> Result<(), ProviderError> {
        match desired_roster(inputs) {
            Some(roster) => self.0.set_roster(slug, &roster).await,
            None => Ok(()),
        }
    }
}

#[async_trait]
impl crate::family::ResourceType for Team {
    fn schema(&self) -> TypeSchema {
        use PropertyType::*;
        TypeSchema {
            name: "github:team".into(),
            description: "A team of the organization. When `maintainers` or `members` is given, the team's membership is exactly those lists (anyone else, such as the creator GitHub adds, is removed); with neither, membership is left alone (for `github:teamMembership`).".into(),
            inputs: vec![
                prop("name", String, "The team's name; its slug is derived from it.")
                    .required()
                    .replace_on_change(),
                prop("description", String, "What the team is for."),
                prop("privacy", String, "`closed` (visible to the organization, the default) or `secret`."),
                prop("maintainers", List, "Logins of the team's maintainers."),
                prop("members", List, "Logins of the team's members."),
            ],
            outputs: vec![
                prop("slug", String, "The team's slug, as URLs and other resources name it."),
                prop("teamId", Int, "The team's numeric id."),
            ],
        }
    }

    async fn create(&self, r: ResourceRef<'_>, inputs: &Props) -> Result<Created, ProviderError> {
        let gh = &self.0;
        let name = inputs.text("name")?;
        let body = json!({
            "name": name,
            "privacy": privacy(inputs)?,
            "description": super::marked_description(inputs, &r),
        });
        let team = match gh
            .send(Call::post("/orgs/{org}/teams", gh.org_path("/teams")).json(body))
            .await
        {
            Ok(team) => team,
            Err(e) if e.status() == Some(422) => {
                // A retried create whose first attempt succeeded: adopt the team, if it
                // is this stack's.
                match gh.team_named(&name).await.map_err(plain)? {
                    Some(team) => {
                        let place = gh.place("github:team", name, text(&team["slug"]));
                        ownership::admit(&r, &owner(&team), &place)?;
                        self.conform(team, inputs, &r).await?
                    }
                    None => {
                        let hint = if already_exists(&e) {
                            "another team has a name that makes the same slug: choose another name"
                        } else {
                            "a team needs a non-empty name, and `privacy` is `closed` or `secret`"
                        };
                        return Err(github_error(e, hint));
                    }
                }
            }
            Err(e) => return Err(plain(e)),
        };
        self.members(&text(&team["slug"]), inputs).await?;
        Ok(Created {
            id: text(&team["slug"]),
            outputs: outputs(&team),
        })
    }

    async fn read(&self, id: &str, inputs: &Props) -> Result<Option<ReadResult>, ProviderError> {
        let gh = &self.0;
        let Some(team) = gh.team(id).await.map_err(plain)? else {
            return Ok(None);
        };
        let mut read = ReadBack::new(inputs);
        read.set("name", text(&team["name"]));
        let (description, _) = Mark::split(&text(&team["description"]));
        read.unless_default("description", description, "");
        read.unless_default("privacy", text(&team["privacy"]), "closed");
        // Membership is reported where it is managed: recorded lists, or on import.
        if inputs.is_empty() || desired_roster(inputs).is_some() {
            let roster = gh.roster(id).await.map_err(plain)?;
            let with = |role: &str| -> Vec<std::string::String> {
                roster
                    .values()
                    .filter(|(_, r)| *r == role)
                    .map(|(login, _)| login.clone())
                    .collect()
            };
            read.names("maintainers", with("maintainer"));
            read.names("members", with("member"));
        }
        Ok(Some(ReadResult {
            inputs: Some(read.done()),
            outputs: outputs(&team),
        }))
    }

    async fn update(
        &self,
        r: ResourceRef<'_>,
        id: &str,
        _olds: &Props,
        news: &Props,
    ) -> Result<Props, ProviderError> {
        let team = self.0.team(id).await.map_err(plain)?.ok_or_else(|| {
            ProviderError::new("404", format!("team `{id}` no longer exists")).with_hint(
                "run `paddock refresh` to forget it, then `paddock up` to create it again",
            )
        })?;
        let team = self.conform(team, news, &r).await?;
        self.members(id, news).await?;
        Ok(outputs(&team))
    }

    async fn delete(&self, id: &str, _props: &Props) -> Result<(), ProviderError> {
        let gh = &self.0;
        gone_ok(
            gh.send(Call::delete(
                "/orgs/{org}/teams/{team_slug}",
                gh.org_path(&format!("/teams/{}", seg(id))),
            ))
            .await,
        )
    }

    async fn find(
        &self,
        r: ResourceRef<'_>,
        inputs: &Props,
    ) -> Result<Option<Created>, ProviderError> {
        let name = inputs.text("name")?;
        Ok(self
            .0
            .team_named(&name)
            .await
            .map_err(plain)?
            .filter(|team| owner(team).made_by(&r))
            .map(|team| Created {
                id: text(&team["slug"]),
                outputs: outputs(&team),
            }))
    }

    async fn owner(&self, id: &str, _: &Props) -> Result<Owner, ProviderError> {
        let team = self.0.team(id).await.map_err(plain)?;
        Ok(team.map_or(Owner::Gone, |t| owner(&t)))
    }

    async fn mark_imported(
        &self,
        r: ResourceRef<'_>,
        id: &str,
        _: &Props,
    ) -> Result<(), ProviderError> {
        let gh = &self.0;
        let Some(team) = gh.team(id).await.map_err(plain)? else {
            return Ok(());
        };
        let (description, _) = Mark::split(&text(&team["description"]));
        gh.send(
            Call::patch(
                "/orgs/{org}/teams/{team_slug}",
                gh.org_path(&format!("/teams/{}", seg(id))),
            )
            .json(json!({"description": Mark::of(&r).append_to(Some(&description))})),
        )
        .await
        .map_err(plain)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn slugs_are_as_github_makes_them() {
        assert_eq!(super::slugify("Platform Team"), "platform-team");
        assert_eq!(super::slugify("A & B!"), "a-b");
    }
}
