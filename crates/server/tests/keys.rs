//! Key rotation under a running server: the master key ring gains a key, every data key is
//! re-wrapped under it (interrupted midway, then resumed) while people keep reading their
//! environments' secrets, the old key is retired and removed from the ring, and everything
//! stays readable. A replica whose ring lags names the key it lacks and where to add it.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::{Auth, Backend, Rig};
use paddock_engine::keyring::KeyRing;
use paddock_engine::{Engine, EngineOptions, ProviderRegistry};
use paddock_store::db::Db;
use paddock_store::keyring::{self, DbKeyRing, KeyError, KeyStatus, RotateOptions};
use serde_json::{Value, json};

on_both_databases!(secrets_stay_readable_while_the_keys_of_a_running_server_rotate);

fn key<'a>(keys: &'a [KeyStatus], id: &str) -> &'a KeyStatus {
    keys.iter()
        .find(|k| k.id == id)
        .unwrap_or_else(|| panic!("no key {id} in {keys:?}"))
}

/// Every stack's outputs, read through an engine whose master key is `ring` over `db`.
async fn read_every_stack(rig: &Rig, ring: &std::path::Path, db: &Db) -> Result<usize, String> {
    let key = DbKeyRing::new(Arc::new(KeyRing::open_or_create(ring).unwrap()), db.clone());
    let store = paddock_store::open(&rig.db_url).await.unwrap();
    let engine = Engine::new(
        store,
        ProviderRegistry::new(),
        Arc::new(key),
        EngineOptions::default(),
    );
    let stacks = engine.list_stacks().await.unwrap();
    for s in &stacks {
        engine.outputs(&s.name).await.map_err(|e| e.to_string())?;
    }
    Ok(stacks.len())
}

async fn secrets_stay_readable_while_the_keys_of_a_running_server_rotate(backend: Backend) {
    let rig = Rig::start(backend).await;
    let ada = rig.person("ada").await;
    rig.team("payments", &[("ada", "admin")]).await;
    let token = rig
        .post(&ada, "/api/v1/me/tokens", json!({"name": "reader"}))
        .await
        .expect(201)
        .body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let op = rig
        .post(
            &Auth::Token(token.clone()),
            "/api/v1/teams/payments/environments",
            json!({"name": "checkout", "stages": ["dev"]}),
        )
        .await
        .expect(202);
    rig.succeeds(&op.body).await;
    let outputs = format!(
        "{}/api/v1/teams/payments/environments/checkout/outputs?reveal=true",
        rig.url
    );
    let read = {
        let http = rig.http.clone();
        let outputs = outputs.clone();
        let token = token.clone();
        move || {
            let (http, outputs, token) = (http.clone(), outputs.clone(), token.clone());
            async move {
                let reply = http.get(&outputs).bearer_auth(&token).send().await.unwrap();
                let status = reply.status().as_u16();
                let body: Value = reply.json().await.unwrap();
                (status, body["stacks"].clone())
            }
        }
    };
    let (status, revealed) = read().await;
    assert_eq!(status, 200, "{revealed}");
    assert!(
        revealed.as_array().is_some_and(|s| s.len() >= 2),
        "the environment's stacks and their outputs: {revealed}"
    );

    // The operator's side: the ring file the server reads, and the database.
    let ring_path = rig.dir.path().join("data/master.key");
    let ring = KeyRing::open_or_create(&ring_path).unwrap();
    let db = Db::connect(&rig.db_url).await.unwrap();
    let keys = keyring::list(&ring, &db).await.unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let old = keys[0].id.clone();
    let stacks = keys[0].data_keys;
    assert!(keys[0].primary && stacks >= 3, "{keys:?}");

    // A replica whose copy of the ring was made before the new key.
    let lagging = rig.dir.path().join("lagging.key");
    std::fs::copy(&ring_path, &lagging).unwrap();
    std::fs::set_permissions(&lagging, std::fs::Permissions::from_mode(0o600)).unwrap();

    // Step 1: a new key in the ring, not used yet.
    let new = ring.add().unwrap().id;
    let keys = keyring::list(&ring, &db).await.unwrap();
    assert!(!key(&keys, &new).primary && key(&keys, &new).data_keys == 0);
    assert!(matches!(
        keyring::retire(&ring, &db, &old, true).await,
        Err(KeyError::Primary { .. })
    ));

    // People keep reading their secrets from here to the end.
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let reader = tokio::spawn({
        let (stop, reads, read, revealed) =
            (stop.clone(), reads.clone(), read.clone(), revealed.clone());
        async move {
            while !stop.load(Ordering::SeqCst) {
                let (status, stacks) = read().await;
                assert_eq!(status, 200, "a read during rotation failed: {stacks}");
                assert_eq!(stacks, revealed, "secrets changed during rotation");
                reads.fetch_add(1, Ordering::SeqCst);
            }
        }
    });

    // Step 2, interrupted: two batches of one data key, then the run stops.
    let mut batches = 0;
    let options = RotateOptions {
        to: None,
        batch_size: 1,
    };
    let first = keyring::rotate(&ring, &db, &options, |_, _| {
        batches += 1;
        batches < 2
    })
    .await
    .unwrap();
    assert_eq!(first.start.to_key, new, "the key added beforehand is used");
    assert!(!first.start.generated && !first.finished);
    assert_eq!((first.rewrapped as u64, first.left), (2, stacks - 2));
    let keys = keyring::list(&ring, &db).await.unwrap();
    assert!(key(&keys, &new).primary);
    assert_eq!(key(&keys, &new).data_keys, 2);
    assert_eq!(key(&keys, &old).data_keys, stacks - 2);
    assert!(matches!(
        keyring::retire(&ring, &db, &old, true).await,
        Err(KeyError::StillWraps { count, .. }) if count == stacks - 2
    ));

    // Midway, the server creates stacks: their data keys are wrapped by the new primary,
    // which its own ring (opened before the key existed) picks up from the file.
    let op = rig
        .post(
            &Auth::Token(token.clone()),
            "/api/v1/teams/payments/environments",
            json!({"name": "billing", "stages": ["dev"]}),
        )
        .await
        .expect(202);
    rig.succeeds(&op.body).await;
    let keys = keyring::list(&ring, &db).await.unwrap();
    let created = key(&keys, &new).data_keys - 2;
    assert!(created >= 2, "billing's stacks under the new key: {keys:?}");
    assert_eq!(key(&keys, &old).data_keys, stacks - 2);

    // The lagging replica names the key it lacks and the file to add it to.
    let err = read_every_stack(&rig, &lagging, &db).await.unwrap_err();
    assert!(
        err.contains(&format!("`{new}`")) && err.contains(&lagging.display().to_string()),
        "{err}"
    );

    // Step 2, resumed: the same rotation, to the end.
    let second = keyring::rotate(&ring, &db, &options, |_, _| true)
        .await
        .unwrap();
    assert_eq!(second.start.to_key, new);
    assert_eq!(second.start.resumed_after, Some(2));
    assert!(second.finished, "{second:?}");
    assert_eq!((second.rewrapped as u64, second.left), (stacks - 2, 0));

    // Step 3: the old key retired and gone from the ring; everything still reads.
    assert!(keyring::retire(&ring, &db, &old, true).await.unwrap());
    assert!(!std::fs::read_to_string(&ring_path).unwrap().contains(&old));
    let keys = keyring::list(&ring, &db).await.unwrap();
    assert!(key(&keys, &old).retired && !key(&keys, &old).in_ring);
    assert_eq!(key(&keys, &new).data_keys, stacks + created);
    assert_eq!(
        read_every_stack(&rig, &ring_path, &db).await.unwrap() as u64,
        stacks + created
    );

    stop.store(true, Ordering::SeqCst);
    reader.await.unwrap();
    let during = reads.load(Ordering::SeqCst);
    assert!(during > 0, "the server was read during the rotation");
    eprintln!("{during} reads of revealed secrets during the rotation, all identical");
    let (status, after) = read().await;
    assert_eq!((status, &after), (200, &revealed));
    rig.stop().await;
}
