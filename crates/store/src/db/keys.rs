//! What the database knows of master keys: the primary, retirements, rotations, and which
//! key wraps each stack's data key (the id prefix of `stacks.wrapped_key`). No key
//! material is ever here.

use std::collections::BTreeMap;

use paddock_engine::keyring::wrapped_by;
use sqlx::Row;

use super::{Db, DbError, WriteTx, classify, now_ms};

/// A master key as the database records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    pub id: String,
    pub primary: bool,
    pub primary_since_ms: Option<i64>,
    pub retired_at_ms: Option<i64>,
}

/// A rotation: every data key re-wrapped under `to_key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rotation {
    pub to_key: String,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    /// Data keys re-wrapped so far, over every run.
    pub rewrapped: i64,
}

fn record(row: &sqlx::any::AnyRow) -> KeyRecord {
    KeyRecord {
        id: row.get("id"),
        primary: row.get::<i64, _>("is_primary") != 0,
        primary_since_ms: row.get("primary_since_ms"),
        retired_at_ms: row.get("retired_at_ms"),
    }
}

fn rotation(row: &sqlx::any::AnyRow) -> Rotation {
    Rotation {
        to_key: row.get("to_key"),
        started_at_ms: row.get("started_at_ms"),
        finished_at_ms: row.get("finished_at_ms"),
        rewrapped: row.get("rewrapped"),
    }
}

impl Db {
    /// The key that wraps new data keys, if one was ever named.
    pub async fn primary_key(&self) -> Result<Option<String>, DbError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM master_keys WHERE is_primary = 1")
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// Names `id` the primary key unless one is named already; returns the primary.
    pub async fn ensure_primary(&self, id: &str) -> Result<String, DbError> {
        let mut tx = self.write().await?;
        if let Some(primary) = tx.primary_key().await? {
            return Ok(primary);
        }
        tx.make_primary(id).await?;
        tx.commit().await?;
        Ok(id.to_owned())
    }

    pub async fn master_keys(&self) -> Result<Vec<KeyRecord>, DbError> {
        let rows = sqlx::query(
            "SELECT id, is_primary, primary_since_ms, retired_at_ms FROM master_keys ORDER BY id",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(record).collect())
    }

    /// How many stacks' data keys each master key wraps.
    pub async fn data_keys_by_master_key(&self) -> Result<BTreeMap<String, u64>, DbError> {
        let wrapped: Vec<String> = sqlx::query_scalar("SELECT wrapped_key FROM stacks")
            .fetch_all(self.pool())
            .await?;
        let mut counts = BTreeMap::new();
        for w in &wrapped {
            *counts.entry(wrapped_by(w).to_owned()).or_insert(0) += 1;
        }
        Ok(counts)
    }

    /// The rotation begun and not finished, if any.
    pub async fn unfinished_rotation(&self) -> Result<Option<Rotation>, DbError> {
        let row = sqlx::query(
            "SELECT to_key, started_at_ms, finished_at_ms, rewrapped FROM key_rotations \
             WHERE finished_at_ms IS NULL",
        )
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(rotation))
    }

    /// Begins a rotation to `to_key`, which becomes the primary at once: from this commit
    /// on every replica wraps new data keys under it.
    pub async fn begin_rotation(&self, to_key: &str) -> Result<Rotation, DbError> {
        let mut tx = self.write().await?;
        tx.make_primary(to_key).await?;
        let now = now_ms();
        sqlx::query(
            "INSERT INTO key_rotations (to_key, started_at_ms, rewrapped) VALUES ($1, $2, 0) \
             ON CONFLICT (to_key) DO UPDATE SET started_at_ms = $2, finished_at_ms = NULL, \
             rewrapped = 0",
        )
        .bind(to_key)
        .bind(now)
        .execute(&mut *tx.tx)
        .await
        .map_err(classify)?;
        tx.commit().await?;
        Ok(Rotation {
            to_key: to_key.to_owned(),
            started_at_ms: now,
            finished_at_ms: None,
            rewrapped: 0,
        })
    }

    /// Re-wraps, in one transaction, up to `batch` data keys not yet wrapped by `to_key`
    /// (in stack-name order), with `rewrap` turning an old wrapped key into a new one.
    /// Returns how many it found (0: none is left) and re-wrapped.
    pub async fn rewrap_batch<E: From<DbError>>(
        &self,
        to_key: &str,
        batch: i64,
        rewrap: impl Fn(&str, &str) -> Result<String, E>,
    ) -> Result<(usize, i64), E> {
        let mut tx = self.write().await?;
        // Key ids are letters, digits and `-`: nothing a LIKE pattern reads as a wildcard.
        let rows = sqlx::query(
            "SELECT name, wrapped_key FROM stacks WHERE wrapped_key NOT LIKE $1 \
             ORDER BY name LIMIT $2",
        )
        .bind(format!("{to_key}:%"))
        .bind(batch)
        .fetch_all(&mut *tx.tx)
        .await
        .map_err(DbError::from)?;
        let mut done = 0;
        for row in &rows {
            let name: String = row.get("name");
            let old: String = row.get("wrapped_key");
            let new = rewrap(&name, &old)?;
            // Compare-and-set: a stack removed meanwhile is simply not there any more.
            let updated = sqlx::query(
                "UPDATE stacks SET wrapped_key = $1 WHERE name = $2 AND wrapped_key = $3",
            )
            .bind(&new)
            .bind(&name)
            .bind(&old)
            .execute(&mut *tx.tx)
            .await
            .map_err(DbError::from)?;
            done += updated.rows_affected() as i64;
        }
        sqlx::query("UPDATE key_rotations SET rewrapped = rewrapped + $1 WHERE to_key = $2")
            .bind(done)
            .bind(to_key)
            .execute(&mut *tx.tx)
            .await
            .map_err(DbError::from)?;
        tx.commit().await?;
        Ok((rows.len(), done))
    }

    /// Marks the rotation to `to_key` finished; returns it.
    pub async fn finish_rotation(&self, to_key: &str) -> Result<Rotation, DbError> {
        let mut tx = self.write().await?;
        let row = sqlx::query(
            "UPDATE key_rotations SET finished_at_ms = $1 WHERE to_key = $2 \
             RETURNING to_key, started_at_ms, finished_at_ms, rewrapped",
        )
        .bind(now_ms())
        .bind(to_key)
        .fetch_one(&mut *tx.tx)
        .await?;
        tx.commit().await?;
        Ok(rotation(&row))
    }

    /// Retires key `id` unless it is the primary or still wraps a data key (checked in the
    /// same transaction); returns how many data keys it still wraps (0: retired).
    pub async fn retire_key(&self, id: &str) -> Result<RetireOutcome, DbError> {
        let mut tx = self.write().await?;
        if tx.primary_key().await?.as_deref() == Some(id) {
            return Ok(RetireOutcome::Primary);
        }
        let wrapped: Vec<String> = sqlx::query_scalar("SELECT wrapped_key FROM stacks")
            .fetch_all(&mut *tx.tx)
            .await?;
        let still = wrapped.iter().filter(|w| wrapped_by(w) == id).count() as u64;
        if still > 0 {
            return Ok(RetireOutcome::StillWraps(still));
        }
        sqlx::query(
            "INSERT INTO master_keys (id, is_primary, retired_at_ms) VALUES ($1, 0, $2) \
             ON CONFLICT (id) DO UPDATE SET retired_at_ms = $2",
        )
        .bind(id)
        .bind(now_ms())
        .execute(&mut *tx.tx)
        .await
        .map_err(classify)?;
        tx.commit().await?;
        Ok(RetireOutcome::Retired)
    }
}

/// What [`Db::retire_key`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetireOutcome {
    Retired,
    /// The key is the primary: rotate away from it first.
    Primary,
    /// This many data keys are still wrapped by it.
    StillWraps(u64),
}

impl WriteTx {
    async fn primary_key(&mut self) -> Result<Option<String>, DbError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM master_keys WHERE is_primary = 1")
                .fetch_optional(&mut *self.tx)
                .await?,
        )
    }

    async fn make_primary(&mut self, id: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE master_keys SET is_primary = 0 WHERE is_primary = 1 AND id <> $1")
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query(
            "INSERT INTO master_keys (id, is_primary, primary_since_ms) VALUES ($1, 1, $2) \
             ON CONFLICT (id) DO UPDATE SET is_primary = 1, primary_since_ms = $2, \
             retired_at_ms = NULL",
        )
        .bind(id)
        .bind(now_ms())
        .execute(&mut *self.tx)
        .await
        .map_err(classify)?;
        Ok(())
    }
}
