-- Subscribers (docs/design.md §5). Times are epoch milliseconds.
CREATE TABLE subscribers (
    id              TEXT PRIMARY KEY,
    phone           TEXT NOT NULL UNIQUE,          -- E.164; personal data: never logged
    language        TEXT NOT NULL DEFAULT 'ko',
    lat             DOUBLE PRECISION,
    lon             DOUBLE PRECISION,
    declared_zones  TEXT[] NOT NULL DEFAULT '{}',  -- areas subscribed to (zone ids)
    hazards         TEXT[] NOT NULL,               -- public hazards opted into
    drill           BOOLEAN NOT NULL DEFAULT FALSE,
    consent_ms      BIGINT,
    opted_out_ms    BIGINT,
    opt_out_reason  TEXT,
    note            TEXT,
    -- computed at write time from the zones (geo.recipients.memberships), and again when
    -- the zones' version changes
    member_zones    TEXT[] NOT NULL DEFAULT '{}',
    located         TEXT[] NOT NULL DEFAULT '{}',  -- zones holding the location, smallest first
    point_lat       DOUBLE PRECISION,
    point_lon       DOUBLE PRECISION,
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
