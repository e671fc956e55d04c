//! The one HTTP layer the cloud providers share: authentication (see [`auth`]), retries
//! with jittered exponential backoff on 5xx, 429 and dropped connections (honouring
//! `Retry-After`), GitHub's rate limits (one mutating request at a time, slowing down
//! before the hourly budget runs out), ARM's long-running operations, Graph's eventual
//! consistency (a 404 right after a create is retried for a bounded time), and a
//! `tracing` span per request.
//!
//! Invariants: a request is retried only when the failure says nothing happened or the
//! call is safe to repeat (providers make creates idempotent by natural key); tokens,
//! secrets and bodies are never logged, only the method, the URL *template*, the status,
//! the duration and the retry count.

pub mod auth;
mod stats;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub use auth::Credential;

use stats::Part;
pub use stats::{CallCost, CallStats, calls_by_api, counting, github_turns, mutations_by_api};

tokio::task_local! {
    /// What the requests made within a scope are done for (a Paddock operation's id):
    /// named in their `User-Agent`, which the clouds' activity logs keep.
    static ON_BEHALF_OF: Arc<str>;
}

/// Runs `work`, naming `operation` in the `User-Agent` of every request it sends
/// (`paddock/VERSION (operation ID)`), so a cloud's log maps each change to it.
pub async fn on_behalf_of<F: std::future::Future>(operation: &str, work: F) -> F::Output {
    ON_BEHALF_OF.scope(Arc::from(operation), work).await
}

/// The `User-Agent` of a request: Paddock's, naming the operation it is made for.
fn user_agent() -> Option<String> {
    ON_BEHALF_OF
        .try_with(|op| format!("{USER_AGENT} (operation {op})"))
        .ok()
}

const USER_AGENT: &str = concat!("paddock/", env!("CARGO_PKG_VERSION"));

/// Requests sent again, by API and by why (`Retry::ALL`'s order).
static RETRIES: [[AtomicU64; Retry::ALL.len()]; 5] =
    [const { [const { AtomicU64::new(0) }; Retry::ALL.len()] }; 5];

/// Why a request was sent again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// 429, or GitHub's 403 for its secondary rate limit.
    Throttled,
    /// 500, 502, 503 or 504.
    ServerError,
    /// The connection failed or dropped before a whole answer came.
    Connection,
    /// 401: the token was fetched again.
    Unauthorized,
    /// 404 just after a create, on an eventually consistent API.
    NotFoundYet,
}

impl Retry {
    pub const ALL: [Retry; 5] = [
        Retry::Throttled,
        Retry::ServerError,
        Retry::Connection,
        Retry::Unauthorized,
        Retry::NotFoundYet,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Retry::Throttled => "throttled",
            Retry::ServerError => "server_error",
            Retry::Connection => "connection",
            Retry::Unauthorized => "unauthorized",
            Retry::NotFoundYet => "not_found_yet",
        }
    }

    fn count(self, api: Api) {
        RETRIES[api as usize][self as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// Requests this process sent again so far, by API name and by why.
pub fn retries_by_api() -> std::collections::BTreeMap<(&'static str, &'static str), u64> {
    Api::ALL
        .into_iter()
        .flat_map(|api| {
            Retry::ALL.into_iter().map(move |why| {
                (
                    (api.name(), why.name()),
                    RETRIES[api as usize][why as usize].load(Ordering::Relaxed),
                )
            })
        })
        .collect()
}

/// Which API a client talks to: it decides how errors are read and how fast to go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    GitHub,
    Arm,
    Graph,
    Kubernetes,
    Entra,
}

impl Api {
    pub const ALL: [Api; 5] = [
        Api::GitHub,
        Api::Arm,
        Api::Graph,
        Api::Kubernetes,
        Api::Entra,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Api::GitHub => "github",
            Api::Arm => "azure",
            Api::Graph => "entra",
            Api::Kubernetes => "kubernetes",
            Api::Entra => "entra-token",
        }
    }
}

/// How hard to try.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The first backoff; doubled each time, with full jitter.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// A `Retry-After` longer than this is not waited for: the error is returned.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The pause before attempt `attempt + 1`: the server's word if it gave one, else
    /// exponential backoff with full jitter.
    fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(after) = retry_after {
            return after;
        }
        let cap = self
            .base_delay
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max_delay);
        let jittered = rand::Rng::gen_range(&mut rand::thread_rng(), 0..=cap.as_millis() as u64);
        Duration::from_millis(jittered.max(self.base_delay.as_millis() as u64 / 2))
    }
}

/// A request: method, a path relative to the client's base URL (or an absolute URL, as
/// ARM's polling URLs are), and the path's template, which is what traces show.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: Method,
    pub template: &'static str,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    /// Retry 404s for this long: the object was just created and the API is
    /// eventually consistent (Graph).
    pub retry_not_found_for: Option<Duration>,
}

impl Call {
    pub fn new(method: Method, template: &'static str, path: impl Into<String>) -> Call {
        Call {
            method,
            template,
            path: path.into(),
            query: Vec::new(),
            body: None,
            content_type: "application/json",
            headers: Vec::new(),
            retry_not_found_for: None,
        }
    }
    pub fn get(template: &'static str, path: impl Into<String>) -> Call {
        Call::new(Method::GET, template, path)
    }
    pub fn post(template: &'static str, path: impl Into<String>) -> Call {
        Call::new(Method::POST, template, path)
    }
    pub fn put(template: &'static str, path: impl Into<String>) -> Call {
        Call::new(Method::PUT, template, path)
    }
    pub fn patch(template: &'static str, path: impl Into<String>) -> Call {
        Call::new(Method::PATCH, template, path)
    }
    pub fn delete(template: &'static str, path: impl Into<String>) -> Call {
        Call::new(Method::DELETE, template, path)
    }
    pub fn json(mut self, body: Value) -> Call {
        self.body = Some(body);
        self
    }
    pub fn content_type(mut self, content_type: &'static str) -> Call {
        self.content_type = content_type;
        self
    }
    pub fn query(mut self, key: &str, value: impl Into<String>) -> Call {
        self.query.push((key.to_owned(), value.into()));
        self
    }
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Call {
        self.headers.push((name, value.into()));
        self
    }
    pub fn retry_not_found_for(mut self, window: Duration) -> Call {
        self.retry_not_found_for = Some(window);
        self
    }
}

/// A successful answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The JSON body, `Null` when empty or not JSON.
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Why a request failed, with the cloud's own code and message.
#[derive(Clone, Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{api} {method} {template}: {status} {code}: {message}")]
    Status {
        api: &'static str,
        method: String,
        template: &'static str,
        status: u16,
        /// The cloud's code: ARM's and Graph's `error.code`, Kubernetes' `reason`,
        /// GitHub's first `errors[].code` or the status.
        code: String,
        message: String,
        /// The error body as the cloud sent it (boxed: errors travel in `Result`s).
        body: Box<Value>,
    },
    #[error("{api} {method} {template}: {message}")]
    Transport {
        api: &'static str,
        method: String,
        template: &'static str,
        message: String,
    },
    #[error("{api}: cannot sign in: {code}: {message}")]
    Auth {
        api: &'static str,
        code: String,
        message: String,
    },
    #[error("{api}: {message}")]
    Config { api: &'static str, message: String },
}

impl HttpError {
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn code(&self) -> &str {
        match self {
            HttpError::Status { code, .. } | HttpError::Auth { code, .. } => code,
            HttpError::Transport { .. } => "ConnectionFailed",
            HttpError::Config { .. } => "InvalidConfiguration",
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    pub fn message(&self) -> String {
        match self {
            HttpError::Status { message, .. }
            | HttpError::Transport { message, .. }
            | HttpError::Auth { message, .. }
            | HttpError::Config { message, .. } => message.clone(),
        }
    }
}

/// The cloud's own error code and message, from an error body in the API's shape.
pub fn cloud_error(api: Api, status: StatusCode, body: &Value) -> (String, String) {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let (code, message) = match api {
        Api::Arm | Api::Graph => (
            text(&body["error"]["code"]),
            text(&body["error"]["message"]),
        ),
        Api::Kubernetes => (text(&body["reason"]), text(&body["message"])),
        Api::Entra => (text(&body["error"]), text(&body["error_description"])),
        Api::GitHub => {
            let first = &body["errors"][0];
            let detail = text(&first["message"]).or_else(|| {
                text(&first["code"]).map(|c| {
                    format!(
                        "{} {} {c}",
                        first["resource"].as_str().unwrap_or_default(),
                        first["field"].as_str().unwrap_or_default()
                    )
                })
            });
            let message = match (text(&body["message"]), detail) {
                (Some(m), Some(d)) => Some(format!("{m}: {d}")),
                (m, d) => m.or(d),
            };
            (text(&first["code"]), message)
        }
    };
    (
        code.unwrap_or_else(|| status.as_u16().to_string()),
        message.unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("unexpected status")
                .to_owned()
        }),
    )
}

/// Paces requests to GitHub as it asks integrators to: mutating requests one at a time,
/// and when the hourly budget nearly runs out, a wait until it resets.
#[derive(Default)]
pub struct GitHubPacer {
    mutations: tokio::sync::Mutex<()>,
    /// (remaining, reset epoch seconds), from the last response.
    budget: std::sync::Mutex<Option<(u64, u64)>>,
}

/// Requests left below which the pacer waits for the reset.
const GITHUB_RESERVE: u64 = 20;

impl GitHubPacer {
    fn observe(&self, headers: &HeaderMap) {
        let num = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
        };
        if let (Some(remaining), Some(reset)) =
            (num("x-ratelimit-remaining"), num("x-ratelimit-reset"))
        {
            *self.budget.lock().expect("budget lock") = Some((remaining, reset));
        }
    }

    /// How long to wait before the next request so as not to hit the primary limit.
    fn wait(&self) -> Duration {
        match *self.budget.lock().expect("budget lock") {
            Some((remaining, reset)) if remaining < GITHUB_RESERVE => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                Duration::from_secs(reset.saturating_sub(now) + 1)
            }
            _ => Duration::ZERO,
        }
    }
}

/// A client of one API: base URL, credential, retry policy.
#[derive(Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    pub api: Api,
    base: String,
    credential: Arc<dyn Credential>,
    pub retry: RetryPolicy,
    pacer: Option<Arc<GitHubPacer>>,
}

/// A reqwest client on the workspace's TLS stack (rustls with `ring`), trusting the
/// system's roots plus `extra_ca` (PEM) if given, presenting `identity` (PEM cert + key)
/// if given.
pub fn reqwest_client(
    extra_ca: Option<&[u8]>,
    identity: Option<&[u8]>,
) -> Result<reqwest::Client, HttpError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = |message: String| HttpError::Config {
        api: "http",
        message,
    };
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .user_agent(USER_AGENT);
    if let Some(pem) = extra_ca {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| config(format!("the CA bundle is not PEM: {e}")))?;
        builder = builder.tls_certs_merge(certs);
    }
    if let Some(pem) = identity {
        let identity = reqwest::Identity::from_pem(pem)
            .map_err(|e| config(format!("the client certificate is not PEM: {e}")))?;
        builder = builder.identity(identity);
    }
    builder
        .build()
        .map_err(|e| config(format!("cannot build an HTTP client: {e}")))
}

impl HttpClient {
    pub fn new(
        inner: reqwest::Client,
        api: Api,
        base: impl Into<String>,
        credential: Arc<dyn Credential>,
    ) -> HttpClient {
        HttpClient {
            inner,
            api,
            base: base.into().trim_end_matches('/').to_owned(),
            credential,
            retry: RetryPolicy::default(),
            pacer: (api == Api::GitHub).then(|| Arc::new(GitHubPacer::default())),
        }
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> HttpClient {
        self.retry = retry;
        self
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends `call`, retrying what is worth retrying; a non-2xx answer is an error.
    pub async fn send(&self, call: Call) -> Result<Reply, HttpError> {
        let span = tracing::info_span!(
            "http",
            api = self.api.name(),
            method = %call.method,
            url = call.template,
            status = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
            retries = tracing::field::Empty,
        );
        let started = Instant::now();
        let result = self.attempts(&call, &span).await;
        span.record("duration_ms", started.elapsed().as_millis() as u64);
        match &result {
            Ok(r) => span.record("status", r.status.as_u16()),
            Err(HttpError::Status { status, .. }) => span.record("status", *status),
            Err(_) => span.record("status", 0),
        };
        span.in_scope(|| tracing::debug!("done"));
        result
    }

    fn url(&self, call: &Call) -> String {
        let url = if call.path.starts_with("https://") || call.path.starts_with("http://") {
            call.path.clone()
        } else {
            format!("{}{}", self.base, call.path)
        };
        if call.query.is_empty() {
            url
        } else {
            let pairs: Vec<(&str, String)> = call
                .query
                .iter()
                .map(|(k, v)| (k.as_str(), v.clone()))
                .collect();
            let separator = if url.contains('?') { '&' } else { '?' };
            format!("{url}{separator}{}", form_encode(&pairs))
        }
    }

    async fn attempts(&self, call: &Call, span: &tracing::Span) -> Result<Reply, HttpError> {
        let mutating = call.method != Method::GET && call.method != Method::HEAD;
        let first = Instant::now();
        // One id for every attempt, as Azure's SDKs send it: the cloud's log shows the
        // attempts of one request as such.
        let request_id = match self.api {
            Api::Arm => Some(("x-ms-client-request-id", crate::random::uuid_v4())),
            Api::Graph => Some(("client-request-id", crate::random::uuid_v4())),
            _ => None,
        };
        let user_agent = user_agent();
        let mut reauthenticated = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            span.record("retries", attempt - 1);
            let waited = Instant::now();
            let turn = match (&self.pacer, mutating) {
                (Some(p), true) => Some((p.mutations.lock().await, Instant::now())),
                _ => None,
            };
            stats::add(Part::TurnWait, waited.elapsed());
            if let Some(p) = &self.pacer {
                let wait = p.wait();
                if !wait.is_zero() {
                    tracing::info!(
                        wait_secs = wait.as_secs(),
                        "GitHub rate limit nearly spent; waiting for its reset"
                    );
                    tokio::time::sleep(wait.min(self.retry.max_retry_after)).await;
                }
            }
            let signing_in = Instant::now();
            let authorization = self.credential.authorization(&self.inner).await?;
            stats::add(Part::Auth, signing_in.elapsed());
            stats::sent(self.api, mutating);
            let mut request = self
                .inner
                .request(call.method.clone(), self.url(call))
                .header(reqwest::header::AUTHORIZATION, authorization);
            if let Some((name, id)) = &request_id {
                request = request.header(*name, id);
            }
            if let Some(agent) = &user_agent {
                request = request.header(reqwest::header::USER_AGENT, agent);
            }
            if self.api == Api::GitHub {
                request = request
                    .header("x-github-api-version", "2022-11-28")
                    .header("accept", "application/vnd.github+json");
            }
            if let Some(body) = &call.body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, call.content_type)
                    .body(body.to_string());
            }
            // The call's own headers replace the defaults above of the same name.
            // (`RequestBuilder::header` appends: a call setting `x-github-api-version` or
            // `content-type` used to send the header twice, once with each value.)
            request = request.headers(call_headers(call, self.api)?);
            let on_the_wire = Instant::now();
            let outcome = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    match response.bytes().await {
                        Ok(bytes) => Ok((status, headers, bytes)),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            stats::add(Part::Wire, on_the_wire.elapsed());
            if let Some((_, taken)) = &turn {
                stats::github_turn(taken.elapsed());
            }
            let (status, headers, bytes) = match outcome {
                Ok(ok) => ok,
                Err(e) => {
                    let error = HttpError::Transport {
                        api: self.api.name(),
                        method: call.method.to_string(),
                        template: call.template,
                        message: transport_message(&e),
                    };
                    // A certificate the client does not trust will not become trusted.
                    if attempt < self.retry.max_attempts && !is_certificate_error(&e) {
                        Retry::Connection.count(self.api);
                        let delay = self.retry.delay(attempt, None);
                        tracing::debug!(
                            attempt,
                            delay_ms = delay.as_millis() as u64,
                            "connection failed; retrying"
                        );
                        tokio::time::sleep(delay).await;
                        stats::add(Part::Backoff, delay);
                        continue;
                    }
                    return Err(error);
                }
            };
            if let Some(p) = &self.pacer {
                p.observe(&headers);
            }
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            if status.is_success() || status.is_redirection() {
                return Ok(Reply {
                    status,
                    headers,
                    body,
                });
            }
            let retry_after = retry_after(&headers);
            let (code, message) = cloud_error(self.api, status, &body);
            let error = HttpError::Status {
                api: self.api.name(),
                method: call.method.to_string(),
                template: call.template,
                status: status.as_u16(),
                code,
                message,
                body: Box::new(body),
            };
            let secondary_limit = self.api == Api::GitHub
                && status == StatusCode::FORBIDDEN
                && (retry_after.is_some() || error.message().contains("secondary rate limit"));
            let retry = match status.as_u16() {
                401 if !reauthenticated => {
                    // A cached token may have been revoked or expired early: get a new one.
                    self.credential.invalidate();
                    reauthenticated = true;
                    Some((Retry::Unauthorized, Duration::ZERO))
                }
                429 => Some((Retry::Throttled, self.retry.delay(attempt, retry_after))),
                500 | 502 | 503 | 504 => {
                    Some((Retry::ServerError, self.retry.delay(attempt, retry_after)))
                }
                403 if secondary_limit => Some((
                    Retry::Throttled,
                    self.retry
                        .delay(attempt, retry_after.or(Some(Duration::from_secs(60)))),
                )),
                404 if call
                    .retry_not_found_for
                    .is_some_and(|window| first.elapsed() < window) =>
                {
                    Some((Retry::NotFoundYet, self.retry.delay(attempt.min(3), None)))
                }
                _ => None,
            };
            match retry {
                Some((why, delay))
                    if attempt < self.retry.max_attempts && delay <= self.retry.max_retry_after =>
                {
                    why.count(self.api);
                    tracing::debug!(
                        attempt,
                        status = status.as_u16(),
                        delay_ms = delay.as_millis() as u64,
                        "retrying"
                    );
                    tokio::time::sleep(delay).await;
                    stats::add(Part::Backoff, delay);
                }
                _ => return Err(error),
            }
        }
    }

    /// Waits for an ARM long-running operation started by `reply` (a `201`/`202` with
    /// `Azure-AsyncOperation` or `Location`), polling at the advertised interval.
    pub async fn wait_for_operation(
        &self,
        reply: Reply,
        what: &'static str,
    ) -> Result<Reply, HttpError> {
        let async_operation = reply.header("azure-asyncoperation").map(str::to_owned);
        let location = reply.header("location").map(str::to_owned);
        if reply.status != StatusCode::ACCEPTED && reply.status != StatusCode::CREATED
            || (async_operation.is_none() && location.is_none())
        {
            return Ok(reply);
        }
        let mut interval = retry_after(&reply.headers).unwrap_or(Duration::from_secs(1));
        loop {
            tokio::time::sleep(interval.min(Duration::from_secs(30))).await;
            if let Some(url) = &async_operation {
                let status = self.send(Call::get(what, url.clone())).await?;
                interval = retry_after(&status.headers).unwrap_or(interval);
                match status.body["status"].as_str() {
                    Some("Succeeded") => return Ok(status),
                    Some(state @ ("Failed" | "Canceled")) => {
                        let (code, message) = cloud_error(Api::Arm, StatusCode::OK, &status.body);
                        return Err(HttpError::Status {
                            api: self.api.name(),
                            method: "GET".into(),
                            template: what,
                            status: 200,
                            code: if code == "200" {
                                state.to_owned()
                            } else {
                                code
                            },
                            message,
                            body: Box::new(status.body),
                        });
                    }
                    _ => continue,
                }
            }
            let url = location.clone().expect("one of the two polling URLs");
            let polled = self.send(Call::get(what, url)).await?;
            if polled.status != StatusCode::ACCEPTED {
                return Ok(polled);
            }
            interval = retry_after(&polled.headers).unwrap_or(interval);
        }
    }
}

/// `application/x-www-form-urlencoded`.
pub fn form_encode(pairs: &[(&str, String)]) -> String {
    fn encode(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// A call's own headers, as a map (several values of one name kept).
fn call_headers(call: &Call, api: Api) -> Result<HeaderMap, HttpError> {
    let mut headers = HeaderMap::new();
    for (name, value) in &call.headers {
        let parsed = reqwest::header::HeaderName::from_bytes(name.as_bytes());
        match (parsed, HeaderValue::from_str(value)) {
            (Ok(parsed), Ok(value)) => headers.append(parsed, value),
            // The value is not shown: it may be a secret.
            (Err(_), _) | (_, Err(_)) => {
                return Err(HttpError::Config {
                    api: api.name(),
                    message: format!(
                        "{} {}: the header {name:?} is not a valid HTTP header",
                        call.method, call.template
                    ),
                });
            }
        };
    }
    Ok(headers)
}

/// Whether the failure is the server's certificate being refused.
fn is_certificate_error(e: &reqwest::Error) -> bool {
    fn refused(e: &(dyn std::error::Error + 'static)) -> bool {
        if let Some(rustls::Error::InvalidCertificate(_)) = e.downcast_ref::<rustls::Error>() {
            return true;
        }
        // `io::Error::source()` skips the error an `io::Error` wraps (it returns that
        // error's own source), and the TLS stream reports rustls' error wrapped in one:
        // walking `source()` alone never saw it, so an untrusted certificate was retried.
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            && refused(inner)
        {
            return true;
        }
        e.source().is_some_and(refused)
    }
    std::error::Error::source(e).is_some_and(refused)
}

/// A transport failure in words, without the URL's query (which may carry a secret).
fn transport_message(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the connection dropped while reading the answer"
    } else {
        "the request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_clouds_error_shape_gives_its_code_and_message() {
        let cases = [
            (
                Api::Arm,
                json!({"error": {"code": "AuthorizationFailed", "message": "no"}}),
                "AuthorizationFailed",
                "no",
            ),
            (
                Api::Graph,
                json!({"error": {"code": "Request_ResourceNotFound", "message": "gone"}}),
                "Request_ResourceNotFound",
                "gone",
            ),
            (
                Api::Kubernetes,
                json!({"kind": "Status", "reason": "Forbidden", "message": "nope"}),
                "Forbidden",
                "nope",
            ),
            (
                Api::Entra,
                json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}),
                "invalid_client",
                "AADSTS7000215: Invalid client secret provided.",
            ),
            (
                Api::GitHub,
                json!({"message": "Validation Failed", "errors": [{"resource": "Repository", "field": "name", "code": "already_exists"}]}),
                "already_exists",
                "Validation Failed: Repository name already_exists",
            ),
            (
                Api::GitHub,
                json!({"message": "Not Found"}),
                "404",
                "Not Found",
            ),
        ];
        for (api, body, code, message) in cases {
            let status = if code == "404" {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::BAD_REQUEST
            };
            assert_eq!(
                cloud_error(api, status, &body),
                (code.to_owned(), message.to_owned()),
                "{api:?}"
            );
        }
    }

    #[test]
    fn backoff_grows_is_capped_and_yields_to_retry_after() {
        let policy = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        for attempt in 1..20 {
            let d = policy.delay(attempt, None);
            assert!(
                d >= Duration::from_millis(50) && d <= Duration::from_secs(1),
                "{d:?}"
            );
        }
        assert_eq!(
            policy.delay(3, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
    }
}
