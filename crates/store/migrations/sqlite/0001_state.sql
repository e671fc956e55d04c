-- Stacks, their resources, and the journal of in-flight steps.
-- Resources and journal are clustered by (stack, key): a stack's state is one range scan.
-- Values are JSON text already sealed by the engine: no secret is ever stored in clear.
CREATE TABLE stacks (
    name                TEXT PRIMARY KEY,
    wrapped_key         TEXT NOT NULL,
    created_at_ms       INTEGER NOT NULL,
    outputs             TEXT NOT NULL DEFAULT '{}',
    lease               TEXT,
    lease_expires_at_ms INTEGER
);

CREATE TABLE resources (
    stack    TEXT NOT NULL REFERENCES stacks(name) ON DELETE CASCADE,
    instance TEXT NOT NULL,
    name     TEXT NOT NULL,
    record   TEXT NOT NULL,
    PRIMARY KEY (stack, instance)
) WITHOUT ROWID;

CREATE TABLE journal (
    stack TEXT NOT NULL REFERENCES stacks(name) ON DELETE CASCADE,
    op_id TEXT NOT NULL,
    entry TEXT NOT NULL,
    PRIMARY KEY (stack, op_id)
) WITHOUT ROWID;
