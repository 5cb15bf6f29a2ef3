//! PostgreSQL's side of the [`Dialect`]: many writers (an outbox the relay moves into the log),
//! row locks, arrays and its JSON functions.

use herald_domain::TargetType;
use herald_store::{Disconnect, StoreResult};
use herald_store_sql::{execute_all, Connections, Dialect};
use sqlx::PgConnection;
use tokio::task::JoinHandle;

pub struct Postgres {
    pub(crate) connections: Connections<sqlx::Postgres>,
    pub(crate) listener: JoinHandle<()>,
}

const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";

impl Dialect for Postgres {
    type DB = sqlx::Postgres;

    fn connections(&self) -> &Connections<sqlx::Postgres> {
        &self.connections
    }

    async fn close(&self) {
        self.listener.abort();
        self.writer().close().await;
    }

    async fn assign_positions(&self, limit: u32) -> StoreResult<()> {
        crate::relay::move_outbox(self.writer(), limit).await
    }

    /// Durable all the same: PostgreSQL's writers do not wait for each other's WAL flush, relaxing
    /// a lone statement would take a transaction and two more round trips, and a database restart
    /// could then undo it while Herald runs on.
    async fn write_relaxed(&self, statements: &[(&str, i64, i64, &str)]) -> StoreResult<u64> {
        let mut conn = self.writer().acquire().await?;
        execute_all::<sqlx::Postgres>(&mut conn, Self::BEGIN, statements, |r| r.rows_affected()).await
    }

    async fn announce_disconnect(&self, request: &Disconnect) -> StoreResult<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(crate::DISCONNECT_CHANNEL)
            .bind(request.to_payload())
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn index_targets(_: &mut PgConnection, _: i64, _: &str) -> StoreResult<()> {
        // The target_ids array is indexed where it is (GIN).
        Ok(())
    }

    const BEGIN: &'static str = "BEGIN";
    const APPEND: &'static str =
        "INSERT INTO outbox (kind, broadcast_id, payload, created_at) VALUES ($1, $2, $3, $4)";
    const LEASE_TAKEOVER: &'static str = "leases.holder = excluded.holder OR leases.expires_at <= $3";
    const FOR_UPDATE: &'static str = " FOR UPDATE";
    const BYTE_ORDER: &'static str = " COLLATE \"C\"";
    const BROADCAST_COLUMNS: &'static str = "b.id, b.correlation_id::text, b.sender_id, b.sender_name, \
         b.content, b.priority, b.category, b.target_type, array_to_json(b.target_ids)::text, b.scheduled_at, \
         b.expires_at, b.fire_and_forget, b.status, b.created_at, b.updated_at, b.message_seq";

    fn json_ints(n: usize) -> String {
        format!("(SELECT CAST(json_array_elements_text(${n}::json) AS BIGINT))")
    }

    fn json_texts(n: usize) -> String {
        format!("(SELECT json_array_elements_text(${n}::json))")
    }

    fn json_text_rows(n: usize, alias: &str) -> String {
        format!("json_array_elements_text(${n}::json) AS {alias}(value)")
    }

    fn json_agg(expr: &str) -> String {
        format!("COALESCE(json_agg({expr}), '[]'::json)::text")
    }

    fn json_pair(a: &str, b: &str) -> String {
        format!("json_build_array({a}, {b})")
    }

    fn json_array_rows(n: usize, alias: &str) -> String {
        format!("json_array_elements(${n}::json) AS {alias}(value)")
    }

    fn target_ids_value(n: usize) -> String {
        format!("ARRAY(SELECT json_array_elements_text(${n}::json))")
    }

    fn uuid_value(n: usize) -> String {
        format!("CAST(${n} AS UUID)")
    }

    /// `lower` would follow the database's locale; `translate` changes exactly A–Z, and is
    /// immutable, so the folded names can be indexed (migration 0004).
    fn fold(expr: &str) -> String {
        format!("translate({expr}, '{UPPER}', '{LOWER}')")
    }

    fn targets_user(user: &str) -> String {
        format!(
            "(b.target_type = 'ALL' \
              OR (b.target_type = 'SELECTED' AND {user} = ANY (b.target_ids)) \
              OR (b.target_type = 'ROLE' AND EXISTS (SELECT 1 FROM user_roles r, unnest(b.target_ids) AS t(name) \
                    WHERE r.user_id = {user} AND {role} = {name})) \
              OR (b.target_type = 'PRODUCT' AND EXISTS (SELECT 1 FROM user_products p, unnest(b.target_ids) AS t(name) \
                    WHERE p.user_id = {user} AND {product} = {name})))",
            role = Self::fold("r.role"),
            product = Self::fold("p.product"),
            name = Self::fold("t.name"),
        )
    }

    fn audience(t: TargetType, n: usize) -> String {
        let ids = Self::json_ints(n);
        match t {
            TargetType::All => {
                format!("SELECT b.id AS bid, u.user_id FROM broadcasts b, users u WHERE b.id IN {ids}")
            }
            TargetType::Selected => format!(
                "SELECT b.id AS bid, t.user_id FROM broadcasts b, unnest(b.target_ids) AS t(user_id) \
                 WHERE b.id IN {ids}"
            ),
            TargetType::Role => format!(
                "SELECT DISTINCT b.id AS bid, r.user_id FROM broadcasts b \
                 CROSS JOIN LATERAL unnest(b.target_ids) AS t(name) \
                 JOIN user_roles r ON {} = {} WHERE b.id IN {ids}",
                Self::fold("r.role"),
                Self::fold("t.name")
            ),
            TargetType::Product => format!(
                "SELECT DISTINCT b.id AS bid, p.user_id FROM broadcasts b \
                 CROSS JOIN LATERAL unnest(b.target_ids) AS t(name) \
                 JOIN user_products p ON {} = {} WHERE b.id IN {ids}",
                Self::fold("p.product"),
                Self::fold("t.name")
            ),
        }
    }
}
