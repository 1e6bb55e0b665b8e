//! The second factor end to end: radclient (the NAS) → mfa-proxy with a
//! SQLite store → FreeRADIUS (the first factor), in two rounds.

mod common;

use std::sync::Arc;

use common::*;
use mfa_proxy::mfa::Method;
use mfa_proxy::mfa::ResultCode;
use mfa_proxy::mfa::otp::{TotpParams, totp_code};
use mfa_proxy::store::{SeedKey, SqliteStore, Store, Token, User};

const SEED: &[u8] = b"end-to-end-seed-0001";

fn open(dir: &std::path::Path) -> SqliteStore {
    SqliteStore::open(&dir.join("mfa.db"), SeedKey::from_bytes(&[11; 32])).expect("store")
}

fn enroll_alice(store: &SqliteStore) {
    store
        .add_user(&User::new("alice", Method::Totp))
        .expect("user");
    let t = Token {
        active: true,
        ..Token::totp("alice", TotpParams::default())
    };
    store.add_token(&t, SEED).expect("token");
}

fn code_at(offset_steps: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64;
    totp_code(
        &TotpParams::default(),
        SEED,
        (now + offset_steps * 30) as u64,
    )
}

fn round(to: std::net::SocketAddr, password: &str, state: Option<&str>) -> String {
    pap(to, "alice", password, state, &["-x", "-r", "1", "-t", "4"])
}

#[test]
fn two_round_challenge_inline_code_replay_block_bypass_and_restart() {
    if !(have("freeradius") && have("radclient")) {
        return;
    }
    let fr = FreeRadius::start(UPSTREAM_SECRET);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(open(dir.path()));
    enroll_alice(&store);
    let config = proxy_config(&[(fr.auth, fr.acct)], "[mfa]\nreject_delay = \"100ms\"\n");
    let proxy = start_mfa_proxy(&config, &store);
    let to = proxy.listen_addrs[0];

    // Round one: the password; the answer is a challenge.
    let out = round(to, "alice-pass", None);
    assert!(out.contains("Enter the code"), "{out}");
    let state = state_from(&out);
    // A wrong code: asked again, with a new State.
    let wrong = if code_at(0) == "000000" {
        "111111"
    } else {
        "000000"
    };
    let out = round(to, wrong, Some(&state));
    let state2 = state_from(&out);
    assert_ne!(state2, state);
    // The right code: the upstream's Accept, Tunnel-Password re-encrypted.
    let code = code_at(0);
    let out = round(to, &code, Some(&state2));
    assert!(
        out.contains("Received Access-Accept"),
        "{out}\n{}",
        fr.log()
    );
    assert!(
        out.contains("tunnel-secret") && out.contains("Hello alice"),
        "{out}"
    );

    // The same code again, in a new login: refused as a duplicate.
    let state3 = state_from(&round(to, "alice-pass", None));
    let out = round(to, &code, Some(&state3));
    let state4 = state_from(&out);

    // Inline: password,code in one request, no challenge.
    // (Kept: the step may turn before the restart below reuses it.)
    let inline = code_at(1);
    let out = round(to, &format!("alice-pass,{inline}"), None);
    assert!(out.contains("Received Access-Accept"), "{out}");

    // Blocked: rejected after the first factor.
    store
        .block("alice", "test", 0, i64::MAX / 2)
        .expect("block");
    assert!(round(to, "alice-pass", None).contains("Received Access-Reject"));
    store.unblock("alice", "test", 1).expect("unblock");
    // Bypass: in without a code, once.
    store
        .add_bypass("alice", "test", 0, i64::MAX / 2)
        .expect("bypass");
    assert!(round(to, "alice-pass", None).contains("Received Access-Accept"));
    assert!(round(to, "alice-pass", None).contains("Received Access-Challenge"));

    // A wrong first factor is the upstream's reject.
    assert!(round(to, "bad-pass", None).contains("Received Access-Reject"));

    // Restart with the same store file: the used code stays used.
    drop(proxy);
    drop(store);
    let store = Arc::new(open(dir.path()));
    let proxy = start_mfa_proxy(&config, &store);
    let state5 = state_from(&round(proxy.listen_addrs[0], "alice-pass", None));
    let out = round(proxy.listen_addrs[0], &inline, Some(&state5));
    assert!(
        out.contains("Received Access-Challenge"),
        "the inline code's step is spent:\n{out}"
    );
    let _ = state4;

    // Every login left one audit record.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let audit = store.audit(Some("alice"), None).expect("audit");
    let results: Vec<ResultCode> = audit.iter().map(|a| a.result).collect();
    for want in [
        ResultCode::SuccessOathCodeVerified,
        ResultCode::SuccessUserBlocked,
        ResultCode::SuccessBypassedAuth,
    ] {
        assert!(results.contains(&want), "{want} missing from {results:?}");
    }
    assert!(
        audit
            .iter()
            .all(|a| a.server == "test" && a.client == "nas")
    );
}
