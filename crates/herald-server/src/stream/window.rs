//! The replay window: the most recent logged events with their frames, bounded by count and bytes.

use bytes::Bytes;
use herald_domain::Event;
use std::collections::VecDeque;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct Logged {
    pub event: Arc<Event>,
    pub frame: Option<Bytes>,
}

impl Logged {
    fn weight(&self) -> usize {
        // The event's own text is about the size of its frame; count both.
        2 * self.frame.as_ref().map_or(64, Bytes::len)
    }
}

#[derive(Debug)]
pub struct Window {
    entries: VecDeque<Logged>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

impl Window {
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self { entries: VecDeque::new(), bytes: 0, max_entries, max_bytes }
    }

    pub fn push(&mut self, logged: Logged) {
        self.bytes += logged.weight();
        self.entries.push_back(logged);
        while self.entries.len() > self.max_entries || (self.bytes > self.max_bytes && self.entries.len() > 1)
        {
            if let Some(old) = self.entries.pop_front() {
                self.bytes -= old.weight();
            }
        }
    }

    /// The entries with `after < seq <= upto`, or `None` when the window no longer holds all of
    /// them (the oldest needed event was evicted or never seen).
    pub fn range(&self, after: i64, upto: i64) -> Option<impl Iterator<Item = &Logged>> {
        if after >= upto {
            return Some(self.entries.range(0..0));
        }
        let first = self.entries.front()?.event.seq;
        if first > after + 1 {
            return None;
        }
        let start = self.entries.partition_point(|l| l.event.seq <= after);
        let end = self.entries.partition_point(|l| l.event.seq <= upto);
        Some(self.entries.range(start..end))
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_domain::{EventBody, User, UserId};

    fn logged(seq: i64) -> Logged {
        let user = User::bare(UserId::parse("userId", "u").unwrap());
        Logged {
            event: Arc::new(Event { seq, body: EventBody::UserChanged { user, deleted: false } }),
            frame: Some(Bytes::from(vec![b'x'; 10])),
        }
    }

    fn seqs(w: &Window, after: i64, upto: i64) -> Option<Vec<i64>> {
        w.range(after, upto).map(|it| it.map(|l| l.event.seq).collect())
    }

    #[test]
    fn keeps_the_newest_entries_within_its_bounds() {
        let mut w = Window::new(3, usize::MAX);
        (1..=5).for_each(|s| w.push(logged(s)));
        assert_eq!(w.len(), 3);
        assert_eq!(seqs(&w, 2, 5), Some(vec![3, 4, 5]));
        assert_eq!(seqs(&w, 1, 5), None, "event 2 was evicted");
        assert_eq!(seqs(&w, 3, 4), Some(vec![4]));
        assert_eq!(seqs(&w, 5, 5), Some(vec![]));
    }

    #[test]
    fn a_byte_bound_evicts_too() {
        let mut w = Window::new(100, 50);
        (1..=10).for_each(|s| w.push(logged(s)));
        assert!(w.len() <= 2, "{}", w.len());
    }
}
