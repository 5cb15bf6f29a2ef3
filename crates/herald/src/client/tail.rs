//! `herald tail`: follow one user's stream in a terminal. Owns the reconnect policy: after a drop
//! it reconnects with `Last-Event-ID` after the server's `retry:` delay, backing off (doubling, up
//! to 30 s) while attempts keep failing; it stops with a non-zero status on
//! `CONNECTION_LIMIT_REACHED`, `TOKEN_EXPIRED` or a refused request (400, 401, 403, 404), and with
//! status 0 on Ctrl-C or SIGTERM. Messages are deduplicated by `broadcastId`, as SPEC section 2
//! asks of clients, since delivery across reconnects is at least once.

use super::sse::{Item, Parser, SseEvent};
use super::{check, text, Api, ApiError, ClientArgs};
use anyhow::Context;
use clap::Args;
use futures::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use std::collections::{HashSet, VecDeque};
use std::io::Write;
use std::time::Duration;

/// The reconnect delay until the server sends its `retry:` (Herald's default).
const DEFAULT_RETRY: Duration = Duration::from_secs(3);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A stream silent this long is taken for dead: Herald sends a comment every 15 s.
const IDLE: Duration = Duration::from_secs(60);
/// Broadcast ids remembered for deduplication.
const SEEN: usize = 10_000;

#[derive(Args, Debug)]
pub struct TailArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The user whose stream to follow [default with a token: the token's subject]
    #[arg(long)]
    user: Option<String>,
    /// Resume after this event id: first replay the events missed since
    #[arg(long, value_name = "N")]
    last_event_id: Option<String>,
}

pub async fn run(args: TailArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.client)?;
    anyhow::ensure!(args.user.is_some() || api.has_token(), "tail needs --user (or a --token for that user)");
    let mut tail = Tail {
        api,
        user: args.user,
        json: args.client.json,
        last_event_id: args.last_event_id.filter(|id| !id.is_empty()),
        retry: DEFAULT_RETRY,
        failures: 0,
        retry_after: None,
        seen: Seen::default(),
    };
    tokio::select! {
        result = tail.follow() => result,
        () = shutdown_signal() => Ok(()),
    }
}

/// What to do once a stream's event has been handled.
enum Flow {
    Continue,
    /// The stream is over; reconnect (the text says why).
    Reconnect(String),
    /// Standard output was closed (`herald tail | head`): stop quietly.
    Quit,
}

struct Tail {
    api: Api,
    user: Option<String>,
    json: bool,
    last_event_id: Option<String>,
    retry: Duration,
    /// Attempts in a row that produced no event.
    failures: u32,
    /// A 429's or 503's `Retry-After`, for the next delay.
    retry_after: Option<Duration>,
    seen: Seen,
}

impl Tail {
    /// Connects, reads, reconnects, until a fatal event or error (`Err`) or closed output (`Ok`).
    async fn follow(&mut self) -> anyhow::Result<()> {
        loop {
            let why = match self.api.send(self.request()).await {
                Ok(resp) => match self.stream(resp).await? {
                    Flow::Quit => return Ok(()),
                    Flow::Reconnect(why) => why,
                    Flow::Continue => "the stream ended".to_owned(),
                },
                Err(e) => e.to_string(),
            };
            let delay = self.next_delay();
            eprintln!("{why}; reconnecting in {}", humantime::format_duration(delay));
            tokio::time::sleep(delay).await;
        }
    }

    fn request(&self) -> reqwest::RequestBuilder {
        let mut rb =
            self.api.request(Method::GET, "/api/user/sse/connect").header(ACCEPT, "text/event-stream");
        if let Some(user) = &self.user {
            rb = rb.query(&[("userId", user)]);
        }
        match &self.last_event_id {
            Some(id) => rb.header("Last-Event-ID", id),
            None => rb,
        }
    }

    /// The server's delay after a stream that delivered events; doubling while attempts fail.
    fn next_delay(&mut self) -> Duration {
        let delay = backoff(self.retry, self.failures).max(self.retry_after.take().unwrap_or_default());
        self.failures = self.failures.saturating_add(1);
        delay
    }

    /// Reads the stream of a 200 to its end; handles an error status.
    async fn stream(&mut self, resp: Response) -> anyhow::Result<Flow> {
        let status = resp.status();
        if status.is_success() {
            return self.read(resp).await;
        }
        self.retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.trim().parse().ok())
            .map(Duration::from_secs);
        let err = match check(resp).await {
            Err(e) => e,
            Ok(_) => ApiError::Status { status, message: String::new() },
        };
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Ok(Flow::Reconnect(err.to_string()));
        }
        let what = match status.as_u16() {
            401 => "the server refused the token",
            403 => "the server refused access to this stream",
            _ => "the server refused the stream",
        };
        Err(anyhow::Error::new(err).context(what))
    }

    async fn read(&mut self, resp: Response) -> anyhow::Result<Flow> {
        let kind = resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        anyhow::ensure!(
            kind.starts_with("text/event-stream"),
            "{} did not answer with an event stream (Content-Type '{kind}')",
            self.api.base()
        );
        let mut parser = Parser::resuming(self.last_event_id.clone());
        let mut body = resp.bytes_stream();
        loop {
            let chunk = match tokio::time::timeout(IDLE, body.next()).await {
                Err(_) => return Ok(Flow::Reconnect(format!("no data for {} s", IDLE.as_secs()))),
                Ok(None) => return Ok(Flow::Reconnect("the stream ended".to_owned())),
                Ok(Some(Err(e))) => return Ok(Flow::Reconnect(format!("the stream broke ({e})"))),
                Ok(Some(Ok(chunk))) => chunk,
            };
            let items = parser.feed(&chunk)?;
            for item in items {
                let flow = match item {
                    Item::Retry(ms) => {
                        self.retry = Duration::from_millis(ms);
                        Flow::Continue
                    }
                    Item::Event(event) => self.event(event)?,
                };
                if !matches!(flow, Flow::Continue) {
                    return Ok(flow);
                }
            }
            self.last_event_id = parser.last_event_id().map(str::to_owned);
        }
    }

    /// Prints one event; `Err` for the events after which reconnecting cannot help.
    fn event(&mut self, event: SseEvent) -> anyhow::Result<Flow> {
        if let Some(id) = &event.id {
            self.last_event_id = Some(id.clone()).filter(|id| !id.is_empty());
        }
        let data: Value =
            serde_json::from_str(&event.data).unwrap_or_else(|_| Value::String(event.data.clone()));
        match event.event.as_str() {
            "CONNECTED" => self.failures = 0,
            "MESSAGE" => {
                if let Some(id) = data["broadcastId"].as_i64() {
                    if !self.seen.insert(id) {
                        return Ok(Flow::Continue);
                    }
                }
            }
            _ => {}
        }
        if !self.print(&event, &data) {
            return Ok(Flow::Quit);
        }
        let message = text::cell(&data["message"]);
        match event.event.as_str() {
            "SERVER_SHUTDOWN" => Ok(Flow::Reconnect(format!("the server is shutting down ({message})"))),
            "CONNECTION_LIMIT_REACHED" => {
                anyhow::bail!(
                    "connection limit reached: {message}; close another stream of this user and retry"
                )
            }
            "TOKEN_EXPIRED" => anyhow::bail!("the token expired ({message}); run again with a fresh --token"),
            _ => Ok(Flow::Continue),
        }
    }

    /// Writes the event to standard output; `false` once that is closed.
    fn print(&self, event: &SseEvent, data: &Value) -> bool {
        let line = if self.json {
            json!({"id": event.id, "event": event.event, "data": data}).to_string()
        } else {
            human(&text::now_local(), &event.event, data)
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
    }
}

/// `retry` while attempts succeed; then doubling per failed attempt, at most `MAX_BACKOFF`
/// (unless the server asks for longer).
fn backoff(retry: Duration, failures: u32) -> Duration {
    let doubled = retry.saturating_mul(1 << failures.min(10));
    doubled.min(MAX_BACKOFF.max(retry))
}

/// One event as a line of text: local time, event type, then what matters for that type.
fn human(time: &str, event: &str, d: &Value) -> String {
    let detail = match event {
        "MESSAGE" => {
            let content = d["content"].as_str().unwrap_or("").replace('\n', "\n    ");
            let priority = text::cell(&d["priority"]);
            let category = text::cell(&d["category"]);
            format!(
                "#{} {priority} [{category}] {}: {content}",
                text::cell(&d["broadcastId"]),
                text::cell(&d["senderName"])
            )
        }
        "MESSAGE_REMOVED" => format!("#{} {}", text::cell(&d["broadcastId"]), text::cell(&d["reason"])),
        "READ_RECEIPT" => {
            format!("#{} read at {}", text::cell(&d["broadcastId"]), text::local_time(&d["readAt"]))
        }
        "CONNECTED" => {
            let from = match d["lastEventId"].as_str() {
                Some(id) => format!("resuming after event {id}"),
                None => "fresh connect".to_owned(),
            };
            format!("{} ({from}, head {})", text::cell(&d["userId"]), text::cell(&d["headEventId"]))
        }
        "HEARTBEAT" => String::new(),
        "RESYNC" => format!(
            "{}: the resume point is unknown; pending messages were sent again",
            text::cell(&d["reason"])
        ),
        _ => match d.get("message") {
            Some(m) => text::cell(m),
            None => text::cell(d),
        },
    };
    format!("{time}  {event:<15} {detail}").trim_end().to_owned()
}

/// The broadcast ids already printed, the oldest forgotten beyond `SEEN`.
#[derive(Default)]
struct Seen {
    ids: HashSet<i64>,
    order: VecDeque<i64>,
}

impl Seen {
    /// `false` if `id` was seen before.
    fn insert(&mut self, id: i64) -> bool {
        if !self.ids.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > SEEN {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        true
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = async {
        match signal(SignalKind::terminate()).context("cannot watch SIGTERM") {
            Ok(mut s) => _ = s.recv().await,
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_shows_priority_category_sender_and_content() {
        let d = json!({"broadcastId": 7, "priority": "HIGH", "category": "GENERAL", "senderName": "Ops",
            "content": "Deploy\nat six"});
        assert_eq!(
            human("12:00", "MESSAGE", &d),
            "12:00  MESSAGE         #7 HIGH [GENERAL] Ops: Deploy\n    at six"
        );
    }

    #[test]
    fn other_events_show_what_matters_for_them() {
        let removed = human("t", "MESSAGE_REMOVED", &json!({"broadcastId": 7, "reason": "CANCELLED"}));
        assert_eq!(removed, "t  MESSAGE_REMOVED #7 CANCELLED");
        let connected =
            human("t", "CONNECTED", &json!({"userId": "u1", "lastEventId": "4", "headEventId": "9"}));
        assert!(connected.ends_with("u1 (resuming after event 4, head 9)"), "{connected}");
        assert_eq!(human("t", "HEARTBEAT", &json!({"timestamp": "x"})), "t  HEARTBEAT");
        let limit = human("t", "CONNECTION_LIMIT_REACHED", &json!({"message": "too many", "limit": 4}));
        assert!(limit.ends_with("too many"), "{limit}");
    }

    #[test]
    fn reconnects_back_off_while_failing_and_honour_a_long_retry() {
        let s = Duration::from_secs;
        assert_eq!(backoff(s(3), 0), s(3));
        assert_eq!(backoff(s(3), 1), s(6));
        assert_eq!(backoff(s(3), 4), s(30));
        assert_eq!(backoff(s(3), 40), s(30));
        assert_eq!(backoff(s(45), 3), s(45));
    }

    #[test]
    fn messages_are_printed_once_per_broadcast() {
        let mut seen = Seen::default();
        assert!(seen.insert(1));
        assert!(!seen.insert(1));
        for id in 2..=(SEEN as i64 + 1) {
            assert!(seen.insert(id));
        }
        assert!(seen.insert(1), "the oldest id is forgotten beyond the bound");
    }
}
