//! The HTTP edge's error: every failure becomes the JSON body of SPEC section 4
//! (`timestamp`, `status`, `error`, `message`, `path`) with the right status code. A 5xx keeps its
//! cause; the request middleware (`middleware::observed`) logs the chain once, in the request's span.

use crate::net::wire::error_json;
use crate::stream::Refused;
use axum::extract::{OriginalUri, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use herald_domain::{FieldError, Refusal};
use herald_store::StoreError;
use std::sync::Arc;

/// What caused a 5xx, for the log.
pub type Cause = Arc<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{message}")]
    Unauthorized { message: String, invalid: bool },
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    RequestTimeout(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{message}")]
    TooManyRequests { message: String, retry_after_secs: u64 },
    #[error("{message}")]
    Unavailable { message: String, cause: Option<Cause> },
    #[error("internal error")]
    Internal(Cause),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable { message: message.into(), cause: None }
    }

    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Arc::new(e))
    }

    fn cause(&self) -> Option<Cause> {
        match self {
            Self::Internal(cause) => Some(cause.clone()),
            Self::Unavailable { cause, .. } => cause.clone(),
            _ => None,
        }
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        Self::BadRequest(e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::BroadcastNotFound(_) | StoreError::Refused(Refusal::NotTargeted { .. }) => {
                Self::NotFound(e.to_string())
            }
            StoreError::Refused(Refusal::Transition(t)) => Self::Conflict(format!("cannot cancel: {t}")),
            StoreError::Refused(Refusal::NotYetActive(_)) => Self::Conflict(e.to_string()),
            StoreError::Unavailable(_) => Self::Unavailable {
                message: "the database is unavailable; retry shortly".into(),
                cause: Some(Arc::new(e)),
            },
            StoreError::Backend(_) | StoreError::Corrupt(_) => Self::Internal(Arc::new(e)),
        }
    }
}

impl From<Refused> for ApiError {
    fn from(e: Refused) -> Self {
        match e {
            Refused::NodeFull(_) => Self::TooManyRequests { message: e.to_string(), retry_after_secs: 5 },
            Refused::ShuttingDown => Self::unavailable(e.to_string()),
            Refused::Store(store) => store.into(),
        }
    }
}

/// An error response, rendered by `middleware::json_error_body` once the request path is known;
/// `cause` is logged by `middleware::observed` for a 5xx.
#[derive(Clone, Debug)]
pub struct ErrorInfo {
    pub status: StatusCode,
    pub message: String,
    pub cause: Option<Cause>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry_after = match &self {
            Self::TooManyRequests { retry_after_secs, .. } => Some(*retry_after_secs),
            _ => None,
        };
        let challenge = match &self {
            Self::Unauthorized { invalid: false, .. } => Some(r#"Bearer realm="herald""#.to_owned()),
            Self::Unauthorized { message, invalid: true } => {
                let description: String =
                    message.chars().filter(|c| *c != '"' && *c != '\\' && !c.is_control()).collect();
                Some(format!(
                    r#"Bearer realm="herald", error="invalid_token", error_description="{description}""#
                ))
            }
            _ => None,
        };
        let info = ErrorInfo { status, message: self.to_string(), cause: self.cause() };
        let mut response = render(&info, "");
        if let Some(secs) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        if matches!(self, Self::RequestTimeout(_)) {
            // The rest of the body may never come: the connection cannot be reused.
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response.extensions_mut().insert(info);
        response
    }
}

pub(super) fn render(info: &ErrorInfo, path: &str) -> Response {
    let body = error_json(info.status, &info.message, path);
    (info.status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

pub async fn not_found(uri: OriginalUri) -> ApiError {
    ApiError::NotFound(format!("no route for {}", uri.path()))
}

pub async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::MethodNotAllowed(format!("{} is not allowed on {}", req.method(), req.uri().path()))
}
