//! The audit trail.

use rusqlite::params;

use super::audit::REPORT_SQL;
use super::tests::store;
use super::*;
use crate::store::testkit::Steps;

#[test]
fn audit_round_trip_and_filters() {
    let s = store();
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
    // The report reads a range of the time index, in its order.
    let plan: Vec<String> = s
        .conn()
        .prepare(&format!("EXPLAIN QUERY PLAN {REPORT_SQL}"))
        .expect("plan")
        .query_map(params!["a", 15], |r| r.get(3))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("plan");
    let plan = plan.join("; ");
    assert!(
        plan.contains("USING INDEX audit_at (at>?)") && !plan.contains("TEMP B-TREE"),
        "{plan}"
    );
}
