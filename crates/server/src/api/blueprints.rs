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
    state
        .authorize(&ctx, Action::ListBlueprints, "blueprints")
        .await?;
    let b = state
        .db
        .blueprint(&name, &version)
        .await?
        .ok_or_else(|| Problem::not_found(format!("blueprint {name}@{version}")))?;
    Ok(json(&BlueprintView::from(&b)))
}
