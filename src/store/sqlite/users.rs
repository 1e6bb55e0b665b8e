//! Users and the groups they are in. Names compare without case; a user's
//! groups, tokens and remembered logins go with the user.

use rusqlite::{Connection, OptionalExtension, params};

use super::{atomic, json_at, q, x};
use crate::mfa::Method;
use crate::store::{StoreError, User, normalize_groups};

/// The columns of [`user_from_row`], from `users u`; the groups as a JSON
/// array.
const USER_COLS: &str =
    "name, email, phone, method, password_hash, created_at, blocked_until, pin_hash, language,
 (SELECT json_group_array(g.name) FROM user_groups g WHERE g.user = u.name)";

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
            "INSERT INTO users (name, email, phone, method, password_hash, created_at, pin_hash, language) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                u.name,
                u.email,
                u.phone,
                u.method.as_str(),
                u.password_hash,
                u.created_at,
                u.pin_hash,
                u.language
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
            "UPDATE users SET email = ?2, phone = ?3, method = ?4, password_hash = ?5, pin_hash = ?6, language = ?7 WHERE name = ?1",
            params![
                u.name,
                u.email,
                u.phone,
                u.method.as_str(),
                u.password_hash,
                u.pin_hash,
                u.language
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
