//! A user's messages: inbox, pending catch-up, read and visibility state, delivery records.

use crate::dialect::Dialect;
use crate::rows::{get, ts};
use crate::store::SqlStore;
use herald_domain::{command, Broadcast, Delivery, Timestamp, User};
use herald_store::{DeliveryMark, InboxItem, StoreError, StoreResult};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Type};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// At most this many pending messages are sent on one connect (the newest); older ones stay in
/// the inbox.
const MAX_PENDING: i64 = 1_000;

/// Rows per statement when writing delivery records; each statement carries its rows as one JSON
/// array the database unpacks itself (several times faster than a parameter per value).
const MARKS_PER_STATEMENT: usize = 5_000;

/// Marks of one broadcast that share a delivery time go as a list of user ids when there are at
/// least this many (a fan-out's); fewer go with the rest as `[user, time]` pairs, so that a
/// reconnect storm's catch-ups, each marked with its own time, do not cost a statement per
/// millisecond.
const SHARED_TIME_MIN: usize = 32;

/// The upserts of delivery records whose user and time are the SQL expressions `user` and `time`
/// over the rows `rows`, `$1` being the broadcast: for marks that do not read, and for marks that
/// also read (fire-and-forget).
fn upserts(user: &str, time: &str, rows: &str) -> [String; 2] {
    let insert = |read: &str| {
        format!(
            "INSERT INTO deliveries (broadcast_id, user_id, delivered_at, read_at) \
             SELECT $1, {user}, {time}, {read} FROM {rows} WHERE TRUE \
             ON CONFLICT (broadcast_id, user_id) "
        )
    };
    [
        format!("{}DO NOTHING", insert("CAST(NULL AS BIGINT)")),
        format!("{}DO UPDATE SET read_at = COALESCE(deliveries.read_at, excluded.read_at)", insert(time)),
    ]
}

impl<D: Dialect> SqlStore<D>
where
    for<'c> &'c mut <D::DB as Database>::Connection: Executor<'c, Database = D::DB>,
    for<'c> &'c Pool<D::DB>: Executor<'c, Database = D::DB>,
    for<'q> <D::DB as Database>::Arguments<'q>: IntoArguments<'q, D::DB>,
    for<'r> i64: Encode<'r, D::DB> + Decode<'r, D::DB> + Type<D::DB>,
    for<'r> String: Encode<'r, D::DB> + Decode<'r, D::DB> + Type<D::DB>,
    for<'r> &'r str: Encode<'r, D::DB> + Type<D::DB>,
    for<'r> bool: Encode<'r, D::DB> + Decode<'r, D::DB> + Type<D::DB>,
    for<'r> Option<i64>: Encode<'r, D::DB>,
    for<'r> Option<&'r str>: Encode<'r, D::DB>,
    usize: ColumnIndex<<D::DB as Database>::Row>,
{
    /// Active, not fire-and-forget, not expired, unread, addressed to the user `user` (an SQL
    /// expression) at time `$2`, over [`Self::inbox_from`].
    fn inbox_where(user: &str) -> String {
        format!(
            "b.status = 'ACTIVE' AND b.fire_and_forget = FALSE AND (b.expires_at IS NULL OR b.expires_at > $2) \
             AND d.read_at IS NULL AND {}",
            D::targets_user(user)
        )
    }

    /// `broadcasts b LEFT JOIN deliveries d`: `d` is the record of the user `user` (an SQL
    /// expression), if any.
    fn inbox_from(user: &str) -> String {
        format!("broadcasts b LEFT JOIN deliveries d ON d.broadcast_id = b.id AND d.user_id = {user}")
    }

    pub(crate) async fn inbox_rows(
        &self,
        user: &str,
        before: Option<i64>,
        limit: u32,
        now: Timestamp,
    ) -> StoreResult<Vec<InboxItem>> {
        let sql = format!(
            "SELECT {}, d.delivered_at, d.read_at FROM {} WHERE {} AND b.id < $3 ORDER BY b.id DESC LIMIT $4",
            D::BROADCAST_COLUMNS,
            Self::inbox_from("$1"),
            Self::inbox_where("$1")
        );
        let rows = sqlx::query::<D::DB>(&sql)
            .bind(user)
            .bind(now.millis())
            .bind(before.unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(self.d.reader())
            .await?;
        rows.iter()
            .map(|row| {
                Ok(InboxItem {
                    broadcast: Self::broadcast_from(row)?,
                    message_seq: get(row, 15)?,
                    delivered_at: ts(get(row, 16)?),
                    read_at: ts(get(row, 17)?),
                })
            })
            .collect()
    }

    /// The pending ids of each `(user, upto_seq)`, in the order given: one statement per distinct
    /// position for every user in the batch (connects that arrive together share it).
    pub(crate) async fn pending_rows(
        &self,
        keys: Vec<(String, i64)>,
        now: Timestamp,
    ) -> StoreResult<Vec<Vec<(i64, i64)>>> {
        let mut by_head: BTreeMap<i64, BTreeSet<&str>> = BTreeMap::new();
        for (user, head) in &keys {
            by_head.entry(*head).or_default().insert(user.as_str());
        }
        let sql = format!(
            "SELECT uid, seq, bid FROM (\
               SELECT u.value AS uid, b.message_seq AS seq, b.id AS bid, \
                 ROW_NUMBER() OVER (PARTITION BY u.value ORDER BY b.message_seq DESC) AS rn \
               FROM {} CROSS JOIN {} \
               WHERE {} AND d.delivered_at IS NULL AND b.message_seq IS NOT NULL AND b.message_seq <= $3\
             ) p WHERE rn <= $4",
            D::json_text_rows(1, "u"),
            Self::inbox_from("u.value"),
            Self::inbox_where("u.value")
        );
        let mut found: HashMap<(String, i64), Vec<(i64, i64)>> = HashMap::new();
        for (head, users) in by_head {
            let list = serde_json::to_string(&users).map_err(StoreError::backend)?;
            let rows = sqlx::query::<D::DB>(&sql)
                .bind(list)
                .bind(now.millis())
                .bind(head)
                .bind(MAX_PENDING)
                .fetch_all(self.d.reader())
                .await?;
            for row in &rows {
                let (user, seq, id): (String, i64, i64) = (get(row, 0)?, get(row, 1)?, get(row, 2)?);
                found.entry((user, head)).or_default().push((seq, id));
            }
        }
        Ok(keys
            .into_iter()
            .map(|key| {
                let mut ids = found.get(&key).cloned().unwrap_or_default();
                ids.sort_unstable();
                ids
            })
            .collect())
    }

    pub(crate) async fn live_unread_rows(
        &self,
        user: &str,
        ids: &[i64],
        now: Timestamp,
    ) -> StoreResult<Vec<Broadcast>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {} FROM {} WHERE b.id IN {} AND b.status = 'ACTIVE' AND b.fire_and_forget = FALSE \
             AND (b.expires_at IS NULL OR b.expires_at > $3) AND d.read_at IS NULL",
            D::BROADCAST_COLUMNS,
            Self::inbox_from("$1"),
            D::json_ints(2)
        );
        let list = serde_json::to_string(ids).map_err(StoreError::backend)?;
        let rows = sqlx::query::<D::DB>(&sql)
            .bind(user)
            .bind(list)
            .bind(now.millis())
            .fetch_all(self.d.reader())
            .await?;
        rows.iter().map(Self::broadcast_from).collect()
    }

    pub(crate) async fn count_unread(&self, user: &str, now: Timestamp) -> StoreResult<i64> {
        let sql =
            format!("SELECT count(*) FROM {} WHERE {}", Self::inbox_from("$1"), Self::inbox_where("$1"));
        Ok(sqlx::query_scalar::<D::DB, i64>(&sql)
            .bind(user)
            .bind(now.millis())
            .fetch_one(self.d.reader())
            .await?)
    }

    /// The user's record of a broadcast, created empty if missing and (where it matters) locked
    /// for the rest of the transaction: concurrent reads of one message see one another.
    async fn delivery_for_update(
        conn: &mut <D::DB as Database>::Connection,
        user: &str,
        id: i64,
    ) -> StoreResult<Delivery> {
        sqlx::query::<D::DB>(
            "INSERT INTO deliveries (broadcast_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(user)
        .execute(&mut *conn)
        .await?;
        let sql = format!(
            "SELECT delivered_at, rendered_at, read_at FROM deliveries WHERE broadcast_id = $1 AND user_id = $2{}",
            D::FOR_UPDATE
        );
        let row = sqlx::query::<D::DB>(&sql).bind(id).bind(user).fetch_one(&mut *conn).await?;
        Ok(Delivery {
            delivered_at: ts(get(&row, 0)?),
            rendered_at: ts(get(&row, 1)?),
            read_at: ts(get(&row, 2)?),
        })
    }

    async fn save_delivery(
        conn: &mut <D::DB as Database>::Connection,
        user: &str,
        id: i64,
        d: &Delivery,
    ) -> StoreResult<()> {
        sqlx::query::<D::DB>(
            "UPDATE deliveries SET delivered_at = $3, rendered_at = $4, read_at = $5 \
             WHERE broadcast_id = $1 AND user_id = $2",
        )
        .bind(id)
        .bind(user)
        .bind(d.delivered_at.map(Timestamp::millis))
        .bind(d.rendered_at.map(Timestamp::millis))
        .bind(d.read_at.map(Timestamp::millis))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Loads what a read or an acknowledgement decides on: the broadcast and the user's profile.
    async fn reader_of(&self, user: &str, id: i64) -> StoreResult<(Broadcast, User)> {
        let broadcast = self.broadcast_row(id).await?.ok_or(StoreError::BroadcastNotFound(id))?;
        Ok((broadcast, self.profile(user).await?))
    }

    pub(crate) async fn read_one(&self, user: &str, id: i64, now: Timestamp) -> StoreResult<Timestamp> {
        let (broadcast, profile) = self.reader_of(user, id).await?;
        let mut tx = self.d.begin().await?;
        let delivery = Self::delivery_for_update(&mut tx, user, id).await?;
        let change = command::read(&broadcast, &profile, delivery, now)?;
        Self::save_delivery(&mut tx, user, id, &change.state).await?;
        Self::append(&mut tx, &change.events, now).await?;
        self.commit_logged(tx, !change.events.is_empty()).await?;
        Ok(change.state.read_at.unwrap_or(now))
    }

    pub(crate) async fn read_all(&self, user: &str, now: Timestamp) -> StoreResult<u64> {
        let profile = self.profile(user).await?;
        let mut tx = self.d.begin().await?;
        let sql = format!(
            "SELECT b.id FROM {} WHERE {} ORDER BY b.id",
            Self::inbox_from("$1"),
            Self::inbox_where("$1")
        );
        let ids: Vec<i64> =
            sqlx::query_scalar::<D::DB, i64>(&sql).bind(user).bind(now.millis()).fetch_all(&mut *tx).await?;
        let mut newly = 0;
        for id in ids {
            let delivery = Self::delivery_for_update(&mut tx, user, id).await?;
            let change = command::read_unchecked(id, &profile, delivery, now);
            if !change.events.is_empty() {
                Self::save_delivery(&mut tx, user, id, &change.state).await?;
                Self::append(&mut tx, &change.events, now).await?;
                newly += 1;
            }
        }
        self.commit_logged(tx, newly > 0).await?;
        Ok(newly)
    }

    pub(crate) async fn acknowledge(&self, user: &str, id: i64, now: Timestamp) -> StoreResult<()> {
        let (broadcast, profile) = self.reader_of(user, id).await?;
        let mut tx = self.d.begin().await?;
        let delivery = Self::delivery_for_update(&mut tx, user, id).await?;
        let change = command::acknowledge(&broadcast, &profile, delivery, now)?;
        Self::save_delivery(&mut tx, user, id, &change.state).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Upserts delivery marks; existing times are kept (first delivery wins). The marks of one
    /// broadcast travel as JSON arrays the database unpacks itself, several times faster than a
    /// parameter per row: those that share a delivery time (a fan-out marks all its users with
    /// one) as a list of user ids with the time as a parameter, the rest (a catch-up's, each with
    /// its own time) as `[user, time]` pairs (the time in milliseconds after the parameter),
    /// which SQLite parses at twice the cost. Marks sorted by (broadcast, user), as the recorder
    /// sends them, become appends to the primary key. A record that exists already has its
    /// delivery time (every writer sets it), so only marks that also read (fire-and-forget) need
    /// to update one.
    ///
    /// The write need not reach the disk before it returns ([`Dialect::write_relaxed`]): on SQLite
    /// the records would otherwise hold the one writer through an `fsync` of their own several
    /// times per broadcast, and a create arriving then waits for it. A record an OS crash takes
    /// back means its message is delivered again, which the delivery guarantee allows (at least
    /// once across reconnects), or for fire-and-forget, uncounted; the recorder keeps the last few
    /// hundred milliseconds of marks in memory before writing them anyway.
    pub(crate) async fn write_marks(&self, marks: &[DeliveryMark]) -> StoreResult<()> {
        if marks.is_empty() {
            return Ok(());
        }
        let [keep_ids, read_ids] = upserts("m.value", "$2", &D::json_text_rows(3, "m"));
        let [keep_pairs, read_pairs] =
            upserts("m.value ->> 0", "$2 + CAST(m.value ->> 1 AS BIGINT)", &D::json_array_rows(3, "m"));
        let mut sorted: Vec<&DeliveryMark> = marks.iter().collect();
        // Stable: within one time, users keep the order they came in.
        sorted.sort_by_key(|m| (m.broadcast_id, m.read, m.at));
        let mut statements: Vec<(&str, i64, i64, String)> = Vec::new();
        for run in sorted.chunk_by(|a, b| (a.broadcast_id, a.read) == (b.broadcast_id, b.read)) {
            let id = run[0].broadcast_id;
            let (ids_sql, pairs_sql) = if run[0].read {
                (read_ids.as_str(), read_pairs.as_str())
            } else {
                (keep_ids.as_str(), keep_pairs.as_str())
            };
            let mut apart: Vec<&DeliveryMark> = Vec::new();
            for same in run.chunk_by(|a, b| a.at == b.at) {
                if same.len() < SHARED_TIME_MIN {
                    apart.extend_from_slice(same);
                    continue;
                }
                for group in same.chunks(MARKS_PER_STATEMENT) {
                    let ids: Vec<&str> = group.iter().map(|m| &*m.user_id).collect();
                    let list = serde_json::to_string(&ids).map_err(StoreError::backend)?;
                    statements.push((ids_sql, id, group[0].at.millis(), list));
                }
            }
            // Back in key order; each time as milliseconds after the group's earliest (`$2`).
            apart.sort_by(|a, b| a.user_id.cmp(&b.user_id));
            for group in apart.chunks(MARKS_PER_STATEMENT) {
                let base = group.iter().map(|m| m.at.millis()).min().unwrap_or_default();
                let pairs: Vec<(&str, i64)> =
                    group.iter().map(|m| (&*m.user_id, m.at.millis() - base)).collect();
                let list = serde_json::to_string(&pairs).map_err(StoreError::backend)?;
                statements.push((pairs_sql, id, base, list));
            }
        }
        let statements: Vec<(&str, i64, i64, &str)> =
            statements.iter().map(|(sql, id, at, list)| (*sql, *id, *at, list.as_str())).collect();
        self.d.write_relaxed(&statements).await?;
        Ok(())
    }
}
