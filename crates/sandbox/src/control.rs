//! The control API, on its own listener: what exists in the sandbox, as JSON for tests and
//! as a read-only HTML page for people ("look, the resource group is really there").

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use std::sync::Arc;

use crate::documents::Documents;
use crate::faults::{FaultRule, Faults};
use crate::requests::RequestLog;

pub(crate) fn router(
    docs: Documents,
    faults: Arc<Faults>,
    requests: Arc<RequestLog>,
) -> axum::Router {
    let fault_routes = axum::Router::new()
        .route(
            "/faults",
            get(list_faults).put(set_faults).delete(clear_faults),
        )
        .with_state(faults);
    let request_routes = axum::Router::new()
        .route("/requests", get(crate::requests::list))
        .with_state(requests);
    axum::Router::new()
        .route("/", get(page))
        .route("/inspect", get(inspect))
        .route("/healthz", get(|| async { "ok" }))
        .route("/principals", post(register))
        .route(
            "/github/secrets/{repo}/{environment}/{name}",
            get(github_secret),
        )
        .route("/github/vars/{repo}/{environment}", get(github_vars))
        .route("/github/users", post(github_user))
        .route("/people", post(person))
        .with_state(docs)
        .merge(fault_routes)
        .merge(request_routes)
}

async fn list_faults(State(faults): State<Arc<Faults>>) -> Response {
    axum::Json(json!({"seed": faults.seed, "rules": faults.rules()})).into_response()
}

/// Replaces the fault rules; a bad rule is refused whole, naming the field.
async fn set_faults(State(faults): State<Arc<Faults>>, body: axum::body::Bytes) -> Response {
    let rules: Vec<FaultRule> = match serde_json::from_slice(&body) {
        Ok(rules) => rules,
        Err(e) => return problem(format!("the body must be a JSON array of fault rules: {e}")),
    };
    for (i, rule) in rules.iter().enumerate() {
        if let Err(e) = rule.check() {
            return problem(format!("rule {i}: {e}"));
        }
    }
    faults.set(rules);
    list_faults(State(faults)).await
}

async fn clear_faults(State(faults): State<Arc<Faults>>) -> Response {
    faults.set(Vec::new());
    StatusCode::NO_CONTENT.into_response()
}

fn problem(detail: String) -> Response {
    let body = json!({"type": "about:blank", "title": "Invalid fault rules", "status": 400, "detail": detail});
    let mut r = (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/problem+json"),
    );
    r
}

/// `{api: {kind: [document, …]}}`, the sandbox's own bookkeeping left out.
async fn everything(docs: &Documents) -> Result<Value, Response> {
    let all = docs
        .all()
        .await
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response())?;
    let mut out = Map::new();
    for (api, kind, _, mut body) in all.into_iter().filter(|(api, ..)| api != "sandbox") {
        if api == crate::kubernetes::API && kind == "secrets" {
            redact_secret_data(&mut body);
        }
        let by_kind = out.entry(api).or_insert_with(|| json!({}));
        by_kind
            .as_object_mut()
            .expect("an object")
            .entry(kind)
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .expect("an array")
            .push(body);
    }
    Ok(Value::Object(out))
}

/// Registers an application with a service principal and a client secret, as a team's
/// environment identity would be (until the Graph emulator creates them the real way).
async fn register(State(docs): State<Documents>, body: axum::body::Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or_default();
    let name = request["displayName"].as_str().unwrap_or("sandbox-app");
    match crate::entra::register_app(&docs, name).await {
        Ok(creds) => (StatusCode::CREATED, axum::Json(creds)).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The clear value of a GitHub environment secret as it arrived (opened from its sealed
/// box): how tests check what a provider sent.
async fn github_secret(
    State(docs): State<Documents>,
    axum::extract::Path((repo, env, name)): axum::extract::Path<(String, String, String)>,
) -> Response {
    match crate::github::secret_value(&docs, &repo, &env, &name).await {
        Ok(Some(value)) => axum::Json(json!({ "value": value })).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "no such secret").into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// What `vars` holds for a job of the repository running in that environment.
async fn github_vars(
    State(docs): State<Documents>,
    axum::extract::Path((repo, env)): axum::extract::Path<(String, String)>,
) -> Response {
    match crate::github::workflow_vars(&docs, &repo, &env).await {
        Ok(vars) => axum::Json(vars).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// A request's `login`, if it is one GitHub would take.
fn login(request: &Value) -> Option<&str> {
    request["login"]
        .as_str()
        .filter(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

/// Creates a GitHub user: `{"login": "ada", "name": "Ada"}`.
async fn github_user(State(docs): State<Documents>, body: axum::body::Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or_default();
    let Some(login) = login(&request) else {
        return problem("login: required, letters, digits and '-'".into());
    };
    match crate::github::create_user(&docs, login, request["name"].as_str()).await {
        Ok(user) => (StatusCode::CREATED, axum::Json(user)).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Creates a person of the organization: GitHub user `login` and directory user
/// `login@USER_DOMAIN` — `{"login": "ada"}`.
async fn person(State(docs): State<Documents>, body: axum::body::Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or_default();
    let Some(login) = login(&request) else {
        return problem("login: required, letters, digits and '-'".into());
    };
    let created = async {
        let github = crate::github::create_user(&docs, login, Some(login)).await?;
        let directory = crate::graph::create_user(&docs, login).await?;
        Ok::<_, crate::SandboxError>(json!({"github": github, "directory": directory}))
    };
    match created.await {
        Ok(person) => (StatusCode::CREATED, axum::Json(person)).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn inspect(State(docs): State<Documents>) -> Response {
    match everything(&docs).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(r) => r,
    }
}

/// A cluster Secret's values are shown by size only: inspection is a console, and
/// consoles do not print credentials.
fn redact_secret_data(secret: &mut Value) {
    if let Some(data) = secret["data"].as_object_mut() {
        for value in data.values_mut() {
            let len = value.as_str().map_or(0, |v| v.len() * 3 / 4);
            *value = json!(format!("(redacted, about {len} bytes)"));
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn page(State(docs): State<Documents>) -> Response {
    let all = match everything(&docs).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Paddock sandbox</title>\
         <style>body{font-family:system-ui,sans-serif;margin:2rem}pre{background:#f4f4f4;padding:.5rem}</style>\
         </head><body><h1>Paddock sandbox: what exists</h1>",
    );
    let Value::Object(apis) = all else {
        unreachable!("everything() returns an object")
    };
    if apis.is_empty() {
        html.push_str("<p>Nothing yet.</p>");
    }
    for (api, kinds) in apis {
        html.push_str(&format!("<h2>{}</h2>", escape(&api)));
        for (kind, docs) in kinds.as_object().into_iter().flatten() {
            let count = docs.as_array().map_or(0, Vec::len);
            html.push_str(&format!("<h3>{} ({count})</h3>", escape(kind)));
            for doc in docs.as_array().into_iter().flatten() {
                let text = serde_json::to_string_pretty(doc).unwrap_or_default();
                html.push_str(&format!("<pre>{}</pre>", escape(&text)));
            }
        }
    }
    html.push_str("</body></html>");
    Html(html).into_response()
}
