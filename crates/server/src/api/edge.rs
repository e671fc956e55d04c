//! The API's edge: who is calling is settled before anything reads the request, and every
//! refusal leaves as problem+json.
//!
//! [`authenticate_first`] runs before routing's extractors (path, query, body): an
//! anonymous or wrongly authenticated caller gets 401 whatever the request's shape, so
//! nothing about the API's paths, parameters or bodies is revealed before sign-in. The
//! caller it found is handed to [`Ctx`] in the request's extensions.
//!
//! Refusals made by axum itself (405 with `Allow`, a path it cannot decode) are plain
//! text; the same layer rewrites them as problem details, keeping their headers.

use axum::body::to_bytes;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;

use super::*;

/// Authenticates every API request before it is routed to a handler; see the module.
pub(crate) async fn authenticate_first(
    axum::extract::State(state): State,
    mut request: Request,
    next: Next,
) -> Response {
    // The description is public, as the API's documentation is.
    if request.uri().path() == "/openapi.json" {
        return next.run(request).await;
    }
    let caller = match auth::authenticate(&state.db, request.headers()).await {
        Ok(Some(caller)) => caller,
        Ok(None) => return not_signed_in().into_response(),
        Err(problem) => return problem.into_response(),
    };
    if let Err(problem) = auth::check_csrf(&caller, request.method(), request.headers(), None) {
        return problem.into_response();
    }
    request.extensions_mut().insert(Authenticated(caller));
    as_problem(next.run(request).await).await
}

/// The caller [`authenticate_first`] found.
#[derive(Clone)]
pub(crate) struct Authenticated(pub(crate) Caller);

pub(crate) fn not_signed_in() -> Problem {
    Problem::unauthorized("sign in, or send an API token as `Authorization: Bearer <token>`")
}

/// An error response that is not problem+json (axum's own refusals) made into one.
async fn as_problem(response: Response) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/problem+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = to_bytes(body, 64 * 1024).await.unwrap_or_default();
    let detail = match String::from_utf8_lossy(&text).trim() {
        "" if status == StatusCode::METHOD_NOT_ALLOWED => {
            "this path does not answer this method; `Allow` lists those it does".to_owned()
        }
        "" => status.canonical_reason().unwrap_or("error").to_lowercase(),
        text => text.to_owned(),
    };
    let slug = status
        .canonical_reason()
        .unwrap_or("error")
        .to_lowercase()
        .replace(' ', "-");
    let problem = Problem::new(status, &slug, detail).into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in problem.headers() {
        parts.headers.insert(name, value.clone());
    }
    Response::from_parts(parts, problem.into_body())
}

/// Path parameters, refused as problem+json naming the parameter (axum's own refusal is
/// plain text).
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Path<T>> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                let field = match e.kind() {
                    ErrorKind::InvalidUtf8InPathParam { key }
                    | ErrorKind::ParseErrorAtKey { key, .. }
                    | ErrorKind::DeserializeError { key, .. } => key.clone(),
                    _ => "(path)".to_owned(),
                };
                Err(Problem::unreadable("invalid-path", field, e.body_text()))
            }
            Err(other) => Err(Problem::new(
                other.status(),
                "invalid-path",
                other.body_text(),
            )),
        }
    }
}
