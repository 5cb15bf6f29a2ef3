//! Golden records: the bytes of every kind are pinned, so a change that would break stored events
//! or a cluster of mixed versions fails here first.

use super::*;

fn broadcast() -> Broadcast {
    Broadcast {
        id: 42,
        correlation_id: "9e35952b-3f6c-4a6e-8d8e-0a4b2f3c1d2e".parse().unwrap(),
        sender_id: "ops".into(),
        sender_name: "Ops team".into(),
        content: "Deploy at 18:00 UTC \u{1F680}".into(),
        priority: Priority::High,
        category: "GENERAL".into(),
        target: Target { target_type: TargetType::Role, target_ids: vec!["ADMIN".into(), "OPS".into()] },
        scheduled_at: None,
        expires_at: Some(Timestamp::from_millis(1_800_000_360_000)),
        fire_and_forget: false,
        status: BroadcastStatus::Active,
        created_at: Timestamp::from_millis(1_800_000_000_000),
        updated_at: Timestamp::from_millis(1_800_000_000_123),
    }
}

fn user() -> User {
    User {
        user_id: UserId::parse("userId", "user-002").unwrap(),
        roles: ["ADMIN".to_owned(), "USER".to_owned()].into(),
        products: ["Payments".to_owned()].into(),
    }
}

fn bodies() -> Vec<EventBody> {
    vec![
        EventBody::Message { broadcast: broadcast() },
        EventBody::MessageRemoved {
            broadcast_id: 42,
            reason: RemovalReason::Cancelled,
            target: broadcast().target,
        },
        EventBody::ReadReceipt {
            user_id: "user-002".into(),
            broadcast_id: 42,
            read_at: Timestamp::from_millis(1_800_000_001_000),
        },
        EventBody::UserChanged { user: user(), deleted: false },
    ]
}

const GOLDEN_V1: [&str; 4] = [
    r#"{"v":1,"kind":"MESSAGE","broadcast":{"id":42,"correlation_id":"9e35952b-3f6c-4a6e-8d8e-0a4b2f3c1d2e","sender_id":"ops","sender_name":"Ops team","content":"Deploy at 18:00 UTC 🚀","priority":"HIGH","category":"GENERAL","target":{"type":"ROLE","ids":["ADMIN","OPS"]},"scheduled_at":null,"expires_at":1800000360000,"fire_and_forget":false,"status":"ACTIVE","created_at":1800000000000,"updated_at":1800000000123}}"#,
    r#"{"v":1,"kind":"MESSAGE_REMOVED","broadcast_id":42,"reason":"CANCELLED","target":{"type":"ROLE","ids":["ADMIN","OPS"]}}"#,
    r#"{"v":1,"kind":"READ_RECEIPT","user_id":"user-002","broadcast_id":42,"read_at":1800000001000}"#,
    r#"{"v":1,"kind":"USER_CHANGED","user_id":"user-002","roles":["ADMIN","USER"],"products":["Payments"],"deleted":false}"#,
];

/// What builds before the versioned format stored, byte for byte.
const GOLDEN_V0: [&str; 4] = [
    r#"{"type":"MESSAGE","broadcast":{"id":42,"correlationId":"9e35952b-3f6c-4a6e-8d8e-0a4b2f3c1d2e","senderId":"ops","senderName":"Ops team","content":"Deploy at 18:00 UTC 🚀","priority":"HIGH","category":"GENERAL","targetType":"ROLE","targetIds":["ADMIN","OPS"],"scheduledAt":null,"expiresAt":"2027-01-15T08:06:00.000Z","fireAndForget":false,"status":"ACTIVE","createdAt":"2027-01-15T08:00:00.000Z","updatedAt":"2027-01-15T08:00:00.123Z"}}"#,
    r#"{"type":"MESSAGE_REMOVED","broadcast_id":42,"reason":"CANCELLED","target":{"targetType":"ROLE","targetIds":["ADMIN","OPS"]}}"#,
    r#"{"type":"READ_RECEIPT","user_id":"user-002","broadcast_id":42,"read_at":"2027-01-15T08:00:01.000Z"}"#,
    r#"{"type":"USER_CHANGED","user":{"userId":"user-002","roles":["ADMIN","USER"],"products":["Payments"]},"deleted":false}"#,
];

#[test]
fn every_kind_is_written_exactly_as_pinned() {
    for (body, golden) in bodies().iter().zip(GOLDEN_V1) {
        assert_eq!(encode(body), golden);
    }
}

#[test]
fn every_pinned_record_reads_back_to_its_event() {
    for (body, golden) in bodies().into_iter().zip(GOLDEN_V1) {
        assert_eq!(decode(golden), Ok((body, None)));
    }
}

#[test]
fn records_stored_before_versions_existed_still_read() {
    for (body, golden) in bodies().into_iter().zip(GOLDEN_V0) {
        assert_eq!(decode(golden), Ok((body, None)), "{golden}");
    }
}

#[test]
fn a_positioned_event_carries_its_position() {
    let event = Event { seq: 7, body: bodies().remove(2) };
    let text = encode_event(&event);
    assert!(text.starts_with(r#"{"v":1,"seq":7,"kind":"READ_RECEIPT""#), "{text}");
    assert_eq!(decode(&text), Ok((event.body, Some(7))));
}

#[test]
fn a_newer_version_is_a_clear_error_not_a_guess() {
    let err = decode(r#"{"v":2,"kind":"MESSAGE","whatever":true}"#).unwrap_err();
    assert_eq!(err, DecodeError::UnknownVersion(2));
    assert!(err.to_string().contains("newer than this build"), "{err}");
}

#[test]
fn corrupt_records_are_errors() {
    for bad in ["", "not json", r#"{"v":"one"}"#, r#"{"v":1,"kind":"NOPE"}"#, r#"{"type":"MESSAGE"}"#, "[]"] {
        assert!(matches!(decode(bad), Err(DecodeError::Malformed(_))), "{bad}");
    }
    let bad_priority = GOLDEN_V1[0].replace("HIGH", "MEGA");
    assert!(decode(&bad_priority).unwrap_err().to_string().contains("priority 'MEGA'"));
}
