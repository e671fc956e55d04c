-- The master keys the database knows of: which one wraps new data keys (the primary),
-- since when, and which were retired. The keys themselves are never here: they live in
-- each replica's key ring file. Each stack's `wrapped_key` names the key that wrapped it
-- (`ID:…`; no id: the key of a single-key file, `k0`).
CREATE TABLE master_keys (
    id               TEXT PRIMARY KEY,
    is_primary       BIGINT NOT NULL DEFAULT 0,
    primary_since_ms BIGINT,
    retired_at_ms    BIGINT
);
CREATE UNIQUE INDEX master_keys_one_primary ON master_keys (is_primary) WHERE is_primary = 1;

-- Rotations: every data key re-wrapped under `to_key`, in batches. An unfinished one is
-- resumed by the next `paddock key rotate`.
CREATE TABLE key_rotations (
    to_key         TEXT PRIMARY KEY,
    started_at_ms  BIGINT NOT NULL,
    finished_at_ms BIGINT,
    rewrapped      BIGINT NOT NULL DEFAULT 0
);
