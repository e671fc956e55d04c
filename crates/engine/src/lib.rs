//! Paddock's declarative engine.
//!
//! Job: turn a desired graph (from a blueprint, or built in Rust — the automation API) into
//! a plan against a stack's state, and apply it through providers, walking the dependency
//! graph in parallel.
//!
//! Invariants:
//! - every mutating provider call is preceded by a durable journal entry and followed by
//!   its completion, so a crash at any instant is reconciled on the next run without
//!   orphans or duplicates;
//! - one operation per stack at a time, under a lease that expires if not renewed;
//! - secret values are sealed before they reach a store and redacted in every rendering.
//!
//! Must not: speak HTTP or SQL, or know any cloud. Stores and providers are traits here,
//! implemented in their own crates.

pub mod apply;
pub mod blueprint;
pub mod drift;
pub mod events;
pub mod gate;
pub mod graph;
pub mod keyring;
pub mod parameters;
pub mod plan;
pub mod provider;
pub mod secrets;
pub mod state;
pub mod value;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngCore;
use tokio_util::sync::CancellationToken;

use crate::apply::{Applier, ApplyInput};
pub use crate::apply::{ApplyReport, Failure};
pub use crate::drift::{AcceptedDrift, Drift, DriftedProperty};
use crate::events::timed;
pub use crate::events::{Discard, Event, EventSink, Phase, Timing};
pub use crate::gate::{AdmitAll, Halt, PlanGate};
pub use crate::graph::{DesiredGraph, Diagnostic, Diagnostics, Expr, Site};
pub use crate::plan::{Plan, StepKind};
use crate::provider::ResourceRef;
pub use crate::provider::{Provider, ProviderError, ProviderRegistry};
use crate::secrets::{DataKey, MasterKey, SecretsError, StackCipher};
use crate::state::{
    Fence, Holder, Lease, LeaseOutcome, ResourceState, StateStore, StoreError, format_ms, now_ms,
};
use crate::value::reveal_props;
pub use crate::value::{Props, Value};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Invalid(Diagnostics),
    #[error(
        "stack `{stack}` is busy (operation {op} `{operation}` by {user}@{host} pid {pid} since {since}); \
         wait for it, or if that process is gone the lease expires at {expires}",
        op = lease.op_id, operation = lease.operation, user = lease.holder.user, host = lease.holder.host,
        pid = lease.holder.pid, since = format_ms(lease.acquired_at_ms), expires = format_ms(lease.expires_at_ms)
    )]
    StackBusy { stack: String, lease: Box<Lease> },
    #[error("stack `{0}` does not exist; create it with `paddock stack init {0}`")]
    NoSuchStack(String),
    #[error(
        "stack `{stack}` still manages {resources} resource(s); run `paddock destroy` first, or pass --force to forget them"
    )]
    StackNotEmpty { stack: String, resources: usize },
    #[error(
        "resource `{resource}` is protected; refusing to {action} it (remove `protect` from its options first)"
    )]
    Protected {
        resource: String,
        action: &'static str,
    },
    #[error("unknown resource type `{0}`")]
    UnknownType(String),
    #[error("resource `{resource}` has no property or output for `{reference}`")]
    MissingProperty { resource: String, reference: String },
    #[error("resource `{resource}`: property `{property}`: {reason}")]
    CheckFailed {
        resource: String,
        property: String,
        reason: String,
    },
    #[error("resource `{resource}`: [{}] {error}", error.code)]
    Provider {
        resource: String,
        error: ProviderError,
    },
    #[error("stack reference to `{stack}`: {message}")]
    StackReference { stack: String, message: String },
    #[error("cancelled before the step started")]
    Cancelled,
    #[error("import: {0}")]
    Import(String),
    /// A [`PlanGate`] refused the plan; nothing was applied.
    #[error("stack `{stack}`: the plan was stopped: {message}")]
    Halted { stack: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
}

impl From<Diagnostics> for EngineError {
    fn from(d: Diagnostics) -> Self {
        EngineError::Invalid(d)
    }
}

/// A random 128-bit identifier, hex: operation ids and creation tokens.
pub fn new_id() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    plan::hex(&b)
}

#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Provider calls in flight per provider (Terraform's `-parallelism`).
    pub parallelism: usize,
    pub lease_ttl: Duration,
    pub holder: Holder,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            parallelism: 10,
            lease_ttl: Duration::from_secs(30),
            holder: Holder::this_process(),
        }
    }
}

/// A stack's state, decrypted.
pub struct StackState {
    pub resources: Vec<ResourceState>,
    pub outputs: Props,
    pub pending: usize,
    cipher: StackCipher,
}

/// The engine, bound to a store, providers and a master key: the automation API.
pub struct Engine {
    store: Arc<dyn StateStore>,
    providers: ProviderRegistry,
    master_key: Arc<dyn MasterKey>,
    options: EngineOptions,
}

/// Holds a stack's lease and renews it until released.
struct LeaseGuard {
    store: Arc<dyn StateStore>,
    stack: String,
    op_id: String,
    heartbeat: tokio::task::JoinHandle<()>,
    /// Fired if a renewal failed: another holder may have the stack now.
    lost: CancellationToken,
}

impl LeaseGuard {
    /// What this operation's writes are fenced by.
    fn fence(&self) -> Fence<'_> {
        Fence {
            stack: &self.stack,
            op_id: &self.op_id,
        }
    }

    /// Releases the lease; an operation that lost it on the way fails with `LeaseLost`.
    async fn release<T>(self, result: Result<T, EngineError>) -> Result<T, EngineError> {
        self.heartbeat.abort();
        if self.lost.is_cancelled() {
            return Err(StoreError::LeaseLost(self.stack).into());
        }
        let _ = self.store.release_lease(&self.stack, &self.op_id).await;
        result
    }
}

impl Engine {
    pub fn new(
        store: Arc<dyn StateStore>,
        providers: ProviderRegistry,
        master_key: Arc<dyn MasterKey>,
        options: EngineOptions,
    ) -> Engine {
        Engine {
            store,
            providers,
            master_key,
            options,
        }
    }

    pub fn providers(&self) -> &ProviderRegistry {
        &self.providers
    }

    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    pub async fn init_stack(&self, stack: &str) -> Result<(), EngineError> {
        validate_stack_name(stack)?;
        let wrapped = self.master_key.wrap(&DataKey::generate()).await?;
        self.store.create_stack(stack, &wrapped, now_ms()).await?;
        Ok(())
    }

    /// Creates the stack unless it exists.
    async fn ensure_stack(&self, stack: &str) -> Result<(), EngineError> {
        match self.init_stack(stack).await {
            Ok(()) | Err(EngineError::Store(StoreError::StackExists(_))) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub async fn list_stacks(&self) -> Result<Vec<state::StackSummary>, EngineError> {
        Ok(self.store.list_stacks().await?)
    }

    /// Removes a stack's record. Refuses while it still manages resources unless `force`.
    pub async fn remove_stack(&self, stack: &str, force: bool) -> Result<(), EngineError> {
        let lease = self.acquire(stack, "rm", CancellationToken::new()).await?;
        let result = async {
            let stored = self.store.load(stack).await?;
            if !force && !stored.resources.is_empty() {
                return Err(EngineError::StackNotEmpty {
                    stack: stack.into(),
                    resources: stored.resources.len(),
                });
            }
            Ok(())
        }
        .await;
        lease.release(result).await?;
        Ok(self.store.remove_stack(stack).await?)
    }

    /// Reads and decrypts a stack's state.
    pub async fn read_state(&self, stack: &str) -> Result<StackState, EngineError> {
        let stored = self.store.load(stack).await.map_err(|e| match e {
            StoreError::NoSuchStack(s) => EngineError::NoSuchStack(s),
            other => other.into(),
        })?;
        self.decrypt(stack, stored)
    }

    /// A stack's state as loaded, decrypted.
    fn decrypt(&self, stack: &str, stored: state::StoredStack) -> Result<StackState, EngineError> {
        let cipher = StackCipher::new(stack, self.master_key.unwrap(&stored.wrapped_key)?);
        let mut resources = Vec::with_capacity(stored.resources.len());
        for record in stored.resources {
            resources.push(ResourceState::from_record(record, &cipher)?);
        }
        Ok(StackState {
            outputs: cipher.open_props(stored.outputs)?,
            pending: stored.journal.len(),
            resources,
            cipher,
        })
    }

    /// A stack's outputs, secrets still marked.
    pub async fn outputs(&self, stack: &str) -> Result<Props, EngineError> {
        Ok(self.read_state(stack).await?.outputs)
    }

    async fn stack_refs(
        &self,
        graph: &DesiredGraph,
    ) -> Result<BTreeMap<String, (String, Props)>, EngineError> {
        self.stack_refs_seeing(graph, &BTreeMap::new()).await
    }

    /// Stack references, where a stack in `planned` is read as its plan says it will be.
    async fn stack_refs_seeing(
        &self,
        graph: &DesiredGraph,
        planned: &BTreeMap<String, Props>,
    ) -> Result<BTreeMap<String, (String, Props)>, EngineError> {
        // Read at once: each is its own read, and a stage references two stacks.
        let reads = graph.stack_refs.iter().map(|(alias, stack)| async move {
            if let Some(outputs) = planned.get(stack) {
                return Ok((alias.clone(), (stack.clone(), outputs.clone())));
            }
            let (wrapped, outputs) = self.store.load_outputs(stack).await.map_err(|e| match e {
                StoreError::NoSuchStack(_) => EngineError::StackReference {
                    stack: stack.clone(),
                    message: format!("stack `{stack}` (referenced as `{alias}`) does not exist"),
                },
                other => other.into(),
            })?;
            let cipher = StackCipher::new(stack, self.master_key.unwrap(&wrapped)?);
            Ok((alias.clone(), (stack.clone(), cipher.open_props(outputs)?)))
        });
        futures_util::future::join_all(reads)
            .await
            .into_iter()
            .collect()
    }

    /// Plans `graph` against the stack (an absent stack plans as empty). Writes nothing.
    pub async fn preview(&self, stack: &str, graph: &DesiredGraph) -> Result<Plan, EngineError> {
        let valid = graph.validate(&self.providers)?;
        let (resources, pending) = match self.read_state(stack).await {
            Ok(s) => (s.resources, s.pending),
            Err(EngineError::NoSuchStack(_)) => (Vec::new(), 0),
            Err(e) => return Err(e),
        };
        let refs = self.stack_refs(graph).await?;
        plan::plan(stack, &valid, &resources, pending, &refs, &self.providers).await
    }

    /// Plans several stacks in order, each seeing the stacks planned before it as their
    /// plans say they will be (outputs not yet known are `Unknown`), so that stacks which
    /// do not exist yet can be previewed together. Writes nothing.
    pub async fn preview_all(
        &self,
        runs: &[(&str, &DesiredGraph)],
    ) -> Result<Vec<Plan>, EngineError> {
        let mut planned: BTreeMap<String, Props> = BTreeMap::new();
        let mut plans = Vec::with_capacity(runs.len());
        for (stack, graph) in runs {
            let valid = graph.validate(&self.providers)?;
            let (resources, pending) = match self.read_state(stack).await {
                Ok(s) => (s.resources, s.pending),
                Err(EngineError::NoSuchStack(_)) => (Vec::new(), 0),
                Err(e) => return Err(e),
            };
            let refs = self.stack_refs_seeing(graph, &planned).await?;
            let plan =
                plan::plan(stack, &valid, &resources, pending, &refs, &self.providers).await?;
            planned.insert((*stack).to_owned(), plan.outputs.clone());
            plans.push(plan);
        }
        Ok(plans)
    }

    /// Takes the stack's lease and keeps renewing it; if a renewal fails, `stop` fires so
    /// that the operation starts no more steps.
    async fn acquire(
        &self,
        stack: &str,
        operation: &str,
        stop: CancellationToken,
    ) -> Result<LeaseGuard, EngineError> {
        let now = now_ms();
        let lease = Lease {
            op_id: new_id(),
            operation: operation.into(),
            holder: self.options.holder.clone(),
            acquired_at_ms: now,
            expires_at_ms: now + self.options.lease_ttl.as_millis() as i64,
        };
        match self.store.acquire_lease(stack, &lease, now, None).await? {
            LeaseOutcome::Acquired => {}
            LeaseOutcome::Busy(held) if held.holder.is_dead_local_process() => {
                // Its process is gone: take over now rather than wait for expiry.
                if let LeaseOutcome::Busy(held) = self
                    .store
                    .acquire_lease(stack, &lease, now, Some(&held.op_id))
                    .await?
                {
                    return Err(EngineError::StackBusy {
                        stack: stack.into(),
                        lease: Box::new(held),
                    });
                }
            }
            LeaseOutcome::Busy(held) => {
                return Err(EngineError::StackBusy {
                    stack: stack.into(),
                    lease: Box::new(held),
                });
            }
        }
        let store = self.store.clone();
        let (stack_name, op_id, ttl) = (
            stack.to_owned(),
            lease.op_id.clone(),
            self.options.lease_ttl,
        );
        let lost = CancellationToken::new();
        let on_lost = lost.clone();
        let heartbeat = tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl / 3).await;
                let expires = now_ms() + ttl.as_millis() as i64;
                if store
                    .renew_lease(&stack_name, &op_id, expires)
                    .await
                    .is_err()
                {
                    on_lost.cancel();
                    stop.cancel();
                    return;
                }
            }
        });
        Ok(LeaseGuard {
            store: self.store.clone(),
            stack: stack.into(),
            op_id: lease.op_id,
            heartbeat,
            lost,
        })
    }

    fn applier<'a>(
        &'a self,
        fence: Fence<'a>,
        cipher: &'a StackCipher,
        sink: &'a dyn EventSink,
        cancel: &CancellationToken,
    ) -> Applier<'a> {
        let slots = self
            .providers
            .names()
            .into_iter()
            .map(|name| {
                (
                    name.to_owned(),
                    Arc::new(tokio::sync::Semaphore::new(self.options.parallelism.max(1))),
                )
            })
            .collect();
        let max_running = self.providers.names().len() * self.options.parallelism.max(1) * 2 + 16;
        Applier {
            slots,
            max_running,
            cancel: cancel.clone(),
            fence,
            store: self.store.as_ref(),
            cipher,
            providers: &self.providers,
            sink,
            journal_ms: Mutex::new(Vec::new()),
            started: Mutex::new(std::collections::HashMap::new()),
            lease_lost: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Settles the journal of an interrupted run, then returns the state.
    async fn recover(
        &self,
        fence: Fence<'_>,
        sink: &dyn EventSink,
    ) -> Result<StackState, EngineError> {
        let stack = fence.stack;
        let mut stored = self.store.load(stack).await?;
        let mut journal = std::mem::take(&mut stored.journal);
        // One read when there is nothing to settle (the usual case), not two.
        let state = self.decrypt(stack, stored)?;
        if journal.is_empty() {
            return Ok(state);
        }
        let applier = self.applier(fence, &state.cipher, sink, &CancellationToken::new());
        journal.sort_by_key(|e| e.started_at_ms);
        for entry in &journal {
            let existing = state
                .resources
                .iter()
                .find(|r| r.instance == entry.instance);
            let outcome = applier.reconcile(entry, existing).await?;
            sink.emit(&Event::Reconciled {
                resource: entry.name.clone(),
                outcome: outcome.into(),
            });
        }
        self.read_state(stack).await
    }

    /// Creates or updates the stack's resources to match `graph` (creating the stack if it
    /// does not exist yet). Cancelling `cancel` stops starting new steps.
    pub async fn up(
        &self,
        stack: &str,
        graph: &DesiredGraph,
        sink: &dyn EventSink,
        cancel: &CancellationToken,
    ) -> Result<ApplyReport, EngineError> {
        self.up_gated(stack, graph, sink, cancel, &AdmitAll).await
    }

    /// [`Engine::up`], with `gate` deciding on the plan computed under the lease before
    /// anything is applied.
    pub async fn up_gated(
        &self,
        stack: &str,
        graph: &DesiredGraph,
        sink: &dyn EventSink,
        cancel: &CancellationToken,
        gate: &dyn PlanGate,
    ) -> Result<ApplyReport, EngineError> {
        let valid = graph.validate(&self.providers)?;
        timed(sink, stack, Phase::CreateStack, self.ensure_stack(stack)).await?;
        let cancel = cancel.child_token();
        sink.stack(stack);
        let acquiring = self.acquire(stack, "up", cancel.clone());
        let lease = timed(sink, stack, Phase::LeaseAcquire, acquiring).await?;
        let result = self
            .apply_locked(lease.fence(), &valid, sink, &cancel, gate)
            .await;
        timed(sink, stack, Phase::LeaseRelease, lease.release(result)).await
    }

    /// Deletes every resource of the stack, dependents first.
    pub async fn destroy(
        &self,
        stack: &str,
        sink: &dyn EventSink,
        cancel: &CancellationToken,
    ) -> Result<ApplyReport, EngineError> {
        self.destroy_gated(stack, sink, cancel, &AdmitAll).await
    }

    /// [`Engine::destroy`], with `gate` deciding on the deletion plan first.
    pub async fn destroy_gated(
        &self,
        stack: &str,
        sink: &dyn EventSink,
        cancel: &CancellationToken,
        gate: &dyn PlanGate,
    ) -> Result<ApplyReport, EngineError> {
        let empty = DesiredGraph::new();
        let valid = empty.validate(&self.providers)?;
        let cancel = cancel.child_token();
        sink.stack(stack);
        let lease = self.acquire(stack, "destroy", cancel.clone()).await?;
        let result = self
            .apply_locked(lease.fence(), &valid, sink, &cancel, gate)
            .await;
        lease.release(result).await
    }

    async fn apply_locked(
        &self,
        fence: Fence<'_>,
        valid: &graph::ValidGraph<'_>,
        sink: &dyn EventSink,
        cancel: &CancellationToken,
        gate: &dyn PlanGate,
    ) -> Result<ApplyReport, EngineError> {
        let stack = fence.stack;
        let state = timed(sink, stack, Phase::Recover, self.recover(fence, sink)).await?;
        let refs = timed(sink, stack, Phase::StackRefs, self.stack_refs(valid.graph)).await?;
        let planning = plan::plan(stack, valid, &state.resources, 0, &refs, &self.providers);
        let plan = timed(sink, stack, Phase::Plan, planning).await?;
        sink.emit(&Event::Planned {
            steps: plan.steps.len(),
            changes: plan
                .steps
                .iter()
                .filter(|s| s.kind != StepKind::Same)
                .count(),
            hash: plan.hash.clone(),
        });
        gate.admit(&plan)
            .await
            .map_err(|halt| EngineError::Halted {
                stack: stack.to_owned(),
                message: halt.message,
            })?;
        let applier = self.applier(fence, &state.cipher, sink, cancel);
        let input = ApplyInput {
            graph: valid,
            state: &state.resources,
            stack_refs: &refs,
            cancel,
        };
        let (report, realized) = timed(
            sink,
            stack,
            Phase::Apply,
            apply::apply(&applier, &plan, input),
        )
        .await;
        if applier.lease_lost.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::LeaseLost(stack.to_owned()).into());
        }
        if report.failures.is_empty() && !report.cancelled {
            let mut outputs = Props::new();
            for o in &valid.graph.outputs {
                let mut resolve = |r: &graph::Reference| -> Result<Value, EngineError> {
                    match realized.get(&r.target) {
                        Some(res) => {
                            plan::lookup(res, &r.path).ok_or_else(|| EngineError::MissingProperty {
                                resource: r.target.clone(),
                                reference: r.to_string(),
                            })
                        }
                        None => plan::lookup_stack_ref(&refs, r).unwrap_or_else(|| {
                            Err(EngineError::MissingProperty {
                                resource: r.target.clone(),
                                reference: r.to_string(),
                            })
                        }),
                    }
                };
                let v = o.value.eval(&mut resolve)?;
                outputs.insert(o.name.clone(), if o.secret { Value::secret(v) } else { v });
            }
            let sealed = state.cipher.seal_props(&outputs);
            timed(
                sink,
                stack,
                Phase::Outputs,
                self.store.set_outputs(fence, &sealed),
            )
            .await?;
        }
        Ok(report)
    }

    /// Adopts an existing object into the stack as resource `name` of type `ty`.
    pub async fn import(
        &self,
        stack: &str,
        ty: &str,
        name: &str,
        id: &str,
    ) -> Result<ResourceState, EngineError> {
        let provider = self
            .providers
            .for_type(ty)
            .ok_or_else(|| EngineError::UnknownType(ty.to_owned()))?;
        if provider.schema(ty).is_none() {
            return Err(EngineError::UnknownType(ty.to_owned()));
        }
        self.ensure_stack(stack).await?;
        let lease = self
            .acquire(stack, "import", CancellationToken::new())
            .await?;
        let result = async {
            let state = self.recover(lease.fence(), &Discard).await?;
            if state
                .resources
                .iter()
                .any(|r| r.name == name && !r.delete_pending)
            {
                return Err(EngineError::Import(format!(
                    "stack `{stack}` already has a resource named `{name}`"
                )));
            }
            let read = provider
                .read(ty, id, &Props::new())
                .await
                .map_err(|error| EngineError::Provider {
                    resource: name.into(),
                    error,
                })?
                .ok_or_else(|| EngineError::Import(format!("no `{ty}` with id `{id}` exists")))?;
            let applier = self.applier(
                lease.fence(),
                &state.cipher,
                &Discard,
                &CancellationToken::new(),
            );
            let inputs = read
                .inputs
                .map(|i| applier.mark_outputs(ty, &Props::new(), i))
                .unwrap_or_default();
            let instance = new_id();
            // The object is Paddock's from now on: it carries this stack's mark, and the
            // state records that it was taken over deliberately.
            let urn = apply::urn(stack, ty, name);
            let r = ResourceRef {
                ty,
                urn: &urn,
                token: &instance,
                imported: true,
            };
            provider
                .mark_imported(r, id, &reveal_props(&inputs))
                .await
                .map_err(|error| EngineError::Provider {
                    resource: name.into(),
                    error,
                })?;
            let resource = ResourceState {
                instance,
                name: name.into(),
                ty: ty.into(),
                id: id.into(),
                outputs: applier.mark_outputs(ty, &inputs, read.outputs),
                inputs,
                dependencies: Vec::new(),
                options: graph::ResourceOptions::default(),
                delete_pending: false,
                accepted: Props::new(),
                imported: true,
                unmarked: false,
            };
            self.store
                .put_resource(lease.fence(), &resource.to_record(&state.cipher))
                .await?;
            Ok(resource)
        }
        .await;
        lease.release(result).await
    }
}

/// Stack names: 1–100 characters of letters, digits, `-`, `_`, `.`, starting with a
/// letter or digit (as Pulumi's).
pub fn validate_stack_name(name: &str) -> Result<(), EngineError> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(EngineError::Invalid(Diagnostics(vec![Diagnostic {
            site: Site::field("stack"),
            message: format!(
                "{name:?} is not a valid stack name: use 1-100 letters, digits, '-', '_' or '.', starting with a letter or digit"
            ),
        }])))
    }
}
