//! Reload on the virtual clock: what is in flight finishes under the
//! configuration it started with, what starts after uses the new one.

use std::path::Path;
use std::time::Duration;

use super::tests_mfa::{NAS, Sim, UP, parse, state_of};
use super::*;
use crate::mfa::ResultCode;
use crate::radius::crypto;

const OTHER: &[u8] = b"other-nas-secret-0123456789";
const NEW_SECRET: &[u8] = b"renewed-nas-secret-0123456789";

fn text(s: &[u8]) -> String {
    String::from_utf8_lossy(s).into_owned()
}

fn load(t: &str) -> Config {
    Config::from_toml(t, Path::new("sim.toml")).expect("valid")
}

fn upstream(name: &str, host: u8) -> String {
    format!(
        "[[upstream]]\nname = \"{name}\"\naddress = \"127.0.1.{host}:1812\"\nsecret = \"{}\"\n\
         timeout = \"1s\"\nretries = 2\nhealth_check = \"none\"\n",
        text(UP)
    )
}

fn up_addr(host: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 1, host], 1812))
}

/// A configuration: listeners, `[mfa]` and `[proxy]` lines, the clients
/// "nas" (127.0.0.5, secret `nas`) and, with `other`, "other-nas"
/// (127.0.0.6), then `upstreams`.
fn config(server: &str, mfa: &str, nas: &[u8], other: bool, upstreams: &str) -> Config {
    let mut t = format!(
        "[server]\nname = \"sim\"\n{server}\npublic_url = \"https://mfa.example\"\n\
         [mfa]\nreject_delay = \"1s\"\n{mfa}\n\
         [[client]]\nname = \"nas\"\naddress = \"127.0.0.5\"\nsecret = \"{}\"\n",
        text(nas)
    );
    if other {
        t.push_str(&format!(
            "[[client]]\nname = \"other-nas\"\naddress = \"127.0.0.6\"\nsecret = \"{}\"\n",
            text(OTHER)
        ));
    }
    t.push_str(upstreams);
    load(&t)
}

const AUTH: &str = "auth_listen = [\"127.0.0.1:1812\"]";
const PLAIN: &str = "enabled = false";

fn nas(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, if port >= 60000 { 6 } else { 5 }], port))
}

/// A signed PAP Access-Request as alice (password "pw").
fn pap(id: u8, secret: &[u8], password: &str, state: Option<&[u8]>) -> Vec<u8> {
    let auth = [id; 16];
    let mut b = PacketBuilder::new(Code::ACCESS_REQUEST, id, &auth);
    b.push_message_authenticator().expect("fits");
    b.push(attr::USER_NAME, b"alice").expect("fits");
    let pw = crypto::hide_password(password.as_bytes(), secret, &auth).expect("hide");
    b.push(attr::USER_PASSWORD, &pw).expect("fits");
    if let Some(s) = state {
        b.push(attr::STATE, s).expect("fits");
    }
    b.finish_request(secret)
}

/// The upstream's Access-Accept to `t`, echoing its Proxy-States.
fn accept(t: &Transmit) -> Vec<u8> {
    let p = parse(t);
    let mut b = PacketBuilder::new(Code::ACCESS_ACCEPT, p.identifier(), &[0; 16]);
    b.push_message_authenticator().expect("fits");
    for ps in p.attributes().filter(|a| a.typ == attr::PROXY_STATE) {
        b.push_raw(ps.raw(&p)).expect("fits");
    }
    b.finish_response(UP, p.authenticator())
}

fn upstream_socket(t: &Transmit) -> u16 {
    match t.socket {
        SocketRef::Upstream(s) => s,
        SocketRef::Listener(_) => panic!("not to an upstream"),
    }
}

/// Whether `t` answers request `id` and is signed with `secret`.
fn signed_with(t: &Transmit, id: u8, secret: &[u8]) -> bool {
    crypto::verify_packet_authenticator(&t.payload, &[id; 16], secret)
}

impl Sim {
    fn send(&mut self, port: u16, req: &[u8]) -> Vec<Transmit> {
        self.e.handle_nas(self.now, 0, nas(port), req);
        self.out()
    }

    fn reload(&mut self, c: &Config) -> Reloaded {
        self.e.reload(c, Arc::new(Dictionary::builtin()), self.now)
    }

    fn count(&self, c: Counter) -> u64 {
        self.e.stats().get(c)
    }
}

#[test]
fn a_removed_client_finishes_what_it_started_under_its_old_secret() {
    let ups = upstream("up", 1);
    let mut s = Sim::with_config(&config(AUTH, "", NAS, true, &ups));
    // A login from "other-nas" waits for the store when the reload removes
    // the client; a plain request of its waits for the upstream.
    let fwd = s.send(60001, &pap(1, OTHER, "pw", None));
    assert_eq!(fwd.len(), 1);
    s.e.handle_upstream(s.now, upstream_socket(&fwd[0]), fwd[0].to, &accept(&fwd[0]));
    assert!(s.out().is_empty(), "the store is asked first");
    s.reload(&config(AUTH, "", NAS, false, &ups));
    s.pump();
    let ch = s.out();
    assert_eq!(ch.len(), 1);
    assert_eq!(ch[0].to, nas(60001));
    assert!(
        signed_with(&ch[0], 1, OTHER),
        "the challenge is signed with the removed client's secret"
    );
    // Its answer comes from a client that no longer exists: dropped.
    let state = state_of(&ch[0]);
    let code = s.code();
    assert!(
        s.send(60001, &pap(2, OTHER, &code, Some(&state)))
            .is_empty()
    );
    assert_eq!(s.count(Counter::DropUnknownClient), 1);
    // The login ends as a timeout, on record under the old client's name.
    s.advance(Duration::from_secs(121));
    s.pump();
    let a = s.audit.last().expect("recorded");
    assert_eq!(
        (a.result, a.client.as_str()),
        (ResultCode::FailedOathTokenTimeout, "other-nas")
    );
}

#[test]
fn a_changed_secret_signs_what_came_after_and_nothing_before() {
    let ups = upstream("up", 1);
    let mut s = Sim::with_config(&config(AUTH, PLAIN, NAS, false, &ups));
    let fwd = s.send(1000, &pap(1, NAS, "pw", None));
    s.reload(&config(AUTH, PLAIN, NEW_SECRET, false, &ups));
    // The request in flight is answered with the secret it came with.
    s.e.handle_upstream(s.now, upstream_socket(&fwd[0]), fwd[0].to, &accept(&fwd[0]));
    let out = s.out();
    assert_eq!(out.len(), 1);
    assert!(signed_with(&out[0], 1, NAS) && !signed_with(&out[0], 1, NEW_SECRET));
    // New requests need the new secret, and are answered with it.
    assert!(s.send(1000, &pap(2, NAS, "pw", None)).is_empty());
    assert_eq!(s.count(Counter::DropBadMessageAuthenticator), 1);
    let fwd = s.send(1000, &pap(3, NEW_SECRET, "pw", None));
    assert_eq!(fwd.len(), 1);
    s.e.handle_upstream(s.now, upstream_socket(&fwd[0]), fwd[0].to, &accept(&fwd[0]));
    let out = s.out();
    assert!(signed_with(&out[0], 3, NEW_SECRET));
}

#[test]
fn reordered_upstreams_keep_requests_matched_and_failover_in_the_new_order() {
    let mut s = Sim::with_config(&config(
        AUTH,
        PLAIN,
        NAS,
        false,
        &(upstream("up0", 1) + &upstream("up1", 2)),
    ));
    let a = s.send(1000, &pap(1, NAS, "pw", None));
    assert_eq!(a[0].to, up_addr(1), "failover order: up0 first");
    let b = s.send(1000, &pap(2, NAS, "pw", None));
    assert_eq!(b[0].to, up_addr(1));
    // up1 first now, and a new up2 last.
    s.reload(&config(
        AUTH,
        PLAIN,
        NAS,
        false,
        &(upstream("up1", 2) + &upstream("up0", 1) + &upstream("up2", 3)),
    ));
    let names: Vec<String> = s.e.stats().upstreams.into_iter().map(|u| u.name).collect();
    assert_eq!(names, ["up1", "up0", "up2"]);
    // A's reply, but from up1's address: it matches nothing.
    s.e.handle_upstream(s.now, upstream_socket(&a[0]), up_addr(2), &accept(&a[0]));
    assert!(s.out().is_empty());
    assert_eq!(s.count(Counter::UpstreamDropUnmatched), 1);
    // From up0's, it is A's answer.
    s.e.handle_upstream(s.now, upstream_socket(&a[0]), a[0].to, &accept(&a[0]));
    let out = s.out();
    assert_eq!(out.len(), 1);
    assert!(signed_with(&out[0], 1, NAS));
    assert_eq!(s.e.stats().upstreams[1].replies, 1, "counted for up0");
    // B times out at up0 (three tries): it fails over to up1, then up2,
    // and never back to up0, which it tried before the reload.
    let mut sent_to = Vec::new();
    for _ in 0..9 {
        s.advance(Duration::from_secs(1));
        sent_to.extend(s.out().into_iter().map(|t| t.to));
    }
    sent_to.dedup();
    assert_eq!(sent_to, [up_addr(1), up_addr(2), up_addr(3)]);
    assert_eq!(s.count(Counter::DropNoUpstream), 1);
}

#[test]
fn a_removed_upstream_finishes_its_requests_with_its_own_secret() {
    let mut s = Sim::with_config(&config(
        AUTH,
        PLAIN,
        NAS,
        false,
        &(upstream("up0", 1) + &upstream("up1", 2)),
    ));
    let a = s.send(1000, &pap(1, NAS, "pw", None));
    let other = upstream("up1", 2).replace(&text(UP), "a-new-upstream-secret-0123");
    s.reload(&config(AUTH, PLAIN, NAS, false, &other));
    // A retransmission still goes to the removed upstream.
    s.advance(Duration::from_secs(1));
    let re = s.out();
    assert_eq!((re.len(), re[0].to), (1, up_addr(1)));
    s.e.handle_upstream(s.now, upstream_socket(&a[0]), a[0].to, &accept(&a[0]));
    let out = s.out();
    assert_eq!(out.len(), 1, "checked with the removed upstream's secret");
    assert!(signed_with(&out[0], 1, NAS));
}

#[test]
fn upstream_health_is_kept_while_it_is_the_same_server() {
    let two = upstream("up0", 1) + &upstream("up1", 2);
    let plain = "enabled = false\n[proxy]\ndead_after = 1";
    let mut s = Sim::with_config(&config(AUTH, plain, NAS, false, &two));
    s.send(1000, &pap(1, NAS, "pw", None));
    for _ in 0..3 {
        s.advance(Duration::from_secs(1));
    }
    assert!(!s.e.stats().upstreams[0].alive, "up0 timed out: dead");
    let three = two.clone() + &upstream("up2", 3).replace("timeout = \"1s\"", "timeout = \"2s\"");
    s.reload(&config(AUTH, plain, NAS, false, &three));
    assert!(!s.e.stats().upstreams[0].alive, "unchanged: still dead");
    let slower = three.replacen("timeout = \"1s\"", "timeout = \"2s\"", 1);
    s.reload(&config(AUTH, plain, NAS, false, &slower));
    assert!(
        !s.e.stats().upstreams[0].alive,
        "the same server: still dead"
    );
    let moved = slower.replacen("127.0.1.1:1812", "127.0.1.9:1812", 1);
    s.reload(&config(AUTH, plain, NAS, false, &moved));
    let st = s.e.stats();
    assert!(st.upstreams[0].alive, "another server: a fresh start");
    assert_eq!(st.upstreams[0].timeouts, 1, "counters follow the name");
}

#[test]
fn a_policy_changed_during_a_challenge_applies_from_the_next_login() {
    let ups = upstream("up", 1);
    let mut s = Sim::with_config(&config(AUTH, "", NAS, false, &ups));
    let ch = s.send(1000, &pap(1, NAS, "pw", None));
    s.e.handle_upstream(s.now, upstream_socket(&ch[0]), ch[0].to, &accept(&ch[0]));
    s.pump();
    let state = state_of(&s.out()[0]);
    s.reload(&config(
        AUTH,
        "retry_prompt = \"Try again\"\n[[policy]]\nname = \"no-alice\"\nusers = [\"alice\"]\nmfa = \"deny\"",
        NAS,
        false,
        &ups,
    ));
    // The login under way keeps its texts...
    let wrong = if s.code() == "000000" {
        "111111"
    } else {
        "000000"
    };
    s.send(1000, &pap(2, NAS, wrong, Some(&state)));
    s.pump();
    let retry = s.out();
    let msg = parse(&retry[0])
        .find(attr::REPLY_MESSAGE)
        .expect("prompt")
        .value
        .to_vec();
    assert!(msg.starts_with(b"Wrong code"), "{}", text(&msg));
    // ...and its plan: the right code lets alice in.
    let code = s.code();
    s.send(1000, &pap(3, NAS, &code, Some(&state_of(&retry[0]))));
    s.pump();
    let out = s.out();
    assert_eq!(parse(&out[0]).code(), Code::ACCESS_ACCEPT);
    // The next login meets the new policy.
    let fwd = s.send(1000, &pap(4, NAS, "pw", None));
    s.e.handle_upstream(s.now, upstream_socket(&fwd[0]), fwd[0].to, &accept(&fwd[0]));
    s.pump();
    s.advance(Duration::from_secs(2));
    let out = s.out();
    assert_eq!(parse(&out[0]).code(), Code::ACCESS_REJECT);
    let a = s.audit.last().expect("recorded");
    assert!(
        a.reason.as_deref().is_some_and(|r| r.contains("no-alice")),
        "{a:?}"
    );
}

#[test]
fn a_removed_listener_drains_then_closes_and_a_new_one_opens() {
    let ups = upstream("up", 1);
    let two = "auth_listen = [\"127.0.0.1:1812\", \"127.0.0.2:1812\"]";
    let mut s = Sim::with_config(&config(two, PLAIN, NAS, false, &ups));
    s.e.handle_nas(s.now, 1, nas(1000), &pap(1, NAS, "pw", None));
    let a = s.out();
    let moved = "auth_listen = [\"127.0.0.1:1812\", \"127.0.0.3:1812\"]";
    let new = config(moved, PLAIN, NAS, false, &ups);
    let plan = s.e.reload_plan(&new);
    assert_eq!(
        plan.listeners,
        [("127.0.0.3:1812".parse().expect("addr"), ListenerKind::Auth)]
    );
    assert!(plan.upstream_sockets.is_empty());
    let done = s.reload(&new);
    assert_eq!(done.listeners, [2]);
    assert_eq!(
        s.e.poll_closed_listener(),
        None,
        "a request is in flight on it"
    );
    // It takes no new request...
    s.e.handle_nas(s.now, 1, nas(1000), &pap(2, NAS, "pw", None));
    assert!(s.out().is_empty());
    assert_eq!(s.count(Counter::DropListenerClosed), 1);
    // ...but answers the one in flight, then closes.
    s.e.handle_upstream(s.now, upstream_socket(&a[0]), a[0].to, &accept(&a[0]));
    let out = s.out();
    assert_eq!(out[0].socket, SocketRef::Listener(1));
    s.advance(Duration::from_secs(1));
    assert_eq!(s.e.poll_closed_listener(), Some(1));
    assert_eq!(s.e.poll_closed_listener(), None);
    // The new one serves.
    s.e.handle_nas(s.now, 2, nas(1000), &pap(3, NAS, "pw", None));
    assert_eq!(s.out().len(), 1);
}

#[test]
fn an_ipv6_upstream_gets_sockets_of_its_own() {
    let mut s = Sim::with_config(&config(AUTH, PLAIN, NAS, false, &upstream("up", 1)));
    let before = s.e.upstream_sockets().len();
    let v6 = format!(
        "[[upstream]]\nname = \"v6\"\naddress = \"[::1]:1812\"\nsecret = \"{}\"\nhealth_check = \"none\"\n",
        text(UP)
    );
    let new = config(
        AUTH,
        "enabled = false\n[proxy]\nupstream_sockets = 2",
        NAS,
        false,
        &v6,
    );
    let plan = s.e.reload_plan(&new);
    assert_eq!(plan.upstream_sockets, [Family::V6, Family::V6]);
    let done = s.reload(&new);
    assert_eq!(
        done.upstream_sockets,
        [before as u16, before as u16 + 1],
        "appended"
    );
    let fwd = s.send(1000, &pap(1, NAS, "pw", None));
    assert_eq!(fwd[0].to, "[::1]:1812".parse::<SocketAddr>().expect("addr"));
    assert!(done.upstream_sockets.contains(&upstream_socket(&fwd[0])));
}

#[test]
fn a_challenge_answered_after_a_secret_change_is_answered_with_the_new_secret() {
    let ups = upstream("up", 1);
    let mut s = Sim::with_config(&config(AUTH, "", NAS, false, &ups));
    let fwd = s.send(1000, &pap(1, NAS, "pw", None));
    s.e.handle_upstream(s.now, upstream_socket(&fwd[0]), fwd[0].to, &accept(&fwd[0]));
    s.pump();
    let state = state_of(&s.out()[0]);
    s.reload(&config(AUTH, "", NEW_SECRET, false, &ups));
    // The NAS was given the new secret too: the same client, by name.
    let code = s.code();
    s.send(1000, &pap(2, NEW_SECRET, &code, Some(&state)));
    s.pump();
    let out = s.out();
    assert_eq!(parse(&out[0]).code(), Code::ACCESS_ACCEPT);
    assert!(signed_with(&out[0], 2, NEW_SECRET));
}

#[test]
fn a_push_under_way_is_checked_with_the_key_it_went_out_with() {
    const OLD_KEY: &str = "provider-key-0123456789";
    const NEW_KEY: &str = "provider-key-9876543210";
    let provider = |key: &str| {
        format!(
            "[[provider]]\nname = \"gw\"\ntype = \"webhook\"\nmethods = [\"push\"]\n\
             url = \"https://gw.example/verify\"\nkey = \"{key}\"\n"
        )
    };
    let ups = upstream("up", 1);
    let mut s = Sim::with_config(&config(
        AUTH,
        "",
        NAS,
        false,
        &(ups.clone() + &provider(OLD_KEY)),
    ));
    s.set_user("alice", crate::mfa::Method::Push, Some("+4930123456"));
    let fwd = s.send(1000, &pap(1, NAS, "pw", None));
    s.e.handle_upstream(s.now, upstream_socket(&fwd[0]), fwd[0].to, &accept(&fwd[0]));
    s.pump();
    let d = s.e.poll_delivery().expect("a push");
    assert_eq!(d.signature, Some(sign(OLD_KEY.as_bytes(), &d.body)));
    s.e.handle_delivery(s.now, &d.id, DeliveryOutcome::Delivered);
    s.reload(&config(AUTH, "", NAS, false, &(ups + &provider(NEW_KEY))));
    let body = br#"{"result":"approved"}"#;
    let with = |key: &str| sign(key.as_bytes(), body);
    assert_eq!(
        s.e.handle_callback(s.now, &d.id, body, Some(&with(NEW_KEY))),
        CallbackTaken::Now(CallbackStatus::BadSignature)
    );
    assert_eq!(
        s.e.handle_callback(s.now, &d.id, body, Some(&with(OLD_KEY))),
        CallbackTaken::Now(CallbackStatus::Accepted)
    );
    s.pump();
    let out = s.out();
    assert_eq!(parse(&out[0]).code(), Code::ACCESS_ACCEPT);
}
