//! The policy table: each test is a row — a situation and what it needs.

use std::net::IpAddr;
use std::time::Duration;

use super::*;
use crate::mfa::{Method, Remembered, ResultCode as R};

const HOUR: i64 = 3600;
const NOW: i64 = 1_800_000_000;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn office() -> TrustedNetwork {
    TrustedNetwork {
        name: "office".into(),
        ranges: vec![
            "10.1.0.0/16".parse().expect("v4"),
            "2001:db8:1::/48".parse().expect("v6"),
        ],
    }
}

fn rules(policies: Vec<Policy>) -> Rules {
    Rules {
        networks: vec![office()],
        policies,
        ..Rules::default()
    }
}

fn policy(name: &str, when: Conditions, set: Settings) -> Policy {
    Policy {
        name: name.into(),
        when,
        set,
    }
}

fn skip_office() -> Policy {
    policy(
        "office-skip",
        Conditions {
            networks: vec![0],
            ..Conditions::default()
        },
        Settings {
            mfa: Some(MfaRule::Skip),
            ..Settings::default()
        },
    )
}

/// A PAP login of alice through client "vpn" from 192.0.2.7.
fn request() -> Request<'static> {
    Request {
        user: "alice",
        client: "vpn",
        client_defaults: ClientDefaults {
            fail_mode: FailMode::Closed,
            number_matching: false,
        },
        nas_identifier: None,
        address: Some(ip("192.0.2.7")),
        client_ip: Some("192.0.2.7"),
        auth_type: AuthType::Pap,
        inline_code: false,
        groups: &[],
    }
}

/// Alice with an authenticator app.
fn alice() -> Standing {
    Standing {
        known: true,
        oath: true,
        ..Standing::unknown()
    }
}

fn live() -> Live {
    Live {
        now: NOW,
        ..Live::default()
    }
}

fn need(r: &Rules, req: &Request<'_>, s: &Standing) -> Need {
    decide(r, req, s, live()).need
}

fn result(n: &Need) -> Option<(R, bool)> {
    match n {
        Need::Accept { result, .. } => Some((*result, true)),
        Need::Reject { result, .. } => Some((*result, false)),
        _ => None,
    }
}

fn plan(n: Need) -> Plan {
    match n {
        Need::SecondFactor(p) => p,
        other => panic!("expected a second factor, got {other:?}"),
    }
}

#[test]
fn no_policy_an_app_user_is_prompted() {
    let p = plan(need(&rules(vec![]), &request(), &alice()));
    assert_eq!((p.method, p.start), (Method::Totp, Start::Prompt));
    assert_eq!(p.fail_mode, FailMode::Closed);
    assert_eq!(p.remember, None);
}

#[test]
fn blocked_beats_every_policy_and_bypass() {
    let s = Standing {
        blocked: true,
        bypass_waiting: true,
        ..alice()
    };
    let mut req = request();
    req.address = Some(ip("10.1.2.3"));
    let n = need(&rules(vec![skip_office()]), &req, &s);
    assert_eq!(result(&n), Some((R::SuccessUserBlocked, false)));
}

#[test]
fn a_disabled_user_is_refused_before_block_policy_and_bypass() {
    let s = Standing {
        disabled: Some("corp".into()),
        blocked: true,
        bypass_waiting: true,
        ..alice()
    };
    let mut req = request();
    req.address = Some(ip("10.1.2.3"));
    let n = need(&rules(vec![skip_office()]), &req, &s);
    assert_eq!(result(&n), Some((R::FailedUserDisabled, false)));
    match n {
        Need::Reject { reason, .. } => {
            assert_eq!(reason, "user disabled: no longer in directory corp")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn trusted_network_v4_and_v6_skip() {
    let r = rules(vec![skip_office()]);
    for a in ["10.1.200.9", "2001:db8:1:2::5", "::ffff:10.1.0.1"] {
        let mut req = request();
        req.address = Some(ip(a));
        let d = decide(&r, &req, &alice(), live());
        assert_eq!(d.policy.as_deref(), Some("office-skip"), "{a}");
        assert_eq!(
            result(&d.need),
            Some((R::SuccessSkippedByPolicy, true)),
            "{a}"
        );
        let Need::Accept { reason, .. } = d.need else {
            unreachable!()
        };
        assert!(reason.contains("trusted network office"), "{reason}");
    }
    for a in ["10.2.0.1", "2001:db8:2::1"] {
        let mut req = request();
        req.address = Some(ip(a));
        assert!(
            matches!(need(&r, &req, &alice()), Need::SecondFactor(_)),
            "{a}"
        );
    }
}

#[test]
fn no_user_address_matches_no_network() {
    // The client names an attribute the request lacks: never trusted, even
    // though the NAS itself sits in the office.
    let mut req = request();
    req.address = None;
    assert!(matches!(
        need(&rules(vec![skip_office()]), &req, &alice()),
        Need::SecondFactor(_)
    ));
}

#[test]
fn deny_refuses() {
    let r = rules(vec![policy(
        "no-guests",
        Conditions {
            groups: vec!["Guests".into()],
            ..Conditions::default()
        },
        Settings {
            mfa: Some(MfaRule::Deny),
            ..Settings::default()
        },
    )]);
    let s = Standing {
        groups: vec!["guests".into()],
        ..alice()
    };
    let n = need(&r, &request(), &s);
    assert_eq!(result(&n), Some((R::FailedDeniedByPolicy, false)));
    assert!(matches!(
        need(&r, &request(), &alice()),
        Need::SecondFactor(_)
    ));
}

#[test]
fn first_match_wins_and_all_conditions_must_hold() {
    let vpn_contractors = policy(
        "vpn-contractors",
        Conditions {
            clients: vec!["vpn".into()],
            groups: vec!["contractors".into()],
            ..Conditions::default()
        },
        Settings {
            methods: Some(vec![Method::Push]),
            ..Settings::default()
        },
    );
    let everyone = policy(
        "everyone",
        Conditions::default(),
        Settings {
            mfa: Some(MfaRule::Skip),
            ..Settings::default()
        },
    );
    let r = rules(vec![vpn_contractors, everyone]);
    let upstream = ["contractors".to_string()];
    let mut req = request();
    req.groups = &upstream;
    let d = decide(&r, &req, &alice(), live());
    assert_eq!(d.policy.as_deref(), Some("vpn-contractors"));
    assert_eq!(
        plan(d.need).method,
        Method::Push,
        "group from the upstream's Accept"
    );
    let mut other = request();
    other.client = "wifi";
    other.groups = &upstream;
    let d = decide(&r, &other, &alice(), live());
    assert_eq!(
        d.policy.as_deref(),
        Some("everyone"),
        "one condition fails: next policy"
    );
}

#[test]
fn users_and_nas_identifiers() {
    let r = rules(vec![policy(
        "svc",
        Conditions {
            users: vec!["SVC-Backup".into()],
            nas_identifiers: vec!["rdgw".into()],
            ..Conditions::default()
        },
        Settings {
            mfa: Some(MfaRule::Skip),
            ..Settings::default()
        },
    )]);
    let mut req = request();
    req.user = "svc-backup";
    req.nas_identifier = Some("rdgw");
    assert_eq!(
        result(&need(&r, &req, &alice())),
        Some((R::SuccessSkippedByPolicy, true))
    );
    req.nas_identifier = Some("other");
    assert!(matches!(need(&r, &req, &alice()), Need::SecondFactor(_)));
    req.nas_identifier = None;
    let (hit, traces) = matching(&r, &req, &alice());
    assert_eq!(hit, None);
    assert_eq!(
        traces[0].outcome,
        Err("the request has no NAS-Identifier".into())
    );
}

#[test]
fn bypass_is_claimed_only_where_a_factor_would_run() {
    let s = Standing {
        bypass_waiting: true,
        locked: true,
        ..alice()
    };
    assert_eq!(
        need(&rules(vec![]), &request(), &s),
        Need::ClaimBypass,
        "a bypass beats a lockout"
    );
    let mut req = request();
    req.address = Some(ip("10.1.0.5"));
    assert_eq!(
        result(&need(&rules(vec![skip_office()]), &req, &s)),
        Some((R::SuccessSkippedByPolicy, true)),
        "skipped: the bypass stays for later"
    );
}

#[test]
fn a_bypass_is_kept_when_no_second_factor_would_run() {
    let remembered_user = Standing {
        bypass_waiting: true,
        ..remembered("pap", "vpn", Some("192.0.2.7"), HOUR)
    };
    assert_eq!(
        result(&need(
            &remembering(RememberScope::User),
            &request(),
            &remembered_user
        )),
        Some((R::SuccessUsedCache, true)),
        "remembered: the bypass stays for the day it is meant for"
    );
    let mut open = rules(vec![]);
    open.unenrolled = Unenrolled::Accept;
    let unenrolled = Standing {
        known: true,
        bypass_waiting: true,
        ..Standing::unknown()
    };
    assert_eq!(
        result(&need(&open, &request(), &unenrolled)),
        Some((R::SuccessBypassedAuth, true))
    );
    // Unenrolled users are refused: the bypass is what lets this one in.
    assert_eq!(
        need(&rules(vec![]), &request(), &unenrolled),
        Need::ClaimBypass
    );
}

#[test]
fn locked_refuses() {
    let s = Standing {
        locked: true,
        ..alice()
    };
    assert_eq!(
        result(&need(&rules(vec![]), &request(), &s)),
        Some((R::FailedAuthenticationThrottled, false))
    );
}

fn remembering(scope: RememberScope) -> Rules {
    rules(vec![policy(
        "remember",
        Conditions::default(),
        Settings {
            remember: Some(Some(Remember {
                scope,
                duration: Duration::from_secs(8 * HOUR as u64),
            })),
            ..Settings::default()
        },
    )])
}

fn remembered(auth: &str, app: &str, address: Option<&str>, ago: i64) -> Standing {
    Standing {
        remembered: vec![Remembered {
            auth_type: auth.into(),
            app: app.into(),
            address: address.map(str::to_owned),
            at: NOW - ago,
        }],
        ..alice()
    }
}

#[test]
fn remembered_logins_by_scope() {
    let here = remembered("pap", "vpn", Some("192.0.2.7"), HOUR);
    let elsewhere = remembered("pap", "vpn", Some("198.51.100.1"), HOUR);
    let other_app = remembered("pap", "wifi", Some("192.0.2.7"), HOUR);
    let spoofed = remembered("pap", "wifi/vpn", Some("192.0.2.7"), HOUR);
    let expired = remembered("pap", "vpn", Some("192.0.2.7"), 8 * HOUR);
    let cases = [
        (RememberScope::User, &here, Some(R::SuccessUsedCache)),
        (RememberScope::User, &other_app, Some(R::SuccessUsedCache)),
        (RememberScope::User, &expired, None),
        (
            RememberScope::App,
            &elsewhere,
            Some(R::SuccessUsedAppBasedCache),
        ),
        (RememberScope::App, &other_app, None),
        (RememberScope::App, &spoofed, None),
        (RememberScope::Ip, &here, Some(R::SuccessUsedIpBasedCache)),
        (RememberScope::Ip, &elsewhere, None),
        (RememberScope::Ip, &expired, None),
    ];
    for (scope, standing, want) in cases {
        let n = need(&remembering(scope), &request(), standing);
        match want {
            Some(code) => assert_eq!(result(&n), Some((code, true)), "{scope:?}"),
            None => assert!(matches!(n, Need::SecondFactor(_)), "{scope:?}: {n:?}"),
        }
    }
    // The plan says to remember a verified login.
    let p = plan(need(&remembering(RememberScope::Ip), &request(), &alice()));
    assert_eq!(p.remember.map(|r| r.scope), Some(RememberScope::Ip));
    // Another authentication type is another application.
    let mut eap = request();
    eap.auth_type = AuthType::Eap;
    let eap_user = Standing {
        method: Method::Push,
        ..remembered("pap", "vpn", Some("192.0.2.7"), HOUR)
    };
    assert!(matches!(
        need(&remembering(RememberScope::App), &eap, &eap_user),
        Need::SecondFactor(_)
    ));
}

#[test]
fn methods_the_policy_allows() {
    let push_only = rules(vec![policy(
        "push-only",
        Conditions::default(),
        Settings {
            methods: Some(vec![Method::Push]),
            ..Settings::default()
        },
    )]);
    let p = plan(need(&push_only, &request(), &alice()));
    assert_eq!((p.method, p.start), (Method::Push, Start::OutOfBand));
    assert!(
        !p.fallback_oath,
        "no OATH fallback when the policy allows push only"
    );
    assert!(!p.allows(Method::Sms));
    // An inline code is not taken when codes are not allowed.
    let mut inline = request();
    inline.inline_code = true;
    assert_eq!(
        plan(need(&push_only, &inline, &alice())).start,
        Start::OutOfBand
    );
    // Call only, and the user has no phone: nothing allowed is usable.
    let call_only = rules(vec![policy(
        "call-only",
        Conditions::default(),
        Settings {
            methods: Some(vec![Method::Call]),
            ..Settings::default()
        },
    )]);
    assert_eq!(
        result(&need(&call_only, &request(), &alice())),
        Some((R::ConfigIssue, false))
    );
}

#[test]
fn the_users_default_method_then_the_app() {
    let call = Standing {
        method: Method::Call,
        phone: true,
        ..alice()
    };
    assert_eq!(
        plan(need(&rules(vec![]), &request(), &call)).method,
        Method::Call
    );
    let call_no_phone = Standing {
        method: Method::Call,
        ..alice()
    };
    assert_eq!(
        plan(need(&rules(vec![]), &request(), &call_no_phone)).method,
        Method::Totp
    );
    let mut inline = request();
    inline.inline_code = true;
    let p = plan(need(&rules(vec![]), &inline, &call));
    assert_eq!((p.method, p.start), (Method::Totp, Start::InlineCode));
}

#[test]
fn unenrolled_users() {
    let mut r = rules(vec![]);
    assert_eq!(
        result(&need(&r, &request(), &Standing::unknown())),
        Some((R::ConfigIssue, false))
    );
    r.unenrolled = Unenrolled::Accept;
    assert_eq!(
        result(&need(&r, &request(), &Standing::unknown())),
        Some((R::SuccessBypassedAuth, true))
    );
    let strict = rules(vec![policy(
        "strict",
        Conditions::default(),
        Settings {
            unenrolled: Some(Unenrolled::Reject),
            ..Settings::default()
        },
    )]);
    let mut strict = strict;
    strict.unenrolled = Unenrolled::Accept;
    assert_eq!(
        result(&need(&strict, &request(), &Standing::unknown())),
        Some((R::ConfigIssue, false))
    );
}

#[test]
fn grace_then_busy() {
    let r = rules(vec![]);
    let both = Live {
        busy: true,
        grace: true,
        ..live()
    };
    assert_eq!(
        decide(&r, &request(), &alice(), both).need,
        Need::ClaimGrace
    );
    let busy = Live {
        busy: true,
        ..live()
    };
    let n = decide(&r, &request(), &alice(), busy).need;
    assert!(matches!(
        n,
        Need::Reject {
            result: R::FailedPhoneBusy,
            busy: true,
            ..
        }
    ));
}

#[test]
fn eap_limits() {
    let mut eap = request();
    eap.auth_type = AuthType::Eap;
    eap.client_defaults.number_matching = true;
    assert_eq!(
        result(&need(&rules(vec![]), &eap, &alice())),
        Some((R::ConfigIssue, false)),
        "no prompt inside EAP"
    );
    let push = Standing {
        method: Method::Push,
        ..alice()
    };
    let p = plan(need(&rules(vec![]), &eap, &push));
    assert!(!p.number_matching, "no number to show inside EAP");
    assert!(!p.fallback_oath, "no OATH fallback inside EAP");
    let sms = Standing {
        method: Method::Sms,
        phone: true,
        ..alice()
    };
    assert_eq!(
        result(&need(&rules(vec![]), &eap, &sms)),
        Some((R::ConfigIssue, false)),
        "no SMS code inside EAP"
    );
}

#[test]
fn fail_mode_and_number_matching_from_client_then_policy() {
    let push = Standing {
        method: Method::Push,
        ..alice()
    };
    let mut req = request();
    req.client_defaults = ClientDefaults {
        fail_mode: FailMode::Open,
        number_matching: true,
    };
    let p = plan(need(&rules(vec![]), &req, &push));
    assert_eq!((p.fail_mode, p.number_matching), (FailMode::Open, true));
    let strict = rules(vec![policy(
        "strict",
        Conditions::default(),
        Settings {
            fail_mode: Some(FailMode::Closed),
            number_matching: Some(false),
            language: Some("de".into()),
            ..Settings::default()
        },
    )]);
    let p = plan(need(&strict, &req, &push));
    assert_eq!((p.fail_mode, p.number_matching), (FailMode::Closed, false));
    assert_eq!(p.language.as_deref(), Some("de"));
}
