//! `github:environmentSecret`: a secret a deployment environment hands its workflows;
//! id `repository/environment/name`. (Variables are in `variables.rs`.)
//!
//! A secret's value is sealed (libsodium's sealed box) for the environment's public key
//! before it is sent, and GitHub never gives it back: `read` sees whether the secret
//! exists, and returns the recorded value.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use paddock_engine::provider::{Created, PropertyType, ReadResult, ResourceRef, TypeSchema};
use paddock_engine::{Props, ProviderError, Value};
use serde_json::{Value as Json, json};

use super::{GitHub, ReadBack, github_error, plain, prop, seg, spelled, text};
use crate::family::{PropsExt, found, gone_ok};
use crate::http::Call;

pub(crate) struct EnvironmentSecret(pub Arc<GitHub>);

const SECRET: &str = "github:environmentSecret";
const SECRET_TEMPLATE: &str =
    "/repos/{owner}/{repo}/environments/{environment_name}/secrets/{secret_name}";
pub(super) const NAME_HINT: &str = "names are letters, digits and '_', not starting with a digit or GITHUB_; the repository and the environment must exist";

/// `repository/environment/name` (the environment's name may hold `/`).
pub(super) fn parse_id<'a>(
    ty: &str,
    id: &'a str,
) -> Result<(&'a str, &'a str, &'a str), ProviderError> {
    id.split_once('/')
        .and_then(|(repo, rest)| {
            let (env, name) = rest.rsplit_once('/')?;
            Some((repo, env, name))
        })
        .filter(|(r, e, n)| !r.is_empty() && !e.is_empty() && !n.is_empty())
        .ok_or_else(|| {
            ProviderError::new(
                "InvalidId",
                format!("`{id}` is not an id of `{ty}`: expected `repository/environment/name`"),
            )
        })
}

/// The three parts of the natural key, from the inputs.
fn key(inputs: &Props) -> Result<(String, String, String), ProviderError> {
    Ok((
        inputs.text("repository")?,
        inputs.text("environment")?,
        inputs.text("name")?,
    ))
}

fn id_of((repo, env, name): &(String, String, String)) -> String {
    format!("{repo}/{env}/{name}")
}

/// The inputs that name the object, as recorded, else as the id spells them.
pub(super) fn read_key(
    read: &mut ReadBack<'_>,
    prior: &Props,
    (repo, env, name): (&str, &str, &str),
) {
    read.set("repository", spelled(prior.opt_text("repository"), repo));
    read.set("environment", spelled(prior.opt_text("environment"), env));
    read.set("name", spelled(prior.opt_text("name"), name));
}

impl EnvironmentSecret {
    fn path(&self, repo: &str, env: &str, name: &str) -> String {
        self.0
            .environment_path(repo, env, &format!("/secrets/{}", seg(name)))
    }

    async fn get(&self, repo: &str, env: &str, name: &str) -> Result<Option<Json>, ProviderError> {
        found(
            self.0
                .send(Call::get(SECRET_TEMPLATE, self.path(repo, env, name)))
                .await,
        )
        .map_err(plain)
    }

    /// Seals the value for the environment's key and stores it.
    async fn put(&self, inputs: &Props) -> Result<Created, ProviderError> {
        let gh = &self.0;
        let key = key(inputs)?;
        let (repo, env, name) = &key;
        let value = inputs.text("value")?;
        let public = gh
            .send(Call::get(
                "/repos/{owner}/{repo}/environments/{environment_name}/secrets/public-key",
                gh.environment_path(repo, env, "/secrets/public-key"),
            ))
            .await
            .map_err(|e| {
                github_error(
                    e,
                    format!("the environment `{env}` of `{repo}` must exist first"),
                )
            })?;
        let sealed = seal(&public, &value)?;
        gh.send(
            Call::put(SECRET_TEMPLATE, self.path(repo, env, name))
                .json(json!({"encrypted_value": sealed, "key_id": public["key_id"]})),
        )
        .await
        .map_err(|e| github_error(e, NAME_HINT))?;
        Ok(Created {
            id: id_of(&key),
            outputs: Props::new(),
        })
    }
}

/// `value` in a libsodium sealed box for the environment's public key, base64.
fn seal(public: &Json, value: &str) -> Result<String, ProviderError> {
    let bad_key = || {
        ProviderError::new(
            "InvalidPublicKey",
            "GitHub's public key for the environment is not a base64 X25519 key",
        )
    };
    let bytes = B64.decode(text(&public["key"])).map_err(|_| bad_key())?;
    let key = crypto_box::PublicKey::from_slice(&bytes).map_err(|_| bad_key())?;
    let sealed = key
        .seal(&mut rand::rngs::OsRng, value.as_bytes())
        .map_err(|_| ProviderError::new("SealFailed", "the secret could not be sealed"))?;
    Ok(B64.encode(sealed))
}

#[async_trait]
impl crate::family::ResourceType for EnvironmentSecret {
    fn schema(&self) -> TypeSchema {
        use PropertyType::*;
        TypeSchema {
            name: SECRET.into(),
            description: "A secret of a deployment environment, sealed for the environment's key before it is sent. GitHub never shows it again: drift in its value cannot be seen, only its absence.".into(),
            inputs: vec![
                prop("repository", String, "The repository's name.")
                    .required()
                    .replace_on_change(),
                prop("environment", String, "The environment's name.")
                    .required()
                    .replace_on_change(),
                prop("name", String, "The secret's name (GitHub upper-cases it).")
                    .required()
                    .replace_on_change(),
                prop("value", String, "The secret's value.").required().secret(),
            ],
            outputs: vec![],
        }
    }

    async fn create(&self, _r: ResourceRef<'_>, inputs: &Props) -> Result<Created, ProviderError> {
        // PUT creates or replaces: a retried create lands on the same secret.
        self.put(inputs).await
    }

    async fn read(&self, id: &str, inputs: &Props) -> Result<Option<ReadResult>, ProviderError> {
        let (repo, env, name) = parse_id(SECRET, id)?;
        if self.get(repo, env, name).await?.is_none() {
            return Ok(None);
        }
        let mut read = ReadBack::new(inputs);
        read_key(&mut read, inputs, (repo, env, name));
        // GitHub never returns the value: the recorded one stands.
        if let Some(value) = inputs.get("value") {
            read.set("value", Value::secret(value.clone()));
        }
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
        Ok(self.put(news).await?.outputs)
    }

    async fn delete(&self, id: &str, _props: &Props) -> Result<(), ProviderError> {
        let (repo, env, name) = parse_id(SECRET, id)?;
        gone_ok(
            self.0
                .send(Call::delete(SECRET_TEMPLATE, self.path(repo, env, name)))
                .await,
        )
    }

    async fn find(
        &self,
        _r: ResourceRef<'_>,
        inputs: &Props,
    ) -> Result<Option<Created>, ProviderError> {
        let key = key(inputs)?;
        Ok(self.get(&key.0, &key.1, &key.2).await?.map(|_| Created {
            id: id_of(&key),
            outputs: Props::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_split_around_an_environment_with_slashes() {
        assert_eq!(
            super::parse_id("t", "repo/env/NAME").unwrap(),
            ("repo", "env", "NAME")
        );
        assert_eq!(
            super::parse_id("t", "repo/team/prod/NAME").unwrap(),
            ("repo", "team/prod", "NAME")
        );
        assert!(super::parse_id("t", "repo/NAME").is_err());
    }

    #[test]
    fn sealed_values_open_with_the_environments_key() {
        use base64::Engine as _;
        let secret = crypto_box::SecretKey::generate(&mut rand::rngs::OsRng);
        let public = serde_json::json!({
            "key_id": "1",
            "key": super::B64.encode(secret.public_key().as_bytes()),
        });
        let sealed = super::seal(&public, "hunter2").unwrap();
        let opened = secret.unseal(&super::B64.decode(sealed).unwrap()).unwrap();
        assert_eq!(opened, b"hunter2");
    }
}
