//! The database is opened the way the durability invariant needs.

use paddock_store::SqliteStore;

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
