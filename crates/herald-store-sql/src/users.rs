//! The user directory.

use crate::dialect::Dialect;
use crate::rows::get;
use crate::store::SqlStore;
use herald_domain::{command, Timestamp, User, UserId};
use herald_store::{StoreError, StoreResult};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Type};
use std::collections::{BTreeMap, BTreeSet, HashMap};

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
    pub(crate) async fn list_user_rows(&self, after: Option<&str>, limit: u32) -> StoreResult<Vec<User>> {
        let sql = format!(
            "SELECT user_id FROM users WHERE user_id{o} > $1 ORDER BY user_id{o} LIMIT $2",
            o = D::BYTE_ORDER
        );
        let ids: Vec<String> = sqlx::query_scalar::<D::DB, String>(&sql)
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(self.d.reader())
            .await?;
        self.load_users(&ids).await
    }

    pub(crate) async fn all_user_ids(&self) -> StoreResult<Vec<String>> {
        let sql = format!("SELECT user_id FROM users ORDER BY user_id{}", D::BYTE_ORDER);
        Ok(sqlx::query_scalar::<D::DB, String>(&sql).fetch_all(self.d.reader()).await?)
    }

    /// The listed users that exist, in id order, with their roles and products.
    pub(crate) async fn load_users(&self, ids: &[String]) -> StoreResult<Vec<User>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = serde_json::to_string(ids).map_err(StoreError::backend)?;
        // One statement and one row (sqlx hands SQLite's rows over from its thread one by one,
        // a wake-up each: a burst of connects looked up 70 users at a time).
        let listed = D::json_texts(1);
        let of =
            |table: &str, value: &str| format!("(SELECT {value} FROM {table} WHERE user_id IN {listed})");
        let sql = format!(
            "SELECT {}, {}, {}",
            of("users", &D::json_agg("user_id")),
            of("user_roles", &D::json_agg(&D::json_pair("user_id", "role"))),
            of("user_products", &D::json_agg(&D::json_pair("user_id", "product"))),
        );
        let row = sqlx::query::<D::DB>(&sql).bind(list.as_str()).fetch_one(self.d.reader()).await?;
        let json = |i: usize| -> StoreResult<String> { get(&row, i) };
        let found: Vec<String> = serde_json::from_str(&json(0)?).map_err(StoreError::corrupt)?;
        let mut users: BTreeMap<String, User> = BTreeMap::new();
        for id in found {
            let user_id = UserId::parse("userId", &id).map_err(StoreError::corrupt)?;
            users.insert(id, User::bare(user_id));
        }
        for column in [1, 2] {
            let pairs: Vec<(String, String)> =
                serde_json::from_str(&json(column)?).map_err(StoreError::corrupt)?;
            for (id, name) in pairs {
                if let Some(user) = users.get_mut(&id) {
                    let set = if column == 1 { &mut user.roles } else { &mut user.products };
                    set.insert(name);
                }
            }
        }
        Ok(users.into_values().collect())
    }

    /// The user as the directory has it, or with no roles or products when it is not in it.
    pub(crate) async fn profile(&self, id: &str) -> StoreResult<User> {
        match self.load_users(&[id.to_owned()]).await?.pop() {
            Some(user) => Ok(user),
            None => Ok(User::bare(UserId::parse("userId", id).map_err(StoreError::corrupt)?)),
        }
    }

    /// Each user as the directory has it, in the order given, adding the ones it does not know
    /// yet with no roles or products: one lookup and at most one insert for all of them.
    pub(crate) async fn ensure_user_rows(&self, ids: Vec<UserId>, now: Timestamp) -> StoreResult<Vec<User>> {
        let names: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
        let mut known: HashMap<String, User> =
            self.load_users(&names).await?.into_iter().map(|u| (u.user_id.to_string(), u)).collect();
        let missing: BTreeSet<&str> =
            names.iter().map(String::as_str).filter(|n| !known.contains_key(*n)).collect();
        if !missing.is_empty() {
            let list = serde_json::to_string(&missing).map_err(StoreError::backend)?;
            let sql = format!(
                "INSERT INTO users (user_id, created_at, updated_at) SELECT n.value, $1, $2 FROM {} \
                 WHERE true ON CONFLICT DO NOTHING",
                D::json_text_rows(3, "n")
            );
            // The count, not a row per user added (see `load_users`). A user an OS crash takes
            // back out is added again at their next connect.
            let added = self.d.write_relaxed(&[(&sql, now.millis(), now.millis(), &list)]).await?;
            if added < missing.len() as u64 {
                // Some were added meanwhile (by an import, say): read what was written.
                let raced: Vec<String> = missing.iter().map(|n| (*n).to_owned()).collect();
                known.extend(self.load_users(&raced).await?.into_iter().map(|u| (u.user_id.to_string(), u)));
            }
        }
        Ok(ids
            .into_iter()
            .map(|id| known.get(id.as_str()).cloned().unwrap_or_else(|| User::bare(id)))
            .collect())
    }

    async fn upsert_user(
        conn: &mut <D::DB as Database>::Connection,
        user: &User,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query::<D::DB>(
            "INSERT INTO users (user_id, created_at, updated_at) VALUES ($1, $2, $2) \
             ON CONFLICT (user_id) DO UPDATE SET updated_at = excluded.updated_at",
        )
        .bind(user.user_id.as_str())
        .bind(now.millis())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Replaces the user's roles and products.
    async fn write_sets(conn: &mut <D::DB as Database>::Connection, user: &User) -> StoreResult<()> {
        let id = user.user_id.as_str();
        for (table, column, names) in
            [("user_roles", "role", &user.roles), ("user_products", "product", &user.products)]
        {
            sqlx::query::<D::DB>(&format!("DELETE FROM {table} WHERE user_id = $1"))
                .bind(id)
                .execute(&mut *conn)
                .await?;
            if !names.is_empty() {
                let list = serde_json::to_string(names).map_err(StoreError::backend)?;
                let sql = format!(
                    "INSERT INTO {table} (user_id, {column}) SELECT $1, n.value FROM {}",
                    D::json_text_rows(2, "n")
                );
                sqlx::query::<D::DB>(&sql).bind(id).bind(list).execute(&mut *conn).await?;
            }
        }
        Ok(())
    }

    pub(crate) async fn put_user_row(&self, user: &User, now: Timestamp) -> StoreResult<User> {
        let mut tx = self.d.begin().await?;
        Self::upsert_user(&mut tx, user, now).await?;
        Self::write_sets(&mut tx, user).await?;
        let change = command::put_user(user.clone());
        Self::append(&mut tx, &change.events, now).await?;
        self.commit_logged(tx, true).await?;
        Ok(change.state)
    }

    pub(crate) async fn seed_user_rows(&self, users: &[User], now: Timestamp) -> StoreResult<usize> {
        let mut tx = self.d.begin().await?;
        let mut added = 0;
        for user in users {
            let inserted: Option<String> = sqlx::query_scalar::<D::DB, String>(
                "INSERT INTO users (user_id, created_at, updated_at) VALUES ($1, $2, $2) \
                 ON CONFLICT DO NOTHING RETURNING user_id",
            )
            .bind(user.user_id.as_str())
            .bind(now.millis())
            .fetch_optional(&mut *tx)
            .await?;
            if inserted.is_some() {
                Self::write_sets(&mut tx, user).await?;
                added += 1;
            }
        }
        tx.commit().await?;
        Ok(added)
    }

    pub(crate) async fn delete_user_row(&self, id: &str, now: Timestamp) -> StoreResult<bool> {
        let mut tx = self.d.begin().await?;
        let deleted =
            sqlx::query_scalar::<D::DB, String>("DELETE FROM users WHERE user_id = $1 RETURNING user_id")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
        if deleted {
            let user = User::bare(UserId::parse("userId", id).map_err(StoreError::corrupt)?);
            Self::append(&mut tx, &command::delete_user(user).events, now).await?;
        }
        self.commit_logged(tx, deleted).await?;
        Ok(deleted)
    }
}
