//! `/api/user/messages`: a user's inbox, unread count, read, read-all and visibility acks.
//! With auth `none` the user is the `userId` parameter (query, or body for POSTs).

use super::extract::{ApiJson, ApiQuery, MaybeJson};
use super::paging::{page_limit, Page};
use super::views::json;
use super::ApiError;
use super::Caller;
use super::JsonId;
use crate::state::AppState;
use axum::extract::{OriginalUri, State};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use herald_domain::{MessageView, Timestamp};
use herald_store::DeliveryMark;
use serde::Deserialize;
use std::sync::Arc;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/user/messages", get(inbox))
        .route("/api/user/messages/unread-count", get(unread_count))
        .route("/api/user/messages/read", post(read))
        .route("/api/user/messages/read-all", post(read_all))
        .route("/api/user/messages/ack-visibility", post(ack_visibility))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserQuery {
    user_id: Option<String>,
    limit: Option<u32>,
    before: Option<i64>,
}

/// The inbox, newest first, with a `Link` to the next page when it goes on; every message in it
/// counts as delivered from now on (its record is written with the recorder's next batch).
async fn inbox(
    State(app): State<AppState>,
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    ApiQuery(q): ApiQuery<UserQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let user = caller.user(&[q.user_id.as_deref()])?;
    let limit = page_limit(q.limit)?;
    let now = Timestamp::now();
    let rows = app.store.inbox(user.as_str(), q.before, limit + 1, now).await?;
    let page = Page::cut(rows, limit, &uri, "before", |i| i.broadcast.id.to_string());
    let items = &page.rows;
    let user_id: Arc<str> = Arc::from(user.as_str());
    let marks: Vec<DeliveryMark> = items
        .iter()
        .filter(|i| i.delivered_at.is_none())
        .map(|i| DeliveryMark {
            broadcast_id: i.broadcast.id,
            user_id: user_id.clone(),
            at: now,
            read: false,
        })
        .collect();
    // Written in the recorder's next batch, like every other delivery.
    app.recorder.record(marks).await;
    let views: Vec<MessageView<'_>> = items
        .iter()
        .map(|i| MessageView::for_user(&i.broadcast, user.as_str(), i.delivered_at.or(Some(now)), i.read_at))
        .collect();
    Ok(page.link(json(&views)?))
}

async fn unread_count(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<UserQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let user = caller.user(&[q.user_id.as_deref()])?;
    let unread = app.store.unread_count(user.as_str(), Timestamp::now()).await?;
    Ok(Json(serde_json::json!({ "unread": unread })))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct UserParam {
    user_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageBody {
    user_id: Option<String>,
    broadcast_id: Option<JsonId>,
}

fn required_broadcast(id: Option<JsonId>) -> Result<i64, ApiError> {
    id.map(|i| i.0).ok_or_else(|| ApiError::BadRequest("broadcastId: is required".into()))
}

async fn read(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<UserParam>,
    ApiJson(body): ApiJson<MessageBody>,
) -> Result<impl IntoResponse, ApiError> {
    let user = caller.user(&[body.user_id.as_deref(), q.user_id.as_deref()])?;
    let id = required_broadcast(body.broadcast_id)?;
    let read_at = app.store.mark_read(user.as_str(), id, Timestamp::now()).await?;
    Ok(Json(serde_json::json!({ "broadcastId": id, "userId": user, "readAt": read_at })))
}

async fn read_all(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<UserParam>,
    MaybeJson(body): MaybeJson<UserParam>,
) -> Result<impl IntoResponse, ApiError> {
    let user = caller.user(&[body.user_id.as_deref(), q.user_id.as_deref()])?;
    let read = app.store.mark_all_read(user.as_str(), Timestamp::now()).await?;
    Ok(Json(serde_json::json!({ "read": read })))
}

async fn ack_visibility(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<UserParam>,
    ApiJson(body): ApiJson<MessageBody>,
) -> Result<impl IntoResponse, ApiError> {
    let user = caller.user(&[body.user_id.as_deref(), q.user_id.as_deref()])?;
    let id = required_broadcast(body.broadcast_id)?;
    app.store.ack_visibility(user.as_str(), id, Timestamp::now()).await?;
    Ok(Json(serde_json::json!({ "broadcastId": id, "userId": user, "acknowledged": true })))
}
