//! `/api/admin/users`: the user directory.

use super::extract::{ApiJson, ApiQuery};
use super::paging::{page_limit, Page};
use super::required_user;
use super::views::{json, UserView};
use super::ApiError;
use super::Caller;
use crate::state::AppState;
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use herald_domain::user::parse_names;
use herald_domain::User;
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/admin/users", get(list))
        .route("/api/admin/users/{user_id}", get(show).put(put).delete(remove))
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<u32>,
    after: Option<String>,
}

/// By user id, with a `Link` to the next page when the directory goes on.
async fn list(
    State(app): State<AppState>,
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    caller.admin()?;
    let limit = page_limit(q.limit)?;
    let users = app.store.list_users(q.after.as_deref(), limit + 1).await?;
    let page = Page::cut(users, limit, &uri, "after", |u| u.user_id.to_string());
    let views: Vec<UserView<'_>> = page.rows.iter().map(UserView::from).collect();
    Ok(page.link(json(&views)?))
}

async fn show(
    State(app): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    caller.admin()?;
    let id = required_user("userId", Some(&raw))?;
    let user = app.store.get_user(id.as_str()).await?;
    let user = user.ok_or_else(|| ApiError::NotFound(format!("user {id} does not exist")))?;
    json(&UserView::from(&user))
}

#[derive(Deserialize)]
struct PutUser {
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    products: Vec<String>,
}

async fn put(
    State(app): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<PutUser>,
) -> Result<impl IntoResponse, ApiError> {
    caller.admin()?;
    let user = User {
        user_id: required_user("userId", Some(&raw))?,
        roles: parse_names("roles", &body.roles)?,
        products: parse_names("products", &body.products)?,
    };
    let saved = app.put_user(user).await?;
    tracing::info!(user.id = %saved.user_id, "user saved");
    json(&UserView::from(&saved))
}

async fn remove(
    State(app): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.admin()?;
    let id = required_user("userId", Some(&raw))?;
    if app.delete_user(id.as_str()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("user {id} does not exist")))
    }
}
