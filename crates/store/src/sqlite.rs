use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use paddock_engine::secrets::Sealed;
use paddock_engine::state::{
    Fence, JournalEntry, Lease, LeaseOutcome, ResourceRecord, StackSummary, StateChange,
    StateStore, StoreError, StoredStack,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use crate::Error;
use crate::contention::{self, Shared};
use crate::metrics::{LeaseKind, Writer};
use crate::write::{
    Change, MAX_BATCH, Pending, Write, backend, json_err, parse_all, parse_lease, writer_stopped,
};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_state.sql")),
    (2, include_str!("../migrations/sqlite/0002_platform.sql")),
    (
        3,
        include_str!("../migrations/sqlite/0003_operation_request.sql"),
    ),
    (
        4,
        include_str!("../migrations/sqlite/0004_policy_packs.sql"),
    ),
    (5, include_str!("../migrations/sqlite/0005_approvals.sql")),
    (6, include_str!("../migrations/sqlite/0006_lifecycle.sql")),
    (7, include_str!("../migrations/sqlite/0007_fleet.sql")),
    (8, include_str!("../migrations/sqlite/0008_key_ring.sql")),
    (
        9,
        include_str!("../migrations/sqlite/0009_ownership_marks.sql"),
    ),
];

/// What every connection to a SQLite database is set to, by both pools: WAL (set at
/// open), every commit fsynced, a busy timeout for other processes' writes (this
/// process's writers take turns, see [`crate::contention`]), and the WAL file truncated
/// back to 64 MiB after a checkpoint, so a burst of writes does not leave it large.
pub(crate) const CONNECTION_PRAGMAS: &str = "PRAGMA foreign_keys = ON; \
     PRAGMA busy_timeout = 10000; PRAGMA synchronous = FULL; \
     PRAGMA journal_size_limit = 67108864;";

/// The engine's state on SQLite.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    writer: mpsc::UnboundedSender<Pending>,
    shared: Arc<Shared>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `path` and runs migrations.
    pub async fn open(path: &std::path::Path) -> Result<SqliteStore, Error> {
        let url = format!("sqlite://{}", path.display());
        let open_err = |source| Error::Open {
            url: url.clone(),
            source,
        };
        let options = SqliteConnectOptions::from_str(&url)
            .map_err(open_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("journal_size_limit", "67108864")
            // A 10,000-resource stack is ~5 MB of pages: keep it cached, not re-read.
            .pragma("cache_size", "-16384");
        // A brand-new database being switched to WAL by another process answers "locked"
        // at once, whatever the busy timeout: retry for a moment.
        let mut attempt = 0;
        let pool = loop {
            let connected = SqlitePoolOptions::new()
                // One for the group-commit writer, two for readers and leases.
                .max_connections(3)
                .connect_with(options.clone())
                .await;
            match connected {
                Err(e) if is_locked(&e) && attempt < 100 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                other => break other.map_err(open_err)?,
            }
        };
        migrate(&pool).await?;
        let shared = contention::sqlite(path);
        let writer_conn = pool.acquire().await.map_err(open_err)?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer(writer_conn, rx, shared.clone()));
        Ok(SqliteStore {
            pool,
            writer: tx,
            shared,
        })
    }

    /// `(journal_mode, synchronous)` as a connection sees them.
    pub async fn pragmas(&self) -> Result<(String, i64), sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await?;
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await?;
        Ok((mode, sync))
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

fn is_locked(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("5"))
}

async fn migrate(pool: &SqlitePool) -> Result<(), Error> {
    let mig_err = |version| move |source| Error::Migration { version, source };
    sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)")
        .execute(pool)
        .await
        .map_err(mig_err(0))?;
    for &(version, sql) in MIGRATIONS {
        // IMMEDIATE takes the write lock up front: of two processes opening a new database
        // at once, the second waits and then finds the migration done.
        let mut tx = pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(mig_err(version))?;
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = ?")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await
                .map_err(mig_err(version))?;
        if done.is_none() {
            sqlx::raw_sql(sql)
                .execute(&mut *tx)
                .await
                .map_err(mig_err(version))?;
            sqlx::query("INSERT INTO schema_migrations (version) VALUES (?)")
                .bind(version)
                .execute(&mut *tx)
                .await
                .map_err(mig_err(version))?;
        }
        tx.commit().await.map_err(mig_err(version))?;
    }
    Ok(())
}

/// Group commit: takes every write waiting, applies them in one transaction, replies to
/// each. If the batch fails, each write is retried alone so that only the bad one fails.
async fn writer(
    mut conn: sqlx::pool::PoolConnection<sqlx::Sqlite>,
    mut rx: mpsc::UnboundedReceiver<Pending>,
    shared: Arc<Shared>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        let writes: Vec<&Write> = batch.iter().map(|(w, _)| w).collect();
        let turn = shared.turn(Writer::State).await;
        let applied = apply_batch(&mut conn, &writes).await;
        drop(turn);
        match applied {
            Ok(()) => {
                for (_, reply) in batch {
                    let _ = reply.send(Ok(()));
                }
            }
            Err(_) => {
                for (w, reply) in batch {
                    let _turn = shared.turn(Writer::State).await;
                    let _ = reply.send(apply_batch(&mut conn, &[&w]).await);
                }
            }
        }
    }
}

async fn apply_batch(conn: &mut SqliteConnection, writes: &[&Write]) -> Result<(), StoreError> {
    use sqlx::Connection;
    // IMMEDIATE: the batch reads (the fence) before it writes; a deferred transaction
    // whose snapshot went stale meanwhile would fail at once instead of waiting its turn.
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
    for w in writes {
        apply_one(&mut tx, w).await?;
    }
    tx.commit().await.map_err(backend)
}

/// The stack exists and `lease` holds its lease.
async fn check_fence(
    conn: &mut SqliteConnection,
    stack: &str,
    lease: &str,
) -> Result<(), StoreError> {
    let holder: Option<Option<String>> =
        sqlx::query_scalar("SELECT json_extract(lease, '$.opId') FROM stacks WHERE name = ?")
            .bind(stack)
            .fetch_optional(&mut *conn)
            .await
            .map_err(backend)?;
    match holder {
        None => Err(StoreError::NoSuchStack(stack.to_owned())),
        Some(Some(h)) if h == lease => Ok(()),
        Some(_) => Err(StoreError::LeaseLost(stack.to_owned())),
    }
}

async fn put_record(
    conn: &mut SqliteConnection,
    stack: &str,
    record: &ResourceRecord,
) -> Result<(), StoreError> {
    let text = serde_json::to_string(record).map_err(json_err)?;
    sqlx::query(
        "INSERT OR REPLACE INTO resources (stack, instance, name, record) VALUES (?, ?, ?, ?)",
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

async fn apply_one(conn: &mut SqliteConnection, w: &Write) -> Result<(), StoreError> {
    let stack = w.stack.as_str();
    check_fence(conn, stack, &w.lease).await?;
    match &w.change {
        Change::JournalBegin { entry_id, entry } => {
            sqlx::query("INSERT INTO journal (stack, op_id, entry) VALUES (?, ?, ?)")
                .bind(stack)
                .bind(entry_id)
                .bind(entry)
                .execute(&mut *conn)
                .await
                .map_err(backend)?;
        }
        Change::JournalComplete { entry_id, change } => {
            sqlx::query("DELETE FROM journal WHERE stack = ? AND op_id = ?")
                .bind(stack)
                .bind(entry_id)
                .execute(&mut *conn)
                .await
                .map_err(backend)?;
            match change {
                StateChange::Upsert { record, retire } => {
                    put_record(conn, stack, record).await?;
                    if let Some(old) = retire {
                        sqlx::query("UPDATE resources SET record = json_set(record, '$.deletePending', json('true')) WHERE stack = ? AND instance = ?")
                            .bind(stack)
                            .bind(old)
                            .execute(&mut *conn)
                            .await
                            .map_err(backend)?;
                    }
                }
                StateChange::Remove { instance } => remove_record(conn, stack, instance).await?,
                StateChange::Nothing => {}
            }
        }
        Change::PutResource { record } => put_record(conn, stack, record).await?,
        Change::RemoveResource { instance } => remove_record(conn, stack, instance).await?,
        Change::SetOutputs { outputs } => {
            sqlx::query("UPDATE stacks SET outputs = ? WHERE name = ?")
                .bind(outputs)
                .bind(stack)
                .execute(&mut *conn)
                .await
                .map_err(backend)?;
        }
    }
    Ok(())
}

async fn remove_record(
    conn: &mut SqliteConnection,
    stack: &str,
    instance: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM resources WHERE stack = ? AND instance = ?")
        .bind(stack)
        .bind(instance)
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
    Ok(())
}

#[async_trait]
impl StateStore for SqliteStore {
    async fn create_stack(
        &self,
        name: &str,
        wrapped_key: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let done = self
            .shared
            .in_turn(Writer::State, || {
                sqlx::query("INSERT INTO stacks (name, wrapped_key, created_at_ms) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING")
                    .bind(name)
                    .bind(wrapped_key)
                    .bind(now_ms)
                    .execute(&self.pool)
            })
            .await
            .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::StackExists(name.to_owned()));
        }
        Ok(())
    }

    async fn remove_stack(&self, name: &str) -> Result<(), StoreError> {
        let done = self
            .shared
            .in_turn(Writer::State, || {
                sqlx::query("DELETE FROM stacks WHERE name = ?")
                    .bind(name)
                    .execute(&self.pool)
            })
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
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        // One read transaction: resources and journal from the same snapshot.
        sqlx::query("BEGIN")
            .execute(&mut *conn)
            .await
            .map_err(backend)?;
        let result = async {
            let stack = sqlx::query(
                "SELECT wrapped_key, created_at_ms, outputs FROM stacks WHERE name = ?",
            )
            .bind(name)
            .fetch_optional(&mut *conn)
            .await
            .map_err(backend)?
            .ok_or_else(|| StoreError::NoSuchStack(name.to_owned()))?;
            let resources: Vec<String> = sqlx::query_scalar(
                "SELECT record FROM resources WHERE stack = ? ORDER BY instance",
            )
            .bind(name)
            .fetch_all(&mut *conn)
            .await
            .map_err(backend)?;
            let journal: Vec<String> =
                sqlx::query_scalar("SELECT entry FROM journal WHERE stack = ? ORDER BY op_id")
                    .bind(name)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(backend)?;
            Ok::<_, StoreError>(StoredStack {
                name: name.to_owned(),
                wrapped_key: stack.get("wrapped_key"),
                created_at_ms: stack.get("created_at_ms"),
                outputs: serde_json::from_str(stack.get::<&str, _>("outputs")).map_err(json_err)?,
                resources: parse_all(&resources)?,
                journal: parse_all(&journal)?,
            })
        }
        .await;
        sqlx::query("COMMIT")
            .execute(&mut *conn)
            .await
            .map_err(backend)?;
        result
    }

    async fn load_outputs(&self, name: &str) -> Result<(String, Sealed), StoreError> {
        let row = sqlx::query("SELECT wrapped_key, outputs FROM stacks WHERE name = ?")
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
        let done = self
            .shared
            .in_turn(Writer::State, || {
                sqlx::query(
                    "UPDATE stacks SET lease = ?, lease_expires_at_ms = ? WHERE name = ? \
                     AND (lease IS NULL OR lease_expires_at_ms <= ? \
                          OR json_extract(lease, '$.opId') = ?)",
                )
                .bind(text.as_str())
                .bind(lease.expires_at_ms)
                .bind(stack)
                .bind(now_ms)
                .bind(replacing.unwrap_or(""))
                .execute(&self.pool)
            })
            .await
            .map_err(backend)?;
        if done.rows_affected() == 1 {
            return Ok(LeaseOutcome::Acquired);
        }
        let held: Option<Option<String>> =
            sqlx::query_scalar("SELECT lease FROM stacks WHERE name = ?")
                .bind(stack)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        match held {
            None => Err(StoreError::NoSuchStack(stack.to_owned())),
            Some(text) => match parse_lease(text)? {
                Some(l) => Ok(LeaseOutcome::Busy(l)),
                // Released in between: try again.
                None => self.acquire_lease(stack, lease, now_ms, replacing).await,
            },
        }
    }

    async fn renew_lease(
        &self,
        stack: &str,
        op_id: &str,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        // Ahead of other waiting writers; the time the lease had left is recorded.
        let (left, done) = self
            .shared
            .in_turn(Writer::Lease, || async {
                let left: Option<Option<i64>> = sqlx::query_scalar(
                    "SELECT lease_expires_at_ms FROM stacks \
                     WHERE name = ? AND json_extract(lease, '$.opId') = ?",
                )
                .bind(stack)
                .bind(op_id)
                .fetch_optional(&self.pool)
                .await?;
                let done = sqlx::query("UPDATE stacks SET lease_expires_at_ms = ? WHERE name = ? AND json_extract(lease, '$.opId') = ?")
                    .bind(expires_at_ms)
                    .bind(stack)
                    .bind(op_id)
                    .execute(&self.pool)
                    .await?;
                Ok::<_, sqlx::Error>((left.flatten(), done))
            })
            .await
            .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::LeaseLost(stack.to_owned()));
        }
        if let Some(at) = left {
            self.shared
                .metrics
                .renewed(LeaseKind::Stack, at - paddock_engine::state::now_ms());
        }
        Ok(())
    }

    async fn release_lease(&self, stack: &str, op_id: &str) -> Result<(), StoreError> {
        self.shared
            .in_turn(Writer::State, || {
                sqlx::query("UPDATE stacks SET lease = NULL, lease_expires_at_ms = NULL WHERE name = ? AND json_extract(lease, '$.opId') = ?")
                    .bind(stack)
                    .bind(op_id)
                    .execute(&self.pool)
            })
            .await
            .map_err(backend)?;
        Ok(())
    }
}
