//! Two nodes on one store (issue 16): a challenge one node sent, answered
//! at the other (the NAS failed over between the rounds). The Sim drives
//! one engine at a time against its store; swapping in a second engine
//! makes it the other node.

use std::time::Duration;

use super::tests_mfa::*;
use super::tests_oob::{json, oob_sim};
use super::*;
use crate::mfa::Method;
use crate::mfa::ResultCode;
use crate::store::Store;

/// Another node: an engine of its own on the same configuration (but its
/// `[server] name`), the same store and the same clock.
fn node_b(s: &Sim, extra_mfa: &str) -> Engine {
    let mut c = config(extra_mfa);
    c.server.name = "sim-b".into();
    let mut e = Engine::new(&c, Arc::new(Dictionary::builtin()), [4; 32], s.now);
    e.set_wall_clock(s.now, s.unix);
    e
}

#[test]
fn a_challenge_sent_by_one_node_is_answered_at_the_other() {
    let mut s = Sim::new("");
    let r = s.login(1000, 1, "alice", "pw", None);
    let state = state_of(&r[0]);
    let mut a = node_b(&s, "");
    std::mem::swap(&mut s.e, &mut a);
    // At B, a wrong code first: asked again, by B now.
    let r = s.login(1000, 2, "alice", "000000", Some(&state));
    let again = state_of(&r[0]);
    assert_ne!(again, state);
    assert_eq!(s.e.stats().get(Counter::MfaTakenOver), 1);
    let code = s.code();
    let r = s.login(1000, 3, "alice", &code, Some(&again));
    let p = parse(&r[0]);
    assert_eq!(p.code(), Code::ACCESS_ACCEPT);
    assert!(
        p.find(attr::TUNNEL_PASSWORD).is_some(),
        "the upstream's attributes, re-encrypted by B"
    );
    let last = s.audit.last().expect("recorded");
    assert_eq!(
        (last.result, last.server.as_str()),
        (ResultCode::SuccessOathCodeVerified, "sim-b")
    );
    // The State A sent is used up: no node takes it again.
    assert!(s.login(1000, 4, "alice", &code, Some(&state)).is_empty());
    s.advance(Duration::from_secs(2));
    assert_eq!(parse(&s.out()[0]).code(), Code::ACCESS_REJECT);
    assert_eq!(
        s.audit.last().map(|a| (a.result, a.reason.clone())),
        Some((
            ResultCode::FailedOathTokenTimeout,
            Some("unknown or expired State".into())
        ))
    );
}

#[test]
fn a_challenge_taken_over_must_come_from_the_same_client_and_user() {
    let mut s = Sim::new("");
    let r = s.login(1000, 1, "alice", "pw", None);
    let state = state_of(&r[0]);
    let mut b = node_b(&s, "");
    std::mem::swap(&mut s.e, &mut b);
    // Port 60000 is the client "other-nas".
    let code = s.code();
    assert!(s.login(60000, 2, "alice", &code, Some(&state)).is_empty());
    s.advance(Duration::from_secs(2));
    assert_eq!(parse(&s.out()[0]).code(), Code::ACCESS_REJECT);
    assert_eq!(
        s.audit.last().map(|a| a.result),
        Some(ResultCode::SuccessInvalidInput)
    );
    // Taken (and refused) once: gone for the right client too.
    assert!(s.login(1000, 3, "alice", &code, Some(&state)).is_empty());
    s.advance(Duration::from_secs(2));
    assert_eq!(parse(&s.out()[0]).code(), Code::ACCESS_REJECT);
    assert_eq!(
        s.audit.last().map(|a| a.result),
        Some(ResultCode::FailedOathTokenTimeout)
    );
}

#[test]
fn an_sms_code_sent_by_one_node_is_entered_at_the_other() {
    let mut s = oob_sim("");
    s.set_user("bob", Method::Sms, Some("+4930123456"));
    assert!(s.login(1000, 1, "bob", "pw", None).is_empty());
    let d = s.delivered();
    let code = json(&d)["code"].as_str().expect("code").to_owned();
    let r = s.out();
    let state = state_of(&r[0]);
    assert_eq!(s.store.verifications(s.unix).expect("list").len(), 1);
    let mut a = node_b(&s, &oob_extra());
    std::mem::swap(&mut s.e, &mut a);
    let r = s.login(1000, 2, "bob", &code, Some(&state));
    assert_eq!(parse(&r[0]).code(), Code::ACCESS_ACCEPT);
    let last = s.audit.last().expect("recorded");
    assert_eq!(
        (last.result, last.mode.as_str(), last.server.as_str()),
        (ResultCode::SuccessSmsAuthenticated, "sms", "sim-b")
    );
    assert!(
        s.store.verifications(s.unix).expect("list").is_empty(),
        "B ended the verification A started"
    );
}

/// What [`oob_sim`] adds to `[mfa]`, for the second node.
fn oob_extra() -> String {
    format!(
        "push_timeout = \"60s\"\nbusy_grace = \"60s\"\n\n\
         [[provider]]\nname = \"gw\"\ntype = \"webhook\"\nmethods = [\"push\", \"call\", \"sms\"]\n\
         url = \"https://gw.example/verify\"\nkey = \"{}\"\n",
        String::from_utf8_lossy(super::tests_oob::PROVIDER_KEY)
    )
}
