//! Sign-in rate limits: attempts are counted per user and per address over
//! a sliding window; past the limit a sign-in is refused at once, before
//! any password is checked (so a guesser learns nothing and the upstream
//! or directory does not lock the account on our behalf). An attempt is
//! counted before it is checked, so attempts made at once cannot all slip
//! under the limit, and given back when it succeeds or could not be
//! checked. IPv6 addresses count by their /64 (one host holds a whole
//! /64). The address is the client's as [`super::client`] finds it: behind
//! a reverse proxy not listed in `trusted_proxies`, every user would share
//! the proxy's address and its limit. A node counts its own attempts;
//! behind a load balancer the limits hold per node.

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

    /// Counts an attempt of `user` from `address` at `now` if the limits
    /// allow one: `false` (nothing counted) if they do not.
    pub fn attempt(&mut self, user: &str, address: std::net::IpAddr, now: Instant) -> bool {
        if !self.allows(user, address, now) {
            return false;
        }
        self.failed(user, address, now);
        true
    }

    /// Gives back an attempt that succeeded or could not be checked.
    pub fn give_back(&mut self, user: &str, address: std::net::IpAddr) {
        if let Some(q) = self.users.get_mut(&crate::store::fold(user)) {
            q.pop_back();
        }
        if let Some(q) = self.addresses.get_mut(&network(address)) {
            q.pop_back();
        }
    }

    /// Whether a sign-in of `user` from `address` may be tried at `now`.
    pub fn allows(&mut self, user: &str, address: std::net::IpAddr, now: Instant) -> bool {
        let address = network(address);
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
        self.addresses
            .entry(network(address))
            .or_default()
            .push_back(now);
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

/// The key an address counts under: IPv4 as it is, IPv6 by its /64.
fn network(address: std::net::IpAddr) -> std::net::IpAddr {
    match address {
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            std::net::IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
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

    #[test]
    fn attempts_count_before_the_check_and_ipv6_by_its_64() {
        let t0 = Instant::now();
        let x: std::net::IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let y: std::net::IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        let z: std::net::IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        let mut l = Limiter::new(Duration::from_secs(60), 2, 100);
        assert!(l.attempt("eve", x, t0));
        assert!(l.attempt("eve", x, t0), "two at once");
        assert!(
            !l.attempt("eve", x, t0),
            "the third waits for neither check"
        );
        l.give_back("eve", x);
        assert!(l.attempt("eve", x, t0), "a success gives its attempt back");
        let mut l = Limiter::new(Duration::from_secs(60), 100, 2);
        assert!(l.attempt("a", x, t0));
        assert!(l.attempt("b", y, t0));
        assert!(!l.attempt("c", y, t0), "one /64, two attempts");
        assert!(l.attempt("c", z, t0), "another /64");
    }
}
