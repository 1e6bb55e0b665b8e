//! What a directory sync writes, and enrollment invitations.

use super::*;

fn synced(name: &str) -> User {
    User {
        source: Some("corp".into()),
        groups: vec!["VPN Users".into()],
        ..user(name)
    }
}

pub(super) fn a_sync_adds_changes_owned_fields_disables_and_removes(f: &Fixture) {
    let s = f.store();
    // An administrator's user, with a phone and a remembered login.
    s.add_user(&User {
        phone: Some("+15550001".into()),
        language: Some("de".into()),
        ..user("Carol")
    })
    .expect("add");
    in_tx(s.as_login(), |tx| {
        tx.remember("carol", &vpn(Some("10.0.0.1"), 2_000), 0)
    })
    .expect("remember");
    s.apply_directory(&[
        UserChange::Add(synced("dave")),
        // The directory owns email and groups, not phone or language.
        UserChange::Update(UserUpdate {
            name: "CAROL".into(),
            source: "corp".into(),
            email: Some(Some("carol@corp.example".into())),
            groups: Some(vec!["Staff".into()]),
            ..UserUpdate::default()
        }),
        // Gone meanwhile: skipped, not an error.
        UserChange::Disable {
            name: "nobody".into(),
            at: 5_000,
        },
    ])
    .expect("apply");
    let dave = s.user("Dave").expect("q").expect("added");
    assert_eq!(dave.source.as_deref(), Some("corp"));
    assert_eq!(dave.groups, vec!["VPN Users".to_owned()]);
    let carol = s.user("carol").expect("q").expect("kept");
    assert_eq!(
        carol.source.as_deref(),
        Some("corp"),
        "adopted by the source"
    );
    assert_eq!(carol.email.as_deref(), Some("carol@corp.example"));
    assert_eq!(carol.phone.as_deref(), Some("+15550001"), "not owned: kept");
    assert_eq!(carol.language.as_deref(), Some("de"), "not owned: kept");
    assert_eq!(carol.groups, vec!["Staff".to_owned()]);
    assert_eq!(s.remembered("carol").expect("r").len(), 1, "same phone");

    // A new phone from the directory forgets remembered logins.
    s.apply_directory(&[UserChange::Update(UserUpdate {
        name: "carol".into(),
        source: "corp".into(),
        phone: Some(Some("+15550002".into())),
        ..UserUpdate::default()
    })])
    .expect("apply");
    assert!(s.remembered("carol").expect("r").is_empty());
    assert_eq!(
        s.user("carol").expect("q").expect("u").email.as_deref(),
        Some("carol@corp.example"),
        "a field absent from the change stays"
    );

    // Disabled: the login path says so, with the source; a second disable
    // keeps the first time.
    s.apply_directory(&[UserChange::Disable {
        name: "dave".into(),
        at: 6_000,
    }])
    .expect("disable");
    s.apply_directory(&[UserChange::Disable {
        name: "dave".into(),
        at: 7_000,
    }])
    .expect("disable again");
    assert_eq!(
        s.user("dave").expect("q").expect("u").disabled_at,
        Some(6_000)
    );
    let facts = s.login_state("DAVE", 8_000).expect("s").expect("known");
    assert_eq!(facts.disabled.as_deref(), Some("corp"));
    assert_eq!(
        s.login_state("carol", 8_000)
            .expect("s")
            .expect("u")
            .disabled,
        None
    );

    // Listed again: enabled.
    s.apply_directory(&[UserChange::Update(UserUpdate {
        name: "dave".into(),
        source: "corp".into(),
        ..UserUpdate::default()
    })])
    .expect("enable");
    assert_eq!(s.user("dave").expect("q").expect("u").disabled_at, None);

    // A removal planned while the user was disabled does not remove one
    // enabled again since (another sync listed them).
    s.apply_directory(&[UserChange::Remove {
        name: "dave".into(),
    }])
    .expect("remove enabled");
    assert!(s.user("dave").expect("q").is_some(), "enabled: kept");
    s.apply_directory(&[UserChange::Disable {
        name: "dave".into(),
        at: 8_500,
    }])
    .expect("disable");

    // Removed with tokens; the audit trail stays.
    s.add_token(&totp("dave"), b"0123456789abcdefghij")
        .expect("token");
    s.append_audit(&AuditRecord {
        at: 9_000,
        user: "dave".into(),
        result: ResultCode::FailedUserDisabled,
        accepted: false,
        mode: "pap".into(),
        server: "test".into(),
        client: "nas".into(),
        client_ip: None,
        reason: Some("user disabled: no longer in directory corp".into()),
    })
    .expect("audit");
    s.apply_directory(&[UserChange::Remove {
        name: "Dave".into(),
    }])
    .expect("remove");
    assert_eq!(s.user("dave").expect("q"), None);
    assert!(s.tokens("dave").expect("t").is_empty());
    assert_eq!(s.audit(Some("dave"), None).expect("audit").len(), 1);
}

pub(super) fn a_failed_change_leaves_the_whole_batch_unwritten(f: &Fixture) {
    let s = f.store();
    s.add_user(&user("erin")).expect("add");
    let r = s.apply_directory(&[
        UserChange::Add(synced("frank")),
        UserChange::Add(synced("ERIN")),
    ]);
    assert!(matches!(r, Err(StoreError::UserExists(_))), "{r:?}");
    assert_eq!(s.user("frank").expect("q"), None, "rolled back");
    // The store works on after the failed batch.
    s.apply_directory(&[UserChange::Add(synced("frank"))])
        .expect("apply");
    assert!(s.user("frank").expect("q").is_some());
}

pub(super) fn invitations_are_single_use_expire_and_replace_older_ones(f: &Fixture) {
    let s = f.store();
    s.add_user(&user("Gwen")).expect("add");
    let inv = |hash: &[u8], expires_at| Invitation {
        hash: hash.to_vec(),
        user: "gwen".into(),
        created_at: 1_000,
        expires_at,
        used_at: None,
    };
    assert!(matches!(
        s.add_invitation(&Invitation {
            user: "nobody".into(),
            ..inv(b"h0", 2_000)
        }),
        Err(StoreError::NoSuchUser(_))
    ));
    assert_eq!(s.invitation_of("gwen").expect("of"), None, "never invited");
    s.add_invitation(&inv(b"h1", 2_000)).expect("first");
    assert_eq!(
        s.invitation(b"h1", 1_500).expect("q").as_deref(),
        Some("Gwen")
    );
    s.add_invitation(&inv(b"h2", 2_000)).expect("second");
    assert_eq!(s.invitation(b"h1", 1_500).expect("q"), None, "replaced");
    assert_eq!(s.invitation(b"h2", 2_000).expect("q"), None, "expired");
    assert_eq!(
        s.take_invitation(b"h2", 1_999).expect("take").as_deref(),
        Some("Gwen")
    );
    assert_eq!(s.take_invitation(b"h2", 1_999).expect("take"), None, "used");
    assert_eq!(s.invitation(b"h2", 1_999).expect("q"), None);
    assert_eq!(
        s.invitation_of("GWEN").expect("of"),
        Some(Invitation {
            user: "Gwen".into(),
            used_at: Some(1_999),
            ..inv(b"h2", 2_000)
        }),
        "the newest, used"
    );
    // Go with their user.
    s.add_invitation(&inv(b"h3", 2_000)).expect("third");
    s.remove_user("gwen").expect("rm");
    s.add_user(&user("gwen")).expect("add again");
    assert_eq!(s.invitation(b"h3", 1_500).expect("q"), None);
    assert_eq!(s.invitation_of("gwen").expect("of"), None);
    // Withdrawn while unused (its mail never left), not once used.
    s.add_invitation(&inv(b"h4", 2_000)).expect("fourth");
    assert!(s.withdraw_invitation(b"h4").expect("withdraw"));
    assert!(!s.withdraw_invitation(b"h4").expect("withdraw"), "gone");
    assert_eq!(s.invitation_of("gwen").expect("of"), None);
    s.add_invitation(&inv(b"h5", 2_000)).expect("fifth");
    s.take_invitation(b"h5", 1_500).expect("take");
    assert!(!s.withdraw_invitation(b"h5").expect("withdraw"), "used");
}
