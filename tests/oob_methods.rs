//! Every out-of-band method and result code end to end: radclient (the NAS)
//! → mfa-proxy → FreeRADIUS (the first factor), with the provider simulator
//! playing each user's phone and an SMTP sink taking the fraud emails.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::provider::*;
use common::*;
use mfa_proxy::config::Config;
use mfa_proxy::mfa::Method;
use mfa_proxy::mfa::ResultCode;
use mfa_proxy::mfa::otp::{TotpParams, totp_code};
use mfa_proxy::store::{SeedKey, SqliteStore, Store, Token, User};

const PASSWORD: &str = "shared-pass";
const PIN: &[u8] = b"4711";
const PHONE: &str = "+4930123456";

fn add(store: &SqliteStore, name: &str, method: Method, phone: &str, pin: bool) {
    store
        .add_user(&User {
            phone: Some(phone.into()),
            pin_hash: pin.then(|| mfa_proxy::cli::hash_password(PIN).expect("hash")),
            ..User::new(name, method)
        })
        .expect("user");
}

fn login(to: SocketAddr, user: &str, password: &str, state: Option<&str>) -> String {
    pap(to, user, password, state, &["-x", "-t", "10", "-r", "1"])
}

fn proxy_toml(fr: &FreeRadius, http_port: u16, mfa: &str, rest: &str) -> Config {
    proxy_config(
        &[(fr.auth, fr.acct)],
        &format!(
            "http_listen = \"127.0.0.1:{http_port}\"\npublic_url = \"http://127.0.0.1:{http_port}\"\n\
             [mfa]\nreject_delay = \"100ms\"\npush_timeout = \"5s\"\ncall_timeout = \"5s\"\n{mfa}\n{rest}"
        ),
    )
}

/// Waits until the store holds `n` audit records.
fn audit(store: &SqliteStore, n: usize) -> Vec<(String, ResultCode, bool)> {
    for _ in 0..100 {
        let a = store.audit(None, None).expect("audit");
        if a.len() >= n {
            return a
                .into_iter()
                .map(|a| (a.user, a.result, a.accepted))
                .collect();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("fewer than {n} audit records");
}

#[test]
fn push_call_and_sms_each_result_code_fraud_email_and_fail_modes() {
    if !(have("freeradius") && have("radclient")) {
        return;
    }
    let fr = FreeRadius::start(UPSTREAM_SECRET);
    let smtp = SmtpSink::start();
    let quick = Duration::from_millis(300);
    let reply = |r| Script::After(quick, r);
    let sim = ProviderSim::start(HashMap::from([
        (
            "p_retry",
            Script::FailOnce(quick, r#"{"result":"approved"}"#),
        ),
        ("p_deny", reply(r#"{"result":"denied"}"#)),
        ("p_fraud", reply(r#"{"result":"fraud"}"#)),
        ("p_silent", Script::Silent),
        ("p_fail", Script::Fail),
        ("c_ok", reply(r#"{"result":"approved"}"#)),
        ("c_pin", reply(r#"{"result":"approved","pin":"4711"}"#)),
        ("c_badpin", reply(r#"{"result":"approved","pin":"1234"}"#)),
        ("c_fraud", reply(r#"{"result":"approved","pin":"0"}"#)),
        ("c_fraud2", reply(r#"{"result":"approved","pin":"0"}"#)),
        ("c_hangup", reply(r#"{"result":"hung_up"}"#)),
        ("c_voicemail", reply(r#"{"result":"voicemail"}"#)),
        ("c_unreachable", reply(r#"{"result":"unreachable"}"#)),
        ("s_fail", Script::Fail),
        ("f_call", reply(r#"{"result":"denied"}"#)),
        (
            "n_match",
            Script::After(
                Duration::from_secs(1),
                r#"{"result":"approved","number":{number}}"#,
            ),
        ),
    ]));
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("mfa.db"), SeedKey::from_bytes(&[5; 32]))
            .expect("store"),
    );
    for (name, method, phone, pin) in [
        ("p_retry", Method::Push, PHONE, false),
        ("p_deny", Method::Push, PHONE, false),
        ("p_fraud", Method::Push, PHONE, false),
        ("p_silent", Method::Push, PHONE, false),
        ("p_fail", Method::Push, PHONE, false),
        ("c_ok", Method::Call, PHONE, false),
        ("c_pin", Method::Call, PHONE, true),
        ("c_badpin", Method::Call, PHONE, true),
        ("c_fraud", Method::Call, PHONE, true),
        ("c_fraud2", Method::Call, PHONE, false),
        ("c_hangup", Method::Call, PHONE, false),
        ("c_voicemail", Method::Call, PHONE, false),
        ("c_unreachable", Method::Call, PHONE, false),
        ("c_badphone", Method::Call, "555-1234", false),
        ("c_badext", Method::Call, "+4930123456x1a", false),
        ("s_ok", Method::Sms, PHONE, false),
        ("s_pin", Method::Sms, PHONE, true),
        ("s_wrong", Method::Sms, PHONE, false),
        ("s_fail", Method::Sms, PHONE, false),
        ("n_match", Method::Push, PHONE, false),
        ("f_call", Method::Call, PHONE, false),
        ("w_totp", Method::Totp, PHONE, false),
    ] {
        add(&store, name, method, phone, pin);
    }
    // Authenticator apps, for the fallback and for the method typed at the prompt.
    for user in ["f_call", "w_totp"] {
        let t = Token {
            active: true,
            ..Token::totp(user, TotpParams::default())
        };
        store.add_token(&t, SEED).expect("token");
    }
    let providers = sim.config("[\"push\", \"call\", \"sms\"]");
    let config = proxy_toml(
        &fr,
        free_port(),
        "fallback_oath = false",
        &format!(
            "[notify]\nsmtp = \"{}\"\ntls = \"none\"\nfrom = \"mfa-proxy@example.org\"\n\
             to = [\"secops@example.org\"]\n{providers}",
            smtp.addr
        ),
    );
    let proxy = start_mfa_proxy(&config, &store);
    let to = proxy.listen_addrs[0];

    // The logins the phone decides, all at once.
    let decided: Vec<(&str, ResultCode, bool)> = vec![
        ("p_retry", ResultCode::SuccessPhoneAppAuthenticated, true),
        ("p_deny", ResultCode::FailedPhoneAppDenied, false),
        ("p_fraud", ResultCode::FailedFraudReported, false),
        ("p_silent", ResultCode::FailedPhoneAppNoResponse, false),
        (
            "p_fail",
            ResultCode::FailedPhoneAppNotificationFailed,
            false,
        ),
        ("c_ok", ResultCode::SuccessNoPin, true),
        ("c_pin", ResultCode::SuccessWithPin, true),
        ("c_badpin", ResultCode::SuccessInvalidInput, false),
        ("c_fraud", ResultCode::FailedFraudCodeEntered, false),
        ("c_hangup", ResultCode::FailedUserHungUpOnUs, false),
        ("c_voicemail", ResultCode::SuccessNoPinButTimeout, false),
        ("c_unreachable", ResultCode::ConfigIssue, false),
        ("c_badphone", ResultCode::FailedInvalidPhoneNumber, false),
        ("c_badext", ResultCode::FailedInvalidExtension, false),
        ("s_fail", ResultCode::FailedSmsNotSent, false),
    ];
    let nas: Vec<_> = decided
        .iter()
        .map(|&(user, _, _)| std::thread::spawn(move || login(to, user, PASSWORD, None)))
        .collect();
    for (out, &(user, _, accepted)) in nas.into_iter().zip(&decided) {
        let out = out.join().expect("radclient");
        let want = if accepted {
            "Received Access-Accept"
        } else {
            "Received Access-Reject"
        };
        assert!(out.contains(want), "{user}: {out}");
    }

    // SMS: the code from the provider, typed at the challenge.
    let out = login(to, "s_ok", PASSWORD, None);
    assert!(out.contains("text message"), "{out}");
    let code = sim.to("s_ok")[0]["code"].as_str().expect("code").to_owned();
    let out = login(to, "s_ok", &code, Some(&state_from(&out)));
    assert!(out.contains("Received Access-Accept"), "{out}");
    // PIN mode: the code, then the PIN.
    let out = login(to, "s_pin", PASSWORD, None);
    assert!(out.contains("followed by your PIN"), "{out}");
    let code = sim.to("s_pin")[0]["code"]
        .as_str()
        .expect("code")
        .to_owned();
    let out = login(
        to,
        "s_pin",
        &format!("{code} 4711"),
        Some(&state_from(&out)),
    );
    assert!(out.contains("Received Access-Accept"), "{out}");
    // Three wrong codes.
    let mut out = login(to, "s_wrong", PASSWORD, None);
    let code = sim.to("s_wrong")[0]["code"]
        .as_str()
        .expect("code")
        .to_owned();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..3 {
        out = login(to, "s_wrong", wrong, Some(&state_from(&out)));
    }
    assert!(out.contains("Received Access-Reject"), "{out}");

    let mut records = audit(&store, decided.len() + 3);
    for (user, result, accepted) in &decided {
        let rec = (user.to_string(), *result, *accepted);
        assert!(records.contains(&rec), "{rec:?} in {records:?}");
    }
    for rec in [
        ("s_ok", ResultCode::SuccessSmsAuthenticated, true),
        ("s_pin", ResultCode::SuccessSmsAuthenticated, true),
        ("s_wrong", ResultCode::FailedSmsMaxOtpRetryReached, false),
    ] {
        let rec = (rec.0.to_string(), rec.1, rec.2);
        assert!(records.contains(&rec), "{rec:?} in {records:?}");
    }
    assert_eq!(records.len(), decided.len() + 3, "one record per login");

    // What the provider was sent.
    assert_eq!(sim.to("p_retry").len(), 2, "retried after a 500");
    assert_eq!(sim.to("p_fail").len(), 2, "one retry, then fail closed");
    assert!(sim.to("c_badphone").is_empty() && sim.to("c_badext").is_empty());
    assert_eq!(sim.to("c_pin")[0]["pin_mode"], true);
    assert!(sim.to("c_ok")[0].get("pin_mode").is_none());
    assert_eq!(sim.to("c_ok")[0]["method"], "call");
    assert_eq!(sim.to("s_ok")[0]["method"], "sms");
    assert!(sim.to("p_deny")[0].get("code").is_none());

    // An expired verification takes no callback.
    let url = sim.to("p_silent")[0]["callback_url"]
        .as_str()
        .expect("url")
        .to_owned();
    assert_eq!(post_signed(&url, r#"{"result":"approved"}"#), 404);

    // Fraud: blocked in the store, and the administrators told by email.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64;
    for user in ["p_fraud", "c_fraud"] {
        let until = store.blocked_until(user, now).expect("q");
        assert!(
            until.is_some_and(|u| u >= now + 89 * 86400),
            "{user} blocked for 90 days: {until:?}"
        );
    }
    let mails = smtp.wait(2, Duration::from_secs(10));
    assert_eq!(mails.len(), 2, "{mails:?}");
    let all = mails.concat();
    assert!(all.contains("RCPT TO:<secops@example.org>"), "{all}");
    assert!(
        all.contains("fraud reported by p_fraud (FAILED_FRAUD_REPORTED)"),
        "{all}"
    );
    assert!(
        all.contains("fraud reported by c_fraud (FAILED_FRAUD_CODE_ENTERED)"),
        "{all}"
    );
    let out = login(to, "p_fraud", PASSWORD, None);
    assert!(out.contains("Received Access-Reject"), "{out}");
    records = audit(&store, decided.len() + 4);
    assert!(records.contains(&("p_fraud".into(), ResultCode::SuccessUserBlocked, false)));
    drop(proxy);

    // A second proxy on the same store: number matching, fail open, and the
    // fallback to the app.
    // Its mail relay is down: fraud reports still block.
    let config = proxy_toml(
        &fr,
        free_port(),
        "number_matching = true\nfail_mode = \"fail_open\"",
        &format!(
            "[notify]\nsmtp = \"127.0.0.1:{}\"\ntls = \"none\"\nfrom = \"mfa-proxy@example.org\"\n\
             to = [\"secops@example.org\"]\n{providers}",
            free_port()
        ),
    );
    let proxy = start_mfa_proxy(&config, &store);
    let to = proxy.listen_addrs[0];
    let out = login(to, "n_match", PASSWORD, None);
    let number = sim.to("n_match")[0]["number"].as_u64().expect("number");
    assert!(out.contains(&format!("choose {number}")), "{out}");
    let out = login(to, "n_match", "ok", Some(&state_from(&out)));
    assert!(out.contains("Received Access-Accept"), "{out}");
    // No provider takes the push: in on the first factor, and recorded so.
    let out = login(to, "p_fail", PASSWORD, None);
    assert!(out.contains("Received Access-Accept"), "fail open: {out}");
    // The call is denied: the app's code instead.
    let out = login(to, "f_call", PASSWORD, None);
    assert!(out.contains("Not approved"), "{out}");
    let out = login(to, "f_call", &app_code(), Some(&state_from(&out)));
    assert!(out.contains("Received Access-Accept"), "{out}");
    // At the app's prompt, the word "sms" sends a code instead.
    let out = login(to, "w_totp", PASSWORD, None);
    assert!(out.contains("authenticator app"), "{out}");
    let out = login(to, "w_totp", "sms", Some(&state_from(&out)));
    let code = sim.to("w_totp")[0]["code"]
        .as_str()
        .expect("code")
        .to_owned();
    let out = login(to, "w_totp", &code, Some(&state_from(&out)));
    assert!(out.contains("Received Access-Accept"), "{out}");
    let out = login(to, "c_fraud2", PASSWORD, None);
    assert!(out.contains("Received Access-Reject"), "{out}");
    let records = audit(&store, decided.len() + 9);
    assert!(
        store.blocked_until("c_fraud2", now).expect("q").is_some(),
        "blocked although the email could not be sent"
    );
    assert_eq!(smtp.wait(3, Duration::from_millis(500)).len(), 2);
    assert!(records.contains(&(
        "n_match".into(),
        ResultCode::SuccessPhoneAppAuthenticated,
        true
    )));
    assert!(records.contains(&(
        "p_fail".into(),
        ResultCode::FailedPhoneAppNotificationFailed,
        true
    )));
    assert!(records.contains(&(
        "f_call".into(),
        ResultCode::SuccessFallbackOathCodeVerified,
        true
    )));
    assert!(records.contains(&("w_totp".into(), ResultCode::SuccessSmsAuthenticated, true)));
}

const SEED: &[u8] = b"oob-methods-seed-001";

fn app_code() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    totp_code(&TotpParams::default(), SEED, now)
}
