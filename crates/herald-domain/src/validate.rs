//! Validation of a create-broadcast request into a [`NewBroadcast`], with one precise message
//! per rejected field.

use crate::broadcast::{BroadcastStatus, Priority, Target, TargetType};
use crate::error::FieldError;
use crate::time::Timestamp;
use crate::user::{UserId, MAX_ID_LEN};
use serde::Deserialize;

pub const MAX_CONTENT_CHARS: usize = 10_000;
pub const MAX_CATEGORY_CHARS: usize = 100;
pub const MAX_SENDER_NAME_CHARS: usize = 200;
pub const MAX_TARGET_IDS: usize = 10_000;
pub const DEFAULT_CATEGORY: &str = "GENERAL";

/// The body of `POST /api/admin/broadcasts` as sent. Enumerations arrive as text so that a bad
/// value gets our message rather than a parser's; `isImmediate` and `correlationId` of the old API
/// are accepted and ignored, as are unknown fields.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateBroadcastRequest {
    pub sender_id: Option<String>,
    pub sender_name: Option<String>,
    pub content: Option<String>,
    pub target_type: Option<String>,
    pub target_ids: Option<Vec<String>>,
    pub priority: Option<String>,
    pub category: Option<String>,
    pub scheduled_at: Option<String>,
    pub expires_at: Option<String>,
    pub fire_and_forget: Option<bool>,
}

/// A validated broadcast, ready to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBroadcast {
    pub sender_id: String,
    pub sender_name: String,
    pub content: String,
    pub priority: Priority,
    pub category: String,
    pub target: Target,
    pub scheduled_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub fire_and_forget: bool,
    /// `ACTIVE` when it should go out now, `SCHEDULED` when `scheduledAt` is in the future.
    pub status: BroadcastStatus,
}

impl NewBroadcast {
    /// The stored broadcast, once the store has assigned its id and correlation id.
    pub fn into_broadcast(self, id: i64, correlation_id: uuid::Uuid, now: Timestamp) -> crate::Broadcast {
        crate::Broadcast {
            id,
            correlation_id,
            sender_id: self.sender_id,
            sender_name: self.sender_name,
            content: self.content,
            priority: self.priority,
            category: self.category,
            target: self.target,
            scheduled_at: self.scheduled_at,
            expires_at: self.expires_at,
            fire_and_forget: self.fire_and_forget,
            status: self.status,
            created_at: now,
            updated_at: now,
        }
    }
}

impl CreateBroadcastRequest {
    /// Applies every rule of SPEC section 1 at time `now`.
    pub fn validate(self, now: Timestamp) -> Result<NewBroadcast, FieldError> {
        let sender_id = UserId::parse("senderId", &required("senderId", self.sender_id)?)?;
        let sender_name = match self.sender_name {
            None => sender_id.to_string(),
            Some(name) => bounded_text("senderName", name, MAX_SENDER_NAME_CHARS)?,
        };
        let content = bounded_text("content", required("content", self.content)?, MAX_CONTENT_CHARS)?;
        let priority = match self.priority {
            None => Priority::default(),
            Some(p) => Priority::parse(&p.trim().to_ascii_uppercase()).ok_or_else(|| {
                FieldError::new("priority", format!("'{p}' is not one of LOW, NORMAL, HIGH, URGENT"))
            })?,
        };
        let category = match self.category.filter(|c| !c.trim().is_empty()) {
            None => DEFAULT_CATEGORY.to_owned(),
            Some(c) => bounded_text("category", c, MAX_CATEGORY_CHARS)?,
        };
        let target = parse_target(self.target_type, self.target_ids)?;
        let scheduled_at = optional_time("scheduledAt", self.scheduled_at)?.filter(|t| *t > now);
        let expires_at = optional_time("expiresAt", self.expires_at)?;
        if let Some(expiry) = expires_at {
            if expiry <= now {
                return Err(FieldError::new("expiresAt", "is already in the past"));
            }
            if scheduled_at.is_some_and(|s| expiry <= s) {
                return Err(FieldError::new("expiresAt", "must be after scheduledAt"));
            }
        }
        Ok(NewBroadcast {
            sender_id: sender_id.into_string(),
            sender_name,
            content,
            priority,
            category,
            target,
            scheduled_at,
            expires_at,
            fire_and_forget: self.fire_and_forget.unwrap_or(false),
            status: if scheduled_at.is_some() { BroadcastStatus::Scheduled } else { BroadcastStatus::Active },
        })
    }
}

fn required(field: &str, value: Option<String>) -> Result<String, FieldError> {
    value.ok_or_else(|| FieldError::new(field, "is required"))
}

/// Free text: not blank, at most `max` characters, and no NUL character (PostgreSQL text cannot
/// hold U+0000, so neither backend stores it).
fn bounded_text(field: &str, text: String, max: usize) -> Result<String, FieldError> {
    if text.trim().is_empty() {
        return Err(FieldError::new(field, "must not be blank"));
    }
    if text.contains('\0') {
        return Err(FieldError::new(field, "must not contain the NUL character (U+0000)"));
    }
    let len = text.chars().count();
    if len > max {
        return Err(FieldError::new(field, format!("must be at most {max} characters (got {len})")));
    }
    Ok(text)
}

fn optional_time(field: &str, raw: Option<String>) -> Result<Option<Timestamp>, FieldError> {
    raw.filter(|s| !s.trim().is_empty())
        .map(|s| Timestamp::parse(s.trim()).map_err(|e| FieldError::new(field, e)))
        .transpose()
}

fn parse_target(kind: Option<String>, ids: Option<Vec<String>>) -> Result<Target, FieldError> {
    let raw = required("targetType", kind)?;
    let target_type = TargetType::parse(&raw.trim().to_ascii_uppercase()).ok_or_else(|| {
        FieldError::new("targetType", format!("'{raw}' is not one of ALL, SELECTED, ROLE, PRODUCT"))
    })?;
    let ids = ids.unwrap_or_default();
    if target_type == TargetType::All {
        if !ids.is_empty() {
            return Err(FieldError::new("targetIds", "must be empty when targetType is ALL"));
        }
        return Ok(Target { target_type, target_ids: ids });
    }
    if ids.is_empty() {
        return Err(FieldError::new(
            "targetIds",
            format!("must list at least one id when targetType is {}", target_type.as_str()),
        ));
    }
    // The limit counts distinct ids: duplicates are collapsed first (the body limit bounds the raw list).
    let mut seen = std::collections::BTreeSet::new();
    let mut target_ids = Vec::new();
    for (i, id) in ids.into_iter().enumerate() {
        let field = format!("targetIds[{i}]");
        if id.chars().count() > MAX_ID_LEN {
            return Err(FieldError::new(field, format!("must be at most {MAX_ID_LEN} characters")));
        }
        let id = UserId::parse(&field, &id)?.into_string();
        if seen.insert(id.clone()) {
            target_ids.push(id);
        }
    }
    if target_ids.len() > MAX_TARGET_IDS {
        return Err(FieldError::new("targetIds", format!("must list at most {MAX_TARGET_IDS} distinct ids")));
    }
    Ok(Target { target_type, target_ids })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: Timestamp = Timestamp::from_millis(1_800_000_000_000);

    fn base() -> CreateBroadcastRequest {
        CreateBroadcastRequest {
            sender_id: Some("admin-1".into()),
            sender_name: Some("Admin".into()),
            content: Some("Hello".into()),
            target_type: Some("ALL".into()),
            ..Default::default()
        }
    }

    fn field_of(req: CreateBroadcastRequest) -> (String, String) {
        let e = req.validate(NOW).unwrap_err();
        (e.field, e.message)
    }

    #[test]
    fn a_minimal_request_gets_the_documented_defaults() {
        let b = base().validate(NOW).unwrap();
        assert_eq!(b.priority, Priority::Normal);
        assert_eq!(b.category, "GENERAL");
        assert_eq!(b.status, BroadcastStatus::Active);
        assert!(!b.fire_and_forget);
    }

    #[test]
    fn each_bad_field_is_named() {
        assert_eq!(field_of(CreateBroadcastRequest { content: None, ..base() }).0, "content");
        assert_eq!(field_of(CreateBroadcastRequest { content: Some("  ".into()), ..base() }).0, "content");
        assert_eq!(
            field_of(CreateBroadcastRequest { content: Some("x".repeat(10_001)), ..base() }).0,
            "content"
        );
        assert_eq!(field_of(CreateBroadcastRequest { sender_id: None, ..base() }).0, "senderId");
        assert_eq!(
            field_of(CreateBroadcastRequest { priority: Some("MEGA".into()), ..base() }).0,
            "priority"
        );
        assert_eq!(
            field_of(CreateBroadcastRequest { category: Some("c".repeat(101)), ..base() }).0,
            "category"
        );
        assert_eq!(
            field_of(CreateBroadcastRequest { target_type: Some("TEAM".into()), ..base() }).0,
            "targetType"
        );
        assert_eq!(
            field_of(CreateBroadcastRequest { target_ids: Some(vec!["u1".into()]), ..base() }).0,
            "targetIds"
        );
        let role = CreateBroadcastRequest { target_type: Some("ROLE".into()), ..base() };
        assert_eq!(field_of(role.clone()).0, "targetIds");
        assert_eq!(
            field_of(CreateBroadcastRequest { target_ids: Some(vec!["ok".into(), "bad id".into()]), ..role })
                .0,
            "targetIds[1]"
        );
        assert_eq!(
            field_of(CreateBroadcastRequest { scheduled_at: Some("soon".into()), ..base() }).0,
            "scheduledAt"
        );
    }

    #[test]
    fn content_of_exactly_ten_thousand_characters_is_accepted() {
        let req = CreateBroadcastRequest { content: Some("é".repeat(10_000)), ..base() };
        assert!(req.validate(NOW).is_ok());
    }

    #[test]
    fn expiry_rules_follow_the_spec() {
        let past = NOW.plus_millis(-1).to_rfc3339();
        let (f, m) = field_of(CreateBroadcastRequest { expires_at: Some(past), ..base() });
        assert_eq!((f.as_str(), m.as_str()), ("expiresAt", "is already in the past"));
        let at = NOW.plus_millis(60_000).to_rfc3339();
        let (f, m) = field_of(CreateBroadcastRequest {
            scheduled_at: Some(at.clone()),
            expires_at: Some(at),
            ..base()
        });
        assert_eq!((f.as_str(), m.as_str()), ("expiresAt", "must be after scheduledAt"));
    }

    #[test]
    fn a_future_schedule_is_scheduled_and_a_past_one_goes_out_now() {
        let later =
            CreateBroadcastRequest { scheduled_at: Some(NOW.plus_millis(5_000).to_rfc3339()), ..base() };
        assert_eq!(later.validate(NOW).unwrap().status, BroadcastStatus::Scheduled);
        let earlier =
            CreateBroadcastRequest { scheduled_at: Some(NOW.plus_millis(-5_000).to_rfc3339()), ..base() };
        let b = earlier.validate(NOW).unwrap();
        assert_eq!((b.status, b.scheduled_at), (BroadcastStatus::Active, None));
    }

    #[test]
    fn text_with_a_nul_character_is_refused_naming_the_field() {
        for (field, req) in [
            ("content", CreateBroadcastRequest { content: Some("nul\0here".into()), ..base() }),
            ("senderName", CreateBroadcastRequest { sender_name: Some("a\0".into()), ..base() }),
            ("category", CreateBroadcastRequest { category: Some("\0x".into()), ..base() }),
        ] {
            let (f, m) = field_of(req);
            assert_eq!(f, field);
            assert!(m.contains("NUL"), "{m}");
        }
    }

    #[test]
    fn the_target_limit_counts_distinct_ids() {
        let many = CreateBroadcastRequest {
            target_type: Some("SELECTED".into()),
            target_ids: Some(vec!["u1".into(); MAX_TARGET_IDS + 3_000]),
            ..base()
        };
        assert_eq!(many.validate(NOW).unwrap().target.target_ids, ["u1"]);
    }

    #[test]
    fn duplicate_target_ids_are_collapsed() {
        let req = CreateBroadcastRequest {
            target_type: Some("selected".into()),
            target_ids: Some(vec!["a".into(), "b".into(), "a".into()]),
            ..base()
        };
        assert_eq!(req.validate(NOW).unwrap().target.target_ids, ["a", "b"]);
    }

    proptest! {
        #[test]
        fn validation_never_panics_and_accepts_only_bounded_content(
            content in proptest::option::of("\\PC{0,50}"),
            kind in proptest::option::of("[A-Za-z]{0,9}"),
            ids in proptest::option::of(proptest::collection::vec("\\PC{0,10}", 0..4)),
            prio in proptest::option::of("[A-Z]{0,7}"),
        ) {
            let req = CreateBroadcastRequest { content: content.clone(), target_type: kind, target_ids: ids, priority: prio, ..base() };
            if let Ok(b) = req.validate(NOW) {
                let len = b.content.chars().count();
                prop_assert!((1..=MAX_CONTENT_CHARS).contains(&len));
                prop_assert_eq!(b.target.target_type == TargetType::All, b.target.target_ids.is_empty());
            }
        }
    }
}
