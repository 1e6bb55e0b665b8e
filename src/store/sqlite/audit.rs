//! The records administrators read: the audit trail of logins, and the
//! histories of blocks and of bypasses (which `login.rs` writes).

use rusqlite::{Connection, params};

use super::x;
use crate::mfa::ResultCode;
use crate::store::{AuditRecord, HistoryEntry, StoreError, UnixTime};

pub(super) const AUDIT_SQL: &str =
    "INSERT INTO audit (at, user, result, accepted, mode, server, client, client_ip, reason)
 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

/// The audit trail from a time on, optionally of one user: a range of the
/// `at` index, already in order.
pub(super) const REPORT_SQL: &str =
    "SELECT at, user, result, accepted, mode, server, client, client_ip, reason FROM audit
 WHERE at >= ?2 AND (?1 IS NULL OR user = ?1 COLLATE NOCASE) ORDER BY at, id";

/// The oldest records first, by the `at` index.
pub(super) fn prune_audit(c: &Connection, before: UnixTime, limit: u32) -> Result<u64, StoreError> {
    Ok(x(
        c,
        "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at < ?1 ORDER BY at LIMIT ?2)",
        params![before, limit],
    )? as u64)
}

pub(super) fn append_audit(c: &Connection, a: &AuditRecord) -> Result<(), StoreError> {
    x(
        c,
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

pub(super) fn audit(
    c: &Connection,
    user: Option<&str>,
    since: Option<UnixTime>,
) -> Result<Vec<AuditRecord>, StoreError> {
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

pub(super) fn block_history(c: &Connection) -> Result<Vec<HistoryEntry>, StoreError> {
    let mut st = c.prepare_cached(
        "SELECT user, action, reason, at, until FROM block_history ORDER BY at, id",
    )?;
    let rows = st.query_map([], history_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn bypass_history(c: &Connection) -> Result<Vec<HistoryEntry>, StoreError> {
    let mut st = c.prepare_cached(
        "SELECT user, CASE WHEN used_at IS NULL THEN 'granted' ELSE 'used' END, reason, created_at, until
             FROM bypasses ORDER BY created_at, id",
    )?;
    let rows = st.query_map([], history_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}
