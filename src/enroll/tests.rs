//! Templates (parsing, rendering, the language chosen) and the store's part
//! of an invitation. The mail itself is tested against an SMTP sink in
//! `tests/enrollment_mail.rs`.

use std::path::Path;

use super::template::{Template, Values, mask_phone};
use super::*;
use crate::mfa::Method;
use crate::store::{SeedKey, SqliteStore, User};

fn values() -> Values<'static> {
    Values {
        user: "alice",
        link: "https://mfa.example/portal/invite/TOKEN",
        expires: "2030-01-01 00:00 UTC",
        phone: Some("+•••••••3456"),
        portal: "https://mfa.example/portal/",
    }
}

#[test]
fn a_template_is_a_subject_a_blank_line_and_a_body_with_placeholders() {
    let t = Template::parse(
        "Subject: Welcome {user}\r\n\r\nHello {user},\r\nopen {link} by {expires}.\r\n{{literal}} braces; {portal}\r\n\r\n",
        Kind::Totp,
    )
    .expect("valid");
    let (subject, body) = t.render(&values());
    assert_eq!(subject, "Welcome alice");
    assert_eq!(
        body,
        "Hello alice,\nopen https://mfa.example/portal/invite/TOKEN by 2030-01-01 00:00 UTC.\n\
         {literal} braces; https://mfa.example/portal/\n"
    );
    // A byte-order mark (Notepad) and any case of "Subject:" are fine.
    let t = Template::parse("\u{feff}SUBJECT:x {phone}\n\nCalled at {phone}", Kind::Call)
        .expect("valid");
    assert_eq!(t.render(&values()).1, "Called at +•••••••3456\n");
}

#[test]
fn broken_templates_say_what_is_wrong_and_where() {
    let cases: &[(&str, Kind, &str)] = &[
        (
            "Hello\n\n{link}",
            Kind::Totp,
            "line 1 is not \"Subject: ...\"",
        ),
        (
            "Subject:   \n\n{link}",
            Kind::Totp,
            "line 1 is not \"Subject: ...\"",
        ),
        ("Subject: x\nbody {link}", Kind::Totp, "line 2 is not blank"),
        ("Subject: x\n\n  \n", Kind::Call, "the body is empty"),
        ("Subject: x\n", Kind::Call, "the body is empty"),
        (
            "Subject: x\n\n{link}\nHello {usr}",
            Kind::Totp,
            "line 4: unknown placeholder {usr}",
        ),
        (
            "Subject: x\n\n{link}\n\nHello {user",
            Kind::Totp,
            "line 5: a { without",
        ),
        (
            "Subject: x\n\n{link}\n{user\n}",
            Kind::Totp,
            "line 4: a { without",
        ),
        (
            "Subject: x {user\n\n{link}",
            Kind::Totp,
            "line 1: a { without",
        ),
        (
            "Subject: x\n\n{link} }",
            Kind::Totp,
            "line 3: a } that closes nothing",
        ),
        (
            "Subject: x\n\n{link}\nWe call {phone}",
            Kind::Totp,
            "line 4: {phone} is not available in a totp template",
        ),
        (
            "Subject: x\n\n{link} {phone}",
            Kind::Push,
            "{phone} is not available in a push template",
        ),
        (
            "Subject: {link}\n\n{link}",
            Kind::Totp,
            "the Subject carries {link}",
        ),
        (
            "Subject: x\n\nno link",
            Kind::Totp,
            "a totp user cannot enroll",
        ),
        (
            "Subject: x\n\nno link",
            Kind::Pin,
            "a pin user cannot enroll",
        ),
    ];
    for (text, kind, words) in cases {
        let e = Template::parse(text, *kind).expect_err(text).to_string();
        assert!(e.contains(words), "{text:?}: wanted {words:?} in: {e}");
    }
    // Call and SMS users need no link; they may have one.
    Template::parse("Subject: x\n\nWe call {phone}", Kind::Call).expect("valid");
    Template::parse("Subject: x\n\nWe text {phone}, or {link}", Kind::Sms).expect("valid");
}

#[test]
fn values_cannot_break_the_subject_header() {
    let t = Template::parse("Subject: Hi {user}\n\n{link}", Kind::Totp).expect("valid");
    let v = Values {
        user: "eve\r\nBcc: x@example.org",
        ..values()
    };
    assert_eq!(t.render(&v).0, "Hi eve  Bcc: x@example.org");
}

#[test]
fn phone_numbers_show_their_last_four_digits() {
    assert_eq!(mask_phone("+4930123456"), "+••••••3456");
    assert_eq!(mask_phone("+15551234567x89"), "+•••••••4567");
    assert_eq!(mask_phone("+123"), "+123");
}

#[test]
fn every_kind_is_shipped_in_english_and_german() {
    let t = Templates::shipped().expect("the shipped templates parse");
    assert_eq!(t.languages(), ["de", "en"]);
    for kind in Kind::ALL {
        for lang in ["en", "de"] {
            let (_, got) = t.choose(kind, Some(lang), "en").expect("found");
            assert_eq!(got, lang, "{kind:?}");
        }
    }
    assert!(t.overrides().is_empty());
}

#[test]
fn the_language_is_the_users_then_its_base_then_the_default_then_english() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("totp.pt.txt"),
        "Subject: Olá {user}\n\n{link}",
    )
    .expect("write");
    std::fs::write(dir.path().join("totp.fr.txt"), "Subject: Salut\n\n{link}").expect("write");
    // Left alone: not .txt, or hidden.
    std::fs::write(dir.path().join("totp.en.txt~"), "garbage {").expect("write");
    std::fs::write(dir.path().join(".totp.en.txt.swp"), [0xff, 0xfe]).expect("write");
    let t = Templates::load(Some(dir.path())).expect("valid");
    assert_eq!(t.overrides(), ["totp.fr.txt", "totp.pt.txt"]);
    let lang = |user: Option<&str>, default: &str| {
        t.choose(Kind::Totp, user, default)
            .expect("found")
            .1
            .to_owned()
    };
    assert_eq!(
        lang(Some("pt-BR"), "en"),
        "pt",
        "a region falls back to its base"
    );
    assert_eq!(lang(Some("pt"), "en"), "pt");
    assert_eq!(lang(Some("de"), "fr"), "de");
    assert_eq!(lang(Some("it"), "fr"), "fr", "then [mfa] language");
    assert_eq!(lang(None, "fr-ca"), "fr", "its base too");
    assert_eq!(lang(Some("it"), "es"), "en", "then English");
    assert_eq!(lang(None, "de"), "de");
    // The other kinds in pt come from the default language.
    assert_eq!(
        t.choose(Kind::Sms, Some("pt-br"), "de").expect("found").1,
        "de"
    );
}

#[test]
fn an_administrators_file_replaces_the_shipped_one_and_a_bad_one_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shipped = Templates::shipped().expect("shipped");
    std::fs::write(
        dir.path().join("SMS.EN.txt"),
        "Subject: Ours\n\nText {phone}",
    )
    .expect("write");
    let t = Templates::load(Some(dir.path())).expect("valid");
    assert_ne!(t, shipped);
    let (sms, _) = t.choose(Kind::Sms, None, "en").expect("found");
    assert_eq!(sms.render(&values()).0, "Ours");

    let broken = |name: &str, bytes: &[u8], words: &str| {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::write(d.path().join(name), bytes).expect("write");
        let e = Templates::load(Some(d.path())).expect_err(name).to_string();
        let path = d.path().join(name);
        assert!(
            e.starts_with(&format!("{}: ", path.display())) && e.contains(words),
            "{name}: wanted the path and {words:?} in: {e}"
        );
    };
    broken(
        "totp.en.txt",
        b"Subject: x\n\n{link} {phone}",
        "{phone} is not available",
    );
    broken("call.de.txt", b"Subject: x\n\n\xff\xfe", "not UTF-8");
    broken("fax.en.txt", b"Subject: x\n\ny", "not KIND.LANG.txt");
    broken("totp.txt", b"Subject: x\n\n{link}", "not KIND.LANG.txt");
    broken("totp.e n.txt", b"Subject: x\n\n{link}", "not KIND.LANG.txt");
    let missing = Path::new("/nonexistent/templates");
    let e = Templates::load(Some(missing))
        .expect_err("missing")
        .to_string();
    assert!(
        e.starts_with("/nonexistent/templates: cannot read it"),
        "{e}"
    );
}

#[test]
fn tokens_are_43_characters_of_base64url_and_never_printed() {
    let a = InviteToken::generate();
    let b = InviteToken::generate();
    assert_eq!(a.0.len(), 43);
    assert!(
        a.0.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    );
    assert_ne!(a.0.as_str(), b.0.as_str());
    assert_eq!(a.hash(), invitation_hash(&a.0));
    assert_eq!(format!("{a:?}"), "InviteToken(<redacted>)");
    assert_eq!(
        invite_link("https://mfa.example", &a).as_str(),
        format!("https://mfa.example/portal/invite/{}", a.0.as_str())
    );
    assert_eq!(mail_time(1_900_000_000), "2030-03-17 17:46 UTC");
}

const CONFIG: &str = r#"
[server]
name = "t"
auth_listen = ["127.0.0.1:1812"]
public_url = "https://mfa.example"
[primary]
mode = "local"
[[client]]
name = "vpn"
address = "127.0.0.1"
secret = "a-long-shared-secret-xyz"
[enrollment]
from = "it@example.org"
smtp = "127.0.0.1:2525"
invite_valid = "2d"
"#;

fn store_with(users: &[User]) -> SqliteStore {
    let s = SqliteStore::in_memory(SeedKey::from_bytes(&[3; 32])).expect("open");
    for u in users {
        s.add_user(u).expect("add");
    }
    s
}

#[test]
fn prepare_stores_the_hash_and_builds_the_mail_or_says_why_not() {
    let config = crate::config::Config::from_toml(CONFIG, Path::new("t.toml")).expect("valid");
    let inviter = Inviter::new(&config).expect("inviter");
    let user = |name: &str, email: Option<&str>, method: Method, phone: Option<&str>| User {
        email: email.map(Into::into),
        phone: phone.map(Into::into),
        ..User::new(name, method)
    };
    let store = store_with(&[
        user("Alice", Some("alice@example.org"), Method::Totp, None),
        user("nomail", None, Method::Totp, None),
        user("caller", Some("c@example.org"), Method::Call, None),
        User {
            disabled_at: Some(5),
            ..user("gone", Some("g@example.org"), Method::Totp, None)
        },
    ]);
    let now = 1_000_000;
    let p = inviter.prepare(&store, "alice", now).expect("prepared");
    assert_eq!(
        p.sent,
        Sent {
            user: "Alice".into(),
            to: "alice@example.org".into(),
            kind: Kind::Totp,
            language: "en".into(),
            expires_at: now + 2 * 86_400,
        }
    );
    // The token is only in the message: take it from there.
    // (Quoted-printable: a long line is broken with a soft "=".)
    let formatted = String::from_utf8(p.message.formatted())
        .expect("utf8")
        .replace("=\r\n", "");
    let at = formatted.find("/portal/invite/").expect("the link") + 15;
    let token = &formatted[at..at + 43];
    assert_eq!(
        store.invitation(&invitation_hash(token), now).expect("q"),
        Some("Alice".into())
    );
    let debug = format!("{p:?}");
    assert!(
        !debug.contains(token) && debug.contains("alice@example.org"),
        "{debug}"
    );

    let err = |name: &str| inviter.prepare(&store, name, now).expect_err(name);
    assert!(matches!(err("nobody"), InviteError::NoSuchUser));
    assert!(matches!(err("nomail"), InviteError::NoEmail));
    assert!(matches!(err("caller"), InviteError::NoPhone("call")));
    assert!(matches!(err("gone"), InviteError::Disabled));
}

#[test]
fn without_enrollment_nothing_can_be_sent() {
    let text = CONFIG.split("[enrollment]").next().expect("head");
    let config = crate::config::Config::from_toml(text, Path::new("t.toml")).expect("valid");
    let store = store_with(&[]);
    let e = invite_users(&store, &config, &["a".into()], 0, &mut |_| {}).expect_err("no section");
    assert!(matches!(e, SetupError::NoEnrollment), "{e}");
    assert!(e.to_string().starts_with("`enrollment`: missing"), "{e}");
}

/// The sync may run on a blocking thread of serve's runtime: sending
/// from there (a runtime of its own inside `spawn_blocking`) works, and a
/// relay that is down withdraws the invitation it stored and says so.
#[test]
fn invite_users_runs_inside_spawn_blocking() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port nothing listens on");
    let text = CONFIG.replace("127.0.0.1:2525", &closed.to_string());
    let config = crate::config::Config::from_toml(&text, Path::new("t.toml")).expect("valid");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let report = rt.block_on(async move {
        tokio::task::spawn_blocking(move || {
            let store = store_with(&[User {
                email: Some("bob@example.org".into()),
                ..User::new("bob", Method::Totp)
            }]);
            let mut seen = 0;
            let names = ["ghost".to_owned(), "bob".to_owned()];
            let r = invite_users(&store, &config, &names, 0, &mut |_| seen += 1).expect("runs");
            assert_eq!(seen, 2);
            assert_eq!(
                store.invitation_of("bob").expect("store"),
                None,
                "withdrawn: nobody has its link"
            );
            r
        })
        .await
        .expect("joined")
    });
    assert_eq!((report.sent(), report.failed()), (0, 2));
    assert!(matches!(
        report.outcomes[0].result,
        Err(InviteError::NoSuchUser)
    ));
    let e = report.outcomes[1].result.as_ref().expect_err("relay down");
    assert!(matches!(e, InviteError::NotDelivered { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("the mail was not delivered: the relay 127.0.0.1:"),
        "{e}"
    );
}
