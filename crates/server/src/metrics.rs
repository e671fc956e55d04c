//! Prometheus metrics in the text exposition format: HTTP requests, operations by state
//! (read from the database, so every replica reports the same queue), queue depth, step
//! latency per provider, operation durations, lease takeovers, approvals (by state,
//! from the database; and how long decided ones waited), and drifted resources (from
//! the database); events recorded and lost; and the store's contention (`paddock_store_*`:
//! write-lock waits and holds per writer, connection waits, busy retries, lease margins).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use paddock_store::metrics::{self as store_metrics, StoreFigures};

use crate::AppState;

/// Histogram buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
];

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += secs;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        render_buckets(
            out,
            name,
            labels,
            &BUCKETS,
            &self.counts,
            self.count,
            self.sum,
        );
    }
}

/// A histogram's samples: cumulative `counts` per bound in `bounds`, then `+Inf`.
fn render_buckets(
    out: &mut String,
    name: &str,
    labels: &str,
    bounds: &[f64],
    counts: &[u64],
    count: u64,
    sum: f64,
) {
    let sep = if labels.is_empty() { "" } else { "," };
    for (b, n) in bounds.iter().zip(counts) {
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
    let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
}

fn describe(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// How this replica's writers of the database fared.
fn render_store(out: &mut String, f: &StoreFigures) {
    for (name, per_writer, what) in [
        (
            "paddock_store_write_wait_seconds",
            &f.write_wait,
            "From asking to write until holding the database's write lock, per writer (this replica).",
        ),
        (
            "paddock_store_write_hold_seconds",
            &f.write_hold,
            "How long the database's write lock was held, per writer (this replica).",
        ),
    ] {
        describe(out, name, "histogram", what);
        for (writer, h) in per_writer {
            let labels = format!("writer=\"{}\"", writer.label());
            render_buckets(
                out,
                name,
                &labels,
                &store_metrics::BUCKETS,
                &h.counts,
                h.count,
                h.sum,
            );
        }
        let max = format!("{name}_max");
        describe(
            out,
            &max,
            "gauge",
            &format!("The longest of {name}, per writer."),
        );
        for (writer, h) in per_writer {
            let _ = writeln!(out, "{max}{{writer=\"{}\"}} {}", writer.label(), h.max);
        }
    }
    describe(
        out,
        "paddock_store_connection_wait_seconds_max",
        "gauge",
        "The longest wait for a pool connection with a write transaction begun (this replica).",
    );
    let _ = writeln!(
        out,
        "paddock_store_connection_wait_seconds_max {}",
        f.pool_acquire.max
    );
    describe(
        out,
        "paddock_store_busy_retries_total",
        "counter",
        "Writes retried because the database answered busy or locked (this replica).",
    );
    let _ = writeln!(out, "paddock_store_busy_retries_total {}", f.busy_retries);
    describe(
        out,
        "paddock_store_reads_under_write_lock_total",
        "counter",
        "Reads through the pool by a task holding the write lock (each a bug).",
    );
    let _ = writeln!(
        out,
        "paddock_store_reads_under_write_lock_total {}",
        f.reads_under_write_lock
    );
    describe(
        out,
        "paddock_store_lease_renewals_total",
        "counter",
        "Lease renewals by this replica, per lease kind (operation, stack).",
    );
    for (kind, n) in &f.lease_renewals {
        let _ = writeln!(
            out,
            "paddock_store_lease_renewals_total{{lease=\"{}\"}} {n}",
            kind.label()
        );
    }
    describe(
        out,
        "paddock_store_lease_margin_seconds_min",
        "gauge",
        "The least time a lease had left before expiring when this replica renewed it.",
    );
    for (kind, left) in &f.lease_margin_min {
        let _ = writeln!(
            out,
            "paddock_store_lease_margin_seconds_min{{lease=\"{}\"}} {}",
            kind.label(),
            left.as_secs_f64()
        );
    }
    describe(
        out,
        "paddock_store_lease_renewals_late_total",
        "counter",
        "Lease renewals made after the lease had expired (before anyone took it over).",
    );
    for kind in f.lease_renewals.keys() {
        let n = f.lease_margin_negative.get(kind).copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "paddock_store_lease_renewals_late_total{{lease=\"{}\"}} {n}",
            kind.label()
        );
    }
}

#[derive(Default)]
struct Inner {
    http: BTreeMap<(String, u16), u64>,
    http_latency: Histogram,
    steps: BTreeMap<String, Histogram>,
    operations: BTreeMap<String, Histogram>,
    takeovers: u64,
    approval_waits: BTreeMap<String, Histogram>,
    events_recorded: u64,
    events_lost: u64,
}

/// This replica's counters.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    pub fn http(&self, method: &str, status: u16, elapsed: Duration) {
        let mut m = self.inner.lock().expect("metrics lock");
        *m.http.entry((method.to_owned(), status)).or_default() += 1;
        m.http_latency.observe(elapsed.as_secs_f64());
    }

    pub fn step(&self, provider: &str, ms: u64) {
        let mut m = self.inner.lock().expect("metrics lock");
        m.steps
            .entry(provider.to_owned())
            .or_default()
            .observe(ms as f64 / 1000.0);
    }

    pub fn finished(&self, state: &str, elapsed: Duration) {
        let mut m = self.inner.lock().expect("metrics lock");
        m.operations
            .entry(state.to_owned())
            .or_default()
            .observe(elapsed.as_secs_f64());
    }

    pub fn takeover(&self) {
        self.inner.lock().expect("metrics lock").takeovers += 1;
    }

    pub fn event_recorded(&self) {
        self.inner.lock().expect("metrics lock").events_recorded += 1;
    }

    /// An operation's event could not be recorded, even retried: the live log lacks it.
    pub fn event_lost(&self) {
        self.inner.lock().expect("metrics lock").events_lost += 1;
    }

    /// An approval was decided (`approved`, `rejected`) after waiting `waited_ms`.
    pub fn approval(&self, decision: &str, waited_ms: i64) {
        let mut m = self.inner.lock().expect("metrics lock");
        m.approval_waits
            .entry(decision.to_owned())
            .or_default()
            .observe(waited_ms.max(0) as f64 / 1000.0);
    }
}

pub async fn render(axum::extract::State(state): axum::extract::State<Arc<AppState>>) -> Response {
    let counts = state.db.operation_counts().await.unwrap_or_default();
    let mut out = String::new();
    out.push_str("# HELP paddock_operations Operations by state (all replicas).\n");
    out.push_str("# TYPE paddock_operations gauge\n");
    for s in [
        "queued",
        "running",
        "waiting_for_approval",
        "succeeded",
        "failed",
        "cancelled",
    ] {
        let n = counts.iter().find(|(k, _)| k == s).map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "paddock_operations{{state=\"{s}\"}} {n}");
    }
    let queued = counts
        .iter()
        .find(|(k, _)| k == "queued")
        .map_or(0, |(_, n)| *n);
    out.push_str("# HELP paddock_queue_depth Operations waiting for a worker.\n");
    out.push_str("# TYPE paddock_queue_depth gauge\n");
    let _ = writeln!(out, "paddock_queue_depth {queued}");
    out.push_str(
        "# HELP paddock_drift_resources Resources the latest refresh of each environment found changed outside Paddock (all replicas).\n",
    );
    out.push_str("# TYPE paddock_drift_resources gauge\n");
    // Left out rather than reported as 0 when the database does not answer.
    match state.db.drifted_resources().await {
        Ok(drifted) => {
            let _ = writeln!(out, "paddock_drift_resources {drifted}");
        }
        Err(e) => tracing::warn!(error = %e, "reading drifted resources for /metrics"),
    }
    let approvals = state.db.approval_counts().await.unwrap_or_default();
    out.push_str("# HELP paddock_approvals Approvals by state (all replicas).\n");
    out.push_str("# TYPE paddock_approvals gauge\n");
    for s in ["pending", "approved", "rejected", "superseded"] {
        let n = approvals
            .iter()
            .find(|(k, _)| k == s)
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "paddock_approvals{{state=\"{s}\"}} {n}");
    }
    let m = state.inner_metrics();
    out.push_str("# HELP paddock_http_requests_total HTTP requests served by this replica.\n");
    out.push_str("# TYPE paddock_http_requests_total counter\n");
    for ((method, status), n) in &m.http {
        let _ = writeln!(
            out,
            "paddock_http_requests_total{{method=\"{method}\",status=\"{status}\"}} {n}"
        );
    }
    out.push_str("# HELP paddock_http_request_duration_seconds HTTP request latency.\n");
    out.push_str("# TYPE paddock_http_request_duration_seconds histogram\n");
    m.http_latency
        .render(&mut out, "paddock_http_request_duration_seconds", "");
    out.push_str("# HELP paddock_step_duration_seconds Provider step latency, per provider.\n");
    out.push_str("# TYPE paddock_step_duration_seconds histogram\n");
    for (provider, h) in &m.steps {
        h.render(
            &mut out,
            "paddock_step_duration_seconds",
            &format!("provider=\"{provider}\""),
        );
    }
    out.push_str("# HELP paddock_operation_duration_seconds Operations run by this replica.\n");
    out.push_str("# TYPE paddock_operation_duration_seconds histogram\n");
    for (s, h) in &m.operations {
        h.render(
            &mut out,
            "paddock_operation_duration_seconds",
            &format!("state=\"{s}\""),
        );
    }
    out.push_str(
        "# HELP paddock_lease_takeovers_total Operations this replica took over from a replica whose lease expired.\n",
    );
    out.push_str("# TYPE paddock_lease_takeovers_total counter\n");
    let _ = writeln!(out, "paddock_lease_takeovers_total {}", m.takeovers);
    out.push_str(
        "# HELP paddock_approval_wait_seconds How long approvals decided on this replica waited.\n",
    );
    out.push_str("# TYPE paddock_approval_wait_seconds histogram\n");
    for (decision, h) in &m.approval_waits {
        h.render(
            &mut out,
            "paddock_approval_wait_seconds",
            &format!("decision=\"{decision}\""),
        );
    }
    describe(
        &mut out,
        "paddock_events_recorded_total",
        "counter",
        "Operations' events this replica recorded.",
    );
    let _ = writeln!(out, "paddock_events_recorded_total {}", m.events_recorded);
    describe(
        &mut out,
        "paddock_events_lost_total",
        "counter",
        "Operations' events this replica failed to record, even retried (lost from the live log).",
    );
    let _ = writeln!(out, "paddock_events_lost_total {}", m.events_lost);
    render_store(&mut out, &state.db.store_figures());
    crate::cloud_metrics::render(&mut out);
    let mut response = out.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

/// A copy of the counters, taken under the lock.
pub(crate) struct Snapshot {
    http: BTreeMap<(String, u16), u64>,
    http_latency: Histogram,
    steps: BTreeMap<String, Histogram>,
    operations: BTreeMap<String, Histogram>,
    takeovers: u64,
    approval_waits: BTreeMap<String, Histogram>,
    events_recorded: u64,
    events_lost: u64,
}

impl AppState {
    fn inner_metrics(&self) -> Snapshot {
        let m = self.metrics.inner.lock().expect("metrics lock");
        Snapshot {
            http: m.http.clone(),
            http_latency: m.http_latency.clone(),
            steps: m.steps.clone(),
            operations: m.operations.clone(),
            takeovers: m.takeovers,
            approval_waits: m.approval_waits.clone(),
            events_recorded: m.events_recorded,
            events_lost: m.events_lost,
        }
    }
}
