//! Challenges: an Access-Challenge with a fresh, single-use State (a 4-octet
//! tag of this engine and 128 random bits), bound to the client, the user
//! and a deadline; its answer, an Access-Request carrying the State, checked
//! against the login that sent it (same client by name, same user, in time),
//! then the code, SMS code, PIN or method name in it; and the store's
//! verdict on a code.

use std::cmp::Reverse;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rand::RngCore;
use zeroize::Zeroizing;

use super::stage::{Asked, Challenge, CodeFrom, Factor, Login, Oob, Session, Stage};
use super::{Current, Outcome, STATE_LEN, TAG_LEN, user_name};
use crate::engine::clients::ClientRef;
use crate::engine::{Counter, Engine, SocketRef, Transmit};
use crate::mfa::otp::Verdict;
use crate::mfa::{Method, ResultCode};
use crate::radius::{AUTH_LEN, Code, PacketBuilder};
use crate::radius::{Packet, attr, crypto};
use crate::store::login::{StoreOp, Taking};

impl Engine {
    /// An Access-Request carrying one of our States: the answer to a
    /// challenge.
    pub(in crate::engine) fn challenge_answer(
        &mut self,
        now: Instant,
        listener: u16,
        from: SocketAddr,
        client: ClientRef,
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
        let found = match self.logins.states.remove(&state) {
            Some(lid) => match self.logins.logins.remove(&lid) {
                Some(Login {
                    s,
                    stage: Stage::Challenged(f, c),
                }) => Some((s, f, c)),
                // A State points at a challenged login only; anything else
                // is left as it was.
                Some(other) => {
                    self.park(other);
                    None
                }
                None => None,
            },
            None => None,
        };
        let Some((mut s, f, c)) = found else {
            // Ours, but not here: sent by another node of the cluster,
            // used already, or expired (or sent before a restart: a node
            // alone on SQLite keeps none in the store, and it is refused).
            // The store says which, and hands it over if it can.
            let id = self.logins.id();
            let settings = self.logins.settings.clone();
            let s = Session::new(id, client, settings, current, None);
            let op = StoreOp::TakeChallenge {
                state: state.to_vec(),
                node: self.logins.server.clone(),
            };
            let stage = Stage::Fetching(state);
            return self.ask_store(now, Login { s, stage }, op);
        };
        s.current = current;
        // The same client by name: a reload may have changed its secret or
        // range since the challenge, and the answer is signed with the
        // entry that authenticated this request.
        let same_client = s.client.name == client.name;
        s.client = client;
        if !same_client {
            return self.wrong_answerer(now, s, f, c);
        }
        self.answered(now, s, f, c);
    }

    /// The answer to challenge `c` came from another client than the one
    /// it went to, or for another user: refused. The reject answers the
    /// NAS that sent this request: it is signed with that NAS's secret, and
    /// recorded as coming from it.
    pub(super) fn wrong_answerer(&mut self, now: Instant, s: Session, f: Factor, c: Challenge) {
        // Used up in the store too: no other node takes it over.
        self.use_up(now, &s, &c);
        let stage = Stage::Challenged(f, c);
        let outcome = Outcome::reject(ResultCode::SuccessInvalidInput)
            .because("State presented by another client or user");
        self.finish(now, Login { s, stage }, outcome);
    }

    /// The session's current request answers challenge `c`, at the node
    /// that sent it or at one that took it over.
    pub(super) fn answered(&mut self, now: Instant, s: Session, f: Factor, c: Challenge) {
        let p = s.request();
        if user_name(&p).as_deref() != Some(s.nas_user.as_str()) {
            return self.wrong_answerer(now, s, f, c);
        }
        if now >= c.deadline {
            let stage = Stage::Challenged(f, c);
            let outcome = Outcome::reject(ResultCode::FailedOathTokenTimeout);
            return self.finish(now, Login { s, stage }, outcome);
        }
        let secret = s.client.secret.expose();
        let typed = p
            .find(attr::USER_PASSWORD)
            .and_then(|a| crypto::unhide_password(a.value, secret, p.authenticator()).ok())
            .and_then(|pw| {
                std::str::from_utf8(&pw)
                    .ok()
                    .map(|s| Zeroizing::new(s.trim().to_owned()))
            })
            .unwrap_or_default();
        let deadline = c.deadline;
        // A challenge this node kept in the store is taken there as its
        // answer is checked: a State is answered once in the cluster.
        let taking = self.taking(&c);
        match c.asked {
            // Number matching: whatever was typed, the push decides; the
            // NAS's request is held here until it has.
            Asked::Number(oob) => {
                let c = Challenge {
                    asked: Asked::Number(oob),
                    ..c
                };
                self.move_here(now, s, f, c)
            }
            Asked::Sms(oob) if c.kept => {
                let c = Challenge {
                    asked: Asked::Sms(oob),
                    ..c
                };
                let op = StoreOp::TakeChallenge {
                    state: c.state.to_vec(),
                    node: self.logins.server.clone(),
                };
                let stage = Stage::Taking(f, c);
                self.ask_store(now, Login { s, stage }, op);
            }
            Asked::Sms(oob) => self.sms_answer(now, s, f, oob, deadline, &typed),
            Asked::Code => {
                // The first prompt also takes the name of another method.
                let word =
                    Method::parse(&typed.to_ascii_lowercase()).filter(|m| *m != Method::Totp);
                if let Some(m) = word {
                    let offered = s.settings.providers.iter().any(|p| p.methods.contains(&m));
                    if offered && f.plan.allows(m) {
                        if let Some(t) = taking {
                            let op = StoreOp::TakeChallenge {
                                state: t.state,
                                node: t.node,
                            };
                            // After the job that put it there.
                            self.store_job_in(now, super::shard_of(&s.user), op);
                        }
                        return self.start_oob(now, s, f, m);
                    }
                }
                let from = CodeFrom::Challenge {
                    fallback: false,
                    deadline,
                };
                self.verify(now, s, f, from, typed, taking);
            }
            Asked::Fallback => {
                let from = CodeFrom::Challenge {
                    fallback: true,
                    deadline,
                };
                self.verify(now, s, f, from, typed, taking);
            }
        }
    }

    /// The answer to the challenge that asked for the code of the SMS sent:
    /// the code (compared here, in constant time), then in PIN mode the PIN.
    fn sms_answer(
        &mut self,
        now: Instant,
        s: Session,
        mut f: Factor,
        oob: Oob,
        deadline: Instant,
        typed: &str,
    ) {
        let expected = oob.sms_code.as_ref().map_or(&b""[..], |c| c.as_bytes());
        // PIN mode: the code, then the PIN.
        let (code, pin) = if oob.pin_mode {
            let at = expected.len().min(typed.len());
            (
                &typed.as_bytes()[..at],
                Some(typed.as_bytes()[at..].trim_ascii_start()),
            )
        } else {
            (typed.as_bytes(), None)
        };
        let right =
            !expected.is_empty() && bool::from(subtle::ConstantTimeEq::ct_eq(expected, code));
        if right {
            if let Some(pin) = pin {
                let pin = crate::secret::Secret::new(pin.to_vec());
                return self.check_pin(now, s, f, oob, pin);
            }
            let stage = Stage::OutOfBand(f, oob);
            let outcome = Outcome::accept(ResultCode::SuccessSmsAuthenticated);
            return self.finish(now, Login { s, stage }, outcome);
        }
        f.attempts += 1;
        if f.attempts < s.settings.cfg.max_attempts {
            let texts = s.texts(f.language());
            let prompt = if oob.pin_mode {
                texts.sms_pin_retry_prompt.clone()
            } else {
                texts.sms_retry_prompt.clone()
            };
            return self.challenge(now, s, f, Asked::Sms(oob), deadline, &prompt);
        }
        let result = if f.attempts > 1 {
            ResultCode::FailedSmsMaxOtpRetryReached
        } else {
            ResultCode::FailedSmsOtpIncorrect
        };
        let stage = Stage::OutOfBand(f, oob);
        self.finish(now, Login { s, stage }, Outcome::reject(result));
    }

    /// The store checked a code: accept, ask again, or end.
    pub(super) fn code_checked(
        &mut self,
        now: Instant,
        s: Session,
        mut f: Factor,
        from: CodeFrom,
        verdict: Verdict,
        locked: bool,
    ) {
        let fallback = matches!(from, CodeFrom::Challenge { fallback: true, .. });
        if let Verdict::Valid { .. } = verdict {
            let code = if fallback {
                ResultCode::SuccessFallbackOathCodeVerified
            } else {
                ResultCode::SuccessOathCodeVerified
            };
            let stage = Stage::Verify(f, from);
            return self.finish(now, Login { s, stage }, Outcome::accept(code));
        }
        f.attempts += 1;
        // Counted now: a right code later in this login clears it.
        f.user.denied = true;
        let outcome = if locked {
            Outcome::reject(ResultCode::FailedAuthenticationThrottled)
                .because("too many wrong codes")
        } else {
            Outcome::reject(result_for(verdict))
        };
        match from {
            CodeFrom::Challenge { deadline, .. }
                if !locked && f.attempts < s.settings.cfg.max_attempts =>
            {
                let texts = s.texts(f.language());
                let (asked, prompt) = if fallback {
                    (Asked::Fallback, texts.fallback_prompt.clone())
                } else {
                    (Asked::Code, texts.retry_prompt.clone())
                };
                self.challenge(now, s, f, asked, deadline, &prompt);
            }
            // A code inline with the password gets no second chance.
            _ => {
                let stage = Stage::Verify(f, from);
                self.finish(now, Login { s, stage }, outcome);
            }
        }
    }

    /// Has the store check `code` against the user's tokens.
    pub(super) fn verify(
        &mut self,
        now: Instant,
        s: Session,
        f: Factor,
        from: CodeFrom,
        code: Zeroizing<String>,
        answers: Option<Taking>,
    ) {
        let op = StoreOp::Verify {
            user: s.user.clone(),
            code,
            window: s.settings.cfg.totp_window,
            lockout: s.settings.lockout,
            tokens: Arc::clone(&f.user.tokens),
            denied: f.user.denied,
            answers,
        };
        let stage = Stage::Verify(f, from);
        self.ask_store(now, Login { s, stage }, op);
    }

    /// How this node takes challenge `c` from the store as its answer is
    /// checked, if it kept it there.
    pub(super) fn taking(&self, c: &Challenge) -> Option<Taking> {
        c.kept.then(|| Taking {
            state: c.state.to_vec(),
            node: self.logins.server.clone(),
        })
    }

    /// Uses challenge `c` up in the store, without waiting (its answer was
    /// refused here anyway).
    pub(super) fn use_up(&mut self, now: Instant, s: &Session, c: &Challenge) {
        if let Some(t) = self.taking(c) {
            let op = StoreOp::TakeChallenge {
                state: t.state,
                node: t.node,
            };
            // After the job that put it there.
            self.store_job_in(now, super::shard_of(&s.user), op);
        }
    }

    /// The answer's challenge was taken in the store by another node (the
    /// NAS sent the same State there first): refused, as a State used
    /// already is everywhere.
    pub(super) fn challenge_gone(&mut self, now: Instant, login: Login) {
        let outcome = Outcome::reject(ResultCode::FailedOathTokenTimeout)
            .because("the State was answered at another node");
        let Login { s, stage } = login;
        let mut ends = stage.into_ends();
        // Its verification is the other node's now: forgotten here, not
        // ended.
        if let Some(oob) = ends.oob.take() {
            self.logins.verifs.remove(&oob.vid);
            self.logins.relay.forget(&oob.vid);
        }
        self.end(now, s, ends, outcome);
    }

    /// The store gave this node challenge `c` (kept there by it): its
    /// answer is checked now.
    pub(super) fn challenge_taken(&mut self, now: Instant, s: Session, f: Factor, c: Challenge) {
        let c = Challenge { kept: false, ..c };
        self.answered(now, s, f, c);
    }

    /// Answers the current request with an Access-Challenge asking for
    /// `asked`, which must be answered before `deadline`.
    pub(super) fn challenge(
        &mut self,
        now: Instant,
        s: Session,
        f: Factor,
        asked: Asked,
        deadline: Instant,
        prompt: &str,
    ) {
        let mut state = [0u8; STATE_LEN];
        state[..TAG_LEN].copy_from_slice(&self.logins.tag);
        self.rng.fill_bytes(&mut state[TAG_LEN..]);
        let req = s.request();
        let mut b = PacketBuilder::new(Code::ACCESS_CHALLENGE, req.identifier(), &[0; AUTH_LEN]);
        let built = (|| -> Result<Vec<u8>, crate::radius::EncodeError> {
            b.push_message_authenticator()?;
            b.push(attr::STATE, &state)?;
            b.push(attr::REPLY_MESSAGE, prompt.as_bytes())?;
            for a in req.attributes().filter(|a| a.typ == attr::PROXY_STATE) {
                b.push_raw(a.raw(&req))?;
            }
            Ok(b.finish_response(&s.client.secret, req.authenticator()))
        })();
        let mut c = Challenge {
            state,
            deadline,
            asked,
            kept: false,
        };
        let Ok(reply) = built else {
            let stage = Stage::Challenged(f, c);
            let outcome =
                Outcome::reject(ResultCode::FailedServerError).because("challenge too large");
            return self.finish(now, Login { s, stage }, outcome);
        };
        let reply: Arc<[u8]> = reply.into();
        self.dedup.answer(s.current.dedup, reply.clone(), now);
        self.out.push_back(Transmit {
            socket: SocketRef::Listener(s.current.listener),
            to: s.current.from,
            payload: reply,
        });
        self.stats.inc(Counter::MfaChallenges);
        self.logins.deadlines.push(Reverse((deadline, s.id)));
        self.logins.states.insert(state, s.id);
        // Kept in the store too, for another node to take the answer over.
        let login = self.logins.shared.then(|| self.hand_over(&s, &f, &c));
        if let Some(login) = login.flatten() {
            c.kept = true;
            let op = StoreOp::PutChallenge {
                state: state.to_vec(),
                node: self.logins.server.clone(),
                user: s.user.clone(),
                // Rounded up: the store keeps it for its whole last second.
                expires_at: self.logins.unix_at(deadline) + 1,
                login,
            };
            self.store_job(now, op);
        }
        self.park(Login {
            s,
            stage: Stage::Challenged(f, c),
        });
    }
}

fn result_for(v: Verdict) -> ResultCode {
    match v {
        Verdict::Valid { .. } => ResultCode::SuccessOathCodeVerified,
        Verdict::Incorrect => ResultCode::FailedOathCodeIncorrect,
        Verdict::Duplicate => ResultCode::FailedOathCodeDuplicate,
        Verdict::Old => ResultCode::FailedOathCodeOld,
    }
}
