//! The portal over plain HTTP against the real `serve` on the shipped
//! trial configuration: its cookies and headers, a cross-site POST refused
//! for want of its CSRF token, the sign-in rate limit, an enrollment
//! window, an app enrolled from the key on the page and activated with a
//! computed code, then a RADIUS login through radclient with the next
//! code; a wrong code at the portal's second factor, the lost-device
//! report, and the audit trail of it all.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::web::{self, Serve, enc, request};
use common::{free_port, have, radclient, run_bin, text, workspace};
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
