-- Blueprint versions as bundles, pins, and fleet rollouts.

-- A version's source files (path → YAML text, as JSON): what renders it. Absent for rows
-- published before this migration; the server fills the shipped version's at start.
ALTER TABLE blueprints ADD COLUMN sources TEXT;

-- The version an environment is pinned to: fleet rollouts to any other version skip it.
ALTER TABLE environments ADD COLUMN pinned_version TEXT;

-- A fleet upgrade: the environments of a blueprint brought to one version in waves (a
-- canary wave, then batches), stopping at the first failed wave.
CREATE TABLE rollouts (
    id TEXT PRIMARY KEY,
    blueprint TEXT NOT NULL,
    target_version TEXT NOT NULL,
    -- The filter that chose its environments, as JSON.
    filter TEXT NOT NULL,
    canary INTEGER NOT NULL,
    batch_size INTEGER NOT NULL,
    -- running, succeeded, failed or cancelled.
    state TEXT NOT NULL,
    -- The wave whose operations are queued (0 is the canary wave).
    current_wave INTEGER NOT NULL,
    requested_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    finished_at INTEGER,
    -- Why it stopped, in words.
    reason TEXT
);
CREATE INDEX rollouts_by_state ON rollouts (state, created_at);

-- Every environment a rollout considered, in the order it takes them.
CREATE TABLE rollout_targets (
    rollout_id TEXT NOT NULL REFERENCES rollouts (id),
    position INTEGER NOT NULL,
    environment_id TEXT NOT NULL,
    from_version TEXT NOT NULL,
    -- Its wave; NULL when it is skipped (pinned to another version).
    wave INTEGER,
    -- Why it is skipped, when it is.
    skipped TEXT,
    -- The upgrade operation, once its wave is queued.
    operation_id TEXT,
    PRIMARY KEY (rollout_id, position)
);
