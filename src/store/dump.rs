//! A whole store as plain rows, the same for both backends: what `mfa-proxy
//! migrate` reads from SQLite and loads into an empty PostgreSQL database.
//!
//! Every table is here, row for row, with the ids that order the audit
//! trail and the histories. Token seeds stay sealed: both backends seal
//! them with the seed key, bound to the user's folded name
//! ([`seal::seal_token_seed`](super::seal::seal_token_seed)), so the bytes
//! move as they are and open under the same key. The bypass history is no
//! table of its own: it is read from the bypasses (granted or used).
//!
//! A dump holds password and PIN hashes and sealed seeds: its `Debug`
//! shows only how many rows it has.

use std::fmt;

use super::{HistoryEntry, Invitation, SealedSeed, Token, UnixTime, User};
use crate::mfa::Remembered;

/// Every row of a store.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Dump {
    /// Users with their groups, hashes and block.
    pub users: Vec<User>,
    /// Tokens with their replay state (`last_step`, `counter`, `active`)
    /// and their seeds, sealed.
    pub tokens: Vec<(Token, SealedSeed)>,
    pub lockouts: Vec<Lockout>,
    /// Used and unused; the bypass history.
    pub bypasses: Vec<Bypass>,
    /// Remembered logins, by user.
    pub remembered: Vec<(String, Remembered)>,
    /// Blocks and unblocks, by id.
    pub block_history: Vec<(i64, HistoryEntry)>,
    /// The audit trail, by id.
    pub audit: Vec<AuditRow>,
    /// Enrollment invitations, used or not, by user.
    pub invitations: Vec<Invitation>,
}

/// A user's denials toward a lockout (the user may be gone: lockouts
/// outlive users, as in both backends).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lockout {
    pub user: String,
    pub denials: i64,
    pub first_denial: UnixTime,
    pub locked_until: Option<UnixTime>,
}

/// A one-time bypass, used (`used_at`) or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bypass {
    pub id: i64,
    pub user: String,
    pub reason: String,
    pub created_at: UnixTime,
    pub until: UnixTime,
    pub used_at: Option<UnixTime>,
}

/// One audit record as stored: the result code as its text, so a code
/// this program no longer knows is copied as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRow {
    pub id: i64,
    pub at: UnixTime,
    pub user: String,
    pub result: String,
    pub accepted: bool,
    pub mode: String,
    pub server: String,
    pub client: String,
    pub client_ip: Option<String>,
    pub reason: Option<String>,
}

/// The rows of each table, as [`Counts`] counts them, in its order: the
/// same SQL on both backends.
pub(crate) const COUNTS_SQL: &str =
    "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM user_groups),
    (SELECT count(*) FROM tokens), (SELECT count(*) FROM lockouts),
    (SELECT count(*) FROM bypasses), (SELECT count(*) FROM remembered),
    (SELECT count(*) FROM block_history), (SELECT count(*) FROM audit),
    (SELECT count(*) FROM invitations)";

/// How many rows of each kind a store or a dump has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub users: u64,
    /// Group memberships, all users together.
    pub groups: u64,
    pub tokens: u64,
    pub lockouts: u64,
    pub bypasses: u64,
    pub remembered: u64,
    pub block_history: u64,
    pub audit: u64,
    pub invitations: u64,
}

impl Counts {
    /// Whether the store has nothing an administrator or a login made.
    pub fn is_empty(&self) -> bool {
        *self == Counts::default()
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} users ({} group memberships), {} tokens, {} lockout counters, {} bypasses, \
             {} remembered logins, {} block history records, {} audit records, {} invitations",
            self.users,
            self.groups,
            self.tokens,
            self.lockouts,
            self.bypasses,
            self.remembered,
            self.block_history,
            self.audit,
            self.invitations
        )
    }
}

impl Dump {
    pub fn counts(&self) -> Counts {
        let n = |v: usize| v as u64;
        Counts {
            users: n(self.users.len()),
            groups: n(self.users.iter().map(|u| u.groups.len()).sum()),
            tokens: n(self.tokens.len()),
            lockouts: n(self.lockouts.len()),
            bypasses: n(self.bypasses.len()),
            remembered: n(self.remembered.len()),
            block_history: n(self.block_history.len()),
            audit: n(self.audit.len()),
            invitations: n(self.invitations.len()),
        }
    }
}

impl fmt::Debug for Dump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dump({})", self.counts())
    }
}

#[cfg(test)]
#[path = "dump_tests.rs"]
mod tests;
