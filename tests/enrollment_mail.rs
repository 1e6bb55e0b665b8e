//! Enrollment mail end to end: the real `mfa-proxy` binary runs `user
//! invite` against a store in a temporary directory and mails through a real
//! SMTP server on 127.0.0.1 (`tests/support/smtp_sink.rs`). Each user gets
//! the template of their method and language; the link's token is what the
//! store holds the hash of, works once, and is replaced by the next
//! invitation; users who cannot be invited are error lines and a non-zero
//! status while the others are mailed; broken templates fail `check`.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::provider::smtp_sink::{Mail, SmtpSink};
use common::*;
use mfa_proxy::config::Config;
use mfa_proxy::enroll::invitation_hash;
use mfa_proxy::store::Store;

const PUBLIC_URL: &str = "http://127.0.0.1:8080";

/// The shipped trial configuration with `[enrollment]` mailing through
/// `smtp`, templates from `templates/` beside it, and the store initialised.
fn site(smtp: &str) -> Site {
    let shipped = std::fs::read_to_string(workspace().join("proxy.toml")).expect("read");
    assert!(shipped.contains(&format!("public_url = \"{PUBLIC_URL}\"")));
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("proxy.toml"),
        format!(
            "{shipped}\n[enrollment]\nfrom = \"it-support@example.org\"\nsmtp = \"{smtp}\"\n\
             invite_valid = \"2d\"\ntemplates = \"templates\"\n"
        ),
    )
    .expect("write config");
    std::fs::create_dir(dir.path().join("templates")).expect("mkdir");
    Site::init(dir)
}

impl Site {
    fn template(&self, name: &str, text: &str) {
        std::fs::write(self.dir.path().join("templates").join(name), text).expect("write");
    }

    fn store(&self) -> Box<dyn Store> {
        let config = Config::load(&self.dir.path().join("proxy.toml")).expect("config");
        mfa_proxy::store::open::open_existing(&config.store).expect("store")
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64
}

/// The token of the one invitation link in `body`, checked for its shape.
fn token_in(body: &str) -> String {
    let prefix = format!("{PUBLIC_URL}/portal/invite/");
    let links: Vec<&str> = body.matches(prefix.as_str()).collect();
    assert_eq!(links.len(), 1, "one link: {body}");
    let at = body.find(&prefix).expect("link") + prefix.len();
    let token: String = body[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert_eq!(
        token.len(),
        43,
        "32 bytes in base64url without padding: {body}"
    );
    assert!(
        body[at + 43..].starts_with(char::is_whitespace),
        "the link is exactly {prefix}TOKEN: {body}"
    );
    token
}

/// The mails by their recipient.
fn by_recipient(mails: &[Mail]) -> HashMap<String, Mail> {
    mails
        .iter()
        .map(|m| {
            assert_eq!(m.to.len(), 1, "{}", m.raw());
            assert_eq!(m.from, "it-support@example.org");
            (m.to[0].clone(), m.clone())
        })
        .collect()
}

#[test]
fn each_method_and_language_gets_its_template_and_a_single_use_link() {
    let sink = SmtpSink::refusing(&["bounce@example.org"]);
    let site = site(&sink.addr.to_string());
    // An administrator's template for Portuguese, which pt-br users get.
    site.template(
        "totp.pt.txt",
        "Subject: Configure a verificação, {user}\n\nOlá {user}:\n{link}\naté {expires}\n",
    );
    let add = |name: &str, extra: &[&str]| {
        let mut args = vec!["user", "add", name, "--email"];
        let email = format!("{name}@example.org");
        args.push(&email);
        args.extend(extra);
        site.ok(&args);
    };
    add("alice", &[]);
    add("bernd", &[]);
    site.ok(&["user", "set", "bernd", "--language", "de"]);
    add("carol", &[]);
    site.ok(&["user", "set", "carol", "--method", "push"]);
    add("dieter", &["--phone", "+4930123456"]);
    site.ok(&[
        "user",
        "set",
        "dieter",
        "--method",
        "call",
        "--language",
        "de",
    ]);
    add("erin", &["--phone", "+15551234567"]);
    site.ok(&["user", "set", "erin", "--method", "sms"]);
    add("frank", &["--phone", "+442071234567"]);
    site.ok(&["user", "set", "frank", "--method", "call"]);
    let o = site.run(&["user", "set", "frank", "--pin-stdin"], Some("4711\n"));
    assert!(o.status.success(), "{}", text(&o));
    add("joao", &[]);
    site.ok(&["user", "set", "joao", "--language", "pt-BR"]);
    add("bounce", &[]);
    site.ok(&["user", "add", "nomail"]);

    let names = [
        "alice", "bernd", "carol", "dieter", "erin", "frank", "joao", "nomail", "ghost", "bounce",
    ];
    let mut args = vec!["user", "invite"];
    args.extend(names);
    let o = site.run(&args, None);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert_eq!(o.status.code(), Some(1), "some failed: {stdout}{stderr}");
    for (name, template) in [
        ("alice", "totp template, en"),
        ("bernd", "totp template, de"),
        ("carol", "push template, en"),
        ("dieter", "call template, de"),
        ("erin", "sms template, en"),
        ("frank", "pin template, en"),
        ("joao", "totp template, pt"),
    ] {
        let line = format!(
            "{name}: mailed to {name}@example.org ({template}); the link works once, until 20"
        );
        assert!(stdout.contains(&line), "{line:?} in: {stdout}");
    }
    assert!(stdout.contains("invited 7 of 10 users\n"), "{stdout}");
    assert!(
        stderr.contains("error: nomail: no email address: set one with `mfa-proxy user set NAME --email ADDRESS` (nothing was stored)\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("error: ghost: no such user (nothing was stored)\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("error: bounce: the mail was not delivered: the relay ")
            && stderr
                .contains("; the invitation was withdrawn, so inviting again sends a new one\n"),
        "{stderr}"
    );
    assert!(
        stderr.ends_with("error: 3 of 10 users not invited\n"),
        "{stderr}"
    );

    let mails = by_recipient(&sink.wait_mails(7, Duration::from_secs(10)));
    assert_eq!(mails.len(), 7, "{:?}", mails.keys());
    let mail = |name: &str| &mails[&format!("{name}@example.org")];
    for (name, subject, phrases) in [
        (
            "alice",
            "Set up two-step verification for alice",
            &["Hello alice,", "a code from an authenticator app"][..],
        ),
        (
            "bernd",
            "Zwei-Schritt-Anmeldung für bernd einrichten",
            &["Guten Tag bernd,", "Code aus einer Authenticator-App"][..],
        ),
        (
            "carol",
            "Set up sign-in approval on your phone, carol",
            &["an approval on your phone", "tap Approve"][..],
        ),
        (
            "dieter",
            "Zwei-Schritt-Anmeldung per Anruf für dieter",
            &[
                "  +••••••3456  (hier sind nur die letzten vier Ziffern zu sehen)",
                "drücken Sie #",
            ][..],
        ),
        (
            "erin",
            "Two-step verification by text message for erin",
            &[
                "  +•••••••4567  (only its last four digits are shown here)",
                "we text a code",
            ][..],
        ),
        (
            "frank",
            "Set your PIN for two-step verification, frank",
            &[
                "  +••••••••4567  (only its last four digits are shown here)",
                "enter your PIN and press #",
                "set your PIN (4 to 8 digits) at\nthe portal",
            ][..],
        ),
        (
            "joao",
            "Configure a verificação, joao",
            &["Olá joao:\n", "\naté 20"][..],
        ),
    ] {
        let m = mail(name);
        assert_eq!(m.subject(), subject, "{}", m.raw());
        let body = m.body();
        for p in phrases {
            assert!(body.contains(p), "{name}: {p:?} in:\n{body}");
        }
        assert!(
            m.header("Content-Type")
                .is_some_and(|c| c.eq_ignore_ascii_case("text/plain; charset=utf-8")),
            "{}",
            m.raw()
        );
    }
    assert!(
        mail("alice")
            .body()
            .contains(&format!("methods at {PUBLIC_URL}/portal/\n")),
        "{{portal}}"
    );
    assert!(
        !mail("alice").body().contains("+•"),
        "no phone in an app mail"
    );

    // Each link's token is what the store holds the hash of, for its user;
    // the token is nowhere but in the body.
    let store = site.store();
    let now = now();
    let mut tokens = HashMap::new();
    for (to, m) in &mails {
        let token = token_in(&m.body());
        let user = to.trim_end_matches("@example.org");
        assert_eq!(
            store.invitation(&invitation_hash(&token), now).expect("q"),
            Some(user.to_owned()),
            "{to}"
        );
        assert!(
            !m.subject().contains(&token)
                && !m.header("Subject").unwrap_or_default().contains(&token)
        );
        assert!(!stdout.contains(&token) && !stderr.contains(&token));
        // The link works until invite_valid (2 days) has passed.
        assert_eq!(
            store
                .invitation(&invitation_hash(&token), now + 2 * 86_400 + 60)
                .expect("q"),
            None,
            "expired"
        );
        tokens.insert(user.to_owned(), token);
    }

    // A second invitation replaces the first: the old link is dead.
    let again = site.ok(&["user", "invite", "alice"]);
    assert!(
        again.contains("alice: mailed to alice@example.org"),
        "{again}"
    );
    let all = sink.wait_mails(8, Duration::from_secs(10));
    assert_eq!(all.len(), 8);
    let new = token_in(&all[7].body());
    assert_ne!(new, tokens["alice"]);
    let hash = |t: &str| invitation_hash(t);
    assert_eq!(
        store.invitation(&hash(&tokens["alice"]), now).expect("q"),
        None
    );
    assert_eq!(
        store.invitation(&hash(&new), now).expect("q"),
        Some("alice".into())
    );
    // Single use: the first take has it, the second finds nothing.
    assert_eq!(
        store.take_invitation(&hash(&new), now).expect("q"),
        Some("alice".into())
    );
    assert_eq!(store.take_invitation(&hash(&new), now).expect("q"), None);
    assert_eq!(store.invitation(&hash(&new), now).expect("q"), None);
    // The others' links still work.
    assert_eq!(
        store
            .take_invitation(&hash(&tokens["bernd"]), now)
            .expect("q"),
        Some("bernd".into())
    );

    // --all-pending: everyone without an active token, with an email and
    // without an open invitation: alice and bernd, whose links were used
    // without an app being set up, and bounce, whose mail never left (it
    // fails again). Not carol and joao (links still open), nor dieter,
    // erin and frank (call and SMS: told once); nomail has no address.
    let o = site.run(&["user", "invite", "--all-pending"], None);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("passed over 1 user without an email address")
            && out.contains("passed over 5 users invited before")
            && out.contains("invited 2 of 3 users"),
        "{out}"
    );
    let all = sink.wait_mails(10, Duration::from_secs(10));
    let to: Vec<String> = all[8..].iter().map(|m| m.to.join(",")).collect();
    assert_eq!(to, ["alice@example.org", "bernd@example.org"], "{out}");
    let show = site.ok(&["user", "show", "carol"]);
    assert!(show.contains("invited:   open until 20"), "{show}");
    let show = site.ok(&["user", "show", "bernd"]);
    assert!(
        show.contains("invited:   open until 20"),
        "a new one: {show}"
    );
    let show = site.ok(&["user", "show", "bounce"]);
    assert!(!show.contains("invited:"), "withdrawn: {show}");
    // Run again: nobody is mailed twice.
    let o = site.run(&["user", "invite", "--all-pending"], None);
    let out = text(&o);
    assert!(
        out.contains("passed over 7 users invited before") && out.contains("invited 0 of 1 user"),
        "{out}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sink.wait_mails(10, Duration::from_secs(1)).len(), 10);
}

#[test]
fn invite_needs_enrollment_and_a_broken_template_fails_check() {
    let sink = SmtpSink::start();
    let site = site(&sink.addr.to_string());
    let check = |site: &Site| site.run(&["check"], None);
    let o = check(&site);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains(&format!(
            "enrollment mail: from it-support@example.org via {}, links {PUBLIC_URL}/portal/invite/... valid 2days",
            sink.addr
        )),
        "{out}"
    );

    let templates = site.dir.path().join("templates");
    for (name, content, problem) in [
        (
            "sms.en.txt",
            &b"Subject: Code\n\nWe text {phone} {expirs}\n"[..],
            "line 3: unknown placeholder {expirs}",
        ),
        (
            "totp.de.txt",
            b"Subject: App\n\n{link} and {phone}\n",
            "line 3: {phone} is not available in a totp template",
        ),
        (
            "push.en.txt",
            b"Hello\n\n{link}\n",
            "line 1 is not \"Subject: ...\"",
        ),
        (
            "pin.en.txt",
            b"Subject: x\n\n{link} {user\n",
            "line 3: a { without its closing }",
        ),
        (
            "call.en.txt",
            b"Subject: x\n\n\xe4\n",
            "it is not UTF-8 text",
        ),
        (
            "mail.txt",
            b"Subject: x\n\n{link}\n",
            "the name is not KIND.LANG.txt",
        ),
    ] {
        std::fs::write(templates.join(name), content).expect("write");
        let o = check(&site);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(2), "{name}: {}", text(&o));
        let expected = format!(
            "error: `enrollment.templates`: {}: {problem}",
            templates.join(name).display()
        );
        assert!(err.starts_with(&expected), "{expected:?} in: {err}");
        if name == "sms.en.txt" {
            // serve does not start on it (a reload is refused the same way:
            // it loads the file as check does).
            let o = site.run(&["serve"], None);
            assert_eq!(o.status.code(), Some(2), "{}", text(&o));
            assert!(text(&o).contains(&expected[7..]), "{}", text(&o));
        }
        // So does invite, before anything is mailed or stored.
        let o = site.run(&["user", "invite", "nobody"], None);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        std::fs::remove_file(templates.join(name)).expect("rm");
    }
    assert!(check(&site).status.success());
    assert!(sink.mails().is_empty());

    // Without [enrollment], invite is a configuration error naming it.
    let config = site.dir.path().join("proxy.toml");
    let text_of = std::fs::read_to_string(&config).expect("read");
    let without = text_of.split("\n[enrollment]").next().expect("head");
    std::fs::write(&config, without).expect("write");
    let o = site.run(&["user", "invite", "alice"], None);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).starts_with("error: `enrollment`: missing"),
        "{}",
        text(&o)
    );
    // And without public_url (and the portal, which needs it too),
    // [enrollment] is one naming that key.
    std::fs::write(
        &config,
        text_of
            .replace(&format!("public_url = \"{PUBLIC_URL}\""), "")
            .replace("[portal]\nenabled = true", "[portal]\nenabled = false"),
    )
    .expect("write");
    let o = check(&site);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).starts_with("error: `server.public_url`: missing"),
        "{}",
        text(&o)
    );
}
