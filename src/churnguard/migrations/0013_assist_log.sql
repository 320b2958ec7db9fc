-- Migration 13: what agents did with the assistant's recommended replies (issue 20, item 5).
-- Released: never edit; a change is a new migration file (churnguard/store.py lists them).
-- One row per decision an agent reported on one open ticket: the recommended reply accepted as
-- it was, edited before sending, or rejected. Names a customer: erased with them.
CREATE TABLE assist_log (
    assist_id      VARCHAR PRIMARY KEY,  -- random
    logged_at      TIMESTAMP NOT NULL,   -- UTC
    user_id        VARCHAR NOT NULL,     -- as the store holds it
    ticket_id      VARCHAR NOT NULL,     -- event_id of the support_ticket
    lang           VARCHAR NOT NULL,     -- 'en' or 'zh': the ticket's language
    decision       VARCHAR NOT NULL,     -- 'accepted', 'edited' or 'rejected'
    template_id    VARCHAR,              -- the recommended template (NULL: none was offered)
    sent_text      VARCHAR,              -- the reply as sent (NULL when rejected)
    top_similarity DOUBLE,               -- of the most similar resolved ticket (NULL: none)
    abstained      BOOLEAN NOT NULL,     -- nothing was similar enough
    agent          VARCHAR               -- who decided, as the caller names them (optional)
);
