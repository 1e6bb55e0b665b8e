//! Two nodes on one store (issue 16): a challenge one node sent, answered
//! at the other (the NAS failed over between the rounds); a provider's
//! callback at the node that does not hold the NAS request. The Sim drives
//! one engine at a time against its store; swapping in a second engine
//! makes it the other node. The store's wake-up (PostgreSQL's NOTIFY) is
//! played by calling `answer_kept`, as the shell does.

use std::time::Duration;

use super::tests_mfa::*;
use super::tests_oob::{PROVIDER_KEY, json, oob_sim};
use super::*;
use crate::mfa::Method;
use crate::mfa::ResultCode;
use crate::store::Store;
use crate::store::login::StoreOp;
use crate::store::testkit::Steps;

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
    let denied = |s: &Sim| {
        s.store
            .login_state("alice", s.unix)
            .expect("q")
            .expect("alice")
            .denied
    };
    assert!(denied(&s), "counted toward lockout");
    let again = state_of(&r[0]);
    assert_ne!(again, state);
    assert_eq!(s.e.stats().get(Counter::MfaTakenOver), 1);
    let code = s.code();
    let r = s.login(1000, 3, "alice", &code, Some(&again));
    let p = parse(&r[0]);
    assert_eq!(p.code(), Code::ACCESS_ACCEPT);
    assert!(!denied(&s), "the right code, in the same login, cleared it");
    assert!(
        p.find(attr::TUNNEL_PASSWORD).is_some(),
        "the upstream's attributes, re-encrypted by B"
    );
    let last = s.audit.last().expect("recorded");
    assert_eq!(
        (last.result, last.server.as_str()),
        (ResultCode::SuccessOathCodeVerified, "sim-b")
    );
    // A, which sent it, does not take it again either, even with a code
    // of the next step (the NAS sent the State there too).
    std::mem::swap(&mut s.e, &mut a);
    s.advance(Duration::from_secs(30));
    let next = s.code();
    assert!(s.login(1000, 5, "alice", &next, Some(&state)).is_empty());
    s.advance(Duration::from_secs(2));
    assert_eq!(parse(&s.out()[0]).code(), Code::ACCESS_REJECT);
    assert_eq!(
        s.audit
            .last()
            .map(|a| (a.result, a.reason.clone(), a.server.clone())),
        Some((
            ResultCode::FailedOathTokenTimeout,
            Some("the State was answered at another node".into()),
            "sim".into()
        ))
    );
    std::mem::swap(&mut s.e, &mut a);
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

/// The verification id of delivery `d`, as a wake-up names it.
fn vid(d: &Delivery) -> Vec<u8> {
    crate::hex::hex_decode(&d.id).expect("hex")
}

#[test]
fn a_callback_at_one_node_releases_the_request_held_at_the_other() {
    let mut s = oob_sim("");
    assert!(s.login(1000, 1, "bob", "pw", None).is_empty());
    let d = s.delivered();
    assert!(s.out().is_empty(), "the NAS request is held at A");
    let mut other = node_b(&s, &oob_extra());
    std::mem::swap(&mut s.e, &mut other);
    let approve = r#"{"result":"approved"}"#;
    // A callback no provider signed is refused at once, without the store.
    let forged = sign(b"another-key-0123456789", approve.as_bytes());
    assert_eq!(
        s.e.handle_callback(s.now, &d.id, approve.as_bytes(), Some(&forged)),
        CallbackTaken::Now(CallbackStatus::BadSignature)
    );
    assert!(
        s.e.poll_store_jobs().is_empty(),
        "nothing asked of the store"
    );
    assert_eq!(
        s.callback(&d.id, r#"{"result":"maybe"}"#),
        CallbackStatus::Malformed
    );
    assert_eq!(
        s.callback(&"ab".repeat(16), approve),
        CallbackStatus::Unknown
    );
    assert_eq!(s.callback(&d.id, approve), CallbackStatus::Accepted);
    assert_eq!(s.callback(&d.id, approve), CallbackStatus::Unknown, "once");
    assert_eq!(s.e.stats().get(Counter::CallbackPassed), 1);
    assert!(s.out().is_empty(), "nothing for B to answer");
    std::mem::swap(&mut s.e, &mut other);
    // A is woken, takes the answer and answers its NAS.
    s.e.answer_kept(s.now, &vid(&d));
    s.pump();
    let r = s.out();
    assert_eq!(parse(&r[0]).code(), Code::ACCESS_ACCEPT);
    assert!(parse(&r[0]).find(attr::TUNNEL_PASSWORD).is_some());
    let last = s.audit.last().expect("recorded");
    assert_eq!(
        (last.result, last.server.as_str()),
        (ResultCode::SuccessPhoneAppAuthenticated, "sim")
    );
    assert_eq!(s.e.stats().get(Counter::CallbackTaken), 1);
    assert!(s.store.verifications(s.unix).expect("list").is_empty());

    // A callback that reaches the node holding the request is used up in
    // the store too: sent again to the other node while A's login has not
    // ended its verification yet (A's other jobs held back), it is unknown
    // there.
    s.advance(Duration::from_secs(61));
    assert!(s.login(1002, 3, "bob", "pw", None).is_empty());
    let d = s.delivered();
    let sig = sign(PROVIDER_KEY, approve.as_bytes());
    let taken =
        s.e.handle_callback(s.now, &d.id, approve.as_bytes(), Some(&sig));
    assert_eq!(taken, CallbackTaken::Now(CallbackStatus::Accepted));
    let (used, held): (Vec<_>, Vec<_>) = (s.e.poll_store_jobs().into_iter())
        .partition(|j| matches!(j.op, StoreOp::AnswerUsed { .. }));
    assert_eq!(used.len(), 1, "the answer is used up in the store");
    let run = |s: &Sim, jobs: Vec<StoreJob>| {
        let at: Vec<i64> = jobs.iter().map(|j| j.at).collect();
        let (ids, ops): (Vec<u64>, Vec<_>) = jobs.into_iter().map(|j| (j.id, j.op)).unzip();
        let answers = crate::store::login::stage_batch(&s.store, &ops, &at);
        ids.into_iter()
            .zip(answers.into_iter().map(|a| a.finish()))
            .collect::<Vec<_>>()
    };
    run(&s, used);
    std::mem::swap(&mut s.e, &mut other);
    assert_eq!(s.callback(&d.id, approve), CallbackStatus::Unknown, "once");
    std::mem::swap(&mut s.e, &mut other);
    for job in &held {
        if let StoreOp::Audit(a) = &job.op {
            s.audit.push(a.clone());
        }
    }
    for (id, answer) in run(&s, held) {
        s.e.handle_store(s.now, id, answer);
    }
    s.pump();
    assert_eq!(parse(&s.out()[0]).code(), Code::ACCESS_ACCEPT);

    // A wake-up that went missing (the listening connection was lost):
    // after it reconnects, A looks for itself.
    s.advance(Duration::from_secs(61));
    assert!(s.login(1001, 2, "bob", "pw", None).is_empty());
    let d = s.delivered();
    std::mem::swap(&mut s.e, &mut other);
    let deny = r#"{"result":"denied"}"#;
    assert_eq!(s.callback(&d.id, deny), CallbackStatus::Accepted);
    std::mem::swap(&mut s.e, &mut other);
    s.e.answers_missed(s.now);
    s.pump();
    // Rejects leave after `reject_delay`.
    s.advance(Duration::from_secs(2));
    assert_eq!(parse(&s.out()[0]).code(), Code::ACCESS_REJECT);
    assert_eq!(
        s.last_result(),
        Some((ResultCode::FailedPhoneAppDenied, false))
    );
}

#[test]
fn number_matching_is_answered_at_the_other_node_whichever_comes_first() {
    let mut s = oob_sim("number_matching = true");
    let mut other = node_b(&s, &format!("number_matching = true\n{}", oob_extra()));
    let number = |d: &Delivery| json(d)["number"].as_u64().expect("number");

    // The phone first, its callback at A while the NAS shows the number;
    // then the NAS answers the challenge at B.
    assert!(s.login(1000, 1, "bob", "pw", None).is_empty());
    let d = s.delivered();
    let state = state_of(&s.out()[0]);
    let approve = format!(r#"{{"result":"approved","number":{}}}"#, number(&d));
    assert_eq!(s.callback(&d.id, &approve), CallbackStatus::Accepted);
    std::mem::swap(&mut s.e, &mut other);
    let r = s.login(1000, 2, "bob", "", Some(&state));
    assert_eq!(parse(&r[0]).code(), Code::ACCESS_ACCEPT);
    assert!(parse(&r[0]).find(attr::TUNNEL_PASSWORD).is_some());
    let last = s.audit.last().expect("recorded");
    assert_eq!(
        (last.result, last.server.as_str()),
        (ResultCode::SuccessPhoneAppAuthenticated, "sim-b")
    );
    // A's challenge expires: B ended the login, so A records nothing.
    std::mem::swap(&mut s.e, &mut other);
    let records = s.audit.len();
    s.advance(Duration::from_secs(61));
    s.pump();
    assert_eq!(s.audit.len(), records, "one record per login");
    assert_eq!(s.e.stats().get(Counter::MfaHandedAway), 1);
    assert_eq!(s.e.pending_verifications(), 0);

    // The NAS first, at B, which holds its request; then the phone's
    // callback reaches A, which passes it on to B.
    assert!(s.login(1001, 3, "bob", "pw", None).is_empty());
    let d = s.delivered();
    let state = state_of(&s.out()[0]);
    std::mem::swap(&mut s.e, &mut other);
    assert!(s.login(1001, 4, "bob", "", Some(&state)).is_empty());
    let held = s.store.verifications(s.unix).expect("list");
    assert_eq!(held[0].node, "sim-b", "B holds the request now");
    std::mem::swap(&mut s.e, &mut other);
    let approve = format!(r#"{{"result":"approved","number":{}}}"#, number(&d));
    assert_eq!(s.callback(&d.id, &approve), CallbackStatus::Accepted);
    assert!(s.out().is_empty());
    std::mem::swap(&mut s.e, &mut other);
    s.e.answer_kept(s.now, &vid(&d));
    s.pump();
    assert_eq!(parse(&s.out()[0]).code(), Code::ACCESS_ACCEPT);
    let last = s.audit.last().expect("recorded");
    assert_eq!(
        (last.result, last.server.as_str()),
        (ResultCode::SuccessPhoneAppAuthenticated, "sim-b")
    );
    assert!(s.store.verifications(s.unix).expect("list").is_empty());
}

/// What [`oob_sim`] adds to `[mfa]`, for the second node.
fn oob_extra() -> String {
    format!(
        "push_timeout = \"60s\"\nbusy_grace = \"60s\"\n\n\
         [[provider]]\nname = \"gw\"\ntype = \"webhook\"\nmethods = [\"push\", \"call\", \"sms\"]\n\
         url = \"https://gw.example/verify\"\nkey = \"{}\"\n",
        String::from_utf8_lossy(PROVIDER_KEY)
    )
}
