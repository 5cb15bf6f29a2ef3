//! `herald broadcasts list|show|cancel|stats`: the admin operations a script needs, as tables
//! and `key: value` lines for people, or the server's JSON with `--json`.

use super::{print_json, text, Api, ClientArgs};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Value};

#[derive(Args, Debug)]
pub struct BroadcastsArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: BroadcastsCommand,
}

#[derive(Subcommand, Debug)]
enum BroadcastsCommand {
    /// List broadcasts, newest first (scheduled ones: soonest first)
    List {
        /// Which broadcasts
        #[arg(long, value_enum, default_value = "all")]
        filter: Filter,
        /// How many at most (the server allows 1..=500) [default: the server's, 100]
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Show one broadcast with its counts
    Show {
        #[arg(value_parser = clap::value_parser!(u64).range(1..))]
        id: u64,
    },
    /// Cancel a scheduled or active broadcast (its recipients' clients remove it)
    Cancel {
        #[arg(value_parser = clap::value_parser!(u64).range(1..))]
        id: u64,
    },
    /// Delivery and read counts of one broadcast
    Stats {
        #[arg(value_parser = clap::value_parser!(u64).range(1..))]
        id: u64,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Filter {
    All,
    Active,
    Scheduled,
    Expired,
    Cancelled,
}

impl Filter {
    fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Active => "active",
            Self::Scheduled => "scheduled",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
        }
    }
}

pub async fn run(args: BroadcastsArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.client)?;
    let json = args.client.json;
    match args.command {
        BroadcastsCommand::List { filter, limit } => {
            let mut path = format!("/api/admin/broadcasts?filter={}", filter.as_str());
            if let Some(n) = limit {
                path.push_str(&format!("&limit={n}"));
            }
            let list: Value = api.get(&path).await?;
            output(json, &list, || list_table(list.as_array().map_or(&[], Vec::as_slice)));
        }
        BroadcastsCommand::Show { id } => {
            let b: Value = api.get(&format!("/api/admin/broadcasts/{id}")).await?;
            output(json, &b, || details(&b));
        }
        BroadcastsCommand::Stats { id } => {
            let s: Value = api.get(&format!("/api/admin/broadcasts/{id}/stats")).await?;
            output(json, &s, || stats(&s));
        }
        BroadcastsCommand::Cancel { id } => {
            api.delete(&format!("/api/admin/broadcasts/{id}")).await?;
            let done = json!({"id": id, "status": "CANCELLED"});
            output(json, &done, || format!("Broadcast {id} cancelled.\n"));
        }
    }
    Ok(())
}

fn output(json: bool, value: &Value, human: impl FnOnce() -> String) {
    if json {
        print_json(value);
    } else {
        print!("{}", human());
    }
}

fn list_table(list: &[Value]) -> String {
    if list.is_empty() {
        return "No broadcasts.\n".to_owned();
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|b| {
            vec![
                text::cell(&b["id"]),
                text::cell(&b["status"]),
                text::cell(&b["priority"]),
                audience(b),
                text::cell(&b["totalTargeted"]),
                text::cell(&b["totalDelivered"]),
                text::cell(&b["totalRead"]),
                text::local_time(&b["createdAt"]),
                text::preview(b["content"].as_str().unwrap_or(""), 40),
            ]
        })
        .collect();
    let header =
        ["ID", "STATUS", "PRIORITY", "AUDIENCE", "TARGETED", "DELIVERED", "READ", "CREATED", "CONTENT"];
    text::table(&header, &rows)
}

/// `ALL`, or the target type with its ids: `ROLE ADMIN,OPS`.
fn audience(b: &Value) -> String {
    let kind = text::cell(&b["targetType"]);
    let ids: Vec<String> =
        b["targetIds"].as_array().map(|a| a.iter().map(text::cell).collect()).unwrap_or_default();
    if ids.is_empty() {
        kind
    } else {
        format!("{kind} {}", text::preview(&ids.join(","), 30))
    }
}

fn details(b: &Value) -> String {
    let sender = format!("{} ({})", text::cell(&b["senderName"]), text::cell(&b["senderId"]));
    let counts = ["totalTargeted", "totalDelivered", "totalRendered", "totalRead"].map(|k| text::cell(&b[k]));
    let lines = [
        ("id", text::cell(&b["id"])),
        ("status", text::cell(&b["status"])),
        ("priority", text::cell(&b["priority"])),
        ("category", text::cell(&b["category"])),
        ("audience", audience(b)),
        ("sender", sender),
        ("created", text::local_time(&b["createdAt"])),
        ("scheduled", text::local_time(&b["scheduledAt"])),
        ("expires", text::local_time(&b["expiresAt"])),
        ("fire-and-forget", if b["fireAndForget"] == true { "yes" } else { "no" }.to_owned()),
        ("targeted/delivered/rendered/read", counts.join(" / ")),
        ("correlation id", text::cell(&b["correlationId"])),
    ];
    let mut out = key_values(&lines);
    out.push_str("content:\n");
    for line in b["content"].as_str().unwrap_or("").lines() {
        out.push_str(&format!("  {line}\n"));
    }
    out
}

fn stats(s: &Value) -> String {
    let lines = [
        ("broadcast", text::cell(&s["broadcastId"])),
        ("targeted", text::cell(&s["totalTargeted"])),
        ("delivered", text::cell(&s["totalDelivered"])),
        ("rendered", text::cell(&s["totalRendered"])),
        ("read", text::cell(&s["totalRead"])),
        ("delivery rate", text::percent(&s["deliveryRate"])),
        ("read rate", format!("{} of delivered", text::percent(&s["readRate"]))),
        ("read of targeted", text::percent(&s["readRateOfTargeted"])),
    ];
    key_values(&lines)
}

/// `key:` padded to the longest key, then the value.
fn key_values(lines: &[(&str, String)]) -> String {
    let width = lines.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    lines.iter().map(|(k, v)| format!("{:<width$} {v}\n", format!("{k}:"))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_shows_one_row_per_broadcast_with_its_audience() {
        let b = json!({"id": 3, "status": "ACTIVE", "priority": "HIGH", "targetType": "ROLE",
            "targetIds": ["ADMIN", "OPS"], "totalTargeted": 2, "totalDelivered": 1, "totalRead": 0,
            "createdAt": "bad", "content": "hello\nworld"});
        let t = list_table(&[b]);
        let row = t.lines().nth(1).unwrap();
        assert!(
            row.starts_with("3 ") && row.contains("ROLE ADMIN,OPS") && row.ends_with("hello⏎world"),
            "{t}"
        );
        assert_eq!(list_table(&[]), "No broadcasts.\n");
    }

    #[test]
    fn stats_show_counts_and_rates_as_percentages() {
        let s = json!({"broadcastId": 3, "totalTargeted": 2, "totalDelivered": 1, "totalRendered": 0,
            "totalRead": 1, "deliveryRate": 0.5, "readRate": 1.0, "readRateOfTargeted": 0.5});
        let t = stats(&s);
        assert!(t.contains("delivered:        1\n") && t.contains("delivery rate:    50.0%"), "{t}");
        assert!(t.contains("read rate:        100.0% of delivered\n"), "{t}");
        assert!(t.contains("read of targeted: 50.0%\n"), "{t}");
    }
}
