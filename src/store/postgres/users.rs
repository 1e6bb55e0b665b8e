//! Users and the groups they are in. Names compare without case (by their
//! folded key); a user's groups, tokens and remembered logins go with the
//! user.

use postgres::Row;

use super::pool::{Conn, is_unique_violation};
use crate::mfa::Method;
use crate::store::{
    Invitation, StoreError, UnixTime, User, UserChange, UserUpdate, fold, normalize_groups,
};

/// The columns of [`user_from_row`], from `users u`; the groups as a JSON
/// array.
macro_rules! user_cols {
    () => {
        "u.name, u.email, u.phone, u.method, u.password_hash, u.created_at, u.blocked_until,
         u.pin_hash, u.language,
         COALESCE((SELECT json_agg(g.name) FROM user_groups g WHERE g.user_key = u.name_key),
                  '[]')::text,
         u.source, u.disabled_at, u.enroll_until, u.portal_sessions_since"
    };
}

const USER_SQL: &str = concat!(
    "SELECT ",
    user_cols!(),
    " FROM users u WHERE u.name_key = $1"
);
/// Users by name without case, as SQLite's NOCASE orders them for ASCII
/// names (byte order of the folded name).
const USERS_SQL: &str = concat!(
    "SELECT ",
    user_cols!(),
    " FROM users u ORDER BY u.name_key COLLATE \"C\""
);

fn user_from_row(r: &Row) -> Result<User, StoreError> {
    let method: String = r.try_get(3)?;
    Ok(User {
        name: r.try_get(0)?,
        email: r.try_get(1)?,
        phone: r.try_get(2)?,
        method: Method::parse(&method).unwrap_or(Method::Totp),
        password_hash: r.try_get(4)?,
        created_at: r.try_get(5)?,
        blocked_until: r.try_get(6)?,
        pin_hash: r.try_get(7)?,
        language: r.try_get(8)?,
        groups: groups_at(r, 9)?,
        source: r.try_get(10)?,
        disabled_at: r.try_get(11)?,
        enroll_until: r.try_get(12)?,
        portal_sessions_since: r.try_get(13)?,
    })
}

/// A JSON document in a text column.
pub(super) fn json_at<T: serde::de::DeserializeOwned>(r: &Row, i: usize) -> Result<T, StoreError> {
    let text: String = r.try_get(i)?;
    serde_json::from_str(&text).map_err(|e| StoreError::database(e, crate::store::Retry::No))
}

/// A user's groups from a JSON array of their names.
pub(super) fn groups_at(r: &Row, i: usize) -> Result<Vec<String>, StoreError> {
    json_at(r, i).map(normalize_groups)
}

/// Whether a user by this name exists.
pub(super) fn exists(c: &mut Conn, user: &str) -> Result<bool, StoreError> {
    let key = fold(user);
    let r = c.one(
        "SELECT EXISTS (SELECT 1 FROM users WHERE name_key = $1)",
        &[&key],
    )?;
    Ok(r.try_get(0)?)
}

/// Replaces the groups of the user keyed `key` (who exists) with
/// `groups`, normalized.
fn set_groups(c: &mut Conn, key: &str, groups: &[String]) -> Result<(), StoreError> {
    c.exec("DELETE FROM user_groups WHERE user_key = $1", &[&key])?;
    let names = normalize_groups(groups.to_vec());
    if names.is_empty() {
        return Ok(());
    }
    let keys: Vec<String> = names.iter().map(|g| fold(g)).collect();
    c.exec(
        "INSERT INTO user_groups (user_key, name_key, name)
         SELECT $1, k, n FROM unnest($2::text[], $3::text[]) AS g(k, n)",
        &[&key, &keys, &names],
    )?;
    Ok(())
}

pub(super) fn add_user(c: &mut Conn, u: &User) -> Result<(), StoreError> {
    let key = fold(&u.name);
    let r = c.exec(
        "INSERT INTO users (name_key, name, email, phone, method, password_hash, created_at, pin_hash, language,
             source, disabled_at, enroll_until)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        &[
            &key,
            &u.name,
            &u.email,
            &u.phone,
            &u.method.as_str(),
            &u.password_hash,
            &u.created_at,
            &u.pin_hash,
            &u.language,
            &u.source,
            &u.disabled_at,
            &u.enroll_until,
        ],
    );
    match r {
        Err(e) if is_unique_violation(&e) => return Err(StoreError::UserExists(u.name.clone())),
        r => r?,
    };
    set_groups(c, &key, &u.groups)
}

/// Updates a user; a new phone number forgets the user's remembered
/// logins (they may have been remembered for a call or SMS to the old one).
pub(super) fn update_user(c: &mut Conn, u: &User) -> Result<(), StoreError> {
    let key = fold(&u.name);
    c.exec(
        "DELETE FROM remembered WHERE user_key = $1 AND EXISTS
           (SELECT 1 FROM users WHERE name_key = $1 AND phone IS DISTINCT FROM $2)",
        &[&key, &u.phone],
    )?;
    let n = c.exec(
        "UPDATE users SET email = $2, phone = $3, method = $4, password_hash = $5, pin_hash = $6,
             language = $7, enroll_until = $8
         WHERE name_key = $1",
        &[
            &key,
            &u.email,
            &u.phone,
            &u.method.as_str(),
            &u.password_hash,
            &u.pin_hash,
            &u.language,
            &u.enroll_until,
        ],
    )?;
    if n == 0 {
        return Err(StoreError::NoSuchUser(u.name.clone()));
    }
    set_groups(c, &key, &u.groups)
}

pub(super) fn remove_user(c: &mut Conn, name: &str) -> Result<bool, StoreError> {
    let key = fold(name);
    Ok(c.exec("DELETE FROM users WHERE name_key = $1", &[&key])? > 0)
}

pub(super) fn user(c: &mut Conn, name: &str) -> Result<Option<User>, StoreError> {
    let key = fold(name);
    c.opt(USER_SQL, &[&key])?
        .map(|r| user_from_row(&r))
        .transpose()
}

pub(super) fn users(c: &mut Conn) -> Result<Vec<User>, StoreError> {
    c.rows(USERS_SQL, &[])?.iter().map(user_from_row).collect()
}

/// A hash column of the user (`sql` selects it by key).
pub(super) fn hash(
    c: &mut Conn,
    sql: &'static str,
    user: &str,
) -> Result<Option<String>, StoreError> {
    let key = fold(user);
    match c.opt(sql, &[&key])? {
        Some(r) => Ok(r.try_get(0)?),
        None => Ok(None),
    }
}

/// A directory sync's changes (see
/// [`Store::apply_directory`](crate::store::Store::apply_directory)); the
/// caller's transaction makes them all or nothing.
pub(super) fn apply_directory(c: &mut Conn, changes: &[UserChange]) -> Result<(), StoreError> {
    for change in changes {
        match change {
            UserChange::Add(u) => add_user(c, u)?,
            UserChange::Update(u) => update_synced(c, u)?,
            UserChange::Disable { name, at } => {
                c.exec(
                    "UPDATE users SET disabled_at = $2 WHERE name_key = $1 AND disabled_at IS NULL",
                    &[&fold(name), at],
                )?;
            }
            // Only a user still disabled: one the directory listed again
            // meanwhile (another sync) stays.
            UserChange::Remove { name } => {
                c.exec(
                    "DELETE FROM users WHERE name_key = $1 AND disabled_at IS NOT NULL",
                    &[&fold(name)],
                )?;
            }
        }
    }
    Ok(())
}

/// The owned fields of a synced user that changed; the user is the
/// source's and enabled from now on.
fn update_synced(c: &mut Conn, u: &UserUpdate) -> Result<(), StoreError> {
    let key = fold(&u.name);
    if let Some(phone) = &u.phone {
        c.exec(
            "DELETE FROM remembered WHERE user_key = $1 AND EXISTS
               (SELECT 1 FROM users WHERE name_key = $1 AND phone IS DISTINCT FROM $2)",
            &[&key, phone],
        )?;
    }
    let n = c.exec(
        "UPDATE users SET source = $2, disabled_at = NULL,
             email = CASE WHEN $3 THEN $4 ELSE email END,
             phone = CASE WHEN $5 THEN $6 ELSE phone END,
             language = CASE WHEN $7 THEN $8 ELSE language END
         WHERE name_key = $1",
        &[
            &key,
            &u.source,
            &u.email.is_some(),
            &u.email.clone().flatten(),
            &u.phone.is_some(),
            &u.phone.clone().flatten(),
            &u.language.is_some(),
            &u.language.clone().flatten(),
        ],
    )?;
    if n > 0 {
        if let Some(groups) = &u.groups {
            set_groups(c, &key, groups)?;
        }
    }
    Ok(())
}

pub(super) fn add_invitation(c: &mut Conn, inv: &Invitation) -> Result<(), StoreError> {
    let key = fold(&inv.user);
    c.exec("DELETE FROM invitations WHERE user_key = $1", &[&key])?;
    let n = c.exec(
        "INSERT INTO invitations (hash, user_key, created_at, expires_at, used_at)
         SELECT $1, name_key, $3, $4, $5 FROM users WHERE name_key = $2",
        &[
            &inv.hash,
            &key,
            &inv.created_at,
            &inv.expires_at,
            &inv.used_at,
        ],
    )?;
    if n == 0 {
        return Err(StoreError::NoSuchUser(inv.user.clone()));
    }
    Ok(())
}

pub(super) fn invitation(
    c: &mut Conn,
    hash: &[u8],
    now: UnixTime,
) -> Result<Option<String>, StoreError> {
    c.opt(
        "SELECT u.name FROM invitations i JOIN users u ON u.name_key = i.user_key
         WHERE i.hash = $1 AND i.used_at IS NULL AND i.expires_at > $2",
        &[&hash, &now],
    )?
    .map(|r| Ok(r.try_get(0)?))
    .transpose()
}

pub(super) fn invitation_of(c: &mut Conn, user: &str) -> Result<Option<Invitation>, StoreError> {
    c.opt(
        "SELECT i.hash, u.name, i.created_at, i.expires_at, i.used_at
         FROM invitations i JOIN users u ON u.name_key = i.user_key WHERE i.user_key = $1",
        &[&fold(user)],
    )?
    .map(|r| {
        Ok(Invitation {
            hash: r.try_get(0)?,
            user: r.try_get(1)?,
            created_at: r.try_get(2)?,
            expires_at: r.try_get(3)?,
            used_at: r.try_get(4)?,
        })
    })
    .transpose()
}

pub(super) fn end_portal_sessions(
    c: &mut Conn,
    user: &str,
    at: UnixTime,
) -> Result<bool, StoreError> {
    let n = c.exec(
        "UPDATE users SET portal_sessions_since = GREATEST(portal_sessions_since, $2)
         WHERE name_key = $1",
        &[&fold(user), &at],
    )?;
    Ok(n == 1)
}

pub(super) fn take_invitation(
    c: &mut Conn,
    hash: &[u8],
    now: UnixTime,
) -> Result<Option<String>, StoreError> {
    c.opt(
        "UPDATE invitations i SET used_at = $2 FROM users u
         WHERE i.hash = $1 AND i.used_at IS NULL AND i.expires_at > $2 AND u.name_key = i.user_key
         RETURNING u.name",
        &[&hash, &now],
    )?
    .map(|r| Ok(r.try_get(0)?))
    .transpose()
}
