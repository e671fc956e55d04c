//! Policy pack versions: read by anyone signed in, published and evaluated by platform
//! admins. The newest version is the one enforced.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::*;
use crate::policy_packs::{self, stored_files};

/// A policy pack version (without its files).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyPackView {
    pub version: i64,
    /// `sha256:` over the files' names and contents.
    pub digest: String,
    pub description: String,
    pub published_by: String,
    pub published_at: String,
    /// Whether this is the version in force (the newest).
    pub active: bool,
}

/// A policy pack version with its files.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyPackFilesView {
    #[serde(flatten)]
    pub version: PolicyPackView,
    /// File name → content: `*.rego` modules and `data.json`.
    pub files: BTreeMap<String, String>,
}

impl PolicyPackView {
    pub(crate) fn of(v: &db::PolicyPackVersion, active: Option<i64>) -> PolicyPackView {
        PolicyPackView {
            version: v.version,
            digest: v.digest.clone(),
            description: v.description.clone(),
            published_by: v.published_by.clone(),
            published_at: time(v.published_at),
            active: active == Some(v.version),
        }
    }
}

/// A new version: its description and every file.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewPolicyPack {
    /// What changed, for the people who read the history.
    #[serde(default)]
    pub description: String,
    /// File name → content: `*.rego` modules (`package paddock.policies.<name>`) and an
    /// optional `data.json`.
    pub files: BTreeMap<String, String>,
}

/// An input document to decide on, against the active version or a given one.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyEvaluation {
    /// A request-point or plan-point input document (see `policies/README.md`).
    #[schema(value_type = Object)]
    pub input: serde_json::Value,
    /// The version to evaluate; default the active one.
    #[serde(default)]
    pub version: Option<i64>,
}

const MAX_DESCRIPTION: usize = 500;

#[utoipa::path(get, path = "/api/v1/policy-packs", tag = "policies",
    responses((status = 200, body = [PolicyPackView]), (status = 401, body = Problem)))]
pub(crate) async fn list_policy_packs(axum::extract::State(state): State, ctx: Ctx) -> ApiResult {
    state
        .authorize(&ctx, Action::ReadPolicies, "policy-packs")
        .await?;
    let all = state.db.policy_packs().await?;
    let active = all.first().map(|v| v.version);
    Ok(json(
        &all.iter()
            .map(|v| PolicyPackView::of(v, active))
            .collect::<Vec<_>>(),
    ))
}

#[utoipa::path(get, path = "/api/v1/policy-packs/{version}", tag = "policies",
    params(("version" = i64, Path)),
    responses((status = 200, body = PolicyPackFilesView), (status = 404, body = Problem)))]
pub(crate) async fn show_policy_pack(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(version): Path<String>,
) -> ApiResult {
    state
        .authorize(&ctx, Action::ReadPolicies, "policy-packs")
        .await?;
    Ok(json(&policy_pack_files(&state, &version).await?))
}

/// A version with its files, named by the path's text (404 for anything not a version).
pub(crate) async fn policy_pack_files(
    state: &AppState,
    version: &str,
) -> ApiResult<PolicyPackFilesView> {
    let missing = || Problem::not_found(format!("policy pack version {version}"));
    let number: i64 = version.parse().map_err(|_| missing())?;
    let row = state.db.policy_pack(number).await?.ok_or_else(missing)?;
    let active = state.db.active_policy_pack_version().await?;
    Ok(PolicyPackFilesView {
        version: PolicyPackView::of(&row, active),
        files: stored_files(&row)?,
    })
}

#[utoipa::path(post, path = "/api/v1/policy-packs", tag = "policies",
    request_body = NewPolicyPack,
    responses(
        (status = 201, body = PolicyPackView, description = "Published; it is enforced from now on"),
        (status = 200, body = PolicyPackView, description = "The newest version has these very files: nothing published"),
        (status = 403, body = Problem),
        (status = 422, body = Problem, description = "A file does not compile (named with its line), or the pack's own tests fail (each named)")))]
pub(crate) async fn publish_policy_pack(
    axum::extract::State(state): State,
    ctx: Ctx,
    body: Body<NewPolicyPack>,
) -> ApiResult {
    let (view, created) = publish_pack(&state, &ctx, body.value).await?;
    let body = serde_json::to_string(&view).unwrap_or_default();
    Ok(if created {
        json_response(
            StatusCode::CREATED,
            &body,
            Some(&format!("/api/v1/policy-packs/{}", view.version)),
        )
    } else {
        json_response(StatusCode::OK, &body, None)
    })
}

/// Publishes a new version (the API's and the portal's one way), or finds the newest
/// already has these files (`false`).
pub(crate) async fn publish_pack(
    state: &AppState,
    ctx: &Ctx,
    new: NewPolicyPack,
) -> ApiResult<(PolicyPackView, bool)> {
    let caller = state
        .authorize(ctx, Action::PublishPolicies, "policy-packs")
        .await?;
    if new.description.chars().count() > MAX_DESCRIPTION {
        return Err(Problem::field(
            "description",
            format!("at most {MAX_DESCRIPTION} characters"),
        ));
    }
    let pack = policy_packs::admit(&new.files)?;
    let mut tx = state.db.write().await?;
    let (published, created) = policy_packs::publish(
        &mut tx,
        &pack,
        new.description.trim(),
        &caller.user.login,
        &ctx.source,
    )
    .await?;
    tx.commit().await?;
    Ok((
        PolicyPackView::of(&published, Some(published.version)),
        created,
    ))
}

#[utoipa::path(post, path = "/api/v1/policy-packs/evaluate", tag = "policies",
    request_body = PolicyEvaluation,
    responses(
        (status = 200, body = Object, description = "The decision: `outcome` (allow, deny, requireApproval), `denials` and `approvals` (each `rule`, `field`, `message`, `approvers`), and the `version` that decided"),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem, description = "The input could not be evaluated")))]
pub(crate) async fn evaluate_policy_pack(
    axum::extract::State(state): State,
    ctx: Ctx,
    body: Body<PolicyEvaluation>,
) -> ApiResult {
    state
        .authorize(&ctx, Action::EvaluatePolicies, "policy-packs")
        .await?;
    let PolicyEvaluation { input, version } = body.value;
    if !input.is_object() {
        return Err(Problem::field("input", "must be a JSON object"));
    }
    let (version, pack) = match version {
        Some(v) => (v, std::sync::Arc::new(state.policy_pack_version(v).await?)),
        None => state.active_policy_pack().await?,
    };
    let decision = pack
        .evaluate(&input)
        .map_err(|e| Problem::field("input", e.to_string()))?;
    let mut answer = serde_json::to_value(&decision).unwrap_or_default();
    answer["version"] = serde_json::json!(version);
    Ok(json(&answer))
}
