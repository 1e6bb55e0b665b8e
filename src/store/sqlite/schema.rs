//! The database's shape: the numbered migrations, and the version a
//! database is at.

use rusqlite::{Connection, OptionalExtension};

use crate::store::StoreError;

/// Migrations, in order; `schema_version` records how many have run.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE users (
    name          TEXT PRIMARY KEY COLLATE NOCASE,
    email         TEXT,
    phone         TEXT,
    method        TEXT NOT NULL DEFAULT 'totp',
    password_hash TEXT,
    created_at    INTEGER NOT NULL,
    blocked_until INTEGER
);
CREATE TABLE tokens (
    id         INTEGER PRIMARY KEY,
    user       TEXT NOT NULL COLLATE NOCASE REFERENCES users(name) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    serial     TEXT UNIQUE,
    seed       BLOB NOT NULL,
    algorithm  TEXT NOT NULL,
    digits     INTEGER NOT NULL,
    step       INTEGER NOT NULL,
    counter    INTEGER NOT NULL DEFAULT 0,
    last_step  INTEGER,
    active     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX tokens_user ON tokens(user);
CREATE TABLE lockouts (
    user         TEXT PRIMARY KEY COLLATE NOCASE,
    denials      INTEGER NOT NULL,
    first_denial INTEGER NOT NULL,
    locked_until INTEGER
);
CREATE TABLE block_history (
    id     INTEGER PRIMARY KEY,
    user   TEXT NOT NULL,
    action TEXT NOT NULL,
    reason TEXT NOT NULL,
    at     INTEGER NOT NULL,
    until  INTEGER
);
CREATE TABLE bypasses (
    id         INTEGER PRIMARY KEY,
    user       TEXT NOT NULL COLLATE NOCASE,
    reason     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    until      INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE TABLE audit (
    id        INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    user      TEXT NOT NULL,
    result    TEXT NOT NULL,
    accepted  INTEGER NOT NULL,
    mode      TEXT NOT NULL,
    server    TEXT NOT NULL,
    client    TEXT NOT NULL,
    client_ip TEXT,
    reason    TEXT
);
CREATE INDEX audit_user_at ON audit(user, at);
"#,
    // Every login looks for a waiting bypass.
    r#"
CREATE INDEX bypasses_user ON bypasses(user, used_at);
"#,
    // Hardware tokens: manufacturer and model, as their CSV gives them.
    r#"
ALTER TABLE tokens ADD COLUMN model TEXT;
"#,
    // Phone-call PIN mode: the PIN, hashed like a password.
    r#"
ALTER TABLE users ADD COLUMN pin_hash TEXT;
"#,
    // The language a user reads prompts and hears calls in.
    r#"
ALTER TABLE users ADD COLUMN language TEXT;
"#,
    // The audit trail is searched by time. The index on (user, at) served no
    // query (reports match the user without case, which it cannot), and it
    // cost every login a write at a random place in the file: a sixth of
    // the store's time per login. One on `at` is appended to in order.
    r#"
DROP INDEX audit_user_at;
CREATE INDEX audit_at ON audit(at);
"#,
    // The groups a user is in, which policies match. Names compare without
    // case, as user names do; the user's rows go with the user.
    r#"
CREATE TABLE user_groups (
    user TEXT NOT NULL COLLATE NOCASE REFERENCES users(name) ON DELETE CASCADE,
    name TEXT NOT NULL COLLATE NOCASE,
    PRIMARY KEY (user, name)
) WITHOUT ROWID;
"#,
    // Remembered logins: one row per user, auth type, application and
    // address. No address (NULL, which a unique index never finds equal) is
    // keyed as x'': a blob, unequal to every text address, "" included.
    r#"
CREATE TABLE remembered (
    user      TEXT NOT NULL COLLATE NOCASE REFERENCES users(name) ON DELETE CASCADE,
    auth_type TEXT NOT NULL,
    app       TEXT NOT NULL,
    address   TEXT,
    at        INTEGER NOT NULL
);
CREATE UNIQUE INDEX remembered_key ON remembered(user, auth_type, app, COALESCE(address, x''));
"#,
    // NOCASE is now this program's own collation, which folds every
    // letter, not ASCII alone, as the PostgreSQL store does: indexes on
    // names are sorted again by it. Two users whose names differ only in
    // the case of a non-ASCII letter ("Ärger", "ärger") stop this
    // migration with a UNIQUE error: rename one with the previous version.
    r#"
REINDEX NOCASE;
"#,
    // A user's one verification out of band in progress, and the grace
    // after one succeeded: in the store, so that they hold between the
    // nodes of a cluster as they do within one.
    r#"
CREATE TABLE verifications (
    user       TEXT PRIMARY KEY COLLATE NOCASE,
    id         BLOB NOT NULL,
    node       TEXT NOT NULL,
    client     TEXT NOT NULL,
    method     TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE grace (
    user   TEXT NOT NULL COLLATE NOCASE,
    client TEXT NOT NULL,
    until  INTEGER NOT NULL,
    PRIMARY KEY (user, client)
) WITHOUT ROWID;
"#,
    // The nodes serving on this store, as they last said they were alive
    // (`report status`).
    r#"
CREATE TABLE nodes (
    name       TEXT PRIMARY KEY,
    started_at INTEGER NOT NULL,
    seen_at    INTEGER NOT NULL,
    version    TEXT NOT NULL
);
"#,
    // Challenges out, so that another node can take an answer over (the
    // NAS failed over between the rounds): the login as the node that sent
    // the challenge had it, sealed with the seed key, used once.
    r#"
CREATE TABLE challenges (
    state      BLOB PRIMARY KEY,
    node       TEXT NOT NULL,
    user       TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    sealed     BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX challenges_expiry ON challenges(expires_at);
"#,
    // A provider's callback may reach any node: the verification names the
    // provider whose key checks it, and an answer that reached another node
    // waits here (sealed) for the node holding the NAS request. A challenge
    // taken stays (emptied) until it expires, naming the node that took it.
    r#"
ALTER TABLE verifications ADD COLUMN provider TEXT NOT NULL DEFAULT '';
ALTER TABLE challenges ADD COLUMN taken_by TEXT;
CREATE UNIQUE INDEX verifications_id ON verifications(id);
CREATE TABLE answers (
    id         BLOB PRIMARY KEY,
    node       TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    sealed     BLOB NOT NULL
) WITHOUT ROWID;
"#,
    // Users from a directory: the source they are synced from, when it
    // stopped listing them, and the enrollment window an administrator
    // opened. Enrollment invitations, by the hash of their token.
    r#"
ALTER TABLE users ADD COLUMN source TEXT;
ALTER TABLE users ADD COLUMN disabled_at INTEGER;
ALTER TABLE users ADD COLUMN enroll_until INTEGER;
CREATE TABLE invitations (
    hash       BLOB PRIMARY KEY,
    user       TEXT NOT NULL COLLATE NOCASE REFERENCES users(name) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
) WITHOUT ROWID;
CREATE INDEX invitations_user ON invitations(user);
"#,
    // Portal sessions a user signed out of: those begun at or before this
    // time are over, at every node.
    r#"
ALTER TABLE users ADD COLUMN portal_sessions_since INTEGER;
"#,
];

/// The migration that sorts names again by the collation that folds every
/// letter (its index in [`MIGRATIONS`]).
const REINDEX_NOCASE: usize = 8;

/// Brings the database on `conn` to this program's schema, refusing one
/// that a newer program left.
pub(super) fn upgrade(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let version: i64 = conn
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let supported = MIGRATIONS.len() as i64;
    if version > supported {
        return Err(StoreError::SchemaTooNew {
            found: version,
            supported,
        });
    }
    migrate(conn, version as usize, MIGRATIONS.len())
}

/// Runs the migrations that take a database at schema version `from` to
/// `to`, each in a transaction of its own that records the version reached.
pub(super) fn migrate(conn: &Connection, from: usize, to: usize) -> Result<(), StoreError> {
    for (i, m) in MIGRATIONS.iter().enumerate().take(to).skip(from) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(m).map_err(|e| match (i, e.sqlite_error_code()) {
            (REINDEX_NOCASE, Some(rusqlite::ErrorCode::ConstraintViolation)) => {
                StoreError::database(
                    "two users' names differ only in the case of a non-ASCII letter \
                     (\"Ärger\" and \"ärger\"), which are one name from now on: \
                     remove or rename one with the previous version of mfa-proxy, then start this one",
                    crate::store::Retry::No,
                )
            }
            _ => e.into(),
        })?;
        tx.execute("DELETE FROM schema_version", [])?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [i as i64 + 1],
        )?;
        tx.commit()?;
    }
    Ok(())
}
