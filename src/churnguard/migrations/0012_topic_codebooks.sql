-- Migration 12: the topic codebooks of the voice of the customer (churnguard.voice.codebook).
-- Released: never edit; a change is a new migration file (churnguard/store.py lists them).
-- The newest row is the one in use: every text gets its topic from it, so reruns agree. A refit
-- adds a row whose mapping says which old topic key became which new one.
CREATE TABLE topic_codebooks (
    codebook_id VARCHAR PRIMARY KEY,   -- sha256 of the payload, 16 hex digits
    fitted_at   TIMESTAMP NOT NULL,
    encoder_key VARCHAR NOT NULL,      -- the text encoder whose vectors the centroids are in
    n_texts     INTEGER NOT NULL,      -- distinct texts it was fitted on
    n_topics    INTEGER NOT NULL,
    previous_id VARCHAR,               -- the codebook this refit replaced (NULL: the first)
    mapping     VARCHAR,               -- JSON {old key: new key or null} of that refit
    payload     BLOB NOT NULL          -- Codebook.to_bytes()
);
