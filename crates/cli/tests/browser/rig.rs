//! The browser-test rig: a real `paddock serve` process (the built binary, a temp data
//! dir, a free port), chromedriver on a free port, and headless Chromium sessions driven
//! through WebDriver (`fantoccini`), with the helpers pages are tested with — sign in,
//! go to a path, fill a field by its label, click by visible text, wait for a condition,
//! save a screenshot, and check accessibility with axe-core.
//!
//! Everything is stopped on drop: the server and chromedriver are killed (chromedriver with
//! its whole process group, and so every Chromium it started) and the temp dir removed.
//! Every helper returns a [`RigError`] naming what it was doing and what the page showed:
//! nothing is retried blindly, nothing is skipped but through `PADDOCK_TEST_SKIP_BROWSER=1`
//! outside CI.

use std::collections::HashSet;
use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use fantoccini::elements::{Element, ElementRef};
use fantoccini::error::{CmdError, NewSessionError};
use fantoccini::{Client, ClientBuilder, Locator};
use serde::Deserialize;
use serde_json::{Value, json};

/// How long a page may take to show what a test waits for.
pub const WAIT: Duration = Duration::from_secs(15);
/// How long `paddock serve` may take to start (first start: migrations, the sandbox, the
/// platform's template repository), on a busy 2-core CI machine.
const SERVER_START: Duration = Duration::from_secs(120);
const DRIVER_START: Duration = Duration::from_secs(30);
const SESSION_START: Duration = Duration::from_secs(60);
/// Between two looks at a condition being waited for.
const POLL: Duration = Duration::from_millis(50);

/// axe-core, vendored for the tests (see `vendor/axe-core/README.md`); never shipped.
const AXE: &str = include_str!("vendor/axe-core/axe.min.js");

/// WebDriver's key for an element reference in JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// What went wrong, and while doing what.
#[derive(thiserror::Error)]
pub enum RigError {
    #[error(
        "the browser tests need Chromium and chromedriver: {0}\n\
         Run ./scripts/test (as root it installs Debian's chromium and chromium-driver), or \
         install them, or set PADDOCK_TEST_CHROMIUM / PADDOCK_TEST_CHROMEDRIVER; outside CI, \
         PADDOCK_TEST_SKIP_BROWSER=1 skips these tests"
    )]
    NoBrowser(String),
    #[error("{doing}: {source}")]
    Io {
        doing: String,
        source: std::io::Error,
    },
    #[error("{what} did not start within {after:?}: {detail}")]
    Start {
        what: &'static str,
        after: Duration,
        detail: String,
    },
    #[error("starting a browser session: {0}")]
    Session(#[from] NewSessionError),
    #[error("{doing}: {source}")]
    WebDriver { doing: String, source: CmdError },
    #[error("{doing}: {source}")]
    Http {
        doing: String,
        source: reqwest::Error,
    },
    #[error("{doing}: the server answered {status}: {body}")]
    Api {
        doing: String,
        status: u16,
        body: String,
    },
    #[error("waited {after:?} for {what} on {url} (screenshot: {shot}); the page shows:\n{page}")]
    Timeout {
        what: String,
        after: Duration,
        url: String,
        page: String,
        shot: String,
    },
    #[error("{what} on {url}: {detail}")]
    NotFound {
        what: String,
        url: String,
        detail: String,
    },
    #[error("{0}")]
    Usage(String),
    #[error("{page} has accessibility violations of serious or critical impact:\n{report}")]
    Inaccessible { page: String, report: String },
}

// Tests return `Result<(), RigError>`; the test harness prints an error with `Debug`, and
// the message is what a reader needs.
impl fmt::Debug for RigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn wd(doing: impl Into<String>) -> impl FnOnce(CmdError) -> RigError {
    let doing = doing.into();
    move |source| RigError::WebDriver { doing, source }
}

fn io(doing: impl Into<String>) -> impl FnOnce(std::io::Error) -> RigError {
    let doing = doing.into();
    move |source| RigError::Io { doing, source }
}

/// Where Chromium and chromedriver are.
#[derive(Clone, Debug)]
struct Binaries {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

impl Binaries {
    /// `None` when the tests are to be skipped (`PADDOCK_TEST_SKIP_BROWSER=1`, not in CI).
    fn find() -> Result<Option<Binaries>, RigError> {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        if !ci && std::env::var("PADDOCK_TEST_SKIP_BROWSER").is_ok_and(|v| v == "1") {
            eprintln!("skipped: PADDOCK_TEST_SKIP_BROWSER=1 (the browser tests did not run)");
            return Ok(None);
        }
        let path = |var: &str, default: &str| {
            std::env::var_os(var)
                .filter(|v| !v.is_empty())
                .map_or_else(|| PathBuf::from(default), PathBuf::from)
        };
        let found = Binaries {
            chromium: path("PADDOCK_TEST_CHROMIUM", "/usr/bin/chromium"),
            chromedriver: path("PADDOCK_TEST_CHROMEDRIVER", "/usr/bin/chromedriver"),
        };
        for p in [&found.chromium, &found.chromedriver] {
            if !p.is_file() {
                return Err(RigError::NoBrowser(format!("{} is missing", p.display())));
            }
        }
        Ok(Some(found))
    }
}

/// A free port on 127.0.0.1 (free when asked: the caller binds it at once).
fn free_port() -> Result<u16, RigError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(io("finding a free port"))?;
    Ok(l.local_addr().map_err(io("finding a free port"))?.port())
}

/// Spawns `cmd` so that the kernel kills it if the test process dies first.
fn spawn(cmd: &mut Command, what: &str) -> Result<Child, RigError> {
    // SAFETY: prctl is async-signal-safe and touches no memory of this process.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.spawn().map_err(io(format!("starting {what}")))
}

/// The last lines of a log file, to show with an error.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `paddock serve` as a child process.
struct Serve {
    child: Child,
    url: String,
    sign_in_link: Option<String>,
    data: PathBuf,
    log: PathBuf,
}

impl Serve {
    fn start(dir: &Path) -> Result<Serve, RigError> {
        // Another process may take the free port between the look and the bind: try again.
        let mut last = None;
        for _ in 0..3 {
            match Serve::start_on(dir, free_port()?) {
                Err(RigError::Start { detail, .. }) if detail.contains("in use") => {
                    last = Some(detail);
                }
                other => return other,
            }
        }
        Err(RigError::Start {
            what: "paddock serve",
            after: SERVER_START,
            detail: last.unwrap_or_default(),
        })
    }

    fn start_on(dir: &Path, port: u16) -> Result<Serve, RigError> {
        // A data dir per attempt: a first start makes the admin and prints its link before
        // it binds, and only a first start does.
        let data = dir.join(format!("data-{port}"));
        let log = dir.join(format!("serve-{port}.log"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_paddock"));
        cmd.arg("serve")
            .arg("--data")
            .arg(&data)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(["--log-format", "json"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // The server is configured by its flags alone, whatever the developer's shell says.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("PADDOCK_") {
                cmd.env_remove(&k);
            }
        }
        let mut child = spawn(&mut cmd, "paddock serve")?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, rx) = mpsc::channel::<String>();
        let mut file = std::fs::File::create(&log).map_err(io("creating the server's log"))?;
        // Drains stderr for the server's whole life (a full pipe would block it), into the
        // log file; lines are also handed over until the rig stops listening.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(file, "{line}");
                let _ = tx.send(line);
            }
        });
        let mut serve = Serve {
            child,
            url: String::new(),
            sign_in_link: None,
            data,
            log,
        };
        let deadline = Instant::now() + SERVER_START;
        let failed = |serve: &Serve, why: &str| RigError::Start {
            what: "paddock serve",
            after: SERVER_START,
            detail: format!(
                "{why}; its log ({}):\n{}",
                serve.log.display(),
                tail(&serve.log, 30)
            ),
        };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("Paddock is serving at ") {
                        serve.url = url.trim().trim_end_matches('/').to_owned();
                    } else if line.contains("/sign-in/link/") {
                        serve.sign_in_link = Some(line.trim().to_owned());
                    } else if line.starts_with("The sandbox cloud runs in-process") {
                        // The last line `paddock serve` prints once it serves.
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(failed(&serve, "it printed no address"));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = serve
                        .child
                        .wait()
                        .map_err(io("waiting for paddock serve"))?;
                    return Err(failed(&serve, &format!("it exited ({status})")));
                }
            }
        }
        if serve.url != format!("http://127.0.0.1:{port}") {
            return Err(failed(
                &serve,
                &format!("it serves at `{}`, not on port {port}", serve.url),
            ));
        }
        Ok(serve)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// chromedriver as a child process, leader of its own process group, so that the browsers
/// it starts are stopped with it.
struct Driver {
    child: Child,
    port: u16,
    url: String,
    log: PathBuf,
    /// The sessions opened, ended on drop (so that Chromium exits cleanly).
    sessions: Mutex<Vec<String>>,
}

impl Driver {
    async fn start(bin: &Path, dir: &Path, http: &reqwest::Client) -> Result<Driver, RigError> {
        // Another process may take the free port between the look and the bind: try again.
        let mut attempt = 1;
        loop {
            match Driver::start_on(bin, dir, http, free_port()?).await {
                Err(RigError::Start { detail, .. }) if attempt < 3 && detail.contains("exited") => {
                    eprintln!("chromedriver did not start (attempt {attempt}): {detail}");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn start_on(
        bin: &Path,
        dir: &Path,
        http: &reqwest::Client,
        port: u16,
    ) -> Result<Driver, RigError> {
        let log = dir.join(format!("chromedriver-{port}.log"));
        let out = std::fs::File::create(&log).map_err(io("creating chromedriver's log"))?;
        let err = out.try_clone().map_err(io("creating chromedriver's log"))?;
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = spawn(&mut cmd, "chromedriver")?;
        let mut driver = Driver {
            child,
            port,
            url: format!("http://127.0.0.1:{port}"),
            log,
            sessions: Mutex::new(Vec::new()),
        };
        let deadline = Instant::now() + DRIVER_START;
        loop {
            let status = http.get(format!("{}/status", driver.url)).send().await;
            if let Ok(r) = status
                && let Ok(body) = r.json::<Value>().await
                && body["value"]["ready"] == json!(true)
            {
                return Ok(driver);
            }
            let exited = driver
                .child
                .try_wait()
                .map_err(io("waiting for chromedriver"))?;
            if exited.is_some() || Instant::now() > deadline {
                return Err(RigError::Start {
                    what: "chromedriver",
                    after: DRIVER_START,
                    detail: format!(
                        "{}; its log:\n{}",
                        exited.map_or("not ready".into(), |s| format!("it exited ({s})")),
                        tail(&driver.log, 30)
                    ),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Driver {
    /// Ends a session (chromedriver then quits its Chromium and reaps it), blocking: this
    /// runs in `drop`, where nothing can be awaited.
    fn end_session(&self, id: &str) {
        use std::io::Read;
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let request = format!(
            "DELETE /session/{id} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\
             Content-Length: 0\r\n\r\n",
            self.port
        );
        if stream.write_all(request.as_bytes()).is_err() {
            return;
        }
        // chromedriver keeps the connection open: read one response, by its length.
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(n @ 1..) = stream.read(&mut chunk) {
            got.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&got);
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if got.len() >= end + 4 + length {
                    return;
                }
            }
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        for id in std::mem::take(&mut *self.sessions.lock().expect("not poisoned")) {
            self.end_session(&id);
        }
        // The group's id is chromedriver's pid: this ends chromedriver and its browsers.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: a plain syscall on a process group this rig created.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let _ = self.child.wait();
    }
}

/// A person who can sign in with a password.
#[derive(Clone, Debug)]
pub struct Person {
    pub login: String,
    pub password: String,
}

/// A server, chromedriver, and what is needed to open browsers on them.
pub struct Rig {
    // Fields drop in order: browsers' driver first, then the server, then the files.
    driver: Driver,
    serve: Serve,
    binaries: Binaries,
    http: reqwest::Client,
    admin_token: String,
    printed_link: String,
    /// The printed link until a browser signs in with it.
    unused_link: Arc<Mutex<Option<String>>>,
    browsers: Mutex<usize>,
    dir: tempfile::TempDir,
}

impl Rig {
    /// A new server and chromedriver; `None` when the browser tests are skipped
    /// (`PADDOCK_TEST_SKIP_BROWSER=1`, outside CI only).
    pub async fn start() -> Result<Option<Rig>, RigError> {
        let Some(binaries) = Binaries::find()? else {
            return Ok(None);
        };
        let dir = tempfile::Builder::new()
            .prefix("paddock-browser-")
            .tempdir()
            .map_err(io("creating a temp dir"))?;
        let http = paddock_providers::http::reqwest_client(None, None)
            .expect("an HTTP client on the built-in TLS stack");
        let serve = Serve::start(dir.path())?;
        let driver = Driver::start(&binaries.chromedriver, dir.path(), &http).await?;
        let token_file = serve.data.join("initial-admin-token");
        let admin_token = std::fs::read_to_string(&token_file)
            .map_err(io(format!("reading {}", token_file.display())))?
            .trim()
            .to_owned();
        let sign_in_link = serve.sign_in_link.clone().ok_or_else(|| RigError::Start {
            what: "paddock serve",
            after: SERVER_START,
            detail: format!(
                "its first start printed no sign-in link; its log:\n{}",
                tail(&serve.log, 30)
            ),
        })?;
        Ok(Some(Rig {
            driver,
            serve,
            binaries,
            http,
            admin_token,
            unused_link: Arc::new(Mutex::new(Some(sign_in_link.clone()))),
            printed_link: sign_in_link,
            browsers: Mutex::new(0),
            dir,
        }))
    }

    /// The server's base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> &str {
        &self.serve.url
    }

    /// The one-time sign-in link `paddock serve` printed (to check that it works once:
    /// [`Browser::sign_in_as_admin`] signs in with it).
    pub fn printed_sign_in_link(&self) -> &str {
        &self.printed_link
    }

    /// A new headless Chromium session with a fresh profile, not signed in.
    pub async fn browser(&self) -> Result<Browser, RigError> {
        let n = {
            let mut count = self.browsers.lock().expect("not poisoned");
            *count += 1;
            *count
        };
        let profile = self.dir.path().join(format!("chromium-profile-{n}"));
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1280,900",
        ]
        .into_iter()
        .map(str::to_owned)
        .chain([format!("--user-data-dir={}", profile.display())])
        .collect::<Vec<_>>();
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": self.binaries.chromium, "args": args}),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let mut builder = ClientBuilder::new(connector);
        builder.capabilities(caps);
        let connecting = builder.connect(&self.driver.url);
        let client = tokio::time::timeout(SESSION_START, connecting)
            .await
            .map_err(|_| RigError::Start {
                what: "a Chromium session",
                after: SESSION_START,
                detail: tail(&self.driver.log, 30),
            })??;
        if let Some(id) = client
            .session_id()
            .await
            .map_err(wd("reading the session's id"))?
        {
            self.driver.sessions.lock().expect("not poisoned").push(id);
        }
        Ok(Browser {
            client,
            base: self.serve.url.clone(),
            admin_link: self.unused_link.clone(),
        })
    }

    /// A browser signed in as the platform admin, through the printed one-time link.
    pub async fn admin_browser(&self) -> Result<Browser, RigError> {
        let b = self.browser().await?;
        b.sign_in_as_admin().await?;
        Ok(b)
    }

    /// Calls the API as the platform admin (the initial admin token).
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, RigError> {
        let doing = format!("{method} {path}");
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.serve.url))
            .bearer_auth(&self.admin_token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let response = req.send().await.map_err(|source| RigError::Http {
            doing: doing.clone(),
            source,
        })?;
        let status = response.status();
        let text = response.text().await.map_err(|source| RigError::Http {
            doing: doing.clone(),
            source,
        })?;
        if !status.is_success() {
            return Err(RigError::Api {
                doing,
                status: status.as_u16(),
                body: text,
            });
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// A local account with a password (`POST /api/v1/users`).
    pub async fn add_person(&self, login: &str) -> Result<Person, RigError> {
        let person = Person {
            login: login.to_owned(),
            password: format!("{login}-password-for-tests"),
        };
        self.api(
            reqwest::Method::POST,
            "/api/v1/users",
            Some(json!({"login": login, "name": login, "password": person.password})),
        )
        .await?;
        Ok(person)
    }

    /// A team, made by the platform admin (`POST /api/v1/teams`; its stack is built in
    /// the background by the server's workers).
    pub async fn create_team(&self, team: &str) -> Result<(), RigError> {
        self.api(
            reqwest::Method::POST,
            "/api/v1/teams",
            Some(json!({"name": team})),
        )
        .await
        .map(drop)
    }

    /// Gives `login` a role (`admin`, `contributor` or `reader`) in `team`.
    pub async fn set_role(&self, team: &str, login: &str, role: &str) -> Result<(), RigError> {
        self.api(
            reqwest::Method::PUT,
            &format!("/api/v1/teams/{team}/members/{login}"),
            Some(json!({"role": role})),
        )
        .await
        .map(drop)
    }

    /// What the in-process sandbox cloud holds now (its control API's `/inspect`).
    pub async fn sandbox(&self) -> Result<Value, RigError> {
        let env = self.serve.data.join("sandbox").join("sandbox.env");
        let text =
            std::fs::read_to_string(&env).map_err(io(format!("reading {}", env.display())))?;
        let control = text
            .lines()
            .find_map(|l| l.strip_prefix("PADDOCK_SANDBOX_CONTROL_URL="))
            .ok_or_else(|| RigError::Usage(format!("{} names no control URL", env.display())))?;
        let doing = "reading the sandbox's objects".to_owned();
        let response = self
            .http
            .get(format!("{control}/inspect"))
            .send()
            .await
            .map_err(|source| RigError::Http {
                doing: doing.clone(),
                source,
            })?;
        response
            .json()
            .await
            .map_err(|source| RigError::Http { doing, source })
    }

    /// A new person who reads `team` (which must exist), with a password.
    pub async fn add_reader(&self, team: &str, login: &str) -> Result<Person, RigError> {
        let person = self.add_person(login).await?;
        self.set_role(team, login, "reader").await?;
        Ok(person)
    }
}

/// One headless Chromium session.
pub struct Browser {
    client: Client,
    base: String,
    /// The rig's printed sign-in link, until some browser uses it.
    admin_link: Arc<Mutex<Option<String>>>,
}

/// A page's text, shortened for an error message.
fn excerpt(text: &str) -> String {
    const MAX: usize = 2000;
    let text = text.trim();
    match text.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

/// Screenshot names written by this process: each is written once per run.
static SHOTS: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// The folder screenshots go to: `target/screenshots/` (or `PADDOCK_TEST_SCREENSHOTS`).
pub fn screenshot_dir() -> PathBuf {
    match std::env::var_os("PADDOCK_TEST_SCREENSHOTS").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("the target dir holds tmp/")
            .join("screenshots"),
    }
}

/// One accessibility rule a page breaks, as axe reports it.
#[derive(Debug, Deserialize)]
pub struct Violation {
    pub id: String,
    /// `minor`, `moderate`, `serious` or `critical`.
    pub impact: Option<String>,
    pub help: String,
    #[serde(rename = "helpUrl")]
    pub help_url: String,
    /// Each offending node's selector path (a list: frames and shadow roots add steps).
    pub targets: Vec<Value>,
}

impl Violation {
    pub fn is_serious(&self) -> bool {
        matches!(self.impact.as_deref(), Some("serious" | "critical"))
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "- {} ({}): {} <{}>",
            self.id,
            self.impact.as_deref().unwrap_or("no impact given"),
            self.help,
            self.help_url
        )?;
        for t in &self.targets {
            writeln!(f, "    at {t}")?;
        }
        Ok(())
    }
}

impl Browser {
    /// The WebDriver client, for what the helpers do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The current URL's path, without its query (`/sign-in` for `/sign-in?next=%2F`).
    pub async fn path(&self) -> Result<String, RigError> {
        let url = self
            .client
            .current_url()
            .await
            .map_err(wd("reading the URL"))?;
        Ok(url.path().to_owned())
    }

    async fn url(&self) -> String {
        match self.client.current_url().await {
            Ok(u) => u.to_string(),
            Err(e) => format!("(unknown URL: {e})"),
        }
    }

    /// The page's visible text.
    pub async fn text(&self) -> Result<String, RigError> {
        let v = self
            .client
            .execute(
                "return document.body ? document.body.innerText : '';",
                vec![],
            )
            .await
            .map_err(wd("reading the page's text"))?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// Opens a path of the server (`/`, `/sign-in`, …) and waits for the page to load.
    pub async fn goto(&self, path: &str) -> Result<(), RigError> {
        let url = format!("{}{path}", self.base);
        self.client
            .goto(&url)
            .await
            .map_err(wd(format!("opening {url}")))
    }

    /// Signs in through the one-time link `paddock serve` printed, and waits to have left
    /// the sign-in pages (for wherever the server sends a new session: home, a welcome).
    /// The link works once: one browser of a rig can do this.
    pub async fn sign_in_as_admin(&self) -> Result<(), RigError> {
        let link = self.admin_link.lock().expect("not poisoned").take();
        let link = link.ok_or_else(|| {
            RigError::Usage(
                "the printed sign-in link was used already: it signs in once; sign other \
                 browsers in as people with passwords (Rig::add_person, Browser::sign_in)"
                    .into(),
            )
        })?;
        self.client
            .goto(&link)
            .await
            .map_err(wd(format!("opening the sign-in link {link}")))?;
        self.wait_until_signed_in().await
    }

    /// Signs in through the `/sign-in` form with a login and password, and waits to have
    /// left the sign-in pages.
    pub async fn sign_in(&self, person: &Person) -> Result<(), RigError> {
        self.goto("/sign-in").await?;
        self.fill("Login", &person.login).await?;
        self.fill("Password", &person.password).await?;
        self.click("Sign in").await?;
        self.wait_until_signed_in().await
    }

    /// Waits until the browser is off `/sign-in…`: a refused sign-in stays there (the
    /// form again, or the error), and times out showing why.
    async fn wait_until_signed_in(&self) -> Result<(), RigError> {
        let deadline = Instant::now() + WAIT;
        loop {
            if !self.path().await?.starts_with("/sign-in") {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.timeout("a page past signing in".into(), WAIT).await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Runs `script`, which returns `{hits: [elements], seen: [strings]}`, and gives the
    /// one element hit; `what` and the strings seen describe a miss.
    async fn one_element(&self, what: &str, script: &str, arg: &str) -> Result<Element, RigError> {
        let v = self
            .client
            .execute(script, vec![json!(arg)])
            .await
            .map_err(wd(format!("looking for {what}")))?;
        let hits: Vec<String> = v["hits"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h[ELEMENT_KEY].as_str().map(str::to_owned))
            .collect();
        let seen = v["seen"].to_string();
        match hits.as_slice() {
            [one] => Ok(Element::from_element_id(
                self.client.clone(),
                ElementRef::from(one.clone()),
            )),
            [] => Err(RigError::NotFound {
                what: what.to_owned(),
                url: self.url().await,
                detail: format!("none; the page has {seen}"),
            }),
            many => Err(RigError::NotFound {
                what: what.to_owned(),
                url: self.url().await,
                detail: format!(
                    "{} match, expected one: name it more precisely (or by CSS)",
                    many.len()
                ),
            }),
        }
    }

    /// Types `value` into the field whose label (or `aria-label`) reads `field` exactly;
    /// failing that, the one element the CSS selector `field` matches. A `<select>` takes
    /// the option whose text is `value`.
    pub async fn fill(&self, field: &str, value: &str) -> Result<(), RigError> {
        const FIND: &str = r#"
            const want = arguments[0];
            const norm = s => (s || '').replace(/\s+/g, ' ').trim();
            const labelText = l => {
                const c = l.cloneNode(true);
                c.querySelectorAll('input, select, textarea, button').forEach(e => e.remove());
                return norm(c.textContent);
            };
            const labels = [...document.querySelectorAll('label')];
            let hits = labels.filter(l => labelText(l) === want).map(l => l.control).filter(Boolean);
            hits = hits.concat([...document.querySelectorAll('[aria-label]')]
                .filter(e => norm(e.getAttribute('aria-label')) === want));
            if (hits.length === 0) {
                try { hits = [...document.querySelectorAll(want)]; } catch (e) { hits = []; }
            }
            return {hits: [...new Set(hits)], seen: labels.map(l => 'label: ' + labelText(l))};
        "#;
        let what = format!("the field `{field}`");
        let el = self.one_element(&what, FIND, field).await?;
        let tag = el.tag_name().await.map_err(wd(format!("reading {what}")))?;
        if tag.eq_ignore_ascii_case("select") {
            return el
                .select_by_label(value)
                .await
                .map_err(wd(format!("choosing `{value}` in {what}")));
        }
        el.clear().await.map_err(wd(format!("clearing {what}")))?;
        el.send_keys(value)
            .await
            .map_err(wd(format!("typing into {what}")))
    }

    /// Clicks the one visible button or link whose text (or `aria-label`, or a button
    /// input's value) reads `text` exactly.
    pub async fn click(&self, text: &str) -> Result<(), RigError> {
        const FIND: &str = r#"
            const want = arguments[0];
            const norm = s => (s || '').replace(/\s+/g, ' ').trim();
            const visible = e => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length);
            const name = e => norm(e.getAttribute('aria-label')
                || (e.tagName === 'INPUT' ? e.value : e.innerText));
            const all = [...document.querySelectorAll(
                'button, a[href], input[type=submit], input[type=button], [role=button], [role=link], summary'
            )].filter(visible);
            return {hits: all.filter(e => name(e) === want), seen: all.map(name)};
        "#;
        let what = format!("a button or link `{text}`");
        let el = self.one_element(&what, FIND, text).await?;
        el.click().await.map_err(wd(format!("clicking {what}")))
    }

    /// Ticks (or unticks) the one checkbox whose label reads `label` exactly, within the
    /// group whose legend reads `group`.
    pub async fn tick(&self, group: &str, label: &str) -> Result<(), RigError> {
        const FIND: &str = r#"
            const [group, want] = JSON.parse(arguments[0]);
            const norm = s => (s || '').replace(/\s+/g, ' ').trim();
            const sets = [...document.querySelectorAll('fieldset')]
                .filter(f => f.querySelector('legend') && norm(f.querySelector('legend').textContent).startsWith(group));
            const boxes = sets.flatMap(f => [...f.querySelectorAll('label')])
                .filter(l => norm(l.textContent) === want)
                .map(l => l.control || l.querySelector('input'))
                .filter(e => e && e.type === 'checkbox');
            return {hits: boxes, seen: sets.map(f => norm(f.textContent))};
        "#;
        let what = format!("the checkbox `{label}` of `{group}`");
        let arg = serde_json::to_string(&[group, label]).expect("strings serialize");
        let el = self.one_element(&what, FIND, &arg).await?;
        el.click().await.map_err(wd(format!("ticking {what}")))
    }

    /// Posts a form to `path` from this page with the session's CSRF token (as a person
    /// forcing a form they were not offered would), and gives the HTTP status.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Result<u16, RigError> {
        let v = self
            .client
            .execute_async(
                r#"
                const [path, fields, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
                const body = new URLSearchParams(fields);
                const token = document.querySelector('input[name=csrf_token]');
                if (token) body.append('csrf_token', token.value);
                fetch(path, {method: 'POST', body, redirect: 'manual'})
                    .then(r => done(r.status), e => done(String(e)));
                "#,
                vec![json!(path), json!(fields)],
            )
            .await
            .map_err(wd(format!("posting to {path}")))?;
        v.as_u64()
            .map(|s| s as u16)
            .ok_or_else(|| RigError::Usage(format!("posting to {path}: {v}")))
    }

    /// Waits until an element matches the CSS selector, and gives it.
    pub async fn wait_for_css(&self, css: &str, timeout: Duration) -> Result<Element, RigError> {
        match self
            .client
            .wait()
            .at_most(timeout)
            .every(POLL)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(el) => Ok(el),
            Err(CmdError::WaitTimeout) => Err(self.timeout(format!("`{css}`"), timeout).await),
            Err(e) => Err(wd(format!("waiting for `{css}`"))(e)),
        }
    }

    /// Waits until the page's visible text contains `text`.
    pub async fn wait_for_text(&self, text: &str, timeout: Duration) -> Result<(), RigError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.text().await?.contains(text) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.timeout(format!("the text `{text}`"), timeout).await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Opens `path` again and again (a page that does not update itself) until its text
    /// contains `text`.
    pub async fn reload_until(
        &self,
        path: &str,
        text: &str,
        timeout: Duration,
    ) -> Result<(), RigError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.goto(path).await?;
            if self.text().await?.contains(text) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.timeout(format!("the text `{text}`"), timeout).await);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Waits until the browser is at `path` (whatever the query).
    pub async fn wait_for_path(&self, path: &str, timeout: Duration) -> Result<(), RigError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.path().await? == path {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.timeout(format!("the path `{path}`"), timeout).await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn timeout(&self, what: String, after: Duration) -> RigError {
        RigError::Timeout {
            what,
            after,
            url: self.url().await,
            page: excerpt(&self.text().await.unwrap_or_else(|e| e.to_string())),
            shot: self.failure_screenshot().await,
        }
    }

    /// Saves what the browser shows when a wait fails, as
    /// `target/screenshots/failed-PID-N.png`, and says where (or why not).
    async fn failure_screenshot(&self) -> String {
        static FAILURES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = FAILURES.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let path = screenshot_dir().join(format!("failed-{}-{n}.png", std::process::id()));
        let png = match self.client.screenshot().await {
            Ok(png) => png,
            Err(e) => return format!("none: {e}"),
        };
        match std::fs::create_dir_all(screenshot_dir()).and_then(|()| std::fs::write(&path, png)) {
            Ok(()) => path.display().to_string(),
            Err(e) => format!("none: {e}"),
        }
    }

    /// Saves the viewport as `target/screenshots/NAME.png` and gives its path. Each name is
    /// used once per run (two tests saving under one name would hide one of them).
    pub async fn screenshot(&self, name: &str) -> Result<PathBuf, RigError> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(RigError::Usage(format!(
                "screenshot name `{name}`: use letters, digits, - and _"
            )));
        }
        if !SHOTS
            .lock()
            .expect("not poisoned")
            .get_or_insert_with(HashSet::new)
            .insert(name.to_owned())
        {
            return Err(RigError::Usage(format!(
                "the screenshot `{name}` was saved already in this run: give each its own name"
            )));
        }
        let png = self
            .client
            .screenshot()
            .await
            .map_err(wd(format!("taking the screenshot `{name}`")))?;
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).map_err(io(format!("writing {}", path.display())))?;
        Ok(path)
    }

    /// Runs axe-core on the current page and gives every violation it finds.
    pub async fn axe(&self) -> Result<Vec<Violation>, RigError> {
        let loaded = self
            .client
            .execute("return typeof window.axe === 'object';", vec![])
            .await
            .map_err(wd("looking for axe-core on the page"))?;
        if loaded != json!(true) {
            self.client
                .execute(&format!("{AXE}\nreturn true;"), vec![])
                .await
                .map_err(wd("injecting axe-core"))?;
        }
        const RUN: &str = r#"
            const done = arguments[arguments.length - 1];
            axe.run(document, {resultTypes: ['violations']})
                .then(r => done({violations: r.violations.map(v => ({
                    id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
                    targets: v.nodes.map(n => n.target)
                }))}))
                .catch(e => done({error: String(e)}));
        "#;
        let v = self
            .client
            .execute_async(RUN, vec![])
            .await
            .map_err(wd("running axe-core"))?;
        if let Some(e) = v.get("error") {
            return Err(RigError::NotFound {
                what: "axe-core's results".into(),
                url: self.url().await,
                detail: format!("axe.run failed: {e}"),
            });
        }
        serde_json::from_value(v["violations"].clone()).map_err(|e| RigError::NotFound {
            what: "axe-core's results".into(),
            url: String::new(),
            detail: format!("unreadable: {e}"),
        })
    }

    /// Fails when axe finds a violation of serious or critical impact on the current page,
    /// listing every violation; lesser ones are printed, and pass.
    pub async fn assert_accessible(&self, page: &str) -> Result<(), RigError> {
        let violations = self.axe().await?;
        let (serious, lesser): (Vec<&Violation>, Vec<&Violation>) =
            violations.iter().partition(|v| v.is_serious());
        if !lesser.is_empty() {
            let list: String = lesser.iter().map(|v| v.to_string()).collect();
            eprintln!("{page}: axe notes (minor or moderate, not failing):\n{list}");
        }
        if serious.is_empty() {
            return Ok(());
        }
        Err(RigError::Inaccessible {
            page: format!("{page} ({})", self.url().await),
            report: violations.iter().map(|v| v.to_string()).collect(),
        })
    }
}
