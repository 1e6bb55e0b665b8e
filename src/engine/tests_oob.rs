//! Out-of-band second factors on the virtual clock: push, phone call and
//! SMS through the provider contract, busy and grace, fraud, fallback,
//! timeouts and texts (number matching and PIN mode: `tests_oob_modes.rs`).

use std::path::Path;
use std::time::Duration;

use super::tests_mfa::*;
use super::*;
use super::{CallbackStatus, CallbackTaken, Delivery, DeliveryOutcome, sign};
use crate::mfa::Method;
use crate::mfa::ResultCode;
use crate::store::Store;

pub(super) const PROVIDER_KEY: &[u8] = b"provider-key-0123456789";

pub(super) fn oob_sim(extra: &str) -> Sim {
    let mut s = Sim::new(&format!(
        "push_timeout = \"60s\"\nbusy_grace = \"60s\"\n{extra}\n\
         [[provider]]\nname = \"gw\"\ntype = \"webhook\"\nmethods = [\"push\", \"call\", \"sms\"]\n\
         url = \"https://gw.example/verify\"\nkey = \"{}\"\n",
        String::from_utf8_lossy(PROVIDER_KEY)
    ));
    s.e.set_wall_clock(s.now, s.unix);
    s.set_user("bob", Method::Push, Some("+4930123456"));
    s
}

impl Sim {
    pub(super) fn set_user(&mut self, name: &str, method: Method, phone: Option<&str>) {
        let mut u = self.store.user(name).expect("q").expect("user");
        u.method = method;
        u.phone = phone.map(str::to_owned);
        self.store.update_user(&u).expect("update");
    }

    /// The one delivery queued, reported delivered; returns it.
    pub(super) fn delivered(&mut self) -> Delivery {
        let d = self.e.poll_delivery().expect("a delivery");
        assert!(self.e.poll_delivery().is_none(), "exactly one delivery");
        self.e
            .handle_delivery(self.now, &d.id, DeliveryOutcome::Delivered);
        self.pump();
        d
    }

    pub(super) fn callback(&mut self, id: &str, body: &str) -> CallbackStatus {
        let sig = sign(PROVIDER_KEY, body.as_bytes());
        self.callback_signed(id, body, Some(&sig))
    }

    /// A callback with signature `sig`, its status once the store has
    /// answered if it was passed there.
    pub(super) fn callback_signed(
        &mut self,
        id: &str,
        body: &str,
        sig: Option<&str>,
    ) -> CallbackStatus {
        let taken = self.e.handle_callback(self.now, id, body.as_bytes(), sig);
        self.pump();
        match taken {
            CallbackTaken::Now(st) => st,
            // Passed to the store, which has answered by now.
            CallbackTaken::Later(ticket) => {
                let (got, st) = self.e.poll_callback_reply().expect("the store answered");
                assert_eq!(got, ticket);
                self.pump();
                st
            }
        }
    }

    pub(super) fn last_result(&self) -> Option<(ResultCode, bool)> {
        self.audit.last().map(|a| (a.result, a.accepted))
    }
}

/// A delivery's webhook body.
pub(super) fn json(d: &Delivery) -> serde_json::Value {
    serde_json::from_slice(&d.body).expect("json")
}

pub(super) fn reply_message(t: &Transmit) -> String {
    String::from_utf8_lossy(
        parse(t)
            .find(attr::REPLY_MESSAGE)
            .expect("Reply-Message")
            .value,
    )
    .into_owned()
}

#[test]
fn push_approved_holds_the_request_and_drops_retransmissions() {
    let mut s = oob_sim("");
    assert!(
        s.login(1000, 1, "bob", "pw", None).is_empty(),
        "held while the phone decides"
    );
    // The NAS retransmits: same identifier and authenticator. Dropped, and no second push.
    assert!(s.login(1000, 1, "bob", "pw", None).is_empty());
    let d = s.delivered();
    let body = json(&d);
    assert_eq!(body["method"], "push");
    assert_eq!(body["user"], "bob");
    assert_eq!(body["phone"], "+4930123456");
    assert_eq!(body["expires_at"], T0 + 60);
    assert!(
        body["callback_url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&format!("/v1/verifications/{}", d.id)))
    );
    assert!(body.get("code").is_none(), "push carries no code");
    assert_eq!(
        d.signature.as_deref(),
        Some(sign(PROVIDER_KEY, &d.body).as_str())
    );
    assert_eq!(s.e.pending_verifications(), 1);
    assert!(s.login(1000, 1, "bob", "pw", None).is_empty(), "still held");

    assert_eq!(
        s.callback(&d.id, r#"{"result":"approved"}"#),
        CallbackStatus::Accepted
    );
    let r = s.out();
    assert_eq!(r.len(), 1);
    let p = parse(&r[0]);
    assert_eq!(p.code(), Code::ACCESS_ACCEPT);
    assert!(
        p.find(attr::TUNNEL_PASSWORD).is_some(),
        "the upstream's attributes"
    );
    assert_eq!(
        s.last_result(),
        Some((ResultCode::SuccessPhoneAppAuthenticated, true))
    );
    assert_eq!(s.audit.last().map(|a| a.mode.as_str()), Some("push"));
    assert_eq!(s.e.pending_verifications(), 0);
    // Single use.
    assert_eq!(
        s.callback(&d.id, r#"{"result":"approved"}"#),
        CallbackStatus::Unknown
    );
    // A retransmission now gets the cached Accept.
    let again = s.login(1000, 1, "bob", "pw", None);
    assert_eq!(again[0].payload, r[0].payload);
}

#[test]
fn second_login_while_pending_is_busy_then_grace_once() {
    let mut s = oob_sim("");
    assert!(s.login(1000, 1, "bob", "pw", None).is_empty());
    let d = s.delivered();
    // A genuinely new login (new identifier) from the same NAS: BUSY, at once.
    let r = s.login(1001, 2, "BOB", "pw", None);
    assert_eq!(r.len(), 1, "no reject delay for BUSY");
    assert_eq!(parse(&r[0]).code(), Code::ACCESS_REJECT);
    assert!(reply_message(&r[0]).contains("already in progress"));
    assert_eq!(s.last_result(), Some((ResultCode::FailedPhoneBusy, false)));
    assert!(s.e.poll_delivery().is_none(), "no second push");

    assert_eq!(
        s.callback(&d.id, r#"{"result":"approved"}"#),
        CallbackStatus::Accepted
    );
    assert_eq!(parse(&s.out()[0]).code(), Code::ACCESS_ACCEPT);
    // The NAS gave up and tries again: let in without a new prompt, once.
    s.advance(Duration::from_secs(30));
    let r = s.login(1002, 3, "bob", "pw", None);
    assert_eq!(parse(&r[0]).code(), Code::ACCESS_ACCEPT);
    assert_eq!(s.last_result(), Some((ResultCode::SuccessUsedCache, true)));
    assert!(s.e.poll_delivery().is_none());
    assert!(
        s.login(1003, 4, "bob", "pw", None).is_empty(),
        "grace used up: a new push"
    );
    let d = s.delivered();
    // From another NAS there is no grace either: BUSY.
    let r = s.login(60000, 5, "bob", "pw", None);
    assert_eq!(s.last_result(), Some((ResultCode::FailedPhoneBusy, false)));
    assert_eq!(parse(&r[0]).code(), Code::ACCESS_REJECT);
    assert_eq!(
        s.callback(&d.id, r#"{"result":"denied"}"#),
        CallbackStatus::Accepted
    );
    s.advance(Duration::from_secs(2));
    assert_eq!(parse(&s.out()[0]).code(), Code::ACCESS_REJECT);
    assert_eq!(
        s.last_result(),
        Some((ResultCode::FailedPhoneAppDenied, false))
    );
}

#[test]
fn callbacks_need_the_signature_and_a_known_result() {
    let mut s = oob_sim("");
    s.login(1000, 1, "bob", "pw", None);
    let d = s.delivered();
    let body = br#"{"result":"approved"}"#;
    let wrong = sign(b"another-key-0123456789", body);
    assert_eq!(
        s.e.handle_callback(s.now, &d.id, body, Some(&wrong)),
        CallbackTaken::Now(CallbackStatus::BadSignature)
    );
    assert_eq!(
        s.e.handle_callback(s.now, &d.id, body, None),
        CallbackTaken::Now(CallbackStatus::BadSignature)
    );
    assert_eq!(
        s.callback(&d.id, r#"{"result":"maybe"}"#),
        CallbackStatus::Malformed
    );
    assert_eq!(s.callback(&d.id, "not json"), CallbackStatus::Malformed);
    assert_eq!(
        s.callback(
            "00112233445566778899aabbccddeeff",
            r#"{"result":"approved"}"#
        ),
        CallbackStatus::Unknown
    );
    assert_eq!(
        s.callback("zz", r#"{"result":"approved"}"#),
        CallbackStatus::Unknown
    );
    assert!(s.out().is_empty(), "none of that decided anything");
    assert_eq!(
        s.callback(&d.id, r#"{"result":"approved"}"#),
        CallbackStatus::Accepted
    );
    assert_eq!(parse(&s.out()[0]).code(), Code::ACCESS_ACCEPT);
    assert_eq!(s.e.stats().get(Counter::CallbackBadSignature), 2);
}

#[test]
fn fraud_blocks_the_user_and_is_reported() {
    let mut s = oob_sim("");
    s.login(1000, 1, "bob", "pw", None);
    let d = s.delivered();
    assert_eq!(
        s.callback(&d.id, r#"{"result":"fraud"}"#),
        CallbackStatus::Accepted
    );
    assert_eq!(
        s.last_result(),
        Some((ResultCode::FailedFraudReported, false))
    );
    assert_eq!(
        s.store.blocked_until("bob", s.unix).expect("q"),
        Some(s.unix + 90 * 86400)
    );
    let report = s.e.poll_fraud_report().expect("report");
    assert_eq!(
        (report.user.as_str(), report.result),
        ("bob", ResultCode::FailedFraudReported)
    );
    s.advance(Duration::from_secs(2));
    assert_eq!(parse(&s.out()[0]).code(), Code::ACCESS_REJECT);
    s.login(1001, 2, "bob", "pw", None);
    assert_eq!(
        s.last_result(),
        Some((ResultCode::SuccessUserBlocked, false))
    );
    assert!(s.e.poll_delivery().is_none());
}

#[test]
fn unanswered_push_falls_back_to_the_app_code() {
    let mut s = oob_sim("");
    s.set_user("alice", Method::Push, None);
    assert!(s.login(1000, 1, "alice", "pw", None).is_empty());
    let d = s.delivered();
    s.advance(Duration::from_secs(60));
    s.pump();
    let r = s.out();
    let state = state_of(&r[0]);
    assert!(reply_message(&r[0]).starts_with("Not approved"));
    assert_eq!(
        s.callback(&d.id, r#"{"result":"approved"}"#),
        CallbackStatus::Unknown,
        "expired"
    );
    let code = s.code();
    let r = s.login(1000, 2, "alice", &code, Some(&state));
    assert_eq!(parse(&r[0]).code(), Code::ACCESS_ACCEPT);
    assert_eq!(
        s.last_result(),
        Some((ResultCode::SuccessFallbackOathCodeVerified, true))
    );
    // Bob has no app: no response is a reject.
    s.login(1001, 3, "bob", "pw", None);
    s.delivered();
    s.advance(Duration::from_secs(61));
    s.pump();
    assert_eq!(
        s.last_result(),
        Some((ResultCode::FailedPhoneAppNoResponse, false))
    );
}

#[test]
fn undeliverable_fails_closed_or_open_per_client() {
    let mut s = oob_sim("");
    s.login(1000, 1, "bob", "pw", None);
    let d = s.e.poll_delivery().expect("delivery");
    s.e.handle_delivery(s.now, &d.id, DeliveryOutcome::ProviderFailed);
    s.pump();
    assert_eq!(
        s.last_result(),
        Some((ResultCode::FailedPhoneAppNotificationFailed, false))
    );
    assert_eq!(s.e.pending_verifications(), 0, "not busy any more");

    let mut s = oob_sim("fail_mode = \"fail_open\"");
    s.login(1000, 1, "bob", "pw", None);
    let d = s.e.poll_delivery().expect("delivery");
    s.e.handle_delivery(s.now, &d.id, DeliveryOutcome::ProviderFailed);
    s.pump();
    assert_eq!(parse(&s.out()[0]).code(), Code::ACCESS_ACCEPT);
    let a = s.audit.last().expect("audit");
    assert_eq!(
        (a.result, a.accepted),
        (ResultCode::FailedPhoneAppNotificationFailed, true)
    );
    assert!(a.reason.as_deref().is_some_and(|r| r.contains("fail_open")));
}

#[test]
fn phone_call_standard_pin_and_fraud_code() {
    let mut s = oob_sim("");
    s.set_user("bob", Method::Call, Some("+4930123456"));
    s.login(1000, 1, "bob", "pw", None);
    let d = s.delivered();
    assert_eq!(json(&d)["method"], "call");
    s.callback(&d.id, r#"{"result":"approved"}"#);
    assert_eq!(s.last_result(), Some((ResultCode::SuccessNoPin, true)));

    let mut u = s.store.user("bob").expect("q").expect("bob");
    u.pin_hash = Some(crate::cli::hash_password(b"4711").expect("hash"));
    s.store.update_user(&u).expect("update");
    s.advance(Duration::from_secs(61)); // past busy_grace
    for (n, (pin, want)) in [
        ("4711", (ResultCode::SuccessWithPin, true)),
        ("1234", (ResultCode::SuccessInvalidInput, false)),
        ("0", (ResultCode::FailedFraudCodeEntered, false)),
    ]
    .into_iter()
    .enumerate()
    {
        s.advance(Duration::from_secs(61));
        s.login(1010 + n as u16, 10 + n as u8, "bob", "pw", None);
        let d = s.delivered();
        s.callback(&d.id, &format!(r#"{{"result":"approved","pin":"{pin}"}}"#));
        assert_eq!(s.last_result(), Some(want), "PIN {n}");
    }
    assert!(s.store.blocked_until("bob", s.unix).expect("q").is_some());
    for (result, want) in [
        ("hung_up", ResultCode::FailedUserHungUpOnUs),
        ("voicemail", ResultCode::SuccessNoPinButTimeout),
        ("unreachable", ResultCode::ConfigIssue),
    ] {
        let mut s = oob_sim("fallback_oath = false");
        s.set_user("bob", Method::Call, Some("+4930123456"));
        s.login(1000, 1, "bob", "pw", None);
        let d = s.delivered();
        s.callback(&d.id, &format!(r#"{{"result":"{result}"}}"#));
        assert_eq!(s.last_result(), Some((want, false)), "{result}");
    }
    let mut s = oob_sim("");
    s.set_user("bob", Method::Call, Some("+4930123456x12a"));
    s.login(1000, 1, "bob", "pw", None);
    assert_eq!(
        s.last_result(),
        Some((ResultCode::FailedInvalidExtension, false))
    );
    assert!(
        s.e.poll_delivery().is_none(),
        "no call to an invalid number"
    );
}

#[test]
fn sms_code_by_challenge() {
    let mut s = oob_sim("");
    s.set_user("bob", Method::Sms, Some("+4930123456"));
    assert!(
        s.login(1000, 1, "bob", "pw", None).is_empty(),
        "held until the text is sent"
    );
    let d = s.delivered();
    let body = json(&d);
    let code = body["code"].as_str().expect("code").to_owned();
    assert_eq!(code.len(), 6);
    assert!(
        !format!("{d:?}").contains(&code),
        "Debug never shows the code"
    );
    let r = s.out();
    let state = state_of(&r[0]);
    assert!(reply_message(&r[0]).contains("text message"));
    // Busy while the code is out.
    s.login(1001, 2, "bob", "pw", None);
    assert_eq!(s.last_result(), Some((ResultCode::FailedPhoneBusy, false)));
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r = s.login(1000, 3, "bob", wrong, Some(&state));
    let state = state_of(&r[0]);
    let r = s.login(1000, 4, "bob", &code, Some(&state));
    assert_eq!(parse(&r[0]).code(), Code::ACCESS_ACCEPT);
    assert_eq!(
        s.last_result(),
        Some((ResultCode::SuccessSmsAuthenticated, true))
    );

    // Three wrong codes.
    s.advance(Duration::from_secs(61));
    s.login(1002, 5, "bob", "pw", None);
    s.delivered();
    let mut state = state_of(&s.out()[0]);
    for i in 0..3u8 {
        let r = s.login(1002, 6 + i, "bob", "999999x", Some(&state));
        if i < 2 {
            state = state_of(&r[0]);
        }
    }
    assert_eq!(
        s.last_result(),
        Some((ResultCode::FailedSmsMaxOtpRetryReached, false))
    );
    // Not sent.
    s.login(1003, 9, "bob", "pw", None);
    let d = s.e.poll_delivery().expect("delivery");
    s.e.handle_delivery(s.now, &d.id, DeliveryOutcome::ProviderFailed);
    s.pump();
    assert_eq!(s.last_result(), Some((ResultCode::FailedSmsNotSent, false)));
}

#[test]
fn the_first_prompt_takes_a_method_name() {
    let mut s = oob_sim("");
    let r = s.login(1000, 1, "alice", "pw", None);
    let state = state_of(&r[0]);
    assert!(
        s.login(1000, 2, "alice", "push", Some(&state)).is_empty(),
        "held for the push"
    );
    let d = s.delivered();
    s.callback(&d.id, r#"{"result":"approved"}"#);
    assert_eq!(
        s.last_result(),
        Some((ResultCode::SuccessPhoneAppAuthenticated, true))
    );
}

#[test]
fn a_method_named_while_another_login_verifies_is_busy() {
    // Two logins of one user wait at code prompts; the first names push.
    let mut s = oob_sim("");
    let first = state_of(&s.login(1000, 1, "alice", "pw", None)[0]);
    let second = state_of(&s.login(1001, 2, "alice", "pw", None)[0]);
    assert!(s.login(1000, 3, "alice", "push", Some(&first)).is_empty());
    let d = s.delivered();
    // The second names push too: one verification per user.
    let r = s.login(1001, 4, "alice", "push", Some(&second));
    assert_eq!(parse(&r[0]).code(), Code::ACCESS_REJECT, "refused at once");
    assert!(reply_message(&r[0]).contains("already in progress"));
    assert_eq!(s.last_result(), Some((ResultCode::FailedPhoneBusy, false)));
    assert!(s.e.poll_delivery().is_none(), "no second push");
    // Its end did not free the first's: a third login is still busy.
    let r = s.login(1002, 5, "alice", "pw", None);
    assert_eq!(parse(&r[0]).code(), Code::ACCESS_REJECT);
    assert_eq!(s.last_result(), Some((ResultCode::FailedPhoneBusy, false)));
    s.callback(&d.id, r#"{"result":"approved"}"#);
    assert_eq!(
        s.last_result(),
        Some((ResultCode::SuccessPhoneAppAuthenticated, true))
    );
}

#[test]
fn every_out_of_band_timeout() {
    // call_timeout: no result from the call in time.
    let mut s = oob_sim("call_timeout = \"30s\"\nsms_code_lifetime = \"60s\"");
    s.set_user("bob", Method::Call, Some("+4930123456"));
    s.login(1000, 1, "bob", "pw", None);
    let d = s.delivered();
    s.advance(Duration::from_secs(29));
    s.pump();
    assert!(s.audit.is_empty(), "still ringing");
    s.advance(Duration::from_secs(2));
    s.pump();
    assert_eq!(
        s.last_result(),
        Some((ResultCode::FailedAuthResultTimeout, false))
    );
    s.advance(Duration::from_secs(2));
    assert_eq!(parse(&s.out()[0]).code(), Code::ACCESS_REJECT);
    assert_eq!(
        s.callback(&d.id, r#"{"result":"approved"}"#),
        CallbackStatus::Unknown,
        "too late"
    );

    // sms_code_lifetime: the code is not entered in time, then entered.
    s.set_user("bob", Method::Sms, Some("+4930123456"));
    s.login(1001, 2, "bob", "pw", None);
    let d = s.delivered();
    let code = json(&d)["code"].as_str().expect("code").to_owned();
    let state = state_of(&s.out()[0]);
    s.advance(Duration::from_secs(61));
    s.pump();
    let a = s.audit.last().expect("audit");
    assert_eq!(
        (a.result, a.accepted, a.mode.as_str()),
        (ResultCode::FailedAuthResultTimeout, false, "sms")
    );
    s.login(1001, 3, "bob", &code, Some(&state));
    s.advance(Duration::from_secs(2));
    assert_eq!(parse(&s.out()[0]).code(), Code::ACCESS_REJECT);
    assert_eq!(
        s.last_result(),
        Some((ResultCode::FailedOathTokenTimeout, false)),
        "an expired code's State is gone"
    );

    // The provider never says whether it delivered: as undeliverable.
    s.set_user("bob", Method::Push, Some("+4930123456"));
    s.login(1002, 4, "bob", "pw", None);
    assert!(s.e.poll_delivery().is_some());
    s.advance(Duration::from_secs(60));
    s.pump();
    assert_eq!(
        s.last_result(),
        Some((ResultCode::FailedPhoneAppNotificationFailed, false))
    );
    assert_eq!(s.e.pending_verifications(), 0);

    // busy_grace runs out: the next login is a new push.
    s.login(1003, 5, "bob", "pw", None);
    let d = s.delivered();
    s.callback(&d.id, r#"{"result":"approved"}"#);
    assert_eq!(parse(&s.out()[0]).code(), Code::ACCESS_ACCEPT);
    s.advance(Duration::from_secs(61));
    s.out(); // the earlier delayed reject
    assert!(s.login(1003, 6, "bob", "pw", None).is_empty(), "held");
    assert!(s.e.poll_delivery().is_some(), "a new push, no grace");
}

#[test]
fn prompts_and_provider_texts_in_the_users_language() {
    let mut s = Sim::new(
        "[messages.de]\nprompt = \"Code aus der App eingeben\"\n\
         push_message = \"Anmeldung von {user} an {client} bestätigen?\"\n\
         busy_message = \"Eine Bestätigung läuft bereits\"\n\
         [[provider]]\nname = \"gw\"\ntype = \"webhook\"\nmethods = [\"push\"]\n\
         url = \"https://gw.example/verify\"\nkey = \"provider-key-0123456789\"\n",
    );
    s.e.set_wall_clock(s.now, s.unix);
    let mut alice = s.store.user("alice").expect("q").expect("alice");
    alice.language = Some("de".into());
    s.store.update_user(&alice).expect("update");
    let r = s.login(1000, 1, "alice", "pw", None);
    assert_eq!(reply_message(&r[0]), "Code aus der App eingeben");
    // A text [messages.de] does not give comes from [mfa].
    let r = s.login(1000, 2, "alice", "000000", Some(&state_of(&r[0])));
    assert!(
        reply_message(&r[0]).starts_with("Wrong code"),
        "{}",
        reply_message(&r[0])
    );

    s.set_user("bob", Method::Push, Some("+4930123456"));
    let mut bob = s.store.user("bob").expect("q").expect("bob");
    bob.language = Some("de".into());
    s.store.update_user(&bob).expect("update");
    s.login(1001, 3, "bob", "pw", None);
    let d = s.delivered();
    let body = json(&d);
    assert_eq!(body["message"], "Anmeldung von bob an nas bestätigen?");
    assert_eq!(body["language"], "de");
    let r = s.login(1002, 4, "bob", "pw", None);
    assert_eq!(reply_message(&r[0]), "Eine Bestätigung läuft bereits");
    // Users without a language get [mfa]'s texts, and the default tag.
    s.set_user("alice", Method::Push, Some("+4930123457"));
    let mut alice = s.store.user("alice").expect("q").expect("alice");
    alice.language = None;
    s.store.update_user(&alice).expect("update");
    s.login(1003, 5, "alice", "pw", None);
    let d = s.delivered();
    let body = json(&d);
    assert_eq!(body["message"], "Approve the sign-in of alice at nas?");
    assert_eq!(body["language"], "en");
}

#[test]
fn message_errors_name_the_key() {
    let err = |extra: &str| {
        Config::from_toml(
            &format!("[server]\nauth_listen = [\"127.0.0.1:1812\"]\n{extra}"),
            Path::new("t.toml"),
        )
        .expect_err("invalid")
        .to_string()
    };
    let e = err("[messages.de]\nnumber_prompt = \"Wähle\"\n");
    assert!(
        e.contains("messages.de.number_prompt") && e.contains("{number}"),
        "{e}"
    );
    let e = err("[messages.de]\nsms_message = \"Ihr Code\"\n");
    assert!(
        e.contains("messages.de.sms_message") && e.contains("{code}"),
        "{e}"
    );
    let e = err("[messages.de]\npromt = \"x\"\n");
    assert!(e.contains("promt"), "{e}");
    let e = err("[messages.\"de DE\"]\nprompt = \"x\"\n");
    assert!(
        e.contains("messages.de DE") && e.contains("language tag"),
        "{e}"
    );
    let e = err("[mfa]\nlanguage = \"\"\n");
    assert!(e.contains("mfa.language"), "{e}");
    let e = err(&format!(
        "[messages.fr]\nprompt = \"{}\"\n",
        "x".repeat(241)
    ));
    assert!(e.contains("messages.fr.prompt") && e.contains("240"), "{e}");
}
