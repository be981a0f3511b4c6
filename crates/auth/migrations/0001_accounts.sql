-- Accounts. See docs/design/auth.md.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    email         TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    token_version INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);

CREATE TABLE cameras (
    id              INTEGER PRIMARY KEY,
    owner_id        INTEGER NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    name            TEXT    NOT NULL UNIQUE,
    resolution      TEXT,
    status          TEXT    NOT NULL DEFAULT 'offline'
                            CHECK (status IN ('offline', 'online', 'streaming')),
    stream_key_hash BLOB    NOT NULL,
    created_at      INTEGER NOT NULL
);

CREATE TABLE camera_grants (
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    camera_id  INTEGER NOT NULL REFERENCES cameras (id) ON DELETE CASCADE,
    permission TEXT    NOT NULL CHECK (permission IN ('view', 'playback', 'control')),
    PRIMARY KEY (user_id, camera_id)
);
CREATE INDEX camera_grants_camera ON camera_grants (camera_id);

CREATE TABLE sessions (
    id        INTEGER PRIMARY KEY,
    camera_id INTEGER NOT NULL REFERENCES cameras (id) ON DELETE CASCADE,
    start_at  INTEGER NOT NULL,
    end_at    INTEGER,
    status    TEXT    NOT NULL CHECK (status IN ('active', 'ended', 'error'))
);
CREATE INDEX sessions_camera ON sessions (camera_id, start_at);
