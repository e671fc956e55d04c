//! `paddock key` as an operator uses it, on SQLite and on PostgreSQL: a workspace made with
//! a single-key file (the format before key rings) is rotated to a new key — interrupted
//! after one batch, then resumed — its old key retired (refused while it still wraps a data
//! key) and removed from the ring, and every secret reads the same afterwards. A wrong or
//! missing key gives an error naming the key and the file.

use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use paddock_engine::keyring::LEGACY_ID;
use paddock_engine::secrets::LocalKeyFile;
use paddock_engine::{Engine, EngineOptions, ProviderRegistry};
use paddock_store::testing::{TestDatabase, admin_url};
use serde_json::Value;

const DEMO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/demo/blueprint.yaml"
);

struct Workspace {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    database_url: Option<String>,
    _pg: Option<TestDatabase>,
}

impl Workspace {
    async fn new(postgres: bool) -> Option<Workspace> {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        let (database_url, pg) = if postgres {
            let db = TestDatabase::create(&admin_url()?).await.unwrap();
            (Some(db.url().to_owned()), Some(db))
        } else {
            (None, None)
        };
        Some(Workspace {
            _tmp: tmp,
            dir,
            database_url,
            _pg: pg,
        })
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_paddock"));
        cmd.args(args)
            .env("PADDOCK_STATE_DIR", &self.dir)
            .env_remove("PADDOCK_KEY_FILE")
            .env_remove("PADDOCK_STACK")
            .env_remove("PADDOCK_TEST_FAIL")
            .env_remove("PADDOCK_TEST_LATENCY_MS")
            .env_remove("PADDOCK_TEST_CLOUD")
            .stdin(Stdio::null());
        match &self.database_url {
            Some(url) => cmd.env("PADDOCK_DATABASE_URL", url),
            None => cmd.env_remove("PADDOCK_DATABASE_URL"),
        };
        cmd.output().unwrap()
    }

    fn ring(&self) -> std::path::PathBuf {
        self.dir.join("master.key")
    }

    fn url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.dir.join("state.db").display()))
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[track_caller]
fn ok(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

#[track_caller]
fn refused(o: &Output, code: i32) -> String {
    assert_eq!(
        o.status.code(),
        Some(code),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stderr)
}

/// The keys `key list` shows, as (id, data keys, primary): `k0` first, then by id (the
/// databases sort ids by different collations).
fn data_keys(ws: &Workspace) -> Vec<(String, u64, bool)> {
    let listed: Value = serde_json::from_str(&ok(&ws.run(&["key", "list", "--json"]))).unwrap();
    let mut keys: Vec<(String, u64, bool)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["id"].as_str().unwrap().to_owned(),
                k["dataKeys"].as_u64().unwrap(),
                k["primary"].as_bool().unwrap(),
            )
        })
        .collect();
    keys.sort_by_key(|k| (k.0 != LEGACY_ID, k.0.clone()));
    keys
}

/// A stack made by the engine with the single-key file itself, as Paddock did before key
/// rings: its data key is wrapped with no key id.
async fn legacy_stack(ws: &Workspace) {
    std::fs::create_dir_all(&ws.dir).unwrap();
    let key = LocalKeyFile::open_or_create(&ws.ring()).unwrap();
    let store = paddock_store::open(&ws.url()).await.unwrap();
    let engine = Engine::new(
        store,
        ProviderRegistry::new(),
        Arc::new(key),
        EngineOptions::default(),
    );
    engine.init_stack("legacy").await.unwrap();
}

fn secret(ws: &Workspace) -> String {
    ok(&ws.run(&[
        "stack",
        "output",
        "-s",
        "demo",
        "clusterToken",
        "--show-secrets",
    ]))
    .trim()
    .to_owned()
}

async fn a_single_key_workspace_rotates_retires_and_reads_the_same(postgres: bool) {
    let Some(ws) = Workspace::new(postgres).await else {
        return;
    };
    legacy_stack(&ws).await;
    ok(&ws.run(&["up", "--yes", "-s", "demo", "-f", DEMO]));
    let token = secret(&ws);
    assert_eq!(token.len(), 32);
    let mut printed = String::new();

    let list = ok(&ws.run(&["key", "list"]));
    assert!(list.contains("KEY") && list.contains("DATA KEYS"), "{list}");
    assert_eq!(data_keys(&ws), vec![(LEGACY_ID.to_owned(), 2, true)]);
    let primary = refused(&ws.run(&["key", "retire", LEGACY_ID]), 2);
    assert!(primary.contains("is the primary key"), "{primary}");

    // Interrupted after one batch of one data key.
    let first = ws.run(&["key", "rotate", "--batch-size", "1", "--max-batches", "1"]);
    let out = ok(&first);
    printed += &out;
    printed += &text(&first.stderr);
    assert!(out.contains("Made key k-"), "{out}");
    assert!(out.contains("Stopped: 1 data key(s) re-wrapped"), "{out}");
    assert!(out.contains("1 left"), "{out}");
    assert!(text(&first.stderr).contains("re-wrapped 1/2 data key(s)"));
    let keys = data_keys(&ws);
    let new = keys.iter().find(|k| k.0 != LEGACY_ID).unwrap().0.clone();
    assert_eq!(
        keys,
        vec![(LEGACY_ID.to_owned(), 1, false), (new.clone(), 1, true)]
    );
    assert_eq!(secret(&ws), token, "readable midway");
    let still = refused(&ws.run(&["key", "retire", LEGACY_ID]), 2);
    assert!(still.contains("still wraps 1 data key(s)"), "{still}");

    // Resumed: the same rotation, to its end.
    let second = ws.run(&["key", "rotate"]);
    let out = ok(&second);
    printed += &out;
    printed += &text(&second.stderr);
    assert!(
        out.contains(&format!("Resumed the rotation to key {new} (1 data key(s)")),
        "{out}"
    );
    assert!(
        out.contains(&format!("Rotated to key {new}: 1 data key(s) re-wrapped")),
        "{out}"
    );
    assert_eq!(
        data_keys(&ws),
        vec![(LEGACY_ID.to_owned(), 0, false), (new.clone(), 2, true)]
    );

    // The old key retired and removed from the ring: everything reads the same.
    let retired = ok(&ws.run(&["key", "retire", LEGACY_ID]));
    printed += &retired;
    assert!(retired.contains("Retired key k0"), "{retired}");
    let ring = std::fs::read_to_string(ws.ring()).unwrap();
    assert!(!ring.lines().any(|l| l.starts_with("k0 ")), "{ring}");
    assert_eq!(secret(&ws), token);
    let again = ok(&ws.run(&["up", "--yes", "-s", "demo", "-f", DEMO]));
    assert!(again.contains("No changes."), "{again}");
    let list = ok(&ws.run(&["key", "list"]));
    printed += &list;
    assert!(list.contains("retired"), "{list}");
    assert!(
        !printed.contains(&token),
        "a secret in the key commands' output"
    );
    let material = ring
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .nth(2)
        .unwrap();
    assert!(!printed.contains(material), "key material in the output");

    // A wrong key under the same id: the error says so, naming the key and the file.
    let swapped = ring.replace(material, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    std::fs::write(ws.ring(), &swapped).unwrap();
    let wrong = refused(
        &ws.run(&["stack", "output", "-s", "demo", "--show-secrets"]),
        1,
    );
    assert!(
        wrong.contains(&format!("master key `{new}`")) && wrong.contains("does not open"),
        "{wrong}"
    );
    assert!(wrong.contains(&ws.ring().display().to_string()), "{wrong}");

    // No ring at all: a new one is made, which lacks the key the data needs.
    std::fs::remove_file(ws.ring()).unwrap();
    let missing = refused(
        &ws.run(&["stack", "output", "-s", "demo", "--show-secrets"]),
        1,
    );
    assert!(
        missing.contains(&format!("wrapped by master key `{new}`"))
            && missing.contains("does not hold")
            && missing.contains(&ws.ring().display().to_string()),
        "{missing}"
    );
    assert!(!missing.contains(&token));
}

/// A ring key added beforehand (`key add`) is the one `rotate` moves to; rotating again
/// with nothing new added makes a key of its own.
async fn rotate_uses_the_key_added_beforehand(postgres: bool) {
    let Some(ws) = Workspace::new(postgres).await else {
        return;
    };
    ok(&ws.run(&["up", "--yes", "-s", "demo", "-f", DEMO]));
    let token = secret(&ws);
    let added = ok(&ws.run(&["key", "add", "--json"]));
    let added: Value = serde_json::from_str(&added).unwrap();
    let id = added["id"].as_str().unwrap().to_owned();
    let listed = ok(&ws.run(&["key", "list"]));
    assert!(
        listed.contains(&id) && listed.contains("unused"),
        "{listed}"
    );
    let rotated: Value = serde_json::from_str(&ok(&ws.run(&["key", "rotate", "--json"]))).unwrap();
    assert_eq!(rotated["toKey"], id.as_str());
    assert_eq!(rotated["generated"], false);
    assert_eq!(rotated["finished"], true);
    assert_eq!(rotated["rewrapped"], 1);
    assert_eq!(secret(&ws), token);
    let unknown = refused(&ws.run(&["key", "rotate", "--to", "k-nowhere"]), 2);
    assert!(
        unknown.contains("`k-nowhere` is not in the key ring"),
        "{unknown}"
    );
}

fn tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

mod sqlite {
    #[test]
    fn a_single_key_workspace_rotates_retires_and_reads_the_same() {
        super::tokio()
            .block_on(super::a_single_key_workspace_rotates_retires_and_reads_the_same(false));
    }

    #[test]
    fn rotate_uses_the_key_added_beforehand() {
        super::tokio().block_on(super::rotate_uses_the_key_added_beforehand(false));
    }
}

mod postgres {
    #[test]
    fn a_single_key_workspace_rotates_retires_and_reads_the_same() {
        super::tokio()
            .block_on(super::a_single_key_workspace_rotates_retires_and_reads_the_same(true));
    }

    #[test]
    fn rotate_uses_the_key_added_beforehand() {
        super::tokio().block_on(super::rotate_uses_the_key_added_beforehand(true));
    }
}
