//! Broadcast lifecycle: cancel, expiry and scheduling, live and on replay, across restarts.

use herald_domain::Timestamp;
use herald_testkit::{id_of, on_both_backends, spawn_app, Backend};
use serde_json::json;

fn at(offset_ms: i64) -> String {
    Timestamp::now().plus_millis(offset_ms).to_rfc3339()
}

async fn a_cancelled_broadcast_is_removed_live_and_never_replayed(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut s = app.online("user-001").await;
    let b = id_of(&app.publish(json!({})).await);
    let before = s.expect_message(b).await.seq() - 1;

    let r = app.client.delete(app.url(&format!("/api/admin/broadcasts/{b}"))).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let removed = s.expect("MESSAGE_REMOVED").await.json();
    assert_eq!(removed, json!({"broadcastId": b, "reason": "CANCELLED"}));
    let again = app.client.delete(app.url(&format!("/api/admin/broadcasts/{b}"))).send().await.unwrap();
    assert_eq!(again.status(), 409, "a final state cannot be cancelled again");
    let conflict: serde_json::Value = again.json().await.unwrap();
    assert!(conflict["message"].as_str().unwrap().contains("CANCELLED"), "{conflict}");
    assert_eq!(app.get_json(&format!("/api/admin/broadcasts/{b}")).await["status"], "CANCELLED");

    let mut replay = app.connect_with("user-001", &[("last-event-id", &before.to_string())]).await;
    replay.expect("CONNECTED").await;
    assert_eq!(
        replay.expect("MESSAGE_REMOVED").await.broadcast_id(),
        b,
        "the removal is replayed, the message is not"
    );
    let mut fresh = app.online("user-002").await;
    let marker = id_of(&app.publish(json!({"content": "marker"})).await);
    fresh.expect_message(marker).await;
    replay.expect_message(marker).await;
    assert_eq!(app.get_json("/api/user/messages?userId=user-002").await.as_array().unwrap().len(), 1);
    app.stop().await;
}

async fn an_expired_broadcast_is_removed_within_a_second_and_never_delivered_again(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut s = app.online("user-001").await;
    let expires = Timestamp::now().plus_millis(1_200);
    let b = id_of(&app.publish(json!({"expiresAt": expires.to_rfc3339()})).await);
    s.expect_message(b).await;
    let removed = s.expect("MESSAGE_REMOVED").await;
    let arrived = Timestamp::now();
    assert_eq!(removed.json()["reason"], "EXPIRED");
    assert!(arrived >= expires, "removed {}ms before its expiry", expires.millis() - arrived.millis());
    assert!(
        arrived.millis() - expires.millis() < 1_000,
        "expiry took {}ms",
        arrived.millis() - expires.millis()
    );
    assert_eq!(app.get_json(&format!("/api/admin/broadcasts/{b}")).await["status"], "EXPIRED");

    let mut late = app.online("user-002").await;
    let marker = id_of(&app.publish(json!({"content": "marker"})).await);
    late.expect_message(marker).await;
    assert_eq!(app.get_json("/api/user/messages?userId=user-003").await.as_array().unwrap().len(), 1);
    let expired = app.get_json("/api/admin/broadcasts?filter=expired").await;
    assert_eq!(expired.as_array().unwrap().len(), 1);
    app.stop().await;
}

async fn a_scheduled_broadcast_arrives_within_a_second_of_its_time_and_not_before(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut s = app.online("user-001").await;
    let due = Timestamp::now().plus_millis(1_500);
    let created = app.publish(json!({"scheduledAt": due.to_rfc3339(), "content": "on time"})).await;
    assert_eq!(created["status"], "SCHEDULED");
    let b = id_of(&created);
    let scheduled = app.get_json("/api/admin/broadcasts?filter=scheduled").await;
    assert_eq!(scheduled[0]["id"], b);
    assert_eq!(
        app.get_json("/api/user/messages?userId=user-001").await,
        json!([]),
        "not in inboxes before its time"
    );

    s.expect_message(b).await;
    let arrived = Timestamp::now();
    assert!(arrived >= due, "arrived {}ms early", due.millis() - arrived.millis());
    assert!(arrived.millis() - due.millis() < 1_000, "arrived {}ms late", arrived.millis() - due.millis());
    assert_eq!(app.get_json(&format!("/api/admin/broadcasts/{b}")).await["status"], "ACTIVE");
    app.stop().await;
}

async fn a_sooner_schedule_wakes_the_scheduler_early(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut s = app.online("user-001").await;
    app.publish(json!({"scheduledAt": at(3_600_000)})).await;
    let soon = id_of(&app.publish(json!({"scheduledAt": at(300)})).await);
    s.expect_message(soon).await;
    app.stop().await;
}

async fn cancelling_a_scheduled_broadcast_keeps_it_from_ever_going_out(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut s = app.online("user-001").await;
    let b = id_of(&app.publish(json!({"scheduledAt": at(400)})).await);
    let r = app.client.delete(app.url(&format!("/api/admin/broadcasts/{b}"))).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let later = id_of(&app.publish(json!({"scheduledAt": at(900), "content": "marker"})).await);
    s.expect_message(later).await;
    assert_eq!(app.get_json(&format!("/api/admin/broadcasts/{b}")).await["status"], "CANCELLED");
    app.stop().await;
}

async fn overdue_work_runs_at_once_after_a_restart(backend: Backend) {
    let app = spawn_app(backend).await;
    let due = Timestamp::now().plus_millis(300);
    let b = id_of(&app.publish(json!({"scheduledAt": due.to_rfc3339()})).await);
    let gone = id_of(&app.publish(json!({"scheduledAt": at(200), "expiresAt": at(400)})).await);
    app.get_json("/health/ready").await;
    // Stopped before the schedule is due, started again after it (and the other's expiry) passed.
    assert!(Timestamp::now() < due, "test setup too slow");
    let app = app.restart_after(|| Timestamp::now().millis() > due.millis() + 200).await;
    app.eventually(&format!("/api/admin/broadcasts/{b}"), |v| v["status"] == "ACTIVE").await;
    app.eventually(&format!("/api/admin/broadcasts/{gone}"), |v| v["status"] == "EXPIRED").await;
    let mut s = app.online("user-001").await;
    s.expect_message(b).await;
    let marker = id_of(&app.publish(json!({"content": "marker"})).await);
    s.expect_message(marker).await;
    app.stop().await;
}

/// A node learns which broadcasts are live when it starts; a user nobody has seen before still
/// gets what was published to it before the restart, and nothing that was cancelled.
async fn broadcasts_live_before_a_restart_are_pending_for_users_first_seen_after_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let all = id_of(&app.publish(json!({"content": "to everyone"})).await);
    let selected = id_of(&app.publish(json!({"targetType": "SELECTED", "targetIds": ["newcomer-1"]})).await);
    let cancelled = id_of(&app.publish(json!({"content": "withdrawn"})).await);
    let r = app.client.delete(app.url(&format!("/api/admin/broadcasts/{cancelled}"))).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let app = app.restart_after(|| true).await;
    let mut first = app.online("newcomer-1").await;
    let mut second = app.online("newcomer-2").await;
    let marker = id_of(&app.publish(json!({"content": "marker"})).await);
    for (stream, expected) in [(&mut first, vec![all, selected]), (&mut second, vec![all])] {
        let mut got = Vec::new();
        loop {
            let id = stream.expect("MESSAGE").await.broadcast_id();
            if id == marker {
                break;
            }
            got.push(id);
        }
        assert_eq!(got, expected, "{cancelled} was cancelled");
    }
    app.stop().await;
}

on_both_backends!(
    broadcasts_live_before_a_restart_are_pending_for_users_first_seen_after_it,
    a_cancelled_broadcast_is_removed_live_and_never_replayed,
    an_expired_broadcast_is_removed_within_a_second_and_never_delivered_again,
    a_scheduled_broadcast_arrives_within_a_second_of_its_time_and_not_before,
    a_sooner_schedule_wakes_the_scheduler_early,
    cancelling_a_scheduled_broadcast_keeps_it_from_ever_going_out,
    overdue_work_runs_at_once_after_a_restart,
);
