//! Broadcasts: their fields, who they target, and the status machine.

use crate::time::Timestamp;
use crate::user::User;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
    Urgent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TargetType {
    All,
    Selected,
    Role,
    Product,
}

impl TargetType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "ALL",
            Self::Selected => "SELECTED",
            Self::Role => "ROLE",
            Self::Product => "PRODUCT",
        }
    }
}

/// Whether a role (or product) name of a target names the user's: letters match in either case
/// (`admin` is `ADMIN`, as in the system Herald replaces). Names are ASCII (see `validate`); the
/// SQL of each backend folds them the same way.
pub fn same_name(target: &str, held: &str) -> bool {
    target.eq_ignore_ascii_case(held)
}

/// Who a broadcast is for. Membership is decided when a message is delivered or fetched,
/// against the user's roles and products at that moment. User ids match exactly; role and
/// product names by [`same_name`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub target_type: TargetType,
    pub target_ids: Vec<String>,
}

impl Target {
    fn holds(names: &[String], held: &std::collections::BTreeSet<String>) -> bool {
        names.iter().any(|n| held.contains(n) || held.iter().any(|h| same_name(n, h)))
    }

    pub fn includes(&self, user: &User) -> bool {
        match self.target_type {
            TargetType::All => true,
            TargetType::Selected => self.target_ids.iter().any(|id| id == user.user_id.as_str()),
            TargetType::Role => Self::holds(&self.target_ids, &user.roles),
            TargetType::Product => Self::holds(&self.target_ids, &user.products),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BroadcastStatus {
    Scheduled,
    Active,
    Expired,
    Cancelled,
}

/// A transition the status machine forbids (the API answers 409).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("broadcast is {} and cannot become {}", from.as_str(), to.as_str())]
pub struct TransitionError {
    pub from: BroadcastStatus,
    pub to: BroadcastStatus,
}

impl BroadcastStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "SCHEDULED",
            Self::Active => "ACTIVE",
            Self::Expired => "EXPIRED",
            Self::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Scheduled, Self::Active, Self::Expired, Self::Cancelled]
            .into_iter()
            .find(|s| s.as_str() == text)
    }

    /// `SCHEDULED → ACTIVE → EXPIRED`, `SCHEDULED|ACTIVE → CANCELLED`; nothing leaves a final state.
    pub fn transition(self, to: Self) -> Result<Self, TransitionError> {
        let allowed = matches!(
            (self, to),
            (Self::Scheduled, Self::Active)
                | (Self::Active, Self::Expired)
                | (Self::Scheduled | Self::Active, Self::Cancelled)
        );
        if allowed {
            Ok(to)
        } else {
            Err(TransitionError { from: self, to })
        }
    }
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "LOW",
            Self::Normal => "NORMAL",
            Self::High => "HIGH",
            Self::Urgent => "URGENT",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Low, Self::Normal, Self::High, Self::Urgent].into_iter().find(|p| p.as_str() == text)
    }
}

impl TargetType {
    pub fn parse(text: &str) -> Option<Self> {
        [Self::All, Self::Selected, Self::Role, Self::Product].into_iter().find(|t| t.as_str() == text)
    }
}

/// A stored broadcast. It has no serialized form of its own: the HTTP API shows it through a view
/// and the log stores it in the event record (`record`), so neither shape can break the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broadcast {
    pub id: i64,
    pub correlation_id: Uuid,
    pub sender_id: String,
    pub sender_name: String,
    pub content: String,
    pub priority: Priority,
    pub category: String,
    pub target: Target,
    pub scheduled_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub fire_and_forget: bool,
    pub status: BroadcastStatus,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The category that makes a broadcast close its recipients' streams once sent.
pub const FORCE_LOGOFF_CATEGORY: &str = "Force Logoff";

impl Broadcast {
    pub fn is_force_logoff(&self) -> bool {
        is_force_logoff(&self.category)
    }

    /// Whether the broadcast may still reach a user at `now`: active and not past its expiry
    /// (the expiry may be due but not yet processed by the scheduler).
    pub fn is_live_at(&self, now: Timestamp) -> bool {
        self.status == BroadcastStatus::Active && self.expires_at.is_none_or(|e| e > now)
    }
}

pub fn is_force_logoff(category: &str) -> bool {
    category.trim().eq_ignore_ascii_case(FORCE_LOGOFF_CATEGORY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::{demo_users, UserId};
    use proptest::prelude::*;
    use BroadcastStatus::*;

    fn user(id: &str, roles: &[&str], products: &[&str]) -> User {
        User {
            user_id: UserId::parse("userId", id).unwrap(),
            roles: roles.iter().map(|s| (*s).to_owned()).collect(),
            products: products.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn target(t: TargetType, ids: &[&str]) -> Target {
        Target { target_type: t, target_ids: ids.iter().map(|s| (*s).to_owned()).collect() }
    }

    #[test]
    fn each_target_type_reaches_exactly_its_audience() {
        let users = demo_users();
        let reached = |t: &Target| -> Vec<String> {
            users.iter().filter(|u| t.includes(u)).map(|u| u.user_id.to_string()).collect()
        };
        assert_eq!(reached(&target(TargetType::All, &[])).len(), 10);
        assert_eq!(reached(&target(TargetType::Selected, &["user-004", "nobody"])), ["user-004"]);
        assert_eq!(
            reached(&target(TargetType::Role, &["ADMIN", "MODERATOR"])),
            ["user-002", "user-003", "user-005"]
        );
        assert_eq!(
            reached(&target(TargetType::Product, &["Analytics"])),
            ["user-003", "user-007", "user-009"]
        );
    }

    #[test]
    fn role_and_product_names_match_ignoring_case() {
        let u = user("u1", &["ADMIN"], &["Payments"]);
        assert!(target(TargetType::Role, &["admin"]).includes(&u));
        assert!(target(TargetType::Role, &["Admin"]).includes(&u));
        assert!(target(TargetType::Product, &["PAYMENTS"]).includes(&u));
        assert!(!target(TargetType::Role, &["admins"]).includes(&u));
        // User ids stay exact.
        assert!(!target(TargetType::Selected, &["U1"]).includes(&u));
    }

    #[test]
    fn status_machine_allows_only_the_documented_transitions() {
        assert_eq!(Scheduled.transition(Active), Ok(Active));
        assert_eq!(Active.transition(Expired), Ok(Expired));
        assert_eq!(Scheduled.transition(Cancelled), Ok(Cancelled));
        assert_eq!(Active.transition(Cancelled), Ok(Cancelled));
        assert!(Scheduled.transition(Expired).is_err());
        assert!(Active.transition(Scheduled).is_err());
    }

    #[test]
    fn force_logoff_is_recognised_case_insensitively() {
        assert!(is_force_logoff("Force Logoff"));
        assert!(is_force_logoff("FORCE LOGOFF"));
        assert!(is_force_logoff(" force logoff "));
        assert!(!is_force_logoff("Force Logoff now"));
    }

    proptest! {
        #[test]
        fn nothing_leaves_a_final_state(to in prop_oneof![Just(Scheduled), Just(Active), Just(Expired), Just(Cancelled)]) {
            prop_assert!(Expired.transition(to).is_err());
            prop_assert!(Cancelled.transition(to).is_err());
        }

        #[test]
        fn selected_targets_include_only_listed_users(ids in proptest::collection::vec("[a-z]{1,4}", 0..6), who in "[a-z]{1,4}") {
            let t = Target { target_type: TargetType::Selected, target_ids: ids.clone() };
            let u = user(&who, &["ADMIN"], &["Payments"]);
            prop_assert_eq!(t.includes(&u), ids.contains(&who));
        }
    }
}
