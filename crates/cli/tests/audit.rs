//! `paddock audit verify --offline` recomputes the audit log's hash chain from the
//! database and finds every kind of tampering — an edited record, an inserted one, one
//! deleted from the middle, the newest ones deleted — on SQLite and on PostgreSQL. The
//! tamperer is assumed to have the database's owner rights: the append-only triggers are
//! dropped first, as such a person could.

use std::process::Command;

use paddock_store::db::{Db, NewAudit};
use paddock_store::testing::{TestDatabase, admin_url};
use sqlx::AssertSqlSafe;

/// A database with a chain of five records; returns its URL (and what keeps it alive).
async fn chain(postgres: bool) -> (String, Option<TestDatabase>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (url, pg) = if postgres {
        let db = TestDatabase::create(&admin_url().unwrap()).await.unwrap();
        (db.url().to_owned(), Some(db))
    } else {
        (
            format!("sqlite://{}", dir.path().join("paddock.db").display()),
            None,
        )
    };
    paddock_store::open(&url).await.unwrap();
    let db = Db::connect(&url).await.unwrap();
    for (i, actor) in ["ada", "bob", "ada", "cyd", "bob"].iter().enumerate() {
        let mut tx = db.write().await.unwrap();
        tx.append_audit(
            &NewAudit {
                actor,
                source: "127.0.0.1",
                action: "environment.create",
                target: &format!("teams/payments/environments/app{i}"),
                team: Some("payments"),
                environment: Some(&format!("app{i}")),
                outcome: "allowed",
                detail: &serde_json::json!({"stages": ["dev"]}),
            },
            1_790_000_000_000 + i as i64,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    (url, pg, dir)
}

async fn tamper(url: &str, postgres: bool, sql: &str) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let untrigger = if postgres {
        "DROP TRIGGER audit_log_append_only ON audit_log"
    } else {
        "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete"
    };
    sqlx::raw_sql(AssertSqlSafe(untrigger.to_owned()))
        .execute(&pool)
        .await
        .unwrap();
    sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

fn verify(url: &str) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .args(["audit", "verify", "--offline", "--database-url", url])
        .env_remove("PADDOCK_DATABASE_URL")
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

async fn detects_every_kind_of_tampering(postgres: bool) {
    if postgres && admin_url().is_none() {
        return;
    }
    let (url, _pg, _dir) = chain(postgres).await;
    let (code, out) = verify(&url);
    assert_eq!(
        (code, out.trim()),
        (0, "The audit log is intact: 5 record(s) chained.")
    );

    let cases = [
        (
            "UPDATE audit_log SET actor = 'mallory' WHERE seq = 2",
            "record 2: its content does not match its hash (edited)",
        ),
        (
            "INSERT INTO audit_log SELECT seq + 100, at, actor, source, action, target, team, \
             environment, outcome, detail, prev_hash, hash FROM audit_log WHERE seq = 3",
            "records 6..102 are missing",
        ),
        (
            "DELETE FROM audit_log WHERE seq = 3",
            "records 3..3 are missing (deleted?)",
        ),
        (
            "DELETE FROM audit_log WHERE seq >= 4",
            "the newest record is 3 but the head says 5",
        ),
    ];
    // Beyond reach: a tamperer who also recomputes every later hash and the head. Only a
    // head kept outside the database (an exported copy) detects that.
    for (sql, expected) in cases {
        let (url, _pg, _dir) = chain(postgres).await;
        tamper(&url, postgres, sql).await;
        let (code, out) = verify(&url);
        assert_eq!(code, 1, "{sql}: {out}");
        assert!(out.contains("BROKEN"), "{sql}: {out}");
        assert!(
            out.contains(expected),
            "{sql}: expected `{expected}` in:\n{out}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_detects_tampering_on_sqlite() {
    detects_every_kind_of_tampering(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_detects_tampering_on_postgres() {
    detects_every_kind_of_tampering(true).await;
}
