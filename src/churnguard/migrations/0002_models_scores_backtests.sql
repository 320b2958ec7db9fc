-- Migration 2: model registry, aliases with history, scores, backtest runs.
-- Released: never edit; a change is a new migration file (churnguard/store.py lists them).
CREATE TABLE models (
    version     VARCHAR PRIMARY KEY,
    name        VARCHAR NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    config      VARCHAR NOT NULL,
    data_window VARCHAR NOT NULL,
    metrics     VARCHAR NOT NULL,
    features    VARCHAR NOT NULL,
    artifact    BLOB NOT NULL
);
CREATE TABLE model_aliases (
    alias      VARCHAR PRIMARY KEY,
    version    VARCHAR NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE TABLE model_alias_history (
    alias            VARCHAR NOT NULL,
    version          VARCHAR NOT NULL,
    previous_version VARCHAR,
    changed_at       TIMESTAMP NOT NULL,
    reason           VARCHAR NOT NULL
);
CREATE TABLE scores (
    user_id       VARCHAR NOT NULL,
    as_of         TIMESTAMP NOT NULL,
    model_version VARCHAR NOT NULL,
    p_churn       DOUBLE NOT NULL,
    risk_tier     VARCHAR NOT NULL,
    reason_1      VARCHAR,
    reason_2      VARCHAR,
    reason_3      VARCHAR,
    lang          VARCHAR NOT NULL,
    scored_at     TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, as_of, model_version)
);
CREATE TABLE backtests (
    run_id     VARCHAR PRIMARY KEY,
    created_at TIMESTAMP NOT NULL,
    result     VARCHAR NOT NULL
);
CREATE TABLE backtest_predictions (
    run_id  VARCHAR NOT NULL,
    model   VARCHAR NOT NULL,
    user_id VARCHAR NOT NULL,
    y_true  BOOLEAN NOT NULL,
    p_churn DOUBLE NOT NULL
);
