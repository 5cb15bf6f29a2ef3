//! `herald users import|export`: bulk changes to the user directory. An import lists the whole
//! directory first (pages of 1 000), compares it with the file locally, and writes only the users
//! that are new or differ, eight `PUT`s in flight, so importing the same file twice writes nothing
//! the second time. Users that are in the directory but not in the file are left alone.

use super::userfile::{self, Entry, Format, Rejected};
use super::{Api, ApiError, ClientArgs};
use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use futures::StreamExt;
use herald_domain::User;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;

/// Users per directory page (the server's maximum).
const PAGE: usize = 1000;
/// `PUT`s in flight during an import.
const IN_FLIGHT: usize = 8;
/// Fewest writes for which a progress bar is drawn (on a terminal only).
const PROGRESS_FROM: usize = 100;

#[derive(Args, Debug)]
pub struct UsersArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: UsersCommand,
}

#[derive(Subcommand, Debug)]
enum UsersCommand {
    /// Add or update users from a CSV (`userId,roles,products`, `;` between names) or
    /// JSON-lines file; users not in the file are left as they are
    Import {
        /// The file; `-` reads standard input
        file: PathBuf,
        /// Report what would change without writing anything
        #[arg(long)]
        dry_run: bool,
    },
    /// Write the directory to standard output, sorted by id
    Export {
        /// Output format [default: csv, or jsonl with --json]
        #[arg(long, value_enum)]
        format: Option<FileFormat>,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum FileFormat {
    Csv,
    Jsonl,
}

pub async fn run(args: UsersArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.client)?;
    match args.command {
        UsersCommand::Import { file, dry_run } => import(&api, &file, dry_run, args.client.json).await,
        UsersCommand::Export { format } => {
            let jsonl = matches!(format, Some(FileFormat::Jsonl)) || (format.is_none() && args.client.json);
            export(&api, if jsonl { Format::Jsonl } else { Format::Csv }).await
        }
    }
}

/// The whole directory, in id order.
async fn directory(api: &Api) -> anyhow::Result<Vec<User>> {
    let mut users: Vec<User> = Vec::new();
    loop {
        let mut path = format!("/api/admin/users?limit={PAGE}");
        if let Some(last) = users.last() {
            path.push_str(&format!("&after={}", last.user_id));
        }
        let page: Vec<userfile::JsonUser> =
            api.get(&path).await.context("listing the user directory failed")?;
        let done = page.len() < PAGE;
        for row in page {
            let user = row
                .into_user()
                .map_err(|(_, e)| anyhow::anyhow!("the server listed a user it cannot hold: {e}"))?;
            users.push(user);
        }
        if done {
            return Ok(users);
        }
    }
}

async fn export(api: &Api, format: Format) -> anyhow::Result<()> {
    let mut users = directory(api).await?;
    users.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    let text = match format {
        Format::Csv => userfile::to_csv(&users),
        Format::Jsonl => userfile::to_jsonl(&users),
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to standard output")
        }
        _ => Ok(()),
    }
}

/// What an import did (or, with `--dry-run`, would do).
#[derive(Debug, Default)]
struct Summary {
    added: Vec<String>,
    changed: Vec<String>,
    unchanged: usize,
    rejected: Vec<Rejected>,
}

async fn import(api: &Api, file: &std::path::Path, dry_run: bool, json: bool) -> anyhow::Result<()> {
    let (name, text) = read_input(file)?;
    let parsed = userfile::parse(userfile::detect(name.as_deref(), &text), &text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let existing: HashMap<String, User> =
        directory(api).await?.into_iter().map(|u| (u.user_id.to_string(), u)).collect();
    let mut summary = Summary { rejected: parsed.rejected, ..Summary::default() };
    let mut writes = Vec::new();
    for entry in parsed.entries {
        match existing.get(entry.user.user_id.as_str()) {
            Some(old) if *old == entry.user => summary.unchanged += 1,
            old => writes.push((entry, old.is_none())),
        }
    }
    let stopped = if dry_run {
        record_all(&mut summary, writes);
        None
    } else {
        write_users(api, writes, &mut summary).await
    };
    report(&summary, dry_run, json);
    if let Some(e) = stopped {
        return Err(anyhow::Error::new(e).context("the import stopped before every user was written"));
    }
    let rejected = summary.rejected.len();
    anyhow::ensure!(
        rejected == 0,
        "{rejected} {} rejected",
        if rejected == 1 { "line was" } else { "lines were" }
    );
    Ok(())
}

/// The file's name (for format detection) and text; `-` is standard input.
fn read_input(file: &std::path::Path) -> anyhow::Result<(Option<String>, String)> {
    if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("cannot read standard input")?;
        return Ok((None, text));
    }
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    Ok((file.file_name().map(|n| n.to_string_lossy().into_owned()), text))
}

fn record_all(summary: &mut Summary, writes: Vec<(Entry, bool)>) {
    for (entry, added) in writes {
        summary.record(entry.user.user_id.to_string(), added);
    }
}

impl Summary {
    fn record(&mut self, id: String, added: bool) {
        if added {
            self.added.push(id);
        } else {
            self.changed.push(id);
        }
    }
}

/// Writes the users, `IN_FLIGHT` at a time. A rejected user is reported with its line; any
/// other failure (server unreachable, 401, 5xx) stops the import and is returned.
async fn write_users(api: &Api, writes: Vec<(Entry, bool)>, summary: &mut Summary) -> Option<ApiError> {
    let bar = progress(writes.len());
    let mut results = futures::stream::iter(writes)
        .map(|(entry, added)| async move {
            let u = &entry.user;
            let body = json!({"roles": u.roles, "products": u.products});
            let result = api.put(&format!("/api/admin/users/{}", u.user_id), &body).await;
            (entry, added, result)
        })
        .buffer_unordered(IN_FLIGHT);
    let mut stopped = None;
    while let Some((entry, added, result)) = results.next().await {
        bar.inc(1);
        match result {
            Ok(_) => summary.record(entry.user.user_id.to_string(), added),
            Err(e) if e.is_rejection() => summary.rejected.push(Rejected {
                line: entry.line,
                user_id: Some(entry.user.user_id.to_string()),
                reason: e.to_string(),
            }),
            Err(e) => {
                stopped = Some(e);
                break;
            }
        }
    }
    bar.finish_and_clear();
    stopped
}

/// A progress bar on standard error when it is a terminal and the import is large.
fn progress(total: usize) -> indicatif::ProgressBar {
    if total < PROGRESS_FROM || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let style = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} users written ({eta} left)")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    indicatif::ProgressBar::new(total as u64).with_style(style)
}

fn report(summary: &Summary, dry_run: bool, json: bool) {
    let mut rejected = summary.rejected.clone();
    rejected.sort_by_key(|r| r.line);
    if json {
        let rejected: Vec<Value> = rejected
            .iter()
            .map(|r| json!({"line": r.line, "userId": r.user_id, "reason": r.reason}))
            .collect();
        let mut added = summary.added.clone();
        let mut changed = summary.changed.clone();
        added.sort();
        changed.sort();
        super::print_json(&json!({
            "dryRun": dry_run, "added": added.len(), "changed": changed.len(),
            "unchanged": summary.unchanged, "rejected": rejected, "addedIds": added, "changedIds": changed,
        }));
        return;
    }
    if dry_run {
        println!("Dry run: nothing was written. The import would make these changes:");
    }
    println!("added:     {}", summary.added.len());
    println!("changed:   {}", summary.changed.len());
    println!("unchanged: {}", summary.unchanged);
    println!("rejected:  {}", rejected.len());
    for r in &rejected {
        println!("  line {}: {}", r.line, r.reason);
    }
}
