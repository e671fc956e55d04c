//! The local workspace: state database, master key and providers under one directory.

use std::sync::Arc;

use anyhow::Context;
use paddock_engine::secrets::LocalKeyFile;
use paddock_engine::state::StateStore;
use paddock_engine::{Engine, ProviderRegistry};
use paddock_providers::{RandomProvider, TestCloud, TestCloudOptions};
use paddock_store::SqliteStore;

use crate::Global;

pub struct Workspace {
    pub engine: Engine,
}

impl Workspace {
    /// Opens (creating if missing) `state_dir/state.db`, or the database `--database-url`
    /// names; the key file (default `state_dir/master.key`); and the built-in providers.
    /// The test cloud lives in `PADDOCK_TEST_CLOUD` or `state_dir/test-cloud`.
    pub async fn open(g: &Global) -> anyhow::Result<Workspace> {
        std::fs::create_dir_all(&g.state_dir)
            .with_context(|| format!("creating state directory {}", g.state_dir.display()))?;
        let key_path = g
            .key_file
            .clone()
            .unwrap_or_else(|| g.state_dir.join("master.key"));
        let key = LocalKeyFile::open_or_create(&key_path)?;
        let store: Arc<dyn StateStore> = match &g.database_url {
            Some(url) => paddock_store::open(url).await?,
            None => Arc::new(SqliteStore::open(&g.state_dir.join("state.db")).await?),
        };
        let cloud_dir = std::env::var_os("PADDOCK_TEST_CLOUD")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| g.state_dir.join("test-cloud"));
        let cloud_options = TestCloudOptions::from_env().map_err(anyhow::Error::msg)?;
        let cloud = TestCloud::open(&cloud_dir, cloud_options)
            .with_context(|| format!("opening test cloud {}", cloud_dir.display()))?;
        let providers = ProviderRegistry::new()
            .with(Arc::new(RandomProvider::default()))
            .with(Arc::new(cloud));
        let options = paddock_engine::EngineOptions {
            parallelism: g.parallelism.max(1),
            ..Default::default()
        };
        Ok(Workspace {
            engine: Engine::new(store, providers, Arc::new(key), options),
        })
    }
}
