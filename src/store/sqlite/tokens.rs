//! OATH tokens: their sealed seeds, and the claim of a time step or counter
//! value that makes each code good once.

use rusqlite::{Connection, OptionalExtension, params};

use super::{atomic, q, x};
use crate::mfa::otp::{Algorithm, TotpParams};
use crate::store::{SealedSeed, StoreError, Token, TokenKind};

pub(super) const TOKEN_COLS: &str =
    "id, user, kind, serial, algorithm, digits, step, counter, last_step, active, model";
/// How many columns [`TOKEN_COLS`] names.
pub(super) const TOKEN_COLS_N: usize = 11;

/// A user's tokens, by id. The collation on `?1` matters here too (see
/// [`LOGIN_STATE_SQL`](super::login::LOGIN_STATE_SQL)): without it, the
/// `ORDER BY` got the statement compiled again for every user bound to it.
pub(super) const TOKENS_SQL: &str =
    "SELECT id, user, kind, serial, algorithm, digits, step, counter, last_step, active, model
 FROM tokens WHERE user = ?1 COLLATE NOCASE ORDER BY id";

/// Claims a step of a token: changes one row, or none if the step was used,
/// if the token was removed since the login read it, or if it is pending.
pub(super) const CLAIM_SQL: &str =
    "UPDATE tokens SET last_step = ?2, counter = MAX(counter, ?2 + 1)
 WHERE id = ?1 AND active AND (last_step IS NULL OR last_step < ?2)";

fn token_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Token> {
    token_at(r, 0)
}

/// A token from the [`TOKEN_COLS`] that start at column `at`.
pub(super) fn token_at(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Token> {
    let kind: String = r.get(at + 2)?;
    let alg: String = r.get(at + 4)?;
    let last: Option<i64> = r.get(at + 8)?;
    Ok(Token {
        id: r.get(at)?,
        user: r.get(at + 1)?,
        kind: if kind == "hotp" {
            TokenKind::Hotp
        } else {
            TokenKind::Totp
        },
        serial: r.get(at + 3)?,
        params: TotpParams {
            algorithm: Algorithm::parse(&alg).unwrap_or(Algorithm::Sha1),
            digits: r.get(at + 5)?,
            step: r.get::<_, i64>(at + 6)? as u64,
        },
        counter: r.get::<_, i64>(at + 7)? as u64,
        last_step: last.map(|s| s as u64),
        active: r.get(at + 9)?,
        model: r.get(at + 10)?,
    })
}

pub(super) use crate::store::seal::{open_token_seed as open_seed, seal_token_seed as seal};

/// Adds `t` with its seed already [`seal`]ed; the token's id.
pub(super) fn add_token(c: &Connection, t: &Token, sealed: &[u8]) -> Result<i64, StoreError> {
    let exists: bool = q(
        c,
        "SELECT EXISTS (SELECT 1 FROM users WHERE name = ?1)",
        [&t.user],
        |r| r.get(0),
    )?;
    if !exists {
        return Err(StoreError::NoSuchUser(t.user.clone()));
    }
    let r = x(c,
        "INSERT INTO tokens (user, kind, serial, seed, algorithm, digits, step, counter, last_step, active, model)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            t.user,
            if t.kind == TokenKind::Hotp { "hotp" } else { "totp" },
            t.serial,
            sealed,
            t.params.algorithm.as_str(),
            t.params.digits,
            t.params.step as i64,
            t.counter as i64,
            t.last_step.map(|s| s as i64),
            t.active,
            t.model
        ],
    );
    match r {
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(StoreError::SerialTaken(
                t.serial.clone().unwrap_or_default(),
            ))
        }
        r => r.map(|_| c.last_insert_rowid()).map_err(Into::into),
    }
}

pub(super) fn tokens(c: &Connection, user: &str) -> Result<Vec<Token>, StoreError> {
    let mut st = c.prepare_cached(TOKENS_SQL)?;
    let tokens = st.query_map([user], token_from_row)?;
    Ok(tokens.collect::<Result<_, _>>()?)
}

/// The sealed seed of the token with id `id`.
pub(super) fn sealed_seed(c: &Connection, id: i64) -> Result<SealedSeed, StoreError> {
    let sealed = q(c, "SELECT seed FROM tokens WHERE id = ?1", [id], |r| {
        r.get(0)
    })?;
    Ok(SealedSeed(sealed))
}

pub(super) fn token_by_serial(c: &Connection, serial: &str) -> Result<Option<Token>, StoreError> {
    Ok(q(
        c,
        &format!("SELECT {TOKEN_COLS} FROM tokens WHERE serial = ?1"),
        [serial],
        token_from_row,
    )
    .optional()?)
}

/// Removes a token, and with it its user's remembered logins: they were
/// remembered for a second factor the token may have given.
pub(super) fn remove_token(c: &Connection, serial: &str) -> Result<bool, StoreError> {
    atomic(c, |tx| {
        x(
            tx,
            "DELETE FROM remembered WHERE user = (SELECT user FROM tokens WHERE serial = ?1)",
            [serial],
        )?;
        Ok(x(tx, "DELETE FROM tokens WHERE serial = ?1", [serial])? > 0)
    })
}

/// Removes token `id` if it is `user`'s, and forgets the user's
/// remembered logins.
pub(super) fn remove_user_token(c: &Connection, user: &str, id: i64) -> Result<bool, StoreError> {
    atomic(c, |tx| {
        let n = x(
            tx,
            "DELETE FROM tokens WHERE id = ?2 AND user = ?1 COLLATE NOCASE",
            params![user, id],
        )?;
        if n > 0 {
            x(tx, "DELETE FROM remembered WHERE user = ?1", [user])?;
        }
        Ok(n > 0)
    })
}

pub(super) fn activate_token(c: &Connection, id: i64) -> Result<(), StoreError> {
    x(c, "UPDATE tokens SET active = 1 WHERE id = ?1", [id])?;
    Ok(())
}

pub(super) fn remove_pending_tokens(
    c: &Connection,
    user: &str,
    kind: TokenKind,
) -> Result<(), StoreError> {
    let k = if kind == TokenKind::Hotp {
        "hotp"
    } else {
        "totp"
    };
    x(
        c,
        "DELETE FROM tokens WHERE user = ?1 AND kind = ?2 AND active = 0 AND serial IS NULL",
        params![user, k],
    )?;
    Ok(())
}

pub(super) fn claim_step(c: &Connection, id: i64, step: u64) -> Result<bool, StoreError> {
    let s = step as i64;
    let n = x(c, CLAIM_SQL, params![id, s])?;
    Ok(n == 1)
}
