//! The scheduler's timing, on tokio's paused clock: activations and expiries happen at their time
//! to the millisecond, and a sooner schedule wakes the sleeping scheduler, without a test waiting
//! for the wall clock. (The store's due logic is the contract tests' and the domain's.)

use super::*;
use herald_domain::{command, Broadcast, BroadcastStatus, CreateBroadcastRequest};
use std::sync::Mutex;
use tokio::time::Instant;

/// Follows tokio's time from a fixed start, so a paused test runtime controls it.
struct TokioClock {
    base: Timestamp,
    start: Instant,
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        self.base.plus_millis(self.start.elapsed().as_millis() as i64)
    }
}

/// Broadcasts in memory, changed by the domain's decisions; every change is noted with its time.
#[derive(Default)]
struct Fake {
    broadcasts: Mutex<Vec<Broadcast>>,
    changes: Mutex<Vec<(i64, BroadcastStatus, Timestamp)>>,
    signals: Signals,
}

#[async_trait]
impl Schedule for Arc<Fake> {
    fn signals(&self) -> &Signals {
        &self.signals
    }

    async fn next_due(&self) -> StoreResult<Option<Timestamp>> {
        let all = self.broadcasts.lock().unwrap();
        let due = all.iter().flat_map(|b| match b.status {
            BroadcastStatus::Scheduled => [b.scheduled_at, b.expires_at],
            BroadcastStatus::Active => [None, b.expires_at],
            _ => [None, None],
        });
        Ok(due.flatten().min())
    }

    async fn run_due(&self, now: Timestamp) -> StoreResult<DueWork> {
        let mut work = DueWork::default();
        for b in self.broadcasts.lock().unwrap().iter_mut() {
            if let Some(change) = command::due(b, now) {
                *b = change.state;
                self.changes.lock().unwrap().push((b.id, b.status, now));
                match b.status {
                    BroadcastStatus::Active => work.activated += 1,
                    _ => work.expired += 1,
                }
            }
        }
        Ok(work)
    }
}

fn scheduled(id: i64, now: Timestamp, at_ms: i64, expires_ms: Option<i64>) -> Broadcast {
    let req = CreateBroadcastRequest {
        sender_id: Some("admin".into()),
        content: Some("later".into()),
        target_type: Some("ALL".into()),
        scheduled_at: Some(now.plus_millis(at_ms).to_rfc3339()),
        expires_at: expires_ms.map(|ms| now.plus_millis(ms).to_rfc3339()),
        ..Default::default()
    };
    command::create(req.validate(now).unwrap(), id, uuid::Uuid::nil(), now).state
}

/// Waits (in tokio's time) until `n` changes were noted; each change carries its own time, so
/// how often this looks does not matter.
async fn changes(fake: &Fake, n: usize) -> Vec<(i64, BroadcastStatus, Timestamp)> {
    loop {
        let seen = fake.changes.lock().unwrap().clone();
        if seen.len() >= n {
            return seen;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn broadcasts_activate_and_expire_at_their_times_and_a_sooner_one_wakes_the_scheduler() {
    let clock =
        Arc::new(TokioClock { base: Timestamp::from_millis(1_800_000_000_000), start: Instant::now() });
    let t0 = clock.now();
    let fake = Arc::new(Fake::default());
    fake.broadcasts.lock().unwrap().push(scheduled(1, t0, 3_600_000, Some(7_200_000)));
    let stop = CancellationToken::new();
    let task = tokio::spawn(run(fake.clone(), clock.clone(), stop.clone()));

    // The scheduler now sleeps for an hour; a sooner broadcast and the store's signal wake it.
    tokio::time::sleep(Duration::from_secs(60)).await;
    fake.broadcasts.lock().unwrap().push(scheduled(2, clock.now(), 30_000, None));
    fake.signals.schedule.notify_one();

    let seen = changes(&fake, 3).await;
    let at = |ms: i64| t0.plus_millis(ms);
    assert_eq!(seen[0], (2, BroadcastStatus::Active, at(90_000)), "the sooner one, at its time");
    assert_eq!(seen[1], (1, BroadcastStatus::Active, at(3_600_000)));
    assert_eq!(seen[2], (1, BroadcastStatus::Expired, at(7_200_000)));
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn overdue_work_runs_at_once_and_a_passed_window_expires_unsent() {
    let clock =
        Arc::new(TokioClock { base: Timestamp::from_millis(1_800_000_000_000), start: Instant::now() });
    let t0 = clock.now();
    let fake = Arc::new(Fake::default());
    let mut late = scheduled(1, t0.plus_millis(-10_000), 1_000, Some(2_000));
    late.status = BroadcastStatus::Scheduled;
    fake.broadcasts.lock().unwrap().push(late);
    let stop = CancellationToken::new();
    let task = tokio::spawn(run(fake.clone(), clock.clone(), stop.clone()));
    let seen = changes(&fake, 1).await;
    assert_eq!(seen, [(1, BroadcastStatus::Expired, t0)], "its whole window passed while nothing ran");
    stop.cancel();
    task.await.unwrap();
}
