//! HTTP/1.1 framing rules Herald enforces before a request is routed (RFC 9112): exactly one
//! `Host`, at most one `Content-Length`, `chunked` at most once and never together with a
//! `Content-Length`. A proxy in front of Herald may frame such a request differently than Herald
//! would (request smuggling), so it is refused with 400 and the connection is closed.
//!
//! The first request of a connection is checked on the raw socket (see `sse_conn`); later
//! requests on a kept-alive connection by [`enforce`], a middleware.

use crate::error::ApiError;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Version};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// What is wrong with a request head, if anything. `http11` is false for HTTP/1.0, which may omit
/// `Host`.
pub fn head_problem<'a>(
    http11: bool,
    headers: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> Option<&'static str> {
    let (mut hosts, mut lengths, mut chunked) = (0, 0, 0);
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case("content-length") {
            lengths += 1;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked += value
                .split(|b| *b == b',')
                .filter(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"))
                .count();
        }
    }
    if hosts > 1 {
        Some("the request has more than one Host header")
    } else if hosts == 0 && http11 {
        Some("an HTTP/1.1 request needs a Host header")
    } else if lengths > 1 {
        Some("the request has more than one Content-Length header")
    } else if chunked > 1 {
        Some("Transfer-Encoding names chunked more than once")
    } else if chunked == 1 && lengths == 1 {
        Some("the request has both Transfer-Encoding and Content-Length")
    } else {
        None
    }
}

/// Middleware: refuses requests that break the framing rules, closing the connection.
pub async fn enforce(req: Request, next: Next) -> Response {
    let http11 = req.version() == Version::HTTP_11;
    let problem = if matches!(req.version(), Version::HTTP_10 | Version::HTTP_11) {
        head_problem(http11, req.headers().iter().map(|(n, v)| (n.as_str(), v.as_bytes())))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn check(http11: bool, headers: &[(&str, &str)]) -> Option<&'static str> {
        head_problem(http11, headers.iter().map(|(n, v)| (*n, v.as_bytes())))
    }

    #[test]
    fn a_well_framed_head_passes() {
        assert_eq!(check(true, &[("Host", "h"), ("Content-Length", "3")]), None);
        assert_eq!(check(true, &[("host", "h"), ("transfer-encoding", "gzip, chunked")]), None);
        assert_eq!(check(false, &[]), None, "HTTP/1.0 may omit Host");
    }

    #[test]
    fn ambiguous_framing_is_named() {
        assert!(check(true, &[]).unwrap().contains("Host"));
        assert!(check(true, &[("Host", "a"), ("HOST", "b")]).unwrap().contains("more than one Host"));
        assert!(check(true, &[("Host", "a"), ("Content-Length", "1"), ("content-length", "1")])
            .unwrap()
            .contains("Content-Length"));
        assert!(check(true, &[("Host", "a"), ("Transfer-Encoding", "chunked, chunked")])
            .unwrap()
            .contains("chunked"));
        assert!(check(
            true,
            &[("Host", "a"), ("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")]
        )
        .is_some());
        assert!(check(true, &[("Host", "a"), ("Transfer-Encoding", "chunked"), ("Content-Length", "4")])
            .is_some());
    }
}
