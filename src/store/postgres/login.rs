//! What a login reads and changes about its user, tokens apart: the login
//! state in one statement, denials and the lockout they lead to, blocks by
//! an administrator, one-time bypasses and remembered logins. A block, or
//! the denial that locks, forgets the user's remembered logins.
//!
//! Each decision is atomic between nodes: a conditional `UPDATE` (which
//! PostgreSQL checks again on a row it had to wait for), an upsert, or a
//! row lock taken before the rows it guards are read.

use postgres::Row;

use super::pool::Conn;
use super::tokens::{TOKEN_COLS_N, token_at, token_cols};
use super::users::{exists, groups_at, json_at};
use crate::mfa::{LockoutPolicy, Method, Remembered};
use crate::store::{Retry, SealedSeed, StoreError, UnixTime, UserFacts, fold};

/// What logins read about their users, in one statement: a row per
/// active token, or one with no token (see
/// [`LoginTx::facts`](crate::store::LoginTx::facts)), each with the place
/// of its user among those asked (`$1` the name keys, `$2` each one's time).
const LOGIN_STATE_SQL: &str = concat!(
    "SELECT q.i,
         COALESCE(u.blocked_until > q.now, FALSE),
         EXISTS (SELECT 1 FROM bypasses b
                 WHERE b.user_key = u.name_key AND b.used_at IS NULL AND b.until > q.now),
         COALESCE((SELECT l.locked_until > q.now FROM lockouts l WHERE l.user_key = u.name_key), FALSE),
         u.method, u.phone, u.pin_hash IS NOT NULL, u.language,
         COALESCE((SELECT json_agg(g.name) FROM user_groups g WHERE g.user_key = u.name_key),
                  '[]')::text,
         COALESCE((SELECT json_agg(json_build_array(m.auth_type, m.app, m.address, m.at))
                   FROM remembered m WHERE m.user_key = u.name_key), '[]')::text,
         EXISTS (SELECT 1 FROM verifications v WHERE v.user_key = u.name_key AND v.expires_at > q.now),
         COALESCE((SELECT json_agg(g.client) FROM grace g
                   WHERE g.user_key = u.name_key AND g.until > q.now), '[]')::text,
         COALESCE((SELECT l.denials > 0 FROM lockouts l WHERE l.user_key = u.name_key), FALSE),
         CASE WHEN u.disabled_at IS NOT NULL THEN COALESCE(u.source, '') END,
         ",
    token_cols!(),
    ", t.seed
  FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS q(key, now, i)
  JOIN users u ON u.name_key = q.key
  LEFT JOIN tokens t ON t.user_key = u.name_key AND t.active
  ORDER BY q.i, t.id"
);
/// Where the token columns start in [`LOGIN_STATE_SQL`].
const LOGIN_STATE_TOKEN_AT: usize = 14;

/// The facts of each user asked at its time, in order (see
/// [`LoginTx::facts_of`](crate::store::LoginTx::facts_of)).
pub(super) fn facts_of(
    c: &mut Conn,
    asked: &[(&str, UnixTime)],
) -> Result<Vec<Option<UserFacts>>, StoreError> {
    let keys: Vec<String> = asked.iter().map(|(u, _)| fold(u)).collect();
    let nows: Vec<UnixTime> = asked.iter().map(|&(_, now)| now).collect();
    let rows = c.rows(LOGIN_STATE_SQL, &[&keys, &nows])?;
    let mut found: Vec<Option<UserFacts>> = asked.iter().map(|_| None).collect();
    let places: Vec<i64> = rows
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let mut at = 0;
    for run in places.chunk_by(|a, b| a == b) {
        let slot = usize::try_from(run[0] - 1)
            .ok()
            .and_then(|i| found.get_mut(i))
            .ok_or_else(|| StoreError::database("facts of a user not asked", Retry::No))?;
        *slot = Some(user_facts(&rows[at..at + run.len()])?);
        at += run.len();
    }
    Ok(found)
}

/// One user's facts from its rows of [`LOGIN_STATE_SQL`] (one at least).
fn user_facts(rows: &[Row]) -> Result<UserFacts, StoreError> {
    let first = &rows[0];
    let mut tokens = Vec::new();
    for r in rows {
        if r.try_get::<_, Option<i64>>(LOGIN_STATE_TOKEN_AT)?.is_some() {
            let sealed = r.try_get(LOGIN_STATE_TOKEN_AT + TOKEN_COLS_N)?;
            tokens.push((token_at(r, LOGIN_STATE_TOKEN_AT)?, SealedSeed(sealed)));
        }
    }
    let method: String = first.try_get(4)?;
    Ok(UserFacts {
        blocked: first.try_get(1)?,
        bypass_waiting: first.try_get(2)?,
        locked: first.try_get(3)?,
        tokens: tokens.into(),
        method: Method::parse(&method).unwrap_or(Method::Totp),
        phone: first.try_get(5)?,
        pin: first.try_get(6)?,
        language: first.try_get(7)?,
        groups: groups_at(first, 8)?,
        remembered: remembered_at(first, 9)?,
        busy: first.try_get(10)?,
        graced: json_at(first, 11)?,
        denied: first.try_get(12)?,
        disabled: first.try_get(13)?,
    })
}

/// A time column for `user` (`sql` selects it by key), if set and after
/// `now`.
fn until_in_future(
    c: &mut Conn,
    sql: &'static str,
    user: &str,
    now: UnixTime,
) -> Result<Option<UnixTime>, StoreError> {
    let key = fold(user);
    let until: Option<i64> = match c.opt(sql, &[&key])? {
        Some(r) => r.try_get(0)?,
        None => None,
    };
    Ok(until.filter(|&u| u > now))
}

// Denials, and the lockout they lead to.

/// Counts a denial (a new run after `reset_after`); the count as it is
/// now. The row stays locked until the transaction ends.
const COUNT_DENIAL_SQL: &str = "INSERT INTO lockouts AS l (user_key, denials, first_denial)
 VALUES ($1, 1, $2)
 ON CONFLICT (user_key) DO UPDATE SET
     denials = CASE WHEN $2 < l.first_denial + $3 THEN l.denials + 1 ELSE 1 END,
     first_denial = CASE WHEN $2 < l.first_denial + $3 THEN l.first_denial ELSE $2 END
 RETURNING denials";

pub(super) fn record_denial(
    c: &mut Conn,
    user: &str,
    now: UnixTime,
    p: &LockoutPolicy,
) -> Result<Option<UnixTime>, StoreError> {
    let key = fold(user);
    let denials: i64 = c
        .one(COUNT_DENIAL_SQL, &[&key, &now, &p.reset_after])?
        .try_get(0)?;
    if denials < i64::from(p.denials) {
        return Ok(None);
    }
    let until = now + p.unblock_after;
    // The user's row first, as a block takes it: a remember waiting for it
    // then sees the lockout, and one that holds it is done before the
    // remembered logins are forgotten.
    c.exec(LOCK_USER_SQL, &[&key])?;
    c.exec(
        "UPDATE lockouts SET denials = 0, locked_until = $2 WHERE user_key = $1",
        &[&key, &until],
    )?;
    c.exec(FORGET_SQL, &[&key])?;
    Ok(Some(until))
}

pub(super) fn clear_denials(c: &mut Conn, user: &str) -> Result<(), StoreError> {
    let key = fold(user);
    c.exec(
        "UPDATE lockouts SET denials = 0 WHERE user_key = $1 AND denials > 0",
        &[&key],
    )?;
    Ok(())
}

pub(super) fn locked_until(
    c: &mut Conn,
    user: &str,
    now: UnixTime,
) -> Result<Option<UnixTime>, StoreError> {
    until_in_future(
        c,
        "SELECT locked_until FROM lockouts WHERE user_key = $1",
        user,
        now,
    )
}

// Blocks by an administrator.

pub(super) fn block(
    c: &mut Conn,
    user: &str,
    reason: &str,
    now: UnixTime,
    until: UnixTime,
) -> Result<(), StoreError> {
    let key = fold(user);
    if c.exec(
        "UPDATE users SET blocked_until = $2 WHERE name_key = $1",
        &[&key, &until],
    )? == 0
    {
        return Err(StoreError::NoSuchUser(user.to_owned()));
    }
    c.exec(
        "INSERT INTO block_history (user_name, action, reason, at, until)
         VALUES ($1, 'block', $2, $3, $4)",
        &[&user, &reason, &now, &until],
    )?;
    c.exec(FORGET_SQL, &[&key])?;
    Ok(())
}

pub(super) fn unblock(
    c: &mut Conn,
    user: &str,
    reason: &str,
    now: UnixTime,
) -> Result<(), StoreError> {
    let key = fold(user);
    // The lockout row before the user's, in the order a denial takes them
    // (no deadlock); an unknown user rolls both back.
    c.exec(
        "UPDATE lockouts SET locked_until = NULL, denials = 0 WHERE user_key = $1",
        &[&key],
    )?;
    if c.exec(
        "UPDATE users SET blocked_until = NULL WHERE name_key = $1",
        &[&key],
    )? == 0
    {
        return Err(StoreError::NoSuchUser(user.to_owned()));
    }
    c.exec(
        "INSERT INTO block_history (user_name, action, reason, at) VALUES ($1, 'unblock', $2, $3)",
        &[&user, &reason, &now],
    )?;
    Ok(())
}

pub(super) fn blocked_until(
    c: &mut Conn,
    user: &str,
    now: UnixTime,
) -> Result<Option<UnixTime>, StoreError> {
    until_in_future(
        c,
        "SELECT blocked_until FROM users WHERE name_key = $1",
        user,
        now,
    )
}

// One-time bypasses.

pub(super) fn add_bypass(
    c: &mut Conn,
    user: &str,
    reason: &str,
    now: UnixTime,
    until: UnixTime,
) -> Result<(), StoreError> {
    if !exists(c, user)? {
        return Err(StoreError::NoSuchUser(user.to_owned()));
    }
    let key = fold(user);
    c.exec(
        "INSERT INTO bypasses (user_key, user_name, reason, created_at, until)
         VALUES ($1, $2, $3, $4, $5)",
        &[&key, &user, &reason, &now, &until],
    )?;
    Ok(())
}

/// Uses up the user's oldest bypass still valid at `$2`, unless the user is
/// blocked at `$2`. A bypass another transaction is taking is skipped, and
/// the outer condition is checked again on a row waited for, so two
/// takers never use one bypass.
const TAKE_BYPASS_SQL: &str = "UPDATE bypasses SET used_at = $2
 WHERE used_at IS NULL AND id = (
     SELECT b.id FROM bypasses b
     WHERE b.user_key = $1 AND b.used_at IS NULL AND b.until > $2
       AND NOT EXISTS (SELECT 1 FROM users u WHERE u.name_key = $1 AND u.blocked_until > $2)
     ORDER BY b.id LIMIT 1 FOR UPDATE SKIP LOCKED)";

pub(super) fn take_bypass(c: &mut Conn, user: &str, now: UnixTime) -> Result<bool, StoreError> {
    let key = fold(user);
    Ok(c.exec(TAKE_BYPASS_SQL, &[&key, &now])? == 1)
}

// Remembered logins.

/// Locks the user's row against a block or a lockout until the transaction
/// ends (both take it), so what is read after it stays true.
const LOCK_USER_SQL: &str = "SELECT 1 FROM users WHERE name_key = $1 FOR UPDATE";
const SHARE_USER_SQL: &str = "SELECT 1 FROM users WHERE name_key = $1 FOR SHARE";

/// Remembers a login (see [`LoginTx::remember`](crate::store::LoginTx::remember)):
/// of a user who exists and was neither blocked nor locked after the
/// login's time.
const REMEMBER_SQL: &str = "INSERT INTO remembered (user_key, auth_type, app, address, at)
 SELECT u.name_key, $2, $3, $4, $5 FROM users u
 WHERE u.name_key = $1 AND NOT COALESCE(u.blocked_until > $5, FALSE)
   AND NOT COALESCE((SELECT l.locked_until > $5 FROM lockouts l WHERE l.user_key = u.name_key),
                    FALSE)
 ON CONFLICT (user_key, auth_type, app, (address IS NULL), COALESCE(address, ''))
 DO UPDATE SET at = GREATEST(remembered.at, excluded.at)";

/// Forgets all of a user's remembered logins.
const FORGET_SQL: &str = "DELETE FROM remembered WHERE user_key = $1";

/// Forgets a user's remembered logins from before `$2`.
const PRUNE_SQL: &str = "DELETE FROM remembered WHERE user_key = $1 AND at < $2";

const REMEMBERED_SQL: &str =
    "SELECT COALESCE(json_agg(json_build_array(auth_type, app, address, at)), '[]')::text
 FROM remembered WHERE user_key = $1";

/// A user's remembered logins from a JSON array of
/// `[auth_type, app, address, at]` arrays, in the order of
/// [`Store::remembered`](crate::store::Store::remembered).
fn remembered_at(r: &Row, i: usize) -> Result<Vec<Remembered>, StoreError> {
    let rows: Vec<(String, String, Option<String>, i64)> = json_at(r, i)?;
    let mut v: Vec<Remembered> = rows
        .into_iter()
        .map(|(auth_type, app, address, at)| Remembered {
            auth_type,
            app,
            address,
            at,
        })
        .collect();
    let key = |r: &Remembered| {
        (
            std::cmp::Reverse(r.at),
            r.auth_type.clone(),
            r.app.clone(),
            r.address.clone(),
        )
    };
    v.sort_by_cached_key(key);
    Ok(v)
}

pub(super) fn remember(
    c: &mut Conn,
    user: &str,
    r: &Remembered,
    keep_since: UnixTime,
) -> Result<(), StoreError> {
    let key = fold(user);
    // The share lock first, in a statement of its own: the insert's
    // snapshot is then taken after any block or lockout it waited for.
    c.exec(SHARE_USER_SQL, &[&key])?;
    c.exec(
        REMEMBER_SQL,
        &[&key, &r.auth_type, &r.app, &r.address, &r.at],
    )?;
    c.exec(PRUNE_SQL, &[&key, &keep_since])?;
    Ok(())
}

pub(super) fn forget(c: &mut Conn, user: &str) -> Result<usize, StoreError> {
    if !exists(c, user)? {
        return Err(StoreError::NoSuchUser(user.to_owned()));
    }
    let key = fold(user);
    Ok(c.exec(FORGET_SQL, &[&key])? as usize)
}

pub(super) fn remembered(c: &mut Conn, user: &str) -> Result<Vec<Remembered>, StoreError> {
    let key = fold(user);
    let r = c.one(REMEMBERED_SQL, &[&key])?;
    remembered_at(&r, 0)
}
