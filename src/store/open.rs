//! Opening the store a configuration names: SQLite's two files, or a
//! PostgreSQL database and the seed key file beside the configuration.
//!
//! The same rules for both: only `serve` on a first run and `mfa-proxy
//! init` create anything; the administrator's commands open what exists.
//! With PostgreSQL, the first node creates the seed key, and every other
//! node needs a copy of that file: a node with another key is refused
//! ([`StoreError::KeyMismatch`]) rather than failing every login.

use super::file::{self, Opened};
use super::{PgStore, SeedKey, Store, StoreError};
use crate::config::{PostgresConfig, StoreConfig};

/// Where the store is, for the log and `check`: the SQLite file, or
/// "PostgreSQL" (never the URL, which may hold a password).
pub fn describe(cfg: &StoreConfig) -> String {
    match &cfg.postgres {
        None => format!("SQLite {}", cfg.path.display()),
        Some(pg) => format!("PostgreSQL (pool of {})", pg.pool_size),
    }
}

/// The store the administrator's commands use: it must exist.
pub fn open_existing(cfg: &StoreConfig) -> Result<Box<dyn Store>, StoreError> {
    match &cfg.postgres {
        None => Ok(Box::new(file::open_existing(&cfg.path, &cfg.key_file)?)),
        Some(pg) => Ok(Box::new(PgStore::connect(
            url(pg)?,
            existing_key(cfg)?,
            pg.pool_size,
        )?)),
    }
}

/// The store for `serve`: created on a first run. A PostgreSQL database
/// that cannot be reached yet is no reason not to start: logins fail
/// closed until it can be (see [`PgStore::connect_lazily`]).
pub fn open_for_serve(
    cfg: &StoreConfig,
    allow_empty: bool,
) -> Result<(Box<dyn Store>, Opened), StoreError> {
    match &cfg.postgres {
        None => {
            let (s, opened) = file::open_for_serve(&cfg.path, &cfg.key_file, allow_empty)?;
            Ok((Box::new(s), opened))
        }
        Some(pg) => {
            let (key, opened) = key_for_serve(cfg)?;
            let s = PgStore::connect_lazily(url(pg)?, key, pg.pool_size)?;
            Ok((Box::new(s), opened))
        }
    }
}

/// `mfa-proxy init`: creates what is missing (the key; for PostgreSQL the
/// schema, in a database that must be reachable now).
pub fn init(cfg: &StoreConfig) -> Result<Opened, StoreError> {
    match &cfg.postgres {
        None => file::init(&cfg.path, &cfg.key_file),
        Some(pg) => {
            let (key, opened) = key_for_serve(cfg)?;
            PgStore::connect(url(pg)?, key, pg.pool_size)?;
            Ok(opened)
        }
    }
}

/// What `check` says of the store: its schema version against this
/// program's, or why it cannot be read. Never an error: a database that is
/// down while the configuration is checked is no fault of the file.
pub fn status(cfg: &StoreConfig) -> String {
    let Some(pg) = &cfg.postgres else {
        return describe(cfg);
    };
    let read = || -> Result<i64, StoreError> { PgStore::probe(url(pg)?) };
    match read() {
        Ok(0) => format!(
            "{}: reachable, empty (`serve` or `init` creates schema {})",
            describe(cfg),
            PgStore::SCHEMA
        ),
        Ok(v) => format!(
            "{}: reachable, schema {v} (this program's: {})",
            describe(cfg),
            PgStore::SCHEMA
        ),
        Err(e) => format!("{}: cannot be read now: {e}", describe(cfg)),
    }
}

/// The PostgreSQL URL as text.
fn url(pg: &PostgresConfig) -> Result<&str, StoreError> {
    std::str::from_utf8(pg.url.expose())
        .map_err(|_| StoreError::database("the PostgreSQL URL is not UTF-8", super::Retry::No))
}

/// The seed key, which must exist: the first node (or `init`) made it.
fn existing_key(cfg: &StoreConfig) -> Result<SeedKey, StoreError> {
    SeedKey::load(&cfg.key_file).map_err(|e| match e {
        StoreError::Missing { path, .. } => StoreError::Missing {
            what: "seed key (copy key_file from the node that created the database, \
                   or run `mfa-proxy init` on the first node)",
            path,
        },
        e => e,
    })
}

/// The seed key for `serve` and `init`, created if missing: the first node
/// of a cluster makes it. Another node that made one by mistake is refused
/// when it reaches the database.
fn key_for_serve(cfg: &StoreConfig) -> Result<(SeedKey, Opened), StoreError> {
    match SeedKey::load(&cfg.key_file) {
        Ok(k) => Ok((k, Opened::Existing)),
        Err(StoreError::Missing { .. }) => Ok((SeedKey::create(&cfg.key_file)?, Opened::Created)),
        Err(e) => Err(e),
    }
}
