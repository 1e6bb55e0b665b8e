//! The second factor on a virtual clock: the engine, a real (in-memory)
//! store played synchronously as the worker, a fake upstream.

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::mfa::Method;
use crate::mfa::ResultCode;
use crate::mfa::otp::{Algorithm, TotpParams, totp_code};
use crate::radius::crypto;
use crate::store::login::{self as jobs, StoreOp};
use crate::store::{AuditRecord, SeedKey, SqliteStore, Store, Token, User, UserChange};

pub(super) const NAS: &[u8] = b"nas-secret-0123456789";
pub(super) const UP: &[u8] = b"upstream-secret-0123456789";
const SEED: &[u8] = b"alice-seed-xxxxxxxxx";
pub(super) const T0: i64 = 1_900_000_000;

pub(super) fn config(extra_mfa: &str) -> Config {
    let t = format!(
        "[server]\nname = \"sim\"\nauth_listen = [\"127.0.0.1:1812\"]\npublic_url = \"https://mfa.example\"\n\
         [mfa]\nreject_delay = \"1s\"\n{extra_mfa}\n[lockout]\ndenials = 5\n\
         [[client]]\nname = \"nas\"\naddress = \"127.0.0.0/24\"\nsecret = \"{0}\"\n\
         [[client]]\nname = \"other-nas\"\naddress = \"127.0.0.6\"\nsecret = \"{0}\"\n\
         [[upstream]]\nname = \"up\"\naddress = \"127.0.1.1:1812\"\nsecret = \"{1}\"\nhealth_check = \"none\"\n",
        String::from_utf8_lossy(NAS),
        String::from_utf8_lossy(UP)
    );
    Config::from_toml(&t, Path::new("sim.toml")).expect("valid")
}

pub(super) struct Sim {
    pub(super) e: Engine,
    pub(super) store: SqliteStore,
    pub(super) now: Instant,
    /// Virtual wall clock for the store, in step with `now`.
    pub(super) unix: i64,
    pub(super) audit: Vec<AuditRecord>,
}

impl Sim {
    pub(super) fn new(extra_mfa: &str) -> Sim {
        Sim::with_config(&config(extra_mfa))
    }

    /// On a configuration of the test's own (the users and alice's token
    /// as with [`Sim::new`]).
    pub(super) fn with_config(config: &Config) -> Sim {
        let now = Instant::now();
        let store = SqliteStore::in_memory(SeedKey::from_bytes(&[9; 32])).expect("store");
        for name in ["alice", "bob"] {
            store
                .add_user(&User::new(name, Method::Totp))
                .expect("user");
        }
        let token = Token {
            active: true,
            ..Token::totp("alice", TotpParams::default())
        };
        store.add_token(&token, SEED).expect("token");
        let mut e = Engine::new(config, Arc::new(Dictionary::builtin()), [3; 32], now);
        // One clock: the store decides at the time the engine stamps.
        e.set_wall_clock(now, T0);
        Sim {
            e,
            store,
            now,
            unix: T0,
            audit: Vec::new(),
        }
    }

    pub(super) fn advance(&mut self, d: Duration) {
        self.now += d;
        self.unix += d.as_secs() as i64;
        self.e.handle_timeout(self.now);
    }

    /// Runs every queued store job, as the worker would.
    /// Like the worker, everything queued goes in one batch.
    pub(super) fn pump(&mut self) {
        loop {
            let jobs = self.e.poll_store_jobs();
            if jobs.is_empty() {
                return;
            }
            for job in &jobs {
                if let StoreOp::Audit(a) = &job.op {
                    self.audit.push(a.clone());
                }
            }
            // Each job is decided at the time the engine stamped on it.
            let at: Vec<i64> = jobs.iter().map(|j| j.at).collect();
            let (ids, ops): (Vec<u64>, Vec<_>) = jobs.into_iter().map(|j| (j.id, j.op)).unzip();
            let answers = jobs::stage_batch(&self.store, &ops, &at)
                .into_iter()
                .map(jobs::Outcome::finish);
            for (id, answer) in ids.into_iter().zip(answers) {
                self.e.handle_store(self.now, id, answer);
            }
        }
    }

    pub(super) fn out(&mut self) -> Vec<Transmit> {
        std::iter::from_fn(|| self.e.poll_transmit()).collect()
    }

    pub(super) fn code(&self) -> String {
        totp_code(&TotpParams::default(), SEED, self.unix as u64)
    }

    /// A NAS request from `port`, answered by the fake upstream with an
    /// Access-Accept when it reaches it. Returns what reached the NAS.
    pub(super) fn login(
        &mut self,
        port: u16,
        id: u8,
        user: &str,
        password: &str,
        state: Option<&[u8]>,
    ) -> Vec<Transmit> {
        let auth = [id ^ (port as u8); 16];
        let req = request(id, auth, user, password, state);
        self.e.handle_nas(self.now, 0, from(port), &req);
        let mut to_nas = Vec::new();
        for t in self.out() {
            if let SocketRef::Upstream(sock) = t.socket {
                let reply = upstream_accept(&t);
                self.e.handle_upstream(self.now, sock, t.to, &reply);
            } else {
                to_nas.push(t);
            }
        }
        self.pump();
        to_nas.extend(self.out());
        to_nas
    }
}

/// Ports below 60000 come from the NAS "nas"; 60000 and up from "other-nas".
pub(super) fn from(port: u16) -> SocketAddr {
    let host = if port >= 60000 { 6 } else { 5 };
    SocketAddr::from(([127, 0, 0, host], port))
}

pub(super) fn request(
    id: u8,
    auth: [u8; 16],
    user: &str,
    password: &str,
    state: Option<&[u8]>,
) -> Vec<u8> {
    let mut b = PacketBuilder::new(Code::ACCESS_REQUEST, id, &auth);
    b.push_message_authenticator().expect("fits");
    b.push(attr::USER_NAME, user.as_bytes()).expect("fits");
    b.push(
        attr::USER_PASSWORD,
        &crypto::hide_password(password.as_bytes(), NAS, &auth).expect("hide"),
    )
    .expect("fits");
    if let Some(s) = state {
        b.push(attr::STATE, s).expect("fits");
    }
    b.push(attr::PROXY_STATE, &[id]).expect("fits");
    b.finish_request(NAS)
}

/// The fake upstream accepts "pw" only, with a Tunnel-Password.
pub(super) fn upstream_accept(t: &Transmit) -> Vec<u8> {
    let p = Packet::parse(&t.payload).expect("valid");
    let pw = crypto::unhide_password(
        p.find(attr::USER_PASSWORD).expect("pw").value,
        UP,
        p.authenticator(),
    )
    .expect("unhide");
    let code = if &pw[..] == b"pw" {
        Code::ACCESS_ACCEPT
    } else {
        Code::ACCESS_REJECT
    };
    let mut b = PacketBuilder::new(code, p.identifier(), &[0; 16]);
    b.push_message_authenticator().expect("fits");
    let mut tp = vec![1];
    tp.extend(crypto::salt_encrypt(b"vlan-key", UP, p.authenticator(), [0x80, 7]).expect("enc"));
    b.push(attr::TUNNEL_PASSWORD, &tp).expect("fits");
    for ps in p.attributes().filter(|a| a.typ == attr::PROXY_STATE) {
        b.push_raw(ps.raw(&p)).expect("fits");
    }
    b.finish_response(UP, p.authenticator())
}

pub(super) fn parse(t: &Transmit) -> Packet<'_> {
    Packet::parse(&t.payload).expect("valid")
}

pub(super) fn state_of(t: &Transmit) -> Vec<u8> {
    let p = parse(t);
    assert_eq!(p.code(), Code::ACCESS_CHALLENGE);
    p.find(attr::STATE).expect("State").value.to_vec()
}

#[test]
fn challenge_then_code_gives_the_upstream_accept() {
    let mut s = Sim::new("");
    let r = s.login(1000, 1, "alice", "pw", None);
    assert_eq!(r.len(), 1);
    let ch = parse(&r[0]);
    assert_eq!(ch.code(), Code::ACCESS_CHALLENGE);
    assert_eq!(
        ch.attributes().next().map(|a| a.typ),
        Some(attr::MESSAGE_AUTHENTICATOR)
    );
    assert!(crypto::verify_packet_authenticator(
        &r[0].payload,
        &[1 ^ 0xe8; 16],
        NAS
    ));
    assert!(
        ch.find(attr::REPLY_MESSAGE)
            .is_some_and(|m| m.value.starts_with(b"Enter the code"))
    );
    let state = state_of(&r[0]);
    assert_eq!(state.len(), 20, "4-octet tag and 128 random bits");

    let code = s.code();
    let r = s.login(1000, 2, "alice", &code, Some(&state));
    assert_eq!(r.len(), 1);
    let acc = parse(&r[0]);
    assert_eq!(acc.code(), Code::ACCESS_ACCEPT);
    let auth2 = [2 ^ 0xe8; 16];
    assert!(crypto::verify_packet_authenticator(
        &r[0].payload,
        &auth2,
        NAS
    ));
    // The upstream's Tunnel-Password, re-encrypted for the second request.
    let tp = acc.find(attr::TUNNEL_PASSWORD).expect("tp").value;
    assert_eq!(
        &crypto::salt_decrypt(&tp[1..], NAS, &auth2).expect("dec")[..],
        b"vlan-key"
    );
    // The second request's Proxy-State, not the first's.
    let ps: Vec<&[u8]> = acc
        .attributes()
        .filter(|a| a.typ == attr::PROXY_STATE)
        .map(|a| a.value)
        .collect();
    assert_eq!(ps, vec![&[2u8][..]]);
    assert_eq!(s.audit.len(), 1);
    assert_eq!(
        (s.audit[0].result, s.audit[0].accepted),
        (ResultCode::SuccessOathCodeVerified, true)
    );

    // The State is single use.
    let r = s.login(1000, 3, "alice", &code, Some(&state));
    assert!(r.is_empty(), "the reject waits reject_delay");
    s.advance(Duration::from_millis(1300));
    let r = s.out();
    assert_eq!(parse(&r[0]).code(), Code::ACCESS_REJECT);
    assert_eq!(s.audit[1].result, ResultCode::FailedOathTokenTimeout);
}

#[test]
fn wrong_codes_get_new_challenges_then_a_delayed_reject() {
    let mut s = Sim::new("max_attempts = 2");
    let mut state = state_of(&s.login(1000, 1, "alice", "pw", None)[0]);
    let wrong = if s.code() == "000000" {
        "111111"
    } else {
        "000000"
    };
    let r = s.login(1000, 2, "alice", wrong, Some(&state));
    let next = state_of(&r[0]);
    assert_ne!(next, state, "a fresh State for the retry");
    assert!(
        parse(&r[0])
            .find(attr::REPLY_MESSAGE)
            .is_some_and(|m| m.value.starts_with(b"Wrong code"))
    );
    state = next;
    let r = s.login(1000, 3, "alice", wrong, Some(&state));
    assert!(r.is_empty());
    s.advance(Duration::from_millis(999));
    assert!(s.out().is_empty(), "not before reject_delay");
    s.advance(Duration::from_millis(300));
    let r = s.out();
    assert_eq!(r.len(), 1);
    assert_eq!(parse(&r[0]).code(), Code::ACCESS_REJECT);
    assert!(crypto::verify_packet_authenticator(
        &r[0].payload,
        &[3 ^ 0xe8; 16],
        NAS
    ));
    assert_eq!(
        s.audit.last().map(|a| a.result),
        Some(ResultCode::FailedOathCodeIncorrect)
    );
}

#[test]
fn a_retransmitted_answer_is_verified_once() {
    let mut s = Sim::new("");
    let state = state_of(&s.login(1000, 1, "alice", "pw", None)[0]);
    let code = s.code();
    let auth = [2 ^ 0xe8; 16];
    let req = request(2, auth, "alice", &code, Some(&state));
    s.e.handle_nas(s.now, 0, from(1000), &req);
    // A retransmission before the store answered: dropped.
    s.e.handle_nas(s.now, 0, from(1000), &req);
    assert_eq!(s.e.stats().get(Counter::DropDuplicateInFlight), 1);
    s.pump();
    let first = s.out();
    assert_eq!(parse(&first[0]).code(), Code::ACCESS_ACCEPT);
    // After the answer: the same bytes again, no second verification.
    s.e.handle_nas(s.now, 0, from(1000), &req);
    let again = s.out();
    assert_eq!(again[0].payload, first[0].payload);
    assert_eq!(s.audit.len(), 1);
}

#[test]
fn one_code_two_logins_one_wins() {
    let mut s = Sim::new("");
    let a = state_of(&s.login(1000, 1, "alice", "pw", None)[0]);
    let b = state_of(&s.login(2000, 1, "alice", "pw", None)[0]);
    let code = s.code();
    // Both answers arrive before the store runs either job.
    s.e.handle_nas(
        s.now,
        0,
        from(1000),
        &request(2, [2 ^ 0xe8; 16], "alice", &code, Some(&a)),
    );
    s.e.handle_nas(
        s.now,
        0,
        from(2000),
        &request(2, [2 ^ 0xd0; 16], "alice", &code, Some(&b)),
    );
    s.pump();
    s.advance(Duration::from_secs(2));
    let codes: Vec<Code> = s.out().iter().map(|t| parse(t).code()).collect();
    assert_eq!(
        codes.iter().filter(|c| **c == Code::ACCESS_ACCEPT).count(),
        1,
        "{codes:?}"
    );
    // The loser is asked again, with attempts left.
    assert_eq!(
        codes
            .iter()
            .filter(|c| **c == Code::ACCESS_CHALLENGE)
            .count(),
        1,
        "{codes:?}"
    );
    assert_eq!(s.audit.len(), 1);
}

#[test]
fn inline_code_skips_the_challenge() {
    let mut s = Sim::new("");
    let code = s.code();
    let r = s.login(1000, 1, "alice", &format!("pw,{code}"), None);
    assert_eq!(r.len(), 1);
    assert_eq!(
        parse(&r[0]).code(),
        Code::ACCESS_ACCEPT,
        "the upstream saw only \"pw\""
    );
    // A wrong inline code is a reject, not a challenge.
    let r = s.login(1000, 2, "alice", "pw,000001", None);
    assert!(r.is_empty());
    s.advance(Duration::from_secs(2));
    assert_eq!(parse(&s.out()[0]).code(), Code::ACCESS_REJECT);
}

#[test]
fn hardware_hotp_token_codes_work_once_each() {
    let mut s = Sim::new("");
    let seed = b"12345678901234567890";
    let (n, errors) = crate::cli::token_import(
        &s.store,
        "upn,serial number,secret key,time interval,manufacturer,model\n\
         bob,HW-1,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,0,Feitian,c100\n",
        crate::cli::SecretFormat::Base32,
        0,
        &mut || {},
    )
    .expect("import");
    assert_eq!(n, 1, "{errors}");
    let hotp =
        |c| crate::mfa::otp::format_code(crate::mfa::otp::hotp(Algorithm::Sha1, seed, c, 6), 6);
    crate::cli::token_activate(&s.store, "HW-1", &hotp(0), 0, 1).expect("activate");
    // The third press (counter 2), inside the look-ahead.
    let r = s.login(1000, 1, "bob", &format!("pw,{}", hotp(2)), None);
    assert_eq!(parse(&r[0]).code(), Code::ACCESS_ACCEPT);
    // The same press again is refused; the next one is accepted.
    assert!(
        s.login(1000, 2, "bob", &format!("pw,{}", hotp(2)), None)
            .is_empty()
    );
    s.advance(Duration::from_secs(2));
    assert_eq!(parse(&s.out()[0]).code(), Code::ACCESS_REJECT);
    assert_eq!(
        s.audit.last().map(|a| a.result),
        Some(ResultCode::FailedOathCodeDuplicate)
    );
    let r = s.login(1000, 3, "bob", &format!("pw,{}", hotp(3)), None);
    assert_eq!(parse(&r[0]).code(), Code::ACCESS_ACCEPT);
}

#[test]
fn blocked_bypassed_and_unenrolled_users() {
    let mut s = Sim::new("");
    s.store
        .block("alice", "stolen", T0, T0 + 1000)
        .expect("block");
    assert!(s.login(1000, 1, "alice", "pw", None).is_empty());
    s.advance(Duration::from_secs(2));
    assert_eq!(parse(&s.out()[0]).code(), Code::ACCESS_REJECT);
    assert_eq!(
        s.audit.last().map(|a| a.result),
        Some(ResultCode::SuccessUserBlocked)
    );

    s.store
        .add_bypass("bob", "travel", T0, T0 + 300)
        .expect("bypass");
    let r = s.login(1000, 2, "bob", "pw", None);
    assert_eq!(parse(&r[0]).code(), Code::ACCESS_ACCEPT);
    assert_eq!(
        s.audit.last().map(|a| a.result),
        Some(ResultCode::SuccessBypassedAuth)
    );
    // Used up: bob is now just unenrolled, rejected by default.
    assert!(s.login(1000, 3, "bob", "pw", None).is_empty());
    s.advance(Duration::from_secs(2));
    assert_eq!(parse(&s.out()[0]).code(), Code::ACCESS_REJECT);
    assert_eq!(
        s.audit.last().map(|a| a.reason.clone()),
        Some(Some("no registered method".into()))
    );

    let mut s = Sim::new("unenrolled = \"accept\"");
    let r = s.login(1000, 1, "bob", "pw", None);
    assert_eq!(parse(&r[0]).code(), Code::ACCESS_ACCEPT);
}

#[test]
fn a_user_their_directory_no_longer_lists_is_refused_with_the_reason() {
    let mut s = Sim::new("unenrolled = \"accept\"");
    s.store
        .apply_directory(&[
            UserChange::Add(User {
                source: Some("corp".into()),
                ..User::new("carol", Method::Totp)
            }),
            UserChange::Disable {
                name: "carol".into(),
                at: T0,
            },
        ])
        .expect("sync");
    assert!(s.login(1000, 1, "carol", "pw", None).is_empty());
    s.advance(Duration::from_secs(2));
    assert_eq!(parse(&s.out()[0]).code(), Code::ACCESS_REJECT);
    let a = s.audit.last().expect("recorded");
    assert_eq!(
        (a.result, a.reason.as_deref()),
        (
            ResultCode::FailedUserDisabled,
            Some("user disabled: no longer in directory corp")
        )
    );
}

#[test]
fn upstream_reject_is_relayed_at_once() {
    let mut s = Sim::new("");
    let r = s.login(1000, 1, "alice", "wrong-password", None);
    assert_eq!(r.len(), 1, "relayed without delay");
    assert_eq!(parse(&r[0]).code(), Code::ACCESS_REJECT);
    let a = s.audit.last().expect("every login is recorded");
    assert_eq!(
        (a.result, a.accepted, a.mode.as_str()),
        (ResultCode::FailedPrimaryAuth, false, "password")
    );
    assert_eq!(a.reason.as_deref(), Some("rejected by upstream up"));
    assert_eq!(s.audit.len(), 1);
}

#[test]
fn challenge_timeout_and_state_bound_to_client_and_user() {
    let mut s = Sim::new("challenge_timeout = \"30s\"");
    let state = state_of(&s.login(1000, 1, "alice", "pw", None)[0]);
    // Another NAS presents it: refused.
    assert!(
        s.login(60001, 2, "alice", &s.code(), Some(&state))
            .is_empty()
    );
    s.advance(Duration::from_secs(2));
    assert_eq!(parse(&s.out()[0]).code(), Code::ACCESS_REJECT);
    // Another user with a fresh State: refused too.
    let state = state_of(&s.login(1000, 3, "alice", "pw", None)[0]);
    assert!(s.login(1000, 4, "bob", &s.code(), Some(&state)).is_empty());
    s.advance(Duration::from_secs(2));
    s.out();
    // A challenge nobody answers expires into an audit record.
    s.login(1000, 5, "alice", "pw", None);
    s.advance(Duration::from_secs(31));
    s.pump();
    assert_eq!(s.e.logins_pending(), 0);
    assert_eq!(s.e.stats().get(Counter::MfaTimeouts), 1);
    assert_eq!(
        s.audit.last().map(|a| a.result),
        Some(ResultCode::FailedOathTokenTimeout)
    );
}

#[test]
fn lockout_after_denials() {
    let mut s = Sim::new("max_attempts = 1");
    let wrong = if s.code() == "000000" {
        "111111"
    } else {
        "000000"
    };
    for id in 0..5u8 {
        let st = state_of(&s.login(1000, id * 2, "alice", "pw", None)[0]);
        s.login(1000, id * 2 + 1, "alice", wrong, Some(&st));
        s.advance(Duration::from_secs(2));
        s.out();
    }
    assert_eq!(
        s.audit.last().map(|a| a.result),
        Some(ResultCode::FailedAuthenticationThrottled)
    );
    // Locked: no challenge any more.
    assert!(s.login(1000, 100, "alice", "pw", None).is_empty());
    s.advance(Duration::from_secs(2));
    assert_eq!(parse(&s.out()[0]).code(), Code::ACCESS_REJECT);
    assert_eq!(
        s.audit.last().map(|a| a.reason.clone()),
        Some(Some("too many wrong codes".into()))
    );
}

#[test]
fn local_primary_mode_checks_the_password_then_the_code() {
    let t = format!(
        "[server]\nname = \"local\"\nauth_listen = [\"127.0.0.1:1812\"]\n[primary]\nmode = \"local\"\n[mfa]\nreject_delay = \"1s\"\n\
         [[client]]\nname = \"nas\"\naddress = \"127.0.0.0/24\"\nsecret = \"{}\"\n",
        String::from_utf8_lossy(NAS)
    );
    let config = Config::from_toml(&t, Path::new("local.toml")).expect("valid without upstreams");
    let mut s = Sim::new("");
    s.e = Engine::new(&config, Arc::new(Dictionary::builtin()), [4; 32], s.now);
    s.e.set_wall_clock(s.now, s.unix);
    let mut u = s.store.user("alice").expect("q").expect("found");
    u.password_hash = Some(crate::cli::hash_password(b"pw").expect("hash"));
    s.store.update_user(&u).expect("update");

    let r = s.login(1000, 1, "alice", "pw", None);
    let state = state_of(&r[0]);
    let r = s.login(1000, 2, "alice", &s.code(), Some(&state));
    let acc = parse(&r[0]);
    assert_eq!(acc.code(), Code::ACCESS_ACCEPT);
    assert!(crypto::verify_packet_authenticator(
        &r[0].payload,
        &[2 ^ 0xe8; 16],
        NAS
    ));
    assert_eq!(
        acc.find(attr::PROXY_STATE).map(|a| a.value),
        Some(&[2u8][..])
    );

    // A wrong password: a delayed reject, recorded as the first factor's.
    let records = s.audit.len();
    assert!(s.login(1000, 3, "alice", "nope", None).is_empty());
    s.advance(Duration::from_secs(2));
    assert_eq!(parse(&s.out()[0]).code(), Code::ACCESS_REJECT);
    assert_eq!(s.audit.len(), records + 1);
    assert_eq!(
        s.last_result(),
        Some((ResultCode::FailedPrimaryAuth, false))
    );
    // Unknown users look the same.
    assert!(s.login(1000, 4, "mallory", "pw", None).is_empty());
    s.advance(Duration::from_secs(2));
    assert_eq!(parse(&s.out()[0]).code(), Code::ACCESS_REJECT);
    s.pump();
    assert_eq!(
        s.last_result(),
        Some((ResultCode::FailedPrimaryAuth, false))
    );
}
