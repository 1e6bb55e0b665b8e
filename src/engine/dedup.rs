//! Duplicate detection (RFC 5080 §2.2.2).
//!
//! A request is the same request when it comes from the same client address
//! and port, to the same listener, with the same Identifier and Request
//! Authenticator. While it is in flight a duplicate is dropped; once answered
//! a duplicate gets the cached answer, byte for byte, for `window`. The cache
//! is bounded: when full, the oldest answered entry goes first; in-flight
//! entries are bounded by the upstream identifier space and never evicted.

use std::collections::VecDeque;
use std::collections::hash_map::Entry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::HashMap;
use crate::radius::Authenticator;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DedupKey {
    pub listener: u16,
    pub from: SocketAddr,
    pub identifier: u8,
    pub authenticator: Authenticator,
}

#[derive(Debug)]
enum State {
    InFlight,
    Answered { reply: Arc<[u8]>, expires: Instant },
}

/// What to do with an incoming request.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Not seen: it is now recorded as in flight.
    New,
    /// Seen and not yet answered: drop it.
    InFlight,
    /// Seen and answered: send this again.
    Answered(Arc<[u8]>),
    /// Not seen, but the cache is full of requests in flight.
    Full,
}

#[derive(Debug)]
pub struct DedupCache {
    map: HashMap<DedupKey, State>,
    /// Answered entries in the order they were answered: the order they
    /// expire, unless a reload shortened the window (then a lookup also
    /// checks the entry's own expiry).
    expiry: VecDeque<(Instant, DedupKey)>,
    window: Duration,
    max: usize,
    /// Requests in flight per listener: a listener a reload removed is
    /// closed once its count is zero.
    in_flight: Vec<u32>,
}

impl DedupCache {
    pub fn new(window: Duration, max: usize) -> DedupCache {
        DedupCache {
            map: HashMap::default(),
            expiry: VecDeque::new(),
            window,
            max,
            in_flight: Vec::new(),
        }
    }

    /// A reload's window and bound. The window applies to answers cached
    /// from now on; a smaller bound evicts the oldest answers as entries
    /// come.
    pub fn set_limits(&mut self, window: Duration, max: usize) {
        self.window = window;
        self.max = max;
    }

    /// Requests received on `listener` and not yet answered or given up.
    pub fn in_flight_on(&self, listener: u16) -> u32 {
        self.in_flight
            .get(usize::from(listener))
            .copied()
            .unwrap_or(0)
    }

    fn count(&mut self, listener: u16, up: bool) {
        let i = usize::from(listener);
        if self.in_flight.len() <= i {
            self.in_flight.resize(i + 1, 0);
        }
        let n = &mut self.in_flight[i];
        *n = if up { *n + 1 } else { n.saturating_sub(1) };
    }

    pub fn lookup(&mut self, key: DedupKey, now: Instant) -> Lookup {
        self.expire(now);
        match self.map.get(&key) {
            Some(State::InFlight) => return Lookup::InFlight,
            Some(State::Answered { reply, expires }) if *expires > now => {
                return Lookup::Answered(reply.clone());
            }
            Some(State::Answered { .. }) => {
                self.map.remove(&key);
            }
            None => {}
        }
        while self.map.len() >= self.max {
            if !self.evict_oldest() {
                return Lookup::Full;
            }
        }
        self.map.insert(key, State::InFlight);
        self.count(key.listener, true);
        Lookup::New
    }

    /// Records the answer sent for `key`.
    pub fn answer(&mut self, key: DedupKey, reply: Arc<[u8]>, now: Instant) {
        let expires = now + self.window;
        match self.map.entry(key) {
            Entry::Occupied(mut e) => {
                if let State::InFlight = e.insert(State::Answered { reply, expires }) {
                    self.count(key.listener, false);
                }
            }
            Entry::Vacant(e) => {
                if self.max == 0 {
                    return;
                }
                e.insert(State::Answered { reply, expires });
            }
        }
        self.expiry.push_back((expires, key));
        while self.map.len() > self.max && self.evict_oldest() {}
    }

    /// Forgets a request that was given up without an answer, so that a
    /// retransmission is treated as new.
    pub fn forget(&mut self, key: &DedupKey) {
        if let Some(State::InFlight) = self.map.get(key) {
            self.map.remove(key);
            self.count(key.listener, false);
        }
    }

    /// Removes expired answers. Returns the next expiry, if any.
    pub fn expire(&mut self, now: Instant) -> Option<Instant> {
        while let Some(&(at, key)) = self.expiry.front() {
            if at > now {
                return Some(at);
            }
            self.expiry.pop_front();
            if let Entry::Occupied(e) = self.map.entry(key) {
                if matches!(e.get(), State::Answered { expires, .. } if *expires <= now) {
                    e.remove();
                }
            }
        }
        None
    }

    pub fn next_expiry(&self) -> Option<Instant> {
        self.expiry.front().map(|(at, _)| *at)
    }

    fn evict_oldest(&mut self) -> bool {
        while let Some((_, key)) = self.expiry.pop_front() {
            if let Entry::Occupied(e) = self.map.entry(key) {
                if let State::Answered { .. } = e.get() {
                    e.remove();
                    return true;
                }
            }
        }
        false
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(port: u16, id: u8, a: u8) -> DedupKey {
        DedupKey {
            listener: 0,
            from: SocketAddr::from(([127, 0, 0, 1], port)),
            identifier: id,
            authenticator: [a; 16],
        }
    }

    #[test]
    fn lifecycle() {
        let t0 = Instant::now();
        let mut c = DedupCache::new(Duration::from_secs(5), 100);
        assert_eq!(c.lookup(key(1, 1, 1), t0), Lookup::New);
        assert_eq!(c.lookup(key(1, 1, 1), t0), Lookup::InFlight);
        // Same id and port, other authenticator: a new request.
        assert_eq!(c.lookup(key(1, 1, 2), t0), Lookup::New);
        c.answer(key(1, 1, 1), Arc::from(&b"reply"[..]), t0);
        assert_eq!(
            c.lookup(key(1, 1, 1), t0 + Duration::from_secs(4)),
            Lookup::Answered(Arc::from(&b"reply"[..]))
        );
        assert_eq!(
            c.lookup(key(1, 1, 1), t0 + Duration::from_secs(5)),
            Lookup::New
        );
        assert_eq!(
            c.in_flight_on(0),
            2,
            "the expired answer's request is new again"
        );
        c.forget(&key(1, 1, 2));
        assert_eq!(c.in_flight_on(0), 1);
        assert_eq!(
            c.lookup(key(1, 1, 2), t0 + Duration::from_secs(6)),
            Lookup::New
        );
    }

    #[test]
    fn bounded_evicts_oldest_answer_never_in_flight() {
        let t0 = Instant::now();
        let mut c = DedupCache::new(Duration::from_secs(60), 3);
        for i in 0..3 {
            assert_eq!(c.lookup(key(1, i, 0), t0), Lookup::New);
        }
        assert_eq!(c.lookup(key(1, 9, 0), t0), Lookup::Full);
        c.answer(key(1, 0, 0), Arc::from(&b"a"[..]), t0);
        assert_eq!(c.lookup(key(1, 9, 0), t0), Lookup::New);
        assert_eq!(
            c.lookup(key(1, 0, 0), t0),
            Lookup::Full,
            "the answered entry was evicted, the rest are in flight"
        );
        assert_eq!(c.lookup(key(1, 1, 0), t0), Lookup::InFlight);
    }

    #[test]
    fn a_shorter_window_applies_to_answers_cached_after_it() {
        let t0 = Instant::now();
        let mut c = DedupCache::new(Duration::from_secs(30), 100);
        c.lookup(key(1, 1, 0), t0);
        c.answer(key(1, 1, 0), Arc::from(&b"a"[..]), t0);
        c.set_limits(Duration::from_secs(5), 100);
        c.lookup(key(1, 2, 0), t0);
        c.answer(key(1, 2, 0), Arc::from(&b"b"[..]), t0);
        let t = t0 + Duration::from_secs(6);
        assert_eq!(c.lookup(key(1, 2, 0), t), Lookup::New, "its own window");
        assert_eq!(
            c.lookup(key(1, 1, 0), t),
            Lookup::Answered(Arc::from(&b"a"[..])),
            "the old one keeps the window it was cached under"
        );
    }

    proptest! {
        /// Against a model: never more than `max` entries, and an answered
        /// request inside the window always gets exactly its own answer.
        #[test]
        fn matches_model(ops in proptest::collection::vec((0u16..4, 0u8..4, 0u8..2, 0u64..40, any::<bool>()), 1..200)) {
            let t0 = Instant::now();
            let mut c = DedupCache::new(Duration::from_secs(10), 8);
            let mut now = t0;
            for (port, id, a, dt, answer) in ops {
                now += Duration::from_millis(dt * 100);
                let k = key(port, id, a);
                let r = c.lookup(k, now);
                prop_assert!(c.len() <= 8);
                if let Lookup::Answered(bytes) = &r {
                    prop_assert_eq!(&bytes[..], &[port as u8, id, a][..]);
                }
                if answer && r == Lookup::New {
                    c.answer(k, Arc::from(&[port as u8, id, a][..]), now);
                }
                prop_assert!(c.len() <= 8);
            }
        }
    }
}
