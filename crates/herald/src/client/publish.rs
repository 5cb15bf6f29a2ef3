//! `herald publish`: create a broadcast from the command line. Owns the audience flags, the
//! `--at` / `--expires` times (RFC 3339, or a duration counted from now or from the send time),
//! and the one-line answer (id, status, audience size).

use super::{print_json, print_warnings, text, Api, ClientArgs};
use anyhow::Context;
use clap::{ArgGroup, Args, ValueEnum};
use herald_domain::Timestamp;
use serde_json::{json, Map, Value};
use std::io::Read;

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("audience").required(true).args(["all", "role", "product", "user"])))]
pub struct PublishArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Send to every user (also users added later)
    #[arg(long)]
    all: bool,
    /// Send to users holding any of these roles (repeatable, comma-separated)
    #[arg(long, value_name = "ROLE", value_delimiter = ',')]
    role: Vec<String>,
    /// Send to users holding any of these products (repeatable, comma-separated)
    #[arg(long, value_name = "PRODUCT", value_delimiter = ',')]
    product: Vec<String>,
    /// Send to these users (repeatable, comma-separated)
    #[arg(long, value_name = "USER", value_delimiter = ',')]
    user: Vec<String>,
    /// Priority [default: normal]
    #[arg(long, value_enum, ignore_case = true)]
    priority: Option<PriorityArg>,
    /// Category [default: GENERAL]; `Force Logoff` also closes the recipients' streams
    #[arg(long)]
    category: Option<String>,
    /// Send later: an RFC 3339 time (2026-12-01T09:00:00Z) or a delay from now (10m, 1h 30m)
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// Expire at an RFC 3339 time, or this long after it is sent (2h, 7days)
    #[arg(long, value_name = "TIME|DURATION")]
    expires: Option<String>,
    /// Deliver only to streams open right now; never stored for later
    #[arg(long)]
    fire_and_forget: bool,
    /// Sender id [default: the token's subject, or `cli` without a token]
    #[arg(long, value_name = "ID")]
    sender: Option<String>,
    /// Sender name shown to users [default: the sender id]
    #[arg(long, value_name = "NAME")]
    sender_name: Option<String>,
    /// The message text; `-` reads it from standard input
    #[arg(value_name = "CONTENT")]
    content: String,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum PriorityArg {
    Low,
    Normal,
    High,
    Urgent,
}

impl PriorityArg {
    fn as_str(self) -> &'static str {
        match self {
            Self::Low => "LOW",
            Self::Normal => "NORMAL",
            Self::High => "HIGH",
            Self::Urgent => "URGENT",
        }
    }
}

pub async fn run(args: PublishArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.client)?;
    let body = request_body(&args, api.has_token(), Timestamp::now())?;
    let created = api.post("/api/admin/broadcasts", &body).await?;
    print_warnings(&created);
    if args.client.json {
        print_json(&created);
    } else {
        println!("{}", summary(&created));
    }
    Ok(())
}

/// The create request. Without `--sender` and without a token the sender is `cli`; with a token
/// the server takes the token's subject.
fn request_body(args: &PublishArgs, has_token: bool, now: Timestamp) -> anyhow::Result<Value> {
    let (target_type, target_ids) = audience(args)?;
    let mut body = Map::new();
    body.insert("content".into(), json!(content(&args.content)?));
    body.insert("targetType".into(), json!(target_type));
    body.insert("targetIds".into(), json!(target_ids));
    let sender = args.sender.as_deref().or((!has_token).then_some("cli"));
    if let Some(sender) = sender {
        body.insert("senderId".into(), json!(sender));
    }
    let scheduled = args.at.as_deref().map(|t| when("--at", t, now)).transpose()?;
    let expires =
        args.expires.as_deref().map(|t| when("--expires", t, scheduled.unwrap_or(now))).transpose()?;
    let optional = [
        ("senderName", args.sender_name.clone()),
        ("priority", args.priority.map(|p| p.as_str().to_owned())),
        ("category", args.category.clone()),
        ("scheduledAt", scheduled.map(Timestamp::to_rfc3339)),
        ("expiresAt", expires.map(Timestamp::to_rfc3339)),
    ];
    for (key, value) in optional {
        if let Some(v) = value {
            body.insert(key.into(), json!(v));
        }
    }
    if args.fire_and_forget {
        body.insert("fireAndForget".into(), json!(true));
    }
    Ok(Value::Object(body))
}

/// The target type and ids of the one audience flag given (clap enforces exactly one).
fn audience(args: &PublishArgs) -> anyhow::Result<(&'static str, Vec<String>)> {
    let (kind, flag, names) = if args.all {
        return Ok(("ALL", Vec::new()));
    } else if !args.role.is_empty() {
        ("ROLE", "--role", &args.role)
    } else if !args.product.is_empty() {
        ("PRODUCT", "--product", &args.product)
    } else {
        ("SELECTED", "--user", &args.user)
    };
    let names: Vec<String> =
        names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()).map(str::to_owned).collect();
    anyhow::ensure!(!names.is_empty(), "{flag} needs at least one name");
    Ok((kind, names))
}

/// The content argument, or standard input for `-` (without its trailing line break).
fn content(arg: &str) -> anyhow::Result<String> {
    if arg != "-" {
        return Ok(arg.to_owned());
    }
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).context("cannot read the content from standard input")?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

/// An RFC 3339 time, or `base` plus a duration such as `10m` or `1h 30m`.
fn when(flag: &str, text: &str, base: Timestamp) -> anyhow::Result<Timestamp> {
    let text = text.trim();
    if let Ok(t) = Timestamp::parse(text) {
        return Ok(t);
    }
    match humantime::parse_duration(text) {
        Ok(d) => Ok(base.plus_millis(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))),
        Err(_) => anyhow::bail!(
            "{flag}: '{text}' is neither an RFC 3339 time (2026-12-01T09:00:00Z) nor a duration (10m, 1h 30m)"
        ),
    }
}

/// `Broadcast 12 created: SCHEDULED for 2026-12-01 10:00:00, 3 users targeted`
fn summary(b: &Value) -> String {
    let status = text::cell(&b["status"]);
    let when = match b["scheduledAt"].as_str() {
        Some(_) if status == "SCHEDULED" => format!(" for {}", text::local_time(&b["scheduledAt"])),
        _ => String::new(),
    };
    let n = b["totalTargeted"].as_i64().unwrap_or(0);
    let users = if n == 1 { "user" } else { "users" };
    format!("Broadcast {} created: {status}{when}, {n} {users} targeted", text::cell(&b["id"]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        publish: PublishArgs,
    }

    fn body(args: &[&str], token: bool) -> Value {
        let cli = Cli::try_parse_from(std::iter::once("publish").chain(args.iter().copied())).unwrap();
        request_body(&cli.publish, token, Timestamp::from_millis(1_000_000)).unwrap()
    }

    #[test]
    fn audience_flags_repeat_and_split_on_commas() {
        let b = body(&["--role", "ADMIN,USER", "--role", "OPS", "hi"], false);
        assert_eq!(b["targetType"], "ROLE");
        assert_eq!(b["targetIds"], json!(["ADMIN", "USER", "OPS"]));
        assert_eq!(body(&["--all", "hi"], false)["targetIds"], json!([]));
        assert_eq!(body(&["--user", "u1", "hi"], false)["targetType"], "SELECTED");
    }

    #[test]
    fn exactly_one_audience_group_is_accepted() {
        assert!(Cli::try_parse_from(["publish", "hi"]).is_err());
        assert!(Cli::try_parse_from(["publish", "--all", "--role", "A", "hi"]).is_err());
    }

    #[test]
    fn the_sender_is_cli_without_a_token_and_the_tokens_subject_with_one() {
        assert_eq!(body(&["--all", "hi"], false)["senderId"], "cli");
        assert!(body(&["--all", "hi"], true).get("senderId").is_none());
        assert_eq!(body(&["--all", "--sender", "ops", "hi"], true)["senderId"], "ops");
    }

    #[test]
    fn relative_times_count_from_now_and_expiry_from_the_send_time() {
        let b = body(&["--all", "--at", "10m", "--expires", "1h", "--priority", "high", "hi"], false);
        assert_eq!(b["scheduledAt"], Timestamp::from_millis(1_000_000 + 600_000).to_rfc3339());
        assert_eq!(b["expiresAt"], Timestamp::from_millis(1_000_000 + 4_200_000).to_rfc3339());
        assert_eq!(b["priority"], "HIGH");
        let b = body(&["--all", "--at", "2030-01-01T10:00:00+01:00", "hi"], false);
        assert_eq!(b["scheduledAt"], "2030-01-01T09:00:00.000Z");
    }

    #[test]
    fn a_time_that_is_neither_form_names_the_flag() {
        let err = when("--at", "tomorrow-ish", Timestamp::from_millis(0)).unwrap_err().to_string();
        assert!(err.contains("--at") && err.contains("RFC 3339"), "{err}");
    }

    #[test]
    fn the_summary_says_id_status_and_audience() {
        let b = json!({"id": 4, "status": "ACTIVE", "scheduledAt": null, "totalTargeted": 1});
        assert_eq!(summary(&b), "Broadcast 4 created: ACTIVE, 1 user targeted");
    }
}
