//! Policy pack versions: numbered from 1, never changed; the newest is enforced.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, DbError, WriteTx, classify};

/// One published version of the policy pack.
#[derive(Clone, Debug)]
pub struct PolicyPackVersion {
    pub version: i64,
    /// `sha256:…` over the files' names and contents.
    pub digest: String,
    /// The files as a JSON object (name → content), as text.
    pub files: String,
    pub description: String,
    /// The login of the platform admin who published it (`system` for the shipped pack).
    pub published_by: String,
    pub published_at: i64,
}

fn version(row: &AnyRow) -> Result<PolicyPackVersion, sqlx::Error> {
    Ok(PolicyPackVersion {
        version: row.try_get("version")?,
        digest: row.try_get("digest")?,
        files: row.try_get("files")?,
        description: row.try_get("description")?,
        published_by: row.try_get("published_by")?,
        published_at: row.try_get("published_at")?,
    })
}

impl Db {
    /// Every version, newest first, without their files.
    pub async fn policy_packs(&self) -> Result<Vec<PolicyPackVersion>, DbError> {
        let rows = sqlx::query(
            "SELECT version, digest, '' AS files, description, published_by, published_at \
             FROM policy_packs ORDER BY version DESC",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(version).collect::<Result<_, _>>()?)
    }

    /// One version, with its files.
    pub async fn policy_pack(&self, number: i64) -> Result<Option<PolicyPackVersion>, DbError> {
        let row = sqlx::query("SELECT * FROM policy_packs WHERE version = $1")
            .bind(number)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.as_ref().map(version).transpose()?)
    }

    /// The number of the version in force (the newest), if any: one cheap query, so each
    /// replica sees a new version at its next decision.
    pub async fn active_policy_pack_version(&self) -> Result<Option<i64>, DbError> {
        Ok(sqlx::query_scalar("SELECT MAX(version) FROM policy_packs")
            .fetch_one(self.pool())
            .await?)
    }
}

impl WriteTx {
    /// The newest version, with its files, as this transaction sees it.
    pub async fn latest_policy_pack(&mut self) -> Result<Option<PolicyPackVersion>, DbError> {
        let row = sqlx::query("SELECT * FROM policy_packs ORDER BY version DESC LIMIT 1")
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(row.as_ref().map(version).transpose()?)
    }

    /// Publishes the next version (the newest + 1) and returns it. Writers are
    /// serialized, so two publishers get two numbers.
    pub async fn publish_policy_pack(
        &mut self,
        digest: &str,
        files: &str,
        description: &str,
        published_by: &str,
        published_at: i64,
    ) -> Result<PolicyPackVersion, DbError> {
        let latest: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM policy_packs")
            .fetch_one(&mut *self.tx)
            .await?;
        let published = PolicyPackVersion {
            version: latest.unwrap_or(0) + 1,
            digest: digest.to_owned(),
            files: files.to_owned(),
            description: description.to_owned(),
            published_by: published_by.to_owned(),
            published_at,
        };
        sqlx::query(
            "INSERT INTO policy_packs (version, digest, files, description, published_by, \
             published_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(published.version)
        .bind(&published.digest)
        .bind(&published.files)
        .bind(&published.description)
        .bind(&published.published_by)
        .bind(published.published_at)
        .execute(&mut *self.tx)
        .await
        .map_err(classify)?;
        Ok(published)
    }
}
