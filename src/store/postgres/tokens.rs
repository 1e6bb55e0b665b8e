//! OATH tokens: their sealed seeds, and the claim of a time step or counter
//! value that makes each code good once.

use postgres::Row;

use super::pool::{Conn, is_unique_violation};
use crate::mfa::otp::{Algorithm, TotpParams};
use crate::store::{Retry, SealedSeed, StoreError, Token, TokenKind, fold};

/// The columns [`token_at`] reads, from `tokens t`.
macro_rules! token_cols {
    () => {
        "t.id, t.user_name, t.kind, t.serial, t.algorithm, t.digits, t.step, t.counter,
         t.last_step, t.active, t.model"
    };
}
pub(super) use token_cols;

/// How many columns [`token_cols`] names.
pub(super) const TOKEN_COLS_N: usize = 11;

const TOKENS_SQL: &str = concat!(
    "SELECT ",
    token_cols!(),
    " FROM tokens t WHERE t.user_key = $1 ORDER BY t.id"
);

const BY_SERIAL_SQL: &str = concat!(
    "SELECT ",
    token_cols!(),
    " FROM tokens t WHERE t.serial = $1"
);

/// Claims a step of each token (`$1` the ids, `$2` the steps): changes a
/// row per claim won, and none for a step already used, a token removed
/// since the login read it, or a pending one; the ids of those won. A
/// concurrent claim of the same row waits for this one, then finds the
/// step used (PostgreSQL checks the condition again on the row it waited
/// for).
pub(super) const CLAIM_SQL: &str = "UPDATE tokens t
 SET last_step = q.step, counter = GREATEST(t.counter, q.step + 1)
 FROM unnest($1::bigint[], $2::bigint[]) AS q(id, step)
 WHERE t.id = q.id AND t.active AND (t.last_step IS NULL OR t.last_step < q.step)
 RETURNING t.id";

fn kind_str(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::Hotp => "hotp",
        TokenKind::Totp => "totp",
    }
}

/// A token from the [`token_cols`] that start at column `at`.
pub(super) fn token_at(r: &Row, at: usize) -> Result<Token, StoreError> {
    let kind: String = r.try_get(at + 2)?;
    let alg: String = r.try_get(at + 4)?;
    let digits: i32 = r.try_get(at + 5)?;
    let last: Option<i64> = r.try_get(at + 8)?;
    Ok(Token {
        id: r.try_get(at)?,
        user: r.try_get(at + 1)?,
        kind: if kind == "hotp" {
            TokenKind::Hotp
        } else {
            TokenKind::Totp
        },
        serial: r.try_get(at + 3)?,
        params: TotpParams {
            algorithm: Algorithm::parse(&alg).unwrap_or(Algorithm::Sha1),
            digits: u32::try_from(digits).map_err(|e| StoreError::database(e, Retry::No))?,
            step: r.try_get::<_, i64>(at + 6)? as u64,
        },
        counter: r.try_get::<_, i64>(at + 7)? as u64,
        last_step: last.map(|s| s as u64),
        active: r.try_get(at + 9)?,
        model: r.try_get(at + 10)?,
    })
}

/// Adds `t` with its seed already sealed; the token's id.
pub(super) fn add_token(c: &mut Conn, t: &Token, sealed: &[u8]) -> Result<i64, StoreError> {
    if !super::users::exists(c, &t.user)? {
        return Err(StoreError::NoSuchUser(t.user.clone()));
    }
    let key = fold(&t.user);
    let digits = i32::try_from(t.params.digits).map_err(|e| StoreError::database(e, Retry::No))?;
    let r = c.one(
        "INSERT INTO tokens (user_key, user_name, kind, serial, seed, algorithm, digits, step,
             counter, last_step, active, model)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
        &[
            &key,
            &t.user,
            &kind_str(t.kind),
            &t.serial,
            &sealed,
            &t.params.algorithm.as_str(),
            &digits,
            &(t.params.step as i64),
            &(t.counter as i64),
            &t.last_step.map(|s| s as i64),
            &t.active,
            &t.model,
        ],
    );
    match r {
        Err(e) if is_unique_violation(&e) => Err(StoreError::SerialTaken(
            t.serial.clone().unwrap_or_default(),
        )),
        r => Ok(r?.try_get(0)?),
    }
}

pub(super) fn tokens(c: &mut Conn, user: &str) -> Result<Vec<Token>, StoreError> {
    let key = fold(user);
    c.rows(TOKENS_SQL, &[&key])?
        .iter()
        .map(|r| token_at(r, 0))
        .collect()
}

/// The sealed seed of the token with id `id`.
pub(super) fn sealed_seed(c: &mut Conn, id: i64) -> Result<SealedSeed, StoreError> {
    match c.opt("SELECT seed FROM tokens WHERE id = $1", &[&id])? {
        Some(r) => Ok(SealedSeed(r.try_get(0)?)),
        None => Err(StoreError::database("no token with this id", Retry::No)),
    }
}

pub(super) fn token_by_serial(c: &mut Conn, serial: &str) -> Result<Option<Token>, StoreError> {
    c.opt(BY_SERIAL_SQL, &[&serial])?
        .map(|r| token_at(&r, 0))
        .transpose()
}

/// Removes a token, and with it its user's remembered logins: they were
/// remembered for a second factor the token may have given.
pub(super) fn remove_token(c: &mut Conn, serial: &str) -> Result<bool, StoreError> {
    c.exec(
        "DELETE FROM remembered WHERE user_key = (SELECT user_key FROM tokens WHERE serial = $1)",
        &[&serial],
    )?;
    Ok(c.exec("DELETE FROM tokens WHERE serial = $1", &[&serial])? > 0)
}

/// Removes token `id` if it is `user`'s, and forgets the user's
/// remembered logins.
pub(super) fn remove_user_token(c: &mut Conn, user: &str, id: i64) -> Result<bool, StoreError> {
    let key = fold(user);
    let n = c.exec(
        "DELETE FROM tokens WHERE id = $2 AND user_key = $1",
        &[&key, &id],
    )?;
    if n > 0 {
        c.exec("DELETE FROM remembered WHERE user_key = $1", &[&key])?;
    }
    Ok(n > 0)
}

pub(super) fn activate_token(c: &mut Conn, id: i64) -> Result<(), StoreError> {
    c.exec("UPDATE tokens SET active = TRUE WHERE id = $1", &[&id])?;
    Ok(())
}

pub(super) fn remove_pending_tokens(
    c: &mut Conn,
    user: &str,
    kind: TokenKind,
) -> Result<(), StoreError> {
    let key = fold(user);
    c.exec(
        "DELETE FROM tokens WHERE user_key = $1 AND kind = $2 AND NOT active AND serial IS NULL",
        &[&key, &kind_str(kind)],
    )?;
    Ok(())
}

/// Whether some item of `v` is there twice.
pub(super) fn has_twice<T: Ord + Clone>(v: &[T]) -> bool {
    let mut sorted = v.to_vec();
    sorted.sort_unstable();
    sorted.windows(2).any(|w| w[0] == w[1])
}

/// Claims the steps of distinct tokens in one statement: whether each was
/// won. The same token twice is claimed in turn, so that one claim wins.
pub(super) fn claim_steps(c: &mut Conn, claims: &[(i64, u64)]) -> Result<Vec<bool>, StoreError> {
    let ids: Vec<i64> = claims.iter().map(|&(id, _)| id).collect();
    if has_twice(&ids) {
        return claims
            .iter()
            .map(|&claim| Ok(claim_steps(c, &[claim])?.pop().unwrap_or(false)))
            .collect();
    }
    let steps: Vec<i64> = claims.iter().map(|&(_, s)| s as i64).collect();
    let won: Vec<i64> = c
        .rows(CLAIM_SQL, &[&ids, &steps])?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    Ok(ids.iter().map(|id| won.contains(id)).collect())
}
