//! The records administrators read: the audit trail of logins, and the
//! histories of blocks and of bypasses (which `login.rs` writes).

use postgres::Row;

use super::pool::Conn;
use crate::mfa::ResultCode;
use crate::store::{AuditRecord, HistoryEntry, StoreError, UnixTime, fold};

/// The user as given (a login of an unknown user is audited too) and its
/// folded key, which reports filter by.
const AUDIT_SQL: &str = "INSERT INTO audit
     (at, user_name, user_key, result, accepted, mode, server, client, client_ip, reason)
 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// As [`AUDIT_SQL`], a burst's records in one statement.
const AUDITS_SQL: &str = "INSERT INTO audit
     (at, user_name, user_key, result, accepted, mode, server, client, client_ip, reason)
 SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::boolean[],
                      $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])";

/// The audit trail from a time on, optionally of one user: a range of the
/// `at` index, in order.
const REPORT_SQL: &str =
    "SELECT at, user_name, result, accepted, mode, server, client, client_ip, reason
 FROM audit WHERE at >= $2 AND ($1::text IS NULL OR user_key = $1) ORDER BY at, id";

pub(super) fn append_audit(c: &mut Conn, a: &AuditRecord) -> Result<(), StoreError> {
    let key = fold(&a.user);
    c.exec(
        AUDIT_SQL,
        &[
            &a.at,
            &a.user,
            &key,
            &a.result.as_str(),
            &a.accepted,
            &a.mode,
            &a.server,
            &a.client,
            &a.client_ip,
            &a.reason,
        ],
    )?;
    Ok(())
}

/// The oldest records first, by the `at` index; rows another node is
/// deleting are skipped, not waited for.
pub(super) fn prune_audit(c: &mut Conn, before: UnixTime, limit: u32) -> Result<u64, StoreError> {
    c.exec(
        "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at < $1
                                       ORDER BY at LIMIT $2 FOR UPDATE SKIP LOCKED)",
        &[&before, &i64::from(limit)],
    )
}

/// A burst's records in one statement, in order.
pub(super) fn append_audits(c: &mut Conn, recs: &[AuditRecord]) -> Result<(), StoreError> {
    let col = |f: fn(&AuditRecord) -> String| recs.iter().map(f).collect::<Vec<_>>();
    let at: Vec<i64> = recs.iter().map(|a| a.at).collect();
    let accepted: Vec<bool> = recs.iter().map(|a| a.accepted).collect();
    let client_ip: Vec<Option<String>> = recs.iter().map(|a| a.client_ip.clone()).collect();
    let reason: Vec<Option<String>> = recs.iter().map(|a| a.reason.clone()).collect();
    c.exec(
        AUDITS_SQL,
        &[
            &at,
            &col(|a| a.user.clone()),
            &col(|a| fold(&a.user)),
            &col(|a| a.result.as_str().to_owned()),
            &accepted,
            &col(|a| a.mode.clone()),
            &col(|a| a.server.clone()),
            &col(|a| a.client.clone()),
            &client_ip,
            &reason,
        ],
    )?;
    Ok(())
}

pub(super) fn audit(
    c: &mut Conn,
    user: Option<&str>,
    since: Option<UnixTime>,
) -> Result<Vec<AuditRecord>, StoreError> {
    let key = user.map(fold);
    let since = since.unwrap_or(UnixTime::MIN);
    c.rows(REPORT_SQL, &[&key, &since])?
        .iter()
        .map(|r| {
            let result: String = r.try_get(2)?;
            Ok(AuditRecord {
                at: r.try_get(0)?,
                user: r.try_get(1)?,
                result: ResultCode::parse(&result).unwrap_or(ResultCode::FailedServerError),
                accepted: r.try_get(3)?,
                mode: r.try_get(4)?,
                server: r.try_get(5)?,
                client: r.try_get(6)?,
                client_ip: r.try_get(7)?,
                reason: r.try_get(8)?,
            })
        })
        .collect()
}

/// Columns: user, action, reason, at, until.
fn history_from_row(r: &Row) -> Result<HistoryEntry, StoreError> {
    Ok(HistoryEntry {
        user: r.try_get(0)?,
        action: r.try_get(1)?,
        reason: r.try_get(2)?,
        at: r.try_get(3)?,
        until: r.try_get(4)?,
    })
}

pub(super) fn block_history(c: &mut Conn) -> Result<Vec<HistoryEntry>, StoreError> {
    c.rows(
        "SELECT user_name, action, reason, at, until FROM block_history ORDER BY at, id",
        &[],
    )?
    .iter()
    .map(history_from_row)
    .collect()
}

pub(super) fn bypass_history(c: &mut Conn) -> Result<Vec<HistoryEntry>, StoreError> {
    c.rows(
        "SELECT user_name, CASE WHEN used_at IS NULL THEN 'granted' ELSE 'used' END, reason,
             created_at, until
         FROM bypasses ORDER BY created_at, id",
        &[],
    )?
    .iter()
    .map(history_from_row)
    .collect()
}
