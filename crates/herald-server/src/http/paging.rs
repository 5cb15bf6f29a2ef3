//! Lists: how much one answer holds, and how a client learns that a list goes on. A client that
//! never pages (the console Herald replaces) gets up to [`PAGE_MAX`] items at once; when more
//! exist, the answer says so with `Link: <…>; rel="next"`, this request with its cursor moved past
//! the last item.

use super::ApiError;
use axum::http::{header, HeaderValue, Uri};
use axum::response::Response;

/// The items of one answer when the client names no `limit`, and the most it may ask for.
pub const PAGE_MAX: u32 = 1_000;

/// A `limit` query parameter: [`PAGE_MAX`] when absent, 400 outside `1..=PAGE_MAX`.
pub fn page_limit(raw: Option<u32>) -> Result<u32, ApiError> {
    match raw {
        None => Ok(PAGE_MAX),
        Some(n) if (1..=PAGE_MAX).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::BadRequest(format!("limit: {n} is outside 1..={PAGE_MAX}"))),
    }
}

/// The rows to show from `rows`, read with one more than `limit` to learn whether the list goes
/// on, and then the `next` page's link: `cursor=key(last row shown)`.
pub struct Page<T> {
    pub rows: Vec<T>,
    next: Option<HeaderValue>,
}

impl<T> Page<T> {
    pub fn cut(mut rows: Vec<T>, limit: u32, uri: &Uri, cursor: &str, key: impl Fn(&T) -> String) -> Self {
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next = match rows.last() {
            Some(last) if more => next_link(uri, cursor, &key(last)),
            _ => None,
        };
        Self { rows, next }
    }

    /// `response` with the `Link` header when the list goes on.
    pub fn link(&self, mut response: Response) -> Response {
        if let Some(next) = &self.next {
            response.headers_mut().insert(header::LINK, next.clone());
        }
        response
    }
}

/// `<path?query>; rel="next"`: the request's own parameters, `cursor` set to `value`.
fn next_link(uri: &Uri, cursor: &str, value: &str) -> Option<HeaderValue> {
    let query = uri.query().unwrap_or("");
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(query.as_bytes()).filter(|(k, _)| k != cursor) {
        out.append_pair(&k, &v);
    }
    out.append_pair(cursor, value);
    HeaderValue::from_str(&format!("<{}?{}>; rel=\"next\"", uri.path(), out.finish())).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_link_keeps_the_parameters_and_moves_the_cursor() {
        let uri: Uri = "/api/admin/broadcasts?filter=active&before=90&limit=2".parse().unwrap();
        let page = Page::cut(vec![80, 70, 60], 2, &uri, "before", |id| id.to_string());
        assert_eq!(page.rows, [80, 70]);
        assert_eq!(
            page.next.unwrap().to_str().unwrap(),
            "</api/admin/broadcasts?filter=active&limit=2&before=70>; rel=\"next\""
        );
    }

    #[test]
    fn a_list_that_fits_has_no_next_link_and_cursors_are_encoded() {
        let uri: Uri = "/api/admin/users".parse().unwrap();
        assert!(Page::cut(vec![1, 2], 2, &uri, "after", |id| id.to_string()).next.is_none());
        let page = Page::cut(vec!["a b&c", "z"], 1, &uri, "after", |id| (*id).to_owned());
        assert_eq!(page.next.unwrap().to_str().unwrap(), "</api/admin/users?after=a+b%26c>; rel=\"next\"");
    }
}
