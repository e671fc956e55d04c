//! The engine's state on PostgreSQL: the SQLite store's contract on a server that several
//! Paddock processes share.
//!
//! Same tables and same JSON text as SQLite. Fenced writes lock their stacks' rows
//! (`SELECT … FOR UPDATE`) before checking the lease and hold the lock until they commit,
//! so a takeover (an `UPDATE` of the same row) waits for the write in flight and every
//! write after it sees the new holder. Writes are group-committed by one writer task as on
//! SQLite. Migrations run under a transaction-scoped advisory lock.

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use paddock_engine::secrets::Sealed;
use paddock_engine::state::{
    Fence, JournalEntry, Lease, LeaseOutcome, ResourceRecord, StackSummary, StateChange,
    StateStore, StoreError, StoredStack,
};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool, Row};
use tokio::sync::{mpsc, oneshot};

use crate::contention::{self, Shared};
use crate::metrics::LeaseKind;
use crate::write::{
    Change, MAX_BATCH, Pending, Write, backend, json_err, parse_all, parse_lease, writer_stopped,
};
use crate::{Error, redact_url};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/postgres/0001_state.sql")),
    (2, include_str!("../migrations/postgres/0002_platform.sql")),
    (
        3,
        include_str!("../migrations/postgres/0003_operation_request.sql"),
    ),
    (
        4,
        include_str!("../migrations/postgres/0004_policy_packs.sql"),
    ),
    (5, include_str!("../migrations/postgres/0005_approvals.sql")),
    (6, include_str!("../migrations/postgres/0006_lifecycle.sql")),
    (7, include_str!("../migrations/postgres/0007_fleet.sql")),
    (8, include_str!("../migrations/postgres/0008_key_ring.sql")),
    (
        9,
        include_str!("../migrations/postgres/0009_ownership_marks.sql"),
    ),
];

/// The advisory lock held while migrating ("paddock" in ASCII). Advisory locks belong to
/// one database, so this only serializes the processes opening the same one.
const MIGRATION_LOCK: i64 = 0x0070_6164_646f_636b;

/// The engine's state on PostgreSQL.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    writer: mpsc::UnboundedSender<Pending>,
    /// Figures shared with the platform's handles on this database.
    shared: Arc<Shared>,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`,
    /// with libpq's parameters such as `sslmode`, `host` for a socket directory, or
    /// `application_name`) and runs the migrations it lacks. The database must exist; the
    /// role needs to create tables in it on first open.
    pub async fn connect(url: &str) -> Result<PgStore, Error> {
        let open_err = |source| Error::Open {
            url: redact_url(url),
            source,
        };
        let mut options = PgConnectOptions::from_str(url).map_err(open_err)?;
        if options.get_application_name().is_none() {
            options = options.application_name("paddock");
        }
        // One connection first, which fails at once if the server cannot be reached (a
        // pool would retry until its timeout), and migrates.
        let mut conn = PgConnection::connect_with(&options)
            .await
            .map_err(open_err)?;
        migrate(&mut conn).await?;
        let _ = conn.close().await;
        let pool = PgPoolOptions::new()
            // The group-commit writer takes one per batch; reads and leases the others.
            .max_connections(4)
            .connect_lazy_with(options);
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer(pool.clone(), rx));
        Ok(PgStore {
            pool,
            writer: tx,
            shared: contention::postgres(url),
        })
    }

    /// The migrations recorded as applied, in order.
    pub async fn applied_migrations(&self) -> Result<Vec<i64>, sqlx::Error> {
        sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version")
            .fetch_all(&self.pool)
            .await
    }

    async fn write(&self, fence: Fence<'_>, change: Change) -> Result<(), StoreError> {
        let w = Write {
            stack: fence.stack.to_owned(),
            lease: fence.op_id.to_owned(),
            change,
        };
        let (reply, rx) = oneshot::channel();
        self.writer.send((w, reply)).map_err(|_| writer_stopped())?;
        rx.await.map_err(|_| writer_stopped())?
    }
}

/// Applies the migrations the database lacks, each in its own transaction that first takes
/// the migration lock: of several processes opening a new database at once, one migrates
/// and the others wait, then find the work done.
async fn migrate(conn: &mut PgConnection) -> Result<(), Error> {
    for &(version, sql) in MIGRATIONS {
        let mig_err = |source| Error::Migration { version, source };
        let mut tx = conn.begin().await.map_err(mig_err)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(mig_err)?;
        // Under the lock: two sessions creating it at once could both fail otherwise.
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (\
             version BIGINT PRIMARY KEY, \
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .execute(&mut *tx)
        .await
        .map_err(mig_err)?;
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await
                .map_err(mig_err)?;
        if done.is_none() {
            sqlx::raw_sql(sql)
                .execute(&mut *tx)
                .await
                .map_err(mig_err)?;
            sqlx::query("INSERT INTO schema_migrations (version) VALUES ($1)")
                .bind(version)
                .execute(&mut *tx)
                .await
                .map_err(mig_err)?;
        }
        tx.commit().await.map_err(mig_err)?;
    }
    Ok(())
}

/// Group commit: takes every write waiting, applies them in one transaction, replies to
/// each. If the batch fails, each write is retried alone so that only the bad one fails.
async fn writer(pool: PgPool, mut rx: mpsc::UnboundedReceiver<Pending>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        let writes: Vec<&Write> = batch.iter().map(|(w, _)| w).collect();
        match apply_batch(&pool, &writes).await {
            Ok(outcomes) => {
                for ((_, reply), outcome) in batch.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            Err(_) => {
                for (w, reply) in batch {
                    let outcome = match apply_batch(&pool, &[&w]).await {
                        Ok(mut outcomes) => outcomes.pop().unwrap_or(Ok(())),
                        Err(e) => Err(e),
                    };
                    let _ = reply.send(outcome);
                }
            }
        }
    }
}

/// One transaction for `writes`. Each write whose fence fails changes nothing and gets its
/// error in the returned outcomes; any other error fails the whole batch.
async fn apply_batch(
    pool: &PgPool,
    writes: &[&Write],
) -> Result<Vec<Result<(), StoreError>>, StoreError> {
    let mut tx = pool.begin().await.map_err(backend)?;
    let mut stacks: Vec<&str> = writes.iter().map(|w| w.stack.as_str()).collect();
    stacks.sort_unstable();
    stacks.dedup();
    // The rows stay locked until commit: no lease changes between this check and the
    // writes. Locked in name order, so two batches never wait for each other in a cycle.
    let holders: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT name, lease_op_id FROM stacks WHERE name = ANY($1) ORDER BY name FOR UPDATE",
    )
    .bind(&stacks)
    .fetch_all(&mut *tx)
    .await
    .map_err(backend)?;
    let mut outcomes = Vec::with_capacity(writes.len());
    for w in writes {
        let fence = match holders.iter().find(|(name, _)| *name == w.stack) {
            None => Err(StoreError::NoSuchStack(w.stack.clone())),
            Some((_, Some(holder))) if *holder == w.lease => Ok(()),
            Some(_) => Err(StoreError::LeaseLost(w.stack.clone())),
        };
        if fence.is_ok() {
            apply_one(&mut tx, w).await?;
        }
        outcomes.push(fence);
    }
    tx.commit().await.map_err(backend)?;
    Ok(outcomes)
}

async fn apply_one(conn: &mut PgConnection, w: &Write) -> Result<(), StoreError> {
    let stack = w.stack.as_str();
    match &w.change {
        Change::JournalBegin { entry_id, entry } => {
            sqlx::query("INSERT INTO journal (stack, op_id, entry) VALUES ($1, $2, $3)")
                .bind(stack)
                .bind(entry_id)
                .bind(entry)
                .execute(&mut *conn)
                .await
                .map_err(backend)?;
        }
        Change::JournalComplete { entry_id, change } => {
            sqlx::query("DELETE FROM journal WHERE stack = $1 AND op_id = $2")
                .bind(stack)
                .bind(entry_id)
                .execute(&mut *conn)
                .await
                .map_err(backend)?;
            match change {
                StateChange::Upsert { record, retire } => {
                    put_record(conn, stack, record).await?;
                    if let Some(old) = retire {
                        retire_record(conn, stack, old).await?;
                    }
                }
                StateChange::Remove { instance } => remove_record(conn, stack, instance).await?,
                StateChange::Nothing => {}
            }
        }
        Change::PutResource { record } => put_record(conn, stack, record).await?,
        Change::RemoveResource { instance } => remove_record(conn, stack, instance).await?,
        Change::SetOutputs { outputs } => {
            sqlx::query("UPDATE stacks SET outputs = $1 WHERE name = $2")
                .bind(outputs)
                .bind(stack)
                .execute(&mut *conn)
                .await
                .map_err(backend)?;
        }
    }
    Ok(())
}

async fn put_record(
    conn: &mut PgConnection,
    stack: &str,
    record: &ResourceRecord,
) -> Result<(), StoreError> {
    let text = serde_json::to_string(record).map_err(json_err)?;
    sqlx::query(
        "INSERT INTO resources (stack, instance, name, record) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (stack, instance) DO UPDATE SET name = EXCLUDED.name, record = EXCLUDED.record",
    )
    .bind(stack)
    .bind(&record.instance)
    .bind(&record.name)
    .bind(text)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    Ok(())
}

/// Marks a replaced instance as pending deletion. The record is rewritten by the same
/// serializer that wrote it (not by JSONB, which would reformat the sealed values).
async fn retire_record(
    conn: &mut PgConnection,
    stack: &str,
    instance: &str,
) -> Result<(), StoreError> {
    let text: Option<String> =
        sqlx::query_scalar("SELECT record FROM resources WHERE stack = $1 AND instance = $2")
            .bind(stack)
            .bind(instance)
            .fetch_optional(&mut *conn)
            .await
            .map_err(backend)?;
    let Some(text) = text else {
        return Ok(());
    };
    let mut record: ResourceRecord = serde_json::from_str(&text).map_err(json_err)?;
    if record.delete_pending {
        return Ok(());
    }
    record.delete_pending = true;
    put_record(conn, stack, &record).await
}

async fn remove_record(
    conn: &mut PgConnection,
    stack: &str,
    instance: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM resources WHERE stack = $1 AND instance = $2")
        .bind(stack)
        .bind(instance)
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
    Ok(())
}

#[async_trait]
impl StateStore for PgStore {
    async fn create_stack(
        &self,
        name: &str,
        wrapped_key: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "INSERT INTO stacks (name, wrapped_key, created_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(wrapped_key)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::StackExists(name.to_owned()));
        }
        Ok(())
    }

    async fn remove_stack(&self, name: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM stacks WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NoSuchStack(name.to_owned()));
        }
        Ok(())
    }

    async fn list_stacks(&self) -> Result<Vec<StackSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.name, s.created_at_ms, s.lease, s.lease_expires_at_ms, \
             (SELECT COUNT(*) FROM resources r WHERE r.stack = s.name) AS resources, \
             (SELECT COUNT(*) FROM journal j WHERE j.stack = s.name) AS pending \
             FROM stacks s ORDER BY s.name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let now = paddock_engine::state::now_ms();
        rows.into_iter()
            .map(|row| {
                let expires: Option<i64> = row.get("lease_expires_at_ms");
                let lease =
                    parse_lease(row.get("lease"))?.filter(|_| expires.is_some_and(|e| e > now));
                Ok(StackSummary {
                    name: row.get("name"),
                    created_at_ms: row.get("created_at_ms"),
                    resources: row.get::<i64, _>("resources") as u64,
                    pending: row.get::<i64, _>("pending") as u64,
                    lease,
                })
            })
            .collect()
    }

    async fn load(&self, name: &str) -> Result<StoredStack, StoreError> {
        // One snapshot for the stack, its resources and its journal.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(backend)?;
        let stack =
            sqlx::query("SELECT wrapped_key, created_at_ms, outputs FROM stacks WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?
                .ok_or_else(|| StoreError::NoSuchStack(name.to_owned()))?;
        let resources: Vec<String> =
            sqlx::query_scalar("SELECT record FROM resources WHERE stack = $1 ORDER BY instance")
                .bind(name)
                .fetch_all(&mut *tx)
                .await
                .map_err(backend)?;
        let journal: Vec<String> =
            sqlx::query_scalar("SELECT entry FROM journal WHERE stack = $1 ORDER BY op_id")
                .bind(name)
                .fetch_all(&mut *tx)
                .await
                .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(StoredStack {
            name: name.to_owned(),
            wrapped_key: stack.get("wrapped_key"),
            created_at_ms: stack.get("created_at_ms"),
            outputs: serde_json::from_str(stack.get::<&str, _>("outputs")).map_err(json_err)?,
            resources: parse_all(&resources)?,
            journal: parse_all(&journal)?,
        })
    }

    async fn load_outputs(&self, name: &str) -> Result<(String, Sealed), StoreError> {
        let row = sqlx::query("SELECT wrapped_key, outputs FROM stacks WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .ok_or_else(|| StoreError::NoSuchStack(name.to_owned()))?;
        Ok((
            row.get("wrapped_key"),
            serde_json::from_str(row.get::<&str, _>("outputs")).map_err(json_err)?,
        ))
    }

    async fn journal_begin(
        &self,
        fence: Fence<'_>,
        entry: &JournalEntry,
    ) -> Result<(), StoreError> {
        let entry_id = entry.op_id.clone();
        let entry = serde_json::to_string(entry).map_err(json_err)?;
        self.write(fence, Change::JournalBegin { entry_id, entry })
            .await
    }

    async fn journal_complete(
        &self,
        fence: Fence<'_>,
        entry_id: &str,
        change: StateChange,
    ) -> Result<(), StoreError> {
        self.write(
            fence,
            Change::JournalComplete {
                entry_id: entry_id.to_owned(),
                change,
            },
        )
        .await
    }

    async fn put_resource(
        &self,
        fence: Fence<'_>,
        record: &ResourceRecord,
    ) -> Result<(), StoreError> {
        self.write(
            fence,
            Change::PutResource {
                record: Box::new(record.clone()),
            },
        )
        .await
    }

    async fn remove_resource(&self, fence: Fence<'_>, instance: &str) -> Result<(), StoreError> {
        self.write(
            fence,
            Change::RemoveResource {
                instance: instance.to_owned(),
            },
        )
        .await
    }

    async fn set_outputs(&self, fence: Fence<'_>, outputs: &Sealed) -> Result<(), StoreError> {
        let outputs = serde_json::to_string(outputs).map_err(json_err)?;
        self.write(fence, Change::SetOutputs { outputs }).await
    }

    async fn acquire_lease(
        &self,
        stack: &str,
        lease: &Lease,
        now_ms: i64,
        replacing: Option<&str>,
    ) -> Result<LeaseOutcome, StoreError> {
        let text = serde_json::to_string(lease).map_err(json_err)?;
        loop {
            // Waits for a fenced write in flight on the stack (it holds the row), then
            // re-checks the condition on the row as that write left it.
            let done = sqlx::query(
                "UPDATE stacks SET lease = $1, lease_op_id = $2, lease_expires_at_ms = $3 \
                 WHERE name = $4 AND (lease_op_id IS NULL OR lease_expires_at_ms <= $5 \
                 OR lease_op_id = $6)",
            )
            .bind(&text)
            .bind(&lease.op_id)
            .bind(lease.expires_at_ms)
            .bind(stack)
            .bind(now_ms)
            .bind(replacing)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
            if done.rows_affected() == 1 {
                return Ok(LeaseOutcome::Acquired);
            }
            let held: Option<Option<String>> =
                sqlx::query_scalar("SELECT lease FROM stacks WHERE name = $1")
                    .bind(stack)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend)?;
            match held {
                None => return Err(StoreError::NoSuchStack(stack.to_owned())),
                Some(text) => {
                    if let Some(l) = parse_lease(text)? {
                        return Ok(LeaseOutcome::Busy(l));
                    }
                    // Released in between: try again.
                }
            }
        }
    }

    async fn renew_lease(
        &self,
        stack: &str,
        op_id: &str,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        // The row as it was (`old`) tells how much time the lease had left.
        let left: Option<Option<i64>> = sqlx::query_scalar(
            "UPDATE stacks s SET lease_expires_at_ms = $1 FROM stacks old \
             WHERE old.name = s.name AND s.name = $2 AND s.lease_op_id = $3 \
             RETURNING old.lease_expires_at_ms",
        )
        .bind(expires_at_ms)
        .bind(stack)
        .bind(op_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        let Some(left) = left else {
            return Err(StoreError::LeaseLost(stack.to_owned()));
        };
        if let Some(at) = left {
            self.shared
                .metrics
                .renewed(LeaseKind::Stack, at - paddock_engine::state::now_ms());
        }
        Ok(())
    }

    async fn release_lease(&self, stack: &str, op_id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE stacks SET lease = NULL, lease_op_id = NULL, lease_expires_at_ms = NULL \
             WHERE name = $1 AND lease_op_id = $2",
        )
        .bind(stack)
        .bind(op_id)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }
}
