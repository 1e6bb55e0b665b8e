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
        provider: "prov".into(),
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
    // Ended by another id, or by a node that does not hold it: nothing
    // happens; by its own: free again.
    let end = |id: u8, node: &str| {
        in_tx(s.as_login(), |tx| {
            tx.end_verification("Bob", &[id; 16], node)
        })
        .expect("end")
    };
    end(2, "node-a");
    end(1, "node-b");
    assert!(facts(120).busy);
    end(1, "node-a");
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

/// A phone's answer that reached another node waits in the store for the
/// node holding the NAS request, once; the verification can move to the
/// node the NAS answers (number matching), and only that node ends it.
pub(super) fn answers_wait_for_the_node_holding_the_request(f: &Fixture) {
    let s = f.store();
    s.add_user(&user("ann")).expect("add");
    let v = push("ann", 7, "node-a", 100, 160);
    assert!(start(s, &v));
    let other = f.reopen();
    let found = in_tx(other.as_login(), |tx| tx.verification(&v.id, 120)).expect("find");
    assert_eq!(
        found.as_ref(),
        Some(&v),
        "found by id at another connection"
    );
    let gone = in_tx(other.as_login(), |tx| tx.verification(&v.id, 160)).expect("find");
    assert_eq!(gone, None, "expired");
    let unknown = in_tx(other.as_login(), |tx| tx.verification(&[9; 16], 120)).expect("find");
    assert_eq!(unknown, None);
    let answer = |sealed: &[u8]| StoredAnswer {
        id: v.id.clone(),
        node: "node-a".into(),
        expires_at: 160,
        sealed: sealed.to_vec(),
    };
    let put = |a: &StoredAnswer| in_tx(other.as_login(), |tx| tx.put_answer(a)).expect("put");
    assert!(put(&answer(b"first")));
    assert!(!put(&answer(b"second")), "one answer per verification");
    let take = |ids: &[Vec<u8>]| in_tx(s.as_login(), |tx| tx.take_answers(ids)).expect("take");
    assert_eq!(
        take(&[vec![9; 16], v.id.clone()]),
        [(v.id.clone(), b"first".to_vec())]
    );
    assert!(take(std::slice::from_ref(&v.id)).is_empty(), "taken once");
    assert!(!put(&answer(b"third")), "no second answer once taken");
    // An answer used where it arrived is kept empty: taken already.
    let used = StoredAnswer {
        id: vec![8; 16],
        ..answer(b"")
    };
    assert!(put(&used));
    assert!(!put(&StoredAnswer {
        id: vec![8; 16],
        ..answer(b"late")
    }));
    assert!(take(&[vec![8; 16]]).is_empty(), "nothing to take");
    // The NAS answered the number at node B: the verification is B's.
    let moved = |node: &str, at| {
        in_tx(other.as_login(), |tx| tx.move_verification(&v.id, node, at)).expect("move")
    };
    assert!(moved("node-b", 130));
    let listed = s.verifications(130).expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].node, "node-b");
    assert_eq!(listed[0].provider, "prov");
    assert!(!moved("node-c", 160), "over");
    // A's end of it no longer ends it; B's does.
    let end = |node: &str| {
        in_tx(s.as_login(), |tx| tx.end_verification("ann", &v.id, node)).expect("end")
    };
    end("node-a");
    assert_eq!(s.verifications(130).expect("list").len(), 1);
    end("node-b");
    assert!(s.verifications(130).expect("list").is_empty());
}

/// A challenge is taken once; the row names the node that took it, so the
/// node that sent it knows, when it expires there, whether to end the
/// login or leave it to the other node. Heartbeats clear expired rows a
/// while after they expired.
pub(super) fn challenges_are_taken_once_and_name_their_taker(f: &Fixture) {
    let s = f.store();
    let ch = |state: u8, expires_at| StoredChallenge {
        state: vec![state; 20],
        node: "node-a".into(),
        user: "ann".into(),
        expires_at,
        sealed: vec![state; 40],
    };
    let put = |c: &StoredChallenge| in_tx(s.as_login(), |tx| tx.put_challenge(c)).expect("put");
    let other = f.reopen();
    let take = |state: u8, node: &str, at| {
        in_tx(other.as_login(), |tx| {
            tx.take_challenge(&[state; 20], node, at)
        })
        .expect("take")
    };
    let expired = |state: u8| {
        in_tx(s.as_login(), |tx| tx.drop_challenge(&[state; 20], "node-a")).expect("drop")
    };
    put(&ch(1, 200));
    assert_eq!(take(1, "node-b", 100), Some(vec![1; 40]));
    assert_eq!(take(1, "node-c", 100), None, "once");
    assert_eq!(take(1, "node-a", 100), None, "once, the sender too");
    assert!(expired(1), "taken over by node-b");
    assert!(!expired(1), "gone");
    put(&ch(2, 200));
    assert!(!expired(2), "nobody took it: the sender's to end");
    put(&ch(3, 200));
    assert_eq!(take(3, "node-a", 100), Some(vec![3; 40]));
    assert!(!expired(3), "the sender took it itself");
    put(&ch(4, 200));
    assert_eq!(take(4, "node-b", 200), None, "expired");
    // Kept EXPIRED_KEPT seconds past its expiry, then cleared.
    let beat = |at| {
        let n = NodeSeen {
            name: "node-a".into(),
            started_at: 0,
            seen_at: at,
            version: "test".into(),
        };
        in_tx(s.as_login(), |tx| tx.heartbeat(&n)).expect("beat")
    };
    put(&ch(5, 200));
    put(&ch(6, 200));
    assert_eq!(take(5, "node-b", 100), Some(vec![5; 40]));
    assert_eq!(take(6, "node-b", 100), Some(vec![6; 40]));
    beat(200 + EXPIRED_KEPT - 1);
    assert!(expired(6), "still known as taken");
    beat(200 + EXPIRED_KEPT);
    assert!(!expired(5), "cleared: no longer known as taken");
}
