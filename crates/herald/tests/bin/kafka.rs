//! The cluster on a real Kafka-protocol broker: three `herald serve --bus kafka` processes on one
//! PostgreSQL database and one broker (tansu, started here from `HERALD_TEST_TANSU`), users on
//! different nodes, and the failures the cluster must survive: the leader killed, a node killed,
//! the broker down for 30 s, a poison record on the topic.

use crate::cluster::{drop_db, fresh_db};
use crate::support::{serve, Server};
use herald_testkit::{SseClient, SseEvent};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::{json, Value};
use sqlx::Connection;
use std::collections::{BTreeMap, HashSet};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(30);

/// A tansu broker on a free port, in memory; `restart` brings up an empty one on the same port.
struct Broker {
    bin: String,
    port: u16,
    child: Option<Child>,
}

impl Broker {
    fn start() -> Option<Self> {
        let Ok(bin) = std::env::var("HERALD_TEST_TANSU") else {
            println!(
                "skipped: the Kafka cluster tests need a broker (HERALD_TEST_TANSU names the tansu binary)"
            );
            return None;
        };
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut broker = Self { bin, port, child: None };
        broker.up();
        Some(broker)
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn up(&mut self) {
        let url = format!("tcp://{}", self.addr());
        let child = Command::new(&self.bin)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tansu starts");
        self.child = Some(child);
        let deadline = Instant::now() + DEADLINE;
        while std::net::TcpStream::connect(self.addr()).is_err() {
            assert!(Instant::now() < deadline, "the broker never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.down();
    }
}

/// A database, a broker and three nodes (`node-1`..`node-3`) with a short lease.
struct Cluster {
    admin: String,
    db: String,
    url: String,
    broker: Broker,
    topic: String,
    nodes: Vec<Option<Server>>,
    http: reqwest::Client,
}

impl Cluster {
    async fn start(extra: &[&str]) -> Option<Self> {
        let broker = Broker::start()?;
        let (admin, db, url) = fresh_db().await?;
        let topic = format!("herald-test-{}", uuid::Uuid::new_v4().simple());
        let mut cluster =
            Self { admin, db, url, broker, topic, nodes: Vec::new(), http: reqwest::Client::new() };
        for n in 1..=3 {
            let node = cluster.node(n, extra);
            cluster.nodes.push(Some(node));
        }
        Some(cluster)
    }

    fn node(&self, n: usize, extra: &[&str]) -> Server {
        let id = format!("node-{n}");
        let mut args =
            vec!["--node-id", &id, "--bus", "kafka", "--lease-ttl", "2s", "--heartbeat-interval", "1s"];
        let brokers = self.broker.addr();
        args.extend(["--kafka-brokers", &brokers, "--kafka-topic", &self.topic]);
        args.extend(extra);
        serve(&self.url, &args)
    }

    fn base(&self, n: usize) -> &str {
        &self.nodes[n - 1].as_ref().expect("node is up").base
    }

    async fn create(&self, n: usize, body: Value) -> reqwest::Response {
        let mut full = json!({"senderId": "ops", "content": "hello", "targetType": "ALL"});
        full.as_object_mut().unwrap().extend(body.as_object().unwrap().clone());
        self.http.post(format!("{}/api/admin/broadcasts", self.base(n))).json(&full).send().await.unwrap()
    }

    async fn publish(&self, n: usize, body: Value) -> i64 {
        let r = self.create(n, body).await;
        assert_eq!(r.status(), 201);
        r.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
    }

    async fn connect(&self, n: usize, user: &str, last_event_id: Option<i64>) -> SseClient {
        let mut req =
            self.http.get(format!("{}/api/user/sse/connect", self.base(n))).query(&[("userId", user)]);
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let mut sse = SseClient::new(req.send().await.unwrap());
        sse.expect("CONNECTED").await;
        sse
    }

    async fn get(&self, n: usize, path: &str) -> (u16, Value) {
        let r = self.http.get(format!("{}{path}", self.base(n))).send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn metric(&self, n: usize, name: &str) -> u64 {
        let text =
            self.http.get(format!("{}/metrics", self.base(n))).send().await.unwrap().text().await.unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("metric {name} missing"))
    }

    /// Polls `path` on node `n` until `check` holds.
    async fn eventually(&self, n: usize, path: &str, check: impl Fn(u16, &Value) -> bool) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let (status, body) = self.get(n, path).await;
            if check(status, &body) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "{path} on node {n} never became as expected: {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn kill(&mut self, n: usize) {
        let mut node = self.nodes[n - 1].take().expect("node is up");
        node.child.kill().unwrap();
        node.wait_exit();
    }

    async fn leader(&self) -> usize {
        let mut db = sqlx::PgConnection::connect(&self.url).await.unwrap();
        let deadline = Instant::now() + DEADLINE;
        loop {
            let holder: Option<String> = sqlx::query_scalar(
                "SELECT holder FROM leases WHERE name = 'herald-leader' AND expires_at > (extract(epoch from now()) * 1000)::bigint",
            )
            .fetch_optional(&mut db)
            .await
            .unwrap();
            if let Some(n) = holder.and_then(|h| h.strip_prefix("node-").and_then(|n| n.parse().ok())) {
                return n;
            }
            assert!(Instant::now() < deadline, "nobody holds the lease");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn finish(mut self) {
        self.nodes.clear();
        self.broker.down();
        drop_db(&self.admin, &self.db).await;
    }
}

/// The events before the stream ends, which must be soon (heartbeats would keep it going).
async fn ends(sse: &mut SseClient) -> Vec<SseEvent> {
    tokio::time::timeout(DEADLINE, sse.until_end()).await.expect("the stream ends")
}

/// Reads MESSAGE events until every broadcast in `want` arrived; returns (id, broadcastId) in
/// arrival order, failing on a duplicate broadcast or an id that does not grow.
async fn messages_until(sse: &mut SseClient, want: &HashSet<i64>) -> Vec<(i64, i64)> {
    let mut got: Vec<(i64, i64)> = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while !want.iter().all(|b| got.iter().any(|(_, g)| g == b)) {
        assert!(
            Instant::now() < deadline,
            "still missing {:?}",
            want.iter().filter(|b| !got.iter().any(|(_, g)| g == *b)).collect::<Vec<_>>()
        );
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(ev) = tokio::time::timeout(left, sse.next_event()).await else { continue };
        let ev: SseEvent = ev.expect("stream stays open");
        if ev.event != "MESSAGE" {
            continue;
        }
        let (id, b) = (ev.seq(), ev.broadcast_id());
        assert!(!got.iter().any(|(_, g)| *g == b), "broadcast {b} delivered twice: {got:?} then id {id}");
        assert!(got.last().is_none_or(|(last, _)| id > *last), "id {id} after {got:?}");
        got.push((id, b));
    }
    got
}

#[tokio::test]
async fn three_nodes_deliver_every_event_once_in_the_same_order_with_the_same_ids() {
    // A long fallback: every event here must come over the broker, not from the database.
    let Some(cluster) =
        Cluster::start(&["--bus-fallback-after", "20s", "--max-connections-per-user", "2"]).await
    else {
        return;
    };
    let placement = [
        (1, "user-001"),
        (2, "user-001"),
        (2, "user-002"),
        (3, "user-003"),
        (3, "user-004"),
        (1, "user-005"),
    ];
    let mut streams = Vec::new();
    for (n, user) in placement {
        streams.push((n, user, cluster.connect(n, user, None).await));
    }
    // Cluster-wide presence and the per-user limit over all nodes.
    let stats = cluster.eventually(3, "/api/user/sse/stats", |_, v| v["totalActiveUsers"] == 5).await;
    assert_eq!(stats["sseConnectedUsers"], 2);
    assert_eq!(cluster.get(3, "/api/user/sse/connected/user-005").await.1, json!(true));
    assert_eq!(cluster.get(1, "/api/user/sse/connected/user-009").await.1, json!(false));
    let mut third = cluster.connect_limited(3, "user-001").await;
    let refused = tokio::time::timeout(DEADLINE, third.next_event()).await.expect("an answer").unwrap();
    assert_eq!(refused.event, "CONNECTION_LIMIT_REACHED");

    let mut expected: BTreeMap<&str, HashSet<i64>> = BTreeMap::new();
    for i in 0..24usize {
        let via = i % 3 + 1;
        let (body, targets): (Value, Vec<&str>) = match i % 4 {
            0 => (
                json!({"content": format!("all {i}")}),
                vec!["user-001", "user-002", "user-003", "user-004", "user-005"],
            ),
            1 => (
                json!({"targetType": "SELECTED", "targetIds": ["user-001", "user-003"]}),
                vec!["user-001", "user-003"],
            ),
            2 => (json!({"targetType": "ROLE", "targetIds": ["ADMIN"]}), vec!["user-002", "user-003"]),
            _ => (json!({"targetType": "SELECTED", "targetIds": ["user-005"]}), vec!["user-005"]),
        };
        let id = cluster.publish(via, body).await;
        for t in targets {
            expected.entry(t).or_default().insert(id);
        }
    }
    let mut seen: BTreeMap<&str, Vec<(i64, i64)>> = BTreeMap::new();
    for (n, user, sse) in &mut streams {
        let got = messages_until(sse, &expected[*user]).await;
        assert_eq!(got.len(), expected[*user].len(), "{user} on node {n} got more than its own: {got:?}");
        if let Some(other) = seen.get(user) {
            assert_eq!(&got, other, "{user} got other ids or another order on node {n}");
        }
        seen.insert(user, got);
    }
    for n in 1..=3 {
        assert_eq!(
            cluster.metric(n, "herald_events_read_from_log_total").await,
            0,
            "node {n} needed the database"
        );
    }
    drop(streams);
    cluster.finish().await;
}

/// On a failure, says which nodes died and how, with their last log lines.
impl Drop for Cluster {
    fn drop(&mut self) {
        for (i, node) in self.nodes.iter_mut().enumerate() {
            let Some(node) = node else { continue };
            if let Ok(Some(status)) = node.child.try_wait() {
                let logs: Vec<String> = node.logs.try_iter().collect();
                let tail = &logs[logs.len().saturating_sub(15)..];
                eprintln!("node-{} exited ({status}); its last log lines:\n{}", i + 1, tail.join("\n"));
            }
        }
    }
}

impl Cluster {
    async fn connect_limited(&self, n: usize, user: &str) -> SseClient {
        let r = self
            .http
            .get(format!("{}/api/user/sse/connect", self.base(n)))
            .query(&[("userId", user)])
            .send()
            .await
            .unwrap();
        SseClient::new(r)
    }
}

#[tokio::test]
async fn disconnect_and_force_logoff_reach_a_stream_on_another_node() {
    let Some(cluster) = Cluster::start(&[]).await else { return };
    let r = cluster
        .http
        .get(format!("{}/api/user/sse/connect", cluster.base(1)))
        .query(&[("userId", "user-006"), ("connectionId", "tab-6")])
        .send()
        .await
        .unwrap();
    let mut sse = SseClient::new(r);
    sse.expect("CONNECTED").await;
    cluster.eventually(3, "/api/user/sse/connected/user-006", |_, v| *v == json!(true)).await;
    let r = cluster
        .http
        .post(format!("{}/api/user/sse/disconnect", cluster.base(3)))
        .query(&[("userId", "user-006"), ("connectionId", "tab-6")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["disconnected"], 1);
    let rest = ends(&mut sse).await;
    assert!(rest.iter().all(|e| e.event != "MESSAGE"), "{rest:?}");
    cluster.eventually(2, "/api/user/sse/connected/user-006", |_, v| *v == json!(false)).await;

    let mut sse = cluster.connect(2, "user-007", None).await;
    let logoff = cluster
        .publish(1, json!({"targetType": "SELECTED", "targetIds": ["user-007"], "category": "Force Logoff"}))
        .await;
    let rest = ends(&mut sse).await;
    assert!(rest.iter().any(|e| e.event == "MESSAGE" && e.broadcast_id() == logoff), "{rest:?}");
    cluster.finish().await;
}

#[tokio::test]
async fn the_leader_killed_mid_burst_loses_and_repeats_nothing_and_clients_resume_on_another_node() {
    let Some(mut cluster) = Cluster::start(&[]).await else { return };
    let leader = cluster.leader().await;
    let others: Vec<usize> = (1..=3).filter(|n| *n != leader).collect();
    // One stream on every node; the leader's dies with it and resumes elsewhere.
    let mut streams = Vec::new();
    for n in 1..=3 {
        streams.push((n, cluster.connect(n, &format!("user-00{n}"), None).await));
    }
    let mut acked = Vec::new();
    for i in 0..40usize {
        if i == 15 {
            cluster.kill(leader);
        }
        let via = others[i % 2];
        let r = cluster.create(via, json!({"content": format!("burst {i}")})).await;
        if r.status() == 201 {
            acked.push(r.json::<Value>().await.unwrap()["id"].as_i64().unwrap());
        }
    }
    assert!(acked.len() >= 38, "creates on surviving nodes answer: {}", acked.len());
    let want: HashSet<i64> = acked.iter().copied().collect();
    let mut last_on_dead = None;
    for (n, sse) in &mut streams {
        if *n == leader {
            // It received some before its node died; what it saw is a prefix in order.
            let got: Vec<(i64, i64)> = ends(sse)
                .await
                .iter()
                .filter(|e| e.event == "MESSAGE")
                .map(|e| (e.seq(), e.broadcast_id()))
                .collect();
            assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "{got:?}");
            last_on_dead = got.last().map(|(id, _)| *id);
            continue;
        }
        let got = messages_until(sse, &want).await;
        assert_eq!(got.len(), want.len());
    }
    // The dead node's client resumes on a survivor with Last-Event-ID and gets exactly the rest.
    let mut resumed = cluster.connect(others[0], &format!("user-00{leader}"), last_on_dead).await;
    let missed: HashSet<i64> = {
        let mut db = sqlx::PgConnection::connect(&cluster.url).await.unwrap();
        let after = last_on_dead.unwrap_or(0);
        let rows: Vec<i64> = sqlx::query_scalar(
            "SELECT broadcast_id FROM events WHERE kind = 'MESSAGE' AND seq > $1 AND broadcast_id = ANY($2)",
        )
        .bind(after)
        .bind(&acked)
        .fetch_all(&mut db)
        .await
        .unwrap();
        rows.into_iter().collect()
    };
    let got = messages_until(&mut resumed, &missed).await;
    assert_eq!(got.len(), missed.len(), "exactly what it missed");
    assert!(got.iter().all(|(id, _)| Some(*id) > last_on_dead));
    drop(streams);
    cluster.finish().await;
}

#[tokio::test]
async fn the_broker_down_for_30_seconds_delays_nothing_and_loses_nothing() {
    let Some(mut cluster) = Cluster::start(&[]).await else { return };
    let mut streams = Vec::new();
    for n in 1..=3 {
        streams.push(cluster.connect(n, &format!("user-00{n}"), None).await);
    }
    let mut all = HashSet::new();
    let first = cluster.publish(1, json!({"content": "before"})).await;
    all.insert(first);
    for sse in &mut streams {
        messages_until(sse, &all).await;
    }

    cluster.broker.down();
    let down_until = Instant::now() + Duration::from_secs(30);
    let mut during = HashSet::new();
    let mut i = 0;
    while Instant::now() < down_until {
        let id = cluster.publish(i % 3 + 1, json!({"content": format!("broker down {i}")})).await;
        during.insert(id);
        // Live delivery goes on from the database on every node.
        for sse in &mut streams {
            messages_until(sse, &HashSet::from([id])).await;
        }
        i += 1;
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let ready = cluster.eventually(2, "/health/ready", |s, _| s == 503).await;
    assert_eq!((ready["bus"].as_str(), ready["database"].as_str()), (Some("DOWN"), Some("UP")));

    cluster.broker.up();
    cluster.eventually(2, "/health/ready", |s, _| s == 200).await;
    let mut after = HashSet::new();
    for n in 1..=3 {
        after.insert(cluster.publish(n, json!({"content": format!("after {n}")})).await);
    }
    for sse in &mut streams {
        messages_until(sse, &after).await;
    }
    // The relay published the backlog once the broker was back; nodes skipped what they had.
    let leader = cluster.leader().await;
    let deadline = Instant::now() + DEADLINE;
    let total = (1 + during.len() + after.len()) as u64;
    while cluster.metric(leader, "herald_events_relayed_total").await < total {
        assert!(Instant::now() < deadline, "the relay never published the backlog");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And the bus carries the events again, soon: an event no node needed the database for.
    let deadline = Instant::now() + DEADLINE;
    for round in 0.. {
        let mut from_log = Vec::new();
        for n in 1..=3 {
            from_log.push(cluster.metric(n, "herald_events_read_from_log_total").await);
        }
        let id = cluster.publish(round % 3 + 1, json!({"content": format!("probe {round}")})).await;
        for sse in &mut streams {
            messages_until(sse, &HashSet::from([id])).await;
        }
        let mut now = Vec::new();
        for n in 1..=3 {
            now.push(cluster.metric(n, "herald_events_read_from_log_total").await);
        }
        if now == from_log {
            break;
        }
        assert!(Instant::now() < deadline, "the nodes still read the database instead of the bus: {now:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    cluster.finish().await;
}

#[tokio::test]
async fn a_poison_record_becomes_a_dead_letter_that_can_be_redriven_fixed_or_purged() {
    let Some(cluster) = Cluster::start(&[]).await else { return };
    let mut sse = cluster.connect(2, "user-002", None).await;
    let b = cluster
        .publish(1, json!({"targetType": "SELECTED", "targetIds": ["user-002"], "content": "original"}))
        .await;
    messages_until(&mut sse, &HashSet::from([b])).await;
    let (empty_status, empty) = cluster.get(1, "/api/admin/dlt/messages").await;
    assert_eq!((empty_status, empty), (200, json!([])));

    // A plain Kafka client copies the relay's record with a version no node knows, and adds junk.
    let good = record_of(&cluster, b).await;
    let poison = good.replacen("\"v\":1", "\"v\":99", 1);
    produce(&cluster, &[("poison", poison.as_bytes()), ("junk", b"\xffnot a record")]);

    let letters = cluster
        .eventually(3, "/api/admin/dlt/messages", |_, v| v.as_array().is_some_and(|a| a.len() == 2))
        .await;
    let letters = letters.as_array().unwrap();
    let poisoned = &letters[0];
    assert_eq!(poisoned["broadcastId"], b);
    assert_eq!(poisoned["originalKey"], "poison");
    assert_eq!(poisoned["originalTopic"], cluster.topic.as_str());
    assert_eq!(poisoned["originalPartition"], 0);
    assert!(poisoned["exceptionMessage"].as_str().unwrap().contains("version 99"), "{poisoned}");
    assert_eq!(poisoned["originalMessagePayload"], poison.as_str());
    for field in ["id", "correlationId", "originalOffset", "exceptionStackTrace", "failedAt"] {
        assert!(!poisoned[field].is_null(), "{field} in {poisoned}");
    }
    // Three nodes read the record; the list holds it once, and so does the dead-letter topic.
    assert_eq!(dead_letter_topic(&cluster), 2);

    // Redriving as it is fails and keeps it; redriving a fixed record delivers it.
    let redrive = |id: &Value, body: Option<Value>| {
        let mut req =
            cluster.http.post(format!("{}/api/admin/dlt/redrive/{}", cluster.base(2), id.as_str().unwrap()));
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send()
    };
    assert_eq!(redrive(&poisoned["id"], None).await.unwrap().status(), 409);
    let r = redrive(&poisoned["id"], Some(json!({"originalMessagePayload": good}))).await.unwrap();
    assert_eq!(r.status(), 200);
    let again = messages_until(&mut sse, &HashSet::from([b])).await;
    assert!(again[0].0 > 0);

    let r = cluster.http.post(format!("{}/api/admin/dlt/redrive-all", cluster.base(1))).send().await.unwrap();
    let summary: Value = r.json().await.unwrap();
    assert_eq!(summary["totalMessages"], 1);
    assert_eq!((summary["successCount"].as_i64(), summary["failureCount"].as_i64()), (Some(0), Some(1)));
    assert_eq!(summary["failures"][0]["dltMessageId"], letters[1]["id"]);
    assert!(summary["failures"][0]["reason"].as_str().unwrap().contains("cannot be read"), "{summary}");

    let junk = letters[1]["id"].as_str().unwrap();
    let r =
        cluster.http.delete(format!("{}/api/admin/dlt/purge/{junk}", cluster.base(3))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r =
        cluster.http.delete(format!("{}/api/admin/dlt/purge/{junk}", cluster.base(3))).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(cluster.get(1, "/api/admin/dlt/messages").await.1, json!([]));
    let r = cluster.http.delete(format!("{}/api/admin/dlt/purge-all", cluster.base(1))).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["purged"], 0);
    assert_eq!(cluster.metric(2, "herald_dead_letters_redriven_total").await, 1);
    assert_eq!(cluster.metric(2, "herald_dead_letters_redrive_failed_total").await, 1);
    assert_eq!(cluster.metric(3, "herald_dead_letters_purged_total").await, 1);
    cluster.finish().await;
}

fn kafka(cluster: &Cluster) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", cluster.broker.addr()).set("fetch.wait.max.ms", "10");
    config
}

/// The record the relay published for broadcast `b`'s MESSAGE.
async fn record_of(cluster: &Cluster, b: i64) -> String {
    let records = read_topic(cluster, &cluster.topic, |_| true);
    records
        .into_iter()
        .find(|r| r.contains("\"kind\":\"MESSAGE\"") && r.contains(&format!("\"id\":{b},")))
        .unwrap_or_else(|| panic!("no record of broadcast {b} on the topic"))
}

fn read_topic(cluster: &Cluster, topic: &str, keep: impl Fn(&str) -> bool) -> Vec<String> {
    let consumer: BaseConsumer = kafka(cluster).set("group.id", "herald-test-reader").create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning).unwrap();
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(2) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let text = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            if keep(&text) {
                out.push(text);
            }
            quiet_since = Instant::now();
        }
    }
    out
}

fn dead_letter_topic(cluster: &Cluster) -> usize {
    read_topic(cluster, &format!("{}.dlt", cluster.topic), |_| true).len()
}

fn produce(cluster: &Cluster, records: &[(&str, &[u8])]) {
    let producer: ThreadedProducer<DefaultProducerContext> = kafka(cluster).create().unwrap();
    for (key, payload) in records {
        producer.send(BaseRecord::to(&cluster.topic).partition(0).key(*key).payload(*payload)).unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
}
