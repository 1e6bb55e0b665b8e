//! `[primary]`: who checks the first factor.

use serde::Deserialize;

use super::error::{ConfigError, invalid};

/// Who checks the first factor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Primary {
    /// The upstream RADIUS servers (NPS).
    Upstream,
    /// argon2id password hashes in the store, for labs and small sites.
    Local,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPrimary {
    #[serde(default = "d_primary_mode")]
    mode: String,
}

impl Default for RawPrimary {
    fn default() -> Self {
        RawPrimary {
            mode: d_primary_mode(),
        }
    }
}

fn d_primary_mode() -> String {
    "upstream".into()
}

pub(super) fn validate(raw: RawPrimary) -> Result<Primary, ConfigError> {
    match raw.mode.as_str() {
        "upstream" => Ok(Primary::Upstream),
        "local" => Ok(Primary::Local),
        other => Err(invalid(
            "primary.mode",
            format!("\"{other}\" is not one of \"upstream\", \"local\""),
        )),
    }
}
