//! The command-line client against a real `herald serve`: `publish`, `broadcasts`, `users` and
//! `tail` run as the built binary, and each test checks what a user of the terminal would see.

use crate::support::{serve, Server};
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Output, Stdio};

pub(crate) const SECRET: &str = "cli-test-secret-0123456789abcdefghij";

pub(crate) fn sqlite(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("herald.db").display())
}

/// A server with a short reconnect delay, so `tail` tests do not wait 3 s per reconnect.
pub(crate) fn server(dir: &tempfile::TempDir, extra: &[&str]) -> Server {
    let mut args = vec!["--sse-retry", "200ms"];
    args.extend_from_slice(extra);
    serve(&sqlite(dir), &args)
}

pub(crate) fn cli(base: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.args(args)
        .args(["--url", base])
        .env_remove("HERALD_URL")
        .env_remove("HERALD_TOKEN")
        .env_remove("HERALD_CONFIG");
    cmd
}

pub(crate) fn herald(base: &str, args: &[&str]) -> Output {
    cli(base, args).output().expect("herald runs")
}

pub(crate) fn herald_stdin(base: &str, args: &[&str], input: &str) -> Output {
    let mut child = cli(base, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("herald runs");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// Standard output of a run that must succeed.
pub(crate) fn ok(out: Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {}; stderr: {stderr}", out.status);
    String::from_utf8(out.stdout).unwrap()
}

/// Standard error of a run that must fail.
pub(crate) fn fails(out: Output) -> String {
    assert!(!out.status.success(), "expected a failure; stdout: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8(out.stderr).unwrap()
}

pub(crate) fn json(out: Output) -> Value {
    let text = ok(out);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

pub(crate) fn publish(base: &str, args: &[&str]) -> i64 {
    let mut all = vec!["publish", "--json"];
    all.extend_from_slice(args);
    json(herald(base, &all))["id"].as_i64().unwrap()
}

#[test]
fn publish_reaches_the_audience_of_each_flag_and_reports_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir, &[]);
    let out = ok(herald(&s.base, &["publish", "--all", "hello everyone"]));
    assert!(out.starts_with("Broadcast 1 created: ACTIVE, 10 users targeted"), "{out}");

    let v = json(herald(&s.base, &["publish", "--json", "--role", "ADMIN", "hi admins"]));
    assert_eq!((v["targetType"].as_str(), v["totalTargeted"].as_i64()), (Some("ROLE"), Some(2)));
    assert_eq!(v["senderId"], "cli", "the sender defaults to cli without a token");

    let args = [
        "publish",
        "--json",
        "--product",
        "Payments,Analytics",
        "--priority",
        "urgent",
        "--category",
        "Billing",
    ];
    let v = json(herald(&s.base, &[&args[..], &["invoices"]].concat()));
    assert_eq!(v["targetIds"], serde_json::json!(["Payments", "Analytics"]));
    assert_eq!((v["totalTargeted"].as_i64(), v["priority"].as_str()), (Some(6), Some("URGENT")));
    assert_eq!(v["category"], "Billing");

    let args = [
        "publish",
        "--json",
        "--user",
        "user-001",
        "--user",
        "user-004",
        "--sender",
        "ops",
        "--fire-and-forget",
    ];
    let v = json(herald(&s.base, &[&args[..], &["ping"]].concat()));
    assert_eq!(v["targetType"], "SELECTED");
    assert_eq!((v["totalTargeted"].as_i64(), v["senderId"].as_str()), (Some(2), Some("ops")));
    assert_eq!(v["fireAndForget"], true);

    let err = fails(herald(&s.base, &["publish", "--all", "--role", "ADMIN", "x"]));
    assert!(err.contains("cannot be used with"), "one audience flag group only: {err}");

    // Names match ignoring case; a role nobody holds is sent, with the server's warning.
    let out = ok(herald(&s.base, &["publish", "--role", "admin", "lower case"]));
    assert!(out.contains("2 users targeted"), "{out}");
    let run = herald(&s.base, &["publish", "--role", "auditor", "nobody"]);
    let err = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(ok(run).contains("0 users targeted"));
    assert!(err.contains("warning: nobody is targeted now: no user has the role 'auditor'"), "{err}");
}

#[test]
fn publish_reads_standard_input_and_schedules_with_at() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir, &[]);
    let v = json(herald_stdin(&s.base, &["publish", "--json", "--all", "-"], "line one\nline two\n"));
    assert_eq!(v["content"], "line one\nline two");

    let before = chrono::Utc::now();
    let v = json(herald(&s.base, &["publish", "--json", "--all", "--at", "10m", "--expires", "1h", "later"]));
    assert_eq!(v["status"], "SCHEDULED");
    let time = |k: &str| chrono::DateTime::parse_from_rfc3339(v[k].as_str().unwrap()).unwrap();
    let lead = time("scheduledAt").signed_duration_since(before).num_seconds();
    assert!((599..=660).contains(&lead), "scheduled {lead} s ahead");
    assert_eq!(
        time("expiresAt") - time("scheduledAt"),
        chrono::Duration::hours(1),
        "expiry counts from the send time"
    );

    let out = ok(herald(&s.base, &["publish", "--role", "ADMIN", "--at", "2099-01-01T09:00:00Z", "far"]));
    assert!(out.contains("SCHEDULED for 2099-01-01"), "{out}");
    let scheduled = json(herald(&s.base, &["broadcasts", "list", "--filter", "scheduled", "--json"]));
    assert_eq!(scheduled.as_array().unwrap().len(), 2);
}

#[test]
fn a_request_the_server_refuses_shows_its_message_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir, &[]);
    let err = fails(herald(&s.base, &["publish", "--all", "--expires", "2000-01-01T00:00:00Z", "late"]));
    assert!(err.contains("400") && err.contains("expiresAt: is already in the past"), "{err}");
    let err = fails(herald(&s.base, &["publish", "--all", "--at", "next tuesday", "x"]));
    assert!(err.contains("--at") && err.contains("RFC 3339"), "{err}");
    let list = json(herald(&s.base, &["broadcasts", "list", "--json"]));
    assert_eq!(list, serde_json::json!([]), "nothing was created");
}

#[test]
fn an_unreachable_server_is_named_in_the_error() {
    let err = fails(herald("http://127.0.0.1:1", &["broadcasts", "list"]));
    assert!(err.contains("cannot reach the Herald server at http://127.0.0.1:1"), "{err}");
}

#[test]
fn broadcasts_are_listed_shown_counted_and_cancelled_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir, &[]);
    let id = publish(&s.base, &["--role", "ADMIN", "--priority", "high", "Deploy at six"]);
    let list = ok(herald(&s.base, &["broadcasts", "list"]));
    let row = list.lines().find(|l| l.starts_with(&format!("{id} "))).unwrap_or_else(|| panic!("{list}"));
    assert!(row.contains("ACTIVE") && row.contains("ROLE ADMIN") && row.contains("Deploy at six"), "{row}");

    let show = ok(herald(&s.base, &["broadcasts", "show", &id.to_string()]));
    assert!(show.contains("status:") && show.contains("HIGH") && show.contains("  Deploy at six"), "{show}");
    let stats = json(herald(&s.base, &["broadcasts", "stats", &id.to_string(), "--json"]));
    assert_eq!(stats["totalTargeted"], 2);
    let stats = ok(herald(&s.base, &["broadcasts", "stats", &id.to_string()]));
    assert!(stats.lines().any(|l| l.starts_with("targeted:") && l.ends_with(" 2")), "{stats}");

    let out = ok(herald(&s.base, &["broadcasts", "cancel", &id.to_string()]));
    assert_eq!(out, format!("Broadcast {id} cancelled.\n"));
    let shown = json(herald(&s.base, &["broadcasts", "show", "--json", &id.to_string()]));
    assert_eq!(shown["status"], "CANCELLED");
    let err = fails(herald(&s.base, &["broadcasts", "cancel", &id.to_string()]));
    assert!(err.contains("409") && err.contains("cannot cancel"), "{err}");
    let err = fails(herald(&s.base, &["broadcasts", "show", "999"]));
    assert!(err.contains("404") && err.contains("broadcast 999 does not exist"), "{err}");
}

const USERS_CSV: &str = "userId,roles,products
user-001,USER;BILLING,Payments
new-user,OPS,
bad user,USER,
user-002,ADMIN;USER,
";

#[test]
fn users_import_reports_added_changed_unchanged_and_rejected_lines() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir, &[]);
    let file = dir.path().join("users.csv");
    std::fs::write(&file, USERS_CSV).unwrap();
    let file = file.to_str().unwrap();

    let out = herald(&s.base, &["users", "import", "--dry-run", file]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = fails(out);
    assert!(text.starts_with("Dry run: nothing was written"), "{text}");
    assert!(text.contains("added:     1\nchanged:   1\nunchanged: 1\nrejected:  1\n"), "{text}");
    assert!(text.contains("  line 4: userId: contains ' '"), "{text}");
    assert!(err.contains("1 line was rejected"), "{err}");
    assert!(!ok(herald(&s.base, &["users", "export"])).contains("new-user"), "a dry run writes nothing");

    let out = herald(&s.base, &["users", "import", file, "--json"]);
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    fails(out);
    assert_eq!(summary["addedIds"], serde_json::json!(["new-user"]));
    assert_eq!(summary["changedIds"], serde_json::json!(["user-001"]));
    assert_eq!(summary["rejected"][0]["line"], 4);
    assert_eq!(json(herald(&s.base, &["publish", "--json", "--role", "OPS", "x"]))["totalTargeted"], 1);

    let again = herald(&s.base, &["users", "import", file]);
    let text = String::from_utf8_lossy(&again.stdout).into_owned();
    assert!(text.contains("added:     0\nchanged:   0\nunchanged: 3\n"), "{text}");
}

#[test]
fn users_export_is_sorted_and_imports_back_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir, &[]);
    ok(herald_stdin(&s.base, &["users", "import", "-"], "{\"userId\":\"a-first\",\"roles\":[\"R\"]}\n"));
    let csv = ok(herald(&s.base, &["users", "export"]));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[..3], ["userId,roles,products", "a-first,R,", "user-001,USER,Payments"]);
    assert_eq!(lines.len(), 12);
    assert!(lines.contains(&"user-003,ADMIN;USER,Analytics;Payments"), "{csv}");

    let jsonl = ok(herald(&s.base, &["users", "export", "--format", "jsonl"]));
    let first: Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert_eq!(first, serde_json::json!({"userId": "a-first", "roles": ["R"], "products": []}));
    for input in [csv, jsonl] {
        let out = ok(herald_stdin(&s.base, &["users", "import", "-"], &input));
        assert!(out.contains("added:     0\nchanged:   0\nunchanged: 11\nrejected:  0\n"), "{out}");
    }
}
