//! Day two of an environment: its expiry (when it is torn down, who set it, whether the
//! warning was given and which destroy the reaper queued) and the drift its latest
//! refresh found. Also what the scheduler and reaper read to decide what is due.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, DbError, WriteTx, classify};

/// States an operation has not finished in (whatever waiting states come to exist).
macro_rules! unfinished {
    () => {
        "state NOT IN ('succeeded', 'failed', 'cancelled')"
    };
}

/// An environment's expiry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expiry {
    pub environment_id: String,
    pub expires_at: i64,
    /// The login of the person who set it: its teardown is attributed to them.
    pub set_by: String,
    pub set_at: i64,
    pub warned_at: Option<i64>,
    pub teardown_operation: Option<String>,
}

/// An expiry with what the reaper needs to know of its environment.
#[derive(Clone, Debug)]
pub struct DueExpiry {
    pub expiry: Expiry,
    pub team: String,
    pub environment: String,
    pub status: String,
}

/// The drift an environment's latest refresh found.
#[derive(Clone, Debug)]
pub struct DriftReport {
    pub environment_id: String,
    pub operation_id: String,
    pub found_at: i64,
    /// How many resources drifted.
    pub resources: i64,
    /// Per stack and resource, as JSON text (secrets redacted).
    pub drift: String,
}

/// An environment the drift scheduler may refresh, with its last refresh.
#[derive(Clone, Debug)]
pub struct RefreshCandidate {
    pub id: String,
    pub team: String,
    pub name: String,
    pub created_at: i64,
    /// When its newest refresh ended (or was queued, while it runs), if ever.
    pub last_refresh: Option<i64>,
}

fn expiry(row: &AnyRow) -> Result<Expiry, sqlx::Error> {
    Ok(Expiry {
        environment_id: row.try_get("environment_id")?,
        expires_at: row.try_get("expires_at")?,
        set_by: row.try_get("set_by")?,
        set_at: row.try_get("set_at")?,
        warned_at: row.try_get("warned_at")?,
        teardown_operation: row.try_get("teardown_operation")?,
    })
}

fn due(row: &AnyRow) -> Result<DueExpiry, sqlx::Error> {
    Ok(DueExpiry {
        expiry: expiry(row)?,
        team: row.try_get("team")?,
        environment: row.try_get("name")?,
        status: row.try_get("status")?,
    })
}

fn drift_report(row: &AnyRow) -> Result<DriftReport, sqlx::Error> {
    Ok(DriftReport {
        environment_id: row.try_get("environment_id")?,
        operation_id: row.try_get("operation_id")?,
        found_at: row.try_get("found_at")?,
        resources: row.try_get("resources")?,
        drift: row.try_get("drift")?,
    })
}

impl Db {
    pub async fn expiry(&self, environment_id: &str) -> Result<Option<Expiry>, DbError> {
        let row = sqlx::query("SELECT * FROM environment_expiry WHERE environment_id = $1")
            .bind(environment_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.as_ref().map(expiry).transpose()?)
    }

    /// The expiries of a team's environments (all teams' with `None`).
    pub async fn expiries(&self, team: Option<&str>) -> Result<Vec<Expiry>, DbError> {
        let rows = sqlx::query(
            "SELECT x.* FROM environment_expiry x JOIN environments e ON e.id = x.environment_id \
             WHERE ($1 IS NULL OR e.team = $1)",
        )
        .bind(team)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(expiry).collect::<Result<_, _>>()?)
    }

    /// The expiries of the environments `ids` (one page of a list).
    pub async fn expiries_for(&self, ids: &[String]) -> Result<Vec<Expiry>, DbError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = (1..=ids.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        // Only `$N` placeholders are formatted in; the ids are bound.
        let sql = format!("SELECT * FROM environment_expiry WHERE environment_id IN ({list})");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(id);
        }
        let rows = query.fetch_all(self.pool()).await?;
        Ok(rows.iter().map(expiry).collect::<Result<_, _>>()?)
    }

    /// Expiries of environments not destroyed whose time, less `warning_ms`, has come.
    pub async fn expiries_due(&self, now: i64, warning_ms: i64) -> Result<Vec<DueExpiry>, DbError> {
        let rows = sqlx::query(
            "SELECT x.*, e.team, e.name, e.status FROM environment_expiry x \
             JOIN environments e ON e.id = x.environment_id \
             WHERE x.expires_at - $2 <= $1 AND e.status <> 'destroyed' ORDER BY x.expires_at",
        )
        .bind(now)
        .bind(warning_ms)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(due).collect::<Result<_, _>>()?)
    }

    pub async fn drift_report(&self, environment_id: &str) -> Result<Option<DriftReport>, DbError> {
        let row = sqlx::query("SELECT * FROM environment_drift WHERE environment_id = $1")
            .bind(environment_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.as_ref().map(drift_report).transpose()?)
    }

    /// Drifted resources over every environment, as their latest refreshes found them.
    pub async fn drifted_resources(&self) -> Result<i64, DbError> {
        let n: Option<i64> =
            sqlx::query_scalar("SELECT CAST(SUM(resources) AS BIGINT) FROM environment_drift")
                .fetch_one(self.pool())
                .await?;
        Ok(n.unwrap_or(0))
    }

    /// Environments that stand (`ready` or `drifted`), each with when its newest refresh
    /// ended (or was queued, if it has not): a refresh that ran past its slot does not make
    /// the next one due the moment it ends, so people get the environment between them.
    pub async fn refresh_candidates(&self) -> Result<Vec<RefreshCandidate>, DbError> {
        let rows = sqlx::query(
            "SELECT e.id, e.team, e.name, e.created_at, \
             (SELECT MAX(COALESCE(o.finished_at, o.created_at)) FROM operations o \
              WHERE o.environment = e.id AND o.kind = 'refresh') AS last_refresh \
             FROM environments e WHERE e.status IN ('ready', 'drifted') ORDER BY e.id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(RefreshCandidate {
                    id: row.try_get("id")?,
                    team: row.try_get("team")?,
                    name: row.try_get("name")?,
                    created_at: row.try_get("created_at")?,
                    last_refresh: row.try_get("last_refresh")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DbError::from)
    }
}

impl WriteTx {
    /// Sets (or replaces) an environment's expiry; the warning is due again.
    pub async fn set_expiry(
        &mut self,
        environment_id: &str,
        expires_at: i64,
        set_by: &str,
        now: i64,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO environment_expiry (environment_id, expires_at, set_by, set_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (environment_id) DO UPDATE SET \
             expires_at = excluded.expires_at, set_by = excluded.set_by, \
             set_at = excluded.set_at, warned_at = NULL, teardown_operation = NULL",
        )
        .bind(environment_id)
        .bind(expires_at)
        .bind(set_by)
        .bind(now)
        .execute(&mut *self.tx)
        .await
        .map_err(classify)?;
        Ok(())
    }

    pub async fn clear_expiry(&mut self, environment_id: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM environment_expiry WHERE environment_id = $1")
            .bind(environment_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// The expiry as it is now, read under the write lock.
    pub async fn expiry(&mut self, environment_id: &str) -> Result<Option<Expiry>, DbError> {
        let row = sqlx::query("SELECT * FROM environment_expiry WHERE environment_id = $1")
            .bind(environment_id)
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(row.as_ref().map(expiry).transpose()?)
    }

    pub async fn mark_expiry_warned(
        &mut self,
        environment_id: &str,
        now: i64,
    ) -> Result<(), DbError> {
        sqlx::query("UPDATE environment_expiry SET warned_at = $2 WHERE environment_id = $1")
            .bind(environment_id)
            .bind(now)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    pub async fn set_teardown_operation(
        &mut self,
        environment_id: &str,
        operation: &str,
    ) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE environment_expiry SET teardown_operation = $2 WHERE environment_id = $1",
        )
        .bind(environment_id)
        .bind(operation)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Cancels the operation if no worker has claimed it yet; whether it did.
    pub async fn cancel_if_queued(&mut self, id: &str, now: i64) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE operations SET state = 'cancelled', finished_at = $2, \
             outcome = '{\"cancelled\":\"before it started\"}' WHERE id = $1 AND state = 'queued'",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Whether an operation of `kind` on the environment is unfinished.
    pub async fn has_unfinished(
        &mut self,
        environment_id: &str,
        kind: &str,
    ) -> Result<bool, DbError> {
        let n: i64 = sqlx::query_scalar(concat!(
            "SELECT COUNT(*) FROM operations WHERE environment = $1 AND kind = $2 AND ",
            unfinished!()
        ))
        .bind(environment_id)
        .bind(kind)
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(n > 0)
    }

    /// Unfinished operations of `kind` requested by `by` (over every environment).
    pub async fn unfinished_requested_by(&mut self, kind: &str, by: &str) -> Result<i64, DbError> {
        Ok(sqlx::query_scalar(concat!(
            "SELECT COUNT(*) FROM operations WHERE kind = $1 AND requested_by = $2 AND ",
            unfinished!()
        ))
        .bind(kind)
        .bind(by)
        .fetch_one(&mut *self.tx)
        .await?)
    }

    /// When the environment's newest operation of `kind` was queued, read under the lock.
    pub async fn last_queued(
        &mut self,
        environment_id: &str,
        kind: &str,
    ) -> Result<Option<i64>, DbError> {
        Ok(sqlx::query_scalar(
            "SELECT MAX(created_at) FROM operations WHERE environment = $1 AND kind = $2",
        )
        .bind(environment_id)
        .bind(kind)
        .fetch_one(&mut *self.tx)
        .await?)
    }

    /// Records the drift a refresh found (replacing the previous refresh's).
    pub async fn put_drift(&mut self, r: &DriftReport) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO environment_drift (environment_id, operation_id, found_at, resources, drift) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (environment_id) DO UPDATE SET \
             operation_id = excluded.operation_id, found_at = excluded.found_at, \
             resources = excluded.resources, drift = excluded.drift",
        )
        .bind(&r.environment_id)
        .bind(&r.operation_id)
        .bind(r.found_at)
        .bind(r.resources)
        .bind(&r.drift)
        .execute(&mut *self.tx)
        .await
        .map_err(classify)?;
        Ok(())
    }

    pub async fn drift_report(
        &mut self,
        environment_id: &str,
    ) -> Result<Option<DriftReport>, DbError> {
        let row = sqlx::query("SELECT * FROM environment_drift WHERE environment_id = $1")
            .bind(environment_id)
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(row.as_ref().map(drift_report).transpose()?)
    }

    pub async fn clear_drift(&mut self, environment_id: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM environment_drift WHERE environment_id = $1")
            .bind(environment_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }
}
