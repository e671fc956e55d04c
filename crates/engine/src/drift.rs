//! Drift: what changed in the clouds behind Paddock's back, found by reading every
//! resource of a stack (`refresh`), and accepted where the blueprint allows it
//! (`accept_drift`).
//!
//! A refresh reads the resources concurrently — at most `parallelism` calls in flight per
//! provider, as `up` — and reports them in state order, so its output is stable. It
//! records the cloud's values in state (unless a dry run), so the next plan reverts them.
//!
//! Accepting drift keeps the cloud's value instead: the resource's state records, per
//! property, the value the blueprint declared and the value accepted in its place, and
//! plans use the accepted value for as long as the blueprint declares the same thing
//! (see [`crate::plan::with_accepted`]). A property may be accepted only if the
//! blueprint lists it in the resource's `acceptDrift` option.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::graph::{Diagnostic, Diagnostics, Site};
use crate::provider::ReadResult;
use crate::state::ResourceState;
use crate::value::{Props, Value};
use crate::{DesiredGraph, Engine, EngineError, Event, EventSink, apply, plan};

/// Drift found by refresh for one resource.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Drift {
    pub resource: String,
    #[serde(rename = "type")]
    pub ty: String,
    /// `changed`, `deleted` or `unchanged`.
    pub change: &'static str,
    /// The top-level properties that changed.
    pub properties: Vec<String>,
    /// Each changed value, down to the key of a map that changed (`tags.owner`).
    pub diff: Vec<DriftedProperty>,
}

/// One value that differs between state and the cloud; secrets as `"[secret]"`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftedProperty {
    /// Dotted path: `size`, `tags.owner`.
    pub path: String,
    /// What Paddock last recorded; absent if the property was not there.
    pub state: Option<serde_json::Value>,
    /// What the cloud has now; absent if the property was removed.
    pub cloud: Option<serde_json::Value>,
}

/// One property whose drift was accepted; secrets as `"[secret]"`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AcceptedDrift {
    pub resource: String,
    pub property: String,
    /// What the blueprint declares (and will stop enforcing while it declares this).
    pub declared: Option<serde_json::Value>,
    /// The cloud's value, kept.
    pub accepted: Option<serde_json::Value>,
}

/// The values that differ between `state` and `cloud`, maps compared key by key.
pub fn diff_props(state: &Props, cloud: &Props) -> Vec<DriftedProperty> {
    let mut out = Vec::new();
    let mut keys: Vec<&String> = state.keys().chain(cloud.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        diff_value(k.clone(), state.get(k), cloud.get(k), &mut out);
    }
    out
}

fn diff_value(path: String, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<DriftedProperty>) {
    if a == b {
        return;
    }
    if let (Some(Value::Map(a)), Some(Value::Map(b))) = (a, b) {
        let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            diff_value(format!("{path}.{k}"), a.get(k), b.get(k), out);
        }
        return;
    }
    out.push(DriftedProperty {
        path,
        state: a.map(Value::to_redacted_json),
        cloud: b.map(Value::to_redacted_json),
    });
}

fn invalid(field: &str, message: String) -> EngineError {
    EngineError::Invalid(Diagnostics(vec![Diagnostic {
        site: Site::field(field),
        message,
    }]))
}

impl Engine {
    /// Reads every resource from its provider and records what changed outside Paddock.
    /// With `dry_run`, only reports. Reads run concurrently, `parallelism` per provider;
    /// the drift comes back in state order.
    pub async fn refresh(
        &self,
        stack: &str,
        dry_run: bool,
        sink: &dyn EventSink,
    ) -> Result<Vec<Drift>, EngineError> {
        sink.stack(stack);
        let lease = self
            .acquire(stack, "refresh", CancellationToken::new())
            .await?;
        let fence = lease.fence();
        let result = async {
            let state = self.recover(fence, sink).await?;
            let reads = self.read_all(&state.resources).await;
            let applier = self.applier(fence, &state.cipher, sink, &CancellationToken::new());
            let mut drifts = Vec::with_capacity(reads.len());
            for (r, read) in state.resources.iter().zip(reads) {
                let (drift, updated) = match read? {
                    None => (
                        Drift {
                            resource: r.name.clone(),
                            ty: r.ty.clone(),
                            change: "deleted",
                            properties: Vec::new(),
                            diff: Vec::new(),
                        },
                        None,
                    ),
                    Some(read) => {
                        let inputs = read.inputs.map_or_else(
                            || r.inputs.clone(),
                            |i| applier.mark_outputs(&r.ty, &r.inputs, i),
                        );
                        let outputs = applier.mark_outputs(&r.ty, &r.inputs, read.outputs);
                        let mut diff = diff_props(&r.inputs, &inputs);
                        // Outputs that are also inputs were compared as inputs.
                        let of_outputs = diff_props(&r.outputs, &outputs);
                        diff.extend(of_outputs.into_iter().filter(|d| {
                            !r.inputs.contains_key(top_level(&d.path))
                                && !inputs.contains_key(top_level(&d.path))
                        }));
                        diff.sort_by(|a, b| a.path.cmp(&b.path));
                        let mut properties: Vec<String> =
                            diff.iter().map(|d| top_level(&d.path).to_owned()).collect();
                        properties.dedup();
                        let changed = !diff.is_empty();
                        let drift = Drift {
                            resource: r.name.clone(),
                            ty: r.ty.clone(),
                            change: if changed { "changed" } else { "unchanged" },
                            properties,
                            diff,
                        };
                        let updated = changed.then(|| ResourceState {
                            inputs,
                            outputs,
                            ..r.clone()
                        });
                        (drift, updated)
                    }
                };
                if drift.change != "unchanged" {
                    sink.emit(&Event::Drift {
                        resource: r.name.clone(),
                        change: drift.change.into(),
                    });
                }
                if !dry_run {
                    match (&updated, drift.change) {
                        (Some(u), _) => {
                            self.store
                                .put_resource(fence, &u.to_record(&state.cipher))
                                .await?
                        }
                        (None, "deleted") => self.store.remove_resource(fence, &r.instance).await?,
                        _ => {}
                    }
                }
                drifts.push(drift);
            }
            Ok(drifts)
        }
        .await;
        lease.release(result).await
    }

    /// Reads each resource, at most `parallelism` reads in flight per provider; the
    /// results in the resources' order.
    async fn read_all(
        &self,
        resources: &[ResourceState],
    ) -> Vec<Result<Option<ReadResult>, EngineError>> {
        let slots: HashMap<&str, Arc<Semaphore>> = self
            .providers
            .names()
            .into_iter()
            .map(|name| {
                (
                    name,
                    Arc::new(Semaphore::new(self.options.parallelism.max(1))),
                )
            })
            .collect();
        let slots = &slots;
        futures_util::future::join_all(resources.iter().map(|r| async move {
            let provider = self
                .providers
                .for_type(&r.ty)
                .ok_or_else(|| EngineError::UnknownType(r.ty.clone()))?;
            let prefix = r.ty.split(':').next().unwrap_or(&r.ty);
            let _slot = match slots.get(prefix) {
                Some(s) => Some(s.acquire().await.expect("slots are never closed")),
                None => None,
            };
            provider
                .read(&r.ty, &r.id, &apply::prior(r))
                .await
                .map_err(|error| EngineError::Provider {
                    resource: r.name.clone(),
                    error,
                })
        }))
        .await
    }

    /// Accepts the drift of `properties` of `resource`: the cloud's values (as the last
    /// refresh recorded them) are kept in place of what `graph` declares, for as long as
    /// it declares the same. Each property must be in the resource's `acceptDrift`
    /// option. A property whose cloud value already matches the blueprint has nothing to
    /// accept (an earlier acceptance of it is dropped).
    pub async fn accept_drift(
        &self,
        stack: &str,
        graph: &DesiredGraph,
        resource: &str,
        properties: &[String],
    ) -> Result<Vec<AcceptedDrift>, EngineError> {
        let valid = graph.validate(&self.providers)?;
        let spec = graph
            .resources
            .iter()
            .find(|r| r.name == resource)
            .ok_or_else(|| {
                invalid(
                    "resource",
                    format!("stack `{stack}` declares no resource `{resource}`"),
                )
            })?;
        for (i, p) in properties.iter().enumerate() {
            if !spec.options.accept_drift.contains(p) {
                let allowed = if spec.options.accept_drift.is_empty() {
                    "none of its properties".to_owned()
                } else {
                    spec.options.accept_drift.join(", ")
                };
                return Err(invalid(
                    &format!("properties[{i}]"),
                    format!(
                        "the blueprint does not let drift of `{resource}.{p}` be accepted \
                         (its acceptDrift option allows: {allowed}); reconcile it instead"
                    ),
                ));
            }
        }
        if properties.is_empty() {
            return Err(invalid(
                "properties",
                "name at least one property whose drift to accept".into(),
            ));
        }
        let lease = self
            .acquire(stack, "accept-drift", CancellationToken::new())
            .await?;
        let fence = lease.fence();
        let result = async {
            let state = self.recover(fence, &crate::Discard).await?;
            let mut resources = state.resources.clone();
            let at = resources
                .iter()
                .position(|r| r.name == resource && !r.delete_pending)
                .ok_or_else(|| {
                    invalid(
                        "resource",
                        format!(
                            "`{resource}` is not in stack `{stack}`'s state; bring it up first"
                        ),
                    )
                })?;
            // Plan as if nothing were accepted yet, so the diffs show what the blueprint
            // itself declares.
            for p in properties {
                resources[at].accepted.remove(p);
            }
            let refs = self.stack_refs(graph).await?;
            let plan = plan::plan(stack, &valid, &resources, 0, &refs, &self.providers).await?;
            let step = plan.steps.iter().find(|s| s.name == resource);
            let mut updated = resources[at].clone();
            let mut accepted = Vec::new();
            for (i, p) in properties.iter().enumerate() {
                let Some(d) = step.and_then(|s| s.diffs.iter().find(|d| &d.property == p)) else {
                    continue;
                };
                if d.new.as_ref().is_some_and(Value::contains_unknown) {
                    return Err(invalid(
                        &format!("properties[{i}]"),
                        format!(
                            "the blueprint's value of `{resource}.{p}` is not known until \
                             the next apply; bring the stack up first"
                        ),
                    ));
                }
                let mut entry = Props::new();
                if let Some(declared) = &d.new {
                    entry.insert("declared".into(), declared.clone());
                }
                if let Some(cloud) = updated.inputs.get(p) {
                    entry.insert("accepted".into(), cloud.clone());
                }
                accepted.push(AcceptedDrift {
                    resource: resource.to_owned(),
                    property: p.clone(),
                    declared: d.new.as_ref().map(Value::to_redacted_json),
                    accepted: updated.inputs.get(p).map(Value::to_redacted_json),
                });
                updated.accepted.insert(p.clone(), Value::Map(entry));
            }
            if updated.accepted != state.resources[at].accepted {
                self.store
                    .put_resource(fence, &updated.to_record(&state.cipher))
                    .await?;
            }
            Ok(accepted)
        }
        .await;
        lease.release(result).await
    }
}

fn top_level(path: &str) -> &str {
    path.split('.').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(json: serde_json::Value) -> Props {
        match Value::from_json(json) {
            Value::Map(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_diff_names_each_changed_key_of_a_map_and_hides_secrets() {
        let mut state = props(serde_json::json!({
            "name": "a", "size": 1, "tags": {"team": "payments", "owner": "ada"}
        }));
        state.insert("password".into(), Value::secret(Value::from("old")));
        let mut cloud = props(serde_json::json!({
            "name": "a", "size": 2, "tags": {"team": "payments", "costCenter": "42"}
        }));
        cloud.insert("password".into(), Value::secret(Value::from("new")));
        let diff = diff_props(&state, &cloud);
        let lines: Vec<String> = diff
            .iter()
            .map(|d| {
                format!(
                    "{}: {} -> {}",
                    d.path,
                    d.state
                        .as_ref()
                        .map_or("(absent)".into(), |v| v.to_string()),
                    d.cloud
                        .as_ref()
                        .map_or("(absent)".into(), |v| v.to_string())
                )
            })
            .collect();
        assert_eq!(
            lines,
            [
                "password: \"[secret]\" -> \"[secret]\"",
                "size: 1 -> 2",
                "tags.costCenter: (absent) -> \"42\"",
                "tags.owner: \"ada\" -> (absent)",
            ]
        );
    }

    #[test]
    fn accepted_drift_stands_in_only_while_the_blueprint_declares_the_same() {
        let mut accepted = Props::new();
        accepted.insert(
            "size".into(),
            Value::Map(props(serde_json::json!({"declared": 1, "accepted": 7}))),
        );
        let declared = props(serde_json::json!({"name": "a", "size": 1}));
        assert_eq!(
            plan::with_accepted(declared, &accepted)["size"],
            Value::Int(7)
        );
        let changed = props(serde_json::json!({"name": "a", "size": 3}));
        assert_eq!(
            plan::with_accepted(changed, &accepted)["size"],
            Value::Int(3)
        );
    }
}
