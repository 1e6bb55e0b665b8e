//! Everything that must survive a restart or be shared between proxies:
//! users, OATH tokens and their replay state, lockout counters, blocks,
//! one-time bypasses and the audit trail.
//!
//! Two traits: [`LoginStore`], the hot path a login's store jobs take (a
//! transaction, [`LoginTx`], per burst of jobs), and [`Store`], the
//! administration (users, tokens, reports, history) on top of it. The
//! SQLite backend ([`SqliteStore`]) implements both. Every method is a
//! short blocking call meant for a worker thread, never the packet path.
//! Every method that decides something (a code's step was unused, a bypass
//! was still there) does it atomically in the database, so two proxies, or
//! two concurrent answers, cannot both win.

mod burst;
#[cfg(test)]
mod conformance;
pub mod directory;
pub mod dump;
pub mod file;
pub mod login;
pub mod open;
/// Throwaway PostgreSQL servers for the tests.
#[cfg(test)]
#[path = "../../tests/support/pg_server.rs"]
pub(crate) mod pg_server;
mod postgres;
pub(crate) mod seal;
mod sqlite;
#[cfg(test)]
pub(crate) mod testkit;
mod together;

use std::fmt;

use zeroize::Zeroizing;

use crate::mfa::otp::{Algorithm, TotpParams};
use crate::mfa::{LockoutPolicy, Method, Remembered, ResultCode};
pub use directory::{Invitation, UserChange, UserUpdate};
pub use login::UserFacts;
pub use postgres::PgStore;
pub use seal::SeedKey;
pub use sqlite::{SqliteLock, SqliteStore};

/// Unix time in seconds. Callers pass it in, so the store never reads a
/// clock and tests can move time.
pub type UnixTime = i64;

/// A store failure. Values never appear in it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed; `retry` says whether trying again can help.
    #[error("database: {source}")]
    Database {
        source: Box<dyn std::error::Error + Send + Sync>,
        retry: Retry,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("the seed key file is not 64 hexadecimal digits")]
    BadKeyFile,
    #[error("a sealed seed does not open with this key file (wrong key, or tampered data)")]
    SealBroken,
    #[error(
        "the seed key file is not the one this database's seeds are sealed with: \
         give every node the key_file of the node that created the database"
    )]
    KeyMismatch,
    #[error("no user named \"{0}\"")]
    NoSuchUser(String),
    #[error("a user named \"{0}\" already exists")]
    UserExists(String),
    #[error("token serial \"{0}\" is already assigned")]
    SerialTaken(String),
    #[error("the database schema is version {found}, newer than this program's {supported}")]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("{path}: no {what} here", path = path.display())]
    Missing {
        what: &'static str,
        path: std::path::PathBuf,
    },
    #[error(
        "{path}: the database is missing but its seed key exists, so one was expected: it was deleted or moved. \
         Restore it from a backup, or start with --allow-empty-store to begin with an empty one (no user has a second factor then)",
        path = path.display()
    )]
    Vanished { path: std::path::PathBuf },
    #[error(
        "{path}: the database exists but its seed key file {key} does not: restore the key from the backup taken with the database",
        path = path.display(),
        key = key.display()
    )]
    KeyMissing {
        path: std::path::PathBuf,
        key: std::path::PathBuf,
    },
    #[error(
        "{path}: the database is in use (a running `mfa-proxy serve`, or another mfa-proxy command): stop it first",
        path = path.display()
    )]
    InUse { path: std::path::PathBuf },
    #[error(
        "{path}: the database file was removed or replaced while in use; failing closed until the proxy is restarted",
        path = path.display()
    )]
    FileLost { path: std::path::PathBuf },
}

/// Whether a failed store call may succeed if made again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// No: the same call fails the same way (a constraint, a bad row, a
    /// full disk).
    No,
    /// At once: the transaction lost to a concurrent one (a serialization
    /// failure, a deadlock, a busy database) and was rolled back whole, so
    /// running it again is safe.
    Now,
    /// Later: the database could not be reached or the connection was
    /// lost. Whether the last commit took is unknown, so it is not run
    /// again; new work waits for the database to come back.
    Later,
}

impl StoreError {
    pub(crate) fn io(e: std::io::Error) -> StoreError {
        StoreError::Io {
            what: "file".into(),
            source: e,
        }
    }

    /// A database failure from its `source`.
    pub fn database(
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
        retry: Retry,
    ) -> StoreError {
        StoreError::Database {
            source: source.into(),
            retry,
        }
    }

    /// Whether the call may succeed if made again, and when.
    pub fn retry(&self) -> Retry {
        match self {
            StoreError::Database { retry, .. } => *retry,
            _ => Retry::No,
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        let retry = match e.sqlite_error_code() {
            Some(C::DatabaseBusy | C::DatabaseLocked) => Retry::Now,
            Some(C::CannotOpen) => Retry::Later,
            _ => Retry::No,
        };
        StoreError::database(e, retry)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub method: Method,
    /// An argon2id PHC string, for `[primary] mode = "local"`.
    pub password_hash: Option<String>,
    pub created_at: UnixTime,
    pub blocked_until: Option<UnixTime>,
    /// An argon2id PHC string of the phone-call PIN (PIN mode).
    pub pin_hash: Option<String>,
    /// The language of the user's prompts, calls and texts (`[messages.LANG]`);
    /// `None`: `[mfa] language`.
    pub language: Option<String>,
    /// The groups the user is in, by name as given: compared without case,
    /// sorted and without duplicates (see [`normalize_groups`]; the store
    /// applies it on writing and reading).
    pub groups: Vec<String>,
    /// The `[[directory]]` the user is synced from; `None`: added by hand.
    /// Only that source's sync changes, disables or removes the user.
    pub source: Option<String>,
    /// When the user's directory stopped listing them (left it or its
    /// scope): every login is refused from then on, history kept, until
    /// the directory lists them again or `remove_after` removes them.
    pub disabled_at: Option<UnixTime>,
    /// Until then the user may enroll at the portal by signing in with the
    /// first factor alone (an enrollment window an administrator opened).
    pub enroll_until: Option<UnixTime>,
    /// The user signed out of the portal session begun then: it and every
    /// portal session begun before it are over, at every node
    /// ([`Store::end_portal_sessions`]).
    pub portal_sessions_since: Option<UnixTime>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Totp,
    Hotp,
}

/// An OATH token's secret, opened; zeroed when dropped.
pub type Seed = Zeroizing<Vec<u8>>;

/// An OATH token as stored; the seed stays sealed until [`Store::token_seed`]
/// or [`Store::open_seed`].
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    pub id: i64,
    pub user: String,
    pub kind: TokenKind,
    pub serial: Option<String>,
    pub params: TotpParams,
    /// HOTP: the next unused counter.
    pub counter: u64,
    /// TOTP: the last accepted time step.
    pub last_step: Option<u64>,
    /// Pending until the user proves the token shows the right code.
    pub active: bool,
    /// Hardware tokens: manufacturer and model.
    pub model: Option<String>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("id", &self.id)
            .field("user", &self.user)
            .field("kind", &self.kind)
            .field("serial", &self.serial)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

/// What an administrator records when blocking, unblocking or bypassing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    pub user: String,
    pub action: String,
    pub reason: String,
    pub at: UnixTime,
    pub until: Option<UnixTime>,
}

impl User {
    /// A user whose method is `method`, with nothing else set: no contact
    /// details, password, PIN, language or block.
    pub fn new(name: impl Into<String>, method: Method) -> User {
        User {
            name: name.into(),
            email: None,
            phone: None,
            method,
            password_hash: None,
            created_at: 0,
            blocked_until: None,
            pin_hash: None,
            language: None,
            groups: Vec::new(),
            source: None,
            disabled_at: None,
            enroll_until: None,
            portal_sessions_since: None,
        }
    }
}

/// Whether `name` can be a user's name: 1 to 253 characters, no spaces or
/// control characters (it travels in RADIUS User-Name and in logs).
pub fn user_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && !name.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// Whether `email` can be a user's address, as mail is addressed
/// (`local@domain`, no display name, no spaces): an address accepted here
/// is one an invitation or a notice can be sent to; the relay judges the
/// rest.
pub fn email_ok(email: &str) -> bool {
    email.parse::<lettre::Address>().is_ok()
        && !email.contains(char::is_whitespace)
        && !email.contains(char::is_control)
}

/// A user or group name folded for comparing without case: the key both
/// backends look names up by, and the name a token's seed is bound to.
pub fn fold(name: &str) -> String {
    name.to_lowercase()
}

/// Group names as a [`User`] holds them: sorted without case, and of names
/// equal without case only the first given kept.
pub fn normalize_groups(mut groups: Vec<String>) -> Vec<String> {
    // Stable: of names equal without case, the one given first stays first.
    groups.sort_by_cached_key(|g| g.to_lowercase());
    groups.dedup_by(|later, kept| later.to_lowercase() == kept.to_lowercase());
    groups
}

impl Token {
    /// A TOTP token of `user` with `params`, not stored yet (`id` 0) and
    /// pending until activated.
    pub fn totp(user: impl Into<String>, params: TotpParams) -> Token {
        Token {
            id: 0,
            user: user.into(),
            kind: TokenKind::Totp,
            serial: None,
            params,
            counter: 0,
            last_step: None,
            active: false,
            model: None,
        }
    }
}

/// A verification out of band (push, call, SMS) in progress: a user has
/// at most one at a time in the whole cluster (`FAILED_PHONE_BUSY`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    pub user: String,
    /// The verification id, 16 random octets.
    pub id: Vec<u8>,
    /// The node (`[server] name`) holding the NAS request.
    pub node: String,
    pub client: String,
    pub method: Method,
    /// The `[[provider]]` that delivers it, by name: its key checks the
    /// callback, at whichever node it arrives.
    pub provider: String,
    pub started_at: UnixTime,
    /// After this it is over, answered or not: a node that died leaves
    /// nothing stuck.
    pub expires_at: UnixTime,
}

/// Answers taken from the store: each verification's id and its sealed
/// answer.
pub type KeptAnswers = Vec<(Vec<u8>, Vec<u8>)>;

/// A phone's answer that reached another node than the one holding the
/// NAS request, waiting in the store for it.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    /// The verification's id.
    pub id: Vec<u8>,
    /// The node it is for.
    pub node: String,
    pub expires_at: UnixTime,
    /// The answer, sealed with the seed key (a call's PIN is in it).
    pub sealed: Vec<u8>,
}

impl fmt::Debug for StoredAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredAnswer")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// A challenge that is out, as the store keeps it.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredChallenge {
    /// Its State.
    pub state: Vec<u8>,
    /// The node that sent it.
    pub node: String,
    pub user: String,
    pub expires_at: UnixTime,
    /// The login, sealed with the seed key ([`LoginStore::seal`]).
    pub sealed: Vec<u8>,
}

impl fmt::Debug for StoredChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredChallenge")
            .field("node", &self.node)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// A node of the cluster as it last said it was alive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSeen {
    /// `[server] name`.
    pub name: String,
    pub started_at: UnixTime,
    pub seen_at: UnixTime,
    /// The program's version (`mfa-proxy --version`).
    pub version: String,
}

/// One line of the audit trail (SPEC §5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    pub at: UnixTime,
    pub user: String,
    pub result: ResultCode,
    pub accepted: bool,
    pub mode: String,
    pub server: String,
    pub client: String,
    pub client_ip: Option<String>,
    pub reason: Option<String>,
}

/// A token's seed as the store keeps it: sealed with the key file and bound
/// to its user. Only the store opens it ([`Store::open_seed`]), so a login
/// can carry it between its rounds without holding the plaintext.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSeed(pub Vec<u8>);

impl fmt::Debug for SealedSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealedSeed(<redacted>)")
    }
}

/// Seconds an expired challenge or answer is kept before a heartbeat
/// removes it: long enough for the node that sent the challenge to learn
/// whether another node took it over.
pub const EXPIRED_KEPT: UnixTime = 300;

/// The login path: what the engine's store jobs need, and nothing else.
/// A burst of jobs runs in one [`LoginTx`] (see [`login::stage_batch`]):
/// a few reads and writes per login, one commit per burst.
pub trait LoginStore: Send + Sync + fmt::Debug {
    /// Starts a transaction of the login path. It is an explicit value:
    /// what it wrote is kept only if [`LoginTx::commit`] succeeds, and it
    /// rolls back when dropped uncommitted.
    fn begin(&self) -> Result<Box<dyn LoginTx + '_>, StoreError>;
    /// Opens a seed that [`LoginTx::facts`] read (no database work).
    fn open_seed(&self, token: &Token, sealed: &SealedSeed) -> Result<Seed, StoreError>;
    /// Seals `data` with the seed key for `what` (no database work): a
    /// challenge's login before it is kept.
    fn seal(&self, what: &str, data: &[u8]) -> Vec<u8>;
    /// Opens what [`LoginStore::seal`] sealed for `what`.
    fn open(&self, what: &str, sealed: &[u8]) -> Result<Seed, StoreError>;
    /// Whether other nodes may use this store at the same time (a server),
    /// so that a node keeps its challenges there for them. SQLite is one
    /// node's.
    fn shared(&self) -> bool {
        false
    }
    /// How many transactions of the login path may run at once (a thread
    /// each). SQLite writes one at a time; a server takes one per
    /// connection, and a node that waits on several round trips at once
    /// serves more logins than one that waits on each in turn.
    fn workers(&self) -> usize {
        1
    }
    /// Calls `wake` with each verification id another node kept an answer
    /// for at node `node` ([`LoginTx::put_answer`]), and with `None` when
    /// answers may have been missed (the connection that listens was lost
    /// and is back), from a thread of its own, until `wake` returns
    /// `false`. A store only one node uses has nothing to wait for.
    fn subscribe(&self, node: &str, wake: Wake) -> Result<(), StoreError> {
        let _ = (node, wake);
        Ok(())
    }
}

/// A challenge to take: its State, the node taking it, and when.
pub type Take<'a> = (&'a [u8], &'a str, UnixTime);

/// What [`LoginStore::subscribe`] calls: `Some(id)` for an answer kept for
/// verification `id`, `None` for "look again, some may have been missed";
/// `false` back stops it.
pub type Wake = Box<dyn FnMut(Option<Vec<u8>>) -> bool + Send + 'static>;

/// One transaction of the login path. Every method that decides something
/// (a code's step was unused, a bypass was still there, this denial locks)
/// decides it atomically in the database, so two proxies, or two concurrent
/// answers, cannot both win.
pub trait LoginTx {
    /// What a login needs to know about `user` at `now`, or `None` for an
    /// unknown user, in one query: this runs for every login.
    fn facts(&mut self, user: &str, now: UnixTime) -> Result<Option<UserFacts>, StoreError>;
    /// The facts of several users, each at its own time, in order: a
    /// burst's logins in one query where the backend can.
    fn facts_of(
        &mut self,
        asked: &[(&str, UnixTime)],
    ) -> Result<Vec<Option<UserFacts>>, StoreError> {
        asked.iter().map(|&(u, now)| self.facts(u, now)).collect()
    }
    /// The user's password hash (argon2id PHC), if the user has one.
    fn password_hash(&mut self, user: &str) -> Result<Option<String>, StoreError>;
    /// The user's phone-call PIN hash (argon2id PHC), if the user has one.
    fn pin_hash(&mut self, user: &str) -> Result<Option<String>, StoreError>;
    /// Records `step` as used if it is newer than the last one used, in one
    /// atomic statement. `false` means another request used it (or a newer
    /// one) first, or the token is gone.
    fn claim_step(&mut self, id: i64, step: u64) -> Result<bool, StoreError>;
    /// Claims the steps of several distinct tokens, as [`LoginTx::claim_step`],
    /// in one statement where the backend can: whether each was won.
    fn claim_steps(&mut self, claims: &[(i64, u64)]) -> Result<Vec<bool>, StoreError> {
        claims
            .iter()
            .map(|&(id, step)| self.claim_step(id, step))
            .collect()
    }
    /// Counts a denial; returns `Some(until)` when this denial locks the
    /// user, which also forgets the user's remembered logins.
    fn record_denial(
        &mut self,
        user: &str,
        now: UnixTime,
        policy: &LockoutPolicy,
    ) -> Result<Option<UnixTime>, StoreError>;
    fn clear_denials(&mut self, user: &str) -> Result<(), StoreError>;
    /// Uses up a bypass still valid at `now`, atomically, unless the user
    /// is blocked at `now`. `true` if one was used.
    fn take_bypass(&mut self, user: &str, now: UnixTime) -> Result<bool, StoreError>;
    /// Blocks the user until `until` (a fraud report), as [`Store::block`].
    fn block(
        &mut self,
        user: &str,
        reason: &str,
        now: UnixTime,
        until: UnixTime,
    ) -> Result<(), StoreError>;
    /// Remembers a login of `user`: one row per auth type, application and
    /// address, whose time becomes `r.at` (never earlier than it was). Then
    /// forgets the user's logins from before `keep_since`, so a user's rows
    /// stay few. Remembers nothing, without an error, for an unknown user,
    /// and for one blocked or locked after `r.at`: a block or lockout that
    /// came between the second factor and this call has revoked it.
    fn remember(
        &mut self,
        user: &str,
        r: &Remembered,
        keep_since: UnixTime,
    ) -> Result<(), StoreError>;
    fn append_audit(&mut self, rec: &AuditRecord) -> Result<(), StoreError>;
    /// Deletes up to `limit` audit records older than `before`, the oldest
    /// first; how many went. Nodes pruning at once skip each other's rows.
    fn prune_audit(&mut self, before: UnixTime, limit: u32) -> Result<u64, StoreError>;
    /// Appends a burst's records, in one statement where the backend can.
    fn append_audits(&mut self, recs: &[AuditRecord]) -> Result<(), StoreError> {
        recs.iter().try_for_each(|r| self.append_audit(r))
    }
    /// Records `v` as its user's one verification in progress, unless
    /// another (at any node) has not expired: `false` then (the user is
    /// busy). An expired one, left by a node that died, is replaced.
    fn start_verification(&mut self, v: &Verification) -> Result<bool, StoreError>;
    /// Verification `id` of `user`, held by `node`, is over (answered,
    /// expired, fallen back). A verification another node has taken over
    /// since (number matching answered there) is left to that node.
    fn end_verification(&mut self, user: &str, id: &[u8], node: &str) -> Result<(), StoreError>;
    /// Verification `id`, if it lasts past `now`, locked until the end of
    /// the transaction (so that no node takes it over meanwhile).
    fn verification(
        &mut self,
        id: &[u8],
        now: UnixTime,
    ) -> Result<Option<Verification>, StoreError>;
    /// Node `node` holds the NAS request of verification `id` from now on
    /// (it took over the challenge that showed the number): `false` if the
    /// verification is over.
    fn move_verification(
        &mut self,
        id: &[u8],
        node: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// Keeps an answer for the node holding the NAS request, and wakes that
    /// node (PostgreSQL: `NOTIFY mfa_answers`, when the transaction
    /// commits): `false` if one was kept already (a callback is used once).
    /// An empty one is kept as taken, and wakes nobody.
    fn put_answer(&mut self, a: &StoredAnswer) -> Result<bool, StoreError>;
    /// Takes the answers kept for the verifications `ids`, for good: each
    /// verification's id and its sealed answer. What an answer held is
    /// gone; its row stays until it expires, so that the verification
    /// takes no second answer.
    fn take_answers(&mut self, ids: &[Vec<u8>]) -> Result<KeptAnswers, StoreError>;
    /// An out-of-band success of `user` from `client`: until `until`, one
    /// more login from there needs no second factor (`busy_grace`).
    fn grant_grace(
        &mut self,
        user: &str,
        client: &str,
        until: UnixTime,
        now: UnixTime,
    ) -> Result<(), StoreError>;
    /// Uses up the grace of `user` from `client` if it lasts past `now`,
    /// atomically: `true` if there was one.
    fn take_grace(&mut self, user: &str, client: &str, now: UnixTime) -> Result<bool, StoreError>;
    /// Node `node` is alive at `now` (every few seconds while it serves);
    /// challenges and answers that expired [`EXPIRED_KEPT`] before `now` go.
    fn heartbeat(&mut self, node: &NodeSeen) -> Result<(), StoreError>;
    /// Keeps a challenge that is out (its login, already sealed), so that
    /// another node can take its answer over.
    fn put_challenge(&mut self, c: &StoredChallenge) -> Result<(), StoreError>;
    /// Keeps a burst's challenges, in one statement where the backend can.
    fn put_challenges(&mut self, cs: &[StoredChallenge]) -> Result<(), StoreError> {
        cs.iter().try_for_each(|c| self.put_challenge(c))
    }
    /// Node `node` takes the challenge with `state` if it has not expired
    /// at `now` and nobody took it: the sealed login, or `None` (unknown,
    /// expired or taken). What it held is gone; the row stays, naming
    /// `node`, until it expires.
    fn take_challenge(
        &mut self,
        state: &[u8],
        node: &str,
        now: UnixTime,
    ) -> Result<Option<Vec<u8>>, StoreError>;
    /// The challenge with `state` expired unanswered at `node`, which sent
    /// it: removed, and `true` if another node had taken its answer over
    /// (that node ends the login), `false` if it is this node's to end.
    /// Takes several distinct challenges, each `(state, node, now)` as
    /// [`LoginTx::take_challenge`], in one statement where the backend can.
    fn take_challenges(&mut self, takes: &[Take<'_>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        takes
            .iter()
            .map(|&(state, node, now)| self.take_challenge(state, node, now))
            .collect()
    }
    fn drop_challenge(&mut self, state: &[u8], node: &str) -> Result<bool, StoreError>;
    /// Makes everything this transaction wrote durable, or nothing.
    fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// Runs `f` in a transaction of its own, committed if it succeeds: for the
/// administrator's commands and tests that take one login-path step.
pub fn in_tx<T>(
    store: &dyn LoginStore,
    f: impl FnOnce(&mut dyn LoginTx) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut tx = store.begin()?;
    let value = f(&mut *tx)?;
    tx.commit()?;
    Ok(value)
}

/// Administration: users, tokens, blocks, bypasses, remembered logins,
/// reports and history. Each call is a transaction of its own.
pub trait Store: LoginStore {
    fn add_user(&self, user: &User) -> Result<(), StoreError>;
    /// Updates a user; a changed phone number forgets the user's
    /// remembered logins.
    fn update_user(&self, user: &User) -> Result<(), StoreError>;
    /// Removes the user with the user's tokens, groups and remembered logins.
    fn remove_user(&self, name: &str) -> Result<bool, StoreError>;
    fn user(&self, name: &str) -> Result<Option<User>, StoreError>;
    fn users(&self) -> Result<Vec<User>, StoreError>;
    /// Applies a directory sync's changes, in one transaction (the sync
    /// hands them over a few hundred at a time, so logins go on between).
    /// An `Add` of a user that exists is [`StoreError::UserExists`]; an
    /// `Update`, `Disable` or `Remove` of one that does not is skipped (an
    /// administrator removed them meanwhile). `Disable` leaves one already
    /// disabled as it was; `Remove` removes only a user still disabled.
    fn apply_directory(&self, changes: &[UserChange]) -> Result<(), StoreError>;

    /// Keeps an enrollment invitation for its user, replacing the user's
    /// earlier ones: only the newest link works.
    fn add_invitation(&self, inv: &Invitation) -> Result<(), StoreError>;
    /// The user whose invitation has this hash, if it is unused and lasts
    /// past `now`.
    fn invitation(&self, hash: &[u8], now: UnixTime) -> Result<Option<String>, StoreError>;
    /// Uses up the invitation with this hash, atomically: its user if it
    /// was unused and lasted past `now`, else `None`.
    fn take_invitation(&self, hash: &[u8], now: UnixTime) -> Result<Option<String>, StoreError>;
    /// The user's invitation (a user has one at most, the newest), used,
    /// expired or open.
    fn invitation_of(&self, user: &str) -> Result<Option<Invitation>, StoreError>;
    /// Removes the invitation with this hash, if it is still unused (its
    /// mail never left): `true` if there was one.
    fn withdraw_invitation(&self, hash: &[u8]) -> Result<bool, StoreError>;
    /// Ends the user's portal sessions begun at or before `at` (a sign-out
    /// of the session begun then), at every node:
    /// [`User::portal_sessions_since`], which only moves forward. `false`
    /// for an unknown user.
    fn end_portal_sessions(&self, user: &str, at: UnixTime) -> Result<bool, StoreError>;

    /// Adds a token (pending unless `active`); returns its id.
    fn add_token(&self, token: &Token, seed: &[u8]) -> Result<i64, StoreError>;
    fn tokens(&self, user: &str) -> Result<Vec<Token>, StoreError>;
    fn token_seed(&self, token: &Token) -> Result<Seed, StoreError>;
    fn activate_token(&self, id: i64) -> Result<(), StoreError>;
    fn token_by_serial(&self, serial: &str) -> Result<Option<Token>, StoreError>;
    /// Removes the hardware token with this serial, and forgets its user's
    /// remembered logins; `false` if there is none.
    fn remove_token(&self, serial: &str) -> Result<bool, StoreError>;
    /// Removes the token with this id if it is `user`'s (an app removed at
    /// the portal), and forgets the user's remembered logins; `false` if
    /// the user has no such token.
    fn remove_user_token(&self, user: &str, id: i64) -> Result<bool, StoreError>;
    /// Removes the user's pending authenticator apps of `kind` (a new
    /// enrollment replaces them); pending hardware tokens (with a serial)
    /// stay for `token activate`.
    fn remove_pending_tokens(&self, user: &str, kind: TokenKind) -> Result<(), StoreError>;

    fn locked_until(&self, user: &str, now: UnixTime) -> Result<Option<UnixTime>, StoreError>;
    /// Ends a lockout: the user's denials are forgotten.
    fn clear_denials(&self, user: &str) -> Result<(), StoreError> {
        in_tx(self.as_login(), |tx| tx.clear_denials(user))
    }

    /// Blocks the user until `until` and forgets the user's remembered
    /// logins, in one transaction. An administrator's block and a fraud
    /// report both come here.
    fn block(
        &self,
        user: &str,
        reason: &str,
        now: UnixTime,
        until: UnixTime,
    ) -> Result<(), StoreError> {
        in_tx(self.as_login(), |tx| tx.block(user, reason, now, until))
    }
    fn unblock(&self, user: &str, reason: &str, now: UnixTime) -> Result<(), StoreError>;
    fn blocked_until(&self, user: &str, now: UnixTime) -> Result<Option<UnixTime>, StoreError>;
    fn block_history(&self) -> Result<Vec<HistoryEntry>, StoreError>;

    /// Forgets all of the user's remembered logins; returns how many (an
    /// unknown user is [`StoreError::NoSuchUser`]). A block, a denial that
    /// locks the user, removing a token, a new phone number and
    /// [`Store::remove_user`] do too.
    fn forget(&self, user: &str) -> Result<usize, StoreError>;
    /// The user's remembered logins, newest first (then by auth type,
    /// application and address); none for an unknown user.
    fn remembered(&self, user: &str) -> Result<Vec<Remembered>, StoreError>;

    fn add_bypass(
        &self,
        user: &str,
        reason: &str,
        now: UnixTime,
        until: UnixTime,
    ) -> Result<(), StoreError>;
    fn bypass_history(&self) -> Result<Vec<HistoryEntry>, StoreError>;

    fn audit(
        &self,
        user: Option<&str>,
        since: Option<UnixTime>,
    ) -> Result<Vec<AuditRecord>, StoreError>;

    /// The verifications in progress at `now`, at every node, oldest first.
    fn verifications(&self, now: UnixTime) -> Result<Vec<Verification>, StoreError>;
    /// Every node that ever served on this store, the last seen first.
    fn nodes(&self) -> Result<Vec<NodeSeen>, StoreError>;

    /// This store as its login path.
    fn as_login(&self) -> &dyn LoginStore;
}

impl Algorithm {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Algorithm> {
        Some(match s {
            "SHA1" => Algorithm::Sha1,
            "SHA256" => Algorithm::Sha256,
            "SHA512" => Algorithm::Sha512,
            _ => return None,
        })
    }
}
