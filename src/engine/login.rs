//! The second factor inside the engine.
//!
//! After the upstream accepts, the login waits here while the store answers
//! (through [`StoreJob`]s the shell runs on a worker thread): bypassed,
//! blocked, locked out, unenrolled, or challenged. A challenge is an
//! Access-Challenge with a fresh State (a 4-octet tag of this engine and 128
//! random bits), bound to the client, the user and a deadline, single use.
//! The answer's code is checked by the store, atomically with its replay
//! state. Every login ends in exactly one audit record.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, RngCore};
use tracing::info;
use zeroize::Zeroizing;

use super::dedup::DedupKey;
use super::rewrite::{Rewriter, Side};
use super::{Counter, Engine, NasRequest, SocketRef, Transmit};
use crate::config;
use crate::mfa::ResultCode;
use crate::mfa::otp::Verdict;
use crate::mfa::policy::{Precheck, StoreAnswer, StoreOp};
use crate::radius::{AUTH_LEN, Attr, Authenticator, Code, Packet, PacketBuilder, attr, crypto};
use crate::store::{AuditRecord, LockoutPolicy};

const TAG_LEN: usize = 4;
const STATE_LEN: usize = TAG_LEN + 16;
/// Logins waiting for a second factor, at most.
const MAX_LOGINS: usize = 100_000;

/// Work for the store, run off the packet path. `id` comes back with the
/// answer in [`Engine::handle_store`].
#[derive(Debug)]
pub struct StoreJob {
    pub id: u64,
    pub op: StoreOp,
}

/// The NAS request a login is answering now.
#[derive(Debug)]
struct Current {
    listener: u16,
    from: SocketAddr,
    request: Vec<u8>,
    dedup: DedupKey,
}

#[derive(Debug)]
struct UpstreamAccept {
    bytes: Vec<u8>,
    upstream: usize,
    auth: Authenticator,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Local first factor: the password is being checked.
    Password,
    Precheck,
    Verify,
    Challenged([u8; STATE_LEN]),
}

#[derive(Debug)]
struct Login {
    user: String,
    client: usize,
    current: Current,
    /// The upstream's Access-Accept and what it was keyed with; `None` when
    /// the first factor was checked locally.
    accept: Option<UpstreamAccept>,
    eap: bool,
    inline_code: Option<crate::config::Secret>,
    inline: bool,
    attempts: u32,
    deadline: Option<Instant>,
    client_ip: Option<String>,
    phase: Phase,
}

impl Login {
    /// A login answering `current`.
    fn new(
        client: usize,
        current: Current,
        accept: Option<UpstreamAccept>,
        inline_code: Option<crate::config::Secret>,
        phase: Phase,
    ) -> Login {
        let req =
            Packet::parse(&current.request).expect("stored requests were validated on arrival");
        Login {
            user: user_name(&req).unwrap_or_default(),
            client,
            client_ip: client_ip(&req),
            eap: req.has(attr::EAP_MESSAGE),
            accept,
            inline: inline_code.is_some(),
            inline_code,
            attempts: 0,
            deadline: None,
            phase,
            current,
        }
    }

    /// A login for a proxied NAS request; also returns the password the NAS
    /// sent before an inline code, if any.
    fn from_nas(
        mut nas: NasRequest,
        accept: Option<UpstreamAccept>,
        phase: Phase,
    ) -> (Login, Option<crate::config::Secret>) {
        let current = Current {
            listener: nas.listener,
            from: nas.from,
            request: std::mem::take(&mut nas.request),
            dedup: nas.dedup,
        };
        (
            Login::new(nas.client, current, accept, nas.inline_code.take(), phase),
            nas.password.take(),
        )
    }
}

/// The engine's second-factor state.
#[derive(Debug)]
pub(super) struct Logins {
    pub(super) cfg: config::Mfa,
    lockout: LockoutPolicy,
    server: String,
    tag: [u8; TAG_LEN],
    logins: HashMap<u64, Login>,
    states: HashMap<[u8; STATE_LEN], u64>,
    jobs: HashMap<u64, u64>,
    next_id: u64,
    out: VecDeque<StoreJob>,
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    delayed: BinaryHeap<Reverse<(Instant, u64)>>,
    delayed_tx: HashMap<u64, (Transmit, DedupKey)>,
}

impl Logins {
    pub(super) fn new(config: &config::Config, tag: [u8; TAG_LEN]) -> Logins {
        Logins {
            cfg: config.mfa.clone(),
            lockout: config.lockout,
            server: config.server.name.clone(),
            tag,
            logins: HashMap::new(),
            states: HashMap::new(),
            jobs: HashMap::new(),
            next_id: 0,
            out: VecDeque::new(),
            deadlines: BinaryHeap::new(),
            delayed: BinaryHeap::new(),
            delayed_tx: HashMap::new(),
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Whether `state` is one of this engine's challenge States.
    pub(super) fn is_ours(&self, state: &[u8]) -> bool {
        state.len() == STATE_LEN && state[..TAG_LEN] == self.tag
    }

    pub(super) fn next_timeout(&self) -> Option<Instant> {
        let a = self.deadlines.peek().map(|Reverse((t, _))| *t);
        let b = self.delayed.peek().map(|Reverse((t, _))| *t);
        a.into_iter().chain(b).min()
    }

    pub(super) fn len(&self) -> usize {
        self.logins.len()
    }
}

/// Splits `password<sep>code` when what follows the last separator is a
/// 6- or 8-digit code.
pub(super) fn split_inline(
    password: &[u8],
    sep: &str,
) -> Option<(crate::config::Secret, crate::config::Secret)> {
    let text = std::str::from_utf8(password).ok()?;
    let at = text.rfind(sep)?;
    let code = &text[at + sep.len()..];
    if !(code.len() == 6 || code.len() == 8) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((
        crate::config::Secret::new(text.as_bytes()[..at].to_vec()),
        crate::config::Secret::new(code.as_bytes().to_vec()),
    ))
}

fn user_name(p: &Packet<'_>) -> Option<String> {
    p.find(attr::USER_NAME)
        .and_then(|a| std::str::from_utf8(a.value).ok())
        .map(str::to_owned)
}

fn client_ip(p: &Packet<'_>) -> Option<String> {
    p.find(attr::CALLING_STATION_ID)
        .and_then(|a| std::str::from_utf8(a.value).ok())
        .map(str::to_owned)
}

fn result_for(v: Verdict) -> ResultCode {
    match v {
        Verdict::Valid { .. } => ResultCode::SuccessOathCodeVerified,
        Verdict::Incorrect => ResultCode::FailedOathCodeIncorrect,
        Verdict::Duplicate => ResultCode::FailedOathCodeDuplicate,
        Verdict::Old => ResultCode::FailedOathCodeOld,
    }
}

impl Engine {
    pub fn poll_store_job(&mut self) -> Option<StoreJob> {
        self.logins.out.pop_front()
    }

    /// Logins waiting for their second factor.
    pub fn logins_pending(&self) -> usize {
        self.logins.len()
    }

    fn store_job(&mut self, login: Option<u64>, op: StoreOp) {
        let id = self.logins.id();
        if let Some(l) = login {
            self.logins.jobs.insert(id, l);
        }
        self.logins.out.push_back(StoreJob { id, op });
    }

    /// The upstream accepted `nas`: start the second factor instead of
    /// relaying the accept.
    pub(super) fn start_login(
        &mut self,
        now: Instant,
        upstream: usize,
        reply: &Packet<'_>,
        upstream_auth: &Authenticator,
        nas: NasRequest,
    ) {
        let accept = UpstreamAccept {
            bytes: reply.as_bytes().to_vec(),
            upstream,
            auth: *upstream_auth,
        };
        let (login, _) = Login::from_nas(nas, Some(accept), Phase::Precheck);
        let op = StoreOp::Precheck {
            user: login.user.clone(),
        };
        self.begin(now, login, op);
    }

    /// `[primary] mode = "local"`: the password is checked by the store,
    /// then the login continues as after an upstream Access-Accept.
    pub(super) fn local_first_factor(&mut self, now: Instant, nas: NasRequest) {
        let secret = self.clients.get(nas.client).secret.clone();
        let (login, password) = Login::from_nas(nas, None, Phase::Password);
        let req = Packet::parse(&login.current.request)
            .expect("stored requests were validated on arrival");
        let password = password.or_else(|| {
            req.find(attr::USER_PASSWORD)
                .and_then(|a| {
                    crypto::unhide_password(a.value, secret.expose(), req.authenticator()).ok()
                })
                .map(|p| crate::config::Secret::new(p.to_vec()))
        });
        let Some(password) = password else {
            let id = self.logins.id();
            return self.finish(
                now,
                id,
                login,
                false,
                ResultCode::ConfigIssue,
                Some("local mode checks PAP passwords only"),
            );
        };
        let op = StoreOp::Password {
            user: login.user.clone(),
            password,
        };
        self.begin(now, login, op);
    }

    /// Registers a new login and sends its first store job, unless it
    /// cannot be served.
    fn begin(&mut self, now: Instant, login: Login, op: StoreOp) {
        let id = self.logins.id();
        if login.user.is_empty() {
            return self.finish(
                now,
                id,
                login,
                false,
                ResultCode::FailedServerError,
                Some("the request has no User-Name"),
            );
        }
        if self.logins.len() >= MAX_LOGINS {
            return self.finish(
                now,
                id,
                login,
                false,
                ResultCode::FailedAuthenticationThrottled,
                Some("too many logins in progress"),
            );
        }
        self.logins.logins.insert(id, login);
        self.store_job(Some(id), op);
    }

    /// The store answered job `id`.
    pub fn handle_store(&mut self, now: Instant, id: u64, answer: StoreAnswer) {
        let Some(lid) = self.logins.jobs.remove(&id) else {
            return;
        };
        let Some(mut login) = self.logins.logins.remove(&lid) else {
            return;
        };
        let max = self.logins.cfg.max_attempts;
        match (login.phase, answer) {
            (Phase::Password, StoreAnswer::Password(true)) => {
                login.phase = Phase::Precheck;
                let user = login.user.clone();
                self.logins.logins.insert(lid, login);
                self.store_job(Some(lid), StoreOp::Precheck { user });
            }
            (Phase::Password, StoreAnswer::Password(false)) => self.reject_first_factor(now, login),
            (Phase::Precheck, StoreAnswer::Precheck(pc)) => match pc {
                Precheck::Bypass => self.finish(
                    now,
                    lid,
                    login,
                    true,
                    ResultCode::SuccessBypassedAuth,
                    Some("one-time bypass"),
                ),
                Precheck::Blocked => self.finish(
                    now,
                    lid,
                    login,
                    false,
                    ResultCode::SuccessUserBlocked,
                    Some("user blocked"),
                ),
                Precheck::Locked => self.finish(
                    now,
                    lid,
                    login,
                    false,
                    ResultCode::FailedAuthenticationThrottled,
                    Some("too many wrong codes"),
                ),
                Precheck::Unenrolled => match self.logins.cfg.unenrolled {
                    config::Unenrolled::Accept => self.finish(
                        now,
                        lid,
                        login,
                        true,
                        ResultCode::SuccessBypassedAuth,
                        Some("no registered method; unenrolled users are accepted"),
                    ),
                    config::Unenrolled::Reject => self.finish(
                        now,
                        lid,
                        login,
                        false,
                        ResultCode::ConfigIssue,
                        Some("no registered method"),
                    ),
                },
                Precheck::Challenge => {
                    if let Some(code) = login.inline_code.take() {
                        let code =
                            Zeroizing::new(String::from_utf8_lossy(code.expose()).into_owned());
                        self.verify(lid, login, code);
                    } else if login.eap {
                        self.finish(
                            now,
                            lid,
                            login,
                            false,
                            ResultCode::ConfigIssue,
                            Some("a one-time code cannot be asked inside EAP"),
                        );
                    } else {
                        let prompt = self.logins.cfg.prompt.clone();
                        self.challenge(now, lid, login, &prompt);
                    }
                }
            },
            (Phase::Verify, StoreAnswer::Verify { verdict, locked }) => {
                if let Verdict::Valid { .. } = verdict {
                    return self.finish(
                        now,
                        lid,
                        login,
                        true,
                        ResultCode::SuccessOathCodeVerified,
                        None,
                    );
                }
                login.attempts += 1;
                let result = result_for(verdict);
                if locked {
                    self.finish(
                        now,
                        lid,
                        login,
                        false,
                        ResultCode::FailedAuthenticationThrottled,
                        Some("too many wrong codes"),
                    );
                } else if login.attempts < max && !login.inline {
                    let prompt = self.logins.cfg.retry_prompt.clone();
                    self.challenge(now, lid, login, &prompt);
                } else {
                    self.finish(now, lid, login, false, result, None);
                }
            }
            _ => {
                self.stats.inc(Counter::MfaStoreFailures);
                self.finish(
                    now,
                    lid,
                    login,
                    false,
                    ResultCode::FailedServerError,
                    Some("the store is unavailable"),
                );
            }
        }
    }

    fn verify(&mut self, lid: u64, mut login: Login, code: Zeroizing<String>) {
        login.phase = Phase::Verify;
        let op = StoreOp::Verify {
            user: login.user.clone(),
            code,
            window: self.logins.cfg.totp_window,
            lockout: self.logins.lockout,
        };
        self.logins.logins.insert(lid, login);
        self.store_job(Some(lid), op);
    }

    /// Answers the current request with an Access-Challenge.
    fn challenge(&mut self, now: Instant, lid: u64, mut login: Login, prompt: &str) {
        let mut state = [0u8; STATE_LEN];
        state[..TAG_LEN].copy_from_slice(&self.logins.tag);
        self.rng.fill_bytes(&mut state[TAG_LEN..]);
        let req = Packet::parse(&login.current.request)
            .expect("stored requests were validated on arrival");
        let mut b = PacketBuilder::new(Code::ACCESS_CHALLENGE, req.identifier(), &[0; AUTH_LEN]);
        let built = (|| -> Result<Vec<u8>, crate::radius::EncodeError> {
            b.push_message_authenticator()?;
            b.push(attr::STATE, &state)?;
            b.push(attr::REPLY_MESSAGE, prompt.as_bytes())?;
            for a in req.attributes().filter(|a| a.typ == attr::PROXY_STATE) {
                b.push_raw(a.raw(&req))?;
            }
            Ok(b.finish_response(
                self.clients.get(login.client).secret.expose(),
                req.authenticator(),
            ))
        })();
        let Ok(reply) = built else {
            return self.finish(
                now,
                lid,
                login,
                false,
                ResultCode::FailedServerError,
                Some("challenge too large"),
            );
        };
        let reply: Arc<[u8]> = reply.into();
        self.dedup.answer(login.current.dedup, reply.clone(), now);
        self.out.push_back(Transmit {
            socket: SocketRef::Listener(login.current.listener),
            to: login.current.from,
            payload: reply,
        });
        self.stats.inc(Counter::MfaChallenges);
        let deadline = *login
            .deadline
            .get_or_insert(now + self.logins.cfg.challenge_timeout);
        self.logins.deadlines.push(Reverse((deadline, lid)));
        login.phase = Phase::Challenged(state);
        self.logins.states.insert(state, lid);
        self.logins.logins.insert(lid, login);
    }

    /// An Access-Request carrying one of our States: the answer to a
    /// challenge.
    pub(super) fn challenge_answer(
        &mut self,
        now: Instant,
        listener: u16,
        from: SocketAddr,
        client: usize,
        p: &Packet<'_>,
        state: &[u8],
    ) {
        let Some(key) = self.admit(now, listener, from, p) else {
            return;
        };
        let current = Current {
            listener,
            from,
            request: p.as_bytes().to_vec(),
            dedup: key,
        };
        let state: [u8; STATE_LEN] = state.try_into().expect("is_ours checked the length");
        let found = self
            .logins
            .states
            .remove(&state)
            .and_then(|lid| self.logins.logins.remove(&lid).map(|l| (lid, l)));
        let Some((lid, mut login)) = found else {
            // Ours, but used already or expired.
            let lid = self.logins.id();
            let login = Login::new(client, current, None, None, Phase::Verify);
            return self.finish(
                now,
                lid,
                login,
                false,
                ResultCode::FailedOathTokenTimeout,
                Some("unknown or expired State"),
            );
        };
        login.current = current;
        if login.client != client || user_name(p).as_deref() != Some(login.user.as_str()) {
            return self.finish(
                now,
                lid,
                login,
                false,
                ResultCode::SuccessInvalidInput,
                Some("State presented by another client or user"),
            );
        }
        if login.deadline.is_some_and(|d| now >= d) {
            return self.finish(
                now,
                lid,
                login,
                false,
                ResultCode::FailedOathTokenTimeout,
                None,
            );
        }
        let secret = self.clients.get(client).secret.expose();
        let code = p
            .find(attr::USER_PASSWORD)
            .and_then(|a| crypto::unhide_password(a.value, secret, p.authenticator()).ok())
            .and_then(|pw| {
                std::str::from_utf8(&pw)
                    .ok()
                    .map(|s| Zeroizing::new(s.trim().to_owned()))
            })
            .unwrap_or_default();
        self.verify(lid, login, code);
    }

    /// Ends a login: the final answer to the NAS (rejects after
    /// `reject_delay`), the audit record and its log line.
    fn finish(
        &mut self,
        now: Instant,
        lid: u64,
        login: Login,
        accept: bool,
        result: ResultCode,
        reason: Option<&str>,
    ) {
        if let Phase::Challenged(s) = login.phase {
            self.logins.states.remove(&s);
        }
        self.logins.logins.remove(&lid);
        let req = Packet::parse(&login.current.request)
            .expect("stored requests were validated on arrival");
        let client = self.clients.get(login.client);
        let built = if let (true, None) = (accept, &login.accept) {
            // A local first factor: nothing to relay but the Proxy-States.
            Some(self.local_reply(login.client, &req, Code::ACCESS_ACCEPT))
        } else if let (true, Some(ua)) = (accept, &login.accept) {
            let upstream =
                Packet::parse(&ua.bytes).expect("stored replies were validated on arrival");
            let mut b = PacketBuilder::with_capacity(
                Code::ACCESS_ACCEPT,
                req.identifier(),
                &[0; AUTH_LEN],
                upstream.len() + 18,
            );
            let mut rw = Rewriter {
                crypt: &self.crypt,
                from: Side {
                    secret: self.upstreams[ua.upstream].cfg.secret.expose(),
                    auth: &ua.auth,
                },
                to: Side {
                    secret: client.secret.expose(),
                    auth: req.authenticator(),
                },
                rng: &mut self.rng,
            };
            (|| -> Result<Vec<u8>, super::rewrite::RewriteError> {
                b.push_message_authenticator()?;
                rw.copy(&upstream, &mut b, |a: &Attr<'_>| a.typ != attr::PROXY_STATE)?;
                for a in req.attributes().filter(|a| a.typ == attr::PROXY_STATE) {
                    b.push_raw(a.raw(&req))?;
                }
                Ok(b.finish_response(client.secret.expose(), req.authenticator()))
            })()
            .ok()
        } else {
            Some(self.local_reply(login.client, &req, Code::ACCESS_REJECT))
        };
        let accepted = accept && built.is_some();
        let record = AuditRecord {
            at: 0,
            user: login.user.clone(),
            result: if accept && !accepted {
                ResultCode::FailedServerError
            } else {
                result
            },
            accepted,
            mode: "totp".into(),
            server: self.logins.server.clone(),
            client: client.name.clone(),
            client_ip: login.client_ip.clone(),
            reason: reason.map(str::to_owned),
        };
        info!(
            target: "audit",
            user = %record.user,
            result = %record.result,
            decision = if accepted { "accept" } else { "reject" },
            client = %record.client,
            client_ip = record.client_ip.as_deref().unwrap_or(""),
            server = %record.server,
            reason = record.reason.as_deref().unwrap_or(""),
            "login"
        );
        self.store_job(None, StoreOp::Audit(record));
        if let Some(reply) = built {
            self.send_final(now, &login.current, reply, accepted);
        }
    }

    /// A wrong local password: a delayed reject, like the upstream's would
    /// be, and no second-factor record (the first factor failed).
    fn reject_first_factor(&mut self, now: Instant, login: Login) {
        info!(target: "audit", user = %login.user, decision = "reject", reason = "wrong password", "login");
        let req = Packet::parse(&login.current.request)
            .expect("stored requests were validated on arrival");
        let reply = self.local_reply(login.client, &req, Code::ACCESS_REJECT);
        self.send_final(now, &login.current, reply, false);
    }

    /// Sends a login's last answer; rejects wait `reject_delay` plus jitter.
    fn send_final(&mut self, now: Instant, current: &Current, reply: Vec<u8>, accepted: bool) {
        let tx = Transmit {
            socket: SocketRef::Listener(current.listener),
            to: current.from,
            payload: reply.into(),
        };
        if accepted {
            self.stats.inc(Counter::MfaAccepts);
            self.stats.inc(Counter::RepliesAccept);
            self.dedup.answer(current.dedup, tx.payload.clone(), now);
            self.out.push_back(tx);
            return;
        }
        self.stats.inc(Counter::MfaRejects);
        self.stats.inc(Counter::RepliesReject);
        let delay = self.logins.cfg.reject_delay;
        if delay.is_zero() {
            self.dedup.answer(current.dedup, tx.payload.clone(), now);
            self.out.push_back(tx);
            return;
        }
        // Up to a fifth more, so timing says nothing about why.
        let jitter = Duration::from_micros(self.rng.random_range(0..=delay.as_micros() as u64 / 5));
        let id = self.logins.id();
        self.logins
            .delayed
            .push(Reverse((now + delay + jitter, id)));
        self.logins.delayed_tx.insert(id, (tx, current.dedup));
    }

    /// Sends delayed rejects and expires unanswered challenges.
    pub(super) fn login_timeouts(&mut self, now: Instant) {
        while let Some(&Reverse((at, id))) = self.logins.delayed.peek() {
            if at > now {
                break;
            }
            self.logins.delayed.pop();
            if let Some((tx, key)) = self.logins.delayed_tx.remove(&id) {
                self.dedup.answer(key, tx.payload.clone(), now);
                self.out.push_back(tx);
            }
        }
        while let Some(&Reverse((at, lid))) = self.logins.deadlines.peek() {
            if at > now {
                break;
            }
            self.logins.deadlines.pop();
            let expired = matches!(self.logins.logins.get(&lid), Some(l) if matches!(l.phase, Phase::Challenged(_)) && l.deadline.is_some_and(|d| d <= now));
            if expired {
                let login = self.logins.logins.remove(&lid).expect("present");
                if let Phase::Challenged(s) = login.phase {
                    self.logins.states.remove(&s);
                }
                self.stats.inc(Counter::MfaTimeouts);
                let record = AuditRecord {
                    at: 0,
                    user: login.user.clone(),
                    result: ResultCode::FailedOathTokenTimeout,
                    accepted: false,
                    mode: "totp".into(),
                    server: self.logins.server.clone(),
                    client: self.clients.get(login.client).name.clone(),
                    client_ip: login.client_ip.clone(),
                    reason: Some("no code entered in time".into()),
                };
                info!(target: "audit", user = %record.user, result = %record.result, decision = "reject", "login");
                self.store_job(None, StoreOp::Audit(record));
            }
        }
    }
}
