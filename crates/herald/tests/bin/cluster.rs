//! Several `herald serve` processes on one PostgreSQL database: the scheduler and the relay run on
//! exactly one of them, and move to another within the lease time when the leader is killed.

use crate::support::{serve, Server, WAIT};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};
use std::time::{Duration, Instant};

const LEASE_MS: i64 = 2_000;

/// A fresh database on the server `HERALD_TEST_POSTGRES_URL` names, dropped by `drop_db`.
pub async fn fresh_db() -> Option<(String, String, String)> {
    let Ok(admin) = std::env::var("HERALD_TEST_POSTGRES_URL") else {
        println!("skipped: the cluster test needs PostgreSQL (HERALD_TEST_POSTGRES_URL is not set)");
        return None;
    };
    let name = format!("herald_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&admin).await.expect("PostgreSQL reachable");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.unwrap();
    let base = admin.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap();
    Some((admin, name.clone(), format!("{base}/{name}")))
}

pub async fn drop_db(admin: &str, name: &str) {
    let mut conn = PgConnection::connect(admin).await.unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await.unwrap();
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

async fn schedule(client: &reqwest::Client, node: &Server, at_ms: i64) -> i64 {
    let at = rfc3339_utc(at_ms);
    let body = json!({"senderId": "ops", "content": "scheduled", "targetType": "ALL", "scheduledAt": at});
    let r = client.post(format!("{}/api/admin/broadcasts", node.base)).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["status"], "SCHEDULED");
    b["id"].as_i64().unwrap()
}

/// RFC 3339 in UTC from epoch milliseconds (civil-from-days, Howard Hinnant's algorithm).
fn rfc3339_utc(ms: i64) -> String {
    let (secs, millis) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Waits until broadcast `id` is ACTIVE in the database; returns (scheduled_at, updated_at).
async fn activation(db: &mut PgConnection, id: i64) -> (i64, i64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, scheduled, updated): (String, i64, i64) =
            sqlx::query_as("SELECT status, scheduled_at, updated_at FROM broadcasts WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *db)
                .await
                .unwrap();
        if status == "ACTIVE" {
            return (scheduled, updated);
        }
        assert!(Instant::now() < deadline, "broadcast {id} never activated");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// MESSAGE events logged for broadcast `id`, once the relay has logged at least one.
async fn message_events(db: &mut PgConnection, id: i64) -> i64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM events WHERE broadcast_id = $1 AND kind = 'MESSAGE'")
                .bind(id)
                .fetch_one(&mut *db)
                .await
                .unwrap();
        if n > 0 {
            return n;
        }
        assert!(Instant::now() < deadline, "broadcast {id} was activated but its MESSAGE never logged");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn leader(db: &mut PgConnection) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let holder: Option<String> =
            sqlx::query_scalar("SELECT holder FROM leases WHERE name = 'herald-leader'")
                .fetch_optional(&mut *db)
                .await
                .unwrap();
        if let Some(h) = holder {
            return h;
        }
        assert!(Instant::now() < deadline, "nobody took the lease");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn two_nodes_activate_once_and_the_survivor_takes_over_when_the_leader_is_killed() {
    let Some((admin, name, url)) = fresh_db().await else { return };
    let lease = format!("{LEASE_MS}ms");
    let mut nodes = vec![
        ("node-a", serve(&url, &["--node-id", "node-a", "--lease-ttl", &lease])),
        ("node-b", serve(&url, &["--node-id", "node-b", "--lease-ttl", &lease])),
    ];
    let mut db = PgConnection::connect(&url).await.unwrap();
    let client = reqwest::Client::new();

    let first_leader = leader(&mut db).await;
    let follower = nodes.iter().find(|(n, _)| *n != first_leader).map(|(_, s)| s).unwrap();
    let first = schedule(&client, follower, now_ms() + 2_000).await;
    let (due, at) = activation(&mut db, first).await;
    assert!(at >= due && at - due < 1_000, "activated {}ms after its time", at - due);
    assert_eq!(message_events(&mut db, first).await, 1, "one activation, one set of events");

    let idx = nodes.iter().position(|(n, _)| *n == first_leader).unwrap();
    let (_, mut dead) = nodes.remove(idx);
    dead.child.kill().unwrap(); // SIGKILL: the lease is not released
    dead.wait_exit();
    let (survivor_name, survivor) = &nodes[0];
    let second = schedule(&client, survivor, now_ms() + 2_000).await;
    let (due, at) = activation(&mut db, second).await;
    assert!(at - due <= LEASE_MS + 1_000, "failover activation took {}ms past its time", at - due);
    assert_eq!(message_events(&mut db, second).await, 1);
    assert_eq!(message_events(&mut db, first).await, 1, "the first broadcast was not activated again");
    assert_eq!(leader(&mut db).await, *survivor_name);

    // Several nodes on the in-process bus is a misconfiguration the logs must call out.
    let logs: Vec<String> = survivor.logs.try_iter().collect();
    assert!(logs.iter().any(|l| l.contains("several nodes need the Kafka bus")), "{logs:?}");
    drop(nodes);
    db.close().await.unwrap();
    drop_db(&admin, &name).await;
}
