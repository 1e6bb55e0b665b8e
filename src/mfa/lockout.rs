//! The lockout rule (SPEC §3): how many wrong codes lock a user, and for how long.

/// The lockout policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Denials that lock the account.
    pub denials: u32,
    /// Seconds after the first denial of a run when the count restarts.
    pub reset_after: i64,
    /// Seconds a lockout lasts.
    pub unblock_after: i64,
}
