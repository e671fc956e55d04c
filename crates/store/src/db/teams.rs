//! Teams and their members, published blueprint versions, and environments.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, DbError, WriteTx, classify};

#[derive(Clone, Debug)]
pub struct Team {
    pub name: String,
    pub description: String,
    pub created_at: i64,
    pub created_by: String,
}

/// A member of a team, with their role there (`admin`, `contributor` or `reader`).
#[derive(Clone, Debug)]
pub struct Member {
    pub user_id: String,
    pub login: String,
    pub name: String,
    pub role: String,
}

#[derive(Clone, Debug)]
pub struct BlueprintVersion {
    pub name: String,
    pub version: String,
    pub digest: String,
    pub description: String,
    /// The parameters' schema, as JSON text.
    pub parameters: String,
    pub published_at: i64,
    /// The source files (path → YAML text) as JSON text: what renders this version.
    pub sources: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Environment {
    pub id: String,
    pub team: String,
    pub name: String,
    pub blueprint: String,
    pub blueprint_version: String,
    /// Parameter values, as JSON text.
    pub parameters: String,
    pub status: String,
    pub created_at: i64,
    pub created_by: String,
    pub updated_at: i64,
    /// The blueprint version fleet rollouts keep it on, if pinned.
    pub pinned_version: Option<String>,
}

pub type NewEnvironment = Environment;

fn team(row: &AnyRow) -> Result<Team, sqlx::Error> {
    Ok(Team {
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
    })
}

fn blueprint(row: &AnyRow) -> Result<BlueprintVersion, sqlx::Error> {
    Ok(BlueprintVersion {
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        digest: row.try_get("digest")?,
        description: row.try_get("description")?,
        parameters: row.try_get("parameters")?,
        published_at: row.try_get("published_at")?,
        sources: row.try_get("sources")?,
    })
}

pub(super) fn environment(row: &AnyRow) -> Result<Environment, sqlx::Error> {
    Ok(Environment {
        id: row.try_get("id")?,
        team: row.try_get("team")?,
        name: row.try_get("name")?,
        blueprint: row.try_get("blueprint")?,
        blueprint_version: row.try_get("blueprint_version")?,
        parameters: row.try_get("parameters")?,
        status: row.try_get("status")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
        updated_at: row.try_get("updated_at")?,
        pinned_version: row.try_get("pinned_version")?,
    })
}

impl Db {
    pub async fn teams(&self) -> Result<Vec<Team>, DbError> {
        let rows = sqlx::query("SELECT * FROM teams ORDER BY name")
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(team).collect::<Result<_, _>>()?)
    }

    pub async fn team(&self, name: &str) -> Result<Option<Team>, DbError> {
        let row = sqlx::query("SELECT * FROM teams WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.as_ref().map(team).transpose()?)
    }

    pub async fn members(&self, team: &str) -> Result<Vec<Member>, DbError> {
        let rows = sqlx::query(
            "SELECT m.user_id, u.login, u.name, m.role FROM team_members m \
             JOIN users u ON u.id = m.user_id WHERE m.team = $1 ORDER BY u.login",
        )
        .bind(team)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Member {
                    user_id: row.try_get("user_id")?,
                    login: row.try_get("login")?,
                    name: row.try_get("name")?,
                    role: row.try_get("role")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DbError::from)
    }

    /// Every team's members, by team then login: one query for a list of all teams
    /// (a query per team made `GET /teams` cost a round trip per team).
    pub async fn all_members(&self) -> Result<Vec<(String, Member)>, DbError> {
        let rows = sqlx::query(
            "SELECT m.team, m.user_id, u.login, u.name, m.role FROM team_members m \
             JOIN users u ON u.id = m.user_id ORDER BY m.team, u.login",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("team")?,
                    Member {
                        user_id: row.try_get("user_id")?,
                        login: row.try_get("login")?,
                        name: row.try_get("name")?,
                        role: row.try_get("role")?,
                    },
                ))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DbError::from)
    }

    /// Every team a user belongs to, with their role there.
    pub async fn memberships(&self, user_id: &str) -> Result<Vec<(String, String)>, DbError> {
        let rows = sqlx::query("SELECT team, role FROM team_members WHERE user_id = $1")
            .bind(user_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("team")?, row.try_get("role")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DbError::from)
    }

    pub async fn blueprints(&self) -> Result<Vec<BlueprintVersion>, DbError> {
        let rows = sqlx::query("SELECT * FROM blueprints ORDER BY name, published_at")
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(blueprint).collect::<Result<_, _>>()?)
    }

    /// The published versions of a blueprint, without their contents.
    pub async fn blueprint_versions(&self, name: &str) -> Result<Vec<String>, DbError> {
        Ok(
            sqlx::query_scalar("SELECT version FROM blueprints WHERE name = $1")
                .bind(name)
                .fetch_all(self.pool())
                .await?,
        )
    }

    pub async fn blueprint(
        &self,
        name: &str,
        version: &str,
    ) -> Result<Option<BlueprintVersion>, DbError> {
        let row = sqlx::query("SELECT * FROM blueprints WHERE name = $1 AND version = $2")
            .bind(name)
            .bind(version)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.as_ref().map(blueprint).transpose()?)
    }

    pub async fn environments(&self, team: Option<&str>) -> Result<Vec<Environment>, DbError> {
        let rows = sqlx::query(
            "SELECT * FROM environments WHERE ($1 IS NULL OR team = $1) ORDER BY team, name",
        )
        .bind(team)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(environment).collect::<Result<_, _>>()?)
    }

    pub async fn environment(
        &self,
        team: &str,
        name: &str,
    ) -> Result<Option<Environment>, DbError> {
        let row = sqlx::query(ENVIRONMENT_BY_NAME)
            .bind(team)
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.as_ref().map(environment).transpose()?)
    }

    pub async fn environment_by_id(&self, id: &str) -> Result<Option<Environment>, DbError> {
        let row = sqlx::query(ENVIRONMENT_BY_ID)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.as_ref().map(environment).transpose()?)
    }
}

const ENVIRONMENT_BY_NAME: &str = "SELECT * FROM environments WHERE team = $1 AND name = $2";
const ENVIRONMENT_BY_ID: &str = "SELECT * FROM environments WHERE id = $1";

/// Reads under the write lock, as this transaction sees them.
impl WriteTx {
    pub async fn environment(
        &mut self,
        team: &str,
        name: &str,
    ) -> Result<Option<Environment>, DbError> {
        let row = sqlx::query(ENVIRONMENT_BY_NAME)
            .bind(team)
            .bind(name)
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(row.as_ref().map(environment).transpose()?)
    }

    pub async fn environment_by_id(&mut self, id: &str) -> Result<Option<Environment>, DbError> {
        let row = sqlx::query(ENVIRONMENT_BY_ID)
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(row.as_ref().map(environment).transpose()?)
    }
}

impl WriteTx {
    pub async fn insert_team(&mut self, t: &Team) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO teams (name, description, created_at, created_by) VALUES ($1, $2, $3, $4)",
        )
        .bind(&t.name)
        .bind(&t.description)
        .bind(t.created_at)
        .bind(&t.created_by)
        .execute(&mut *self.tx)
        .await
        .map_err(classify)?;
        Ok(())
    }

    /// Sets a member's role (adding them); returns their previous role.
    pub async fn set_member(
        &mut self,
        team: &str,
        user_id: &str,
        role: &str,
    ) -> Result<Option<String>, DbError> {
        let before: Option<String> =
            sqlx::query_scalar("SELECT role FROM team_members WHERE team = $1 AND user_id = $2")
                .bind(team)
                .bind(user_id)
                .fetch_optional(&mut *self.tx)
                .await?;
        sqlx::query(
            "INSERT INTO team_members (team, user_id, role) VALUES ($1, $2, $3) \
             ON CONFLICT (team, user_id) DO UPDATE SET role = excluded.role",
        )
        .bind(team)
        .bind(user_id)
        .bind(role)
        .execute(&mut *self.tx)
        .await?;
        Ok(before)
    }

    /// How many admins the team has besides `user_id`, as this transaction sees it.
    pub async fn other_admins(&mut self, team: &str, user_id: &str) -> Result<i64, DbError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM team_members WHERE team = $1 AND role = 'admin' AND user_id <> $2",
        )
        .bind(team)
        .bind(user_id)
        .fetch_one(&mut *self.tx)
        .await?)
    }

    /// Removes a member; returns the role they had.
    pub async fn remove_member(
        &mut self,
        team: &str,
        user_id: &str,
    ) -> Result<Option<String>, DbError> {
        let before: Option<String> =
            sqlx::query_scalar("SELECT role FROM team_members WHERE team = $1 AND user_id = $2")
                .bind(team)
                .bind(user_id)
                .fetch_optional(&mut *self.tx)
                .await?;
        sqlx::query("DELETE FROM team_members WHERE team = $1 AND user_id = $2")
            .bind(team)
            .bind(user_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(before)
    }

    /// Publishes a blueprint version. Versions are immutable: publishing the same version
    /// with the same digest is a no-op (false); with another digest, a conflict.
    pub async fn publish_blueprint(&mut self, b: &BlueprintVersion) -> Result<bool, DbError> {
        let digest: Option<String> =
            sqlx::query_scalar("SELECT digest FROM blueprints WHERE name = $1 AND version = $2")
                .bind(&b.name)
                .bind(&b.version)
                .fetch_optional(&mut *self.tx)
                .await?;
        match digest {
            Some(d) if d == b.digest => {
                // Rows published before versions kept their sources get them now.
                if b.sources.is_some() {
                    sqlx::query(
                        "UPDATE blueprints SET sources = $3 WHERE name = $1 AND version = $2 \
                         AND sources IS NULL",
                    )
                    .bind(&b.name)
                    .bind(&b.version)
                    .bind(&b.sources)
                    .execute(&mut *self.tx)
                    .await?;
                }
                Ok(false)
            }
            Some(d) => Err(DbError::Conflict(format!(
                "blueprint {}@{} is published with digest {d}; a published version never \
                 changes: give the new content a new version",
                b.name, b.version
            ))),
            None => {
                sqlx::query(
                    "INSERT INTO blueprints (name, version, digest, description, parameters, \
                     published_at, sources) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&b.name)
                .bind(&b.version)
                .bind(&b.digest)
                .bind(&b.description)
                .bind(&b.parameters)
                .bind(b.published_at)
                .bind(&b.sources)
                .execute(&mut *self.tx)
                .await
                .map_err(classify)?;
                Ok(true)
            }
        }
    }

    pub async fn insert_environment(&mut self, e: &Environment) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO environments (id, team, name, blueprint, blueprint_version, parameters, \
             status, created_at, created_by, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&e.id)
        .bind(&e.team)
        .bind(&e.name)
        .bind(&e.blueprint)
        .bind(&e.blueprint_version)
        .bind(&e.parameters)
        .bind(&e.status)
        .bind(e.created_at)
        .bind(&e.created_by)
        .bind(e.updated_at)
        .execute(&mut *self.tx)
        .await
        .map_err(classify)?;
        Ok(())
    }

    pub async fn update_environment(
        &mut self,
        id: &str,
        parameters: &str,
        now: i64,
    ) -> Result<(), DbError> {
        sqlx::query("UPDATE environments SET parameters = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(parameters)
            .bind(now)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Pins an environment to a blueprint version (`None` unpins it).
    pub async fn set_environment_pin(
        &mut self,
        id: &str,
        version: Option<&str>,
    ) -> Result<(), DbError> {
        sqlx::query("UPDATE environments SET pinned_version = $2 WHERE id = $1")
            .bind(id)
            .bind(version)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Records that the environment is now built from `version` of its blueprint.
    pub async fn set_environment_blueprint(
        &mut self,
        id: &str,
        version: &str,
    ) -> Result<(), DbError> {
        sqlx::query("UPDATE environments SET blueprint_version = $2 WHERE id = $1")
            .bind(id)
            .bind(version)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    pub async fn set_environment_status(
        &mut self,
        id: &str,
        status: &str,
        now: i64,
    ) -> Result<(), DbError> {
        sqlx::query("UPDATE environments SET status = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(status)
            .bind(now)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }
}
