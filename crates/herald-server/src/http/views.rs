//! How the API shows domain values: the broadcast object (with its counts) and the user. They are
//! views of their own, so an API field can change without touching what the log stores.

use super::ApiError;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use herald_domain::{Broadcast, BroadcastStatus, Priority, TargetType, Timestamp, User};
use herald_store::Counts;
use serde::Serialize;
use std::collections::BTreeSet;
use uuid::Uuid;

/// The broadcast object of SPEC section 4: every field plus counts over its audience.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BroadcastView<'a> {
    id: i64,
    correlation_id: Uuid,
    sender_id: &'a str,
    sender_name: &'a str,
    content: &'a str,
    priority: Priority,
    category: &'a str,
    target_type: TargetType,
    target_ids: &'a [String],
    scheduled_at: Option<Timestamp>,
    expires_at: Option<Timestamp>,
    fire_and_forget: bool,
    status: BroadcastStatus,
    created_at: Timestamp,
    updated_at: Timestamp,
    total_targeted: i64,
    total_delivered: i64,
    total_rendered: i64,
    total_read: i64,
}

impl<'a> BroadcastView<'a> {
    pub fn new(b: &'a Broadcast, c: Counts) -> Self {
        Self {
            id: b.id,
            correlation_id: b.correlation_id,
            sender_id: &b.sender_id,
            sender_name: &b.sender_name,
            content: &b.content,
            priority: b.priority,
            category: &b.category,
            target_type: b.target.target_type,
            target_ids: &b.target.target_ids,
            scheduled_at: b.scheduled_at,
            expires_at: b.expires_at,
            fire_and_forget: b.fire_and_forget,
            status: b.status,
            created_at: b.created_at,
            updated_at: b.updated_at,
            total_targeted: c.targeted,
            total_delivered: c.delivered,
            total_rendered: c.rendered,
            total_read: c.read,
        }
    }
}

/// A directory entry.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserView<'a> {
    user_id: &'a str,
    roles: &'a BTreeSet<String>,
    products: &'a BTreeSet<String>,
}

impl<'a> From<&'a User> for UserView<'a> {
    fn from(u: &'a User) -> Self {
        Self { user_id: u.user_id.as_str(), roles: &u.roles, products: &u.products }
    }
}

/// A JSON response of a view that borrows from the handler's values, fields in their declared order.
pub fn json<T: Serialize>(value: &T) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(value).map_err(ApiError::internal)?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
