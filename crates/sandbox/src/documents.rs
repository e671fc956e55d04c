//! The sandbox's persistence: JSON documents by API, kind and key, in SQLite, so that what
//! exists in the sandbox survives a restart.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};

use crate::SandboxError;

#[derive(Clone)]
pub struct Documents {
    pool: SqlitePool,
}

fn db(e: sqlx::Error) -> SandboxError {
    SandboxError::Database(e.to_string())
}

fn parse(body: &str) -> Result<Value, SandboxError> {
    serde_json::from_str(body)
        .map_err(|e| SandboxError::Database(format!("a stored document is not JSON: {e}")))
}

impl Documents {
    pub async fn open(path: &Path) -> Result<Documents, SandboxError> {
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(db)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(db)?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS documents (
                api TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL,
                PRIMARY KEY (api, kind, key)
            ) WITHOUT ROWID",
        )
        .execute(&pool)
        .await
        .map_err(db)?;
        Ok(Documents { pool })
    }

    pub async fn get(
        &self,
        api: &str,
        kind: &str,
        key: &str,
    ) -> Result<Option<Value>, SandboxError> {
        let body: Option<String> =
            sqlx::query_scalar("SELECT body FROM documents WHERE api = ? AND kind = ? AND key = ?")
                .bind(api)
                .bind(kind)
                .bind(key)
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
        body.map(|b| parse(&b)).transpose()
    }

    pub async fn put(
        &self,
        api: &str,
        kind: &str,
        key: &str,
        body: &Value,
    ) -> Result<(), SandboxError> {
        sqlx::query("INSERT OR REPLACE INTO documents (api, kind, key, body) VALUES (?, ?, ?, ?)")
            .bind(api)
            .bind(kind)
            .bind(key)
            .bind(body.to_string())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Inserts unless the key exists; true if inserted.
    pub async fn insert_new(
        &self,
        api: &str,
        kind: &str,
        key: &str,
        body: &Value,
    ) -> Result<bool, SandboxError> {
        let done = sqlx::query("INSERT INTO documents (api, kind, key, body) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING")
            .bind(api)
            .bind(kind)
            .bind(key)
            .bind(body.to_string())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn delete(&self, api: &str, kind: &str, key: &str) -> Result<bool, SandboxError> {
        let done = sqlx::query("DELETE FROM documents WHERE api = ? AND kind = ? AND key = ?")
            .bind(api)
            .bind(kind)
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    /// Documents of a kind whose key starts with `prefix`, by key.
    pub async fn list(
        &self,
        api: &str,
        kind: &str,
        prefix: &str,
    ) -> Result<Vec<(String, Value)>, SandboxError> {
        let rows = sqlx::query("SELECT key, body FROM documents WHERE api = ? AND kind = ? AND substr(key, 1, ?) = ? ORDER BY key")
            .bind(api)
            .bind(kind)
            .bind(prefix.len() as i64)
            .bind(prefix)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.into_iter()
            .map(|r| {
                let body: String = r.get("body");
                Ok((r.get("key"), parse(&body)?))
            })
            .collect()
    }

    /// The documents of a kind whose key starts with `prefix`, by key, without their keys.
    pub async fn values(
        &self,
        api: &str,
        kind: &str,
        prefix: &str,
    ) -> Result<Vec<Value>, SandboxError> {
        Ok(self
            .list(api, kind, prefix)
            .await?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    /// Deletes every document of these kinds whose key starts with `prefix` (what goes
    /// away with its parent).
    pub async fn delete_prefix(
        &self,
        api: &str,
        kinds: &[&str],
        prefix: &str,
    ) -> Result<(), SandboxError> {
        for kind in kinds {
            sqlx::query(
                "DELETE FROM documents WHERE api = ? AND kind = ? AND substr(key, 1, ?) = ?",
            )
            .bind(api)
            .bind(kind)
            .bind(prefix.len() as i64)
            .bind(prefix)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        }
        Ok(())
    }

    /// Every document: `(api, kind, key, body)`, for inspection.
    pub async fn all(&self) -> Result<Vec<(String, String, String, Value)>, SandboxError> {
        let rows =
            sqlx::query("SELECT api, kind, key, body FROM documents ORDER BY api, kind, key")
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        rows.into_iter()
            .map(|r| {
                let body: String = r.get("body");
                Ok((r.get("api"), r.get("kind"), r.get("key"), parse(&body)?))
            })
            .collect()
    }
}
