//! The user directory.

use crate::rows::{db_err, enqueue_event};
use herald_domain::{EventBody, Timestamp, User, UserId};
use herald_store::{StoreError, StoreResult};
use sqlx::{SqliteConnection, SqlitePool};
use std::collections::BTreeSet;

pub async fn get(pool: &SqlitePool, id: &str) -> StoreResult<Option<User>> {
    Ok(load(pool, &[id.to_owned()]).await?.into_iter().next())
}

pub async fn list(pool: &SqlitePool, after: Option<&str>, limit: u32) -> StoreResult<Vec<User>> {
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT user_id FROM users WHERE user_id > ?1 ORDER BY user_id LIMIT ?2")
            .bind(after.unwrap_or(""))
            .bind(limit)
            .fetch_all(pool)
            .await
            .map_err(db_err)?;
    load(pool, &ids).await
}

pub async fn ids(pool: &SqlitePool) -> StoreResult<Vec<String>> {
    sqlx::query_scalar("SELECT user_id FROM users ORDER BY user_id").fetch_all(pool).await.map_err(db_err)
}

/// Loads the listed users that exist, in id order, with their roles and products.
async fn load(pool: &SqlitePool, ids: &[String]) -> StoreResult<Vec<User>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let list = serde_json::to_string(ids).map_err(|e| StoreError::Backend(e.to_string()))?;
    let found: Vec<String> = sqlx::query_scalar(
        "SELECT user_id FROM users WHERE user_id IN (SELECT value FROM json_each(?1)) ORDER BY user_id",
    )
    .bind(&list)
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    let roles: Vec<(String, String)> = sqlx::query_as(
        "SELECT user_id, role FROM user_roles WHERE user_id IN (SELECT value FROM json_each(?1))",
    )
    .bind(&list)
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    let products: Vec<(String, String)> = sqlx::query_as(
        "SELECT user_id, product FROM user_products WHERE user_id IN (SELECT value FROM json_each(?1))",
    )
    .bind(&list)
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    herald_store::assemble_users(found, roles, products)
}

async fn write_sets(conn: &mut SqliteConnection, user: &User) -> StoreResult<()> {
    let id = user.user_id.as_str();
    for (table, column, names) in
        [("user_roles", "role", &user.roles), ("user_products", "product", &user.products)]
    {
        sqlx::query(&format!("DELETE FROM {table} WHERE user_id = ?1"))
            .bind(id)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        insert_names(conn, table, column, id, names).await?;
    }
    Ok(())
}

async fn insert_names(
    conn: &mut SqliteConnection,
    table: &str,
    column: &str,
    id: &str,
    names: &BTreeSet<String>,
) -> StoreResult<()> {
    if names.is_empty() {
        return Ok(());
    }
    let list = serde_json::to_string(names).map_err(|e| StoreError::Backend(e.to_string()))?;
    sqlx::query(&format!("INSERT INTO {table} (user_id, {column}) SELECT ?1, value FROM json_each(?2)"))
        .bind(id)
        .bind(list)
        .execute(conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

pub async fn put(pool: &SqlitePool, user: &User, now: Timestamp) -> StoreResult<User> {
    let mut tx = crate::rows::begin(pool).await?;
    sqlx::query(
        "INSERT INTO users (user_id, created_at, updated_at) VALUES (?1, ?2, ?2) \
         ON CONFLICT (user_id) DO UPDATE SET updated_at = excluded.updated_at",
    )
    .bind(user.user_id.as_str())
    .bind(now.millis())
    .execute(&mut *tx)
    .await
    .map_err(db_err)?;
    write_sets(&mut tx, user).await?;
    enqueue_event(&mut tx, &EventBody::UserChanged { user: user.clone(), deleted: false }, now).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(user.clone())
}

pub async fn seed(pool: &SqlitePool, users: &[User], now: Timestamp) -> StoreResult<usize> {
    let mut tx = crate::rows::begin(pool).await?;
    let mut added = 0;
    for user in users {
        let inserted = sqlx::query(
            "INSERT INTO users (user_id, created_at, updated_at) VALUES (?1, ?2, ?2) ON CONFLICT DO NOTHING",
        )
        .bind(user.user_id.as_str())
        .bind(now.millis())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        if inserted == 1 {
            write_sets(&mut tx, user).await?;
            added += 1;
        }
    }
    tx.commit().await.map_err(db_err)?;
    Ok(added)
}

pub async fn delete(pool: &SqlitePool, id: &str, now: Timestamp) -> StoreResult<bool> {
    let mut tx = crate::rows::begin(pool).await?;
    let deleted = sqlx::query("DELETE FROM users WHERE user_id = ?1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected()
        == 1;
    if deleted {
        let user = User::bare(UserId::parse("userId", id).map_err(|e| StoreError::Backend(e.to_string()))?);
        enqueue_event(&mut tx, &EventBody::UserChanged { user, deleted: true }, now).await?;
    }
    tx.commit().await.map_err(db_err)?;
    Ok(deleted)
}
