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
