-- What the cluster needs: the relay's mark, dead letters, the streams each node holds, and a
-- notification carrying the newest logged position (nodes read the log directly when the bus lags).

-- The last position the relay published to a cluster bus, and the bus's own position after it.
ALTER TABLE relay_state ADD COLUMN published_seq BIGINT;
ALTER TABLE relay_state ADD COLUMN bus_offset BIGINT;

-- Records a node could not decode or apply, one row per record of the bus.
CREATE TABLE dlt_messages (
    id                    BIGSERIAL PRIMARY KEY,
    broadcast_id          BIGINT,
    correlation_id        TEXT,
    original_key          TEXT,
    original_topic        TEXT   NOT NULL,
    original_partition    INTEGER NOT NULL,
    original_offset       BIGINT NOT NULL,
    exception_message     TEXT   NOT NULL,
    exception_stack_trace TEXT   NOT NULL,
    failed_at             BIGINT NOT NULL,
    payload               TEXT   NOT NULL,
    UNIQUE (original_topic, original_partition, original_offset)
);

-- Open streams, cluster-wide: per-user limits and presence across nodes.
CREATE TABLE stream_sessions (
    stream_key    TEXT   PRIMARY KEY,
    connection_id TEXT   NOT NULL,
    node_id       TEXT   NOT NULL,
    user_id       TEXT   NOT NULL,
    opened_at     BIGINT NOT NULL
);
CREATE INDEX stream_sessions_by_user ON stream_sessions (user_id, node_id);
CREATE INDEX stream_sessions_by_node ON stream_sessions (node_id);

CREATE FUNCTION herald_notify_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('herald_log', (SELECT max(seq)::text FROM new_rows));
    RETURN NULL;
END
$$;
CREATE TRIGGER events_notify AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION herald_notify_log();
