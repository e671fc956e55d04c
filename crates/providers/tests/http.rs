//! The HTTP layer the cloud providers share, specified against small in-process servers:
//! what is retried and what is not, re-authentication, GitHub's pacing, ARM's long-running
//! operations, how requests are encoded, TLS failures, what reaches the logs, and the
//! Entra and GitHub App credentials.
//!
//! Timing assertions are lower bounds only: a slow machine may take longer, never less.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Response};
use base64::Engine as _;
use paddock_providers::http::auth::{EntraSecret, EntraSignIn, EntraToken, GitHubApp, StaticToken};
use paddock_providers::http::{
    Api, Call, Credential, HttpClient, HttpError, RetryPolicy, reqwest_client,
};
use serde_json::{Value as Json, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

// ---------------------------------------------------------------------------------------
// A scripted server: records every request and answers as the test's script says.

/// A request as the server saw it.
#[derive(Clone, Debug)]
struct Seen {
    at: Instant,
    wall: SystemTime,
    method: String,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    /// The query's pairs, decoded.
    fn query_pairs(&self) -> Vec<(String, String)> {
        decode_form(self.query.as_deref().unwrap_or_default())
    }

    /// The body's pairs, decoded as a form.
    fn form(&self) -> HashMap<String, String> {
        decode_form(&self.body).into_iter().collect()
    }

    /// `http://host:port`, as the client addressed the server.
    fn origin(&self) -> String {
        format!("http://{}", self.header("host").unwrap())
    }
}

fn decode_form(encoded: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{encoded}"))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// What the server answers.
#[derive(Clone, Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    delay: Duration,
}

fn answer(status: u16, body: Json) -> Answer {
    Answer {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: if body.is_null() {
            String::new()
        } else {
            body.to_string()
        },
        delay: Duration::ZERO,
    }
}

fn ok() -> Answer {
    answer(200, json!({"ok": true}))
}

impl Answer {
    fn header(mut self, name: &str, value: impl Into<String>) -> Answer {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    fn after(mut self, delay: Duration) -> Answer {
        self.delay = delay;
        self
    }
}

/// The script: the request, and how many requests to the same path came before it.
type Script = Arc<dyn Fn(&Seen, usize) -> Answer + Send + Sync>;

#[derive(Clone)]
struct Server {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Per method: (in flight now, most ever in flight).
    in_flight: Arc<Mutex<HashMap<String, (usize, usize)>>>,
}

impl Server {
    async fn start(script: impl Fn(&Seen, usize) -> Answer + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Server {
            base: format!("http://{}", listener.local_addr().unwrap()),
            seen: Arc::default(),
            in_flight: Arc::default(),
        };
        let script: Script = Arc::new(script);
        let app = Router::new()
            .fallback(handle)
            .with_state((server.clone(), script));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        server
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn count_path(&self, path: &str) -> usize {
        self.seen().iter().filter(|s| s.path == path).count()
    }

    fn max_in_flight(&self, method: &str) -> usize {
        self.in_flight
            .lock()
            .unwrap()
            .get(method)
            .map_or(0, |&(_, max)| max)
    }
}

async fn handle(
    State((server, script)): State<(Server, Script)>,
    request: Request,
) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let method = parts.method.to_string();
    {
        let mut in_flight = server.in_flight.lock().unwrap();
        let entry = in_flight.entry(method.clone()).or_default();
        entry.0 += 1;
        entry.1 = entry.1.max(entry.0);
    }
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let seen = Seen {
        at: Instant::now(),
        wall: SystemTime::now(),
        method: method.clone(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let answer = {
        let mut all = server.seen.lock().unwrap();
        let nth = all.iter().filter(|s| s.path == seen.path).count();
        all.push(seen.clone());
        script(&seen, nth)
    };
    tokio::time::sleep(answer.delay).await;
    server.in_flight.lock().unwrap().get_mut(&method).unwrap().0 -= 1;
    let mut response = Response::builder().status(answer.status);
    for (name, value) in &answer.headers {
        response = response.header(name, value);
    }
    response.body(Body::from(answer.body)).unwrap()
}

/// Quick retries, so the tests are.
fn fast() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(30),
    }
}

fn client(api: Api, base: &str) -> HttpClient {
    client_with(api, base, Arc::new(StaticToken::bearer("t")))
}

fn client_with(api: Api, base: &str, credential: Arc<dyn Credential>) -> HttpClient {
    HttpClient::new(reqwest_client(None, None).unwrap(), api, base, credential).with_retry(fast())
}

fn epoch_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

// ---------------------------------------------------------------------------------------
// Retries.

#[tokio::test]
async fn server_errors_and_throttling_are_retried_until_the_server_recovers() {
    for status in [503, 502, 500, 504, 429] {
        let server = Server::start(move |_, nth| {
            if nth < 2 {
                answer(
                    status,
                    json!({"error": {"code": "Busy", "message": "later"}}),
                )
            } else {
                ok()
            }
        })
        .await;
        let reply = client(Api::Arm, &server.base)
            .send(Call::get("/things/{name}", "/things/a"))
            .await
            .unwrap_or_else(|e| panic!("{status}: {e}"));
        assert_eq!(reply.status, 200, "{status}");
        assert_eq!(reply.body, json!({"ok": true}), "{status}");
        assert_eq!(server.count(), 3, "{status}: two failures, then success");
    }
}

#[tokio::test]
async fn a_retry_after_of_one_second_is_waited_for_before_the_next_attempt() {
    let server = Server::start(|_, nth| {
        if nth == 0 {
            answer(
                429,
                json!({"error": {"code": "TooManyRequests", "message": "slow down"}}),
            )
            .header("retry-after", "1")
        } else {
            ok()
        }
    })
    .await;
    client(Api::Graph, &server.base)
        .send(Call::get("/users/{id}", "/users/u1"))
        .await
        .unwrap();
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    let gap = seen[1].at - seen[0].at;
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}");
}

#[tokio::test]
async fn a_retry_after_longer_than_the_policy_allows_is_not_waited_for() {
    let server = Server::start(|_, _| {
        answer(
            429,
            json!({"error": {"code": "SubscriptionRequestsThrottled", "message": "an hour"}}),
        )
        .header("retry-after", "3600")
    })
    .await;
    let error = client(Api::Arm, &server.base)
        .send(Call::get("/things/{name}", "/things/a"))
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(429));
    assert_eq!(error.code(), "SubscriptionRequestsThrottled");
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn past_max_attempts_the_error_carries_each_clouds_code_and_message() {
    let cases = [
        (
            Api::Arm,
            503,
            json!({"error": {"code": "ServerBusy", "message": "The server is busy."}}),
            "ServerBusy",
            "The server is busy.",
        ),
        (
            Api::Graph,
            429,
            json!({"error": {"code": "TooManyRequests", "message": "Too many requests."}}),
            "TooManyRequests",
            "Too many requests.",
        ),
        (
            Api::Kubernetes,
            500,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                   "reason": "InternalError", "message": "etcd is unavailable", "code": 500}),
            "InternalError",
            "etcd is unavailable",
        ),
        (
            Api::GitHub,
            502,
            json!({"message": "Server Error", "errors": [{"code": "custom", "message": "upstream timed out"}]}),
            "custom",
            "Server Error: upstream timed out",
        ),
    ];
    for (api, status, body, code, message) in cases {
        let sent = body.clone();
        let server = Server::start(move |_, _| answer(status, sent.clone())).await;
        let http = client(api, &server.base);
        let error = http
            .send(Call::get("/things/{name}", "/things/a"))
            .await
            .unwrap_err();
        assert_eq!(
            server.count(),
            fast().max_attempts as usize,
            "{api:?}: every attempt"
        );
        assert_eq!(error.status(), Some(status), "{api:?}");
        assert_eq!(error.code(), code, "{api:?}");
        assert_eq!(error.message(), message, "{api:?}");
        let shown = error.to_string();
        assert!(
            shown.contains(code) && shown.contains(message) && shown.contains("/things/{name}"),
            "{api:?}: {shown}"
        );
        match error {
            HttpError::Status { body: kept, .. } => assert_eq!(*kept, body, "{api:?}"),
            other => panic!("{api:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    for status in [400, 404, 409, 422] {
        let server = Server::start(move |_, _| {
            answer(
                status,
                json!({"error": {"code": format!("Code{status}"), "message": "no"}}),
            )
        })
        .await;
        let error = client(Api::Arm, &server.base)
            .send(Call::put("/things/{name}", "/things/a").json(json!({"x": 1})))
            .await
            .unwrap_err();
        assert_eq!(error.status(), Some(status));
        assert_eq!(error.code(), format!("Code{status}"));
        assert_eq!(server.count(), 1, "{status} was retried");
    }
}

/// A credential that hands out `old` until told to forget it, then `new-1`, `new-2`, ….
#[derive(Default)]
struct Rotating {
    invalidations: AtomicUsize,
}

#[async_trait]
impl Credential for Rotating {
    async fn authorization(&self, _: &reqwest::Client) -> Result<String, HttpError> {
        Ok(match self.invalidations.load(Ordering::SeqCst) {
            0 => "Bearer old".to_owned(),
            n => format!("Bearer new-{n}"),
        })
    }

    fn invalidate(&self) {
        self.invalidations.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_401_makes_the_credential_forget_its_token_and_the_call_is_retried_once() {
    let server = Server::start(|seen, _| {
        if seen.header("authorization") == Some("Bearer old") {
            answer(
                401,
                json!({"error": {"code": "InvalidAuthenticationToken", "message": "expired"}}),
            )
        } else {
            ok()
        }
    })
    .await;
    let credential = Arc::new(Rotating::default());
    client_with(Api::Arm, &server.base, credential.clone())
        .send(Call::get("/things/{name}", "/things/a"))
        .await
        .unwrap();
    assert_eq!(credential.invalidations.load(Ordering::SeqCst), 1);
    let tokens: Vec<_> = server
        .seen()
        .iter()
        .map(|s| s.header("authorization").unwrap().to_owned())
        .collect();
    assert_eq!(tokens, ["Bearer old", "Bearer new-1"]);
}

#[tokio::test]
async fn a_401_for_the_new_token_too_is_returned_without_asking_again() {
    let server = Server::start(|_, _| {
        answer(
            401,
            json!({"error": {"code": "InvalidAuthenticationToken", "message": "no"}}),
        )
    })
    .await;
    let credential = Arc::new(Rotating::default());
    let error = client_with(Api::Arm, &server.base, credential.clone())
        .send(Call::get("/things/{name}", "/things/a"))
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(401));
    assert_eq!(error.code(), "InvalidAuthenticationToken");
    assert_eq!(credential.invalidations.load(Ordering::SeqCst), 1);
    assert_eq!(server.count(), 2);
}

// A raw server, for failures axum would not produce: a connection closed mid-answer.

#[derive(Clone, Copy)]
enum Raw {
    /// Read the request, close without answering.
    Hang,
    /// Promise a body of 1000 bytes, send 10, close.
    Truncate,
    /// Answer 200 `{"ok":true}`.
    Answer,
}

/// Serves connection `n` (one request each) as `script(n)` says; returns the base URL
/// and the count of accepted connections.
async fn raw_server(script: fn(usize) -> Raw) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let n = counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                read_request(&mut stream).await;
                match script(n) {
                    Raw::Hang => {}
                    Raw::Truncate => {
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"ok\": tru")
                            .await;
                    }
                    Raw::Answer => {
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\nconnection: close\r\n\r\n{\"ok\":true}")
                            .await;
                    }
                }
                let _ = stream.shutdown().await;
            });
        }
    });
    (base, accepted)
}

/// Reads one request's head and its `content-length` body.
async fn read_request<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let Ok(n) = stream.read(&mut buf).await else {
            return;
        };
        if n == 0 {
            return;
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
            if data.len() >= end + 4 + length {
                return;
            }
        }
    }
}

#[tokio::test]
async fn a_connection_closed_before_the_answer_is_retried() {
    let (base, accepted) = raw_server(|n| if n == 0 { Raw::Hang } else { Raw::Answer }).await;
    let reply = client(Api::Kubernetes, &base)
        .send(Call::post("/api/v1/namespaces", "/api/v1/namespaces").json(json!({})))
        .await
        .unwrap();
    assert_eq!(reply.body, json!({"ok": true}));
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_body_cut_short_is_retried() {
    let (base, accepted) = raw_server(|n| if n == 0 { Raw::Truncate } else { Raw::Answer }).await;
    let reply = client(Api::GitHub, &base)
        .send(Call::get("/repos/{owner}/{repo}", "/repos/o/r"))
        .await
        .unwrap();
    assert_eq!(reply.body, json!({"ok": true}));
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_connection_that_keeps_dropping_fails_as_a_transport_error_after_max_attempts() {
    let (base, accepted) = raw_server(|_| Raw::Hang).await;
    let error = client(Api::Arm, &base)
        .send(Call::get("/things/{name}", "/things/a"))
        .await
        .unwrap_err();
    assert!(matches!(error, HttpError::Transport { .. }), "{error:?}");
    assert_eq!(error.code(), "ConnectionFailed");
    assert!(error.to_string().contains("/things/{name}"), "{error}");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        fast().max_attempts as usize
    );
}

#[tokio::test]
async fn a_404_within_the_not_found_window_is_retried_until_the_object_appears() {
    let server = Server::start(|_, nth| {
        if nth < 2 {
            answer(
                404,
                json!({"error": {"code": "Request_ResourceNotFound", "message": "not yet"}}),
            )
        } else {
            ok()
        }
    })
    .await;
    client(Api::Graph, &server.base)
        .send(
            Call::get("/applications/{id}", "/applications/a1")
                .retry_not_found_for(Duration::from_secs(30)),
        )
        .await
        .unwrap();
    assert_eq!(server.count(), 3);
}

#[tokio::test]
async fn a_404_past_the_not_found_window_gives_up_with_not_found() {
    let server = Server::start(|_, _| {
        answer(
            404,
            json!({"error": {"code": "Request_ResourceNotFound", "message": "never"}}),
        )
    })
    .await;
    let window = Duration::from_millis(300);
    let started = Instant::now();
    let error = client(Api::Graph, &server.base)
        .with_retry(RetryPolicy {
            max_attempts: 10_000,
            ..fast()
        })
        .send(Call::get("/applications/{id}", "/applications/a1").retry_not_found_for(window))
        .await
        .unwrap_err();
    assert!(error.is_not_found(), "{error:?}");
    assert_eq!(error.code(), "Request_ResourceNotFound");
    assert!(started.elapsed() >= window);
    assert!(server.count() > 2, "{} requests", server.count());
}

// ---------------------------------------------------------------------------------------
// GitHub.

#[tokio::test]
async fn a_github_403_with_retry_after_is_a_secondary_rate_limit_and_is_retried() {
    let server = Server::start(|_, nth| {
        if nth == 0 {
            answer(
                403,
                json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}),
            )
            .header("retry-after", "1")
        } else {
            answer(201, json!({"name": "r"}))
        }
    })
    .await;
    let reply = client(Api::GitHub, &server.base)
        .send(Call::post("/orgs/{org}/repos", "/orgs/o/repos").json(json!({"name": "r"})))
        .await
        .unwrap();
    assert_eq!(reply.status, 201);
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen[1].at - seen[0].at >= Duration::from_millis(950));
}

#[tokio::test]
async fn a_plain_github_403_is_not_retried() {
    let server = Server::start(|_, _| {
        answer(
            403,
            json!({"message": "Resource not accessible by integration"}),
        )
    })
    .await;
    let error = client(Api::GitHub, &server.base)
        .send(Call::post("/orgs/{org}/repos", "/orgs/o/repos").json(json!({"name": "r"})))
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(403));
    assert_eq!(error.message(), "Resource not accessible by integration");
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn github_mutations_are_sent_one_at_a_time_while_reads_overlap() {
    let server = Server::start(|_, _| ok().after(Duration::from_millis(150))).await;
    let http = client(Api::GitHub, &server.base);
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..4 {
        for call in [
            Call::post("/orgs/{org}/repos", "/orgs/o/repos").json(json!({"name": i})),
            Call::patch("/repos/{owner}/{repo}", format!("/repos/o/r{i}")).json(json!({})),
            Call::get("/repos/{owner}/{repo}", format!("/repos/o/r{i}")),
        ] {
            let http = http.clone();
            calls.spawn(async move { http.send(call).await });
        }
    }
    while let Some(result) = calls.join_next().await {
        result.unwrap().unwrap();
    }
    assert_eq!(server.count(), 12);
    assert_eq!(server.max_in_flight("POST"), 1);
    assert_eq!(server.max_in_flight("PATCH"), 1);
    // Mutations of any kind are serialized together, not per method.
    let mutations: Vec<_> = server
        .seen()
        .into_iter()
        .filter(|s| s.method != "GET")
        .collect();
    for pair in mutations.windows(2) {
        assert!(
            pair[1].at - pair[0].at >= Duration::from_millis(140),
            "mutations overlapped"
        );
    }
    assert!(server.max_in_flight("GET") >= 2, "reads were serialized");
}

#[tokio::test]
async fn near_the_end_of_githubs_budget_the_next_request_waits_for_the_reset() {
    let reset = Arc::new(AtomicU64::new(0));
    let announced = reset.clone();
    let server = Server::start(move |seen, _| {
        if seen.path == "/first" {
            let at = epoch_secs(seen.wall) + 2;
            announced.store(at, Ordering::SeqCst);
            ok().header("x-ratelimit-remaining", "5")
                .header("x-ratelimit-reset", at.to_string())
        } else {
            ok().header("x-ratelimit-remaining", "4999").header(
                "x-ratelimit-reset",
                (epoch_secs(seen.wall) + 3600).to_string(),
            )
        }
    })
    .await;
    let http = client(Api::GitHub, &server.base);
    http.send(Call::get("/first", "/first")).await.unwrap();
    http.send(Call::get("/second", "/second")).await.unwrap();
    let seen = server.seen();
    let reset = reset.load(Ordering::SeqCst);
    assert!(
        epoch_secs(seen[1].wall) >= reset,
        "sent at {} before the reset at {reset}",
        epoch_secs(seen[1].wall)
    );
    assert!(seen[1].at - seen[0].at >= Duration::from_secs(1));
}

#[tokio::test]
async fn github_requests_carry_the_api_version_and_accept_header_unless_the_call_sets_its_own() {
    let server = Server::start(|_, _| ok()).await;
    let http = client(Api::GitHub, &server.base);
    http.send(Call::get("/repos/{owner}/{repo}", "/repos/o/r"))
        .await
        .unwrap();
    http.send(
        Call::get("/repos/{owner}/{repo}/teams", "/repos/o/r/teams")
            .header("accept", "application/vnd.github.v3.repository+json")
            .header("x-github-api-version", "2026-03-10"),
    )
    .await
    .unwrap();
    http.send(
        Call::patch("/repos/{owner}/{repo}", "/repos/o/r2")
            .json(json!({"private": true}))
            .header("content-type", "application/merge-patch+json"),
    )
    .await
    .unwrap();
    let seen = server.seen();
    assert_eq!(seen[0].all("accept"), ["application/vnd.github+json"]);
    assert_eq!(seen[0].all("x-github-api-version"), ["2022-11-28"]);
    assert_eq!(seen[0].all("authorization"), ["Bearer t"]);
    assert_eq!(
        seen[1].all("accept"),
        ["application/vnd.github.v3.repository+json"]
    );
    assert_eq!(seen[1].all("x-github-api-version"), ["2026-03-10"]);
    assert_eq!(
        seen[2].all("content-type"),
        ["application/merge-patch+json"]
    );
    assert_eq!(seen[2].body, r#"{"private":true}"#);
}

// ---------------------------------------------------------------------------------------
// Encoding.

#[tokio::test]
async fn query_values_are_form_encoded_and_arrive_intact() {
    let server = Server::start(|_, _| answer(200, json!({"value": []}))).await;
    let http = client(Api::Graph, &server.base);
    let filter = "displayName eq 'R&D = ops' and mail eq 'a+b@x.io' /é%";
    http.send(
        Call::get("/groups", "/groups")
            .query("$filter", filter)
            .query("$top", "5"),
    )
    .await
    .unwrap();
    http.send(Call::get("/things", "/things?api-version=2024-01-01").query("name", "a b&c"))
        .await
        .unwrap();
    let seen = server.seen();
    assert_eq!(
        seen[0].query_pairs(),
        [
            ("$filter".to_owned(), filter.to_owned()),
            ("$top".to_owned(), "5".to_owned())
        ]
    );
    assert_eq!(
        seen[1].query_pairs(),
        [
            ("api-version".to_owned(), "2024-01-01".to_owned()),
            ("name".to_owned(), "a b&c".to_owned())
        ]
    );
    assert_eq!(seen[1].path, "/things");
}

#[tokio::test]
async fn json_bodies_are_sent_with_their_content_type() {
    let server = Server::start(|_, _| ok()).await;
    let http = client(Api::Kubernetes, &server.base);
    let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}});
    http.send(
        Call::patch("/api/v1/namespaces/{name}", "/api/v1/namespaces/n")
            .json(body.clone())
            .content_type("application/apply-patch+yaml"),
    )
    .await
    .unwrap();
    let seen = &server.seen()[0];
    assert_eq!(seen.all("content-type"), ["application/apply-patch+yaml"]);
    assert_eq!(serde_json::from_str::<Json>(&seen.body).unwrap(), body);
}

// ---------------------------------------------------------------------------------------
// ARM long-running operations.

#[tokio::test]
async fn an_arm_operation_is_polled_until_it_succeeds() {
    let server = Server::start(|seen, nth| match seen.path.as_str() {
        "/rg" => answer(202, Json::Null)
            .header(
                "azure-asyncoperation",
                format!("{}/operations/op1?api-version=2024-03-01", seen.origin()),
            )
            .header("retry-after", "0"),
        "/operations/op1" if nth < 2 => answer(200, json!({"status": "InProgress"})),
        _ => answer(200, json!({"status": "Succeeded"})),
    })
    .await;
    let http = client(Api::Arm, &server.base);
    let started = http.send(Call::delete("/rg", "/rg")).await.unwrap();
    assert_eq!(started.status, 202);
    let done = http.wait_for_operation(started, "operation").await.unwrap();
    assert_eq!(done.body["status"], "Succeeded");
    assert_eq!(server.count_path("/operations/op1"), 3);
    assert!(
        server.seen()[1..]
            .iter()
            .all(|s| s.query.as_deref() == Some("api-version=2024-03-01"))
    );
}

#[tokio::test]
async fn a_failed_arm_operation_is_an_error_with_its_code() {
    let server = Server::start(|seen, nth| match seen.path.as_str() {
        "/rg" => answer(202, Json::Null)
            .header("azure-asyncoperation", format!("{}/operations/op1", seen.origin()))
            .header("location", format!("{}/location/op1", seen.origin()))
            .header("retry-after", "0"),
        "/operations/op1" if nth == 0 => answer(200, json!({"status": "InProgress"})),
        _ => answer(
            200,
            json!({"status": "Failed", "error": {"code": "ResourceGroupDeletionBlocked", "message": "a lock forbids it"}}),
        ),
    })
    .await;
    let http = client(Api::Arm, &server.base);
    let started = http.send(Call::delete("/rg", "/rg")).await.unwrap();
    let error = http
        .wait_for_operation(started, "operation")
        .await
        .unwrap_err();
    assert_eq!(error.code(), "ResourceGroupDeletionBlocked");
    assert_eq!(error.message(), "a lock forbids it");
    assert_eq!(server.count_path("/operations/op1"), 2);
    assert_eq!(server.count_path("/location/op1"), 0);
}

#[tokio::test]
async fn an_arm_operation_with_only_a_location_is_polled_until_it_stops_answering_202() {
    let server = Server::start(|seen, nth| match seen.path.as_str() {
        "/rg" => answer(202, Json::Null)
            .header("location", format!("{}/location/op1", seen.origin()))
            .header("retry-after", "0"),
        _ if nth < 2 => answer(202, Json::Null).header("retry-after", "0"),
        _ => answer(
            200,
            json!({"name": "rg", "properties": {"provisioningState": "Succeeded"}}),
        ),
    })
    .await;
    let http = client(Api::Arm, &server.base);
    let started = http.send(Call::post("/rg", "/rg")).await.unwrap();
    let done = http.wait_for_operation(started, "operation").await.unwrap();
    assert_eq!(done.status, 200);
    assert_eq!(done.body["name"], "rg");
    assert_eq!(server.count_path("/location/op1"), 3);
}

#[tokio::test]
async fn an_arm_answer_that_is_not_an_operation_is_returned_as_is() {
    let server = Server::start(|_, _| answer(200, json!({"name": "rg"}))).await;
    let http = client(Api::Arm, &server.base);
    let reply = http.send(Call::put("/rg", "/rg")).await.unwrap();
    let done = http.wait_for_operation(reply, "operation").await.unwrap();
    assert_eq!(done.body["name"], "rg");
    assert_eq!(server.count(), 1);
}

// ---------------------------------------------------------------------------------------
// TLS.

/// An HTTPS server with a self-signed certificate for 127.0.0.1: its base URL, the
/// certificate (PEM) and the count of accepted TCP connections.
async fn tls_server() -> (String, String, Arc<AtomicUsize>) {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)
    .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("https://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                read_request(&mut tls).await;
                let _ = tls
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\nconnection: close\r\n\r\n{\"ok\":true}")
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (base, certified.cert.pem(), accepted)
}

#[tokio::test]
async fn a_certificate_the_client_does_not_trust_fails_after_one_handshake() {
    let (base, _, accepted) = tls_server().await;
    let error = client(Api::Kubernetes, &base)
        .send(Call::get("/api/v1/namespaces", "/api/v1/namespaces"))
        .await
        .unwrap_err();
    assert!(matches!(error, HttpError::Transport { .. }), "{error:?}");
    assert!(
        error.to_string().to_lowercase().contains("certificate"),
        "{error}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "the handshake was retried"
    );
}

#[tokio::test]
async fn the_same_server_is_reached_by_a_client_that_trusts_its_certificate() {
    let (base, pem, accepted) = tls_server().await;
    let http = HttpClient::new(
        reqwest_client(Some(pem.as_bytes()), None).unwrap(),
        Api::Kubernetes,
        &base,
        Arc::new(StaticToken::bearer("t")),
    )
    .with_retry(fast());
    let reply = http
        .send(Call::get("/api/v1/namespaces", "/api/v1/namespaces"))
        .await
        .unwrap();
    assert_eq!(reply.body, json!({"ok": true}));
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------------------------------
// Logs.

/// A `tracing` subscriber that writes every span's and event's fields into a string.
struct Collector {
    out: Arc<Mutex<String>>,
    next_id: AtomicU64,
}

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl tracing::Subscriber for Collector {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut out = self.out.lock().unwrap();
        let _ = write!(out, "\nspan {}:", span.metadata().name());
        span.record(&mut Fields(&mut out));
        tracing::span::Id::from_u64(self.next_id.fetch_add(1, Ordering::SeqCst))
    }

    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut out = self.out.lock().unwrap();
        out.push_str("\nrecord:");
        values.record(&mut Fields(&mut out));
    }

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut out = self.out.lock().unwrap();
        let _ = write!(
            out,
            "\nevent {} {}:",
            event.metadata().level(),
            event.metadata().target()
        );
        event.record(&mut Fields(&mut out));
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test]
async fn tokens_secrets_and_bodies_never_reach_the_logs() {
    use tracing::instrument::WithSubscriber as _;

    const ACCESS_TOKEN: &str = "eyJ-access-token-4f1d";
    const CLIENT_SECRET: &str = "client-secret-9c2e";
    const BODY_SECRET: &str = "body-secret-77aa";
    const QUERY_SECRET: &str = "query-secret-31bd";
    let tokens = Arc::new(AtomicUsize::new(0));
    let issued = tokens.clone();
    let server = Server::start(move |seen, nth| match seen.path.as_str() {
        "/tenant/oauth2/v2.0/token" => {
            let n = issued.fetch_add(1, Ordering::SeqCst);
            answer(
                200,
                json!({"token_type": "Bearer", "expires_in": 3600,
                       "access_token": format!("{ACCESS_TOKEN}-{n}")}),
            )
        }
        "/applications/a1" => match nth {
            0 => answer(
                503,
                json!({"error": {"code": "ServiceUnavailable", "message": "later"}}),
            ),
            1 => answer(
                401,
                json!({"error": {"code": "InvalidAuthenticationToken", "message": "expired"}}),
            ),
            _ => answer(200, json!({"id": "a1", "secretText": BODY_SECRET})),
        },
        _ => answer(
            400,
            json!({"error": {"code": "BadRequest", "message": "no"}}),
        ),
    })
    .await;
    let sign_in = Arc::new(EntraSignIn::new(
        &server.base,
        "tenant",
        "client-id-1",
        EntraSecret::ClientSecret(CLIENT_SECRET.to_owned()),
    ));
    let http = client_with(
        Api::Graph,
        &server.base,
        Arc::new(EntraToken {
            sign_in,
            scope: "https://graph.microsoft.com/.default".to_owned(),
        }),
    );
    let out = Arc::new(Mutex::new(String::new()));
    let collector = Collector {
        out: out.clone(),
        next_id: AtomicU64::new(1),
    };
    let secret_body = json!({"passwordCredential": {"secretText": BODY_SECRET}});
    async {
        http.send(
            Call::patch("/applications/{id}", "/applications/a1")
                .json(secret_body.clone())
                .query("code", QUERY_SECRET),
        )
        .await
        .unwrap();
        http.send(
            Call::post(
                "/applications/{id}/addPassword",
                "/applications/a2/addPassword",
            )
            .json(secret_body.clone()),
        )
        .await
        .unwrap_err();
        // Nothing listens on port 1: a transport failure, retried.
        http.send(Call::get(
            "/closed/{id}",
            format!("http://127.0.0.1:1/closed/x?code={QUERY_SECRET}"),
        ))
        .await
        .unwrap_err();
    }
    .with_subscriber(tracing::Dispatch::new(collector))
    .await;
    assert_eq!(
        tokens.load(Ordering::SeqCst),
        2,
        "signed in again after the 401"
    );
    let logs = out.lock().unwrap().clone();
    for secret in [ACCESS_TOKEN, CLIENT_SECRET, BODY_SECRET, QUERY_SECRET] {
        assert!(!logs.contains(secret), "{secret} logged:\n{logs}");
    }
    for shown in [
        "/applications/{id}",
        "/applications/{id}/addPassword",
        "/closed/{id}",
        "status=503",
        "status=401",
        "status=200",
        "status=400",
        "PATCH",
    ] {
        assert!(logs.contains(shown), "{shown} not logged:\n{logs}");
    }
}

// ---------------------------------------------------------------------------------------
// Entra sign-in.

fn token_server(expires_in: u64) -> impl Fn(&Seen, usize) -> Answer + Send + Sync + 'static {
    move |seen, nth| {
        answer(
            200,
            json!({"token_type": "Bearer", "expires_in": expires_in,
                   "access_token": format!("tok-{}-{nth}", seen.form()["scope"])}),
        )
    }
}

fn sign_in(base: &str, secret: &str) -> EntraSignIn {
    EntraSignIn::new(
        base,
        "tenant-1",
        "client-1",
        EntraSecret::ClientSecret(secret.to_owned()),
    )
}

#[tokio::test]
async fn entra_tokens_are_cached_per_scope() {
    let server = Server::start(token_server(3600)).await;
    let http = reqwest_client(None, None).unwrap();
    let entra = sign_in(&server.base, "s");
    let arm = "https://management.azure.com/.default";
    let graph = "https://graph.microsoft.com/.default";
    let first = entra.token(&http, arm).await.unwrap();
    assert_eq!(entra.token(&http, arm).await.unwrap(), first);
    assert_eq!(server.count(), 1);
    let other = entra.token(&http, graph).await.unwrap();
    assert_ne!(other, first);
    assert_eq!(entra.token(&http, graph).await.unwrap(), other);
    assert_eq!(entra.token(&http, arm).await.unwrap(), first);
    assert_eq!(server.count(), 2);
    assert!(
        server
            .seen()
            .iter()
            .all(|s| s.method == "POST" && s.path == "/tenant-1/oauth2/v2.0/token")
    );
}

#[tokio::test]
async fn an_entra_token_about_to_expire_is_replaced() {
    let server = Server::start(token_server(60)).await;
    let http = reqwest_client(None, None).unwrap();
    let entra = sign_in(&server.base, "s");
    let scope = "https://management.azure.com/.default";
    let first = entra.token(&http, scope).await.unwrap();
    let second = entra.token(&http, scope).await.unwrap();
    assert_ne!(first, second);
    assert_eq!(server.count(), 2);
}

#[tokio::test]
async fn a_refused_entra_sign_in_names_the_aadsts_code_and_the_client_but_not_the_secret() {
    const SECRET: &str = "wrong-secret-5e3a";
    let server = Server::start(|_, _| {
        answer(
            401,
            json!({"error": "invalid_client",
                   "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID. Trace ID: 1",
                   "error_codes": [7000215]}),
        )
    })
    .await;
    let http = reqwest_client(None, None).unwrap();
    let error = sign_in(&server.base, SECRET)
        .token(&http, "https://graph.microsoft.com/.default")
        .await
        .unwrap_err();
    assert!(matches!(error, HttpError::Auth { .. }), "{error:?}");
    assert_eq!(error.code(), "invalid_client");
    let shown = error.to_string();
    assert!(shown.contains("AADSTS7000215"), "{shown}");
    assert!(shown.contains("client-1"), "{shown}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(!format!("{error:?}").contains(SECRET));
}

#[tokio::test]
async fn the_entra_sign_in_form_is_encoded_so_a_secret_with_symbols_arrives_intact() {
    let secret = "a+b/c=d e&f%20g~'";
    let server = Server::start(token_server(3600)).await;
    let http = reqwest_client(None, None).unwrap();
    sign_in(&server.base, secret)
        .token(&http, "https://graph.microsoft.com/.default")
        .await
        .unwrap();
    let seen = &server.seen()[0];
    assert_eq!(
        seen.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let form = seen.form();
    assert_eq!(form["client_secret"], secret);
    assert_eq!(form["client_id"], "client-1");
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["scope"], "https://graph.microsoft.com/.default");
}

#[tokio::test]
async fn an_entra_token_refused_by_the_api_is_forgotten_and_a_new_one_signed_in_for() {
    let tokens = token_server(3600);
    let server = Server::start(move |seen, nth| {
        if seen.path.ends_with("/token") {
            tokens(seen, nth)
        } else if seen.header("authorization")
            == Some("Bearer tok-https://graph.microsoft.com/.default-0")
        {
            answer(
                401,
                json!({"error": {"code": "InvalidAuthenticationToken", "message": "revoked"}}),
            )
        } else {
            ok()
        }
    })
    .await;
    let http = client_with(
        Api::Graph,
        &server.base,
        Arc::new(EntraToken {
            sign_in: Arc::new(sign_in(&server.base, "s")),
            scope: "https://graph.microsoft.com/.default".to_owned(),
        }),
    );
    http.send(Call::get("/users/{id}", "/users/u1"))
        .await
        .unwrap();
    assert_eq!(server.count_path("/tenant-1/oauth2/v2.0/token"), 2);
    assert_eq!(server.count_path("/users/u1"), 2);
    // The new token is cached in turn.
    http.send(Call::get("/users/{id}", "/users/u1"))
        .await
        .unwrap();
    assert_eq!(server.count_path("/tenant-1/oauth2/v2.0/token"), 2);
}

// ---------------------------------------------------------------------------------------
// GitHub App.

struct AppKey {
    pem: String,
    public: rsa::RsaPublicKey,
}

fn app_key() -> AppKey {
    use rsa::pkcs1::EncodeRsaPrivateKey as _;
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    AppKey {
        // GitHub hands out PKCS#1.
        pem: key
            .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
            .unwrap()
            .to_string(),
        public: key.to_public_key(),
    }
}

/// A GitHub installation-token endpoint for app 12345, installation 42, handing out
/// tokens that expire `lifetime` from now; `/repos/o/r` answers anyone.
fn github_app_server(
    lifetime: Duration,
) -> impl Fn(&Seen, usize) -> Answer + Send + Sync + 'static {
    move |seen, nth| match seen.path.as_str() {
        "/app/installations/42/access_tokens" if seen.method == "POST" => answer(
            201,
            json!({"token": format!("ghs_{nth}"),
                   "expires_at": humantime::format_rfc3339_seconds(SystemTime::now() + lifetime).to_string()}),
        ),
        "/repos/o/r" => ok(),
        _ => answer(404, json!({"message": "Not Found"})),
    }
}

#[tokio::test]
async fn the_github_app_jwt_is_rs256_issued_by_the_app_in_the_past_for_at_most_ten_minutes() {
    use rsa::signature::Verifier as _;
    let key = app_key();
    let server = Server::start(github_app_server(Duration::from_secs(3600))).await;
    let app = GitHubApp::new(&server.base, "12345", "42", &key.pem).unwrap();
    let http = client_with(Api::GitHub, &server.base, Arc::new(app));
    http.send(Call::get("/repos/{owner}/{repo}", "/repos/o/r"))
        .await
        .unwrap();
    let seen = server.seen();
    let exchange = &seen[0];
    assert_eq!(exchange.path, "/app/installations/42/access_tokens");
    let jwt = exchange
        .header("authorization")
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header: Json = serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap();
    let claims: Json = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(header["alg"], "RS256");
    let signature =
        rsa::pkcs1v15::Signature::try_from(b64.decode(parts[2]).unwrap().as_slice()).unwrap();
    rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key.public)
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .expect("signed with the app's key");
    assert_eq!(claims["iss"].as_str(), Some("12345"));
    let now = epoch_secs(exchange.wall) as i64;
    let iat = claims["iat"].as_i64().unwrap();
    let exp = claims["exp"].as_i64().unwrap();
    assert!(iat < now, "iat {iat} is not in the past ({now})");
    assert!(exp > now, "exp {exp} is already past ({now})");
    assert!(exp - iat <= 600, "lives {}s", exp - iat);
    assert!(exp <= now + 600, "exp {exp} is more than ten minutes ahead");
    // The call itself carries the installation token.
    assert_eq!(seen[1].header("authorization"), Some("Bearer ghs_0"));
}

#[tokio::test]
async fn the_installation_token_is_reused_until_five_minutes_before_it_expires() {
    let key = app_key();
    // Six minutes to live: reused.
    let server = Server::start(github_app_server(Duration::from_secs(360))).await;
    let app = GitHubApp::new(&server.base, "12345", "42", &key.pem).unwrap();
    let http = client_with(Api::GitHub, &server.base, Arc::new(app));
    for _ in 0..3 {
        http.send(Call::get("/repos/{owner}/{repo}", "/repos/o/r"))
            .await
            .unwrap();
    }
    assert_eq!(server.count_path("/app/installations/42/access_tokens"), 1);
    // Four minutes to live: inside the margin, so fetched anew each time.
    let server = Server::start(github_app_server(Duration::from_secs(240))).await;
    let app = GitHubApp::new(&server.base, "12345", "42", &key.pem).unwrap();
    let http = client_with(Api::GitHub, &server.base, Arc::new(app));
    for _ in 0..2 {
        http.send(Call::get("/repos/{owner}/{repo}", "/repos/o/r"))
            .await
            .unwrap();
    }
    assert_eq!(server.count_path("/app/installations/42/access_tokens"), 2);
    let tokens: Vec<_> = server
        .seen()
        .iter()
        .filter(|s| s.path == "/repos/o/r")
        .map(|s| s.header("authorization").unwrap().to_owned())
        .collect();
    assert_eq!(tokens, ["Bearer ghs_0", "Bearer ghs_1"]);
}

#[tokio::test]
async fn a_refused_github_app_is_an_auth_error_naming_the_app_and_installation() {
    let key = app_key();
    let server = Server::start(|_, _| {
        answer(
            401,
            json!({"message": "A JSON web token could not be decoded"}),
        )
    })
    .await;
    let app = GitHubApp::new(&server.base, "12345", "42", &key.pem).unwrap();
    let error = client_with(Api::GitHub, &server.base, Arc::new(app))
        .send(Call::get("/repos/{owner}/{repo}", "/repos/o/r"))
        .await
        .unwrap_err();
    assert!(matches!(error, HttpError::Auth { .. }), "{error:?}");
    let shown = error.to_string();
    assert!(
        shown.contains("12345")
            && shown.contains("42")
            && shown.contains("A JSON web token could not be decoded"),
        "{shown}"
    );
    assert!(!shown.contains("PRIVATE KEY"));
}
