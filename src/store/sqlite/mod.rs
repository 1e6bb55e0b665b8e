//! The embedded SQLite backend: one file, WAL, numbered migrations.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::*;

mod schema;
mod tokens;
mod users;

/// SQLite-backed [`Store`].
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// Held for the whole of a [`Store::batch`]; the connection lock is
    /// taken per statement inside it.
    batch: Mutex<()>,
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
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.set_prepared_statement_cache_capacity(64);
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        schema::upgrade(&conn)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            batch: Mutex::new(()),
            key,
            watch: None,
        })
    }

    /// A time column for `user` (`sql` selects it), if set and after `now`.
    fn until_in_future(
        &self,
        sql: &str,
        user: &str,
        now: UnixTime,
    ) -> Result<Option<UnixTime>, StoreError> {
        let until: Option<Option<i64>> = q(&self.conn(), sql, [user], |r| r.get(0)).optional()?;
        Ok(until.flatten().filter(|&u| u > now))
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent:
        // every statement is atomic. Carry on with the connection.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs `f` all or nothing. A savepoint rather than a transaction, so it
/// nests inside a [`Store::batch`].
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

/// A user's remembered logins from a JSON array of
/// `[auth_type, app, address, at]` arrays, in the order of
/// [`Store::remembered`].
fn remembered_at(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Vec<Remembered>> {
    let rows: Vec<(String, String, Option<String>, i64)> = json_at(r, i)?;
    let mut v: Vec<Remembered> = rows
        .into_iter()
        .map(|(auth_type, app, address, at)| Remembered {
            auth_type,
            app,
            address,
            at,
        })
        .collect();
    let key = |r: &Remembered| {
        (
            std::cmp::Reverse(r.at),
            r.auth_type.clone(),
            r.app.clone(),
            r.address.clone(),
        )
    };
    v.sort_by_cached_key(key);
    Ok(v)
}

/// Columns: user, action, reason, at, until.
fn history_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<HistoryEntry> {
    Ok(HistoryEntry {
        user: r.get(0)?,
        action: r.get(1)?,
        reason: r.get(2)?,
        at: r.get(3)?,
        until: r.get(4)?,
    })
}

/// What a login reads about its user, in one statement (see
/// [`Store::login_state`]).
///
/// Mind joins here: in a join, SQLite carries `u.name = ?1` over to the
/// other table's terms, and unless `?1` is given a collation
/// (`?1 COLLATE NOCASE`, which changes nothing else), it then compiles the
/// statement again each time `?1` is bound, which the statement cache does
/// for every login.
const LOGIN_STATE_SQL: &str = "SELECT COALESCE(u.blocked_until > ?2, 0),
         EXISTS (SELECT 1 FROM bypasses b
                 WHERE b.user = u.name AND b.used_at IS NULL AND b.until > ?2),
         COALESCE((SELECT l.locked_until > ?2 FROM lockouts l WHERE l.user = u.name), 0),
         u.method, u.phone, u.pin_hash IS NOT NULL, u.language,
         (SELECT json_group_array(g.name) FROM user_groups g WHERE g.user = u.name),
         (SELECT json_group_array(json_array(m.auth_type, m.app, m.address, m.at))
            FROM remembered m WHERE m.user = u.name),
         t.id, t.user, t.kind, t.serial, t.algorithm, t.digits, t.step, t.counter, t.last_step, t.active, t.model, t.seed
  FROM users u LEFT JOIN tokens t ON t.user = u.name AND t.active
  WHERE u.name = ?1 COLLATE NOCASE ORDER BY t.id";
/// Where the token columns start in [`LOGIN_STATE_SQL`].
const LOGIN_STATE_TOKEN_AT: usize = 9;

/// The user's remembered logins, as [`remembered_at`] reads them.
const REMEMBERED_SQL: &str = "SELECT json_group_array(json_array(auth_type, app, address, at)) FROM remembered WHERE user = ?1";

/// Remembers a login (see [`Store::remember`]): of a user who exists and
/// was neither blocked nor locked after the login's time.
const REMEMBER_SQL: &str =
    "INSERT INTO remembered (user, auth_type, app, address, at)
 SELECT u.name, ?2, ?3, ?4, ?5 FROM users u
 WHERE u.name = ?1 COLLATE NOCASE AND NOT COALESCE(u.blocked_until > ?5, 0)
   AND NOT COALESCE((SELECT l.locked_until > ?5 FROM lockouts l WHERE l.user = u.name), 0)
 ON CONFLICT (user, auth_type, app, COALESCE(address, x'')) DO UPDATE SET at = MAX(at, excluded.at)";

/// Forgets all of a user's remembered logins.
const FORGET_SQL: &str = "DELETE FROM remembered WHERE user = ?1";

/// Forgets a user's remembered logins from before `?2`.
const PRUNE_SQL: &str = "DELETE FROM remembered WHERE user = ?1 AND at < ?2";

const AUDIT_SQL: &str =
    "INSERT INTO audit (at, user, result, accepted, mode, server, client, client_ip, reason)
 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

/// The audit trail from a time on, optionally of one user: a range of the
/// `at` index, already in order.
const REPORT_SQL: &str =
    "SELECT at, user, result, accepted, mode, server, client, client_ip, reason FROM audit
 WHERE at >= ?2 AND (?1 IS NULL OR user = ?1 COLLATE NOCASE) ORDER BY at, id";

impl Store for SqliteStore {
    fn batch(&self, f: &mut dyn FnMut()) -> Result<(), StoreError> {
        let _one_at_a_time = self.batch.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = &self.watch {
            w.check()?;
        }
        // IMMEDIATE takes the write lock now, under the busy timeout, rather
        // than failing at the first write if the admin CLI holds it.
        x(&self.conn(), "BEGIN IMMEDIATE", [])?;
        f();
        let c = self.conn();
        match x(&c, "COMMIT", []) {
            Ok(_) => Ok(()),
            Err(e) => {
                let _ = c.execute_batch("ROLLBACK");
                Err(e.into())
            }
        }
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

    fn open_seed(&self, t: &Token, sealed: &SealedSeed) -> Result<Seed, StoreError> {
        tokens::open_seed(&self.key, t, sealed)
    }

    fn token_by_serial(&self, serial: &str) -> Result<Option<Token>, StoreError> {
        tokens::token_by_serial(&self.conn(), serial)
    }

    fn remove_token(&self, serial: &str) -> Result<bool, StoreError> {
        tokens::remove_token(&self.conn(), serial)
    }

    fn activate_token(&self, id: i64) -> Result<(), StoreError> {
        tokens::activate_token(&self.conn(), id)
    }

    fn remove_pending_tokens(&self, user: &str, kind: TokenKind) -> Result<(), StoreError> {
        tokens::remove_pending_tokens(&self.conn(), user, kind)
    }

    fn claim_step(&self, id: i64, step: u64) -> Result<bool, StoreError> {
        tokens::claim_step(&self.conn(), id, step)
    }

    fn record_denial(
        &self,
        user: &str,
        now: UnixTime,
        p: &LockoutPolicy,
    ) -> Result<Option<UnixTime>, StoreError> {
        atomic(&self.conn(), |tx| {
            let row: Option<(i64, i64)> = q(
                tx,
                "SELECT denials, first_denial FROM lockouts WHERE user = ?1",
                [user],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
            let (denials, first) = match row {
                Some((d, f)) if now < f + p.reset_after => (d + 1, f),
                _ => (1, now),
            };
            let locked = (denials >= i64::from(p.denials)).then_some(now + p.unblock_after);
            x(tx,
            "INSERT INTO lockouts (user, denials, first_denial, locked_until) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(user) DO UPDATE SET denials = ?2, first_denial = ?3,
                 locked_until = COALESCE(?4, locked_until)",
            params![user, if locked.is_some() { 0 } else { denials }, first, locked],
        )?;
            if locked.is_some() {
                x(tx, FORGET_SQL, [user])?;
            }
            Ok(locked)
        })
    }

    fn clear_denials(&self, user: &str) -> Result<(), StoreError> {
        let c = self.conn();
        // Most users have nothing to clear: read first, so a login does not
        // take the write lock for nothing.
        let any: bool = q(
            &c,
            "SELECT EXISTS (SELECT 1 FROM lockouts WHERE user = ?1 AND denials > 0)",
            [user],
            |r| r.get(0),
        )?;
        if any {
            x(
                &c,
                "UPDATE lockouts SET denials = 0 WHERE user = ?1",
                [user],
            )?;
        }
        Ok(())
    }

    fn locked_until(&self, user: &str, now: UnixTime) -> Result<Option<UnixTime>, StoreError> {
        self.until_in_future(
            "SELECT locked_until FROM lockouts WHERE user = ?1",
            user,
            now,
        )
    }

    fn block(
        &self,
        user: &str,
        reason: &str,
        now: UnixTime,
        until: UnixTime,
    ) -> Result<(), StoreError> {
        atomic(&self.conn(), |tx| {
            if x(
                tx,
                "UPDATE users SET blocked_until = ?2 WHERE name = ?1",
                params![user, until],
            )? == 0
            {
                return Err(StoreError::NoSuchUser(user.to_owned()));
            }
            x(
                tx,
                "INSERT INTO block_history (user, action, reason, at, until) VALUES (?1, 'block', ?2, ?3, ?4)",
                params![user, reason, now, until],
            )?;
            x(tx, FORGET_SQL, [user])?;
            Ok(())
        })
    }

    fn unblock(&self, user: &str, reason: &str, now: UnixTime) -> Result<(), StoreError> {
        atomic(&self.conn(), |tx| {
            if x(
                tx,
                "UPDATE users SET blocked_until = NULL WHERE name = ?1",
                [user],
            )? == 0
            {
                return Err(StoreError::NoSuchUser(user.to_owned()));
            }
            x(
                tx,
                "UPDATE lockouts SET locked_until = NULL, denials = 0 WHERE user = ?1",
                [user],
            )?;
            x(
                tx,
                "INSERT INTO block_history (user, action, reason, at) VALUES (?1, 'unblock', ?2, ?3)",
                params![user, reason, now],
            )?;
            Ok(())
        })
    }

    fn login_state(&self, user: &str, now: UnixTime) -> Result<Option<LoginState>, StoreError> {
        // One statement instead of six: this runs for every login. A row
        // per active token, or one with no token.
        let c = self.conn();
        let mut st = c.prepare_cached(LOGIN_STATE_SQL)?;
        let mut rows = st.query(params![user, now])?;
        let mut state: Option<LoginState> = None;
        while let Some(r) = rows.next()? {
            let s = match &mut state {
                Some(s) => s,
                None => state.insert(LoginState {
                    blocked: r.get(0)?,
                    bypass_waiting: r.get(1)?,
                    locked: r.get(2)?,
                    tokens: Vec::new(),
                    method: Method::parse(&r.get::<_, String>(3)?).unwrap_or(Method::Totp),
                    phone: r.get(4)?,
                    has_pin: r.get(5)?,
                    language: r.get(6)?,
                    groups: users::groups_at(r, 7)?,
                    remembered: remembered_at(r, 8)?,
                }),
            };
            if r.get::<_, Option<i64>>(LOGIN_STATE_TOKEN_AT)?.is_some() {
                let sealed = r.get(LOGIN_STATE_TOKEN_AT + tokens::TOKEN_COLS_N)?;
                s.tokens.push((
                    tokens::token_at(r, LOGIN_STATE_TOKEN_AT)?,
                    SealedSeed(sealed),
                ));
            }
        }
        Ok(state)
    }

    fn blocked_until(&self, user: &str, now: UnixTime) -> Result<Option<UnixTime>, StoreError> {
        self.until_in_future("SELECT blocked_until FROM users WHERE name = ?1", user, now)
    }

    fn remember(&self, user: &str, r: &Remembered, keep_since: UnixTime) -> Result<(), StoreError> {
        atomic(&self.conn(), |tx| {
            x(
                tx,
                REMEMBER_SQL,
                params![user, r.auth_type, r.app, r.address, r.at],
            )?;
            x(tx, PRUNE_SQL, params![user, keep_since])?;
            Ok(())
        })
    }

    fn forget(&self, user: &str) -> Result<usize, StoreError> {
        atomic(&self.conn(), |tx| {
            let exists: bool = q(
                tx,
                "SELECT EXISTS (SELECT 1 FROM users WHERE name = ?1)",
                [user],
                |r| r.get(0),
            )?;
            if !exists {
                return Err(StoreError::NoSuchUser(user.to_owned()));
            }
            Ok(x(tx, FORGET_SQL, [user])?)
        })
    }

    fn remembered(&self, user: &str) -> Result<Vec<Remembered>, StoreError> {
        Ok(q(&self.conn(), REMEMBERED_SQL, [user], |r| {
            remembered_at(r, 0)
        })?)
    }

    fn block_history(&self) -> Result<Vec<HistoryEntry>, StoreError> {
        let c = self.conn();
        let mut st = c.prepare_cached(
            "SELECT user, action, reason, at, until FROM block_history ORDER BY at, id",
        )?;
        let rows = st.query_map([], history_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn add_bypass(
        &self,
        user: &str,
        reason: &str,
        now: UnixTime,
        until: UnixTime,
    ) -> Result<(), StoreError> {
        let c = self.conn();
        let exists: bool = q(
            &c,
            "SELECT EXISTS (SELECT 1 FROM users WHERE name = ?1)",
            [user],
            |r| r.get(0),
        )?;
        if !exists {
            return Err(StoreError::NoSuchUser(user.to_owned()));
        }
        x(
            &c,
            "INSERT INTO bypasses (user, reason, created_at, until) VALUES (?1, ?2, ?3, ?4)",
            params![user, reason, now, until],
        )?;
        Ok(())
    }

    fn take_bypass(&self, user: &str, now: UnixTime) -> Result<bool, StoreError> {
        let c = self.conn();
        // Read first (most logins have no bypass); the UPDATE below is what
        // decides, atomically.
        let any: bool = q(
            &c,
            "SELECT EXISTS (SELECT 1 FROM bypasses WHERE user = ?1 AND used_at IS NULL AND until > ?2)",
            params![user, now],
            |r| r.get(0),
        )?;
        if !any {
            return Ok(false);
        }
        let n = x(&c,
            "UPDATE bypasses SET used_at = ?2 WHERE id = (
                 SELECT id FROM bypasses WHERE user = ?1 AND used_at IS NULL AND until > ?2 ORDER BY id LIMIT 1)",
            params![user, now],
        )?;
        Ok(n == 1)
    }

    fn bypass_history(&self) -> Result<Vec<HistoryEntry>, StoreError> {
        let c = self.conn();
        let mut st = c.prepare_cached(
            "SELECT user, CASE WHEN used_at IS NULL THEN 'granted' ELSE 'used' END, reason, created_at, until
             FROM bypasses ORDER BY created_at, id",
        )?;
        let rows = st.query_map([], history_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn append_audit(&self, a: &AuditRecord) -> Result<(), StoreError> {
        x(
            &self.conn(),
            AUDIT_SQL,
            params![
                a.at,
                a.user,
                a.result.as_str(),
                a.accepted,
                a.mode,
                a.server,
                a.client,
                a.client_ip,
                a.reason
            ],
        )?;
        Ok(())
    }

    fn audit(
        &self,
        user: Option<&str>,
        since: Option<UnixTime>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let c = self.conn();
        let mut st = c.prepare_cached(REPORT_SQL)?;
        let since = since.unwrap_or(UnixTime::MIN);
        let rows = st.query_map(params![user, since], |r| {
            let result: String = r.get(2)?;
            Ok(AuditRecord {
                at: r.get(0)?,
                user: r.get(1)?,
                result: ResultCode::parse(&result).unwrap_or(ResultCode::FailedServerError),
                accepted: r.get(3)?,
                mode: r.get(4)?,
                server: r.get(5)?,
                client: r.get(6)?,
                client_ip: r.get(7)?,
                reason: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_schema;
#[cfg(test)]
mod tests_tokens;
#[cfg(test)]
mod tests_users;
