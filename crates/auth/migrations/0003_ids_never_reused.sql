-- User and camera ids are never handed out again after a deletion. SQLite
-- gives an INTEGER PRIMARY KEY the highest id plus one, so deleting the
-- newest row made its id the next one's: a deleted user's token then
-- answered as whoever came next, and a new camera inherited a deleted
-- one's recordings (they are kept by camera id). Every insert now takes
-- its id from here (see `next_id` in accounts.rs), inside its transaction.
CREATE TABLE id_seq (
    name TEXT PRIMARY KEY CHECK (name IN ('users', 'cameras')),
    last INTEGER NOT NULL
);
INSERT INTO id_seq (name, last) VALUES
    ('users', COALESCE((SELECT MAX(id) FROM users), 0)),
    ('cameras', COALESCE((SELECT MAX(id) FROM cameras), 0));
