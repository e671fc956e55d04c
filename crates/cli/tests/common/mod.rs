//! A real engine for tests: SQLite state, a key file and the test cloud in a temp dir.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use paddock_engine::secrets::LocalKeyFile;
use paddock_engine::{Engine, EngineOptions, Event, EventSink, ProviderRegistry};
use paddock_providers::{RandomProvider, TestCloud, TestCloudOptions};
use paddock_store::SqliteStore;

pub struct Rig {
    pub dir: tempfile::TempDir,
    pub engine: Engine,
    pub cloud: Arc<TestCloud>,
}

impl Rig {
    pub async fn new() -> Rig {
        Rig::with(TestCloudOptions::default(), 10).await
    }

    pub async fn with(cloud_options: TestCloudOptions, parallelism: usize) -> Rig {
        Rig::with_options(cloud_options, options(parallelism)).await
    }

    pub async fn with_options(cloud_options: TestCloudOptions, options: EngineOptions) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let (engine, cloud) = open_with(dir.path(), cloud_options, options).await;
        Rig { engine, cloud, dir }
    }

    pub fn state_db(&self) -> PathBuf {
        self.dir.path().join("state.db")
    }

    /// Every byte the state database has on disk (database, WAL).
    pub fn state_bytes(&self) -> Vec<u8> {
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
    let key = LocalKeyFile::open_or_create(&dir.join("master.key")).unwrap();
    let cloud = Arc::new(TestCloud::open(&dir.join("cloud"), cloud_options).unwrap());
    let providers = ProviderRegistry::new()
        .with(Arc::new(RandomProvider::default()))
        .with(cloud.clone());
    (
        Engine::new(Arc::new(store), providers, Arc::new(key), options),
        cloud,
    )
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
