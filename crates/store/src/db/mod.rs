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

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{Any, AnyPool, Executor, Transaction};

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
}

impl Db {
    /// Connects to the database `url` names (as [`crate::open`] reads it). The schema must
    /// exist: open the state store first, which migrates.
    pub async fn connect(url: &str) -> Result<Db, crate::Error> {
        install_default_drivers();
        let (url, backend) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (url.to_owned(), Backend::Postgres)
        } else {
            (
                format!("sqlite://{}", crate::sqlite_path(url)?),
                Backend::Sqlite,
            )
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 8 })
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(
                            "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
                             PRAGMA synchronous = FULL;",
                        )
                        .await?;
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
        Ok(Db { pool, backend })
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
    /// back).
    pub async fn write(&self) -> Result<WriteTx, DbError> {
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(WRITE_LOCK)
                    .execute(&mut *tx)
                    .await?;
                tx
            }
        };
        Ok(WriteTx { tx })
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

/// A mutation in progress. Dropped without [`WriteTx::commit`], nothing is written.
pub struct WriteTx {
    tx: Transaction<'static, Any>,
}

impl WriteTx {
    pub async fn commit(self) -> Result<(), DbError> {
        self.tx.commit().await.map_err(classify)
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
