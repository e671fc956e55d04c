//! The OpenAPI 3.1 document, generated from the handlers' annotations and the views'
//! schemas, served at `/api/v1/openapi.json`.

use axum::response::IntoResponse;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::{api, events, problem, views};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Paddock",
        description = "Self-service environments behind guardrails. Changes are accepted as \
            operations (202 + Location) that workers run; follow them with the events \
            endpoints (Server-Sent Events). One operation per environment at a time: a \
            request for another while one is queued or running gets 409 naming it. Errors \
            are application/problem+json. Authenticate with `Authorization: Bearer <API \
            token>` or a session cookie (then send `X-CSRF-Token` with changes). POSTs \
            that start operations accept an `Idempotency-Key` header.",
    ),
    paths(
        api::me, api::list_tokens, api::create_token, api::revoke_token,
        api::list_users, api::create_user,
        api::list_teams, api::create_team, api::show_team, api::set_member, api::remove_member,
        api::team_operations,
        api::list_blueprints, api::show_blueprint, api::blueprint_schema,
        api::list_environments, api::create_environment, api::show_environment,
        api::update_environment,
        api::environment_operations, api::create_operation, api::outputs, api::resources,
        api::put_expiry, api::show_drift, api::accept_drift,
        events::environment_events,
        api::show_operation, events::operation_events, api::cancel_operation, api::retry_operation,
        api::list_audit, api::export_audit, api::verify_audit,
        api::list_approvals, api::show_approval, api::approve, api::reject,
        api::publish_version, api::show_upgrade, api::upgrade_environment, api::pin_environment,
        api::start_rollout, api::list_rollouts, api::show_rollout, api::cancel_rollout,
        api::list_policy_packs, api::show_policy_pack, api::publish_policy_pack,
        api::evaluate_policy_pack,
    ),
    components(schemas(problem::Problem, problem::FieldError, views::OperationKind)),
    modifiers(&Security),
    security(("token" = []), ("session" = [])),
    tags(
        (name = "people"), (name = "teams"), (name = "blueprints"),
        (name = "environments"), (name = "operations"), (name = "audit"),
        (name = "approvals"),
        (name = "environments"), (name = "operations"), (name = "audit"), (name = "policies"),
    )
)]
pub struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                crate::auth::SESSION_COOKIE,
            ))),
        );
    }
}

pub async fn document() -> impl IntoResponse {
    axum::Json(ApiDoc::openapi())
}
