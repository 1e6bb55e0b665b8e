//! Upstream servers: identifier allocation and health.

use std::time::{Duration, Instant};

/// The 256 identifiers of one (socket, upstream) pair.
#[derive(Clone, Debug)]
pub(crate) struct IdPool {
    used: [u64; 4],
    next: u8,
    in_use: u16,
}

impl IdPool {
    pub(crate) fn new(start: u8) -> IdPool {
        IdPool {
            used: [0; 4],
            next: start,
            in_use: 0,
        }
    }

    /// A free identifier, preferring the one after the last handed out, so
    /// that a just-freed identifier is not reused at once (a late reply to
    /// it would otherwise match the new request).
    pub(crate) fn alloc(&mut self) -> Option<u8> {
        if self.in_use == 256 {
            return None;
        }
        for i in 0..=255u8 {
            let id = self.next.wrapping_add(i);
            let (w, b) = (usize::from(id / 64), id % 64);
            if self.used[w] & (1 << b) == 0 {
                self.used[w] |= 1 << b;
                self.in_use += 1;
                self.next = id.wrapping_add(1);
                return Some(id);
            }
        }
        None
    }

    /// No identifier is handed out.
    pub(crate) fn is_empty(&self) -> bool {
        self.in_use == 0
    }

    pub(crate) fn free(&mut self, id: u8) {
        let (w, b) = (usize::from(id / 64), id % 64);
        if self.used[w] & (1 << b) != 0 {
            self.used[w] &= !(1 << b);
            self.in_use -= 1;
        }
    }
}

/// Whether an upstream is used, from consecutive results.
#[derive(Clone, Debug)]
pub(crate) struct Health {
    pub(crate) alive: bool,
    fails: u32,
    oks: u32,
    pub(crate) dead_since: Option<Instant>,
    pub(crate) next_probe: Instant,
    pub(crate) probe_in_flight: bool,
    /// Dead, without health checks: a request is out to it as a trial.
    pub(crate) trial_in_flight: bool,
}

/// A change of state worth a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transition {
    None,
    Died,
    Revived,
}

impl Health {
    pub(crate) fn new(now: Instant) -> Health {
        Health {
            alive: true,
            fails: 0,
            oks: 0,
            dead_since: None,
            next_probe: now,
            probe_in_flight: false,
            trial_in_flight: false,
        }
    }

    /// A valid answer arrived.
    pub(crate) fn success(&mut self, alive_after: u32) -> Transition {
        self.fails = 0;
        if self.alive {
            return Transition::None;
        }
        self.oks += 1;
        if self.oks >= alive_after {
            self.alive = true;
            self.oks = 0;
            self.dead_since = None;
            return Transition::Revived;
        }
        Transition::None
    }

    /// A request or probe went unanswered.
    pub(crate) fn failure(&mut self, now: Instant, dead_after: u32) -> Transition {
        self.oks = 0;
        self.fails = self.fails.saturating_add(1);
        if self.alive && self.fails >= dead_after {
            self.alive = false;
            self.dead_since = Some(now);
            return Transition::Died;
        }
        Transition::None
    }

    /// Without probes, a dead upstream is given another chance after a while.
    pub(crate) fn revive_if_due(&mut self, now: Instant, revive_after: Duration) -> Transition {
        match self.dead_since {
            Some(t) if !self.alive && now >= t + revive_after => {
                self.alive = true;
                self.fails = 0;
                self.dead_since = None;
                Transition::Revived
            }
            _ => Transition::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_pool_hands_out_all_256_then_none() {
        let mut p = IdPool::new(250);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..256 {
            assert!(seen.insert(p.alloc().expect("free id")));
        }
        assert_eq!(p.alloc(), None);
        p.free(7);
        p.free(7);
        assert_eq!(p.alloc(), Some(7));
        assert_eq!(p.alloc(), None);
    }

    #[test]
    fn id_pool_does_not_reuse_a_just_freed_id() {
        let mut p = IdPool::new(0);
        let a = p.alloc().expect("id");
        p.free(a);
        assert_ne!(p.alloc(), Some(a));
    }

    #[test]
    fn health_thresholds() {
        let t = Instant::now();
        let mut h = Health::new(t);
        assert_eq!(h.failure(t, 3), Transition::None);
        assert_eq!(h.failure(t, 3), Transition::None);
        assert_eq!(h.success(2), Transition::None, "a success resets the count");
        assert_eq!(h.failure(t, 3), Transition::None);
        assert_eq!(h.failure(t, 3), Transition::None);
        assert_eq!(h.failure(t, 3), Transition::Died);
        assert!(!h.alive);
        assert_eq!(h.success(2), Transition::None);
        assert_eq!(
            h.failure(t, 3),
            Transition::None,
            "a failure resets the revival count"
        );
        assert_eq!(h.success(2), Transition::None);
        assert_eq!(h.success(2), Transition::Revived);
        assert!(h.alive);
        h.failure(t, 1);
        assert_eq!(
            h.revive_if_due(t + Duration::from_secs(59), Duration::from_secs(60)),
            Transition::None
        );
        assert_eq!(
            h.revive_if_due(t + Duration::from_secs(60), Duration::from_secs(60)),
            Transition::Revived
        );
    }
}
