//! The gaps the old React console showed (issue 12, part 3): role and product names in another
//! case, audiences of nobody, lists it never pages, and the fields it reads.

use herald_testkit::{id_of, on_both_backends, spawn_app, Backend, TestApp};
use serde_json::{json, Value};
use std::collections::BTreeSet;

async fn a_role_or_product_in_another_case_reaches_its_holders(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut admin = app.online("user-002").await;
    let mut plain = app.online("user-001").await;
    let by_role = app.publish(json!({"targetType": "ROLE", "targetIds": ["admin"]})).await;
    assert_eq!(by_role["totalTargeted"], 2, "{by_role}");
    assert_eq!(by_role["warnings"], json!([]));
    admin.expect_message(id_of(&by_role)).await;
    let inbox = app.get_json("/api/user/messages?userId=user-003").await;
    assert_eq!(inbox[0]["broadcastId"], id_of(&by_role));

    let by_product = app.publish(json!({"targetType": "PRODUCT", "targetIds": ["ANALYTICS"]})).await;
    assert_eq!(by_product["totalTargeted"], 3);
    let rows = app.get_json(&format!("/api/admin/broadcasts/{}/deliveries", id_of(&by_product))).await;
    let users: Vec<&str> = rows.as_array().unwrap().iter().map(|r| r["userId"].as_str().unwrap()).collect();
    assert_eq!(users, ["user-003", "user-007", "user-009"]);

    // user-001 holds neither: the next message it sees is the marker.
    let marker = id_of(&app.publish(json!({"targetType": "SELECTED", "targetIds": ["user-001"]})).await);
    assert_eq!(plain.expect("MESSAGE").await.broadcast_id(), marker);
    app.stop().await;
}

async fn an_audience_of_nobody_is_accepted_with_a_warning(backend: Backend) {
    let app = spawn_app(backend).await;
    let b = app.publish(json!({"targetType": "ROLE", "targetIds": ["admn", "AUDITR"]})).await;
    assert_eq!(b["totalTargeted"], 0);
    let w = &b["warnings"][0];
    assert_eq!(w["code"], "EMPTY_AUDIENCE", "{b}");
    assert_eq!(w["field"], "targetIds");
    let message = w["message"].as_str().unwrap();
    assert!(message.contains("'admn', 'AUDITR'") && message.contains("nobody"), "{message}");
    // The stored broadcast carries no warning; it is what the create answer tells the admin.
    let shown = app.get_json(&format!("/api/admin/broadcasts/{}", id_of(&b))).await;
    assert!(shown.get("warnings").is_none(), "{shown}");
    app.stop().await;
}

/// Follows `Link: <…>; rel="next"` from `path`, collecting `key` of every item, page by page.
async fn pages(app: &TestApp, path: &str, key: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut next = Some(path.to_owned());
    while let Some(path) = next.take() {
        let r = app.get(&path).await;
        assert_eq!(r.status(), 200, "{path}");
        next = r.headers().get("link").map(|l| {
            let l = l.to_str().unwrap();
            assert!(l.ends_with(">; rel=\"next\""), "{l}");
            l[1..l.find('>').unwrap()].to_owned()
        });
        let items: Value = r.json().await.unwrap();
        let keys = items.as_array().unwrap().iter().map(|i| i[key].to_string()).collect::<Vec<_>>();
        assert!(!keys.is_empty() || out.is_empty(), "a Link led to an empty page");
        out.push(keys);
    }
    out
}

fn all(pages: &[Vec<String>]) -> BTreeSet<String> {
    let flat: Vec<&String> = pages.iter().flatten().collect();
    let set: BTreeSet<String> = flat.iter().map(|s| (*s).clone()).collect();
    assert_eq!(set.len(), flat.len(), "an item came twice");
    set
}

async fn lists_hold_a_thousand_and_link_to_what_is_left(backend: Backend) {
    let app = spawn_app(backend).await;
    for i in 0..120 {
        app.publish(json!({"targetType": "SELECTED", "targetIds": ["user-001"], "content": format!("n{i}")}))
            .await;
    }
    // More than the old cuts (100 broadcasts, 50 inbox items): a client that never pages sees all.
    let r = app.get("/api/admin/broadcasts").await;
    assert!(r.headers().get("link").is_none());
    assert_eq!(r.headers()["x-total-count"], "120");
    assert_eq!(r.json::<Value>().await.unwrap().as_array().unwrap().len(), 120);
    assert_eq!(app.get_json("/api/user/messages?userId=user-001").await.as_array().unwrap().len(), 120);

    let listed = pages(&app, "/api/admin/broadcasts?filter=active&limit=50", "id").await;
    assert_eq!(listed.iter().map(Vec::len).collect::<Vec<_>>(), [50, 50, 20]);
    assert_eq!(all(&listed).len(), 120);
    let inbox = pages(&app, "/api/user/messages?userId=user-001&limit=45", "broadcastId").await;
    assert_eq!(inbox.iter().map(Vec::len).collect::<Vec<_>>(), [45, 45, 30]);
    assert_eq!(all(&inbox), all(&listed));

    let b = id_of(&app.publish(json!({})).await);
    let rows = pages(&app, &format!("/api/admin/broadcasts/{b}/deliveries?limit=4"), "userId").await;
    assert_eq!(rows.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 2]);
    let users = pages(&app, "/api/admin/users?limit=3", "userId").await;
    assert_eq!(all(&users), all(&rows));

    let r = app.get("/api/admin/broadcasts?limit=1001").await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert!(e["message"].as_str().unwrap().contains("1..=1000"), "{e}");
    app.stop().await;
}

async fn messages_carry_the_users_copy_id_and_when_it_was_created(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut s = app.online("user-001").await;
    let now = app.publish(json!({})).await;
    let live = s.expect_message(id_of(&now)).await.json();
    assert_eq!(live["userMessageId"], id_of(&now));
    assert_eq!(live["createdAt"], now["createdAt"]);
    let inbox = app.get_json("/api/user/messages?userId=user-001").await;
    assert_eq!(inbox[0]["userMessageId"], id_of(&now));
    assert_eq!(inbox[0]["createdAt"], now["createdAt"]);
    // A scheduled copy becomes the user's when it goes out.
    let at = (chrono::Utc::now() + chrono::Duration::milliseconds(400))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let later = app.publish(json!({"scheduledAt": at})).await;
    let live = s.expect_message(id_of(&later)).await.json();
    assert_eq!(live["createdAt"], json!(at));
    assert_ne!(live["createdAt"], later["createdAt"]);
    app.stop().await;
}

async fn read_rate_is_read_over_delivered(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut s = app.online("user-002").await;
    let b = id_of(&app.publish(json!({"targetType": "ROLE", "targetIds": ["ADMIN"]})).await);
    s.expect_message(b).await;
    let r = app.post("/api/user/messages/read", json!({"userId": "user-002", "broadcastId": b})).await;
    assert_eq!(r.status(), 200);
    let stats = app.eventually(&format!("/api/admin/broadcasts/{b}/stats"), |v| v["totalRead"] == 1).await;
    assert_eq!(stats["totalTargeted"], 2);
    assert_eq!(stats["totalDelivered"], 1);
    assert_eq!(stats["deliveryRate"], 0.5);
    assert_eq!(stats["readRate"], 1.0);
    assert_eq!(stats["readRateOfTargeted"], 0.5);
    app.stop().await;
}

on_both_backends!(
    a_role_or_product_in_another_case_reaches_its_holders,
    an_audience_of_nobody_is_accepted_with_a_warning,
    lists_hold_a_thousand_and_link_to_what_is_left,
    messages_carry_the_users_copy_id_and_when_it_was_created,
    read_rate_is_read_over_delivered,
);
