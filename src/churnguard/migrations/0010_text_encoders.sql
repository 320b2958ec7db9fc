-- Migration 10: the shop's fitted text encoders (the Chinese character n-gram TF-IDF + SVD).
-- Released: never edit; a change is a new migration file (churnguard/store.py lists them).
-- The newest row is the one in use; an encoder is fitted once, on the store's own review,
-- ticket and item-title texts, so that every cache, model and score reads texts the same way.
CREATE TABLE text_encoders (
    encoder_id VARCHAR PRIMARY KEY,    -- sha256 of the payload, 16 hex digits
    kind       VARCHAR NOT NULL,       -- 'zh_char_tfidf_svd'
    fitted_at  TIMESTAMP NOT NULL,
    n_texts    INTEGER NOT NULL,       -- distinct texts it was fitted on
    payload    BLOB NOT NULL           -- ChineseEncoder.to_bytes()
);
