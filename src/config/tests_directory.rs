//! `[[directory]]`: the contract of issue 17 parses, defaults are sound,
//! and every mistake names its key without showing the bind password.

use std::time::Duration;

use super::tests::{GOOD, expect_err, load};
use super::*;
use crate::mfa::Method;

const PASSWORD: &str = "bind-pw-must-not-leak";

/// The example of issue 17, with an inline password and no CA file.
fn corp(extra: &str) -> String {
    format!(
        r#"{GOOD}
[[directory]]
name = "corp"
url = "ldaps://dc1.corp.example:636"
bind_dn = "CN=mfa-sync,OU=Service,DC=corp,DC=example"
bind_password = "{PASSWORD}"
base_dn = "DC=corp,DC=example"
filter = "(&(objectClass=user)(mail=*))"
group = "CN=VPN Users,OU=Groups,DC=corp,DC=example"
name_attribute = "sAMAccountName"
email_attribute = "mail"
phone_attribute = "mobile"
language_attribute = "preferredLanguage"
groups_attribute = "memberOf"
default_method = "totp"
interval = "15m"
remove_after = "30d"
{extra}"#
    )
}

/// `corp` with `from` replaced by `to` (which must be there).
fn corp_with(from: &str, to: &str) -> String {
    let text = corp("");
    assert!(text.contains(from), "{from}");
    text.replace(from, to)
}

#[test]
fn the_contract_of_issue_17_parses() {
    let c = load(&corp("")).expect("valid");
    let d = &c.directories[0];
    assert_eq!(d.name, "corp");
    assert_eq!((d.host.as_str(), d.port), ("dc1.corp.example", 636));
    assert_eq!(d.tls, DirectoryTls::Ldaps);
    assert_eq!(d.bind_password.expose(), PASSWORD.as_bytes());
    assert_eq!(
        d.group.as_deref(),
        Some("CN=VPN Users,OU=Groups,DC=corp,DC=example")
    );
    assert_eq!(d.name_attribute, "sAMAccountName");
    assert_eq!(d.groups_attribute.as_deref(), Some("memberOf"));
    assert_eq!(d.default_method, Method::Totp);
    assert_eq!(d.interval, Duration::from_secs(900));
    assert_eq!(d.remove_after, Duration::from_secs(30 * 86_400));
    assert_eq!(d.page_size, 500);
    assert_eq!(d.timeout, Duration::from_secs(30));
    assert!(!d.invite);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn defaults_and_optional_mappings() {
    let text = format!(
        "{GOOD}\n[[directory]]\nname = \"ol\"\nurl = \"ldap://[::1]\"\nstarttls = true\n\
         bind_dn = \"cn=sync,dc=example\"\nbind_password = \"x\"\nbase_dn = \"dc=example\"\n\
         filter = \"(objectClass=inetOrgPerson)\"\nname_attribute = \"uid\"\n\
         default_method = \"sms\"\ndefault_language = \"pt-BR\"\ninvite = true\n\
         page_size = 1000\ntimeout = \"5s\"\n"
    );
    // invite = true needs [enrollment] and public_url.
    let c = load(&super::tests_enrollment::inviting(&text)).expect("valid");
    let d = &c.directories[0];
    assert_eq!((d.host.as_str(), d.port), ("::1", 389));
    assert_eq!(d.tls, DirectoryTls::StartTls);
    assert_eq!(d.interval, Duration::from_secs(900));
    assert_eq!(d.email_attribute, None, "not owned unless mapped");
    assert_eq!(d.group, None);
    assert_eq!(d.default_language.as_deref(), Some("pt-br"));
    assert!(d.invite);
    assert_eq!(d.page_size, 1000);
    // SMS without a phone attribute works but is worth a word.
    assert!(
        c.warnings.iter().any(|w| w.contains("phone_attribute")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn plain_ldap_is_allowed_with_a_warning() {
    let c = load(&corp_with(
        "ldaps://dc1.corp.example:636",
        "ldap://dc1.corp.example",
    ))
    .expect("valid");
    assert_eq!(c.directories[0].tls, DirectoryTls::None);
    assert!(
        c.warnings.iter().any(|w| w.contains("unencrypted")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn errors_name_the_key() {
    let ldaps = "ldaps://dc1.corp.example:636";
    expect_err(
        &corp_with(ldaps, "https://dc1"),
        "directory[0].url",
        "not an ldap://",
    );
    expect_err(
        &corp_with(ldaps, "ldaps://dc1/DC=corp"),
        "directory[0].url",
        "base_dn",
    );
    expect_err(
        &corp_with(ldaps, "ldaps://dc1:0"),
        "directory[0].url",
        "not a port",
    );
    expect_err(&corp_with(ldaps, "ldaps://"), "directory[0].url", "no host");
    expect_err(
        &corp("starttls = true"),
        "directory[0].starttls",
        "ldaps://",
    );
    expect_err(
        &corp_with("ldaps://dc1.corp.example:636", "ldap://dc1")
            .replace("remove_after", "ca_file = \"ca.pem\"\nremove_after"),
        "directory[0].ca_file",
        "plain ldap://",
    );
    expect_err(
        &corp("ca_file = \"/nonexistent/ca.pem\""),
        "directory[0].ca_file",
        "cannot read",
    );
    expect_err(
        &corp_with("interval = \"15m\"", "interval = \"30s\""),
        "directory[0].interval",
        "outside 1m..=1day",
    );
    expect_err(
        &corp_with("interval = \"15m\"", "interval = \"2days\""),
        "directory[0].interval",
        "outside",
    );
    expect_err(
        &corp_with("remove_after = \"30d\"", "remove_after = \"soon\""),
        "directory[0].remove_after",
        "not a duration",
    );
    expect_err(
        &corp_with("default_method = \"totp\"", "default_method = \"fax\""),
        "directory[0].default_method",
        "not one of",
    );
    expect_err(
        &corp_with(
            "filter = \"(&(objectClass=user)(mail=*))\"",
            "filter = \"objectClass=user\"",
        ),
        "directory[0].filter",
        "in parentheses",
    );
    expect_err(
        &corp_with(
            "filter = \"(&(objectClass=user)(mail=*))\"",
            "filter = \"(&(objectClass=user)(mail=*)\"",
        ),
        "directory[0].filter",
        "unbalanced",
    );
    expect_err(
        &corp_with(
            "filter = \"(&(objectClass=user)(mail=*))\"",
            "filter = \"(a=b)(c=d)\"",
        ),
        "directory[0].filter",
        "(&...)",
    );
    expect_err(
        &corp_with("name_attribute = \"sAMAccountName\"\n", ""),
        "directory[0].name_attribute",
        "missing",
    );
    expect_err(
        &corp_with(
            "email_attribute = \"mail\"",
            "email_attribute = \"mail address\"",
        ),
        "directory[0].email_attribute",
        "not an attribute name",
    );
    expect_err(
        &corp_with(
            "base_dn = \"DC=corp,DC=example\"",
            "base_dn = \"corp.example\"",
        ),
        "directory[0].base_dn",
        "not a DN",
    );
    expect_err(
        &corp_with(
            "group = \"CN=VPN Users,OU=Groups,DC=corp,DC=example\"",
            "group = \"\"",
        ),
        "directory[0].group",
        "empty",
    );
    expect_err(
        &corp_with(
            &format!("bind_password = \"{PASSWORD}\""),
            "bind_password_env = \"MFA_TEST_UNSET_VAR\"",
        ),
        "directory[0].bind_password_env",
        "not set",
    );
    expect_err(
        &corp("bind_password_file = \"x\""),
        "directory[0].bind_password",
        "exactly one",
    );
    expect_err(
        &corp("page_size = 0"),
        "directory[0].page_size",
        "outside 1..=10000",
    );
    expect_err(
        &corp("default_language = \"english!\""),
        "directory[0].default_language",
        "not a language tag",
    );
    let twice = format!("{}\n[[directory]]\nname = \"corp\"\n", corp("").trim_end());
    expect_err(&twice, "directory[1].name", "used by another directory");
}

#[test]
fn the_bind_password_never_shows() {
    let c = load(&corp("")).expect("valid");
    let all = format!("{c:?}\n{}", c.summary());
    assert!(!all.contains(PASSWORD), "{all}");
    assert!(
        c.summary().to_string().contains(
            "corp             ldaps://dc1.corp.example:636 as CN=mfa-sync,OU=Service,DC=corp,DC=example"
        ),
        "{all}"
    );
    // Not in a syntax error either.
    let e = load(&corp_with(
        &format!("bind_password = \"{PASSWORD}\""),
        "bind_password = bind-pw-must-not-leak",
    ))
    .expect_err("syntax")
    .to_string();
    assert!(!e.contains(PASSWORD), "{e}");
    // A changed password is a changed key, never a value.
    let other = load(&corp("").replace(PASSWORD, "another-password")).expect("valid");
    let changes: Vec<String> = diff(&c, &other).iter().map(ToString::to_string).collect();
    assert_eq!(changes, ["[[directory]] \"corp\" changed: bind_password"]);
}

#[test]
fn password_file_and_ca_file_relative_to_the_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("corp.secret"), "from-file\n").expect("write");
    let cert = rcgen::generate_simple_self_signed(vec!["dc1".into()]).expect("cert");
    std::fs::write(dir.path().join("corp-ca.pem"), cert.cert.pem()).expect("write");
    std::fs::write(dir.path().join("not-a-ca.pem"), "hello").expect("write");
    let text = corp_with(
        &format!("bind_password = \"{PASSWORD}\""),
        "bind_password_file = \"corp.secret\"\nca_file = \"corp-ca.pem\"",
    );
    let path = dir.path().join("proxy.toml");
    let c = Config::from_toml(&text, &path).expect("valid");
    let d = &c.directories[0];
    assert_eq!(d.bind_password.expose(), b"from-file");
    assert_eq!(
        d.ca_file.as_deref(),
        Some(dir.path().join("corp-ca.pem").as_path())
    );
    let e = Config::from_toml(&text.replace("corp-ca.pem", "not-a-ca.pem"), &path)
        .expect_err("not PEM")
        .to_string();
    assert!(
        e.contains("directory[0].ca_file") && e.contains("no PEM"),
        "{e}"
    );
}

#[test]
fn a_reload_takes_sources_on_live() {
    let old = load(&corp("")).expect("valid");
    let new = load(&corp_with("interval = \"15m\"", "interval = \"1h\"")).expect("valid");
    let changes = diff(&old, &new);
    assert_eq!(
        changes,
        [Change::Changed {
            section: Section::Directory,
            name: "corp".into(),
            keys: vec!["interval"],
        }]
    );
    assert!(changes.iter().all(Change::is_live));
    assert_eq!(
        in_force(&old, &new).directories[0].interval,
        Duration::from_secs(3600)
    );
    let none = load(GOOD).expect("valid");
    assert_eq!(
        diff(&none, &old),
        [Change::Added {
            section: Section::Directory,
            name: "corp".into(),
        }]
    );
    assert_eq!(
        diff(&old, &none)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["[[directory]] \"corp\" removed"]
    );
}

/// The commented `[[directory]]` example in the shipped proxy.toml,
/// uncommented, is valid (with its files beside it).
#[test]
fn the_shipped_example_is_valid() {
    let example = super::tests::shipped_example("[[directory]]");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("corp.secret"), "pw\n").expect("write");
    let cert = rcgen::generate_simple_self_signed(vec!["dc1".into()]).expect("cert");
    std::fs::write(dir.path().join("corp-ca.pem"), cert.cert.pem()).expect("write");
    let c = Config::from_toml(
        &format!("{GOOD}\n{example}"),
        &dir.path().join("proxy.toml"),
    )
    .expect("the example is valid");
    assert_eq!(c.directories[0].name, "corp");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}
