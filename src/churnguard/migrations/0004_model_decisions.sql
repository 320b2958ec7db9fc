-- Migration 4: the champion/challenger gate's decisions, each with its evidence.
-- Released: never edit; a change is a new migration file (churnguard/store.py lists them).
-- One row per decision: a challenge (promoted, kept, no-evidence), a realized-metrics check
-- (kept, rolled-back) or a manual rollback. "champion" is the version that held the alias when
-- the decision was taken, "challenger" the one that would take it, "champion_after" the one
-- that holds it afterwards. A row that moves the alias is written in the same transaction as
-- the move (churnguard.registry.record_decision).
CREATE TABLE model_decisions (
    decision_id        VARCHAR PRIMARY KEY,
    decided_at         TIMESTAMP NOT NULL,
    trigger            VARCHAR NOT NULL,   -- challenge | realized | manual
    outcome            VARCHAR NOT NULL,   -- promoted | kept | no-evidence | rolled-back
    champion_version   VARCHAR,
    challenger_version VARCHAR,
    champion_after     VARCHAR,
    cohort_cutoff      TIMESTAMP,          -- the out-of-time cohort both were scored on
    n_customers        INTEGER,
    n_churned          INTEGER,
    champion_auc       DOUBLE,
    challenger_auc     DOUBLE,
    delta_auc          DOUBLE,             -- challenger - champion
    delta_auc_lower    DOUBLE,             -- one-sided lower bound (paired bootstrap)
    delta_auc_upper    DOUBLE,             -- one-sided upper bound
    champion_ece       DOUBLE,
    challenger_ece     DOUBLE,
    tolerance          DOUBLE,
    max_ece            DOUBLE,
    confidence         DOUBLE,
    resamples          INTEGER,
    seed               BIGINT,
    reason             VARCHAR NOT NULL,
    evidence           VARCHAR NOT NULL    -- JSON: what else was measured (baselines, windows)
);
