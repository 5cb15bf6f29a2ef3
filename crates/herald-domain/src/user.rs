//! Users of the directory: a validated id with its roles and products.

use crate::error::FieldError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Longest user id, role or product name accepted.
pub const MAX_ID_LEN: usize = 128;

/// A user id: 1–128 characters of `[A-Za-z0-9._@:-]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct UserId(String);

impl UserId {
    /// Checks the id; `field` names the input in the error.
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        if raw.is_empty() {
            return Err(FieldError::new(field, "must not be empty"));
        }
        if raw.chars().count() > MAX_ID_LEN {
            return Err(FieldError::new(field, format!("must be at most {MAX_ID_LEN} characters")));
        }
        if let Some(bad) = raw.chars().find(|c| !is_id_char(*c)) {
            return Err(FieldError::new(
                field,
                format!("contains '{}'; allowed are letters, digits and . _ @ : -", bad.escape_default()),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl<'de> Deserialize<'de> for UserId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse("userId", &raw).map_err(|e| serde::de::Error::custom(e.message))
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | ':' | '-')
}

/// A directory entry. Roles and products are sets: order and duplicates carry no meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub user_id: UserId,
    pub roles: BTreeSet<String>,
    pub products: BTreeSet<String>,
}

impl User {
    pub fn bare(user_id: UserId) -> Self {
        Self { user_id, roles: BTreeSet::new(), products: BTreeSet::new() }
    }
}

/// Checks a list of role or product names (`field` is `roles` or `products`).
pub fn parse_names(field: &str, raw: &[String]) -> Result<BTreeSet<String>, FieldError> {
    const MAX_NAMES: usize = 100;
    if raw.len() > MAX_NAMES {
        return Err(FieldError::new(field, format!("must list at most {MAX_NAMES} names")));
    }
    raw.iter()
        .enumerate()
        .map(|(i, name)| {
            let item = format!("{field}[{i}]");
            UserId::parse(&item, name).map(UserId::into_string)
        })
        .collect()
}

/// The directory `--demo` seeds (SPEC 7a): user-001..user-010, every one with role USER.
pub fn demo_users() -> Vec<User> {
    (1..=10)
        .map(|n| {
            let id = format!("user-{n:03}");
            let mut roles = BTreeSet::from(["USER".to_owned()]);
            if matches!(n, 2 | 3) {
                roles.insert("ADMIN".to_owned());
            }
            if n == 5 {
                roles.insert("MODERATOR".to_owned());
            }
            let mut products = BTreeSet::new();
            if matches!(n, 1 | 3 | 5 | 10) {
                products.insert("Payments".to_owned());
            }
            if matches!(n, 3 | 7 | 9) {
                products.insert("Analytics".to_owned());
            }
            User { user_id: UserId(id), roles, products }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_empty_long_and_foreign_characters() {
        assert_eq!(UserId::parse("userId", "").unwrap_err().message, "must not be empty");
        assert!(UserId::parse("userId", &"a".repeat(129)).unwrap_err().message.contains("128"));
        let err = UserId::parse("userId", "bob smith").unwrap_err();
        assert!(err.message.contains("' '"), "{}", err.message);
        assert!(UserId::parse("userId", "alice@example.com:42_x-y").is_ok());
    }

    #[test]
    fn demo_directory_matches_the_spec() {
        let users = demo_users();
        assert_eq!(users.len(), 10);
        let admins: Vec<_> =
            users.iter().filter(|u| u.roles.contains("ADMIN")).map(|u| u.user_id.as_str()).collect();
        assert_eq!(admins, ["user-002", "user-003"]);
        assert!(users.iter().all(|u| u.roles.contains("USER")));
        let analytics: Vec<_> =
            users.iter().filter(|u| u.products.contains("Analytics")).map(|u| u.user_id.as_str()).collect();
        assert_eq!(analytics, ["user-003", "user-007", "user-009"]);
    }

    proptest! {
        #[test]
        fn accepts_exactly_the_documented_alphabet(s in "\\PC{0,140}") {
            let ok = !s.is_empty()
                && s.chars().count() <= MAX_ID_LEN
                && s.chars().all(is_id_char);
            prop_assert_eq!(UserId::parse("userId", &s).is_ok(), ok);
        }
    }
}
