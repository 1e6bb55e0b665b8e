//! A user's one verification out of band in progress, the grace after one
//! succeeded, the challenges out, the answers waiting for another node, and
//! the nodes' heartbeats, shared by every node: taking the slot is one
//! upsert that replaces only an expired row, so two nodes cannot both take
//! it.

use super::pool::Conn;
use crate::mfa::Method;
use crate::store::{
    EXPIRED_KEPT, KeptAnswers, NodeSeen, StoreError, StoredAnswer, StoredChallenge, Take, UnixTime,
    Verification, fold,
};

/// Takes the user's verification slot unless a live one holds it.
const START_SQL: &str = "INSERT INTO verifications AS v
    (user_key, user_name, id, node, client, method, provider, started_at, expires_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
 ON CONFLICT (user_key) DO UPDATE SET user_name = EXCLUDED.user_name, id = EXCLUDED.id,
    node = EXCLUDED.node, client = EXCLUDED.client, method = EXCLUDED.method,
    provider = EXCLUDED.provider, started_at = EXCLUDED.started_at,
    expires_at = EXCLUDED.expires_at
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
            &v.provider,
            &v.started_at,
            &v.expires_at,
        ],
    )? == 1)
}

pub(super) fn end(c: &mut Conn, user: &str, id: &[u8], node: &str) -> Result<(), StoreError> {
    let key = fold(user);
    c.exec(
        "DELETE FROM verifications WHERE user_key = $1 AND id = $2 AND node = $3",
        &[&key, &id, &node],
    )?;
    Ok(())
}

fn verification_at(r: &postgres::Row) -> Result<Verification, StoreError> {
    Ok(Verification {
        user: r.try_get(0)?,
        id: r.try_get(1)?,
        node: r.try_get(2)?,
        client: r.try_get(3)?,
        method: Method::parse(&r.try_get::<_, String>(4)?).unwrap_or(Method::Push),
        provider: r.try_get(5)?,
        started_at: r.try_get(6)?,
        expires_at: r.try_get(7)?,
    })
}

/// `FOR UPDATE`: a node taking the verification over waits for this
/// transaction, so an answer is never kept for the node it just left.
pub(super) fn by_id(
    c: &mut Conn,
    id: &[u8],
    now: UnixTime,
) -> Result<Option<Verification>, StoreError> {
    let row = c.opt(
        "SELECT user_name, id, node, client, method, provider, started_at, expires_at
         FROM verifications WHERE id = $1 AND expires_at > $2 FOR UPDATE",
        &[&id, &now],
    )?;
    row.as_ref().map(verification_at).transpose()
}

pub(super) fn move_to(
    c: &mut Conn,
    id: &[u8],
    node: &str,
    now: UnixTime,
) -> Result<bool, StoreError> {
    Ok(c.exec(
        "UPDATE verifications SET node = $2 WHERE id = $1 AND expires_at > $3",
        &[&id, &node, &now],
    )? == 1)
}

pub(super) fn put_answer(c: &mut Conn, a: &StoredAnswer) -> Result<bool, StoreError> {
    let kept = c.exec(
        "INSERT INTO answers (id, node, expires_at, sealed) VALUES ($1, $2, $3, $4)
         ON CONFLICT (id) DO NOTHING",
        &[&a.id, &a.node, &a.expires_at, &a.sealed],
    )? == 1;
    if kept && !a.sealed.is_empty() {
        // Delivered when the transaction commits, never before; the
        // channel is `listen::CHANNEL`.
        let payload = format!("{}:{}", a.node, crate::hex::hex_encode(&a.id));
        c.exec("SELECT pg_notify('mfa_answers', $1)", &[&payload])?;
    }
    Ok(kept)
}

pub(super) fn take_answers(c: &mut Conn, ids: &[Vec<u8>]) -> Result<KeptAnswers, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = c.rows(
        "WITH t AS (SELECT id, sealed FROM answers
                    WHERE id = ANY($1) AND sealed <> ''::bytea FOR UPDATE)
         UPDATE answers a SET sealed = ''::bytea FROM t WHERE a.id = t.id
         RETURNING t.id, t.sealed",
        &[&ids],
    )?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
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
        "SELECT user_name, id, node, client, method, provider, started_at, expires_at
         FROM verifications WHERE expires_at > $1 ORDER BY started_at, user_key",
        &[&now],
    )?;
    rows.iter().map(verification_at).collect()
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

/// A burst's challenges in one statement.
pub(super) fn put_challenges(c: &mut Conn, cs: &[StoredChallenge]) -> Result<(), StoreError> {
    let state: Vec<&[u8]> = cs.iter().map(|c| c.state.as_slice()).collect();
    let node: Vec<&str> = cs.iter().map(|c| c.node.as_str()).collect();
    let user: Vec<&str> = cs.iter().map(|c| c.user.as_str()).collect();
    let expires_at: Vec<i64> = cs.iter().map(|c| c.expires_at).collect();
    let sealed: Vec<&[u8]> = cs.iter().map(|c| c.sealed.as_slice()).collect();
    c.exec(
        "INSERT INTO challenges (state, node, user_name, expires_at, sealed)
         SELECT * FROM unnest($1::bytea[], $2::text[], $3::text[], $4::bigint[], $5::bytea[])
         ON CONFLICT (state) DO UPDATE SET node = EXCLUDED.node, user_name = EXCLUDED.user_name,
             expires_at = EXCLUDED.expires_at, sealed = EXCLUDED.sealed",
        &[&state, &node, &user, &expires_at, &sealed],
    )?;
    Ok(())
}

/// Takes the challenges (`$1` the States, `$2` the nodes taking them, `$3`
/// when) that have not expired then and that nobody took: the States taken
/// and what they held. A challenge another transaction is taking is waited
/// for, then found taken.
const TAKE_SQL: &str = "WITH t AS (
     SELECT c.state, c.sealed, q.node
     FROM unnest($1::bytea[], $2::text[], $3::bigint[]) AS q(state, node, now)
     JOIN challenges c ON c.state = q.state
     WHERE c.expires_at > q.now AND c.taken_by IS NULL
     FOR UPDATE OF c)
 UPDATE challenges c SET taken_by = t.node, sealed = ''::bytea FROM t
 WHERE c.state = t.state RETURNING t.state, t.sealed";

/// Takes distinct challenges in one statement: what each held, or `None`.
/// The same State twice is taken in turn, so that one take gets it.
pub(super) fn take_challenges(
    c: &mut Conn,
    takes: &[Take<'_>],
) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
    let states: Vec<&[u8]> = takes.iter().map(|&(s, _, _)| s).collect();
    if super::tokens::has_twice(&states) {
        return takes
            .iter()
            .map(|&take| Ok(take_challenges(c, &[take])?.pop().flatten()))
            .collect();
    }
    let nodes: Vec<&str> = takes.iter().map(|&(_, n, _)| n).collect();
    let nows: Vec<UnixTime> = takes.iter().map(|&(_, _, now)| now).collect();
    let mut taken: Vec<(Vec<u8>, Vec<u8>)> = c
        .rows(TAKE_SQL, &[&states, &nodes, &nows])?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, StoreError>>()?;
    Ok(states
        .iter()
        .map(|s| {
            let at = taken.iter().position(|(t, _)| t == s)?;
            Some(taken.swap_remove(at).1)
        })
        .collect())
}

pub(super) fn drop_challenge(c: &mut Conn, state: &[u8], node: &str) -> Result<bool, StoreError> {
    let row = c.opt(
        "DELETE FROM challenges WHERE state = $1 RETURNING taken_by",
        &[&state],
    )?;
    let taken_by: Option<String> = match row {
        Some(r) => r.try_get(0)?,
        None => None,
    };
    Ok(taken_by.is_some_and(|by| by != node))
}

pub(super) fn heartbeat(c: &mut Conn, n: &NodeSeen) -> Result<(), StoreError> {
    let gone = n.seen_at.saturating_sub(EXPIRED_KEPT);
    c.exec("DELETE FROM challenges WHERE expires_at <= $1", &[&gone])?;
    c.exec("DELETE FROM answers WHERE expires_at <= $1", &[&gone])?;
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
