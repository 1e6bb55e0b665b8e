use super::*;
use crate::mfa::Method;

const DAY: i64 = 86_400;

fn listed(name: &str) -> Listed {
    Listed {
        name: name.into(),
        email: Some(format!("{name}@corp.example")),
        phone: Some("+4930123".into()),
        language: Some("de".into()),
        groups: vec!["VPN Users".into()],
        unusable: Vec::new(),
        ambiguous: false,
    }
}

/// A user this source added earlier, as `listed(name)` gave them.
fn synced(name: &str) -> User {
    User {
        email: Some(format!("{name}@corp.example")),
        phone: Some("+4930123".into()),
        language: Some("de".into()),
        groups: vec!["VPN Users".into()],
        source: Some("corp".into()),
        ..User::new(name, Method::Push)
    }
}

#[test]
fn new_users_are_added_with_the_source_defaults() {
    let dir = Directory {
        default_method: Method::Sms,
        default_language: Some("fr".into()),
        ..Directory::example()
    };
    let mut l = listed("alice");
    l.language = None;
    let p = plan(&dir, vec![l], &[], 1_000);
    assert_eq!((p.added, p.listed), (1, 1));
    let UserChange::Add(u) = &p.changes[0] else {
        panic!("{p:?}")
    };
    assert_eq!(u.method, Method::Sms);
    assert_eq!(u.language.as_deref(), Some("fr"));
    assert_eq!(u.source.as_deref(), Some("corp"));
    assert_eq!(u.created_at, 1_000);
}

#[test]
fn an_unchanged_user_writes_nothing_and_only_owned_fields_change() {
    let dir = Directory::example();
    // The name as stored, in another case, stays as it is.
    let stored = User {
        name: "Alice".into(),
        ..synced("alice")
    };
    let p = plan(&dir, vec![listed("alice")], &[stored], 0);
    assert!(p.is_empty());
    assert_eq!(p.unchanged, 1);

    // The source does not own the phone: the administrator's stays.
    let dir = Directory {
        phone_attribute: None,
        ..Directory::example()
    };
    let mut by_hand = synced("alice");
    by_hand.phone = Some("+15550000".into());
    let mut l = listed("alice");
    l.phone = None;
    l.email = Some("new@corp.example".into());
    let p = plan(&dir, vec![l], &[by_hand], 0);
    assert_eq!(p.changed, 1);
    assert_eq!(
        p.changes,
        vec![UserChange::Update(UserUpdate {
            name: "alice".into(),
            source: "corp".into(),
            email: Some(Some("new@corp.example".into())),
            ..UserUpdate::default()
        })]
    );
}

#[test]
fn an_owned_field_emptied_in_the_directory_is_emptied_but_an_unusable_one_stays() {
    let dir = Directory::example();
    let mut l = listed("alice");
    l.email = None;
    l.phone = None;
    l.unusable = vec!["phone"];
    let p = plan(&dir, vec![l], &[synced("alice")], 0);
    let UserChange::Update(u) = &p.changes[0] else {
        panic!("{p:?}")
    };
    assert_eq!(u.email, Some(None));
    assert_eq!(u.phone, None, "unusable: the phone on file stays");
}

#[test]
fn a_hand_made_user_is_adopted_and_another_sources_user_left_alone() {
    let dir = Directory::example();
    let mut hand = synced("alice");
    hand.source = None;
    let mut hr = synced("bob");
    hr.source = Some("hr".into());
    let p = plan(&dir, vec![listed("alice"), listed("bob")], &[hand, hr], 0);
    assert_eq!((p.changed, p.added), (1, 0));
    let UserChange::Update(u) = &p.changes[0] else {
        panic!("{p:?}")
    };
    assert_eq!((u.name.as_str(), u.email.clone()), ("alice", None));
    assert_eq!(p.problems, ["bob: belongs to directory hr; left alone"]);
}

#[test]
fn users_gone_are_disabled_then_removed_after_the_grace_and_can_return() {
    let dir = Directory::example();
    let now = 100 * DAY;
    let mut old = synced("old");
    old.disabled_at = Some(now - 30 * DAY);
    let mut recent = synced("recent");
    recent.disabled_at = Some(now - 29 * DAY);
    let mut back = synced("back");
    back.disabled_at = Some(now - DAY);
    let hand = User::new("manual", Method::Totp);
    let p = plan(
        &dir,
        vec![listed("back")],
        &[synced("gone"), old, recent, back, hand],
        now,
    );
    assert_eq!(
        (p.disabled, p.removed, p.enabled, p.changed),
        (1, 1, 1, 0),
        "{p:#?}"
    );
    assert!(p.changes.contains(&UserChange::Disable {
        name: "gone".into(),
        at: now
    }));
    assert!(
        p.changes
            .contains(&UserChange::Remove { name: "old".into() })
    );
    assert_eq!(
        p.changes.len(),
        3,
        "recent waits, manual is not the source's"
    );
}

#[test]
fn a_sync_that_would_disable_everyone_or_too_many_is_refused() {
    let dir = Directory::example();
    let users: Vec<User> = (0..100).map(|i| synced(&format!("u{i}"))).collect();
    let listing = |n: usize| (0..n).map(|i| listed(&format!("u{i}"))).collect::<Vec<_>>();
    // Nobody listed: refused even for a few users.
    let p = plan(&dir, vec![], &users[..3], 0);
    assert!(p.too_many_disabled(20).expect("refused").contains("all 3"));
    // 21 of 100 gone: more than 20 %.
    let p = plan(&dir, listing(79), &users, 0);
    assert!(
        p.too_many_disabled(20)
            .expect("refused")
            .contains("disable 21 of the directory's 100")
    );
    // 20 of 100: allowed; and ten or fewer always are.
    assert_eq!(
        plan(&dir, listing(80), &users, 0).too_many_disabled(20),
        None
    );
    assert_eq!(
        plan(&dir, listing(5), &users[..15], 0).too_many_disabled(20),
        None
    );
}

#[test]
fn a_name_two_entries_share_neither_adds_changes_nor_disables() {
    let dir = Directory::example();
    let mut both = listed("alice");
    both.ambiguous = true;
    both.phone = Some("+15550666".into());
    let mut new = listed("bob");
    new.ambiguous = true;
    let p = plan(&dir, vec![both, new], &[synced("alice")], 0);
    assert!(p.changes.is_empty(), "{p:#?}");
    assert_eq!((p.unchanged, p.disabled, p.added), (1, 0, 0));
}
