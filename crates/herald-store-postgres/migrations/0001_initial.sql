-- Herald on PostgreSQL, first schema. Times are bigint milliseconds since the Unix epoch (UTC).

CREATE TABLE users (
    user_id    TEXT COLLATE "C" PRIMARY KEY,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE user_roles (
    user_id TEXT COLLATE "C" NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    role    TEXT NOT NULL,
    PRIMARY KEY (user_id, role)
);
CREATE INDEX user_roles_by_role ON user_roles (role, user_id);

CREATE TABLE user_products (
    user_id TEXT COLLATE "C" NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    product TEXT NOT NULL,
    PRIMARY KEY (user_id, product)
);
CREATE INDEX user_products_by_product ON user_products (product, user_id);

CREATE TABLE broadcasts (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    correlation_id  UUID    NOT NULL,
    sender_id       TEXT    NOT NULL,
    sender_name     TEXT    NOT NULL,
    content         TEXT    NOT NULL,
    priority        TEXT    NOT NULL,
    category        TEXT    NOT NULL,
    target_type     TEXT    NOT NULL,
    target_ids      TEXT[]  NOT NULL, -- deduplicated, in request order
    scheduled_at    BIGINT,
    expires_at      BIGINT,
    fire_and_forget BOOLEAN NOT NULL,
    status          TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    message_seq     BIGINT            -- position of its MESSAGE event, once relayed
);
CREATE INDEX broadcasts_by_status ON broadcasts (status, id);
CREATE INDEX broadcasts_scheduled ON broadcasts (scheduled_at) WHERE status = 'SCHEDULED';
CREATE INDEX broadcasts_expiring ON broadcasts (expires_at) WHERE status IN ('SCHEDULED', 'ACTIVE');
CREATE INDEX broadcasts_selected ON broadcasts USING GIN (target_ids) WHERE target_type = 'SELECTED';

CREATE TABLE deliveries (
    broadcast_id BIGINT NOT NULL,
    user_id      TEXT COLLATE "C" NOT NULL,
    delivered_at BIGINT,
    rendered_at  BIGINT,
    read_at      BIGINT,
    PRIMARY KEY (broadcast_id, user_id)
);
CREATE INDEX deliveries_by_user ON deliveries (user_id, broadcast_id);

-- Events committed with their state change, waiting for the relay to give them a position.
CREATE TABLE outbox (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payload    TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);

-- The ordered event log, for replay; pruned by age.
CREATE TABLE events (
    seq          BIGINT PRIMARY KEY,
    kind         TEXT   NOT NULL,
    broadcast_id BIGINT,
    payload      TEXT   NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX events_by_time ON events (created_at);

-- The last position ever assigned; its row lock serializes relays.
CREATE TABLE relay_state (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq BIGINT  NOT NULL
);
INSERT INTO relay_state (id, last_seq) VALUES (1, 0);

-- Leases for single-leader background jobs (relay, scheduler, pruning).
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Liveness of the nodes sharing this database.
CREATE TABLE nodes (
    node_id TEXT PRIMARY KEY,
    seen_at BIGINT NOT NULL
);
