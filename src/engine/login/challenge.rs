//! Challenges: an Access-Challenge with a fresh, single-use State (a 4-octet
//! tag of this engine and 128 random bits), bound to the client, the user
//! and a deadline; its answer, an Access-Request carrying the State, checked
//! against the login that sent it (same client by name, same user, in time),
//! then the code, SMS code, PIN or method name in it; and the store's
//! verdict on a code.

use std::net::SocketAddr;
use std::time::Instant;

use zeroize::Zeroizing;

use std::cmp::Reverse;
use std::sync::Arc;

use rand::RngCore;

use super::{Current, Login, Outcome, Phase, STATE_LEN, TAG_LEN, user_name};
use crate::engine::clients::ClientRef;
use crate::engine::{Counter, Engine, SocketRef, Transmit};
use crate::mfa::otp::Verdict;
use crate::mfa::{Method, ResultCode};
use crate::radius::{AUTH_LEN, Code, PacketBuilder};
use crate::radius::{Packet, attr, crypto};
use crate::store::login::StoreOp;

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
        let found = self
            .logins
            .states
            .remove(&state)
            .and_then(|lid| self.logins.logins.remove(&lid).map(|l| (lid, l)));
        let Some((lid, mut login)) = found else {
            // Ours, but used already or expired.
            let lid = self.logins.id();
            let settings = self.logins.settings.clone();
            let login = Login::new(client, settings, current, None, None, Phase::Verify);
            return self.finish(
                now,
                lid,
                login,
                Outcome::reject(ResultCode::FailedOathTokenTimeout)
                    .because("unknown or expired State"),
            );
        };
        login.current = current;
        // The same client by name: a reload may have changed its secret or
        // range since the challenge, and the answer is signed with the
        // entry that authenticated this request.
        let same_client = login.client.name == client.name;
        login.client = client;
        if !same_client || user_name(p).as_deref() != Some(login.nas_user.as_str()) {
            // The reject answers the NAS that sent this request: it is
            // signed with that NAS's secret, and recorded as coming from it.
            return self.finish(
                now,
                lid,
                login,
                Outcome::reject(ResultCode::SuccessInvalidInput)
                    .because("State presented by another client or user"),
            );
        }
        if login.deadline.is_some_and(|d| now >= d) {
            return self.finish(
                now,
                lid,
                login,
                Outcome::reject(ResultCode::FailedOathTokenTimeout),
            );
        }
        let secret = login.client.secret.expose();
        let code = p
            .find(attr::USER_PASSWORD)
            .and_then(|a| crypto::unhide_password(a.value, secret, p.authenticator()).ok())
            .and_then(|pw| {
                std::str::from_utf8(&pw)
                    .ok()
                    .map(|s| Zeroizing::new(s.trim().to_owned()))
            })
            .unwrap_or_default();
        if let Some(oob) = login.oob.as_mut().filter(|o| o.number.is_some()) {
            // Number matching: whatever was typed, the push decides.
            return match oob.outcome.take() {
                Some(answer) => self.phone_result(now, lid, login, answer),
                None => {
                    login.phase = Phase::OutOfBand;
                    self.logins.logins.insert(lid, login);
                }
            };
        }
        if let Some(oob) = login.oob.as_ref().filter(|o| o.sms_code.is_some()) {
            let expected = oob.sms_code.as_ref().expect("filtered").as_bytes();
            // PIN mode: the code, then the PIN.
            let (typed, pin) = if oob.pin_mode {
                let at = expected.len().min(code.len());
                (
                    &code.as_bytes()[..at],
                    Some(code.as_bytes()[at..].trim_ascii_start()),
                )
            } else {
                (code.as_bytes(), None)
            };
            let right: bool = subtle::ConstantTimeEq::ct_eq(expected, typed).into();
            if right {
                if let Some(pin) = pin {
                    let pin = crate::secret::Secret::new(pin.to_vec());
                    return self.check_pin(now, lid, login, pin);
                }
                return self.finish(
                    now,
                    lid,
                    login,
                    Outcome::accept(ResultCode::SuccessSmsAuthenticated),
                );
            }
            let prompt = if oob.pin_mode {
                self.texts(&login).sms_pin_retry_prompt.clone()
            } else {
                self.texts(&login).sms_retry_prompt.clone()
            };
            login.attempts += 1;
            if login.attempts < login.settings.cfg.max_attempts {
                return self.challenge(now, lid, login, &prompt);
            }
            let result = if login.attempts > 1 {
                ResultCode::FailedSmsMaxOtpRetryReached
            } else {
                ResultCode::FailedSmsOtpIncorrect
            };
            return self.finish(now, lid, login, Outcome::reject(result));
        }
        // The first prompt also takes the name of another method.
        let word = Method::parse(&code.to_ascii_lowercase()).filter(|m| *m != Method::Totp);
        if let (Some(m), false) = (word, login.fallback) {
            let offered = login
                .settings
                .providers
                .iter()
                .any(|p| p.methods.contains(&m));
            let allowed = login.plan.as_ref().is_some_and(|p| p.allows(m));
            if offered && allowed {
                return self.start_oob(now, lid, login, m);
            }
        }
        self.verify(now, lid, login, code);
    }

    /// The store checked a code: accept, ask again, or end.
    pub(super) fn code_checked(
        &mut self,
        now: Instant,
        lid: u64,
        mut login: Login,
        verdict: Verdict,
        locked: bool,
    ) {
        let max = login.settings.cfg.max_attempts;
        if let Verdict::Valid { .. } = verdict {
            let code = if login.fallback {
                ResultCode::SuccessFallbackOathCodeVerified
            } else {
                ResultCode::SuccessOathCodeVerified
            };
            return self.finish(now, lid, login, Outcome::accept(code));
        }
        login.attempts += 1;
        let result = result_for(verdict);
        if locked {
            self.finish(
                now,
                lid,
                login,
                Outcome::reject(ResultCode::FailedAuthenticationThrottled)
                    .because("too many wrong codes"),
            );
        } else if login.attempts < max && !login.inline {
            let prompt = if login.fallback {
                self.texts(&login).fallback_prompt.clone()
            } else {
                self.texts(&login).retry_prompt.clone()
            };
            self.challenge(now, lid, login, &prompt);
        } else {
            self.finish(now, lid, login, Outcome::reject(result));
        }
    }

    /// Has the store check `code` against the user's tokens.
    pub(super) fn verify(&mut self, now: Instant, lid: u64, login: Login, code: Zeroizing<String>) {
        let op = StoreOp::Verify {
            user: login.user.clone(),
            code,
            window: login.settings.cfg.totp_window,
            lockout: login.settings.lockout,
            // Every way here passed a precheck; without one, no token.
            tokens: login
                .profile
                .as_ref()
                .map_or_else(|| Arc::from([]), |p| p.tokens.clone()),
        };
        self.ask_store(now, lid, login, Phase::Verify, op);
    }

    /// Answers the current request with an Access-Challenge.
    pub(super) fn challenge(&mut self, now: Instant, lid: u64, mut login: Login, prompt: &str) {
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
            Ok(b.finish_response(&login.client.secret, req.authenticator()))
        })();
        let Ok(reply) = built else {
            return self.finish(
                now,
                lid,
                login,
                Outcome::reject(ResultCode::FailedServerError).because("challenge too large"),
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
            .get_or_insert(now + login.settings.cfg.challenge_timeout);
        self.logins.deadlines.push(Reverse((deadline, lid)));
        login.phase = Phase::Challenged(state);
        self.logins.states.insert(state, lid);
        self.logins.logins.insert(lid, login);
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
