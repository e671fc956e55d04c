-- Day two: when an environment expires (and who set it, the person its teardown is
-- attributed to), and the drift its latest refresh found. Times are Unix milliseconds.

-- At most one expiry per environment (environment-level: a stage has none of its own).
-- `warned_at`: when the expiry warning was given; `teardown_operation`: the destroy the
-- reaper queued for this expiry.
CREATE TABLE environment_expiry (
    environment_id TEXT PRIMARY KEY REFERENCES environments (id),
    expires_at INTEGER NOT NULL,
    set_by TEXT NOT NULL,
    set_at INTEGER NOT NULL,
    warned_at INTEGER,
    teardown_operation TEXT
);
CREATE INDEX environment_expiry_by_time ON environment_expiry (expires_at);

-- The drift the environment's latest refresh found (JSON per stack and resource, secrets
-- redacted), until an `up` or a destroy makes it moot. `resources`: how many drifted.
CREATE TABLE environment_drift (
    environment_id TEXT PRIMARY KEY REFERENCES environments (id),
    operation_id TEXT NOT NULL,
    found_at INTEGER NOT NULL,
    resources INTEGER NOT NULL,
    drift TEXT NOT NULL
);
