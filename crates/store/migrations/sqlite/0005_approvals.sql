-- Approvals: an operation that policy says needs a second person waits
-- ('waiting_for_approval') with one pending approval per stack whose plan needs it. The
-- approval is bound to the plan's hash: a different plan at run time supersedes it and
-- asks again.
CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    operation_id TEXT NOT NULL,
    team TEXT NOT NULL,
    environment TEXT,
    stack TEXT NOT NULL,
    plan_hash TEXT NOT NULL,
    -- The plan as the approver sees it (redacted JSON) and why approval is needed.
    plan TEXT NOT NULL,
    reasons TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_at INTEGER NOT NULL,
    -- pending, approved, rejected, superseded
    state TEXT NOT NULL,
    decided_by TEXT,
    decided_at INTEGER,
    comment TEXT
);
CREATE INDEX approvals_by_state ON approvals (state, requested_at);
CREATE INDEX approvals_by_operation ON approvals (operation_id, stack);
