//! The web console (SPEC section 5): the files under `crates/herald-server/console/`, embedded in
//! the binary at compile time, so `cargo build` alone ships them and nothing needs Node.js.
//!
//! `/` serves `index.html`; every other file lives under `/console/{version}/`, where `version` is
//! a hash of all the files. The page names the current version, so a new build never mixes old
//! cached modules with new ones (ES-module imports are relative and inherit the prefix), and the
//! files can be cached for a year. Every file gets a strong `ETag` (a SHA-256 of its bytes) that
//! `If-None-Match` revalidates with a `304`, and a Content-Security-Policy without
//! `unsafe-inline`: the console has no inline script or style.

use super::ApiError;
use crate::state::AppState;
use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use include_dir::{include_dir, Dir, File};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::OnceLock;

static FILES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/console");

/// Where `index.html` names the versioned prefix (`/console/{version}/`).
const BASE_MARKER: &str = "{{BASE}}";

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
const CACHE_PAGE: &str = "no-cache";
const CACHE_ASSET: &str = "public, max-age=31536000, immutable";

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(index)).route("/console/{version}/{*path}", get(asset))
}

/// One file ready to serve.
struct Asset {
    body: Bytes,
    content_type: &'static str,
    etag: HeaderValue,
}

struct Console {
    version: String,
    index: Asset,
    assets: HashMap<&'static str, Asset>,
}

/// Built on first use: the version hashes every file, and the page is rewritten with it once.
fn console() -> &'static Console {
    static CONSOLE: OnceLock<Console> = OnceLock::new();
    CONSOLE.get_or_init(build)
}

fn build() -> Console {
    let mut files = Vec::new();
    collect(&FILES, &mut files);
    files.sort_by_key(|(path, _)| *path);
    let mut all = Sha256::new();
    for (path, file) in &files {
        all.update(path.as_bytes());
        all.update([0]);
        all.update(Sha256::digest(file.contents()));
    }
    let version = hex(&all.finalize()[..6]);
    let page = files.iter().find(|(path, _)| *path == "index.html").map_or(&[][..], |(_, f)| f.contents());
    let page = String::from_utf8_lossy(page).replace(BASE_MARKER, &format!("/console/{version}/"));
    let index = prepare("index.html", Bytes::from(page));
    let assets = files
        .iter()
        .filter(|(path, _)| *path != "index.html")
        .map(|(path, file)| (*path, prepare(path, Bytes::from_static(file.contents()))))
        .collect();
    Console { version, index, assets }
}

fn collect(dir: &'static Dir<'static>, out: &mut Vec<(&'static str, &'static File<'static>)>) {
    for file in dir.files() {
        if let Some(path) = file.path().to_str() {
            out.push((path, file));
        }
    }
    for sub in dir.dirs() {
        collect(sub, out);
    }
}

fn prepare(path: &str, body: Bytes) -> Asset {
    let etag = format!("\"{}\"", hex(&Sha256::digest(&body)[..16]));
    Asset {
        body,
        content_type: content_type(path),
        // Hex digits and quotes only, so always a valid header value.
        etag: HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\"")),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn content_type(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = name.rsplit_once('.').map_or("", |(_, ext)| ext);
    match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "json" => "application/json",
        // Licence files have no extension.
        "md" | "txt" | "" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

async fn index(headers: HeaderMap) -> Response {
    serve(&console().index, &headers, CACHE_PAGE)
}

/// A file of this build's version; anything else (another build's version, an unknown file) is 404.
async fn asset(
    Path((version, path)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let console = console();
    match console.assets.get(path.as_str()) {
        Some(file) if version == console.version => Ok(serve(file, &headers, CACHE_ASSET)),
        _ => Err(ApiError::NotFound(format!("the console has no file {version}/{path}"))),
    }
}

fn serve(file: &Asset, request: &HeaderMap, cache: &'static str) -> Response {
    let fresh = not_modified(request, &file.etag);
    let mut response =
        if fresh { StatusCode::NOT_MODIFIED.into_response() } else { file.body.clone().into_response() };
    let h = response.headers_mut();
    if !fresh {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(file.content_type));
    }
    h.insert(header::ETAG, file.etag.clone());
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(HeaderName::from_static("referrer-policy"), HeaderValue::from_static("same-origin"));
    response
}

/// `If-None-Match` holds our tag (weak comparison, as RFC 9110 asks for this header) or `*`.
fn not_modified(request: &HeaderMap, etag: &HeaderValue) -> bool {
    let ours = etag.as_bytes();
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/").as_bytes() == ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_file_has_a_known_content_type() {
        for path in console().assets.keys() {
            assert_ne!(content_type(path), "application/octet-stream", "{path}");
        }
    }

    #[test]
    fn the_page_names_the_versioned_prefix_and_no_marker_is_left() {
        let c = console();
        let page = std::str::from_utf8(&c.index.body).unwrap();
        assert!(!page.contains(BASE_MARKER));
        assert!(page.contains(&format!("/console/{}/", c.version)));
    }

    #[test]
    fn if_none_match_accepts_lists_weak_tags_and_star() {
        let etag = HeaderValue::from_static("\"abc\"");
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::IF_NONE_MATCH, HeaderValue::from_static(v));
            not_modified(&h, &etag)
        };
        assert!(with("\"abc\""));
        assert!(with("\"x\", W/\"abc\""));
        assert!(with("*"));
        assert!(!with("\"abd\""));
        assert!(!not_modified(&HeaderMap::new(), &etag));
    }
}
