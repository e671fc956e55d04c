//! GitHub's error shape: `message`, `documentation_url`, `status`, and `errors`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::SandboxError;

pub(crate) struct GitHubError {
    pub(super) status: StatusCode,
    pub(super) message: String,
    pub(super) docs: &'static str,
    pub(super) errors: Option<Value>,
    /// `retry-after` of a rate-limited request, in seconds.
    pub(super) retry_after: Option<u64>,
}

pub(super) fn error(
    status: StatusCode,
    message: impl Into<String>,
    docs: &'static str,
) -> GitHubError {
    GitHubError {
        status,
        message: message.into(),
        docs,
        errors: None,
        retry_after: None,
    }
}

pub(super) type GitHubResult = Result<Response, GitHubError>;

pub(super) fn not_found(docs: &'static str) -> GitHubError {
    error(StatusCode::NOT_FOUND, "Not Found", docs)
}

/// 422 with one field error, as GitHub reports validation failures.
pub(super) fn invalid(
    message: &str,
    resource: &str,
    field: &str,
    detail: &str,
    docs: &'static str,
) -> GitHubError {
    GitHubError {
        errors: Some(
            json!([{"resource": resource, "code": "custom", "field": field, "message": detail}]),
        ),
        ..error(StatusCode::UNPROCESSABLE_ENTITY, message, docs)
    }
}

/// 422 "Validation Failed" with GitHub's `errors` items (`resource`, `code`, `field`,
/// `message`), as pull requests report what is wrong with them.
pub(super) fn validation_failed(errors: Value, docs: &'static str) -> GitHubError {
    GitHubError {
        errors: Some(errors),
        ..error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed", docs)
    }
}

/// A JSON request body (`{}` when empty), or GitHub's 400.
pub(super) fn parse_json(body: &[u8], docs: &'static str) -> Result<Value, GitHubError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("Problems parsing JSON: {e}"),
            docs,
        )
    })
}

impl From<SandboxError> for GitHubError {
    fn from(e: SandboxError) -> Self {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
            "https://docs.github.com/rest",
        )
    }
}

impl IntoResponse for GitHubError {
    fn into_response(self) -> Response {
        let mut body = json!({"message": self.message, "documentation_url": self.docs, "status": self.status.as_u16().to_string()});
        if let Some(errors) = self.errors {
            body["errors"] = errors;
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
