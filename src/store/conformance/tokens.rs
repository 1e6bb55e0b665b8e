//! Tokens: seeds sealed, steps claimed once, serials unique.

use super::*;

pub(super) fn seeds_are_sealed_and_steps_claimed_once(f: &Fixture) {
    let s = f.store();
    s.add_user(&user("bob")).expect("add");
    let id = s
        .add_token(&totp("bob"), b"twenty-byte-seed-xyz")
        .expect("token");
    let t = &s.tokens("bob").expect("tokens")[0];
    assert!(!t.active);
    assert_eq!(&s.token_seed(t).expect("seed")[..], b"twenty-byte-seed-xyz");
    let active = |name| s.login_state(name, 0).expect("state").expect("user").tokens;
    assert!(active("bob").is_empty(), "pending");
    s.activate_token(id).expect("activate");
    let active = active("BOB");
    assert_eq!(active.len(), 1);
    let (t, sealed) = &active[0];
    // What the store keeps is not the seed.
    assert!(!sealed.0.windows(8).any(|w| w == b"twenty-b"));
    assert_eq!(
        (t.id, &s.open_seed(t, sealed).expect("open")[..]),
        (id, &b"twenty-byte-seed-xyz"[..])
    );
    assert!(s.claim_step(id, 100).expect("claim"));
    assert!(
        !s.claim_step(id, 100).expect("claim"),
        "the same step twice"
    );
    assert!(!s.claim_step(id, 99).expect("claim"), "an older step");
    assert!(s.claim_step(id, 101).expect("claim"));
    assert_eq!(s.tokens("bob").expect("t")[0].last_step, Some(101));
    assert!(matches!(
        s.add_token(&totp("nobody"), b"x"),
        Err(StoreError::NoSuchUser(_))
    ));
}

pub(super) fn concurrent_claims_of_one_step_have_one_winner(f: &Fixture) {
    // Separate connections to one database, as two proxies or two workers.
    let s = f.store();
    s.add_user(&user("race")).expect("add");
    let id = s.add_token(&totp("race"), b"seed").expect("token");
    assert!(
        !s.claim_step(id, 777).expect("claim"),
        "a pending token is never claimed"
    );
    s.activate_token(id).expect("activate");
    let others: Vec<Box<dyn Store>> = (0..8).map(|_| f.reopen()).collect();
    let winners: usize = std::thread::scope(|sc| {
        let handles: Vec<_> = others
            .iter()
            .map(|s| sc.spawn(move || usize::from(s.claim_step(id, 777).expect("claim"))))
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).sum()
    });
    assert_eq!(winners, 1);
}

pub(super) fn hardware_serials_belong_to_one_user(f: &Fixture) {
    let s = f.store();
    s.add_user(&user("a")).expect("add");
    s.add_user(&user("b")).expect("add");
    let mut t = totp("a");
    t.serial = Some("1234567".into());
    s.add_token(&t, b"k").expect("first");
    t.user = "b".into();
    assert!(matches!(
        s.add_token(&t, b"k"),
        Err(StoreError::SerialTaken(_))
    ));
}

pub(super) fn a_user_removes_only_their_own_token(f: &Fixture) {
    let s = f.store();
    s.add_user(&user("ann")).expect("add");
    s.add_user(&user("ben")).expect("add");
    let ann = s
        .add_token(&totp("ann"), b"0123456789abcdefghij")
        .expect("t");
    in_tx(s.as_login(), |tx| tx.remember("ann", &vpn(None, 2_000), 0)).expect("remember");
    assert!(!s.remove_user_token("ben", ann).expect("rm"), "not ben's");
    assert_eq!(s.tokens("ann").expect("t").len(), 1);
    assert_eq!(s.remembered("ann").expect("r").len(), 1);
    assert!(s.remove_user_token("ANN", ann).expect("rm"));
    assert!(s.tokens("ann").expect("t").is_empty());
    assert!(s.remembered("ann").expect("r").is_empty(), "revoked");
}

pub(super) fn a_new_app_enrollment_leaves_pending_hardware_tokens(f: &Fixture) {
    let s = f.store();
    s.add_user(&user("hal")).expect("add");
    let mut hw = totp("hal");
    hw.serial = Some("HW-1".into());
    s.add_token(&hw, b"0123456789abcdefghij").expect("hardware");
    s.add_token(&totp("hal"), b"abcdefghij0123456789")
        .expect("app");
    s.remove_pending_tokens("hal", TokenKind::Totp).expect("rm");
    let left = s.tokens("hal").expect("t");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].serial.as_deref(), Some("HW-1"));
}
