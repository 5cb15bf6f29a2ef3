//! SSE wire framing. Each frame is built once and shared (`Bytes` is reference-counted) by every
//! stream it is queued on.

use bytes::Bytes;
use herald_domain::{Event, Timestamp};

/// An event frame: optional `id:`, `event:` and a one-line `data:`.
pub fn event_frame(id: Option<i64>, name: &str, data: &str) -> Bytes {
    let mut out = String::with_capacity(data.len() + name.len() + 40);
    if let Some(id) = id {
        out.push_str("id: ");
        out.push_str(&id.to_string());
        out.push('\n');
    }
    out.push_str("event: ");
    out.push_str(name);
    out.push_str("\ndata: ");
    out.push_str(data);
    out.push_str("\n\n");
    Bytes::from(out)
}

/// The frame for a logged event, or `None` for internal events.
pub fn logged_frame(event: &Event) -> Option<Bytes> {
    let name = event.body.sse_name()?;
    let data = event.body.client_data()?;
    Some(event_frame(Some(event.seq), name, &data))
}

pub fn retry_frame(millis: u128) -> Bytes {
    Bytes::from(format!("retry: {millis}\n\n"))
}

/// A comment line: keeps proxies from timing out an idle stream.
pub fn comment_frame() -> Bytes {
    Bytes::from_static(b": keep-alive\n\n")
}

pub fn heartbeat_frame(now: Timestamp) -> Bytes {
    event_frame(None, "HEARTBEAT", &serde_json::json!({ "timestamp": now }).to_string())
}

pub fn json_frame(id: Option<i64>, name: &str, data: &serde_json::Value) -> Bytes {
    event_frame(id, name, &data.to_string())
}

/// Appends an event frame whose `data` is `data` serialized straight into `out` (no copy of the
/// JSON in between: catch-up builds many frames at once).
pub fn append_json_frame<T: serde::Serialize>(
    out: &mut bytes::BytesMut,
    id: Option<i64>,
    name: &str,
    data: &T,
) -> serde_json::Result<()> {
    use bytes::BufMut;
    if let Some(id) = id {
        out.put_slice(b"id: ");
        out.put_slice(id.to_string().as_bytes());
        out.put_u8(b'\n');
    }
    out.put_slice(b"event: ");
    out.put_slice(name.as_bytes());
    out.put_slice(b"\ndata: ");
    serde_json::to_writer(out.writer(), data)?;
    out.put_slice(b"\n\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_follow_the_event_stream_format() {
        let f = event_frame(Some(7), "MESSAGE", r#"{"a":1}"#);
        assert_eq!(&f[..], b"id: 7\nevent: MESSAGE\ndata: {\"a\":1}\n\n");
        let f = event_frame(None, "HEARTBEAT", "{}");
        assert_eq!(&f[..], b"event: HEARTBEAT\ndata: {}\n\n");
        assert_eq!(&retry_frame(3000)[..], b"retry: 3000\n\n");
    }

    #[test]
    fn an_appended_frame_equals_a_built_one() {
        let data = serde_json::json!({ "content": "a\nb", "n": 1 });
        let mut out = bytes::BytesMut::new();
        append_json_frame(&mut out, Some(3), "MESSAGE", &data).unwrap();
        assert_eq!(&out[..], &json_frame(Some(3), "MESSAGE", &data)[..]);
    }

    #[test]
    fn json_data_never_spans_lines() {
        let f = json_frame(None, "X", &serde_json::json!({ "content": "line1\nline2\r\n" }));
        let text = std::str::from_utf8(&f).unwrap();
        assert_eq!(text.matches('\n').count(), 3, "{text}");
    }
}
