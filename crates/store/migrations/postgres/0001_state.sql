-- Stacks, their resources, and the journal of in-flight steps: the SQLite schema's twin.
-- Values are JSON text already sealed by the engine, stored as given (TEXT, not JSONB, so
-- they come back byte for byte): no secret is ever stored in clear.
-- The lease is JSON text too; its op id is a column of its own, read by every fenced write.
-- Keys collate bytewise ("C"), as in SQLite: listings come back in the same order.
CREATE TABLE stacks (
    name                TEXT COLLATE "C" PRIMARY KEY,
    wrapped_key         TEXT NOT NULL,
    created_at_ms       BIGINT NOT NULL,
    outputs             TEXT NOT NULL DEFAULT '{}',
    lease               TEXT,
    lease_op_id         TEXT,
    lease_expires_at_ms BIGINT,
    CHECK ((lease IS NULL) = (lease_op_id IS NULL))
);

CREATE TABLE resources (
    stack    TEXT COLLATE "C" NOT NULL REFERENCES stacks(name) ON DELETE CASCADE,
    instance TEXT COLLATE "C" NOT NULL,
    name     TEXT NOT NULL,
    record   TEXT NOT NULL,
    PRIMARY KEY (stack, instance)
);

CREATE TABLE journal (
    stack TEXT COLLATE "C" NOT NULL REFERENCES stacks(name) ON DELETE CASCADE,
    op_id TEXT COLLATE "C" NOT NULL,
    entry TEXT NOT NULL,
    PRIMARY KEY (stack, op_id)
);
