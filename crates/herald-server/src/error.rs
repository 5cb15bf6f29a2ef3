//! The HTTP edge's error: every failure becomes the JSON body of SPEC section 4
//! (`timestamp`, `status`, `error`, `message`, `path`) with the right status code.

use axum::extract::{OriginalUri, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use herald_domain::{FieldError, Timestamp};
use herald_store::StoreError;

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
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
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
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
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
            StoreError::BroadcastNotFound(_) | StoreError::NotTargeted { .. } => {
                Self::NotFound(e.to_string())
            }
            StoreError::Transition(t) => Self::Conflict(format!("cannot cancel: {t}")),
            StoreError::NotYetActive(_) => Self::Conflict(e.to_string()),
            StoreError::Unavailable(cause) => {
                tracing::warn!(%cause, "database unavailable");
                Self::Unavailable("the database is unavailable; retry shortly".into())
            }
            StoreError::Backend(cause) => Self::Internal(cause),
        }
    }
}

/// Rendered by [`error_body`] once the request path is known.
#[derive(Clone, Debug)]
pub struct ErrorInfo {
    status: StatusCode,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Self::Internal(cause) = &self {
            tracing::error!(%cause, "request failed");
        }
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
        let info = ErrorInfo { status, message: self.to_string() };
        let mut response = render(&info, "");
        response.extensions_mut().insert(info);
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
        response
    }
}

/// The JSON error body of SPEC section 4.
pub fn error_json(status: StatusCode, message: &str, path: &str) -> String {
    serde_json::json!({
        "timestamp": Timestamp::now(),
        "status": status.as_u16(),
        "error": status.canonical_reason().unwrap_or("Error"),
        "message": message,
        "path": path,
    })
    .to_string()
}

fn render(info: &ErrorInfo, path: &str) -> Response {
    let body = error_json(info.status, &info.message, path);
    (info.status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Longest plain-text rejection (from axum's own extractors) turned into a JSON message.
const MAX_REJECTION_TEXT: usize = 1024;

/// Middleware: fills the request path into error bodies produced anywhere below it, and turns any
/// other error response (an extractor's plain-text rejection, say) into the same JSON body.
pub async fn error_body(uri: OriginalUri, req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let info = match response.extensions().get::<ErrorInfo>().cloned() {
        Some(info) => info,
        None if response.status().is_client_error() || response.status().is_server_error() => {
            if is_json(&response) {
                return response;
            }
            let status = response.status();
            let (parts, body) = response.into_parts();
            let text = axum::body::to_bytes(body, MAX_REJECTION_TEXT).await.unwrap_or_default();
            let text = String::from_utf8_lossy(&text);
            let message = if text.trim().is_empty() {
                status.canonical_reason().unwrap_or("error").to_owned()
            } else {
                text.trim().to_owned()
            };
            let response = Response::from_parts(parts, axum::body::Body::empty());
            return with_json_error(response, &ErrorInfo { status, message }, uri.path());
        }
        None => return response,
    };
    with_json_error(response, &info, uri.path())
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// `response` with its body replaced by the JSON error body for `info` at `path`.
fn with_json_error(response: Response, info: &ErrorInfo, path: &str) -> Response {
    let (mut parts, _) = response.into_parts();
    let fresh = render(info, path);
    let (fresh_parts, body) = fresh.into_parts();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    drop(fresh_parts);
    Response::from_parts(parts, body)
}

pub async fn not_found(uri: OriginalUri) -> ApiError {
    ApiError::NotFound(format!("no route for {}", uri.path()))
}

pub async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::MethodNotAllowed(format!("{} is not allowed on {}", req.method(), req.uri().path()))
}
