//! The private slapd of tests/support/slapd.rs, checked with OpenLDAP's
//! own client tools before directory sync relies on it: 10,000 users
//! loaded, found by paged searches over ldap://, StartTLS and ldaps://
//! with the test CA, the 1,000-entry limit on unpaged searches, a wrong
//! password refused, memberOf kept by the overlay, a stop and a restart.

#[path = "support/slapd.rs"]
mod slapd;

use std::time::Instant;

use slapd::{
    CONTRACTORS_GROUP, GROUPS_OU, SYNC_DN, Slapd, Tree, USERS_OU, VPN_GROUP, user_dn, user_ldif,
};

const USERS: usize = 10_000;

/// Entries an `ldapsearch -LLL` printed.
fn count_dns(text: &str) -> usize {
    text.lines().filter(|l| l.starts_with("dn: ")).count()
}

/// A paged search as the sync account; the entries' DNs.
fn paged_search(server: &Slapd, url: &str, extra: &[&str], base: &str, filter: &str) -> String {
    let mut cmd = server.tool("ldapsearch");
    cmd.args(["-x", "-LLL", "-o", "ldif-wrap=no", "-H", url])
        .args(extra)
        .args(["-D", SYNC_DN, "-w", server.sync_password()])
        .args(["-E", "pr=1000/noprompt", "-b", base, filter, "1.1"]);
    match server.run_tool(cmd) {
        Ok(text) => text,
        Err((code, text)) => panic!("ldapsearch on {url} failed ({code:?}): {text}"),
    }
}

#[test]
fn a_private_slapd_serves_ten_thousand_users() {
    let started = Instant::now();
    let Some(server) = Slapd::start_or_skip(Tree {
        users: USERS,
        disabled: 5,
    }) else {
        return;
    };
    eprintln!(
        "slapd with {USERS} users (slapadd and start) ready in {:?}",
        started.elapsed()
    );
    let users = "(objectClass=inetOrgPerson)";

    // Paged, over ldap://, StartTLS (-ZZ: TLS required) and ldaps://.
    let plain = paged_search(&server, &server.ldap_url(), &[], USERS_OU, users);
    assert_eq!(count_dns(&plain), USERS);
    let starttls = paged_search(&server, &server.ldap_url(), &["-ZZ"], USERS_OU, users);
    assert_eq!(count_dns(&starttls), USERS);
    let ldaps = paged_search(&server, &server.ldaps_url(), &[], USERS_OU, users);
    assert_eq!(count_dns(&ldaps), USERS);

    // Unpaged, the server stops at 1,000 like AD: sizeLimitExceeded (4).
    let mut cmd = server.tool("ldapsearch");
    cmd.args(["-x", "-LLL", "-H", &server.ldap_url(), "-D", SYNC_DN, "-w"])
        .args([server.sync_password(), "-b", USERS_OU, users, "1.1"]);
    match server.run_tool(cmd) {
        Err((Some(4), text)) => assert_eq!(count_dns(&text), 1000),
        other => panic!("an unpaged search should stop at 1,000: {other:?}"),
    }

    // A wrong password: invalidCredentials (49).
    let mut cmd = server.tool("ldapwhoami");
    cmd.args([
        "-x",
        "-H",
        &server.ldaps_url(),
        "-D",
        SYNC_DN,
        "-w",
        "wrong",
    ]);
    match server.run_tool(cmd) {
        Err((Some(49), _)) => {}
        other => panic!("a wrong password should fail with 49: {other:?}"),
    }

    // A CA that did not issue the certificate: the TLS handshake fails.
    let other_ca = server.dir().join("other-ca.pem");
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).expect("cert");
    std::fs::write(&other_ca, other.cert.pem()).expect("write");
    let mut cmd = server.tool("ldapwhoami");
    cmd.env("LDAPTLS_CACERT", &other_ca)
        .args(["-x", "-H", &server.ldaps_url(), "-D", SYNC_DN, "-w"])
        .arg(server.sync_password());
    assert!(
        server.run_tool(cmd).is_err(),
        "a certificate from an unknown CA must be refused"
    );

    // Group membership: direct in VPN Users (even), nested via Contractors.
    if server.has_memberof() {
        let direct = paged_search(
            &server,
            &server.ldap_url(),
            &[],
            USERS_OU,
            &format!("(memberOf={VPN_GROUP})"),
        );
        assert_eq!(count_dns(&direct), USERS / 2);
        let nested = paged_search(
            &server,
            &server.ldap_url(),
            &[],
            GROUPS_OU,
            &format!("(memberOf={VPN_GROUP})"),
        );
        assert_eq!(count_dns(&nested), 1, "Contractors is in VPN Users");
        assert!(nested.to_lowercase().contains("cn=contractors"), "{nested}");
    }

    // Changes: a user deleted leaves the groups (memberof-refint), a new
    // one added to a group gets memberOf from the overlay.
    let t = Instant::now();
    server.delete(&user_dn(2));
    server.add(&user_ldif(USERS + 1));
    server.modify(&format!(
        "dn: {CONTRACTORS_GROUP}\nchangetype: modify\nadd: member\nmember: {}\n",
        user_dn(USERS + 1)
    ));
    eprintln!("three changes over ldap:// in {:?}", t.elapsed());
    let all = paged_search(&server, &server.ldap_url(), &[], USERS_OU, users);
    assert_eq!(count_dns(&all), USERS);
    if server.has_memberof() {
        let members = paged_search(
            &server,
            &server.ldap_url(),
            &[],
            USERS_OU,
            &format!("(memberOf={CONTRACTORS_GROUP})"),
        );
        assert_eq!(count_dns(&members), USERS / 10 + 1);
        let mut cmd = server.tool("ldapsearch");
        cmd.args(["-x", "-LLL", "-H", &server.ldap_url(), "-D", SYNC_DN, "-w"])
            .args([server.sync_password(), "-b", VPN_GROUP, "-s", "base"])
            .args(["(objectClass=*)", "member"]);
        let vpn = server.run_tool(cmd).expect("VPN Users");
        assert!(
            !vpn.to_lowercase().contains(&user_dn(2).to_lowercase()),
            "a deleted user leaves its groups"
        );
    }

    // Stopped, nothing answers; started again, the same data.
    server.stop();
    let mut cmd = server.tool("ldapwhoami");
    cmd.args(["-x", "-H", &server.ldap_url(), "-D", SYNC_DN, "-w"])
        .arg(server.sync_password());
    assert!(server.run_tool(cmd).is_err(), "a stopped server answers");
    server.start_again();
    let again = paged_search(&server, &server.ldaps_url(), &[], USERS_OU, users);
    assert_eq!(count_dns(&again), USERS);

    // Reloading a whole tree, timed.
    let took = server.reload(Tree {
        users: USERS,
        disabled: 0,
    });
    eprintln!("slapadd of {USERS} users took {took:?}");
}
