//! Warnings that a flood could repeat: a NAS that does not sign, an
//! upstream that answers unsigned, every upstream dead. Each is logged at
//! most once per [`INTERVAL`] and key, with how many were held back, so a
//! misconfiguration is visible at the default level without drowning the log.

use std::time::{Duration, Instant};

use super::HashMap;

/// The shortest time between two lines of the same key.
pub(super) const INTERVAL: Duration = Duration::from_secs(10);

/// What a warning is about. Keys are bounded by the configuration (client
/// and upstream ids; a reload drops those of entries it replaced), so the
/// table never grows with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Topic {
    /// A client sent an Access-Request without Message-Authenticator.
    ClientUnsigned(u32),
    /// A client's Message-Authenticator did not verify.
    ClientBadSignature(u32),
    /// An upstream answered without Message-Authenticator.
    UpstreamUnsigned(u32),
    /// An upstream's reply failed its Response Authenticator.
    UpstreamForged(u32),
    /// No live upstream was left for a request.
    NoUpstream,
    /// The store failed a login's question, or did not answer in time.
    StoreUnavailable,
    /// A job nobody waits for (a block, a denial) could not be handed over.
    StoreJobLost,
    /// A login's audit record could not be stored.
    AuditUnrecorded,
}

/// When each topic was last logged, and how many were held back since.
#[derive(Debug, Default)]
pub(super) struct Throttle {
    last: HashMap<Topic, (Instant, u64)>,
}

impl Throttle {
    /// Keeps the topics `keep` says are still about something configured.
    pub(super) fn retain(&mut self, keep: impl Fn(&Topic) -> bool) {
        self.last.retain(|t, _| keep(t));
    }

    /// `Some(held back since the last line)` when a line for `topic` may be
    /// written now; `None` when it is held back (and counted).
    pub(super) fn allow(&mut self, now: Instant, topic: Topic) -> Option<u64> {
        match self.last.get_mut(&topic) {
            Some((at, held)) if now.saturating_duration_since(*at) < INTERVAL => {
                *held += 1;
                None
            }
            Some((at, held)) => {
                *at = now;
                Some(std::mem::take(held))
            }
            None => {
                self.last.insert(topic, (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_held_back() {
        let mut t = Throttle::default();
        let t0 = Instant::now();
        let k = Topic::ClientUnsigned(0);
        assert_eq!(t.allow(t0, k), Some(0));
        for i in 1..=5 {
            assert_eq!(t.allow(t0 + Duration::from_secs(i), k), None);
        }
        assert_eq!(
            t.allow(t0 + INTERVAL, Topic::ClientUnsigned(1)),
            Some(0),
            "another client has its own line"
        );
        assert_eq!(t.allow(t0 + INTERVAL, k), Some(5));
        assert_eq!(t.allow(t0 + INTERVAL, k), None);
    }
}
