//! `herald tail` against a real server: how it prints events, resumes after a restart, and stops
//! with a clear message at the connection limit or when its token expires.

use crate::cli::{cli, fails, herald, json, ok, publish, server, SECRET};
use crate::support::WAIT;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running `herald tail`, its standard output read line by line.
struct Tail {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Tail {
    fn start(base: &str, args: &[&str]) -> Tail {
        let mut all = vec!["tail"];
        all.extend_from_slice(args);
        let mut child = cli(base, &all).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Tail { child, lines: rx, seen: Vec::new() }
    }

    /// Reads lines until one satisfies `pred`, within `within`.
    fn wait_for(&mut self, within: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(_) => panic!("no such line in time; got {:#?}", self.seen),
            }
        }
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let ok = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(ok.success());
        self.wait_exit()
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "tail did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr(&mut self) -> String {
        let mut text = String::new();
        std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut text).unwrap();
        text
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn tail_prints_each_event_readably_or_as_json_and_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir, &[]);
    let mut text = Tail::start(&s.base, &["--user", "user-002"]);
    let mut json_tail = Tail::start(&s.base, &["--user", "user-003", "--json"]);
    text.wait_for(WAIT, |l| l.contains("CONNECTED") && l.contains("user-002 (fresh connect"));
    json_tail.wait_for(WAIT, |l| l.contains("\"event\":\"CONNECTED\""));

    let id =
        publish(&s.base, &["--role", "ADMIN", "--priority", "high", "--sender-name", "Ops", "Deploy at six"]);
    let line = text.wait_for(WAIT, |l| l.contains(" MESSAGE "));
    assert!(line.contains(&format!("#{id} HIGH [GENERAL] Ops: Deploy at six")), "{line}");
    let line = json_tail.wait_for(WAIT, |l| l.contains("\"event\":\"MESSAGE\""));
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["data"]["content"], "Deploy at six");
    assert!(v["id"].as_str().is_some_and(|id| id.parse::<i64>().is_ok()), "{line}");

    ok(herald(&s.base, &["broadcasts", "cancel", &id.to_string()]));
    let line = text.wait_for(WAIT, |l| l.contains("MESSAGE_REMOVED"));
    assert!(line.ends_with(&format!("#{id} CANCELLED")), "{line}");

    assert!(text.terminate().success(), "SIGTERM ends tail with status 0");
    assert!(json_tail.terminate().success());
}

#[test]
fn tail_resumes_after_a_server_restart_and_prints_what_it_missed_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = server(&dir, &[]);
    let base = first.base.clone();
    let mut tail = Tail::start(&base, &["--user", "user-007"]);
    tail.wait_for(WAIT, |l| l.contains("CONNECTED"));
    let before = publish(&base, &["--all", "before the restart"]);
    tail.wait_for(WAIT, |l| l.contains(&format!("#{before} ")));

    first.signal("-TERM");
    assert!(first.wait_exit().success());
    tail.wait_for(WAIT, |l| l.contains("SERVER_SHUTDOWN"));
    // While tail cannot connect: publish through a server on another port over the same database.
    let mut elsewhere = server(&dir, &[]);
    let missed = publish(&elsewhere.base, &["--all", "while you were away"]);
    elsewhere.signal("-TERM");
    assert!(elsewhere.wait_exit().success());

    let listen = base.trim_start_matches("http://");
    let _second = server(&dir, &["--listen", listen]);
    let resumed = tail.wait_for(Duration::from_secs(40), |l| l.contains("CONNECTED"));
    assert!(resumed.contains("resuming after event"), "{resumed}");
    tail.wait_for(WAIT, |l| l.contains(&format!("#{missed} ")));
    let after = publish(&base, &["--all", "after the restart"]);
    tail.wait_for(WAIT, |l| l.contains(&format!("#{after} ")));

    assert!(tail.terminate().success());
    let count = |id: i64| tail.seen.iter().filter(|l| l.contains(&format!("#{id} "))).count();
    assert_eq!((count(before), count(missed), count(after)), (1, 1, 1), "{:#?}", tail.seen);
}

#[test]
fn tail_stops_with_a_clear_message_at_the_connection_limit() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir, &["--max-connections-per-user", "1"]);
    let mut first = Tail::start(&s.base, &["--user", "user-001"]);
    first.wait_for(WAIT, |l| l.contains("CONNECTED"));
    let mut second = Tail::start(&s.base, &["--user", "user-001"]);
    second.wait_for(WAIT, |l| l.contains("CONNECTION_LIMIT_REACHED"));
    assert!(!second.wait_exit().success());
    let err = second.stderr();
    assert!(err.contains("connection limit reached") && err.contains("1 open streams"), "{err}");
}

#[test]
fn with_a_token_the_client_acts_as_its_subject() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir, &["--auth", "jwt", "--jwt-secret", SECRET]);
    let err = fails(herald(&s.base, &["broadcasts", "list"]));
    assert!(err.contains("401"), "{err}");
    let mint = |sub: &str, roles: &str| {
        let mut token = Command::new(env!("CARGO_BIN_EXE_herald"));
        token
            .args(["token", "--sub", sub, "--roles", roles, "--jwt-secret", SECRET])
            .env_remove("HERALD_CONFIG");
        ok(token.output().unwrap()).trim().to_owned()
    };
    let admin = mint("admin-1", "ADMIN");
    let user = mint("user-005", "USER");

    let mut tail = Tail::start(&s.base, &["--token", &user]);
    tail.wait_for(WAIT, |l| l.contains("CONNECTED") && l.contains("user-005"));
    let out = cli(&s.base, &["publish", "--json", "--all", "from the token"])
        .env("HERALD_TOKEN", &admin)
        .output()
        .unwrap();
    let v = json(out);
    assert_eq!(v["senderId"], "admin-1", "the server takes the sender from the token");
    tail.wait_for(WAIT, |l| l.contains("from the token"));
    let err = fails(herald(&s.base, &["broadcasts", "list", "--token", &user]));
    assert!(err.contains("403"), "{err}");
}

#[test]
fn tail_stops_with_a_clear_message_when_its_token_expires() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir, &["--auth", "jwt", "--jwt-secret", SECRET]);
    let mut token = Command::new(env!("CARGO_BIN_EXE_herald"));
    token
        .args(["token", "--sub", "user-006", "--ttl", "2s", "--jwt-secret", SECRET])
        .env_remove("HERALD_CONFIG");
    let token = ok(token.output().unwrap()).trim().to_owned();
    let mut tail = Tail::start(&s.base, &["--token", &token]);
    tail.wait_for(WAIT, |l| l.contains("CONNECTED") && l.contains("user-006"));
    tail.wait_for(WAIT, |l| l.contains("TOKEN_EXPIRED"));
    assert!(!tail.wait_exit().success());
    let err = tail.stderr();
    assert!(err.contains("the token expired") && err.contains("fresh --token"), "{err}");
}
