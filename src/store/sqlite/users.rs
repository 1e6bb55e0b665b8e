//! Users and the groups they are in. Names compare without case; a user's
//! groups, tokens and remembered logins go with the user.

use rusqlite::{Connection, OptionalExtension, params};

use super::{atomic, json_at, q, x};
use crate::mfa::Method;
use crate::store::{
    Invitation, StoreError, UnixTime, User, UserChange, UserUpdate, normalize_groups,
};

/// The columns of [`user_from_row`], from `users u`; the groups as a JSON
/// array.
const USER_COLS: &str =
    "name, email, phone, method, password_hash, created_at, blocked_until, pin_hash, language,
 (SELECT json_group_array(g.name) FROM user_groups g WHERE g.user = u.name),
 source, disabled_at, enroll_until, portal_sessions_since";

fn user_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    let method: String = r.get(3)?;
    Ok(User {
        name: r.get(0)?,
        email: r.get(1)?,
        phone: r.get(2)?,
        method: Method::parse(&method).unwrap_or(Method::Totp),
        password_hash: r.get(4)?,
        created_at: r.get(5)?,
        blocked_until: r.get(6)?,
        pin_hash: r.get(7)?,
        language: r.get(8)?,
        groups: groups_at(r, 9)?,
        source: r.get(10)?,
        disabled_at: r.get(11)?,
        enroll_until: r.get(12)?,
        portal_sessions_since: r.get(13)?,
    })
}

/// A user's groups from a JSON array of their names.
pub(super) fn groups_at(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Vec<String>> {
    json_at(r, i).map(normalize_groups)
}

/// Replaces the groups of `user` (who exists) with `groups`, normalized.
fn set_groups(c: &Connection, user: &str, groups: &[String]) -> Result<(), StoreError> {
    x(c, "DELETE FROM user_groups WHERE user = ?1", [user])?;
    for g in normalize_groups(groups.to_vec()) {
        // The user's name as stored, whatever the case of `user`.
        x(
            c,
            "INSERT INTO user_groups (user, name) SELECT name, ?2 FROM users WHERE name = ?1",
            params![user, g],
        )?;
    }
    Ok(())
}

pub(super) fn add_user(c: &Connection, u: &User) -> Result<(), StoreError> {
    atomic(c, |tx| {
        let r = x(
            tx,
            "INSERT INTO users (name, email, phone, method, password_hash, created_at, pin_hash, language,
                 source, disabled_at, enroll_until)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                u.name,
                u.email,
                u.phone,
                u.method.as_str(),
                u.password_hash,
                u.created_at,
                u.pin_hash,
                u.language,
                u.source,
                u.disabled_at,
                u.enroll_until
            ],
        );
        match r {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                return Err(StoreError::UserExists(u.name.clone()));
            }
            r => r?,
        };
        set_groups(tx, &u.name, &u.groups)
    })
}

/// Updates a user; a new phone number forgets the user's remembered
/// logins (they may have been remembered for a call or SMS to the old one).
pub(super) fn update_user(c: &Connection, u: &User) -> Result<(), StoreError> {
    atomic(c, |tx| {
        x(
            tx,
            "DELETE FROM remembered WHERE user = ?1 AND EXISTS
               (SELECT 1 FROM users WHERE name = ?1 AND phone IS NOT ?2)",
            params![u.name, u.phone],
        )?;
        let n = x(
            tx,
            "UPDATE users SET email = ?2, phone = ?3, method = ?4, password_hash = ?5, pin_hash = ?6,
                 language = ?7, enroll_until = ?8
             WHERE name = ?1",
            params![
                u.name,
                u.email,
                u.phone,
                u.method.as_str(),
                u.password_hash,
                u.pin_hash,
                u.language,
                u.enroll_until
            ],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchUser(u.name.clone()));
        }
        set_groups(tx, &u.name, &u.groups)
    })
}

pub(super) fn remove_user(c: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(x(c, "DELETE FROM users WHERE name = ?1", [name])? > 0)
}

pub(super) fn user(c: &Connection, name: &str) -> Result<Option<User>, StoreError> {
    Ok(q(
        c,
        &format!("SELECT {USER_COLS} FROM users u WHERE name = ?1"),
        [name],
        user_from_row,
    )
    .optional()?)
}

pub(super) fn users(c: &Connection) -> Result<Vec<User>, StoreError> {
    let mut st = c.prepare_cached(&format!("SELECT {USER_COLS} FROM users u ORDER BY name"))?;
    let rows = st.query_map([], user_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A directory sync's changes, all or nothing (see
/// [`Store::apply_directory`](crate::store::Store::apply_directory)).
pub(super) fn apply_directory(c: &Connection, changes: &[UserChange]) -> Result<(), StoreError> {
    atomic(c, |tx| {
        for change in changes {
            match change {
                UserChange::Add(u) => add_user(tx, u)?,
                UserChange::Update(u) => update_synced(tx, u)?,
                UserChange::Disable { name, at } => {
                    x(
                        tx,
                        "UPDATE users SET disabled_at = ?2 WHERE name = ?1 AND disabled_at IS NULL",
                        params![name, at],
                    )?;
                }
                // Only a user still disabled: one the directory listed
                // again meanwhile (another sync) stays.
                UserChange::Remove { name } => {
                    x(
                        tx,
                        "DELETE FROM users WHERE name = ?1 AND disabled_at IS NOT NULL",
                        [name],
                    )?;
                }
            }
        }
        Ok(())
    })
}

/// The owned fields of a synced user that changed; the user is the
/// source's and enabled from now on.
fn update_synced(c: &Connection, u: &UserUpdate) -> Result<(), StoreError> {
    if let Some(phone) = &u.phone {
        x(
            c,
            "DELETE FROM remembered WHERE user = ?1 AND EXISTS
               (SELECT 1 FROM users WHERE name = ?1 AND phone IS NOT ?2)",
            params![u.name, phone],
        )?;
    }
    let n = x(
        c,
        "UPDATE users SET source = ?2, disabled_at = NULL,
             email = CASE WHEN ?3 THEN ?4 ELSE email END,
             phone = CASE WHEN ?5 THEN ?6 ELSE phone END,
             language = CASE WHEN ?7 THEN ?8 ELSE language END
         WHERE name = ?1",
        params![
            u.name,
            u.source,
            u.email.is_some(),
            u.email.clone().flatten(),
            u.phone.is_some(),
            u.phone.clone().flatten(),
            u.language.is_some(),
            u.language.clone().flatten(),
        ],
    )?;
    if n > 0 {
        if let Some(groups) = &u.groups {
            set_groups(c, &u.name, groups)?;
        }
    }
    Ok(())
}

pub(super) fn add_invitation(c: &Connection, inv: &Invitation) -> Result<(), StoreError> {
    atomic(c, |tx| {
        x(tx, "DELETE FROM invitations WHERE user = ?1", [&inv.user])?;
        let n = x(
            tx,
            "INSERT INTO invitations (hash, user, created_at, expires_at, used_at)
             SELECT ?1, name, ?3, ?4, ?5 FROM users WHERE name = ?2",
            params![
                inv.hash,
                inv.user,
                inv.created_at,
                inv.expires_at,
                inv.used_at
            ],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchUser(inv.user.clone()));
        }
        Ok(())
    })
}

pub(super) fn invitation(
    c: &Connection,
    hash: &[u8],
    now: UnixTime,
) -> Result<Option<String>, StoreError> {
    Ok(q(
        c,
        "SELECT user FROM invitations WHERE hash = ?1 AND used_at IS NULL AND expires_at > ?2",
        params![hash, now],
        |r| r.get(0),
    )
    .optional()?)
}

pub(super) fn take_invitation(
    c: &Connection,
    hash: &[u8],
    now: UnixTime,
) -> Result<Option<String>, StoreError> {
    Ok(q(
        c,
        "UPDATE invitations SET used_at = ?2
         WHERE hash = ?1 AND used_at IS NULL AND expires_at > ?2 RETURNING user",
        params![hash, now],
        |r| r.get(0),
    )
    .optional()?)
}

/// An invitation from the columns hash, user, created_at, expires_at,
/// used_at.
fn invitation_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Invitation> {
    Ok(Invitation {
        hash: r.get(0)?,
        user: r.get(1)?,
        created_at: r.get(2)?,
        expires_at: r.get(3)?,
        used_at: r.get(4)?,
    })
}

pub(super) fn invitation_of(c: &Connection, user: &str) -> Result<Option<Invitation>, StoreError> {
    Ok(q(
        c,
        "SELECT hash, user, created_at, expires_at, used_at FROM invitations WHERE user = ?1",
        [user],
        invitation_row,
    )
    .optional()?)
}

pub(super) fn withdraw_invitation(c: &Connection, hash: &[u8]) -> Result<bool, StoreError> {
    let n = x(
        c,
        "DELETE FROM invitations WHERE hash = ?1 AND used_at IS NULL",
        [hash],
    )?;
    Ok(n == 1)
}

pub(super) fn end_portal_sessions(
    c: &Connection,
    user: &str,
    at: UnixTime,
) -> Result<bool, StoreError> {
    let n = x(
        c,
        "UPDATE users SET portal_sessions_since = max(coalesce(portal_sessions_since, ?2), ?2)
         WHERE name = ?1",
        params![user, at],
    )?;
    Ok(n == 1)
}

/// Every invitation, for a dump.
pub(super) fn invitations(c: &Connection) -> Result<Vec<Invitation>, StoreError> {
    let mut st = c.prepare_cached(
        "SELECT hash, user, created_at, expires_at, used_at FROM invitations ORDER BY user, hash",
    )?;
    let rows = st.query_map([], invitation_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}
