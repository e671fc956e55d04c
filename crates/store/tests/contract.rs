//! The `StateStore` contract, the same on SQLite and on PostgreSQL: stacks, fenced writes,
//! leases, the journal completed atomically with the resource write, sealed values kept as
//! given.

mod common;

use common::{Kind, fresh};
use paddock_engine::secrets::Sealed;
use paddock_engine::state::{
    Fence, Holder, JournalEntry, JournalKind, Lease, LeaseOutcome, ResourceRecord, StateChange,
    StoreError, now_ms,
};

on_both_stores!(
    stacks_are_created_once_and_removed_with_everything_recorded,
    writes_apply_only_while_their_operation_holds_the_lease,
    a_lease_is_acquired_renewed_taken_over_and_released,
    completing_a_journal_entry_writes_its_effect_atomically,
    sealed_values_come_back_exactly_as_given,
    concurrent_writes_are_each_applied_or_refused_alone,
    records_from_before_ownership_marks_are_destroyed_on_the_states_word,
);

fn lease(op: &str, now: i64, ttl_ms: i64) -> Lease {
    Lease {
        op_id: op.into(),
        operation: "up".into(),
        holder: Holder {
            user: "alice".into(),
            host: "build-agent-7".into(),
            pid: 4242,
        },
        acquired_at_ms: now,
        expires_at_ms: now + ttl_ms,
    }
}

fn fence<'a>(stack: &'a str, op_id: &'a str) -> Fence<'a> {
    Fence { stack, op_id }
}

fn sealed(json: &str) -> Sealed {
    serde_json::from_str(json).unwrap()
}

fn record(instance: &str, name: &str) -> ResourceRecord {
    ResourceRecord {
        instance: instance.into(),
        name: name.into(),
        ty: "test:resource".into(),
        id: format!("obj-{instance}"),
        inputs: sealed(r#"{"name":"a","size":3}"#),
        outputs: sealed(r#"{"id":"x"}"#),
        dependencies: vec![],
        options: Default::default(),
        delete_pending: false,
        accepted: None,
        imported: false,
        unmarked: false,
    }
}

fn entry(op_id: &str, name: &str) -> JournalEntry {
    JournalEntry {
        op_id: op_id.into(),
        kind: JournalKind::Create,
        name: name.into(),
        ty: "test:resource".into(),
        instance: format!("i-{op_id}"),
        id: None,
        inputs: sealed(r#"{"name":"a"}"#),
        dependencies: vec![],
        options: Default::default(),
        replaces: None,
        started_at_ms: 1,
    }
}

/// A stack `dev` whose lease `op` holds.
async fn leased(store: &dyn paddock_engine::state::StateStore, op: &str) {
    let now = now_ms();
    store.create_stack("dev", "wrapped", now).await.unwrap();
    let outcome = store
        .acquire_lease("dev", &lease(op, now, 60_000), now, None)
        .await
        .unwrap();
    assert!(matches!(outcome, LeaseOutcome::Acquired));
}

async fn stacks_are_created_once_and_removed_with_everything_recorded(kind: Kind) {
    let s = fresh(&kind).await;
    let store = s.store.as_ref();
    leased(store, "op-a").await;
    assert!(matches!(
        store.create_stack("dev", "other", 2).await,
        Err(StoreError::StackExists(name)) if name == "dev"
    ));
    store.create_stack("alpha", "k", 3).await.unwrap();
    store
        .put_resource(fence("dev", "op-a"), &record("i1", "a"))
        .await
        .unwrap();
    store
        .journal_begin(fence("dev", "op-a"), &entry("e1", "b"))
        .await
        .unwrap();
    let stacks = store.list_stacks().await.unwrap();
    let names: Vec<&str> = stacks.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["alpha", "dev"]);
    assert_eq!((stacks[1].resources, stacks[1].pending), (1, 1));
    assert_eq!(stacks[1].lease.as_ref().unwrap().op_id, "op-a");
    assert!(stacks[0].lease.is_none());
    let loaded = store.load("dev").await.unwrap();
    assert_eq!(loaded.wrapped_key, "wrapped");

    store.remove_stack("dev").await.unwrap();
    assert!(matches!(
        store.load("dev").await,
        Err(StoreError::NoSuchStack(_))
    ));
    assert!(matches!(
        store.remove_stack("dev").await,
        Err(StoreError::NoSuchStack(_))
    ));
    // Recreated, it starts empty: its resources and journal went with it.
    store.create_stack("dev", "again", 4).await.unwrap();
    let loaded = store.load("dev").await.unwrap();
    assert!(loaded.resources.is_empty() && loaded.journal.is_empty());
    assert!(matches!(
        store.load_outputs("nope").await,
        Err(StoreError::NoSuchStack(_))
    ));
}

async fn writes_apply_only_while_their_operation_holds_the_lease(kind: Kind) {
    let s = fresh(&kind).await;
    let store = s.store.as_ref();
    leased(store, "op-a").await;
    store
        .journal_begin(fence("dev", "op-a"), &entry("e1", "a"))
        .await
        .unwrap();
    // op-a's lease expires and op-b takes it over.
    let later = now_ms() + 120_000;
    let outcome = store
        .acquire_lease("dev", &lease("op-b", later, 60_000), later, None)
        .await
        .unwrap();
    assert!(matches!(outcome, LeaseOutcome::Acquired));

    let lost = |r: Result<(), StoreError>| {
        assert!(
            matches!(r, Err(StoreError::LeaseLost(ref s)) if s == "dev"),
            "{r:?}"
        )
    };
    let a = fence("dev", "op-a");
    lost(store.journal_begin(a, &entry("e2", "b")).await);
    lost(
        store
            .journal_complete(
                a,
                "e1",
                StateChange::Upsert {
                    record: Box::new(record("i-e1", "a")),
                    retire: None,
                },
            )
            .await,
    );
    lost(store.put_resource(a, &record("i9", "z")).await);
    lost(store.remove_resource(a, "i9").await);
    lost(store.set_outputs(a, &sealed(r#"{"x":1}"#)).await);
    // None of them changed anything.
    let loaded = store.load("dev").await.unwrap();
    assert!(loaded.resources.is_empty());
    assert_eq!(loaded.journal.len(), 1);
    assert_eq!(serde_json::to_string(&loaded.outputs).unwrap(), "{}");
    // The new holder writes; a stack that does not exist is said so.
    store
        .journal_complete(fence("dev", "op-b"), "e1", StateChange::Nothing)
        .await
        .unwrap();
    assert!(store.load("dev").await.unwrap().journal.is_empty());
    assert!(matches!(
        store.put_resource(fence("nope", "op-b"), &record("i1", "a")).await,
        Err(StoreError::NoSuchStack(s)) if s == "nope"
    ));
    // Without any lease, nobody writes.
    store.release_lease("dev", "op-b").await.unwrap();
    lost(
        store
            .put_resource(fence("dev", "op-b"), &record("i1", "a"))
            .await,
    );
}

async fn a_lease_is_acquired_renewed_taken_over_and_released(kind: Kind) {
    let s = fresh(&kind).await;
    let store = s.store.as_ref();
    let now = now_ms();
    assert!(matches!(
        store
            .acquire_lease("nope", &lease("op-a", now, 1_000), now, None)
            .await,
        Err(StoreError::NoSuchStack(_))
    ));
    leased(store, "op-a").await;
    // Busy: the answer says who holds it.
    match store
        .acquire_lease("dev", &lease("op-b", now, 60_000), now, None)
        .await
        .unwrap()
    {
        LeaseOutcome::Busy(held) => assert_eq!(held, lease("op-a", held.acquired_at_ms, 60_000)),
        LeaseOutcome::Acquired => panic!("the lease is held"),
    }
    store
        .renew_lease("dev", "op-a", now + 90_000)
        .await
        .unwrap();
    assert!(matches!(
        store.renew_lease("dev", "op-b", now + 90_000).await,
        Err(StoreError::LeaseLost(_))
    ));
    // Renewed, it is still held where it would have expired.
    let at_first_expiry = now + 70_000;
    assert!(matches!(
        store
            .acquire_lease(
                "dev",
                &lease("op-b", at_first_expiry, 60_000),
                at_first_expiry,
                None
            )
            .await
            .unwrap(),
        LeaseOutcome::Busy(_)
    ));
    // Its holder is known to be dead: taken over at once.
    assert!(matches!(
        store
            .acquire_lease("dev", &lease("op-b", now, 60_000), now, Some("op-a"))
            .await
            .unwrap(),
        LeaseOutcome::Acquired
    ));
    assert!(matches!(
        store.renew_lease("dev", "op-a", now + 90_000).await,
        Err(StoreError::LeaseLost(_))
    ));
    // Releasing someone else's lease does nothing; releasing one's own frees the stack.
    store.release_lease("dev", "op-a").await.unwrap();
    let held = store.list_stacks().await.unwrap()[0].lease.clone();
    assert_eq!(held.map(|l| l.op_id).as_deref(), Some("op-b"));
    store.release_lease("dev", "op-b").await.unwrap();
    assert!(store.list_stacks().await.unwrap()[0].lease.is_none());
    assert!(matches!(
        store
            .acquire_lease("dev", &lease("op-c", now, 60_000), now, None)
            .await
            .unwrap(),
        LeaseOutcome::Acquired
    ));
    // An expired lease is not listed, and is taken by the next operation.
    let later = now + 61_000;
    store.renew_lease("dev", "op-c", now + 1).await.unwrap();
    assert!(store.list_stacks().await.unwrap()[0].lease.is_none());
    assert!(matches!(
        store
            .acquire_lease("dev", &lease("op-d", later, 60_000), later, None)
            .await
            .unwrap(),
        LeaseOutcome::Acquired
    ));
}

async fn completing_a_journal_entry_writes_its_effect_atomically(kind: Kind) {
    let s = fresh(&kind).await;
    let store = s.store.as_ref();
    leased(store, "op").await;
    let f = fence("dev", "op");
    store.put_resource(f, &record("old", "a")).await.unwrap();
    store.put_resource(f, &record("gone", "b")).await.unwrap();
    // Create-before-delete: the new instance is written and the old one retired.
    store.journal_begin(f, &entry("e1", "a")).await.unwrap();
    store.journal_begin(f, &entry("e2", "b")).await.unwrap();
    assert!(
        store.journal_begin(f, &entry("e1", "a")).await.is_err(),
        "an entry is begun once"
    );
    assert_eq!(store.load("dev").await.unwrap().journal.len(), 2);
    store
        .journal_complete(
            f,
            "e1",
            StateChange::Upsert {
                record: Box::new(record("new", "a")),
                retire: Some("old".into()),
            },
        )
        .await
        .unwrap();
    store
        .journal_complete(
            f,
            "e2",
            StateChange::Remove {
                instance: "gone".into(),
            },
        )
        .await
        .unwrap();
    let loaded = store.load("dev").await.unwrap();
    assert!(loaded.journal.is_empty());
    let summary: Vec<(&str, &str, bool)> = loaded
        .resources
        .iter()
        .map(|r| (r.instance.as_str(), r.name.as_str(), r.delete_pending))
        .collect();
    assert_eq!(summary, [("new", "a", false), ("old", "a", true)]);
    // A resource written again is replaced, not duplicated; removed, it is gone.
    let mut updated = record("new", "a");
    updated.id = "obj-updated".into();
    store.put_resource(f, &updated).await.unwrap();
    store.remove_resource(f, "old").await.unwrap();
    let loaded = store.load("dev").await.unwrap();
    assert_eq!(loaded.resources.len(), 1);
    assert_eq!(loaded.resources[0].id, "obj-updated");
}

async fn sealed_values_come_back_exactly_as_given(kind: Kind) {
    let s = fresh(&kind).await;
    let store = s.store.as_ref();
    leased(store, "op").await;
    let f = fence("dev", "op");
    let secret = r#"{"$secret":"bm9uY2UrY2lwaGVydGV4dA=="}"#;
    let mut r = record("i1", "db");
    r.inputs = sealed(&format!(
        r#"{{"name":"db","password":{secret},"n":1.5,"big":9007199254740993,"u":"é\u0000"}}"#
    ));
    r.outputs = sealed(&format!(r#"{{"list":[{secret},null,true]}}"#));
    r.dependencies = vec!["net".into()];
    r.delete_pending = false;
    store.put_resource(f, &r).await.unwrap();
    let outputs = sealed(&format!(r#"{{"token":{secret}}}"#));
    store.set_outputs(f, &outputs).await.unwrap();
    store
        .journal_complete(
            f,
            "none",
            StateChange::Upsert {
                record: Box::new(record("i2", "other")),
                retire: Some("i1".into()),
            },
        )
        .await
        .unwrap();

    let loaded = store.load("dev").await.unwrap();
    let back = loaded
        .resources
        .iter()
        .find(|x| x.instance == "i1")
        .unwrap();
    let mut expected = r.clone();
    expected.delete_pending = true;
    assert_eq!(
        serde_json::to_string(back).unwrap(),
        serde_json::to_string(&expected).unwrap(),
        "retiring rewrote nothing but deletePending"
    );
    let (key, stored_outputs) = store.load_outputs("dev").await.unwrap();
    assert_eq!(key, "wrapped");
    assert_eq!(
        serde_json::to_string(&stored_outputs).unwrap(),
        serde_json::to_string(&outputs).unwrap()
    );
}

async fn concurrent_writes_are_each_applied_or_refused_alone(kind: Kind) {
    let s = fresh(&kind).await;
    let store = s.store.clone();
    leased(store.as_ref(), "op").await;
    store.create_stack("other", "k", 1).await.unwrap();
    // 100 journal entries at once (group-committed), among them a duplicate and a write
    // under a lease nobody holds: those two alone fail.
    let mut writes = Vec::new();
    for i in 0..100 {
        let store = store.clone();
        writes.push(tokio::spawn(async move {
            let e = entry(&format!("e{i:03}"), "r");
            store.journal_begin(fence("dev", "op"), &e).await
        }));
    }
    let duplicate = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .journal_begin(fence("dev", "op"), &entry("e000", "r"))
                .await
        })
    };
    let unleased = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .journal_begin(fence("other", "op"), &entry("x", "r"))
                .await
        })
    };
    let mut failed = 0;
    for w in writes {
        failed += usize::from(w.await.unwrap().is_err());
    }
    failed += usize::from(duplicate.await.unwrap().is_err());
    assert!(matches!(
        unleased.await.unwrap(),
        Err(StoreError::LeaseLost(_))
    ));
    assert_eq!(failed, 1, "one of the two e000 fails");
    let loaded = store.load("dev").await.unwrap();
    assert_eq!(loaded.journal.len(), 100);
    assert!(store.load("other").await.unwrap().journal.is_empty());
}

/// A database from before ownership marks is upgraded: every record it held says its
/// object may carry no mark (so destroy deletes it on the state's word, as it did then),
/// except those imported, which never needed one.
async fn records_from_before_ownership_marks_are_destroyed_on_the_states_word(kind: Kind) {
    let s = fresh(&kind).await;
    let store = s.store.as_ref();
    leased(store, "op-a").await;
    let made = record("i1", "made");
    let imported = ResourceRecord {
        imported: true,
        ..record("i2", "imported")
    };
    for r in [&made, &imported] {
        store.put_resource(fence("dev", "op-a"), r).await.unwrap();
    }
    let fresh_records = store.load("dev").await.unwrap().resources;
    assert!(
        fresh_records.iter().all(|r| !r.unmarked),
        "written now: marked"
    );

    // The same database as it was before migration 9, opened by the new version.
    sqlx::any::install_default_drivers();
    let raw = sqlx::AnyPool::connect(&s.url).await.unwrap();
    sqlx::query("DELETE FROM schema_migrations WHERE version = 9")
        .execute(&raw)
        .await
        .unwrap();
    raw.close().await;
    let upgraded = paddock_store::open(&s.url).await.unwrap();
    let mut records = upgraded.load("dev").await.unwrap().resources;
    records.sort_by(|a, b| a.name.cmp(&b.name));
    let flags: Vec<(&str, bool, bool)> = records
        .iter()
        .map(|r| (r.name.as_str(), r.imported, r.unmarked))
        .collect();
    assert_eq!(flags, [("imported", true, false), ("made", false, true)]);
    assert_eq!(
        serde_json::to_value(&records[1].inputs).unwrap(),
        serde_json::to_value(&made.inputs).unwrap(),
        "the rest of the record is as it was"
    );
}
