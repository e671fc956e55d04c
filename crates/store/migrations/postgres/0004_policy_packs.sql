-- Policy pack versions, published by platform admins (version 1 is the pack the binary
-- ships, published at first start). The newest version is the one enforced; versions
-- are never changed or deleted, so any decision can be traced to the pack that made it.
CREATE TABLE policy_packs (
    version BIGINT PRIMARY KEY,
    digest TEXT NOT NULL,
    -- The pack's files as a JSON object: file name -> content.
    files TEXT NOT NULL,
    description TEXT NOT NULL,
    published_by TEXT NOT NULL,
    published_at BIGINT NOT NULL
);
