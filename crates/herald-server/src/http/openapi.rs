//! The OpenAPI document as this server is configured. The file describes both auth modes; with
//! auth `none` the served copy declares no security and marks `userId` required where the user
//! can only come from it, so a client (or a schema-driven fuzzer) sees exactly what the server
//! enforces.

use crate::config::AuthMode;
use serde_json::Value;
use std::sync::OnceLock;

const SOURCE: &str = include_str!("openapi.json");

/// Routes whose user, with auth `none`, is the `userId` query parameter (method, path).
const QUERY_USER_ROUTES: [(&str, &str); 5] = [
    ("get", "/api/user/messages"),
    ("get", "/api/user/messages/unread-count"),
    ("get", "/api/user/sse/connect"),
    ("get", "/api/sse/connect"),
    ("post", "/api/user/sse/disconnect"),
];

/// Routes whose user, with auth `none`, is the body's `userId`. The query parameter is still
/// accepted for old clients, but the served document names one place so it is exact.
const BODY_USER_ROUTES: [&str; 3] =
    ["/api/user/messages/read", "/api/user/messages/read-all", "/api/user/messages/ack-visibility"];

pub fn document(auth: AuthMode) -> &'static str {
    static NONE: OnceLock<String> = OnceLock::new();
    static JWT: OnceLock<String> = OnceLock::new();
    match auth {
        AuthMode::Jwt => JWT.get_or_init(|| SOURCE.to_owned()),
        AuthMode::None => NONE.get_or_init(|| for_auth_none(SOURCE)),
    }
}

fn for_auth_none(source: &str) -> String {
    let Ok(mut doc) = serde_json::from_str::<Value>(source) else {
        // The file is checked by a test; serve it unchanged rather than nothing.
        return source.to_owned();
    };
    if let Some(root) = doc.as_object_mut() {
        root.remove("security");
    }
    if let Some(components) = doc.get_mut("components").and_then(Value::as_object_mut) {
        components.remove("securitySchemes");
    }
    for (method, route) in QUERY_USER_ROUTES {
        for param in parameters(&mut doc, method, route) {
            if param.get("name").and_then(Value::as_str) == Some("userId") {
                param["required"] = Value::Bool(true);
            }
        }
    }
    for route in BODY_USER_ROUTES {
        if let Some(params) = doc.pointer_mut(&format!("/paths/{}/post/parameters", escape(route))) {
            if let Some(list) = params.as_array_mut() {
                list.retain(|p| p.get("name").and_then(Value::as_str) != Some("userId"));
            }
        }
        if let Some(body) = doc.pointer_mut(&format!("/paths/{}/post/requestBody", escape(route))) {
            body["required"] = Value::Bool(true);
        }
    }
    for schema in ["MessageRef", "UserRef"] {
        if let Some(s) = doc.pointer_mut(&format!("/components/schemas/{schema}")) {
            let mut required: Vec<Value> =
                s.get("required").and_then(Value::as_array).cloned().unwrap_or_default();
            required.push(Value::from("userId"));
            s["required"] = Value::Array(required);
            s["properties"]["userId"]["nullable"] = Value::Bool(false);
        }
    }
    doc.to_string()
}

fn escape(route: &str) -> String {
    route.replace('/', "~1")
}

fn parameters<'a>(doc: &'a mut Value, method: &str, route: &str) -> impl Iterator<Item = &'a mut Value> {
    doc.pointer_mut(&format!("/paths/{}/{method}/parameters", escape(route)))
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_none_declares_no_security_and_requires_user_ids() {
        let doc: Value = serde_json::from_str(document(AuthMode::None)).unwrap();
        assert!(doc.get("security").is_none());
        assert!(doc["components"].get("securitySchemes").is_none());
        let params = &doc["paths"]["/api/user/messages"]["get"]["parameters"];
        let user = params.as_array().unwrap().iter().find(|p| p["name"] == "userId").unwrap();
        assert_eq!(user["required"], true);
    }

    #[test]
    fn auth_jwt_serves_the_file_with_its_security_schemes() {
        let doc: Value = serde_json::from_str(document(AuthMode::Jwt)).unwrap();
        assert!(doc["security"].is_array());
        assert!(doc["components"]["securitySchemes"]["bearerAuth"].is_object());
    }
}
