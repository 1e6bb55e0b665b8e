//! `[proxy]`: how requests go upstream — selection, duplicates, health.

use std::time::Duration;

use serde::Deserialize;

use super::error::{ConfigError, invalid};
use super::values::{bounded, parse_duration};

/// How the next upstream is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Always the first live upstream in file order.
    Failover,
    /// Live upstreams in turn.
    RoundRobin,
}

/// What the NAS hears when no upstream answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenAllDown {
    /// Nothing, so the NAS fails over to its next RADIUS server.
    Drop,
    /// An Access-Reject (accounting is never answered without an upstream).
    Reject,
}

#[derive(Clone, Debug)]
pub struct Proxy {
    pub selection: Selection,
    pub when_all_down: WhenAllDown,
    pub dedup_window: Duration,
    pub dedup_max_entries: usize,
    pub upstream_sockets: u16,
    pub check_interval: Duration,
    pub dead_after: u32,
    pub alive_after: u32,
    pub revive_after: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProxy {
    #[serde(default = "d_selection")]
    selection: String,
    #[serde(default = "d_when_all_down")]
    when_all_down: String,
    #[serde(default = "d_dedup_window")]
    dedup_window: String,
    #[serde(default = "d_dedup_max")]
    dedup_max_entries: u64,
    #[serde(default = "d_sockets")]
    upstream_sockets: u64,
    #[serde(default = "d_check_interval")]
    check_interval: String,
    #[serde(default = "d_dead_after")]
    dead_after: u64,
    #[serde(default = "d_alive_after")]
    alive_after: u64,
    #[serde(default = "d_revive_after")]
    revive_after: String,
}

impl Default for RawProxy {
    fn default() -> Self {
        RawProxy {
            selection: d_selection(),
            when_all_down: d_when_all_down(),
            dedup_window: d_dedup_window(),
            dedup_max_entries: d_dedup_max(),
            upstream_sockets: d_sockets(),
            check_interval: d_check_interval(),
            dead_after: d_dead_after(),
            alive_after: d_alive_after(),
            revive_after: d_revive_after(),
        }
    }
}

fn d_selection() -> String {
    "failover".into()
}

fn d_when_all_down() -> String {
    "drop".into()
}

fn d_dedup_window() -> String {
    "30s".into()
}

fn d_dedup_max() -> u64 {
    100_000
}

fn d_sockets() -> u64 {
    8
}

fn d_check_interval() -> String {
    "10s".into()
}

fn d_dead_after() -> u64 {
    3
}

fn d_alive_after() -> u64 {
    2
}

fn d_revive_after() -> String {
    "60s".into()
}

pub(super) fn validate(p: RawProxy) -> Result<Proxy, ConfigError> {
    let selection = match p.selection.as_str() {
        "failover" => Selection::Failover,
        "round-robin" => Selection::RoundRobin,
        other => {
            return Err(invalid(
                "proxy.selection",
                format!("\"{other}\" is not one of \"failover\", \"round-robin\""),
            ));
        }
    };
    let when_all_down = match p.when_all_down.as_str() {
        "drop" => WhenAllDown::Drop,
        "reject" => WhenAllDown::Reject,
        other => {
            return Err(invalid(
                "proxy.when_all_down",
                format!("\"{other}\" is not one of \"drop\", \"reject\""),
            ));
        }
    };
    Ok(Proxy {
        selection,
        when_all_down,
        dedup_window: parse_duration(
            &p.dedup_window,
            "proxy.dedup_window",
            Duration::from_secs(1),
            Duration::from_secs(300),
        )?,
        dedup_max_entries: bounded(
            p.dedup_max_entries,
            "proxy.dedup_max_entries",
            16,
            10_000_000,
        )? as usize,
        upstream_sockets: bounded(p.upstream_sockets, "proxy.upstream_sockets", 1, 64)? as u16,
        check_interval: parse_duration(
            &p.check_interval,
            "proxy.check_interval",
            Duration::from_secs(1),
            Duration::from_secs(3600),
        )?,
        dead_after: bounded(p.dead_after, "proxy.dead_after", 1, 100)? as u32,
        alive_after: bounded(p.alive_after, "proxy.alive_after", 1, 100)? as u32,
        revive_after: parse_duration(
            &p.revive_after,
            "proxy.revive_after",
            Duration::from_secs(1),
            Duration::from_secs(3600),
        )?,
    })
}
