//! What an operation reports while it runs: one event per step change, so that a CLI can
//! draw progress and a server can store and stream them. Events never carry secret values.

use serde::Serialize;

use crate::plan::StepKind;

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum Event {
    /// The plan to be applied is known.
    #[serde(rename_all = "camelCase")]
    Planned {
        steps: usize,
        changes: usize,
        hash: String,
    },
    /// A journal entry of an interrupted run was settled.
    #[serde(rename_all = "camelCase")]
    Reconciled { resource: String, outcome: String },
    #[serde(rename_all = "camelCase")]
    StepStarted {
        resource: String,
        ty: String,
        kind: StepKind,
    },
    #[serde(rename_all = "camelCase")]
    StepSucceeded {
        resource: String,
        ty: String,
        kind: StepKind,
        elapsed_ms: u64,
    },
    #[serde(rename_all = "camelCase")]
    StepFailed {
        resource: String,
        ty: String,
        kind: StepKind,
        code: Option<String>,
        message: String,
    },
    #[serde(rename_all = "camelCase")]
    StepSkipped { resource: String, reason: String },
    #[serde(rename_all = "camelCase")]
    Drift { resource: String, change: String },
}

/// Receives events. Must be cheap and never block: it runs on the engine's task.
pub trait EventSink: Send + Sync {
    fn emit(&self, event: &Event);

    /// The events that follow are about this stack (until the next call): one sink may
    /// follow several stacks run one after another.
    fn stack(&self, _name: &str) {}
}

/// A sink that drops everything.
pub struct Discard;

impl EventSink for Discard {
    fn emit(&self, _: &Event) {}
}

impl<F: Fn(&Event) + Send + Sync> EventSink for F {
    fn emit(&self, event: &Event) {
        self(event)
    }
}
