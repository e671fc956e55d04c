//! Day two, in the background: the reaper (expired environments are torn down, expiring
//! ones warned about) and the drift scheduler (every standing environment refreshed once
//! per interval). Every replica runs this task; what it queues is decided inside one
//! `WriteTx` that re-reads what it depends on, so replicas never queue the same work twice.
//!
//! Every change is attributed to a person or a named system principal: a teardown to the
//! person who set the expiry (source `expiry`), a scheduled refresh — which changes
//! nothing in the clouds — to `paddock-scheduler` (source `schedule`).

mod finish;

use std::sync::Arc;

use paddock_store::db::{self, NewAudit, now_ms};
use serde_json::json;
use sha2::{Digest, Sha256};

pub(crate) use finish::{RecordedStack, accept, finished};

use crate::AppState;
use crate::views::{EnvironmentParameters, time};

/// The system principal scheduled work is requested by.
pub const SCHEDULER: &str = "paddock-scheduler";

/// A teardown that failed (or was cancelled) is queued again after this long, while the
/// expiry stands; extend or remove the expiry to stop it.
const TEARDOWN_RETRY_MS: i64 = 10 * 60 * 1000;

/// Runs the reaper and the drift scheduler every tick until shutdown.
pub(crate) async fn run(state: Arc<AppState>) {
    let tick = state.config.lifecycle_tick();
    loop {
        if let Err(e) = reap(&state).await {
            tracing::warn!(error = %e, "the reaper's round failed");
        }
        if let Err(e) = schedule_refreshes(&state).await {
            tracing::warn!(error = %e, "the drift scheduler's round failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = state.shutdown.cancelled() => return,
        }
    }
}

/// Warns about environments entering their warning window and tears down those whose
/// expiry has passed.
async fn reap(state: &AppState) -> Result<(), db::DbError> {
    let now = now_ms();
    let warning = state.config.expiry_warning().as_millis() as i64;
    for due in state.db.expiries_due(now, warning).await? {
        if due.expiry.expires_at <= now {
            teardown(state, &due, now).await?;
        } else if due.expiry.warned_at.is_none() {
            warn_expiring(state, &due, now).await?;
        }
    }
    Ok(())
}

fn target(due: &db::DueExpiry) -> String {
    format!("teams/{}/environments/{}", due.team, due.environment)
}

/// Records, once per expiry, that the environment has entered its warning window.
async fn warn_expiring(state: &AppState, due: &db::DueExpiry, now: i64) -> Result<(), db::DbError> {
    let id = &due.expiry.environment_id;
    let mut tx = state.db.write().await?;
    // Under the lock: another replica may have warned, or the expiry changed.
    match tx.expiry(id).await? {
        Some(x) if x.warned_at.is_none() && x.set_at == due.expiry.set_at => {}
        _ => return Ok(()),
    }
    tx.mark_expiry_warned(id, now).await?;
    tx.append_audit(
        &NewAudit {
            actor: SCHEDULER,
            source: "expiry",
            action: "environment.expiring",
            target: &target(due),
            team: Some(&due.team),
            environment: Some(&due.environment),
            outcome: "allowed",
            detail: &json!({
                "expiresAt": time(due.expiry.expires_at),
                "setBy": due.expiry.set_by,
            }),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(team = %due.team, environment = %due.environment,
        expires_at = %time(due.expiry.expires_at), "environment expiring");
    Ok(())
}

/// Queues the destroy of an expired environment, requested by the person who set the
/// expiry: at most one, and none while one is unfinished.
async fn teardown(state: &AppState, due: &db::DueExpiry, now: i64) -> Result<(), db::DbError> {
    let id = &due.expiry.environment_id;
    let Some(env) = state.db.environment_by_id(id).await? else {
        return Ok(());
    };
    let params: EnvironmentParameters = serde_json::from_str(&env.parameters)
        .map_err(|e| db::DbError::Corrupt(format!("environment {id}'s parameters: {e}")))?;
    let mut tx = state.db.write().await?;
    let expiry = match tx.expiry(id).await? {
        Some(x) if x.expires_at <= now => x,
        // Extended or removed meanwhile.
        _ => return Ok(()),
    };
    if tx.has_unfinished(id, "destroy").await? {
        return Ok(());
    }
    if let Some(previous) = &expiry.teardown_operation
        && let Some(op) = tx.operation(previous).await?
    {
        let retry_at = op.finished_at.unwrap_or(now) + TEARDOWN_RETRY_MS;
        if op.state == "succeeded" || now < retry_at {
            return Ok(());
        }
    }
    let op_id = crate::auth::new_id("op");
    let stages = serde_json::to_string(&params.stages).unwrap_or_else(|_| "[]".into());
    tx.insert_operation(&db::NewOperation {
        id: &op_id,
        team: &env.team,
        environment: Some(id),
        kind: "destroy",
        stages: &stages,
        requested_by: &expiry.set_by,
        retry_of: None,
        request: None,
        created_at: now,
    })
    .await?;
    tx.set_teardown_operation(id, &op_id).await?;
    tx.set_environment_status(id, "destroying", now).await?;
    tx.append_audit(
        &NewAudit {
            actor: &expiry.set_by,
            source: "expiry",
            action: "environment.destroy",
            target: &target(due),
            team: Some(&env.team),
            environment: Some(&env.name),
            outcome: "allowed",
            detail: &json!({
                "operation": op_id,
                "stages": params.stages,
                "reason": format!("the expiry {} set has passed", expiry.set_by),
                "expiresAt": time(expiry.expires_at),
            }),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    state.work.notify_waiters();
    tracing::info!(team = %env.team, environment = %env.name, operation = %op_id,
        set_by = %expiry.set_by, "expired: teardown queued");
    Ok(())
}

/// Where in each interval an environment's refresh falls: a fixed offset from its id, so
/// refreshes spread evenly over the interval and every replica agrees.
fn slot_offset(id: &str, interval_ms: i64) -> i64 {
    let digest = Sha256::digest(id.as_bytes());
    let n = u64::from_be_bytes(digest[..8].try_into().expect("eight bytes"));
    (n % interval_ms.max(1) as u64) as i64
}

/// The start of the environment's latest slot at or before `now`.
fn latest_slot(id: &str, now: i64, interval_ms: i64) -> i64 {
    let offset = slot_offset(id, interval_ms);
    now - (now - offset).rem_euclid(interval_ms)
}

/// Queues a refresh of each standing environment, at least one interval old, whose slot
/// has come since its last refresh ended (or its creation), at most `drift_in_flight` scheduled refreshes unfinished
/// at once over every replica.
async fn schedule_refreshes(state: &AppState) -> Result<(), db::DbError> {
    let Some(interval) = state.config.drift_interval() else {
        return Ok(());
    };
    let interval_ms = (interval.as_millis() as i64).max(1);
    let now = now_ms();
    let due: Vec<db::RefreshCandidate> = state
        .db
        .refresh_candidates()
        .await?
        .into_iter()
        // An environment younger than the interval was just applied: its first refresh
        // is at its first slot after that.
        .filter(|c| now - c.created_at >= interval_ms)
        .filter(|c| {
            c.last_refresh.unwrap_or(c.created_at).max(c.created_at)
                < latest_slot(&c.id, now, interval_ms)
        })
        .collect();
    if due.is_empty() {
        return Ok(());
    }
    let cap = state.config.drift_in_flight() as i64;
    let mut tx = state.db.write().await?;
    let mut in_flight = tx.unfinished_requested_by("refresh", SCHEDULER).await?;
    let mut queued = 0;
    for c in &due {
        if in_flight >= cap {
            break;
        }
        // Under the lock: another replica may have queued it, or work may be under way.
        let last = tx.last_queued(&c.id, "refresh").await?;
        if last.is_some_and(|l| l >= latest_slot(&c.id, now, interval_ms)) {
            continue;
        }
        if tx.active_operation(&c.team, Some(&c.id)).await?.is_some() {
            continue;
        }
        let Some(env) = tx.environment_by_id(&c.id).await? else {
            continue;
        };
        let Ok(params) = serde_json::from_str::<EnvironmentParameters>(&env.parameters) else {
            continue;
        };
        let op_id = crate::auth::new_id("op");
        let stages = serde_json::to_string(&params.stages).unwrap_or_else(|_| "[]".into());
        tx.insert_operation(&db::NewOperation {
            id: &op_id,
            team: &c.team,
            environment: Some(&c.id),
            kind: "refresh",
            stages: &stages,
            requested_by: SCHEDULER,
            retry_of: None,
            request: None,
            created_at: now,
        })
        .await?;
        tx.append_audit(
            &NewAudit {
                actor: SCHEDULER,
                source: "schedule",
                action: "environment.refresh",
                target: &format!("teams/{}/environments/{}", c.team, c.name),
                team: Some(&c.team),
                environment: Some(&c.name),
                outcome: "allowed",
                detail: &json!({
                    "operation": op_id,
                    "stages": params.stages,
                    "interval": humantime::format_duration(interval).to_string(),
                }),
            },
            now,
        )
        .await?;
        in_flight += 1;
        queued += 1;
    }
    tx.commit().await?;
    if queued > 0 {
        state.work.notify_waiters();
        tracing::debug!(queued, "scheduled drift refreshes");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_spread_over_the_interval_and_come_once_per_interval() {
        let interval = 6 * 3600 * 1000;
        let offsets: Vec<i64> = (0..200)
            .map(|i| slot_offset(&format!("env_{i}"), interval))
            .collect();
        assert!(offsets.iter().all(|o| (0..interval).contains(o)));
        // Spread: every quarter of the interval holds some.
        for q in 0..4 {
            let (from, to) = (q * interval / 4, (q + 1) * interval / 4);
            assert!(
                offsets.iter().any(|o| (from..to).contains(o)),
                "quarter {q}"
            );
        }
        let now = 1_800_000_000_000;
        let slot = latest_slot("env_1", now, interval);
        assert!(slot <= now && now - slot < interval);
        assert_eq!(latest_slot("env_1", slot + interval - 1, interval), slot);
        assert_eq!(
            latest_slot("env_1", slot + interval, interval),
            slot + interval
        );
    }
}
