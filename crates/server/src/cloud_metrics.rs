//! The clouds as this replica's providers saw them, for `/metrics`: requests sent, and
//! requests sent again, by API and by why — what a fault in a cloud costs.

use std::fmt::Write as _;

use paddock_providers::http;

/// Appends the cloud request and retry counters, in the Prometheus text format.
pub(crate) fn render(out: &mut String) {
    out.push_str(
        "# HELP paddock_cloud_requests_total Requests this replica sent to the clouds, retries included.\n",
    );
    out.push_str("# TYPE paddock_cloud_requests_total counter\n");
    for (api, n) in http::calls_by_api() {
        let _ = writeln!(out, "paddock_cloud_requests_total{{api=\"{api}\"}} {n}");
    }
    out.push_str(
        "# HELP paddock_cloud_retries_total Requests this replica sent to the clouds again, by why: throttled (429, GitHub's secondary limit), server_error (5xx), connection (failed or dropped), unauthorized (401, token renewed), not_found_yet (eventual consistency).\n",
    );
    out.push_str("# TYPE paddock_cloud_retries_total counter\n");
    for ((api, reason), n) in http::retries_by_api() {
        let _ = writeln!(
            out,
            "paddock_cloud_retries_total{{api=\"{api}\",reason=\"{reason}\"}} {n}"
        );
    }
}
