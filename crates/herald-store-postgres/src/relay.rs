//! The outbox, moved into the log. Nodes commit in any order, so an event gets its position only
//! once committed: the relay (on the leader) takes the `relay_state` row lock, numbers the oldest
//! outbox rows after the last position and moves them into the log, in one transaction. Two relays
//! during a hand-over therefore never give out one position twice.

use herald_domain::{record, EventBody};
use herald_store::StoreResult;
use sqlx::PgPool;

pub async fn move_outbox(pool: &PgPool, limit: u32) -> StoreResult<()> {
    let mut tx = pool.begin().await?;
    let mut seq: i64 = sqlx::query_scalar("SELECT last_seq FROM relay_state WHERE id = 1 FOR UPDATE")
        .fetch_one(&mut *tx)
        .await?;
    let rows: Vec<(i64, String, i64)> =
        sqlx::query_as("SELECT id, payload, created_at FROM outbox ORDER BY id LIMIT $1")
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
    if rows.is_empty() {
        return Ok(());
    }
    let (mut seqs, mut kinds, mut bids, mut payloads, mut times) = (vec![], vec![], vec![], vec![], vec![]);
    let mut message_seqs: Vec<(i64, i64)> = Vec::new();
    for (_, payload, created_at) in &rows {
        seq += 1;
        let (body, _) = record::decode(payload)?;
        seqs.push(seq);
        kinds.push(body.kind());
        bids.push(body.broadcast_id());
        payloads.push(payload.as_str());
        times.push(*created_at);
        if let EventBody::Message { broadcast } = &body {
            message_seqs.push((broadcast.id, seq));
        }
    }
    sqlx::query(
        "INSERT INTO events (seq, kind, broadcast_id, payload, created_at) \
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::bigint[])",
    )
    .bind(&seqs)
    .bind(&kinds)
    .bind(&bids)
    .bind(&payloads)
    .bind(&times)
    .execute(&mut *tx)
    .await?;
    if !message_seqs.is_empty() {
        let (ids, positions): (Vec<i64>, Vec<i64>) = message_seqs.into_iter().unzip();
        sqlx::query(
            "UPDATE broadcasts b SET message_seq = m.seq FROM unnest($1::bigint[], $2::bigint[]) AS m(id, seq) \
             WHERE b.id = m.id",
        )
        .bind(ids)
        .bind(positions)
        .execute(&mut *tx)
        .await?;
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    sqlx::query("DELETE FROM outbox WHERE id = ANY ($1)").bind(ids).execute(&mut *tx).await?;
    sqlx::query("UPDATE relay_state SET last_seq = $1 WHERE id = 1").bind(seq).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}
