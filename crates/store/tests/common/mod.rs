//! Each store test runs against SQLite and against PostgreSQL.
#![allow(dead_code)]

use std::sync::Arc;

use paddock_engine::state::StateStore;
use paddock_store::testing::{self, TestDatabase};

/// The store a test runs against.
#[derive(Clone, Debug)]
pub enum Kind {
    Sqlite,
    /// The server's admin URL (`PADDOCK_TEST_DATABASE_URL`).
    Postgres(String),
}

impl Kind {
    /// PostgreSQL if the test server is configured; `None` (the test does nothing) outside
    /// CI when it is not. In CI a missing server fails the test.
    pub fn postgres() -> Option<Kind> {
        testing::admin_url().map(Kind::Postgres)
    }
}

/// A new, empty store, and what keeps it alive.
pub struct Fresh {
    pub store: Arc<dyn StateStore>,
    /// The URL `paddock_store::open` takes for it.
    pub url: String,
    pub db: Option<TestDatabase>,
    pub dir: tempfile::TempDir,
}

pub async fn fresh(kind: &Kind) -> Fresh {
    let dir = tempfile::tempdir().unwrap();
    let (url, db) = match kind {
        Kind::Sqlite => (
            format!("sqlite://{}", dir.path().join("state.db").display()),
            None,
        ),
        Kind::Postgres(admin) => {
            let db = TestDatabase::create(admin).await.unwrap();
            (db.url().to_owned(), Some(db))
        }
    };
    let store = paddock_store::open(&url).await.unwrap();
    Fresh {
        store,
        url,
        db,
        dir,
    }
}

/// Declares `sqlite::NAME` and `postgres::NAME` tests for each `async fn NAME(kind: Kind)`.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::common::Kind::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(kind) = super::common::Kind::postgres() {
                        super::$name(kind).await
                    }
                }
            )*
        }
    };
}
