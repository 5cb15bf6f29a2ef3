-- Herald on SQLite, first schema. Times are integer milliseconds since the Unix epoch (UTC).

CREATE TABLE users (
    user_id    TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE user_roles (
    user_id TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    role    TEXT NOT NULL,
    PRIMARY KEY (user_id, role)
) WITHOUT ROWID;
CREATE INDEX user_roles_by_role ON user_roles (role, user_id);

CREATE TABLE user_products (
    user_id TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    product TEXT NOT NULL,
    PRIMARY KEY (user_id, product)
) WITHOUT ROWID;
CREATE INDEX user_products_by_product ON user_products (product, user_id);

CREATE TABLE broadcasts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    correlation_id  TEXT    NOT NULL,
    sender_id       TEXT    NOT NULL,
    sender_name     TEXT    NOT NULL,
    content         TEXT    NOT NULL,
    priority        TEXT    NOT NULL,
    category        TEXT    NOT NULL,
    target_type     TEXT    NOT NULL,
    target_ids      TEXT    NOT NULL, -- JSON array, the listed ids in request order
    scheduled_at    INTEGER,
    expires_at      INTEGER,
    fire_and_forget INTEGER NOT NULL,
    status          TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    message_seq     INTEGER            -- position of its MESSAGE event, once relayed
);
CREATE INDEX broadcasts_by_status ON broadcasts (status, id);

-- The listed ids again, one row each, so audiences can be matched in SQL.
CREATE TABLE broadcast_targets (
    broadcast_id INTEGER NOT NULL REFERENCES broadcasts (id),
    target_id    TEXT    NOT NULL,
    PRIMARY KEY (broadcast_id, target_id)
) WITHOUT ROWID;

CREATE TABLE deliveries (
    broadcast_id INTEGER NOT NULL,
    user_id      TEXT    NOT NULL,
    delivered_at INTEGER,
    rendered_at  INTEGER,
    read_at      INTEGER,
    PRIMARY KEY (broadcast_id, user_id)
) WITHOUT ROWID;
CREATE INDEX deliveries_by_user ON deliveries (user_id, broadcast_id);

-- Events committed with their state change, waiting for the relay to give them a position.
CREATE TABLE outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    payload    TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);

-- The ordered event log, for replay; pruned by age.
CREATE TABLE events (
    seq          INTEGER PRIMARY KEY,
    kind         TEXT    NOT NULL,
    broadcast_id INTEGER,
    payload      TEXT    NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX events_by_time ON events (created_at);

-- The last position ever assigned; survives pruning so positions never repeat.
CREATE TABLE relay_state (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq INTEGER NOT NULL
);
INSERT INTO relay_state (id, last_seq) VALUES (1, 0);

-- Leases for single-leader background jobs (relay, scheduler, pruning).
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Liveness of the nodes sharing this database.
CREATE TABLE nodes (
    node_id   TEXT PRIMARY KEY,
    seen_at   INTEGER NOT NULL
) WITHOUT ROWID;
