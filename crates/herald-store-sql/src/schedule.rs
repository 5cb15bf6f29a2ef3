//! The scheduler's reads and writes: the next due time, and activating and expiring what is due.
//! Each due broadcast is read under a row lock and decided by [`command::due`], so during a
//! leader hand-over two schedulers never change one broadcast twice.

use crate::dialect::Dialect;
use crate::rows::{get, ts};
use crate::store::SqlStore;
use herald_domain::{command, BroadcastStatus, Timestamp};
use herald_store::{DueWork, StoreResult};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Type};

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
    pub(crate) async fn next_due_time(&self) -> StoreResult<Option<Timestamp>> {
        let row = sqlx::query::<D::DB>(
            "SELECT min(t) FROM ( \
               SELECT min(scheduled_at) AS t FROM broadcasts WHERE status = 'SCHEDULED' \
               UNION ALL \
               SELECT min(expires_at) AS t FROM broadcasts WHERE status IN ('SCHEDULED', 'ACTIVE') \
             ) due",
        )
        .fetch_one(self.d.reader())
        .await?;
        Ok(ts(get(&row, 0)?))
    }

    pub(crate) async fn run_due_work(&self, now: Timestamp) -> StoreResult<DueWork> {
        let sql = format!(
            "SELECT {} FROM broadcasts b WHERE (b.status = 'SCHEDULED' AND b.scheduled_at <= $1) \
             OR (b.status IN ('SCHEDULED', 'ACTIVE') AND b.expires_at <= $1) \
             ORDER BY CASE WHEN b.status = 'SCHEDULED' THEN b.scheduled_at ELSE b.expires_at END, b.id{}",
            D::BROADCAST_COLUMNS,
            D::FOR_UPDATE
        );
        let mut tx = self.d.begin().await?;
        let rows = sqlx::query::<D::DB>(&sql).bind(now.millis()).fetch_all(&mut *tx).await?;
        let mut work = DueWork::default();
        for row in &rows {
            let Some(change) = command::due(&Self::broadcast_from(row)?, now) else { continue };
            Self::save_status(&mut tx, &change.state).await?;
            Self::append(&mut tx, &change.events, now).await?;
            match change.state.status {
                BroadcastStatus::Active => work.activated += 1,
                _ => work.expired += 1,
            }
        }
        self.commit_logged(tx, work != DueWork::default()).await?;
        Ok(work)
    }
}
