//! Bounded reads for the portal's pages: each answers one page of a list (LIMIT/OFFSET
//! or a keyset) in a fixed number of queries, however many rows the tables hold, so a
//! page costs the same at 10 environments as at 10,000.
//!
//! Must not: write anything, or return a whole table.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::accounts::user;
use super::audit::record;
use super::operations::operation;
use super::teams::environment;
use super::{AuditFilter, AuditRecord, Db, DbError, Environment, Operation, User};

/// The newest operation on an environment: what changed last, and who asked.
#[derive(Clone, Debug)]
pub struct LastChange {
    pub operation: String,
    pub kind: String,
    pub state: String,
    pub by: String,
    pub at: i64,
}

/// An environment with its last change.
#[derive(Clone, Debug)]
pub struct EnvironmentSummary {
    pub environment: Environment,
    pub last: Option<LastChange>,
    /// How many environments its team has (for "showing 10 of N").
    pub team_total: i64,
}

/// How many of a team's environments are in a status.
#[derive(Clone, Debug)]
pub struct StatusCount {
    pub team: String,
    pub status: String,
    pub count: i64,
}

fn summary(row: &AnyRow) -> Result<EnvironmentSummary, sqlx::Error> {
    let op: Option<String> = row.try_get("op_id")?;
    let last = match op {
        Some(operation) => Some(LastChange {
            operation,
            kind: row.try_get("op_kind")?,
            state: row.try_get("op_state")?,
            by: row.try_get("op_by")?,
            at: row.try_get("op_at")?,
        }),
        None => None,
    };
    Ok(EnvironmentSummary {
        environment: environment(row)?,
        last,
        team_total: row.try_get("team_total")?,
    })
}

/// The newest operation of each environment row `e`, as `op_*` columns.
macro_rules! with_last_change {
    ($from:expr) => {
        concat!(
            "SELECT e.id, e.team, e.name, e.blueprint, e.blueprint_version, e.parameters, \
             e.status, e.created_at, e.created_by, e.updated_at, e.pinned_version, e.team_total, \
             o.id AS op_id, o.kind AS op_kind, o.state AS op_state, \
             o.requested_by AS op_by, o.created_at AS op_at FROM (",
            $from,
            ") e LEFT JOIN operations o ON o.seq = \
             (SELECT MAX(x.seq) FROM operations x WHERE x.environment = e.id) \
             ORDER BY e.team, e.name"
        )
    };
}

/// `$1, $2, …, $n` from `first`.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Db {
    /// One page of a team's environments (by name), each with its last change.
    pub async fn environment_page(
        &self,
        team: &str,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<EnvironmentSummary>, DbError> {
        let rows = sqlx::query(with_last_change!(
            "SELECT environments.*, COUNT(*) OVER () AS team_total FROM environments \
             WHERE team = $1 ORDER BY name LIMIT $2 OFFSET $3"
        ))
        .bind(team)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(summary).collect::<Result<_, _>>()?)
    }

    /// How many environments a team has.
    pub async fn environment_count(&self, team: &str) -> Result<i64, DbError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM environments WHERE team = $1")
                .bind(team)
                .fetch_one(self.pool())
                .await?,
        )
    }

    /// The first `per_team` environments (by name) of each of `teams`, each with its last
    /// change and its team's total. `teams` is one page of teams (a few dozen at most).
    pub async fn environments_of_teams(
        &self,
        teams: &[String],
        per_team: i64,
    ) -> Result<Vec<EnvironmentSummary>, DbError> {
        if teams.is_empty() {
            return Ok(Vec::new());
        }
        // Each team's first rows through the (team, name) index, and its total by
        // counting that index: per_team rows read a team, not all of them.
        let inner = (0..teams.len())
            .map(|i| {
                format!(
                    "SELECT * FROM (SELECT environments.*, \
                     (SELECT COUNT(*) FROM environments c WHERE c.team = ${p}) AS team_total \
                     FROM environments WHERE team = ${p} ORDER BY name LIMIT $1) t{i}",
                    p = i + 2
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let sql = with_last_change!("{inner}").replace("{inner}", &inner);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(per_team);
        for t in teams {
            q = q.bind(t);
        }
        let rows = q.fetch_all(self.pool()).await?;
        Ok(rows.iter().map(summary).collect::<Result<_, _>>()?)
    }

    /// How many environments of each of `teams` are in each status.
    pub async fn status_counts(&self, teams: &[String]) -> Result<Vec<StatusCount>, DbError> {
        if teams.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT team, status, COUNT(*) AS n FROM environments WHERE team IN ({}) \
             GROUP BY team, status ORDER BY team, status",
            placeholders(1, teams.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for t in teams {
            q = q.bind(t);
        }
        let rows = q.fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                Ok(StatusCount {
                    team: r.try_get("team")?,
                    status: r.try_get("status")?,
                    count: r.try_get("n")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DbError::from)
    }

    /// Operations of a team (or of one of its environments), newest first, older than
    /// `before` (a `seq`), each with its environment's name.
    pub async fn operation_page(
        &self,
        team: &str,
        environment: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<(Operation, Option<String>)>, DbError> {
        let rows = sqlx::query(
            "SELECT o.*, e.name AS environment_name FROM operations o \
             LEFT JOIN environments e ON e.id = o.environment \
             WHERE o.team = $1 AND ($2 IS NULL OR o.environment = $2) \
             AND ($3 IS NULL OR o.seq < $3) ORDER BY o.seq DESC LIMIT $4",
        )
        .bind(team)
        .bind(environment)
        .bind(before)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((operation(r)?, r.try_get("environment_name")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DbError::from)
    }

    /// Audit records matching `f` (its `after` and `limit` ignored), newest first, older
    /// than `before` (a `seq`); `action` matches as a prefix (`environment` finds
    /// `environment.create`).
    pub async fn audit_page(
        &self,
        f: &AuditFilter,
        action: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, DbError> {
        let rows = sqlx::query(
            "SELECT * FROM audit_log WHERE ($1 IS NULL OR team = $1) \
             AND ($2 IS NULL OR environment = $2) AND ($3 IS NULL OR actor = $3) \
             AND ($4 IS NULL OR at >= $4) AND ($5 IS NULL OR at < $5) \
             AND ($6 IS NULL OR substr(action, 1, length($6)) = $6) \
             AND ($7 IS NULL OR seq < $7) ORDER BY seq DESC LIMIT $8",
        )
        .bind(f.team.as_deref())
        .bind(f.environment.as_deref())
        .bind(f.actor.as_deref())
        .bind(f.since)
        .bind(f.until)
        .bind(action)
        .bind(before)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(record).collect()
    }

    /// One page of people, by login.
    pub async fn user_page(&self, offset: i64, limit: i64) -> Result<Vec<User>, DbError> {
        let rows = sqlx::query(
            "SELECT id, login, name, email, platform_admin, created_at FROM users \
             ORDER BY login LIMIT $1 OFFSET $2",
        )
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(user).collect::<Result<_, _>>()?)
    }

    /// One page of all teams, by name, with how many there are.
    pub async fn team_page(
        &self,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<(String, String)>, i64), DbError> {
        let rows = sqlx::query(
            "SELECT name, description, COUNT(*) OVER () AS total FROM teams \
             ORDER BY name LIMIT $1 OFFSET $2",
        )
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        let total = match rows.first() {
            Some(r) => r.try_get("total")?,
            None => {
                sqlx::query_scalar("SELECT COUNT(*) FROM teams")
                    .fetch_one(self.pool())
                    .await?
            }
        };
        let teams = rows
            .iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("description")?)))
            .collect::<Result<_, sqlx::Error>>()?;
        Ok((teams, total))
    }
}
