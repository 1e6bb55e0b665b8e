//! The database's shape: the numbered migrations, and the version a
//! database is at.
//!
//! User and group names compare without case through a key beside each
//! name, `name_key`, which the program computes ([`fold`](crate::store::fold))
//! so both backends fold names the same way, non-ASCII letters included.
//! Tables that belong to a user refer to `users(name_key)`; lockouts,
//! bypasses and the histories do not (as in SQLite, they outlive the user).

use super::pool::Conn;
use crate::store::{SeedKey, StoreError};

/// Migrations, in order; `schema_version` records how many have run.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE users (
    name_key      TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    email         TEXT,
    phone         TEXT,
    method        TEXT NOT NULL DEFAULT 'totp',
    password_hash TEXT,
    created_at    BIGINT NOT NULL,
    blocked_until BIGINT,
    pin_hash      TEXT,
    language      TEXT
);
CREATE TABLE tokens (
    id         BIGSERIAL PRIMARY KEY,
    user_key   TEXT NOT NULL REFERENCES users(name_key) ON DELETE CASCADE,
    user_name  TEXT NOT NULL,
    kind       TEXT NOT NULL,
    serial     TEXT UNIQUE,
    seed       BYTEA NOT NULL,
    algorithm  TEXT NOT NULL,
    digits     INTEGER NOT NULL,
    step       BIGINT NOT NULL,
    counter    BIGINT NOT NULL DEFAULT 0,
    last_step  BIGINT,
    active     BOOLEAN NOT NULL DEFAULT FALSE,
    model      TEXT
);
CREATE INDEX tokens_user ON tokens(user_key);
CREATE TABLE lockouts (
    user_key     TEXT PRIMARY KEY,
    denials      BIGINT NOT NULL,
    first_denial BIGINT NOT NULL,
    locked_until BIGINT
);
CREATE TABLE block_history (
    id        BIGSERIAL PRIMARY KEY,
    user_name TEXT NOT NULL,
    action    TEXT NOT NULL,
    reason    TEXT NOT NULL,
    at        BIGINT NOT NULL,
    until     BIGINT
);
CREATE TABLE bypasses (
    id         BIGSERIAL PRIMARY KEY,
    user_key   TEXT NOT NULL,
    user_name  TEXT NOT NULL,
    reason     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    until      BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX bypasses_user ON bypasses(user_key, used_at);
CREATE TABLE audit (
    id        BIGSERIAL PRIMARY KEY,
    at        BIGINT NOT NULL,
    user_name TEXT NOT NULL,
    user_key  TEXT NOT NULL,
    result    TEXT NOT NULL,
    accepted  BOOLEAN NOT NULL,
    mode      TEXT NOT NULL,
    server    TEXT NOT NULL,
    client    TEXT NOT NULL,
    client_ip TEXT,
    reason    TEXT
);
CREATE INDEX audit_at ON audit(at);
CREATE TABLE user_groups (
    user_key TEXT NOT NULL REFERENCES users(name_key) ON DELETE CASCADE,
    name_key TEXT NOT NULL,
    name     TEXT NOT NULL,
    PRIMARY KEY (user_key, name_key)
);
-- One row per user, auth type, application and address; no address (NULL)
-- is a key of its own, unequal to every address, "" included.
CREATE TABLE remembered (
    user_key  TEXT NOT NULL REFERENCES users(name_key) ON DELETE CASCADE,
    auth_type TEXT NOT NULL,
    app       TEXT NOT NULL,
    address   TEXT,
    at        BIGINT NOT NULL
);
CREATE UNIQUE INDEX remembered_key
    ON remembered(user_key, auth_type, app, (address IS NULL), COALESCE(address, ''));
"#,
    // Which seed key the seeds are sealed with: a value sealed with it,
    // which only the same key opens. A node started with another key
    // (a new one made by mistake, a key file not copied) is refused
    // rather than failing every login on a seed it cannot open.
    r#"
CREATE TABLE key_check (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    sealed BYTEA NOT NULL
);
"#,
    // A user's one verification out of band in progress (at any node),
    // and the grace after one succeeded.
    r#"
CREATE TABLE verifications (
    user_key   TEXT PRIMARY KEY,
    user_name  TEXT NOT NULL,
    id         BYTEA NOT NULL,
    node       TEXT NOT NULL,
    client     TEXT NOT NULL,
    method     TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE TABLE grace (
    user_key TEXT NOT NULL,
    client   TEXT NOT NULL,
    until    BIGINT NOT NULL,
    PRIMARY KEY (user_key, client)
);
"#,
    // The nodes serving on this database, as they last said they were
    // alive (`report status`).
    r#"
CREATE TABLE nodes (
    name       TEXT PRIMARY KEY,
    started_at BIGINT NOT NULL,
    seen_at    BIGINT NOT NULL,
    version    TEXT NOT NULL
);
"#,
    // Challenges out, so that another node can take an answer over (the
    // NAS failed over between the rounds): sealed, used once.
    r#"
CREATE TABLE challenges (
    state      BYTEA PRIMARY KEY,
    node       TEXT NOT NULL,
    user_name  TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    sealed     BYTEA NOT NULL
);
CREATE INDEX challenges_expiry ON challenges(expires_at);
"#,
    // A provider's callback may reach any node: the verification names the
    // provider whose key checks it, and an answer that reached another node
    // waits here (sealed) for the node holding the NAS request, which
    // `NOTIFY mfa_answers` wakes. A challenge taken stays (emptied) until it
    // expires, naming the node that took it.
    r#"
ALTER TABLE verifications ADD COLUMN provider TEXT NOT NULL DEFAULT '';
ALTER TABLE challenges ADD COLUMN taken_by TEXT;
CREATE UNIQUE INDEX verifications_id ON verifications(id);
CREATE TABLE answers (
    id         BYTEA PRIMARY KEY,
    node       TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    sealed     BYTEA NOT NULL
);
"#,
    // Users from a directory: the source they are synced from, when it
    // stopped listing them, and the enrollment window an administrator
    // opened. Enrollment invitations, by the hash of their token.
    r#"
ALTER TABLE users ADD COLUMN source TEXT;
ALTER TABLE users ADD COLUMN disabled_at BIGINT;
ALTER TABLE users ADD COLUMN enroll_until BIGINT;
CREATE TABLE invitations (
    hash       BYTEA PRIMARY KEY,
    user_key   TEXT NOT NULL REFERENCES users(name_key) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX invitations_user ON invitations(user_key);
"#,
    // Portal sessions a user signed out of: those begun at or before this
    // time are over, at every node.
    r#"
ALTER TABLE users ADD COLUMN portal_sessions_since BIGINT;
"#,
];

/// What the key check is sealed for: no user's name (those never hold a
/// NUL), so no token's seal can pass for it.
const KEY_CHECK: &str = "\0mfa-proxy key check";

/// The key of the advisory lock that serialises migrations between nodes
/// starting together ("mfa-prox" in ASCII).
const MIGRATION_LOCK: i64 = 0x6d66_612d_7072_6f78;

/// Brings the database to this program's schema in one transaction, under
/// an advisory lock, refusing one that a newer program left or whose seeds
/// are sealed with another key than `key`.
pub(super) fn upgrade(c: &mut Conn, key: &SeedKey) -> Result<(), StoreError> {
    c.begin()?;
    let r = upgrade_in_tx(c).and_then(|()| check_key(c, key));
    match r {
        Ok(()) => c.commit(),
        Err(e) => {
            c.rollback();
            Err(e)
        }
    }
}

fn upgrade_in_tx(c: &mut Conn) -> Result<(), StoreError> {
    c.exec("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    c.batch("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")?;
    let found = version(c)?;
    let supported = MIGRATIONS.len() as i64;
    if found > supported {
        return Err(StoreError::SchemaTooNew { found, supported });
    }
    for m in MIGRATIONS.iter().skip(found as usize) {
        c.batch(m)?;
    }
    if found < supported {
        c.exec("DELETE FROM schema_version", &[])?;
        c.exec(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&supported],
        )?;
    }
    Ok(())
}

/// Records `key` as the database's seed key if it has none yet, else checks
/// that it is the one recorded.
fn check_key(c: &mut Conn, key: &SeedKey) -> Result<(), StoreError> {
    let mine = key.seal(KEY_CHECK, b"sealed with this database's seed key");
    c.exec(
        "INSERT INTO key_check (id, sealed) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
        &[&mine],
    )?;
    let row = c.one("SELECT sealed FROM key_check WHERE id = 1", &[])?;
    let recorded: Vec<u8> = row.get(0);
    match key.open(KEY_CHECK, &recorded) {
        Ok(_) => Ok(()),
        Err(_) => Err(StoreError::KeyMismatch),
    }
}

/// The schema version of the database (0 before the first migration).
pub(super) fn version(c: &mut Conn) -> Result<i64, StoreError> {
    let row = c.opt("SELECT max(version) FROM schema_version", &[])?;
    Ok(row.and_then(|r| r.get::<_, Option<i64>>(0)).unwrap_or(0))
}
