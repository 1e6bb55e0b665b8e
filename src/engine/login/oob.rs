//! Out-of-band second factors: push, phone call, SMS code.
//!
//! The engine decides and the shell delivers. Starting a verification puts a
//! [`Delivery`] in a queue (a signed JSON body for a webhook, or a line for
//! the console); the shell reports back whether it was delivered
//! ([`Engine::handle_delivery`]). The phone's answer arrives as a signed
//! callback ([`Engine::handle_callback`]), checked here in constant time,
//! single use. Meanwhile the NAS request is held: its retransmissions are
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

use super::{Login, Oob, Outcome, Phase};
use crate::config::{FailMode, ProviderKind};
use crate::engine::{Counter, Engine};
use crate::hex::{hex_decode, hex_encode};
use crate::mfa::Method;
use crate::mfa::ResultCode;
use crate::mfa::webhook::{CallbackBody, DeliveryBody, PhoneResult};
pub use crate::mfa::webhook::{sign, signature_ok};
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

/// How a callback was taken; the HTTP status follows from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallbackStatus {
    /// 200: the result was applied.
    Accepted,
    /// 400: not JSON of the expected shape, or an unknown result.
    Malformed,
    /// 401: the signature is missing or wrong.
    BadSignature,
    /// 404: no such verification pending (unknown, answered or expired).
    Unknown,
}

/// A provider's answer, kept until it can be applied.
pub(in crate::engine) struct PhoneAnswer {
    result: PhoneResult,
    pin: Option<crate::secret::Secret>,
    number: Option<u32>,
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

    /// Starts `method` for `login`: validates the phone, picks a provider,
    /// queues the delivery and holds the NAS request.
    pub(super) fn start_oob(&mut self, now: Instant, lid: u64, mut login: Login, method: Method) {
        let phone = login.profile.as_ref().and_then(|p| p.phone.clone());
        if matches!(method, Method::Call | Method::Sms) {
            let checked = phone
                .as_deref()
                .ok_or(ResultCode::FailedInvalidPhoneNumber)
                .and_then(crate::mfa::check_phone);
            if let Err(code) = checked {
                return self.finish(
                    now,
                    lid,
                    login,
                    Outcome::reject(code).because("no valid phone number"),
                );
            }
        }
        if self.logins.verifs.len() >= self.logins.settings.cfg.max_pending {
            return self.finish(
                now,
                lid,
                login,
                Outcome::reject(ResultCode::FailedServerError)
                    .because("too many verifications in progress"),
            );
        }
        let settings = login.settings.clone();
        let Some(provider) = settings
            .providers
            .iter()
            .position(|p| p.methods.contains(&method))
        else {
            return self.delivery_failed(
                now,
                lid,
                login,
                method,
                "no provider delivers this method",
            );
        };
        let mut vid = [0u8; 16];
        self.rng.fill_bytes(&mut vid);
        let id = hex_encode(&vid);
        let lifetime = match method {
            Method::Push => settings.cfg.push_timeout,
            Method::Call => settings.cfg.call_timeout,
            Method::Sms | Method::Totp => settings.cfg.sms_code_lifetime,
        };
        let code = (method == Method::Sms)
            .then(|| Zeroizing::new(format!("{:06}", self.rng.random_range(0..1_000_000u32))));
        let client_cfg = login.client.clone();
        let matching = login.plan.as_ref().is_some_and(|p| p.number_matching);
        let number = (method == Method::Push && matching).then(|| self.rng.random_range(10..100u8));
        let pin_mode = login.profile.as_ref().is_some_and(|p| p.pin);
        let client = client_cfg.name.clone();
        let texts = self.texts(&login);
        let message = match method {
            Method::Push => texts
                .push_message
                .replace("{user}", &login.user)
                .replace("{client}", &client),
            Method::Call => texts.call_message.clone(),
            Method::Sms | Method::Totp => texts
                .sms_message
                .replace("{code}", code.as_deref().map_or("", |c| c.as_str())),
        };
        // The policy's language, else the user's, as for the texts.
        let language = login
            .plan
            .as_ref()
            .and_then(|p| p.language.clone())
            .or_else(|| login.profile.as_ref().and_then(|p| p.language.clone()))
            .unwrap_or_else(|| settings.cfg.language.clone());
        let p = &settings.providers[provider];
        let callback_url = format!(
            "{}/v1/verifications/{id}",
            settings.public_url.as_deref().unwrap_or("")
        );
        let body = serde_json::to_vec(&DeliveryBody {
            id: &id,
            method: method.as_str(),
            user: &login.user,
            phone: phone.as_deref(),
            message: &message,
            code: code.as_deref().map(|c| c.as_str()),
            number,
            language: &language,
            pin_mode: pin_mode && method == Method::Call,
            client: &client,
            client_ip: login.client_ip.as_deref(),
            callback_url: &callback_url,
            expires_at: self.logins.unix_at(now + lifetime),
        })
        .expect("plain data serializes");
        let signature = p.key.as_ref().map(|k| sign(k.expose(), &body));
        let console = match &p.kind {
            ProviderKind::Console => format!(
                "{} for {} ({}): {message} [verification {id}]",
                method.as_str(),
                login.user,
                phone.as_deref().unwrap_or("no phone")
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
        self.logins.busy.insert(login.user.to_lowercase(), lid);
        self.logins.verifs.insert(vid, lid);
        login.oob = Some(Oob {
            vid,
            method,
            provider,
            delivered: false,
            sms_code: code,
            number,
            pin_mode,
            outcome: None,
        });
        login.phase = Phase::OutOfBand;
        let deadline = now + lifetime;
        login.deadline = Some(deadline);
        self.logins
            .deadlines
            .push(std::cmp::Reverse((deadline, lid)));
        self.logins.logins.insert(lid, login);
    }

    /// The shell delivered (or could not deliver) verification `id`.
    pub fn handle_delivery(&mut self, now: Instant, id: &str, outcome: DeliveryOutcome) {
        let Some(vid) = hex_decode(id).and_then(|v| VerificationId::try_from(v).ok()) else {
            return;
        };
        let Some(&lid) = self.logins.verifs.get(&vid) else {
            return;
        };
        let Some(mut login) = self.logins.logins.remove(&lid) else {
            return;
        };
        let Some(oob) = login.oob.as_mut() else {
            self.logins.logins.insert(lid, login);
            return;
        };
        let method = oob.method;
        match outcome {
            DeliveryOutcome::Delivered => {}
            DeliveryOutcome::ProviderFailed => {
                return self.delivery_failed(
                    now,
                    lid,
                    login,
                    method,
                    "the provider could not be reached",
                );
            }
            DeliveryOutcome::LocalFailure => {
                self.stats.inc(Counter::MfaDeliveryFailures);
                warn!(user = %login.user, method = method.as_str(),
                      "the verification could not leave this host (out of file descriptors?): failing closed");
                return self.finish(
                    now,
                    lid,
                    login,
                    Outcome::reject(ResultCode::FailedServerError)
                        .because("the provider request could not be sent from this host"),
                );
            }
        }
        oob.delivered = true;
        if method == Method::Sms {
            // The code is on its way: ask for it, for as long as it lives.
            self.logins.verifs.remove(&vid);
            let prompt = if oob.pin_mode {
                self.texts(&login).sms_pin_prompt.clone()
            } else {
                self.texts(&login).sms_prompt.clone()
            };
            return self.challenge(now, lid, login, &prompt);
        }
        if let (Some(n), Phase::OutOfBand) = (oob.number, login.phase) {
            // Number matching: show the number; the push stays pending and
            // the NAS's answer to this challenge is held until it ends.
            let prompt = self
                .texts(&login)
                .number_prompt
                .replace("{number}", &n.to_string());
            return self.challenge(now, lid, login, &prompt);
        }
        self.logins.logins.insert(lid, login);
    }

    /// Fail mode: no provider could take the verification.
    fn delivery_failed(&mut self, now: Instant, lid: u64, login: Login, method: Method, why: &str) {
        self.stats.inc(Counter::MfaDeliveryFailures);
        let result = match method {
            Method::Push | Method::Totp => ResultCode::FailedPhoneAppNotificationFailed,
            Method::Call => ResultCode::ConfigIssue,
            Method::Sms => ResultCode::FailedSmsNotSent,
        };
        let fail_mode = login
            .plan
            .as_ref()
            .map_or(login.client.fail_mode, |p| p.fail_mode);
        match fail_mode {
            FailMode::Open => {
                warn!(user = %login.user, method = method.as_str(), reason = why,
                      "FAIL OPEN: accepting after the first factor alone");
                self.finish(
                    now,
                    lid,
                    login,
                    Outcome::accept(result).because(format!("{why}; fail_open")),
                );
            }
            FailMode::Closed => self.finish(now, lid, login, Outcome::reject(result).because(why)),
        }
    }

    /// A provider's callback for verification `id`.
    pub fn handle_callback(
        &mut self,
        now: Instant,
        id: &str,
        body: &[u8],
        signature: Option<&str>,
    ) -> CallbackStatus {
        let Some(vid) = hex_decode(id).and_then(|v| VerificationId::try_from(v).ok()) else {
            self.stats.inc(Counter::CallbackUnknown);
            return CallbackStatus::Unknown;
        };
        let Some(&lid) = self.logins.verifs.get(&vid) else {
            self.stats.inc(Counter::CallbackUnknown);
            return CallbackStatus::Unknown;
        };
        // The key of the provider the verification went through, as the
        // login's settings had it (a reload may have changed it since).
        let provider = match self.logins.logins.get(&lid) {
            Some(l @ Login { oob: Some(o), .. }) => l.settings.providers[o.provider].clone(),
            _ => return CallbackStatus::Unknown,
        };
        let key = provider.key.as_ref();
        let signed = match (key, signature) {
            (Some(k), Some(sig)) => signature_ok(k.expose(), body, sig),
            _ => false,
        };
        if !signed {
            self.stats.inc(Counter::CallbackBadSignature);
            return CallbackStatus::BadSignature;
        }
        let Ok(cb) = serde_json::from_slice::<CallbackBody>(body) else {
            self.stats.inc(Counter::CallbackMalformed);
            return CallbackStatus::Malformed;
        };
        let Some(result) = PhoneResult::parse(&cb.result) else {
            self.stats.inc(Counter::CallbackMalformed);
            return CallbackStatus::Malformed;
        };
        // Single use: from here the id is gone.
        self.logins.verifs.remove(&vid);
        let mut login = self
            .logins
            .logins
            .remove(&lid)
            .expect("verifs point at logins");
        self.stats.inc(Counter::CallbackAccepted);
        let answer = PhoneAnswer {
            result,
            pin: cb.pin.map(|p| crate::secret::Secret::new(p.into_bytes())),
            number: cb.number,
        };
        match (login.phase, login.oob.as_mut()) {
            (Phase::Challenged(_), Some(oob)) => {
                // Number matching: the NAS still shows the number; the answer
                // to its challenge takes this result.
                oob.outcome = Some(answer);
                self.logins.logins.insert(lid, login);
            }
            _ => self.phone_result(now, lid, login, answer),
        }
        CallbackStatus::Accepted
    }

    pub(super) fn phone_result(
        &mut self,
        now: Instant,
        lid: u64,
        login: Login,
        answer: PhoneAnswer,
    ) {
        let PhoneAnswer {
            result,
            pin,
            number,
        } = answer;
        let (method, pin_mode, shown) =
            login.oob.as_ref().map_or((Method::Push, false, None), |o| {
                (o.method, o.pin_mode, o.number)
            });
        let call = method == Method::Call;
        use PhoneResult as R;
        use ResultCode as C;
        let fraud_pin = pin.as_ref().is_some_and(|p| {
            subtle::ConstantTimeEq::ct_eq(p.expose(), login.settings.cfg.fraud_code.as_bytes())
                .into()
        });
        let (ok, code) = match result {
            R::Fraud => {
                return self.fraud(
                    now,
                    lid,
                    login,
                    if call {
                        C::FailedFraudCodeEntered
                    } else {
                        C::FailedFraudReported
                    },
                );
            }
            R::Approved if call && fraud_pin => {
                return self.fraud(now, lid, login, C::FailedFraudCodeEntered);
            }
            R::Approved if call && pin_mode => {
                let Some(pin) = pin else {
                    return self.finish(
                        now,
                        lid,
                        login,
                        Outcome::reject(C::SuccessInvalidInput)
                            .because("PIN mode: the call returned no PIN"),
                    );
                };
                // The store checks the PIN (argon2, off the loop).
                return self.check_pin(now, lid, login, pin);
            }
            // Standard mode: `#` alone; other digits mean nothing.
            R::Approved if call => (true, C::SuccessNoPin),
            R::Approved => match (shown, number) {
                (None, _) => (true, C::SuccessPhoneAppAuthenticated),
                (Some(n), Some(m)) if u32::from(n) == m => (true, C::SuccessPhoneAppAuthenticated),
                (Some(_), Some(_)) => {
                    return self.finish(
                        now,
                        lid,
                        login,
                        Outcome::reject(C::FailedPhoneAppDenied)
                            .because("number matching: the wrong number was chosen"),
                    );
                }
                (Some(_), None) => {
                    return self.finish(
                        now,
                        lid,
                        login,
                        Outcome::reject(C::FailedPhoneAppInvalidResult)
                            .because("number matching: the approval carried no number"),
                    );
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
            return self.finish(now, lid, login, Outcome::accept(code));
        }
        let may_fall_back = matches!(result, R::Denied | R::NoResponse | R::Voicemail | R::HungUp);
        self.not_approved(now, lid, login, code, may_fall_back);
    }

    /// PIN mode: has the store check `pin` (argon2, off the packet path).
    pub(super) fn check_pin(
        &mut self,
        now: Instant,
        lid: u64,
        login: Login,
        pin: crate::secret::Secret,
    ) {
        let user = login.user.clone();
        self.ask_store(now, lid, login, Phase::Pin, StoreOp::Pin { user, pin });
    }

    /// PIN mode: the store checked the PIN of a call, or the PIN after a
    /// right SMS code. A wrong PIN counts toward lockout like a wrong code.
    pub(super) fn pin_checked(
        &mut self,
        now: Instant,
        lid: u64,
        mut login: Login,
        right: Option<bool>,
    ) {
        let sms = login.oob.as_ref().is_some_and(|o| o.method == Method::Sms);
        if right == Some(true) {
            let code = if sms {
                ResultCode::SuccessSmsAuthenticated
            } else {
                ResultCode::SuccessWithPin
            };
            return self.finish(now, lid, login, Outcome::accept(code));
        }
        self.store_job(
            now,
            StoreOp::Denial {
                user: login.user.clone(),
                lockout: login.settings.lockout,
            },
        );
        let why = if right.is_none() {
            "a PIN was entered but the user has none set"
        } else {
            "wrong PIN"
        };
        if !sms {
            return self.finish(
                now,
                lid,
                login,
                Outcome::reject(ResultCode::SuccessInvalidInput).because(why),
            );
        }
        login.attempts += 1;
        if login.attempts < login.settings.cfg.max_attempts {
            let prompt = self.texts(&login).sms_pin_retry_prompt.clone();
            return self.challenge(now, lid, login, &prompt);
        }
        self.finish(
            now,
            lid,
            login,
            Outcome::reject(ResultCode::FailedSmsOtpPinIncorrect).because(why),
        )
    }

    /// Denied or unanswered: fall back to an OATH code when allowed, else
    /// reject with `code`.
    pub(super) fn not_approved(
        &mut self,
        now: Instant,
        lid: u64,
        mut login: Login,
        code: ResultCode,
        may_fall_back: bool,
    ) {
        let fallback = login.plan.as_ref().is_some_and(|p| p.fallback_oath);
        if may_fall_back && fallback {
            self.release_oob(&mut login);
            login.fallback = true;
            login.deadline = None;
            login.attempts = 0;
            let prompt = self.texts(&login).fallback_prompt.clone();
            return self.challenge(now, lid, login, &prompt);
        }
        self.finish(now, lid, login, Outcome::reject(code))
    }

    fn fraud(&mut self, now: Instant, lid: u64, login: Login, code: ResultCode) {
        let blocked_for = login.settings.cfg.fraud_block;
        self.stats.inc(Counter::MfaFraudReports);
        warn!(user = %login.user, result = %code, "fraud reported: blocking the user");
        self.store_job(
            now,
            StoreOp::Block {
                user: login.user.clone(),
                reason: format!("fraud reported ({code})"),
                for_secs: blocked_for.as_secs() as i64,
            },
        );
        self.logins.fraud.push_back(FraudReport {
            user: login.user.clone(),
            result: code,
            client: login.client.name.clone(),
            client_ip: login.client_ip.clone(),
            blocked_for,
        });
        self.finish(
            now,
            lid,
            login,
            Outcome::reject(code).because("fraud reported; user blocked"),
        );
    }

    /// Forgets `login`'s verification: no callback is taken for it any more
    /// and its user is no longer busy.
    pub(super) fn release_oob(&mut self, login: &mut Login) {
        if let Some(o) = login.oob.take() {
            self.logins.verifs.remove(&o.vid);
            let user = login.user.to_lowercase();
            self.logins.busy.remove(&user);
        }
    }

    /// An out-of-band verification ran out of time.
    pub(super) fn oob_expired(&mut self, now: Instant, lid: u64, login: Login) {
        self.stats.inc(Counter::MfaTimeouts);
        let (method, delivered) = login
            .oob
            .as_ref()
            .map_or((Method::Push, true), |o| (o.method, o.delivered));
        if !delivered {
            // The provider never said whether it delivered.
            let why = "the provider did not answer in time";
            return self.delivery_failed(now, lid, login, method, why);
        }
        let code = if method == Method::Call {
            ResultCode::FailedAuthResultTimeout
        } else {
            ResultCode::FailedPhoneAppNoResponse
        };
        self.not_approved(now, lid, login, code, true);
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
