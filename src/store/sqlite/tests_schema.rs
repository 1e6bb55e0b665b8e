//! The schema: a database an older program left upgrades in place, and one
//! a newer program left is refused.

use std::path::Path;

use rusqlite::Connection;

use super::schema::{MIGRATIONS, migrate};
use super::tests::{user, vpn};
use super::*;
use crate::store::testkit::Steps;

/// A database as an older program left it: the migrations up to
/// `version` only.
fn database_at_version(path: &Path, version: usize) -> Connection {
    let c = Connection::open(path).expect("open");
    c.execute_batch("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        .expect("version table");
    migrate(&c, 0, version).expect("migrate");
    c
}

#[test]
fn an_older_schema_upgrades_in_place_with_its_data() {
    // From each version since the one before groups.
    for version in 6..MIGRATIONS.len() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("old.db");
        let key = SeedKey::from_bytes(&[5; 32]);
        {
            let c = database_at_version(&p, version);
            c.execute_batch(
                "INSERT INTO users (name, email, phone, method, created_at, blocked_until, language)
                 VALUES ('Olga', 'olga@example.org', '+4930123456', 'sms', 42, 9999, 'de');
                 INSERT INTO lockouts (user, denials, first_denial) VALUES ('olga', 2, 40);",
            )
            .expect("rows");
            c.execute(
                "INSERT INTO tokens (user, kind, seed, algorithm, digits, step, active)
                 VALUES ('Olga', 'totp', ?1, 'SHA1', 6, 30, 1)",
                [key.seal("olga", b"old-seed")],
            )
            .expect("token");
        }
        let s = SqliteStore::open(&p, key).expect("upgrades");
        let found: i64 = s
            .conn()
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(found, MIGRATIONS.len() as i64, "from {version}");
        let olga = s.user("olga").expect("q").expect("kept");
        assert_eq!(
            (
                olga.email.as_deref(),
                olga.method,
                olga.created_at,
                olga.language.as_deref()
            ),
            (Some("olga@example.org"), Method::Sms, 42, Some("de"))
        );
        assert!(olga.groups.is_empty());
        assert_eq!(s.blocked_until("olga", 100).expect("b"), Some(9999));
        let t = &s.tokens("olga").expect("tokens")[0];
        assert_eq!(&s.token_seed(t).expect("seed")[..], b"old-seed");
        // The new tables work, and survive a reopen.
        s.update_user(&User {
            groups: vec!["vpn".into()],
            ..olga
        })
        .expect("groups");
        // After her block of the older database ends.
        s.remember("olga", &vpn(None, 10_000), 0).expect("remember");
        drop(s);
        let s = SqliteStore::open(&p, SeedKey::from_bytes(&[5; 32])).expect("reopen");
        assert_eq!(
            s.user("olga").expect("q").expect("kept").groups,
            ["vpn"],
            "from {version}"
        );
        assert_eq!(s.remembered("olga").expect("list"), [vpn(None, 10_000)]);
    }
}

#[test]
fn survives_reopen_and_refuses_a_newer_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("mfa.db");
    {
        let s = SqliteStore::open(&p, SeedKey::from_bytes(&[2; 32])).expect("open");
        s.add_user(&user("persist")).expect("add");
        s.block("persist", "r", 0, 10_000).expect("block");
    }
    let s = SqliteStore::open(&p, SeedKey::from_bytes(&[2; 32])).expect("reopen");
    assert_eq!(s.blocked_until("persist", 5).expect("b"), Some(10_000));
    s.conn()
        .execute("UPDATE schema_version SET version = 99", [])
        .expect("bump");
    drop(s);
    assert!(matches!(
        SqliteStore::open(&p, SeedKey::from_bytes(&[2; 32])),
        Err(StoreError::SchemaTooNew { found: 99, .. })
    ));
}

#[test]
fn names_sorted_by_the_old_nocase_are_sorted_again() {
    // Schema 8 folded ASCII only: "Ärger" and "ärger" could both exist,
    // and non-ASCII names sat where ASCII folding put them.
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("old.db");
    {
        let c = database_at_version(&p, 8);
        c.execute_batch(
            "INSERT INTO users (name, method, created_at) VALUES ('Ölaf', 'totp', 1), ('zed', 'totp', 1), ('Ärger', 'totp', 1);",
        )
        .expect("rows");
    }
    let s = SqliteStore::open(&p, SeedKey::from_bytes(&[5; 32])).expect("upgrades");
    assert_eq!(s.user("ÖLAF").expect("q").expect("found").name, "Ölaf");
    assert_eq!(s.user("ärger").expect("q").expect("found").name, "Ärger");
    drop(s);
    let p = dir.path().join("twins.db");
    {
        let c = database_at_version(&p, 8);
        c.execute_batch(
            "INSERT INTO users (name, method, created_at) VALUES ('Ärger', 'totp', 1), ('ärger', 'totp', 1);",
        )
        .expect("two users then");
    }
    let e = SqliteStore::open(&p, SeedKey::from_bytes(&[5; 32])).expect_err("twins");
    assert!(e.to_string().contains("differ only in the case"), "{e}");
}
