//! `[store]`: where persistent state lives. SQLite (`path`) for one node,
//! or PostgreSQL (`url`, `url_file` or `url_env`) shared by a cluster of
//! nodes; `key_file` seals the OATH seeds in either.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::error::{ConfigError, invalid};
use super::values::{EnvLookup, RawSecret, bounded, parse_duration, resolve_path, resolve_secret};
use crate::secret::Secret;

/// Where persistent state lives. Relative paths are resolved against the
/// configuration file's directory.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// The SQLite database (unused with `postgres`).
    pub path: PathBuf,
    pub key_file: PathBuf,
    /// A PostgreSQL database instead of SQLite: every node of a cluster
    /// names the same one, with the same `key_file`.
    pub postgres: Option<PostgresConfig>,
    /// Audit records older than this are deleted, a few at a time, as
    /// `serve` runs; `None`: kept for ever.
    pub audit_keep: Option<std::time::Duration>,
}

/// `[store] url`: a PostgreSQL database.
#[derive(Clone, Debug)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/db?…`; a secret, since it may
    /// carry the password: it never appears in a log line or an error.
    pub url: Secret,
    /// Connections to the database, at most.
    pub pool_size: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    path: Option<PathBuf>,
    #[serde(default = "d_key_file")]
    key_file: PathBuf,
    url: Option<String>,
    url_file: Option<PathBuf>,
    url_env: Option<String>,
    pool_size: Option<u64>,
    audit_keep: Option<String>,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            path: None,
            key_file: d_key_file(),
            url: None,
            url_file: None,
            url_env: None,
            pool_size: None,
            audit_keep: None,
        }
    }
}

fn d_store_path() -> PathBuf {
    "data/mfa.db".into()
}

fn d_key_file() -> PathBuf {
    "data/seed.key".into()
}

/// `audit_keep` bounds: a day, a century.
const AUDIT_KEEP_MIN: std::time::Duration = std::time::Duration::from_secs(86_400);
const AUDIT_KEEP_MAX: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 86_400);

/// Connections a node may open to PostgreSQL by default; it uses one per
/// database thread (one per core, two at least), so this bounds those.
const D_POOL_SIZE: u64 = 8;

pub(super) fn validate(
    raw: RawStore,
    base: &Path,
    env: EnvLookup<'_>,
) -> Result<StoreConfig, ConfigError> {
    let postgres = if raw.url.is_some() || raw.url_file.is_some() || raw.url_env.is_some() {
        if raw.path.is_some() {
            return Err(invalid(
                "store.path",
                "give path (SQLite, one node) or url (PostgreSQL, a cluster), not both",
            ));
        }
        let url = resolve_secret(
            RawSecret {
                field: "url",
                secret: raw.url,
                secret_file: raw.url_file,
                secret_env: raw.url_env,
            },
            "store",
            base,
            env,
        )?;
        let scheme_ok = ["postgres://", "postgresql://"]
            .iter()
            .any(|s| url.expose().starts_with(s.as_bytes()));
        if !scheme_ok {
            // The URL is not echoed: it may hold the password.
            return Err(invalid(
                "store.url",
                "must start with postgres:// or postgresql://",
            ));
        }
        let pool_size = bounded(
            raw.pool_size.unwrap_or(D_POOL_SIZE),
            "store.pool_size",
            1,
            256,
        )? as usize;
        Some(PostgresConfig { url, pool_size })
    } else {
        if raw.pool_size.is_some() {
            return Err(invalid(
                "store.pool_size",
                "is for PostgreSQL (url); SQLite has one connection",
            ));
        }
        None
    };
    let audit_keep = raw
        .audit_keep
        .map(|s| parse_duration(&s, "store.audit_keep", AUDIT_KEEP_MIN, AUDIT_KEEP_MAX))
        .transpose()?;
    Ok(StoreConfig {
        path: resolve_path(base, raw.path.unwrap_or_else(d_store_path)),
        key_file: resolve_path(base, raw.key_file),
        postgres,
        audit_keep,
    })
}
