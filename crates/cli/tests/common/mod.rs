//! A real engine for tests: state on SQLite or PostgreSQL, a key file and the test cloud in
//! a temp dir.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use paddock_engine::keyring::KeyRing;
use paddock_engine::secrets::{DataKey, LocalKeyFile, MasterKey, SecretsError};
use paddock_engine::state::StateStore;
use paddock_engine::{Engine, EngineOptions, Event, EventSink, ProviderRegistry};
use paddock_providers::{RandomProvider, TestCloud, TestCloudOptions};
use paddock_store::SqliteStore;
use paddock_store::testing::{self, TestDatabase};

/// The state store a test runs against.
#[derive(Clone, Debug)]
pub enum Store {
    /// `state.db` in the rig's directory.
    Sqlite,
    /// A database of its own on the server this admin URL names
    /// (`PADDOCK_TEST_DATABASE_URL`), dropped with the rig.
    Postgres(String),
}

impl Store {
    /// PostgreSQL when `PADDOCK_TEST_DATABASE_URL` is set. Outside CI, `None` when it is
    /// not (the test then does nothing); in CI (`CI=true`) its absence fails the test.
    pub fn postgres() -> Option<Store> {
        testing::admin_url().map(Store::Postgres)
    }
}

/// Declares, for each `async fn NAME(store: Store)` listed, the tests `sqlite::NAME` and
/// `postgres::NAME`: the same specification on both stores, as tests of their own (so they
/// run in parallel and fail separately). A spec left out of the list is dead code, which
/// clippy refuses.
#[macro_export]
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::common::Store::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(store) = super::common::Store::postgres() {
                        super::$name(store).await
                    }
                }
            )*
        }
    };
}

pub struct Rig {
    pub dir: tempfile::TempDir,
    pub engine: Engine,
    pub cloud: Arc<TestCloud>,
    /// The PostgreSQL database, when the rig's state is there.
    pub db: Option<TestDatabase>,
}

impl Rig {
    /// On SQLite.
    pub async fn new() -> Rig {
        Rig::on(&Store::Sqlite).await
    }

    pub async fn on(store: &Store) -> Rig {
        Rig::with(store, TestCloudOptions::default(), 10).await
    }

    pub async fn with(store: &Store, cloud_options: TestCloudOptions, parallelism: usize) -> Rig {
        Rig::with_options(store, cloud_options, options(parallelism)).await
    }

    pub async fn with_options(
        store: &Store,
        cloud_options: TestCloudOptions,
        options: EngineOptions,
    ) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let (state, db): (Arc<dyn StateStore>, _) = match store {
            Store::Sqlite => (
                Arc::new(
                    SqliteStore::open(&dir.path().join("state.db"))
                        .await
                        .unwrap(),
                ),
                None,
            ),
            Store::Postgres(admin_url) => {
                let db = TestDatabase::create(admin_url).await.unwrap();
                (paddock_store::open(db.url()).await.unwrap(), Some(db))
            }
        };
        let (engine, cloud) = engine_on(state, dir.path(), cloud_options, options);
        Rig {
            engine,
            cloud,
            dir,
            db,
        }
    }

    pub fn state_db(&self) -> PathBuf {
        self.dir.path().join("state.db")
    }

    /// Everything the state database holds: on SQLite every byte on disk (database, WAL);
    /// on PostgreSQL every row of every table, as text.
    pub async fn state_bytes(&self) -> Vec<u8> {
        if let Some(db) = &self.db {
            return db.dump().await.unwrap();
        }
        let mut bytes = Vec::new();
        for name in ["state.db", "state.db-wal", "state.db-shm"] {
            if let Ok(b) = std::fs::read(self.dir.path().join(name)) {
                bytes.extend(b);
            }
        }
        bytes
    }
}

fn options(parallelism: usize) -> EngineOptions {
    EngineOptions {
        parallelism,
        lease_ttl: Duration::from_secs(30),
        ..Default::default()
    }
}

pub async fn open(
    dir: &Path,
    cloud_options: TestCloudOptions,
    parallelism: usize,
) -> (Engine, Arc<TestCloud>) {
    open_with(dir, cloud_options, options(parallelism)).await
}

pub async fn open_with(
    dir: &Path,
    cloud_options: TestCloudOptions,
    options: EngineOptions,
) -> (Engine, Arc<TestCloud>) {
    let store = SqliteStore::open(&dir.join("state.db")).await.unwrap();
    engine_on(Arc::new(store), dir, cloud_options, options)
}

/// An engine on `store`, with its key file and test cloud in `dir`.
fn engine_on(
    store: Arc<dyn StateStore>,
    dir: &Path,
    cloud_options: TestCloudOptions,
    options: EngineOptions,
) -> (Engine, Arc<TestCloud>) {
    let path = dir.join("master.key");
    // A file the CLI made is a key ring; one made here first stays a single key, which
    // the CLI reads as the ring's key `k0`.
    let key: Arc<dyn MasterKey> = match LocalKeyFile::open_or_create(&path) {
        Ok(key) => Arc::new(key),
        Err(_) => Arc::new(Ring(KeyRing::open_or_create(&path).unwrap())),
    };
    let cloud = Arc::new(TestCloud::open(&dir.join("cloud"), cloud_options).unwrap());
    let providers = ProviderRegistry::new()
        .with(Arc::new(RandomProvider::default()))
        .with(cloud.clone());
    (Engine::new(store, providers, key, options), cloud)
}

/// A key ring as a test engine's master key: new data keys under the ring's newest key.
struct Ring(KeyRing);

#[async_trait::async_trait]
impl MasterKey for Ring {
    async fn wrap(&self, data_key: &DataKey) -> Result<String, SecretsError> {
        let newest = self.0.keys().pop().expect("a ring holds a key");
        self.0.wrap_with(&newest.id, data_key)
    }

    fn unwrap(&self, wrapped: &str) -> Result<DataKey, SecretsError> {
        self.0.unwrap(wrapped)
    }
}

/// A generator seeded from the variable `var` when it is set (a replay), else from the
/// clock; the seed is printed with how to replay it.
pub fn seeded_rng(var: &str, what: &str) -> rand::rngs::StdRng {
    use rand::SeedableRng;
    let seed = std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("{what} seed: {seed} (replay with {var}={seed})");
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// Records events, for asserting order.
#[derive(Default)]
pub struct Recorder(pub Mutex<Vec<Event>>);

impl EventSink for Recorder {
    fn emit(&self, event: &Event) {
        self.0.lock().unwrap().push(event.clone());
    }
}

impl Recorder {
    /// `"started create a"`, `"succeeded delete b"`, … in order.
    pub fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::StepStarted { resource, kind, .. } => {
                    Some(format!("started {} {resource}", kind.verb()))
                }
                Event::StepSucceeded { resource, kind, .. } => {
                    Some(format!("succeeded {} {resource}", kind.verb()))
                }
                Event::StepFailed { resource, kind, .. } => {
                    Some(format!("failed {} {resource}", kind.verb()))
                }
                Event::StepSkipped { resource, .. } => Some(format!("skipped {resource}")),
                _ => None,
            })
            .collect()
    }

    pub fn position(&self, line: &str) -> usize {
        let lines = self.lines();
        lines
            .iter()
            .position(|l| l == line)
            .unwrap_or_else(|| panic!("no event `{line}` in {lines:#?}"))
    }
}

/// A sandbox cloud in this process, in `dir/sandbox`, on HTTP and HTTPS, with the clouds'
/// rate limits lifted (suites about faults or replicas, not GitHub's secondary limit,
/// which `bench provision` measures), its addresses written to `dir/sandbox.env`.
pub async fn unthrottled_sandbox(dir: &Path, fault_seed: u64) -> paddock_sandbox::Sandbox {
    let mut config = paddock_sandbox::SandboxConfig::new(dir.join("sandbox"));
    config.https_listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    config.fault_seed = fault_seed;
    config.arm.writes_per_hour = 10_000_000;
    config.arm.reads_per_hour = 10_000_000;
    config.arm.deletes_per_hour = 10_000_000;
    config.arm.retry_after_secs = 1;
    config.arm.delete_delay = Duration::from_millis(100);
    config.github_mutations_per_minute = 10_000_000;
    config.graph_requests_per_10s = 10_000_000;
    config.github_template_delay = Duration::from_millis(300);
    let sandbox = paddock_sandbox::Sandbox::start(config)
        .await
        .expect("the sandbox starts");
    let env_text: String = sandbox
        .env()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect();
    std::fs::write(dir.join("sandbox.env"), env_text).unwrap();
    sandbox
}
