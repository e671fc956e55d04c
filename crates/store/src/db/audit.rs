//! The audit log: append-only and hash-chained.
//!
//! Each record's hash is SHA-256 over the previous record's hash and the record's own
//! fields in a fixed encoding; `audit_head` holds the newest sequence number and hash,
//! written in the same transaction. [`Db::verify_audit`] recomputes the chain: an edited
//! row breaks its own hash, an inserted or deleted row breaks the sequence or the next
//! row's link, and deleting the newest rows leaves a head that no row matches. Both
//! databases refuse `UPDATE` and `DELETE` on the table by trigger.

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, DbError, WriteTx, classify};

/// The hash before the first record.
pub const GENESIS: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// What happened, to record.
#[derive(Clone, Debug)]
pub struct NewAudit<'a> {
    /// The person (login) or `system`.
    pub actor: &'a str,
    /// The client's address, or `internal`.
    pub source: &'a str,
    /// What was done, e.g. `environment.create`.
    pub action: &'a str,
    /// What it was done to, e.g. `teams/payments/environments/checkout`.
    pub target: &'a str,
    pub team: Option<&'a str>,
    pub environment: Option<&'a str>,
    /// `allowed`, `denied` or `failed`.
    pub outcome: &'a str,
    /// The change, secrets already redacted.
    pub detail: &'a serde_json::Value,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub source: String,
    pub action: String,
    pub target: String,
    pub team: Option<String>,
    pub environment: Option<String>,
    pub outcome: String,
    pub detail: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

/// Which records to list.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub team: Option<String>,
    pub environment: Option<String>,
    pub actor: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Records after this sequence number (paging).
    pub after: Option<i64>,
    pub limit: i64,
}

/// The result of checking the chain.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditVerification {
    pub records: i64,
    pub head: Option<i64>,
    /// Each break found, naming the record.
    pub problems: Vec<String>,
}

impl AuditVerification {
    pub fn intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The link: `sha256:` over the previous hash and the fields, one per line, JSON-encoded
/// (so no field can pass for another).
fn link(prev: &str, r: &AuditRecord) -> String {
    let fields = serde_json::json!([
        r.seq,
        r.at,
        r.actor,
        r.source,
        r.action,
        r.target,
        r.team,
        r.environment,
        r.outcome,
        r.detail
    ]);
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(fields.to_string().as_bytes());
    let digest = h.finalize();
    let mut out = String::from("sha256:");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

pub(super) fn record(row: &AnyRow) -> Result<AuditRecord, DbError> {
    let detail: String = row.try_get("detail")?;
    Ok(AuditRecord {
        seq: row.try_get("seq")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        source: row.try_get("source")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        team: row.try_get("team")?,
        environment: row.try_get("environment")?,
        outcome: row.try_get("outcome")?,
        detail: serde_json::from_str(&detail)
            .map_err(|e| DbError::Corrupt(format!("audit record detail: {e}")))?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

impl WriteTx {
    /// Appends a record as the chain's next link; returns its sequence number.
    pub async fn append_audit(&mut self, a: &NewAudit<'_>, at: i64) -> Result<i64, DbError> {
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_optional(&mut *self.tx)
            .await?;
        let (seq, prev) = match head {
            Some(row) => (row.try_get::<i64, _>("seq")? + 1, row.try_get("hash")?),
            None => (1, GENESIS.to_owned()),
        };
        let mut r = AuditRecord {
            seq,
            at,
            actor: a.actor.to_owned(),
            source: a.source.to_owned(),
            action: a.action.to_owned(),
            target: a.target.to_owned(),
            team: a.team.map(str::to_owned),
            environment: a.environment.map(str::to_owned),
            outcome: a.outcome.to_owned(),
            detail: a.detail.clone(),
            prev_hash: prev,
            hash: String::new(),
        };
        r.hash = link(&r.prev_hash, &r);
        sqlx::query(
            "INSERT INTO audit_log (seq, at, actor, source, action, target, team, environment, \
             outcome, detail, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(r.seq)
        .bind(r.at)
        .bind(&r.actor)
        .bind(&r.source)
        .bind(&r.action)
        .bind(&r.target)
        .bind(&r.team)
        .bind(&r.environment)
        .bind(&r.outcome)
        .bind(r.detail.to_string())
        .bind(&r.prev_hash)
        .bind(&r.hash)
        .execute(&mut *self.tx)
        .await
        .map_err(classify)?;
        sqlx::query(
            "INSERT INTO audit_head (id, seq, hash) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        )
        .bind(r.seq)
        .bind(&r.hash)
        .execute(&mut *self.tx)
        .await?;
        Ok(seq)
    }
}

impl Db {
    pub async fn audit(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>, DbError> {
        let rows = sqlx::query(
            "SELECT * FROM audit_log WHERE ($1 IS NULL OR team = $1) \
             AND ($2 IS NULL OR environment = $2) AND ($3 IS NULL OR actor = $3) \
             AND ($4 IS NULL OR at >= $4) AND ($5 IS NULL OR at < $5) \
             AND ($6 IS NULL OR seq > $6) ORDER BY seq LIMIT $7",
        )
        .bind(f.team.as_deref())
        .bind(f.environment.as_deref())
        .bind(f.actor.as_deref())
        .bind(f.since)
        .bind(f.until)
        .bind(f.after)
        .bind(f.limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(record).collect()
    }

    /// Recomputes the whole chain, in pages, and reports every break.
    pub async fn verify_audit(&self) -> Result<AuditVerification, DbError> {
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_optional(self.pool())
            .await?;
        let head: Option<(i64, String)> = match head {
            Some(row) => Some((row.try_get("seq")?, row.try_get("hash")?)),
            None => None,
        };
        let mut problems = Vec::new();
        let mut prev_hash = GENESIS.to_owned();
        let mut expected_seq = 1;
        let mut records = 0;
        let mut last: Option<(i64, String)> = None;
        loop {
            let rows =
                sqlx::query("SELECT * FROM audit_log WHERE seq >= $1 ORDER BY seq LIMIT 1000")
                    .bind(expected_seq)
                    .fetch_all(self.pool())
                    .await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                records += 1;
                let r = match record(row) {
                    Ok(r) => r,
                    Err(e) => {
                        let seq: i64 = row.try_get("seq")?;
                        problems.push(format!("record {seq}: unreadable ({e})"));
                        expected_seq = seq + 1;
                        continue;
                    }
                };
                if r.seq != expected_seq {
                    problems.push(format!(
                        "records {expected_seq}..{} are missing (deleted?)",
                        r.seq - 1
                    ));
                }
                if r.prev_hash != prev_hash {
                    problems.push(format!(
                        "record {}: its link to the previous record is broken (a record \
                         before it was changed, inserted or deleted)",
                        r.seq
                    ));
                }
                if link(&r.prev_hash, &r) != r.hash {
                    problems.push(format!(
                        "record {}: its content does not match its hash (edited)",
                        r.seq
                    ));
                }
                prev_hash = r.hash.clone();
                expected_seq = r.seq + 1;
                last = Some((r.seq, r.hash));
            }
        }
        match (&head, &last) {
            (None, None) => {}
            (Some((seq, _)), None) => {
                problems.push(format!("the log is empty but its head says record {seq}"))
            }
            (None, Some((seq, _))) => {
                problems.push(format!("the log has records up to {seq} but no head"))
            }
            (Some((hs, hh)), Some((ls, lh))) => {
                if hs != ls || hh != lh {
                    problems.push(format!(
                        "the newest record is {ls} but the head says {hs}: records were \
                         deleted from the end or the head was changed"
                    ));
                }
            }
        }
        Ok(AuditVerification {
            records,
            head: head.map(|h| h.0),
            problems,
        })
    }
}
