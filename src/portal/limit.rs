//! Sign-in rate limits: failed sign-ins are counted per user and per
//! address over a sliding window; past the limit a sign-in is refused at
//! once, before any password is checked (so a guesser learns nothing and
//! the upstream or directory does not lock the account on our behalf).
//! A node counts its own failures; behind a load balancer the limits hold
//! per node.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Keys tracked at most per kind; the oldest go first beyond it, so a
/// flood of made-up names cannot grow memory without bound.
const MAX_KEYS: usize = 100_000;

#[derive(Debug)]
pub struct Limiter {
    window: Duration,
    per_user: u32,
    per_address: u32,
    users: HashMap<String, VecDeque<Instant>>,
    addresses: HashMap<std::net::IpAddr, VecDeque<Instant>>,
}

impl Limiter {
    pub fn new(window: Duration, per_user: u32, per_address: u32) -> Limiter {
        Limiter {
            window,
            per_user,
            per_address,
            users: HashMap::new(),
            addresses: HashMap::new(),
        }
    }

    /// Whether a sign-in of `user` from `address` may be tried at `now`.
    pub fn allows(&mut self, user: &str, address: std::net::IpAddr, now: Instant) -> bool {
        let user = crate::store::fold(user);
        let w = self.window;
        let recent = |q: Option<&mut VecDeque<Instant>>| {
            q.map_or(0, |q| {
                while q.front().is_some_and(|t| now.duration_since(*t) >= w) {
                    q.pop_front();
                }
                q.len()
            })
        };
        recent(self.users.get_mut(&user)) < self.per_user as usize
            && recent(self.addresses.get_mut(&address)) < self.per_address as usize
    }

    /// A failed sign-in of `user` from `address` at `now`.
    pub fn failed(&mut self, user: &str, address: std::net::IpAddr, now: Instant) {
        if self.users.len() >= MAX_KEYS {
            self.prune(now);
        }
        self.users
            .entry(crate::store::fold(user))
            .or_default()
            .push_back(now);
        self.addresses.entry(address).or_default().push_back(now);
    }

    fn prune(&mut self, now: Instant) {
        let w = self.window;
        self.users
            .retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < w));
        self.addresses
            .retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < w));
        if self.users.len() >= MAX_KEYS {
            self.users.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_count_per_user_and_per_address_within_the_window() {
        let t0 = Instant::now();
        let a: std::net::IpAddr = "192.0.2.1".parse().expect("ip");
        let b: std::net::IpAddr = "192.0.2.2".parse().expect("ip");
        let mut l = Limiter::new(Duration::from_secs(60), 3, 5);
        for _ in 0..3 {
            assert!(l.allows("Alice", a, t0));
            l.failed("Alice", a, t0);
        }
        assert!(!l.allows("alice", b, t0), "per user, any address, any case");
        assert!(l.allows("bob", a, t0));
        l.failed("bob", a, t0);
        l.failed("carol", a, t0);
        assert!(!l.allows("dave", a, t0), "five from one address");
        assert!(l.allows("dave", b, t0));
        let later = t0 + Duration::from_secs(60);
        assert!(l.allows("alice", a, later), "the window moved on");
    }
}
