//! `github:branchProtection`: a branch's protection (pull request reviews, admins
//! included), id `repository/branch`.

use std::sync::Arc;

use async_trait::async_trait;
use paddock_engine::provider::{Created, PropertyType, ReadResult, ResourceRef, TypeSchema};
use paddock_engine::{Props, ProviderError, Value};
use serde_json::{Value as Json, json};

use super::{GitHub, ReadBack, github_error, input_error, int_or, plain, prop, spelled, split_id};
use crate::family::{PropsExt, found, gone_ok};
use crate::http::Call;

pub(crate) struct BranchProtection(pub Arc<GitHub>);

const TYPE: &str = "github:branchProtection";
const TEMPLATE: &str = "/repos/{owner}/{repo}/branches/{branch}/protection";

impl BranchProtection {
    fn path(&self, repo: &str, branch: &str) -> String {
        self.0.repo_path(
            repo,
            &format!("/branches/{}/protection", super::seg(branch)),
        )
    }

    async fn get(&self, repo: &str, branch: &str) -> Result<Option<Json>, ProviderError> {
        found(
            self.0
                .send(Call::get(TEMPLATE, self.path(repo, branch)))
                .await,
        )
        .map_err(plain)
    }

    /// The branch the inputs name, or the repository's default branch.
    async fn branch(&self, inputs: &Props) -> Result<String, ProviderError> {
        match inputs.opt_text("branch") {
            Some(b) => Ok(b),
            None => self.0.default_branch(&inputs.text("repository")?).await,
        }
    }

    async fn put(&self, inputs: &Props) -> Result<Created, ProviderError> {
        let repo = inputs.text("repository")?;
        let branch = self.branch(inputs).await?;
        let reviews = int_or(inputs, "requiredReviews", 1);
        if !(0..=6).contains(&reviews) {
            return Err(input_error(format!(
                "`requiredReviews` must be between 0 and 6, not {reviews}"
            )));
        }
        let body = json!({
            "required_status_checks": null,
            "enforce_admins": inputs.boolean("enforceAdmins", true),
            "required_pull_request_reviews": {"required_approving_review_count": reviews},
            "restrictions": null,
        });
        self.0
            .send(Call::put(TEMPLATE, self.path(&repo, &branch)).json(body))
            .await
            .map_err(|e| {
                github_error(
                    e,
                    format!("the branch `{branch}` of `{repo}` must exist first: a new repository has no branch until its first commit (one generated from a template gets it with the template's files)"),
                )
            })?;
        Ok(Created {
            id: format!("{repo}/{branch}"),
            outputs: Props::new(),
        })
    }
}

#[async_trait]
impl crate::family::ResourceType for BranchProtection {
    fn schema(&self) -> TypeSchema {
        use PropertyType::*;
        TypeSchema {
            name: TYPE.into(),
            description: "A branch's protection: changes arrive by reviewed pull requests.".into(),
            inputs: vec![
                prop("repository", String, "The repository's name.")
                    .required()
                    .replace_on_change(),
                prop(
                    "branch",
                    String,
                    "The branch; the repository's default branch if left out.",
                )
                .replace_on_change(),
                prop(
                    "requiredReviews",
                    Int,
                    "Approving reviews a pull request needs (0-6, default 1).",
                ),
                prop(
                    "enforceAdmins",
                    Bool,
                    "Whether administrators are held to the rules too (default true).",
                ),
            ],
            outputs: vec![],
        }
    }

    async fn create(&self, _r: ResourceRef<'_>, inputs: &Props) -> Result<Created, ProviderError> {
        // PUT replaces the protection whole: a retried create lands on the same one.
        self.put(inputs).await
    }

    async fn read(&self, id: &str, inputs: &Props) -> Result<Option<ReadResult>, ProviderError> {
        let [repo, branch] = split_id(TYPE, id, "repository/branch")?;
        let Some(protection) = self.get(repo, branch).await? else {
            return Ok(None);
        };
        let mut read = ReadBack::new(inputs);
        read.set("repository", spelled(inputs.opt_text("repository"), repo));
        // Left out, the branch is the default one: reported only if it is another.
        if inputs.contains_key("branch") || self.0.default_branch(repo).await? != branch {
            read.set("branch", branch);
        }
        let reviews =
            protection["required_pull_request_reviews"]["required_approving_review_count"]
                .as_i64()
                .unwrap_or(0);
        read.unless_default("requiredReviews", Value::Int(reviews), Value::Int(1));
        let enforce = protection["enforce_admins"]["enabled"]
            .as_bool()
            .unwrap_or(false);
        read.unless_default("enforceAdmins", enforce, true);
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
        let [repo, branch] = split_id(TYPE, id, "repository/branch")?;
        gone_ok(
            self.0
                .send(Call::delete(TEMPLATE, self.path(repo, branch)))
                .await,
        )
    }

    async fn find(
        &self,
        _r: ResourceRef<'_>,
        inputs: &Props,
    ) -> Result<Option<Created>, ProviderError> {
        let repo = inputs.text("repository")?;
        let branch = match self.branch(inputs).await {
            Ok(b) => b,
            Err(e) if e.code == "404" => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(self.get(&repo, &branch).await?.map(|_| Created {
            id: format!("{repo}/{branch}"),
            outputs: Props::new(),
        }))
    }
}
