//! `[primary] mode = "ldap"` on a virtual clock: the engine asks the shell
//! for a directory check, the test gives the verdict a directory would,
//! and the store (in memory) plays its part as in `tests_mfa.rs`.

use std::path::Path;
use std::time::Duration;

use super::tests_mfa::{NAS, Sim, from, parse, request, state_of};
use super::*;
use crate::directory::auth::{Failure, Verdict};
use crate::directory::ldap::Refusal;
use crate::mfa::ResultCode;
use crate::store::AuditRecord;

fn ldap_config(extra_mfa: &str) -> Config {
    let t = format!(
        "[server]\nname = \"sim\"\nauth_listen = [\"127.0.0.1:1812\"]\n\
         [primary]\nmode = \"ldap\"\ndirectory = \"corp\"\n\
         [mfa]\nreject_delay = \"1s\"\n{extra_mfa}\n\
         [[client]]\nname = \"nas\"\naddress = \"127.0.0.0/24\"\nsecret = \"{}\"\n\
         [[directory]]\nname = \"corp\"\nurl = \"ldaps://dc1.corp.example\"\n\
         bind_dn = \"CN=mfa-sync,OU=Service,DC=corp,DC=example\"\nbind_password = \"sync-pw\"\n\
         base_dn = \"DC=corp,DC=example\"\nfilter = \"(objectClass=user)\"\n\
         name_attribute = \"sAMAccountName\"\ntimeout = \"5s\"\n",
        String::from_utf8_lossy(NAS)
    );
    Config::from_toml(&t, Path::new("ldap.toml")).expect("valid without upstreams")
}

fn sim(extra_mfa: &str) -> Sim {
    Sim::with_config(&ldap_config(extra_mfa))
}

/// Sends a PAP request; returns the check the engine asked for, if any.
fn ask(s: &mut Sim, id: u8, user: &str, password: &str) -> Option<DirectoryCheck> {
    let auth = [id; 16];
    let req = request(id, auth, user, password, None);
    s.e.handle_nas(s.now, 0, from(1000), &req);
    s.pump();
    s.e.poll_directory_check()
}

/// The directory's verdict on `check`; then what reached the NAS, after
/// `reject_delay` when it is a reject.
fn answer(s: &mut Sim, check: &DirectoryCheck, verdict: Verdict) -> Vec<Transmit> {
    s.e.handle_directory(s.now, check.id, verdict);
    s.pump();
    let mut out = s.out();
    if out.is_empty() {
        s.advance(Duration::from_secs(2));
        out = s.out();
    }
    out
}

fn last(s: &Sim) -> &AuditRecord {
    s.audit.last().expect("every login is recorded")
}

#[test]
fn a_password_the_directory_accepts_leads_to_the_second_factor() {
    let mut s = sim("");
    let check = ask(&mut s, 1, "alice", "pw").expect("a directory check");
    assert!(s.out().is_empty(), "nothing for the NAS before the verdict");
    assert_eq!(
        (check.directory.name.as_str(), check.user.as_str()),
        ("corp", "alice")
    );
    assert_eq!(check.password.expose(), b"pw");
    assert_eq!(check.deadline, s.now + Duration::from_secs(5));
    let shown = format!("{check:?}");
    assert!(
        shown.contains("alice") && !shown.contains("\"pw\""),
        "{shown}"
    );

    let r = answer(&mut s, &check, Verdict::Accepted);
    let state = state_of(&r[0]);
    let r = s.login(1000, 2, "alice", &s.code(), Some(&state));
    assert_eq!(parse(&r[0]).code(), Code::ACCESS_ACCEPT);
    assert_eq!(
        s.last_result(),
        Some((ResultCode::SuccessOathCodeVerified, true))
    );
    let st = s.e.stats();
    assert_eq!(st.get(Counter::DirectoryChecks), 1);
    assert_eq!(st.get(Counter::DirectoryAccepted), 1);
}

#[test]
fn an_unenrolled_user_is_let_in_by_the_directory_alone_when_the_policy_says_so() {
    let mut s = sim("unenrolled = \"accept\"");
    let check = ask(&mut s, 1, "carol", "pw").expect("check");
    let r = answer(&mut s, &check, Verdict::Accepted);
    assert_eq!(parse(&r[0]).code(), Code::ACCESS_ACCEPT);
    // An inline code is taken off before the password goes to the
    // directory.
    let mut s = sim("inline_separator = \",\"");
    let check = ask(&mut s, 1, "alice", "pw,123456").expect("check");
    assert_eq!(check.password.expose(), b"pw");
}

#[test]
fn each_refusal_is_a_delayed_generic_reject_with_its_reason_on_record() {
    let mut s = sim("");
    for (i, (refusal, reason, counter)) in [
        (
            Refusal::WrongPasswordOrUnknownUser,
            "directory corp: wrong password or unknown user",
            Counter::DirectoryWrongPassword,
        ),
        (
            Refusal::AccountLocked,
            "directory corp: account locked",
            Counter::DirectoryAccountLocked,
        ),
        (
            Refusal::AccountDisabled,
            "directory corp: account disabled",
            Counter::DirectoryAccountDisabled,
        ),
        (
            Refusal::PasswordExpired,
            "directory corp: password expired",
            Counter::DirectoryPasswordExpired,
        ),
        (
            Refusal::PasswordMustChange,
            "directory corp: password must be changed",
            Counter::DirectoryPasswordMustChange,
        ),
        (
            Refusal::AccountExpired,
            "directory corp: account expired",
            Counter::DirectoryAccountExpired,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let check = ask(&mut s, 10 + i as u8, "alice", "pw").expect("check");
        s.e.handle_directory(s.now, check.id, Verdict::Refused(refusal));
        s.pump();
        assert!(s.out().is_empty(), "{refusal:?}: held for reject_delay");
        s.advance(Duration::from_secs(2));
        let out = s.out();
        let reject = parse(&out[0]);
        assert_eq!(reject.code(), Code::ACCESS_REJECT);
        assert!(
            reject.find(attr::REPLY_MESSAGE).is_none(),
            "the NAS is not told why"
        );
        let a = last(&s);
        assert_eq!(
            (a.result, a.accepted, a.mode.as_str(), a.reason.as_deref()),
            (
                ResultCode::FailedPrimaryAuth,
                false,
                "password",
                Some(reason)
            )
        );
        assert_eq!(s.e.stats().get(counter), 1, "{refusal:?}");
    }
    assert_eq!(s.e.logins_pending(), 0);
}

#[test]
fn a_directory_that_cannot_be_asked_fails_closed() {
    let mut s = sim("");
    for (i, (failure, reason, counter)) in [
        (
            Failure::Unreachable,
            "directory corp: unreachable",
            Counter::DirectoryUnreachable,
        ),
        (
            Failure::NoAnswer,
            "directory corp: no answer in time",
            Counter::DirectoryNoAnswer,
        ),
        (
            Failure::ServiceAccountRefused,
            "directory corp: the service account's bind (bind_dn) was refused",
            Counter::DirectoryServiceAccountRefused,
        ),
        (
            Failure::Overloaded,
            "directory corp: too many password checks waiting",
            Counter::DirectoryOverloaded,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let check = ask(&mut s, 20 + i as u8, "alice", "pw").expect("check");
        let r = answer(&mut s, &check, Verdict::Failed(failure));
        assert_eq!(parse(&r[0]).code(), Code::ACCESS_REJECT);
        let a = last(&s);
        assert_eq!(
            (a.result, a.accepted, a.reason.as_deref()),
            (ResultCode::FailedServerError, false, Some(reason))
        );
        assert_eq!(s.e.stats().get(counter), 1);
    }
}

#[test]
fn a_check_never_answered_ends_the_login_and_a_late_verdict_changes_nothing() {
    let mut s = sim("");
    let check = ask(&mut s, 1, "alice", "pw").expect("check");
    s.advance(Duration::from_secs(5));
    s.pump();
    assert!(s.out().is_empty(), "the shell has until the deadline");
    s.advance(Duration::from_secs(2));
    s.pump();
    s.advance(Duration::from_secs(2));
    assert_eq!(parse(&s.out()[0]).code(), Code::ACCESS_REJECT);
    assert_eq!(
        last(&s).reason.as_deref(),
        Some("directory corp: the password check was never answered")
    );
    assert_eq!(s.e.stats().get(Counter::DirectoryLost), 1);
    let records = s.audit.len();
    s.e.handle_directory(s.now, check.id, Verdict::Accepted);
    s.pump();
    s.advance(Duration::from_secs(2));
    assert!(s.out().is_empty(), "no second answer");
    assert_eq!(s.audit.len(), records, "no second record");
    assert_eq!(s.e.logins_pending(), 0);
}

#[test]
fn an_empty_password_is_refused_without_asking_the_directory() {
    let mut s = sim("");
    assert!(ask(&mut s, 1, "alice", "").is_none(), "no bind");
    s.advance(Duration::from_secs(2));
    assert_eq!(parse(&s.out()[0]).code(), Code::ACCESS_REJECT);
    assert_eq!(
        last(&s).reason.as_deref(),
        Some("directory corp: empty password (refused without a bind)")
    );
    assert_eq!(last(&s).result, ResultCode::FailedPrimaryAuth);
    assert_eq!(s.e.stats().get(Counter::DirectoryEmptyPassword), 1);
}

#[test]
fn chap_cannot_be_checked_by_a_bind_and_is_refused_with_a_reason() {
    let mut s = sim("");
    let auth = [7; 16];
    let mut b = PacketBuilder::new(Code::ACCESS_REQUEST, 7, &auth);
    b.push_message_authenticator().expect("fits");
    b.push(attr::USER_NAME, b"alice").expect("fits");
    b.push(attr::CHAP_PASSWORD, &[1; 17]).expect("fits");
    let req = b.finish_request(NAS);
    s.e.handle_nas(s.now, 0, from(1000), &req);
    s.pump();
    assert!(s.e.poll_directory_check().is_none());
    s.advance(Duration::from_secs(2));
    assert_eq!(parse(&s.out()[0]).code(), Code::ACCESS_REJECT);
    let a = last(&s);
    assert_eq!(
        (a.result, a.reason.as_deref()),
        (
            ResultCode::ConfigIssue,
            Some("ldap mode checks PAP passwords only")
        )
    );
}

#[test]
fn a_retransmission_while_the_directory_is_asked_is_not_a_second_check() {
    let mut s = sim("");
    let req = request(1, [1; 16], "alice", "pw", None);
    s.e.handle_nas(s.now, 0, from(1000), &req);
    s.e.handle_nas(s.now, 0, from(1000), &req);
    assert!(s.e.poll_directory_check().is_some());
    assert!(s.e.poll_directory_check().is_none());
    assert_eq!(s.e.stats().get(Counter::DropDuplicateInFlight), 1);
}
