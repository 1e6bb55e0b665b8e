//! One verification out of band per user, and the grace after one, held
//! in the store so that they hold between the nodes of a cluster.

use super::*;

fn push(user: &str, id: u8, node: &str, at: UnixTime, until: UnixTime) -> Verification {
    Verification {
        user: user.into(),
        id: vec![id; 16],
        node: node.into(),
        client: "vpn".into(),
        method: Method::Push,
        started_at: at,
        expires_at: until,
    }
}

fn start(s: &dyn Store, v: &Verification) -> bool {
    in_tx(s.as_login(), |tx| tx.start_verification(v)).expect("start")
}

pub(super) fn one_verification_per_user_across_connections(f: &Fixture) {
    let s = f.store();
    s.add_user(&user("bob")).expect("add");
    s.add_user(&user("eve")).expect("add");
    let facts = |at| s.login_state("bob", at).expect("facts").expect("bob");
    assert!(!facts(100).busy);
    assert!(start(s, &push("bob", 1, "node-a", 100, 160)));
    assert!(facts(100).busy, "the facts say busy");
    // Another node, another connection: refused while it lasts.
    let other = f.reopen();
    assert!(!start(other.as_ref(), &push("BOB", 2, "node-b", 110, 170)));
    assert!(
        start(other.as_ref(), &push("eve", 3, "node-b", 110, 170)),
        "another user"
    );
    let listed = s.verifications(120).expect("list");
    assert_eq!(
        listed
            .iter()
            .map(|v| (v.user.as_str(), v.node.as_str()))
            .collect::<Vec<_>>(),
        [("bob", "node-a"), ("eve", "node-b")]
    );
    // Ended by another id: nothing happens; by its own: free again.
    in_tx(s.as_login(), |tx| tx.end_verification("bob", &[2; 16])).expect("end");
    assert!(facts(120).busy);
    in_tx(s.as_login(), |tx| tx.end_verification("Bob", &[1; 16])).expect("end");
    assert!(!facts(120).busy);
    assert!(start(other.as_ref(), &push("bob", 4, "node-b", 130, 190)));
    // A node that died leaves its verification to expire: then it is
    // anybody's again.
    assert!(!start(s, &push("bob", 5, "node-a", 189, 249)));
    assert!(!facts(190).busy, "expired");
    assert!(start(s, &push("bob", 5, "node-a", 190, 250)));
    assert_eq!(s.verifications(250).expect("list").len(), 0, "all expired");
}

pub(super) fn concurrent_starts_have_one_winner(f: &Fixture) {
    let s = f.store();
    s.add_user(&user("race")).expect("add");
    let others: Vec<Box<dyn Store>> = (0..8).map(|_| f.reopen()).collect();
    let winners: usize = std::thread::scope(|sc| {
        let handles: Vec<_> = others
            .iter()
            .enumerate()
            .map(|(i, s)| {
                sc.spawn(move || {
                    usize::from(start(s.as_ref(), &push("race", i as u8, "n", 10, 70)))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).sum()
    });
    assert_eq!(winners, 1);
}

pub(super) fn grace_is_used_once(f: &Fixture) {
    let s = f.store();
    s.add_user(&user("gil")).expect("add");
    let graced = |at| {
        s.login_state("gil", at)
            .expect("facts")
            .expect("gil")
            .graced
    };
    let take = |client: &str, at| {
        in_tx(s.as_login(), |tx| tx.take_grace("gil", client, at)).expect("take")
    };
    in_tx(s.as_login(), |tx| tx.grant_grace("GIL", "vpn", 160, 100)).expect("grant");
    assert_eq!(graced(100), ["vpn"]);
    assert!(!take("rdgw", 110), "another client");
    assert!(take("vpn", 110));
    assert!(!take("vpn", 111), "once");
    assert!(graced(111).is_empty());
    in_tx(s.as_login(), |tx| tx.grant_grace("gil", "vpn", 200, 150)).expect("grant");
    assert!(!take("vpn", 200), "expired");
}
