//! Paddock's database.
//!
//! Job: durable storage for the engine's [`StateStore`] contract — stacks, resources, the
//! journal, leases — on SQLite (embedded, WAL mode, `synchronous=FULL`).
//!
//! Invariants: every trait method is one transaction; journal writes are durable (fsynced)
//! when they return. Concurrent journal writes are group-committed — one transaction and
//! one fsync for all the writes waiting at that moment — so parallel steps do not queue
//! behind each other's fsyncs.
//!
//! Must not: interpret values (they arrive sealed from the engine) or call providers.

mod sqlite;

pub use sqlite::SqliteStore;

/// Errors opening or migrating a database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error("database migration {version} failed: {source}")]
    Migration { version: i64, source: sqlx::Error },
}
