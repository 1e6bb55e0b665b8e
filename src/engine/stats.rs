//! Counters. Every drop has a reason and every reason a counter, so an
//! administrator can tell a wrong secret from a flood from a dead upstream.

use std::fmt;

use crate::mfa::ResultCode;

macro_rules! counters {
    ($($variant:ident => $name:literal,)*) => {
        /// One thing the engine counts.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Counter { $($variant,)* }

        impl Counter {
            pub const ALL: &'static [Counter] = &[$(Counter::$variant,)*];

            /// A stable snake_case name, for logs and metrics.
            pub fn name(self) -> &'static str {
                match self { $(Counter::$variant => $name,)* }
            }
        }
    };
}

counters! {
    // From NAS clients.
    RequestsReceived => "requests_received",
    AccessRequests => "access_requests",
    AccountingRequests => "accounting_requests",
    StatusServerAnswered => "status_server_answered",
    DuplicateResent => "duplicate_resent",
    DropUnknownClient => "drop_unknown_client",
    DropListenerClosed => "drop_listener_closed",
    DropMalformed => "drop_malformed",
    DropOversized => "drop_oversized",
    DropUnexpectedCode => "drop_unexpected_code",
    DropMissingMessageAuthenticator => "drop_missing_message_authenticator",
    DropBadMessageAuthenticator => "drop_bad_message_authenticator",
    DropBlastRadiusProxyState => "drop_blastradius_proxy_state",
    DropBadRequestAuthenticator => "drop_bad_request_authenticator",
    DropBadUserPassword => "drop_bad_user_password",
    DropDuplicateInFlight => "drop_duplicate_in_flight",
    DropDedupFull => "drop_dedup_full",
    DropNoUpstream => "drop_no_upstream",
    DropIdsExhausted => "drop_ids_exhausted",
    DropTooLargeToForward => "drop_too_large_to_forward",
    RejectAllUpstreamsDown => "reject_all_upstreams_down",
    // To and from upstreams.
    UpstreamRequests => "upstream_requests",
    UpstreamRetransmits => "upstream_retransmits",
    UpstreamTimeouts => "upstream_timeouts",
    UpstreamFailovers => "upstream_failovers",
    UpstreamProbes => "upstream_probes",
    UpstreamReplies => "upstream_replies",
    UpstreamDropUnknownSource => "upstream_drop_unknown_source",
    UpstreamDropMalformed => "upstream_drop_malformed",
    UpstreamDropUnmatched => "upstream_drop_unmatched",
    UpstreamDropUnexpectedCode => "upstream_drop_unexpected_code",
    UpstreamDropBadAuthenticator => "upstream_drop_bad_authenticator",
    UpstreamDropMissingMessageAuthenticator => "upstream_drop_missing_message_authenticator",
    UpstreamDropBadMessageAuthenticator => "upstream_drop_bad_message_authenticator",
    UpstreamDropProxyStateMismatch => "upstream_drop_proxy_state_mismatch",
    UpstreamDropBadEncryptedAttribute => "upstream_drop_bad_encrypted_attribute",
    UpstreamDropReplyTooLarge => "upstream_drop_reply_too_large",
    // To NAS clients.
    RepliesAccept => "replies_accept",
    RepliesReject => "replies_reject",
    RepliesChallenge => "replies_challenge",
    RepliesAccounting => "replies_accounting",
    // The second factor.
    MfaChallenges => "mfa_challenges",
    MfaAccepts => "mfa_accepts",
    MfaRejects => "mfa_rejects",
    MfaTimeouts => "mfa_timeouts",
    MfaStoreFailures => "mfa_store_failures",
    StoreQueueFull => "mfa_store_queue_full",
    MfaAuditFailures => "mfa_audit_failures",
    MfaBusy => "mfa_busy",
    MfaUsedCache => "mfa_used_cache",
    // A challenge answered here that another node sent (the NAS failed
    // over between the rounds), taken over from the store.
    MfaTakenOver => "mfa_challenges_taken_over",
    // A challenge this node sent whose answer another node took over: that
    // node ends the login and records it.
    MfaHandedAway => "mfa_challenges_handed_away",
    MfaOobStarted => "mfa_oob_started",
    MfaDeliveryFailures => "mfa_delivery_failures",
    MfaFraudReports => "mfa_fraud_reports",
    // The first factor from a directory ([primary] mode = "ldap"): checks
    // asked for, then one verdict each.
    DirectoryChecks => "directory_checks",
    DirectoryAccepted => "directory_accepted",
    DirectoryWrongPassword => "directory_wrong_password_or_unknown_user",
    DirectoryAccountLocked => "directory_account_locked",
    DirectoryAccountDisabled => "directory_account_disabled",
    DirectoryAccountExpired => "directory_account_expired",
    DirectoryPasswordExpired => "directory_password_expired",
    DirectoryPasswordMustChange => "directory_password_must_change",
    DirectoryLogonRestricted => "directory_logon_restricted",
    DirectoryEmptyPassword => "directory_empty_password",
    DirectoryAmbiguousName => "directory_ambiguous_name",
    DirectoryRefusedOther => "directory_refused_other",
    DirectoryUnreachable => "directory_unreachable",
    DirectoryNoAnswer => "directory_no_answer",
    DirectoryServiceAccountRefused => "directory_service_account_refused",
    DirectorySearchRefused => "directory_search_refused",
    DirectoryOverloaded => "directory_overloaded",
    // The shell never answered within the check's time (a backstop: it
    // answers NoAnswer first).
    DirectoryLost => "directory_checks_lost",
    // Provider callbacks.
    CallbackAccepted => "callback_accepted",
    CallbackUnknown => "callback_unknown",
    CallbackBadSignature => "callback_bad_signature",
    CallbackMalformed => "callback_malformed",
    // For a verification another node holds (or whose number the NAS
    // shows): checked by the store and kept there for that node.
    CallbackPassed => "callback_passed",
    // The store could not keep a callback passed on: 503, to be retried.
    CallbackUnavailable => "callback_unavailable",
    // Answers kept by another node, taken from the store here.
    CallbackTaken => "callback_answers_taken",
}

/// Per-upstream figures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpstreamStats {
    /// The upstream's name (figures follow it across reloads).
    pub name: String,
    pub requests: u64,
    pub replies: u64,
    pub timeouts: u64,
    pub alive: bool,
    /// Sum and count of round-trip times, in microseconds, of first tries.
    pub rtt_sum_us: u64,
    pub rtt_count: u64,
    /// How many round trips took at most each of [`RTT_BUCKETS_US`].
    pub rtt_buckets: [u64; RTT_BUCKETS_US.len()],
}

/// Upper bounds of the round-trip histogram, in microseconds.
pub const RTT_BUCKETS_US: [u64; 12] = [
    250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000, 5_000_000,
];

impl UpstreamStats {
    pub(crate) fn record_rtt(&mut self, us: u64) {
        self.rtt_sum_us += us;
        self.rtt_count += 1;
        if let Some(i) = RTT_BUCKETS_US.iter().position(|&b| us <= b) {
            self.rtt_buckets[i] += 1;
        }
    }
}

/// All counters of one engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    counts: Vec<u64>,
    pub upstreams: Vec<UpstreamStats>,
    /// Logins by result code: `[rejected, accepted]`, in `ResultCode::ALL` order.
    results: Vec<[u64; 2]>,
}

impl Stats {
    /// Zero counts; `upstreams` is filled in by `Engine::stats`.
    pub(crate) fn new() -> Stats {
        Stats {
            counts: vec![0; Counter::ALL.len()],
            results: vec![[0; 2]; ResultCode::ALL.len()],
            upstreams: Vec::new(),
        }
    }

    pub(crate) fn inc(&mut self, c: Counter) {
        self.counts[c as usize] += 1;
    }

    pub(crate) fn login(&mut self, r: ResultCode, accepted: bool) {
        self.results[r as usize][usize::from(accepted)] += 1;
    }

    /// Logins that ended with `r`, rejected and accepted.
    pub fn logins(&self, r: ResultCode) -> [u64; 2] {
        self.results[r as usize]
    }

    pub fn get(&self, c: Counter) -> u64 {
        self.counts[c as usize]
    }

    /// Every counter with its name, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (Counter, u64)> + '_ {
        Counter::ALL.iter().map(|&c| (c, self.get(c)))
    }
}

impl fmt::Display for Stats {
    /// The non-zero counters, `name=value` separated by spaces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (c, v) in self.iter().filter(|(_, v)| *v > 0) {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            write!(f, "{}={v}", c.name())?;
        }
        Ok(())
    }
}
