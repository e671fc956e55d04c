//! Durable operations: a queue in the database that workers on any replica claim with a
//! lease, renew by heartbeat, and finish; and the events each operation records.
//!
//! Claiming is one statement. On PostgreSQL the candidate row is chosen `FOR UPDATE SKIP
//! LOCKED`, so concurrent claimers take different rows without waiting for each other; on
//! SQLite a write statement holds the database's only write lock, which is the same
//! guarantee. Every later write of a running operation is fenced by its holder: a worker
//! whose lease was taken over changes nothing.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Backend, Db, DbError, WriteTx, classify, now_ms};
use crate::metrics::{LeaseKind, Writer};

macro_rules! active {
    () => {
        "('queued', 'running', 'waiting_for_approval')"
    };
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    pub seq: i64,
    pub id: String,
    pub team: String,
    /// The environment's id; `None` for an operation on the team itself.
    pub environment: Option<String>,
    pub kind: String,
    /// The stages it acts on, as a JSON list.
    pub stages: String,
    pub state: String,
    pub requested_by: String,
    pub retry_of: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub holder: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub attempts: i64,
    pub cancel_requested: bool,
    /// The result, as JSON text, once finished.
    pub outcome: Option<String>,
    /// What it was asked to do beyond its kind and stages, as JSON text.
    pub request: Option<String>,
}

pub struct NewOperation<'a> {
    pub id: &'a str,
    pub team: &'a str,
    pub environment: Option<&'a str>,
    pub kind: &'a str,
    pub stages: &'a str,
    pub requested_by: &'a str,
    pub retry_of: Option<&'a str>,
    pub request: Option<&'a str>,
    pub created_at: i64,
}

/// An operation a worker has just claimed.
#[derive(Debug)]
pub struct Claim {
    pub operation: Operation,
    /// It was running under another holder whose lease expired.
    pub takeover: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRow {
    pub id: i64,
    pub operation_id: String,
    pub environment: Option<String>,
    pub at: i64,
    pub kind: String,
    pub data: String,
}

pub(super) fn operation(row: &AnyRow) -> Result<Operation, sqlx::Error> {
    Ok(Operation {
        seq: row.try_get("seq")?,
        id: row.try_get("id")?,
        team: row.try_get("team")?,
        environment: row.try_get("environment")?,
        kind: row.try_get("kind")?,
        stages: row.try_get("stages")?,
        state: row.try_get("state")?,
        requested_by: row.try_get("requested_by")?,
        retry_of: row.try_get("retry_of")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        holder: row.try_get("holder")?,
        lease_expires_at: row.try_get("lease_expires_at")?,
        attempts: row.try_get("attempts")?,
        cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
        outcome: row.try_get("outcome")?,
        request: row.try_get("request")?,
    })
}

fn event(row: &AnyRow) -> Result<EventRow, sqlx::Error> {
    Ok(EventRow {
        id: row.try_get("id")?,
        operation_id: row.try_get("operation_id")?,
        environment: row.try_get("environment")?,
        at: row.try_get("at")?,
        kind: row.try_get("kind")?,
        data: row.try_get("data")?,
    })
}

impl Db {
    pub async fn operation(&self, id: &str) -> Result<Option<Operation>, DbError> {
        let row = sqlx::query("SELECT * FROM operations WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.as_ref().map(operation).transpose()?)
    }

    /// Operations of a team, or of one of its environments, newest first.
    pub async fn operations(
        &self,
        team: &str,
        environment: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Operation>, DbError> {
        let rows = sqlx::query(
            "SELECT * FROM operations WHERE team = $1 AND ($2 IS NULL OR environment = $2) \
             ORDER BY seq DESC LIMIT $3",
        )
        .bind(team)
        .bind(environment)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(operation).collect::<Result<_, _>>()?)
    }

    /// How many operations are in each state.
    pub async fn operation_counts(&self) -> Result<Vec<(String, i64)>, DbError> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM operations GROUP BY state")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("state")?, r.try_get("n")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DbError::from)
    }

    /// Claims the oldest operation that may run now, for `holder`, until `lease_until`:
    /// a queued one, or a running one whose holder's lease expired. An operation waits
    /// while an older one on the same environment (or any older operation on its team
    /// itself, whose outputs environments read) is unfinished.
    pub async fn claim_operation(
        &self,
        holder: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<Option<Claim>, DbError> {
        // On SQLite the candidates are read in `seq` order (`+` keeps the state index out
        // of the plan): through the index, every queued row and its NOT EXISTS were
        // evaluated and sorted before the LIMIT, seconds per claim with 10,000 queued.
        macro_rules! claim {
            ($lock:literal, $plus:literal) => {
                concat!(
                    "UPDATE operations SET \
                       state = 'running', holder = $1, lease_expires_at = $3, \
                       attempts = attempts + 1, started_at = COALESCE(started_at, $2) \
                     WHERE seq = (\
                       SELECT o.seq FROM operations o \
                       WHERE (",
                    $plus,
                    "o.state = 'queued' \
                              OR (",
                    $plus,
                    "o.state = 'running' AND o.lease_expires_at < $2)) \
                       AND NOT EXISTS (\
                         SELECT 1 FROM operations b WHERE b.seq < o.seq AND b.state IN ",
                    active!(),
                    " AND b.team = o.team \
                         AND (b.environment IS NULL OR b.environment = o.environment)) \
                       ORDER BY o.seq LIMIT 1 ",
                    $lock,
                    ") AND (state = 'queued' OR (state = 'running' AND lease_expires_at < $2)) \
                     RETURNING *"
                )
            };
        }
        let sql = match self.backend() {
            Backend::Postgres => claim!("FOR UPDATE SKIP LOCKED", ""),
            Backend::Sqlite => claim!("", "+"),
        };
        // The claim and its attempt's `operationStarted` event commit together: a replica
        // killed in between would leave an attempt that no event records.
        let claimed = self
            .write_one(Writer::Platform, || async {
                let mut tx = match self.backend {
                    Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
                    Backend::Postgres => self.pool.begin().await?,
                };
                let row = sqlx::query(sql)
                    .bind(holder)
                    .bind(now)
                    .bind(lease_until)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(row) = row else { return Ok(None) };
                let operation = operation(&row)?;
                let started = serde_json::json!({
                    "operation": operation.id,
                    "kind": operation.kind,
                    "attempt": operation.attempts,
                    "replica": holder,
                    "seq": 0,
                });
                insert_event(
                    &mut tx,
                    &operation.id,
                    operation.environment.as_deref(),
                    now,
                    "operationStarted",
                    &started.to_string(),
                )
                .await?;
                tx.commit().await?;
                Ok(Some(operation))
            })
            .await?;
        let Some(operation) = claimed else {
            return Ok(None);
        };
        Ok(Some(Claim {
            takeover: operation.attempts > 1,
            operation,
        }))
    }

    /// Extends a running operation's lease; `None` if `holder` no longer holds it. Also
    /// tells whether cancellation was asked for. Renewals go before other waiting writers;
    /// how much time the lease had left is recorded.
    pub async fn renew_operation(
        &self,
        id: &str,
        holder: &str,
        lease_until: i64,
    ) -> Result<Option<bool>, DbError> {
        let (expired_at, row) = self
            .write_one(Writer::Lease, || async {
                let expires: Option<Option<i64>> = sqlx::query_scalar(
                    "SELECT lease_expires_at FROM operations \
                     WHERE id = $1 AND holder = $2 AND state = 'running'",
                )
                .bind(id)
                .bind(holder)
                .fetch_optional(&self.pool)
                .await?;
                let row = sqlx::query(
                    "UPDATE operations SET lease_expires_at = $3 \
                     WHERE id = $1 AND holder = $2 AND state = 'running' \
                     RETURNING cancel_requested",
                )
                .bind(id)
                .bind(holder)
                .bind(lease_until)
                .fetch_optional(&self.pool)
                .await?;
                Ok::<_, sqlx::Error>((expires.flatten(), row))
            })
            .await?;
        let Some(row) = row else { return Ok(None) };
        if let Some(at) = expired_at {
            self.shared
                .metrics
                .renewed(LeaseKind::Operation, at - now_ms());
        }
        Ok(Some(row.try_get::<i64, _>("cancel_requested")? != 0))
    }

    /// Hands a running operation back to the queue (a replica shutting down); false if
    /// `holder` no longer holds it.
    pub async fn release_operation(&self, id: &str, holder: &str) -> Result<bool, DbError> {
        let done = self
            .write_one(Writer::Platform, || {
                sqlx::query(
                    "UPDATE operations SET state = 'queued', holder = NULL, \
                     lease_expires_at = NULL WHERE id = $1 AND holder = $2 AND state = 'running'",
                )
                .bind(id)
                .bind(holder)
                .execute(&self.pool)
            })
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records an event of an operation; returns its id (the SSE event id). In this
    /// process's turn, retried while the database answers busy.
    pub async fn append_event(
        &self,
        operation_id: &str,
        environment: Option<&str>,
        at: i64,
        kind: &str,
        data: &str,
    ) -> Result<i64, DbError> {
        self.write_one(Writer::Events, || async {
            let mut conn = self.pool.acquire().await?;
            insert_event(&mut conn, operation_id, environment, at, kind, data).await
        })
        .await
    }

    /// Events after `after`, of one operation or of one environment, oldest first.
    pub async fn events(
        &self,
        operation_id: Option<&str>,
        environment: Option<&str>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<EventRow>, DbError> {
        let rows = sqlx::query(
            "SELECT * FROM operation_events WHERE id > $1 \
             AND ($2 IS NULL OR operation_id = $2) AND ($3 IS NULL OR environment = $3) \
             ORDER BY id LIMIT $4",
        )
        .bind(after)
        .bind(operation_id)
        .bind(environment)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(event).collect::<Result<_, _>>()?)
    }
}

impl WriteTx {
    pub async fn insert_operation(&mut self, o: &NewOperation<'_>) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO operations (id, team, environment, kind, stages, state, requested_by, \
             retry_of, request, created_at) VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8, $9)",
        )
        .bind(o.id)
        .bind(o.team)
        .bind(o.environment)
        .bind(o.kind)
        .bind(o.stages)
        .bind(o.requested_by)
        .bind(o.retry_of)
        .bind(o.request)
        .bind(o.created_at)
        .execute(&mut *self.tx)
        .await
        .map_err(classify)?;
        Ok(())
    }

    /// The unfinished operation on an environment (or on the team itself), if any.
    pub async fn active_operation(
        &mut self,
        team: &str,
        environment: Option<&str>,
    ) -> Result<Option<Operation>, DbError> {
        let row = sqlx::query(concat!(
            "SELECT * FROM operations WHERE team = $1 AND state IN ",
            active!(),
            " AND (($2 IS NULL AND environment IS NULL) OR environment = $2) \
             ORDER BY seq LIMIT 1"
        ))
        .bind(team)
        .bind(environment)
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(row.as_ref().map(operation).transpose()?)
    }

    pub async fn operation(&mut self, id: &str) -> Result<Option<Operation>, DbError> {
        let row = sqlx::query("SELECT * FROM operations WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(row.as_ref().map(operation).transpose()?)
    }

    /// Cancels a queued operation at once (true), or asks a running one's worker to stop.
    pub async fn cancel_operation(&mut self, id: &str, now: i64) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE operations SET state = 'cancelled', finished_at = $2, \
             outcome = '{\"cancelled\":\"before it started\"}' WHERE id = $1 AND state = 'queued'",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *self.tx)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(true);
        }
        sqlx::query(
            "UPDATE operations SET cancel_requested = 1 WHERE id = $1 AND state = 'running'",
        )
        .bind(id)
        .execute(&mut *self.tx)
        .await?;
        Ok(false)
    }

    /// Finishes a running operation held by `holder`; false (and nothing written) if the
    /// lease was lost.
    pub async fn finish_operation(
        &mut self,
        id: &str,
        holder: &str,
        state: &str,
        outcome: &str,
        now: i64,
    ) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE operations SET state = $3, outcome = $4, finished_at = $5, \
             lease_expires_at = NULL WHERE id = $1 AND holder = $2 AND state = 'running'",
        )
        .bind(id)
        .bind(holder)
        .bind(state)
        .bind(outcome)
        .bind(now)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records an event of an operation in this transaction: one that must be written
    /// with the change it reports (an operation's end), or not at all.
    pub async fn append_event(
        &mut self,
        operation_id: &str,
        environment: Option<&str>,
        at: i64,
        kind: &str,
        data: &str,
    ) -> Result<i64, DbError> {
        Ok(insert_event(&mut self.tx, operation_id, environment, at, kind, data).await?)
    }
}

/// Records an event of an operation on `conn` (the pool's, or a transaction's).
async fn insert_event(
    conn: &mut sqlx::AnyConnection,
    operation_id: &str,
    environment: Option<&str>,
    at: i64,
    kind: &str,
    data: &str,
) -> Result<i64, sqlx::Error> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO operation_events (operation_id, environment, at, kind, data) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(operation_id)
    .bind(environment)
    .bind(at)
    .bind(kind)
    .bind(data)
    .fetch_one(conn)
    .await?;
    Ok(id)
}

/// A response remembered under an `Idempotency-Key`.
#[derive(Clone, Debug)]
pub struct Remembered {
    pub fingerprint: String,
    pub status: i64,
    pub body: String,
    pub location: Option<String>,
}

impl WriteTx {
    pub async fn remembered(
        &mut self,
        user_id: &str,
        key: &str,
    ) -> Result<Option<Remembered>, DbError> {
        let row = sqlx::query(
            "SELECT fingerprint, status, body, location FROM idempotency_keys \
             WHERE user_id = $1 AND key = $2",
        )
        .bind(user_id)
        .bind(key)
        .fetch_optional(&mut *self.tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Remembered {
            fingerprint: row.try_get("fingerprint")?,
            status: row.try_get("status")?,
            body: row.try_get("body")?,
            location: row.try_get("location")?,
        }))
    }

    pub async fn remember(
        &mut self,
        user_id: &str,
        key: &str,
        r: &Remembered,
        now: i64,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO idempotency_keys (user_id, key, fingerprint, status, body, location, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(user_id)
        .bind(key)
        .bind(&r.fingerprint)
        .bind(r.status)
        .bind(&r.body)
        .bind(&r.location)
        .bind(now)
        .execute(&mut *self.tx)
        .await
        .map_err(classify)?;
        // Keys are kept for a day, as Stripe's are.
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(now - 24 * 3600 * 1000)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }
}
