//! A user's one verification out of band in progress, the grace after one
//! succeeded, and the nodes' heartbeats, shared by every node: taking the slot is one upsert that
//! replaces only an expired row, so two nodes cannot both take it.

use super::pool::Conn;
use crate::mfa::Method;
use crate::store::{NodeSeen, StoreError, StoredChallenge, UnixTime, Verification, fold};

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

pub(super) fn put_challenge(c: &mut Conn, ch: &StoredChallenge) -> Result<(), StoreError> {
    c.exec(
        "INSERT INTO challenges (state, node, user_name, expires_at, sealed) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (state) DO UPDATE SET node = EXCLUDED.node, user_name = EXCLUDED.user_name,
             expires_at = EXCLUDED.expires_at, sealed = EXCLUDED.sealed",
        &[&ch.state, &ch.node, &ch.user, &ch.expires_at, &ch.sealed],
    )?;
    Ok(())
}

pub(super) fn take_challenge(
    c: &mut Conn,
    state: &[u8],
    now: UnixTime,
) -> Result<Option<Vec<u8>>, StoreError> {
    let row = c.opt(
        "DELETE FROM challenges WHERE state = $1 AND expires_at > $2 RETURNING sealed",
        &[&state, &now],
    )?;
    Ok(row.map(|r| r.get(0)))
}

pub(super) fn heartbeat(c: &mut Conn, n: &NodeSeen) -> Result<(), StoreError> {
    c.exec(
        "DELETE FROM challenges WHERE expires_at <= $1",
        &[&n.seen_at],
    )?;
    c.exec(
        "INSERT INTO nodes AS n (name, started_at, seen_at, version) VALUES ($1, $2, $3, $4)
         ON CONFLICT (name) DO UPDATE SET started_at = EXCLUDED.started_at,
             seen_at = GREATEST(n.seen_at, EXCLUDED.seen_at), version = EXCLUDED.version",
        &[&n.name, &n.started_at, &n.seen_at, &n.version],
    )?;
    Ok(())
}

pub(super) fn nodes(c: &mut Conn) -> Result<Vec<NodeSeen>, StoreError> {
    let rows = c.rows(
        "SELECT name, started_at, seen_at, version FROM nodes ORDER BY seen_at DESC, name",
        &[],
    )?;
    rows.iter()
        .map(|r| {
            Ok(NodeSeen {
                name: r.try_get(0)?,
                started_at: r.try_get(1)?,
                seen_at: r.try_get(2)?,
                version: r.try_get(3)?,
            })
        })
        .collect()
}
