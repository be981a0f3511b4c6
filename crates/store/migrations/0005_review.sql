-- Review (docs/design/review.md): events are reviewed and know their best
-- frame; locks say who made them and why; thumbnails index their sidecar
-- files; exports are jobs that outlive a request and a restart.
ALTER TABLE events ADD COLUMN reviewed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN peak_utc_ns INTEGER;
CREATE INDEX events_start ON events (start_utc_ns);

ALTER TABLE locks ADD COLUMN created_by TEXT;
ALTER TABLE locks ADD COLUMN created_at_utc_ns INTEGER;

-- One row per JPEG in `<recording path>.thumbs`; the rows go with their
-- recording (ON DELETE CASCADE), the sidecar file with its garbage entry.
CREATE TABLE thumbnails (
    recording_id INTEGER NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    at_utc_ns    INTEGER NOT NULL,
    offset       INTEGER NOT NULL,
    len          INTEGER NOT NULL,
    PRIMARY KEY (recording_id, at_utc_ns)
);

CREATE TABLE exports (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    owner        TEXT    NOT NULL,
    camera       TEXT    NOT NULL,
    start_utc_ns INTEGER NOT NULL,
    end_utc_ns   INTEGER NOT NULL,
    name         TEXT    NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    progress     REAL    NOT NULL DEFAULT 0,
    bytes        INTEGER NOT NULL DEFAULT 0,
    error        TEXT,
    created_at_utc_ns INTEGER NOT NULL
);
CREATE INDEX exports_owner ON exports (owner, id);
