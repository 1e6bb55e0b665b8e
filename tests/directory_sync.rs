//! `mfa-proxy directory sync` against a real OpenLDAP (the private slapd
//! of tests/support/slapd.rs, an AD-like tree of 10,000 users) over LDAPS
//! with the test CA: the first sync, a change, a manual change, a removal,
//! a user moved out of the (nested) scope group, a server that is down, a
//! connection cut in the middle of the search, a wrong CA, and a filter
//! that would disable everyone.

mod common;
#[path = "support/slapd.rs"]
mod slapd;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Instant;

use common::{run_bin, text, workspace};
use mfa_proxy::config::Config;
use mfa_proxy::mfa::Method;
use mfa_proxy::store::Store;
use slapd::{Slapd, Tree, VPN_GROUP, in_vpn_group, user_dn};

const USERS: usize = 10_000;

/// A site: the shipped proxy.toml, initialised, with a `[[directory]]`
/// pointing at `url`.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new(server: &Slapd, url: &str, extra: &str) -> Site {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config =
            std::fs::read_to_string(workspace().join("proxy.toml")).expect("shipped config");
        std::fs::write(dir.path().join("corp.secret"), server.sync_password()).expect("secret");
        config.push_str(&format!(
            r#"
[[directory]]
name = "corp"
url = "{url}"
bind_dn = "{sync}"
bind_password_file = "corp.secret"
ca_file = "{ca}"
base_dn = "DC=corp,DC=example"
filter = "(objectClass=inetOrgPerson)"
group = "{VPN_GROUP}"
name_attribute = "sAMAccountName"
email_attribute = "mail"
phone_attribute = "mobile"
language_attribute = "preferredLanguage"
groups_attribute = "memberOf"
default_method = "push"
timeout = "5s"
{extra}
"#,
            sync = slapd::SYNC_DN,
            ca = server.ca_file().display(),
        ));
        std::fs::write(dir.path().join("proxy.toml"), config).expect("config");
        let o = run_bin(dir.path(), &["init"], None);
        assert!(o.status.success(), "init: {}", text(&o));
        Site { dir }
    }

    /// `directory sync` with `args`: (succeeded, stdout and stderr).
    fn sync(&self, args: &[&str]) -> (bool, String) {
        let mut all = vec!["directory", "sync"];
        all.extend_from_slice(args);
        let o = run_bin(self.dir.path(), &all, None);
        (o.status.success(), text(&o))
    }

    fn store(&self) -> Box<dyn Store> {
        let config = Config::load(&self.dir.path().join("proxy.toml")).expect("config");
        mfa_proxy::store::open::open_existing(&config.store).expect("store")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = run_bin(self.dir.path(), args, None);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        text(&o)
    }
}

/// The summary line of a sync's output.
fn summary(out: &str) -> &str {
    out.lines()
        .find(|l| l.starts_with("directory corp:"))
        .unwrap_or_else(|| panic!("no summary in {out}"))
}

fn in_scope() -> usize {
    (1..=USERS).filter(|&i| in_vpn_group(i)).count()
}

#[test]
fn sync_adds_changes_disables_and_never_acts_on_a_partial_directory() {
    let Some(server) = Slapd::start_or_skip(Tree {
        users: USERS,
        disabled: 5,
    }) else {
        return;
    };
    assert!(server.has_memberof(), "the memberof overlay is needed");
    let site = Site::new(&server, &server.ldaps_url(), "");

    // A dry run writes nothing.
    let (ok, out) = site.sync(&["--dry-run"]);
    assert!(ok, "{out}");
    assert!(
        summary(&out).contains("would have added 6000"),
        "{}",
        summary(&out)
    );
    assert!(site.store().users().expect("users").is_empty());

    // The first sync: users in VPN Users, directly or through Contractors.
    let started = Instant::now();
    let (ok, out) = site.sync(&[]);
    eprintln!("first sync of {USERS} entries: {:?}", started.elapsed());
    assert!(ok, "{out}");
    assert!(
        // inetOrgPerson: the users, the 5 in OU=Disabled and the sync account.
        summary(&out).contains(&format!(
            "{} entries, {} users in scope; added {}",
            USERS + 6,
            in_scope(),
            in_scope()
        )),
        "{}",
        summary(&out)
    );
    assert!(
        out.contains(
            "add user000002 (user000002@corp.example; +493000000002; language fr; groups VPN Users)"
        ),
        "{}",
        &out[..400]
    );
    let store = site.store();
    assert_eq!(store.users().expect("users").len(), in_scope());
    let u11 = store.user("USER000011").expect("q").expect("nested member");
    assert_eq!(u11.groups, ["Contractors", "VPN Users"]);
    assert_eq!(u11.source.as_deref(), Some("corp"));
    assert_eq!(u11.method, Method::Push);
    assert_eq!(store.user("user000003").expect("q"), None, "not in scope");
    drop(store);

    // Nothing changed: a second sync writes nothing.
    let (ok, out) = site.sync(&[]);
    assert!(ok, "{out}");
    assert!(
        summary(&out)
            .contains("added 0, changed 0, enabled 0, disabled 0, removed 0, unchanged 6000"),
        "{}",
        summary(&out)
    );

    // A change in the directory; an administrator's change to a field the
    // directory owns (email, overwritten) and to one it does not (method,
    // kept); a user deleted; a user taken out of the scope group.
    server.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: mobile\nmobile: +49 30 999-0002\n",
        user_dn(2)
    ));
    site.ok(&["user", "set", "user000004", "--method", "totp"]);
    let mut u6 = site.store().user("user000006").expect("q").expect("u");
    u6.email = Some("by-hand@example.org".into());
    site.store().update_user(&u6).expect("update");
    server.delete(&user_dn(8));
    server.modify(&format!(
        "dn: {VPN_GROUP}\nchangetype: modify\ndelete: member\nmember: {}\n",
        user_dn(10)
    ));
    let (ok, out) = site.sync(&[]);
    assert!(ok, "{out}");
    assert!(out.contains("change user000002: phone\n"), "{out}");
    assert!(out.contains("change user000006: email\n"), "{out}");
    assert!(out.contains("disable user000008\n"), "{out}");
    assert!(out.contains("disable user000010\n"), "{out}");
    assert!(
        summary(&out).contains("changed 2, enabled 0, disabled 2"),
        "{}",
        summary(&out)
    );
    let store = site.store();
    assert_eq!(
        store
            .user("user000002")
            .expect("q")
            .expect("u")
            .phone
            .as_deref(),
        Some("+49309990002")
    );
    assert_eq!(
        store.user("user000004").expect("q").expect("u").method,
        Method::Totp
    );
    assert_eq!(
        store
            .user("user000006")
            .expect("q")
            .expect("u")
            .email
            .as_deref(),
        Some("user000006@corp.example")
    );
    let gone = store
        .user("user000008")
        .expect("q")
        .expect("kept, disabled");
    assert!(gone.disabled_at.is_some());
    let facts = mfa_proxy::store::in_tx(store.as_login(), |tx| {
        tx.facts("user000010", mfa_proxy_now())
    })
    .expect("facts")
    .expect("known");
    assert_eq!(facts.disabled.as_deref(), Some("corp"));
    // `user show` says so.
    let shown = site.ok(&["user", "show", "user000008"]);
    assert!(shown.contains("disabled"), "{shown}");
    drop(store);

    // Back in the group: enabled again.
    server.modify(&format!(
        "dn: {VPN_GROUP}\nchangetype: modify\nadd: member\nmember: {}\n",
        user_dn(10)
    ));
    let (ok, out) = site.sync(&[]);
    assert!(ok, "{out}");
    assert!(
        out.contains("enable user000010 (listed by corp again)"),
        "{out}"
    );

    // The server down: the sync fails and changes nothing.
    server.delete(&user_dn(12));
    server.stop();
    let (ok, out) = site.sync(&[]);
    assert!(!ok, "{out}");
    assert!(out.contains("cannot connect"), "{out}");
    assert!(
        site.store()
            .user("user000012")
            .expect("q")
            .expect("u")
            .disabled_at
            .is_none()
    );
    server.start_again();

    // The connection cut in the middle of the user search: nothing changes.
    let relay = CuttingRelay::start(server.ldaps_url(), 600_000);
    let cut = Site::new(&server, &relay.url(), "page_size = 100");
    // The cut site's own store first gets the users through the server.
    std::fs::copy(
        site.dir.path().join("data/mfa.db"),
        cut.dir.path().join("data/mfa.db"),
    )
    .expect("copy db");
    std::fs::copy(
        site.dir.path().join("data/seed.key"),
        cut.dir.path().join("data/seed.key"),
    )
    .expect("copy key");
    let (ok, out) = cut.sync(&[]);
    assert!(!ok, "{out}");
    assert!(relay.cut(), "the relay cut the connection");
    assert!(out.contains("failed") || out.contains("no answer"), "{out}");
    assert!(
        cut.store()
            .user("user000012")
            .expect("q")
            .expect("u")
            .disabled_at
            .is_none()
    );

    // A server certificate from another CA is refused.
    let other_ca = site.dir.path().join("other-ca.pem");
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).expect("cert");
    std::fs::write(&other_ca, other.cert.pem()).expect("write");
    let wrong = Site::new(&server, &server.ldaps_url(), "");
    let config = std::fs::read_to_string(wrong.dir.path().join("proxy.toml")).expect("read");
    std::fs::write(
        wrong.dir.path().join("proxy.toml"),
        config.replace(
            &server.ca_file().display().to_string(),
            &other_ca.display().to_string(),
        ),
    )
    .expect("write");
    let (ok, out) = wrong.sync(&[]);
    assert!(!ok, "{out}");
    assert!(out.to_lowercase().contains("certificate"), "{out}");

    // The scope group renamed away, or a filter that matches nobody: the
    // sync would disable everyone, and refuses.
    let none = Site::new(&server, &server.ldaps_url(), "");
    std::fs::copy(
        site.dir.path().join("data/mfa.db"),
        none.dir.path().join("data/mfa.db"),
    )
    .expect("copy db");
    std::fs::copy(
        site.dir.path().join("data/seed.key"),
        none.dir.path().join("data/seed.key"),
    )
    .expect("copy key");
    let config = std::fs::read_to_string(none.dir.path().join("proxy.toml")).expect("read");
    std::fs::write(
        none.dir.path().join("proxy.toml"),
        config.replace("(objectClass=inetOrgPerson)", "(objectClass=nothingAtAll)"),
    )
    .expect("write");
    let (ok, out) = none.sync(&[]);
    assert!(!ok, "{out}");
    assert!(out.contains("would disable all"), "{out}");
    let disabled: Vec<String> = none
        .store()
        .users()
        .expect("u")
        .into_iter()
        .filter(|u| u.disabled_at.is_some())
        .map(|u| u.name)
        .collect();
    assert_eq!(disabled, ["user000008"], "as before the refused sync");

    // StartTLS works as LDAPS does.
    let starttls = Site::new(&server, &server.ldap_url(), "starttls = true");
    let (ok, out) = starttls.sync(&["--dry-run"]);
    assert!(ok, "{out}");
}

fn mfa_proxy_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64
}

/// A TCP relay in front of the server that passes `limit` octets from the
/// server, then cuts both directions: a directory going away in the middle
/// of a search.
struct CuttingRelay {
    port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl CuttingRelay {
    fn start(target: String, limit: usize) -> CuttingRelay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let to = target.trim_start_matches("ldaps://").to_owned();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = cut.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&to) else {
                    continue;
                };
                relay(client, server, limit, &flag);
            }
        });
        CuttingRelay { port, cut }
    }

    fn url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.port)
    }

    fn cut(&self) -> bool {
        self.cut.load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn relay(client: TcpStream, server: TcpStream, limit: usize, cut: &std::sync::atomic::AtomicBool) {
    let (mut c_in, mut s_out) = (
        client.try_clone().expect("clone"),
        server.try_clone().expect("clone"),
    );
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut c_in, &mut s_out);
    });
    let (mut s_in, mut c_out) = (server, client);
    let mut passed = 0usize;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match s_in.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let n = n.min(limit - passed);
        if c_out.write_all(&buf[..n]).is_err() {
            break;
        }
        passed += n;
        if passed >= limit {
            cut.store(true, std::sync::atomic::Ordering::SeqCst);
            break;
        }
    }
    let _ = s_in.shutdown(Shutdown::Both);
    let _ = c_out.shutdown(Shutdown::Both);
}

/// GET `path` from the HTTP listener on `port`: the body, if it answered.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())
}

#[test]
fn serve_syncs_at_start_and_on_reload_and_reports_metrics() {
    let Some(server) = Slapd::start_or_skip(Tree {
        users: 300,
        disabled: 0,
    }) else {
        return;
    };
    let site = Site::new(&server, &server.ldaps_url(), "interval = \"24h\"");
    let (auth, http) = (common::free_port(), common::free_port());
    let path = site.dir.path().join("proxy.toml");
    let config = std::fs::read_to_string(&path)
        .expect("read")
        .replace("127.0.0.1:1812\"]", &format!("127.0.0.1:{auth}\"]"))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{http}"));
    std::fs::write(&path, &config).expect("write");
    let log = std::fs::File::create(site.dir.path().join("serve.log")).expect("log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mfa-proxy"))
        .args(["serve", "--config"])
        .arg(&path)
        .stderr(log)
        .spawn()
        .expect("serve");
    let in_scope = (1..=300).filter(|&i| in_vpn_group(i)).count();
    let wait_for = |what: &str| {
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let metrics = http_get(http, "/metrics").unwrap_or_default();
            if metrics.contains(what) {
                return metrics;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} in /metrics: {metrics}\n{}",
                std::fs::read_to_string(site.dir.path().join("serve.log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    let metrics = wait_for(&format!(
        "mfa_directory_users{{directory=\"corp\"}} {in_scope}"
    ));
    assert!(metrics.contains("mfa_directory_syncs_total{directory=\"corp\",result=\"ok\"} 1"));
    assert!(metrics.contains(&format!(
        "mfa_directory_changes_total{{directory=\"corp\",change=\"added\"}} {in_scope}"
    )));
    assert!(metrics.contains("mfa_directory_sync_seconds{directory=\"corp\"}"));
    assert_eq!(site.store().users().expect("users").len(), in_scope);

    // A reload that adds a source runs it at once; one that cannot be
    // reached leaves the users as they are and says so.
    std::fs::write(
        &path,
        format!(
            "{config}\n[[directory]]\nname = \"down\"\nurl = \"ldap://127.0.0.1:1\"\nstarttls = true\n\
             bind_dn = \"CN=x,DC=corp,DC=example\"\nbind_password = \"x\"\nbase_dn = \"DC=corp,DC=example\"\n\
             filter = \"(objectClass=user)\"\nname_attribute = \"uid\"\ntimeout = \"2s\"\n"
        ),
    )
    .expect("write");
    std::process::Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .expect("kill");
    wait_for("mfa_directory_syncs_total{directory=\"down\",result=\"failed\"} 1");
    assert_eq!(site.store().users().expect("users").len(), in_scope);
    assert!(
        !http_get(http, "/metrics")
            .unwrap_or_default()
            .contains("orphaned")
    );

    // A reload that renames the source: its users are nobody's now (the
    // renamed source leaves them to their own). They stay enabled, and the
    // log and /metrics say so.
    std::fs::write(
        &path,
        config.replace("name = \"corp\"", "name = \"corp-new\""),
    )
    .expect("write");
    std::process::Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .expect("kill");
    wait_for(&format!(
        "mfa_directory_orphaned_users{{directory=\"corp\",state=\"enabled\"}} {in_scope}"
    ));
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    let _ = child.wait();
    let log = std::fs::read_to_string(site.dir.path().join("serve.log")).expect("log");
    assert!(
        log.contains(&format!(
            "directory corp: 301 entries, {in_scope} users in scope; added {in_scope}"
        )),
        "{log}"
    );
    assert!(log.contains("directory down: cannot connect"), "{log}");
    assert!(log.contains("the users stay as they are"), "{log}");
    assert!(
        log.contains(&format!(
            "{in_scope} users came from directory corp, which is no longer configured: nothing syncs them"
        )),
        "{log}"
    );
}

#[test]
fn a_sync_mails_an_invitation_to_each_user_it_adds() {
    let Some(server) = Slapd::start_or_skip(Tree {
        users: 6,
        disabled: 0,
    }) else {
        return;
    };
    let sink = common::provider::smtp_sink::SmtpSink::start();
    let site = Site::new(
        &server,
        &server.ldaps_url(),
        &format!(
            "invite = true\n[enrollment]\nfrom = \"it@example.org\"\nsmtp = \"{}\"\n",
            sink.addr
        ),
    );
    let (ok, out) = site.sync(&[]);
    assert!(ok, "{out}");
    let added = (1..=6).filter(|&i| in_vpn_group(i)).count();
    assert_eq!(out.matches("\ninvited user").count(), added, "{out}");
    let mails = sink.wait_mails(added, std::time::Duration::from_secs(20));
    assert_eq!(mails.len(), added);
    assert!(
        mails.iter().all(|m| m.body().contains("/portal/invite/")),
        "a link in each"
    );
    // Nobody new on the next sync: nobody mailed again.
    let (ok, out) = site.sync(&[]);
    assert!(ok, "{out}");
    assert!(!out.contains("invited"), "{out}");
    assert_eq!(sink.mails().len(), added);
}
