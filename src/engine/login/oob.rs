//! Out-of-band second factors: push, phone call, SMS code.
//!
//! The engine decides and the shell delivers. Starting a verification puts a
//! [`Delivery`] in a queue (a signed JSON body for a webhook, or a line for
//! the console); the shell reports back whether it was delivered
//! ([`Engine::handle_delivery`]). The phone's answer arrives as a signed
//! callback ([`Engine::handle_callback`], at this node or another:
//! `callback.rs`), checked in constant time, single use. Meanwhile the NAS request is held: its retransmissions are
//! dropped by the duplicate cache, never answered with `FAILED_PHONE_BUSY`.
//!
//! The one-outstanding-request rule: while a verification is pending for a
//! user, a new login (after its first factor) is rejected at once with
//! `FAILED_PHONE_BUSY`. After an out-of-band success the same user from the
//! same client gets in once more without a prompt within `busy_grace`
//! (`SUCCESS_USED_CACHE`), so a NAS that gave up early costs no second push.

use std::time::{Duration, Instant};

use rand::{Rng, RngCore};
use tracing::warn;
use zeroize::Zeroizing;

use super::Outcome;
use super::stage::{Asked, Ends, Factor, Login, Oob, Session, Stage};
use crate::config::{FailMode, ProviderKind};
use crate::engine::{Counter, Engine};
use crate::hex::{hex_decode, hex_encode};
use crate::mfa::Method;
use crate::mfa::ResultCode;
use crate::mfa::webhook::{Answer, DeliveryBody, PhoneResult};
pub use crate::mfa::webhook::{sign, signature_ok};
use crate::store::Verification;
use crate::store::login::StoreOp;

/// Verification ids: 128 random bits, hex in URLs.
pub(super) type VerificationId = [u8; 16];

/// How a delivery to a provider ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The provider took it (a 2xx).
    Delivered,
    /// The provider refused it, or could not be reached: the provider's
    /// failure, to which `fail_mode` applies.
    ProviderFailed,
    /// It never left this host (no file descriptor for a connection, and
    /// the like): our failure, never the provider's, so it fails closed
    /// whatever `fail_mode` says.
    LocalFailure,
}

/// A message for a provider to deliver.
#[derive(Clone)]
pub struct Delivery {
    /// The verification id, 32 hex digits.
    pub id: String,
    /// The provider to deliver it, as the login's settings had it when the
    /// verification started (a reload may have changed the list since).
    pub provider: std::sync::Arc<crate::config::Provider>,
    pub method: Method,
    /// The JSON body of the webhook request.
    pub body: Vec<u8>,
    /// `sha256=<hex>` of `body`, when the provider has a key.
    pub signature: Option<String>,
    /// What the console provider writes to the log.
    pub console: String,
}

impl std::fmt::Debug for Delivery {
    // The body can hold an SMS code: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("id", &self.id)
            .field("provider", &self.provider.name)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

/// A fraud report, for the administrators' email.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FraudReport {
    pub user: String,
    pub result: ResultCode,
    pub client: String,
    pub client_ip: Option<String>,
    pub blocked_for: Duration,
}

impl Engine {
    /// The next message for a provider.
    pub fn poll_delivery(&mut self) -> Option<Delivery> {
        self.logins.deliveries.pop_front()
    }

    /// The next fraud report for the administrators.
    pub fn poll_fraud_report(&mut self) -> Option<FraudReport> {
        self.logins.fraud.pop_front()
    }

    /// Out-of-band verifications in progress.
    pub fn pending_verifications(&self) -> usize {
        self.logins.verifs.len()
    }

    /// Starts `method` for the second factor `f`: validates the phone and
    /// picks a provider, then has the store take the user's one
    /// verification slot (at every node of a cluster) before anything is
    /// sent.
    pub(super) fn start_oob(&mut self, now: Instant, s: Session, f: Factor, method: Method) {
        if matches!(method, Method::Call | Method::Sms) {
            let checked = f
                .user
                .phone
                .as_deref()
                .ok_or(ResultCode::FailedInvalidPhoneNumber)
                .and_then(crate::mfa::check_phone);
            if let Err(code) = checked {
                let outcome = Outcome::reject(code).because("no valid phone number");
                return self.end(now, s, Ends::factor(f), outcome);
            }
        }
        if self.logins.verifs.len() >= self.logins.settings.cfg.max_pending {
            let outcome = Outcome::reject(ResultCode::FailedServerError)
                .because("too many verifications in progress");
            return self.end(now, s, Ends::factor(f), outcome);
        }
        let Some(provider) = s
            .settings
            .providers
            .iter()
            .position(|p| p.methods.contains(&method))
        else {
            let why = "no provider delivers this method";
            return self.delivery_failed(now, s, f, None, method, why);
        };
        let mut vid = [0u8; 16];
        self.rng.fill_bytes(&mut vid);
        let cfg = &s.settings.cfg;
        let lifetime = match method {
            Method::Push => cfg.push_timeout,
            Method::Call => cfg.call_timeout,
            Method::Sms | Method::Totp => cfg.sms_code_lifetime,
        };
        let sms_code = (method == Method::Sms)
            .then(|| Zeroizing::new(format!("{:06}", self.rng.random_range(0..1_000_000u32))));
        let number = (method == Method::Push && f.plan.number_matching)
            .then(|| self.rng.random_range(10..100u8));
        let oob = Oob {
            vid,
            method,
            provider,
            delivered: false,
            deadline: now + lifetime,
            sms_code,
            number,
            pin_mode: f.user.pin,
        };
        let v = Verification {
            user: s.user.clone(),
            id: vid.to_vec(),
            node: self.logins.server.clone(),
            client: s.client.name.clone(),
            method,
            provider: s.settings.providers[provider].name.clone(),
            started_at: self.logins.unix_at(now),
            expires_at: self.logins.unix_at(oob.deadline),
        };
        let stage = Stage::Starting(f, oob);
        self.ask_store(now, Login { s, stage }, StoreOp::StartVerification(v));
    }

    /// The store took the user's verification slot (`started`), or another
    /// verification of the user holds it, at this node or another: then
    /// the login is refused at once (`FAILED_PHONE_BUSY`).
    pub(super) fn verification_started(
        &mut self,
        now: Instant,
        s: Session,
        f: Factor,
        oob: Oob,
        started: bool,
    ) {
        if !started {
            self.stats.inc(Counter::MfaBusy);
            let message = s.texts(f.language()).busy_message.clone();
            let outcome = Outcome::reject(ResultCode::FailedPhoneBusy)
                .because("authentication already in progress")
                .at_once_with(message);
            return self.end(now, s, Ends::factor(f), outcome);
        }
        let settings = s.settings.clone();
        let (method, id) = (oob.method, hex_encode(&oob.vid));
        let phone = f.user.phone.as_deref();
        let client = &s.client.name;
        let code = oob.sms_code.as_deref().map(|c| c.as_str());
        let texts = s.texts(f.language());
        let message = match method {
            Method::Push => texts
                .push_message
                .replace("{user}", &s.user)
                .replace("{client}", client),
            Method::Call => texts.call_message.clone(),
            Method::Sms | Method::Totp => texts.sms_message.replace("{code}", code.unwrap_or("")),
        };
        // The policy's language, else the user's, as for the texts.
        let language = f.language().unwrap_or(&settings.cfg.language);
        let p = &settings.providers[oob.provider];
        let callback_url = format!(
            "{}/v1/verifications/{id}",
            settings.public_url.as_deref().unwrap_or("")
        );
        let body = serde_json::to_vec(&DeliveryBody {
            id: &id,
            method: method.as_str(),
            user: &s.user,
            phone,
            message: &message,
            code,
            number: oob.number,
            language,
            pin_mode: oob.pin_mode && method == Method::Call,
            client,
            client_ip: s.client_ip.as_deref(),
            callback_url: &callback_url,
            expires_at: self.logins.unix_at(oob.deadline),
        })
        .expect("plain data serializes");
        let signature = p.key.as_ref().map(|k| sign(k.expose(), &body));
        let console = match &p.kind {
            ProviderKind::Console => format!(
                "{} for {} ({}): {message} [verification {id}]",
                method.as_str(),
                s.user,
                phone.unwrap_or("no phone")
            ),
            ProviderKind::Webhook { .. } => String::new(),
        };
        self.logins.deliveries.push_back(Delivery {
            id,
            provider: p.clone(),
            method,
            body,
            signature,
            console,
        });
        self.stats.inc(Counter::MfaOobStarted);
        self.logins.verifs.insert(oob.vid, s.id);
        self.logins
            .deadlines
            .push(std::cmp::Reverse((oob.deadline, s.id)));
        self.park(Login {
            s,
            stage: Stage::OutOfBand(f, oob),
        });
    }

    /// The shell delivered (or could not deliver) verification `id`.
    pub fn handle_delivery(&mut self, now: Instant, id: &str, outcome: DeliveryOutcome) {
        let Some(vid) = hex_decode(id).and_then(|v| VerificationId::try_from(v).ok()) else {
            return;
        };
        let Some(&lid) = self.logins.verifs.get(&vid) else {
            return;
        };
        let (s, f, mut oob) = match self.logins.logins.remove(&lid) {
            Some(Login {
                s,
                stage: Stage::OutOfBand(f, oob),
            }) => (s, f, oob),
            // Only a verification being sent waits for its delivery.
            Some(other) => return self.park(other),
            None => return,
        };
        let method = oob.method;
        match outcome {
            DeliveryOutcome::Delivered => {}
            DeliveryOutcome::ProviderFailed => {
                let why = "the provider could not be reached";
                return self.delivery_failed(now, s, f, Some(oob), method, why);
            }
            DeliveryOutcome::LocalFailure => {
                self.stats.inc(Counter::MfaDeliveryFailures);
                warn!(user = %s.user, method = method.as_str(),
                      "the verification could not leave this host (out of file descriptors?): failing closed");
                let outcome = Outcome::reject(ResultCode::FailedServerError)
                    .because("the provider request could not be sent from this host");
                let stage = Stage::OutOfBand(f, oob);
                return self.finish(now, Login { s, stage }, outcome);
            }
        }
        oob.delivered = true;
        let texts = s.texts(f.language());
        if method == Method::Sms {
            // The code is on its way: ask for it, for as long as it lives.
            self.logins.verifs.remove(&vid);
            let prompt = if oob.pin_mode {
                texts.sms_pin_prompt.clone()
            } else {
                texts.sms_prompt.clone()
            };
            let deadline = oob.deadline;
            return self.challenge(now, s, f, Asked::Sms(oob), deadline, &prompt);
        }
        if let Some(n) = oob.number {
            // Number matching: show the number; the push stays pending and
            // the NAS's answer to this challenge is held until it ends.
            let prompt = texts.number_prompt.replace("{number}", &n.to_string());
            let deadline = oob.deadline;
            return self.challenge(now, s, f, Asked::Number(oob), deadline, &prompt);
        }
        self.park(Login {
            s,
            stage: Stage::OutOfBand(f, oob),
        });
    }

    /// Fail mode: no provider could take the verification.
    fn delivery_failed(
        &mut self,
        now: Instant,
        s: Session,
        f: Factor,
        oob: Option<Oob>,
        method: Method,
        why: &str,
    ) {
        self.stats.inc(Counter::MfaDeliveryFailures);
        let result = match method {
            Method::Push | Method::Totp => ResultCode::FailedPhoneAppNotificationFailed,
            Method::Call => ResultCode::ConfigIssue,
            Method::Sms => ResultCode::FailedSmsNotSent,
        };
        let outcome = match f.plan.fail_mode {
            FailMode::Open => {
                warn!(user = %s.user, method = method.as_str(), reason = why,
                      "FAIL OPEN: accepting after the first factor alone");
                Outcome::accept(result).because(format!("{why}; fail_open"))
            }
            FailMode::Closed => Outcome::reject(result).because(why),
        };
        let ends = Ends {
            oob,
            ..Ends::factor(f)
        };
        self.end(now, s, ends, outcome);
    }

    /// The phone answered verification `oob`.
    pub(super) fn phone_result(
        &mut self,
        now: Instant,
        s: Session,
        f: Factor,
        oob: Oob,
        answer: Answer,
    ) {
        let Answer {
            result,
            pin,
            number,
        } = answer;
        let call = oob.method == Method::Call;
        use PhoneResult as R;
        use ResultCode as C;
        let fraud_pin = pin.as_ref().is_some_and(|p| {
            subtle::ConstantTimeEq::ct_eq(p.expose(), s.settings.cfg.fraud_code.as_bytes()).into()
        });
        let refuse = |code: C, why: &str| Outcome::reject(code).because(why);
        let (ok, code) = match result {
            R::Fraud if call => return self.fraud(now, s, f, oob, C::FailedFraudCodeEntered),
            R::Fraud => return self.fraud(now, s, f, oob, C::FailedFraudReported),
            R::Approved if call && fraud_pin => {
                return self.fraud(now, s, f, oob, C::FailedFraudCodeEntered);
            }
            R::Approved if call && oob.pin_mode => {
                let Some(pin) = pin else {
                    let outcome =
                        refuse(C::SuccessInvalidInput, "PIN mode: the call returned no PIN");
                    let stage = Stage::OutOfBand(f, oob);
                    return self.finish(now, Login { s, stage }, outcome);
                };
                // The store checks the PIN (argon2, off the loop).
                return self.check_pin(now, s, f, oob, pin);
            }
            // Standard mode: `#` alone; other digits mean nothing.
            R::Approved if call => (true, C::SuccessNoPin),
            R::Approved => match (oob.number, number) {
                (None, _) => (true, C::SuccessPhoneAppAuthenticated),
                (Some(n), Some(m)) if u32::from(n) == m => (true, C::SuccessPhoneAppAuthenticated),
                (Some(_), chosen) => {
                    let outcome = match chosen {
                        Some(_) => refuse(
                            C::FailedPhoneAppDenied,
                            "number matching: the wrong number was chosen",
                        ),
                        None => refuse(
                            C::FailedPhoneAppInvalidResult,
                            "number matching: the approval carried no number",
                        ),
                    };
                    let stage = Stage::OutOfBand(f, oob);
                    return self.finish(now, Login { s, stage }, outcome);
                }
            },
            R::Denied if call => (false, C::SuccessInvalidInput),
            R::Denied => (false, C::FailedPhoneAppDenied),
            R::NoResponse if call => (false, C::SuccessNoPinButTimeout),
            R::NoResponse => (false, C::FailedPhoneAppNoResponse),
            R::Voicemail => (false, C::SuccessNoPinButTimeout),
            R::HungUp => (false, C::FailedUserHungUpOnUs),
            R::Unreachable => (false, C::ConfigIssue),
            R::Failed if call => (false, C::ConfigIssue),
            R::Failed => (false, C::FailedPhoneAppNotificationFailed),
        };
        if ok {
            let stage = Stage::OutOfBand(f, oob);
            return self.finish(now, Login { s, stage }, Outcome::accept(code));
        }
        let may_fall_back = matches!(result, R::Denied | R::NoResponse | R::Voicemail | R::HungUp);
        self.not_approved(now, s, f, oob, code, may_fall_back);
    }

    /// PIN mode: has the store check `pin` (argon2, off the packet path).
    pub(super) fn check_pin(
        &mut self,
        now: Instant,
        s: Session,
        f: Factor,
        oob: Oob,
        pin: crate::secret::Secret,
    ) {
        let op = StoreOp::Pin {
            user: s.user.clone(),
            pin,
        };
        let stage = Stage::Pin(f, oob);
        self.ask_store(now, Login { s, stage }, op);
    }

    /// PIN mode: the store checked the PIN of a call, or the PIN after a
    /// right SMS code. A wrong PIN counts toward lockout like a wrong code.
    pub(super) fn pin_checked(
        &mut self,
        now: Instant,
        s: Session,
        mut f: Factor,
        oob: Oob,
        right: Option<bool>,
    ) {
        let sms = oob.method == Method::Sms;
        if right == Some(true) {
            let code = if sms {
                ResultCode::SuccessSmsAuthenticated
            } else {
                ResultCode::SuccessWithPin
            };
            let stage = Stage::Pin(f, oob);
            return self.finish(now, Login { s, stage }, Outcome::accept(code));
        }
        self.store_job(
            now,
            StoreOp::Denial {
                user: s.user.clone(),
                lockout: s.settings.lockout,
            },
        );
        let why = if right.is_none() {
            "a PIN was entered but the user has none set"
        } else {
            "wrong PIN"
        };
        let result = if sms {
            f.attempts += 1;
            if f.attempts < s.settings.cfg.max_attempts {
                let prompt = s.texts(f.language()).sms_pin_retry_prompt.clone();
                let deadline = oob.deadline;
                return self.challenge(now, s, f, Asked::Sms(oob), deadline, &prompt);
            }
            ResultCode::FailedSmsOtpPinIncorrect
        } else {
            ResultCode::SuccessInvalidInput
        };
        let stage = Stage::Pin(f, oob);
        self.finish(
            now,
            Login { s, stage },
            Outcome::reject(result).because(why),
        );
    }

    /// Denied or unanswered: fall back to an OATH code when allowed, else
    /// reject with `code`.
    fn not_approved(
        &mut self,
        now: Instant,
        s: Session,
        mut f: Factor,
        oob: Oob,
        code: ResultCode,
        may_fall_back: bool,
    ) {
        if may_fall_back && f.plan.fallback_oath {
            // The verification ends here; a new round of codes begins.
            self.release(now, &s, &oob);
            f.attempts = 0;
            let prompt = s.texts(f.language()).fallback_prompt.clone();
            let deadline = now + s.settings.cfg.challenge_timeout;
            return self.challenge(now, s, f, Asked::Fallback, deadline, &prompt);
        }
        let stage = Stage::OutOfBand(f, oob);
        self.finish(now, Login { s, stage }, Outcome::reject(code))
    }

    fn fraud(&mut self, now: Instant, s: Session, f: Factor, oob: Oob, code: ResultCode) {
        let blocked_for = s.settings.cfg.fraud_block;
        self.stats.inc(Counter::MfaFraudReports);
        warn!(user = %s.user, result = %code, "fraud reported: blocking the user");
        self.store_job(
            now,
            StoreOp::Block {
                user: s.user.clone(),
                reason: format!("fraud reported ({code})"),
                for_secs: blocked_for.as_secs() as i64,
            },
        );
        self.logins.fraud.push_back(FraudReport {
            user: s.user.clone(),
            result: code,
            client: s.client.name.clone(),
            client_ip: s.client_ip.clone(),
            blocked_for,
        });
        let stage = Stage::OutOfBand(f, oob);
        let outcome = Outcome::reject(code).because("fraud reported; user blocked");
        self.finish(now, Login { s, stage }, outcome);
    }

    /// Forgets verification `oob` of session `s`: no callback is taken for
    /// it any more, and the store frees the user's slot (at every node).
    pub(super) fn release(&mut self, now: Instant, s: &Session, oob: &Oob) {
        self.logins.verifs.remove(&oob.vid);
        self.logins.relay.forget(&oob.vid);
        let op = StoreOp::EndVerification {
            user: s.user.clone(),
            id: oob.vid.to_vec(),
            node: self.logins.server.clone(),
        };
        self.store_job(now, op);
    }

    /// An out-of-band verification ran out of time.
    pub(super) fn oob_expired(&mut self, now: Instant, s: Session, f: Factor, oob: Oob) {
        self.stats.inc(Counter::MfaTimeouts);
        let method = oob.method;
        if !oob.delivered {
            // The provider never said whether it delivered.
            let why = "the provider did not answer in time";
            return self.delivery_failed(now, s, f, Some(oob), method, why);
        }
        let code = if method == Method::Call {
            ResultCode::FailedAuthResultTimeout
        } else {
            ResultCode::FailedPhoneAppNoResponse
        };
        self.not_approved(now, s, f, oob, code, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_and_phone_numbers() {
        let s = sign(b"0123456789abcdef", b"{}");
        assert!(signature_ok(b"0123456789abcdef", b"{}", &s));
        assert!(!signature_ok(b"0123456789abcdeX", b"{}", &s));
        assert!(!signature_ok(b"0123456789abcdef", b"{ }", &s));
        assert!(!signature_ok(b"0123456789abcdef", b"{}", "sha256=zz"));
        assert!(!signature_ok(b"0123456789abcdef", b"{}", &s[7..]));
        assert_eq!(crate::mfa::check_phone("+49 30 1234567"), Ok(()));
        assert_eq!(crate::mfa::check_phone("+1-425-555-0100x12#"), Ok(()));
        assert_eq!(
            crate::mfa::check_phone("555-1234"),
            Err(ResultCode::FailedInvalidPhoneNumber)
        );
        assert_eq!(
            crate::mfa::check_phone("+4930abc4567"),
            Err(ResultCode::FailedInvalidPhoneNumber)
        );
        assert_eq!(
            crate::mfa::check_phone("+4930123456x1a"),
            Err(ResultCode::FailedInvalidExtension)
        );
    }
}
