//! Published blueprint versions.

use super::*;

// --- blueprints ------------------------------------------------------------------------

#[utoipa::path(get, path = "/api/v1/blueprints", tag = "blueprints",
    responses((status = 200, body = [BlueprintView])))]
pub(crate) async fn list_blueprints(axum::extract::State(state): State, ctx: Ctx) -> ApiResult {
    state
        .authorize(&ctx, Action::ListBlueprints, "blueprints")
        .await?;
    let all = state.db.blueprints().await?;
    Ok(json(
        &all.iter().map(BlueprintView::from).collect::<Vec<_>>(),
    ))
}

#[utoipa::path(get, path = "/api/v1/blueprints/{name}/versions/{version}", tag = "blueprints",
    params(("name" = String, Path), ("version" = String, Path)),
    responses((status = 200, body = BlueprintView), (status = 404, body = Problem)))]
pub(crate) async fn show_blueprint(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult {
    let b = published(&state, &ctx, &name, &version).await?;
    Ok(json(&BlueprintView::from(&b)))
}

#[utoipa::path(get, path = "/api/v1/blueprints/{name}/versions/{version}/schema", tag = "blueprints",
    params(("name" = String, Path), ("version" = String, Path)),
    responses((status = 200, content_type = "application/schema+json", body = Object,
        description = "The version's parameters as JSON Schema (2020-12): what a request may \
            ask for, checked exactly as the server checks it"),
        (status = 401, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn blueprint_schema(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult {
    let b = published(&state, &ctx, &name, &version).await?;
    let mut schema: serde_json::Value = serde_json::from_str(&b.parameters)
        .map_err(|e| Problem::internal(format!("blueprint {name}@{version}'s schema: {e}")))?;
    // The `$id` is where the document lives, absolute so that a reader can resolve it.
    schema["$id"] = serde_json::json!(format!(
        "{}/api/v1/blueprints/{name}/versions/{version}/schema",
        state.public_url
    ));
    let body = serde_json::to_string_pretty(&schema).unwrap_or_default();
    let mut response = json_response(StatusCode::OK, &body, None);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/schema+json"),
    );
    Ok(response)
}

/// A published blueprint version, for anyone signed in.
async fn published(
    state: &AppState,
    ctx: &Ctx,
    name: &str,
    version: &str,
) -> ApiResult<db::BlueprintVersion> {
    state
        .authorize(ctx, Action::ListBlueprints, "blueprints")
        .await?;
    state
        .db
        .blueprint(name, version)
        .await?
        .ok_or_else(|| Problem::not_found(format!("blueprint {name}@{version}")))
}
