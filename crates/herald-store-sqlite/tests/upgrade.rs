//! Upgrading a database written by a version that gave events their position in the relay:
//! events it left in the outbox reach the log when the store opens, after the ones before them.

use herald_domain::{CreateBroadcastRequest, EventBody, Timestamp};
use herald_store::Store;

#[tokio::test]
async fn events_left_in_the_outbox_are_logged_at_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/herald.db", dir.path().display());
    let now = Timestamp::now();
    let store = herald_store_sqlite::open(&url).await.expect("open");
    let req = CreateBroadcastRequest {
        sender_id: Some("admin".into()),
        content: Some("hello".into()),
        target_type: Some("ALL".into()),
        ..Default::default()
    };
    let first =
        store.create_broadcast(&req.clone().validate(now).expect("valid"), now).await.expect("create");
    store.close().await;

    // What the older version left behind: an event committed to the outbox, never relayed.
    let payload =
        r#"{"type":"USER_CHANGED","user":{"userId":"u1","roles":[],"products":[]},"deleted":false}"#;
    let pool = sqlx::SqlitePool::connect(&url).await.expect("connect");
    sqlx::query("INSERT INTO outbox (payload, created_at) VALUES (?1, ?2)")
        .bind(payload)
        .bind(now.millis())
        .execute(&pool)
        .await
        .expect("insert");
    pool.close().await;

    let store = herald_store_sqlite::open(&url).await.expect("reopen");
    let events = store.events_after(0, i64::MAX, 10).await.expect("log");
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
    assert!(matches!(&events[0].body, EventBody::Message { broadcast } if broadcast.id == first.id));
    assert!(matches!(&events[1].body, EventBody::UserChanged { user, .. } if user.user_id.as_str() == "u1"));
    assert_eq!(store.event_range().await.expect("range").last, 2);
    // New writes continue after them.
    store.create_broadcast(&req.clone().validate(now).expect("valid"), now).await.expect("create");
    let relayed: Vec<i64> = store.relay_batch(2, 10).await.expect("relay").iter().map(|e| e.seq).collect();
    assert_eq!(relayed, [3]);
    store.close().await;
}
