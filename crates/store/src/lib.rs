//! Paddock's database.
//!
//! Job: durable storage for the engine's [`StateStore`] contract — stacks, resources, the
//! journal, leases — on SQLite (embedded, WAL mode, `synchronous=FULL`) or on PostgreSQL.
//! [`open`] picks one by URL.
//!
//! Invariants: every trait method is one transaction; journal writes are durable (fsynced)
//! when they return. Concurrent journal writes are group-committed — one transaction and
//! one fsync for all the writes waiting at that moment — so parallel steps do not queue
//! behind each other's fsyncs. Every write is fenced: it checks, in its own transaction,
//! that its operation still holds the stack's lease. Migrations are embedded and run on
//! open, once, however many processes open a new database at the same time.
//!
//! Must not: interpret values (they arrive sealed from the engine) or call providers.

mod contention;
pub mod db;
pub mod keyring;
pub mod metrics;
mod postgres;
mod sqlite;
pub mod testing;
mod write;

use std::path::Path;
use std::sync::Arc;

use paddock_engine::state::StateStore;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Errors opening or migrating a database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error("database migration {version} failed: {source}")]
    Migration { version: i64, source: sqlx::Error },
    #[error(
        "database URL `{0}`: expected `postgres://…`, `postgresql://…`, `sqlite://PATH` or a file path"
    )]
    Url(String),
}

/// Opens the state store a URL names, running its migrations:
///
/// - `postgres://user:password@host:port/database?sslmode=…` (or `postgresql://`): PostgreSQL;
/// - `sqlite://PATH`, `sqlite:PATH` or a plain path: SQLite, created if missing.
pub async fn open(url: &str) -> Result<Arc<dyn StateStore>, Error> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(PgStore::connect(url).await?));
    }
    Ok(Arc::new(
        SqliteStore::open(Path::new(sqlite_path(url)?)).await?,
    ))
}

/// The file a SQLite URL (`sqlite://PATH`, `sqlite:PATH` or a plain path) names.
pub(crate) fn sqlite_path(url: &str) -> Result<&str, Error> {
    let path = match url.strip_prefix("sqlite:") {
        Some(rest) => rest.strip_prefix("//").unwrap_or(rest),
        None if url.contains("://") => return Err(Error::Url(redact_url(url))),
        None => url,
    };
    // What follows `?` would be sqlx options, which the stores set themselves.
    if path.is_empty() || path.contains('?') {
        return Err(Error::Url(redact_url(url)));
    }
    Ok(path)
}

/// The URL with its password (in the user part or a `password=` parameter) masked, for
/// messages.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let authority_start = scheme_end + 3;
        let authority_end = out[authority_start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| authority_start + i);
        let authority = &out[authority_start..authority_end];
        if let Some(at) = authority.rfind('@')
            && let Some(colon) = authority[..at].find(':')
        {
            out.replace_range(authority_start + colon + 1..authority_start + at, "***");
        }
    }
    if let Some(query_start) = out.find('?') {
        let query: Vec<String> = out[query_start + 1..]
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out.replace_range(query_start + 1.., &query.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_masked_in_urls() {
        assert_eq!(
            redact_url("postgres://paddock:s3cr@t@db:5432/state?sslmode=require"),
            "postgres://paddock:***@db:5432/state?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://db/state?user=p&password=hunter2"),
            "postgres://db/state?user=p&password=***"
        );
        assert_eq!(redact_url("postgres://p@db/x"), "postgres://p@db/x");
        assert_eq!(redact_url("/var/lib/state.db"), "/var/lib/state.db");
    }
}
