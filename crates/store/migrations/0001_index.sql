-- The recording index. See docs/design/recording.md, "Index schema".
CREATE TABLE recordings (
    id           INTEGER PRIMARY KEY,
    camera       TEXT    NOT NULL,
    path         TEXT    NOT NULL UNIQUE,
    start_utc_ns INTEGER NOT NULL,
    end_utc_ns   INTEGER NOT NULL,
    bytes        INTEGER NOT NULL,
    init_bytes   INTEGER NOT NULL,
    codec        TEXT    NOT NULL,
    width        INTEGER NOT NULL,
    height       INTEGER NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('writing', 'complete')),
    first_seq    INTEGER NOT NULL,
    fragments    BLOB    NOT NULL
);
CREATE INDEX recordings_camera_start ON recordings (camera, start_utc_ns);

CREATE TABLE locks (
    id           INTEGER PRIMARY KEY,
    camera       TEXT    NOT NULL,
    start_utc_ns INTEGER NOT NULL,
    end_utc_ns   INTEGER NOT NULL,
    reason       TEXT    NOT NULL
);
CREATE INDEX locks_camera ON locks (camera, start_utc_ns);

CREATE TABLE events (
    id           INTEGER PRIMARY KEY,
    camera       TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    start_utc_ns INTEGER NOT NULL,
    end_utc_ns   INTEGER,
    score        REAL
);
CREATE INDEX events_camera_start ON events (camera, start_utc_ns);

CREATE TABLE garbage (
    path             TEXT    PRIMARY KEY,
    marked_at_utc_ns INTEGER NOT NULL
);
