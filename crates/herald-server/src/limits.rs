//! Abuse limits: fixed-window rate limiters keyed by client IP or admin, open connections per
//! address, and the client IP itself (`X-Forwarded-For` is believed only from configured trusted
//! proxies).

use crate::ipnet::IpNet;
use axum::http::HeaderMap;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The client's address: the peer, or — when the peer is a trusted proxy — the nearest
/// untrusted address in `X-Forwarded-For` (read right to left).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let forwarded =
        headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>();
    let hops = forwarded.iter().flat_map(|v| v.split(',')).filter_map(|h| h.trim().parse::<IpAddr>().ok());
    let hops: Vec<IpAddr> = hops.collect();
    hops.into_iter().rev().find(|ip| !is_trusted(*ip)).unwrap_or(peer)
}

/// The limits one node enforces, built from the configuration.
#[derive(Debug)]
pub struct Limits {
    pub connects: RateLimiter,
    pub broadcasts: RateLimiter,
    pub trusted_proxies: Vec<IpNet>,
    /// Open connections per client address (streams per forwarded address behind a proxy).
    pub per_ip: Arc<ConnCounter>,
}

impl Limits {
    pub fn new(config: &crate::config::Config) -> Self {
        Self {
            connects: RateLimiter::new(config.connects_per_ip_per_minute, config.rate_limit_window),
            broadcasts: RateLimiter::new(config.broadcasts_per_admin_per_minute, config.rate_limit_window),
            // Checked by Config::check.
            trusted_proxies: config.trusted_proxies.iter().filter_map(|p| IpNet::parse(p).ok()).collect(),
            per_ip: Arc::new(ConnCounter::new(config.max_connections_per_ip)),
        }
    }

    /// The calling client's IP, when the connection's peer is known.
    pub fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        peer.map(|p| client_ip(p, headers, &self.trusted_proxies))
    }

    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|n| n.contains(ip))
    }
}

/// Open connections per address, at most `limit` each. A [`ConnSlot`] holds one until dropped.
#[derive(Debug)]
pub struct ConnCounter {
    limit: usize,
    // std Mutex: a map update per connection open and close, never held across an await.
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl ConnCounter {
    pub fn new(limit: usize) -> Self {
        Self { limit, open: Mutex::new(HashMap::new()) }
    }

    /// Takes a slot for `ip`, or `None` when it holds `limit` already.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<ConnSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.limit {
            return None;
        }
        *n += 1;
        Some(ConnSlot { counter: self.clone(), ip })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// One open connection of an address; gives its place back when dropped.
#[derive(Debug)]
pub struct ConnSlot {
    counter: Arc<ConnCounter>,
    ip: IpAddr,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut open = self.counter.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Keys tracked at most; past it, unknown keys are refused until windows expire, so a flood of
/// distinct keys cannot grow memory without bound.
const MAX_KEYS: usize = 100_000;

/// At most `limit` hits per key in each fixed window.
#[derive(Debug)]
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    // std Mutex: held for a map lookup only, never across an await.
    hits: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self { limit, window, hits: Mutex::new(HashMap::new()) }
    }

    /// Counts a hit for `key`; `Err(seconds)` says when to retry once over the limit.
    pub fn hit(&self, key: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut hits = self.hits.lock().unwrap_or_else(|e| e.into_inner());
        if hits.len() >= MAX_KEYS && !hits.contains_key(key) {
            hits.retain(|_, (start, _)| now.duration_since(*start) < self.window);
            if hits.len() >= MAX_KEYS {
                return Err(self.window.as_secs().max(1));
            }
        }
        let entry = hits.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.limit {
            let left = self.window.saturating_sub(now.duration_since(entry.0));
            return Err(left.as_secs_f64().ceil().max(1.0) as u64);
        }
        entry.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.9, 10.0.0.5".parse().unwrap());
        let trusted = [IpNet::parse("10.0.0.0/8").unwrap()];
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(client_ip(proxy, &headers, &trusted), "203.0.113.9".parse::<IpAddr>().unwrap());
        let stranger: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(
            client_ip(stranger, &headers, &trusted),
            stranger,
            "spoofed header from an untrusted peer"
        );
    }

    #[test]
    fn an_address_holds_at_most_its_limit_of_connections_until_one_closes() {
        let counter = Arc::new(ConnCounter::new(2));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let (a, _b) = (counter.acquire(ip).unwrap(), counter.acquire(ip).unwrap());
        assert!(counter.acquire(ip).is_none());
        assert!(counter.acquire("192.0.2.2".parse().unwrap()).is_some(), "addresses are independent");
        drop(a);
        assert!(counter.acquire(ip).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn the_limit_holds_within_a_window_and_resets_after_it() {
        let limiter = RateLimiter::new(2, Duration::from_secs(60));
        assert!(limiter.hit("a").is_ok() && limiter.hit("a").is_ok());
        assert_eq!(limiter.hit("a"), Err(60));
        assert!(limiter.hit("b").is_ok(), "keys are independent");
        tokio::time::advance(Duration::from_secs(45)).await;
        assert_eq!(limiter.hit("a"), Err(15));
        tokio::time::advance(Duration::from_secs(15)).await;
        assert!(limiter.hit("a").is_ok());
    }
}
