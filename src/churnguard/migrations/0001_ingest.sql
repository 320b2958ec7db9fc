-- Migration 1: ingest batches, events, users, items, campaigns, labels, quarantine.
-- Released: never edit; a change is a new migration file (churnguard/store.py lists them).
CREATE TABLE ingest_batches (
    batch_id       VARCHAR PRIMARY KEY,
    kind           VARCHAR NOT NULL,
    files          VARCHAR[] NOT NULL,
    on_error       VARCHAR NOT NULL,
    rows_read      BIGINT NOT NULL,
    rows_added     BIGINT NOT NULL,
    rows_updated   BIGINT NOT NULL,
    rows_duplicate BIGINT NOT NULL,
    rows_bad       BIGINT NOT NULL,
    started_at     TIMESTAMP NOT NULL,
    finished_at    TIMESTAMP NOT NULL
);
CREATE TABLE events (
    event_id   VARCHAR NOT NULL,
    user_id    VARCHAR NOT NULL,
    ts         TIMESTAMP NOT NULL,
    type       VARCHAR NOT NULL,
    item_id    VARCHAR,
    category   VARCHAR,
    amount     DOUBLE,
    quantity   DOUBLE,
    text       VARCHAR,
    rating     TINYINT,
    channel    VARCHAR,
    session_id VARCHAR,
    batch_id   VARCHAR NOT NULL
);
CREATE TABLE users (
    user_id   VARCHAR PRIMARY KEY,
    signup_ts TIMESTAMP,
    batch_id  VARCHAR NOT NULL
);
CREATE TABLE user_attributes (
    user_id  VARCHAR NOT NULL,
    name     VARCHAR NOT NULL,
    value    VARCHAR,
    batch_id VARCHAR NOT NULL,
    PRIMARY KEY (user_id, name)
);
CREATE TABLE items (
    item_id  VARCHAR PRIMARY KEY,
    category VARCHAR,
    price    DOUBLE,
    title    VARCHAR,
    batch_id VARCHAR NOT NULL
);
CREATE TABLE item_attributes (
    item_id  VARCHAR NOT NULL,
    name     VARCHAR NOT NULL,
    value    VARCHAR,
    batch_id VARCHAR NOT NULL,
    PRIMARY KEY (item_id, name)
);
CREATE TABLE campaigns (
    campaign_id VARCHAR NOT NULL,
    user_id     VARCHAR NOT NULL,
    action      VARCHAR NOT NULL,
    assigned_at TIMESTAMP NOT NULL,
    is_control  BOOLEAN NOT NULL,
    cost        DOUBLE,
    channel     VARCHAR,
    batch_id    VARCHAR NOT NULL,
    PRIMARY KEY (campaign_id, user_id)
);
CREATE TABLE labels (
    user_id  VARCHAR NOT NULL,
    as_of    TIMESTAMP NOT NULL,
    churned  BOOLEAN NOT NULL,
    batch_id VARCHAR NOT NULL,
    PRIMARY KEY (user_id, as_of)
);
CREATE TABLE quarantine (
    batch_id       VARCHAR NOT NULL,
    kind           VARCHAR NOT NULL,
    file           VARCHAR NOT NULL,
    row_number     BIGINT,
    column_name    VARCHAR,
    reason         VARCHAR NOT NULL,
    record         VARCHAR,
    quarantined_at TIMESTAMP NOT NULL
);
