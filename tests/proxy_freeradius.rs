//! End to end over real UDP: radclient (the NAS) → mfa-proxy → FreeRADIUS
//! (standing in for NPS).

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::*;
use mfa_proxy::engine::Counter;

const PAP_ALICE: &str =
    "User-Name = alice\nUser-Password = alice-pass\nMessage-Authenticator = 0x00\n";

/// A signed PAP login as alice, the way a NAS sends it.
fn login_alice(to: std::net::SocketAddr) -> std::process::Output {
    radclient(
        to,
        "auth",
        NAS_SECRET,
        PAP_ALICE,
        &["-x", "-r", "1", "-t", "3"],
    )
}

#[test]
fn pap_accept_and_reject_through_the_proxy() {
    if !(have("freeradius") && have("radclient")) {
        return;
    }
    let fr = FreeRadius::start(UPSTREAM_SECRET);
    let proxy = start_proxy(&proxy_config(&[(fr.auth, fr.acct)], ""));
    let to = proxy.listen_addrs[0];

    let o = login_alice(to);
    let out = text(&o);
    assert!(
        out.contains("Received Access-Accept"),
        "{out}\n--- freeradius:\n{}",
        fr.log()
    );
    // radclient decrypted the Tunnel-Password with the NAS secret: the proxy
    // re-encrypted it correctly.
    assert!(
        out.contains("Tunnel-Password") && out.contains("tunnel-secret"),
        "{out}"
    );
    assert!(out.contains("Hello alice"), "{out}");

    let o = radclient(
        to,
        "auth",
        NAS_SECRET,
        "User-Name = alice\nUser-Password = wrong\nMessage-Authenticator = 0x00\n",
        &["-x", "-r", "1", "-t", "3"],
    );
    assert!(text(&o).contains("Received Access-Reject"), "{}", text(&o));
    let s = proxy.stats();
    assert_eq!(
        (s.get(Counter::RepliesAccept), s.get(Counter::RepliesReject)),
        (1, 1)
    );
}

#[test]
fn unsigned_and_wrongly_signed_requests_are_dropped() {
    if !(have("freeradius") && have("radclient")) {
        return;
    }
    let fr = FreeRadius::start(UPSTREAM_SECRET);
    let proxy = start_proxy(&proxy_config(&[(fr.auth, fr.acct)], ""));
    let to = proxy.listen_addrs[0];
    let o = radclient(
        to,
        "auth",
        NAS_SECRET,
        "User-Name = alice\nUser-Password = alice-pass\n",
        &["-r", "1", "-t", "1"],
    );
    assert!(!text(&o).contains("Received"), "{}", text(&o));
    let o = radclient(
        to,
        "auth",
        "not-the-secret",
        PAP_ALICE,
        &["-r", "1", "-t", "1"],
    );
    assert!(!text(&o).contains("Received"), "{}", text(&o));
    let s = proxy.stats();
    assert_eq!(s.get(Counter::DropMissingMessageAuthenticator), 1);
    assert_eq!(s.get(Counter::DropBadMessageAuthenticator), 1);
    assert_eq!(fr.auth_attempts("alice"), 0, "nothing reached the upstream");
}

#[test]
fn status_server_is_answered_by_the_proxy() {
    if !(have("freeradius") && have("radclient")) {
        return;
    }
    // No upstream is running at all: the proxy answers by itself.
    let dead = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let proxy = start_proxy(&proxy_config(&[(dead, dead)], ""));
    let o = radclient(
        proxy.listen_addrs[0],
        "status",
        NAS_SECRET,
        "Message-Authenticator = 0x00\n",
        &["-x", "-r", "1", "-t", "2"],
    );
    assert!(text(&o).contains("Received Access-Accept"), "{}", text(&o));
    assert_eq!(proxy.stats().get(Counter::StatusServerAnswered), 1);
    assert_eq!(proxy.stats().get(Counter::UpstreamRequests), 0);
}

#[test]
fn a_retransmitted_request_reaches_the_upstream_once() {
    if !(have("freeradius") && have("radclient")) {
        return;
    }
    let fr = FreeRadius::start(UPSTREAM_SECRET);
    let proxy = start_proxy(&proxy_config(&[(fr.auth, fr.acct)], ""));
    let to = proxy.listen_addrs[0];
    // Our own NAS: the same datagram three times.
    let nas = UdpSocket::bind("127.0.0.1:0").expect("bind");
    nas.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let auth = [0x5a; 16];
    let req = {
        use mfa_proxy::radius::{Code, PacketBuilder, attr, crypto};
        let mut b = PacketBuilder::new(Code::ACCESS_REQUEST, 77, &auth);
        b.push_message_authenticator().expect("fits");
        b.push(attr::USER_NAME, b"alice").expect("fits");
        b.push(
            attr::USER_PASSWORD,
            &crypto::hide_password(b"alice-pass", NAS_SECRET.as_bytes(), &auth).expect("hide"),
        )
        .expect("fits");
        b.finish_request(NAS_SECRET.as_bytes())
    };
    let mut replies = Vec::new();
    for _ in 0..3 {
        nas.send_to(&req, to).expect("send");
        let mut buf = [0u8; 4096];
        if let Ok((n, _)) = nas.recv_from(&mut buf) {
            replies.push(buf[..n].to_vec());
        }
    }
    assert_eq!(replies.len(), 3, "every copy answered");
    assert!(
        replies.iter().all(|r| r == &replies[0]),
        "the same answer, byte for byte"
    );
    assert_eq!(replies[0][0], 2, "Access-Accept");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        fr.logins_ok("alice"),
        1,
        "the upstream saw one login:\n{}",
        fr.log()
    );
    let s = proxy.stats();
    assert_eq!(s.get(Counter::UpstreamRequests), 1);
    assert_eq!(s.get(Counter::DuplicateResent), 2);
}

#[test]
fn first_upstream_dead_second_answers() {
    if !(have("freeradius") && have("radclient")) {
        return;
    }
    let fr = FreeRadius::start(UPSTREAM_SECRET);
    let dead = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let proxy = start_proxy(&proxy_config(&[(dead, dead), (fr.auth, fr.acct)], ""));
    // Upstream 0 gets 2 tries of 500 ms, then the request fails over.
    let o = radclient(
        proxy.listen_addrs[0],
        "auth",
        NAS_SECRET,
        PAP_ALICE,
        &["-r", "1", "-t", "5"],
    );
    assert!(text(&o).contains("Received Access-Accept"), "{}", text(&o));
    let s = proxy.stats();
    assert_eq!(s.get(Counter::UpstreamFailovers), 1);
    assert_eq!(s.upstreams[0].timeouts, 1);
    assert_eq!(s.upstreams[1].replies, 1);
}

#[test]
fn accounting_is_relayed() {
    if !(have("freeradius") && have("radclient")) {
        return;
    }
    let fr = FreeRadius::start(UPSTREAM_SECRET);
    let proxy = start_proxy(&proxy_config(&[(fr.auth, fr.acct)], ""));
    let o = radclient(
        proxy.listen_addrs[1],
        "acct",
        NAS_SECRET,
        "User-Name = alice\nAcct-Status-Type = Start\nAcct-Session-Id = \"sess-1\"\nNAS-IP-Address = 127.0.0.1\n",
        &["-x", "-r", "1", "-t", "3"],
    );
    assert!(
        text(&o).contains("Received Accounting-Response"),
        "{}\n{}",
        text(&o),
        fr.log()
    );
    // FreeRADIUS's detail module wrote the record.
    let detail = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cat {}/log/radacct/*/detail-* 2>/dev/null",
            fr.dir.path().display()
        ))
        .output()
        .expect("cat");
    assert!(String::from_utf8_lossy(&detail.stdout).contains("sess-1"));
    assert_eq!(proxy.stats().get(Counter::RepliesAccounting), 1);
}

#[test]
fn chap_works_through_the_proxy() {
    if !(have("freeradius") && have("radclient")) {
        return;
    }
    // CHAP without CHAP-Challenge uses the NAS's Request Authenticator, which
    // the proxy replaces: it must add the challenge explicitly.
    let fr = FreeRadius::start(UPSTREAM_SECRET);
    let proxy = start_proxy(&proxy_config(&[(fr.auth, fr.acct)], ""));
    let o = radclient(
        proxy.listen_addrs[0],
        "auth",
        NAS_SECRET,
        "User-Name = bob\nCHAP-Password = bob-pass\nMessage-Authenticator = 0x00\n",
        &["-x", "-r", "1", "-t", "3"],
    );
    assert!(
        text(&o).contains("Received Access-Accept"),
        "{}\n{}",
        text(&o),
        fr.log()
    );
}

/// The value radclient prints for `attr` in its reply.
fn reply_value(out: &str, attr: &str) -> Option<String> {
    out.lines()
        .skip_while(|l| !l.contains("Received"))
        .find(|l| l.trim_start().starts_with(attr))
        .map(|l| l.trim().to_owned())
}

#[test]
fn ms_chap_mppe_keys_are_reencrypted_for_the_nas() {
    if !(have("freeradius") && have("radclient")) {
        return;
    }
    // MS-CHAPv1 MPPE keys depend only on the password, so the NAS must see
    // the same plaintext through the proxy as directly from the server.
    let fr = FreeRadius::start(UPSTREAM_SECRET);
    let proxy = start_proxy(&proxy_config(&[(fr.auth, fr.acct)], ""));
    let input = "User-Name = bob\nMS-CHAP-Password = bob-pass\nMessage-Authenticator = 0x00\n";
    let direct = text(&radclient(
        fr.auth,
        "auth",
        UPSTREAM_SECRET,
        input,
        &["-x", "-r", "1", "-t", "3"],
    ));
    let via = text(&radclient(
        proxy.listen_addrs[0],
        "auth",
        NAS_SECRET,
        input,
        &["-x", "-r", "1", "-t", "3"],
    ));
    assert!(
        direct.contains("Received Access-Accept"),
        "{direct}\n{}",
        fr.log()
    );
    assert!(via.contains("Received Access-Accept"), "{via}");
    let key_direct = reply_value(&direct, "MS-CHAP-MPPE-Keys").expect("server sends MPPE keys");
    assert_eq!(reply_value(&via, "MS-CHAP-MPPE-Keys"), Some(key_direct));
}

#[test]
fn ipv6_listener_and_client() {
    if !(have("freeradius") && have("radclient")) {
        return;
    }
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "IPv6 loopback is needed in CI"
        );
        return;
    }
    let fr = FreeRadius::start(UPSTREAM_SECRET);
    let t = format!(
        "[server]\nauth_listen = [\"[::1]:0\"]\n[mfa]\nenabled = false\n[[client]]\nname = \"v6\"\naddress = \"::1\"\nsecret = \"{NAS_SECRET}\"\n\
         [[upstream]]\nname = \"fr\"\naddress = \"{}\"\nsecret = \"{UPSTREAM_SECRET}\"\nrequire_message_authenticator = false\nhealth_check = \"none\"\n",
        fr.auth
    );
    let config =
        mfa_proxy::config::Config::from_toml(&t, std::path::Path::new("v6.toml")).expect("valid");
    let proxy = start_proxy(&config);
    let to = proxy.listen_addrs[0];
    assert!(to.is_ipv6());
    let o = login_alice(to);
    assert!(text(&o).contains("Received Access-Accept"), "{}", text(&o));
}
