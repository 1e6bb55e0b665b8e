//! Policies end to end: radclient (the NAS) → mfa-proxy → FreeRADIUS, which
//! names groups in Class from its users file as NPS does. A group drives a
//! `skip` and a `required` policy; Calling-Station-Id from a trusted and an
//! untrusted range, v4 and v6.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use mfa_proxy::config::Config;
use mfa_proxy::mfa::otp::TotpParams;
use mfa_proxy::mfa::{Method, ResultCode};
use mfa_proxy::store::{SeedKey, SqliteStore, Store, Token, User};

fn config(fr: &FreeRadius) -> Config {
    let t = format!(
        "[server]\nname = \"policy-test\"\nauth_listen = [\"127.0.0.1:0\"]\n\
         [mfa]\nreject_delay = \"100ms\"\n\
         [[client]]\nname = \"vpn\"\naddress = \"127.0.0.1\"\nsecret = \"{NAS_SECRET}\"\nuser_address_from = \"Calling-Station-Id\"\n\
         [[upstream]]\nname = \"fr\"\naddress = \"{}\"\nsecret = \"{UPSTREAM_SECRET}\"\ntimeout = \"1s\"\nretries = 1\n\
         require_message_authenticator = false\nhealth_check = \"none\"\n\
         [groups]\nfrom_attribute = \"Class\"\nprefix = \"grp:\"\n\
         [[trusted_network]]\nname = \"office\"\nranges = [\"10.1.0.0/16\", \"2001:db8:1::/48\"]\n\
         [[policy]]\nname = \"office-skip\"\nnetworks = [\"office\"]\nmfa = \"skip\"\n\
         [[policy]]\nname = \"kiosk\"\ngroups = [\"kiosk\"]\nmfa = \"skip\"\n\
         [[policy]]\nname = \"staff\"\ngroups = [\"staff\"]\nmfa = \"required\"\n",
        fr.auth
    );
    Config::from_toml(&t, Path::new("policy.toml")).expect("valid")
}

/// A PAP login with an optional Calling-Station-Id; radclient's output.
fn login(to: std::net::SocketAddr, user: &str, password: &str, csi: Option<&str>) -> String {
    let mut input = format!(
        "User-Name = {user}\nUser-Password = \"{password}\"\nMessage-Authenticator = 0x00\n"
    );
    if let Some(c) = csi {
        input.push_str(&format!("Calling-Station-Id = \"{c}\"\n"));
    }
    text(&radclient(
        to,
        "auth",
        NAS_SECRET,
        &input,
        &["-x", "-r", "1", "-t", "4"],
    ))
}

#[test]
fn groups_from_class_and_trusted_addresses_from_calling_station_id() {
    if !(have("freeradius") && have("radclient")) {
        return;
    }
    let fr = FreeRadius::start(UPSTREAM_SECRET);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("mfa.db"), SeedKey::from_bytes(&[12; 32]))
            .expect("store"),
    );
    for user in ["alice", "carol", "dave"] {
        store
            .add_user(&User::new(user, Method::Totp))
            .expect("user");
        let t = Token {
            active: true,
            ..Token::totp(user, TotpParams::default())
        };
        store.add_token(&t, b"policy-test-seed-001").expect("token");
    }
    let proxy = start_mfa_proxy(&config(&fr), &store);
    let to = proxy.listen_addrs[0];
    let last = |user: &str| {
        let a = store.audit(Some(user), None).expect("audit");
        let a = a.last().expect("a record").clone();
        (a.result, a.accepted, a.reason.unwrap_or_default())
    };

    // Class grp:kiosk: the kiosk policy skips the second factor.
    let out = login(to, "carol", "carol-pass", None);
    assert!(
        out.contains("Received Access-Accept"),
        "{out}\n{}",
        fr.log()
    );
    let (result, accepted, reason) = last("carol");
    assert_eq!(
        (result, accepted),
        (ResultCode::SuccessSkippedByPolicy, true)
    );
    assert!(
        reason.contains("kiosk") && reason.contains("group kiosk"),
        "{reason}"
    );
    // Class grp:staff: required.
    let out = login(to, "dave", "dave-pass", None);
    assert!(out.contains("Received Access-Challenge"), "{out}");
    // A wrong password is the upstream's reject, whatever the policy.
    let out = login(to, "carol", "wrong", None);
    assert!(out.contains("Received Access-Reject"), "{out}");

    // The user's address from Calling-Station-Id.
    for ip in ["10.1.200.7", "2001:db8:1::42"] {
        let out = login(to, "alice", "alice-pass", Some(ip));
        assert!(out.contains("Received Access-Accept"), "{ip}: {out}");
        let (result, _, reason) = last("alice");
        assert_eq!(result, ResultCode::SuccessSkippedByPolicy, "{ip}");
        assert!(reason.contains("trusted network office"), "{reason}");
    }
    for csi in [Some("192.0.2.1"), Some("2001:db8:2::1"), None] {
        let out = login(to, "alice", "alice-pass", csi);
        assert!(out.contains("Received Access-Challenge"), "{csi:?}: {out}");
    }
}
