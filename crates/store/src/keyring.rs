//! The key ring as the database steers it: [`DbKeyRing`] wraps new data keys under the
//! primary the database names (so every replica switches at the same commit) and opens
//! any data key whose key its ring holds; [`rotate`] makes a key the primary and re-wraps
//! every data key under it, in batches, one transaction each, resumable. Data is not
//! re-encrypted: only the data keys' wrapping changes.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use paddock_engine::keyring::{KeyRing, LEGACY_ID};
use paddock_engine::secrets::{DataKey, MasterKey, SecretsError};

use crate::db::{Db, DbError, KeyRecord, RetireOutcome};

/// Errors of key management.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error("the data key of stack `{stack}`: {source}")]
    Stack { stack: String, source: SecretsError },
    #[error("key `{id}` is not in the key ring {ring}")]
    NotInRing { id: String, ring: PathBuf },
    #[error("key `{id}` is the primary key: rotate to another key first (`paddock key rotate`)")]
    Primary { id: String },
    #[error(
        "key `{id}` still wraps {count} data key(s): run `paddock key rotate` until it wraps \
         none, then retire it"
    )]
    StillWraps { id: String, count: u64 },
    #[error(
        "the rotation to key `{unfinished}` is unfinished: run `paddock key rotate` without \
         --to to finish it first"
    )]
    Unfinished { unfinished: String },
}

/// The master key of a server or a workspace: a ring file, and the database naming its
/// primary.
pub struct DbKeyRing {
    ring: Arc<KeyRing>,
    db: Db,
}

impl DbKeyRing {
    pub fn new(ring: Arc<KeyRing>, db: Db) -> DbKeyRing {
        DbKeyRing { ring, db }
    }

    pub fn ring(&self) -> &Arc<KeyRing> {
        &self.ring
    }

    /// The primary key, naming one if the database names none yet: the key of a
    /// single-key file if the ring holds it (it wrapped every data key so far), else the
    /// ring's oldest.
    pub async fn primary(&self) -> Result<String, DbError> {
        if let Some(primary) = self.db.primary_key().await? {
            return Ok(primary);
        }
        let keys = self.ring.keys();
        let default = keys
            .iter()
            .find(|k| k.id == LEGACY_ID)
            .or(keys.first())
            .map(|k| k.id.clone())
            .unwrap_or_else(|| LEGACY_ID.to_owned());
        self.db.ensure_primary(&default).await
    }
}

#[async_trait]
impl MasterKey for DbKeyRing {
    async fn wrap(&self, data_key: &DataKey) -> Result<String, SecretsError> {
        // Read at every wrap (a stack's creation): a rotation's new primary is used by
        // every replica from the moment it commits.
        let primary = self
            .primary()
            .await
            .map_err(|e| SecretsError::Primary(e.to_string()))?;
        self.ring.wrap_with(&primary, data_key)
    }

    fn unwrap(&self, wrapped: &str) -> Result<DataKey, SecretsError> {
        self.ring.unwrap(wrapped)
    }
}

/// A key as `paddock key list` shows it.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyStatus {
    pub id: String,
    /// When the key was made (RFC 3339), if this ring holds it.
    pub created: Option<String>,
    pub primary: bool,
    pub in_ring: bool,
    pub retired: bool,
    /// Data keys it wraps.
    pub data_keys: u64,
}

/// Every key the ring holds or the database knows of, oldest first, with what each wraps.
pub async fn list(ring: &KeyRing, db: &Db) -> Result<Vec<KeyStatus>, KeyError> {
    ring.reload()?;
    let records = db.master_keys().await?;
    let mut counts = db.data_keys_by_master_key().await?;
    let primary = db.primary_key().await?;
    let record = |id: &str| records.iter().find(|r| r.id == id);
    let status = |id: &str,
                  created: Option<String>,
                  counts: &mut std::collections::BTreeMap<String, u64>| {
        KeyStatus {
            id: id.to_owned(),
            created,
            primary: primary.as_deref() == Some(id),
            in_ring: ring.holds(id),
            retired: record(id).is_some_and(|r: &KeyRecord| r.retired_at_ms.is_some()),
            data_keys: counts.remove(id).unwrap_or(0),
        }
    };
    let mut out: Vec<KeyStatus> = ring
        .keys()
        .into_iter()
        .map(|k| status(&k.id, Some(k.created), &mut counts))
        .collect();
    // Keys the database knows of, or that wrap data keys, that this ring does not hold.
    let mut missing: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
    missing.extend(counts.keys().cloned());
    missing.sort();
    missing.dedup();
    for id in missing {
        if !out.iter().any(|k| k.id == id) {
            out.push(status(&id, None, &mut counts));
        }
    }
    Ok(out)
}

/// A rotation as it begins or resumes.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RotationStart {
    /// The new primary.
    pub to_key: String,
    /// The key was made for this rotation (not added beforehand with `paddock key add`).
    pub generated: bool,
    /// Data keys re-wrapped by earlier, interrupted runs of this rotation.
    pub resumed_after: Option<i64>,
    /// Data keys still to re-wrap.
    pub to_rewrap: u64,
}

/// How a run of [`rotate`] ended.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RotationReport {
    #[serde(flatten)]
    pub start: RotationStart,
    /// Data keys re-wrapped by this run.
    pub rewrapped: i64,
    pub batches: u64,
    /// Every data key is wrapped by the new primary.
    pub finished: bool,
    /// Data keys still wrapped by other keys.
    pub left: u64,
}

/// How to rotate.
#[derive(Clone, Debug)]
pub struct RotateOptions {
    /// The key to rotate to; default: the newest key of the ring the database has never
    /// named (one added by `paddock key add`), else a new key added to the ring.
    pub to: Option<String>,
    /// Data keys re-wrapped per transaction.
    pub batch_size: i64,
}

impl Default for RotateOptions {
    fn default() -> RotateOptions {
        RotateOptions {
            to: None,
            batch_size: 100,
        }
    }
}

/// Makes the key to rotate to the primary (or takes up the unfinished rotation).
pub async fn begin_rotation(
    ring: &KeyRing,
    db: &Db,
    to: Option<&str>,
) -> Result<RotationStart, KeyError> {
    ring.reload()?;
    let (to_key, generated, resumed_after) = match db.unfinished_rotation().await? {
        Some(r) => {
            if to.is_some_and(|to| to != r.to_key) {
                return Err(KeyError::Unfinished {
                    unfinished: r.to_key,
                });
            }
            (r.to_key, false, Some(r.rewrapped))
        }
        None => {
            let known = db.master_keys().await?;
            let fresh = ring
                .keys()
                .into_iter()
                .rev()
                .find(|k| !known.iter().any(|r| r.id == k.id));
            match (to, fresh) {
                (Some(to), _) => (to.to_owned(), false, None),
                (None, Some(k)) => (k.id, false, None),
                (None, None) => (ring.add()?.id, true, None),
            }
        }
    };
    if !ring.holds(&to_key) {
        return Err(KeyError::NotInRing {
            id: to_key,
            ring: ring.path().to_owned(),
        });
    }
    if resumed_after.is_none() {
        db.begin_rotation(&to_key).await?;
    }
    let counts = db.data_keys_by_master_key().await?;
    let to_rewrap = counts
        .iter()
        .filter(|(id, _)| **id != to_key)
        .map(|(_, n)| n)
        .sum();
    Ok(RotationStart {
        to_key,
        generated,
        resumed_after,
        to_rewrap,
    })
}

/// Re-wraps one batch of data keys under `to_key`, in one transaction; returns how many
/// it found (0: none is left) and re-wrapped.
pub async fn rewrap_batch(
    ring: &KeyRing,
    db: &Db,
    to_key: &str,
    batch_size: i64,
) -> Result<(usize, i64), KeyError> {
    db.rewrap_batch(to_key, batch_size.max(1), |stack, old| {
        let stack_error = |source| KeyError::Stack {
            stack: stack.to_owned(),
            source,
        };
        let data_key = ring.unwrap(old).map_err(stack_error)?;
        ring.wrap_with(to_key, &data_key).map_err(stack_error)
    })
    .await
}

/// Rotates: begins (or resumes), then re-wraps batch after batch until none is left or
/// `keep_going` (called after each batch with the data keys re-wrapped so far by this
/// run) says stop. Restartable at any point: what is re-wrapped is committed.
pub async fn rotate(
    ring: &KeyRing,
    db: &Db,
    options: &RotateOptions,
    mut keep_going: impl FnMut(&RotationStart, i64) -> bool,
) -> Result<RotationReport, KeyError> {
    let start = begin_rotation(ring, db, options.to.as_deref()).await?;
    let mut rewrapped = 0;
    let mut batches = 0;
    let mut finished = false;
    loop {
        let (found, done) = rewrap_batch(ring, db, &start.to_key, options.batch_size).await?;
        if found == 0 {
            db.finish_rotation(&start.to_key).await?;
            finished = true;
            break;
        }
        rewrapped += done;
        batches += 1;
        if !keep_going(&start, rewrapped) {
            break;
        }
    }
    let left = db
        .data_keys_by_master_key()
        .await?
        .iter()
        .filter(|(id, _)| **id != start.to_key)
        .map(|(_, n)| n)
        .sum();
    Ok(RotationReport {
        start,
        rewrapped,
        batches,
        finished,
        left,
    })
}

/// Retires key `id` in the database (refused while it is the primary or wraps a data key),
/// then, if `remove_from_ring`, removes it from `ring`'s file. Returns whether it did.
pub async fn retire(
    ring: &KeyRing,
    db: &Db,
    id: &str,
    remove_from_ring: bool,
) -> Result<bool, KeyError> {
    match db.retire_key(id).await? {
        RetireOutcome::Primary => Err(KeyError::Primary { id: id.to_owned() }),
        RetireOutcome::StillWraps(count) => Err(KeyError::StillWraps {
            id: id.to_owned(),
            count,
        }),
        RetireOutcome::Retired => Ok(remove_from_ring && ring.remove(id)?),
    }
}
