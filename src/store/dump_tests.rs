//! A SQLite store with every kind of row, dumped and loaded into
//! PostgreSQL, reads the same through the [`Store`] API of both.

use super::*;
use crate::mfa::otp::TotpParams;
use crate::mfa::{LockoutPolicy, Method, Remembered, ResultCode};
use crate::store::testkit::Steps;
use crate::store::{
    AuditRecord, PgStore, SeedKey, SqliteStore, Store, Token, TokenKind, UnixTime, in_tx,
};

const NOW: UnixTime = 1_700_000_000;
const POLICY: LockoutPolicy = LockoutPolicy {
    denials: 3,
    reset_after: 600,
    unblock_after: 900,
};
const NAMES: [&str; 7] = ["alice", "Bob", "carol", "dave", "eve", "Ärger", "gone"];

fn key() -> SeedKey {
    SeedKey::from_bytes(&[7; 32])
}

/// Every kind of row, through the store's own API.
fn fill(s: &SqliteStore) -> (i64, i64) {
    let mut alice = User::new("alice", Method::Call);
    alice.email = Some("alice@example.org".into());
    alice.phone = Some("+4930123456".into());
    alice.password_hash = Some("$argon2id$v=19$fake-password-hash".into());
    alice.pin_hash = Some("$argon2id$v=19$fake-pin-hash".into());
    alice.language = Some("de".into());
    alice.created_at = NOW - 100;
    alice.groups = vec!["vpn".into(), "Admins".into()];
    s.add_user(&alice).expect("alice");
    for name in &NAMES[1..] {
        let mut u = User::new(*name, Method::Totp);
        u.created_at = NOW - 50;
        u.groups = vec![format!("g-{name}")];
        s.add_user(&u).expect("user");
    }
    // A TOTP token with a claimed step, another pending.
    let mut t = Token::totp("Bob", TotpParams::default());
    t.active = true;
    let totp = s.add_token(&t, b"bob's totp seed 20b!").expect("totp");
    assert!(s.claim_step(totp, 56_666_666).expect("claim"));
    s.add_token(&Token::totp("bob", TotpParams::default()), b"pending seed")
        .expect("pending");
    // An HOTP hardware token with a serial, its counter moved.
    let hotp = Token {
        kind: TokenKind::Hotp,
        serial: Some("HW-0001".into()),
        model: Some("Feitian c200".into()),
        active: true,
        ..Token::totp("carol", TotpParams::default())
    };
    let hw = s.add_token(&hotp, b"carol's hardware seed").expect("hotp");
    assert!(s.claim_step(hw, 41).expect("claim hotp"));
    // A portal sign-out.
    assert!(s.end_portal_sessions("carol", NOW - 15).expect("sign-out"));
    // A lockout in progress, a lockout in force, a block (and an unblock).
    s.record_denial("dave", NOW - 10, &POLICY).expect("denial");
    for i in 0..3 {
        s.record_denial("eve", NOW - 5 + i, &POLICY)
            .expect("denial");
    }
    s.block("Ärger", "lost phone", NOW - 20, NOW + 3600)
        .expect("block");
    s.block("carol", "mistake", NOW - 30, NOW + 3600)
        .expect("block");
    s.unblock("carol", "found it", NOW - 25).expect("unblock");
    // Bypasses: one used, one waiting.
    s.add_bypass("alice", "phone at home", NOW - 40, NOW + 300)
        .expect("bypass");
    assert!(s.take_bypass("alice", NOW - 39).expect("take"));
    s.add_bypass("alice", "again", NOW - 30, NOW + 300)
        .expect("bypass");
    // Remembered logins, one without an address.
    for (app, address, at) in [
        ("vpn", Some("10.1.2.3"), NOW - 60),
        ("vpn", None, NOW - 70),
        ("rdg", Some("10.9.9.9"), NOW - 80),
    ] {
        let r = Remembered {
            auth_type: "pap".into(),
            app: app.into(),
            address: address.map(Into::into),
            at,
        };
        s.remember("alice", &r, NOW - 1000).expect("remember");
    }
    // The audit trail, an unknown user's login and a removed user's too.
    for i in 0..12 {
        let rec = AuditRecord {
            at: NOW - 200 + i / 3,
            user: NAMES[i as usize % NAMES.len()].into(),
            result: if i % 2 == 0 {
                ResultCode::SuccessOathCodeVerified
            } else {
                ResultCode::FailedOathCodeIncorrect
            },
            accepted: i % 2 == 0,
            mode: "local".into(),
            server: "node-1".into(),
            client: "vpn".into(),
            client_ip: (i % 3 != 0).then(|| format!("192.0.2.{i}")),
            reason: (i == 5).then(|| "wrong code".into()),
        };
        s.append_audit(&rec).expect("audit");
    }
    assert!(s.remove_user("gone").expect("remove"));
    (totp, hw)
}

/// Everything the Store API says about the store at `NOW`.
fn view(s: &dyn Store) -> String {
    let mut v = format!("users {:?}\n", s.users().expect("users"));
    for name in NAMES.iter().chain(&["nobody"]) {
        let facts = in_tx(s.as_login(), |tx| tx.facts(name, NOW)).expect("facts");
        v += &format!(
            "{name}: tokens {:?}\nfacts {facts:?}\nremembered {:?}\nlocked {:?} blocked {:?}\n",
            s.tokens(name).expect("tokens"),
            s.remembered(name).expect("remembered"),
            s.locked_until(name, NOW).expect("locked"),
            s.blocked_until(name, NOW).expect("blocked"),
        );
    }
    v += &format!(
        "audit {:?}\nalice's {:?}\nblocks {:?}\nbypasses {:?}\n",
        s.audit(None, None).expect("audit"),
        s.audit(Some("ALICE"), Some(NOW - 199)).expect("audit"),
        s.block_history().expect("blocks"),
        s.bypass_history().expect("bypasses"),
    );
    v
}

#[test]
fn a_dump_of_every_kind_of_row_reads_the_same_in_postgres() {
    let sqlite = SqliteStore::in_memory(key()).expect("sqlite");
    let (totp, hw) = fill(&sqlite);
    let dump = sqlite.dump().expect("dump");
    let counts = dump.counts();
    assert_eq!(counts, sqlite.counts().expect("counts"));
    assert_eq!(
        (
            counts.users,
            counts.tokens,
            counts.lockouts,
            counts.bypasses
        ),
        (6, 3, 2, 2)
    );
    assert_eq!(
        (counts.remembered, counts.block_history, counts.audit),
        (3, 3, 12)
    );
    // Nothing secret in its Debug.
    let shown = format!("{dump:?}");
    assert!(
        !shown.contains("argon2") && !shown.contains("seed"),
        "{shown}"
    );

    let Some(server) = crate::store::pg_server::PgServer::shared() else {
        return;
    };
    let url = server.new_database();
    let pg = PgStore::connect(&url, key(), 2).expect("connect");
    assert_eq!(pg.load(&dump).expect("load"), counts);
    let (before, after) = (view(&sqlite), view(&pg));
    assert!(before.contains("HW-0001") && before.contains("lost phone"));
    for (b, a) in before.lines().zip(after.lines()) {
        assert_eq!(b, a);
    }
    assert_eq!(before.lines().count(), after.lines().count());

    // The seeds open under the same key at PostgreSQL.
    let bob = &pg.tokens("bob").expect("tokens")[0];
    assert_eq!(bob.id, totp);
    assert_eq!(
        &pg.token_seed(bob).expect("open")[..],
        b"bob's totp seed 20b!"
    );
    // The step used before the migration stays used; the next is free;
    // the hardware token's counter moved on with it.
    assert!(!pg.claim_step(totp, 56_666_666).expect("claim"));
    assert!(!pg.claim_step(hw, 41).expect("claim"));
    assert!(pg.claim_step(totp, 56_666_667).expect("claim"));
    // The waiting bypass is still there once, the used one gone.
    assert!(pg.take_bypass("alice", NOW).expect("take"));
    assert!(!pg.take_bypass("alice", NOW).expect("take"));
    // New rows take ids after the copied ones.
    let new = pg
        .add_token(&Token::totp("dave", TotpParams::default()), b"x")
        .expect("add");
    assert!(new > hw, "{new} after {hw}");

    // A second load is refused, and changes nothing.
    let e = pg.load(&dump).expect_err("not empty");
    assert!(e.to_string().contains("not empty"), "{e}");
    assert_eq!(pg.counts().expect("counts").tokens, counts.tokens + 1);
}

#[test]
fn a_load_that_fails_writes_nothing() {
    let sqlite = SqliteStore::in_memory(key()).expect("sqlite");
    fill(&sqlite);
    let mut dump = sqlite.dump().expect("dump");
    // Two tokens with one serial: the second insert fails.
    let mut twin = dump.tokens[2].clone();
    twin.0.id = 99;
    dump.tokens.push(twin);
    let Some(server) = crate::store::pg_server::PgServer::shared() else {
        return;
    };
    let pg = PgStore::connect(&server.new_database(), key(), 2).expect("connect");
    pg.load(&dump).expect_err("duplicate serial");
    assert!(pg.counts().expect("counts").is_empty());
}
