//! The audit trail.

use super::*;

pub(super) fn audit_round_trip_and_filters(f: &Fixture) {
    let s = f.store();
    for (at, user, result) in [
        (10, "a", ResultCode::SuccessOathCodeVerified),
        (20, "b", ResultCode::FailedOathCodeIncorrect),
    ] {
        s.append_audit(&AuditRecord {
            at,
            user: user.into(),
            result,
            accepted: result == ResultCode::SuccessOathCodeVerified,
            mode: "totp".into(),
            server: "s1".into(),
            client: "vpn".into(),
            client_ip: Some("192.0.2.7".into()),
            reason: None,
        })
        .expect("append");
    }
    assert_eq!(s.audit(None, None).expect("all").len(), 2);
    assert_eq!(
        s.audit(Some("B"), None).expect("b")[0].result,
        ResultCode::FailedOathCodeIncorrect
    );
    assert_eq!(s.audit(None, Some(15)).expect("since").len(), 1);
    assert_eq!(s.audit(Some("a"), Some(15)).expect("since").len(), 0);
}

/// A burst's audit records and challenges are written together (one
/// statement each where the backend can): the records in order, NULLs
/// kept, and a challenge put in the burst taken later in it.
pub(super) fn a_burst_writes_its_records_and_challenges_together(f: &Fixture) {
    use crate::store::login::{StoreAnswer, StoreOp, run_batch};
    let s = f.store();
    let rec = |user: &str, ip: Option<&str>, reason: Option<&str>| AuditRecord {
        at: 0,
        user: user.into(),
        result: ResultCode::SuccessOathCodeVerified,
        accepted: true,
        mode: "totp".into(),
        server: "s1".into(),
        client: "vpn".into(),
        client_ip: ip.map(str::to_owned),
        reason: reason.map(str::to_owned),
    };
    let put = |state: u8| StoreOp::PutChallenge {
        state: vec![state; 20],
        node: "s1".into(),
        user: "zoë".into(),
        expires_at: 500,
        login: zeroize::Zeroizing::new(vec![state; 8]),
    };
    let take = |state: u8| StoreOp::TakeChallenge {
        state: vec![state; 20],
        node: "s2".into(),
    };
    let answers = run_batch(
        s.as_login(),
        &[
            StoreOp::Audit(rec("zoë", Some("192.0.2.7"), None)),
            take(1),
            put(1),
            StoreOp::Audit(rec("Zoë", None, Some("a reason"))),
            put(2),
        ],
        100,
    );
    assert_eq!(answers[0], StoreAnswer::Done);
    assert!(
        matches!(&answers[1], StoreAnswer::Challenge(Some(h)) if h.0.as_slice() == [1; 8]),
        "{:?}",
        answers[1]
    );
    assert_eq!(
        answers[2..],
        [StoreAnswer::Done, StoreAnswer::Done, StoreAnswer::Done]
    );
    let trail = s.audit(Some("ZOË"), None).expect("audit");
    assert_eq!(
        trail
            .iter()
            .map(|r| (
                r.at,
                r.user.as_str(),
                r.client_ip.as_deref(),
                r.reason.as_deref()
            ))
            .collect::<Vec<_>>(),
        [
            (100, "zoë", Some("192.0.2.7"), None),
            (100, "Zoë", None, Some("a reason"))
        ]
    );
    let taken = run_batch(s.as_login(), &[take(2)], 100);
    assert!(matches!(&taken[0], StoreAnswer::Challenge(Some(_))));
}

/// `audit_keep`: the oldest records go first, at most `limit` at a time.
pub(super) fn old_audit_records_are_pruned_oldest_first(f: &Fixture) {
    let s = f.store();
    for at in [30, 10, 20, 40] {
        s.append_audit(&AuditRecord {
            at,
            user: "p".into(),
            result: ResultCode::SuccessOathCodeVerified,
            accepted: true,
            mode: "totp".into(),
            server: "s1".into(),
            client: "vpn".into(),
            client_ip: None,
            reason: None,
        })
        .expect("append");
    }
    let prune =
        |before, limit| in_tx(s.as_login(), |tx| tx.prune_audit(before, limit)).expect("prune");
    let left = || {
        s.audit(None, None)
            .expect("all")
            .iter()
            .map(|r| r.at)
            .collect::<Vec<_>>()
    };
    assert_eq!(prune(35, 1), 1);
    assert_eq!(left(), [20, 30, 40], "the oldest first");
    assert_eq!(prune(35, 10), 2);
    assert_eq!(left(), [40]);
    assert_eq!(prune(35, 10), 0);
}
