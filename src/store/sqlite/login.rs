//! What a login reads and changes about its user, tokens apart: the login
//! state in one statement, denials and the lockout they lead to, blocks by
//! an administrator, one-time bypasses and remembered logins. A block, or
//! the denial that locks, forgets the user's remembered logins.

use rusqlite::{Connection, OptionalExtension, params};

use super::tokens::{TOKEN_COLS_N, token_at};
use super::users::groups_at;
use super::{atomic, json_at, q, x};
use crate::mfa::{LockoutPolicy, Method, Remembered};
use crate::store::{SealedSeed, StoreError, UnixTime, UserFacts};

/// What a login reads about its user, in one statement (see
/// [`LoginTx::facts`](crate::store::LoginTx::facts)).
///
/// Mind joins here: in a join, SQLite carries `u.name = ?1` over to the
/// other table's terms, and unless `?1` is given a collation
/// (`?1 COLLATE NOCASE`, which changes nothing else), it then compiles the
/// statement again each time `?1` is bound, which the statement cache does
/// for every login.
pub(super) const LOGIN_STATE_SQL: &str = "SELECT COALESCE(u.blocked_until > ?2, 0),
         EXISTS (SELECT 1 FROM bypasses b
                 WHERE b.user = u.name AND b.used_at IS NULL AND b.until > ?2),
         COALESCE((SELECT l.locked_until > ?2 FROM lockouts l WHERE l.user = u.name), 0),
         u.method, u.phone, u.pin_hash IS NOT NULL, u.language,
         (SELECT json_group_array(g.name) FROM user_groups g WHERE g.user = u.name),
         (SELECT json_group_array(json_array(m.auth_type, m.app, m.address, m.at))
            FROM remembered m WHERE m.user = u.name),
         EXISTS (SELECT 1 FROM verifications v WHERE v.user = u.name AND v.expires_at > ?2),
         (SELECT json_group_array(g.client) FROM grace g WHERE g.user = u.name AND g.until > ?2),
         COALESCE((SELECT l.denials > 0 FROM lockouts l WHERE l.user = u.name), 0),
         CASE WHEN u.disabled_at IS NOT NULL THEN COALESCE(u.source, '') END,
         t.id, t.user, t.kind, t.serial, t.algorithm, t.digits, t.step, t.counter, t.last_step, t.active, t.model, t.seed
  FROM users u LEFT JOIN tokens t ON t.user = u.name AND t.active
  WHERE u.name = ?1 COLLATE NOCASE ORDER BY t.id";
/// Where the token columns start in [`LOGIN_STATE_SQL`].
pub(super) const LOGIN_STATE_TOKEN_AT: usize = 13;

pub(super) fn facts(
    c: &Connection,
    user: &str,
    now: UnixTime,
) -> Result<Option<UserFacts>, StoreError> {
    // One statement instead of six: this runs for every login. A row
    // per active token, or one with no token.
    let mut st = c.prepare_cached(LOGIN_STATE_SQL)?;
    let mut rows = st.query(params![user, now])?;
    let mut found: Option<(UserFacts, Vec<_>)> = None;
    while let Some(r) = rows.next()? {
        let (_, tokens) = match &mut found {
            Some(f) => f,
            None => found.insert((
                UserFacts {
                    blocked: r.get(0)?,
                    bypass_waiting: r.get(1)?,
                    locked: r.get(2)?,
                    tokens: std::sync::Arc::from([]),
                    method: Method::parse(&r.get::<_, String>(3)?).unwrap_or(Method::Totp),
                    phone: r.get(4)?,
                    pin: r.get(5)?,
                    language: r.get(6)?,
                    groups: groups_at(r, 7)?,
                    remembered: remembered_at(r, 8)?,
                    busy: r.get(9)?,
                    graced: json_at(r, 10)?,
                    denied: r.get(11)?,
                    disabled: r.get(12)?,
                },
                Vec::new(),
            )),
        };
        if r.get::<_, Option<i64>>(LOGIN_STATE_TOKEN_AT)?.is_some() {
            let sealed = r.get(LOGIN_STATE_TOKEN_AT + TOKEN_COLS_N)?;
            tokens.push((token_at(r, LOGIN_STATE_TOKEN_AT)?, SealedSeed(sealed)));
        }
    }
    Ok(found.map(|(facts, tokens)| UserFacts {
        tokens: tokens.into(),
        ..facts
    }))
}

/// A time column for `user` (`sql` selects it), if set and after `now`.
fn until_in_future(
    c: &Connection,
    sql: &str,
    user: &str,
    now: UnixTime,
) -> Result<Option<UnixTime>, StoreError> {
    let until: Option<Option<i64>> = q(c, sql, [user], |r| r.get(0)).optional()?;
    Ok(until.flatten().filter(|&u| u > now))
}

// Denials, and the lockout they lead to.

pub(super) fn record_denial(
    c: &Connection,
    user: &str,
    now: UnixTime,
    p: &LockoutPolicy,
) -> Result<Option<UnixTime>, StoreError> {
    atomic(c, |tx| {
        let row: Option<(i64, i64)> = q(
            tx,
            "SELECT denials, first_denial FROM lockouts WHERE user = ?1",
            [user],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
        let (denials, first) = match row {
            Some((d, f)) if now < f + p.reset_after => (d + 1, f),
            _ => (1, now),
        };
        let locked = (denials >= i64::from(p.denials)).then_some(now + p.unblock_after);
        x(tx,
        "INSERT INTO lockouts (user, denials, first_denial, locked_until) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(user) DO UPDATE SET denials = ?2, first_denial = ?3,
             locked_until = COALESCE(?4, locked_until)",
        params![user, if locked.is_some() { 0 } else { denials }, first, locked],
    )?;
        if locked.is_some() {
            x(tx, FORGET_SQL, [user])?;
        }
        Ok(locked)
    })
}

pub(super) fn clear_denials(c: &Connection, user: &str) -> Result<(), StoreError> {
    // Most users have nothing to clear: read first, so a login does not
    // take the write lock for nothing.
    let any: bool = q(
        c,
        "SELECT EXISTS (SELECT 1 FROM lockouts WHERE user = ?1 AND denials > 0)",
        [user],
        |r| r.get(0),
    )?;
    if any {
        x(c, "UPDATE lockouts SET denials = 0 WHERE user = ?1", [user])?;
    }
    Ok(())
}

pub(super) fn locked_until(
    c: &Connection,
    user: &str,
    now: UnixTime,
) -> Result<Option<UnixTime>, StoreError> {
    until_in_future(
        c,
        "SELECT locked_until FROM lockouts WHERE user = ?1",
        user,
        now,
    )
}

// Blocks by an administrator.

pub(super) fn block(
    c: &Connection,
    user: &str,
    reason: &str,
    now: UnixTime,
    until: UnixTime,
) -> Result<(), StoreError> {
    atomic(c, |tx| {
        if x(
            tx,
            "UPDATE users SET blocked_until = ?2 WHERE name = ?1",
            params![user, until],
        )? == 0
        {
            return Err(StoreError::NoSuchUser(user.to_owned()));
        }
        x(
            tx,
            "INSERT INTO block_history (user, action, reason, at, until) VALUES (?1, 'block', ?2, ?3, ?4)",
            params![user, reason, now, until],
        )?;
        x(tx, FORGET_SQL, [user])?;
        Ok(())
    })
}

pub(super) fn unblock(
    c: &Connection,
    user: &str,
    reason: &str,
    now: UnixTime,
) -> Result<(), StoreError> {
    atomic(c, |tx| {
        if x(
            tx,
            "UPDATE users SET blocked_until = NULL WHERE name = ?1",
            [user],
        )? == 0
        {
            return Err(StoreError::NoSuchUser(user.to_owned()));
        }
        x(
            tx,
            "UPDATE lockouts SET locked_until = NULL, denials = 0 WHERE user = ?1",
            [user],
        )?;
        x(
            tx,
            "INSERT INTO block_history (user, action, reason, at) VALUES (?1, 'unblock', ?2, ?3)",
            params![user, reason, now],
        )?;
        Ok(())
    })
}

pub(super) fn blocked_until(
    c: &Connection,
    user: &str,
    now: UnixTime,
) -> Result<Option<UnixTime>, StoreError> {
    until_in_future(
        c,
        "SELECT blocked_until FROM users WHERE name = ?1",
        user,
        now,
    )
}

// One-time bypasses.

pub(super) fn add_bypass(
    c: &Connection,
    user: &str,
    reason: &str,
    now: UnixTime,
    until: UnixTime,
) -> Result<(), StoreError> {
    let exists: bool = q(
        c,
        "SELECT EXISTS (SELECT 1 FROM users WHERE name = ?1)",
        [user],
        |r| r.get(0),
    )?;
    if !exists {
        return Err(StoreError::NoSuchUser(user.to_owned()));
    }
    x(
        c,
        "INSERT INTO bypasses (user, reason, created_at, until) VALUES (?1, ?2, ?3, ?4)",
        params![user, reason, now, until],
    )?;
    Ok(())
}

pub(super) fn take_bypass(c: &Connection, user: &str, now: UnixTime) -> Result<bool, StoreError> {
    // Read first (most logins have no bypass); the UPDATE below is what
    // decides, atomically.
    let any: bool = q(
        c,
        "SELECT EXISTS (SELECT 1 FROM bypasses WHERE user = ?1 AND used_at IS NULL AND until > ?2)",
        params![user, now],
        |r| r.get(0),
    )?;
    if !any {
        return Ok(false);
    }
    let n = x(c,
        "UPDATE bypasses SET used_at = ?2 WHERE id = (
             SELECT id FROM bypasses WHERE user = ?1 AND used_at IS NULL AND until > ?2 ORDER BY id LIMIT 1)",
        params![user, now],
    )?;
    Ok(n == 1)
}

// Remembered logins.

/// The user's remembered logins, as [`remembered_at`] reads them.
const REMEMBERED_SQL: &str = "SELECT json_group_array(json_array(auth_type, app, address, at)) FROM remembered WHERE user = ?1";

/// Remembers a login (see [`Store::remember`](crate::store::Store::remember)): of a user who exists and
/// was neither blocked nor locked after the login's time.
pub(super) const REMEMBER_SQL: &str =
    "INSERT INTO remembered (user, auth_type, app, address, at)
 SELECT u.name, ?2, ?3, ?4, ?5 FROM users u
 WHERE u.name = ?1 COLLATE NOCASE AND NOT COALESCE(u.blocked_until > ?5, 0)
   AND NOT COALESCE((SELECT l.locked_until > ?5 FROM lockouts l WHERE l.user = u.name), 0)
 ON CONFLICT (user, auth_type, app, COALESCE(address, x'')) DO UPDATE SET at = MAX(at, excluded.at)";

/// Forgets all of a user's remembered logins.
const FORGET_SQL: &str = "DELETE FROM remembered WHERE user = ?1";

/// Forgets a user's remembered logins from before `?2`.
pub(super) const PRUNE_SQL: &str = "DELETE FROM remembered WHERE user = ?1 AND at < ?2";

/// A user's remembered logins from a JSON array of
/// `[auth_type, app, address, at]` arrays, in the order of
/// [`Store::remembered`](crate::store::Store::remembered).
fn remembered_at(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Vec<Remembered>> {
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
    c: &Connection,
    user: &str,
    r: &Remembered,
    keep_since: UnixTime,
) -> Result<(), StoreError> {
    atomic(c, |tx| {
        x(
            tx,
            REMEMBER_SQL,
            params![user, r.auth_type, r.app, r.address, r.at],
        )?;
        x(tx, PRUNE_SQL, params![user, keep_since])?;
        Ok(())
    })
}

pub(super) fn forget(c: &Connection, user: &str) -> Result<usize, StoreError> {
    atomic(c, |tx| {
        let exists: bool = q(
            tx,
            "SELECT EXISTS (SELECT 1 FROM users WHERE name = ?1)",
            [user],
            |r| r.get(0),
        )?;
        if !exists {
            return Err(StoreError::NoSuchUser(user.to_owned()));
        }
        Ok(x(tx, FORGET_SQL, [user])?)
    })
}

pub(super) fn remembered(c: &Connection, user: &str) -> Result<Vec<Remembered>, StoreError> {
    Ok(q(c, REMEMBERED_SQL, [user], |r| remembered_at(r, 0))?)
}
