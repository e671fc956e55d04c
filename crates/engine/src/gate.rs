//! Gates: the last word on a plan before it is applied.
//!
//! A gate sees the exact plan the engine computed under the stack's lease, the plan that
//! will run if it says yes. That is where policy and approvals bind: an approval given to
//! a plan's hash holds for that plan only, and anything that changes state or inputs in
//! between changes the hash. The engine knows nothing of what a gate consults.

use async_trait::async_trait;

use crate::plan::Plan;

/// Why a gate stopped a plan (shown to people; the gate keeps any detail it needs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Halt {
    pub message: String,
}

/// Decides whether a plan may be applied.
#[async_trait]
pub trait PlanGate: Send + Sync {
    /// Called once per apply, under the stack's lease, before any step runs. `Err`
    /// stops the apply with nothing done (an interrupted run's journal is settled first).
    async fn admit(&self, plan: &Plan) -> Result<(), Halt>;
}

/// The gate of an engine used without policy: every plan may run.
pub struct AdmitAll;

#[async_trait]
impl PlanGate for AdmitAll {
    async fn admit(&self, _plan: &Plan) -> Result<(), Halt> {
        Ok(())
    }
}
