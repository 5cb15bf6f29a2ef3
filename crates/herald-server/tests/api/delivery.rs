//! Delivery guarantees of SPEC section 2, end to end over HTTP and SSE.

use herald_testkit::{id_of, on_both_backends, spawn_app, spawn_with, Backend, SseClient, TestApp};
use serde_json::json;
use std::collections::BTreeSet;

const USERS: [&str; 10] = [
    "user-001", "user-002", "user-003", "user-004", "user-005", "user-006", "user-007", "user-008",
    "user-009", "user-010",
];

/// Broadcast ids of the MESSAGE events before the one for `marker`.
async fn messages_until(c: &mut SseClient, marker: i64) -> BTreeSet<i64> {
    let mut got = BTreeSet::new();
    loop {
        let ev = c.expect("MESSAGE").await;
        let id = ev.broadcast_id();
        if id == marker {
            return got;
        }
        assert!(got.insert(id), "broadcast {id} arrived twice on one stream");
    }
}

async fn each_target_type_reaches_exactly_its_audience(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut streams = Vec::new();
    for u in USERS {
        streams.push(app.online(u).await);
    }
    let mut created = Vec::new();
    for (body, audience) in [
        (json!({"targetType": "SELECTED", "targetIds": ["user-004", "user-008", "ghost"]}), 3),
        (json!({"targetType": "ROLE", "targetIds": ["MODERATOR", "ADMIN"]}), 3),
        (json!({"targetType": "PRODUCT", "targetIds": ["Analytics"]}), 3),
        (json!({"targetType": "ALL"}), 10),
    ] {
        let b = app.publish(body).await;
        assert_eq!(b["totalTargeted"], audience, "the create response counts the audience: {b}");
        assert_eq!(b["totalDelivered"], 0, "nothing is delivered before the broadcast exists: {b}");
        created.push(id_of(&b));
    }
    let [selected, role, product, all] = created[..] else { unreachable!() };
    let marker = id_of(&app.publish(json!({"targetType": "ALL", "content": "marker"})).await);
    for (user, stream) in USERS.iter().zip(streams.iter_mut()) {
        let mut expected = BTreeSet::from([all]);
        if ["user-004", "user-008"].contains(user) {
            expected.insert(selected);
        }
        if ["user-002", "user-003", "user-005"].contains(user) {
            expected.insert(role);
        }
        if ["user-003", "user-007", "user-009"].contains(user) {
            expected.insert(product);
        }
        assert_eq!(messages_until(stream, marker).await, expected, "{user}");
    }
    let b = app.get_json(&format!("/api/admin/broadcasts/{role}")).await;
    assert_eq!(b["totalTargeted"], 3);
    let b = app.get_json(&format!("/api/admin/broadcasts/{all}")).await;
    assert_eq!(b["totalTargeted"], 10, "ALL targets every user in the directory");
    app.stop().await;
}

async fn pending_messages_are_delivered_once_on_connect(backend: Backend) {
    let app = spawn_app(backend).await;
    let b1 = id_of(
        &app.publish(json!({"targetType": "ROLE", "targetIds": ["ADMIN"], "content": "while you were away"}))
            .await,
    );

    let mut s = app.connect("user-002").await;
    let connected = s.expect("CONNECTED").await.json();
    assert_eq!(connected["userId"], "user-002");
    assert!(connected["connectionId"].as_str().is_some_and(|c| !c.is_empty()));
    assert_eq!(s.retry, Some(3000), "the retry: line comes first");
    let m = s.expect_message(b1).await;
    assert_eq!(m.json()["content"], "while you were away");
    assert!(m.id.is_some(), "pending messages carry their log position");
    drop(s);
    app.eventually("/api/user/sse/connected/user-002", |v| v == &json!(false)).await;
    app.eventually(&format!("/api/admin/broadcasts/{b1}/stats"), |v| v["totalDelivered"] == 1).await;

    let mut again = app.online("user-002").await;
    let mut other_admin = app.online("user-003").await;
    let marker = id_of(&app.publish(json!({"content": "marker"})).await);
    assert!(messages_until(&mut again, marker).await.is_empty(), "a delivered message is not pending again");
    assert_eq!(messages_until(&mut other_admin, marker).await, BTreeSet::from([b1]));
    app.stop().await;
}

/// Each comeback gets exactly what was published while the user was away. The first catches up;
/// the second asks the store and finds nothing; the third skips the store (the hub remembers that
/// the user had every live message when their stream ended); the fourth asks it again, because a
/// broadcast came after.
async fn each_comeback_gets_what_was_published_while_away_and_nothing_twice(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut s = app.online("user-002").await;
    let online = id_of(&app.publish(json!({"content": "while online"})).await);
    s.expect_message(online).await;
    drop(s);
    app.eventually("/api/user/sse/connected/user-002", |v| v == &json!(false)).await;
    app.eventually(&format!("/api/admin/broadcasts/{online}/stats"), |v| v["totalDelivered"] == 1).await;
    let mut missed = BTreeSet::from([id_of(&app.publish(json!({"content": "while away"})).await)]);
    for comeback in 1..=4 {
        let mut s = app.online("user-002").await;
        let body = json!({"targetType": "SELECTED", "targetIds": ["user-002"], "content": "marker"});
        let marker = id_of(&app.publish(body).await);
        assert_eq!(messages_until(&mut s, marker).await, missed, "comeback {comeback}");
        drop(s);
        app.eventually("/api/user/sse/connected/user-002", |v| v == &json!(false)).await;
        for id in std::mem::take(&mut missed).into_iter().chain([marker]) {
            app.eventually(&format!("/api/admin/broadcasts/{id}/stats"), |v| v["totalDelivered"] == 1).await;
        }
        if comeback == 3 {
            missed.insert(id_of(&app.publish(json!({"content": "away again"})).await));
        }
    }
    app.stop().await;
}

async fn last_event_id_replays_missed_events_in_order_and_nothing_before(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut s = app.online("user-001").await;
    let b1 = id_of(&app.publish(json!({})).await);
    let position = s.expect_message(b1).await.id.unwrap();
    drop(s);
    app.eventually("/api/user/sse/connected/user-001", |v| v == &json!(false)).await;

    let b2 = id_of(&app.publish(json!({"targetType": "SELECTED", "targetIds": ["user-001"]})).await);
    let _not_mine = app.publish(json!({"targetType": "ROLE", "targetIds": ["ADMIN"]})).await;
    let b3 = id_of(&app.publish(json!({"targetType": "PRODUCT", "targetIds": ["Payments"]})).await);

    let mut back = app.connect_with("user-001", &[("last-event-id", &position)]).await;
    assert_eq!(back.expect("CONNECTED").await.json()["lastEventId"], position.as_str());
    let first = back.expect_message(b2).await;
    let second = back.expect_message(b3).await;
    assert!(first.seq() > position.parse().unwrap() && second.seq() > first.seq(), "replay keeps log order");
    let marker = id_of(&app.publish(json!({"content": "marker"})).await);
    assert!(messages_until(&mut back, marker).await.is_empty(), "nothing before the position is replayed");
    app.stop().await;
}

async fn replay_reads_the_database_when_the_window_no_longer_holds_the_position(backend: Backend) {
    let app = spawn_with(backend, |c| c.replay_window = 2).await;
    let mut s = app.online("user-001").await;
    let b0 = id_of(&app.publish(json!({})).await);
    let position = s.expect_message(b0).await.id.unwrap();
    drop(s);
    app.eventually("/api/user/sse/connected/user-001", |v| v == &json!(false)).await;
    let mut missed = Vec::new();
    for i in 0..5 {
        missed.push(id_of(&app.publish(json!({"content": format!("missed {i}")})).await));
    }
    let mut back = app.connect_with("user-001", &[("last-event-id", &position)]).await;
    back.expect("CONNECTED").await;
    for id in missed {
        back.expect_message(id).await;
    }
    app.stop().await;
}

async fn an_unparsable_last_event_id_is_treated_as_absent(backend: Backend) {
    let app = spawn_app(backend).await;
    let b1 = id_of(&app.publish(json!({})).await);
    let mut s = app.connect_with("user-001", &[("last-event-id", "not-a-number")]).await;
    assert_eq!(s.expect("CONNECTED").await.json()["lastEventId"], json!(null));
    s.expect_message(b1).await;
    app.stop().await;
}

async fn a_position_the_server_does_not_know_gets_resync(backend: Backend) {
    let app = spawn_app(backend).await;
    let b1 = id_of(&app.publish(json!({})).await);
    let mut s = app.connect_with("user-001", &[("lastEventId", "999999")]).await;
    s.expect("CONNECTED").await;
    // The message comes as pending (before RESYNC) or live (after it), depending on whether it
    // was relayed before the stream registered.
    let (mut resync, mut message) = (None, false);
    while resync.is_none() || !message {
        let ev = s.next_event().await.expect("stream open");
        match ev.event.as_str() {
            "RESYNC" => resync = Some(ev),
            "MESSAGE" if ev.broadcast_id() == b1 => message = true,
            other => panic!("unexpected {other}"),
        }
    }
    assert!(resync.unwrap().json()["reason"].as_str().is_some_and(|r| !r.is_empty()));
    app.stop().await;
}

async fn read_reaches_every_stream_of_the_user_and_leaves_the_inbox(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut tab1 = app.online("user-002").await;
    let mut tab2 = app.online("user-002").await;
    let b = id_of(&app.publish(json!({"targetType": "ROLE", "targetIds": ["ADMIN"]})).await);
    tab1.expect_message(b).await;
    tab2.expect_message(b).await;
    let inbox = app.get_json("/api/user/messages?userId=user-002").await;
    assert_eq!(inbox.as_array().unwrap().len(), 1);
    assert_eq!(app.get_json("/api/user/messages/unread-count?userId=user-002").await, json!({"unread": 1}));

    let r = app.post("/api/user/messages/read", json!({"userId": "user-002", "broadcastId": b})).await;
    assert_eq!(r.status(), 200);
    for tab in [&mut tab1, &mut tab2] {
        let receipt = tab.expect("READ_RECEIPT").await.json();
        assert_eq!(receipt["broadcastId"], b);
        assert!(receipt["readAt"].is_string());
    }
    assert_eq!(app.get_json("/api/user/messages?userId=user-002").await, json!([]));
    assert_eq!(app.get_json("/api/user/messages/unread-count?userId=user-002").await, json!({"unread": 0}));

    let again = app
        .post("/api/user/messages/read", json!({"userId": "user-002", "broadcastId": b.to_string()}))
        .await;
    assert_eq!(again.status(), 200, "read is idempotent");
    let marker = id_of(&app.publish(json!({"content": "marker"})).await);
    assert_eq!(tab1.expect("MESSAGE").await.broadcast_id(), marker, "a second read sends no second receipt");
    app.stop().await;
}

async fn read_all_marks_the_whole_inbox(backend: Backend) {
    let app = spawn_app(backend).await;
    for _ in 0..3 {
        app.publish(json!({"targetType": "SELECTED", "targetIds": ["user-006"]})).await;
    }
    let r = app.post("/api/user/messages/read-all", json!({"userId": "user-006"})).await;
    assert_eq!(r.json::<serde_json::Value>().await.unwrap(), json!({"read": 3}));
    assert_eq!(app.get_json("/api/user/messages?userId=user-006").await, json!([]));
    app.publish(json!({"targetType": "SELECTED", "targetIds": ["user-006"]})).await;
    let by_query =
        app.client.post(app.url("/api/user/messages/read-all?userId=user-006")).send().await.unwrap();
    assert_eq!(by_query.json::<serde_json::Value>().await.unwrap(), json!({"read": 1}), "no body needed");
    app.stop().await;
}

async fn counts_are_derived_from_the_per_user_records(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut s = app.online("user-002").await;
    let b = id_of(&app.publish(json!({"targetType": "ROLE", "targetIds": ["ADMIN"]})).await);
    let live = s.expect_message(b).await;
    let correlation = live.json()["correlationId"].clone();
    let inbox = app.get_json("/api/user/messages?userId=user-003").await;
    assert_eq!(inbox[0]["deliveryStatus"], "DELIVERED", "fetching the inbox delivers");
    let ack = json!({"userId": "user-003", "broadcastId": b, "correlationId": correlation});
    assert_eq!(app.post("/api/user/messages/ack-visibility", ack).await.status(), 200);
    assert_eq!(
        app.post("/api/user/messages/read", json!({"userId": "user-002", "broadcastId": b})).await.status(),
        200
    );

    let stats =
        app.eventually(&format!("/api/admin/broadcasts/{b}/stats"), |v| v["totalDelivered"] == 2).await;
    assert_eq!(stats["totalTargeted"], 2);
    assert_eq!(stats["totalRendered"], 1);
    assert_eq!(stats["totalRead"], 1);
    assert_eq!(stats["deliveryRate"], 1.0);
    assert_eq!(stats["readRate"], 0.5);
    let rows = app.get_json(&format!("/api/admin/broadcasts/{b}/deliveries")).await;
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["userId"], "user-002");
    assert_eq!(rows[0]["readStatus"], "READ");
    assert_eq!(rows[1]["userId"], "user-003");
    assert_eq!(rows[1]["deliveryStatus"], "DELIVERED");
    assert!(rows[1]["renderedAt"].is_string());
    let object = app.get_json(&format!("/api/admin/broadcasts/{b}")).await;
    assert_eq!((object["totalDelivered"].clone(), object["totalRead"].clone()), (json!(2), json!(1)));
    app.stop().await;
}

async fn a_fifth_stream_gets_connection_limit_reached(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut open = Vec::new();
    for _ in 0..4 {
        open.push(app.online("user-001").await);
    }
    let mut fifth = app.connect("user-001").await;
    let ev = fifth.expect("CONNECTION_LIMIT_REACHED").await.json();
    assert_eq!(ev["limit"], 4);
    assert!(fifth.until_end().await.is_empty(), "the refused stream ends");
    assert_eq!(app.get_json("/api/user/sse/stats").await["totalConnections"], 4);

    drop(open.pop());
    app.eventually("/api/user/sse/stats", |v| v["totalConnections"] == 3).await;
    app.online("user-001").await;
    app.stop().await;
}

async fn force_logoff_closes_every_stream_of_its_users(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut a = app.online("user-004").await;
    let mut b = app.online("user-004").await;
    let mut bystander = app.online("user-005").await;
    let logoff = id_of(
        &app.publish(
            json!({"targetType": "SELECTED", "targetIds": ["user-004"], "category": "force LOGOFF"}),
        )
        .await,
    );
    for s in [&mut a, &mut b] {
        s.expect_message(logoff).await;
        assert!(s.until_end().await.is_empty(), "the stream closes right after the logoff message");
    }
    let marker = id_of(&app.publish(json!({"content": "marker"})).await);
    bystander.expect_message(marker).await;
    app.eventually("/api/user/sse/connected/user-004", |v| v == &json!(false)).await;
    app.stop().await;
}

async fn fire_and_forget_reaches_only_open_streams_and_never_an_inbox(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut online = app.online("user-001").await;
    let ff = id_of(&app.publish(json!({"fireAndForget": true, "content": "now or never"})).await);
    let ev = online.expect_message(ff).await;
    assert_eq!(ev.json()["fireAndForget"], true);

    let mut later = app.online("user-002").await;
    let marker = id_of(&app.publish(json!({"targetType": "SELECTED", "targetIds": ["user-002"]})).await);
    assert!(messages_until(&mut later, marker).await.is_empty(), "no catch-up of fire-and-forget");
    for u in ["user-001", "user-002"] {
        let inbox = app.get_json(&format!("/api/user/messages?userId={u}")).await;
        assert!(inbox.as_array().unwrap().iter().all(|m| m["broadcastId"] != ff), "{u}: {inbox}");
    }
    let stats =
        app.eventually(&format!("/api/admin/broadcasts/{ff}/stats"), |v| v["totalDelivered"] == 1).await;
    assert_eq!(stats["totalRead"], 1, "fire-and-forget counts as read on delivery");
    let replay = app.connect_with("user-001", &[("last-event-id", "0")]).await;
    let mut replay = replay;
    replay.expect("CONNECTED").await;
    let marker2 = id_of(&app.publish(json!({"content": "marker"})).await);
    assert!(messages_until(&mut replay, marker2).await.is_empty(), "fire-and-forget is never replayed");
    app.stop().await;
}

/// Gives user-001 the role `AUDITOR` (besides `USER`) through the admin API.
async fn make_auditor(app: &TestApp) {
    let r = app
        .client
        .put(app.url("/api/admin/users/user-001"))
        .json(&json!({"roles": ["USER", "AUDITOR"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

async fn a_user_who_gains_a_role_sees_its_active_broadcasts(backend: Backend) {
    let app = spawn_app(backend).await;
    let b = id_of(&app.publish(json!({"targetType": "ROLE", "targetIds": ["AUDITOR"]})).await);
    assert_eq!(app.get_json("/api/user/messages?userId=user-001").await, json!([]));
    let mut s = app.online("user-001").await;
    make_auditor(&app).await;
    // A stream opened now has the broadcast the new role brings pending.
    let mut again = app.online("user-001").await;
    let live = id_of(&app.publish(json!({"targetType": "ROLE", "targetIds": ["AUDITOR"]})).await);
    s.expect_message(live).await;
    let other = id_of(&app.publish(json!({"targetType": "ROLE", "targetIds": ["NOBODY"]})).await);
    let marker = id_of(&app.publish(json!({"content": "marker"})).await);
    assert_eq!(messages_until(&mut again, marker).await, BTreeSet::from([b, live]), "not {other}");
    let inbox = app.get_json("/api/user/messages?userId=user-001").await;
    assert!(inbox.as_array().unwrap().iter().any(|m| m["broadcastId"] == b), "{inbox}");
    app.stop().await;
}

/// Stream connects that took the user's profile from the node's hub instead of the directory.
async fn profiles_from_hub(app: &TestApp) -> u64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    let line = text.lines().find_map(|l| l.strip_prefix("herald_stream_profiles_from_hub_total "));
    line.and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no profile counter: {text}"))
}

/// A comeback to a single node on SQLite takes the profile the node remembers from the user's last
/// stream, unless the user was changed or deleted since: then the next stream reads the directory
/// and has what the change brings.
async fn a_user_changed_while_away_comes_back_with_the_new_profile(backend: Backend) {
    let app = spawn_app(backend).await;
    let remembers = backend == Backend::Sqlite;
    let b = id_of(&app.publish(json!({"targetType": "ROLE", "targetIds": ["AUDITOR"]})).await);
    for visit in 1..=2 {
        let before = profiles_from_hub(&app).await;
        let mut s = app.online("user-001").await;
        let expected = before + u64::from(visit == 2 && remembers);
        assert_eq!(
            profiles_from_hub(&app).await,
            expected,
            "visit {visit}: the hub's profile only on a comeback"
        );
        let marker = id_of(&app.publish(json!({"targetType": "SELECTED", "targetIds": ["user-001"]})).await);
        assert!(messages_until(&mut s, marker).await.is_empty(), "not an auditor yet");
        drop(s);
        app.eventually("/api/user/sse/connected/user-001", |v| v == &json!(false)).await;
        app.eventually(&format!("/api/admin/broadcasts/{marker}/stats"), |v| v["totalDelivered"] == 1).await;
    }
    make_auditor(&app).await;
    let before = profiles_from_hub(&app).await;
    let mut s = app.online("user-001").await;
    assert_eq!(profiles_from_hub(&app).await, before, "changed since: the directory's profile");
    let marker = id_of(&app.publish(json!({"targetType": "SELECTED", "targetIds": ["user-001"]})).await);
    assert_eq!(messages_until(&mut s, marker).await, BTreeSet::from([b]), "the new role's broadcast");
    drop(s);
    app.eventually("/api/user/sse/connected/user-001", |v| v == &json!(false)).await;
    for id in [b, marker] {
        app.eventually(&format!("/api/admin/broadcasts/{id}/stats"), |v| v["totalDelivered"] == 1).await;
    }

    let r = app.client.delete(app.url("/api/admin/users/user-001")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let mut s = app.online("user-001").await;
    let user = app.get_json("/api/admin/users/user-001").await;
    assert_eq!(user["roles"], json!([]), "a deleted user who connects is in the directory again: {user}");
    let auditors = id_of(&app.publish(json!({"targetType": "ROLE", "targetIds": ["AUDITOR"]})).await);
    let marker = id_of(&app.publish(json!({"targetType": "SELECTED", "targetIds": ["user-001"]})).await);
    assert!(messages_until(&mut s, marker).await.is_empty(), "no longer an auditor: not {auditors}");
    app.stop().await;
}

on_both_backends!(
    each_target_type_reaches_exactly_its_audience,
    pending_messages_are_delivered_once_on_connect,
    each_comeback_gets_what_was_published_while_away_and_nothing_twice,
    last_event_id_replays_missed_events_in_order_and_nothing_before,
    replay_reads_the_database_when_the_window_no_longer_holds_the_position,
    an_unparsable_last_event_id_is_treated_as_absent,
    a_position_the_server_does_not_know_gets_resync,
    read_reaches_every_stream_of_the_user_and_leaves_the_inbox,
    read_all_marks_the_whole_inbox,
    counts_are_derived_from_the_per_user_records,
    a_fifth_stream_gets_connection_limit_reached,
    force_logoff_closes_every_stream_of_its_users,
    fire_and_forget_reaches_only_open_streams_and_never_an_inbox,
    a_user_who_gains_a_role_sees_its_active_broadcasts,
    a_user_changed_while_away_comes_back_with_the_new_profile,
);
