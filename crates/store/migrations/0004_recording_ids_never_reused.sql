-- Recording ids are never handed out again after a deletion (retention
-- deletes the oldest, whose ids SQLite's rowid would otherwise reuse), so
-- an id a client holds always names the same footage or none.
CREATE TABLE recordings_new (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
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
INSERT INTO recordings_new SELECT id, camera, path, start_utc_ns, end_utc_ns, bytes, init_bytes,
    codec, width, height, state, first_seq, fragments FROM recordings;
DROP TABLE recordings;
ALTER TABLE recordings_new RENAME TO recordings;
CREATE INDEX recordings_camera_start ON recordings (camera, start_utc_ns);
