-- SQLite twin of migrations/postgres (arrays as JSON text, booleans as 0/1).
-- Subscribers (docs/design.md §5). Times are epoch milliseconds.
CREATE TABLE subscribers (
    id              TEXT PRIMARY KEY,
    phone           TEXT NOT NULL UNIQUE,          -- E.164; personal data: never logged
    language        TEXT NOT NULL DEFAULT 'ko',
    lat             REAL,
    lon             REAL,
    declared_zones  TEXT NOT NULL DEFAULT '[]',  -- areas subscribed to (zone ids)
    hazards         TEXT NOT NULL,               -- public hazards opted into
    drill           INTEGER NOT NULL DEFAULT 0,
    consent_ms      BIGINT,
    opted_out_ms    BIGINT,
    opt_out_reason  TEXT,
    note            TEXT,
    -- computed at write time from the zones (geo.recipients.memberships), and again when
    -- the zones' version changes
    member_zones    TEXT NOT NULL DEFAULT '[]',
    located         TEXT NOT NULL DEFAULT '[]',  -- zones holding the location, smallest first
    point_lat       REAL,
    point_lon       REAL,
    zones_version   TEXT NOT NULL,
    created_ms      BIGINT NOT NULL,
    updated_ms      BIGINT NOT NULL
);

-- zone -> subscribers: who an alert in a zone concerns, without scanning everyone
CREATE TABLE subscriber_zones (
    zone           TEXT NOT NULL,
    subscriber_id  TEXT NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    PRIMARY KEY (zone, subscriber_id)
);
CREATE INDEX subscriber_zones_subscriber ON subscriber_zones (subscriber_id);

CREATE TABLE store_meta (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
