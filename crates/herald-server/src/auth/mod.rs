//! Authentication: with auth `none` nothing is verified; with `jwt` a token's signature and
//! claims are checked against the configured keys (reloadable on SIGHUP), giving an [`Identity`].
//! Who the caller of a request is, and what it may do, is `http::caller`.

pub mod jwt;

use crate::config::{AuthMode, Config};
use jwt::JwtVerifier;
pub use jwt::{Identity, KeyError, MintError};

pub enum Auth {
    None,
    Jwt(JwtVerifier),
}

impl Auth {
    pub fn new(config: &Config) -> Result<Self, KeyError> {
        Ok(match config.auth {
            AuthMode::None => Self::None,
            AuthMode::Jwt => Self::Jwt(JwtVerifier::new(config)?),
        })
    }

    /// Re-reads key files (SIGHUP); returns how many keys are in use.
    pub fn reload(&self) -> Result<usize, KeyError> {
        match self {
            Self::None => Ok(0),
            Self::Jwt(v) => v.reload(),
        }
    }
}
