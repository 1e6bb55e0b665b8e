//! PEAP-MSCHAPv2 with eapol_test through mfa-proxy to FreeRADIUS: a
//! multi-round EAP dialogue whose State belongs to the upstream, ending in an
//! Access-Accept whose MS-MPPE keys the proxy must re-encrypt for the NAS.

mod common;

use common::*;
use mfa_proxy::engine::Counter;

fn eapol_test(to: std::net::SocketAddr, password: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("peap.conf");
    std::fs::write(
        &conf,
        format!(
            "network={{\n\tssid=\"test\"\n\tkey_mgmt=WPA-EAP\n\teap=PEAP\n\tidentity=\"alice\"\n\tanonymous_identity=\"anonymous\"\n\
             \tpassword=\"{password}\"\n\tphase1=\"peapver=0\"\n\tphase2=\"auth=MSCHAPV2\"\n}}\n"
        ),
    )
    .expect("write conf");
    let o = std::process::Command::new("eapol_test")
        .arg("-c")
        .arg(&conf)
        .args([
            "-a",
            &to.ip().to_string(),
            "-p",
            &to.port().to_string(),
            "-s",
            NAS_SECRET,
            "-r",
            "0",
            "-t",
            "20",
        ])
        .output()
        .expect("run eapol_test");
    text(&o)
}

#[test]
fn peap_mschapv2_succeeds_and_mppe_keys_match() {
    if !(have("freeradius") && have("eapol_test")) {
        return;
    }
    let fr = FreeRadius::start(UPSTREAM_SECRET);
    let proxy = start_proxy(&proxy_config(&[(fr.auth, fr.acct)], ""));
    let out = eapol_test(proxy.listen_addrs[0], "alice-pass");
    let tail: String = out.lines().rev().take(30).collect::<Vec<_>>().join("\n");
    assert!(
        out.contains("MPPE keys OK: 1  mismatch: 0"),
        "keys did not match:\n{tail}\n--- freeradius:\n{}",
        fr.log()
    );
    assert!(out.trim_end().ends_with("SUCCESS"), "{tail}");
    let s = proxy.stats();
    assert!(
        s.get(Counter::RepliesChallenge) >= 3,
        "a multi-round dialogue: {s}"
    );
    assert_eq!(s.get(Counter::RepliesAccept), 1);

    // A wrong inner password ends in a relayed Access-Reject.
    let out = eapol_test(proxy.listen_addrs[0], "wrong-pass");
    assert!(
        out.contains("FAILURE") || out.contains("Access-Reject"),
        "{out}"
    );
    assert_eq!(proxy.stats().get(Counter::RepliesReject), 1);
}
