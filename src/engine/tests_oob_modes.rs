//! Push number matching and PIN mode (a call's PIN, an SMS code then the
//! PIN) on the virtual clock, with the simulator of `tests_oob.rs`.

use std::path::Path;
use std::time::Duration;

use super::CallbackStatus;
use super::tests_mfa::*;
use super::tests_oob::{json, oob_sim, reply_message};
use super::*;
use crate::mfa::Method;
use crate::mfa::ResultCode;
use crate::store::Store;

#[test]
fn push_number_matching_shows_the_number_and_holds_the_answer() {
    let mut s = oob_sim("number_matching = true");
    assert!(s.login(1000, 1, "bob", "pw", None).is_empty());
    let d = s.delivered();
    let body = json(&d);
    let n = body["number"].as_u64().expect("number");
    assert!((10..100).contains(&n), "{n}");
    // Once the push is out, the NAS shows the number.
    let r = s.out();
    assert_eq!(parse(&r[0]).code(), Code::ACCESS_CHALLENGE);
    assert!(reply_message(&r[0]).contains(&format!("choose {n}")));
    let state = state_of(&r[0]);
    // The phone answers first: kept until the NAS answers the challenge.
    let approve = format!(r#"{{"result":"approved","number":{n}}}"#);
    assert_eq!(s.callback(&d.id, &approve), CallbackStatus::Accepted);
    assert!(s.out().is_empty());
    assert_eq!(
        s.callback(&d.id, &approve),
        CallbackStatus::Unknown,
        "single use"
    );
    let r = s.login(1000, 2, "bob", "", Some(&state));
    assert_eq!(parse(&r[0]).code(), Code::ACCESS_ACCEPT);
    assert!(parse(&r[0]).find(attr::TUNNEL_PASSWORD).is_some());
    assert_eq!(
        s.last_result(),
        Some((ResultCode::SuccessPhoneAppAuthenticated, true))
    );

    // The NAS answers first: held (retransmissions dropped) until the phone does.
    s.advance(Duration::from_secs(61));
    s.login(1001, 3, "bob", "pw", None);
    let d = s.delivered();
    let n: u64 = json(&d)["number"].as_u64().expect("number");
    let state = state_of(&s.out()[0]);
    assert!(s.login(1001, 4, "bob", "ok", Some(&state)).is_empty());
    assert!(s.login(1001, 4, "bob", "ok", Some(&state)).is_empty());
    // A new login meanwhile is still BUSY.
    s.login(1002, 5, "bob", "pw", None);
    assert_eq!(s.last_result(), Some((ResultCode::FailedPhoneBusy, false)));
    let wrong = if n == 10 { 11 } else { n - 1 };
    s.callback(
        &d.id,
        &format!(r#"{{"result":"approved","number":{wrong}}}"#),
    );
    s.advance(Duration::from_secs(2));
    assert_eq!(parse(&s.out()[0]).code(), Code::ACCESS_REJECT);
    let a = s.audit.last().expect("audit");
    assert_eq!(
        (a.result, a.accepted),
        (ResultCode::FailedPhoneAppDenied, false)
    );
    assert!(
        a.reason
            .as_deref()
            .is_some_and(|r| r.contains("wrong number"))
    );

    // An approval that names no number is not an approval.
    s.login(1003, 6, "bob", "pw", None);
    let d = s.delivered();
    let state = state_of(&s.out()[0]);
    s.callback(&d.id, r#"{"result":"approved"}"#);
    s.login(1003, 7, "bob", "", Some(&state));
    assert_eq!(
        s.last_result(),
        Some((ResultCode::FailedPhoneAppInvalidResult, false))
    );

    // The NAS never answers the challenge: no response when the push expires.
    s.login(1004, 8, "bob", "pw", None);
    s.delivered();
    s.advance(Duration::from_secs(61));
    s.pump();
    assert_eq!(
        s.last_result(),
        Some((ResultCode::FailedPhoneAppNoResponse, false))
    );
    assert_eq!(s.e.pending_verifications(), 0);
}

#[test]
fn number_matching_is_set_per_client() {
    let t = config("number_matching = true");
    assert!(t.clients.iter().all(|c| c.number_matching));
    let off = Config::from_toml(
        &format!(
            "[server]\nauth_listen = [\"127.0.0.1:1812\"]\n[mfa]\nnumber_matching = true\n[[client]]\nname = \"a\"\naddress = \"127.0.0.1\"\n\
             secret = \"{}\"\nnumber_matching = false\n[[upstream]]\nname = \"u\"\naddress = \"127.0.0.1:1\"\nsecret = \"{}\"\n",
            String::from_utf8_lossy(NAS),
            String::from_utf8_lossy(UP)
        ),
        Path::new("t.toml"),
    )
    .expect("valid");
    assert!(!off.clients[0].number_matching);
    let err = Config::from_toml(
        "[server]\nauth_listen = [\"127.0.0.1:1812\"]\n[mfa]\nnumber_prompt = \"pick one\"\n",
        Path::new("t.toml"),
    )
    .expect_err("no {number}");
    assert!(err.to_string().contains("mfa.number_prompt"), "{err}");
}

fn set_pin(s: &mut Sim, user: &str, pin: &[u8]) {
    let mut u = s.store.user(user).expect("q").expect("user");
    u.pin_hash = Some(crate::cli::hash_password(pin).expect("hash"));
    s.store.update_user(&u).expect("update");
}

#[test]
fn call_pin_mode_needs_the_pin_and_wrong_pins_lock_out() {
    let mut s = oob_sim("fallback_oath = false");
    s.set_user("bob", Method::Call, Some("+4930123456"));
    set_pin(&mut s, "bob", b"4711");
    s.login(1000, 1, "bob", "pw", None);
    let d = s.delivered();
    let body = json(&d);
    assert_eq!(
        body["pin_mode"], true,
        "the provider is told to ask for the PIN"
    );
    s.callback(&d.id, r#"{"result":"approved"}"#);
    let a = s.audit.last().expect("audit");
    assert_eq!(
        (a.result, a.accepted),
        (ResultCode::SuccessInvalidInput, false),
        "# alone is not enough in PIN mode"
    );
    // Five wrong PINs (the lockout threshold here) lock the account.
    for i in 0..5u8 {
        s.login(1001 + u16::from(i), 2 + i, "bob", "pw", None);
        let d = s.delivered();
        s.callback(&d.id, r#"{"result":"approved","pin":"9999"}"#);
        assert_eq!(
            s.last_result(),
            Some((ResultCode::SuccessInvalidInput, false))
        );
    }
    s.login(1010, 20, "bob", "pw", None);
    assert_eq!(
        s.last_result(),
        Some((ResultCode::FailedAuthenticationThrottled, false))
    );
    assert!(s.e.poll_delivery().is_none(), "no call while locked out");
}

#[test]
fn sms_code_then_pin_in_pin_mode() {
    let mut s = oob_sim("");
    s.set_user("bob", Method::Sms, Some("+4930123456"));
    set_pin(&mut s, "bob", b"4711");
    s.login(1000, 1, "bob", "pw", None);
    let d = s.delivered();
    let body = json(&d);
    let code = body["code"].as_str().expect("code").to_owned();
    assert!(
        body.get("pin_mode").is_none(),
        "the provider has nothing to ask"
    );
    let r = s.out();
    assert!(reply_message(&r[0]).contains("followed by your PIN"));
    // The right code alone, or with a wrong PIN: asked again.
    let r = s.login(1000, 2, "bob", &code, Some(&state_of(&r[0])));
    assert!(reply_message(&r[0]).starts_with("Wrong code or PIN"));
    let r = s.login(
        1000,
        3,
        "bob",
        &format!("{code}1234"),
        Some(&state_of(&r[0])),
    );
    assert!(reply_message(&r[0]).starts_with("Wrong code or PIN"));
    let r = s.login(
        1000,
        4,
        "bob",
        &format!("{code} 4711"),
        Some(&state_of(&r[0])),
    );
    assert_eq!(parse(&r[0]).code(), Code::ACCESS_ACCEPT);
    assert_eq!(
        s.last_result(),
        Some((ResultCode::SuccessSmsAuthenticated, true))
    );

    s.advance(Duration::from_secs(61));
    s.login(1001, 5, "bob", "pw", None);
    let d = s.delivered();
    let code = json(&d)["code"].as_str().expect("code").to_owned();
    let mut state = state_of(&s.out()[0]);
    for i in 0..3u8 {
        let r = s.login(1001, 6 + i, "bob", &format!("{code}0000"), Some(&state));
        if i < 2 {
            state = state_of(&r[0]);
        }
    }
    assert_eq!(
        s.last_result(),
        Some((ResultCode::FailedSmsOtpPinIncorrect, false))
    );
}
