//! The `environment` blueprint's versions as bundles: read from the database (where the
//! shipped version and every version published since keep their source files), parsed
//! once per replica, and compared to find the newest.
//!
//! A published version never changes (same version, other digest = conflict), so a parsed
//! bundle is cached for good.

use std::collections::BTreeMap;
use std::sync::Arc;

use paddock_platform::Bundle;
use paddock_store::db::DbError;
use sha2::{Digest, Sha256};

use crate::AppState;

/// Why a version cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("environment@{0} is not a published version")]
    Unknown(String),
    #[error("environment@{version}'s stored sources do not parse: {message}")]
    Corrupt { version: String, message: String },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The digest of a bundle's files and the shipped template: what makes a version.
pub fn digest(files: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    let mut part = |p: &str| {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    };
    // The order of the shipped digest: request, repository, stage, then the template.
    for file in [
        paddock_platform::REQUEST_FILE,
        paddock_platform::REPOSITORY_FILE,
        paddock_platform::STAGE_FILE,
    ] {
        part(files.get(file).map_or("", String::as_str));
    }
    for (path, content) in paddock_platform::TEMPLATE_FILES {
        part(path);
        part(content);
    }
    format!("sha256:{}", crate::auth::hex(&h.finalize()))
}

impl AppState {
    /// The bundle of `environment@version`.
    pub async fn bundle(&self, version: &str) -> Result<Arc<Bundle>, BundleError> {
        if let Some(b) = self.bundles.lock().expect("bundle cache").get(version) {
            return Ok(b.clone());
        }
        let shipped = Bundle::shipped();
        let row = self.db.blueprint("environment", version).await?;
        let bundle = match row {
            None if version == shipped.version() => shipped.clone(),
            None => return Err(BundleError::Unknown(version.to_owned())),
            Some(row) => match row.sources.as_deref() {
                None if version == shipped.version() => shipped.clone(),
                None => {
                    return Err(BundleError::Corrupt {
                        version: version.to_owned(),
                        message: "it was published without its sources".into(),
                    });
                }
                Some(text) => {
                    let files: BTreeMap<String, String> =
                        serde_json::from_str(text).map_err(|e| BundleError::Corrupt {
                            version: version.to_owned(),
                            message: e.to_string(),
                        })?;
                    Arc::new(Bundle::parse(files).map_err(|d| BundleError::Corrupt {
                        version: version.to_owned(),
                        message: d.to_string(),
                    })?)
                }
            },
        };
        self.bundles
            .lock()
            .expect("bundle cache")
            .insert(version.to_owned(), bundle.clone());
        Ok(bundle)
    }

    /// The newest published version of `environment`.
    pub async fn latest_environment_version(&self) -> Result<String, DbError> {
        let versions = self.db.blueprint_versions("environment").await?;
        Ok(
            paddock_platform::newest(versions.iter().map(String::as_str))
                .map_or_else(|| self.environment_blueprint.clone(), str::to_owned),
        )
    }
}

/// The version an environment on `current` could be upgraded to, if a newer one exists.
pub fn upgrade_available(current: &str, latest: &str) -> Option<String> {
    paddock_platform::older(current, latest).then(|| latest.to_owned())
}
