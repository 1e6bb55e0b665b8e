//! `[store]`: where persistent state lives.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::values::resolve_path;

/// Where persistent state lives. Relative paths are resolved against the
/// configuration file's directory.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub path: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    #[serde(default = "d_store_path")]
    path: PathBuf,
    #[serde(default = "d_key_file")]
    key_file: PathBuf,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            path: d_store_path(),
            key_file: d_key_file(),
        }
    }
}

fn d_store_path() -> PathBuf {
    "data/mfa.db".into()
}

fn d_key_file() -> PathBuf {
    "data/seed.key".into()
}

pub(super) fn validate(raw: RawStore, base: &Path) -> StoreConfig {
    StoreConfig {
        path: resolve_path(base, raw.path),
        key_file: resolve_path(base, raw.key_file),
    }
}
