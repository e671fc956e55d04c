//! `github:repository`: a repository of the organization, empty or generated from a
//! template; a generated one is handed over only once its files have arrived.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use paddock_engine::provider::{Created, PropertyType, ReadResult, ResourceRef, TypeSchema};
use paddock_engine::{Props, ProviderError, Value};
use serde_json::{Value as Json, json};

use super::{
    GitHub, ReadBack, already_exists, github_error, input_error, plain, prop, seg, spelled, text,
};
use crate::family::{PropsExt, found, gone_ok, props};
use crate::http::{Call, HttpError};
use crate::ownership::{self, Mark, Owner};

pub(crate) struct Repository(pub Arc<GitHub>);

const VISIBILITY: [&str; 3] = ["private", "internal", "public"];
const NAME_HINT: &str = "repository names are up to 100 letters, digits, '-', '_' and '.'";

impl GitHub {
    pub(crate) async fn repository(&self, name: &str) -> Result<Option<Json>, HttpError> {
        found(
            self.send(Call::get("/repos/{owner}/{repo}", self.repo_path(name, "")))
                .await,
        )
    }

    /// A repository's default branch (`main` if GitHub does not say).
    pub(crate) async fn default_branch(&self, repo: &str) -> Result<String, ProviderError> {
        let found = self.repository(repo).await.map_err(plain)?;
        let repo_json = found.ok_or_else(|| {
            ProviderError::new("404", format!("repository `{repo}` does not exist")).with_hint(
                "create it first: reference the `github:repository` so it is made before",
            )
        })?;
        Ok(repo_json["default_branch"]
            .as_str()
            .unwrap_or("main")
            .to_owned())
    }

    /// Whether `owner/repo` has the branch.
    async fn has_branch(&self, owner: &str, repo: &str, branch: &str) -> Result<bool, HttpError> {
        Ok(found(
            self.send(Call::get(
                "/repos/{owner}/{repo}/branches/{branch}",
                format!(
                    "/repos/{}/{}/branches/{}",
                    seg(owner),
                    seg(repo),
                    seg(branch)
                ),
            ))
            .await,
        )?
        .is_some())
    }
}

/// `owner/repo` of a template.
fn template_parts(template: &str) -> Result<(&str, &str), ProviderError> {
    template
        .split_once('/')
        .filter(|(o, r)| !o.is_empty() && !r.is_empty() && !r.contains('/'))
        .ok_or_else(|| {
            input_error(format!(
                "`template` must be `owner/repository`, not `{template}`"
            ))
        })
}

fn visibility(inputs: &Props) -> Result<String, ProviderError> {
    let v = inputs.text_or("visibility", "private");
    if VISIBILITY.contains(&v.as_str()) {
        Ok(v)
    } else {
        Err(input_error(format!(
            "`visibility` must be `private`, `internal` or `public`, not `{v}`"
        )))
    }
}

fn visibility_of(repo: &Json) -> String {
    match repo["visibility"].as_str() {
        Some(v) => v.to_owned(),
        None if repo["private"] == json!(false) => "public".into(),
        None => "private".into(),
    }
}

/// Who made a repository, by the mark ending its description (topics cannot spell a
/// stack's name).
fn owner(repo: &Json) -> Owner {
    ownership::owner_in_text(repo["description"].as_str())
}

fn outputs(repo: &Json) -> Props {
    props([
        ("fullName", Value::String(text(&repo["full_name"]))),
        ("htmlUrl", Value::String(text(&repo["html_url"]))),
        (
            "defaultBranch",
            Value::String(repo["default_branch"].as_str().unwrap_or("main").to_owned()),
        ),
        (
            "repoId",
            Value::Int(repo["id"].as_i64().unwrap_or_default()),
        ),
    ])
}

impl Repository {
    /// Sets description (ending with `r`'s mark), visibility and whether it is a
    /// template on an existing repository, if they differ.
    async fn conform(
        &self,
        repo: Json,
        inputs: &Props,
        r: &ResourceRef<'_>,
    ) -> Result<Json, ProviderError> {
        let description = super::marked_description(inputs, r);
        let visibility = visibility(inputs)?;
        let mut patch = json!({});
        if text(&repo["description"]) != description {
            patch["description"] = json!(description);
        }
        if visibility_of(&repo) != visibility {
            patch["visibility"] = json!(visibility);
        }
        let is_template = inputs.boolean("isTemplate", false);
        if repo["is_template"].as_bool().unwrap_or(false) != is_template {
            patch["is_template"] = json!(is_template);
        }
        if patch.as_object().is_some_and(|p| p.is_empty()) {
            return Ok(repo);
        }
        let gh = &self.0;
        gh.send(
            Call::patch(
                "/repos/{owner}/{repo}",
                gh.repo_path(&text(&repo["name"]), ""),
            )
            .json(patch),
        )
        .await
        .map_err(|e| {
            github_error(
                e,
                "`internal` visibility needs GitHub Enterprise Cloud or Server",
            )
        })
    }

    /// Waits until a repository generated from `template` has its files, if the template
    /// has any: GitHub copies them after answering.
    async fn wait_for_files(&self, repo: &Json, template: &str) -> Result<(), ProviderError> {
        let gh = &self.0;
        let (owner, template_repo) = template_parts(template)?;
        let source = found(
            gh.send(Call::get(
                "/repos/{owner}/{repo}",
                format!("/repos/{}/{}", seg(owner), seg(template_repo)),
            ))
            .await,
        )
        .map_err(plain)?;
        let Some(source) = source else {
            return Ok(());
        };
        let source_branch = source["default_branch"].as_str().unwrap_or("main");
        if !gh
            .has_branch(owner, template_repo, source_branch)
            .await
            .map_err(plain)?
        {
            return Ok(()); // An empty template: nothing to wait for.
        }
        let name = text(&repo["name"]);
        let branch = repo["default_branch"].as_str().unwrap_or(source_branch);
        let started = Instant::now();
        let mut pause = Duration::from_millis(100);
        loop {
            if gh.has_branch(&gh.org, &name, branch).await.map_err(plain)? {
                return Ok(());
            }
            let left = gh.template_wait.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(ProviderError {
                    retryable: true,
                    ..ProviderError::new(
                        "TemplateNotReady",
                        format!(
                            "repository `{name}` was generated from `{template}`, but its files (branch `{branch}`) did not appear within {}s",
                            gh.template_wait.as_secs_f32()
                        ),
                    )
                    .with_hint("GitHub copies a template's files asynchronously and is taking long: run the operation again (the repository is adopted, not duplicated), or raise the template wait")
                });
            }
            tokio::time::sleep(pause.min(left)).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    async fn generate(
        &self,
        inputs: &Props,
        template: &str,
        description: String,
    ) -> Result<Json, HttpError> {
        let gh = &self.0;
        let (owner, template_repo) = template_parts(template).map_err(|e| HttpError::Config {
            api: "github",
            message: e.message,
        })?;
        let body = json!({
            "owner": gh.org,
            "name": inputs.text_or("name", ""),
            "private": inputs.text_or("visibility", "private") != "public",
            "description": description,
        });
        gh.send(
            Call::post(
                "/repos/{template_owner}/{template_repo}/generate",
                format!("/repos/{}/{}/generate", seg(owner), seg(template_repo)),
            )
            .json(body),
        )
        .await
    }

    async fn create_empty(&self, inputs: &Props, description: String) -> Result<Json, HttpError> {
        let gh = &self.0;
        let body = json!({
            "name": inputs.text_or("name", ""),
            "visibility": inputs.text_or("visibility", "private"),
            "is_template": inputs.boolean("isTemplate", false),
            "description": description,
        });
        gh.send(Call::post("/orgs/{org}/repos", gh.org_path("/repos")).json(body))
            .await
    }
}

#[async_trait]
impl crate::family::ResourceType for Repository {
    fn schema(&self) -> TypeSchema {
        use PropertyType::*;
        TypeSchema {
            name: "github:repository".into(),
            description: "A repository of the organization, empty or generated from a template (handed over once the template's files are in it).".into(),
            inputs: vec![
                prop("name", String, "The repository's name.").required().replace_on_change(),
                prop("description", String, "A short description."),
                prop("visibility", String, "`private` (the default), `internal` or `public`."),
                prop("template", String, "`owner/repository` of a template repository to generate it from.")
                    .replace_on_change(),
                prop("isTemplate", Bool, "Whether other repositories can be generated from this one (default false)."),
            ],
            outputs: vec![
                prop("fullName", String, "`organization/name`."),
                prop("htmlUrl", String, "The repository's web page."),
                prop("defaultBranch", String, "The default branch."),
                prop("repoId", Int, "The repository's numeric id."),
            ],
        }
    }

    async fn create(&self, r: ResourceRef<'_>, inputs: &Props) -> Result<Created, ProviderError> {
        let gh = &self.0;
        let name = inputs.text("name")?;
        visibility(inputs)?;
        let template = inputs.opt_text("template");
        if let Some(t) = &template {
            template_parts(t)?;
        }
        let description = super::marked_description(inputs, &r);
        let made = match &template {
            Some(t) => self.generate(inputs, t, description).await,
            None => self.create_empty(inputs, description).await,
        };
        let repo = match made {
            // `internal` and `isTemplate` cannot be asked of a generated repository: they
            // are set after.
            Ok(repo) => self.conform(repo, inputs, &r).await?,
            Err(e) if already_exists(&e) => {
                // A retried create whose first attempt succeeded: adopt the repository,
                // if it is this stack's.
                match gh.repository(&name).await.map_err(plain)? {
                    Some(repo) => {
                        let place = gh.place("github:repository", name, text(&repo["name"]));
                        ownership::admit(&r, &owner(&repo), &place)?;
                        self.conform(repo, inputs, &r).await?
                    }
                    None => return Err(github_error(e, NAME_HINT)),
                }
            }
            Err(e) if e.is_not_found() && template.is_some() => {
                return Err(github_error(
                    e,
                    format!(
                        "the template `{}` does not exist or cannot be read by Paddock's identity",
                        template.unwrap_or_default()
                    ),
                ));
            }
            Err(e) if e.status() == Some(422) => {
                return Err(github_error(
                    e,
                    if template.is_some() {
                        "the template must be marked as a template repository, and the name free and valid: up to 100 letters, digits, '-', '_' and '.'"
                    } else {
                        NAME_HINT
                    },
                ));
            }
            Err(e) => return Err(plain(e)),
        };
        if let Some(t) = &template {
            self.wait_for_files(&repo, t).await?;
        }
        Ok(Created {
            id: text(&repo["name"]),
            outputs: outputs(&repo),
        })
    }

    async fn read(&self, id: &str, inputs: &Props) -> Result<Option<ReadResult>, ProviderError> {
        let Some(repo) = self.0.repository(id).await.map_err(plain)? else {
            return Ok(None);
        };
        let mut read = ReadBack::new(inputs);
        read.set(
            "name",
            spelled(inputs.opt_text("name"), &text(&repo["name"])),
        );
        let (description, _) = Mark::split(&text(&repo["description"]));
        read.unless_default("description", description, "");
        read.unless_default("visibility", visibility_of(&repo), "private");
        let is_template = repo["is_template"].as_bool().unwrap_or(false);
        read.unless_default("isTemplate", is_template, false);
        let template = repo["template_repository"]["full_name"]
            .as_str()
            .map(str::to_owned);
        if let Some(t) = inputs.opt_text("template").or(template) {
            read.set("template", t);
        }
        Ok(Some(ReadResult {
            inputs: Some(read.done()),
            outputs: outputs(&repo),
        }))
    }

    async fn update(
        &self,
        r: ResourceRef<'_>,
        id: &str,
        _olds: &Props,
        news: &Props,
    ) -> Result<Props, ProviderError> {
        let repo = self.0.repository(id).await.map_err(plain)?.ok_or_else(|| {
            ProviderError::new("404", format!("repository `{id}` no longer exists")).with_hint(
                "run `paddock refresh` to forget it, then `paddock up` to create it again",
            )
        })?;
        Ok(outputs(&self.conform(repo, news, &r).await?))
    }

    async fn delete(&self, id: &str, _props: &Props) -> Result<(), ProviderError> {
        let gh = &self.0;
        gone_ok(
            gh.send(Call::delete("/repos/{owner}/{repo}", gh.repo_path(id, "")))
                .await,
        )
    }

    async fn find(
        &self,
        r: ResourceRef<'_>,
        inputs: &Props,
    ) -> Result<Option<Created>, ProviderError> {
        let name = inputs.text("name")?;
        let Some(repo) = self.0.repository(&name).await.map_err(plain)? else {
            return Ok(None);
        };
        if !owner(&repo).made_by(&r) {
            return Ok(None);
        }
        if let Some(t) = inputs.opt_text("template") {
            // Adopted as it is; its files are waited for as a create would, if they come.
            let _ = self.wait_for_files(&repo, &t).await;
        }
        Ok(Some(Created {
            id: text(&repo["name"]),
            outputs: outputs(&repo),
        }))
    }

    async fn owner(&self, id: &str, _: &Props) -> Result<Owner, ProviderError> {
        let repo = self.0.repository(id).await.map_err(plain)?;
        Ok(repo.map_or(Owner::Gone, |r| owner(&r)))
    }

    async fn mark_imported(
        &self,
        r: ResourceRef<'_>,
        id: &str,
        _: &Props,
    ) -> Result<(), ProviderError> {
        let gh = &self.0;
        let Some(repo) = gh.repository(id).await.map_err(plain)? else {
            return Ok(());
        };
        let (description, _) = Mark::split(&text(&repo["description"]));
        gh.send(
            Call::patch("/repos/{owner}/{repo}", gh.repo_path(id, ""))
                .json(json!({"description": Mark::of(&r).append_to(Some(&description))})),
        )
        .await
        .map_err(plain)?;
        Ok(())
    }
}
