//! The local workspace: state database, master key and providers under one directory.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use paddock_engine::keyring::KeyRing;
use paddock_engine::state::StateStore;
use paddock_engine::{Engine, ProviderRegistry};
use paddock_providers::clouds::Clouds;
use paddock_providers::{RandomProvider, TestCloud, TestCloudOptions};
use paddock_store::keyring::DbKeyRing;

use crate::Global;

pub struct Workspace {
    pub engine: Engine,
}

impl Workspace {
    /// Opens (creating if missing) `state_dir/state.db`, or the database `--database-url`
    /// names; the key file (default `state_dir/master.key`); and the built-in providers.
    /// The test cloud lives in `PADDOCK_TEST_CLOUD` or `state_dir/test-cloud`. The cloud
    /// providers (`github`, `azure`, `entra`, `kubernetes`) are registered when clouds are
    /// configured: see [`clouds`].
    pub async fn open(g: &Global) -> anyhow::Result<Workspace> {
        std::fs::create_dir_all(&g.state_dir)
            .with_context(|| format!("creating state directory {}", g.state_dir.display()))?;
        let (store, key) = open_keyed_store(g).await?;
        let cloud_dir = std::env::var_os("PADDOCK_TEST_CLOUD")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| g.state_dir.join("test-cloud"));
        let cloud_options = TestCloudOptions::from_env().map_err(anyhow::Error::msg)?;
        let cloud = TestCloud::open(&cloud_dir, cloud_options)
            .with_context(|| format!("opening test cloud {}", cloud_dir.display()))?;
        let mut providers = ProviderRegistry::new()
            .with(Arc::new(RandomProvider::default()))
            .with(Arc::new(cloud));
        if let Some(clouds) = clouds()? {
            for family in clouds.families()? {
                providers = providers.with(family);
            }
        }
        let options = paddock_engine::EngineOptions {
            parallelism: g.parallelism.max(1),
            ..Default::default()
        };
        Ok(Workspace {
            engine: Engine::new(store, providers, Arc::new(key), options),
        })
    }
}

/// The key ring file (`--key-file`, default `state_dir/master.key`).
pub fn key_path(g: &Global) -> std::path::PathBuf {
    g.key_file
        .clone()
        .unwrap_or_else(|| g.state_dir.join("master.key"))
}

/// The database `--database-url` names, else `state_dir/state.db`.
pub fn database_url(g: &Global) -> String {
    g.database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", g.state_dir.join("state.db").display()))
}

/// The state store (migrated) and the master key: the key ring whose primary the same
/// database names.
pub async fn open_keyed_store(g: &Global) -> anyhow::Result<(Arc<dyn StateStore>, DbKeyRing)> {
    let ring = KeyRing::open_or_create(&key_path(g))?;
    let url = database_url(g);
    let store = paddock_store::open(&url).await?;
    let db = paddock_store::db::Db::connect(&url).await?;
    Ok((store, DbKeyRing::new(Arc::new(ring), db)))
}

/// The clouds to provision into, if any: the sandbox whose settings file
/// `PADDOCK_SANDBOX_ENV` names (`DATA/sandbox.env`, as `paddock sandbox` writes it), else
/// real clouds from `PADDOCK_GITHUB_*`, `PADDOCK_AZURE_*` and `PADDOCK_KUBECONFIG`.
fn clouds() -> anyhow::Result<Option<Clouds>> {
    if let Some(path) = std::env::var_os("PADDOCK_SANDBOX_ENV") {
        let path = std::path::PathBuf::from(path);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("PADDOCK_SANDBOX_ENV: reading {}", path.display()))?;
        let settings: BTreeMap<String, String> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let clouds = Clouds::from_sandbox_env(&settings)
            .with_context(|| format!("PADDOCK_SANDBOX_ENV: {}", path.display()))?;
        return Ok(Some(clouds));
    }
    Ok(Clouds::from_env()?)
}
