//! Apply: walks the plan's DAG in parallel, journaling every mutating provider call, and
//! settles the journal of an interrupted run.
//!
//! Invariant: no provider call that changes the world is made without a durable journal
//! entry first; the entry is removed in the same transaction that records the result. So a
//! crash at any instant leaves either a recorded resource or a journal entry from which
//! `reconcile` can find (by creation token / natural key) what the call did.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::events::{Event, EventSink, Phase, Timing};
use crate::graph::{Reference, ResourceOptions, ValidGraph};
use crate::plan::{self, Plan, Step, StepKind};
use crate::provider::{ProviderError, ProviderRegistry, ResourceRef};
use crate::secrets::StackCipher;
use crate::state::{
    Fence, JournalEntry, JournalKind, ResourceState, StateChange, StateStore, now_ms,
};
use crate::value::{Props, Value, reveal_props};
use crate::{EngineError, new_id};

/// Why a step failed, as reported to the user: the cloud's code kept.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    pub resource: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub kind: StepKind,
    pub code: Option<String>,
    pub message: String,
    /// The provider says the same call may succeed later (a throttled or unwell cloud):
    /// retrying the operation is what to do.
    pub retryable: bool,
}

/// The result of an apply.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyReport {
    /// Steps carried out, by kind.
    pub done: BTreeMap<StepKind, usize>,
    pub failures: Vec<Failure>,
    pub skipped: Vec<(String, String)>,
    pub cancelled: bool,
    pub plan_hash: String,
    /// Latency of each journal write, in milliseconds.
    #[serde(skip)]
    pub journal_write_ms: Vec<f64>,
}

impl ApplyReport {
    pub fn succeeded(&self) -> bool {
        self.failures.is_empty() && !self.cancelled && self.skipped.is_empty()
    }
}

/// How a node of the walk ended.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Outcome {
    Done,
    Failed,
    Skipped(Skip),
}

/// Why a node did not run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Skip {
    Cancelled,
    /// A node it depends on (directly or not) failed: that node.
    DependencyFailed(usize),
}

/// Walks a DAG: a node runs once all its dependencies are done. A node that did not
/// succeed makes its dependents skipped; independent branches go on. Once `cancel` fires
/// no new node starts, and the walk waits for the running ones. At most `max_running`
/// nodes are under way, which bounds memory; provider concurrency is bounded where
/// provider calls are made (see [`Applier`]).
pub(crate) async fn walk<Fut>(
    deps: &[Vec<usize>],
    max_running: usize,
    cancel: &CancellationToken,
    mut run: impl FnMut(usize) -> Fut,
) -> Vec<Outcome>
where
    Fut: Future<Output = Outcome>,
{
    let n = deps.len();
    let mut waiting: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            dependents[d].push(i);
        }
    }
    let mut outcome: Vec<Option<Outcome>> = vec![None; n];
    let mut ready: VecDeque<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
    let mut running = FuturesUnordered::new();
    loop {
        if !cancel.is_cancelled() {
            while running.len() < max_running {
                let Some(i) = ready.pop_front() else { break };
                let fut = run(i);
                running.push(async move { (i, fut.await) });
            }
        }
        let Some((i, result)) = running.next().await else {
            break;
        };
        if result == Outcome::Done {
            for &j in &dependents[i] {
                waiting[j] -= 1;
                if waiting[j] == 0 && outcome[j].is_none() {
                    ready.push_back(j);
                }
            }
        } else {
            let reason = match result {
                Outcome::Skipped(skip) => skip,
                _ => Skip::DependencyFailed(i),
            };
            let mut stack = dependents[i].clone();
            while let Some(j) = stack.pop() {
                if outcome[j].is_none() {
                    outcome[j] = Some(Outcome::Skipped(reason));
                    stack.extend(&dependents[j]);
                }
            }
        }
        outcome[i] = Some(result);
    }
    outcome
        .into_iter()
        .map(|o| o.unwrap_or(Outcome::Skipped(Skip::Cancelled)))
        .collect()
}

/// Carries out steps for one stack: provider calls bracketed by journal writes.
pub(crate) struct Applier<'a> {
    /// Provider calls in flight, bounded per provider.
    pub slots: HashMap<String, Arc<Semaphore>>,
    /// Steps under way at once: enough to keep every provider's slots busy, and more
    /// preparing (evaluating inputs, writing journal entries). Bounds memory.
    pub max_running: usize,
    pub cancel: CancellationToken,
    /// The stack, and the operation whose lease every write is fenced by.
    pub fence: Fence<'a>,
    pub store: &'a dyn StateStore,
    pub cipher: &'a StackCipher,
    pub providers: &'a ProviderRegistry,
    pub sink: &'a dyn EventSink,
    pub journal_ms: Mutex<Vec<f64>>,
    /// Set when a write was fenced off: the operation lost its lease.
    pub lease_lost: std::sync::atomic::AtomicBool,
    /// When each announced step got its slot: a step's time excludes its wait.
    pub started: Mutex<HashMap<String, Instant>>,
}

/// What a step wants a resource to be.
#[derive(Clone, Copy)]
pub(crate) struct Intent<'a> {
    pub name: &'a str,
    pub ty: &'a str,
    pub inputs: &'a Props,
    pub deps: &'a [String],
    pub options: &'a ResourceOptions,
}

/// Reports the steps that did not run, and why, naming the failed step they waited on.
fn report_skips<'n>(
    sink: &dyn EventSink,
    report: &mut ApplyReport,
    outcomes: &[Outcome],
    name: impl Fn(usize) -> &'n str,
) {
    for (i, o) in outcomes.iter().enumerate() {
        if let Outcome::Skipped(skip) = o {
            let reason = match skip {
                Skip::Cancelled => "cancelled".to_owned(),
                Skip::DependencyFailed(j) => format!("depends on `{}`, which failed", name(*j)),
            };
            sink.emit(&Event::StepSkipped {
                resource: name(i).to_owned(),
                reason: reason.clone(),
            });
            report.skipped.push((name(i).to_owned(), reason));
        }
    }
}

/// Reports a failed step: an event, and a line in the report with the cloud's code.
fn record_failure(
    sink: &dyn EventSink,
    report: &Mutex<ApplyReport>,
    resource: &str,
    ty: &str,
    kind: StepKind,
    error: EngineError,
) -> Outcome {
    if let EngineError::Cancelled = error {
        return Outcome::Skipped(Skip::Cancelled);
    }
    let (code, message, retryable) = match &error {
        EngineError::Provider { error, .. } => {
            (Some(error.code.clone()), error.to_string(), error.retryable)
        }
        other => (None, other.to_string(), false),
    };
    sink.emit(&Event::StepFailed {
        resource: resource.to_owned(),
        ty: ty.to_owned(),
        kind,
        code: code.clone(),
        message: message.clone(),
    });
    report.lock().expect("report lock").failures.push(Failure {
        resource: resource.to_owned(),
        ty: ty.to_owned(),
        kind,
        code,
        message,
        retryable,
    });
    Outcome::Failed
}

/// A resource's recorded inputs and outputs merged, secrets revealed: what a provider
/// gets as prior state.
pub(crate) fn prior(r: &ResourceState) -> Props {
    let mut props = reveal_props(&r.inputs);
    props.extend(reveal_props(&r.outputs));
    props
}

pub(crate) fn urn(stack: &str, ty: &str, name: &str) -> String {
    format!("paddock:{stack}:{ty}:{name}")
}

impl Applier<'_> {
    async fn timed<T>(
        &self,
        f: impl Future<Output = Result<T, crate::state::StoreError>>,
    ) -> Result<T, EngineError> {
        let start = Instant::now();
        let r = match f.await {
            Err(crate::state::StoreError::LeaseLost(stack)) => {
                // Fenced off: another operation holds the stack now. Start nothing more.
                self.lease_lost
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                self.cancel.cancel();
                return Err(crate::state::StoreError::LeaseLost(stack).into());
            }
            other => other?,
        };
        self.journal_ms
            .lock()
            .expect("journal timings lock")
            .push(start.elapsed().as_secs_f64() * 1000.0);
        Ok(r)
    }

    /// Reports to the sink that `phase` of the step on `resource` ran since `started`.
    fn took(&self, resource: &str, phase: Phase, started: Instant) {
        self.sink.timing(&Timing {
            stack: self.fence.stack,
            resource: Some(resource),
            phase,
            started,
            elapsed: started.elapsed(),
        });
    }

    fn provider(&self, ty: &str) -> Result<&dyn crate::provider::Provider, EngineError> {
        self.providers
            .for_type(ty)
            .map(|p| p.as_ref())
            .ok_or_else(|| EngineError::UnknownType(ty.to_owned()))
    }

    /// Milliseconds since the step on `name` got its provider slot.
    fn elapsed_ms(&self, name: &str) -> u64 {
        self.started
            .lock()
            .expect("started lock")
            .remove(name)
            .map_or(0, |t| t.elapsed().as_millis() as u64)
    }

    /// Provider outputs, with secrets marked: those the schema declares, and any output
    /// that echoes a secret input.
    pub(crate) fn mark_outputs(&self, ty: &str, inputs: &Props, outputs: Props) -> Props {
        let outputs = match self.providers.schema(ty) {
            Some(s) => s.mark_secrets(outputs),
            None => outputs,
        };
        outputs
            .into_iter()
            .map(|(k, v)| {
                let secret_input = inputs.get(&k).is_some_and(Value::contains_secret);
                (k, if secret_input { Value::secret(v) } else { v })
            })
            .collect()
    }

    fn entry(
        &self,
        kind: JournalKind,
        intent: &Intent<'_>,
        instance: &str,
        id: Option<&str>,
        replaces: Option<&str>,
    ) -> JournalEntry {
        JournalEntry {
            op_id: new_id(),
            kind,
            name: intent.name.to_owned(),
            ty: intent.ty.to_owned(),
            instance: instance.to_owned(),
            id: id.map(str::to_owned),
            inputs: self.cipher.seal_props(intent.inputs),
            dependencies: intent.deps.to_vec(),
            options: intent.options.clone(),
            replaces: replaces.map(str::to_owned),
            started_at_ms: now_ms(),
        }
    }

    fn provider_failed(&self, name: &str, error: ProviderError) -> EngineError {
        EngineError::Provider {
            resource: name.to_owned(),
            error,
        }
    }

    /// Waits for one of the provider's call slots (unless cancelled first), then announces
    /// the step. Held across the journal entry and the provider call only: the
    /// completion's write does not keep the next call waiting.
    async fn slot(
        &self,
        ty: &str,
        name: &str,
        announce: Option<StepKind>,
    ) -> Result<OwnedSemaphorePermit, EngineError> {
        let provider = ty.split(':').next().unwrap_or(ty);
        let semaphore = self
            .slots
            .get(provider)
            .ok_or_else(|| EngineError::UnknownType(ty.to_owned()))?
            .clone();
        let waiting = Instant::now();
        let permit = tokio::select! {
            biased;
            _ = self.cancel.cancelled() => return Err(EngineError::Cancelled),
            permit = semaphore.acquire_owned() => permit.expect("slots are never closed"),
        };
        self.took(name, Phase::SlotWait, waiting);
        if let Some(kind) = announce {
            self.started
                .lock()
                .expect("started lock")
                .insert(name.to_owned(), Instant::now());
            self.sink.emit(&Event::StepStarted {
                resource: name.to_owned(),
                ty: ty.to_owned(),
                kind,
            });
        }
        Ok(permit)
    }

    /// Ends a journaled step. On success the change is recorded and the entry removed in
    /// one transaction; on failure the call may have half-happened, so the entry is
    /// settled now, as a restart would settle it.
    async fn finish<T>(
        &self,
        entry: &JournalEntry,
        existing: Option<&ResourceState>,
        outcome: Result<(StateChange, T), ProviderError>,
    ) -> Result<T, EngineError> {
        match outcome {
            Ok((change, done)) => {
                let completing = Instant::now();
                self.timed(
                    self.store
                        .journal_complete(self.fence, &entry.op_id, change),
                )
                .await?;
                self.took(&entry.name, Phase::JournalComplete, completing);
                Ok(done)
            }
            Err(error) => {
                let _ = self.reconcile(entry, existing).await;
                Err(self.provider_failed(&entry.name, error))
            }
        }
    }

    /// Writes the step's journal entry, durably, before its provider call.
    async fn begin(&self, entry: &JournalEntry) -> Result<(), EngineError> {
        let beginning = Instant::now();
        self.timed(self.store.journal_begin(self.fence, entry))
            .await?;
        self.took(&entry.name, Phase::JournalBegin, beginning);
        Ok(())
    }

    pub async fn create(
        &self,
        intent: &Intent<'_>,
        replaces: Option<&str>,
        announce: Option<StepKind>,
    ) -> Result<ResourceState, EngineError> {
        let Intent {
            name, ty, inputs, ..
        } = *intent;
        let slot = self.slot(ty, name, announce).await?;
        let token = new_id();
        let entry = self.entry(JournalKind::Create, intent, &token, None, replaces);
        self.begin(&entry).await?;
        let urn = urn(self.fence.stack, ty, name);
        let r = ResourceRef {
            ty,
            urn: &urn,
            token: &token,
            imported: false,
        };
        let calling = Instant::now();
        let result = self.provider(ty)?.create(r, &reveal_props(inputs)).await;
        self.took(name, Phase::ProviderCall, calling);
        drop(slot);
        let outcome = result.map(|created| {
            let state = ResourceState {
                instance: token,
                name: name.to_owned(),
                ty: ty.to_owned(),
                id: created.id,
                outputs: self.mark_outputs(ty, inputs, created.outputs),
                inputs: inputs.clone(),
                dependencies: intent.deps.to_vec(),
                options: intent.options.clone(),
                delete_pending: false,
                accepted: Props::new(),
                imported: false,
                unmarked: false,
            };
            let record = Box::new(state.to_record(self.cipher));
            (
                StateChange::Upsert {
                    record,
                    retire: replaces.map(str::to_owned),
                },
                state,
            )
        });
        self.finish(&entry, None, outcome).await
    }

    pub async fn update(
        &self,
        old: &ResourceState,
        intent: &Intent<'_>,
        announce: Option<StepKind>,
    ) -> Result<ResourceState, EngineError> {
        let slot = self.slot(&old.ty, &old.name, announce).await?;
        let entry = self.entry(
            JournalKind::Update,
            intent,
            &old.instance,
            Some(&old.id),
            None,
        );
        self.begin(&entry).await?;
        let urn = urn(self.fence.stack, &old.ty, &old.name);
        let r = ResourceRef {
            ty: &old.ty,
            urn: &urn,
            token: &old.instance,
            imported: old.deletable_unmarked(),
        };
        let calling = Instant::now();
        let result = self
            .provider(&old.ty)?
            .update(
                r,
                &old.id,
                &reveal_props(&old.inputs),
                &reveal_props(intent.inputs),
            )
            .await;
        self.took(&old.name, Phase::ProviderCall, calling);
        drop(slot);
        let outcome = result.map(|outputs| {
            let state = ResourceState {
                outputs: self.mark_outputs(&old.ty, intent.inputs, outputs),
                inputs: intent.inputs.clone(),
                dependencies: intent.deps.to_vec(),
                options: intent.options.clone(),
                ..old.clone()
            };
            let record = Box::new(state.to_record(self.cipher));
            (
                StateChange::Upsert {
                    record,
                    retire: None,
                },
                state,
            )
        });
        self.finish(&entry, Some(old), outcome).await
    }

    pub async fn delete(
        &self,
        old: &ResourceState,
        announce: Option<StepKind>,
    ) -> Result<(), EngineError> {
        let slot = self.slot(&old.ty, &old.name, announce).await?;
        let intent = Intent {
            name: &old.name,
            ty: &old.ty,
            inputs: &old.inputs,
            deps: &old.dependencies,
            options: &old.options,
        };
        let entry = self.entry(
            JournalKind::Delete,
            &intent,
            &old.instance,
            Some(&old.id),
            None,
        );
        self.begin(&entry).await?;
        let urn = urn(self.fence.stack, &old.ty, &old.name);
        let r = ResourceRef {
            ty: &old.ty,
            urn: &urn,
            token: &old.instance,
            imported: old.deletable_unmarked(),
        };
        let calling = Instant::now();
        let result = self
            .provider(&old.ty)?
            .delete_owned(r, &old.id, &prior(old))
            .await;
        self.took(&old.name, Phase::ProviderCall, calling);
        drop(slot);
        let outcome = result.map(|()| {
            (
                StateChange::Remove {
                    instance: old.instance.clone(),
                },
                (),
            )
        });
        self.finish(&entry, Some(old), outcome).await
    }

    /// Settles a journal entry whose outcome is unknown, by asking the provider what
    /// exists. Returns a word for what was done.
    pub async fn reconcile(
        &self,
        entry: &JournalEntry,
        existing: Option<&ResourceState>,
    ) -> Result<&'static str, EngineError> {
        let provider = self.provider(&entry.ty)?;
        let inputs = self.cipher.open_props(entry.inputs.clone())?;
        let failed = |error| self.provider_failed(&entry.name, error);
        let (change, outcome) = match (entry.kind, existing) {
            (JournalKind::Create, _) => {
                let urn = urn(self.fence.stack, &entry.ty, &entry.name);
                let r = ResourceRef {
                    ty: &entry.ty,
                    urn: &urn,
                    token: &entry.instance,
                    imported: false,
                };
                match provider
                    .find(r, &reveal_props(&inputs))
                    .await
                    .map_err(failed)?
                {
                    Some(found) => {
                        let state = ResourceState {
                            instance: entry.instance.clone(),
                            name: entry.name.clone(),
                            ty: entry.ty.clone(),
                            id: found.id,
                            outputs: self.mark_outputs(&entry.ty, &inputs, found.outputs),
                            inputs,
                            dependencies: entry.dependencies.clone(),
                            options: entry.options.clone(),
                            delete_pending: false,
                            accepted: Props::new(),
                            imported: false,
                            unmarked: false,
                        };
                        let change = StateChange::Upsert {
                            record: Box::new(state.to_record(self.cipher)),
                            retire: entry.replaces.clone(),
                        };
                        (change, "adopted the resource the interrupted create made")
                    }
                    None => (StateChange::Nothing, "the interrupted create made nothing"),
                }
            }
            (JournalKind::Update | JournalKind::Delete, Some(old)) => {
                match provider
                    .read(&old.ty, &old.id, &prior(old))
                    .await
                    .map_err(failed)?
                {
                    Some(read) => {
                        let state = ResourceState {
                            inputs: read.inputs.map_or_else(
                                || old.inputs.clone(),
                                |i| self.mark_outputs(&old.ty, &old.inputs, i),
                            ),
                            outputs: self.mark_outputs(&old.ty, &old.inputs, read.outputs),
                            ..old.clone()
                        };
                        let change = StateChange::Upsert {
                            record: Box::new(state.to_record(self.cipher)),
                            retire: None,
                        };
                        (
                            change,
                            "refreshed the resource the interrupted step touched",
                        )
                    }
                    None => (
                        StateChange::Remove {
                            instance: old.instance.clone(),
                        },
                        "the resource is gone",
                    ),
                }
            }
            (_, None) => (StateChange::Nothing, "the resource is no longer in state"),
        };
        self.timed(
            self.store
                .journal_complete(self.fence, &entry.op_id, change),
        )
        .await?;
        Ok(outcome)
    }
}

/// Everything an apply needs besides the plan.
pub(crate) struct ApplyInput<'a> {
    pub graph: &'a ValidGraph<'a>,
    pub state: &'a [ResourceState],
    pub stack_refs: &'a BTreeMap<String, (String, Props)>,
    pub cancel: &'a CancellationToken,
}

/// Applies a plan: creates, updates and replacements in dependency order, then deletions
/// in reverse dependency order. Returns the report and the realized resources by name.
pub(crate) async fn apply(
    applier: &Applier<'_>,
    plan: &Plan,
    input: ApplyInput<'_>,
) -> (ApplyReport, HashMap<String, ResourceState>) {
    let resources = &input.graph.graph.resources;
    let live = plan::live_by_name(input.state);
    let steps_by_name: HashMap<&str, &Step> = plan
        .steps
        .iter()
        .filter(|s| s.kind != StepKind::Delete)
        .map(|s| (s.name.as_str(), s))
        .collect();
    let realized: Mutex<HashMap<String, ResourceState>> = Mutex::new(HashMap::new());
    let report = Mutex::new(ApplyReport {
        plan_hash: plan.hash.clone(),
        ..ApplyReport::default()
    });

    let outcomes = walk(&input.graph.deps, applier.max_running, input.cancel, |i| {
        let spec = &resources[i];
        let old = live.get(spec.name.as_str()).map(|&at| &input.state[at]);
        let realized = &realized;
        let report = &report;
        let input = &input;
        let steps_by_name = &steps_by_name;
        async move {
            let step_started = Instant::now();
            let deps: Vec<String> = input.graph.deps[i]
                .iter()
                .map(|&j| resources[j].name.clone())
                .collect();
            let result = async {
                let inputs = {
                    let realized = realized.lock().expect("realized lock");
                    let mut resolve = |j: usize, r: &Reference| -> Result<Value, EngineError> {
                        let dep = realized.get(&resources[j].name).ok_or_else(|| {
                            EngineError::MissingProperty {
                                resource: resources[j].name.clone(),
                                reference: r.to_string(),
                            }
                        })?;
                        plan::lookup(dep, &r.path).ok_or_else(|| EngineError::MissingProperty {
                            resource: resources[j].name.clone(),
                            reference: r.to_string(),
                        })
                    };
                    plan::evaluate_inputs(
                        input.graph,
                        i,
                        applier.providers,
                        input.stack_refs,
                        &mut resolve,
                    )?
                };
                let inputs = match old {
                    Some(old) => plan::with_accepted(
                        plan::with_ignored(inputs, &old.inputs, &spec.options.ignore_changes),
                        &old.accepted,
                    ),
                    None => inputs,
                };
                let (kind, _) = match old {
                    None => (StepKind::Create, Vec::new()),
                    Some(old) => {
                        plan::diff_resource(applier.providers, &spec.ty, old, &inputs).await?
                    }
                };
                if kind == StepKind::Same {
                    let old = old.expect("same implies existing");
                    let mut state = old.clone();
                    if old.options != spec.options || old.dependencies != deps {
                        state.options = spec.options.clone();
                        state.dependencies = deps.clone();
                        applier
                            .store
                            .put_resource(applier.fence, &state.to_record(applier.cipher))
                            .await?;
                    }
                    return Ok((kind, state));
                }
                if let Some(failure) = applier
                    .providers
                    .for_type(&spec.ty)
                    .ok_or_else(|| EngineError::UnknownType(spec.ty.clone()))?
                    .check(&spec.ty, &inputs)
                    .await
                    .into_iter()
                    .next()
                {
                    return Err(EngineError::CheckFailed {
                        resource: spec.name.clone(),
                        property: failure.property,
                        reason: failure.reason,
                    });
                }
                if kind == StepKind::Replace && old.is_some_and(|o| o.options.protect) {
                    return Err(EngineError::Protected {
                        resource: spec.name.clone(),
                        action: "replace",
                    });
                }
                let intent = Intent {
                    name: &spec.name,
                    ty: &spec.ty,
                    inputs: &inputs,
                    deps: &deps,
                    options: &spec.options,
                };
                applier.took(&spec.name, Phase::Prepare, step_started);
                let state = match (kind, old) {
                    (StepKind::Update, Some(old)) => {
                        applier.update(old, &intent, Some(kind)).await?
                    }
                    (StepKind::Replace, Some(old)) if spec.options.delete_before_replace => {
                        applier.delete(old, Some(kind)).await?;
                        applier.create(&intent, None, None).await?
                    }
                    (StepKind::Replace, Some(old)) => {
                        applier
                            .create(&intent, Some(&old.instance), Some(kind))
                            .await?
                    }
                    _ => applier.create(&intent, None, Some(kind)).await?,
                };
                applier.sink.emit(&Event::StepSucceeded {
                    resource: spec.name.clone(),
                    ty: spec.ty.clone(),
                    kind,
                    elapsed_ms: applier.elapsed_ms(&spec.name),
                });
                Ok::<_, EngineError>((kind, state))
            }
            .await;
            applier.took(&spec.name, Phase::Step, step_started);
            match result {
                Ok((kind, state)) => {
                    if kind != StepKind::Same {
                        *report
                            .lock()
                            .expect("report lock")
                            .done
                            .entry(kind)
                            .or_insert(0) += 1;
                    }
                    realized
                        .lock()
                        .expect("realized lock")
                        .insert(spec.name.clone(), state);
                    Outcome::Done
                }
                Err(e) => {
                    let kind = steps_by_name
                        .get(spec.name.as_str())
                        .map_or(StepKind::Create, |s| s.kind);
                    record_failure(applier.sink, report, &spec.name, &spec.ty, kind, e)
                }
            }
        }
    })
    .await;
    let mut report = report.into_inner().expect("report lock");
    report_skips(applier.sink, &mut report, &outcomes, |i| &resources[i].name);
    let realized = realized.into_inner().expect("realized lock");
    if input.cancel.is_cancelled() {
        report.cancelled = true;
        return (report, realized);
    }
    let deletions = delete_phase(applier, plan, &input, &realized).await;
    report.failures.extend(deletions.failures);
    report.skipped.extend(deletions.skipped);
    for (k, v) in deletions.done {
        *report.done.entry(k).or_insert(0) += v;
    }
    report.cancelled = input.cancel.is_cancelled();
    report.journal_write_ms = applier
        .journal_ms
        .lock()
        .expect("journal timings lock")
        .clone();
    (report, realized)
}

/// Asks each provider whether the objects about to be deleted are this stack's (see
/// [`crate::provider::Provider::confirm_owned`]), all at once; records each refusal.
async fn confirm_owned(
    applier: &Applier<'_>,
    doomed: &[&ResourceState],
    report: &Mutex<ApplyReport>,
) -> bool {
    let stack = applier.fence.stack;
    let checks = doomed.iter().map(|old| async move {
        let urn = urn(stack, &old.ty, &old.name);
        let r = ResourceRef {
            ty: &old.ty,
            urn: &urn,
            token: &old.instance,
            imported: old.deletable_unmarked(),
        };
        let result = match applier.provider(&old.ty) {
            Ok(p) => p
                .confirm_owned(r, &old.id, &prior(old))
                .await
                .map_err(|e| applier.provider_failed(&old.name, e)),
            Err(e) => Err(e),
        };
        (old, result)
    });
    let mut confirmed = true;
    for (old, result) in futures_util::future::join_all(checks).await {
        if let Err(e) = result {
            confirmed = false;
            record_failure(
                applier.sink,
                report,
                &old.name,
                &old.ty,
                StepKind::Delete,
                e,
            );
        }
    }
    confirmed
}

/// Deletes what the plan deletes, plus the old halves of replacements made just now.
async fn delete_phase(
    applier: &Applier<'_>,
    plan: &Plan,
    input: &ApplyInput<'_>,
    realized: &HashMap<String, ResourceState>,
) -> ApplyReport {
    let replaced: Vec<ResourceState> = plan
        .steps
        .iter()
        .filter(|s| s.kind == StepKind::Replace && !s.delete_before_replace)
        .filter_map(|s| {
            let new = realized.get(&s.name)?;
            let old = input
                .state
                .iter()
                .find(|r| Some(&r.instance) == s.instance.as_ref())?;
            (new.instance != old.instance).then(|| ResourceState {
                delete_pending: true,
                ..old.clone()
            })
        })
        .collect();
    let by_instance: HashMap<&str, &ResourceState> = input
        .state
        .iter()
        .map(|r| (r.instance.as_str(), r))
        .collect();
    let mut doomed: Vec<&ResourceState> = plan
        .steps
        .iter()
        .filter(|s| s.kind == StepKind::Delete)
        .filter_map(|s| by_instance.get(s.instance.as_deref()?).copied())
        .collect();
    doomed.extend(replaced.iter());
    let report = Mutex::new(ApplyReport::default());
    if !confirm_owned(applier, &doomed, &report).await {
        let mut report = report.into_inner().expect("report lock");
        let refused: Vec<&str> = report
            .failures
            .iter()
            .map(|f| f.resource.as_str())
            .collect();
        let reason = format!(
            "nothing was deleted: {} could not be confirmed as this stack's",
            refused.join(", ")
        );
        for r in doomed
            .iter()
            .filter(|r| !refused.contains(&r.name.as_str()))
        {
            applier.sink.emit(&Event::StepSkipped {
                resource: r.name.clone(),
                reason: reason.clone(),
            });
            report.skipped.push((r.name.clone(), reason.clone()));
        }
        return report;
    }
    let deps = plan::deletion_dependencies(&doomed);
    let outcomes = walk(&deps, applier.max_running, input.cancel, |i| {
        let r = doomed[i];
        let report = &report;
        async move {
            match applier.delete(r, Some(StepKind::Delete)).await {
                Ok(()) => {
                    applier.sink.emit(&Event::StepSucceeded {
                        resource: r.name.clone(),
                        ty: r.ty.clone(),
                        kind: StepKind::Delete,
                        elapsed_ms: applier.elapsed_ms(&r.name),
                    });
                    *report
                        .lock()
                        .expect("report lock")
                        .done
                        .entry(StepKind::Delete)
                        .or_insert(0) += 1;
                    Outcome::Done
                }
                Err(e) => record_failure(applier.sink, report, &r.name, &r.ty, StepKind::Delete, e),
            }
        }
    })
    .await;
    let mut report = report.into_inner().expect("report lock");
    report_skips(applier.sink, &mut report, &outcomes, |i| &doomed[i].name);
    report
}
