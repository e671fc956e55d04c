//! Fleet rollouts: a blueprint's environments brought to one version in waves.
//!
//! A rollout and its targets are written once when it starts; afterwards only its state,
//! its current wave and each target's operation change. What became of a target is read
//! from its operation, so the record never disagrees with the queue.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, DbError, WriteTx, classify};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rollout {
    pub id: String,
    pub blueprint: String,
    pub target_version: String,
    /// The filter that chose its environments, as JSON text.
    pub filter: String,
    pub canary: i64,
    pub batch_size: i64,
    /// `running`, `succeeded`, `failed` or `cancelled`.
    pub state: String,
    pub current_wave: i64,
    pub requested_by: String,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub reason: Option<String>,
}

/// One environment a rollout considered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutTarget {
    pub position: i64,
    pub environment_id: String,
    pub from_version: String,
    /// `None` when skipped.
    pub wave: Option<i64>,
    pub skipped: Option<String>,
    pub operation_id: Option<String>,
}

fn rollout(row: &AnyRow) -> Result<Rollout, sqlx::Error> {
    Ok(Rollout {
        id: row.try_get("id")?,
        blueprint: row.try_get("blueprint")?,
        target_version: row.try_get("target_version")?,
        filter: row.try_get("filter")?,
        canary: row.try_get("canary")?,
        batch_size: row.try_get("batch_size")?,
        state: row.try_get("state")?,
        current_wave: row.try_get("current_wave")?,
        requested_by: row.try_get("requested_by")?,
        created_at: row.try_get("created_at")?,
        finished_at: row.try_get("finished_at")?,
        reason: row.try_get("reason")?,
    })
}

fn target(row: &AnyRow) -> Result<RolloutTarget, sqlx::Error> {
    Ok(RolloutTarget {
        position: row.try_get("position")?,
        environment_id: row.try_get("environment_id")?,
        from_version: row.try_get("from_version")?,
        wave: row.try_get("wave")?,
        skipped: row.try_get("skipped")?,
        operation_id: row.try_get("operation_id")?,
    })
}

impl Db {
    pub async fn rollout(&self, id: &str) -> Result<Option<Rollout>, DbError> {
        let row = sqlx::query("SELECT * FROM rollouts WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.as_ref().map(rollout).transpose()?)
    }

    /// A blueprint's rollouts, newest first.
    pub async fn rollouts(&self, blueprint: &str, limit: i64) -> Result<Vec<Rollout>, DbError> {
        let rows = sqlx::query(
            "SELECT * FROM rollouts WHERE blueprint = $1 ORDER BY created_at DESC, id LIMIT $2",
        )
        .bind(blueprint)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(rollout).collect::<Result<_, _>>()?)
    }

    /// The ids of the rollouts still running, oldest first.
    pub async fn running_rollouts(&self) -> Result<Vec<String>, DbError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM rollouts WHERE state = 'running' ORDER BY created_at, id",
        )
        .fetch_all(self.pool())
        .await?)
    }

    pub async fn rollout_targets(&self, id: &str) -> Result<Vec<RolloutTarget>, DbError> {
        let rows =
            sqlx::query("SELECT * FROM rollout_targets WHERE rollout_id = $1 ORDER BY position")
                .bind(id)
                .fetch_all(self.pool())
                .await?;
        Ok(rows.iter().map(target).collect::<Result<_, _>>()?)
    }
}

impl WriteTx {
    pub async fn insert_rollout(
        &mut self,
        r: &Rollout,
        targets: &[RolloutTarget],
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO rollouts (id, blueprint, target_version, filter, canary, batch_size, \
             state, current_wave, requested_by, created_at, finished_at, reason) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&r.id)
        .bind(&r.blueprint)
        .bind(&r.target_version)
        .bind(&r.filter)
        .bind(r.canary)
        .bind(r.batch_size)
        .bind(&r.state)
        .bind(r.current_wave)
        .bind(&r.requested_by)
        .bind(r.created_at)
        .bind(r.finished_at)
        .bind(&r.reason)
        .execute(&mut *self.tx)
        .await
        .map_err(classify)?;
        for t in targets {
            sqlx::query(
                "INSERT INTO rollout_targets (rollout_id, position, environment_id, \
                 from_version, wave, skipped, operation_id) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&r.id)
            .bind(t.position)
            .bind(&t.environment_id)
            .bind(&t.from_version)
            .bind(t.wave)
            .bind(&t.skipped)
            .bind(&t.operation_id)
            .execute(&mut *self.tx)
            .await?;
        }
        Ok(())
    }

    /// The rollout as this transaction sees it (writers are serialized, so this is the
    /// state the transaction's changes apply to).
    pub async fn rollout(&mut self, id: &str) -> Result<Option<Rollout>, DbError> {
        let row = sqlx::query("SELECT * FROM rollouts WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(row.as_ref().map(rollout).transpose()?)
    }

    /// The running rollout of a blueprint, if any.
    pub async fn running_rollout(&mut self, blueprint: &str) -> Result<Option<Rollout>, DbError> {
        let row = sqlx::query(
            "SELECT * FROM rollouts WHERE blueprint = $1 AND state = 'running' LIMIT 1",
        )
        .bind(blueprint)
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(row.as_ref().map(rollout).transpose()?)
    }

    pub async fn set_rollout_wave(&mut self, id: &str, wave: i64) -> Result<(), DbError> {
        sqlx::query("UPDATE rollouts SET current_wave = $2 WHERE id = $1")
            .bind(id)
            .bind(wave)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Ends a running rollout; false if it had already ended.
    pub async fn end_rollout(
        &mut self,
        id: &str,
        state: &str,
        reason: Option<&str>,
        now: i64,
    ) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE rollouts SET state = $2, reason = $3, finished_at = $4 \
             WHERE id = $1 AND state = 'running'",
        )
        .bind(id)
        .bind(state)
        .bind(reason)
        .bind(now)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn set_target_operation(
        &mut self,
        id: &str,
        position: i64,
        operation: &str,
    ) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE rollout_targets SET operation_id = $3 WHERE rollout_id = $1 AND position = $2",
        )
        .bind(id)
        .bind(position)
        .bind(operation)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Marks a target skipped (destroyed, or pinned to another version, since the
    /// rollout started).
    pub async fn skip_target(
        &mut self,
        id: &str,
        position: i64,
        reason: &str,
    ) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE rollout_targets SET skipped = $3 WHERE rollout_id = $1 AND position = $2",
        )
        .bind(id)
        .bind(position)
        .bind(reason)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}
