//! JWT verification: HS256 with a shared secret, or RS256 / ES256 with public keys from a PEM or
//! JWKS file (reloaded on demand, e.g. on SIGHUP). `alg: none` and algorithms that do not match
//! the configured keys are refused.

use crate::config::Config;
use herald_domain::{Timestamp, UserId};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

/// Tokens longer than this are refused before any parsing.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// A verified caller.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user: UserId,
    pub roles: BTreeSet<String>,
    pub products: BTreeSet<String>,
    pub expires_at: Timestamp,
}

enum Source {
    Secret(Vec<u8>),
    Pem(PathBuf),
    Jwks(PathBuf),
}

struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

pub struct JwtVerifier {
    source: Source,
    // std RwLock: replaced wholesale on reload; readers clone the Arc and release at once.
    keys: RwLock<Arc<Vec<Key>>>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: u64,
    roles_claim: String,
    products_claim: String,
}

impl JwtVerifier {
    pub fn new(config: &Config) -> Result<Self, KeyError> {
        let source = if let Some(secret) = &config.jwt_secret {
            Source::Secret(secret.expose().as_bytes().to_vec())
        } else if let Some(path) = &config.jwt_public_key_file {
            Source::Pem(path.clone())
        } else if let Some(path) = &config.jwt_jwks_file {
            Source::Jwks(path.clone())
        } else {
            return Err(KeyError::Missing);
        };
        let keys = load(&source)?;
        Ok(Self {
            source,
            keys: RwLock::new(Arc::new(keys)),
            issuer: config.jwt_issuer.clone(),
            audience: config.jwt_audience.clone(),
            leeway: config.jwt_leeway.as_secs(),
            roles_claim: config.jwt_roles_claim.clone(),
            products_claim: config.jwt_products_claim.clone(),
        })
    }

    /// Re-reads a PEM or JWKS file; on failure the old keys stay in use.
    pub fn reload(&self) -> Result<usize, KeyError> {
        let keys = load(&self.source)?;
        let n = keys.len();
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        Ok(n)
    }

    /// Verifies signature, `exp`, `nbf` and (when configured) `iss` / `aud`; maps the claims.
    pub fn verify(&self, token: &str) -> Result<Identity, String> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err("token is too large".into());
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("malformed token: {e}"))?;
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner()).clone();
        let candidates: Vec<&Key> = keys
            .iter()
            .filter(|k| k.alg == header.alg)
            .filter(|k| match (&header.kid, &k.kid) {
                (Some(want), Some(have)) => want == have,
                _ => true,
            })
            .collect();
        if candidates.is_empty() {
            return Err(format!("no key accepts alg {:?} with kid {:?}", header.alg, header.kid));
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        if let Some(iss) = &self.issuer {
            validation.set_issuer(&[iss]);
        }
        match &self.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        let mut last = String::new();
        for key in candidates {
            match jsonwebtoken::decode::<Value>(token, &key.key, &validation) {
                Ok(data) => return self.identity(&data.claims),
                Err(e) => last = e.to_string(),
            }
        }
        Err(format!("invalid token: {last}"))
    }

    fn identity(&self, claims: &Value) -> Result<Identity, String> {
        let sub = claims.get("sub").and_then(Value::as_str).ok_or("the sub claim must be a string")?;
        let user = UserId::parse("sub", sub).map_err(|e| e.to_string())?;
        let exp = claims.get("exp").and_then(Value::as_f64).ok_or("the exp claim must be a number")?;
        Ok(Identity {
            user,
            roles: names(claims, &self.roles_claim)?,
            products: names(claims, &self.products_claim)?,
            expires_at: Timestamp::from_millis((exp * 1000.0) as i64),
        })
    }
}

/// The strings at a dotted claim path: a list, or one space- or comma-separated string.
fn names(claims: &Value, path: &str) -> Result<BTreeSet<String>, String> {
    let mut at = claims;
    for part in path.split('.') {
        match at.get(part) {
            Some(v) => at = v,
            None => return Ok(BTreeSet::new()),
        }
    }
    let raw: Vec<String> = match at {
        Value::Array(items) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        Value::String(s) => s.split([' ', ',']).filter(|p| !p.is_empty()).map(str::to_owned).collect(),
        Value::Null => Vec::new(),
        _ => return Err(format!("the {path} claim must be a list of strings")),
    };
    herald_domain::user::parse_names(path, &raw).map_err(|e| e.to_string())
}

/// Keys that cannot be loaded (at start-up: the server does not start; on reload: the old keys
/// stay).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("auth = jwt needs a key")]
    Missing,
    #[error("cannot read {}", .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{} holds neither an RSA nor an EC public key", .path.display())]
    NotAKey { path: PathBuf, source: jsonwebtoken::errors::Error },
    #[error("{} is not a JWKS", .path.display())]
    NotJwks { path: PathBuf, source: serde_json::Error },
    #[error("{} has no RS256 or ES256 key", .path.display())]
    NoUsableKey { path: PathBuf },
}

/// A development token that cannot be minted.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error(transparent)]
    Subject(#[from] herald_domain::FieldError),
    #[error("cannot sign the token")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

fn load(source: &Source) -> Result<Vec<Key>, KeyError> {
    match source {
        Source::Secret(secret) => {
            Ok(vec![Key { kid: None, alg: Algorithm::HS256, key: DecodingKey::from_secret(secret) }])
        }
        Source::Pem(path) => {
            let pem = std::fs::read(path).map_err(|source| KeyError::Read { path: path.clone(), source })?;
            if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
                return Ok(vec![Key { kid: None, alg: Algorithm::RS256, key }]);
            }
            let key = DecodingKey::from_ec_pem(&pem)
                .map_err(|source| KeyError::NotAKey { path: path.clone(), source })?;
            Ok(vec![Key { kid: None, alg: Algorithm::ES256, key }])
        }
        Source::Jwks(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|source| KeyError::Read { path: path.clone(), source })?;
            let set: JwkSet = serde_json::from_str(&text)
                .map_err(|source| KeyError::NotJwks { path: path.clone(), source })?;
            let keys: Vec<Key> = set
                .keys
                .iter()
                .filter_map(|jwk| {
                    let alg = match &jwk.algorithm {
                        AlgorithmParameters::RSA(_) => Algorithm::RS256,
                        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                            Algorithm::ES256
                        }
                        _ => return None,
                    };
                    let key = DecodingKey::from_jwk(jwk).ok()?;
                    Some(Key { kid: jwk.common.key_id.clone(), alg, key })
                })
                .collect();
            if keys.is_empty() {
                return Err(KeyError::NoUsableKey { path: path.clone() });
            }
            Ok(keys)
        }
    }
}

/// Mints an HS256 development token for `sub` with the given roles and products, valid for `ttl`,
/// carrying the configured issuer and audience (so the server accepts it).
pub fn mint_token(
    secret: &crate::config::Secret,
    sub: &str,
    roles: &[String],
    products: &[String],
    ttl: std::time::Duration,
    config: &Config,
) -> Result<String, MintError> {
    UserId::parse("sub", sub)?;
    let now = Timestamp::now().millis() / 1000;
    let mut claims = serde_json::json!({
        "sub": sub,
        "iat": now,
        "exp": now + ttl.as_secs() as i64,
    });
    set_path(&mut claims, &config.jwt_roles_claim, roles);
    set_path(&mut claims, &config.jwt_products_claim, products);
    if let Some(iss) = &config.jwt_issuer {
        claims["iss"] = Value::from(iss.as_str());
    }
    if let Some(aud) = &config.jwt_audience {
        claims["aud"] = Value::from(aud.as_str());
    }
    let key = jsonwebtoken::EncodingKey::from_secret(secret.expose().as_bytes());
    Ok(jsonwebtoken::encode(&jsonwebtoken::Header::new(Algorithm::HS256), &claims, &key)?)
}

/// Puts `names` at a dotted claim path, creating the objects on the way.
fn set_path(claims: &mut Value, path: &str, names: &[String]) {
    let mut at = claims;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            at[part] = Value::from(names.to_vec());
            return;
        }
        if !at.get(part).is_some_and(Value::is_object) {
            at[part] = serde_json::json!({});
        }
        at = &mut at[part];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_minted_token_verifies_with_its_claims_at_the_configured_paths() {
        let config = Config {
            auth: crate::config::AuthMode::Jwt,
            jwt_secret: Some(crate::config::Secret::new("s".repeat(32))),
            jwt_roles_claim: "realm_access.roles".into(),
            jwt_audience: Some("herald".into()),
            ..Config::default()
        };
        let secret = config.jwt_secret.clone().unwrap();
        let token =
            mint_token(&secret, "alice", &["ADMIN".into()], &[], std::time::Duration::from_secs(60), &config)
                .unwrap();
        let id = JwtVerifier::new(&config).unwrap().verify(&token).unwrap();
        assert_eq!(id.user.as_str(), "alice");
        assert!(id.roles.contains("ADMIN"));
    }

    #[test]
    fn claims_are_read_from_lists_strings_and_nested_paths() {
        let claims =
            json!({"roles": ["ADMIN", "USER"], "scope": "a b,c", "realm_access": {"roles": ["OPS"]}});
        assert_eq!(names(&claims, "roles").unwrap().len(), 2);
        assert_eq!(names(&claims, "scope").unwrap().len(), 3);
        assert_eq!(names(&claims, "realm_access.roles").unwrap().into_iter().collect::<Vec<_>>(), ["OPS"]);
        assert!(names(&claims, "missing.path").unwrap().is_empty());
        assert!(names(&json!({"roles": 5}), "roles").is_err());
        assert!(names(&json!({"roles": ["bad role"]}), "roles").is_err());
    }
}
