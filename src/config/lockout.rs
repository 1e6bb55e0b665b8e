//! `[lockout]`: how many wrong codes lock an account, and for how long.

use std::time::Duration;

use serde::Deserialize;

use super::error::ConfigError;
use super::values::{bounded, parse_duration};
use crate::mfa::LockoutPolicy;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLockout {
    denials: u64,
    reset_after: String,
    unblock_after: String,
}

impl Default for RawLockout {
    fn default() -> Self {
        RawLockout {
            denials: 10,
            reset_after: "10m".into(),
            unblock_after: "30m".into(),
        }
    }
}

pub(super) fn validate(raw: RawLockout) -> Result<LockoutPolicy, ConfigError> {
    Ok(LockoutPolicy {
        denials: bounded(raw.denials, "lockout.denials", 1, 1000)? as u32,
        reset_after: parse_duration(
            &raw.reset_after,
            "lockout.reset_after",
            Duration::from_secs(1),
            Duration::from_secs(86400 * 30),
        )?
        .as_secs() as i64,
        unblock_after: parse_duration(
            &raw.unblock_after,
            "lockout.unblock_after",
            Duration::from_secs(1),
            Duration::from_secs(86400 * 365),
        )?
        .as_secs() as i64,
    })
}
