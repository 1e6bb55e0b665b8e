//! The store's files on disk: the database and the seed key beside it.
//!
//! Who may create them: only `serve` on a first run (neither file exists)
//! and `mfa-proxy init`. The admin commands open what exists and never
//! create, so a deleted database is not silently replaced by an empty one.
//! A database that is missing while its key exists was deleted or moved: a
//! proxy that came up empty would let everyone through under
//! `unenrolled = "accept"`, so `serve` refuses unless told.
//!
//! A running proxy notices its database being removed or replaced
//! (`Watch`) and fails closed, rather than writing on into an unlinked
//! file whose contents the next restart loses.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{SeedKey, SqliteStore, StoreError};

/// What opening a store for `serve` or `init` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opened {
    /// Both files existed.
    Existing,
    /// Neither existed: a new database and a new key.
    Created,
    /// The key existed, the database did not: a new, empty database.
    CreatedEmpty,
}

/// Opens the database and key that must both exist (the admin commands).
pub fn open_existing(db: &Path, key: &Path) -> Result<SqliteStore, StoreError> {
    if !exists(db)? || is_empty(db)? {
        return Err(StoreError::Missing {
            what: "database (start `mfa-proxy serve` once, or run `mfa-proxy init`)",
            path: db.to_owned(),
        });
    }
    let key = match SeedKey::load(key) {
        Err(StoreError::Missing { .. }) => {
            return Err(StoreError::KeyMissing {
                path: db.to_owned(),
                key: key.to_owned(),
            });
        }
        other => other?,
    };
    SqliteStore::open(db, key)
}

/// Opens the store for `serve`, creating it on a first run. With
/// `allow_empty`, a database missing beside its key is created empty.
pub fn open_for_serve(
    db: &Path,
    key: &Path,
    allow_empty: bool,
) -> Result<(SqliteStore, Opened), StoreError> {
    // A 0-byte file (truncated, a botched restore) is no store either.
    let db_exists = exists(db)? && !is_empty(db)?;
    match (db_exists, exists(key)?) {
        (true, _) => Ok((open_existing(db, key)?, Opened::Existing)),
        (false, false) => Ok((
            SqliteStore::open(db, SeedKey::create(key)?)?,
            Opened::Created,
        )),
        (false, true) if allow_empty => Ok((
            SqliteStore::open(db, SeedKey::load(key)?)?,
            Opened::CreatedEmpty,
        )),
        (false, true) => Err(StoreError::Vanished {
            path: db.to_owned(),
        }),
    }
}

/// `mfa-proxy init`: creates what is missing of the two files; an existing
/// database is opened (and migrated), never replaced.
pub fn init(db: &Path, key: &Path) -> Result<Opened, StoreError> {
    open_for_serve(db, key, true).map(|(_, o)| o)
}

fn exists(p: &Path) -> Result<bool, StoreError> {
    p.try_exists().map_err(|e| io_at(p, e))
}

fn is_empty(p: &Path) -> Result<bool, StoreError> {
    Ok(std::fs::metadata(p).map_err(|e| io_at(p, e))?.len() == 0)
}

/// An I/O error that names its file.
pub(super) fn io_at(p: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io {
        what: p.display().to_string(),
        source: e,
    }
}

/// How often the database's path is checked against the opened file.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The identity of the file a store opened, to notice the path being
/// removed or pointed at another file.
#[derive(Debug)]
pub(super) struct Watch {
    path: PathBuf,
    id: (u64, u64),
    next_check: Mutex<Instant>,
    lost: AtomicBool,
}

impl Watch {
    /// Watches the file now at `path`.
    pub(super) fn new(path: &Path) -> Result<Watch, StoreError> {
        Ok(Watch {
            path: path.to_owned(),
            id: file_id(path).map_err(|e| io_at(path, e))?,
            next_check: Mutex::new(Instant::now() + CHECK_EVERY),
            lost: AtomicBool::new(false),
        })
    }

    /// `Err(FileLost)` once the path no longer names the opened file: it was
    /// removed, or replaced (a copy, a restore, a rename over it). Checked
    /// at most once per [`CHECK_EVERY`]; once lost, lost for good.
    pub(super) fn check(&self) -> Result<(), StoreError> {
        let lost = || StoreError::FileLost {
            path: self.path.clone(),
        };
        if self.lost.load(Ordering::Relaxed) {
            return Err(lost());
        }
        {
            let mut next = self.next_check.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            if now < *next {
                return Ok(());
            }
            *next = now + CHECK_EVERY;
        }
        match file_id(&self.path) {
            Ok(id) if id == self.id => Ok(()),
            // Removed, replaced, or unreadable: none is the file in use.
            _ => {
                self.lost.store(true, Ordering::Relaxed);
                tracing::error!(path = %self.path.display(), "the database file was removed or replaced under the running proxy: failing closed; restore it and restart");
                Err(lost())
            }
        }
    }
}

fn file_id(p: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(p)?;
    Ok((m.dev(), m.ino()))
}
