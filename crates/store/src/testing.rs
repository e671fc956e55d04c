//! Scratch PostgreSQL databases for tests: this crate's and the CLI's run the same
//! specifications against SQLite and against PostgreSQL.
//!
//! `PADDOCK_TEST_DATABASE_URL` is the URL of a server and a role that may create databases
//! (`./scripts/test` starts one and sets it). Each test creates its own database from it
//! and drops it when done, so tests stay independent and can run in parallel.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

use crate::{Error, redact_url};

/// The variable naming the test server.
pub const DATABASE_URL_VAR: &str = "PADDOCK_TEST_DATABASE_URL";

/// The test server's URL; `None` when it is not set and this is not CI. In CI
/// (`CI=true`) the PostgreSQL variants must run, so a missing URL fails them.
pub fn admin_url() -> Option<String> {
    match std::env::var(DATABASE_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => panic!(
            "{DATABASE_URL_VAR} is not set, and CI=true: the PostgreSQL tests must run in CI \
             (./scripts/test starts a server and sets it)"
        ),
        _ => {
            eprintln!("{DATABASE_URL_VAR} is not set: not running this test on PostgreSQL");
            None
        }
    }
}

/// A fresh database, dropped (with its connections) when this is dropped.
pub struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates `paddock_test_<pid>_<time>_<n>` on the server `admin_url` names.
    pub async fn create(admin_url: &str) -> Result<TestDatabase, Error> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let name = format!(
            "paddock_test_{}_{nanos:x}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = admin_connection(admin_url).await?;
        admin
            .execute(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .await
            .map_err(|source| open_error(admin_url, source))?;
        let _ = admin.close().await;
        Ok(TestDatabase {
            url: with_database(admin_url, &name),
            admin_url: admin_url.to_owned(),
            name,
        })
    }

    /// The URL of this database (the admin URL with its database replaced).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every row of every table of the database, as PostgreSQL renders rows as text: what
    /// a test checks to see that nothing is stored in clear.
    pub async fn dump(&self) -> Result<Vec<u8>, Error> {
        let err = |source| open_error(&self.url, source);
        let mut conn = PgConnection::connect(&self.url).await.map_err(err)?;
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) \
             FROM information_schema.tables \
             WHERE table_type = 'BASE TABLE' \
             AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
        )
        .fetch_all(&mut conn)
        .await
        .map_err(err)?;
        let mut bytes = Vec::new();
        for table in tables {
            let rows: Vec<String> =
                sqlx::query_scalar(AssertSqlSafe(format!("SELECT t::text FROM {table} t")))
                    .fetch_all(&mut conn)
                    .await
                    .map_err(err)?;
            for row in rows {
                bytes.extend(row.into_bytes());
                bytes.push(b'\n');
            }
        }
        let _ = conn.close().await;
        Ok(bytes)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop may run inside the test's runtime (which must not block on itself) or
        // while a panic unwinds: a thread of its own, with its own runtime, does the work.
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut admin = admin_connection(&admin_url)
                    .await
                    .map_err(|e| e.to_string())?;
                admin
                    .execute(AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = admin.close().await;
                Ok::<_, String>(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop test database {}: {e}", self.name),
            Err(_) => eprintln!("could not drop test database {}", self.name),
        }
    }
}

async fn admin_connection(admin_url: &str) -> Result<PgConnection, Error> {
    PgConnection::connect(admin_url)
        .await
        .map_err(|source| open_error(admin_url, source))
}

fn open_error(url: &str, source: sqlx::Error) -> Error {
    Error::Open {
        url: redact_url(url),
        source,
    }
}

/// `url` naming database `name` instead of its own: the path after the host is replaced,
/// the parameters kept.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.find('?') {
        Some(i) => url.split_at(i),
        None => (url, ""),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    format!("{}/{name}{query}", &base[..path_start])
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn a_url_names_another_database() {
        assert_eq!(
            with_database("postgres://u:p@127.0.0.1:5432/postgres", "t1"),
            "postgres://u:p@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgres://u@localhost?sslmode=disable", "t1"),
            "postgres://u@localhost/t1?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres:///postgres?host=/tmp/pg", "t1"),
            "postgres:///t1?host=/tmp/pg"
        );
    }
}

/// Secrets a test planted (a name for the report, the value), looked for wherever they
/// must never appear in clear: logs, database files, responses, events.
#[derive(Clone, Debug, Default)]
pub struct Planted(Vec<(String, String)>);

impl Planted {
    pub fn new() -> Planted {
        Planted::default()
    }

    /// Plants `value` under `name`; an empty value is refused (it is found everywhere).
    pub fn plant(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let value = value.into();
        assert!(!value.is_empty(), "an empty secret cannot be looked for");
        self.0.push((name.into(), value));
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Each planted secret, as (name, value), in planting order.
    pub fn iter(&self) -> impl Iterator<Item = &(String, String)> {
        self.0.iter()
    }

    /// The names of the secrets `haystack` shows in clear, each once, in planting order:
    /// one pass over the haystack, however many secrets (a soak's logs are large).
    pub fn found_in(&self, haystack: &[u8]) -> Vec<String> {
        let Ok(finder) = aho_corasick::AhoCorasick::new(self.0.iter().map(|(_, v)| v)) else {
            panic!("the planted secrets make a searcher");
        };
        let mut found = vec![false; self.0.len()];
        for m in finder.find_overlapping_iter(haystack) {
            found[m.pattern().as_usize()] = true;
        }
        self.0
            .iter()
            .zip(found)
            .filter(|(_, hit)| *hit)
            .map(|((name, _), _)| name.clone())
            .collect()
    }
}

/// The bytes of a SQLite database as stored: every file in `dir` whose name starts with
/// `name` (the database, its `-wal` and `-shm`).
pub fn sqlite_files(dir: &std::path::Path, name: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().starts_with(name) {
            bytes.extend(std::fs::read(entry.path()).unwrap_or_default());
        }
    }
    bytes
}
