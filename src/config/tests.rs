//! The configuration as a whole: each section's errors name their key, and
//! the shipped file loads.

use std::path::Path;
use std::time::Duration;

use super::*;

pub(super) const GOOD: &str = r#"
[server]
name = "t"
auth_listen = ["127.0.0.1:1812", "[::1]:1812"]
acct_listen = ["127.0.0.1:1813"]

[[client]]
name = "vpn"
address = "10.1.0.0/16"
secret = "a-long-shared-secret-xyz"

[[upstream]]
name = "nps1"
address = "10.0.0.5:1812"
acct_address = "10.0.0.5:1813"
secret = "upstream-secret-is-long"
timeout = "2s"
retries = 1
"#;

/// The commented example in the shipped proxy.toml that starts at the
/// line `# {header}`, uncommented, without its comment-only lines.
pub(super) fn shipped_example(header: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shipped = std::fs::read_to_string(root.join("proxy.toml")).expect("proxy.toml");
    let first = format!("# {header}");
    let example: String = shipped
        .lines()
        .skip_while(|l| *l != first)
        .take_while(|l| l.starts_with('#'))
        .filter(|l| !l.starts_with("#  "))
        .map(|l| format!("{}\n", l.trim_start_matches('#').trim_start()))
        .collect();
    assert!(example.starts_with(header), "{example}");
    example
}

pub(super) fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, Path::new("test.toml"))
}

#[test]
fn parses_and_defaults() {
    let c = load(GOOD).expect("valid");
    assert_eq!(c.server.auth_listen.len(), 2);
    assert_eq!(c.clients[0].network.to_string(), "10.1.0.0/16");
    assert!(c.clients[0].require_message_authenticator);
    assert_eq!(c.upstreams[0].timeout, Duration::from_secs(2));
    assert_eq!(c.upstreams[0].health_check, HealthCheck::StatusServer);
    assert_eq!(c.proxy.selection, Selection::Failover);
    assert_eq!(c.proxy.dedup_window, Duration::from_secs(30));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

pub(super) fn expect_err(text: &str, key: &str, words: &str) {
    let e = load(text).expect_err("must fail").to_string();
    assert!(
        e.contains(key) && e.contains(words),
        "wanted `{key}` and {words:?} in: {e}"
    );
}

#[test]
fn provider_and_notify_errors_name_the_key() {
    let webhook = |extra: &str| {
        format!(
            "{GOOD}\n[[provider]]\nname = \"gw\"\ntype = \"webhook\"\nmethods = [\"push\"]\nurl = \"https://gw.example/v\"\n{extra}"
        )
    };
    expect_err(&webhook(""), "provider[0].key", "missing");
    expect_err(
        &webhook("key = \"short\"\n"),
        "provider[0].key",
        "shorter than 16",
    );
    expect_err(
        &webhook("key = \"0123456789abcdef0123\"\n"),
        "server.public_url",
        "missing",
    );
    expect_err(
        &format!("{GOOD}\n[[provider]]\nname = \"c\"\ntype = \"console\"\nmethods = [\"totp\"]\n"),
        "provider[0].methods[0]",
        "not one of",
    );
    expect_err(
        &format!("{GOOD}\n[[provider]]\nname = \"c\"\ntype = \"fax\"\nmethods = [\"sms\"]\n"),
        "provider[0].type",
        "not one of",
    );
    expect_err(
        &format!(
            "{GOOD}\n[notify]\nsmtp = \"127.0.0.1:25\"\nfrom = \"nobody\"\nto = [\"a@b.c\"]\n"
        ),
        "notify.from",
        "not an email address",
    );
    expect_err(
        &GOOD.replace(
            "[[client]]",
            "[mfa]\nfail_mode = \"fail_sideways\"\n[[client]]",
        ),
        "mfa.fail_mode",
        "not one of",
    );
}

#[test]
fn errors_name_the_key() {
    expect_err(
        &GOOD.replace("timeout = \"2s\"", "timeout = \"2 parsecs\""),
        "upstream[0].timeout",
        "not a duration",
    );
    expect_err(
        &GOOD.replace("timeout = \"2s\"", "timeout = \"90s\""),
        "upstream[0].timeout",
        "outside",
    );
    expect_err(
        &GOOD.replace("retries = 1", "retries = 11"),
        "upstream[0].retries",
        "outside 0..=10",
    );
    expect_err(
        &GOOD.replace("10.1.0.0/16", "10.1.0.1/16"),
        "client[0].address",
        "host bits",
    );
    expect_err(
        &GOOD.replace("10.1.0.0/16", "vpn.example"),
        "client[0].address",
        "not an IP",
    );
    expect_err(
        &GOOD.replace("10.0.0.5:1812\"", "nps.example:1812\""),
        "upstream[0].address",
        "not IP:port",
    );
    expect_err(
        &GOOD.replace("\"127.0.0.1:1813\"", "\"127.0.0.1:1812\""),
        "server.acct_listen[0]",
        "twice",
    );
    expect_err(
        &GOOD.replace("name = \"vpn\"\n", ""),
        "client[0].name",
        "missing",
    );
    expect_err(
        &GOOD.replace("secret = \"a-long-shared-secret-xyz\"", ""),
        "client[0].secret",
        "missing",
    );
    expect_err(
        &GOOD.replace(
            "secret = \"a-long-shared-secret-xyz\"",
            "secret = \"x\"\nsecret_env = \"X\"",
        ),
        "client[0].secret",
        "exactly one",
    );
    expect_err(
        &GOOD.replace("secret = \"a-long-shared-secret-xyz\"", "secret = \"\""),
        "client[0].secret",
        "empty",
    );
    expect_err(
        &GOOD.replace(
            "secret = \"a-long-shared-secret-xyz\"",
            "secret_env = \"MFA_TEST_UNSET_VAR\"",
        ),
        "client[0].secret_env",
        "not set",
    );
    expect_err(
        &GOOD.replace(
            "secret = \"a-long-shared-secret-xyz\"",
            "secret_file = \"/nonexistent/x\"",
        ),
        "client[0].secret_file",
        "cannot read",
    );
    expect_err(
        &format!("{GOOD}\n[proxy]\nselection = \"random\"\n"),
        "proxy.selection",
        "not one of",
    );
    expect_err(
        &format!("{GOOD}\n[proxy]\nupstream_sockets = 0\n"),
        "proxy.upstream_sockets",
        "outside",
    );
    expect_err(
        &GOOD.replace("retries = 1", "health_check = \"ping\""),
        "upstream[0].health_check",
        "not one of",
    );
    let two_clients =
        format!("{GOOD}\n[[client]]\nname = \"vpn2\"\naddress = \"10.1.0.0/16\"\nsecret = \"s\"\n");
    expect_err(
        &two_clients,
        "client[1].address",
        "already the address of client \"vpn\"",
    );
}

#[test]
fn unknown_keys_and_syntax_errors_give_the_line() {
    let e = load(&GOOD.replace("retries = 1", "retrys = 1"))
        .expect_err("unknown")
        .to_string();
    assert!(e.contains("test.toml, line") && e.contains("retrys"), "{e}");
}

#[test]
fn secrets_never_appear_in_errors() {
    // An unquoted secret is a syntax error on a line that holds it.
    let text = GOOD.replace("\"a-long-shared-secret-xyz\"", "a-long-shared-secret-xyz");
    let e = load(&text).expect_err("syntax").to_string();
    assert!(!e.contains("a-long-shared-secret-xyz"), "{e}");
    assert!(e.contains("quoted string"), "{e}");
    let text = GOOD.replace("\"a-long-shared-secret-xyz\"", "123456789");
    let e = load(&text).expect_err("type").to_string();
    assert!(!e.contains("123456789"), "{e}");
    // And never in Debug or the summary.
    let c = load(GOOD).expect("valid");
    let all = format!("{c:?}\n{}", c.summary());
    assert!(!all.contains("a-long-shared-secret-xyz") && !all.contains("upstream-secret-is-long"));
}

#[test]
fn secret_sources() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("s.txt"), "from-a-file-secret\n").expect("write");
    let text = GOOD.replace(
        "secret = \"a-long-shared-secret-xyz\"",
        "secret_file = \"s.txt\"",
    );
    let c = Config::from_toml(&text, &dir.path().join("proxy.toml")).expect("valid");
    assert_eq!(c.clients[0].secret.expose(), b"from-a-file-secret");
    let raw: RawConfig = toml::from_str(&GOOD.replace(
        "secret = \"a-long-shared-secret-xyz\"",
        "secret_env = \"S\"",
    ))
    .expect("toml");
    let c = validate(raw, Path::new("."), &|v| {
        (v == "S").then(|| "env-secret".to_owned())
    })
    .expect("valid");
    assert_eq!(c.clients[0].secret.expose(), b"env-secret");
}

#[test]
fn warnings_for_weak_settings() {
    let text = GOOD.replace("a-long-shared-secret-xyz", "short").replace(
        "retries = 1",
        "retries = 1\nrequire_message_authenticator = false",
    );
    let c = load(&text).expect("valid");
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    assert!(c.warnings.iter().any(|w| w.contains("shorter than 16")));
    assert!(c.warnings.iter().any(|w| w.contains("BlastRADIUS")));
}

#[test]
fn every_shipped_config_file_is_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let c = Config::load(&root.join("proxy.toml")).expect("shipped proxy.toml is valid");
    assert!(!c.clients.is_empty());
}

#[test]
fn ipv4_mapped_client_addresses_are_canonical() {
    let c = load(&GOOD.replace("10.1.0.0/16", "::ffff:10.1.2.3")).expect("valid");
    assert_eq!(c.clients[0].network.to_string(), "10.1.2.3/32");
}

#[test]
fn https_listener_certificate_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).expect("cert");
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).expect("cert");
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p.display().to_string()
    };
    let crt = write("c.pem", &cert.cert.pem());
    let key = write("k.pem", &cert.key_pair.serialize_pem());
    let wrong_key = write("o.pem", &other.key_pair.serialize_pem());
    let junk = write("j.pem", "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ5dGVz\n");
    let with = |c: &str, k: &str| {
        let mut lines = String::new();
        if !c.is_empty() {
            lines.push_str(&format!("http_tls_cert = \"{c}\"\n"));
        }
        if !k.is_empty() {
            lines.push_str(&format!("http_tls_key = \"{k}\"\n"));
        }
        GOOD.replacen(
            "[server]\n",
            &format!("[server]\nhttp_listen = \"0.0.0.0:8443\"\n{lines}"),
            1,
        )
    };
    let c = load(&with(&crt, &key)).expect("valid");
    assert!(c.server.http_tls.is_some());
    assert!(!format!("{c:?}").contains("BEGIN"), "Debug shows no key");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let summary = c.summary().to_string();
    assert!(summary.contains("https: 0.0.0.0:8443"), "{summary}");
    let plain = load(&with("", "")).expect("valid");
    assert!(
        plain
            .warnings
            .iter()
            .any(|w| w.contains("plain HTTP beyond this host")),
        "{:?}",
        plain.warnings
    );
    expect_err(&with(&crt, ""), "server.http_tls_key", "missing");
    expect_err(&with("", &key), "server.http_tls_cert", "missing");
    expect_err(&with(&key, &key), "server.http_tls_cert", "no CERTIFICATE");
    expect_err(
        &with(&crt, &wrong_key),
        "server.http_tls_key",
        "does not go with",
    );
    let e = load(&with(&crt, &junk)).expect_err("junk key").to_string();
    assert!(
        e.contains("server.http_tls_key") && !e.contains("c2VjcmV0"),
        "{e}"
    );
    expect_err(
        &with("/nonexistent.pem", &key),
        "server.http_tls_cert",
        "nonexistent",
    );
}

#[test]
fn user_address_from() {
    let client = |v: &str| {
        GOOD.replace(
            "secret = \"a-long-shared-secret-xyz\"",
            &format!("secret = \"a-long-shared-secret-xyz\"\nuser_address_from = \"{v}\""),
        )
    };
    expect_err(
        &client("NAS-IP-Address"),
        "client[0].user_address_from",
        "\"NAS-IP-Address\" is not one of",
    );
    for (v, want) in [
        (
            "Tunnel-Client-Endpoint",
            UserAddressFrom::TunnelClientEndpoint,
        ),
        ("framed-ip-address", UserAddressFrom::FramedIpAddress),
    ] {
        let c = load(&client(v)).expect("valid");
        assert_eq!(c.clients[0].user_address_from, Some(want), "{v}");
    }
    let c = load(GOOD).expect("valid");
    assert_eq!(c.clients[0].user_address_from, None);
}

#[test]
fn at_most_64_upstreams() {
    let mut t = String::from(
        "[server]\nauth_listen = [\"127.0.0.1:1812\"]\n[[client]]\nname = \"n\"\naddress = \"10.0.0.1\"\nsecret = \"0123456789abcdef\"\n",
    );
    for i in 0..65 {
        t.push_str(&format!(
            "[[upstream]]\nname = \"u{i}\"\naddress = \"10.0.1.{i}:1812\"\nsecret = \"0123456789abcdef\"\n"
        ));
    }
    let e = load(&t).expect_err("65 upstreams");
    assert!(e.to_string().contains("at most 64"), "{e}");
}

#[test]
fn store_is_sqlite_or_postgres() {
    let c = load(GOOD).expect("valid");
    assert!(c.store.postgres.is_none(), "SQLite by default");
    let pg = "postgres://mfa:very-secret-pw@db.example/mfa";
    let c = load(&format!(
        "{GOOD}\n[store]\nurl = \"{pg}\"\npool_size = 16\n"
    ))
    .expect("valid");
    let p = c.store.postgres.as_ref().expect("postgres");
    assert_eq!((p.url.expose(), p.pool_size), (pg.as_bytes(), 16));
    assert!(
        !format!("{c:?}\n{}", c.summary()).contains("very-secret-pw"),
        "the URL may hold the password"
    );
    expect_err(
        &format!("{GOOD}\n[store]\nurl = \"{pg}\"\npath = \"x.db\"\n"),
        "store.path",
        "not both",
    );
    let e = load(&format!(
        "{GOOD}\n[store]\nurl = \"mysql://u:very-secret-pw@h/db\"\n"
    ))
    .expect_err("scheme")
    .to_string();
    assert!(e.contains("store.url") && e.contains("postgres://"), "{e}");
    assert!(!e.contains("very-secret-pw"), "{e}");
    expect_err(
        &format!("{GOOD}\n[store]\nurl = \"{pg}\"\npool_size = 0\n"),
        "store.pool_size",
        "outside",
    );
    // Audit records are kept for ever unless audit_keep says otherwise.
    assert_eq!(c.store.audit_keep, None);
    let kept = load(&format!("{GOOD}\n[store]\naudit_keep = \"400d\"\n")).expect("valid");
    assert_eq!(
        kept.store.audit_keep,
        Some(std::time::Duration::from_secs(400 * 86_400))
    );
    expect_err(
        &format!("{GOOD}\n[store]\naudit_keep = \"1h\"\n"),
        "store.audit_keep",
        "",
    );
    expect_err(
        &format!("{GOOD}\n[store]\npool_size = 4\n"),
        "store.pool_size",
        "PostgreSQL",
    );
    expect_err(
        &format!("{GOOD}\n[store]\nurl_env = \"MFA_TEST_UNSET_VAR\"\n"),
        "store.url_env",
        "not set",
    );
    let raw: RawConfig =
        toml::from_str(&format!("{GOOD}\n[store]\nurl_env = \"DB\"\n")).expect("toml");
    let c = validate(raw, Path::new("."), &|v| (v == "DB").then(|| pg.to_owned())).expect("valid");
    assert_eq!(
        c.store.postgres.expect("postgres").url.expose(),
        pg.as_bytes()
    );
}
