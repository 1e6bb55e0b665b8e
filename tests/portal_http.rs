//! The portal over plain HTTP against the real `serve` on the shipped
//! trial configuration: its cookies and headers, a cross-site POST refused
//! for want of its CSRF token, the sign-in rate limit, an enrollment
//! window, an app enrolled from the key on the page and activated with a
//! computed code, then a RADIUS login through radclient with the next
//! code; a wrong code at the portal's second factor, the lost-device
//! report, and the audit trail and /metrics of it all. Behind a trusted
//! reverse proxy, the address in X-Forwarded-For is limited and recorded;
//! from any other peer the header is ignored.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::web::{self, Answer, Serve, enc, request, request_with};
use common::{free_port, have, radclient, run_bin, shipped_config_in, text, workspace};
use mfa_proxy::mfa::otp::{TotpParams, totp_code};

fn unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs()
}

#[test]
fn enroll_at_the_portal_then_log_in_over_radius() {
    if !have("radclient") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (auth, http) = (free_port(), free_port());
    let shipped = std::fs::read_to_string(workspace().join("proxy.toml")).expect("read");
    assert!(
        shipped.contains("[portal]\nenabled = true"),
        "the trial has the portal"
    );
    std::fs::write(
        dir.path().join("proxy.toml"),
        shipped
            .replace("127.0.0.1:1812\"]", &format!("127.0.0.1:{auth}\"]"))
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{http}")),
    )
    .expect("write");
    let ok = |args: &[&str], stdin: Option<&str>| {
        let o = run_bin(dir.path(), args, stdin);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        text(&o)
    };
    ok(&["init"], None);
    ok(
        &["user", "add", "alice", "--password-stdin"],
        Some("alice-pass\n"),
    );
    ok(
        &["user", "add", "bob", "--password-stdin"],
        Some("bob-pass\n"),
    );
    ok(
        &[
            "user",
            "add",
            "carol",
            "--phone",
            "+4930555000",
            "--password-stdin",
        ],
        Some("carol-pass\n"),
    );
    let opened = ok(&["user", "open-enrollment", "alice", "--for", "1h"], None);
    assert!(opened.contains("may enroll at the portal"), "{opened}");
    assert!(ok(&["user", "show", "alice"], None).contains("enrollment: open at the portal"));
    let _serve = Serve::start(
        &dir.path().join("proxy.toml"),
        Some(&dir.path().join("serve.log")),
        http,
    );

    // The sign-in page, its cookie and headers.
    let first = request(http, "GET", "/portal/", None, "");
    assert_eq!(first.status, 200);
    let set = first.header("set-cookie").expect("a session cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/portal/"] {
        assert!(set.contains(flag), "{set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: no Secure flag");
    assert_eq!(first.header("cache-control"), Some("no-store"));
    assert_eq!(first.header("referrer-policy"), Some("no-referrer"));
    assert!(
        first
            .header("content-security-policy")
            .expect("csp")
            .contains("default-src 'none'")
    );
    assert!(
        first.body.contains("<label for=\"user\">"),
        "labelled inputs"
    );
    let visitor = first.cookie().expect("cookie");
    let csrf = first.csrf();

    // A cross-site POST: no cookie (SameSite=Strict) and no token.
    let forged = request(
        http,
        "POST",
        "/portal/signin",
        None,
        "user=alice&password=alice-pass",
    );
    assert_eq!(forged.status, 403);
    // The cookie without the token, or with another token.
    let forged = request(
        http,
        "POST",
        "/portal/signin",
        Some(&visitor),
        "user=alice&password=alice-pass&csrf=00",
    );
    assert_eq!(forged.status, 403);

    // The rate limit: five wrong passwords for bob, then even the right one
    // is refused unchecked.
    for _ in 0..5 {
        let a = request(
            http,
            "POST",
            "/portal/signin",
            Some(&visitor),
            &format!("csrf={csrf}&user=bob&password=wrong"),
        );
        assert_eq!(a.status, 200);
        assert!(a.body.contains("Wrong user name or password"));
    }
    let limited = request(
        http,
        "POST",
        "/portal/signin",
        Some(&visitor),
        &format!("csrf={csrf}&user=bob&password=bob-pass"),
    );
    assert_eq!(limited.status, 429);
    assert!(limited.body.contains("Too many failed sign-ins"));

    // Alice, inside her enrollment window: signed in with the password.
    let signed = request(
        http,
        "POST",
        "/portal/signin",
        Some(&visitor),
        &format!("csrf={csrf}&user=alice&password={}", enc("alice-pass")),
    );
    assert_eq!(signed.status, 303, "{}", signed.body);
    let session = signed.cookie().expect("a new session");
    let home = request(http, "GET", "/portal/", Some(&session), "");
    assert_eq!(home.status, 200);
    assert!(
        home.body.contains("Set up a way to confirm your sign-ins"),
        "{}",
        home.body
    );
    let csrf = home.csrf();
    // Signed in to enroll, without a second factor: an app may be set up,
    // nothing else changed (the phone form is not even shown).
    assert!(!home.body.contains("action=\"/portal/phone\""));
    let phone = request(
        http,
        "POST",
        "/portal/phone",
        Some(&session),
        &format!("csrf={csrf}&phone=%2B4930999&method=sms"),
    );
    assert_eq!(phone.status, 403, "an enrolling session changes no phone");

    // Enroll an app: the key is on the page as text.
    let app = request(
        http,
        "POST",
        "/portal/app/new",
        Some(&session),
        &format!("csrf={csrf}"),
    );
    assert_eq!(app.status, 200);
    assert!(app.body.contains("<svg"), "the QR code");
    let at = app.body.find("id=\"secret\">").expect("the key as text") + 12;
    let key: String = app.body[at..]
        .split('<')
        .next()
        .expect("key")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let seed = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, &key).expect("base32");
    let p = TotpParams::default();
    let wrong = request(
        http,
        "POST",
        "/portal/app/activate",
        Some(&session),
        &format!("csrf={csrf}&code=000000"),
    );
    if totp_code(&p, &seed, unix()) != "000000" {
        assert!(
            wrong.body.contains("That code is not right"),
            "{}",
            wrong.body
        );
    }
    let code = totp_code(&p, &seed, unix());
    let activated = request(
        http,
        "POST",
        "/portal/app/activate",
        Some(&session),
        &format!("csrf={csrf}&code={code}"),
    );
    assert_eq!(activated.status, 303);
    let session = activated.cookie().expect("cookie");
    let home = request(http, "GET", "/portal/", Some(&session), "");
    assert!(
        home.body.contains("Your authenticator app is ready."),
        "{}",
        home.body
    );
    assert!(home.body.contains("Authenticator app"));

    // Enrolled now: the phone form works, and the enrollment window closed.
    let csrf = home.csrf();
    let saved = request(
        http,
        "POST",
        "/portal/phone",
        Some(&session),
        &format!("csrf={csrf}&phone=%2B4930123456&method=totp"),
    );
    assert_eq!(saved.status, 303, "{}", saved.body);
    let session = saved.cookie().expect("cookie");
    assert!(
        !ok(&["user", "show", "alice"], None).contains("enrollment: open"),
        "the window closed"
    );
    // A block ends what the session may do at once.
    ok(&["block", "alice", "--reason", "test", "--for", "1h"], None);
    let blocked = request(
        http,
        "POST",
        "/portal/phone",
        Some(&session),
        &format!("csrf={csrf}&phone=%2B4930123457&method=totp"),
    );
    assert_eq!(blocked.status, 403, "a blocked user's session acts no more");
    ok(&["unblock", "alice", "--reason", "test over"], None);

    // A RADIUS login with the next code.
    let to: std::net::SocketAddr = format!("127.0.0.1:{auth}").parse().expect("addr");
    let next = totp_code(&p, &seed, unix() + 30);
    let out = text(&radclient(
        to,
        "auth",
        "testing123",
        &format!(
            "User-Name = alice\nUser-Password = \"alice-pass,{next}\"\nMessage-Authenticator = 0x00\n"
        ),
        &["-x", "-r", "1", "-t", "4"],
    ));
    assert!(out.contains("Received Access-Accept"), "{out}");

    // Signed out, then in again: now the code is asked for, and a wrong
    // one is refused.
    let out_ = request(
        http,
        "POST",
        "/portal/signout",
        Some(&session),
        &format!("csrf={}", home.csrf()),
    );
    assert_eq!(out_.status, 303);
    assert!(
        out_.header("set-cookie")
            .expect("cleared")
            .contains("Max-Age=0")
    );
    // The old cookie, replayed (copied before the sign-out): over, at the
    // server too.
    let replayed = request(http, "GET", "/portal/", Some(&session), "");
    assert!(
        replayed.body.contains("action=\"/portal/signin\""),
        "the sign-in page, not alice's: {}",
        replayed.body
    );
    let replayed = request(
        http,
        "POST",
        "/portal/phone",
        Some(&session),
        &format!("csrf={}&phone=%2B4930123458&method=totp", home.csrf()),
    );
    assert_eq!(replayed.status, 403, "a signed-out session acts no more");
    assert_eq!(
        web::metric(
            http,
            "mfa_portal_sessions_ended_total{reason=\"signed_out\"}"
        ),
        2
    );
    let again = request(http, "GET", "/portal/", None, "");
    let (visitor, csrf) = (again.cookie().expect("cookie"), again.csrf());
    let pw = request(
        http,
        "POST",
        "/portal/signin",
        Some(&visitor),
        &format!("csrf={csrf}&user=alice&password=alice-pass"),
    );
    assert_eq!(pw.status, 200);
    assert!(pw.body.contains("Verification code"), "{}", pw.body);
    let half = pw.cookie().expect("cookie");
    let bad = request(
        http,
        "POST",
        "/portal/code",
        Some(&half),
        &format!("csrf={}&code=123", pw.csrf()),
    );
    assert!(bad.body.contains("That code is not right"), "{}", bad.body);

    // A user with a phone and no app: a code by text message (the trial's
    // console provider writes it to the log), the wrong one refused.
    let page = request(http, "GET", "/portal/", None, "");
    let (visitor, csrf) = (page.cookie().expect("cookie"), page.csrf());
    let sent = request(
        http,
        "POST",
        "/portal/signin",
        Some(&visitor),
        &format!("csrf={csrf}&user=carol&password=carol-pass"),
    );
    assert!(
        sent.body.contains("We sent a code to your phone"),
        "{}",
        sent.body
    );
    let carol = sent.cookie().expect("cookie");
    let log_deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();
        if let Some(line) = log.lines().find(|l| l.contains("sms for carol")) {
            let at = line.find("Your sign-in code is ").expect("the code") + 21;
            break line[at..at + 6].to_owned();
        }
        assert!(Instant::now() < log_deadline, "no text message: {log}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let wrong_code = if code == "000000" { "000001" } else { "000000" };
    let bad = request(
        http,
        "POST",
        "/portal/code",
        Some(&carol),
        &format!("csrf={}&code={wrong_code}", sent.csrf()),
    );
    assert!(bad.body.contains("That code is not right"), "{}", bad.body);
    let good = request(
        http,
        "POST",
        "/portal/code",
        Some(&carol),
        &format!("csrf={}&code={code}", sent.csrf()),
    );
    assert_eq!(good.status, 303, "{}", good.body);
    let home = request(
        http,
        "GET",
        "/portal/",
        Some(&good.cookie().expect("session")),
        "",
    );
    assert!(
        home.body.contains("Your sign-in verification – carol"),
        "{}",
        home.body
    );

    // The sign-ins the user sees include the RADIUS login, with "not me".
    let report = ok(&["report", "signins", "--format", "csv"], None);
    assert!(report.contains("portal"), "{report}");
    assert!(report.contains("FAILED_OATH_CODE_INCORRECT"), "{report}");

    // What /metrics counted of it all: bob's five wrong passwords and the
    // one refused unchecked; alice's and carol's sign-ins, and a wrong
    // code each (alice's second sign-in stopped at the code); the two
    // forged posts; what alice did, and her session ended by the block.
    let m = |sample: &str| web::metric(http, sample);
    for (sample, n) in [
        ("mfa_portal_signins_total{result=\"ok\"}", 2),
        ("mfa_portal_signins_total{result=\"wrong_password\"}", 5),
        ("mfa_portal_signins_total{result=\"wrong_code\"}", 2),
        ("mfa_portal_signins_total{result=\"limited\"}", 1),
        ("mfa_portal_signins_total{result=\"refused\"}", 0),
        ("mfa_portal_signins_total{result=\"unavailable\"}", 0),
        ("mfa_portal_actions_total{action=\"enroll_app\"}", 1),
        ("mfa_portal_actions_total{action=\"activate_app\"}", 1),
        (
            "mfa_portal_actions_total{action=\"set_phone_and_method\"}",
            1,
        ),
        ("mfa_portal_actions_total{action=\"sign_out\"}", 1),
        ("mfa_portal_actions_total{action=\"lost_device\"}", 0),
        ("mfa_portal_csrf_refused_total", 2),
        ("mfa_portal_sessions_ended_total{reason=\"refused\"}", 1),
        ("mfa_portal_forwarded_invalid_total", 0),
    ] {
        assert_eq!(m(sample), n, "{sample}");
    }
}

/// `[primary] mode = "upstream"`: the portal asks the upstream (a real
/// FreeRADIUS) with an Access-Request of its own, signed and checked as the
/// proxy's forwarding is.
#[test]
fn the_portal_asks_the_upstream_for_the_password() {
    if !have("freeradius") {
        return;
    }
    let upstream = common::FreeRadius::start(common::UPSTREAM_SECRET);
    let dir = tempfile::tempdir().expect("tempdir");
    let (auth, http) = (free_port(), free_port());
    let shipped = std::fs::read_to_string(workspace().join("proxy.toml")).expect("read");
    let config = shipped
        .replace("127.0.0.1:1812\"]", &format!("127.0.0.1:{auth}\"]"))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{http}"))
        .replace("\nmode = \"local\"", "\nmode = \"upstream\"")
        + &format!(
            "\n[[upstream]]\nname = \"nps\"\naddress = \"{}\"\nsecret = \"{}\"\ntimeout = \"1s\"\n\
             retries = 0\nrequire_message_authenticator = false  # FreeRADIUS 3.2.1 signs no reply\n",
            upstream.auth,
            common::UPSTREAM_SECRET
        );
    // Started with a wrong secret, which the reload below puts right.
    let path = dir.path().join("proxy.toml");
    std::fs::write(
        &path,
        config.replace(common::UPSTREAM_SECRET, "a-wrong-secret-0123456789"),
    )
    .expect("write");
    let ok = |args: &[&str]| {
        let o = run_bin(dir.path(), args, None);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
    };
    ok(&["init"]);
    ok(&["user", "add", "bob"]);
    ok(&["user", "open-enrollment", "bob", "--for", "1h"]);
    let _serve = Serve::start(&dir.path().join("proxy.toml"), None, http);
    let sign_in = |password: &str| web::sign_in(http, "bob", password);
    let unanswered = sign_in("bob-pass");
    assert!(
        unanswered.body.contains("cannot be checked right now"),
        "{}",
        unanswered.body
    );
    // A reload reaches the portal: the upstream's secret as the proxy's.
    std::fs::write(&path, &config).expect("write");
    Command::new("kill")
        .args(["-HUP", &_serve.0.id().to_string()])
        .status()
        .expect("kill");
    std::thread::sleep(Duration::from_millis(500));
    let wrong = sign_in("nope");
    assert!(
        wrong.body.contains("Wrong user name or password"),
        "{}",
        wrong.body
    );
    let right = sign_in("bob-pass");
    assert_eq!(right.status, 303, "{}", right.body);
    assert!(upstream.auth_attempts("bob") >= 2, "{}", upstream.log());
}

/// The trial configuration in a new directory, with the per-address
/// sign-in limit at 3 (the per-user one out of the way), `portal_extra`
/// in `[portal]`, its store, and alice inside an enrollment window.
fn forwarding_site(portal_extra: &str) -> (tempfile::TempDir, u16) {
    let dir = tempfile::tempdir().expect("tempdir");
    let portal = format!(
        "[portal]\nenabled = true\nsignin_per_user = 100\nsignin_per_address = 3\n{portal_extra}"
    );
    let (_, http) = shipped_config_in(dir.path(), &[("[portal]\nenabled = true\n", &portal)]);
    for (args, stdin) in [
        (&["init"][..], None),
        (
            &["user", "add", "alice", "--password-stdin"][..],
            Some("alice-pass\n"),
        ),
        (
            &["user", "open-enrollment", "alice", "--for", "1h"][..],
            None,
        ),
    ] {
        let o = run_bin(dir.path(), args, stdin);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
    }
    (dir, http)
}

/// A sign-in from a fresh visitor's page, the POST carrying
/// `X-Forwarded-For: forwarded`.
fn sign_in_forwarded(http: u16, forwarded: &str, user: &str, password: &str) -> Answer {
    let page = request(http, "GET", "/portal/", None, "");
    request_with(
        http,
        "POST",
        "/portal/signin",
        Some(&page.cookie().expect("cookie")),
        &format!(
            "csrf={}&user={}&password={}",
            page.csrf(),
            enc(user),
            enc(password)
        ),
        &[("X-Forwarded-For", forwarded)],
    )
}

/// The portal's audit records, as CSV lines.
fn portal_audit(dir: &std::path::Path) -> Vec<String> {
    let o = run_bin(dir, &["report", "signins", "--format", "csv"], None);
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.contains(",portal,"))
        .map(str::to_owned)
        .collect()
}

/// Behind a trusted proxy (here 127.0.0.1, the test's own address), each
/// forwarded address has its own limit, and the audit trail names it.
#[test]
fn behind_a_trusted_proxy_the_forwarded_address_is_limited_and_recorded() {
    let (dir, http) = forwarding_site("trusted_proxies = [\"127.0.0.1\"]\n");
    let _serve = Serve::start(&dir.path().join("proxy.toml"), None, http);
    // What a client wrote itself is left of what the proxy appended.
    for _ in 0..3 {
        let a = sign_in_forwarded(http, "203.0.113.66, 192.0.2.1", "mallory", "guess");
        assert_eq!(a.status, 200);
        assert!(a.body.contains("Wrong user name or password"), "{}", a.body);
    }
    let limited = sign_in_forwarded(http, "192.0.2.1", "mallory", "guess");
    assert_eq!(limited.status, 429, "192.0.2.1 used up its attempts");
    let other = sign_in_forwarded(http, "192.0.2.2", "mallory", "guess");
    assert_eq!(other.status, 200, "192.0.2.2 is limited on its own");
    assert!(other.body.contains("Wrong user name or password"));
    // Not an address: the proxy's own, which is not limited yet.
    let garbled = sign_in_forwarded(http, "unknown", "mallory", "guess");
    assert_eq!(garbled.status, 200);
    // IPv6 with a port: the port is dropped.
    let alice = sign_in_forwarded(http, "[2001:db8::7]:4711", "alice", "alice-pass");
    assert_eq!(alice.status, 303, "{}", alice.body);

    let audit = portal_audit(dir.path());
    let from = |user: &str, ip: &str| {
        audit
            .iter()
            .filter(|l| l.contains(&format!(",{user},")) && l.contains(&format!(",{ip},")))
            .count()
    };
    assert_eq!(from("mallory", "192.0.2.1"), 4, "{audit:#?}");
    assert_eq!(from("mallory", "192.0.2.2"), 1, "{audit:#?}");
    assert_eq!(from("mallory", "127.0.0.1"), 1, "{audit:#?}");
    assert_eq!(from("mallory", "203.0.113.66"), 0, "{audit:#?}");
    assert_eq!(from("alice", "2001:db8::7"), 1, "{audit:#?}");

    let m = |sample: &str| web::metric(http, sample);
    assert_eq!(m("mfa_portal_signins_total{result=\"wrong_password\"}"), 5);
    assert_eq!(m("mfa_portal_signins_total{result=\"limited\"}"), 1);
    assert_eq!(m("mfa_portal_signins_total{result=\"ok\"}"), 1);
    assert_eq!(m("mfa_portal_forwarded_invalid_total"), 1, "\"unknown\"");
}

/// Without trusted_proxies, X-Forwarded-For is the client's own claim and
/// is ignored: every request here is from 127.0.0.1, limited as one.
#[test]
fn from_an_untrusted_peer_x_forwarded_for_is_ignored() {
    let (dir, http) = forwarding_site("");
    let _serve = Serve::start(&dir.path().join("proxy.toml"), None, http);
    let alice = sign_in_forwarded(http, "198.51.100.7", "alice", "alice-pass");
    assert_eq!(alice.status, 303, "{}", alice.body);
    for _ in 0..3 {
        let a = sign_in_forwarded(http, "192.0.2.1", "mallory", "guess");
        assert_eq!(a.status, 200);
    }
    let other = sign_in_forwarded(http, "192.0.2.2", "mallory", "guess");
    assert_eq!(web::metric(http, "mfa_portal_forwarded_invalid_total"), 0);
    assert_eq!(
        other.status, 429,
        "one address, one limit, whatever the header says"
    );

    let audit = portal_audit(dir.path());
    assert!(
        audit
            .iter()
            .any(|l| l.contains(",alice,") && l.contains(",127.0.0.1,")),
        "{audit:#?}"
    );
    for claimed in ["198.51.100.7", "192.0.2.1", "192.0.2.2"] {
        assert!(
            !audit.iter().any(|l| l.contains(claimed)),
            "{claimed}: {audit:#?}"
        );
    }
}
