//! The embedded web console as a browser fetches it: the page with its security headers, assets
//! with their content types and ETags, revalidation, and JSON 404s for unknown files. The
//! console does not touch the database, so these run on SQLite only.

use herald_testkit::{spawn_app, Backend};
use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use reqwest::StatusCode;

/// The `/console/{version}/` prefix the page names.
fn asset_base(page: &str) -> String {
    let start = page.find("/console/").expect("the page links its assets");
    let rest = &page[start + "/console/".len()..];
    let version = &rest[..rest.find('/').expect("a versioned prefix")];
    format!("/console/{version}/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_html_with_a_strict_csp_and_no_cache() {
    let app = spawn_app(Backend::Sqlite).await;
    let r = app.get("/").await;
    assert_eq!(r.status(), StatusCode::OK);
    let h = r.headers().clone();
    assert_eq!(h[CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(h[CACHE_CONTROL], "no-cache");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let csp = h[CONTENT_SECURITY_POLICY].to_str().unwrap();
    for directive in ["default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"]
    {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
    let page = r.text().await.unwrap();
    assert!(page.contains("<script type=\"module\""));
    assert!(!page.contains("{{BASE}}"), "the asset prefix is filled in");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_have_their_content_type_an_etag_and_revalidate_with_304() {
    let app = spawn_app(Backend::Sqlite).await;
    let base = asset_base(&app.get("/").await.text().await.unwrap());
    for (file, kind) in [
        ("app/main.js", "text/javascript; charset=utf-8"),
        ("vendor/preact.mjs", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let r = app.get(&format!("{base}{file}")).await;
        assert_eq!(r.status(), StatusCode::OK, "{file}");
        assert_eq!(r.headers()[CONTENT_TYPE], kind, "{file}");
        assert!(r.headers()[CACHE_CONTROL].to_str().unwrap().contains("max-age="), "{file}");
        let etag = r.headers()[ETAG].to_str().unwrap().to_owned();
        assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() > 10, "strong ETag: {etag}");
        let again = app
            .client
            .get(app.url(&format!("{base}{file}")))
            .header(IF_NONE_MATCH, &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{file}");
        assert_eq!(again.headers()[ETAG].to_str().unwrap(), etag);
        assert!(again.bytes().await.unwrap().is_empty());
        let other = app
            .client
            .get(app.url(&format!("{base}{file}")))
            .header(IF_NONE_MATCH, "\"other\"")
            .send()
            .await
            .unwrap();
        assert_eq!(other.status(), StatusCode::OK, "{file}");
    }
    // The page revalidates too.
    let etag = app.get("/").await.headers()[ETAG].to_str().unwrap().to_owned();
    let page = app.client.get(app.url("/")).header(IF_NONE_MATCH, etag).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::NOT_MODIFIED);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_console_files_get_the_api_json_404_and_api_routes_are_not_shadowed() {
    let app = spawn_app(Backend::Sqlite).await;
    let base = asset_base(&app.get("/").await.text().await.unwrap());
    for path in
        [format!("{base}no-such-file.js"), "/console/0000/app/main.js".to_owned(), format!("{base}app")]
    {
        let r = app.get(&path).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["status"], 404);
        assert_eq!(body["path"], path.as_str());
    }
    assert_eq!(app.get_json("/health/live").await["status"], "UP");
    assert!(app.get_json("/api/admin/users").await.is_array());
    assert!(app.get("/metrics").await.status().is_success());
    app.stop().await;
}
