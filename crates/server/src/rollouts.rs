//! Fleet rollouts: a blueprint's environments upgraded to one version in waves — a canary
//! wave, then batches — stopping after the first wave in which an upgrade fails.
//!
//! Every upgrade is an ordinary `up` operation with a target version (so the queue, the
//! workers, policies and approvals treat it like any other), requested in the name of the
//! platform admin who started the rollout. The driver is a task on every replica: it
//! looks at each running rollout's current wave and, once all of that wave's operations
//! have finished, ends the rollout (a failure, or no wave left) or queues the next wave.
//! The decision is taken again inside the write transaction, which serializes writers on
//! both databases, so replicas driving the same rollout cannot queue a wave twice.
//!
//! What became of each environment is read from its operation (never copied), so the
//! report cannot disagree with the queue.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use paddock_store::db::{self, NewAudit, WriteTx, now_ms};
use serde_json::json;

use crate::AppState;
use crate::views::EnvironmentParameters;

/// Drives every running rollout until the replica stops.
pub async fn drive(state: Arc<AppState>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(state.config.poll()) => {}
            _ = state.shutdown.cancelled() => return,
        }
        let running = match state.db.running_rollouts().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "reading the running rollouts failed");
                continue;
            }
        };
        for id in running {
            if let Err(e) = advance(&state, &id).await {
                tracing::warn!(error = %e, rollout = %id, "advancing a rollout failed");
            }
        }
    }
}

/// Whether an operation's state is final.
fn finished(state: &str) -> bool {
    matches!(state, "succeeded" | "failed" | "cancelled")
}

/// Takes a rollout one step if its current wave is over.
pub(crate) async fn advance(state: &AppState, id: &str) -> Result<(), db::DbError> {
    let Some(rollout) = state.db.rollout(id).await? else {
        return Ok(());
    };
    if rollout.state != "running" {
        return Ok(());
    }
    let targets = state.db.rollout_targets(id).await?;
    let wave = rollout.current_wave;
    let mut failed = Vec::new();
    for t in targets.iter().filter(|t| t.wave == Some(wave)) {
        let Some(op_id) = &t.operation_id else {
            continue;
        };
        match state.db.operation(op_id).await? {
            Some(op) if !finished(&op.state) => return Ok(()),
            Some(op) if op.state == "succeeded" => {}
            _ => failed.push((t.environment_id.clone(), op_id.clone())),
        }
    }
    // Everything the step reads is read before the write transaction: a pool connection
    // taken while holding the write lock could wait on the writers queued behind it.
    let environments = environments(state).await?;
    let names: HashMap<String, (String, String)> = environments
        .iter()
        .map(|(id, e)| (id.clone(), (e.team.clone(), e.name.clone())))
        .collect();
    let mut tx = state.db.write().await?;
    match tx.rollout(id).await? {
        Some(r) if r.state == "running" && r.current_wave == wave => {}
        // Another replica took this step.
        _ => return Ok(()),
    }
    let now = now_ms();
    let ending = if let Some((env, op)) = failed.first() {
        let who = names
            .get(env)
            .map_or_else(|| env.clone(), |(t, n)| format!("{t}/{n}"));
        Some((
            "failed",
            format!(
                "{who} failed in {} ({} of {} upgrades in the wave failed; operation {op}); \
                 later waves were not started",
                wave_name(wave),
                failed.len(),
                targets.iter().filter(|t| t.wave == Some(wave)).count(),
            ),
        ))
    } else if !targets.iter().any(|t| t.wave == Some(wave + 1)) {
        Some((
            "succeeded",
            format!("every wave upgraded to {}", rollout.target_version),
        ))
    } else {
        None
    };
    match ending {
        Some((end, reason)) => {
            tx.end_rollout(id, end, Some(&reason), now).await?;
            tx.append_audit(
                &NewAudit {
                    actor: &rollout.requested_by,
                    source: &format!("rollout {id}"),
                    action: "rollout.finish",
                    target: &format!("blueprints/{}/rollouts/{id}", rollout.blueprint),
                    team: None,
                    environment: None,
                    outcome: end,
                    detail: &json!({"reason": reason, "wave": wave}),
                },
                now,
            )
            .await?;
            tx.commit().await?;
            tracing::info!(rollout = %id, state = end, %reason, "rollout ended");
        }
        None => {
            tx.set_rollout_wave(id, wave + 1).await?;
            queue_wave(&mut tx, &environments, &rollout, &targets, wave + 1).await?;
            tx.commit().await?;
            state.work.notify_waiters();
        }
    }
    Ok(())
}

/// Every environment by id.
pub(crate) async fn environments(
    state: &AppState,
) -> Result<HashMap<String, db::Environment>, db::DbError> {
    Ok(state
        .db
        .environments(None)
        .await?
        .into_iter()
        .map(|e| (e.id.clone(), e))
        .collect())
}

/// "canary wave" or "batch N".
pub(crate) fn wave_name(wave: i64) -> String {
    if wave == 0 {
        "the canary wave".into()
    } else {
        format!("batch {wave}")
    }
}

/// Queues the upgrades of a wave's environments in `tx`, each audited; an environment
/// destroyed or pinned to another version since the rollout started is skipped instead.
pub(crate) async fn queue_wave(
    tx: &mut WriteTx,
    environments: &HashMap<String, db::Environment>,
    rollout: &db::Rollout,
    targets: &[db::RolloutTarget],
    wave: i64,
) -> Result<(), db::DbError> {
    let now = now_ms();
    for t in targets.iter().filter(|t| t.wave == Some(wave)) {
        let Some(env) = environments.get(&t.environment_id) else {
            tx.skip_target(&rollout.id, t.position, "gone").await?;
            continue;
        };
        if env.status == "destroyed" {
            tx.skip_target(&rollout.id, t.position, "destroyed").await?;
            continue;
        }
        if let Some(pin) = env
            .pinned_version
            .as_deref()
            .filter(|p| *p != rollout.target_version)
        {
            tx.skip_target(&rollout.id, t.position, &format!("pinned to {pin}"))
                .await?;
            continue;
        }
        let params: EnvironmentParameters = serde_json::from_str(&env.parameters)
            .map_err(|e| db::DbError::Corrupt(format!("environment {}: {e}", env.id)))?;
        let op_id = crate::auth::new_id("op");
        let stages = serde_json::to_string(&params.stages).unwrap_or_else(|_| "[]".into());
        let request = json!({"targetVersion": rollout.target_version, "rollout": rollout.id});
        tx.insert_operation(&db::NewOperation {
            id: &op_id,
            team: &env.team,
            environment: Some(&env.id),
            kind: "up",
            stages: &stages,
            requested_by: &rollout.requested_by,
            retry_of: None,
            request: Some(&request.to_string()),
            created_at: now,
        })
        .await?;
        tx.set_environment_status(&env.id, "updating", now).await?;
        tx.set_target_operation(&rollout.id, t.position, &op_id)
            .await?;
        tx.append_audit(
            &NewAudit {
                actor: &rollout.requested_by,
                source: &format!("rollout {}", rollout.id),
                action: "environment.upgrade",
                target: &format!("teams/{}/environments/{}", env.team, env.name),
                team: Some(&env.team),
                environment: Some(&env.name),
                outcome: "allowed",
                detail: &json!({
                    "from": env.blueprint_version,
                    "to": rollout.target_version,
                    "operation": op_id,
                    "rollout": rollout.id,
                    "wave": wave,
                }),
            },
            now,
        )
        .await?;
    }
    Ok(())
}

/// What became of one environment of a rollout.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetReport {
    pub team: String,
    pub environment: String,
    pub from_version: String,
    /// 0 is the canary wave; absent when skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wave: Option<i64>,
    /// `upgraded`, `failed`, `running` (its upgrade is queued or running), `pinned`,
    /// `skipped` (destroyed since) or `not started` (its wave never came).
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// Why it failed (the resource, the cloud's code and message) or was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Each environment's outcome, in the rollout's order.
pub(crate) async fn report(
    state: &AppState,
    rollout: &db::Rollout,
) -> Result<Vec<TargetReport>, db::DbError> {
    let targets = state.db.rollout_targets(&rollout.id).await?;
    let names = environments(state).await?;
    let mut out = Vec::with_capacity(targets.len());
    for t in targets {
        let (team, environment) = names
            .get(&t.environment_id)
            .map(|e| (e.team.clone(), e.name.clone()))
            .unwrap_or_else(|| ("?".into(), t.environment_id.clone()));
        let (status, detail) = match (&t.skipped, &t.operation_id) {
            (Some(why), _) if why.starts_with("pinned") => ("pinned".into(), Some(why.clone())),
            (Some(why), _) => ("skipped".into(), Some(why.clone())),
            (None, None) => ("not started".into(), None),
            (None, Some(op)) => match state.db.operation(op).await? {
                None => ("failed".into(), Some("the operation is missing".into())),
                Some(op) => match op.state.as_str() {
                    "succeeded" => ("upgraded".into(), None),
                    "failed" | "cancelled" => ("failed".into(), Some(failure(&op))),
                    _ => ("running".into(), None),
                },
            },
        };
        out.push(TargetReport {
            team,
            environment,
            from_version: t.from_version,
            wave: t.wave,
            status,
            operation: t.operation_id,
            detail,
        });
    }
    Ok(out)
}

/// A finished operation's failure in one line.
fn failure(op: &db::Operation) -> String {
    let outcome: serde_json::Value =
        serde_json::from_str(op.outcome.as_deref().unwrap_or("null")).unwrap_or_default();
    let f = &outcome["failure"];
    if let Some(message) = f["message"].as_str() {
        format!(
            "{} ({}) in {}: {}: {message}",
            f["resource"].as_str().unwrap_or("?"),
            f["type"].as_str().unwrap_or("?"),
            f["stack"].as_str().unwrap_or("?"),
            f["code"].as_str().unwrap_or("error"),
        )
    } else if let Some(e) = outcome["error"].as_str() {
        e.to_owned()
    } else {
        format!("the operation was {}", op.state)
    }
}

/// How many environments are in each status.
pub(crate) fn counts(report: &[TargetReport]) -> BTreeMap<String, usize> {
    let mut counts: BTreeMap<String, usize> = [
        "upgraded",
        "failed",
        "running",
        "pinned",
        "skipped",
        "not started",
    ]
    .into_iter()
    .map(|s| (s.to_owned(), 0))
    .collect();
    for t in report {
        *counts.entry(t.status.clone()).or_default() += 1;
    }
    counts
}
