//! The platform server's records (people, teams, blueprints, environments, their expiry
//! and drift, operations, their events, the audit log) on the same database as the engine's state.
//!
//! One query layer for both databases: sqlx's `Any` driver with `$N` placeholders, which
//! SQLite and PostgreSQL both read. Where they differ (taking the write lock, claiming
//! work) the SQL says so in one place each.
//!
//! Invariants: every mutation goes through a [`WriteTx`], which serializes writers (SQLite's
//! `BEGIN IMMEDIATE`, an advisory transaction lock on PostgreSQL) so that the audit chain
//! gets one next link per transaction, and appends its audit record in the same
//! transaction as the change it records. Secrets never reach these tables in clear: tokens,
//! sessions and sign-in links are kept as SHA-256 digests, passwords as argon2 hashes.

mod accounts;
mod approvals;
mod audit;
mod keys;
mod lifecycle;
mod operations;
mod pages;
mod policies;
mod rollouts;
mod teams;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{Any, AnyPool, Executor, Transaction};

use crate::contention::{self, Shared, Turn};
use crate::metrics::{StoreFigures, Writer};

pub use accounts::{ApiToken, NewUser, Session, User};
pub use approvals::{Approval, NewApproval};
pub use audit::{AuditFilter, AuditRecord, AuditVerification, NewAudit};
pub use keys::{KeyRecord, RetireOutcome, Rotation};
pub use lifecycle::{DriftReport, DueExpiry, Expiry, RefreshCandidate};
pub use operations::{Claim, EventRow, NewOperation, Operation, Remembered};
pub use pages::{EnvironmentSummary, LastChange, StatusCount};
pub use policies::PolicyPackVersion;
pub use rollouts::{Rollout, RolloutTarget};
pub use teams::{BlueprintVersion, Environment, Member, NewEnvironment, Team};

/// A failed query, sorted into what callers act on.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A row with the same key exists (a unique constraint).
    #[error("already exists: {0}")]
    Conflict(String),
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
}

fn classify(e: sqlx::Error) -> DbError {
    match &e {
        sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::UniqueViolation => {
            DbError::Conflict(db.message().to_owned())
        }
        _ => DbError::Sqlx(e),
    }
}

/// Which database the URL named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The advisory lock that serializes platform writes on PostgreSQL ("audit" in ASCII).
const WRITE_LOCK: i64 = 0x0061_7564_6974;

/// The platform records on one database.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// The write gate and figures every handle on this database in this process shares.
    shared: Arc<Shared>,
}

impl Db {
    /// Connects to the database `url` names (as [`crate::open`] reads it). The schema must
    /// exist: open the state store first, which migrates.
    pub async fn connect(url: &str) -> Result<Db, crate::Error> {
        install_default_drivers();
        let (url, backend, shared) =
            if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                (url.to_owned(), Backend::Postgres, contention::postgres(url))
            } else {
                let path = crate::sqlite_path(url)?;
                (
                    format!("sqlite://{path}"),
                    Backend::Sqlite,
                    contention::sqlite(std::path::Path::new(path)),
                )
            };
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 8 })
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(crate::sqlite::CONNECTION_PRAGMAS).await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|source| crate::Error::Open {
                url: crate::redact_url(&url),
                source,
            })?;
        Ok(Db {
            pool,
            backend,
            shared,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Starts a mutation: writers are serialized until it commits or is dropped (rolled
    /// back). This process's writers take turns first (see [`crate::contention`]), so a
    /// writer waits without holding a connection.
    ///
    /// While it is open, read through the transaction (`WriteTx`'s own reads), never
    /// through `Db`: a read through the pool does not see the transaction's writes.
    pub async fn write(&self) -> Result<WriteTx, DbError> {
        let turn = self.shared.turn(Writer::Platform).await;
        let asked = Instant::now();
        let tx = self
            .shared
            .retry_busy(&mut || async {
                match self.backend {
                    Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
                    Backend::Postgres => {
                        let mut tx = self.pool.begin().await?;
                        sqlx::query("SELECT pg_advisory_xact_lock($1)")
                            .bind(WRITE_LOCK)
                            .execute(&mut *tx)
                            .await?;
                        Ok::<_, sqlx::Error>(tx)
                    }
                }
            })
            .await?;
        self.shared.metrics.acquired(asked.elapsed());
        Ok(WriteTx { tx, _turn: turn })
    }

    /// One write statement outside a transaction, in this process's turn on SQLite
    /// (retried while another process holds the database busy); as it is on PostgreSQL,
    /// whose row locks suffice.
    pub(crate) async fn write_one<T, F, Fut>(&self, writer: Writer, write: F) -> Result<T, DbError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let mut write = write;
        Ok(match self.backend {
            Backend::Sqlite => self.shared.in_turn(writer, write).await?,
            Backend::Postgres => write().await?,
        })
    }

    /// The pool, for reads. A read from a task that holds the write turn is counted and
    /// logged: it reads around its own transaction.
    pub(crate) fn pool(&self) -> &AnyPool {
        if self.shared.held_by_this_task() {
            self.shared.metrics.read_under_write_lock();
            tracing::error!(
                backtrace = %std::backtrace::Backtrace::force_capture(),
                "a read through the pool while this task holds the write lock: read through \
                 its WriteTx instead"
            );
        }
        &self.pool
    }

    /// How this process's writers of this database have fared (see [`crate::metrics`]).
    pub fn store_figures(&self) -> StoreFigures {
        self.shared.metrics.figures()
    }
}

/// A mutation in progress. Dropped without [`WriteTx::commit`], nothing is written.
pub struct WriteTx {
    // Declared first: rolled back (or committed) before the turn passes on.
    tx: Transaction<'static, Any>,
    _turn: Turn,
}

impl WriteTx {
    pub async fn commit(self) -> Result<(), DbError> {
        let WriteTx { tx, _turn } = self;
        tx.commit().await.map_err(classify)
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

fn flag(v: bool) -> i64 {
    i64::from(v)
}
