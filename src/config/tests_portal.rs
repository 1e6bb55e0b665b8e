//! `[portal]`: its defaults, and `trusted_proxies` (addresses and networks,
//! errors naming the element).

use std::time::Duration;

use super::tests::{GOOD, expect_err, load};

/// GOOD with what the portal needs (an HTTP listener and a public URL),
/// and `[portal]` enabled with `extra`.
fn portal(extra: &str) -> String {
    let server = "[server]\nname = \"t\"\nhttp_listen = \"127.0.0.1:8080\"\n\
                  public_url = \"https://mfa.example\"\n";
    format!(
        "{}\n[portal]\nenabled = true\n{extra}\n",
        GOOD.replacen("[server]\nname = \"t\"\n", server, 1)
    )
}

#[test]
fn defaults_trust_no_proxy() {
    let p = load(&portal("")).expect("valid").portal.expect("enabled");
    assert_eq!(p.session_idle, Duration::from_secs(600));
    assert_eq!((p.signin_per_user, p.signin_per_address), (5, 20));
    assert!(p.trusted_proxies.is_empty());
}

#[test]
fn trusted_proxies_are_addresses_and_networks() {
    let p = load(&portal(
        "trusted_proxies = [\"10.0.0.5\", \"192.0.2.0/24\", \"::1\", \"::ffff:10.0.0.6\", \"2001:db8::/48\"]",
    ))
    .expect("valid")
    .portal
    .expect("enabled");
    let shown: Vec<String> = p.trusted_proxies.iter().map(|n| n.to_string()).collect();
    assert_eq!(
        shown,
        [
            "10.0.0.5/32",
            "192.0.2.0/24",
            "::1/128",
            // An IPv4-mapped address is the IPv4 address it is, as peers
            // are compared.
            "10.0.0.6/32",
            "2001:db8::/48"
        ]
    );
}

#[test]
fn trusted_proxy_errors_name_the_element() {
    let with = |list: &str| portal(&format!("trusted_proxies = [{list}]"));
    expect_err(
        &with("\"10.0.0.5\", \"10.0.0.300\""),
        "`portal.trusted_proxies[1]`",
        "\"10.0.0.300\" is not an IP address or CIDR range",
    );
    expect_err(
        &with("\"proxy.example.org\""),
        "`portal.trusted_proxies[0]`",
        "not an IP address or CIDR range",
    );
    expect_err(
        &with("\"10.0.0.5\", \"192.0.2.1/24\""),
        "`portal.trusted_proxies[1]`",
        "host bits set; did you mean \"192.0.2.0/24\"",
    );
    expect_err(
        &with("\"10.0.0.5:8080\""),
        "`portal.trusted_proxies[0]`",
        "not an IP address",
    );
    for every in ["0.0.0.0/0", "::/0"] {
        expect_err(
            &with(&format!("\"{every}\"")),
            "`portal.trusted_proxies[0]`",
            "trusts every address, so any client could choose",
        );
    }
    // Not a list of strings: the parser says where.
    let e = load(&with("10")).expect_err("a number").to_string();
    assert!(e.contains("test.toml, line"), "{e}");
}
