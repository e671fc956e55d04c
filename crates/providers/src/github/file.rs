//! `github:file`: a file on a repository's default branch, written by a commit; id
//! `repository/path`.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use paddock_engine::provider::{Created, PropertyType, ReadResult, ResourceRef, TypeSchema};
use paddock_engine::{Props, ProviderError, Value};
use serde_json::{Value as Json, json};

use super::{GitHub, ReadBack, github_error, plain, prop, spelled, split_id, text};
use crate::family::{PropsExt, found, gone_ok, props};
use crate::http::Call;

pub(crate) struct File(pub Arc<GitHub>);

const TYPE: &str = "github:file";
const TEMPLATE: &str = "/repos/{owner}/{repo}/contents/{path}";

impl File {
    fn path(&self, repo: &str, path: &str) -> String {
        let encoded: Vec<String> = path.split('/').map(super::seg).collect();
        self.0
            .repo_path(repo, &format!("/contents/{}", encoded.join("/")))
    }

    async fn get(&self, repo: &str, path: &str) -> Result<Option<Json>, ProviderError> {
        found(
            self.0
                .send(Call::get(TEMPLATE, self.path(repo, path)))
                .await,
        )
        .map_err(plain)
    }

    /// Writes the file as the inputs say, unless it already says so.
    async fn put(&self, inputs: &Props) -> Result<Created, ProviderError> {
        let (repo, path) = (inputs.text("repository")?, inputs.text("path")?);
        let content = inputs.text("content")?;
        let id = format!("{repo}/{path}");
        let existing = self.get(&repo, &path).await?;
        if let Some(file) = &existing
            && decode(file).as_deref() == Some(content.as_str())
        {
            return Ok(Created {
                id,
                outputs: outputs(file),
            });
        }
        let mut body = json!({
            "message": inputs.text_or("message", &format!("Paddock: {path}")),
            "content": B64.encode(content.as_bytes()),
        });
        if let Some(file) = &existing {
            body["sha"] = file["sha"].clone();
        }
        let written = self
            .0
            .send(Call::put(TEMPLATE, self.path(&repo, &path)).json(body))
            .await
            .map_err(|e| {
                github_error(
                    e,
                    format!("the repository `{repo}` must exist; a conflict means the file changed meanwhile, and the operation can be run again"),
                )
            })?;
        Ok(Created {
            id,
            outputs: outputs(&written["content"]),
        })
    }
}

/// A file's text, from its base64 `content` (GitHub wraps it in lines).
fn decode(file: &Json) -> Option<String> {
    let b64: String = text(&file["content"]).split_whitespace().collect();
    String::from_utf8(B64.decode(b64).ok()?).ok()
}

fn outputs(file: &Json) -> Props {
    props([("sha", Value::String(text(&file["sha"])))])
}

#[async_trait]
impl crate::family::ResourceType for File {
    fn schema(&self) -> TypeSchema {
        use PropertyType::*;
        TypeSchema {
            name: TYPE.into(),
            description: "A text file on a repository's default branch, written by a commit."
                .into(),
            inputs: vec![
                prop("repository", String, "The repository's name.")
                    .required()
                    .replace_on_change(),
                prop("path", String, "The file's path in the repository.")
                    .required()
                    .replace_on_change(),
                prop("content", String, "The file's text.").required(),
                prop(
                    "message",
                    String,
                    "The commit message (default `Paddock: PATH`).",
                ),
            ],
            outputs: vec![prop("sha", String, "The file's blob sha.")],
        }
    }

    async fn create(&self, _r: ResourceRef<'_>, inputs: &Props) -> Result<Created, ProviderError> {
        // A file that already has this content is adopted as it is.
        self.put(inputs).await
    }

    async fn read(&self, id: &str, inputs: &Props) -> Result<Option<ReadResult>, ProviderError> {
        let [repo, path] = split_id(TYPE, id, "repository/path")?;
        let Some(file) = self.get(repo, path).await? else {
            return Ok(None);
        };
        let mut read = ReadBack::new(inputs);
        read.set("repository", spelled(inputs.opt_text("repository"), repo));
        read.set("path", path);
        read.set("content", decode(&file).unwrap_or_default());
        // A commit message is history, not state: the recorded one stands.
        if let Some(message) = inputs.opt_text("message") {
            read.set("message", message);
        }
        Ok(Some(ReadResult {
            inputs: Some(read.done()),
            outputs: outputs(&file),
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
        let [repo, path] = split_id(TYPE, id, "repository/path")?;
        let Some(file) = self.get(repo, path).await? else {
            return Ok(());
        };
        gone_ok(
            self.0
                .send(Call::delete(TEMPLATE, self.path(repo, path)).json(json!({
                    "message": format!("Paddock: remove {path}"),
                    "sha": file["sha"],
                })))
                .await,
        )
    }

    async fn find(
        &self,
        _r: ResourceRef<'_>,
        inputs: &Props,
    ) -> Result<Option<Created>, ProviderError> {
        let (repo, path) = (inputs.text("repository")?, inputs.text("path")?);
        Ok(self.get(&repo, &path).await?.map(|file| Created {
            id: format!("{repo}/{path}"),
            outputs: outputs(&file),
        }))
    }
}
