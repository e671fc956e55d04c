//! People and how they prove who they are: users, API tokens, sessions, sign-in links and
//! sign-ins waiting for an identity provider's answer. Only digests of bearer secrets are
//! stored; the clear value exists once, in the response that hands it out.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, DbError, WriteTx, classify, flag};
use crate::metrics::Writer;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub login: String,
    pub name: String,
    pub email: Option<String>,
    pub platform_admin: bool,
    pub created_at: i64,
}

/// A person to record. `password_hash` is an argon2 PHC string for local accounts;
/// `oidc` is the (issuer, subject) pair of an identity provider's account.
pub struct NewUser<'a> {
    pub id: &'a str,
    pub login: &'a str,
    pub name: &'a str,
    pub email: Option<&'a str>,
    pub platform_admin: bool,
    pub password_hash: Option<&'a str>,
    pub oidc: Option<(&'a str, &'a str)>,
    pub created_at: i64,
}

#[derive(Clone, Debug)]
pub struct ApiToken {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub scope: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

#[derive(Clone, Debug)]
pub struct Session {
    pub user: User,
    pub csrf: String,
    pub expires_at: i64,
}

macro_rules! user_columns {
    () => {
        "id, login, name, email, platform_admin, created_at"
    };
}

pub(super) fn user(row: &AnyRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: row.try_get("id")?,
        login: row.try_get("login")?,
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        platform_admin: row.try_get::<i64, _>("platform_admin")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

fn token(row: &AnyRow) -> Result<ApiToken, sqlx::Error> {
    Ok(ApiToken {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        scope: row.try_get("scope")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}

impl Db {
    pub async fn user_count(&self) -> Result<i64, DbError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(self.pool())
            .await?)
    }

    pub async fn platform_admin_count(&self) -> Result<i64, DbError> {
        Ok(sqlx::query_scalar(PLATFORM_ADMIN_COUNT)
            .fetch_one(self.pool())
            .await?)
    }

    pub async fn users(&self) -> Result<Vec<User>, DbError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users ORDER BY login"
        ))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(user).collect::<Result<_, _>>()?)
    }

    pub async fn user_by_login(&self, login: &str) -> Result<Option<User>, DbError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE login = $1"
        ))
        .bind(login)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(user).transpose()?)
    }

    pub async fn user_by_oidc(&self, issuer: &str, subject: &str) -> Result<Option<User>, DbError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE oidc_issuer = $1 AND oidc_subject = $2"
        ))
        .bind(issuer)
        .bind(subject)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(user).transpose()?)
    }

    /// The user and their password hash, for a local sign-in.
    pub async fn password_of(&self, login: &str) -> Result<Option<(User, String)>, DbError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            ", password_hash FROM users \
             WHERE login = $1 AND password_hash IS NOT NULL"
        ))
        .bind(login)
        .fetch_optional(self.pool())
        .await?;
        match row {
            Some(row) => Ok(Some((user(&row)?, row.try_get("password_hash")?))),
            None => Ok(None),
        }
    }

    /// The owner and the token of a bearer token's digest, whether or not it is still valid
    /// (the caller tells expired from revoked).
    pub async fn token_by_digest(&self, digest: &str) -> Result<Option<(User, ApiToken)>, DbError> {
        let row = sqlx::query(
            "SELECT u.id AS uid, u.login, u.name AS uname, u.email, u.platform_admin, \
             u.created_at AS ucreated, t.* FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.digest = $1",
        )
        .bind(digest)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let owner = User {
            id: row.try_get("uid")?,
            login: row.try_get("login")?,
            name: row.try_get("uname")?,
            email: row.try_get("email")?,
            platform_admin: row.try_get::<i64, _>("platform_admin")? != 0,
            created_at: row.try_get("ucreated")?,
        };
        Ok(Some((owner, token(&row)?)))
    }

    /// Records a token's use, at most once a minute so that reads stay reads: a token
    /// used within the minute (as `token` was read) costs no write at all.
    pub async fn touch_token(&self, token: &ApiToken, now: i64) -> Result<(), DbError> {
        if token.last_used_at.is_some_and(|at| at >= now - 60_000) {
            return Ok(());
        }
        self.write_one(Writer::Platform, || {
            sqlx::query(
                "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1 \
                 AND (last_used_at IS NULL OR last_used_at < $3)",
            )
            .bind(token.id.as_str())
            .bind(now)
            .bind(now - 60_000)
            .execute(&self.pool)
        })
        .await?;
        Ok(())
    }

    pub async fn tokens_of(&self, user_id: &str) -> Result<Vec<ApiToken>, DbError> {
        let rows = sqlx::query("SELECT * FROM api_tokens WHERE user_id = $1 ORDER BY created_at")
            .bind(user_id)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(token).collect::<Result<_, _>>()?)
    }

    pub async fn session(&self, digest: &str, now: i64) -> Result<Option<Session>, DbError> {
        let row = sqlx::query(
            "SELECT u.id, u.login, u.name, u.email, u.platform_admin, u.created_at, \
             s.csrf, s.expires_at FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.digest = $1 AND s.expires_at > $2",
        )
        .bind(digest)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Session {
            user: user(&row)?,
            csrf: row.try_get("csrf")?,
            expires_at: row.try_get("expires_at")?,
        }))
    }
}

const PLATFORM_ADMIN_COUNT: &str = "SELECT COUNT(*) FROM users WHERE platform_admin = 1";

impl WriteTx {
    /// How many platform admins there are, as this transaction sees it.
    pub async fn platform_admin_count(&mut self) -> Result<i64, DbError> {
        Ok(sqlx::query_scalar(PLATFORM_ADMIN_COUNT)
            .fetch_one(&mut *self.tx)
            .await?)
    }

    pub async fn insert_user(&mut self, u: &NewUser<'_>) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO users (id, login, name, email, platform_admin, password_hash, \
             oidc_issuer, oidc_subject, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(u.id)
        .bind(u.login)
        .bind(u.name)
        .bind(u.email)
        .bind(flag(u.platform_admin))
        .bind(u.password_hash)
        .bind(u.oidc.map(|o| o.0))
        .bind(u.oidc.map(|o| o.1))
        .bind(u.created_at)
        .execute(&mut *self.tx)
        .await
        .map_err(classify)?;
        Ok(())
    }

    pub async fn set_platform_admin(
        &mut self,
        user_id: &str,
        admin: bool,
    ) -> Result<bool, DbError> {
        let done = sqlx::query("UPDATE users SET platform_admin = $2 WHERE id = $1")
            .bind(user_id)
            .bind(flag(admin))
            .execute(&mut *self.tx)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn set_password(&mut self, user_id: &str, hash: &str) -> Result<bool, DbError> {
        let done = sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
            .bind(user_id)
            .bind(hash)
            .execute(&mut *self.tx)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn insert_token(&mut self, t: &ApiToken, digest: &str) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO api_tokens (id, user_id, name, digest, scope, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&t.id)
        .bind(&t.user_id)
        .bind(&t.name)
        .bind(digest)
        .bind(&t.scope)
        .bind(t.created_at)
        .bind(t.expires_at)
        .execute(&mut *self.tx)
        .await
        .map_err(classify)?;
        Ok(())
    }

    /// Revokes a token of `user_id`'s; false if they have no such live token.
    pub async fn revoke_token(
        &mut self,
        user_id: &str,
        id: &str,
        now: i64,
    ) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $3 WHERE id = $1 AND user_id = $2 \
             AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(user_id)
        .bind(now)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn insert_session(
        &mut self,
        digest: &str,
        user_id: &str,
        csrf: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO sessions (digest, user_id, csrf, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(digest)
        .bind(user_id)
        .bind(csrf)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *self.tx)
        .await
        .map_err(classify)?;
        // Expired sessions go whenever someone signs in.
        sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(now)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    pub async fn delete_session(&mut self, digest: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM sessions WHERE digest = $1")
            .bind(digest)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    pub async fn insert_sign_in_link(
        &mut self,
        digest: &str,
        user_id: &str,
        expires_at: i64,
    ) -> Result<(), DbError> {
        sqlx::query("INSERT INTO sign_in_links (digest, user_id, expires_at) VALUES ($1, $2, $3)")
            .bind(digest)
            .bind(user_id)
            .bind(expires_at)
            .execute(&mut *self.tx)
            .await
            .map_err(classify)?;
        Ok(())
    }

    /// Uses a sign-in link once: its user if it was unused and unexpired.
    pub async fn use_sign_in_link(
        &mut self,
        digest: &str,
        now: i64,
    ) -> Result<Option<User>, DbError> {
        let done = sqlx::query(
            "UPDATE sign_in_links SET used_at = $2 WHERE digest = $1 AND used_at IS NULL \
             AND expires_at > $2",
        )
        .bind(digest)
        .bind(now)
        .execute(&mut *self.tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = \
             (SELECT user_id FROM sign_in_links WHERE digest = $1)"
        ))
        .bind(digest)
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(Some(user(&row)?))
    }

    pub async fn insert_pending_sign_in(
        &mut self,
        state: &str,
        provider: &str,
        data: &str,
        expires_at: i64,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO pending_sign_ins (state, provider, data, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(state)
        .bind(provider)
        .bind(data)
        .bind(expires_at)
        .execute(&mut *self.tx)
        .await
        .map_err(classify)?;
        Ok(())
    }

    /// Takes a pending sign-in (once): its provider and data.
    pub async fn take_pending_sign_in(
        &mut self,
        state: &str,
        now: i64,
    ) -> Result<Option<(String, String)>, DbError> {
        let row = sqlx::query(
            "SELECT provider, data FROM pending_sign_ins WHERE state = $1 AND expires_at > $2",
        )
        .bind(state)
        .bind(now)
        .fetch_optional(&mut *self.tx)
        .await?;
        sqlx::query("DELETE FROM pending_sign_ins WHERE state = $1 OR expires_at <= $2")
            .bind(state)
            .bind(now)
            .execute(&mut *self.tx)
            .await?;
        Ok(match row {
            Some(row) => Some((row.try_get("provider")?, row.try_get("data")?)),
            None => None,
        })
    }
}
