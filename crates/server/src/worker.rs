//! Workers: claim operations from the database, run them through the engine, record
//! their events, and finish them — on whichever replica is free.
//!
//! A claimed operation is leased to this replica; a heartbeat renews the lease every third
//! of its length and carries cancellation requests back. If the replica dies, the lease
//! expires and another replica claims the operation and runs it again from the start: the
//! engine reconciles its journal (what was in flight is adopted or retried, never
//! duplicated) and plans only what is left, so no step that completed runs twice. Every
//! write that ends an operation is fenced by the holder, so a worker that lost its lease
//! changes nothing. On shutdown a worker stops starting steps, lets those in flight
//! finish, and hands the operation back to the queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use paddock_engine::{EngineError, Event, EventSink};
use paddock_platform::{PlatformError, StackOutcome, StackRun, Stage, TeamSpec};
use paddock_store::db::{self, NewAudit, now_ms};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::gate::{self, PolicyGate, Stop};
use crate::policy::Role;
use crate::views::EnvironmentParameters;

pub async fn run(state: Arc<AppState>, n: usize) {
    let lease_ms = state.config.lease().as_millis() as i64;
    loop {
        if state.shutdown.is_cancelled() {
            return;
        }
        let now = now_ms();
        match state
            .db
            .claim_operation(&state.holder, now, now + lease_ms)
            .await
        {
            Ok(Some(claim)) => {
                if claim.takeover {
                    state.metrics.takeover();
                    tracing::warn!(operation = %claim.operation.id, worker = n,
                        attempt = claim.operation.attempts, "took over an operation whose lease expired");
                }
                execute(&state, claim.operation).await;
            }
            Ok(None) => {
                tokio::select! {
                    _ = state.work.notified() => {}
                    _ = tokio::time::sleep(state.config.poll()) => {}
                    _ = state.shutdown.cancelled() => return,
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "claiming an operation failed");
                tokio::select! {
                    _ = tokio::time::sleep(state.config.poll()) => {}
                    _ = state.shutdown.cancelled() => return,
                }
            }
        }
    }
}

/// Engine events into the database, in order, off the engine's task; each tagged with the
/// stack it is about.
struct Recorder {
    tx: mpsc::UnboundedSender<(String, serde_json::Value)>,
    stack: std::sync::Mutex<String>,
}

impl EventSink for Recorder {
    fn stack(&self, name: &str) {
        *self.stack.lock().expect("recorder lock") = name.to_owned();
    }

    fn emit(&self, event: &Event) {
        let mut data = serde_json::to_value(event).unwrap_or_default();
        let stack = self.stack.lock().expect("recorder lock").clone();
        if !stack.is_empty() {
            data["stack"] = serde_json::Value::String(stack);
        }
        // Engine events are tagged `event` with their kind.
        let kind = data["event"].as_str().unwrap_or("engine").to_owned();
        let _ = self.tx.send((kind, data));
    }
}

/// How long recording one event is retried before it is given up as lost.
const EVENT_RETRIES_FOR: Duration = Duration::from_secs(60);

/// Records one event at the time it happened, retrying a failure (a database busy or
/// unreachable for a moment) with backoff: the live log must not lose it. Events of one
/// operation are recorded one after another, so their ids keep their order.
async fn record_event(
    db: &db::Db,
    operation: &str,
    environment: Option<&str>,
    kind: &str,
    data: &str,
) -> Result<(), db::DbError> {
    let at = now_ms();
    let deadline = std::time::Instant::now() + EVENT_RETRIES_FOR;
    let mut pause = Duration::from_millis(50);
    loop {
        match db
            .append_event(operation, environment, at, kind, data)
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if std::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, operation, kind, "recording an event failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e),
        }
    }
}

/// How a run ended.
enum Ending {
    Finished {
        state: &'static str,
        outcome: serde_json::Value,
    },
    /// The lease was lost or the replica is stopping: not ours to finish.
    HandedBack,
    /// Policy requires approval of a stack's plan: the operation waits for it.
    Waiting {
        stack: String,
        plan_hash: String,
        plan: crate::views::StackPreview,
        reasons: Vec<paddock_policy::Reason>,
    },
}

async fn execute(state: &Arc<AppState>, op: db::Operation) {
    let started = std::time::Instant::now();
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, serde_json::Value)>();
    let writer = {
        let db = state.db.clone();
        let id = op.id.clone();
        let env = op.environment.clone();
        let metrics = state.clone();
        tokio::spawn(async move {
            // Numbered as they come, per attempt: a gap in `seq` is an event lost. 0 is
            // the attempt's `operationStarted`, written with the claim; the event that
            // ends the run takes the number after the last.
            let mut seq = 1u64;
            while let Some((kind, mut data)) = rx.recv().await {
                data["seq"] = json!(seq);
                seq += 1;
                if kind == "stepSucceeded"
                    && let (Some(ty), Some(ms)) = (data["ty"].as_str(), data["elapsedMs"].as_u64())
                {
                    metrics.metrics.step(ty.split(':').next().unwrap_or(ty), ms);
                }
                let text = data.to_string();
                match record_event(&db, &id, env.as_deref(), &kind, &text).await {
                    Ok(()) => metrics.metrics.event_recorded(),
                    Err(e) => {
                        metrics.metrics.event_lost();
                        tracing::error!(error = %e, operation = %id, kind = %kind, "recording an event failed; it is lost");
                    }
                }
            }
            seq
        })
    };
    let sink = Recorder {
        tx,
        stack: std::sync::Mutex::default(),
    };
    // `operationStarted` was recorded with the claim.

    let cancel = CancellationToken::new();
    let lost = Arc::new(AtomicBool::new(false));
    let handing_back = Arc::new(AtomicBool::new(false));
    let heartbeat = {
        let state = state.clone();
        let id = op.id.clone();
        let cancel = cancel.clone();
        let lost = lost.clone();
        let handing_back = handing_back.clone();
        tokio::spawn(async move {
            let lease = state.config.lease();
            let every = lease / 3;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = state.shutdown.cancelled(), if !handing_back.load(Ordering::SeqCst) => {
                        handing_back.store(true, Ordering::SeqCst);
                        cancel.cancel();
                        continue;
                    }
                }
                let until = now_ms() + lease.as_millis() as i64;
                match state.db.renew_operation(&id, &state.holder, until).await {
                    Ok(Some(true)) => cancel.cancel(),
                    Ok(Some(false)) => {}
                    Ok(None) => {
                        lost.store(true, Ordering::SeqCst);
                        cancel.cancel();
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, operation = %id, "renewing a lease failed")
                    }
                }
            }
        })
    };

    // Every request the clouds see from this run names the operation (its `User-Agent`).
    let result =
        paddock_providers::http::on_behalf_of(&op.id, perform(state, &op, &sink, &cancel)).await;
    heartbeat.abort();
    let ending = if lost.load(Ordering::SeqCst)
        || (handing_back.load(Ordering::SeqCst) && cancel.is_cancelled())
    {
        Ending::HandedBack
    } else {
        match result {
            Ok(outcome) => outcome,
            Err(message) => Ending::Finished {
                state: "failed",
                outcome: json!({"error": message}),
            },
        }
    };
    // The events that end a run (`operationFinished`, `waitingForApproval`) are written
    // in the transaction that ends it, after the rest: a replica killed in between must
    // leave neither the event without the change nor the change without the event.
    drop(sink);
    let seq = writer.await.unwrap_or_default();

    match ending {
        Ending::HandedBack => {
            if lost.load(Ordering::SeqCst) {
                tracing::warn!(operation = %op.id, "lease lost; another replica has the operation");
            } else {
                match state.db.release_operation(&op.id, &state.holder).await {
                    Ok(_) => tracing::info!(operation = %op.id, "handed back on shutdown"),
                    Err(e) => {
                        tracing::warn!(error = %e, operation = %op.id, "handing back failed; its lease will expire")
                    }
                }
            }
        }
        Ending::Waiting {
            stack,
            plan_hash,
            plan,
            reasons,
        } => {
            if let Err(e) = wait(state, &op, &stack, &plan_hash, &plan, &reasons, seq).await {
                tracing::warn!(error = %e, operation = %op.id, "recording the wait for approval failed; its lease will expire and it will run again");
            }
        }
        Ending::Finished {
            state: end,
            outcome,
        } => {
            if let Err(e) = finish(state, &op, end, &outcome, seq).await {
                tracing::warn!(error = %e, operation = %op.id, "finishing failed; its lease will expire and it will run again");
            }
            state.metrics.finished(end, started.elapsed());
        }
    }
}

/// Stops the operation to wait for approval of `stack`'s plan: the pending approval, the
/// operation's new state and the audit record, in one transaction.
async fn wait(
    state: &AppState,
    op: &db::Operation,
    stack: &str,
    plan_hash: &str,
    plan: &crate::views::StackPreview,
    reasons: &[paddock_policy::Reason],
    seq: u64,
) -> Result<(), db::DbError> {
    let mut tx = state.db.write().await?;
    let now = now_ms();
    let outcome = json!({
        "waitingFor": {"stack": stack, "planHash": plan_hash, "reasons": reasons},
    });
    if !tx
        .wait_for_approval(&op.id, &state.holder, &outcome.to_string())
        .await?
    {
        tracing::warn!(operation = %op.id, "lease lost before waiting; leaving it to the new holder");
        return Ok(());
    }
    tx.append_event(
        &op.id,
        op.environment.as_deref(),
        now,
        "waitingForApproval",
        &json!({"operation": op.id, "stack": stack, "reasons": reasons, "seq": seq}).to_string(),
    )
    .await?;
    let id = paddock_engine::new_id();
    let approval = tx
        .request_approval(
            &db::NewApproval {
                id: &id,
                operation_id: &op.id,
                team: &op.team,
                environment: op.environment.as_deref(),
                stack,
                plan_hash,
                plan: &serde_json::to_string(plan).unwrap_or_default(),
                reasons: &serde_json::to_string(reasons).unwrap_or_default(),
                requested_by: &op.requested_by,
                requested_at: now,
            },
            now,
        )
        .await?;
    let env_name = match &op.environment {
        Some(env_id) => tx.environment_by_id(env_id).await?.map(|e| e.name),
        None => None,
    };
    tx.append_audit(
        &NewAudit {
            actor: &op.requested_by,
            source: &format!("worker {}", state.holder),
            action: "approval.request",
            target: &format!("approvals/{}", approval.id),
            team: Some(&op.team),
            environment: env_name.as_deref(),
            outcome: "pending",
            detail: &json!({"operation": op.id, "stack": stack, "planHash": plan_hash, "reasons": reasons}),
        },
        now,
    )
    .await?;
    tx.commit().await
}

async fn finish(
    state: &AppState,
    op: &db::Operation,
    end: &str,
    outcome: &serde_json::Value,
    seq: u64,
) -> Result<(), db::DbError> {
    let mut tx = state.db.write().await?;
    let now = now_ms();
    if !tx
        .finish_operation(&op.id, &state.holder, end, &outcome.to_string(), now)
        .await?
    {
        tracing::warn!(operation = %op.id, "lease lost before finishing; leaving it to the new holder");
        return Ok(());
    }
    tx.append_event(
        &op.id,
        op.environment.as_deref(),
        now,
        "operationFinished",
        &json!({"operation": op.id, "state": end, "seq": seq}).to_string(),
    )
    .await?;
    let mut env_name = None;
    if let Some(env_id) = &op.environment {
        let status = match (op.kind.as_str(), end) {
            ("destroy", "succeeded") => Some("destroyed"),
            ("up", "succeeded") | ("destroy", "cancelled") | ("up", "cancelled") => Some("ready"),
            ("up" | "destroy", _) => Some("failed"),
            // The clouds differ from what was declared: an `up` brings them back.
            ("refresh", "succeeded") if drifted(outcome) => Some("drifted"),
            _ => None,
        };
        let env = tx.environment_by_id(env_id).await?;
        // A cancelled create never became ready.
        let status = match (&env, status) {
            (Some(e), Some("ready")) if e.status == "creating" && end != "succeeded" => {
                Some("failed")
            }
            (_, s) => s,
        };
        // Drift recorded, cleared or accepted; expiry done with.
        let drift_gone = crate::lifecycle::finished(&mut tx, op, end, outcome, now).await?;
        let status = match (&env, status) {
            (Some(e), None) if drift_gone && e.status == "drifted" => Some("ready"),
            (_, s) => s,
        };
        if let Some(status) = status {
            tx.set_environment_status(env_id, status, now).await?;
        }
        // An upgrade that succeeded has brought the environment to its target version.
        if op.kind == "up"
            && end == "succeeded"
            && let Some(version) = target_version(op)
        {
            tx.set_environment_blueprint(env_id, &version).await?;
        }
        env_name = env.map(|e| e.name);
    }
    let target = match &env_name {
        Some(env) => format!("teams/{}/environments/{env}", op.team),
        None => format!("teams/{}", op.team),
    };
    tx.append_audit(
        &NewAudit {
            actor: &op.requested_by,
            source: &format!("worker {}", state.holder),
            action: &format!("operation.{}", op.kind),
            target: &target,
            team: Some(&op.team),
            environment: env_name.as_deref(),
            outcome: end,
            detail: &json!({"operation": op.id, "attempts": op.attempts, "outcome": outcome}),
        },
        now,
    )
    .await?;
    tx.commit().await
}

/// Whether a refresh found an object changed or deleted outside Paddock.
fn drifted(outcome: &serde_json::Value) -> bool {
    outcome["stacks"].as_array().is_some_and(|stacks| {
        stacks.iter().any(|s| {
            s["drift"]
                .as_array()
                .is_some_and(|d| d.iter().any(|r| r["change"] != "unchanged"))
        })
    })
}

/// Runs the operation; retries while a stack's lease is still held by a replica that
/// died (until that lease expires).
async fn perform(
    state: &AppState,
    op: &db::Operation,
    sink: &Recorder,
    cancel: &CancellationToken,
) -> Result<Ending, String> {
    let deadline = std::time::Instant::now() + state.config.lease() * 3;
    loop {
        match perform_once(state, op, sink, cancel).await {
            Err(PlatformError::Engine(EngineError::StackBusy { stack, lease }))
                if std::time::Instant::now() < deadline && !cancel.is_cancelled() =>
            {
                let _ = sink.tx.send((
                    "waiting".into(),
                    json!({"stack": stack, "heldBy": format!("{} on {} (pid {})", lease.op_id, lease.holder.host, lease.holder.pid)}),
                ));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e.to_string()),
            Ok(ending) => return Ok(ending),
        }
    }
}

async fn perform_once(
    state: &AppState,
    op: &db::Operation,
    sink: &Recorder,
    cancel: &CancellationToken,
) -> Result<Ending, PlatformError> {
    let engine = &state.engine;
    let Some(env_id) = &op.environment else {
        let team = team_spec(state, &op.team)
            .await
            .map_err(|e| PlatformError::Engine(EngineError::Store(e)))?;
        let runs = [paddock_platform::team_stack(&team)?];
        let gate = policy_gate(state, op, None).await?;
        let outcomes = paddock_platform::up_gated(engine, &runs, sink, cancel, &gate).await;
        return gated(&gate, outcomes, cancel);
    };
    let env = state
        .db
        .environment_by_id(env_id)
        .await
        .map_err(|e| PlatformError::Engine(EngineError::Store(store_error(e))))?
        .ok_or_else(|| {
            PlatformError::Engine(EngineError::Store(store_error(db::DbError::Corrupt(
                format!("environment {env_id} is gone"),
            ))))
        })?;
    let params: EnvironmentParameters = serde_json::from_str(&env.parameters).map_err(|e| {
        PlatformError::Engine(EngineError::Store(store_error(db::DbError::Corrupt(
            e.to_string(),
        ))))
    })?;
    let spec = params.spec(&op.team, &env.name);
    // Rendered with the version it is on, or the one an upgrade brings it to.
    let version = target_version(op).unwrap_or_else(|| env.blueprint_version.clone());
    let bundle = match state.bundle(&version).await {
        Ok(b) => b,
        Err(e) => {
            return Ok(Ending::Finished {
                state: "failed",
                outcome: json!({"error": e.to_string()}),
            });
        }
    };
    let stages: Vec<Stage> = serde_json::from_str(&op.stages).unwrap_or_default();
    let selected = |runs: Vec<StackRun>| -> Vec<StackRun> {
        // The repository holds every stage's GitHub environment, so it is always whole.
        let repo = paddock_platform::repository_stack_name(&spec.team, &spec.app);
        runs.into_iter()
            .filter(|r| {
                r.stack == repo
                    || stages.iter().any(|s| {
                        r.stack == paddock_platform::stage_stack_name(&spec.team, &spec.app, *s)
                    })
            })
            .collect()
    };
    match op.kind.as_str() {
        "up" => {
            let runs = selected(bundle.environment_stacks(&spec, &state.settings)?);
            let gate = policy_gate(state, op, Some(&env)).await?;
            let outcomes = async {
                let mut outcomes =
                    paddock_platform::up_gated(engine, &runs, sink, cancel, &gate).await?;
                // Stages the environment no longer declares are destroyed, once the rest
                // stands.
                let retired = paddock_platform::retired_stage_stacks(&spec, &stages);
                if !retired.is_empty() && outcomes.iter().all(|o| o.report.succeeded()) {
                    outcomes.extend(
                        paddock_platform::destroy_gated(engine, &retired, sink, cancel, &gate)
                            .await?,
                    );
                }
                Ok(outcomes)
            }
            .await;
            gated(&gate, outcomes, cancel)
        }
        "destroy" => {
            let stacks = paddock_platform::environment_teardown(&spec);
            let gate = policy_gate(state, op, Some(&env)).await?;
            let outcomes =
                paddock_platform::destroy_gated(engine, &stacks, sink, cancel, &gate).await;
            gated(&gate, outcomes, cancel)
        }
        "preview" => {
            let runs = selected(bundle.environment_stacks(&spec, &state.settings)?);
            let mut plans = Vec::new();
            for run in &runs {
                let plan = engine.preview(&run.stack, &run.graph).await?;
                let _ = sink.tx.send((
                    "plan".into(),
                    json!({"stack": run.stack, "summary": plan.summary(), "plan": plan.to_json()}),
                ));
                plans.push(json!({"stack": run.stack, "summary": plan.summary()}));
            }
            Ok(Ending::Finished {
                state: "succeeded",
                outcome: json!({"plans": plans}),
            })
        }
        "refresh" => {
            let runs = selected(bundle.environment_stacks(&spec, &state.settings)?);
            let existing: Vec<String> = engine
                .list_stacks()
                .await?
                .into_iter()
                .map(|s| s.name)
                .collect();
            let mut drift = Vec::new();
            for run in runs.iter().filter(|r| existing.contains(&r.stack)) {
                let found = engine.refresh(&run.stack, false, sink).await?;
                drift.push(json!({"stack": run.stack, "drift": found}));
            }
            Ok(Ending::Finished {
                state: "succeeded",
                outcome: json!({"stacks": drift}),
            })
        }
        "import" => {
            let request: ImportRequest = op
                .request
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok())
                .unwrap_or_default();
            let Some(stage) = stages.first() else {
                return Ok(Ending::Finished {
                    state: "failed",
                    outcome: json!({"error": "an import names one stage"}),
                });
            };
            let stack = paddock_platform::stage_stack_name(&spec.team, &spec.app, *stage);
            sink.stack(&stack);
            let mut imported = Vec::new();
            for r in &request.resources {
                let state = engine.import(&stack, &r.ty, &r.name, &r.id).await?;
                let _ = sink.tx.send((
                    "imported".into(),
                    json!({"stack": stack, "resource": r.name, "ty": r.ty, "id": state.id}),
                ));
                imported.push(json!({"resource": r.name, "type": r.ty, "id": state.id}));
            }
            Ok(Ending::Finished {
                state: "succeeded",
                outcome: json!({"stack": stack, "imported": imported}),
            })
        }
        "accept-drift" => Ok(
            match crate::lifecycle::accept(state, op, &spec, &bundle).await? {
                Ok(outcome) => {
                    let _ = sink.tx.send(("driftAccepted".into(), outcome.clone()));
                    Ending::Finished {
                        state: "succeeded",
                        outcome,
                    }
                }
                Err(error) => Ending::Finished {
                    state: "failed",
                    outcome: json!({"error": error}),
                },
            },
        ),
        other => Ok(Ending::Finished {
            state: "failed",
            outcome: json!({"error": format!("unknown operation kind `{other}`")}),
        }),
    }
}

/// The policy gate for `op`'s run.
async fn policy_gate<'a>(
    state: &'a AppState,
    op: &'a db::Operation,
    env: Option<&db::Environment>,
) -> Result<PolicyGate<'a>, PlatformError> {
    let context = gate::Context::of(state, op, env)
        .await
        .map_err(|e| PlatformError::Engine(EngineError::Store(store_error(e))))?;
    Ok(PolicyGate::new(state, &op.id, context))
}

/// The ending of a gated run: as its stacks ended, or as the gate stopped it (denied by
/// policy, or waiting for approval). The gate's decisions go into the outcome.
fn gated(
    gate: &PolicyGate<'_>,
    outcomes: Result<Vec<StackOutcome>, PlatformError>,
    cancel: &CancellationToken,
) -> Result<Ending, PlatformError> {
    let stopped = match outcomes {
        Ok(outcomes) => {
            let mut ending = ended(outcomes, cancel);
            if let Ending::Finished { outcome, .. } = &mut ending {
                let decisions = gate.decisions();
                if !decisions.is_empty() {
                    outcome["policy"] = json!(decisions);
                }
            }
            return Ok(ending);
        }
        Err(PlatformError::Engine(EngineError::Halted { .. })) => match gate.take_stop() {
            Some(stop) => stop,
            None => return Err(PlatformError::Engine(EngineError::Cancelled)),
        },
        Err(e) => return Err(e),
    };
    Ok(match stopped {
        Stop::NeedsApproval {
            stack,
            plan_hash,
            plan,
            reasons,
        } => Ending::Waiting {
            stack,
            plan_hash,
            plan,
            reasons,
        },
        Stop::Denied { stack, reasons } => Ending::Finished {
            state: "failed",
            outcome: json!({
                "failure": {
                    "stack": stack,
                    "code": "PolicyDenied",
                    "message": format!("denied by policy: {}", gate::describe(&reasons)),
                    "rules": reasons,
                    "whatToDo": "change the request so that it meets the rules named, or ask a platform admin about the policy",
                },
                "policy": gate.decisions(),
            }),
        },
        Stop::Unavailable { stack, message } => Ending::Finished {
            state: "failed",
            outcome: json!({
                "failure": {
                    "stack": stack,
                    "code": "PolicyUnavailable",
                    "message": message,
                    "whatToDo": "a platform admin should check the active policy pack (`paddock policy test`); then retry the operation",
                },
            }),
        },
    })
}

/// The blueprint version an `up` upgrades its environment to, if it is an upgrade.
pub(crate) fn target_version(op: &db::Operation) -> Option<String> {
    let request: serde_json::Value = serde_json::from_str(op.request.as_deref()?).ok()?;
    request["targetVersion"].as_str().map(str::to_owned)
}

/// What an import operation was asked to adopt.
#[derive(Default, serde::Deserialize)]
struct ImportRequest {
    resources: Vec<crate::views::ImportResource>,
}

fn store_error(e: db::DbError) -> paddock_engine::state::StoreError {
    paddock_engine::state::StoreError::Backend(e.to_string())
}

/// The team as its stack needs it: admins and contributors by login.
async fn team_spec(
    state: &AppState,
    team: &str,
) -> Result<TeamSpec, paddock_engine::state::StoreError> {
    let t = state.db.team(team).await.map_err(store_error)?;
    let members = state.db.members(team).await.map_err(store_error)?;
    let of = |role: Role| -> Vec<String> {
        members
            .iter()
            .filter(|m| m.role == role.name())
            .map(|m| m.login.clone())
            .collect()
    };
    Ok(TeamSpec {
        name: team.to_owned(),
        description: t.map(|t| t.description).unwrap_or_default(),
        admins: of(Role::Admin),
        contributors: of(Role::Contributor),
    })
}

/// The operation's result from its stacks' reports: for each failure, the resource, the
/// cloud's code and message (with what to do).
fn ended(outcomes: Vec<StackOutcome>, cancel: &CancellationToken) -> Ending {
    let succeeded = outcomes.iter().all(|o| o.report.succeeded());
    let cancelled =
        outcomes.iter().any(|o| o.report.cancelled) || (cancel.is_cancelled() && !succeeded);
    let stacks: Vec<serde_json::Value> = outcomes
        .iter()
        .map(|o| {
            json!({
                "stack": o.stack,
                "done": o.report.done,
                "failures": o.report.failures,
                "skipped": o.report.skipped.iter().map(|(r, why)| json!({"resource": r, "reason": why})).collect::<Vec<_>>(),
                "cancelled": o.report.cancelled,
            })
        })
        .collect();
    let state = if succeeded {
        "succeeded"
    } else if cancelled {
        "cancelled"
    } else {
        "failed"
    };
    let mut outcome = json!({"stacks": stacks});
    if let Some((stack, f)) = outcomes
        .iter()
        .find_map(|o| o.report.failures.first().map(|f| (&o.stack, f)))
    {
        outcome["failure"] = json!({
            "stack": stack,
            "resource": f.resource,
            "type": f.ty,
            "code": f.code,
            "message": f.message,
            "retryable": f.retryable,
            "whatToDo": "fix the cause the message names, then retry the operation (POST /api/v1/operations/{id}/retry or `paddock op retry`); steps that succeeded are not repeated",
        });
    }
    Ending::Finished { state, outcome }
}
