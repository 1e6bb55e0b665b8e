//! `[enrollment]`: its keys, the relay it borrows from `[notify]`, what
//! invitations need of other sections, its templates, and how a reload and
//! `check` show it.

use std::path::Path;
use std::time::Duration;

use super::tests::{GOOD, expect_err, load};
use super::*;

/// GOOD with a public URL and `extra` after it.
fn with(extra: &str) -> String {
    let server = "[server]\nname = \"t\"\npublic_url = \"https://mfa.example\"\n";
    format!(
        "{}\n{extra}\n",
        GOOD.replacen("[server]\nname = \"t\"\n", server, 1)
    )
}

/// `text` (with GOOD's `[server]`) with what invitations need: a public
/// URL and `[enrollment]`.
pub(super) fn inviting(text: &str) -> String {
    format!(
        "{}\n[enrollment]\nfrom = \"it@example.org\"\nsmtp = \"127.0.0.1:25\"\n",
        text.replacen(
            "[server]\n",
            "[server]\npublic_url = \"https://mfa.example\"\n",
            1
        )
    )
}

const NOTIFY: &str = "[notify]\nsmtp = \"10.0.0.25:25\"\ntls = \"starttls\"\nfrom = \"mfa@example.org\"\nto = [\"sec@example.org\"]\n";

#[test]
fn defaults_and_the_relay_of_notify() {
    let c = load(&with(
        "[enrollment]\nfrom = \"it@example.org\"\nsmtp = \"127.0.0.1:25\"\n",
    ))
    .expect("valid");
    let e = c.enrollment.expect("section");
    assert_eq!(e.invite_valid, Duration::from_secs(7 * 86_400));
    assert_eq!((e.smtp.as_str(), e.tls), ("127.0.0.1:25", SmtpTls::None));
    assert!(!e.relay_of_notify && e.templates_dir.is_none());
    assert_eq!(e.templates.languages(), ["de", "en"]);

    let c = load(&with(&format!(
        "{NOTIFY}[enrollment]\nfrom = \"it@example.org\"\ninvite_valid = \"36h\"\n"
    )))
    .expect("valid");
    let e = c.enrollment.expect("section");
    assert_eq!(e.invite_valid, Duration::from_secs(36 * 3600));
    assert_eq!(
        (e.smtp.as_str(), e.tls),
        ("10.0.0.25:25", SmtpTls::StartTls)
    );
    assert!(e.relay_of_notify);
}

#[test]
fn errors_name_the_key() {
    let e = |body: &str| with(&format!("[enrollment]\n{body}"));
    let relay = "smtp = \"127.0.0.1:25\"\n";
    expect_err(&e(relay), "enrollment.from", "missing");
    expect_err(
        &e(&format!("from = \"it\"\n{relay}")),
        "enrollment.from",
        "not an email address",
    );
    let from = "from = \"it@example.org\"\n";
    for (v, words) in [
        ("30m", "\"30m\" is outside 1h..=90d"),
        ("91d", "outside"),
        ("soon", "not a duration"),
    ] {
        expect_err(
            &e(&format!("{from}{relay}invite_valid = \"{v}\"\n")),
            "enrollment.invite_valid",
            words,
        );
    }
    expect_err(&e(from), "enrollment.smtp", "or set [notify]");
    expect_err(
        &e(&format!("{from}smtp = \"mail.example.org\"\n")),
        "enrollment.smtp",
        "not host:port",
    );
    expect_err(
        &e(&format!("{from}{relay}tls = \"ssl\"\n")),
        "enrollment.tls",
        "not one of",
    );
    expect_err(
        &with(&format!("{NOTIFY}[enrollment]\n{from}tls = \"tls\"\n")),
        "enrollment.tls",
        "is for enrollment.smtp",
    );
    expect_err(
        &e(&format!("{from}{relay}subject = \"x\"\n")),
        "test.toml",
        "unknown field `subject`",
    );
    // Invitation links are built on public_url.
    expect_err(
        &format!("{GOOD}\n[enrollment]\n{from}{relay}"),
        "server.public_url",
        "missing",
    );
    expect_err(
        &format!("{GOOD}\n[enrollment]\n{from}templates = \"/nonexistent/t\"\n{relay}").replace(
            "[server]\n",
            "[server]\npublic_url = \"https://m.example\"\n",
        ),
        "enrollment.templates",
        "/nonexistent/t: cannot read it",
    );
}

/// A directory that invites the users it adds needs what invitations need.
#[test]
fn a_directory_that_invites_needs_enrollment_and_a_public_url() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = "[[directory]]\nname = \"corp\"\nurl = \"ldaps://dc1.example\"\n\
         bind_dn = \"CN=s,DC=example\"\nbind_password = \"pw\"\nbase_dn = \"DC=example\"\n\
         filter = \"(objectClass=user)\"\nname_attribute = \"uid\"\ninvite = true\n";
    let at = |text: &str| Config::from_toml(text, &dir.path().join("proxy.toml"));
    let e = at(&format!("{GOOD}\n{source}")).expect_err("no public_url");
    assert!(
        e.to_string().starts_with("`server.public_url`: missing"),
        "{e}"
    );
    let e = at(&with(source)).expect_err("no [enrollment]");
    assert!(
        e.to_string()
            .starts_with("`directory[0].invite`: needs an [enrollment] section"),
        "{e}"
    );
    let c = at(&with(&format!(
        "{source}[enrollment]\nfrom = \"it@example.org\"\nsmtp = \"127.0.0.1:25\"\n"
    )))
    .expect("valid");
    assert!(c.directories[0].invite && c.enrollment.is_some());
}

#[test]
fn a_broken_template_names_its_file_and_relative_folders_are_beside_the_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let templates = dir.path().join("mail");
    std::fs::create_dir(&templates).expect("mkdir");
    std::fs::write(
        templates.join("pin.de.txt"),
        "Subject: PIN\n\n{link} {phone}",
    )
    .expect("write");
    let text = with(
        "[enrollment]\nfrom = \"it@example.org\"\nsmtp = \"127.0.0.1:25\"\ntemplates = \"mail\"\n",
    );
    let path = dir.path().join("proxy.toml");
    let c = Config::from_toml(&text, &path).expect("valid");
    let e = c.enrollment.as_ref().expect("section");
    assert_eq!(e.templates_dir.as_deref(), Some(templates.as_path()));
    assert_eq!(e.templates.overrides(), ["pin.de.txt"]);
    let summary = c.summary().to_string();
    assert!(
        summary.contains(
            "enrollment mail: from it@example.org via 127.0.0.1:25, links https://mfa.example/portal/invite/... valid 7days\n"
        ) && summary.contains(&format!(
            "  templates in de, en, 1 of them from {}\n",
            templates.display()
        )),
        "{summary}"
    );

    std::fs::write(templates.join("call.en.txt"), "Subject: x\n\nCall {phon}").expect("write");
    let e = Config::from_toml(&text, &path)
        .expect_err("broken")
        .to_string();
    assert_eq!(
        e,
        format!(
            "`enrollment.templates`: {}: line 3: unknown placeholder {{phon}}; known are {{user}}, {{link}}, {{expires}}, {{phone}}, {{portal}} (write {{{{ and }}}} for literal braces)",
            templates.join("call.en.txt").display()
        )
    );
}

#[test]
fn warnings_for_plain_http_links_and_languages_without_templates() {
    let text = with(
        "[messages.fr]\nprompt = \"Code\"\n\
         [enrollment]\nfrom = \"it@example.org\"\nsmtp = \"127.0.0.1:25\"\n",
    )
    .replace("https://mfa.example", "http://mfa.example");
    let c = load(&text).expect("valid");
    let w = c.warnings.join("\n");
    assert!(w.contains("\"http://mfa.example\" is plain http"), "{w}");
    assert!(
        w.contains("users whose language is fr get these mails in another language, for want of KIND.fr.txt templates: totp in en, push in en, call in en, sms in en, pin in en"),
        "{w}"
    );
    assert!(!w.contains("language is en"), "{w}");
}

#[test]
fn a_reload_shows_what_changed_in_the_section_and_its_templates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("proxy.toml");
    let text = with(
        "[enrollment]\nfrom = \"it@example.org\"\nsmtp = \"127.0.0.1:25\"\ntemplates = \".\"\n",
    );
    let before = Config::from_toml(&text, &path).expect("valid");
    std::fs::write(dir.path().join("sms.en.txt"), "Subject: S\n\nText {phone}").expect("write");
    let after = Config::from_toml(&text.replace("it@", "help@"), &path).expect("valid");
    let changes: Vec<String> = diff(&before, &after)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(changes, ["[enrollment] changed: from, templates"]);
    assert!(diff(&after, &after).is_empty());
    let none = Config::from_toml(&with(""), &path).expect("valid");
    let changes: Vec<String> = diff(&none, &after)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(changes, ["[enrollment] added"]);
}

/// The commented `[enrollment]` example in the shipped proxy.toml,
/// uncommented, is valid: its `templates` folder is the repository's.
#[test]
fn the_shipped_example_is_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = super::tests::shipped_example("[enrollment]");
    let c = Config::from_toml(&with(&example), &root.join("proxy.toml")).expect("valid");
    let e = c.enrollment.expect("section");
    assert_eq!(
        e.templates.overrides().len(),
        10,
        "the shipped files, read as overrides"
    );
    let shipped = crate::enroll::Templates::shipped().expect("shipped");
    for kind in crate::enroll::Kind::ALL {
        for lang in ["en", "de"] {
            assert_eq!(
                e.templates.choose(kind, Some(lang), "en"),
                shipped.choose(kind, Some(lang), "en")
            );
        }
    }
}
