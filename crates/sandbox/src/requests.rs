//! The request log: every mutating request the emulated APIs answered, with what the
//! clouds' own activity logs keep about its caller — the `User-Agent` (the Kubernetes audit
//! log's `userAgent`, GitHub's audit log's `user_agent`) and the client's request id
//! (ARM's `x-ms-client-request-id`, Graph's `client-request-id`) — and how it was
//! answered, injected faults included. Served on the control API (`GET /requests`), so a
//! test can map each change a client made to whoever asked for it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// At most this many entries are kept: the oldest go first.
const KEPT: usize = 1_000_000;

/// One mutating request, as answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Logged {
    /// Its place in the log, from 1.
    pub seq: u64,
    /// Milliseconds since the Unix epoch, when it arrived.
    pub at: i64,
    /// One of `faults::APIS`.
    pub api: String,
    pub method: String,
    /// The path, without the query (which may carry a secret).
    pub path: String,
    /// The status sent; 200 for an injected reset, whose body then failed.
    pub status: u16,
    /// The fault injected instead of an answer (`500`, `503`, `429`, `reset`…), if any:
    /// such a request changed nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// `x-ms-client-request-id` (ARM) or `client-request-id` (Graph).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_request_id: Option<String>,
}

/// What the sandbox answered with a fault (set by `faults::inject` on its response).
#[derive(Clone, Debug)]
pub(crate) struct Injected(pub String);

/// The log, shared by the middleware and the control API.
#[derive(Default)]
pub struct RequestLog {
    entries: Mutex<(u64, VecDeque<Logged>)>,
}

impl RequestLog {
    pub fn new() -> Arc<RequestLog> {
        Arc::new(RequestLog::default())
    }

    /// Every entry kept, oldest first.
    pub fn entries(&self) -> Vec<Logged> {
        let entries = self.entries.lock().expect("request log lock");
        entries.1.iter().cloned().collect()
    }

    fn push(&self, mut entry: Logged) {
        let mut entries = self.entries.lock().expect("request log lock");
        entries.0 += 1;
        entry.seq = entries.0;
        if entries.1.len() == KEPT {
            entries.1.pop_front();
        }
        entries.1.push_back(entry);
    }
}

/// Middleware, outermost over the emulated APIs: logs each request that is not a read.
pub(crate) async fn record(
    State(log): State<Arc<RequestLog>>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    if matches!(method.as_str(), "GET" | "HEAD" | "OPTIONS") {
        return next.run(request).await;
    }
    // Read before the await: a borrow of the request (its body is not `Sync`) must not
    // be held across it.
    let (user_agent, client_request_id) = {
        let headers = request.headers();
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        (
            header("user-agent"),
            header("x-ms-client-request-id").or_else(|| header("client-request-id")),
        )
    };
    let path = request.uri().path().to_owned();
    let at = crate::now_ms();
    let response = next.run(request).await;
    log.push(Logged {
        seq: 0,
        at,
        api: crate::faults::api_of(&path).to_owned(),
        method: method.to_string(),
        path,
        status: response.status().as_u16(),
        fault: response.extensions().get::<Injected>().map(|i| i.0.clone()),
        user_agent,
        client_request_id,
    });
    response
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Filter {
    /// Only entries after this one.
    #[serde(default)]
    after: u64,
}

/// `GET /requests[?after=SEQ]` on the control API.
pub(crate) async fn list(
    State(log): State<Arc<RequestLog>>,
    Query(filter): Query<Filter>,
) -> Response {
    let entries: Vec<Logged> = log
        .entries()
        .into_iter()
        .filter(|e| e.seq > filter.after)
        .collect();
    axum::Json(entries).into_response()
}
