//! The whole database at once: a [`Dump`] of every row, an online backup
//! to another file, opening the database for this process alone (restore
//! and migrate need `serve` stopped), and putting another file in its
//! place.
//!
//! "In use" is SQLite's own rule: every connection to a WAL database holds
//! a shared lock on the file for as long as it is open, so an exclusive
//! lock is granted only when no other connection (a running `serve`, an
//! administrator's command) has the database open.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode};

use super::{SqliteStore, users};
use crate::mfa::Remembered;
use crate::store::dump::{AuditRow, Bypass, COUNTS_SQL, Counts, Dump, Lockout};
use crate::store::file::io_at;
use crate::store::{HistoryEntry, SealedSeed, SeedKey, StoreError, Token, seal};

/// How many rows of each kind the database on `c` has.
fn counts_on(c: &Connection) -> Result<Counts, StoreError> {
    Ok(c.query_row(COUNTS_SQL, [], |r| {
        let n = |i| r.get::<_, i64>(i).map(|v| v as u64);
        Ok(Counts {
            users: n(0)?,
            groups: n(1)?,
            tokens: n(2)?,
            lockouts: n(3)?,
            bypasses: n(4)?,
            remembered: n(5)?,
            block_history: n(6)?,
            audit: n(7)?,
            invitations: n(8)?,
        })
    })?)
}

/// Every token with its sealed seed, by id.
fn tokens_on(c: &Connection) -> Result<Vec<(Token, SealedSeed)>, StoreError> {
    let mut st = c.prepare(&format!(
        "SELECT {}, seed FROM tokens ORDER BY id",
        super::tokens::TOKEN_COLS
    ))?;
    let rows = st
        .query_map([], |r| {
            Ok((
                super::tokens::token_at(r, 0)?,
                SealedSeed(r.get(super::tokens::TOKEN_COLS_N)?),
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Every row, read in one transaction (a consistent snapshot).
fn dump_on(c: &Connection) -> Result<Dump, StoreError> {
    let users = users::users(c)?;
    let tokens = tokens_on(c)?;
    let mut st =
        c.prepare("SELECT user, denials, first_denial, locked_until FROM lockouts ORDER BY user")?;
    let lockouts = st
        .query_map([], |r| {
            Ok(Lockout {
                user: r.get(0)?,
                denials: r.get(1)?,
                first_denial: r.get(2)?,
                locked_until: r.get(3)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut st =
        c.prepare("SELECT id, user, reason, created_at, until, used_at FROM bypasses ORDER BY id")?;
    let bypasses = st
        .query_map([], |r| {
            Ok(Bypass {
                id: r.get(0)?,
                user: r.get(1)?,
                reason: r.get(2)?,
                created_at: r.get(3)?,
                until: r.get(4)?,
                used_at: r.get(5)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut st = c.prepare(
        "SELECT user, auth_type, app, address, at FROM remembered ORDER BY user, auth_type, app, address",
    )?;
    let remembered = st
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                Remembered {
                    auth_type: r.get(1)?,
                    app: r.get(2)?,
                    address: r.get(3)?,
                    at: r.get(4)?,
                },
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut st =
        c.prepare("SELECT id, user, action, reason, at, until FROM block_history ORDER BY id")?;
    let block_history = st
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                HistoryEntry {
                    user: r.get(1)?,
                    action: r.get(2)?,
                    reason: r.get(3)?,
                    at: r.get(4)?,
                    until: r.get(5)?,
                },
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut st = c.prepare(
        "SELECT id, at, user, result, accepted, mode, server, client, client_ip, reason
         FROM audit ORDER BY id",
    )?;
    let audit = st
        .query_map([], |r| {
            Ok(AuditRow {
                id: r.get(0)?,
                at: r.get(1)?,
                user: r.get(2)?,
                result: r.get(3)?,
                accepted: r.get(4)?,
                mode: r.get(5)?,
                server: r.get(6)?,
                client: r.get(7)?,
                client_ip: r.get(8)?,
                reason: r.get(9)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Dump {
        users,
        tokens,
        lockouts,
        bypasses,
        remembered,
        block_history,
        audit,
        invitations: users::invitations(c)?,
    })
}

impl SqliteStore {
    /// The schema version this program brings databases to.
    pub const SCHEMA: i64 = super::schema::MIGRATIONS.len() as i64;

    /// Opens the database at `path`, which must exist, for this process
    /// alone: [`StoreError::InUse`] if another connection has it open (a
    /// running `serve`). Nothing else opens it until this store is dropped.
    pub fn open_exclusive(path: &Path, key: SeedKey) -> Result<SqliteStore, StoreError> {
        let lock = SqliteLock::take(path)?;
        let mut store = Self::init(lock.conn, key)?;
        store.watch = Some(crate::store::file::Watch::new(path)?);
        Ok(store)
    }

    /// Every row of the database, in one transaction.
    pub fn dump(&self) -> Result<Dump, StoreError> {
        let c = self.conn();
        let tx = c.unchecked_transaction()?;
        let d = dump_on(&tx)?;
        tx.commit()?;
        Ok(d)
    }

    /// How many rows of each kind the database has.
    pub fn counts(&self) -> Result<Counts, StoreError> {
        counts_on(&self.conn())
    }

    /// Opens every token's seed with this store's key: how many there are,
    /// or [`StoreError::SealBroken`] at the first that does not open.
    pub fn check_seeds(&self) -> Result<u64, StoreError> {
        let d = tokens_on(&self.conn())?;
        for (t, sealed) in &d {
            seal::open_token_seed(&self.key, t, sealed)?;
        }
        Ok(d.len() as u64)
    }

    /// Copies the database, consistently, to the new file `dest` (mode
    /// 0600; an existing file is refused) with SQLite's online backup, which
    /// a `serve` writing meanwhile does not disturb; what it copied.
    pub fn backup_to(&self, dest: &Path) -> Result<Counts, StoreError> {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        opts.open(dest).map_err(|e| io_at(dest, e))?;
        let copied = self.backup_into(dest);
        if copied.is_err() {
            let _ = std::fs::remove_file(dest);
        }
        copied
    }

    fn backup_into(&self, dest: &Path) -> Result<Counts, StoreError> {
        let mut to = Connection::open(dest)?;
        {
            let from = self.conn();
            let backup = rusqlite::backup::Backup::new(&from, &mut to)?;
            // All pages in one step: one read transaction, one snapshot.
            loop {
                match backup.step(-1)? {
                    rusqlite::backup::StepResult::Done => break,
                    _ => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
        // A backup is one file: no -wal beside it to lose when copied.
        to.pragma_update(None, "journal_mode", "DELETE")?;
        let counts = counts_on(&to)?;
        drop(to);
        std::fs::File::open(dest)
            .and_then(|f| f.sync_all())
            .map_err(|e| io_at(dest, e))?;
        Ok(counts)
    }

    /// Whether the file at `path` is an mfa-proxy database, and of which
    /// schema version; it is read, not changed.
    pub fn schema_of(path: &Path) -> Result<i64, StoreError> {
        let not_ours = || {
            StoreError::database(
                format!("{}: not an mfa-proxy database", path.display()),
                crate::store::Retry::No,
            )
        };
        let c = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
            .map_err(|_| not_ours())?;
        let tables: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'
                 AND name IN ('schema_version', 'users', 'tokens', 'audit')",
                [],
                |r| r.get(0),
            )
            .map_err(|_| not_ours())?;
        if tables != 4 {
            return Err(not_ours());
        }
        c.query_row("SELECT max(version) FROM schema_version", [], |r| {
            r.get::<_, Option<i64>>(0)
        })
        .map_err(|_| not_ours())?
        .ok_or_else(not_ours)
    }
}

/// A database file locked for this process alone (see the module's
/// documentation), without reading its contents: a damaged database can
/// be replaced too.
#[derive(Debug)]
pub struct SqliteLock {
    conn: Connection,
    path: PathBuf,
}

impl SqliteLock {
    /// Locks the database at `path`, which must exist and not be empty:
    /// [`StoreError::InUse`] if another connection has it open.
    pub fn take(path: &Path) -> Result<SqliteLock, StoreError> {
        let meta = std::fs::metadata(path).map_err(|e| io_at(path, e))?;
        if meta.len() == 0 {
            return Err(StoreError::Missing {
                what: "database",
                path: path.to_owned(),
            });
        }
        let conn = Connection::open(path)?;
        conn.create_collation("NOCASE", super::nocase)?;
        // Before the first read: the lock, once taken, is kept.
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
        conn.busy_timeout(Duration::ZERO)?;
        conn.execute_batch("BEGIN EXCLUSIVE; COMMIT")
            .map_err(|e| match e.sqlite_error_code() {
                Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::InUse {
                    path: path.to_owned(),
                },
                _ => e.into(),
            })?;
        Ok(SqliteLock {
            conn,
            path: path.to_owned(),
        })
    }

    /// Puts the database file `with` in place of the locked one, which is
    /// kept as `keep_as` (with its -wal, if it could not be folded in). The
    /// lock is held until the new file is in place.
    pub fn replace_with(self, with: &Path, keep_as: &Path) -> Result<(), StoreError> {
        let path = &self.path;
        // Everything into the main file, and no -wal beside it; a damaged
        // file that refuses keeps its -wal, moved with it.
        let _ = self.conn.pragma_update(None, "journal_mode", "DELETE");
        std::fs::rename(path, keep_as).map_err(|e| io_at(path, e))?;
        if let Err(e) = std::fs::rename(with, path) {
            // Put the database back rather than leave none.
            let _ = std::fs::rename(keep_as, path);
            return Err(io_at(path, e));
        }
        let beside = |p: &Path, suffix: &str| {
            let mut s = p.as_os_str().to_owned();
            s.push(suffix);
            PathBuf::from(s)
        };
        if beside(path, "-wal").exists() {
            let _ = std::fs::rename(beside(path, "-wal"), beside(keep_as, "-wal"));
        }
        let _ = std::fs::remove_file(beside(path, "-shm"));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io_at(dir, e))?;
        }
        Ok(())
    }
}
