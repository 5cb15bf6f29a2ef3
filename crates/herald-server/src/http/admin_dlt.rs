//! `/api/admin/dlt`: the dead-letter list of the cluster bus (records a node could not read), with
//! the shapes of the system Herald replaces. With the in-process bus the list is always empty.

use super::extract::MaybeJson;
use super::views::json;
use super::ApiError;
use super::Caller;
use crate::dead_letters::{redrive as redrive_letter, RedriveError};
use crate::metrics::Metrics;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::Router;
use herald_domain::Timestamp;
use herald_store::DeadLetter;
use serde::{Deserialize, Serialize};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/admin/dlt/messages", get(list))
        .route("/api/admin/dlt/redrive/{id}", post(redrive))
        .route("/api/admin/dlt/redrive-all", post(redrive_all))
        .route("/api/admin/dlt/purge/{id}", delete(purge))
        .route("/api/admin/dlt/purge-all", delete(purge_all))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LetterView<'a> {
    id: String,
    broadcast_id: Option<i64>,
    correlation_id: Option<&'a str>,
    original_key: Option<&'a str>,
    original_topic: &'a str,
    original_partition: i32,
    original_offset: i64,
    exception_message: &'a str,
    exception_stack_trace: &'a str,
    failed_at: Timestamp,
    original_message_payload: &'a str,
}

impl<'a> From<&'a DeadLetter> for LetterView<'a> {
    fn from(d: &'a DeadLetter) -> Self {
        let l = &d.letter;
        Self {
            id: d.id.to_string(),
            broadcast_id: l.broadcast_id,
            correlation_id: l.correlation_id.as_deref(),
            original_key: l.original_key.as_deref(),
            original_topic: &l.original_topic,
            original_partition: l.original_partition,
            original_offset: l.original_offset,
            exception_message: &l.exception_message,
            exception_stack_trace: &l.exception_stack_trace,
            failed_at: l.failed_at,
            original_message_payload: &l.payload,
        }
    }
}

async fn list(State(app): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.admin()?;
    let letters = app.store.dead_letters().await?;
    json(&letters.iter().map(LetterView::from).collect::<Vec<_>>())
}

/// An optional body replaces the record before it is redriven (a fixed payload).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RedriveBody {
    original_message_payload: Option<String>,
}

fn letter_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
        ApiError::BadRequest(format!("id: '{raw}' is not a dead-letter id (a positive number)"))
    })
}

async fn redrive(
    State(app): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    MaybeJson(body): MaybeJson<RedriveBody>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    let id = letter_id(&raw)?;
    let letter = app.store.dead_letter(id).await?;
    let letter = letter.ok_or_else(|| ApiError::NotFound(format!("dead letter {id} does not exist")))?;
    match redrive_letter(app.store.as_ref(), &letter, body.original_message_payload.as_deref()).await {
        Ok(()) => {
            Metrics::add(&app.metrics.dead_letters_redriven_total, 1);
            tracing::info!(id, "dead letter redriven");
            json(&serde_json::json!({ "id": id.to_string(), "redriven": true }))
        }
        Err(RedriveError::Store(e)) => {
            Metrics::add(&app.metrics.dead_letters_redrive_failed_total, 1);
            Err(e.into())
        }
        Err(e) => {
            Metrics::add(&app.metrics.dead_letters_redrive_failed_total, 1);
            Err(match body.original_message_payload {
                Some(_) => ApiError::BadRequest(format!("originalMessagePayload: {e}")),
                None => ApiError::Conflict(format!(
                    "dead letter {id} cannot be redriven as it is ({e}); send a fixed originalMessagePayload"
                )),
            })
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Failure {
    dlt_message_id: String,
    reason: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RedriveAll {
    total_messages: usize,
    success_count: usize,
    failure_count: usize,
    failures: Vec<Failure>,
}

async fn redrive_all(State(app): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.admin()?;
    let letters = app.store.dead_letters().await?;
    let mut failures = Vec::new();
    for letter in &letters {
        if let Err(e) = redrive_letter(app.store.as_ref(), letter, None).await {
            failures.push(Failure { dlt_message_id: letter.id.to_string(), reason: e.to_string() });
        }
    }
    let success_count = letters.len() - failures.len();
    Metrics::add(&app.metrics.dead_letters_redriven_total, success_count as u64);
    Metrics::add(&app.metrics.dead_letters_redrive_failed_total, failures.len() as u64);
    tracing::info!(total = letters.len(), failed = failures.len(), "dead letters redriven");
    json(&RedriveAll {
        total_messages: letters.len(),
        success_count,
        failure_count: failures.len(),
        failures,
    })
}

async fn purge(
    State(app): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    let id = letter_id(&raw)?;
    if app.store.delete_dead_letters(Some(id)).await? == 0 {
        return Err(ApiError::NotFound(format!("dead letter {id} does not exist")));
    }
    Metrics::add(&app.metrics.dead_letters_purged_total, 1);
    json(&serde_json::json!({ "id": id.to_string(), "purged": true }))
}

async fn purge_all(State(app): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.admin()?;
    let purged = app.store.delete_dead_letters(None).await?;
    Metrics::add(&app.metrics.dead_letters_purged_total, purged);
    json(&serde_json::json!({ "purged": purged }))
}
