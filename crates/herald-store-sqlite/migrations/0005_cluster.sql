-- What a cluster bus needs (SQLite serves one node, but keeps the same tables so the API answers
-- the same): the relay's mark, dead letters, and the streams each node holds.

-- The last position the relay published to a cluster bus, and the bus's own position after it.
ALTER TABLE relay_state ADD COLUMN published_seq INTEGER;
ALTER TABLE relay_state ADD COLUMN bus_offset INTEGER;

-- Records a node could not decode or apply, one row per record of the bus.
CREATE TABLE dlt_messages (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    broadcast_id          INTEGER,
    correlation_id        TEXT,
    original_key          TEXT,
    original_topic        TEXT    NOT NULL,
    original_partition    INTEGER NOT NULL,
    original_offset       INTEGER NOT NULL,
    exception_message     TEXT    NOT NULL,
    exception_stack_trace TEXT    NOT NULL,
    failed_at             INTEGER NOT NULL,
    payload               TEXT    NOT NULL,
    UNIQUE (original_topic, original_partition, original_offset)
);

-- Open streams, cluster-wide: per-user limits and presence across nodes.
CREATE TABLE stream_sessions (
    stream_key    TEXT    PRIMARY KEY,
    connection_id TEXT    NOT NULL,
    node_id       TEXT    NOT NULL,
    user_id       TEXT    NOT NULL,
    opened_at     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX stream_sessions_by_user ON stream_sessions (user_id, node_id);
CREATE INDEX stream_sessions_by_node ON stream_sessions (node_id);
