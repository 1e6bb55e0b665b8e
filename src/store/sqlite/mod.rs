//! The embedded SQLite backend: one file, WAL, numbered migrations.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::*;

/// Migrations, in order; `schema_version` records how many have run.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE users (
    name          TEXT PRIMARY KEY COLLATE NOCASE,
    email         TEXT,
    phone         TEXT,
    method        TEXT NOT NULL DEFAULT 'totp',
    password_hash TEXT,
    created_at    INTEGER NOT NULL,
    blocked_until INTEGER
);
CREATE TABLE tokens (
    id         INTEGER PRIMARY KEY,
    user       TEXT NOT NULL COLLATE NOCASE REFERENCES users(name) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    serial     TEXT UNIQUE,
    seed       BLOB NOT NULL,
    algorithm  TEXT NOT NULL,
    digits     INTEGER NOT NULL,
    step       INTEGER NOT NULL,
    counter    INTEGER NOT NULL DEFAULT 0,
    last_step  INTEGER,
    active     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX tokens_user ON tokens(user);
CREATE TABLE lockouts (
    user         TEXT PRIMARY KEY COLLATE NOCASE,
    denials      INTEGER NOT NULL,
    first_denial INTEGER NOT NULL,
    locked_until INTEGER
);
CREATE TABLE block_history (
    id     INTEGER PRIMARY KEY,
    user   TEXT NOT NULL,
    action TEXT NOT NULL,
    reason TEXT NOT NULL,
    at     INTEGER NOT NULL,
    until  INTEGER
);
CREATE TABLE bypasses (
    id         INTEGER PRIMARY KEY,
    user       TEXT NOT NULL COLLATE NOCASE,
    reason     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    until      INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE TABLE audit (
    id        INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    user      TEXT NOT NULL,
    result    TEXT NOT NULL,
    accepted  INTEGER NOT NULL,
    mode      TEXT NOT NULL,
    server    TEXT NOT NULL,
    client    TEXT NOT NULL,
    client_ip TEXT,
    reason    TEXT
);
CREATE INDEX audit_user_at ON audit(user, at);
"#,
    // Every login looks for a waiting bypass.
    r#"
CREATE INDEX bypasses_user ON bypasses(user, used_at);
"#,
    // Hardware tokens: manufacturer and model, as their CSV gives them.
    r#"
ALTER TABLE tokens ADD COLUMN model TEXT;
"#,
    // Phone-call PIN mode: the PIN, hashed like a password.
    r#"
ALTER TABLE users ADD COLUMN pin_hash TEXT;
"#,
    // The language a user reads prompts and hears calls in.
    r#"
ALTER TABLE users ADD COLUMN language TEXT;
"#,
    // The audit trail is searched by time. The index on (user, at) served no
    // query (reports match the user without case, which it cannot), and it
    // cost every login a write at a random place in the file: a sixth of
    // the store's time per login. One on `at` is appended to in order.
    r#"
DROP INDEX audit_user_at;
CREATE INDEX audit_at ON audit(at);
"#,
    // The groups a user is in, which policies match. Names compare without
    // case, as user names do; the user's rows go with the user.
    r#"
CREATE TABLE user_groups (
    user TEXT NOT NULL COLLATE NOCASE REFERENCES users(name) ON DELETE CASCADE,
    name TEXT NOT NULL COLLATE NOCASE,
    PRIMARY KEY (user, name)
) WITHOUT ROWID;
"#,
    // Remembered logins: one row per user, auth type, application and
    // address. No address (NULL, which a unique index never finds equal) is
    // keyed as x'': a blob, unequal to every text address, "" included.
    r#"
CREATE TABLE remembered (
    user      TEXT NOT NULL COLLATE NOCASE REFERENCES users(name) ON DELETE CASCADE,
    auth_type TEXT NOT NULL,
    app       TEXT NOT NULL,
    address   TEXT,
    at        INTEGER NOT NULL
);
CREATE UNIQUE INDEX remembered_key ON remembered(user, auth_type, app, COALESCE(address, x''));
"#,
];

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
        conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
        let version: i64 = conn
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        let supported = MIGRATIONS.len() as i64;
        if version > supported {
            return Err(StoreError::SchemaTooNew {
                found: version,
                supported,
            });
        }
        migrate(&conn, version as usize, MIGRATIONS.len())?;
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

/// Runs the migrations that take a database at schema version `from` to
/// `to`, each in a transaction of its own that records the version reached.
fn migrate(conn: &Connection, from: usize, to: usize) -> Result<(), StoreError> {
    for (i, m) in MIGRATIONS.iter().enumerate().take(to).skip(from) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(m)?;
        tx.execute("DELETE FROM schema_version", [])?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [i as i64 + 1],
        )?;
        tx.commit()?;
    }
    Ok(())
}

/// Replaces the groups of `user` (who exists) with `groups`, normalized.
fn set_groups(c: &Connection, user: &str, groups: &[String]) -> Result<(), StoreError> {
    x(c, "DELETE FROM user_groups WHERE user = ?1", [user])?;
    for g in normalize_groups(groups.to_vec()) {
        // The user's name as stored, whatever the case of `user`.
        x(
            c,
            "INSERT INTO user_groups (user, name) SELECT name, ?2 FROM users WHERE name = ?1",
            params![user, g],
        )?;
    }
    Ok(())
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

/// A user's groups from a JSON array of their names.
fn groups_at(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Vec<String>> {
    json_at(r, i).map(normalize_groups)
}

fn user_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    let method: String = r.get(3)?;
    Ok(User {
        name: r.get(0)?,
        email: r.get(1)?,
        phone: r.get(2)?,
        method: Method::parse(&method).unwrap_or(Method::Totp),
        password_hash: r.get(4)?,
        created_at: r.get(5)?,
        blocked_until: r.get(6)?,
        pin_hash: r.get(7)?,
        language: r.get(8)?,
        groups: groups_at(r, 9)?,
    })
}

/// The columns of [`user_from_row`], from `users u`; the groups as a JSON
/// array.
const USER_COLS: &str =
    "name, email, phone, method, password_hash, created_at, blocked_until, pin_hash, language,
 (SELECT json_group_array(g.name) FROM user_groups g WHERE g.user = u.name)";

fn token_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Token> {
    token_at(r, 0)
}

/// A token from the [`TOKEN_COLS`] that start at column `at`.
fn token_at(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Token> {
    let kind: String = r.get(at + 2)?;
    let alg: String = r.get(at + 4)?;
    let last: Option<i64> = r.get(at + 8)?;
    Ok(Token {
        id: r.get(at)?,
        user: r.get(at + 1)?,
        kind: if kind == "hotp" {
            TokenKind::Hotp
        } else {
            TokenKind::Totp
        },
        serial: r.get(at + 3)?,
        params: TotpParams {
            algorithm: Algorithm::parse(&alg).unwrap_or(Algorithm::Sha1),
            digits: r.get(at + 5)?,
            step: r.get::<_, i64>(at + 6)? as u64,
        },
        counter: r.get::<_, i64>(at + 7)? as u64,
        last_step: last.map(|s| s as u64),
        active: r.get(at + 9)?,
        model: r.get(at + 10)?,
    })
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

/// Claims a step of a token: changes one row, or none if the step was used,
/// if the token was removed since the login read it, or if it is pending.
const CLAIM_SQL: &str = "UPDATE tokens SET last_step = ?2, counter = MAX(counter, ?2 + 1)
 WHERE id = ?1 AND active AND (last_step IS NULL OR last_step < ?2)";

const AUDIT_SQL: &str =
    "INSERT INTO audit (at, user, result, accepted, mode, server, client, client_ip, reason)
 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

/// The audit trail from a time on, optionally of one user: a range of the
/// `at` index, already in order.
const REPORT_SQL: &str =
    "SELECT at, user, result, accepted, mode, server, client, client_ip, reason FROM audit
 WHERE at >= ?2 AND (?1 IS NULL OR user = ?1 COLLATE NOCASE) ORDER BY at, id";

const TOKEN_COLS: &str =
    "id, user, kind, serial, algorithm, digits, step, counter, last_step, active, model";
/// How many columns [`TOKEN_COLS`] names.
const TOKEN_COLS_N: usize = 11;

/// A user's tokens, by id. The collation on `?1` matters here too (see
/// [`LOGIN_STATE_SQL`]): without it, the `ORDER BY` got the statement
/// compiled again for every user bound to it.
const TOKENS_SQL: &str =
    "SELECT id, user, kind, serial, algorithm, digits, step, counter, last_step, active, model
 FROM tokens WHERE user = ?1 COLLATE NOCASE ORDER BY id";

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
        atomic(&self.conn(), |tx| {
            let r = x(
                tx,
                "INSERT INTO users (name, email, phone, method, password_hash, created_at, pin_hash, language) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    u.name,
                    u.email,
                    u.phone,
                    u.method.as_str(),
                    u.password_hash,
                    u.created_at,
                    u.pin_hash,
                    u.language
                ],
            );
            match r {
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    return Err(StoreError::UserExists(u.name.clone()));
                }
                r => r?,
            };
            set_groups(tx, &u.name, &u.groups)
        })
    }

    fn update_user(&self, u: &User) -> Result<(), StoreError> {
        atomic(&self.conn(), |tx| {
            let n = x(
                tx,
                "UPDATE users SET email = ?2, phone = ?3, method = ?4, password_hash = ?5, pin_hash = ?6, language = ?7 WHERE name = ?1",
                params![
                    u.name,
                    u.email,
                    u.phone,
                    u.method.as_str(),
                    u.password_hash,
                    u.pin_hash,
                    u.language
                ],
            )?;
            if n == 0 {
                return Err(StoreError::NoSuchUser(u.name.clone()));
            }
            set_groups(tx, &u.name, &u.groups)
        })
    }

    fn remove_user(&self, name: &str) -> Result<bool, StoreError> {
        Ok(x(&self.conn(), "DELETE FROM users WHERE name = ?1", [name])? > 0)
    }

    fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        Ok(q(
            &self.conn(),
            &format!("SELECT {USER_COLS} FROM users u WHERE name = ?1"),
            [name],
            user_from_row,
        )
        .optional()?)
    }

    fn users(&self) -> Result<Vec<User>, StoreError> {
        let c = self.conn();
        let mut st = c.prepare_cached(&format!("SELECT {USER_COLS} FROM users u ORDER BY name"))?;
        let rows = st.query_map([], user_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn add_token(&self, t: &Token, seed: &[u8]) -> Result<i64, StoreError> {
        let sealed = self.key.seal(&t.user.to_lowercase(), seed);
        let c = self.conn();
        let exists: bool = q(
            &c,
            "SELECT EXISTS (SELECT 1 FROM users WHERE name = ?1)",
            [&t.user],
            |r| r.get(0),
        )?;
        if !exists {
            return Err(StoreError::NoSuchUser(t.user.clone()));
        }
        let r = x(&c,
            "INSERT INTO tokens (user, kind, serial, seed, algorithm, digits, step, counter, last_step, active, model)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                t.user,
                if t.kind == TokenKind::Hotp { "hotp" } else { "totp" },
                t.serial,
                sealed,
                t.params.algorithm.as_str(),
                t.params.digits,
                t.params.step as i64,
                t.counter as i64,
                t.last_step.map(|s| s as i64),
                t.active,
                t.model
            ],
        );
        match r {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StoreError::SerialTaken(
                    t.serial.clone().unwrap_or_default(),
                ))
            }
            r => r.map(|_| c.last_insert_rowid()).map_err(Into::into),
        }
    }

    fn tokens(&self, user: &str) -> Result<Vec<Token>, StoreError> {
        let c = self.conn();
        let mut st = c.prepare_cached(TOKENS_SQL)?;
        let tokens = st.query_map([user], token_from_row)?;
        Ok(tokens.collect::<Result<_, _>>()?)
    }

    fn token_seed(&self, t: &Token) -> Result<Seed, StoreError> {
        let sealed = q(
            &self.conn(),
            "SELECT seed FROM tokens WHERE id = ?1",
            [t.id],
            |r| r.get(0),
        )?;
        self.open_seed(t, &SealedSeed(sealed))
    }

    fn open_seed(&self, t: &Token, sealed: &SealedSeed) -> Result<Seed, StoreError> {
        self.key.open(&t.user.to_lowercase(), &sealed.0)
    }

    fn token_by_serial(&self, serial: &str) -> Result<Option<Token>, StoreError> {
        Ok(q(
            &self.conn(),
            &format!("SELECT {TOKEN_COLS} FROM tokens WHERE serial = ?1"),
            [serial],
            token_from_row,
        )
        .optional()?)
    }

    fn remove_token(&self, serial: &str) -> Result<bool, StoreError> {
        Ok(x(
            &self.conn(),
            "DELETE FROM tokens WHERE serial = ?1",
            [serial],
        )? > 0)
    }

    fn activate_token(&self, id: i64) -> Result<(), StoreError> {
        x(
            &self.conn(),
            "UPDATE tokens SET active = 1 WHERE id = ?1",
            [id],
        )?;
        Ok(())
    }

    fn remove_pending_tokens(&self, user: &str, kind: TokenKind) -> Result<(), StoreError> {
        let k = if kind == TokenKind::Hotp {
            "hotp"
        } else {
            "totp"
        };
        x(
            &self.conn(),
            "DELETE FROM tokens WHERE user = ?1 AND kind = ?2 AND active = 0",
            params![user, k],
        )?;
        Ok(())
    }

    fn claim_step(&self, id: i64, step: u64) -> Result<bool, StoreError> {
        let s = step as i64;
        let n = x(&self.conn(), CLAIM_SQL, params![id, s])?;
        Ok(n == 1)
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
                    groups: groups_at(r, 7)?,
                    remembered: remembered_at(r, 8)?,
                }),
            };
            if r.get::<_, Option<i64>>(LOGIN_STATE_TOKEN_AT)?.is_some() {
                let sealed = r.get(LOGIN_STATE_TOKEN_AT + TOKEN_COLS_N)?;
                s.tokens
                    .push((token_at(r, LOGIN_STATE_TOKEN_AT)?, SealedSeed(sealed)));
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
mod tests {
    use super::*;
    use rusqlite::StatementStatus;

    fn store() -> SqliteStore {
        SqliteStore::in_memory(SeedKey::from_bytes(&[1; 32])).expect("open")
    }

    fn user(name: &str) -> User {
        User {
            email: Some(format!("{name}@example.org")),
            created_at: 1000,
            ..User::new(name, Method::Totp)
        }
    }

    fn totp(user: &str) -> Token {
        Token::totp(user, TotpParams::default())
    }

    /// A PAP login through the application "vpn", remembered at `at`.
    fn vpn(address: Option<&str>, at: UnixTime) -> Remembered {
        Remembered {
            auth_type: "pap".into(),
            app: "vpn".into(),
            address: address.map(Into::into),
            at,
        }
    }

    fn remembered_rows(s: &SqliteStore) -> i64 {
        s.conn()
            .query_row("SELECT COUNT(*) FROM remembered", [], |r| r.get(0))
            .expect("count")
    }

    #[test]
    fn remember_keeps_one_row_per_key_and_prunes_the_old() {
        let s = store();
        s.add_user(&user("Ivy")).expect("add");
        s.add_user(&user("jo")).expect("add");
        let ip = Some("192.0.2.7");
        s.remember("ivy", &vpn(ip, 100), 0).expect("remember");
        s.remember("IVY", &vpn(ip, 150), 0).expect("again");
        s.remember("ivy", &vpn(ip, 120), 0).expect("late");
        assert_eq!(
            s.remembered("ivy").expect("list"),
            [vpn(ip, 150)],
            "one row per key, at the newest time"
        );
        // Each part of the key makes a row of its own; no address is one too.
        s.remember("ivy", &vpn(Some("192.0.2.8"), 160), 0)
            .expect("remember");
        s.remember("ivy", &vpn(None, 170), 0).expect("remember");
        s.remember("ivy", &vpn(None, 175), 0).expect("remember");
        s.remember("ivy", &vpn(Some(""), 165), 0).expect("remember");
        let eap = Remembered {
            auth_type: "eap".into(),
            ..vpn(ip, 140)
        };
        s.remember("ivy", &eap, 0).expect("remember");
        let wifi = Remembered {
            app: "wifi".into(),
            ..vpn(ip, 140)
        };
        s.remember("ivy", &wifi, 0).expect("remember");
        s.remember("jo", &vpn(ip, 10), 0).expect("remember");
        let all = vec![
            vpn(None, 175),
            vpn(Some(""), 165),
            vpn(Some("192.0.2.8"), 160),
            vpn(ip, 150),
            eap.clone(),
            wifi.clone(),
        ];
        assert_eq!(s.remembered("ivy").expect("list"), all, "newest first");
        assert_eq!(
            s.login_state("ivy", 0)
                .expect("state")
                .expect("user")
                .remembered,
            all,
            "the login reads them all, in the same order"
        );
        // Remembering prunes the user's rows from before keep_since, and
        // only the user's.
        s.remember("ivy", &vpn(ip, 200), 160).expect("remember");
        assert_eq!(
            s.remembered("ivy").expect("list"),
            [
                vpn(ip, 200),
                vpn(None, 175),
                vpn(Some(""), 165),
                vpn(Some("192.0.2.8"), 160)
            ]
        );
        assert_eq!(s.remembered("jo").expect("list"), [vpn(ip, 10)]);
        // A login older than keep_since is not kept either.
        s.remember("jo", &vpn(None, 5), 10).expect("remember");
        assert_eq!(s.remembered("jo").expect("list"), [vpn(ip, 10)]);
        // An unknown user: nothing stored, no error.
        let before = remembered_rows(&s);
        s.remember("nobody", &vpn(ip, 300), 0).expect("no-op");
        assert_eq!(remembered_rows(&s), before);
        assert!(s.remembered("nobody").expect("list").is_empty());
        // Forgetting counts what went, for the user alone.
        assert_eq!(s.forget("IVY").expect("forget"), 4);
        assert_eq!(s.forget("ivy").expect("forget"), 0);
        assert!(s.remembered("ivy").expect("list").is_empty());
        assert_eq!(s.remembered("jo").expect("list").len(), 1);
        assert!(matches!(s.forget("nobody"), Err(StoreError::NoSuchUser(_))));
    }

    #[test]
    fn block_lockout_and_removal_revoke_remembered_logins() {
        let s = store();
        s.add_user(&user("kai")).expect("add");
        s.add_user(&user("lea")).expect("add");
        let remembered = |name| s.remembered(name).expect("list").len();
        s.remember("kai", &vpn(None, 100), 0).expect("remember");
        s.remember("lea", &vpn(None, 100), 0).expect("remember");

        // An administrator's block (and a fraud report, which is one).
        s.block("KAI", "lost phone", 110, 1_000).expect("block");
        assert_eq!((remembered("kai"), remembered("lea")), (0, 1));
        // A login verified before the block but remembered after it is not.
        s.remember("kai", &vpn(None, 105), 0).expect("no-op");
        assert_eq!(remembered("kai"), 0, "blocked after the login");
        s.unblock("kai", "found", 120).expect("unblock");
        s.remember("kai", &vpn(None, 130), 0).expect("remember");
        assert_eq!(remembered("kai"), 1, "unblocked");

        // A denial that does not lock keeps them; the one that locks does not.
        let p = LockoutPolicy {
            denials: 2,
            reset_after: 600,
            unblock_after: 300,
        };
        assert_eq!(s.record_denial("Kai", 140, &p).expect("deny"), None);
        assert_eq!(remembered("kai"), 1, "not locked yet");
        assert_eq!(s.record_denial("kai", 150, &p).expect("deny"), Some(450));
        assert_eq!((remembered("kai"), remembered("lea")), (0, 1));
        s.remember("kai", &vpn(None, 145), 0).expect("no-op");
        assert_eq!(remembered("kai"), 0, "locked after the login");
        s.remember("kai", &vpn(None, 450), 0).expect("remember");
        assert_eq!(remembered("kai"), 1, "the lockout has ended");

        // Removing the user removes its rows (the foreign key cascades).
        assert!(s.remove_user("kai").expect("rm"));
        assert_eq!(remembered_rows(&s), 1, "lea's row alone");
        s.add_user(&user("kai")).expect("add again");
        assert!(
            s.remembered("kai").expect("list").is_empty(),
            "nothing comes back"
        );
    }

    #[test]
    fn users_crud_and_case_insensitive_names() {
        let s = store();
        s.add_user(&user("Alice")).expect("add");
        assert!(matches!(
            s.add_user(&user("alice")),
            Err(StoreError::UserExists(_))
        ));
        let mut u = s.user("ALICE").expect("query").expect("found");
        assert_eq!(u.name, "Alice");
        u.phone = Some("+15551234567".into());
        u.method = Method::Sms;
        s.update_user(&u).expect("update");
        assert_eq!(
            s.user("alice").expect("q").expect("found").method,
            Method::Sms
        );
        assert_eq!(s.users().expect("list").len(), 1);
        assert!(s.remove_user("alice").expect("rm"));
        assert!(!s.remove_user("alice").expect("rm"));
        assert!(matches!(s.update_user(&u), Err(StoreError::NoSuchUser(_))));
    }

    #[test]
    fn groups_are_kept_sorted_without_duplicates_and_replaced_whole() {
        let s = store();
        let groups = |v: &[&str]| v.iter().map(|g| g.to_string()).collect::<Vec<_>>();
        s.add_user(&User {
            groups: groups(&["vpn", "Admins", "VPN", "Ärzte", "ärzte", "b"]),
            ..user("Gina")
        })
        .expect("add");
        let stored = s.user("gina").expect("q").expect("found");
        assert_eq!(stored.groups, groups(&["Admins", "b", "vpn", "Ärzte"]));
        assert_eq!(s.users().expect("list")[0].groups, stored.groups);
        assert_eq!(
            s.login_state("GINA", 0)
                .expect("state")
                .expect("user")
                .groups,
            stored.groups
        );
        // Written under another case of the name: the user's rows all the same.
        s.update_user(&User {
            groups: groups(&["Ops"]),
            ..stored.clone()
        })
        .expect("update");
        s.update_user(&User {
            name: "GINA".into(),
            groups: groups(&["Ops", "net"]),
            ..stored.clone()
        })
        .expect("update");
        assert_eq!(
            s.user("gina").expect("q").expect("found").groups,
            groups(&["net", "Ops"])
        );
        s.update_user(&User {
            groups: Vec::new(),
            ..stored.clone()
        })
        .expect("clear");
        assert!(s.user("gina").expect("q").expect("found").groups.is_empty());
        // Another user's groups are their own; a removed user's go with it.
        s.add_user(&User {
            groups: groups(&["net"]),
            ..user("hal")
        })
        .expect("add");
        s.update_user(&User {
            groups: groups(&["net"]),
            ..stored
        })
        .expect("update");
        assert!(s.remove_user("hal").expect("rm"));
        assert_eq!(
            s.user("gina").expect("q").expect("found").groups,
            groups(&["net"])
        );
        let rows: i64 = s
            .conn()
            .query_row("SELECT COUNT(*) FROM user_groups", [], |r| r.get(0))
            .expect("count");
        assert_eq!(rows, 1, "hal's row went with hal");
        // A user that cannot be added leaves no groups behind.
        assert!(matches!(
            s.add_user(&User {
                groups: groups(&["intruders"]),
                ..user("GINA")
            }),
            Err(StoreError::UserExists(_))
        ));
        assert_eq!(
            s.user("gina").expect("q").expect("found").groups,
            groups(&["net"])
        );
    }

    /// A database as an older program left it: the migrations up to
    /// `version` only.
    fn database_at_version(path: &Path, version: usize) -> Connection {
        let c = Connection::open(path).expect("open");
        c.execute_batch("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            .expect("version table");
        migrate(&c, 0, version).expect("migrate");
        c
    }

    #[test]
    fn an_older_schema_upgrades_in_place_with_its_data() {
        // From each version since the one before groups.
        for version in 6..MIGRATIONS.len() {
            let dir = tempfile::tempdir().expect("tempdir");
            let p = dir.path().join("old.db");
            let key = SeedKey::from_bytes(&[5; 32]);
            {
                let c = database_at_version(&p, version);
                c.execute_batch(
                    "INSERT INTO users (name, email, phone, method, created_at, blocked_until, language)
                     VALUES ('Olga', 'olga@example.org', '+4930123456', 'sms', 42, 9999, 'de');
                     INSERT INTO lockouts (user, denials, first_denial) VALUES ('olga', 2, 40);",
                )
                .expect("rows");
                c.execute(
                    "INSERT INTO tokens (user, kind, seed, algorithm, digits, step, active)
                     VALUES ('Olga', 'totp', ?1, 'SHA1', 6, 30, 1)",
                    [key.seal("olga", b"old-seed")],
                )
                .expect("token");
            }
            let s = SqliteStore::open(&p, key).expect("upgrades");
            let found: i64 = s
                .conn()
                .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
                .expect("version");
            assert_eq!(found, MIGRATIONS.len() as i64, "from {version}");
            let olga = s.user("olga").expect("q").expect("kept");
            assert_eq!(
                (
                    olga.email.as_deref(),
                    olga.method,
                    olga.created_at,
                    olga.language.as_deref()
                ),
                (Some("olga@example.org"), Method::Sms, 42, Some("de"))
            );
            assert!(olga.groups.is_empty());
            assert_eq!(s.blocked_until("olga", 100).expect("b"), Some(9999));
            let t = &s.tokens("olga").expect("tokens")[0];
            assert_eq!(&s.token_seed(t).expect("seed")[..], b"old-seed");
            // The new tables work, and survive a reopen.
            s.update_user(&User {
                groups: vec!["vpn".into()],
                ..olga
            })
            .expect("groups");
            // After her block of the older database ends.
            s.remember("olga", &vpn(None, 10_000), 0).expect("remember");
            drop(s);
            let s = SqliteStore::open(&p, SeedKey::from_bytes(&[5; 32])).expect("reopen");
            assert_eq!(
                s.user("olga").expect("q").expect("kept").groups,
                ["vpn"],
                "from {version}"
            );
            assert_eq!(s.remembered("olga").expect("list"), [vpn(None, 10_000)]);
        }
    }

    #[test]
    fn seeds_are_sealed_and_steps_claimed_once() {
        let s = store();
        s.add_user(&user("bob")).expect("add");
        let id = s
            .add_token(&totp("bob"), b"twenty-byte-seed-xyz")
            .expect("token");
        let t = &s.tokens("bob").expect("tokens")[0];
        assert!(!t.active);
        assert_eq!(&s.token_seed(t).expect("seed")[..], b"twenty-byte-seed-xyz");
        // The stored blob is not the seed.
        let raw: Vec<u8> = s
            .conn()
            .query_row("SELECT seed FROM tokens WHERE id = ?1", [id], |r| r.get(0))
            .expect("raw");
        assert!(!raw.windows(8).any(|w| w == b"twenty-b"));
        let active = |name| s.login_state(name, 0).expect("state").expect("user").tokens;
        assert!(active("bob").is_empty(), "pending");
        s.activate_token(id).expect("activate");
        let active = active("BOB");
        assert_eq!(active.len(), 1);
        let (t, sealed) = &active[0];
        assert_eq!(sealed.0, raw, "sealed as stored");
        assert_eq!(
            (t.id, &s.open_seed(t, sealed).expect("open")[..]),
            (id, &b"twenty-byte-seed-xyz"[..])
        );
        assert!(s.claim_step(id, 100).expect("claim"));
        assert!(
            !s.claim_step(id, 100).expect("claim"),
            "the same step twice"
        );
        assert!(!s.claim_step(id, 99).expect("claim"), "an older step");
        assert!(s.claim_step(id, 101).expect("claim"));
        assert_eq!(s.tokens("bob").expect("t")[0].last_step, Some(101));
        assert!(matches!(
            s.add_token(&totp("nobody"), b"x"),
            Err(StoreError::NoSuchUser(_))
        ));
    }

    #[test]
    fn concurrent_claims_of_one_step_have_one_winner() {
        // Separate connections to one file, as two proxies or two workers.
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("race.db");
        let s = SqliteStore::open(&p, SeedKey::from_bytes(&[3; 32])).expect("open");
        s.add_user(&user("race")).expect("add");
        let id = s.add_token(&totp("race"), b"seed").expect("token");
        assert!(
            !s.claim_step(id, 777).expect("claim"),
            "a pending token is never claimed"
        );
        s.activate_token(id).expect("activate");
        let winners: usize = std::thread::scope(|sc| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let p = p.clone();
                    sc.spawn(move || {
                        let s = SqliteStore::open(&p, SeedKey::from_bytes(&[3; 32])).expect("open");
                        usize::from(s.claim_step(id, 777).expect("claim"))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("thread")).sum()
        });
        assert_eq!(winners, 1);
    }

    #[test]
    fn login_statements_are_compiled_once() {
        // SQLite can mark a statement to be compiled again whenever it is
        // bound to a new value (a join on `u.name = ?1` does, see
        // LOGIN_STATE_SQL). The statement cache binds every login's values,
        // so a login's statements must not be marked.
        let s = store();
        for i in 0..20 {
            let name = format!("u{i}");
            s.add_user(&user(&name)).expect("add");
            let id = s.add_token(&totp(&name), b"seed").expect("token");
            s.activate_token(id).expect("activate");
        }
        s.batch(&mut || {
            for i in 0..20 {
                let name = format!("u{i}");
                assert_eq!(s.tokens(&name).expect("tokens").len(), 1);
                let st = s.login_state(&name, 10).expect("state").expect("user");
                let (t, sealed) = &st.tokens[0];
                assert_eq!(&s.open_seed(t, sealed).expect("open")[..], b"seed");
                assert!(s.claim_step(t.id, 5).expect("claim"));
                s.clear_denials(&name).expect("clear");
                s.remember(&name, &vpn(Some("192.0.2.7"), 10), 0)
                    .expect("remember");
                s.append_audit(&AuditRecord {
                    at: 1,
                    user: name,
                    result: ResultCode::SuccessOathCodeVerified,
                    accepted: true,
                    mode: "totp".into(),
                    server: "s".into(),
                    client: "c".into(),
                    client_ip: None,
                    reason: None,
                })
                .expect("audit");
            }
        })
        .expect("batch");
        let c = s.conn();
        assert_eq!(TOKEN_COLS.split(',').count(), TOKEN_COLS_N);
        // The token columns of the login state are TOKEN_COLS, then the seed.
        let st = c.prepare_cached(LOGIN_STATE_SQL).expect("cached");
        let names = (LOGIN_STATE_TOKEN_AT..st.column_count())
            .map(|i| st.column_name(i).expect("name"))
            .collect::<Vec<_>>();
        let expected = TOKEN_COLS.split(", ").chain(["seed"]).collect::<Vec<_>>();
        assert_eq!(names, expected);
        drop(st);
        assert!(TOKENS_SQL.starts_with(&format!("SELECT {TOKEN_COLS}\n")));
        // The login's statements, and the token list, which had the same trap.
        for sql in [
            LOGIN_STATE_SQL,
            CLAIM_SQL,
            REMEMBER_SQL,
            PRUNE_SQL,
            AUDIT_SQL,
            TOKENS_SQL,
        ] {
            let st = c.prepare_cached(sql).expect("cached");
            // Run by the logins above: the test looks at the right one.
            assert_eq!(st.get_status(StatementStatus::Run), 20, "{sql}");
            assert_eq!(st.get_status(StatementStatus::RePrepare), 0, "{sql}");
        }
    }

    #[test]
    fn hardware_serials_belong_to_one_user() {
        let s = store();
        s.add_user(&user("a")).expect("add");
        s.add_user(&user("b")).expect("add");
        let mut t = totp("a");
        t.serial = Some("1234567".into());
        s.add_token(&t, b"k").expect("first");
        t.user = "b".into();
        assert!(matches!(
            s.add_token(&t, b"k"),
            Err(StoreError::SerialTaken(_))
        ));
    }

    #[test]
    fn login_state_in_one_query() {
        let s = store();
        let now = 1_000;
        let state = |s: &SqliteStore| s.login_state("bob", now).expect("state");
        assert_eq!(state(&s), None);
        s.add_user(&user("bob")).expect("add");
        let plain = LoginState {
            blocked: false,
            bypass_waiting: false,
            locked: false,
            tokens: Vec::new(),
            method: Method::Totp,
            phone: None,
            has_pin: false,
            language: None,
            groups: Vec::new(),
            remembered: Vec::new(),
        };
        assert_eq!(state(&s), Some(plain.clone()));
        let id = s
            .add_token(&totp("bob"), b"0123456789abcdefghij")
            .expect("token");
        assert_eq!(
            state(&s),
            Some(plain.clone()),
            "a pending token does not enroll"
        );
        s.activate_token(id).expect("activate");
        let enrolled = LoginState {
            tokens: state(&s).expect("user").tokens,
            ..plain.clone()
        };
        assert_eq!(enrolled.tokens.len(), 1, "the active token");
        assert_eq!(enrolled.tokens[0].0.id, id);
        assert_eq!(state(&s), Some(enrolled.clone()));
        s.add_bypass("bob", "r", now, now + 10).expect("bypass");
        assert_eq!(
            s.login_state("BOB", now)
                .expect("state")
                .map(|l| l.bypass_waiting),
            Some(true)
        );
        assert!(s.take_bypass("bob", now).expect("take"));
        assert_eq!(
            state(&s),
            Some(enrolled.clone()),
            "a used bypass is not waiting"
        );
        s.block("bob", "r", now, now + 5).expect("block");
        assert_eq!(state(&s).map(|l| l.blocked), Some(true));
        assert_eq!(
            s.login_state("bob", now + 5).expect("state"),
            Some(enrolled.clone()),
            "expired block"
        );
        s.unblock("bob", "r", now).expect("unblock");
        let p = LockoutPolicy {
            denials: 1,
            reset_after: 60,
            unblock_after: 30,
        };
        s.record_denial("bob", now, &p).expect("deny");
        assert_eq!(state(&s).map(|l| l.locked), Some(true));
        assert_eq!(
            s.login_state("bob", now + 30).expect("state"),
            Some(enrolled.clone()),
            "unlocked"
        );
    }

    #[test]
    fn lockout_counts_resets_and_unlocks() {
        let s = store();
        let p = LockoutPolicy {
            denials: 3,
            reset_after: 600,
            unblock_after: 1800,
        };
        assert_eq!(s.record_denial("u", 0, &p).expect("d"), None);
        assert_eq!(s.record_denial("u", 10, &p).expect("d"), None);
        // The run restarts after reset_after.
        assert_eq!(s.record_denial("u", 700, &p).expect("d"), None);
        assert_eq!(s.record_denial("u", 710, &p).expect("d"), None);
        assert_eq!(s.record_denial("u", 720, &p).expect("d"), Some(2520));
        assert_eq!(s.locked_until("u", 721).expect("l"), Some(2520));
        assert_eq!(
            s.locked_until("u", 2520).expect("l"),
            None,
            "unlocked automatically"
        );
    }

    #[test]
    fn block_unblock_and_history() {
        let s = store();
        s.add_user(&user("c")).expect("add");
        s.block("c", "lost phone", 100, 100 + 90 * 86400)
            .expect("block");
        assert_eq!(
            s.blocked_until("c", 200).expect("b"),
            Some(100 + 90 * 86400)
        );
        s.unblock("c", "found it", 300).expect("unblock");
        assert_eq!(s.blocked_until("c", 400).expect("b"), None);
        let h = s.block_history().expect("history");
        assert_eq!(
            h.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
            ["block", "unblock"]
        );
        assert_eq!(h[0].reason, "lost phone");
        assert!(matches!(
            s.block("zed", "x", 0, 1),
            Err(StoreError::NoSuchUser(_))
        ));
    }

    #[test]
    fn bypass_is_used_once_and_expires() {
        let s = store();
        s.add_user(&user("d")).expect("add");
        s.add_bypass("d", "travel", 100, 400).expect("bypass");
        assert!(!s.take_bypass("d", 400).expect("t"), "expired");
        s.add_bypass("d", "again", 500, 800).expect("bypass");
        assert!(s.take_bypass("d", 600).expect("t"));
        assert!(!s.take_bypass("d", 601).expect("t"), "only once");
        let h = s.bypass_history().expect("h");
        assert_eq!(
            h.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
            ["granted", "used"]
        );
    }

    #[test]
    fn audit_round_trip_and_filters() {
        let s = store();
        for (at, user, result) in [
            (10, "a", ResultCode::SuccessOathCodeVerified),
            (20, "b", ResultCode::FailedOathCodeIncorrect),
        ] {
            s.append_audit(&AuditRecord {
                at,
                user: user.into(),
                result,
                accepted: result == ResultCode::SuccessOathCodeVerified,
                mode: "totp".into(),
                server: "s1".into(),
                client: "vpn".into(),
                client_ip: Some("192.0.2.7".into()),
                reason: None,
            })
            .expect("append");
        }
        assert_eq!(s.audit(None, None).expect("all").len(), 2);
        assert_eq!(
            s.audit(Some("B"), None).expect("b")[0].result,
            ResultCode::FailedOathCodeIncorrect
        );
        assert_eq!(s.audit(None, Some(15)).expect("since").len(), 1);
        assert_eq!(s.audit(Some("a"), Some(15)).expect("since").len(), 0);
        // The report reads a range of the time index, in its order.
        let plan: Vec<String> = s
            .conn()
            .prepare(&format!("EXPLAIN QUERY PLAN {REPORT_SQL}"))
            .expect("plan")
            .query_map(params!["a", 15], |r| r.get(3))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("plan");
        let plan = plan.join("; ");
        assert!(
            plan.contains("USING INDEX audit_at (at>?)") && !plan.contains("TEMP B-TREE"),
            "{plan}"
        );
    }

    #[test]
    fn survives_reopen_and_refuses_a_newer_schema() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("mfa.db");
        {
            let s = SqliteStore::open(&p, SeedKey::from_bytes(&[2; 32])).expect("open");
            s.add_user(&user("persist")).expect("add");
            s.block("persist", "r", 0, 10_000).expect("block");
        }
        let s = SqliteStore::open(&p, SeedKey::from_bytes(&[2; 32])).expect("reopen");
        assert_eq!(s.blocked_until("persist", 5).expect("b"), Some(10_000));
        s.conn()
            .execute("UPDATE schema_version SET version = 99", [])
            .expect("bump");
        drop(s);
        assert!(matches!(
            SqliteStore::open(&p, SeedKey::from_bytes(&[2; 32])),
            Err(StoreError::SchemaTooNew { found: 99, .. })
        ));
    }
}
