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

/// A part of an operation that took time, reported to [`EventSink::timing`] so that
/// benchmarks can say where an operation's time went. Never stored or streamed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    /// The stack's record made if missing (a new data key, wrapped).
    CreateStack,
    LeaseAcquire,
    /// State read and decrypted; an interrupted run's journal settled.
    Recover,
    /// Referenced stacks' outputs read and decrypted.
    StackRefs,
    Plan,
    /// The whole walk of the steps, then the deletions.
    Apply,
    Outputs,
    LeaseRelease,
    /// One step from when its dependencies were done to its end (resource set).
    Step,
    /// A step's inputs evaluated, diffed and checked.
    Prepare,
    /// A step waiting for one of its provider's call slots.
    SlotWait,
    /// The step's journal entry written (durable) before the provider call.
    JournalBegin,
    ProviderCall,
    /// The result recorded and the journal entry removed, in one transaction.
    JournalComplete,
}

/// How long a [`Phase`] took: of a stack, or of one step (`resource`).
#[derive(Clone, Copy, Debug)]
pub struct Timing<'a> {
    pub stack: &'a str,
    pub resource: Option<&'a str>,
    pub phase: Phase,
    pub started: std::time::Instant,
    pub elapsed: std::time::Duration,
}

/// Receives events. Must be cheap and never block: it runs on the engine's task.
pub trait EventSink: Send + Sync {
    fn emit(&self, event: &Event);

    /// A part of the operation took this long (for benchmarks; ignored by default).
    fn timing(&self, _timing: &Timing<'_>) {}

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

/// Runs `work`, reporting to `sink` how long it took as `phase` of `stack`.
pub(crate) async fn timed<T>(
    sink: &dyn EventSink,
    stack: &str,
    phase: Phase,
    work: impl std::future::Future<Output = T>,
) -> T {
    let started = std::time::Instant::now();
    let result = work.await;
    sink.timing(&Timing {
        stack,
        resource: None,
        phase,
        started,
        elapsed: started.elapsed(),
    });
    result
}
