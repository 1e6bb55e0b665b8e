//! The portal and directory sync with `[primary] mode = "ldap"`, as a site
//! without NPS runs them: `serve` on the shipped configuration switched to
//! a private slapd (LDAPS, the test CA) syncs its users at start; a synced
//! user in an enrollment window signs in at the portal with the directory
//! password, a wrong one is refused, and a user the directory locks out
//! (ppolicy) cannot sign in even with the right password.

mod common;
#[path = "support/slapd.rs"]
mod slapd;

use std::time::{Duration, Instant};

use common::web::{self, Serve, request};
use common::{free_port, run_bin, text, workspace};
use slapd::{Options, SYNC_DN, Slapd, Tree, user_dn, user_name, user_password};

#[test]
fn synced_users_sign_in_at_the_portal_with_their_directory_password() {
    let Some(server) = Slapd::start_or_skip_with(
        Tree {
            users: 20,
            disabled: 0,
        },
        Options {
            ppolicy: true,
            ..Options::default()
        },
    ) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (auth, http) = (free_port(), free_port());
    let shipped = std::fs::read_to_string(workspace().join("proxy.toml")).expect("read");
    assert!(
        shipped.contains("\nmode = \"local\""),
        "the trial's primary"
    );
    std::fs::write(dir.path().join("corp.secret"), server.sync_password()).expect("secret");
    let config = shipped
        .replace("127.0.0.1:1812\"]", &format!("127.0.0.1:{auth}\"]"))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{http}"))
        .replace(
            "\nmode = \"local\"",
            "\nmode = \"ldap\"\ndirectory = \"corp\"",
        )
        + &format!(
            "\n[[directory]]\nname = \"corp\"\nurl = \"{url}\"\nbind_dn = \"{SYNC_DN}\"\n\
             bind_password_file = \"corp.secret\"\nca_file = \"{ca}\"\nbase_dn = \"DC=corp,DC=example\"\n\
             filter = \"(objectClass=mfaTestAccount)\"\nname_attribute = \"sAMAccountName\"\n\
             email_attribute = \"mail\"\ntimeout = \"5s\"\n",
            url = server.ldaps_url(),
            ca = server.ca_file().display(),
        );
    std::fs::write(dir.path().join("proxy.toml"), config).expect("write");
    let ok = |args: &[&str]| {
        let o = run_bin(dir.path(), args, None);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        text(&o)
    };
    ok(&["init"]);
    let _serve = Serve::start(&dir.path().join("proxy.toml"), None, http);
    // The sync at start adds the directory's users.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let o = run_bin(dir.path(), &["user", "show", &user_name(2)], None);
        if o.status.success() {
            assert!(text(&o).contains("directory corp"), "{}", text(&o));
            break;
        }
        assert!(Instant::now() < deadline, "no sync at start: {}", text(&o));
        std::thread::sleep(Duration::from_millis(200));
    }
    for i in [2, 3] {
        ok(&["user", "open-enrollment", &user_name(i), "--for", "1h"]);
    }
    // User 3's account is locked in the directory.
    server.modify(&format!(
        "dn: {}\nchangetype: modify\nadd: pwdAccountLockedTime\npwdAccountLockedTime: 000001010000Z\n",
        user_dn(3)
    ));

    let sign_in = |user: &str, password: &str| web::sign_in(http, user, password);
    let wrong = sign_in(&user_name(2), "not-it");
    assert_eq!(wrong.status, 200);
    assert!(
        wrong.body.contains("Wrong user name or password"),
        "{}",
        wrong.body
    );
    let right = sign_in(&user_name(2), &user_password(2));
    assert_eq!(right.status, 303, "{}", right.body);
    let home = request(
        http,
        "GET",
        "/portal/",
        Some(&right.cookie().expect("session")),
        "",
    );
    assert!(
        home.body.contains("Set up a way to confirm your sign-ins"),
        "{}",
        home.body
    );
    let locked = sign_in(&user_name(3), &user_password(3));
    assert!(
        locked.body.contains("Wrong user name or password"),
        "{}",
        locked.body
    );

    // The audit trail has the directory's reasons.
    let report = ok(&["report", "signins", "--format", "csv"]);
    assert!(
        report.contains("directory corp: account locked"),
        "{report}"
    );
    assert!(report.contains("portal sign-in to enroll"), "{report}");
}
