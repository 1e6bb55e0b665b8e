//! The end of a login: one audit record, then the answer.
//!
//! What a login decided is durable before the NAS is told: the final
//! answer is held until the store has committed the login's audit record,
//! and a record that cannot be stored (or not within [`HOLD_LIMIT`]) turns
//! an Accept into a Reject. A crash of the process at any instant therefore
//! loses no record of an answer that left. (The SQLite store commits in WAL
//! mode with `synchronous = NORMAL`: a commit survives the process, not a
//! power loss of the machine in the next moments.) Logins still pending
//! when the proxy stops are recorded on the way out.

use std::cmp::Reverse;
use std::time::{Duration, Instant};

use rand::Rng;
use tracing::{error, info};

use super::Outcome;
use super::stage::{Challenge, Ends, Factor, Login, Session, Stage};
use crate::engine::clients::ClientRef;
use crate::engine::dedup::DedupKey;
use crate::engine::rewrite::{RewriteError, Rewriter, Side};
use crate::engine::warn::Topic;
use crate::engine::{Counter, Engine, SocketRef, Transmit};
use crate::mfa::{Method, ResultCode};
use crate::radius::{AUTH_LEN, Attr, Code, Packet, PacketBuilder, attr};
use crate::store::AuditRecord;
use crate::store::login::{StoreAnswer, StoreOp};

/// What kind of final answer a login gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::engine) enum Final {
    Accept,
    /// After `reject_delay`.
    Reject,
    /// At once (BUSY, or an Accept whose record could not be stored).
    RejectNow,
    /// The upstream's own Access-Reject, relayed (and counted) as it came.
    Relayed,
}

/// How long a final answer waits for its audit record. A batch commits in
/// milliseconds; a store stalled longer than this (a hung disk) must not
/// hold answers, and their duplicate-cache entries, forever.
const HOLD_LIMIT: Duration = Duration::from_secs(5);

/// A final answer waiting for its audit record to be stored.
#[derive(Debug)]
pub(in crate::engine) struct Held {
    tx: Transmit,
    dedup: DedupKey,
    how: Final,
    client: ClientRef,
    user: String,
    /// For an Accept, the request answered: if its record cannot be stored
    /// it is answered with a Reject instead.
    request: Option<Vec<u8>>,
}

/// Where a final answer goes: the request it answers, and whose login it
/// ends (for the log line if its record fails).
pub(in crate::engine) struct Answering {
    pub(in crate::engine) listener: u16,
    pub(in crate::engine) from: std::net::SocketAddr,
    pub(in crate::engine) dedup: DedupKey,
    pub(in crate::engine) client: ClientRef,
    pub(in crate::engine) request: Vec<u8>,
    pub(in crate::engine) user: String,
}

/// The answer to a login's current request.
fn answering(current: super::Current, client: ClientRef, user: &str) -> Answering {
    Answering {
        listener: current.listener,
        from: current.from,
        dedup: current.dedup,
        client,
        request: current.request,
        user: user.to_owned(),
    }
}

impl Engine {
    /// Ends `login` in the stage it is in.
    pub(in crate::engine) fn finish(&mut self, now: Instant, login: Login, outcome: Outcome) {
        let Login { s, stage } = login;
        self.end(now, s, stage.into_ends(), outcome);
    }

    /// Ends a login: its audit record and log line, then, once the record
    /// is stored, the final answer to the NAS (rejects after `reject_delay`).
    pub(super) fn end(&mut self, now: Instant, s: Session, ends: Ends, outcome: Outcome) {
        let (accept, result, reason) = (outcome.accepted(), outcome.result(), outcome.reason());
        let method = ends.method().as_str();
        self.logins.logins.remove(&s.id);
        if let Some(state) = ends.state {
            self.logins.states.remove(&state);
        }
        if let Some(oob) = &ends.oob {
            if accept && oob.delivered {
                self.grant_grace(now, &s);
            }
            self.release(now, &s, oob);
        }
        let req = s.request();
        let client = s.client.clone();
        let built = match (accept, &s.accept) {
            // A local first factor: nothing to relay but the Proxy-States.
            (true, None) => Some(self.local_reply(&client, &req, Code::ACCESS_ACCEPT)),
            (true, Some(ua)) => {
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
                        secret: ua.upstream.secret.expose(),
                        auth: &ua.auth,
                    },
                    to: Side {
                        secret: client.secret.expose(),
                        auth: req.authenticator(),
                    },
                    rng: &mut self.rng,
                };
                (|| -> Result<Vec<u8>, RewriteError> {
                    b.push_message_authenticator()?;
                    rw.copy(&upstream, &mut b, |a: &Attr<'_>| a.typ != attr::PROXY_STATE)?;
                    for a in req.attributes().filter(|a| a.typ == attr::PROXY_STATE) {
                        b.push_raw(a.raw(&req))?;
                    }
                    Ok(b.finish_response(&client.secret, req.authenticator()))
                })()
                .ok()
            }
            (false, _) => Some(self.reject_reply(&client, &req, outcome.at_once())),
        };
        let accepted = accept && built.is_some();
        let result = if accept && !accepted {
            ResultCode::FailedServerError
        } else {
            result
        };
        if let (true, Some(f)) = (accepted, &ends.factor) {
            // Before the record: the same batch stores both.
            self.remember(now, &s, f, result);
        }
        let client_ip = s.client_ip.clone();
        let audit = self.record(
            now, &s.user, &client, client_ip, result, accepted, method, reason,
        );
        let how = match (accepted, outcome.at_once().is_some() || accept) {
            (true, _) => Final::Accept,
            (false, false) => Final::Reject,
            // BUSY, or an Accept that could not be rebuilt: refused at once.
            (false, true) => Final::RejectNow,
        };
        let reply = match built {
            Some(r) => r,
            None => self.reject_reply(&client, &req, None),
        };
        let to = answering(s.current, client, &s.user);
        self.hold_answer(now, audit, to, reply, how);
    }

    /// An out-of-band success of `s`'s user from its client: within
    /// `busy_grace`, one login of theirs from there (at any node) needs no
    /// second push.
    fn grant_grace(&mut self, now: Instant, s: &Session) {
        let grace = s.settings.cfg.busy_grace;
        if grace.is_zero() {
            return;
        }
        let op = StoreOp::GrantGrace {
            user: s.user.clone(),
            client: s.client.name.clone(),
            until: self.logins.unix_at(now + grace),
        };
        self.store_job(now, op);
    }

    /// A login that ends without an answer (the NAS gave up on it, or the
    /// proxy stops): its State and verification are forgotten and its
    /// record written.
    fn abandon(&mut self, now: Instant, s: Session, ends: Ends, result: ResultCode, why: &str) {
        if let Some(state) = ends.state {
            self.logins.states.remove(&state);
        }
        if let Some(oob) = &ends.oob {
            self.release(now, &s, oob);
        }
        let mode = ends.method().as_str();
        let (client, ip) = (s.client, s.client_ip);
        self.record(now, &s.user, &client, ip, result, false, mode, Some(why));
    }

    /// The end of a login: its audit record (stored by a store job, whose id
    /// is returned), its JSON log line and its count by result code.
    #[allow(clippy::too_many_arguments)]
    pub(in crate::engine) fn record(
        &mut self,
        now: Instant,
        user: &str,
        client: &ClientRef,
        client_ip: Option<String>,
        result: ResultCode,
        accepted: bool,
        mode: &str,
        reason: Option<&str>,
    ) -> u64 {
        let record = AuditRecord {
            at: self.logins.unix_at(now),
            user: user.to_owned(),
            result,
            accepted,
            mode: mode.into(),
            server: self.logins.server.clone(),
            client: client.name.clone(),
            client_ip,
            reason: reason.map(str::to_owned),
        };
        info!(
            target: "audit",
            user = %record.user,
            result = %record.result,
            decision = if accepted { "accept" } else { "reject" },
            mode = %record.mode,
            client = %record.client,
            client_ip = record.client_ip.as_deref().unwrap_or(""),
            server = %record.server,
            reason = record.reason.as_deref().unwrap_or(""),
            "login"
        );
        self.stats.login(result, accepted);
        self.store_job(now, StoreOp::Audit(record))
    }

    /// A first factor checked here that failed (a wrong local password, a
    /// directory's refusal, or no directory to ask): a delayed reject with
    /// no Reply-Message, like the upstream's would be, recorded as `result`
    /// with `why`.
    pub(in crate::engine) fn reject_first_factor(
        &mut self,
        now: Instant,
        s: Session,
        result: ResultCode,
        why: &str,
    ) {
        let client = s.client.clone();
        let ip = s.client_ip.clone();
        let why = Some(why);
        let audit = self.record(now, &s.user, &client, ip, result, false, "password", why);
        let reply = self.reject_reply(&client, &s.request(), None);
        let to = answering(s.current, client, &s.user);
        self.hold_answer(now, audit, to, reply, Final::Reject);
    }

    /// Keeps a login's final answer until its audit record (store job
    /// `audit`) is committed. Retransmissions meanwhile find the request
    /// in flight and are dropped.
    pub(in crate::engine) fn hold_answer(
        &mut self,
        now: Instant,
        audit: u64,
        to: Answering,
        reply: Vec<u8>,
        how: Final,
    ) {
        let held = Held {
            tx: Transmit {
                socket: SocketRef::Listener(to.listener),
                to: to.from,
                payload: reply.into(),
            },
            dedup: to.dedup,
            how,
            client: to.client,
            user: to.user,
            request: (how == Final::Accept).then_some(to.request),
        };
        self.logins.held.insert(audit, held);
        self.logins
            .held_deadlines
            .push(Reverse((now + HOLD_LIMIT, audit)));
    }

    /// An Accept that may not leave without its record goes out as a
    /// Reject instead: the record could not be stored (`why`). Logged at
    /// most every few seconds (a database that is down fails every
    /// login), with how many were held back; each is counted.
    fn refuse_unrecorded(&mut self, now: Instant, held: &mut Held, why: &str) {
        self.stats.inc(Counter::MfaAuditFailures);
        let client = &held.client.name;
        let logged = self.throttle.allow(now, Topic::AuditUnrecorded);
        let Some(request) = held.request.take() else {
            if let Some(more) = logged {
                error!(user = %held.user, client = %client, more, "a login's audit record {why}");
            }
            return;
        };
        // Nothing may be granted that is not on record.
        if let Some(more) = logged {
            error!(user = %held.user, client = %client, more,
                   "a login's audit record {why}: answering Access-Reject instead of Access-Accept");
        }
        let req = Packet::parse(&request).expect("stored requests were validated on arrival");
        held.tx.payload = self.reject_reply(&held.client, &req, None).into();
        held.how = Final::RejectNow;
        self.stats.login(ResultCode::FailedServerError, false);
    }

    /// The store answered audit job `id`, if it is one with an answer
    /// held: the answer goes out now (or after `reject_delay`). Returns
    /// whether `id` was such a job.
    pub(in crate::engine) fn audit_stored(
        &mut self,
        now: Instant,
        id: u64,
        answer: &StoreAnswer,
    ) -> bool {
        let Some(mut held) = self.logins.held.remove(&id) else {
            return false;
        };
        if *answer != StoreAnswer::Done {
            self.refuse_unrecorded(now, &mut held, "cannot be stored");
        }
        self.send_final(now, held);
        true
    }

    /// Answers held past [`HOLD_LIMIT`]: the store is stalled. An Accept
    /// becomes a Reject; a Reject goes out as decided.
    fn expire_held(&mut self, now: Instant) {
        while let Some(&Reverse((at, id))) = self.logins.held_deadlines.peek() {
            if at > now {
                break;
            }
            self.logins.held_deadlines.pop();
            if let Some(mut held) = self.logins.held.remove(&id) {
                let why = "was not stored in time (the store is stalled)";
                self.refuse_unrecorded(now, &mut held, why);
                self.send_final(now, held);
            }
        }
    }

    /// Sends a login's last answer; rejects wait `reject_delay` plus jitter.
    fn send_final(&mut self, now: Instant, held: Held) {
        let Held { tx, dedup, how, .. } = held;
        match how {
            Final::Relayed => {}
            Final::Accept => {
                self.stats.inc(Counter::MfaAccepts);
                self.stats.inc(Counter::RepliesAccept);
            }
            Final::Reject | Final::RejectNow => {
                self.stats.inc(Counter::MfaRejects);
                self.stats.inc(Counter::RepliesReject);
            }
        }
        let delay = self.logins.settings.cfg.reject_delay;
        if how != Final::Reject || delay.is_zero() {
            self.dedup.answer(dedup, tx.payload.clone(), now);
            self.out.push_back(tx);
            return;
        }
        // Up to a fifth more, so timing says nothing about why.
        let jitter = Duration::from_micros(self.rng.random_range(0..=delay.as_micros() as u64 / 5));
        let id = self.logins.id();
        self.logins
            .delayed
            .push(Reverse((now + delay + jitter, id)));
        self.logins.delayed_tx.insert(id, (tx, dedup));
    }

    /// A login's question to the store failed or was not answered within
    /// `STORE_LIMIT`: it ends as `FAILED_SERVER_ERROR`, refused whatever the
    /// fail mode. `fail_open` is for a provider outside the site's control;
    /// without its store the proxy knows neither the user's block, lockout
    /// and groups (so not which policy denies) nor whether the password,
    /// code or PIN being checked was right.
    pub(in crate::engine) fn store_unavailable(&mut self, now: Instant, login: Login, why: &str) {
        self.stats.inc(Counter::MfaStoreFailures);
        if let Login {
            s,
            stage: Stage::Expiring(f, c),
        } = login
        {
            // Its request was answered with the challenge: nothing to send.
            // Recorded as the timeout it is here (another node may have
            // taken it over; the store could not say).
            return self.challenge_expired(now, s, f, c, false);
        }
        if let Some(more) = self.throttle.allow(now, Topic::StoreUnavailable) {
            error!(user = %login.s.user, more, "{why}: the login ends as FAILED_SERVER_ERROR");
        }
        let outcome = Outcome::reject(ResultCode::FailedServerError).because(why);
        self.finish(now, login, outcome);
    }

    /// Sends delayed rejects and expires unanswered challenges,
    /// verifications and questions to the store.
    pub(in crate::engine) fn login_timeouts(&mut self, now: Instant) {
        self.heartbeat(now);
        self.expire_held(now);
        while let Some(&Reverse((at, job))) = self.logins.store_deadlines.peek() {
            if at > now {
                break;
            }
            self.logins.store_deadlines.pop();
            let Some(lid) = self.logins.jobs.remove(&job) else {
                continue;
            };
            if let Some(login) = self.logins.logins.remove(&lid) {
                self.store_unavailable(now, login, "the store did not answer in time");
            }
        }
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
            // A login's deadline is its stage's: one left behind by an
            // earlier stage is stale.
            match self.logins.logins.remove(&lid) {
                Some(Login {
                    s,
                    stage: Stage::OutOfBand(f, oob),
                }) if oob.deadline <= now => self.oob_expired(now, s, f, oob),
                Some(Login {
                    s,
                    stage: Stage::Directory(_, until),
                }) if until <= now => self.directory_lost(now, s),
                Some(Login {
                    s,
                    stage: Stage::Challenged(f, c),
                }) if c.deadline <= now => {
                    if c.kept {
                        // The store says whether another node took it over.
                        let op = StoreOp::ChallengeExpired {
                            state: c.state.to_vec(),
                            node: self.logins.server.clone(),
                        };
                        let stage = Stage::Expiring(f, c);
                        self.ask_store(now, Login { s, stage }, op);
                    } else {
                        self.challenge_expired(now, s, f, c, false);
                    }
                }
                Some(other) => self.park(other),
                None => {}
            }
        }
    }

    /// The NAS never answered challenge `c` here; `elsewhere`: another node
    /// took its answer over, and ends the login there.
    pub(super) fn challenge_expired(
        &mut self,
        now: Instant,
        s: Session,
        f: Factor,
        c: Challenge,
        elsewhere: bool,
    ) {
        if elsewhere {
            // Forgotten here, not ended: its verification is the other
            // node's now, and so is its record.
            self.stats.inc(Counter::MfaHandedAway);
            self.logins.states.remove(&c.state);
            if let Some(oob) = c.oob() {
                self.logins.verifs.remove(&oob.vid);
                self.logins.relay.forget(&oob.vid);
            }
            self.logins.logins.remove(&s.id);
            return;
        }
        self.stats.inc(Counter::MfaTimeouts);
        let ends = Stage::Challenged(f, c).into_ends();
        let result = match ends.oob.as_ref().map(|o| o.method) {
            Some(Method::Sms) => ResultCode::FailedAuthResultTimeout,
            // Number matching: the NAS never showed the answer.
            Some(_) => ResultCode::FailedPhoneAppNoResponse,
            None => ResultCode::FailedOathTokenTimeout,
        };
        self.abandon(now, s, ends, result, "no code entered in time");
    }

    /// The proxy is stopping: every login still waiting for its second
    /// factor (a challenge not yet answered, a push not yet approved) gets
    /// its audit record, `FAILED_SERVER_ERROR`, so none ends unrecorded.
    /// The NAS is not answered: it fails over to its next server. Rejects
    /// still waiting out `reject_delay` are sent now. The shell then runs
    /// the store jobs this queues before it exits.
    pub fn shutdown(&mut self, now: Instant) {
        // Rejects waiting out `reject_delay` leave now.
        while let Some(Reverse((_, id))) = self.logins.delayed.pop() {
            if let Some((tx, _)) = self.logins.delayed_tx.remove(&id) {
                self.out.push_back(tx);
            }
        }
        let ids: Vec<u64> = self.logins.logins.keys().copied().collect();
        for lid in ids {
            let Some(Login { s, stage }) = self.logins.logins.remove(&lid) else {
                continue;
            };
            let why = "the proxy stopped before the login ended";
            let result = ResultCode::FailedServerError;
            // A challenge kept in the store may still be answered at
            // another node (the NAS fails over): its verification is left
            // for that node to move, not ended here.
            let kept = matches!(&stage, Stage::Challenged(_, c) if c.kept);
            let mut ends = stage.into_ends();
            if kept {
                if let Some(oob) = ends.oob.take() {
                    self.logins.verifs.remove(&oob.vid);
                }
            }
            self.abandon(now, s, ends, result, why);
        }
    }

    /// Store jobs whose answer the engine still waits for: logins between
    /// two steps, and final answers held until their record is stored.
    pub fn store_waits(&self) -> usize {
        self.logins.jobs.len() + self.logins.held.len()
    }
}
