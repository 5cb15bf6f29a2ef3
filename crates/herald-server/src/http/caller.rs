//! Who is calling: with auth `none` the caller is trusted to name its user (`userId`); with
//! `jwt` the caller is the verified token's subject, and only it. Tokens come from
//! `Authorization: Bearer`, the `access_token` query parameter (EventSource cannot set headers) or
//! a cookie. The query string is never logged.

use super::ApiError;
use crate::auth::{Auth, Identity};
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts, HeaderMap};
use herald_domain::{Timestamp, UserId};

pub const ADMIN_ROLE: &str = "ADMIN";

/// The caller of a request.
pub enum Caller {
    /// auth `none`: whoever it is may act as any user and as admin.
    Trusted,
    Token(Identity),
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let Auth::Jwt(verifier) = &app.auth else { return Ok(Caller::Trusted) };
        let token = find_token(parts, &app.config.jwt_cookie).ok_or(ApiError::Unauthorized {
            message: "a bearer token is required (Authorization header, access_token parameter or cookie)"
                .into(),
            invalid: false,
        })?;
        verifier
            .verify(&token)
            .map(Caller::Token)
            .map_err(|message| ApiError::Unauthorized { message, invalid: true })
    }
}

impl Caller {
    /// The user a user route acts on, from every `userId` the request carries (query string,
    /// body): each must be a valid id (400) and all must agree (400). With auth `jwt` the user is
    /// the token's subject and any `userId` naming someone else is 403; with auth `none` a
    /// `userId` is required.
    pub fn user(&self, requested: &[Option<&str>]) -> Result<UserId, ApiError> {
        let named = requested
            .iter()
            .flatten()
            .map(|raw| UserId::parse("userId", raw))
            .collect::<Result<Vec<_>, _>>()?;
        match self {
            Caller::Trusted => {
                let first =
                    named.first().ok_or_else(|| ApiError::BadRequest("userId: is required".into()))?;
                if named.iter().any(|n| n != first) {
                    return Err(ApiError::BadRequest(
                        "userId: the query string and the body name different users".into(),
                    ));
                }
                Ok(first.clone())
            }
            Caller::Token(id) => match named.iter().find(|n| **n != id.user) {
                Some(other) => Err(ApiError::Forbidden(format!(
                    "userId {other} is not the token's subject; a user may act only on itself"
                ))),
                None => Ok(id.user.clone()),
            },
        }
    }

    /// Admin routes need role ADMIN; returns the admin's id (`None` with auth `none`).
    pub fn admin(&self) -> Result<Option<&UserId>, ApiError> {
        match self {
            Caller::Trusted => Ok(None),
            Caller::Token(id) if id.roles.contains(ADMIN_ROLE) => Ok(Some(&id.user)),
            Caller::Token(id) => {
                Err(ApiError::Forbidden(format!("user {} lacks the {ADMIN_ROLE} role", id.user)))
            }
        }
    }

    /// Whether the caller may look at `user`'s presence: itself, an admin, or anyone with auth `none`.
    pub fn may_see(&self, user: &str) -> bool {
        match self {
            Caller::Trusted => true,
            Caller::Token(id) => id.user.as_str() == user || id.roles.contains(ADMIN_ROLE),
        }
    }

    pub fn expires_at(&self) -> Option<Timestamp> {
        match self {
            Caller::Trusted => None,
            Caller::Token(id) => Some(id.expires_at),
        }
    }

    pub fn identity(&self) -> Option<&Identity> {
        match self {
            Caller::Trusted => None,
            Caller::Token(id) => Some(id),
        }
    }
}

fn find_token(parts: &Parts, cookie_name: &str) -> Option<String> {
    bearer(&parts.headers)
        .or_else(|| {
            let query = parts.uri.query()?;
            form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "access_token")
                .map(|(_, v)| v.into_owned())
        })
        .or_else(|| cookie(&parts.headers, cookie_name))
        .filter(|t| !t.is_empty())
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
}
