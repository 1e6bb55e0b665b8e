//! `[primary] mode = "ldap"` end to end: radclient (the NAS) → mfa-proxy
//! with a SQLite store → a private slapd (tests/support/slapd.rs) with the
//! ppolicy overlay, over LDAPS under the test CA, and over StartTLS.
//!
//! A right password leads to the second factor (a TOTP code computed
//! here) or, for a user without one and `unenrolled = "accept"`, straight
//! in; a wrong password, an unknown user, a locked account and a password
//! to be changed are rejected alike towards the NAS, with the directory's
//! reason in the audit record; CHAP is refused without a bind; a stopped
//! directory rejects with its reason and the proxy works again once it is
//! back, without a restart. The slapd log shows that an unknown user costs
//! the directory the same operations as a wrong password: one search, one
//! bind (timings are in BENCHMARKS.md, from `cargo bench --bench ldap`).

mod common;
#[path = "support/slapd.rs"]
mod slapd;

use std::net::SocketAddr;
use std::sync::Arc;

use common::*;
use mfa_proxy::engine::Counter;
use mfa_proxy::mfa::otp::{TotpParams, totp_code};
use mfa_proxy::mfa::{Method, ResultCode};
use mfa_proxy::store::{AuditRecord, SeedKey, SqliteStore, Store, Token, User};
use slapd::{BASE_DN, Options, SYNC_DN, Slapd, Tree, user_dn, user_name, user_password};

const SEED: &[u8] = b"ldap-primary-seed-01";

/// A proxy in ldap mode against `server` at `url` (`starttls` for
/// ldap://), on a store where user 1 has an active TOTP token.
fn proxy_for(
    server: &Slapd,
    url: &str,
    starttls: bool,
    dir: &std::path::Path,
) -> (Arc<SqliteStore>, mfa_proxy::io::Running) {
    let store = Arc::new(
        SqliteStore::open(&dir.join("mfa.db"), SeedKey::from_bytes(&[21; 32])).expect("store"),
    );
    store
        .add_user(&User::new(user_name(1), Method::Totp))
        .expect("user");
    let token = Token {
        active: true,
        ..Token::totp(user_name(1), TotpParams::default())
    };
    store.add_token(&token, SEED).expect("token");
    let extra = format!(
        "[primary]\nmode = \"ldap\"\ndirectory = \"corp\"\n\
         [mfa]\nreject_delay = \"100ms\"\nunenrolled = \"accept\"\n\
         [[directory]]\nname = \"corp\"\nurl = \"{url}\"\nstarttls = {starttls}\n\
         ca_file = \"{ca}\"\nbind_dn = \"{SYNC_DN}\"\nbind_password = \"{pw}\"\n\
         base_dn = \"{BASE_DN}\"\nfilter = \"(objectClass=inetOrgPerson)\"\n\
         name_attribute = \"sAMAccountName\"\ntimeout = \"3s\"\n",
        ca = server.ca_file().display(),
        pw = server.sync_password(),
    );
    let config = proxy_config(&[], &extra);
    let proxy = start_mfa_proxy(&config, &store);
    (store, proxy)
}

fn login(to: SocketAddr, user: &str, password: &str, state: Option<&str>) -> String {
    pap(to, user, password, state, &["-x", "-r", "1", "-t", "8"])
}

fn code() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    totp_code(&TotpParams::default(), SEED, now)
}

/// The newest audit record of `user`.
fn last_record(store: &SqliteStore, user: &str) -> AuditRecord {
    let records = store.audit(Some(user), None).expect("audit");
    records.last().cloned().expect("every login is recorded")
}

/// Asserts the login was rejected, with no reason for the NAS, and recorded
/// as `result` with `reason`.
fn rejected(out: &str, store: &SqliteStore, user: &str, result: ResultCode, reason: &str) {
    assert!(out.contains("Received Access-Reject"), "{user}: {out}");
    assert!(
        !out.contains("Reply-Message"),
        "the NAS is not told why: {out}"
    );
    let r = last_record(store, user);
    assert_eq!(
        (r.result, r.accepted, r.reason.as_deref()),
        (result, false, Some(reason)),
        "{user}"
    );
}

/// The operations slapd logged after the first `from` octets of its log:
/// (searches, binds as anyone but the sync account, their DNs).
fn operations_since(server: &Slapd, from: usize) -> (usize, Vec<String>) {
    let log = server.log_text();
    let new = &log[from.min(log.len())..];
    let searches = new.lines().filter(|l| l.contains(" SRCH base=")).count();
    let sync = format!("dn=\"{}\"", SYNC_DN.to_lowercase());
    let binds = new
        .lines()
        .filter(|l| l.contains(" BIND dn=") && l.contains("method=128"))
        .filter(|l| !l.to_lowercase().contains(&sync))
        .map(|l| l[l.find("dn=").unwrap_or(0)..].to_owned())
        .collect();
    (searches, binds)
}

#[test]
fn ldaps_first_factor_refusals_outage_and_equal_work_for_unknown_users() {
    if !have("radclient") {
        return;
    }
    let options = Options {
        ppolicy: true,
        log_operations: true,
    };
    let Some(server) = Slapd::start_or_skip_with(
        Tree {
            users: 20,
            disabled: 0,
        },
        options,
    ) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, proxy) = proxy_for(&server, &server.ldaps_url(), false, dir.path());
    let to = proxy.listen_addrs[0];
    let (u1, u3) = (user_name(1), user_name(3));

    // The right password, then the code: in.
    let out = login(to, &u1, &user_password(1), None);
    assert!(
        out.contains("Enter the code"),
        "{out}\n{}",
        server.log_text()
    );
    let out = login(to, &u1, &code(), Some(&state_from(&out)));
    assert!(out.contains("Received Access-Accept"), "{out}");
    assert_eq!(
        last_record(&store, &u1).result,
        ResultCode::SuccessOathCodeVerified
    );
    // A user without a second factor, let in by the policy.
    let out = login(to, &u3, &user_password(3), None);
    assert!(out.contains("Received Access-Accept"), "{out}");

    // A wrong password and an unknown user: the same to the NAS and on
    // record, and the same work for the directory.
    let before = server.log_text().len();
    let wrong = login(to, &u1, "not-the-password", None);
    let reason = "directory corp: wrong password or unknown user";
    rejected(&wrong, &store, &u1, ResultCode::FailedPrimaryAuth, reason);
    let (searches, binds) = operations_since(&server, before);
    assert_eq!(searches, 1, "wrong password: one search");
    assert_eq!(binds.len(), 1, "wrong password: one bind, as the user");
    assert!(
        binds[0].to_lowercase().contains(&user_dn(1).to_lowercase()),
        "{binds:?}"
    );

    let before = server.log_text().len();
    let unknown = login(to, "nobody-here", "not-the-password", None);
    rejected(
        &unknown,
        &store,
        "nobody-here",
        ResultCode::FailedPrimaryAuth,
        reason,
    );
    let (searches, binds) = operations_since(&server, before);
    assert_eq!(searches, 1, "unknown user: one search");
    assert_eq!(
        binds.len(),
        1,
        "unknown user: one bind, to a DN that cannot exist"
    );
    assert!(binds[0].contains("mfa-proxy absent"), "{binds:?}");
    let log = server.log_text();
    let bind_results: Vec<&str> = log[before..]
        .lines()
        .filter(|l| l.contains("RESULT tag=97"))
        .collect();
    assert!(
        bind_results.len() == 1 && bind_results[0].contains("err=49"),
        "the bind to nobody is refused: {bind_results:?}"
    );

    // A name the directory matches more loosely than the store (a
    // full-width letter, which OpenLDAP's NFKC comparison folds): not user
    // 3, whom the policy lets in without a second factor as "user000003",
    // nor anyone.
    let loose = login(
        to,
        &u3.replacen('u', "\u{ff55}", 1),
        &user_password(3),
        None,
    );
    assert!(loose.contains("Received Access-Reject"), "{loose}");

    // An account the administrator locked, a password to be changed.
    server.lock_account(&user_dn(4));
    let out = login(to, &user_name(4), &user_password(4), None);
    let locked = "directory corp: account locked";
    rejected(
        &out,
        &store,
        &user_name(4),
        ResultCode::FailedPrimaryAuth,
        locked,
    );
    server.require_password_change(&user_dn(5));
    let out = login(to, &user_name(5), &user_password(5), None);
    let change = "directory corp: password must be changed";
    rejected(
        &out,
        &store,
        &user_name(5),
        ResultCode::FailedPrimaryAuth,
        change,
    );

    // CHAP carries no password to bind with: refused, nothing asked.
    let before = server.log_text().len();
    let chap = format!(
        "User-Name = {u3}\nCHAP-Password = \"{}\"\nMessage-Authenticator = 0x00\n",
        user_password(3)
    );
    let out = text(&radclient(
        to,
        "auth",
        NAS_SECRET,
        &chap,
        &["-x", "-r", "1", "-t", "8"],
    ));
    let pap_only = "ldap mode checks PAP passwords only";
    rejected(&out, &store, &u3, ResultCode::ConfigIssue, pap_only);
    assert_eq!(operations_since(&server, before), (0, Vec::new()));

    // The directory stops: rejected with the reason, never accepted.
    server.stop();
    let out = login(to, &u3, &user_password(3), None);
    let down = "directory corp: unreachable";
    rejected(&out, &store, &u3, ResultCode::FailedServerError, down);
    // Back again: the same proxy works without a restart.
    server.start_again();
    let out = login(to, &u3, &user_password(3), None);
    assert!(out.contains("Received Access-Accept"), "{out}");

    let stats = proxy.stats();
    for (counter, n) in [
        (Counter::DirectoryAccepted, 3),
        // The wrong password, the unknown user, the loosely matched name.
        (Counter::DirectoryWrongPassword, 3),
        (Counter::DirectoryAccountLocked, 1),
        (Counter::DirectoryPasswordMustChange, 1),
        (Counter::DirectoryUnreachable, 1),
    ] {
        assert_eq!(stats.get(counter), n, "{}", counter.name());
    }
    assert_eq!(stats.get(Counter::DirectoryChecks), 9);
}

#[test]
fn starttls_first_factor() {
    if !have("radclient") {
        return;
    }
    let Some(server) = Slapd::start_or_skip(Tree {
        users: 5,
        disabled: 0,
    }) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, proxy) = proxy_for(&server, &server.ldap_url(), true, dir.path());
    let to = proxy.listen_addrs[0];
    let u2 = user_name(2);
    let out = login(to, &u2, &user_password(2), None);
    assert!(out.contains("Received Access-Accept"), "{out}");
    let out = login(to, &u2, &user_password(3), None);
    let reason = "directory corp: wrong password or unknown user";
    rejected(&out, &store, &u2, ResultCode::FailedPrimaryAuth, reason);
    // A password of more than 16 octets (two PAP blocks), the right one.
    let long = format!("{}-is-long-enough-for-two-blocks", user_password(2));
    server.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: userPassword\nuserPassword: {long}\n",
        user_dn(2)
    ));
    let out = login(to, &u2, &long, None);
    assert!(out.contains("Received Access-Accept"), "{out}");
}
