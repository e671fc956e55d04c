//! What the store measures about its own contention, for `/metrics`: how long writers wait
//! for their turn and hold the write lock, how long they wait for a pool connection, how
//! often the database answered busy and a write was retried, and how close leases came to
//! expiring before they were renewed.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Who writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Writer {
    /// The platform's records: requests, claims, finishes, the audit log.
    Platform,
    /// The engine's state: journal, resources, outputs (group-committed), stacks.
    State,
    /// Lease renewals (stacks' and operations'): served before other waiting writers.
    Lease,
    /// Operations' events.
    Events,
}

impl Writer {
    pub fn label(self) -> &'static str {
        match self {
            Writer::Platform => "platform",
            Writer::State => "state",
            Writer::Lease => "lease",
            Writer::Events => "events",
        }
    }
}

/// Which lease was renewed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LeaseKind {
    /// A worker's lease on an operation.
    Operation,
    /// The engine's lease on a stack.
    Stack,
}

impl LeaseKind {
    pub fn label(self) -> &'static str {
        match self {
            LeaseKind::Operation => "operation",
            LeaseKind::Stack => "stack",
        }
    }
}

/// Histogram bounds, in seconds.
pub const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Observations in [`BUCKETS`] (cumulative counts, as Prometheus has them), their count,
/// sum and largest.
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    pub counts: [u64; BUCKETS.len()],
    pub count: u64,
    pub sum: f64,
    pub max: f64,
}

impl Histogram {
    fn observe(&mut self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += secs;
        self.max = self.max.max(secs);
    }
}

/// A copy of the figures.
#[derive(Clone, Debug, Default)]
pub struct StoreFigures {
    /// From asking to write until holding the write lock, per writer.
    pub write_wait: BTreeMap<Writer, Histogram>,
    /// How long the write lock was held, per writer.
    pub write_hold: BTreeMap<Writer, Histogram>,
    /// Waits for a pool connection, by writers.
    pub pool_acquire: Histogram,
    /// Writes retried because the database answered busy or locked.
    pub busy_retries: u64,
    /// Per lease kind: renewals, and the least time any had left before expiring when
    /// renewed (negative: renewed after its expiry, before anyone took it over).
    pub lease_renewals: BTreeMap<LeaseKind, u64>,
    pub lease_margin_min: BTreeMap<LeaseKind, Duration>,
    pub lease_margin_negative: BTreeMap<LeaseKind, u64>,
    /// Reads made through the pool by a task holding the write lock (each a bug: it
    /// reads around its own transaction).
    pub reads_under_write_lock: u64,
}

/// The figures of one database in this process.
#[derive(Default)]
pub struct StoreMetrics {
    figures: Mutex<StoreFigures>,
}

impl StoreMetrics {
    fn with(&self, f: impl FnOnce(&mut StoreFigures)) {
        f(&mut self.figures.lock().expect("store metrics"));
    }

    pub(crate) fn waited(&self, writer: Writer, d: Duration) {
        self.with(|m| m.write_wait.entry(writer).or_default().observe(d));
    }

    pub(crate) fn held(&self, writer: Writer, d: Duration) {
        self.with(|m| m.write_hold.entry(writer).or_default().observe(d));
    }

    pub(crate) fn acquired(&self, d: Duration) {
        self.with(|m| m.pool_acquire.observe(d));
    }

    pub(crate) fn busy_retry(&self) {
        self.with(|m| m.busy_retries += 1);
    }

    pub(crate) fn read_under_write_lock(&self) {
        self.with(|m| m.reads_under_write_lock += 1);
    }

    /// A lease was renewed when it had `left_ms` before expiring.
    pub(crate) fn renewed(&self, kind: LeaseKind, left_ms: i64) {
        self.with(|m| {
            *m.lease_renewals.entry(kind).or_default() += 1;
            if left_ms < 0 {
                *m.lease_margin_negative.entry(kind).or_default() += 1;
            }
            let left = Duration::from_millis(left_ms.max(0) as u64);
            let min = m.lease_margin_min.entry(kind).or_insert(left);
            *min = (*min).min(left);
        });
    }

    pub fn figures(&self) -> StoreFigures {
        self.figures.lock().expect("store metrics").clone()
    }
}
