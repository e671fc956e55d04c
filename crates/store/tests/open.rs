//! The database is opened the way the durability invariant needs, and migrated once.

mod common;

use common::Kind;
use paddock_store::testing::TestDatabase;
use paddock_store::{PgStore, SqliteStore};

#[tokio::test]
async fn state_database_is_wal_with_full_sync() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("state.db"))
        .await
        .unwrap();
    let (journal_mode, synchronous) = store.pragmas().await.unwrap();
    assert_eq!(journal_mode, "wal");
    assert_eq!(synchronous, 2, "synchronous=FULL: every commit is fsynced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_database_opened_by_many_at_once_is_migrated_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let opens: Vec<_> = (0..8)
        .map(|_| {
            let path = path.clone();
            tokio::spawn(async move { SqliteStore::open(&path).await.map(|_| ()) })
        })
        .collect();
    for open in opens {
        open.await.unwrap().expect("every concurrent open succeeds");
    }
}

/// Several processes (here: sessions of their own) open the same new PostgreSQL database at
/// once: the advisory lock lets one migrate while the others wait. The migration's plain
/// `CREATE TABLE`s would fail if they ran twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_new_database_opened_by_many_at_once_is_migrated_once() {
    let Some(Kind::Postgres(admin)) = Kind::postgres() else {
        return;
    };
    let db = TestDatabase::create(&admin).await.unwrap();
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(8));
    let opens: Vec<_> = (0..8)
        .map(|_| {
            let url = db.url().to_owned();
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                PgStore::connect(&url).await
            })
        })
        .collect();
    let mut stores = Vec::new();
    for open in opens {
        stores.push(open.await.unwrap().expect("every concurrent open succeeds"));
    }
    for store in &stores {
        assert_eq!(
            store.applied_migrations().await.unwrap(),
            (1..=9).collect::<Vec<i64>>()
        );
    }
    // Opening again later finds nothing to do.
    let again = PgStore::connect(db.url()).await.unwrap();
    assert_eq!(
        again.applied_migrations().await.unwrap(),
        (1..=9).collect::<Vec<i64>>()
    );
}

#[tokio::test]
async fn open_picks_the_store_by_url() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.db");
    let prefixed = dir.path().join("prefixed.db");
    paddock_store::open(plain.to_str().unwrap()).await.unwrap();
    paddock_store::open(&format!("sqlite://{}", prefixed.display()))
        .await
        .unwrap();
    assert!(plain.exists() && prefixed.exists());
    let err = paddock_store::open("mysql://root:hunter2@db/state")
        .await
        .err()
        .expect("an unknown scheme is refused");
    assert_eq!(
        err.to_string(),
        "database URL `mysql://root:***@db/state`: expected `postgres://…`, `postgresql://…`, \
         `sqlite://PATH` or a file path"
    );
    // Nothing listens on port 1: the message names the database, not the password.
    let err = paddock_store::open("postgres://paddock:hunter2@127.0.0.1:1/state")
        .await
        .err()
        .expect("no server there");
    let message = err.to_string();
    assert!(
        message.starts_with("database postgres://paddock:***@127.0.0.1:1/state: "),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}
