//! The worker's part of day two: running an `accept-drift` operation, and what a finished
//! operation changes in the recorded drift and expiry (in the worker's finishing
//! transaction, with its audit record).

use paddock_engine::EngineError;
use paddock_platform::{Bundle, EnvironmentSpec, PlatformError};
use paddock_store::db::{self, WriteTx};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::AppState;
use crate::api::DriftDiff;

/// A stack's drift as recorded: only the resources that drifted.
#[derive(Serialize, Deserialize)]
pub(crate) struct RecordedStack {
    pub stack: String,
    pub resources: Vec<RecordedResource>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct RecordedResource {
    pub resource: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub change: String,
    pub properties: Vec<String>,
    pub diff: Vec<DriftDiff>,
}

/// What an `accept-drift` operation was asked to do.
#[derive(Deserialize)]
struct AcceptRequest {
    stack: String,
    resource: String,
    properties: Vec<String>,
}

/// Runs an `accept-drift` operation against the environment as `bundle` (its blueprint
/// version) renders it: its outcome (what was accepted), or why it could not.
pub(crate) async fn accept(
    state: &AppState,
    op: &db::Operation,
    spec: &EnvironmentSpec,
    bundle: &Bundle,
) -> Result<Result<serde_json::Value, String>, PlatformError> {
    let Some(req) = op
        .request
        .as_deref()
        .and_then(|r| serde_json::from_str::<AcceptRequest>(r).ok())
    else {
        return Ok(Err("the operation does not say what to accept".into()));
    };
    let runs = bundle.environment_stacks(spec, &state.settings)?;
    let Some(run) = runs.iter().find(|r| r.stack == req.stack) else {
        return Ok(Err(format!(
            "the environment no longer has stack `{}`",
            req.stack
        )));
    };
    match state
        .engine
        .accept_drift(&run.stack, &run.graph, &req.resource, &req.properties)
        .await
    {
        Ok(accepted) => Ok(Ok(json!({
            "stack": req.stack,
            "resource": req.resource,
            "accepted": accepted,
        }))),
        Err(EngineError::Invalid(d)) => Ok(Err(d.to_string())),
        Err(e) => Err(PlatformError::Engine(e)),
    }
}

/// The drift a refresh's outcome reports, as recorded (resources that drifted only).
fn recorded(outcome: &serde_json::Value) -> Vec<RecordedStack> {
    let Some(stacks) = outcome["stacks"].as_array() else {
        return Vec::new();
    };
    stacks
        .iter()
        .filter_map(|s| {
            let resources: Vec<RecordedResource> = s["drift"]
                .as_array()?
                .iter()
                .filter(|d| d["change"] != "unchanged")
                .filter_map(|d| {
                    Some(RecordedResource {
                        resource: d["resource"].as_str()?.to_owned(),
                        ty: d["type"].as_str()?.to_owned(),
                        change: d["change"].as_str()?.to_owned(),
                        properties: serde_json::from_value(d["properties"].clone())
                            .unwrap_or_default(),
                        diff: serde_json::from_value(d["diff"].clone()).unwrap_or_default(),
                    })
                })
                .collect();
            (!resources.is_empty()).then(|| RecordedStack {
                stack: s["stack"].as_str().unwrap_or_default().to_owned(),
                resources,
            })
        })
        .collect()
}

fn count(stacks: &[RecordedStack]) -> i64 {
    stacks.iter().map(|s| s.resources.len() as i64).sum()
}

/// Updates the recorded drift and expiry for a finished operation, in `tx`. Returns
/// whether the environment no longer has drift recorded that it had (so a `drifted`
/// environment is `ready` again).
pub(crate) async fn finished(
    tx: &mut WriteTx,
    op: &db::Operation,
    end: &str,
    outcome: &serde_json::Value,
    now: i64,
) -> Result<bool, db::DbError> {
    let Some(env) = &op.environment else {
        return Ok(false);
    };
    if end != "succeeded" {
        return Ok(false);
    }
    match op.kind.as_str() {
        "refresh" => {
            let found = recorded(outcome);
            if found.is_empty() {
                let had = tx.drift_report(env).await?.is_some();
                tx.clear_drift(env).await?;
                return Ok(had);
            }
            tx.put_drift(&db::DriftReport {
                environment_id: env.clone(),
                operation_id: op.id.clone(),
                found_at: now,
                resources: count(&found),
                drift: serde_json::to_string(&found).unwrap_or_else(|_| "[]".into()),
            })
            .await?;
            Ok(false)
        }
        "up" => {
            tx.clear_drift(env).await?;
            Ok(false)
        }
        "destroy" => {
            tx.clear_drift(env).await?;
            tx.clear_expiry(env).await?;
            Ok(false)
        }
        "accept-drift" => {
            let Some(report) = tx.drift_report(env).await? else {
                return Ok(false);
            };
            let stack = outcome["stack"].as_str().unwrap_or_default();
            let resource = outcome["resource"].as_str().unwrap_or_default();
            let accepted: Vec<&str> = outcome["accepted"]
                .as_array()
                .map(|a| a.iter().filter_map(|x| x["property"].as_str()).collect())
                .unwrap_or_default();
            let mut stacks: Vec<RecordedStack> =
                serde_json::from_str(&report.drift).unwrap_or_default();
            for s in stacks.iter_mut().filter(|s| s.stack == stack) {
                for r in s.resources.iter_mut().filter(|r| r.resource == resource) {
                    r.properties.retain(|p| !accepted.contains(&p.as_str()));
                    r.diff.retain(|d| {
                        let top = d.path.split('.').next().unwrap_or(&d.path);
                        !accepted.contains(&top)
                    });
                }
                s.resources
                    .retain(|r| !r.properties.is_empty() || r.change == "deleted");
            }
            stacks.retain(|s| !s.resources.is_empty());
            if stacks.is_empty() {
                tx.clear_drift(env).await?;
                return Ok(true);
            }
            tx.put_drift(&db::DriftReport {
                resources: count(&stacks),
                drift: serde_json::to_string(&stacks).unwrap_or_else(|_| "[]".into()),
                ..report
            })
            .await?;
            Ok(false)
        }
        _ => Ok(false),
    }
}
