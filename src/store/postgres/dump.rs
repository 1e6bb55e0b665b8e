//! The whole database at once: loading a [`Dump`] (of a SQLite store) into
//! an empty database in one transaction, and counting what a database has.

use super::PgStore;
use super::pool::Conn;
use crate::store::dump::{COUNTS_SQL, Counts, Dump};
use crate::store::{Retry, StoreError, TokenKind, fold};

const USER_SQL: &str = "INSERT INTO users
     (name_key, name, email, phone, method, password_hash, created_at, blocked_until, pin_hash, language,
      source, disabled_at, enroll_until, portal_sessions_since)
 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";

const INVITATION_SQL: &str =
    "INSERT INTO invitations (hash, user_key, created_at, expires_at, used_at)
 VALUES ($1, $2, $3, $4, $5)";

const GROUP_SQL: &str = "INSERT INTO user_groups (user_key, name_key, name) VALUES ($1, $2, $3)";

const TOKEN_SQL: &str = "INSERT INTO tokens
     (id, user_key, user_name, kind, serial, seed, algorithm, digits, step, counter, last_step,
      active, model)
 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";

const LOCKOUT_SQL: &str = "INSERT INTO lockouts (user_key, denials, first_denial, locked_until)
 VALUES ($1, $2, $3, $4)";

const BYPASS_SQL: &str = "INSERT INTO bypasses
     (id, user_key, user_name, reason, created_at, until, used_at)
 VALUES ($1, $2, $3, $4, $5, $6, $7)";

const REMEMBERED_SQL: &str = "INSERT INTO remembered (user_key, auth_type, app, address, at)
 VALUES ($1, $2, $3, $4, $5)";

const BLOCK_HISTORY_SQL: &str =
    "INSERT INTO block_history (id, user_name, action, reason, at, until)
 VALUES ($1, $2, $3, $4, $5, $6)";

/// A chunk of the audit trail in one statement: a round trip per record
/// would make a trail of years take hours.
const AUDIT_SQL: &str = "INSERT INTO audit
     (id, at, user_name, user_key, result, accepted, mode, server, client, client_ip, reason)
 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[],
     $6::boolean[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[])";

/// Audit records per statement.
const AUDIT_CHUNK: usize = 5000;

/// After rows with their own ids: new rows take ids after them.
const SEQUENCES_SQL: &str = "
SELECT setval(pg_get_serial_sequence('tokens', 'id'), COALESCE((SELECT max(id) FROM tokens), 0) + 1, false);
SELECT setval(pg_get_serial_sequence('bypasses', 'id'), COALESCE((SELECT max(id) FROM bypasses), 0) + 1, false);
SELECT setval(pg_get_serial_sequence('block_history', 'id'), COALESCE((SELECT max(id) FROM block_history), 0) + 1, false);
SELECT setval(pg_get_serial_sequence('audit', 'id'), COALESCE((SELECT max(id) FROM audit), 0) + 1, false);
";

fn counts_on(c: &mut Conn) -> Result<Counts, StoreError> {
    let r = c.one(COUNTS_SQL, &[])?;
    let n = |i| r.try_get::<_, i64>(i).map(|v| v as u64);
    Ok(Counts {
        users: n(0)?,
        groups: n(1)?,
        tokens: n(2)?,
        lockouts: n(3)?,
        bypasses: n(4)?,
        remembered: n(5)?,
        block_history: n(6)?,
        audit: n(7)?,
        invitations: n(8)?,
    })
}

fn int<T: TryInto<i64>>(v: T) -> Result<i64, StoreError> {
    v.try_into()
        .map_err(|_| StoreError::database("a number too large for PostgreSQL", Retry::No))
}

fn load_on(c: &mut Conn, d: &Dump) -> Result<(), StoreError> {
    for u in &d.users {
        let key = fold(&u.name);
        c.exec(
            USER_SQL,
            &[
                &key,
                &u.name,
                &u.email,
                &u.phone,
                &u.method.as_str(),
                &u.password_hash,
                &u.created_at,
                &u.blocked_until,
                &u.pin_hash,
                &u.language,
                &u.source,
                &u.disabled_at,
                &u.enroll_until,
                &u.portal_sessions_since,
            ],
        )?;
        for g in &u.groups {
            c.exec(GROUP_SQL, &[&key, &fold(g), g])?;
        }
    }
    for i in &d.invitations {
        c.exec(
            INVITATION_SQL,
            &[
                &i.hash,
                &fold(&i.user),
                &i.created_at,
                &i.expires_at,
                &i.used_at,
            ],
        )?;
    }
    for (t, sealed) in &d.tokens {
        let kind = match t.kind {
            TokenKind::Hotp => "hotp",
            TokenKind::Totp => "totp",
        };
        let digits = i32::try_from(t.params.digits)
            .map_err(|_| StoreError::database("a token's digits out of range", Retry::No))?;
        c.exec(
            TOKEN_SQL,
            &[
                &t.id,
                &fold(&t.user),
                &t.user,
                &kind,
                &t.serial,
                &sealed.0,
                &t.params.algorithm.as_str(),
                &digits,
                &int(t.params.step)?,
                &int(t.counter)?,
                &t.last_step.map(int).transpose()?,
                &t.active,
                &t.model,
            ],
        )?;
    }
    for l in &d.lockouts {
        c.exec(
            LOCKOUT_SQL,
            &[&fold(&l.user), &l.denials, &l.first_denial, &l.locked_until],
        )?;
    }
    for b in &d.bypasses {
        c.exec(
            BYPASS_SQL,
            &[
                &b.id,
                &fold(&b.user),
                &b.user,
                &b.reason,
                &b.created_at,
                &b.until,
                &b.used_at,
            ],
        )?;
    }
    for (user, r) in &d.remembered {
        c.exec(
            REMEMBERED_SQL,
            &[&fold(user), &r.auth_type, &r.app, &r.address, &r.at],
        )?;
    }
    for (id, h) in &d.block_history {
        c.exec(
            BLOCK_HISTORY_SQL,
            &[id, &h.user, &h.action, &h.reason, &h.at, &h.until],
        )?;
    }
    for chunk in d.audit.chunks(AUDIT_CHUNK) {
        let col = |f: fn(&crate::store::dump::AuditRow) -> String| -> Vec<String> {
            chunk.iter().map(f).collect()
        };
        let ids: Vec<i64> = chunk.iter().map(|a| a.id).collect();
        let ats: Vec<i64> = chunk.iter().map(|a| a.at).collect();
        let accepted: Vec<bool> = chunk.iter().map(|a| a.accepted).collect();
        let ips: Vec<Option<String>> = chunk.iter().map(|a| a.client_ip.clone()).collect();
        let reasons: Vec<Option<String>> = chunk.iter().map(|a| a.reason.clone()).collect();
        c.exec(
            AUDIT_SQL,
            &[
                &ids,
                &ats,
                &col(|a| a.user.clone()),
                &col(|a| fold(&a.user)),
                &col(|a| a.result.clone()),
                &accepted,
                &col(|a| a.mode.clone()),
                &col(|a| a.server.clone()),
                &col(|a| a.client.clone()),
                &ips,
                &reasons,
            ],
        )?;
    }
    c.batch(SEQUENCES_SQL)
}

impl PgStore {
    /// How many rows of each kind the database has.
    pub fn counts(&self) -> Result<Counts, StoreError> {
        self.tx(counts_on)
    }

    /// Loads every row of `d` into this database, which must be empty (no
    /// users, tokens, audit records or anything else), in one transaction:
    /// all of it or, on any error, nothing. What the database then has,
    /// checked against the dump before the commit. Then the tables are
    /// analyzed, so that the first logins are planned with statistics and
    /// not on guesses until autovacuum comes round.
    pub fn load(&self, d: &Dump) -> Result<Counts, StoreError> {
        let counts = self.tx(|c| {
            // No other node writes while this runs, nor between the check
            // and the load.
            c.batch(
                "LOCK TABLE users, user_groups, tokens, lockouts, bypasses, remembered,
                      block_history, audit IN EXCLUSIVE MODE",
            )?;
            let before = counts_on(c)?;
            if !before.is_empty() {
                return Err(StoreError::database(
                    format!(
                        "the PostgreSQL database is not empty ({before}): \
                         migrate only into a new database"
                    ),
                    Retry::No,
                ));
            }
            load_on(c, d)?;
            let after = counts_on(c)?;
            if after != d.counts() {
                return Err(StoreError::database(
                    format!(
                        "the copy does not match: the database would have {after}, \
                         the SQLite store has {}; nothing was written",
                        d.counts()
                    ),
                    Retry::No,
                ));
            }
            Ok(after)
        })?;
        if let Err(e) = self.tx(|c| c.batch("ANALYZE")) {
            tracing::warn!(error = %e, "the copy is complete, but ANALYZE failed: autovacuum will gather the statistics");
        }
        Ok(counts)
    }
}
