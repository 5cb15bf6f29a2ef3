//! The audience, decided twice: by the domain rule ([`herald_domain::Target::includes`]) and, for
//! speed, by each backend's SQL (counts, per-user rows, inboxes). On generated directories and
//! targets both must name the same users.

use crate::{draft, open};
use herald_domain::{Broadcast, Target, TargetType, Timestamp, User, UserId};
use herald_store::Store;
use herald_testkit::Backend;
use std::collections::BTreeSet;

/// xorshift64*: small, reproducible, good enough to vary directories.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Each of `names` with probability one half.
    fn subset(&mut self, names: &[&str]) -> BTreeSet<String> {
        names.iter().filter(|_| self.next().is_multiple_of(2)).map(|n| (*n).to_owned()).collect()
    }
}

/// Some names differ only in case: they are the same name.
const ROLES: [&str; 6] = ["ADMIN", "admin", "Ops", "OPS", "SALES", "USER"];
const PRODUCTS: [&str; 4] = ["Payments", "PAYMENTS", "analytics", "Cards"];

fn target(rng: &mut Rng, users: &[User]) -> Target {
    let pick = |rng: &mut Rng, names: &[&str]| {
        let mut ids: Vec<String> = rng.subset(names).into_iter().collect();
        if ids.is_empty() {
            ids.push(names[rng.below(names.len())].to_owned());
        }
        ids
    };
    match rng.below(4) {
        0 => Target { target_type: TargetType::All, target_ids: vec![] },
        1 => Target { target_type: TargetType::Role, target_ids: pick(rng, &ROLES) },
        2 => Target { target_type: TargetType::Product, target_ids: pick(rng, &PRODUCTS) },
        _ => {
            let ids: Vec<&str> = users.iter().map(|u| u.user_id.as_str()).collect();
            Target { target_type: TargetType::Selected, target_ids: pick(rng, &ids) }
        }
    }
}

pub async fn sql_audiences_match_the_domain_rule(backend: Backend) {
    let db = backend.fresh_database().await;
    let store = open(&db).await;
    let now = Timestamp::now();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut directory: Vec<User> = Vec::new();
    for round in 0..3 {
        for i in 0..10 {
            let user = User {
                user_id: UserId::parse("userId", &format!("r{round}-u{i:02}")).unwrap(),
                roles: rng.subset(&ROLES),
                products: rng.subset(&PRODUCTS),
            };
            store.put_user(&user, now).await.unwrap();
            directory.push(user);
        }
        let mut broadcasts = Vec::new();
        for _ in 0..8 {
            let t = target(&mut rng, &directory);
            let new = draft(now, |r| {
                r.target_type = Some(t.target_type.as_str().to_owned());
                r.target_ids = Some(t.target_ids.clone());
            });
            broadcasts.push(store.create_broadcast(&new, now).await.unwrap());
        }
        check(&store, &directory, &broadcasts, now).await;
    }
    store.close().await;
    db.drop_database().await;
}

async fn check(
    store: &std::sync::Arc<dyn Store>,
    directory: &[User],
    broadcasts: &[Broadcast],
    now: Timestamp,
) {
    let counts = store.counts_of(broadcasts).await.unwrap();
    for (b, counts) in broadcasts.iter().zip(counts) {
        let expected: Vec<&str> =
            directory.iter().filter(|u| b.target.includes(u)).map(|u| u.user_id.as_str()).collect();
        let mut expected = expected;
        expected.sort_unstable();
        assert_eq!(counts.targeted as usize, expected.len(), "counts of {:?}", b.target);
        assert_eq!(store.audience_size(b).await.unwrap() as usize, expected.len(), "size of {:?}", b.target);
        let rows = store.deliveries(b, None, 1_000).await.unwrap();
        let listed: Vec<&str> = rows.iter().map(|r| r.user_id.as_str()).collect();
        assert_eq!(listed, expected, "rows of {:?}", b.target);
    }
    let these: BTreeSet<i64> = broadcasts.iter().map(|b| b.id).collect();
    for user in directory {
        let inbox = store.inbox(user.user_id.as_str(), None, 1_000, now).await.unwrap();
        let got: BTreeSet<i64> =
            inbox.iter().map(|i| i.broadcast.id).filter(|id| these.contains(id)).collect();
        let expected: BTreeSet<i64> =
            broadcasts.iter().filter(|b| b.target.includes(user)).map(|b| b.id).collect();
        assert_eq!(got, expected, "inbox of {}", user.user_id);
    }
}
