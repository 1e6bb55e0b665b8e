//! The PostgreSQL backend: a server shared by several proxies, numbered
//! migrations, a bounded pool of connections.
//!
//! This module connects (and migrates), runs login-path and
//! administration transactions, and implements [`LoginStore`] and
//! [`Store`] by handing each method, with a connection, to the module of
//! its concern, as the SQLite backend does:
//!
//! - `pool.rs`: the pool, each connection's statement cache, and what an
//!   error means for a retry;
//! - `schema.rs`: the numbered migrations and the schema version;
//! - `users.rs`: users and their groups;
//! - `tokens.rs`: tokens, their sealed seeds, and claiming a step;
//! - `login.rs`: the login state, denials and lockout, blocks, bypasses
//!   and remembered logins;
//! - `audit.rs`: the audit trail and the block and bypass histories;
//! - `listen.rs`: waking this node when another kept an answer for it;
//! - `dump.rs`: loading a whole store (`mfa-proxy migrate`), counting rows.
//!
//! Behaviour is the SQLite backend's, method for method. Names compare
//! without case by a key folded in Rust ([`fold`]), so non-ASCII letters
//! fold too. One difference: a statement that fails inside a login-path
//! transaction spoils the whole transaction (PostgreSQL refuses the rest),
//! so its commit fails and every job of the burst fails closed, where
//! SQLite kept the other jobs' writes.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::*;

mod audit;
mod dump;
mod listen;
mod login;
mod pool;
mod schema;
mod tokens;
mod users;
mod verifications;

use pool::{Conn, Pool, Pooled};

/// How long opening a connection may take, unless the URL says.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long data sent may stay unacknowledged before the connection is
/// given up, unless the URL says.
const DEAD_PEER_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle time before TCP keepalive probes, unless the URL says; the
/// postgres crate's default is two hours.
const KEEPALIVES_IDLE: Duration = Duration::from_secs(10);
const DEFAULT_KEEPALIVES_IDLE: Duration = Duration::from_secs(2 * 60 * 60);

/// PostgreSQL-backed [`Store`].
pub struct PgStore {
    pool: Pool,
    key: SeedKey,
    /// The database has this program's schema and this node's seed key:
    /// checked once, on the first connection that works.
    ready: std::sync::atomic::AtomicBool,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// A store on the database at `url`, not connected yet.
    fn configure(url: &str, key: SeedKey, pool_size: usize) -> Result<PgStore, StoreError> {
        // The URL holds the password: its parse error is not repeated.
        let mut config = ::postgres::Config::from_str(url).map_err(|_| {
            StoreError::database(
                "the PostgreSQL URL is not a valid connection string",
                Retry::No,
            )
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        // A server that vanished without closing the connection (a host
        // down, a network cut) fails a statement in tens of seconds rather
        // than the hours TCP waits by default.
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(DEAD_PEER_TIMEOUT);
        }
        if config.get_keepalives_idle() == DEFAULT_KEEPALIVES_IDLE {
            config
                .keepalives_idle(KEEPALIVES_IDLE)
                .keepalives_interval(KEEPALIVES_IDLE / 2)
                .keepalives_retries(3);
        }
        Ok(PgStore {
            pool: Pool::new(config, pool_size),
            key,
            ready: false.into(),
        })
    }

    /// Connects to the database at `url` (`postgres://user:password@host/db`
    /// or key=value pairs) with a pool of up to `pool_size` connections,
    /// migrates it (refusing one a newer program left) and checks that
    /// `key` is the seed key its seeds are sealed with.
    pub fn connect(url: &str, key: SeedKey, pool_size: usize) -> Result<PgStore, StoreError> {
        let store = Self::configure(url, key, pool_size)?;
        store.checkout()?;
        Ok(store)
    }

    /// As [`PgStore::connect`], but a database that cannot be reached now
    /// is no error: every call fails (`Retry::Later`) until it can be, and
    /// the first that reaches it migrates it and checks the key. For
    /// `serve`, which starts whether the database is up or not. An error
    /// that waiting cannot cure (a bad URL, a newer schema, another seed
    /// key) is returned at once.
    pub fn connect_lazily(
        url: &str,
        key: SeedKey,
        pool_size: usize,
    ) -> Result<PgStore, StoreError> {
        let store = Self::configure(url, key, pool_size)?;
        let first = store.checkout().map(drop);
        match first {
            Err(e) if e.retry() == Retry::Later => {
                tracing::error!(error = %e, "PostgreSQL cannot be reached: logins fail closed until it can");
                Ok(store)
            }
            Err(e) => Err(e),
            Ok(()) => Ok(store),
        }
    }

    /// A connection from the pool, to a database made ready for this
    /// program and key on the first.
    fn checkout(&self) -> Result<Pooled<'_>, StoreError> {
        use std::sync::atomic::Ordering;
        let mut c = self.pool.checkout()?;
        if !self.ready.load(Ordering::Acquire) {
            schema::upgrade(&mut c, &self.key)?;
            self.ready.store(true, Ordering::Release);
        }
        Ok(c)
    }

    /// The schema version this program brings databases to.
    pub const SCHEMA: i64 = schema::MIGRATIONS.len() as i64;

    /// The schema version of the database at `url` (0: none yet), read on
    /// one connection without migrating or checking anything: for `check`.
    pub fn probe(url: &str) -> Result<i64, StoreError> {
        let store = Self::configure(url, SeedKey::from_bytes(&[0; 32]), 1)?;
        let mut c = store.pool.checkout()?;
        let made = c.one("SELECT to_regclass('schema_version') IS NOT NULL", &[])?;
        if !made.get::<_, bool>(0) {
            return Ok(0);
        }
        schema::version(&mut c)
    }

    /// The database's schema version.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        schema::version(&mut *self.pool.checkout()?)
    }

    /// Runs `f` in a transaction of its own, committed if it succeeds.
    fn tx<T>(&self, f: impl FnOnce(&mut Conn) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut c = self.checkout()?;
        c.begin()?;
        match f(&mut c) {
            Ok(v) => {
                c.commit()?;
                Ok(v)
            }
            Err(e) => {
                c.rollback();
                Err(e)
            }
        }
    }
}

/// A transaction of the login path on a pooled connection, rolled back if
/// dropped before its commit (the connection's return to the pool does
/// that).
struct PgTx<'a> {
    c: Pooled<'a>,
}

impl LoginTx for PgTx<'_> {
    fn facts(&mut self, user: &str, now: UnixTime) -> Result<Option<UserFacts>, StoreError> {
        Ok(login::facts_of(&mut self.c, &[(user, now)])?
            .pop()
            .flatten())
    }

    fn facts_of(
        &mut self,
        asked: &[(&str, UnixTime)],
    ) -> Result<Vec<Option<UserFacts>>, StoreError> {
        login::facts_of(&mut self.c, asked)
    }

    fn password_hash(&mut self, user: &str) -> Result<Option<String>, StoreError> {
        users::hash(
            &mut self.c,
            "SELECT password_hash FROM users WHERE name_key = $1",
            user,
        )
    }

    fn pin_hash(&mut self, user: &str) -> Result<Option<String>, StoreError> {
        users::hash(
            &mut self.c,
            "SELECT pin_hash FROM users WHERE name_key = $1",
            user,
        )
    }

    fn claim_step(&mut self, id: i64, step: u64) -> Result<bool, StoreError> {
        Ok(tokens::claim_steps(&mut self.c, &[(id, step)])?
            .pop()
            .unwrap_or(false))
    }

    fn claim_steps(&mut self, claims: &[(i64, u64)]) -> Result<Vec<bool>, StoreError> {
        tokens::claim_steps(&mut self.c, claims)
    }

    fn record_denial(
        &mut self,
        user: &str,
        now: UnixTime,
        p: &LockoutPolicy,
    ) -> Result<Option<UnixTime>, StoreError> {
        login::record_denial(&mut self.c, user, now, p)
    }

    fn clear_denials(&mut self, user: &str) -> Result<(), StoreError> {
        login::clear_denials(&mut self.c, user)
    }

    fn take_bypass(&mut self, user: &str, now: UnixTime) -> Result<bool, StoreError> {
        login::take_bypass(&mut self.c, user, now)
    }

    fn block(
        &mut self,
        user: &str,
        reason: &str,
        now: UnixTime,
        until: UnixTime,
    ) -> Result<(), StoreError> {
        login::block(&mut self.c, user, reason, now, until)
    }

    fn remember(
        &mut self,
        user: &str,
        r: &Remembered,
        keep_since: UnixTime,
    ) -> Result<(), StoreError> {
        login::remember(&mut self.c, user, r, keep_since)
    }

    fn append_audit(&mut self, a: &AuditRecord) -> Result<(), StoreError> {
        audit::append_audit(&mut self.c, a)
    }

    fn prune_audit(&mut self, before: UnixTime, limit: u32) -> Result<u64, StoreError> {
        audit::prune_audit(&mut self.c, before, limit)
    }

    fn append_audits(&mut self, recs: &[AuditRecord]) -> Result<(), StoreError> {
        audit::append_audits(&mut self.c, recs)
    }

    fn start_verification(&mut self, v: &Verification) -> Result<bool, StoreError> {
        verifications::start(&mut self.c, v)
    }

    fn end_verification(&mut self, user: &str, id: &[u8], node: &str) -> Result<(), StoreError> {
        verifications::end(&mut self.c, user, id, node)
    }

    fn verification(
        &mut self,
        id: &[u8],
        now: UnixTime,
    ) -> Result<Option<Verification>, StoreError> {
        verifications::by_id(&mut self.c, id, now)
    }

    fn move_verification(
        &mut self,
        id: &[u8],
        node: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        verifications::move_to(&mut self.c, id, node, now)
    }

    fn put_answer(&mut self, a: &StoredAnswer) -> Result<bool, StoreError> {
        verifications::put_answer(&mut self.c, a)
    }

    fn take_answers(&mut self, ids: &[Vec<u8>]) -> Result<KeptAnswers, StoreError> {
        verifications::take_answers(&mut self.c, ids)
    }

    fn grant_grace(
        &mut self,
        user: &str,
        client: &str,
        until: UnixTime,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        verifications::grant_grace(&mut self.c, user, client, until, now)
    }

    fn take_grace(&mut self, user: &str, client: &str, now: UnixTime) -> Result<bool, StoreError> {
        verifications::take_grace(&mut self.c, user, client, now)
    }

    fn heartbeat(&mut self, n: &NodeSeen) -> Result<(), StoreError> {
        verifications::heartbeat(&mut self.c, n)
    }

    fn put_challenge(&mut self, ch: &StoredChallenge) -> Result<(), StoreError> {
        verifications::put_challenge(&mut self.c, ch)
    }

    fn put_challenges(&mut self, cs: &[StoredChallenge]) -> Result<(), StoreError> {
        verifications::put_challenges(&mut self.c, cs)
    }

    fn take_challenge(
        &mut self,
        state: &[u8],
        node: &str,
        now: UnixTime,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(
            verifications::take_challenges(&mut self.c, &[(state, node, now)])?
                .pop()
                .flatten(),
        )
    }

    fn take_challenges(&mut self, takes: &[Take<'_>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        verifications::take_challenges(&mut self.c, takes)
    }

    fn drop_challenge(&mut self, state: &[u8], node: &str) -> Result<bool, StoreError> {
        verifications::drop_challenge(&mut self.c, state, node)
    }

    fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        self.c.commit()
    }
}

impl LoginStore for PgStore {
    fn begin(&self) -> Result<Box<dyn LoginTx + '_>, StoreError> {
        let mut c = self.checkout()?;
        c.begin()?;
        Ok(Box::new(PgTx { c }))
    }

    fn open_seed(&self, t: &Token, sealed: &SealedSeed) -> Result<Seed, StoreError> {
        seal::open_token_seed(&self.key, t, sealed)
    }

    fn seal(&self, what: &str, data: &[u8]) -> Vec<u8> {
        self.key.seal(what, data)
    }

    fn open(&self, what: &str, sealed: &[u8]) -> Result<Seed, StoreError> {
        self.key.open(what, sealed)
    }

    /// One per core (two at least), at most one per pooled connection:
    /// measured on two cores shared with the server, two threads served
    /// three times the logins of one, and four or eight fewer than two,
    /// each committing smaller batches (BENCHMARKS.md).
    fn shared(&self) -> bool {
        true
    }

    fn workers(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        self.pool.size().min(cores.max(2))
    }

    fn subscribe(&self, node: &str, wake: Wake) -> Result<(), StoreError> {
        listen::spawn(self.pool.config().clone(), node.to_owned(), wake)
    }
}

impl Store for PgStore {
    fn verifications(&self, now: UnixTime) -> Result<Vec<Verification>, StoreError> {
        self.tx(|c| verifications::list(c, now))
    }

    fn nodes(&self) -> Result<Vec<NodeSeen>, StoreError> {
        self.tx(verifications::nodes)
    }

    fn as_login(&self) -> &dyn LoginStore {
        self
    }

    fn add_user(&self, u: &User) -> Result<(), StoreError> {
        self.tx(|c| users::add_user(c, u))
    }

    fn update_user(&self, u: &User) -> Result<(), StoreError> {
        self.tx(|c| users::update_user(c, u))
    }

    fn remove_user(&self, name: &str) -> Result<bool, StoreError> {
        self.tx(|c| users::remove_user(c, name))
    }

    fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        self.tx(|c| users::user(c, name))
    }

    fn users(&self) -> Result<Vec<User>, StoreError> {
        self.tx(users::users)
    }

    fn apply_directory(&self, changes: &[UserChange]) -> Result<(), StoreError> {
        self.tx(|c| users::apply_directory(c, changes))
    }

    fn add_invitation(&self, inv: &Invitation) -> Result<(), StoreError> {
        self.tx(|c| users::add_invitation(c, inv))
    }

    fn invitation(&self, hash: &[u8], now: UnixTime) -> Result<Option<String>, StoreError> {
        self.tx(|c| users::invitation(c, hash, now))
    }

    fn take_invitation(&self, hash: &[u8], now: UnixTime) -> Result<Option<String>, StoreError> {
        self.tx(|c| users::take_invitation(c, hash, now))
    }

    fn invitation_of(&self, user: &str) -> Result<Option<Invitation>, StoreError> {
        self.tx(|c| users::invitation_of(c, user))
    }

    fn end_portal_sessions(&self, user: &str, at: UnixTime) -> Result<bool, StoreError> {
        self.tx(|c| users::end_portal_sessions(c, user, at))
    }

    fn withdraw_invitation(&self, hash: &[u8]) -> Result<bool, StoreError> {
        self.tx(|c| {
            Ok(c.exec(
                "DELETE FROM invitations WHERE hash = $1 AND used_at IS NULL",
                &[&hash],
            )? == 1)
        })
    }

    fn add_token(&self, t: &Token, seed: &[u8]) -> Result<i64, StoreError> {
        let sealed = seal::seal_token_seed(&self.key, t, seed);
        self.tx(|c| tokens::add_token(c, t, &sealed))
    }

    fn tokens(&self, user: &str) -> Result<Vec<Token>, StoreError> {
        self.tx(|c| tokens::tokens(c, user))
    }

    fn token_seed(&self, t: &Token) -> Result<Seed, StoreError> {
        let sealed = self.tx(|c| tokens::sealed_seed(c, t.id))?;
        self.open_seed(t, &sealed)
    }

    fn token_by_serial(&self, serial: &str) -> Result<Option<Token>, StoreError> {
        self.tx(|c| tokens::token_by_serial(c, serial))
    }

    fn remove_token(&self, serial: &str) -> Result<bool, StoreError> {
        self.tx(|c| tokens::remove_token(c, serial))
    }

    fn remove_user_token(&self, user: &str, id: i64) -> Result<bool, StoreError> {
        self.tx(|c| tokens::remove_user_token(c, user, id))
    }

    fn activate_token(&self, id: i64) -> Result<(), StoreError> {
        self.tx(|c| tokens::activate_token(c, id))
    }

    fn remove_pending_tokens(&self, user: &str, kind: TokenKind) -> Result<(), StoreError> {
        self.tx(|c| tokens::remove_pending_tokens(c, user, kind))
    }

    fn locked_until(&self, user: &str, now: UnixTime) -> Result<Option<UnixTime>, StoreError> {
        self.tx(|c| login::locked_until(c, user, now))
    }

    fn unblock(&self, user: &str, reason: &str, now: UnixTime) -> Result<(), StoreError> {
        self.tx(|c| login::unblock(c, user, reason, now))
    }

    fn blocked_until(&self, user: &str, now: UnixTime) -> Result<Option<UnixTime>, StoreError> {
        self.tx(|c| login::blocked_until(c, user, now))
    }

    fn forget(&self, user: &str) -> Result<usize, StoreError> {
        self.tx(|c| login::forget(c, user))
    }

    fn remembered(&self, user: &str) -> Result<Vec<Remembered>, StoreError> {
        self.tx(|c| login::remembered(c, user))
    }

    fn block_history(&self) -> Result<Vec<HistoryEntry>, StoreError> {
        self.tx(audit::block_history)
    }

    fn add_bypass(
        &self,
        user: &str,
        reason: &str,
        now: UnixTime,
        until: UnixTime,
    ) -> Result<(), StoreError> {
        self.tx(|c| login::add_bypass(c, user, reason, now, until))
    }

    fn bypass_history(&self) -> Result<Vec<HistoryEntry>, StoreError> {
        self.tx(audit::bypass_history)
    }

    fn audit(
        &self,
        user: Option<&str>,
        since: Option<UnixTime>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.tx(|c| audit::audit(c, user, since))
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_login;
