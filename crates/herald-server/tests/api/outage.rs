//! A PostgreSQL outage under a running Herald: streams stay open, writes answer 503, readiness
//! says not ready, and once the database is back Herald recovers by itself without losing
//! anything it acknowledged. The test runs its own PostgreSQL (initdb + pg_ctl from the Debian
//! server packages) on a free port, so it can stop and start it.

use herald_testkit::{id_of, spawn_on, Backend, TestApp, TestDb};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use tokio::time::Instant;

struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_root: bool,
}

impl PrivatePostgres {
    fn start_new() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries under /usr/lib/postgresql")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .max()
            .expect("initdb");
        let dir = tempfile::tempdir().unwrap();
        let as_root =
            Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false);
        if as_root {
            // PostgreSQL refuses to run as root; its files belong to the postgres user.
            run(Command::new("chown").arg("postgres:postgres").arg(dir.path()));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let pg = Self { dir, bin, port, as_root };
        pg.tool("initdb", &["-A", "trust", "-U", "postgres", "--no-sync", "-D", &pg.data()]);
        pg.start();
        pg
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// A server tool, run as the postgres user when the test runs as root.
    fn command(&self, name: &str) -> Command {
        let exe = self.bin.join(name);
        let mut cmd = if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        cmd.current_dir(self.dir.path());
        cmd
    }

    fn tool(&self, name: &str, args: &[&str]) {
        run(self.command(name).args(args));
    }

    fn start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log").display().to_string();
        self.tool("pg_ctl", &["-D", &self.data(), "-o", &opts, "-l", &log, "-w", "start"]);
    }

    fn stop(&self) {
        self.tool("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.command("pg_ctl").args(["-D", &self.data(), "-m", "immediate", "stop"]).output();
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("command runs");
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Polls until `check(status, body)` holds, with a deadline.
async fn until(
    app: &TestApp,
    method: &str,
    path: &str,
    body: Option<Value>,
    check: impl Fn(u16, &Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let req = match method {
            "POST" => app.client.post(app.url(path)).json(body.as_ref().unwrap()),
            _ => app.client.get(app.url(path)),
        };
        if let Ok(r) = req.send().await {
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            if check(status, &v) {
                return v;
            }
        }
        assert!(Instant::now() < deadline, "{method} {path} did not reach the expected state");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_rides_out_a_database_outage_and_recovers_by_itself() {
    if !Backend::postgres_available("the outage test") {
        return;
    }
    let pg = PrivatePostgres::start_new();
    let app =
        spawn_on(TestDb::external(pg.url()), |c| c.heartbeat_interval = Duration::from_millis(300)).await;
    let mut stream = app.online("user-001").await;
    let before = id_of(&app.publish(json!({"content": "before the outage"})).await);
    stream.expect_message(before).await;

    pg.stop();
    let started = Instant::now();
    let write = app
        .post("/api/admin/broadcasts", json!({"senderId": "a", "content": "during", "targetType": "ALL"}))
        .await;
    assert_eq!(write.status(), 503, "a write during the outage is refused, not failed");
    assert!(started.elapsed() < Duration::from_secs(10), "the refusal took {:?}", started.elapsed());
    let body: Value = write.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("database"), "{body}");
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status(), 503);
    assert_eq!(ready.json::<Value>().await.unwrap()["database"], "DOWN");
    for _ in 0..2 {
        let beat = stream.next_any().await.expect("the stream stays open");
        assert_eq!(beat.event, "HEARTBEAT");
    }

    pg.start();
    until(&app, "GET", "/health/ready", None, |s, _| s == 200).await;
    let after = json!({"senderId": "a", "content": "after the outage", "targetType": "ALL"});
    let created = until(&app, "POST", "/api/admin/broadcasts", Some(after), |s, _| s == 201).await;
    let after_id = id_of(&created);
    loop {
        let ev = stream.next_any().await.expect("stream open");
        if ev.event == "MESSAGE" {
            assert_eq!(ev.broadcast_id(), after_id, "only the new broadcast arrives");
            break;
        }
    }
    let list = app.get_json("/api/admin/broadcasts").await;
    let ids: Vec<i64> = list.as_array().unwrap().iter().map(id_of).collect();
    assert_eq!(ids, [after_id, before], "nothing acknowledged was lost and the refused write left nothing");
    app.eventually(&format!("/api/admin/broadcasts/{before}/stats"), |v| v["totalDelivered"] == 1).await;
    app.stop().await;
}
