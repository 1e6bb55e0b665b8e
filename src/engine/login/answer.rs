//! A challenge answered: an Access-Request carrying one of our States,
//! checked against the login that sent the challenge (same client by name,
//! same user, in time), then the code, SMS code, PIN or method name in it.

use std::net::SocketAddr;
use std::time::Instant;

use zeroize::Zeroizing;

use super::{Current, Login, Outcome, Phase, STATE_LEN, user_name};
use crate::engine::Engine;
use crate::engine::clients::ClientRef;
use crate::mfa::{Method, ResultCode};
use crate::radius::{Packet, attr, crypto};

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
}
