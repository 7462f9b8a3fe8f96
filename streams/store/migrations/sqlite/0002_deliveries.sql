-- SQLite twin of migrations/postgres (arrays as JSON text, booleans as 0/1).
-- The SMS sent log: one row per (person, event, level, triggering transition), planned
-- before the first request (the intent) and updated in batches with each outcome.
CREATE TABLE deliveries (
    key              TEXT PRIMARY KEY,
    event_id         TEXT NOT NULL,
    notify_key       TEXT NOT NULL,       -- namespace|hazard (the notify partition's key)
    hazard           TEXT NOT NULL,
    exercise         INTEGER NOT NULL,
    subscriber_id    TEXT NOT NULL,
    phone_masked     TEXT NOT NULL,
    level            INTEGER NOT NULL,   -- the person's new level; 0 = all-clear
    kind             TEXT NOT NULL,       -- rise | step_down | all_clear
    seq              INTEGER NOT NULL,    -- the board's step: order within the event
    trigger          TEXT NOT NULL,       -- the zone transition's event_id
    area             TEXT NOT NULL,
    body             TEXT NOT NULL,
    priority         REAL NOT NULL,
    token            TEXT NOT NULL,       -- idempotency token sent with every attempt
    state            TEXT NOT NULL DEFAULT 'planned',
    attempts         INTEGER NOT NULL DEFAULT 0,
    sid              TEXT,
    error_code       INTEGER,
    error            TEXT,
    delivery_status  TEXT,
    planned_ms       BIGINT NOT NULL,
    submitted_ms     BIGINT,
    status_ms        BIGINT,
    updated_ms       BIGINT NOT NULL
);
CREATE INDEX deliveries_event_person ON deliveries (event_id, subscriber_id, seq);
CREATE INDEX deliveries_planned ON deliveries (notify_key) WHERE state = 'planned';
CREATE INDEX deliveries_sid ON deliveries (sid);
CREATE INDEX deliveries_planned_ms ON deliveries (planned_ms);
