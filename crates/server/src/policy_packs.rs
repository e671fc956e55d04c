//! Policy packs on the server: versions published by platform admins (the shipped pack
//! is version 1 on a first start), the active one (the newest) compiled once per replica
//! and per version, and publishing a new version (it must compile and pass its own
//! tests).
//!
//! Invariants: a stored version always compiled and passed its tests when published; a
//! restart never replaces an admin's pack; each decision reads the active version number
//! (one cheap query), so every replica enforces a new version from its next decision.

use std::collections::BTreeMap;
use std::sync::Arc;

use paddock_policy::{Pack, PolicyError};
use paddock_store::db::{NewAudit, PolicyPackVersion, WriteTx, now_ms};

use crate::problem::{FieldError, Problem};
use crate::{AppState, ServerError};

/// The compiled active pack, by version number.
#[derive(Default)]
pub struct PackCache {
    compiled: std::sync::Mutex<Option<(i64, Arc<Pack>)>>,
}

impl AppState {
    /// The policy pack in force (the newest version), compiled. Cached by version number:
    /// one cheap query per call, so a version another replica published is used at once.
    pub async fn policy_pack(&self) -> Result<Arc<Pack>, Problem> {
        Ok(self.active_policy_pack().await?.1)
    }

    /// The active pack with its version number (for audit records of decisions).
    pub async fn active_policy_pack(&self) -> Result<(i64, Arc<Pack>), Problem> {
        let version = self
            .db
            .active_policy_pack_version()
            .await?
            .ok_or_else(|| Problem::unavailable("no policy pack is published yet"))?;
        if let Some((cached, pack)) = self.policy_cache.lock_cached()
            && cached == version
        {
            return Ok((version, pack));
        }
        let pack = Arc::new(self.policy_pack_version(version).await?);
        *self
            .policy_cache
            .compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some((version, pack.clone()));
        Ok((version, pack))
    }

    /// A stored version, compiled.
    pub async fn policy_pack_version(&self, version: i64) -> Result<Pack, Problem> {
        let row = self
            .db
            .policy_pack(version)
            .await?
            .ok_or_else(|| Problem::not_found(format!("policy pack version {version}")))?;
        compile_stored(&row)
    }
}

impl PackCache {
    fn lock_cached(&self) -> Option<(i64, Arc<Pack>)> {
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A stored version's files, compiled (they compiled when published; an error here means
/// the engine changed under them).
fn compile_stored(row: &PolicyPackVersion) -> Result<Pack, Problem> {
    let files: BTreeMap<String, String> = serde_json::from_str(&row.files)
        .map_err(|e| Problem::internal(format!("policy pack version {}: {e}", row.version)))?;
    Pack::from_files(&files).map_err(|e| {
        Problem::internal(format!(
            "policy pack version {} no longer compiles: {e}",
            row.version
        ))
    })
}

/// The files of a stored version.
pub(crate) fn stored_files(row: &PolicyPackVersion) -> Result<BTreeMap<String, String>, Problem> {
    serde_json::from_str(&row.files)
        .map_err(|e| Problem::internal(format!("policy pack version {}: {e}", row.version)))
}

/// Checks a pack before it is published: it compiles (else 422 naming the file and
/// line), and its own tests pass (else 422 naming each failing test).
pub(crate) fn admit(files: &BTreeMap<String, String>) -> Result<Pack, Problem> {
    let pack = Pack::from_files(files).map_err(|e| {
        let field = match &e {
            PolicyError::Compile { file, .. } | PolicyError::Invalid { file, .. } => {
                format!("files.{file}")
            }
            _ => "files".to_owned(),
        };
        Problem::field(&field, e.to_string())
    })?;
    let report = pack
        .run_tests()
        .map_err(|e| Problem::field("files", e.to_string()))?;
    let failures: Vec<FieldError> = report
        .failures()
        .map(|t| FieldError {
            field: format!("files.{}", t.file),
            message: format!(
                "test {}.{} failed: {}",
                t.package,
                t.name,
                t.error.as_deref().unwrap_or("false")
            ),
            rule: None,
        })
        .collect();
    if !failures.is_empty() {
        return Err(Problem::invalid(failures));
    }
    Ok(pack)
}

/// Publishes `pack` as the next version in `tx` with its audit record, unless its digest
/// is the newest version's (then that version is returned, `false`).
pub(crate) async fn publish(
    tx: &mut WriteTx,
    pack: &Pack,
    description: &str,
    actor: &str,
    source: &str,
) -> Result<(PolicyPackVersion, bool), Problem> {
    let digest = pack.digest();
    if let Some(latest) = tx.latest_policy_pack().await?
        && latest.digest == digest
    {
        return Ok((latest, false));
    }
    let files = serde_json::to_string(pack.files())
        .map_err(|e| Problem::internal(format!("policy pack files: {e}")))?;
    let now = now_ms();
    let published = tx
        .publish_policy_pack(&digest, &files, description, actor, now)
        .await?;
    tx.append_audit(
        &NewAudit {
            actor,
            source,
            action: "policy.publish",
            target: &format!("policy-packs/{}", published.version),
            team: None,
            environment: None,
            outcome: "allowed",
            detail: &serde_json::json!({
                "version": published.version,
                "digest": digest,
                "description": description,
                "files": pack.files().keys().collect::<Vec<_>>(),
            }),
        },
        now,
    )
    .await?;
    Ok((published, true))
}

/// At start: the shipped pack becomes version 1 when no version exists (a restart never
/// replaces a pack an admin published).
pub(crate) async fn publish_shipped(state: &AppState) -> Result<(), ServerError> {
    let setup = |e: &dyn std::fmt::Display| {
        ServerError::Setup(format!("publishing the shipped policy pack: {e}"))
    };
    let mut tx = state.db.write().await?;
    if tx.latest_policy_pack().await?.is_some() {
        return Ok(());
    }
    let pack = paddock_policy::shipped().map_err(|e| setup(&e))?;
    let (published, _) = publish(
        &mut tx,
        &pack,
        "The default policy pack shipped with Paddock.",
        "system",
        "internal",
    )
    .await
    .map_err(|p| setup(&p.detail))?;
    tx.commit().await?;
    tracing::info!(version = published.version, digest = %published.digest, "policy pack published");
    Ok(())
}
