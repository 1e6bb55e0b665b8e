//! Users and their groups.

use super::*;

pub(super) fn users_crud_and_case_insensitive_names(f: &Fixture) {
    let s = f.store();
    s.add_user(&user("Alice")).expect("add");
    assert!(matches!(
        s.add_user(&user("alice")),
        Err(StoreError::UserExists(_))
    ));
    let mut u = s.user("ALICE").expect("query").expect("found");
    assert_eq!(u.name, "Alice");
    u.phone = Some("+15551234567".into());
    u.method = Method::Sms;
    s.update_user(&u).expect("update");
    assert_eq!(
        s.user("alice").expect("q").expect("found").method,
        Method::Sms
    );
    assert_eq!(s.users().expect("list").len(), 1);
    assert!(s.remove_user("alice").expect("rm"));
    assert!(!s.remove_user("alice").expect("rm"));
    assert!(matches!(s.update_user(&u), Err(StoreError::NoSuchUser(_))));
}

pub(super) fn groups_are_kept_sorted_without_duplicates_and_replaced_whole(f: &Fixture) {
    let s = f.store();
    let groups = |v: &[&str]| v.iter().map(|g| g.to_string()).collect::<Vec<_>>();
    s.add_user(&User {
        groups: groups(&["vpn", "Admins", "VPN", "Ärzte", "ärzte", "b"]),
        ..user("Gina")
    })
    .expect("add");
    let stored = s.user("gina").expect("q").expect("found");
    assert_eq!(stored.groups, groups(&["Admins", "b", "vpn", "Ärzte"]));
    assert_eq!(s.users().expect("list")[0].groups, stored.groups);
    assert_eq!(
        s.login_state("GINA", 0)
            .expect("state")
            .expect("user")
            .groups,
        stored.groups
    );
    // Written under another case of the name: the user's rows all the same.
    s.update_user(&User {
        groups: groups(&["Ops"]),
        ..stored.clone()
    })
    .expect("update");
    s.update_user(&User {
        name: "GINA".into(),
        groups: groups(&["Ops", "net"]),
        ..stored.clone()
    })
    .expect("update");
    assert_eq!(
        s.user("gina").expect("q").expect("found").groups,
        groups(&["net", "Ops"])
    );
    s.update_user(&User {
        groups: Vec::new(),
        ..stored.clone()
    })
    .expect("clear");
    assert!(s.user("gina").expect("q").expect("found").groups.is_empty());
    // Another user's groups are their own; a removed user's go with it.
    s.add_user(&User {
        groups: groups(&["net"]),
        ..user("hal")
    })
    .expect("add");
    s.update_user(&User {
        groups: groups(&["net"]),
        ..stored
    })
    .expect("update");
    assert!(s.remove_user("hal").expect("rm"));
    assert_eq!(
        s.user("gina").expect("q").expect("found").groups,
        groups(&["net"])
    );
    s.add_user(&user("hal")).expect("add again");
    assert!(
        s.user("hal").expect("q").expect("found").groups.is_empty(),
        "hal's groups went with hal"
    );
    // A user that cannot be added leaves no groups behind.
    assert!(matches!(
        s.add_user(&User {
            groups: groups(&["intruders"]),
            ..user("GINA")
        }),
        Err(StoreError::UserExists(_))
    ));
    assert_eq!(
        s.user("gina").expect("q").expect("found").groups,
        groups(&["net"])
    );
}

pub(super) fn names_compare_without_case_beyond_ascii(f: &Fixture) {
    let s = f.store();
    s.add_user(&user("Ärger")).expect("add");
    assert!(matches!(
        s.add_user(&user("äRGER")),
        Err(StoreError::UserExists(_))
    ));
    let u = s.user("ÄRGER").expect("q").expect("found");
    assert_eq!(u.name, "Ärger", "the name as given");
    let id = s
        .add_token(&totp("ärger"), b"seed-of-arger")
        .expect("token");
    s.activate_token(id).expect("activate");
    let facts = s.login_state("äRGER", 0).expect("facts").expect("known");
    let (t, sealed) = &facts.tokens[0];
    assert_eq!(&s.open_seed(t, sealed).expect("open")[..], b"seed-of-arger");
    assert!(s.remove_user("ÄRGER").expect("rm"));
    assert!(s.user("Ärger").expect("q").is_none());
}

/// A portal sign-out ends the user's sessions begun until then, at every
/// node; the time only moves forward, and a user's row rewritten by an
/// edit keeps it.
pub(super) fn a_portal_sign_out_is_kept_and_only_moves_forward(f: &Fixture) {
    let s = f.store();
    s.add_user(&user("Hana")).expect("add");
    let since = |s: &dyn Store| {
        s.user("hana")
            .expect("q")
            .expect("hana")
            .portal_sessions_since
    };
    assert_eq!(since(s), None);
    assert!(s.end_portal_sessions("HANA", 2_000).expect("sign out"));
    assert_eq!(
        since(f.reopen().as_ref()),
        Some(2_000),
        "seen by another node"
    );
    assert!(s.end_portal_sessions("hana", 1_500).expect("sign out"));
    assert_eq!(since(s), Some(2_000), "never back");
    let mut u = s.user("hana").expect("q").expect("hana");
    u.phone = Some("+4930123456".into());
    u.portal_sessions_since = None;
    s.update_user(&u).expect("edit");
    assert_eq!(since(s), Some(2_000), "an edit does not undo a sign-out");
    assert!(!s.end_portal_sessions("nobody", 2_000).expect("unknown"));
}
