//! `/api/admin/broadcasts`: create, list, read, cancel, stats and per-user deliveries.

use super::extract::{ApiJson, ApiQuery};
use super::paging::{page_limit, Page};
use super::views::{json, BroadcastView};
use super::{limited, ApiError, BroadcastId, Caller, ClientIp};
use crate::metrics::Metrics;
use crate::state::AppState;
use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use herald_domain::{Broadcast, CreateBroadcastRequest, TargetType, Timestamp};
use herald_store::{Counts, DeliveryRow, ListFilter};
use serde::{Deserialize, Serialize};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/admin/broadcasts", get(list).post(create))
        .route("/api/admin/broadcasts/users/all-ids", get(all_user_ids))
        .route("/api/admin/broadcasts/{id}", get(show).delete(cancel))
        .route("/api/admin/broadcasts/{id}/stats", get(stats))
        .route("/api/admin/broadcasts/{id}/deliveries", get(deliveries))
}

async fn find(app: &AppState, id: i64) -> Result<Broadcast, ApiError> {
    app.store
        .get_broadcast(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("broadcast {id} does not exist")))
}

async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ClientIp(ip): ClientIp,
    ApiJson(mut req): ApiJson<CreateBroadcastRequest>,
) -> Result<impl IntoResponse, ApiError> {
    // Per admin: the token's subject, or the client address when auth is none.
    let admin = caller.admin()?;
    let key = admin.map(|a| format!("admin:{a}")).or(ip.map(|ip| format!("ip:{ip}"))).unwrap_or_default();
    limited(app.limits.broadcasts.hit(&key), "broadcasts created")?;
    if req.sender_id.is_none() {
        req.sender_id = admin.map(|a| a.to_string());
    }
    let now = Timestamp::now();
    let new = req.validate(now)?;
    let b = app.store.create_broadcast(&new, now).await?;
    Metrics::inc(&app.metrics.broadcasts_created_total);
    tracing::info!(broadcast.id = b.id, correlation_id = %b.correlation_id, status = b.status.as_str(), "broadcast created");
    // Nothing can have been recorded for a broadcast this new: count its audience only (the
    // records join cost a millisecond per create at 2 000 users).
    let counts = Counts { targeted: app.store.audience_size(&b).await?, ..Counts::default() };
    let created =
        Created { warnings: warnings(&b, counts.targeted), broadcast: BroadcastView::new(&b, counts) };
    Ok((StatusCode::CREATED, json(&created)?))
}

/// The create answer: the broadcast, and what the admin should know about it (always present,
/// empty when all is well).
#[derive(Serialize)]
struct Created<'a> {
    #[serde(flatten)]
    broadcast: BroadcastView<'a>,
    warnings: Vec<Warning>,
}

#[derive(Serialize)]
struct Warning {
    code: &'static str,
    field: &'static str,
    message: String,
}

/// `EMPTY_AUDIENCE` when nobody is targeted now: most often a misspelt role or product.
fn warnings(b: &Broadcast, targeted: i64) -> Vec<Warning> {
    if targeted > 0 {
        return Vec::new();
    }
    let names = || b.target.target_ids.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ");
    let (field, why) = match b.target.target_type {
        TargetType::All => ("targetType", "the user directory is empty".to_owned()),
        TargetType::Role => {
            ("targetIds", format!("no user has the role {} (names match ignoring case)", names()))
        }
        TargetType::Product => {
            ("targetIds", format!("no user has the product {} (names match ignoring case)", names()))
        }
        TargetType::Selected => ("targetIds", "no user is listed".to_owned()),
    };
    let message = format!(
        "nobody is targeted now: {why}; users who match while the broadcast is active still receive it"
    );
    vec![Warning { code: "EMPTY_AUDIENCE", field, message }]
}

#[derive(Deserialize)]
struct ListQuery {
    filter: Option<String>,
    limit: Option<u32>,
    before: Option<i64>,
}

/// Newest first (scheduled: soonest first), with `X-Total-Count` (how many the filter lists in
/// all) and, when the list goes on, a `Link` to the next page (not for `scheduled`, whose order
/// the `before` cursor cannot follow).
async fn list(
    State(app): State<AppState>,
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    caller.admin()?;
    let filter = match q.filter.as_deref() {
        None | Some("") => ListFilter::All,
        Some(f) => ListFilter::parse(f).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "filter: '{f}' is not one of all, active, scheduled, expired, cancelled"
            ))
        })?,
    };
    let limit = page_limit(q.limit)?;
    let rows = app.store.list_broadcasts(filter, q.before, limit + 1).await?;
    let total = app.store.count_broadcasts(filter).await?;
    let page = Page::cut(rows, limit, &uri, "before", |b| b.id.to_string());
    // One counts query per target type for the whole page, not one per broadcast.
    let counts = app.store.counts_of(&page.rows).await?;
    let views: Vec<BroadcastView<'_>> =
        page.rows.iter().zip(counts).map(|(b, c)| BroadcastView::new(b, c)).collect();
    let mut response = json(&views)?;
    response.headers_mut().insert("x-total-count", total.into());
    Ok(if filter == ListFilter::Scheduled { response } else { page.link(response) })
}

async fn show(
    State(app): State<AppState>,
    caller: Caller,
    BroadcastId(id): BroadcastId,
) -> Result<impl IntoResponse, ApiError> {
    caller.admin()?;
    let b = find(&app, id).await?;
    let counts = app.store.counts(&b).await?;
    json(&BroadcastView::new(&b, counts))
}

async fn cancel(
    State(app): State<AppState>,
    caller: Caller,
    BroadcastId(id): BroadcastId,
) -> Result<StatusCode, ApiError> {
    caller.admin()?;
    let b = app.store.cancel_broadcast(id, Timestamp::now()).await?;
    tracing::info!(broadcast.id = b.id, correlation_id = %b.correlation_id, "broadcast cancelled");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatsOut {
    broadcast_id: i64,
    total_targeted: i64,
    total_delivered: i64,
    total_rendered: i64,
    total_read: i64,
    delivery_rate: f64,
    read_rate: f64,
    read_rate_of_targeted: f64,
}

fn rate(part: i64, whole: i64) -> f64 {
    if whole <= 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// The rates follow the system Herald replaces: `deliveryRate` = delivered / targeted,
/// `readRate` = read / delivered; `readRateOfTargeted` = read / targeted. A rate over nothing is 0.
async fn stats(
    State(app): State<AppState>,
    caller: Caller,
    BroadcastId(id): BroadcastId,
) -> Result<impl IntoResponse, ApiError> {
    caller.admin()?;
    let b = find(&app, id).await?;
    let c = app.store.counts(&b).await?;
    Ok(Json(StatsOut {
        broadcast_id: id,
        total_targeted: c.targeted,
        total_delivered: c.delivered,
        total_rendered: c.rendered,
        total_read: c.read,
        delivery_rate: rate(c.delivered, c.targeted),
        read_rate: rate(c.read, c.delivered),
        read_rate_of_targeted: rate(c.read, c.targeted),
    }))
}

#[derive(Deserialize)]
struct DeliveriesQuery {
    limit: Option<u32>,
    after: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeliveryOut<'a> {
    user_id: &'a str,
    delivery_status: &'static str,
    read_status: &'static str,
    delivered_at: Option<Timestamp>,
    rendered_at: Option<Timestamp>,
    read_at: Option<Timestamp>,
}

impl<'a> From<&'a DeliveryRow> for DeliveryOut<'a> {
    fn from(r: &'a DeliveryRow) -> Self {
        Self {
            delivery_status: if r.delivered_at.is_some() { "DELIVERED" } else { "PENDING" },
            read_status: if r.read_at.is_some() { "READ" } else { "UNREAD" },
            user_id: &r.user_id,
            delivered_at: r.delivered_at,
            rendered_at: r.rendered_at,
            read_at: r.read_at,
        }
    }
}

/// By user id, with a `Link` to the next page when the audience goes on.
async fn deliveries(
    State(app): State<AppState>,
    caller: Caller,
    BroadcastId(id): BroadcastId,
    OriginalUri(uri): OriginalUri,
    ApiQuery(q): ApiQuery<DeliveriesQuery>,
) -> Result<impl IntoResponse, ApiError> {
    caller.admin()?;
    let limit = page_limit(q.limit)?;
    let b = find(&app, id).await?;
    let rows = app.store.deliveries(&b, q.after.as_deref(), limit + 1).await?;
    let page = Page::cut(rows, limit, &uri, "after", |r| r.user_id.clone());
    let out: Vec<DeliveryOut<'_>> = page.rows.iter().map(DeliveryOut::from).collect();
    Ok(page.link(json(&out)?))
}

async fn all_user_ids(State(app): State<AppState>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    caller.admin()?;
    Ok(Json(app.store.user_ids().await?))
}
