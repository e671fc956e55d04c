//! What requests cost, for benchmarks: counters per API for the whole process, and, within
//! a scope (one provider call), how many requests it sent and where its time went — on
//! the wire, waiting for GitHub's one-mutation-at-a-time turn, getting a token, backing
//! off — so that `bench provision` can tell the clouds' time from Paddock's.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::Api;

tokio::task_local! {
    /// The costs of the requests made within a scope (one provider call).
    static SCOPE: Arc<CallStats>;
}

/// Requests sent by this process, by API, since it started (retries included).
static CALLS: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];
/// Of those, the mutating ones (not GET or HEAD).
static MUTATIONS: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];
/// Time GitHub's mutation turn was held, and how many turns, since the process started.
static GITHUB_TURN_NS: AtomicU64 = AtomicU64::new(0);
static GITHUB_TURNS: AtomicU64 = AtomicU64::new(0);

/// Counters of one scope, added to by every request sent within it.
#[derive(Debug, Default)]
pub struct CallStats {
    requests: AtomicU64,
    github_writes: AtomicU64,
    /// From sending the request to having read the answer's body.
    wire_ns: AtomicU64,
    /// Waiting for GitHub's mutation turn (another write in flight).
    turn_wait_ns: AtomicU64,
    /// Getting the `Authorization` header (a token from cache or from the token endpoint).
    auth_ns: AtomicU64,
    /// Sleeping before a retry.
    backoff_ns: AtomicU64,
}

/// A snapshot of [`CallStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallCost {
    pub requests: u64,
    /// Content-creating requests to GitHub (POST, PUT, PATCH, DELETE).
    pub github_writes: u64,
    pub wire: Duration,
    pub turn_wait: Duration,
    pub auth: Duration,
    pub backoff: Duration,
}

impl std::ops::AddAssign for CallCost {
    fn add_assign(&mut self, o: CallCost) {
        self.requests += o.requests;
        self.github_writes += o.github_writes;
        self.wire += o.wire;
        self.turn_wait += o.turn_wait;
        self.auth += o.auth;
        self.backoff += o.backoff;
    }
}

impl CallStats {
    pub fn snapshot(&self) -> CallCost {
        let d = |a: &AtomicU64| Duration::from_nanos(a.load(Ordering::Relaxed));
        CallCost {
            requests: self.requests.load(Ordering::Relaxed),
            github_writes: self.github_writes.load(Ordering::Relaxed),
            wire: d(&self.wire_ns),
            turn_wait: d(&self.turn_wait_ns),
            auth: d(&self.auth_ns),
            backoff: d(&self.backoff_ns),
        }
    }
}

/// Runs `work`, adding to `stats` what every request it sends costs.
pub async fn counting<F: std::future::Future>(stats: Arc<CallStats>, work: F) -> F::Output {
    SCOPE.scope(stats, work).await
}

/// Which part of a request's time a measurement belongs to.
#[derive(Clone, Copy)]
pub(crate) enum Part {
    Wire,
    TurnWait,
    Auth,
    Backoff,
}

/// Adds `elapsed` to the current scope's `part`, if a scope is counting.
pub(crate) fn add(part: Part, elapsed: Duration) {
    let _ = SCOPE.try_with(|s| {
        let counter = match part {
            Part::Wire => &s.wire_ns,
            Part::TurnWait => &s.turn_wait_ns,
            Part::Auth => &s.auth_ns,
            Part::Backoff => &s.backoff_ns,
        };
        counter.fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    });
}

/// Counts one request about to be sent.
pub(crate) fn sent(api: Api, mutating: bool) {
    CALLS[api as usize].fetch_add(1, Ordering::Relaxed);
    if mutating {
        MUTATIONS[api as usize].fetch_add(1, Ordering::Relaxed);
    }
    let _ = SCOPE.try_with(|s| {
        s.requests.fetch_add(1, Ordering::Relaxed);
        if mutating && api == Api::GitHub {
            s.github_writes.fetch_add(1, Ordering::Relaxed);
        }
    });
}

/// Records how long GitHub's mutation turn was held by one request.
pub(crate) fn github_turn(held: Duration) {
    GITHUB_TURN_NS.fetch_add(held.as_nanos() as u64, Ordering::Relaxed);
    GITHUB_TURNS.fetch_add(1, Ordering::Relaxed);
}

/// Time GitHub's mutation turn has been held in all, and how many turns were taken.
pub fn github_turns() -> (Duration, u64) {
    (
        Duration::from_nanos(GITHUB_TURN_NS.load(Ordering::Relaxed)),
        GITHUB_TURNS.load(Ordering::Relaxed),
    )
}

/// Requests sent by this process so far, by API name.
pub fn calls_by_api() -> BTreeMap<&'static str, u64> {
    count_by_api(&CALLS)
}

/// Mutating requests sent by this process so far, by API name.
pub fn mutations_by_api() -> BTreeMap<&'static str, u64> {
    count_by_api(&MUTATIONS)
}

fn count_by_api(counters: &[AtomicU64; 5]) -> BTreeMap<&'static str, u64> {
    [
        Api::GitHub,
        Api::Arm,
        Api::Graph,
        Api::Kubernetes,
        Api::Entra,
    ]
    .into_iter()
    .map(|api| (api.name(), counters[api as usize].load(Ordering::Relaxed)))
    .collect()
}
