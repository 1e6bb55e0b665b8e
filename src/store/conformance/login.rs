//! The login state, lockout, blocks, bypasses and remembered logins.

use super::*;

pub(super) fn login_state_in_one_query(f: &Fixture) {
    let s = f.store();
    let now = 1_000;
    let state = |s: &dyn Store| s.login_state("bob", now).expect("state");
    assert_eq!(state(s), None);
    s.add_user(&user("bob")).expect("add");
    let plain = UserFacts {
        blocked: false,
        bypass_waiting: false,
        locked: false,
        tokens: std::sync::Arc::from([]),
        method: Method::Totp,
        phone: None,
        pin: false,
        language: None,
        groups: Vec::new(),
        remembered: Vec::new(),
        busy: false,
        graced: Vec::new(),
        denied: false,
        disabled: None,
    };
    assert_eq!(state(s), Some(plain.clone()));
    let id = s
        .add_token(&totp("bob"), b"0123456789abcdefghij")
        .expect("token");
    assert_eq!(
        state(s),
        Some(plain.clone()),
        "a pending token does not enroll"
    );
    s.activate_token(id).expect("activate");
    let enrolled = UserFacts {
        tokens: state(s).expect("user").tokens,
        ..plain.clone()
    };
    assert_eq!(enrolled.tokens.len(), 1, "the active token");
    assert_eq!(enrolled.tokens[0].0.id, id);
    assert_eq!(state(s), Some(enrolled.clone()));
    s.add_bypass("bob", "r", now, now + 10).expect("bypass");
    assert_eq!(
        s.login_state("BOB", now)
            .expect("state")
            .map(|l| l.bypass_waiting),
        Some(true)
    );
    assert!(s.take_bypass("bob", now).expect("take"));
    assert_eq!(
        state(s),
        Some(enrolled.clone()),
        "a used bypass is not waiting"
    );
    s.block("bob", "r", now, now + 5).expect("block");
    assert_eq!(state(s).map(|l| l.blocked), Some(true));
    assert_eq!(
        s.login_state("bob", now + 5).expect("state"),
        Some(enrolled.clone()),
        "expired block"
    );
    s.unblock("bob", "r", now).expect("unblock");
    let p = LockoutPolicy {
        denials: 1,
        reset_after: 60,
        unblock_after: 30,
    };
    s.record_denial("bob", now, &p).expect("deny");
    assert_eq!(state(s).map(|l| l.locked), Some(true));
    assert_eq!(
        s.login_state("bob", now + 30).expect("state"),
        Some(enrolled.clone()),
        "unlocked"
    );
    // A wrong code short of a lockout is counted, and a right one clears it.
    let p = LockoutPolicy { denials: 3, ..p };
    let later = |s: &dyn Store| s.login_state("bob", now + 40).expect("state");
    s.record_denial("bob", now + 40, &p).expect("deny");
    assert_eq!(later(s).map(|l| (l.locked, l.denied)), Some((false, true)));
    s.clear_denials("bob").expect("clear");
    assert_eq!(later(s), Some(enrolled.clone()));
}

pub(super) fn lockout_counts_resets_and_unlocks(f: &Fixture) {
    let s = f.store();
    let p = LockoutPolicy {
        denials: 3,
        reset_after: 600,
        unblock_after: 1800,
    };
    assert_eq!(s.record_denial("u", 0, &p).expect("d"), None);
    assert_eq!(s.record_denial("u", 10, &p).expect("d"), None);
    // The run restarts after reset_after.
    assert_eq!(s.record_denial("u", 700, &p).expect("d"), None);
    assert_eq!(s.record_denial("u", 710, &p).expect("d"), None);
    assert_eq!(s.record_denial("u", 720, &p).expect("d"), Some(2520));
    assert_eq!(s.locked_until("u", 721).expect("l"), Some(2520));
    assert_eq!(
        s.locked_until("u", 2520).expect("l"),
        None,
        "unlocked automatically"
    );
}

pub(super) fn block_unblock_and_history(f: &Fixture) {
    let s = f.store();
    s.add_user(&user("c")).expect("add");
    s.block("c", "lost phone", 100, 100 + 90 * 86400)
        .expect("block");
    assert_eq!(
        s.blocked_until("c", 200).expect("b"),
        Some(100 + 90 * 86400)
    );
    s.unblock("c", "found it", 300).expect("unblock");
    assert_eq!(s.blocked_until("c", 400).expect("b"), None);
    let h = s.block_history().expect("history");
    assert_eq!(
        h.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["block", "unblock"]
    );
    assert_eq!(h[0].reason, "lost phone");
    assert!(matches!(
        s.block("zed", "x", 0, 1),
        Err(StoreError::NoSuchUser(_))
    ));
}

pub(super) fn bypass_is_used_once_and_expires(f: &Fixture) {
    let s = f.store();
    s.add_user(&user("d")).expect("add");
    s.add_bypass("d", "travel", 100, 400).expect("bypass");
    assert!(!s.take_bypass("d", 400).expect("t"), "expired");
    s.add_bypass("d", "again", 500, 800).expect("bypass");
    assert!(s.take_bypass("d", 600).expect("t"));
    assert!(!s.take_bypass("d", 601).expect("t"), "only once");
    let h = s.bypass_history().expect("h");
    assert_eq!(
        h.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["granted", "used"]
    );
}

pub(super) fn remember_keeps_one_row_per_key_and_prunes_the_old(f: &Fixture) {
    let s = f.store();
    s.add_user(&user("Ivy")).expect("add");
    s.add_user(&user("jo")).expect("add");
    let ip = Some("192.0.2.7");
    s.remember("ivy", &vpn(ip, 100), 0).expect("remember");
    s.remember("IVY", &vpn(ip, 150), 0).expect("again");
    s.remember("ivy", &vpn(ip, 120), 0).expect("late");
    assert_eq!(
        s.remembered("ivy").expect("list"),
        [vpn(ip, 150)],
        "one row per key, at the newest time"
    );
    // Each part of the key makes a row of its own; no address is one too.
    s.remember("ivy", &vpn(Some("192.0.2.8"), 160), 0)
        .expect("remember");
    s.remember("ivy", &vpn(None, 170), 0).expect("remember");
    s.remember("ivy", &vpn(None, 175), 0).expect("remember");
    s.remember("ivy", &vpn(Some(""), 165), 0).expect("remember");
    let eap = Remembered {
        auth_type: "eap".into(),
        ..vpn(ip, 140)
    };
    s.remember("ivy", &eap, 0).expect("remember");
    let wifi = Remembered {
        app: "wifi".into(),
        ..vpn(ip, 140)
    };
    s.remember("ivy", &wifi, 0).expect("remember");
    s.remember("jo", &vpn(ip, 10), 0).expect("remember");
    let all = vec![
        vpn(None, 175),
        vpn(Some(""), 165),
        vpn(Some("192.0.2.8"), 160),
        vpn(ip, 150),
        eap.clone(),
        wifi.clone(),
    ];
    assert_eq!(s.remembered("ivy").expect("list"), all, "newest first");
    assert_eq!(
        s.login_state("ivy", 0)
            .expect("state")
            .expect("user")
            .remembered,
        all,
        "the login reads them all, in the same order"
    );
    // Remembering prunes the user's rows from before keep_since, and
    // only the user's.
    s.remember("ivy", &vpn(ip, 200), 160).expect("remember");
    assert_eq!(
        s.remembered("ivy").expect("list"),
        [
            vpn(ip, 200),
            vpn(None, 175),
            vpn(Some(""), 165),
            vpn(Some("192.0.2.8"), 160)
        ]
    );
    assert_eq!(s.remembered("jo").expect("list"), [vpn(ip, 10)]);
    // A login older than keep_since is not kept either.
    s.remember("jo", &vpn(None, 5), 10).expect("remember");
    assert_eq!(s.remembered("jo").expect("list"), [vpn(ip, 10)]);
    // An unknown user: nothing stored, no error.
    s.remember("nobody", &vpn(ip, 300), 0).expect("no-op");
    s.add_user(&user("nobody")).expect("add");
    assert!(
        s.remembered("nobody").expect("list").is_empty(),
        "nothing was kept for the unknown user"
    );
    assert!(s.remove_user("nobody").expect("rm"));
    assert!(s.remembered("nobody").expect("list").is_empty());
    // Forgetting counts what went, for the user alone.
    assert_eq!(s.forget("IVY").expect("forget"), 4);
    assert_eq!(s.forget("ivy").expect("forget"), 0);
    assert!(s.remembered("ivy").expect("list").is_empty());
    assert_eq!(s.remembered("jo").expect("list").len(), 1);
    assert!(matches!(s.forget("nobody"), Err(StoreError::NoSuchUser(_))));
}

pub(super) fn block_lockout_and_removal_revoke_remembered_logins(f: &Fixture) {
    let s = f.store();
    s.add_user(&user("kai")).expect("add");
    s.add_user(&user("lea")).expect("add");
    let remembered = |name| s.remembered(name).expect("list").len();
    s.remember("kai", &vpn(None, 100), 0).expect("remember");
    s.remember("lea", &vpn(None, 100), 0).expect("remember");

    // An administrator's block (and a fraud report, which is one).
    s.block("KAI", "lost phone", 110, 1_000).expect("block");
    assert_eq!((remembered("kai"), remembered("lea")), (0, 1));
    // A login verified before the block but remembered after it is not.
    s.remember("kai", &vpn(None, 105), 0).expect("no-op");
    assert_eq!(remembered("kai"), 0, "blocked after the login");
    s.unblock("kai", "found", 120).expect("unblock");
    s.remember("kai", &vpn(None, 130), 0).expect("remember");
    assert_eq!(remembered("kai"), 1, "unblocked");

    // A denial that does not lock keeps them; the one that locks does not.
    let p = LockoutPolicy {
        denials: 2,
        reset_after: 600,
        unblock_after: 300,
    };
    assert_eq!(s.record_denial("Kai", 140, &p).expect("deny"), None);
    assert_eq!(remembered("kai"), 1, "not locked yet");
    assert_eq!(s.record_denial("kai", 150, &p).expect("deny"), Some(450));
    assert_eq!((remembered("kai"), remembered("lea")), (0, 1));
    s.remember("kai", &vpn(None, 145), 0).expect("no-op");
    assert_eq!(remembered("kai"), 0, "locked after the login");
    s.remember("kai", &vpn(None, 450), 0).expect("remember");
    assert_eq!(remembered("kai"), 1, "the lockout has ended");

    // Removing the user removes its rows (the foreign key cascades).
    assert!(s.remove_user("kai").expect("rm"));
    assert_eq!(remembered("lea"), 1, "lea's row stays");
    s.add_user(&user("kai")).expect("add again");
    assert!(
        s.remembered("kai").expect("list").is_empty(),
        "nothing comes back"
    );
}

pub(super) fn a_removed_token_or_a_new_phone_revokes_remembered_logins(f: &Fixture) {
    let s = f.store();
    s.add_user(&user("kai")).expect("add");
    s.add_user(&user("lea")).expect("add");
    let remembered = |name| s.remembered(name).expect("list").len();
    let mut token = totp("kai");
    token.serial = Some("7654321".into());
    s.add_token(&token, b"12345678901234567890").expect("token");
    s.remember("kai", &vpn(None, 100), 0).expect("remember");
    s.remember("lea", &vpn(None, 100), 0).expect("remember");

    // The hardware token is returned, or lost: its user's remembered
    // logins go with it, nobody else's.
    assert!(s.remove_token("7654321").expect("remove"));
    assert_eq!((remembered("kai"), remembered("lea")), (0, 1));
    assert!(!s.remove_token("7654321").expect("gone"));
    assert_eq!(remembered("lea"), 1, "an unknown serial forgets nothing");

    // Another change keeps them; a new phone number does not.
    let mut lea = s.user("lea").expect("q").expect("lea");
    lea.email = Some("lea@example.org".into());
    s.update_user(&lea).expect("update");
    assert_eq!(remembered("lea"), 1, "the email changed");
    lea.phone = Some("+4930123456".into());
    s.update_user(&lea).expect("update");
    assert_eq!(remembered("lea"), 0, "the phone changed");
    s.remember("lea", &vpn(None, 200), 0).expect("remember");
    s.update_user(&lea).expect("update");
    assert_eq!(remembered("lea"), 1, "the same phone again");
}
