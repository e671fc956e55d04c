//! `github:environmentVariable` (id `repository/environment/name`) and
//! `github:repositoryVariable` (id `repository/name`): Actions variables, the same API at
//! two levels. A workflow's `vars.X` is the job's environment's `X` if it has one, else the
//! repository's: a value every stage shares is set once on the repository.

use std::sync::Arc;

use async_trait::async_trait;
use paddock_engine::provider::{Created, PropertyType, ReadResult, ResourceRef, TypeSchema};
use paddock_engine::{Props, ProviderError};
use serde_json::{Value as Json, json};

use super::secrets::{NAME_HINT, parse_id, read_key};
use super::{GitHub, ReadBack, already_exists, github_error, plain, prop, seg, spelled, text};
use crate::family::{PropsExt, found, gone_ok};
use crate::http::Call;

/// Where a variable lives.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Repository,
    Environment,
}

pub(crate) struct Variable {
    gh: Arc<GitHub>,
    level: Level,
}

pub(crate) fn environment(gh: Arc<GitHub>) -> Variable {
    Variable {
        gh,
        level: Level::Environment,
    }
}

pub(crate) fn repository(gh: Arc<GitHub>) -> Variable {
    Variable {
        gh,
        level: Level::Repository,
    }
}

/// The natural key: repository, environment (none at repository level), name.
struct Key {
    repo: String,
    env: Option<String>,
    name: String,
}

impl Key {
    fn id(&self) -> String {
        match &self.env {
            Some(env) => format!("{}/{env}/{}", self.repo, self.name),
            None => format!("{}/{}", self.repo, self.name),
        }
    }
}

impl Variable {
    fn ty(&self) -> &'static str {
        match self.level {
            Level::Repository => "github:repositoryVariable",
            Level::Environment => "github:environmentVariable",
        }
    }

    fn key(&self, inputs: &Props) -> Result<Key, ProviderError> {
        Ok(Key {
            repo: inputs.text("repository")?,
            env: match self.level {
                Level::Environment => Some(inputs.text("environment")?),
                Level::Repository => None,
            },
            name: inputs.text("name")?,
        })
    }

    fn parse_id(&self, id: &str) -> Result<Key, ProviderError> {
        let (repo, env, name) = match self.level {
            Level::Environment => {
                let (repo, env, name) = parse_id(self.ty(), id)?;
                (repo, Some(env), name)
            }
            Level::Repository => {
                let [repo, name] = super::split_id(self.ty(), id, "repository/name")?;
                (repo, None, name)
            }
        };
        Ok(Key {
            repo: repo.to_owned(),
            env: env.map(str::to_owned),
            name: name.to_owned(),
        })
    }

    /// The variables' collection (`name` none) or one variable, and its URL template.
    fn path(&self, key: &Key, name: Option<&str>) -> (&'static str, String) {
        let tail = name.map_or_else(String::new, |n| format!("/{}", seg(n)));
        match &key.env {
            Some(env) => (
                if name.is_some() {
                    "/repos/{owner}/{repo}/environments/{environment_name}/variables/{name}"
                } else {
                    "/repos/{owner}/{repo}/environments/{environment_name}/variables"
                },
                self.gh
                    .environment_path(&key.repo, env, &format!("/variables{tail}")),
            ),
            None => (
                if name.is_some() {
                    "/repos/{owner}/{repo}/actions/variables/{name}"
                } else {
                    "/repos/{owner}/{repo}/actions/variables"
                },
                self.gh
                    .repo_path(&key.repo, &format!("/actions/variables{tail}")),
            ),
        }
    }

    async fn get(&self, key: &Key) -> Result<Option<Json>, ProviderError> {
        let (template, path) = self.path(key, Some(&key.name));
        found(self.gh.send(Call::get(template, path)).await).map_err(plain)
    }

    async fn patch(&self, key: &Key, value: &str) -> Result<(), ProviderError> {
        let (template, path) = self.path(key, Some(&key.name));
        self.gh
            .send(Call::patch(template, path).json(json!({"name": key.name, "value": value})))
            .await
            .map(drop)
            .map_err(plain)
    }
}

#[async_trait]
impl crate::family::ResourceType for Variable {
    fn schema(&self) -> TypeSchema {
        use PropertyType::*;
        let mut inputs = vec![
            prop("repository", String, "The repository's name.")
                .required()
                .replace_on_change(),
        ];
        if self.level == Level::Environment {
            inputs.push(
                prop("environment", String, "The environment's name.")
                    .required()
                    .replace_on_change(),
            );
        }
        inputs.push(
            prop(
                "name",
                String,
                "The variable's name (GitHub upper-cases it).",
            )
            .required()
            .replace_on_change(),
        );
        inputs.push(prop("value", String, "The variable's value.").required());
        TypeSchema {
            name: self.ty().into(),
            description: match self.level {
                Level::Environment => "A variable of a deployment environment (not secret: anyone who can read the repository sees it). It takes precedence over the repository's variable of the same name in jobs running in that environment.",
                Level::Repository => "A variable of a repository, seen by every workflow as `vars.NAME` unless the job's environment has one of the same name (not secret: anyone who can read the repository sees it).",
            }
            .into(),
            inputs,
            outputs: vec![],
        }
    }

    async fn create(&self, _r: ResourceRef<'_>, inputs: &Props) -> Result<Created, ProviderError> {
        let key = self.key(inputs)?;
        let value = inputs.text("value")?;
        let (template, path) = self.path(&key, None);
        let created = self
            .gh
            .send(Call::post(template, path).json(json!({"name": key.name, "value": value})))
            .await;
        match created {
            Ok(_) => {}
            // A retried create whose first attempt succeeded: adopt it, with this value
            // (written only if it differs: GitHub counts every write against its limits).
            Err(e) if already_exists(&e) => {
                let current = self.get(&key).await?;
                if current.is_none_or(|v| text(&v["value"]) != value) {
                    self.patch(&key, &value).await?;
                }
            }
            Err(e) => return Err(github_error(e, NAME_HINT)),
        }
        Ok(Created {
            id: key.id(),
            outputs: Props::new(),
        })
    }

    async fn read(&self, id: &str, inputs: &Props) -> Result<Option<ReadResult>, ProviderError> {
        let key = self.parse_id(id)?;
        let Some(variable) = self.get(&key).await? else {
            return Ok(None);
        };
        let mut read = ReadBack::new(inputs);
        match &key.env {
            Some(env) => read_key(
                &mut read,
                inputs,
                (key.repo.as_str(), env.as_str(), key.name.as_str()),
            ),
            None => {
                read.set(
                    "repository",
                    spelled(inputs.opt_text("repository"), &key.repo),
                );
                read.set("name", spelled(inputs.opt_text("name"), &key.name));
            }
        }
        read.set("value", text(&variable["value"]));
        Ok(Some(ReadResult {
            inputs: Some(read.done()),
            outputs: Props::new(),
        }))
    }

    async fn update(
        &self,
        _r: ResourceRef<'_>,
        _id: &str,
        _olds: &Props,
        news: &Props,
    ) -> Result<Props, ProviderError> {
        let key = self.key(news)?;
        self.patch(&key, &news.text_or("value", "")).await?;
        Ok(Props::new())
    }

    async fn delete(&self, id: &str, _props: &Props) -> Result<(), ProviderError> {
        let key = self.parse_id(id)?;
        let (template, path) = self.path(&key, Some(&key.name));
        gone_ok(self.gh.send(Call::delete(template, path)).await)
    }

    async fn find(
        &self,
        _r: ResourceRef<'_>,
        inputs: &Props,
    ) -> Result<Option<Created>, ProviderError> {
        let key = self.key(inputs)?;
        Ok(self.get(&key).await?.map(|_| Created {
            id: key.id(),
            outputs: Props::new(),
        }))
    }
}
