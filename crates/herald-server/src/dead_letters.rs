//! Dead letters: records of the bus a node could not read are kept in the database (the admin
//! API lists, redrives and purges them); a redriven record goes through the log again, so it gets
//! a position of its own and reaches every node like any other event.

use crate::metrics::Metrics;
use crate::report::Chain;
use async_trait::async_trait;
use herald_bus::{BadRecord, DeadLetters};
use herald_domain::{record, EventBody, Timestamp};
use herald_store::{DeadLetter, NewDeadLetter, Store};
use std::sync::Arc;

/// Keeps what the bus could not read in the store's dead-letter list.
pub struct StoredLetters {
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
}

#[async_trait]
impl DeadLetters for StoredLetters {
    async fn keep(&self, bad: &BadRecord) -> bool {
        let letter = new_letter(bad, Timestamp::now());
        match self.store.add_dead_letter(&letter).await {
            Ok(Some(id)) => {
                Metrics::add(&self.metrics.dead_letters_kept_total, 1);
                tracing::warn!(id, offset = bad.offset, "dead letter kept");
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::error!(error = %Chain(&e), offset = bad.offset, "cannot keep a dead letter; the record is skipped");
                false
            }
        }
    }
}

fn new_letter(bad: &BadRecord, now: Timestamp) -> NewDeadLetter {
    let payload = String::from_utf8_lossy(&bad.payload).into_owned();
    let fields: Option<serde_json::Value> = serde_json::from_slice(&bad.payload).ok();
    let field = |path: &[&str]| {
        let mut v = fields.as_ref()?;
        for p in path {
            v = v.get(p)?;
        }
        Some(v.clone())
    };
    let broadcast_id = field(&["broadcast", "id"]).and_then(|v| v.as_i64());
    let correlation_id = field(&["broadcast", "correlation_id"])
        .or_else(|| field(&["correlation_id"]))
        .and_then(|v| v.as_str().map(str::to_owned));
    let mut causes = bad.causes.iter();
    let message = causes.next().cloned().unwrap_or_else(|| "unreadable record".to_owned());
    let trace = std::iter::once(message.clone())
        .chain(causes.map(|c| format!("caused by: {c}")))
        .collect::<Vec<_>>()
        .join("\n");
    NewDeadLetter {
        broadcast_id,
        correlation_id,
        original_key: bad.key.clone(),
        original_topic: bad.topic.clone(),
        original_partition: bad.partition,
        original_offset: bad.offset,
        exception_message: message,
        exception_stack_trace: trace,
        failed_at: now,
        payload,
    }
}

/// Why a dead letter could not be redriven (the reason redrive-all lists).
#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    #[error("the record still cannot be read: {0}")]
    Unreadable(#[from] record::DecodeError),
    #[error("broadcast {0} does not exist")]
    NoSuchBroadcast(i64),
    #[error("the database failed: {0}")]
    Store(#[from] herald_store::StoreError),
}

/// Appends the letter's event (its payload, or `fixed` in its place) to the log and deletes the
/// letter. A `MESSAGE` must name a broadcast this database has.
pub async fn redrive(
    store: &dyn Store,
    letter: &DeadLetter,
    fixed: Option<&str>,
) -> Result<(), RedriveError> {
    let (body, _) = record::decode(fixed.unwrap_or(&letter.letter.payload))?;
    if let EventBody::Message { broadcast } = &body {
        if store.get_broadcast(broadcast.id).await?.is_none() {
            return Err(RedriveError::NoSuchBroadcast(broadcast.id));
        }
    }
    store.append_event(&body, Timestamp::now()).await?;
    store.delete_dead_letters(Some(letter.id)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_letter_names_the_broadcast_and_the_cause_chain() {
        let bad = BadRecord {
            topic: "herald.events".into(),
            partition: 0,
            offset: 42,
            key: Some("7".into()),
            payload: br#"{"v":9,"seq":7,"kind":"MESSAGE","broadcast":{"id":12,"correlation_id":"c-1"}}"#
                .to_vec(),
            causes: vec!["event record version 9 is newer".into(), "inner".into()],
        };
        let letter = new_letter(&bad, Timestamp::from_millis(1));
        assert_eq!((letter.broadcast_id, letter.correlation_id.as_deref()), (Some(12), Some("c-1")));
        assert_eq!(letter.exception_message, "event record version 9 is newer");
        assert_eq!(letter.exception_stack_trace, "event record version 9 is newer\ncaused by: inner");
        assert_eq!((letter.original_offset, letter.original_key.as_deref()), (42, Some("7")));
        let garbage = BadRecord { payload: vec![0xff, 0xfe], ..bad };
        let letter = new_letter(&garbage, Timestamp::from_millis(1));
        assert_eq!((letter.broadcast_id, letter.payload.as_str()), (None, "\u{fffd}\u{fffd}"));
    }
}
