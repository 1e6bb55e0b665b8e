//! What an outside test found (issue 14), on the virtual clock: answers
//! wait for their audit record, EAP rejects carry EAP-Failure, the inner
//! identity of an EAP Accept counts, pending logins are recorded at stop.

use std::time::Duration;

use super::tests_mfa::*;
use super::tests_oob::*;
use super::*;
use crate::mfa::Method;
use crate::mfa::ResultCode;
use crate::radius::crypto;
use crate::store::login::{self as jobs, StoreAnswer, StoreOp};

/// Runs the queued store jobs once, answering audits with `audit`.
/// Returns how many audit jobs there were.
fn pump_once(s: &mut Sim, audit: &StoreAnswer) -> usize {
    let jobs = s.e.poll_store_jobs();
    let mut audits = 0;
    for job in jobs {
        let answer = match &job.op {
            StoreOp::Audit(a) => {
                audits += 1;
                s.audit.push(a.clone());
                audit.clone()
            }
            op => jobs::run(&s.store, op, s.unix),
        };
        s.e.handle_store(s.now, job.id, answer);
    }
    audits
}

/// Alice's challenge answered with the right code, the store not yet run.
fn code_sent(s: &mut Sim) {
    let ch = s.login(1000, 1, "alice", "pw", None);
    let state = state_of(&ch[0]);
    let code = s.code();
    let req = request(2, [2 ^ 0xe8; 16], "alice", &code, Some(&state));
    s.e.handle_nas(s.now, 0, from(1000), &req);
}

#[test]
fn an_accept_leaves_only_once_its_audit_record_is_stored() {
    let mut s = Sim::new("");
    code_sent(&mut s);
    assert_eq!(pump_once(&mut s, &StoreAnswer::Done), 0, "the code check");
    assert!(s.out().is_empty(), "decided, but not yet on record");
    assert_eq!(s.e.store_waits(), 1, "the answer waits for its record");
    // A retransmission meanwhile is not a second login.
    let req = request(2, [2 ^ 0xe8; 16], "alice", &s.code(), None);
    s.e.handle_nas(s.now, 0, from(1000), &req);
    assert!(s.out().is_empty());
    assert_eq!(pump_once(&mut s, &StoreAnswer::Done), 1, "the record");
    let out = s.out();
    assert_eq!(out.len(), 1);
    assert_eq!(parse(&out[0]).code(), Code::ACCESS_ACCEPT);
    assert_eq!(s.e.store_waits(), 0);
}

#[test]
fn an_accept_whose_record_cannot_be_stored_becomes_a_reject() {
    let mut s = Sim::new("");
    code_sent(&mut s);
    pump_once(&mut s, &StoreAnswer::Done);
    assert_eq!(pump_once(&mut s, &StoreAnswer::Failed), 1);
    let out = s.out();
    assert_eq!(out.len(), 1, "answered at once, not after reject_delay");
    assert_eq!(parse(&out[0]).code(), Code::ACCESS_REJECT);
    assert_eq!(s.e.stats().get(Counter::MfaAuditFailures), 1);
    assert_eq!(s.e.stats().get(Counter::RepliesAccept), 0);
}

/// An EAP Access-Request (Response/Identity, EAP identifier `eap_id`).
fn eap_request(id: u8, outer: &str, eap_id: u8) -> Vec<u8> {
    let auth = [id; 16];
    let mut b = PacketBuilder::new(Code::ACCESS_REQUEST, id, &auth);
    b.push_message_authenticator().expect("fits");
    b.push(attr::USER_NAME, outer.as_bytes()).expect("fits");
    let mut eap = vec![2, eap_id, 0, 5 + outer.len() as u8, 1];
    eap.extend_from_slice(outer.as_bytes());
    b.push(attr::EAP_MESSAGE, &eap).expect("fits");
    b.finish_request(NAS)
}

/// The upstream ends the EAP dialogue with an Access-Accept carrying
/// EAP-Success and, if given, the inner identity as User-Name.
fn eap_accept(t: &Transmit, inner: Option<&str>) -> Vec<u8> {
    let p = parse(t);
    let eap_id = p.find(attr::EAP_MESSAGE).expect("EAP").value[1];
    let mut b = PacketBuilder::new(Code::ACCESS_ACCEPT, p.identifier(), &[0; 16]);
    b.push_message_authenticator().expect("fits");
    if let Some(name) = inner {
        b.push(attr::USER_NAME, name.as_bytes()).expect("fits");
    }
    b.push(attr::EAP_MESSAGE, &[3, eap_id, 0, 4]).expect("fits");
    for ps in p.attributes().filter(|a| a.typ == attr::PROXY_STATE) {
        b.push_raw(ps.raw(&p)).expect("fits");
    }
    b.finish_response(UP, p.authenticator())
}

/// Sends an EAP login for `outer` whose upstream names `inner`; returns
/// what reached the NAS.
fn eap_login(s: &mut Sim, id: u8, outer: &str, inner: Option<&str>) -> Vec<Transmit> {
    s.e.handle_nas(s.now, 0, from(1000), &eap_request(id, outer, 42));
    let mut to_nas = Vec::new();
    for t in s.out() {
        match t.socket {
            SocketRef::Upstream(sock) => {
                let reply = eap_accept(&t, inner);
                s.e.handle_upstream(s.now, sock, t.to, &reply);
            }
            SocketRef::Listener(_) => to_nas.push(t),
        }
    }
    s.pump();
    to_nas.extend(s.out());
    to_nas
}

fn assert_eap_failure(t: &Transmit, eap_id: u8) {
    let p = parse(t);
    assert_eq!(p.code(), Code::ACCESS_REJECT);
    assert_eq!(
        p.find(attr::EAP_MESSAGE).map(|a| a.value),
        Some(&[4, eap_id, 0, 4][..]),
        "RFC 3579 §2.6.3: an Access-Reject ending EAP carries EAP-Failure"
    );
    let off = p.message_authenticator_offset().expect("signed");
    assert!(crypto::verify_message_authenticator(
        &t.payload, off, &[9; 16], NAS
    ));
}

#[test]
fn the_inner_identity_of_an_eap_accept_counts_and_a_denied_push_ends_in_eap_failure() {
    let mut s = oob_sim("fallback_oath = false");
    // PEAP's anonymous outer identity; the upstream names bob inside.
    assert!(
        eap_login(&mut s, 9, "anonymous", Some("bob")).is_empty(),
        "bob's push is out"
    );
    let d = s.delivered();
    assert_eq!(json(&d)["user"], "bob");
    assert_eq!(
        s.callback(&d.id, r#"{"result":"denied"}"#),
        CallbackStatus::Accepted
    );
    s.advance(Duration::from_millis(1300));
    let out = s.out();
    assert_eq!(out.len(), 1);
    assert_eap_failure(&out[0], 42);
    let last = s.audit.last().expect("record");
    assert_eq!(
        (last.user.as_str(), last.result),
        ("bob", ResultCode::FailedPhoneAppDenied)
    );
}

#[test]
fn without_an_inner_identity_the_outer_one_counts() {
    let mut s = oob_sim("");
    // No User-Name in the Accept: "anonymous" is looked up, and is no user.
    eap_login(&mut s, 9, "anonymous", None);
    s.advance(Duration::from_millis(1300));
    let out = s.out();
    assert_eq!(out.len(), 1);
    assert_eap_failure(&out[0], 42);
    let last = s.audit.last().expect("record");
    assert_eq!(
        (last.user.as_str(), last.result),
        ("anonymous", ResultCode::ConfigIssue)
    );
    // A real outer identity works as before.
    s.set_user("bob", Method::Push, Some("+4930123456"));
    assert!(
        eap_login(&mut s, 10, "bob", None).is_empty(),
        "push for bob"
    );
    assert_eq!(json(&s.delivered())["user"], "bob");
}

#[test]
fn logins_pending_at_shutdown_are_recorded() {
    let mut s = oob_sim("");
    // Alice is challenged for a code, bob waits for his push.
    let ch = s.login(1000, 1, "alice", "pw", None);
    assert_eq!(parse(&ch[0]).code(), Code::ACCESS_CHALLENGE);
    assert!(s.login(1001, 2, "bob", "pw", None).is_empty());
    s.delivered();
    let before = s.audit.len();
    s.e.shutdown(s.now);
    s.pump();
    let mut ended: Vec<_> = s.audit[before..]
        .iter()
        .map(|a| (a.user.as_str(), a.result, a.accepted))
        .collect();
    ended.sort_by_key(|e| e.0);
    assert_eq!(
        ended,
        vec![
            ("alice", ResultCode::FailedServerError, false),
            ("bob", ResultCode::FailedServerError, false)
        ]
    );
    assert!(s.out().is_empty(), "the NAS fails over: no answer");
    assert_eq!(s.e.logins_pending(), 0);
    assert_eq!(s.e.pending_verifications(), 0);
}

#[test]
fn a_delivery_that_never_left_this_host_fails_closed_even_under_fail_open() {
    let mut s = oob_sim("fail_mode = \"fail_open\"");
    assert!(s.login(1000, 1, "bob", "pw", None).is_empty());
    let d = s.e.poll_delivery().expect("delivery");
    s.e.handle_delivery(s.now, &d.id, DeliveryOutcome::LocalFailure);
    s.pump();
    s.advance(Duration::from_millis(1300));
    let out = s.out();
    assert_eq!(out.len(), 1);
    assert_eq!(parse(&out[0]).code(), Code::ACCESS_REJECT);
    assert_eq!(
        s.last_result(),
        Some((ResultCode::FailedServerError, false)),
        "out of descriptors is not the provider's fault"
    );
    assert_eq!(s.e.pending_verifications(), 0);
}

#[test]
fn a_state_presented_by_another_nas_is_refused_to_that_nas() {
    let mut s = Sim::new("");
    let state = state_of(&s.login(1000, 1, "alice", "pw", None)[0]);
    // Found by the engine fuzz target: the reject was built for the NAS
    // that was challenged, with its secret, and sent to the other one.
    assert!(
        s.login(60001, 2, "alice", &s.code(), Some(&state))
            .is_empty()
    );
    s.advance(Duration::from_secs(2));
    let out = s.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].to, from(60001));
    assert_eq!(parse(&out[0]).code(), Code::ACCESS_REJECT);
    let last = s.audit.last().expect("record");
    assert_eq!(
        (last.client.as_str(), last.result),
        ("other-nas", ResultCode::SuccessInvalidInput)
    );
}

#[test]
fn outside_eap_a_renamed_user_in_the_accept_does_not_count() {
    let mut s = Sim::new("");
    let req = request(1, [1 ^ 0xe8; 16], "alice", "pw", None);
    s.e.handle_nas(s.now, 0, from(1000), &req);
    for t in s.out() {
        let SocketRef::Upstream(sock) = t.socket else {
            continue;
        };
        // NPS answering with the account's down-level name.
        let p = parse(&t);
        let mut b = PacketBuilder::new(Code::ACCESS_ACCEPT, p.identifier(), &[0; 16]);
        b.push_message_authenticator().expect("fits");
        b.push(attr::USER_NAME, b"CORP\\alice").expect("fits");
        for ps in p.attributes().filter(|a| a.typ == attr::PROXY_STATE) {
            b.push_raw(ps.raw(&p)).expect("fits");
        }
        let reply = b.finish_response(UP, p.authenticator());
        s.e.handle_upstream(s.now, sock, t.to, &reply);
    }
    s.pump();
    let out = s.out();
    assert_eq!(out.len(), 1);
    assert_eq!(
        parse(&out[0]).code(),
        Code::ACCESS_CHALLENGE,
        "alice, as the NAS named her, is asked for her code"
    );
}

#[test]
fn a_stalled_store_holds_no_answer_past_the_limit() {
    let mut s = Sim::new("");
    code_sent(&mut s);
    pump_once(&mut s, &StoreAnswer::Done);
    // The audit job never comes back (a hung disk).
    assert_eq!(s.e.poll_store_jobs().len(), 1);
    s.advance(Duration::from_secs(4));
    assert!(s.out().is_empty(), "still waiting for the record");
    s.advance(Duration::from_secs(2));
    let out = s.out();
    assert_eq!(out.len(), 1);
    assert_eq!(
        parse(&out[0]).code(),
        Code::ACCESS_REJECT,
        "an Accept not on record is refused"
    );
    assert_eq!(s.e.stats().get(Counter::MfaAuditFailures), 1);
    assert_eq!(s.e.store_waits(), 0, "nothing held any more");
    // Its duplicate-cache entry is answered, not left in flight.
    let req = request(2, [2 ^ 0xe8; 16], "alice", &s.code(), None);
    s.e.handle_nas(s.now, 0, from(1000), &req);
    assert_eq!(
        s.out().len(),
        1,
        "the retransmission gets the cached reject"
    );
}

/// Alice's first factor accepted upstream; the store's question about her
/// is dropped (a dead or hung worker) and she waits.
fn facts_never_answered(s: &mut Sim) {
    let req = request(1, [1 ^ 0xe8; 16], "alice", "pw", None);
    s.e.handle_nas(s.now, 0, from(1000), &req);
    for t in s.out() {
        if let SocketRef::Upstream(sock) = t.socket {
            s.e.handle_upstream(s.now, sock, t.to, &upstream_accept(&t));
        }
    }
    let jobs = s.e.poll_store_jobs();
    assert!(matches!(
        jobs[..],
        [StoreJob {
            op: StoreOp::Facts { .. },
            ..
        }]
    ));
    assert_eq!(s.e.store_waits(), 1);
}

#[test]
fn a_login_the_store_never_answers_ends_as_a_server_error() {
    let mut s = Sim::new("");
    facts_never_answered(&mut s);
    s.advance(Duration::from_secs(9));
    assert_eq!(s.e.store_waits(), 1, "still waiting");
    assert!(
        s.e.poll_store_jobs()
            .iter()
            .all(|j| matches!(j.op, StoreOp::Heartbeat(_))),
        "nothing asked again but the node's heartbeat"
    );
    s.advance(Duration::from_secs(2));
    assert_eq!(s.e.stats().get(Counter::MfaStoreFailures), 1);
    assert_eq!(pump_once(&mut s, &StoreAnswer::Done), 1, "its record");
    let a = s.audit.last().expect("recorded");
    assert_eq!(
        (a.result, a.accepted),
        (ResultCode::FailedServerError, false)
    );
    assert_eq!(
        a.reason.as_deref(),
        Some("the store did not answer in time")
    );
    s.advance(Duration::from_secs(2));
    let out = s.out();
    assert_eq!(out.len(), 1);
    assert_eq!(parse(&out[0]).code(), Code::ACCESS_REJECT);
    assert_eq!(s.e.store_waits(), 0);
    assert_eq!(s.e.logins_pending(), 0, "nothing left waiting");
}

#[test]
fn a_stalled_store_fails_closed_even_under_fail_open() {
    // Blocked? Denied by a group policy? Unknown without the store.
    let mut s = Sim::new("fail_mode = \"fail_open\"");
    facts_never_answered(&mut s);
    s.advance(Duration::from_secs(11));
    assert_eq!(pump_once(&mut s, &StoreAnswer::Done), 1);
    let a = s.audit.last().expect("recorded");
    assert_eq!(
        (a.result, a.accepted),
        (ResultCode::FailedServerError, false)
    );
    // A code whose check the store failed: what was typed was never checked.
    let mut s = Sim::new("fail_mode = \"fail_open\"");
    code_sent(&mut s);
    let jobs = s.e.poll_store_jobs();
    // The code's check, which uses the State up in the store first.
    assert!(matches!(
        jobs[..],
        [StoreJob {
            op: StoreOp::Verify {
                answers: Some(_),
                ..
            },
            ..
        }]
    ));
    s.e.handle_store(s.now, jobs[0].id, StoreAnswer::Failed);
    assert_eq!(pump_once(&mut s, &StoreAnswer::Done), 1);
    let a = s.audit.last().expect("recorded");
    assert_eq!(
        (a.result, a.accepted),
        (ResultCode::FailedServerError, false)
    );
    s.advance(Duration::from_secs(2));
    assert_eq!(parse(&s.out()[0]).code(), Code::ACCESS_REJECT);
}

#[test]
fn a_dead_store_thread_fails_the_waiting_login_at_once() {
    let mut s = Sim::new("");
    let req = request(1, [1 ^ 0xe8; 16], "alice", "pw", None);
    s.e.handle_nas(s.now, 0, from(1000), &req);
    for t in s.out() {
        if let SocketRef::Upstream(sock) = t.socket {
            s.e.handle_upstream(s.now, sock, t.to, &upstream_accept(&t));
        }
    }
    // The shell cannot hand the question over: the thread is gone.
    let jobs = s.e.poll_store_jobs();
    s.e.store_refused(s.now, jobs);
    assert_eq!(s.e.stats().get(Counter::StoreQueueFull), 1);
    assert_eq!(s.e.stats().get(Counter::MfaStoreFailures), 1);
    // Its record cannot be handed over either: the reject goes out as
    // decided, after reject_delay.
    let jobs = s.e.poll_store_jobs();
    assert!(matches!(
        jobs[..],
        [StoreJob {
            op: StoreOp::Audit(_),
            ..
        }]
    ));
    s.e.store_refused(s.now, jobs);
    s.advance(Duration::from_secs(2));
    let out = s.out();
    assert_eq!(out.len(), 1);
    assert_eq!(parse(&out[0]).code(), Code::ACCESS_REJECT);
    assert_eq!(s.e.store_waits(), 0);
    assert_eq!(s.e.logins_pending(), 0);
}

/// A User-Name with a NUL is refused before the store sees it: PostgreSQL
/// refuses NUL in text, and would fail every login of its burst.
#[test]
fn a_user_name_with_a_nul_never_reaches_the_store() {
    let mut s = Sim::new("");
    assert!(s.login(1000, 1, "bo\0b", "pw", None).is_empty());
    assert!(
        s.e.poll_store_jobs()
            .iter()
            .all(|j| matches!(j.op, StoreOp::Audit(_) | StoreOp::Heartbeat(_))),
        "no question about that user"
    );
    s.pump();
    s.advance(Duration::from_secs(2));
    assert_eq!(parse(&s.out()[0]).code(), Code::ACCESS_REJECT);
    let a = s.audit.last().expect("recorded");
    assert_eq!(a.result, ResultCode::FailedServerError);
    assert!(
        a.reason.as_deref().is_some_and(|r| r.contains("NUL")),
        "{a:?}"
    );
    assert!(!a.user.contains('\0'));
}
