-- Migration 3: campaign plans, delivery log, measurements, erasure audit.
-- Released: never edit; a change is a new migration file (churnguard/store.py lists them).
CREATE TABLE plans (
    campaign_id VARCHAR PRIMARY KEY,
    created_at  TIMESTAMP NOT NULL,
    as_of       TIMESTAMP NOT NULL,
    budget      DOUBLE NOT NULL,
    status      VARCHAR NOT NULL,
    config      VARCHAR NOT NULL,
    summary     VARCHAR NOT NULL
);
CREATE TABLE plan_rows (
    campaign_id     VARCHAR NOT NULL,
    user_id         VARCHAR NOT NULL,
    action          VARCHAR NOT NULL,
    is_control      BOOLEAN NOT NULL,
    risk_tier       VARCHAR,
    p_churn         DOUBLE,
    uplift          DOUBLE,
    value           DOUBLE,
    expected_cost   DOUBLE,
    expected_margin DOUBLE,
    channel         VARCHAR,
    items           VARCHAR,
    message_en      VARCHAR,
    message_zh      VARCHAR,
    PRIMARY KEY (campaign_id, user_id)
);
CREATE TABLE deliveries (
    campaign_id      VARCHAR NOT NULL,
    user_id          VARCHAR NOT NULL,
    idempotency_key  VARCHAR NOT NULL,
    target           VARCHAR NOT NULL,
    status           VARCHAR NOT NULL,
    attempts         INTEGER NOT NULL,
    last_status_code INTEGER,
    last_error       VARCHAR,
    updated_at       TIMESTAMP NOT NULL,
    PRIMARY KEY (campaign_id, user_id)
);
CREATE TABLE measurements (
    campaign_id VARCHAR NOT NULL,
    measured_at TIMESTAMP NOT NULL,
    result      VARCHAR NOT NULL
);
CREATE TABLE erasures (
    erasure_id   VARCHAR PRIMARY KEY,
    erased_at    TIMESTAMP NOT NULL,
    rows_deleted VARCHAR NOT NULL
);
