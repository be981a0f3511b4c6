-- Recordings the transcoder gave up on, so a file that cannot be
-- re-encoded (or would not get smaller) is not retried every night.
CREATE TABLE transcode_skip (
    path      TEXT    PRIMARY KEY,
    reason    TEXT    NOT NULL,
    at_utc_ns INTEGER NOT NULL
);
