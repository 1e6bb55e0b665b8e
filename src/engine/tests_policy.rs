//! Policies on the virtual clock: each kind of match, trusted networks
//! (v4, v6, from Calling-Station-Id), groups from the store and from the
//! upstream's Class, deny, method restrictions, and remembered logins in
//! each scope — granted, used, expired, revoked.

use std::path::Path;
use std::time::Duration;

use super::tests_mfa::*;
use super::tests_oob::*;
use super::*;
use crate::mfa::ResultCode;
use crate::radius::crypto;
use crate::store::Store;

/// The simulation with `tables` after `[mfa]` and `client` keys on the NAS
/// "nas" (127.0.0.0/24); "other-nas" is 127.0.0.6.
fn sim(tables: &str, client: &str) -> Sim {
    let t = format!(
        "[server]\nname = \"sim\"\nauth_listen = [\"127.0.0.1:1812\"]\nhttp_listen = \"127.0.0.1:0\"\npublic_url = \"https://mfa.example\"\n\
         [mfa]\nreject_delay = \"1s\"\n\
         [lockout]\ndenials = 5\n\
         [[client]]\nname = \"nas\"\naddress = \"127.0.0.0/24\"\nsecret = \"{0}\"\n{client}\n\
         [[client]]\nname = \"other-nas\"\naddress = \"127.0.0.6\"\nsecret = \"{0}\"\n\
         [[upstream]]\nname = \"up\"\naddress = \"127.0.1.1:1812\"\nsecret = \"{1}\"\nhealth_check = \"none\"\n\
         [[provider]]\nname = \"gw\"\ntype = \"webhook\"\nmethods = [\"push\"]\nurl = \"https://gw.example/verify\"\nkey = \"{2}\"\n\
         {tables}\n",
        String::from_utf8_lossy(NAS),
        String::from_utf8_lossy(UP),
        String::from_utf8_lossy(PROVIDER_KEY),
    );
    let config = Config::from_toml(&t, Path::new("policy.toml")).expect("valid");
    let mut s = Sim::new("");
    s.e = Engine::new(&config, Arc::new(Dictionary::builtin()), [5; 32], s.now);
    s.e.set_wall_clock(s.now, s.unix);
    s
}

/// What a login sends beyond name and password.
#[derive(Default)]
struct Extra<'a> {
    calling_station: Option<&'a str>,
    nas_identifier: Option<&'a str>,
    /// Class values of the upstream's Access-Accept.
    classes: &'a [&'a str],
}

/// A login of `user` (password "pw") from `port`; the fake upstream
/// accepts with `extra.classes`. Returns what the NAS got back.
fn login(s: &mut Sim, port: u16, id: u8, user: &str, extra: &Extra<'_>) -> Vec<Transmit> {
    let auth = [id ^ (port as u8) ^ 0x5a; 16];
    let mut b = PacketBuilder::new(Code::ACCESS_REQUEST, id, &auth);
    b.push_message_authenticator().expect("fits");
    b.push(attr::USER_NAME, user.as_bytes()).expect("fits");
    let pw = crypto::hide_password(b"pw", NAS, &auth).expect("hide");
    b.push(attr::USER_PASSWORD, &pw).expect("fits");
    if let Some(c) = extra.calling_station {
        b.push(attr::CALLING_STATION_ID, c.as_bytes())
            .expect("fits");
    }
    if let Some(n) = extra.nas_identifier {
        b.push(attr::NAS_IDENTIFIER, n.as_bytes()).expect("fits");
    }
    let req = b.finish_request(NAS);
    s.e.handle_nas(s.now, 0, from(port), &req);
    let mut to_nas = Vec::new();
    for t in s.out() {
        if let SocketRef::Upstream(sock) = t.socket {
            let reply = accept_with_classes(&t, extra.classes);
            s.e.handle_upstream(s.now, sock, t.to, &reply);
        } else {
            to_nas.push(t);
        }
    }
    s.pump();
    to_nas.extend(s.out());
    to_nas
}

fn accept_with_classes(t: &Transmit, classes: &[&str]) -> Vec<u8> {
    let p = Packet::parse(&t.payload).expect("valid");
    let mut b = PacketBuilder::new(Code::ACCESS_ACCEPT, p.identifier(), &[0; 16]);
    b.push_message_authenticator().expect("fits");
    for c in classes {
        b.push(25, c.as_bytes()).expect("fits");
    }
    for ps in p.attributes().filter(|a| a.typ == attr::PROXY_STATE) {
        b.push_raw(ps.raw(&p)).expect("fits");
    }
    b.finish_response(UP, p.authenticator())
}

/// The code of the one answer: accepted, challenged, or rejected (after
/// `reject_delay`).
fn answer(s: &mut Sim, r: Vec<Transmit>) -> Code {
    if let [t] = &r[..] {
        return parse(t).code();
    }
    assert!(r.is_empty(), "one answer at most: {r:?}");
    s.advance(Duration::from_secs(2));
    let out = s.out();
    assert_eq!(out.len(), 1, "the delayed reject");
    parse(&out[0]).code()
}

/// Answers alice's challenge `ch` with the right code.
fn answer_code(s: &mut Sim, port: u16, id: u8, ch: &Transmit) -> Code {
    let state = state_of(ch);
    let code = s.code();
    let r = s.login(port, id, "alice", &code, Some(&state));
    answer(s, r)
}

const OFFICE: &str = "[[trusted_network]]\nname = \"office\"\nranges = [\"10.1.0.0/16\", \"2001:db8:1::/48\"]\n\
                      [[policy]]\nname = \"office-skip\"\nnetworks = [\"office\"]\nmfa = \"skip\"\n";

#[test]
fn a_trusted_network_from_calling_station_id_skips_v4_and_v6() {
    let mut s = sim(OFFICE, "user_address_from = \"Calling-Station-Id\"");
    for (i, ip) in ["10.1.2.3", "2001:db8:1::5"].into_iter().enumerate() {
        let extra = Extra {
            calling_station: Some(ip),
            ..Extra::default()
        };
        let r = login(&mut s, 1000, 1 + i as u8, "alice", &extra);
        assert_eq!(answer(&mut s, r), Code::ACCESS_ACCEPT, "{ip}");
        let a = s.audit.last().expect("recorded");
        assert_eq!(
            (a.result, a.accepted),
            (ResultCode::SuccessSkippedByPolicy, true)
        );
        assert!(
            a.reason
                .as_deref()
                .is_some_and(|r| r.contains("office-skip")),
            "{:?}",
            a.reason
        );
    }
    // Outside the office, from a MAC address, or with no address: the code.
    for (i, csi) in [Some("192.0.2.1"), Some("00-11-22-33-44-55"), None]
        .into_iter()
        .enumerate()
    {
        let extra = Extra {
            calling_station: csi,
            ..Extra::default()
        };
        let r = login(&mut s, 1000, 10 + i as u8, "alice", &extra);
        assert_eq!(answer(&mut s, r), Code::ACCESS_CHALLENGE, "{csi:?}");
    }
}

#[test]
fn without_user_address_from_the_nas_source_counts() {
    let tables = "[[trusted_network]]\nname = \"lab\"\nranges = [\"127.0.0.5/32\"]\n\
                  [[policy]]\nname = \"lab\"\nnetworks = [\"lab\"]\nmfa = \"skip\"\n";
    let mut s = sim(tables, "");
    let r = login(&mut s, 1000, 1, "alice", &Extra::default());
    assert_eq!(
        answer(&mut s, r),
        Code::ACCESS_ACCEPT,
        "127.0.0.5 is the NAS"
    );
    let r = login(&mut s, 60000, 2, "alice", &Extra::default());
    assert_eq!(
        answer(&mut s, r),
        Code::ACCESS_CHALLENGE,
        "127.0.0.6 is not"
    );
}

#[test]
fn a_group_from_the_upstreams_class_drives_skip_and_required() {
    let tables = "[groups]\nfrom_attribute = \"Class\"\nprefix = \"grp:\"\n\
                  [[policy]]\nname = \"kiosk\"\ngroups = [\"Kiosk\"]\nmfa = \"skip\"\n";
    let mut s = sim(tables, "");
    let kiosk = Extra {
        classes: &["other", "grp:kiosk"],
        ..Extra::default()
    };
    let r = login(&mut s, 1000, 1, "alice", &kiosk);
    assert_eq!(answer(&mut s, r), Code::ACCESS_ACCEPT);
    assert_eq!(
        s.last_result(),
        Some((ResultCode::SuccessSkippedByPolicy, true))
    );
    let unprefixed = Extra {
        classes: &["kiosk"],
        ..Extra::default()
    };
    let r = login(&mut s, 1000, 2, "alice", &unprefixed);
    assert_eq!(
        answer(&mut s, r),
        Code::ACCESS_CHALLENGE,
        "without the prefix it is no group"
    );
}

#[test]
fn a_group_from_the_store_denies() {
    let tables = "[[policy]]\nname = \"no-guests\"\ngroups = [\"guests\"]\nmfa = \"deny\"\n";
    let mut s = sim(tables, "");
    let mut bob = s.store.user("bob").expect("q").expect("bob");
    bob.groups = vec!["Guests".into()];
    s.store.update_user(&bob).expect("update");
    let r = login(&mut s, 1000, 1, "bob", &Extra::default());
    assert_eq!(answer(&mut s, r), Code::ACCESS_REJECT);
    assert_eq!(
        s.last_result(),
        Some((ResultCode::FailedDeniedByPolicy, false))
    );
    let r = login(&mut s, 1000, 2, "alice", &Extra::default());
    assert_eq!(
        answer(&mut s, r),
        Code::ACCESS_CHALLENGE,
        "alice is no guest"
    );
}

#[test]
fn users_clients_and_nas_identifiers_match() {
    let tables = "[[policy]]\nname = \"svc\"\nusers = [\"ALICE\"]\nclients = [\"nas\"]\nnas_identifiers = [\"rdgw\"]\nmfa = \"deny\"\n";
    let mut s = sim(tables, "");
    let rdgw = Extra {
        nas_identifier: Some("rdgw"),
        ..Extra::default()
    };
    let r = login(&mut s, 1000, 1, "alice", &rdgw);
    assert_eq!(answer(&mut s, r), Code::ACCESS_REJECT, "all three hold");
    let r = login(&mut s, 60000, 2, "alice", &rdgw);
    assert_eq!(answer(&mut s, r), Code::ACCESS_CHALLENGE, "another client");
    let r = login(&mut s, 1000, 3, "alice", &Extra::default());
    assert_eq!(
        answer(&mut s, r),
        Code::ACCESS_CHALLENGE,
        "no NAS-Identifier"
    );
}

#[test]
fn a_policy_restricts_the_methods() {
    let tables = "[[policy]]\nname = \"push-only\"\nmethods = [\"push\"]\n";
    let mut s = sim(tables, "");
    // Alice's own method is the app; the policy allows push only.
    let r = login(&mut s, 1000, 1, "alice", &Extra::default());
    assert!(r.is_empty(), "held for the push");
    let d = s.e.poll_delivery().expect("a push");
    assert_eq!(json(&d)["method"], "push");
}

fn remembering(scope: &str) -> String {
    format!("[[policy]]\nname = \"remember\"\nremember = \"{scope}\"\nremember_for = \"8h\"\n")
}

/// Alice verifies her code from `csi` at `app`.
fn verified(s: &mut Sim, id: u8, csi: &str, app: &str) {
    let extra = Extra {
        calling_station: Some(csi),
        nas_identifier: Some(app),
        ..Extra::default()
    };
    let r = login(s, 1000, id, "alice", &extra);
    assert_eq!(r.len(), 1);
    assert_eq!(answer_code(s, 1000, id + 1, &r[0]), Code::ACCESS_ACCEPT);
    assert_eq!(
        s.last_result(),
        Some((ResultCode::SuccessOathCodeVerified, true))
    );
}

/// A later login of alice from `csi` at `app`: its answer.
fn again(s: &mut Sim, id: u8, csi: &str, app: &str) -> Code {
    let extra = Extra {
        calling_station: Some(csi),
        nas_identifier: Some(app),
        ..Extra::default()
    };
    let r = login(s, 1000, id, "alice", &extra);
    answer(s, r)
}

#[test]
fn remembered_logins_in_the_ip_scope() {
    let mut s = sim(&remembering("ip"), "");
    verified(&mut s, 1, "198.51.100.7", "vpn");
    assert_eq!(again(&mut s, 3, "198.51.100.7", "vpn"), Code::ACCESS_ACCEPT);
    assert_eq!(
        s.last_result(),
        Some((ResultCode::SuccessUsedIpBasedCache, true))
    );
    assert_eq!(
        again(&mut s, 4, "198.51.100.8", "vpn"),
        Code::ACCESS_CHALLENGE,
        "another address"
    );
    assert_eq!(
        again(&mut s, 5, "198.51.100.7", "owa"),
        Code::ACCESS_CHALLENGE,
        "another application"
    );
    s.advance(Duration::from_secs(8 * 3600));
    assert_eq!(
        again(&mut s, 6, "198.51.100.7", "vpn"),
        Code::ACCESS_CHALLENGE,
        "expired"
    );
}

#[test]
fn remembered_logins_in_the_app_and_user_scopes() {
    let mut s = sim(&remembering("app"), "");
    verified(&mut s, 1, "198.51.100.7", "vpn");
    assert_eq!(
        again(&mut s, 3, "203.0.113.9", "vpn"),
        Code::ACCESS_ACCEPT,
        "any address"
    );
    assert_eq!(
        s.last_result(),
        Some((ResultCode::SuccessUsedAppBasedCache, true))
    );
    assert_eq!(
        again(&mut s, 4, "198.51.100.7", "owa"),
        Code::ACCESS_CHALLENGE
    );

    let mut s = sim(&remembering("user"), "");
    verified(&mut s, 1, "198.51.100.7", "vpn");
    assert_eq!(
        again(&mut s, 3, "203.0.113.9", "owa"),
        Code::ACCESS_ACCEPT,
        "anything"
    );
    assert_eq!(s.last_result(), Some((ResultCode::SuccessUsedCache, true)));
}

#[test]
fn remembered_logins_are_revoked_by_forget_and_by_a_block() {
    let mut s = sim(&remembering("user"), "");
    verified(&mut s, 1, "198.51.100.7", "vpn");
    assert_eq!(s.store.forget("alice").expect("forget"), 1);
    assert_eq!(
        again(&mut s, 3, "198.51.100.7", "vpn"),
        Code::ACCESS_CHALLENGE
    );

    let mut s = sim(&remembering("user"), "");
    verified(&mut s, 1, "198.51.100.7", "vpn");
    s.store
        .block("alice", "stolen", s.unix, s.unix + 60)
        .expect("block");
    assert_eq!(again(&mut s, 3, "198.51.100.7", "vpn"), Code::ACCESS_REJECT);
    s.store.unblock("alice", "found", s.unix).expect("unblock");
    assert_eq!(
        again(&mut s, 4, "198.51.100.7", "vpn"),
        Code::ACCESS_CHALLENGE,
        "not remembered any more"
    );
}

#[test]
fn only_a_verified_second_factor_is_remembered() {
    let mut s = sim(&remembering("user"), "");
    // A bypass lets alice in without a second factor: nothing remembered.
    s.store
        .add_bypass("alice", "travel", s.unix, s.unix + 300)
        .expect("bypass");
    assert_eq!(again(&mut s, 1, "198.51.100.7", "vpn"), Code::ACCESS_ACCEPT);
    assert_eq!(
        s.last_result(),
        Some((ResultCode::SuccessBypassedAuth, true))
    );
    assert_eq!(
        again(&mut s, 2, "198.51.100.7", "vpn"),
        Code::ACCESS_CHALLENGE
    );
    assert!(s.store.remembered("alice").expect("read").is_empty());
}
