//! The rig of the server's integration tests: a sandbox cloud and a server in-process, on
//! SQLite or on a fresh PostgreSQL database, and a client that signs people in the way
//! people do and records every response (so tests can search them for secrets).
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use paddock_providers::clouds::Clouds;
use paddock_sandbox::{Sandbox, SandboxConfig};
use paddock_server::{Config, Deps, Running};
use paddock_store::testing::TestDatabase;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Runs each named test (an `async fn(Backend)`) on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(admin) = paddock_store::testing::admin_url() {
                        super::$name(super::common::Backend::Postgres(admin)).await
                    }
                }
            )*
        }
    };
}

#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    /// The URL of a server where databases may be created.
    Postgres(String),
}

pub struct Rig {
    pub dir: tempfile::TempDir,
    pub sandbox: Sandbox,
    pub running: Option<Running>,
    pub url: String,
    pub db_url: String,
    pub pg: Option<TestDatabase>,
    /// The bootstrap platform admin's API token.
    pub admin: String,
    pub http: reqwest::Client,
    /// Every response body the rig has seen, in order.
    pub responses: Arc<Mutex<Vec<(String, String)>>>,
}

/// A person's way in.
#[derive(Clone, Debug)]
pub enum Auth {
    Anonymous,
    Token(String),
    /// A session cookie and its CSRF token.
    Session {
        cookie: String,
        csrf: String,
    },
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// Asserts the status, showing the body when it differs.
    pub fn expect(self, status: u16) -> Reply {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text
        );
        self
    }
}

impl Rig {
    pub async fn start(backend: Backend) -> Rig {
        Rig::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, tune: impl FnOnce(&mut Config)) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        Rig::start_in(dir, backend, tune).await
    }

    /// A server whose people sign in with the sandbox's Entra ID (`sandbox-entra`) and
    /// GitHub (`sandbox-github`), registered to redirect to it.
    pub async fn start_with_sign_in(backend: Backend) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Rig::start_in(dir, backend, move |config| {
            config.listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
            config.public_url = Some(format!("http://127.0.0.1:{port}"));
        })
        .await
    }

    async fn start_in(
        dir: tempfile::TempDir,
        backend: Backend,
        tune: impl FnOnce(&mut Config),
    ) -> Rig {
        let mut sb = SandboxConfig::new(dir.path().join("sandbox"));
        sb.github_template_delay = Duration::from_millis(100);
        let sandbox = Sandbox::start(sb).await.unwrap();
        let env = sandbox
            .env()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let clouds = Clouds::from_sandbox_env(&env).unwrap();
        let (db_url, pg) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.path().join("data/paddock.db").display()),
                None,
            ),
            Backend::Postgres(admin) => {
                let db = TestDatabase::create(&admin).await.unwrap();
                (db.url().to_owned(), Some(db))
            }
        };
        let mut config = Config {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            data_dir: Some(dir.path().join("data")),
            database_url: Some(db_url.clone()),
            ..Config::default()
        };
        config.workers.count = Some(2);
        config.workers.lease_seconds = Some(5);
        config.workers.poll_ms = Some(50);
        tune(&mut config);
        if let Some(public) = config.public_url.clone() {
            let callback = |name: &str| format!("{public}/sign-in/provider/{name}/callback");
            let apps = sandbox
                .register_sign_in_app(&[callback("sandbox-entra"), callback("sandbox-github")])
                .await
                .unwrap();
            use paddock_server::oidc::IdentityProviderConfig;
            config.identity_providers = vec![
                IdentityProviderConfig::oidc(
                    "sandbox-entra",
                    apps.entra.issuer,
                    apps.entra.client_id,
                    apps.entra.client_secret,
                ),
                IdentityProviderConfig::github(
                    "sandbox-github",
                    apps.github.base_url,
                    apps.github.api_url,
                    apps.github.client_id,
                    apps.github.client_secret,
                ),
            ];
        }
        let mut deps = Deps::open(&config, &clouds).await.unwrap();
        let control = sandbox.control_url.clone();
        deps.sandbox_console = Some(control.clone());
        let people = paddock_providers::http::reqwest_client(None, None).unwrap();
        deps.on_new_person = Some(Arc::new(move |login: String| {
            let people = people.clone();
            let url = format!("{control}/people");
            Box::pin(async move {
                people
                    .post(url)
                    .json(&json!({"login": login}))
                    .send()
                    .await
                    .unwrap()
                    .error_for_status()
                    .unwrap();
            })
        }));
        let running = paddock_server::start(config, deps).await.unwrap();
        let url = format!("http://{}", running.addr);
        let admin = std::fs::read_to_string(dir.path().join("data/initial-admin-token"))
            .unwrap()
            .trim()
            .to_owned();
        Rig {
            dir,
            sandbox,
            running: Some(running),
            url,
            db_url,
            pg,
            admin,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            responses: Arc::default(),
        }
    }

    pub fn admin(&self) -> Auth {
        Auth::Token(self.admin.clone())
    }

    /// Sends a request; `body` as JSON when given.
    pub async fn call(
        &self,
        auth: &Auth,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        req = authed(req, auth);
        if let Some(body) = body {
            req = req.json(&body);
        }
        self.send(req).await
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        self.responses
            .lock()
            .unwrap()
            .push((format!("{status}"), text.clone()));
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, auth: &Auth, path: &str) -> Reply {
        self.call(auth, Method::GET, path, None).await
    }

    pub async fn post(&self, auth: &Auth, path: &str, body: Value) -> Reply {
        self.call(auth, Method::POST, path, Some(body)).await
    }

    /// Makes a person with a local password, signs them in through the sign-in form, and
    /// returns their session.
    pub async fn person(&self, login: &str) -> Auth {
        let password = format!("{login}-correct-horse-battery");
        self.post(
            &self.admin(),
            "/api/v1/users",
            json!({"login": login, "name": login.to_uppercase(), "password": password}),
        )
        .await
        .expect(201);
        self.sign_in(login, &password).await
    }

    pub async fn sign_in(&self, login: &str, password: &str) -> Auth {
        let page = self
            .send(self.http.get(format!("{}/sign-in", self.url)))
            .await
            .expect(200);
        let form_cookie = cookie(&page.headers, "paddock_form");
        let signed_in = self
            .send(
                self.http
                    .post(format!("{}/sign-in", self.url))
                    .header("cookie", format!("paddock_form={form_cookie}"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    // Logins, these passwords and the token are URL-safe as they are.
                    .body(format!(
                        "login={login}&password={password}&csrf_token={form_cookie}"
                    )),
            )
            .await;
        assert_eq!(
            signed_in.status.as_u16(),
            303,
            "sign-in: {}",
            signed_in.text
        );
        let session = cookie(&signed_in.headers, "paddock_session");
        let me = self
            .send(
                self.http
                    .get(format!("{}/api/v1/me", self.url))
                    .header("cookie", format!("paddock_session={session}")),
            )
            .await
            .expect(200);
        Auth::Session {
            cookie: session,
            csrf: me.body["csrfToken"].as_str().unwrap().to_owned(),
        }
    }

    /// A new API token of the person signed in as `auth`.
    pub async fn token(&self, auth: &Auth, scope: &str) -> Auth {
        let created = self
            .post(
                auth,
                "/api/v1/me/tokens",
                json!({"name": format!("{scope} token"), "scope": scope}),
            )
            .await
            .expect(201);
        Auth::Token(created.body["token"].as_str().unwrap().to_owned())
    }

    /// Waits until the operation finishes; returns it.
    pub async fn wait(&self, op: &str) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let reply = self
                .get(&self.admin(), &format!("/api/v1/operations/{op}"))
                .await
                .expect(200);
            let state = reply.body["state"].as_str().unwrap().to_owned();
            if !matches!(state.as_str(), "queued" | "running") {
                return reply.body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "operation {op} did not finish: {}",
                reply.text
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for an operation and asserts it succeeded.
    pub async fn succeeds(&self, op: &Value) -> Value {
        let id = op["id"]
            .as_str()
            .unwrap_or_else(|| panic!("not an operation: {op}"));
        let done = self.wait(id).await;
        assert_eq!(done["state"], "succeeded", "{done:#}");
        done
    }

    /// Waits for an operation, approving each plan it stops to wait for as `approver`
    /// (who must not be its requester: policy asks for a second person on prod), and
    /// asserts it succeeded.
    pub async fn succeeds_approved_by(&self, op: &Value, approver: &Auth) -> Value {
        let id = op["id"]
            .as_str()
            .unwrap_or_else(|| panic!("not an operation: {op}"));
        loop {
            let done = self.wait(id).await;
            if done["state"] != "waiting_for_approval" {
                assert_eq!(done["state"], "succeeded", "{done:#}");
                return done;
            }
            let pending = self
                .get(approver, "/api/v1/approvals?state=pending")
                .await
                .expect(200);
            let mine: Vec<&Value> = pending
                .body
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["operation"] == id)
                .collect();
            assert_eq!(mine.len(), 1, "one pending approval: {}", pending.text);
            self.post(
                approver,
                mine[0]["links"]["approve"].as_str().unwrap(),
                json!({}),
            )
            .await
            .expect(200);
        }
    }

    /// A team whose provisioning succeeded, with members by role.
    pub async fn team(&self, name: &str, members: &[(&str, &str)]) {
        let op = self
            .post(&self.admin(), "/api/v1/teams", json!({"name": name}))
            .await
            .expect(202)
            .body;
        self.succeeds(&op).await;
        for (login, role) in members {
            let op = self
                .call(
                    &self.admin(),
                    Method::PUT,
                    &format!("/api/v1/teams/{name}/members/{login}"),
                    Some(json!({"role": role})),
                )
                .await
                .expect(202)
                .body;
            self.wait(op["id"].as_str().unwrap()).await;
        }
    }

    /// Every request to the sandbox takes `ms` longer.
    pub fn slow_down(&self, ms: u64) {
        self.fault("*", None, None, ms, None);
    }

    pub fn clear_faults(&self) {
        self.sandbox.faults.set(Vec::new());
    }

    /// One fault rule on the sandbox, replacing any: requests to `api` (with `method`,
    /// whose path contains `path`) wait `latency_ms` and fail with `error` if given.
    pub fn fault(
        &self,
        api: &str,
        method: Option<&str>,
        path: Option<&str>,
        latency_ms: u64,
        error: Option<&str>,
    ) {
        self.sandbox
            .faults
            .set(vec![paddock_sandbox::faults::FaultRule {
                api: api.into(),
                method: method.map(str::to_owned),
                path_contains: path.map(str::to_owned),
                probability: 1.0,
                latency_ms,
                error: error.map(str::to_owned),
                retry_after_secs: None,
            }]);
    }

    /// Waits until operation `id` has recorded at least `n` events of `kind`.
    pub async fn wait_for_events(&self, id: &str, kind: &str, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let events = self
                .get(&self.admin(), &format!("/api/v1/operations/{id}/events"))
                .await
                .expect(200);
            let seen = events
                .body
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["kind"] == kind)
                .count();
            if seen >= n {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "operation {id}: {seen} of {n} `{kind}` events"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Rows in the audit log.
    pub async fn audit_count(&self) -> usize {
        let db = paddock_store::db::Db::connect(&self.db_url).await.unwrap();
        db.audit(&paddock_store::db::AuditFilter {
            limit: 1_000_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .len()
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown(Duration::from_secs(5)).await;
        }
    }
}

/// GETs a portal page as a browser would (no CSRF header; only the cookie or token).
pub async fn page(rig: &Rig, who: &Auth, path: &str) -> Reply {
    let req = rig
        .http
        .get(format!("{}{path}", rig.url))
        .header("accept", "text/html,application/xhtml+xml");
    rig.send(browser(req, who)).await
}

/// Posts a portal form as a browser would: the cookie, and the CSRF token only if a
/// field carries it.
pub async fn submit(rig: &Rig, who: &Auth, path: &str, fields: &[(&str, &str)]) -> Reply {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    let req = rig
        .http
        .post(format!("{}{path}", rig.url))
        .header("accept", "text/html")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    rig.send(browser(req, who)).await
}

/// A browser's credentials: the session cookie (no CSRF header) or a token.
pub fn browser(req: reqwest::RequestBuilder, who: &Auth) -> reqwest::RequestBuilder {
    match who {
        Auth::Anonymous => req,
        Auth::Token(t) => req.bearer_auth(t),
        Auth::Session { cookie, .. } => req.header("cookie", format!("paddock_session={cookie}")),
    }
}

pub fn authed(req: reqwest::RequestBuilder, auth: &Auth) -> reqwest::RequestBuilder {
    match auth {
        Auth::Anonymous => req,
        Auth::Token(t) => req.bearer_auth(t),
        Auth::Session { cookie, csrf } => req
            .header("cookie", format!("paddock_session={cookie}"))
            .header("x-csrf-token", csrf),
    }
}

pub fn cookie(headers: &reqwest::header::HeaderMap, name: &str) -> String {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie in {headers:?}"))
        .to_owned()
}
