//! A user's one verification out of band in progress, and the grace after
//! one succeeded, shared by every node: taking the slot is one upsert that
//! replaces only an expired row, so two nodes cannot both take it.

use super::pool::Conn;
use crate::mfa::Method;
use crate::store::{StoreError, UnixTime, Verification, fold};

/// Takes the user's verification slot unless a live one holds it.
const START_SQL: &str = "INSERT INTO verifications AS v
    (user_key, user_name, id, node, client, method, started_at, expires_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
 ON CONFLICT (user_key) DO UPDATE SET user_name = EXCLUDED.user_name, id = EXCLUDED.id,
    node = EXCLUDED.node, client = EXCLUDED.client, method = EXCLUDED.method,
    started_at = EXCLUDED.started_at, expires_at = EXCLUDED.expires_at
 WHERE v.expires_at <= EXCLUDED.started_at";

pub(super) fn start(c: &mut Conn, v: &Verification) -> Result<bool, StoreError> {
    let key = fold(&v.user);
    Ok(c.exec(
        START_SQL,
        &[
            &key,
            &v.user,
            &v.id,
            &v.node,
            &v.client,
            &v.method.as_str(),
            &v.started_at,
            &v.expires_at,
        ],
    )? == 1)
}

pub(super) fn end(c: &mut Conn, user: &str, id: &[u8]) -> Result<(), StoreError> {
    let key = fold(user);
    c.exec(
        "DELETE FROM verifications WHERE user_key = $1 AND id = $2",
        &[&key, &id],
    )?;
    Ok(())
}

pub(super) fn grant_grace(
    c: &mut Conn,
    user: &str,
    client: &str,
    until: UnixTime,
    now: UnixTime,
) -> Result<(), StoreError> {
    let key = fold(user);
    c.exec(
        "DELETE FROM grace WHERE user_key = $1 AND until <= $2",
        &[&key, &now],
    )?;
    c.exec(
        "INSERT INTO grace AS g (user_key, client, until) VALUES ($1, $2, $3)
         ON CONFLICT (user_key, client) DO UPDATE SET until = GREATEST(g.until, EXCLUDED.until)",
        &[&key, &client, &until],
    )?;
    Ok(())
}

pub(super) fn take_grace(
    c: &mut Conn,
    user: &str,
    client: &str,
    now: UnixTime,
) -> Result<bool, StoreError> {
    let key = fold(user);
    Ok(c.exec(
        "DELETE FROM grace WHERE user_key = $1 AND client = $2 AND until > $3",
        &[&key, &client, &now],
    )? == 1)
}

pub(super) fn list(c: &mut Conn, now: UnixTime) -> Result<Vec<Verification>, StoreError> {
    let rows = c.rows(
        "SELECT user_name, id, node, client, method, started_at, expires_at FROM verifications
         WHERE expires_at > $1 ORDER BY started_at, user_key",
        &[&now],
    )?;
    rows.iter()
        .map(|r| {
            Ok(Verification {
                user: r.try_get(0)?,
                id: r.try_get(1)?,
                node: r.try_get(2)?,
                client: r.try_get(3)?,
                method: Method::parse(&r.try_get::<_, String>(4)?).unwrap_or(Method::Push),
                started_at: r.try_get(5)?,
                expires_at: r.try_get(6)?,
            })
        })
        .collect()
}
