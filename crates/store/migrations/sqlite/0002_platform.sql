-- The platform server's records: people, teams, blueprints, environments, operations,
-- their events, and the audit log. Times are Unix milliseconds; JSON is text.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    login TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    email TEXT,
    platform_admin INTEGER NOT NULL DEFAULT 0,
    password_hash TEXT,
    oidc_issuer TEXT,
    oidc_subject TEXT,
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX users_by_oidc ON users (oidc_issuer, oidc_subject);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    digest TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER,
    last_used_at INTEGER
);

CREATE TABLE sessions (
    digest TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE TABLE sign_in_links (
    digest TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);

CREATE TABLE pending_sign_ins (
    state TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    data TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE TABLE teams (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL
);

CREATE TABLE team_members (
    team TEXT NOT NULL REFERENCES teams (name) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id),
    role TEXT NOT NULL,
    PRIMARY KEY (team, user_id)
);

CREATE TABLE blueprints (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    digest TEXT NOT NULL,
    description TEXT NOT NULL,
    parameters TEXT NOT NULL,
    published_at INTEGER NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE environments (
    id TEXT PRIMARY KEY,
    team TEXT NOT NULL REFERENCES teams (name),
    name TEXT NOT NULL,
    blueprint TEXT NOT NULL,
    blueprint_version TEXT NOT NULL,
    parameters TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (team, name)
);

CREATE TABLE operations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    team TEXT NOT NULL,
    environment TEXT,
    kind TEXT NOT NULL,
    stages TEXT NOT NULL,
    state TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    retry_of TEXT,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    holder TEXT,
    lease_expires_at INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    outcome TEXT
);
CREATE INDEX operations_by_state ON operations (state, seq);
CREATE INDEX operations_by_environment ON operations (environment, seq);

CREATE TABLE operation_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    operation_id TEXT NOT NULL,
    environment TEXT,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX events_by_operation ON operation_events (operation_id, id);
CREATE INDEX events_by_environment ON operation_events (environment, id);

CREATE TABLE idempotency_keys (
    user_id TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    location TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, key)
);

CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    source TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    team TEXT,
    environment TEXT,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_by_team ON audit_log (team, seq);
CREATE INDEX audit_by_actor ON audit_log (actor, seq);

-- The chain's head, written in the same transaction as each row: deleting the newest rows
-- leaves a head that no row matches.
CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL
);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
