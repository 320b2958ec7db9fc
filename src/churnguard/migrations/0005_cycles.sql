-- Migration 5: the operating cycle's record (cycles, their steps) and the inbox's files.
-- Released: never edit; a change is a new migration file (churnguard/store.py lists them).
CREATE TABLE cycles (
    cycle_id    VARCHAR PRIMARY KEY,
    trigger     VARCHAR NOT NULL,      -- 'cli' (churnguard run) or 'schedule' (serve)
    status      VARCHAR NOT NULL,      -- running, done, failed
    steps       VARCHAR NOT NULL,      -- the steps it runs, comma-separated, in order
    now         TIMESTAMP,             -- the --now it was asked to run at (NULL: the data's)
    started_at  TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    error       VARCHAR
);
CREATE TABLE cycle_steps (
    cycle_id    VARCHAR NOT NULL,
    step        VARCHAR NOT NULL,
    position    INTEGER NOT NULL,
    status      VARCHAR NOT NULL,      -- started, done, failed, skipped
    fingerprint VARCHAR,               -- sha256 of the step's inputs (JSON in inputs)
    inputs      VARCHAR,               -- the inputs hashed, JSON
    figures     VARCHAR,               -- what it measured or did, JSON
    decision    VARCHAR,               -- one sentence: what it decided
    evidence    VARCHAR,               -- why
    error       VARCHAR,
    started_at  TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    PRIMARY KEY (cycle_id, step)
);
-- One row per file content the inbox ever held: written in the same transaction as the
-- file's ingest batch (status 'ingested'), or alone for a file the ingest refused ('rejected').
CREATE TABLE inbox_files (
    content_hash VARCHAR PRIMARY KEY,  -- sha256 of the file's bytes
    name         VARCHAR NOT NULL,     -- path under the inbox when it was seen
    kind         VARCHAR,
    size_bytes   BIGINT NOT NULL,
    status       VARCHAR NOT NULL,     -- ingested, rejected
    batch_id     VARCHAR,              -- the ingest batch (NULL: the file held no rows)
    cycle_id     VARCHAR,
    error        VARCHAR,
    seen_at      TIMESTAMP NOT NULL
);
