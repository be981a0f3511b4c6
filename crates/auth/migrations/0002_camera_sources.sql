-- Where a camera's video comes from, for the programs that fetch it (the NVR).
-- A pusher camera has no row. See docs/design/auth.md.
CREATE TABLE camera_sources (
    camera_id  INTEGER PRIMARY KEY REFERENCES cameras (id) ON DELETE CASCADE,
    origin     TEXT    NOT NULL CHECK (origin IN ('file', 'api')),
    -- The config file's name for the camera (origin 'file'): the binding.
    file_name  TEXT    UNIQUE,
    -- Opaque to auth (the NVR's TOML); may hold passwords.
    settings   TEXT,
    updated_at INTEGER NOT NULL,
    CHECK ((origin = 'file') = (file_name IS NOT NULL))
);
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
