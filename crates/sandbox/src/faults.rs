//! Fault injection: rules, set at runtime through the control API, that make the emulated
//! APIs slow or failing — 5xx, 429 with `Retry-After`, dropped connections — so that
//! Paddock's retries and recovery can be tested. Draws come from a seeded generator, so a
//! run can be replayed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// One rule: requests it matches fail or slow down with the given probability.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultRule {
    /// One of `APIS`, or `*`.
    pub api: String,
    /// An HTTP method, or any.
    #[serde(default)]
    pub method: Option<String>,
    /// A substring of the path, or any.
    #[serde(default)]
    pub path_contains: Option<String>,
    /// Chance, 0 to 1, that a matching request is affected.
    pub probability: f64,
    /// How long the request takes at least, the sandbox's own handling included (a
    /// failure is answered after it).
    #[serde(default)]
    pub latency_ms: u64,
    /// `403`, `500`, `502`, `503`, `429` or `reset` (the connection drops mid-response); none
    /// for latency only.
    #[serde(default)]
    pub error: Option<String>,
    /// `Retry-After` of a 429 or 503, in seconds.
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
}

impl FaultRule {
    pub fn check(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.probability) {
            return Err(format!(
                "probability: {} is not between 0 and 1",
                self.probability
            ));
        }
        if self.api != "*" && !APIS.contains(&self.api.as_str()) {
            return Err(format!(
                "api: `{}` is not one of {}, *",
                self.api,
                APIS.join(", ")
            ));
        }
        match self.error.as_deref() {
            None | Some("403" | "500" | "502" | "503" | "429" | "reset") => Ok(()),
            Some(other) => Err(format!(
                "error: `{other}` is not one of 403, 500, 502, 503, 429, reset"
            )),
        }
    }

    fn matches(&self, api: &str, method: &str, path: &str) -> bool {
        (self.api == "*" || self.api == api)
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self
                .path_contains
                .as_deref()
                .is_none_or(|p| path.contains(p))
    }
}

/// The rules in force and the seeded generator they draw from.
pub struct Faults {
    pub seed: u64,
    rules: Mutex<Vec<FaultRule>>,
    rng: Mutex<rand::rngs::StdRng>,
}

impl Faults {
    pub fn new(seed: u64) -> Arc<Faults> {
        Arc::new(Faults {
            seed,
            rules: Mutex::new(Vec::new()),
            rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)),
        })
    }

    pub fn rules(&self) -> Vec<FaultRule> {
        self.rules.lock().expect("rules lock").clone()
    }

    /// Replaces the rules and restarts the generator from the seed, so that the same
    /// rules and requests give the same faults.
    pub fn set(&self, rules: Vec<FaultRule>) {
        *self.rules.lock().expect("rules lock") = rules;
        *self.rng.lock().expect("rng lock") = rand::rngs::StdRng::seed_from_u64(self.seed);
    }

    /// The first matching rule that fires for this request, if any.
    fn draw(&self, api: &str, method: &str, path: &str) -> Option<FaultRule> {
        let rules = self.rules.lock().expect("rules lock");
        let mut rng = self.rng.lock().expect("rng lock");
        rules
            .iter()
            .filter(|r| r.matches(api, method, path))
            .find(|r| rng.gen_bool(r.probability))
            .cloned()
    }
}

/// The APIs a rule can name. `github-actions` is the GitHub Actions OIDC issuer
/// (discovery and keys): a service of its own, which GitHub runs apart from the REST API,
/// so a rule for one never disturbs the other.
pub const APIS: &[&str] = &[
    "arm",
    "entra",
    "graph",
    "github",
    "github-actions",
    "kubernetes",
];

/// Where the sandbox serves the Kubernetes API (`kubernetes::ROOT`).
const KUBERNETES_ROOT: &str = crate::kubernetes::ROOT;

/// Which emulated API a path belongs to, by the roots each is served under; ARM serves
/// whatever the others do not.
pub(crate) fn api_of(path: &str) -> &'static str {
    let under = |root: &str| {
        path.strip_prefix(root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if under(crate::graph::ROOT) {
        "graph"
    } else if under(crate::github::ROOT) {
        "github"
    } else if under(crate::actions::PATH) {
        "github-actions"
    } else if under(KUBERNETES_ROOT) {
        "kubernetes"
    } else if matches!(
        segments.as_slice(),
        [_, "oauth2", ..] | [_, "v2.0", ".well-known", ..] | [_, "discovery", ..]
    ) {
        // `/{tenant}/oauth2/v2.0/token`, `/{tenant}/v2.0/.well-known/openid-configuration`,
        // `/{tenant}/discovery/v2.0/keys`.
        "entra"
    } else {
        "arm"
    }
}

/// The error each API answers with when it is unwell, in its own shape.
/// A refusal in the API's own words: the platform identity lacks a permission (a
/// failure no retry mends).
fn forbidden(api: &str) -> serde_json::Value {
    let message = "the caller lacks a permission (injected by the sandbox)";
    match api {
        "github" | "github-actions" => {
            json!({"message": "Resource not accessible by integration", "documentation_url": "https://docs.github.com/rest", "status": "403"})
        }
        "graph" => {
            json!({"error": {"code": "Authorization_RequestDenied", "message": "Insufficient privileges to complete the operation.",
            "innerError": {"date": crate::rfc3339(crate::now_ms()), "request-id": crate::uuid_v4(), "client-request-id": crate::uuid_v4()}}})
        }
        "kubernetes" => {
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": "Forbidden", "code": 403})
        }
        "entra" => {
            json!({"error": "unauthorized_client", "error_description": format!("AADSTS700016: {message}"), "error_codes": [700016]})
        }
        _ => {
            json!({"error": {"code": "AuthorizationFailed", "message": format!("The client does not have authorization to perform this action: {message}.")}})
        }
    }
}

fn failure(api: &str, status: StatusCode, retry_after: Option<u64>) -> Response {
    if status == StatusCode::FORBIDDEN {
        return (status, axum::Json(forbidden(api))).into_response();
    }
    let throttled = status == StatusCode::TOO_MANY_REQUESTS;
    let body = match api {
        "github" | "github-actions" => {
            let message = if throttled {
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. (injected by the sandbox)".to_owned()
            } else {
                format!("Server Error (injected by the sandbox: {status})")
            };
            json!({"message": message, "documentation_url": "https://docs.github.com/rest", "status": status.as_u16().to_string()})
        }
        "graph" => json!({"error": {
            "code": match status.as_u16() {
                429 => "TooManyRequests",
                500 => "generalException",
                _ => "serviceNotAvailable",
            },
            "message": format!("The request failed with status {status} (injected by the sandbox)."),
            "innerError": {"date": crate::rfc3339(crate::now_ms()), "request-id": crate::uuid_v4(), "client-request-id": crate::uuid_v4()},
        }}),
        "kubernetes" => {
            let reason = match status.as_u16() {
                429 => "TooManyRequests",
                503 => "ServiceUnavailable",
                _ => "InternalError",
            };
            let mut status_object = json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("The request failed with status {status} (injected by the sandbox)."),
                "reason": reason, "code": status.as_u16(),
            });
            if let Some(secs) = retry_after {
                status_object["details"] = json!({ "retryAfterSeconds": secs });
            }
            status_object
        }
        "entra" => json!({
            "error": "temporarily_unavailable",
            "error_description": "AADSTS90033: A transient error has occurred. Please try again.",
            "error_codes": [90033],
        }),
        _ => {
            let code = match status.as_u16() {
                429 => "TooManyRequests",
                502 => "BadGateway",
                503 => "ServiceUnavailable",
                _ => "InternalServerError",
            };
            json!({"error": {"code": code, "message": format!("The request failed with status {status} (injected by the sandbox).")}})
        }
    };
    let mut r = (status, axum::Json(body)).into_response();
    if let Some(secs) = retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    r
}

/// Waits until `deadline`, to within a fraction of a millisecond. Tokio's timer fires on
/// whole millisecond ticks, rounding the deadline up to the next one, so a `sleep` alone
/// added up to a millisecond to every request beyond the latency asked for. The last two
/// milliseconds are slept on a blocking-pool thread instead, which the OS wakes on time.
async fn delay_until(deadline: std::time::Instant) {
    const SLACK: Duration = Duration::from_millis(2);
    let left = deadline.saturating_duration_since(std::time::Instant::now());
    if left > SLACK {
        tokio::time::sleep(left - SLACK).await;
    }
    let rest = deadline.saturating_duration_since(std::time::Instant::now());
    if !rest.is_zero() {
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(rest)).await;
    }
}

/// Middleware: applies the first rule that fires.
pub(crate) async fn inject(
    State(faults): State<Arc<Faults>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let api = api_of(&path);
    let Some(rule) = faults.draw(api, request.method().as_str(), &path) else {
        return next.run(request).await;
    };
    // A latency is the request's whole round trip at the sandbox, as a real API's is: the
    // handling happens within it, so that a benchmark's bound (requests × latency) is
    // what a cloud answering in that time allows, and the rest is the client's.
    let deadline = std::time::Instant::now() + Duration::from_millis(rule.latency_ms);
    let mut response = match rule.error.as_deref() {
        None => {
            let response = next.run(request).await;
            delay_until(deadline).await;
            return response;
        }
        Some("reset") => {
            // Headers go out, then the body fails: the client sees the connection drop.
            let broken = futures_util::stream::once(async {
                Err::<axum::body::Bytes, _>(std::io::Error::other("injected connection reset"))
            });
            Response::builder()
                .status(StatusCode::OK)
                .body(Body::from_stream(broken))
                .expect("a valid response")
        }
        Some(code) => {
            let status = StatusCode::from_u16(code.parse().unwrap_or(500))
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let retry_after = rule
                .retry_after_secs
                .or((status == StatusCode::TOO_MANY_REQUESTS).then_some(1));
            failure(api, status, retry_after)
        }
    };
    delay_until(deadline).await;
    if let Some(error) = rule.error {
        response
            .extensions_mut()
            .insert(crate::requests::Injected(error));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::api_of;

    #[test]
    fn paths_belong_to_the_api_served_under_their_root() {
        for (path, api) in [
            ("/graph/v1.0/applications", "graph"),
            ("/api/v3/orgs/paddock-sandbox", "github"),
            ("/github-actions/.well-known/jwks", "github-actions"),
            ("/kubernetes/api/v1/namespaces", "kubernetes"),
            (
                "/kubernetes/apis/rbac.authorization.k8s.io/v1",
                "kubernetes",
            ),
            ("/kubernetes/version", "kubernetes"),
            ("/tenant-id/oauth2/v2.0/token", "entra"),
            ("/tenant-id/v2.0/.well-known/openid-configuration", "entra"),
            ("/tenant-id/discovery/v2.0/keys", "entra"),
            ("/subscriptions/s/resourcegroups/rg", "arm"),
            ("/providers/Microsoft.Authorization/roleDefinitions", "arm"),
            // A root is a whole segment, not a prefix of one.
            ("/api/v3x", "arm"),
            ("/graph/v1.0x/applications", "arm"),
        ] {
            assert_eq!(api_of(path), api, "{path}");
        }
    }
}
