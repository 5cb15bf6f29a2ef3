use super::*;
use crate::broadcast::{Priority, Target, TargetType};
use crate::user::UserId;
use proptest::prelude::*;
use BroadcastStatus::*;

const NOW: Timestamp = Timestamp::from_millis(1_800_000_000_000);

fn user(id: &str, roles: &[&str]) -> User {
    User {
        user_id: UserId::parse("userId", id).unwrap(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        products: Default::default(),
    }
}

fn broadcast(status: BroadcastStatus, scheduled: Option<i64>, expires: Option<i64>) -> Broadcast {
    Broadcast {
        id: 7,
        correlation_id: Uuid::nil(),
        sender_id: "admin".into(),
        sender_name: "Admin".into(),
        content: "hi".into(),
        priority: Priority::Normal,
        category: "GENERAL".into(),
        target: Target { target_type: TargetType::Role, target_ids: vec!["ADMIN".into()] },
        scheduled_at: scheduled.map(|ms| NOW.plus_millis(ms)),
        expires_at: expires.map(|ms| NOW.plus_millis(ms)),
        fire_and_forget: false,
        status,
        created_at: NOW.plus_millis(-60_000),
        updated_at: NOW.plus_millis(-60_000),
    }
}

fn kinds(events: &[EventBody]) -> Vec<&'static str> {
    events.iter().map(EventBody::kind).collect()
}

fn status() -> impl Strategy<Value = BroadcastStatus> {
    prop_oneof![Just(Scheduled), Just(Active), Just(Expired), Just(Cancelled)]
}

fn offset() -> impl Strategy<Value = Option<i64>> {
    proptest::option::of(-120_000i64..120_000)
}

#[test]
fn only_an_active_cancel_removes_the_message_from_streams() {
    let active = cancel(&broadcast(Active, None, None), NOW).unwrap();
    assert_eq!(active.state.status, Cancelled);
    assert_eq!(active.state.updated_at, NOW);
    assert_eq!(kinds(&active.events), ["MESSAGE_REMOVED"]);
    let scheduled = cancel(&broadcast(Scheduled, Some(5_000), None), NOW).unwrap();
    assert!(scheduled.events.is_empty(), "it never went out");
    assert!(cancel(&broadcast(Expired, None, None), NOW).is_err());
}

#[test]
fn a_scheduled_broadcast_whose_window_passed_expires_unsent() {
    let change = due(&broadcast(Scheduled, Some(-2_000), Some(-1_000)), NOW).unwrap();
    assert_eq!(change.state.status, Expired);
    assert!(change.events.is_empty());
}

#[test]
fn reading_emits_one_receipt_and_counts_as_delivered() {
    let admin = user("u1", &["ADMIN"]);
    let b = broadcast(Active, None, None);
    let first = read(&b, &admin, Delivery::default(), NOW).unwrap();
    assert_eq!(first.state.read_at, Some(NOW));
    assert_eq!(first.state.delivered_at, Some(NOW));
    assert_eq!(kinds(&first.events), ["READ_RECEIPT"]);
    let again = read(&b, &admin, first.state, NOW.plus_millis(5)).unwrap();
    assert_eq!(again.state, first.state, "the first read time stays");
    assert!(again.events.is_empty(), "no second receipt");
}

#[test]
fn reads_and_acks_need_the_audience_and_a_broadcast_that_went_out() {
    let b = broadcast(Active, None, None);
    let outsider = user("u2", &["USER"]);
    assert!(matches!(read(&b, &outsider, Delivery::default(), NOW), Err(Refusal::NotTargeted { .. })));
    let admin = user("u1", &["ADMIN"]);
    let later = broadcast(Scheduled, Some(5_000), None);
    assert_eq!(read(&later, &admin, Delivery::default(), NOW), Err(Refusal::NotYetActive(7)));
    assert_eq!(acknowledge(&later, &admin, Delivery::default(), NOW), Err(Refusal::NotYetActive(7)));
    let ended = broadcast(Cancelled, None, None);
    assert!(read(&ended, &admin, Delivery::default(), NOW).is_ok(), "it was delivered while active");
}

#[test]
fn acknowledging_keeps_the_first_render_time() {
    let admin = user("u1", &["ADMIN"]);
    let b = broadcast(Active, None, None);
    let seen = Delivery { delivered_at: Some(NOW.plus_millis(-9)), ..Delivery::default() };
    let first = acknowledge(&b, &admin, seen, NOW).unwrap();
    assert_eq!((first.state.delivered_at, first.state.rendered_at), (seen.delivered_at, Some(NOW)));
    let again = acknowledge(&b, &admin, first.state, NOW.plus_millis(3)).unwrap();
    assert_eq!(again.state.rendered_at, Some(NOW));
    assert!(first.events.is_empty() && again.events.is_empty());
}

#[test]
fn directory_changes_reach_every_node() {
    let u = user("u1", &["ADMIN"]);
    let put = put_user(u.clone());
    assert_eq!(put.events, [EventBody::UserChanged { user: u.clone(), deleted: false }]);
    let gone = delete_user(u);
    assert!(gone.state.roles.is_empty());
    assert!(matches!(gone.events[..], [EventBody::UserChanged { deleted: true, .. }]));
}

proptest! {
    #[test]
    fn the_scheduler_follows_the_status_machine(s in status(), scheduled in offset(), expires in offset()) {
        let b = broadcast(s, scheduled, expires);
        match due(&b, NOW) {
            None => {
                let is_due = match s {
                    Scheduled => scheduled.is_none_or(|o| o <= 0),
                    Active => expires.is_some_and(|o| o <= 0),
                    _ => false,
                };
                prop_assert!(!is_due, "{s:?} due but left alone");
            }
            Some(change) => {
                // Every transition is one the status machine allows (expiring unsent goes through ACTIVE).
                let via = if s == Scheduled && change.state.status == Expired { Active } else { change.state.status };
                prop_assert!(s.transition(via).is_ok() || s == Scheduled);
                prop_assert_eq!(change.state.updated_at, NOW);
                let expected: Vec<&str> = match (s, change.state.status) {
                    (Scheduled, Active) => vec!["MESSAGE"],
                    (Scheduled, Expired) => vec![],
                    (Active, Expired) => vec!["MESSAGE_REMOVED"],
                    other => return Err(TestCaseError::fail(format!("unexpected transition {other:?}"))),
                };
                prop_assert_eq!(kinds(&change.events), expected);
                if let [EventBody::Message { broadcast }] = &change.events[..] {
                    prop_assert_eq!(broadcast.status, Active, "the logged message is the active broadcast");
                }
            }
        }
    }

    #[test]
    fn nothing_leaves_a_final_state(s in prop_oneof![Just(Expired), Just(Cancelled)], scheduled in offset(), expires in offset()) {
        let b = broadcast(s, scheduled, expires);
        prop_assert!(due(&b, NOW).is_none());
        prop_assert!(cancel(&b, NOW).is_err());
    }

    #[test]
    fn a_created_broadcast_is_logged_exactly_when_it_goes_out(delay in -5_000i64..5_000, id in 1i64..1_000) {
        let req = crate::CreateBroadcastRequest {
            sender_id: Some("admin".into()),
            content: Some("x".into()),
            target_type: Some("ALL".into()),
            scheduled_at: Some(NOW.plus_millis(delay).to_rfc3339()),
            ..Default::default()
        };
        let change = create(req.validate(NOW).unwrap(), id, Uuid::nil(), NOW);
        prop_assert_eq!(change.state.id, id);
        let goes_out = change.state.status == Active;
        prop_assert_eq!(goes_out, delay <= 0);
        prop_assert_eq!(kinds(&change.events), if goes_out { vec!["MESSAGE"] } else { vec![] });
    }
}
