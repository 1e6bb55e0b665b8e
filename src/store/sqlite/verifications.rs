//! A user's one verification out of band in progress, the grace after one
//! succeeded, the challenges out and the answers waiting for another node,
//! and the nodes' heartbeats (SQLite: one node, but the same rules as the
//! cluster's PostgreSQL store).

use rusqlite::{Connection, OptionalExtension, params};

use super::{q, x};
use crate::mfa::Method;
use crate::store::{
    EXPIRED_KEPT, KeptAnswers, NodeSeen, StoreError, StoredAnswer, StoredChallenge, UnixTime,
    Verification,
};

/// Takes the user's verification slot unless a live one holds it.
const START_VERIFICATION_SQL: &str = "INSERT INTO verifications
    (user, id, node, client, method, provider, started_at, expires_at)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
 ON CONFLICT (user) DO UPDATE SET id = excluded.id, node = excluded.node, client = excluded.client,
    method = excluded.method, provider = excluded.provider, started_at = excluded.started_at,
    expires_at = excluded.expires_at
 WHERE verifications.expires_at <= excluded.started_at";

pub(super) fn start_verification(c: &Connection, v: &Verification) -> Result<bool, StoreError> {
    Ok(x(
        c,
        START_VERIFICATION_SQL,
        params![
            v.user,
            v.id,
            v.node,
            v.client,
            v.method.as_str(),
            v.provider,
            v.started_at,
            v.expires_at
        ],
    )? == 1)
}

pub(super) fn end_verification(
    c: &Connection,
    user: &str,
    id: &[u8],
    node: &str,
) -> Result<(), StoreError> {
    x(
        c,
        "DELETE FROM verifications WHERE user = ?1 AND id = ?2 AND node = ?3",
        params![user, id, node],
    )?;
    Ok(())
}

/// The columns of a [`Verification`], in [`verification_at`]'s order.
const VERIFICATION_COLUMNS: &str =
    "user, id, node, client, method, provider, started_at, expires_at";

fn verification_at(r: &rusqlite::Row<'_>) -> rusqlite::Result<Verification> {
    Ok(Verification {
        user: r.get(0)?,
        id: r.get(1)?,
        node: r.get(2)?,
        client: r.get(3)?,
        method: Method::parse(&r.get::<_, String>(4)?).unwrap_or(Method::Push),
        provider: r.get(5)?,
        started_at: r.get(6)?,
        expires_at: r.get(7)?,
    })
}

/// The transaction holds SQLite's write lock: the row cannot move.
pub(super) fn verification(
    c: &Connection,
    id: &[u8],
    now: UnixTime,
) -> Result<Option<Verification>, StoreError> {
    let sql = format!(
        "SELECT {VERIFICATION_COLUMNS} FROM verifications WHERE id = ?1 AND expires_at > ?2"
    );
    Ok(q(c, &sql, params![id, now], verification_at).optional()?)
}

pub(super) fn move_verification(
    c: &Connection,
    id: &[u8],
    node: &str,
    now: UnixTime,
) -> Result<bool, StoreError> {
    Ok(x(
        c,
        "UPDATE verifications SET node = ?2 WHERE id = ?1 AND expires_at > ?3",
        params![id, node, now],
    )? == 1)
}

pub(super) fn put_answer(c: &Connection, a: &StoredAnswer) -> Result<bool, StoreError> {
    Ok(x(
        c,
        "INSERT INTO answers (id, node, expires_at, sealed) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO NOTHING",
        params![a.id, a.node, a.expires_at, a.sealed],
    )? == 1)
}

pub(super) fn take_answers(c: &Connection, ids: &[Vec<u8>]) -> Result<KeptAnswers, StoreError> {
    let mut taken = Vec::new();
    for id in ids {
        // The transaction holds the write lock: nobody takes it in between.
        let sealed: Option<Vec<u8>> = q(
            c,
            "SELECT sealed FROM answers WHERE id = ?1 AND sealed <> x''",
            [id],
            |r| r.get(0),
        )
        .optional()?;
        if let Some(sealed) = sealed {
            x(c, "UPDATE answers SET sealed = x'' WHERE id = ?1", [id])?;
            taken.push((id.clone(), sealed));
        }
    }
    Ok(taken)
}

pub(super) fn grant_grace(
    c: &Connection,
    user: &str,
    client: &str,
    until: UnixTime,
    now: UnixTime,
) -> Result<(), StoreError> {
    x(
        c,
        "DELETE FROM grace WHERE user = ?1 AND until <= ?2",
        params![user, now],
    )?;
    x(
        c,
        "INSERT INTO grace (user, client, until) VALUES (?1, ?2, ?3)
         ON CONFLICT (user, client) DO UPDATE SET until = MAX(until, excluded.until)",
        params![user, client, until],
    )?;
    Ok(())
}

pub(super) fn take_grace(
    c: &Connection,
    user: &str,
    client: &str,
    now: UnixTime,
) -> Result<bool, StoreError> {
    Ok(x(
        c,
        "DELETE FROM grace WHERE user = ?1 AND client = ?2 AND until > ?3",
        params![user, client, now],
    )? == 1)
}

pub(super) fn verifications(
    c: &Connection,
    now: UnixTime,
) -> Result<Vec<Verification>, StoreError> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {VERIFICATION_COLUMNS} FROM verifications
         WHERE expires_at > ?1 ORDER BY started_at, user"
    ))?;
    let rows = st.query_map([now], verification_at)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn put_challenge(c: &Connection, ch: &StoredChallenge) -> Result<(), StoreError> {
    x(
        c,
        "INSERT INTO challenges (state, node, user, expires_at, sealed) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (state) DO UPDATE SET node = excluded.node, user = excluded.user,
             expires_at = excluded.expires_at, sealed = excluded.sealed",
        params![ch.state, ch.node, ch.user, ch.expires_at, ch.sealed],
    )?;
    Ok(())
}

pub(super) fn take_challenge(
    c: &Connection,
    state: &[u8],
    node: &str,
    now: UnixTime,
) -> Result<Option<Vec<u8>>, StoreError> {
    // The transaction holds the write lock: nobody takes it in between.
    let sealed: Option<Vec<u8>> = q(
        c,
        "SELECT sealed FROM challenges WHERE state = ?1 AND expires_at > ?2 AND taken_by IS NULL",
        params![state, now],
        |r| r.get(0),
    )
    .optional()?;
    if sealed.is_some() {
        x(
            c,
            "UPDATE challenges SET taken_by = ?2, sealed = x'' WHERE state = ?1",
            params![state, node],
        )?;
    }
    Ok(sealed)
}

pub(super) fn drop_challenge(c: &Connection, state: &[u8], node: &str) -> Result<bool, StoreError> {
    let taken_by: Option<Option<String>> = q(
        c,
        "DELETE FROM challenges WHERE state = ?1 RETURNING taken_by",
        [state],
        |r| r.get(0),
    )
    .optional()?;
    Ok(matches!(taken_by, Some(Some(by)) if by != node))
}

pub(super) fn heartbeat(c: &Connection, n: &NodeSeen) -> Result<(), StoreError> {
    let gone = n.seen_at.saturating_sub(EXPIRED_KEPT);
    x(c, "DELETE FROM challenges WHERE expires_at <= ?1", [gone])?;
    x(c, "DELETE FROM answers WHERE expires_at <= ?1", [gone])?;
    x(
        c,
        "INSERT INTO nodes (name, started_at, seen_at, version) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (name) DO UPDATE SET started_at = excluded.started_at,
             seen_at = MAX(seen_at, excluded.seen_at), version = excluded.version",
        params![n.name, n.started_at, n.seen_at, n.version],
    )?;
    Ok(())
}

pub(super) fn nodes(c: &Connection) -> Result<Vec<NodeSeen>, StoreError> {
    let mut st = c.prepare_cached(
        "SELECT name, started_at, seen_at, version FROM nodes ORDER BY seen_at DESC, name",
    )?;
    let rows = st.query_map([], |r| {
        Ok(NodeSeen {
            name: r.get(0)?,
            started_at: r.get(1)?,
            seen_at: r.get(2)?,
            version: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
