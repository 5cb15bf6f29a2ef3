//! An incremental parser of the `text/event-stream` format (the WHATWG "event stream
//! interpretation"), fed with the body's bytes as they arrive in arbitrary chunks.
//!
//! It follows the standard rather than Herald's own framing, so that `tail` keeps working behind
//! proxies that re-frame streams: lines end in LF, CRLF or a lone CR (also when a CRLF is split
//! across two chunks), `:` lines are comments, a field name without a colon has an empty value,
//! one space after the colon is dropped, `data` lines accumulate joined by LF, an `id` containing
//! NUL is ignored, `retry` takes only ASCII digits, and a block without data dispatches nothing
//! (though its `id` still counts). A leading byte-order mark is dropped.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `id` field of this event's own block, if it had one.
    pub id: Option<String>,
    /// The `event` field, or `message` when absent.
    pub event: String,
    /// The `data` lines joined by LF.
    pub data: String,
}

/// What a chunk of bytes produced, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Event(SseEvent),
    /// A valid `retry` field: the reconnection delay in milliseconds.
    Retry(u64),
}

/// Longest line accepted; a stream with a longer one is broken, not merely slow.
const MAX_LINE: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
#[error("the event stream has a line longer than {MAX_LINE} bytes")]
pub struct LineTooLong;

#[derive(Debug, Default)]
pub struct Parser {
    line: Vec<u8>,
    /// The previous chunk ended in CR: an LF starting the next one belongs to that line end.
    after_cr: bool,
    started: bool,
    event: String,
    data: String,
    has_data: bool,
    block_id: Option<String>,
    last_event_id: String,
}

impl Parser {
    /// A parser that resumes after `last_event_id` (what a reconnect sends as `Last-Event-ID`).
    pub fn resuming(last_event_id: Option<String>) -> Self {
        Self { last_event_id: last_event_id.unwrap_or_default(), ..Self::default() }
    }

    /// The last event id buffer: the newest `id` seen, `None` when empty.
    pub fn last_event_id(&self) -> Option<&str> {
        Some(self.last_event_id.as_str()).filter(|id| !id.is_empty())
    }

    /// Parses `chunk`, returning the events and retry values it completed.
    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<Vec<Item>, LineTooLong> {
        let mut out = Vec::new();
        if self.after_cr && chunk.first() == Some(&b'\n') {
            chunk = &chunk[1..];
        }
        self.after_cr = false;
        while let Some(end) = chunk.iter().position(|b| *b == b'\n' || *b == b'\r') {
            self.line.extend_from_slice(&chunk[..end]);
            let crlf = chunk[end] == b'\r' && chunk.get(end + 1) == Some(&b'\n');
            if chunk[end] == b'\r' && end + 1 == chunk.len() {
                self.after_cr = true;
            }
            chunk = &chunk[end + if crlf { 2 } else { 1 }..];
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, &mut out);
        }
        self.line.extend_from_slice(chunk);
        if self.line.len() > MAX_LINE {
            return Err(LineTooLong);
        }
        Ok(out)
    }

    fn process_line(&mut self, raw: &[u8], out: &mut Vec<Item>) {
        let mut raw = raw;
        if !self.started {
            self.started = true;
            raw = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw);
        }
        if raw.is_empty() {
            return self.dispatch(out);
        }
        if raw[0] == b':' {
            return;
        }
        let line = String::from_utf8_lossy(raw);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        self.field(field, value, out);
    }

    fn field(&mut self, field: &str, value: &str, out: &mut Vec<Item>) {
        match field {
            "event" => value.clone_into(&mut self.event),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => {
                value.clone_into(&mut self.last_event_id);
                self.block_id = Some(value.to_owned());
            }
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(ms) = value.parse() {
                    out.push(Item::Retry(ms));
                }
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<Item>) {
        let event = std::mem::take(&mut self.event);
        let data = std::mem::take(&mut self.data);
        let id = self.block_id.take();
        if !std::mem::take(&mut self.has_data) {
            return;
        }
        let event = if event.is_empty() { "message".to_owned() } else { event };
        out.push(Item::Event(SseEvent { id, event, data }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(items: Vec<Item>) -> Vec<SseEvent> {
        items
            .into_iter()
            .filter_map(|i| match i {
                Item::Event(e) => Some(e),
                Item::Retry(_) => None,
            })
            .collect()
    }

    fn ev(id: Option<&str>, event: &str, data: &str) -> SseEvent {
        SseEvent { id: id.map(str::to_owned), event: event.to_owned(), data: data.to_owned() }
    }

    fn parse_all(text: &[u8]) -> (Vec<Item>, Parser) {
        let mut p = Parser::default();
        let items = p.feed(text).unwrap();
        (items, p)
    }

    #[test]
    fn herald_frames_parse_into_events_with_their_ids() {
        let text = b"retry: 3000\n\nevent: CONNECTED\ndata: {\"a\":1}\n\nid: 7\nevent: MESSAGE\ndata: {}\n\n";
        let (items, p) = parse_all(text);
        assert_eq!(items[0], Item::Retry(3000));
        assert_eq!(events(items), [ev(None, "CONNECTED", "{\"a\":1}"), ev(Some("7"), "MESSAGE", "{}")]);
        assert_eq!(p.last_event_id(), Some("7"));
    }

    #[test]
    fn data_lines_join_with_newlines_and_comments_are_skipped() {
        let (items, _) = parse_all(b": keep-alive\n\ndata: one\n: between\ndata:two\ndata\n\n");
        assert_eq!(events(items), [ev(None, "message", "one\ntwo\n")]);
    }

    #[test]
    fn crlf_and_lone_cr_end_lines_too() {
        let (items, _) = parse_all(b"event: A\r\ndata: x\r\n\r\nevent: B\rdata: y\r\r");
        assert_eq!(events(items), [ev(None, "A", "x"), ev(None, "B", "y")]);
    }

    #[test]
    fn any_split_of_the_bytes_gives_the_same_events() {
        let text: &[u8] = b"\xEF\xBB\xBFid: 1\r\nevent: MESSAGE\r\ndata: h\xC3\xA9\r\n\r\nid: 2\ndata: b\n\n";
        let (whole, _) = parse_all(text);
        for cut in 0..text.len() {
            let mut p = Parser::default();
            let mut items = p.feed(&text[..cut]).unwrap();
            items.extend(p.feed(&text[cut..]).unwrap());
            assert_eq!(items, whole, "split at {cut}");
            assert_eq!(p.last_event_id(), Some("2"));
        }
        assert_eq!(events(whole)[0], ev(Some("1"), "MESSAGE", "hé"));
    }

    #[test]
    fn a_crlf_split_across_chunks_is_one_line_end() {
        let mut p = Parser::default();
        assert!(p.feed(b"data: a\r").unwrap().is_empty());
        assert!(p.feed(b"\n").unwrap().is_empty(), "the LF ends the same line, not a block");
        assert_eq!(events(p.feed(b"\n").unwrap()), [ev(None, "message", "a")]);
    }

    #[test]
    fn a_block_without_data_dispatches_nothing_but_keeps_its_id() {
        let (items, p) = parse_all(b"id: 9\nevent: X\n\ndata: y\n\n");
        assert_eq!(events(items), [ev(None, "message", "y")], "the event name does not leak");
        assert_eq!(p.last_event_id(), Some("9"));
    }

    #[test]
    fn bad_retry_and_nul_ids_are_ignored_and_an_empty_id_resets() {
        let (items, p) = parse_all(b"retry: 1.5\nretry: x\nid: a\0b\ndata: d\n\n");
        assert_eq!(items, [Item::Event(ev(None, "message", "d"))]);
        assert_eq!(p.last_event_id(), None);
        let mut p = Parser::resuming(Some("5".into()));
        assert_eq!(p.last_event_id(), Some("5"));
        p.feed(b"id\ndata: d\n\n").unwrap();
        assert_eq!(p.last_event_id(), None, "an empty id clears the buffer");
    }

    #[test]
    fn an_unfinished_block_at_the_end_is_not_dispatched() {
        let (items, _) = parse_all(b"data: complete\n\ndata: cut off");
        assert_eq!(events(items), [ev(None, "message", "complete")]);
    }

    #[test]
    fn one_space_after_the_colon_is_dropped_not_more() {
        let (items, _) = parse_all(b"data:  two spaces\n\n");
        assert_eq!(events(items), [ev(None, "message", " two spaces")]);
    }
}
