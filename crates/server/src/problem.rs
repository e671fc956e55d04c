//! Errors as RFC 9457 problem details (`application/problem+json`): a type, a title, the
//! status, a detail a person can act on, and for invalid input the fields at fault.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use paddock_store::db::DbError;
use serde::Serialize;
use utoipa::ToSchema;

/// One invalid field: its JSON path (`stages[1]`, `name`) and what is wrong; for a
/// policy's denial, also the rule that denied it (the field is then `(request)` when the
/// rule names none).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

/// A problem details document.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The operation in the way (409) or the one that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, slug: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("https://paddock.dev/problems/{slug}"),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            operation: None,
        }
    }

    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    pub fn not_found(what: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("{} does not exist", what.into()),
        )
    }

    pub fn conflict(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::CONFLICT, "conflict", detail)
    }

    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }

    /// Input that parsed but is not acceptable: each field named.
    pub fn invalid(errors: Vec<FieldError>) -> Problem {
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        let mut p = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-input", detail);
        p.errors = errors;
        p
    }

    /// Refused by the policy pack: each reason at its field, naming its rule.
    pub fn policy_denied(errors: Vec<FieldError>) -> Problem {
        let detail = errors
            .iter()
            .map(|e| {
                let rule = e.rule.as_deref().unwrap_or("policy");
                format!("{rule} ({}): {}", e.field, e.message)
            })
            .collect::<Vec<_>>()
            .join("; ");
        let mut p = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "policy-denied", detail);
        p.title = "Denied by policy";
        p.errors = errors;
        p
    }

    pub fn field(field: &str, message: impl Into<String>) -> Problem {
        Problem::invalid(vec![FieldError {
            field: field.to_owned(),
            message: message.into(),
            rule: None,
        }])
    }

    /// Input that could not be read (400), at one named field.
    pub fn unreadable(slug: &str, field: String, message: String) -> Problem {
        let mut p = Problem::new(StatusCode::BAD_REQUEST, slug, format!("{field}: {message}"));
        p.errors = vec![FieldError {
            field,
            message,
            rule: None,
        }];
        p
    }

    pub fn internal(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
    }

    pub fn with_operation(mut self, id: &str) -> Problem {
        self.operation = Some(id.to_owned());
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"paddock\""),
            );
        }
        response
    }
}

impl From<DbError> for Problem {
    fn from(e: DbError) -> Problem {
        match e {
            DbError::Conflict(what) => Problem::conflict(what),
            other => {
                tracing::error!(error = %other, "database error");
                Problem::unavailable("the database could not complete the request; try again")
            }
        }
    }
}
