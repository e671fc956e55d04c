//! Approvals: the second pair of eyes an operation waits for when policy asks for one.
//!
//! An approval belongs to one stack of one operation and is bound to the hash of the plan
//! the approver was shown. Deciding it and moving its operation (back to the queue, or to
//! its end) happen in one transaction, so an operation is never left waiting for an
//! approval that was already given.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, DbError, WriteTx};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approval {
    pub id: String,
    pub operation_id: String,
    pub team: String,
    /// The environment's id.
    pub environment: Option<String>,
    pub stack: String,
    pub plan_hash: String,
    /// The plan, redacted, as JSON text.
    pub plan: String,
    /// Why policy asks for approval, as JSON text (a list of reasons).
    pub reasons: String,
    pub requested_by: String,
    pub requested_at: i64,
    /// `pending`, `approved`, `rejected` or `superseded`.
    pub state: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    pub comment: Option<String>,
}

pub struct NewApproval<'a> {
    pub id: &'a str,
    pub operation_id: &'a str,
    pub team: &'a str,
    pub environment: Option<&'a str>,
    pub stack: &'a str,
    pub plan_hash: &'a str,
    pub plan: &'a str,
    pub reasons: &'a str,
    pub requested_by: &'a str,
    pub requested_at: i64,
}

fn approval(row: &AnyRow) -> Result<Approval, sqlx::Error> {
    Ok(Approval {
        id: row.try_get("id")?,
        operation_id: row.try_get("operation_id")?,
        team: row.try_get("team")?,
        environment: row.try_get("environment")?,
        stack: row.try_get("stack")?,
        plan_hash: row.try_get("plan_hash")?,
        plan: row.try_get("plan")?,
        reasons: row.try_get("reasons")?,
        requested_by: row.try_get("requested_by")?,
        requested_at: row.try_get("requested_at")?,
        state: row.try_get("state")?,
        decided_by: row.try_get("decided_by")?,
        decided_at: row.try_get("decided_at")?,
        comment: row.try_get("comment")?,
    })
}

impl Db {
    /// The approval given to exactly this plan of this operation's stack, if any.
    pub async fn approved_plan(
        &self,
        operation_id: &str,
        stack: &str,
        plan_hash: &str,
    ) -> Result<Option<Approval>, DbError> {
        let row = sqlx::query(
            "SELECT * FROM approvals WHERE operation_id = $1 AND stack = $2 \
             AND plan_hash = $3 AND state = 'approved' LIMIT 1",
        )
        .bind(operation_id)
        .bind(stack)
        .bind(plan_hash)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(approval).transpose()?)
    }

    pub async fn approval(&self, id: &str) -> Result<Option<Approval>, DbError> {
        let row = sqlx::query("SELECT * FROM approvals WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.as_ref().map(approval).transpose()?)
    }

    /// Approvals in `state` (all when `None`), of `teams` (all when `None`), newest
    /// first.
    pub async fn approvals(
        &self,
        state: Option<&str>,
        teams: Option<&[String]>,
        limit: i64,
    ) -> Result<Vec<Approval>, DbError> {
        let rows = sqlx::query(
            "SELECT * FROM approvals WHERE ($1 IS NULL OR state = $1) \
             ORDER BY requested_at DESC, id LIMIT $2",
        )
        .bind(state)
        .bind(if teams.is_some() { 10_000 } else { limit })
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::new();
        for row in &rows {
            let a = approval(row)?;
            if teams.is_none_or(|t| t.contains(&a.team)) {
                out.push(a);
            }
            if out.len() as i64 >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// An operation's approvals, oldest first.
    pub async fn approvals_of(&self, operation_id: &str) -> Result<Vec<Approval>, DbError> {
        let rows = sqlx::query(
            "SELECT * FROM approvals WHERE operation_id = $1 ORDER BY requested_at, id",
        )
        .bind(operation_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(approval).collect::<Result<_, _>>()?)
    }

    /// Approvals for an environment's operations, newest first.
    pub async fn approvals_of_environment(
        &self,
        environment: &str,
        limit: i64,
    ) -> Result<Vec<Approval>, DbError> {
        let rows = sqlx::query(
            "SELECT * FROM approvals WHERE environment = $1 \
             ORDER BY requested_at DESC, id LIMIT $2",
        )
        .bind(environment)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(approval).collect::<Result<_, _>>()?)
    }

    /// How many approvals are in each state.
    pub async fn approval_counts(&self) -> Result<Vec<(String, i64)>, DbError> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM approvals GROUP BY state")
            .fetch_all(self.pool())
            .await?;
        Ok(rows
            .iter()
            .map(|r| Ok((r.try_get("state")?, r.try_get("n")?)))
            .collect::<Result<_, sqlx::Error>>()?)
    }
}

impl WriteTx {
    pub async fn approval(&mut self, id: &str) -> Result<Option<Approval>, DbError> {
        let row = sqlx::query("SELECT * FROM approvals WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(row.as_ref().map(approval).transpose()?)
    }

    /// Asks for approval of a plan: earlier approvals of the same operation's stack for
    /// another plan (pending or given) are superseded. Returns the pending approval for
    /// this plan, new or existing.
    pub async fn request_approval(
        &mut self,
        a: &NewApproval<'_>,
        now: i64,
    ) -> Result<Approval, DbError> {
        sqlx::query(
            "UPDATE approvals SET state = 'superseded', decided_at = $4 \
             WHERE operation_id = $1 AND stack = $2 AND plan_hash <> $3 \
             AND state IN ('pending', 'approved')",
        )
        .bind(a.operation_id)
        .bind(a.stack)
        .bind(a.plan_hash)
        .bind(now)
        .execute(&mut *self.tx)
        .await?;
        let existing = sqlx::query(
            "SELECT * FROM approvals WHERE operation_id = $1 AND stack = $2 \
             AND plan_hash = $3 AND state = 'pending' LIMIT 1",
        )
        .bind(a.operation_id)
        .bind(a.stack)
        .bind(a.plan_hash)
        .fetch_optional(&mut *self.tx)
        .await?;
        if let Some(row) = existing {
            return Ok(approval(&row)?);
        }
        sqlx::query(
            "INSERT INTO approvals (id, operation_id, team, environment, stack, plan_hash, \
             plan, reasons, requested_by, requested_at, state) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending')",
        )
        .bind(a.id)
        .bind(a.operation_id)
        .bind(a.team)
        .bind(a.environment)
        .bind(a.stack)
        .bind(a.plan_hash)
        .bind(a.plan)
        .bind(a.reasons)
        .bind(a.requested_by)
        .bind(a.requested_at)
        .execute(&mut *self.tx)
        .await?;
        self.approval(a.id)
            .await?
            .ok_or_else(|| DbError::Corrupt(format!("approval {} vanished", a.id)))
    }

    /// Decides a pending approval (`approved` or `rejected`); false if it was no longer
    /// pending.
    pub async fn decide_approval(
        &mut self,
        id: &str,
        state: &str,
        by: &str,
        comment: Option<&str>,
        now: i64,
    ) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE approvals SET state = $2, decided_by = $3, decided_at = $4, comment = $5 \
             WHERE id = $1 AND state = 'pending'",
        )
        .bind(id)
        .bind(state)
        .bind(by)
        .bind(now)
        .bind(comment)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A running operation held by `holder` stops to wait for approval: its lease is
    /// released and no worker claims it until it is queued again. False if the lease was
    /// lost.
    pub async fn wait_for_approval(
        &mut self,
        id: &str,
        holder: &str,
        outcome: &str,
    ) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE operations SET state = 'waiting_for_approval', holder = NULL, \
             lease_expires_at = NULL, outcome = $3 \
             WHERE id = $1 AND holder = $2 AND state = 'running'",
        )
        .bind(id)
        .bind(holder)
        .bind(outcome)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Puts an operation that waited for approval back in the queue; false if it was not
    /// waiting.
    pub async fn requeue_approved(&mut self, id: &str) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE operations SET state = 'queued', outcome = NULL \
             WHERE id = $1 AND state = 'waiting_for_approval'",
        )
        .bind(id)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends an operation that waited for approval (rejected, or cancelled); false if it
    /// was not waiting.
    pub async fn end_waiting(
        &mut self,
        id: &str,
        state: &str,
        outcome: &str,
        now: i64,
    ) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE operations SET state = $2, outcome = $3, finished_at = $4 \
             WHERE id = $1 AND state = 'waiting_for_approval'",
        )
        .bind(id)
        .bind(state)
        .bind(outcome)
        .bind(now)
        .execute(&mut *self.tx)
        .await?;
        if done.rows_affected() == 1 {
            sqlx::query(
                "UPDATE approvals SET state = 'superseded', decided_at = $2 \
                 WHERE operation_id = $1 AND state = 'pending'",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *self.tx)
            .await?;
        }
        Ok(done.rows_affected() == 1)
    }
}
