//! A client of the platform server's REST API (`/api/v1`): a base URL and an API token,
//! JSON in and out, every non-2xx answer an [`ApiError`] that keeps the status and the
//! problem details (RFC 9457) the server sent. Also the stored credentials
//! (`paddock login`) and a Server-Sent Events reader that reconnects with `Last-Event-ID`.
//!
//! Must not: decide anything the server decides (names, roles, policy).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::exit;

/// How long an ordinary request may take; event streams and exports have no overall limit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The server sends a keepalive every 15 s; a stream silent for this long is dead.
const READ_TIMEOUT: Duration = Duration::from_secs(45);

/// One invalid field, as a problem names it; a policy's denial also names its rule.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

/// A problem's type when the policy pack denied the request.
const POLICY_DENIED: &str = "https://paddock.dev/problems/policy-denied";

/// A problem details document, as far as the CLI reads it.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Problem {
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub detail: String,
    #[serde(default)]
    pub errors: Vec<FieldError>,
    /// The operation in the way (409) or the one that failed.
    #[serde(default)]
    pub operation: Option<String>,
}

/// A non-2xx answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub problem: Problem,
    /// The body as sent (problem+json, or whatever a proxy answered).
    pub body: String,
}

impl ApiError {
    /// The exit code scripts see for this answer.
    pub fn exit_code(&self) -> u8 {
        if self.problem.kind == POLICY_DENIED {
            return exit::DENIED;
        }
        match self.status.as_u16() {
            400 | 404 | 405 | 413 | 415 | 422 => exit::INVALID,
            409 => exit::BUSY,
            401 => exit::UNAUTHENTICATED,
            403 => exit::FORBIDDEN,
            _ => exit::FAILED,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = &self.problem;
        let detail = if !p.detail.is_empty() {
            p.detail.clone()
        } else if !self.body.trim().is_empty() {
            self.body.trim().chars().take(500).collect()
        } else {
            self.status
                .canonical_reason()
                .unwrap_or("no detail")
                .to_owned()
        };
        // A 422's detail is its field errors joined; they are listed below instead.
        let joined = p
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        if p.kind == POLICY_DENIED {
            write!(f, "denied by policy (HTTP {}):", self.status.as_u16())?;
        } else if !p.errors.is_empty() && detail == joined {
            write!(f, "invalid input (HTTP {}):", self.status.as_u16())?;
        } else {
            write!(f, "{detail} (HTTP {})", self.status.as_u16())?;
        }
        for e in &p.errors {
            match &e.rule {
                // A reason about the request as a whole names no field.
                Some(rule) if e.field == "(request)" => write!(f, "\n  [{rule}] {}", e.message)?,
                Some(rule) => write!(f, "\n  [{rule}] {}: {}", e.field, e.message)?,
                None => write!(f, "\n  {}: {}", e.field, e.message)?,
            }
        }
        if self.status == StatusCode::UNAUTHORIZED {
            write!(
                f,
                "\n  sign in with `paddock login --server URL`, or set PADDOCK_TOKEN"
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// No server or no token to talk to it with.
#[derive(Debug)]
pub struct NotLoggedIn(pub String);

impl std::fmt::Display for NotLoggedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for NotLoggedIn {}

/// The API client.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// `https://host[:port]`, without a trailing slash.
    pub server: String,
    token: String,
}

impl Client {
    pub fn new(server: &str, token: &str) -> anyhow::Result<Client> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(READ_TIMEOUT)
            .user_agent(concat!("paddock-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = std::env::var_os("PADDOCK_CA_FILE") {
            let pem = std::fs::read(&path).with_context(|| {
                format!("PADDOCK_CA_FILE: reading {}", Path::new(&path).display())
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .context("PADDOCK_CA_FILE is not a PEM bundle")?;
            builder = builder.tls_certs_merge(certs);
        }
        Ok(Client {
            http: builder.build().context("building the HTTP client")?,
            server: normalize_server(server)?,
            token: token.to_owned(),
        })
    }

    /// The URL of `path` (relative to `/api/v1`) with `query` pairs (empty values left out).
    pub fn url(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Url> {
        let mut url = Url::parse(&format!("{}/api/v1{path}", self.server))
            .with_context(|| format!("{}/api/v1{path} is not a URL", self.server))?;
        if query.iter().any(|(_, v)| !v.is_empty()) {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query.iter().filter(|(_, v)| !v.is_empty()) {
                pairs.append_pair(k, v);
            }
        }
        Ok(url)
    }

    fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        self.request_accepting(method, url, "application/json")
    }

    /// One `Accept` header only: the server reads the first.
    fn request_accepting(&self, method: Method, url: Url, accept: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .bearer_auth(&self.token)
            .header("accept", accept)
    }

    /// Sends a request; the JSON body of a 2xx answer (`null` for 204).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let url = self.url(path, query)?;
        let mut req = self
            .request(method.clone(), url.clone())
            .timeout(REQUEST_TIMEOUT);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(serde_json::to_vec(b)?);
        }
        let response = req
            .send()
            .await
            .map_err(|e| connect_error(&self.server, e))?;
        let response = check(response).await?;
        let bytes = response
            .bytes()
            .await
            .with_context(|| format!("reading the answer to {method} {url}"))?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes)
            .with_context(|| format!("the answer to {method} {url} is not JSON"))
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(Method::GET, path, &[], None).await
    }

    pub async fn get_query(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
        self.send(Method::GET, path, query, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(Method::POST, path, &[], Some(body)).await
    }

    /// A POST without a body (cancel, retry).
    pub async fn post_empty(&self, path: &str) -> anyhow::Result<Value> {
        self.send(Method::POST, path, &[], None).await
    }

    /// Copies the body of a GET to `out` as it arrives, unchanged (for exports).
    pub async fn download(
        &self,
        path: &str,
        query: &[(&str, String)],
        out: &mut dyn Write,
    ) -> anyhow::Result<Download> {
        let url = self.url(path, query)?;
        let response = self
            .request_accepting(Method::GET, url, "application/jsonl, application/json")
            .send()
            .await
            .map_err(|e| connect_error(&self.server, e))?;
        let mut response = check(response).await?;
        let mut done = Download::default();
        let mut line = Vec::new();
        while let Some(chunk) = response.chunk().await.context("reading the export")? {
            out.write_all(&chunk)?;
            for &b in chunk.iter() {
                if b == b'\n' {
                    done.lines += 1;
                    if !line.is_empty() {
                        done.last_line = std::mem::take(&mut line);
                    }
                } else {
                    line.push(b);
                }
            }
        }
        if !line.is_empty() {
            done.lines += 1;
            done.last_line = line;
        }
        out.flush()?;
        Ok(done)
    }

    /// Follows the Server-Sent Events at `path`, calling `on_event` for each; reconnects
    /// with `Last-Event-ID` when the connection drops. Returns when `on_event` says stop,
    /// or when the server ends the stream after an `end` event.
    pub async fn follow(
        &self,
        path: &str,
        mut on_event: impl FnMut(SseEvent) -> anyhow::Result<Flow>,
    ) -> anyhow::Result<()> {
        let mut last_id: Option<String> = None;
        let mut failures = 0u32;
        loop {
            let url = self.url(path, &[])?;
            let mut req = self.request_accepting(Method::GET, url, "text/event-stream");
            if let Some(id) = &last_id {
                req = req.header("last-event-id", id.as_str());
            }
            let dropped = match req.send().await {
                Ok(response) => {
                    // A refusal (401, 404, …) is final; a 5xx may be a replica restarting.
                    let response = match check(response).await {
                        Ok(r) => r,
                        Err(e)
                            if e.downcast_ref::<ApiError>()
                                .is_some_and(|a| a.status.is_server_error()) =>
                        {
                            failures += 1;
                            if failures > 10 {
                                return Err(e);
                            }
                            backoff(failures).await;
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    match read_stream(response, &mut last_id, &mut on_event, &mut failures).await? {
                        Flow::Stop => return Ok(()),
                        Flow::Continue => "the server closed the stream".to_owned(),
                    }
                }
                Err(e) => connect_error(&self.server, e).to_string(),
            };
            failures += 1;
            if failures > 10 {
                anyhow::bail!("lost the event stream: {dropped}; gave up after 10 attempts");
            }
            tracing::debug!(%dropped, "reconnecting to the event stream");
            backoff(failures).await;
        }
    }
}

/// What a download wrote: its line count and last line (to page on from).
#[derive(Debug, Default)]
pub struct Download {
    pub lines: usize,
    pub last_line: Vec<u8>,
}

/// What to do after an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// One Server-Sent Event.
#[derive(Clone, Debug, Default)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

async fn backoff(failures: u32) {
    let ms = (250u64 << failures.min(5)).min(5_000);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Reads one connection's events. `Continue` if the connection ended without a stop.
async fn read_stream(
    mut response: reqwest::Response,
    last_id: &mut Option<String>,
    on_event: &mut impl FnMut(SseEvent) -> anyhow::Result<Flow>,
    failures: &mut u32,
) -> anyhow::Result<Flow> {
    let mut buf: Vec<u8> = Vec::new();
    let mut current = SseEvent::default();
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(Flow::Continue),
            Err(e) => {
                tracing::debug!(error = %e, "the event stream broke");
                return Ok(Flow::Continue);
            }
        };
        buf.extend_from_slice(&chunk);
        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if current.data.is_empty() && current.event.is_empty() {
                    continue;
                }
                let mut event = std::mem::take(&mut current);
                if event.event.is_empty() {
                    event.event = "message".into();
                }
                if let Some(id) = &event.id {
                    *last_id = Some(id.clone());
                }
                *failures = 0;
                let end = event.event == "end";
                if on_event(event)? == Flow::Stop || end {
                    return Ok(Flow::Stop);
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => current.id = Some(value.to_owned()),
                "event" => current.event = value.to_owned(),
                "data" => {
                    if !current.data.is_empty() {
                        current.data.push('\n');
                    }
                    current.data.push_str(value);
                }
                _ => {}
            }
        }
    }
}

/// Turns a non-2xx answer into an [`ApiError`].
async fn check(response: reqwest::Response) -> anyhow::Result<reqwest::Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    let problem = serde_json::from_str::<Problem>(&body).unwrap_or_default();
    Err(ApiError {
        status,
        problem,
        body,
    }
    .into())
}

fn connect_error(server: &str, e: reqwest::Error) -> anyhow::Error {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    anyhow::anyhow!("cannot reach the Paddock server at {server}: {message}")
}

/// `https://host:port` from what a person typed (a trailing `/` or `/api/v1` dropped).
pub fn normalize_server(server: &str) -> anyhow::Result<String> {
    let s = server.trim().trim_end_matches('/');
    let s = s.strip_suffix("/api/v1").unwrap_or(s);
    let url = Url::parse(s).map_err(|e| {
        crate::UsageError(format!(
            "--server {server:?} is not a URL ({e}): expected e.g. https://paddock.example.com"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(crate::UsageError(format!(
            "--server {server:?}: expected an http:// or https:// URL"
        ))
        .into());
    }
    Ok(s.to_owned())
}

// --- stored credentials ---------------------------------------------------------------

/// `credentials.json`: a token per server, and the server `paddock login` chose last.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct Credentials {
    #[serde(default)]
    pub current: Option<String>,
    #[serde(default)]
    pub servers: std::collections::BTreeMap<String, Stored>,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct Stored {
    pub token: String,
    /// Who the token signs in as, when it was checked.
    #[serde(default)]
    pub login: Option<String>,
}

/// `$PADDOCK_CONFIG_DIR`, else `$XDG_CONFIG_HOME/paddock`, else `~/.config/paddock`.
pub fn config_dir() -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("PADDOCK_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("paddock"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .context("neither PADDOCK_CONFIG_DIR nor HOME is set")?;
    Ok(PathBuf::from(home).join(".config").join("paddock"))
}

impl Credentials {
    pub fn path() -> anyhow::Result<PathBuf> {
        Ok(config_dir()?.join("credentials.json"))
    }

    pub fn load() -> anyhow::Result<Credentials> {
        let path = Credentials::path()?;
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not valid credentials JSON", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Credentials::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes the file whole (mode 0600 temp file, fsync, rename) so that a crash or a
    /// concurrent login leaves one complete file.
    pub fn save(&self) -> anyhow::Result<PathBuf> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let path = Credentials::path()?;
        let dir = path
            .parent()
            .context("the credentials path has no directory")?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        let tmp = dir.join(format!(
            ".credentials.json.{}.{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&serde_json::to_vec_pretty(self)?)?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(())
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            anyhow::Error::from(e).context(format!("writing {}", path.display()))
        })?;
        Ok(path)
    }
}

/// The server and token a client command uses: `--server`/`PADDOCK_SERVER` over the stored
/// current server; `PADDOCK_TOKEN` over the token stored for that server. A stored token
/// is only ever sent to the server it was stored for.
pub fn connect(server: Option<&str>) -> anyhow::Result<Client> {
    let creds = Credentials::load()?;
    let server = match server.filter(|s| !s.trim().is_empty()) {
        Some(s) => normalize_server(s)?,
        None => creds.current.clone().ok_or_else(|| {
            NotLoggedIn(
                "no server: run `paddock login --server URL`, or set PADDOCK_SERVER and PADDOCK_TOKEN"
                    .into(),
            )
        })?,
    };
    let token = match std::env::var("PADDOCK_TOKEN").ok().filter(|t| !t.is_empty()) {
        Some(t) => t,
        None => creds
            .servers
            .get(&server)
            .map(|s| s.token.clone())
            .ok_or_else(|| {
                NotLoggedIn(format!(
                    "not logged in to {server}: run `paddock login --server {server}`, or set PADDOCK_TOKEN"
                ))
            })?,
    };
    Client::new(&server, &token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_normalized() {
        assert_eq!(
            normalize_server("https://p.example.com/").unwrap(),
            "https://p.example.com"
        );
        assert_eq!(
            normalize_server("http://127.0.0.1:8080/api/v1/").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert!(normalize_server("p.example.com").is_err());
        assert!(normalize_server("ftp://p.example.com").is_err());
    }

    #[test]
    fn field_errors_are_listed() {
        let e = ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            problem: Problem {
                detail: "name: bad".into(),
                errors: vec![FieldError {
                    field: "name".into(),
                    message: "bad".into(),
                    rule: None,
                }],
                ..Problem::default()
            },
            body: String::new(),
        };
        assert_eq!(e.to_string(), "invalid input (HTTP 422):\n  name: bad");
        assert_eq!(e.exit_code(), exit::INVALID);
    }

    #[test]
    fn a_policy_denial_names_each_rule_and_field() {
        let reason = |field: &str, rule: &str, message: &str| FieldError {
            field: field.into(),
            message: message.into(),
            rule: Some(rule.into()),
        };
        let e = ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            problem: Problem {
                kind: POLICY_DENIED.into(),
                detail: "…".into(),
                errors: vec![
                    reason(
                        "region",
                        "allowed-regions",
                        "region \"eastus\" is not allowed",
                    ),
                    reason("(request)", "environments-per-team", "team payments has 20"),
                ],
                ..Problem::default()
            },
            body: String::new(),
        };
        assert_eq!(
            e.to_string(),
            "denied by policy (HTTP 422):\n  [allowed-regions] region: region \"eastus\" is not \
             allowed\n  [environments-per-team] team payments has 20"
        );
        assert_eq!(e.exit_code(), exit::DENIED);
    }
}
