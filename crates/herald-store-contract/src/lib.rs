//! The storage contract: scenarios every backend must pass through the `Store` trait, run on
//! SQLite and PostgreSQL by this crate's tests (`tests/contract.rs`). It is the safety net for
//! changes to the backends: a scenario written once holds for both.

use herald_domain::{
    BroadcastStatus, CreateBroadcastRequest, EventBody, NewBroadcast, Timestamp, User, UserId,
};
use herald_store::{DeliveryMark, Store, StoreResult};
use herald_store_postgres::PoolSettings;
mod audience;

pub use audience::sql_audiences_match_the_domain_rule;
use herald_testkit::{Backend, TestDb};
use std::sync::Arc;

/// Opens the backend the URL names.
pub async fn open(db: &TestDb) -> Arc<dyn Store> {
    if db.url.starts_with("postgres") {
        Arc::new(
            herald_store_postgres::open(&db.url, PoolSettings::default()).await.expect("open PostgreSQL"),
        )
    } else {
        Arc::new(herald_store_sqlite::open(&db.url).await.expect("open SQLite"))
    }
}

pub(crate) fn draft(now: Timestamp, extra: impl FnOnce(&mut CreateBroadcastRequest)) -> NewBroadcast {
    let mut req = CreateBroadcastRequest {
        sender_id: Some("admin".into()),
        content: Some("hello".into()),
        target_type: Some("ALL".into()),
        ..Default::default()
    };
    extra(&mut req);
    req.validate(now).expect("valid")
}

/// A draft addressed to `target_type` (`ROLE`, `SELECTED`, …) with `ids`.
fn targeted(now: Timestamp, target_type: &str, ids: &[&str]) -> NewBroadcast {
    draft(now, |r| {
        r.target_type = Some(target_type.into());
        r.target_ids = Some(ids.iter().map(|id| (*id).to_owned()).collect());
    })
}

fn user(id: &str, roles: &[&str]) -> User {
    User {
        user_id: UserId::parse("userId", id).unwrap(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        products: Default::default(),
    }
}

/// Every committed event after position `after`, three at a time, as a relay reads them.
async fn relay_all(store: &Arc<dyn Store>, mut after: i64) -> Vec<herald_domain::Event> {
    let mut all = Vec::new();
    loop {
        let batch = store.relay_batch(after, 3).await.unwrap();
        let Some(last) = batch.last() else { return all };
        after = last.seq;
        all.extend(batch);
    }
}

pub async fn relay_assigns_contiguous_positions_that_survive_reopening(backend: Backend) {
    let db = backend.fresh_database().await;
    let store = open(&db).await;
    let now = Timestamp::now();
    for _ in 0..7 {
        store.create_broadcast(&draft(now, |_| {}), now).await.unwrap();
    }
    let seqs: Vec<i64> = relay_all(&store, 0).await.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=7).collect::<Vec<_>>());
    store.prune_events(now.plus_millis(1)).await.unwrap();
    store.close().await;

    let store = open(&db).await;
    assert_eq!(
        store.event_range().await.unwrap().last,
        7,
        "the last position survives pruning and reopening"
    );
    store.create_broadcast(&draft(now, |_| {}), now).await.unwrap();
    assert_eq!(relay_all(&store, 7).await[0].seq, 8, "positions never repeat");
    store.close().await;
    db.drop_database().await;
}

pub async fn a_scheduled_broadcast_activates_once_however_many_schedulers_run(backend: Backend) {
    let db = backend.fresh_database().await;
    // Three nodes on PostgreSQL; on SQLite, which one process serves (its file lock), three
    // schedulers of that process's store.
    let first = open(&db).await;
    let other = async || if db.url.starts_with("postgres") { open(&db).await } else { first.clone() };
    let stores = [first.clone(), other().await, other().await];
    let now = Timestamp::now();
    let b = stores[0]
        .create_broadcast(&draft(now, |r| r.scheduled_at = Some(now.plus_millis(50).to_rfc3339())), now)
        .await
        .unwrap();
    assert_eq!(b.status, BroadcastStatus::Scheduled);
    assert_eq!(stores[0].next_due().await.unwrap(), b.scheduled_at);
    let later = now.plus_millis(100);
    let runs = futures::future::join_all(stores.iter().map(|s| s.run_due(later))).await;
    let activated: usize = runs.into_iter().map(|r| r.unwrap().activated).sum();
    assert_eq!(activated, 1);
    let events = relay_all(&stores[1], 0).await;
    let messages = events.iter().filter(|e| matches!(e.body, EventBody::Message { .. })).count();
    assert_eq!(messages, 1, "one activation, one MESSAGE event");
    assert_eq!(stores[2].get_broadcast(b.id).await.unwrap().unwrap().status, BroadcastStatus::Active);
    for s in &stores {
        s.close().await;
    }
    db.drop_database().await;
}

pub async fn reading_twice_or_concurrently_emits_one_receipt(backend: Backend) {
    let db = backend.fresh_database().await;
    let store = open(&db).await;
    let now = Timestamp::now();
    store.seed_users(&[user("u1", &["OPS"])], now).await.unwrap();
    let b = store.create_broadcast(&targeted(now, "ROLE", &["OPS"]), now).await.unwrap();
    let reads = futures::future::join_all((0..5).map(|_| store.mark_read("u1", b.id, now))).await;
    assert!(reads.iter().all(Result::is_ok));
    let receipts = relay_all(&store, 0)
        .await
        .into_iter()
        .filter(|e| matches!(e.body, EventBody::ReadReceipt { .. }))
        .count();
    assert_eq!(receipts, 1);
    assert!(store.mark_read("u2", b.id, now).await.is_err(), "u2 does not hold the role");
    assert_eq!(store.counts(&b).await.unwrap().read, 1);
    store.close().await;
    db.drop_database().await;
}

pub async fn delivery_marks_keep_the_first_time_and_feed_the_counts(backend: Backend) {
    let db = backend.fresh_database().await;
    let store = open(&db).await;
    let now = Timestamp::now();
    store.seed_users(&[user("a", &[]), user("b", &[])], now).await.unwrap();
    let b = store.create_broadcast(&draft(now, |_| {}), now).await.unwrap();
    let mark =
        |u: &str, at: Timestamp| DeliveryMark { broadcast_id: b.id, user_id: u.into(), at, read: false };
    // One batch, two times (a fan-out's and a catch-up's): each user keeps their own.
    store.record_deliveries(&[mark("b", now.plus_millis(7)), mark("a", now)]).await.unwrap();
    store.record_deliveries(&[mark("a", now.plus_millis(5_000))]).await.unwrap();
    let rows = store.deliveries(&b, None, 10).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].delivered_at, Some(now), "the first delivery time is kept");
    assert_eq!(rows[1].delivered_at, Some(now.plus_millis(7)), "b's own time");
    let counts = store.counts(&b).await.unwrap();
    assert_eq!((counts.targeted, counts.delivered, counts.read), (2, 2, 0));
    let page = store.deliveries(&b, Some("a"), 10).await.unwrap();
    assert_eq!(page.iter().map(|r| r.user_id.as_str()).collect::<Vec<_>>(), ["b"]);
    store.close().await;
    db.drop_database().await;
}

pub async fn pending_stops_at_the_given_position_and_skips_delivered(backend: Backend) {
    let db = backend.fresh_database().await;
    let store = open(&db).await;
    let now = Timestamp::now();
    let first = store.create_broadcast(&draft(now, |_| {}), now).await.unwrap();
    let second = store.create_broadcast(&draft(now, |_| {}), now).await.unwrap();
    let unrelayed = store.create_broadcast(&draft(now, |_| {}), now).await.unwrap();
    let positions = store.relay_batch(0, 2).await.unwrap();
    assert_eq!(positions.len(), 2);
    let pending = |items: Vec<(i64, i64)>| items.iter().map(|(_, id)| *id).collect::<Vec<_>>();
    assert_eq!(pending(store.pending_ids("u9", 2, now).await.unwrap()), [first.id, second.id]);
    assert_eq!(store.pending_ids("u9", 1, now).await.unwrap(), [(1, first.id)], "with its position");
    let mark = DeliveryMark { broadcast_id: first.id, user_id: "u9".into(), at: now, read: false };
    store.record_deliveries(&[mark]).await.unwrap();
    assert_eq!(pending(store.pending_ids("u9", 2, now).await.unwrap()), [second.id]);
    let ids = |items: Vec<herald_store::InboxItem>| items.iter().map(|i| i.broadcast.id).collect::<Vec<_>>();
    assert_eq!(ids(store.inbox("u9", None, 10, now).await.unwrap()), [unrelayed.id, second.id, first.id]);
    store.cancel_broadcast(second.id, now).await.unwrap();
    store.mark_read("u9", unrelayed.id, now).await.unwrap();
    let live = store.live_unread("u9", &[first.id, second.id, unrelayed.id, 999], now).await.unwrap();
    assert_eq!(
        live.iter().map(|b| b.id).collect::<Vec<_>>(),
        [first.id],
        "cancelled, read and unknown ones are left out"
    );
    store.close().await;
    db.drop_database().await;
}

pub async fn seeding_is_idempotent_and_keeps_edits(backend: Backend) {
    let db = backend.fresh_database().await;
    let store = open(&db).await;
    let now = Timestamp::now();
    assert_eq!(store.seed_users(&herald_domain::demo_users(), now).await.unwrap(), 10);
    store.put_user(&user("user-001", &["AUDITOR"]), now).await.unwrap();
    assert_eq!(store.seed_users(&herald_domain::demo_users(), now).await.unwrap(), 0);
    let u = store.get_user("user-001").await.unwrap().unwrap();
    assert_eq!(
        u.roles.into_iter().collect::<Vec<_>>(),
        ["AUDITOR"],
        "seeding does not overwrite an edited user"
    );
    assert_eq!(store.user_ids().await.unwrap().len(), 10);
    store.close().await;
    db.drop_database().await;
}

/// Pending lookups that arrive together are answered together; each still gets exactly its own
/// user's messages up to its own position.
pub async fn a_burst_of_pending_lookups_answers_each_its_own(backend: Backend) {
    let db = backend.fresh_database().await;
    let store = open(&db).await;
    let now = Timestamp::now();
    store.put_user(&user("auditor", &["AUDITOR"]), now).await.unwrap();
    store.put_user(&user("plain", &[]), now).await.unwrap();
    let all = store.create_broadcast(&draft(now, |_| {}), now).await.unwrap();
    let role = store.create_broadcast(&targeted(now, "ROLE", &["auditor"]), now).await.unwrap();
    let selected = store.create_broadcast(&targeted(now, "SELECTED", &["plain"]), now).await.unwrap();
    let logged = store.relay_batch(0, 10).await.unwrap();
    let at = |id: i64| logged.iter().find(|e| e.body.broadcast_id() == Some(id)).unwrap().seq;
    let mark = DeliveryMark { broadcast_id: all.id, user_id: "plain".into(), at: now, read: false };
    store.record_deliveries(&[mark]).await.unwrap();
    let head = at(selected.id);
    let keys: Vec<(&str, i64)> = vec![
        ("auditor", head),
        ("plain", head),
        ("stranger", head),
        ("auditor", at(all.id)),
        ("auditor", head),
        ("plain", at(role.id)),
    ];
    let calls = keys.iter().map(|(u, h)| {
        let store = store.clone();
        async move { store.pending_ids(u, *h, now).await }
    });
    let got = futures::future::join_all(calls).await;
    let ids =
        |r: &StoreResult<Vec<(i64, i64)>>| r.as_ref().unwrap().iter().map(|(_, id)| *id).collect::<Vec<_>>();
    let expected: Vec<Vec<i64>> = vec![
        vec![all.id, role.id],
        vec![selected.id],
        vec![all.id],
        vec![all.id],
        vec![all.id, role.id],
        vec![],
    ];
    assert_eq!(got.iter().map(ids).collect::<Vec<_>>(), expected);
    for ((u, h), want) in keys.iter().zip(&expected) {
        let alone = store.pending_ids(u, *h, now).await;
        assert_eq!(&ids(&alone), want, "{u} at {h} alone");
    }
    store.close().await;
    db.drop_database().await;
}

pub async fn a_burst_of_first_connects_gets_every_user_once(backend: Backend) {
    let db = backend.fresh_database().await;
    let store = open(&db).await;
    let now = Timestamp::now();
    store.put_user(&user("known", &["AUDITOR"]), now).await.unwrap();
    // 300 connects at once: 200 new users, 50 of them twice, and one user the directory knows.
    let mut ids: Vec<String> = (0..200).map(|i| format!("new-{i:03}")).collect();
    ids.extend((0..50).map(|i| format!("new-{i:03}")));
    ids.extend(std::iter::repeat_n("known".to_owned(), 50));
    let calls = ids.iter().map(|id| {
        let store = store.clone();
        let id = UserId::parse("userId", id).unwrap();
        async move { store.ensure_user(&id, now).await }
    });
    let users = futures::future::join_all(calls).await;
    for (id, got) in ids.iter().zip(users) {
        let got = got.expect("ensure_user");
        assert_eq!(got.user_id.as_str(), id, "each caller gets its own user");
        let roles: Vec<_> = got.roles.into_iter().collect();
        assert_eq!(roles, if id == "known" { vec!["AUDITOR".to_owned()] } else { vec![] });
    }
    assert_eq!(store.user_ids().await.unwrap().len(), 201);
    store.close().await;
    db.drop_database().await;
}

/// A page of the directory, however it is read, gives each user its own roles and products (a
/// user with none, one with several of each, names with quotes), in id order.
pub async fn each_listed_user_has_its_own_roles_and_products(backend: Backend) {
    let db = backend.fresh_database().await;
    let store = open(&db).await;
    let now = Timestamp::now();
    let set = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect();
    let profile = |id: &str, roles: &[&str], products: &[&str]| User {
        user_id: UserId::parse("userId", id).unwrap(),
        roles: set(roles),
        products: set(products),
    };
    let users = [
        profile("b-both", &["AUDITOR", "USER"], &["Payments", "Say \"hi\""]),
        profile("a-none", &[], &[]),
        profile("c-products", &[], &["Analytics"]),
        profile("d-roles", &["ADMIN"], &[]),
    ];
    for u in &users {
        store.put_user(u, now).await.unwrap();
    }
    let mut sorted = users.to_vec();
    sorted.sort_by(|a, b| a.user_id.as_str().cmp(b.user_id.as_str()));
    assert_eq!(store.list_users(None, 10).await.unwrap(), sorted);
    assert_eq!(store.list_users(Some("b-both"), 2).await.unwrap(), sorted[2..4]);
    assert_eq!(store.get_user("b-both").await.unwrap().as_ref(), Some(&users[0]));
    assert_eq!(store.get_user("nobody").await.unwrap(), None);
    let known = UserId::parse("userId", "c-products").unwrap();
    assert_eq!(store.ensure_user(&known, now).await.unwrap(), users[2], "a known user as stored");
    store.close().await;
    db.drop_database().await;
}

pub async fn one_batch_of_marks_over_several_broadcasts_counts_each(backend: Backend) {
    let db = backend.fresh_database().await;
    let store = open(&db).await;
    let now = Timestamp::now();
    let users: Vec<User> = (0..40).map(|i| user(&format!("u{i:02}"), &[])).collect();
    store.seed_users(&users, now).await.unwrap();
    let plain = store.create_broadcast(&draft(now, |_| {}), now).await.unwrap();
    let fire = store.create_broadcast(&draft(now, |r| r.fire_and_forget = Some(true)), now).await.unwrap();
    // u00 already has the fire-and-forget message delivered (not read) from an earlier batch.
    let early = DeliveryMark { broadcast_id: fire.id, user_id: "u00".into(), at: now, read: false };
    store.record_deliveries(&[early]).await.unwrap();
    // Interleaved, unsorted: every user gets both; the fire-and-forget one counts as read. Most
    // share one time (a fan-out's), the last three have times of their own (catch-ups').
    let at = |i: usize| {
        now.plus_millis(match i {
            0..37 => 10,
            37 | 38 => 20,
            _ => 25,
        })
    };
    let mut marks = Vec::new();
    for (i, u) in users.iter().enumerate().rev() {
        for (b, read) in [(&fire, true), (&plain, false)] {
            let user_id = u.user_id.as_str().into();
            marks.push(DeliveryMark { broadcast_id: b.id, user_id, at: at(i), read });
        }
    }
    store.record_deliveries(&marks).await.unwrap();
    let counts = store.counts(&plain).await.unwrap();
    assert_eq!((counts.targeted, counts.delivered, counts.read), (40, 40, 0));
    let counts = store.counts(&fire).await.unwrap();
    assert_eq!((counts.targeted, counts.delivered, counts.read), (40, 40, 40));
    let rows = store.deliveries(&fire, None, 50).await.unwrap();
    assert_eq!(rows[0].delivered_at, Some(now), "u00 keeps its first delivery time");
    assert_eq!(rows[0].read_at, Some(at(0)), "and is read now");
    let rows = store.deliveries(&plain, None, 50).await.unwrap();
    let times: Vec<Option<Timestamp>> = rows.iter().map(|r| r.delivered_at).collect();
    let expected: Vec<Option<Timestamp>> = (0..40).map(|i| Some(at(i))).collect();
    assert_eq!(times, expected, "each user's own delivery time");
    store.close().await;
    db.drop_database().await;
}

/// Two stores on one database (PostgreSQL: SQLite grants its one process the lease always).
pub async fn on_postgres_the_lease_has_one_holder_until_it_expires(backend: Backend) {
    if backend != Backend::Postgres {
        return;
    }
    let db = backend.fresh_database().await;
    let (a, b) = (open(&db).await, open(&db).await);
    let now = Timestamp::now();
    let until = now.plus_millis(1_000);
    assert!(a.try_lease("l", "node-a", now, until).await.unwrap());
    assert!(!b.try_lease("l", "node-b", now, until).await.unwrap(), "held by node-a");
    assert!(
        a.try_lease("l", "node-a", now.plus_millis(500), now.plus_millis(1_500)).await.unwrap(),
        "renewal"
    );
    let later = now.plus_millis(1_600);
    assert!(
        b.try_lease("l", "node-b", later, later.plus_millis(1_000)).await.unwrap(),
        "expired, taken over"
    );
    b.release_lease("l", "node-b").await.unwrap();
    assert!(a.try_lease("l", "node-a", later, later.plus_millis(1_000)).await.unwrap(), "released");
    let peers = b.node_heartbeat("node-b", later, now).await.unwrap();
    assert!(peers.is_empty());
    a.node_heartbeat("node-a", later, now).await.unwrap();
    assert_eq!(b.node_heartbeat("node-b", later, now).await.unwrap(), ["node-a"]);
    a.close().await;
    b.close().await;
    db.drop_database().await;
}

fn letter(offset: i64) -> herald_store::NewDeadLetter {
    herald_store::NewDeadLetter {
        broadcast_id: Some(7),
        correlation_id: None,
        original_key: Some("k".into()),
        original_topic: "herald.events".into(),
        original_partition: 0,
        original_offset: offset,
        exception_message: "unreadable".into(),
        exception_stack_trace: "unreadable\ncaused by: junk".into(),
        failed_at: Timestamp::from_millis(1_000),
        payload: "{\"v\":99}".into(),
    }
}

/// Several nodes report the same record: it is kept once; letters read back whole and delete.
pub async fn a_dead_letter_is_kept_once_per_record_and_deletes(backend: Backend) {
    let db = backend.fresh_database().await;
    let store = open(&db).await;
    let first = store.add_dead_letter(&letter(5)).await.unwrap().expect("new");
    assert_eq!(store.add_dead_letter(&letter(5)).await.unwrap(), None, "same record, another node");
    let second = store.add_dead_letter(&letter(6)).await.unwrap().expect("new");
    let all = store.dead_letters().await.unwrap();
    assert_eq!(all.iter().map(|d| d.id).collect::<Vec<_>>(), [first, second]);
    assert_eq!(all[0].letter, letter(5));
    assert_eq!(store.dead_letter(second).await.unwrap().unwrap().letter.original_offset, 6);
    assert_eq!(store.delete_dead_letters(Some(first)).await.unwrap(), 1);
    assert_eq!(store.delete_dead_letters(Some(first)).await.unwrap(), 0);
    assert_eq!(store.delete_dead_letters(None).await.unwrap(), 1);
    assert!(store.dead_letters().await.unwrap().is_empty());
    store.close().await;
    db.drop_database().await;
}

/// Open streams count per user across nodes, up to the limit; a dead node's streams do not count.
pub async fn open_streams_count_across_live_nodes_up_to_the_limit(backend: Backend) {
    let db = backend.fresh_database().await;
    let store = open(&db).await;
    let now = Timestamp::now();
    let since = now.plus_millis(-1_000);
    store.node_heartbeat("a", now, since).await.unwrap();
    store.node_heartbeat("b", now, since).await.unwrap();
    store.node_heartbeat("dead", now.plus_millis(-60_000), since).await.unwrap();
    let session = |key: &str, node: &str, user: &str| herald_store::Session {
        key: key.into(),
        connection_id: format!("c-{key}"),
        node_id: node.into(),
        user_id: user.into(),
    };
    assert!(store.open_session(&session("1", "a", "u"), 2, since).await.unwrap());
    assert!(store.open_session(&session("2", "b", "u"), 2, since).await.unwrap());
    assert!(!store.open_session(&session("3", "b", "u"), 2, since).await.unwrap(), "third stream of u");
    assert!(store.open_session(&session("4", "dead", "v"), 2, since).await.unwrap());
    assert_eq!(store.sessions_of("u", since).await.unwrap().len(), 2);
    assert!(store.sessions_of("v", since).await.unwrap().is_empty(), "on a dead node");
    assert_eq!(store.session_users(since).await.unwrap(), 1);
    store.close_session("1").await.unwrap();
    assert!(store.open_session(&session("5", "a", "u"), 2, since).await.unwrap(), "room again");
    assert_eq!(store.clear_sessions("a").await.unwrap(), 1);
    assert_eq!(store.sessions_of("u", since).await.unwrap()[0].connection_id, "c-2");
    store.close().await;
    db.drop_database().await;
}

/// The relay's mark round-trips; an appended event is logged after the others; PostgreSQL
/// announces the new head, and a disconnect request reaches the signals.
pub async fn the_relay_mark_appends_and_announcements_work(backend: Backend) {
    let db = backend.fresh_database().await;
    let store = open(&db).await;
    assert_eq!(store.relay_mark().await.unwrap(), herald_store::RelayMark::default());
    let mark = herald_store::RelayMark { published_seq: Some(3), bus_offset: Some(10) };
    store.set_relay_mark(mark).await.unwrap();
    assert_eq!(store.relay_mark().await.unwrap(), mark);

    let mut head = store.signals().log_head.subscribe();
    let mut disconnects = store.signals().disconnect.subscribe();
    let body = EventBody::UserChanged { user: user("u-1", &[]), deleted: false };
    store.append_event(&body, Timestamp::now()).await.unwrap();
    let logged = relay_all(&store, 0).await;
    assert_eq!(logged.last().map(|e| &e.body), Some(&body));
    if backend == Backend::Postgres {
        let seq = logged.last().unwrap().seq;
        tokio::time::timeout(std::time::Duration::from_secs(5), head.wait_for(|h| *h >= seq))
            .await
            .expect("the new head is announced")
            .unwrap();
    }
    let request = herald_store::Disconnect { user: "u-1".into(), connection_id: "tab".into() };
    store.announce_disconnect(&request).await.unwrap();
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), disconnects.recv()).await;
    assert_eq!(got.expect("announced").unwrap(), request);
    store.close().await;
    db.drop_database().await;
}
