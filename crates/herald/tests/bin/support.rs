//! Running the `herald` binary as a child process.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const WAIT: Duration = Duration::from_secs(10);

pub struct Server {
    pub child: Child,
    pub base: String,
    pub logs: mpsc::Receiver<String>,
    /// The log lines up to and including the ready line.
    pub startup: Vec<String>,
}

/// Starts `herald serve` on a free port over database `url` (with `extra` flags) and waits for its
/// ready log line. Later log lines stay readable in `Server::logs`.
#[allow(clippy::zombie_processes)] // `Server`'s Drop kills and reaps the child.
pub fn serve(url: &str, extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--demo", "--log-format", "json"])
        .args(if extra.contains(&"--listen") { &[][..] } else { &["--listen", "127.0.0.1:0"][..] })
        .args(["--database-url", url])
        .args(extra)
        .env_remove("HERALD_CONFIG")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("herald starts");
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + WAIT;
    let mut startup = Vec::new();
    loop {
        let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("ready line");
        let ready = serde_json::from_str::<Value>(&line)
            .ok()
            .filter(|v| v["fields"]["message"] == "herald is ready")
            .and_then(|v| v["fields"]["addr"].as_str().map(str::to_owned));
        startup.push(line);
        if let Some(addr) = ready {
            return Server { child, base: format!("http://{addr}"), logs: rx, startup };
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([sig, &self.child.id().to_string()]).status().unwrap().success();
        assert!(ok, "kill {sig}");
    }

    /// Waits for the process to exit, with a deadline.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "herald did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
