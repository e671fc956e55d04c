//! The OpenAPI 3.1 document, generated from the handlers' annotations and the views'
//! schemas, served at `/api/v1/openapi.json`.

use axum::response::IntoResponse;
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Header, Object, Ref, RefOr, Response, Type};

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
    modifiers(&Security, &Refusals),
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

/// The refusals every operation can answer, declared from what the operation takes (the
/// handlers' annotations name only the refusals particular to them), and every error
/// declared as `application/problem+json`, as it is sent.
struct Refusals;

impl utoipa::Modify for Refusals {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                declare_refusals(operation);
            }
        }
    }
}

fn declare_refusals(operation: &mut Operation) {
    let takes = |place: ParameterIn| {
        operation
            .parameters
            .iter()
            .flatten()
            .any(|p| p.parameter_in == place)
    };
    let (path, query, header) = (
        takes(ParameterIn::Path),
        takes(ParameterIn::Query),
        takes(ParameterIn::Header),
    );
    let body = operation.request_body.is_some();
    let mut refusals = vec![
        (
            "401",
            "Not signed in, or the credential is wrong, revoked or expired",
        ),
        (
            "403",
            "Not allowed (the policy's reason), or a session's change without its CSRF token",
        ),
        (
            "503",
            "The database could not complete the request; try again",
        ),
    ];
    if path || body || header {
        refusals.push((
            "400",
            "A malformed path, body or header, naming the part at fault",
        ));
    }
    if path {
        refusals.push(("404", "A thing the path names does not exist"));
    }
    if body || query || header {
        refusals.push((
            "422",
            "Invalid input, each field at fault named in `errors`",
        ));
    }
    if body {
        refusals.push(("413", "The body is larger than the server accepts"));
        refusals.push(("415", "The body is not `application/json`"));
    }
    let responses = &mut operation.responses.responses;
    for (status, description) in refusals {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(Response::new(description)));
    }
    for (status, response) in responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        if !status.starts_with(['4', '5']) {
            continue;
        }
        response.content.clear();
        response.content.insert(
            "application/problem+json".to_owned(),
            Content::new(Some(Ref::from_schema_name("Problem"))),
        );
        if status == "401" {
            response.headers.insert(
                "WWW-Authenticate".to_owned(),
                Header::new(Object::with_type(Type::String)),
            );
        }
    }
}

pub async fn document() -> impl IntoResponse {
    axum::Json(ApiDoc::openapi())
}
