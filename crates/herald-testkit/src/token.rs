//! Development tokens (HS256), as an identity provider would issue them.

use herald_domain::Timestamp;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// A token for `sub` with `roles`, valid for `ttl_secs` (negative: already expired), signed with
/// `secret`.
pub fn token(secret: &str, sub: &str, roles: &[&str], ttl_secs: i64) -> String {
    let exp = Timestamp::now().millis() / 1000 + ttl_secs;
    token_with(secret, &json!({"sub": sub, "roles": roles, "exp": exp}))
}

/// A token with exactly these claims.
pub fn token_with(secret: &str, claims: &Value) -> String {
    encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes()))
        .expect("signing a token")
}
