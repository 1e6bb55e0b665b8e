//! The embedded SQLite backend: one file, WAL, numbered migrations.
//!
//! This module opens the database (pragmas, the statement cache, the file
//! watch), runs login-path transactions and savepoints, and implements
//! [`LoginStore`] and [`Store`] by
//! handing each method, with the connection, to the module of its concern:
//!
//! - `schema.rs`: the numbered migrations and the schema version;
//! - `users.rs`: users and their groups;
//! - `tokens.rs`: tokens, their sealed seeds, and claiming a step;
//! - `login.rs`: the login state, denials and lockout, blocks, bypasses
//!   and remembered logins;
//! - `audit.rs`: the audit trail and the block and bypass histories;
//! - `dump.rs`: the whole database: a dump of every row, a backup, opening
//!   it for one process alone, replacing its file (backup, restore, migrate).
//!
//! Each has its tests in the `tests_*.rs` file of its name; `tests.rs`
//! holds their helpers and the tests of the whole.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::Connection;

use super::*;

mod audit;
mod dump;
pub use dump::SqliteLock;
mod login;
mod schema;
mod tokens;
mod users;
mod verifications;

/// SQLite-backed [`Store`].
#[derive(Debug)]
pub struct SqliteStore {
    /// One connection: SQLite writes one transaction at a time anyway. A
    /// login-path transaction holds it from begin to commit.
    conn: Mutex<Connection>,
    key: SeedKey,
    /// The file opened, for a database on disk: a batch fails once its
    /// path names another file or none.
    watch: Option<super::file::Watch>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path, key: SeedKey) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(StoreError::io)?;
        }
        // A new database is readable by its owner only, whatever the umask
        // (it holds password hashes and sealed seeds); SQLite gives its
        // -wal and -shm files the database file's mode.
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let created = match opts.open(path) {
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(super::file::io_at(path, e)),
        };
        let opened = Connection::open(path)
            .map_err(StoreError::from)
            .and_then(|c| Self::init(c, key));
        let mut store = match opened {
            Ok(s) => s,
            Err(e) => {
                // Leave no empty file behind to pass for a store later.
                if created {
                    let _ = std::fs::remove_file(path);
                }
                return Err(e);
            }
        };
        store.watch = Some(super::file::Watch::new(path)?);
        Ok(store)
    }

    /// An in-memory database, for tests.
    pub fn in_memory(key: SeedKey) -> Result<SqliteStore, StoreError> {
        Self::init(Connection::open_in_memory()?, key)
    }

    fn init(conn: Connection, key: SeedKey) -> Result<SqliteStore, StoreError> {
        // Names compare as PostgreSQL's store compares them: by their
        // Unicode lowercase (SQLite's own NOCASE folds ASCII only).
        conn.create_collation("NOCASE", nocase)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.set_prepared_statement_cache_capacity(64);
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        schema::upgrade(&conn)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            key,
            watch: None,
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent:
        // every statement is atomic. Carry on with the connection.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The `NOCASE` collation of this store: names in their Unicode lowercase
/// ([`fold`](crate::store::fold)), ASCII without allocating.
fn nocase(a: &str, b: &str) -> std::cmp::Ordering {
    if a.is_ascii() && b.is_ascii() {
        return a
            .bytes()
            .map(|c| c.to_ascii_lowercase())
            .cmp(b.bytes().map(|c| c.to_ascii_lowercase()));
    }
    crate::store::fold(a).cmp(&crate::store::fold(b))
}

/// Runs `f` all or nothing. A savepoint rather than a transaction, so it
/// nests inside a login-path transaction.
fn atomic<T>(
    c: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    x(c, "SAVEPOINT atomic", [])?;
    match f(c) {
        Ok(v) => {
            x(c, "RELEASE atomic", [])?;
            Ok(v)
        }
        Err(e) => {
            let _ = c.execute_batch("ROLLBACK TO atomic; RELEASE atomic");
            Err(e)
        }
    }
}

/// One row, through the statement cache (parsing SQL was a tenth of a
/// login's store time).
fn q<T>(
    c: &Connection,
    sql: &str,
    p: impl rusqlite::Params,
    f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    c.prepare_cached(sql)?.query_row(p, f)
}

/// A statement through the statement cache; the number of rows changed.
fn x(c: &Connection, sql: &str, p: impl rusqlite::Params) -> rusqlite::Result<usize> {
    c.prepare_cached(sql)?.execute(p)
}

/// A column that holds a JSON document (an aggregate of several rows).
fn json_at<T: serde::de::DeserializeOwned>(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<T> {
    let text: String = r.get(i)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// A transaction of the login path: the connection, held from `BEGIN
/// IMMEDIATE` to the commit, rolled back if dropped before.
struct SqliteTx<'a> {
    c: std::sync::MutexGuard<'a, Connection>,
    open: bool,
}

impl Drop for SqliteTx<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.c.execute_batch("ROLLBACK");
        }
    }
}

impl LoginTx for SqliteTx<'_> {
    fn facts(&mut self, user: &str, now: UnixTime) -> Result<Option<UserFacts>, StoreError> {
        login::facts(&self.c, user, now)
    }

    fn password_hash(&mut self, user: &str) -> Result<Option<String>, StoreError> {
        Ok(users::user(&self.c, user)?.and_then(|u| u.password_hash))
    }

    fn pin_hash(&mut self, user: &str) -> Result<Option<String>, StoreError> {
        Ok(users::user(&self.c, user)?.and_then(|u| u.pin_hash))
    }

    fn claim_step(&mut self, id: i64, step: u64) -> Result<bool, StoreError> {
        tokens::claim_step(&self.c, id, step)
    }

    fn record_denial(
        &mut self,
        user: &str,
        now: UnixTime,
        p: &LockoutPolicy,
    ) -> Result<Option<UnixTime>, StoreError> {
        login::record_denial(&self.c, user, now, p)
    }

    fn clear_denials(&mut self, user: &str) -> Result<(), StoreError> {
        login::clear_denials(&self.c, user)
    }

    fn take_bypass(&mut self, user: &str, now: UnixTime) -> Result<bool, StoreError> {
        Ok(login::blocked_until(&self.c, user, now)?.is_none()
            && login::take_bypass(&self.c, user, now)?)
    }

    fn block(
        &mut self,
        user: &str,
        reason: &str,
        now: UnixTime,
        until: UnixTime,
    ) -> Result<(), StoreError> {
        login::block(&self.c, user, reason, now, until)
    }

    fn remember(
        &mut self,
        user: &str,
        r: &Remembered,
        keep_since: UnixTime,
    ) -> Result<(), StoreError> {
        login::remember(&self.c, user, r, keep_since)
    }

    fn append_audit(&mut self, a: &AuditRecord) -> Result<(), StoreError> {
        audit::append_audit(&self.c, a)
    }

    fn prune_audit(&mut self, before: UnixTime, limit: u32) -> Result<u64, StoreError> {
        audit::prune_audit(&self.c, before, limit)
    }

    fn start_verification(&mut self, v: &Verification) -> Result<bool, StoreError> {
        verifications::start_verification(&self.c, v)
    }

    fn end_verification(&mut self, user: &str, id: &[u8], node: &str) -> Result<(), StoreError> {
        verifications::end_verification(&self.c, user, id, node)
    }

    fn verification(
        &mut self,
        id: &[u8],
        now: UnixTime,
    ) -> Result<Option<Verification>, StoreError> {
        verifications::verification(&self.c, id, now)
    }

    fn move_verification(
        &mut self,
        id: &[u8],
        node: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        verifications::move_verification(&self.c, id, node, now)
    }

    fn put_answer(&mut self, a: &StoredAnswer) -> Result<bool, StoreError> {
        verifications::put_answer(&self.c, a)
    }

    fn take_answers(&mut self, ids: &[Vec<u8>]) -> Result<KeptAnswers, StoreError> {
        verifications::take_answers(&self.c, ids)
    }

    fn grant_grace(
        &mut self,
        user: &str,
        client: &str,
        until: UnixTime,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        verifications::grant_grace(&self.c, user, client, until, now)
    }

    fn take_grace(&mut self, user: &str, client: &str, now: UnixTime) -> Result<bool, StoreError> {
        verifications::take_grace(&self.c, user, client, now)
    }

    fn heartbeat(&mut self, n: &NodeSeen) -> Result<(), StoreError> {
        verifications::heartbeat(&self.c, n)
    }

    fn put_challenge(&mut self, c: &StoredChallenge) -> Result<(), StoreError> {
        verifications::put_challenge(&self.c, c)
    }

    fn take_challenge(
        &mut self,
        state: &[u8],
        node: &str,
        now: UnixTime,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        verifications::take_challenge(&self.c, state, node, now)
    }

    fn drop_challenge(&mut self, state: &[u8], node: &str) -> Result<bool, StoreError> {
        verifications::drop_challenge(&self.c, state, node)
    }

    fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        self.open = false;
        match x(&self.c, "COMMIT", []) {
            Ok(_) => Ok(()),
            Err(e) => {
                let _ = self.c.execute_batch("ROLLBACK");
                Err(e.into())
            }
        }
    }
}

impl LoginStore for SqliteStore {
    fn begin(&self) -> Result<Box<dyn LoginTx + '_>, StoreError> {
        if let Some(w) = &self.watch {
            w.check()?;
        }
        let c = self.conn();
        // IMMEDIATE takes the write lock now, under the busy timeout, rather
        // than failing at the first write if the admin CLI holds it.
        x(&c, "BEGIN IMMEDIATE", [])?;
        Ok(Box::new(SqliteTx { c, open: true }))
    }

    fn open_seed(&self, t: &Token, sealed: &SealedSeed) -> Result<Seed, StoreError> {
        tokens::open_seed(&self.key, t, sealed)
    }

    fn seal(&self, what: &str, data: &[u8]) -> Vec<u8> {
        self.key.seal(what, data)
    }

    fn open(&self, what: &str, sealed: &[u8]) -> Result<Seed, StoreError> {
        self.key.open(what, sealed)
    }
}

impl Store for SqliteStore {
    fn as_login(&self) -> &dyn LoginStore {
        self
    }

    fn add_user(&self, u: &User) -> Result<(), StoreError> {
        users::add_user(&self.conn(), u)
    }

    fn update_user(&self, u: &User) -> Result<(), StoreError> {
        users::update_user(&self.conn(), u)
    }

    fn remove_user(&self, name: &str) -> Result<bool, StoreError> {
        users::remove_user(&self.conn(), name)
    }

    fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        users::user(&self.conn(), name)
    }

    fn users(&self) -> Result<Vec<User>, StoreError> {
        users::users(&self.conn())
    }

    fn apply_directory(&self, changes: &[UserChange]) -> Result<(), StoreError> {
        users::apply_directory(&self.conn(), changes)
    }

    fn add_invitation(&self, inv: &Invitation) -> Result<(), StoreError> {
        users::add_invitation(&self.conn(), inv)
    }

    fn invitation(&self, hash: &[u8], now: UnixTime) -> Result<Option<String>, StoreError> {
        users::invitation(&self.conn(), hash, now)
    }

    fn take_invitation(&self, hash: &[u8], now: UnixTime) -> Result<Option<String>, StoreError> {
        users::take_invitation(&self.conn(), hash, now)
    }

    fn invitation_of(&self, user: &str) -> Result<Option<Invitation>, StoreError> {
        users::invitation_of(&self.conn(), user)
    }

    fn end_portal_sessions(&self, user: &str, at: UnixTime) -> Result<bool, StoreError> {
        users::end_portal_sessions(&self.conn(), user, at)
    }

    fn withdraw_invitation(&self, hash: &[u8]) -> Result<bool, StoreError> {
        users::withdraw_invitation(&self.conn(), hash)
    }

    fn add_token(&self, t: &Token, seed: &[u8]) -> Result<i64, StoreError> {
        let sealed = tokens::seal(&self.key, t, seed);
        tokens::add_token(&self.conn(), t, &sealed)
    }

    fn tokens(&self, user: &str) -> Result<Vec<Token>, StoreError> {
        tokens::tokens(&self.conn(), user)
    }

    fn token_seed(&self, t: &Token) -> Result<Seed, StoreError> {
        let sealed = tokens::sealed_seed(&self.conn(), t.id)?;
        self.open_seed(t, &sealed)
    }

    fn token_by_serial(&self, serial: &str) -> Result<Option<Token>, StoreError> {
        tokens::token_by_serial(&self.conn(), serial)
    }

    fn remove_token(&self, serial: &str) -> Result<bool, StoreError> {
        tokens::remove_token(&self.conn(), serial)
    }

    fn remove_user_token(&self, user: &str, id: i64) -> Result<bool, StoreError> {
        tokens::remove_user_token(&self.conn(), user, id)
    }

    fn activate_token(&self, id: i64) -> Result<(), StoreError> {
        tokens::activate_token(&self.conn(), id)
    }

    fn remove_pending_tokens(&self, user: &str, kind: TokenKind) -> Result<(), StoreError> {
        tokens::remove_pending_tokens(&self.conn(), user, kind)
    }

    fn locked_until(&self, user: &str, now: UnixTime) -> Result<Option<UnixTime>, StoreError> {
        login::locked_until(&self.conn(), user, now)
    }

    fn unblock(&self, user: &str, reason: &str, now: UnixTime) -> Result<(), StoreError> {
        login::unblock(&self.conn(), user, reason, now)
    }

    fn blocked_until(&self, user: &str, now: UnixTime) -> Result<Option<UnixTime>, StoreError> {
        login::blocked_until(&self.conn(), user, now)
    }

    fn forget(&self, user: &str) -> Result<usize, StoreError> {
        login::forget(&self.conn(), user)
    }

    fn remembered(&self, user: &str) -> Result<Vec<Remembered>, StoreError> {
        login::remembered(&self.conn(), user)
    }

    fn block_history(&self) -> Result<Vec<HistoryEntry>, StoreError> {
        audit::block_history(&self.conn())
    }

    fn add_bypass(
        &self,
        user: &str,
        reason: &str,
        now: UnixTime,
        until: UnixTime,
    ) -> Result<(), StoreError> {
        login::add_bypass(&self.conn(), user, reason, now, until)
    }

    fn bypass_history(&self) -> Result<Vec<HistoryEntry>, StoreError> {
        audit::bypass_history(&self.conn())
    }

    fn audit(
        &self,
        user: Option<&str>,
        since: Option<UnixTime>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        audit::audit(&self.conn(), user, since)
    }

    fn verifications(&self, now: UnixTime) -> Result<Vec<Verification>, StoreError> {
        verifications::verifications(&self.conn(), now)
    }

    fn nodes(&self) -> Result<Vec<NodeSeen>, StoreError> {
        verifications::nodes(&self.conn())
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_schema;
