//! The layers every request passes, outermost first: a span per request (method, route template,
//! status, latency; at debug level) and a 5xx logged once with its cause chain; the JSON error
//! body for every error (also axum's own plain-text rejections); the framing rules for requests on
//! a kept-alive connection; and the deadline of the request body. Streams answered on the raw
//! socket get only the first two, through [`observed`] and [`json_error_body`] (and CORS, when
//! configured, through the router: `StreamRoutes` in `http/streams.rs`).

use super::error::{render, ErrorInfo};
use super::ApiError;
use crate::net::wire;
use crate::report::Chain;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{MatchedPath, OriginalUri, Request, State};
use axum::http::{header, HeaderValue, Method, Version};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::time::{Instant, Sleep};
use tracing::Instrument;

/// A span per request at debug level; a 5xx is logged with its method, route, status, latency
/// and cause chain. (An info span on every request cost a stream connect more CPU than routing
/// it: the span's fields were formatted whether or not anything was logged in it.)
pub async fn observe(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or("(no route)", MatchedPath::as_str);
    observed(req.method().clone(), route, next.run(req)).await
}

/// What [`observe`] does around `answer`, the response to a `method` request to `route`.
pub async fn observed(method: Method, route: &str, answer: impl Future<Output = Response>) -> Response {
    let span = tracing::debug_span!(
        "request",
        method = %method,
        route = %route,
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    );
    let started = Instant::now();
    let response = answer.instrument(span.clone()).await;
    let status = response.status();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.record("status", status.as_u16());
    span.record("latency_ms", latency_ms);
    let _entered = span.enter();
    match response.extensions().get::<ErrorInfo>() {
        Some(ErrorInfo { cause: Some(cause), message, .. }) if status.is_server_error() => {
            let (status, cause) = (status.as_u16(), Chain(&**cause));
            if status == 503 {
                tracing::warn!(%method, route, status, latency_ms, cause = %cause, "{message}");
            } else {
                tracing::error!(%method, route, status, latency_ms, cause = %cause, "request failed");
            }
        }
        _ => tracing::debug!("request answered"),
    }
    response
}

/// Longest plain-text rejection (from axum's own extractors) turned into a JSON message.
const MAX_REJECTION_TEXT: usize = 1024;

/// Fills the request path into error bodies produced anywhere below, and turns any other error
/// response (an extractor's plain-text rejection, say) into the same JSON body.
pub async fn error_body(uri: OriginalUri, req: Request, next: Next) -> Response {
    json_error_body(next.run(req).await, uri.path()).await
}

/// What [`error_body`] does to `response`, the answer to a request for `path`.
pub async fn json_error_body(response: Response, path: &str) -> Response {
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
            let response = Response::from_parts(parts, Body::empty());
            return with_json_error(response, ErrorInfo { status, message, cause: None }, path);
        }
        None => return response,
    };
    with_json_error(response, info, path)
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// `response` with its body replaced by the JSON error body for `info` at `path`.
fn with_json_error(response: Response, info: ErrorInfo, path: &str) -> Response {
    let (mut parts, _) = response.into_parts();
    let (_, body) = render(&info, path).into_parts();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.extensions.insert(info);
    Response::from_parts(parts, body)
}

/// Middleware: refuses requests that break the framing rules, closing the connection.
pub async fn enforce_framing(req: Request, next: Next) -> Response {
    let http11 = req.version() == Version::HTTP_11;
    let problem = if matches!(req.version(), Version::HTTP_10 | Version::HTTP_11) {
        wire::head_problem(http11, req.headers().iter().map(|(n, v)| (n.as_str(), v.as_bytes())))
    } else {
        None
    };
    match problem {
        Some(problem) => {
            let mut response = ApiError::BadRequest(problem.to_owned()).into_response();
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
        None => next.run(req).await,
    }
}

/// A request body that did not arrive whole within `body_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimedOut;

/// A request body that fails with [`BodyTimedOut`] once its deadline passes: a client that
/// declares a body and never sends it cannot hold a connection (and its file) forever. `whole`
/// is set once the body was read to its end.
pub struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
    whole: Arc<AtomicBool>,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            if frame.is_none() || self.inner.is_end_stream() {
                self.whole.store(true, Ordering::Relaxed);
            }
            return Poll::Ready(frame);
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Middleware: every request body must arrive whole within `body_timeout`. An HTTP/1 answer
/// given before the body was read to its end (a refusal: 401, 413, 415, a bad path) says
/// `connection: close`. hyper would close the connection anyway unless the rest of the body is
/// already there to skip, and it finds out only after the answer went out saying nothing, so a
/// client reusing the connection would lose its next request.
pub async fn body_deadline(State(app): State<AppState>, req: Request, next: Next) -> Response {
    if http_body::Body::is_end_stream(req.body()) {
        return next.run(req).await;
    }
    let http1 = req.version() < Version::HTTP_2;
    let deadline = Box::pin(tokio::time::sleep(app.config.body_timeout));
    let whole = Arc::new(AtomicBool::new(false));
    let body = |inner| Body::new(DeadlineBody { inner, deadline, whole: whole.clone() });
    let mut response = next.run(req.map(body)).await;
    if http1 && !whole.load(Ordering::Relaxed) {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
