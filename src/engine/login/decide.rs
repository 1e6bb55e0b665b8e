//! The engine's side of `policy::decide`: it gathers the request's facts
//! beside the store's, asks the policy what the login needs, and does it.

use std::net::IpAddr;
use std::time::Instant;

use zeroize::Zeroizing;

use super::{Login, Outcome, Phase};
use crate::engine::{Counter, Engine};
use crate::mfa::{Remembered, ResultCode};
use crate::policy::{self, AuthType, ClientDefaults, Live, Need, Plan, Standing, Start};
use crate::radius::{Packet, attr};
use crate::store::login::StoreOp;

/// MS-CHAP-Response and MS-CHAP2-Response (RFC 2548), vendor 311.
const MS_CHAP_RESPONSE: u8 = 1;
const MS_CHAP2_RESPONSE: u8 = 25;

/// How the request gave its first factor.
pub(in crate::engine) fn auth_type(p: &Packet<'_>) -> AuthType {
    if p.has(attr::EAP_MESSAGE) {
        return AuthType::Eap;
    }
    if p.has(attr::USER_PASSWORD) {
        return AuthType::Pap;
    }
    if p.has(attr::CHAP_PASSWORD) {
        return AuthType::Chap;
    }
    let ms_chap = p
        .attributes()
        .filter(|a| a.typ == attr::VENDOR_SPECIFIC)
        .any(|a| {
            a.value.len() > 5
                && a.value[..4] == attr::VENDOR_MICROSOFT.to_be_bytes()
                && matches!(a.value[4], MS_CHAP_RESPONSE | MS_CHAP2_RESPONSE)
        });
    if ms_chap {
        AuthType::MsChap
    } else {
        AuthType::Other
    }
}

/// The request's NAS-Identifier, if it is text.
fn nas_identifier<'a>(p: &'a Packet<'_>) -> Option<&'a str> {
    p.find(attr::NAS_IDENTIFIER)
        .and_then(|a| std::str::from_utf8(a.value).ok())
}

/// A second factor that was verified (not skipped, bypassed, remembered
/// or let through by the fail mode): only these are remembered.
fn verified(result: ResultCode) -> bool {
    use ResultCode as R;
    matches!(
        result,
        R::SuccessOathCodeVerified
            | R::SuccessFallbackOathCodeVerified
            | R::SuccessSmsAuthenticated
            | R::SuccessPhoneAppAuthenticated
            | R::SuccessNoPin
            | R::SuccessWithPin
    )
}

impl Engine {
    /// Where `login` comes from: the address trusted networks are tested
    /// against, and the client address remembered logins of the `ip` scope
    /// compare. With `user_address_from`, both are the user's address from
    /// that attribute (none if the request lacks it: no network trusts
    /// it); without, the NAS's source address and the Calling-Station-Id.
    fn whence(&self, login: &Login, req: &Packet<'_>) -> (Option<IpAddr>, Option<String>) {
        match login.client.user_address_from {
            Some(from) => {
                let ip = super::address::user_address(req, from);
                (ip, ip.map(|a| a.to_string()))
            }
            None => (Some(login.current.from.ip()), login.client_ip.clone()),
        }
    }

    /// A login accepted with `result`: if its second factor was verified
    /// and its policy remembers logins, the store remembers this one.
    pub(in crate::engine) fn remember(&mut self, now: Instant, login: &Login, result: ResultCode) {
        let Some(origin) = login.origin.as_ref() else {
            return;
        };
        if !verified(result) || login.plan.as_ref().and_then(|p| p.remember).is_none() {
            return;
        }
        let at = self.logins.unix_at(now);
        let keep = login.settings.rules.longest_remember().as_secs() as i64;
        let record = Remembered {
            at,
            ..origin.clone()
        };
        self.store_job(
            now,
            StoreOp::Remember {
                user: login.user.clone(),
                login: record,
                keep_since: at.saturating_sub(keep),
            },
        );
    }

    /// The store has said what it knows of the user: decide what the login
    /// needs, and start it.
    pub(in crate::engine) fn decide(&mut self, now: Instant, lid: u64, mut login: Login) {
        let req = Packet::parse(&login.current.request)
            .expect("stored requests were validated on arrival");
        let client = login.client.clone();
        let settings = login.settings.clone();
        let nas_identifier = nas_identifier(&req);
        let (address, client_ip) = self.whence(&login, &req);
        let grace_key = (login.user.to_lowercase(), client.name.clone());
        let live = Live {
            now: self.logins.unix_at(now),
            busy: self.logins.busy.contains_key(&grace_key.0),
            grace: self.logins.grace.get(&grace_key).is_some_and(|&t| t > now),
        };
        // Groups and remembered logins are read for this decision only:
        // moved out of the profile, not copied.
        let standing = match &mut login.profile {
            None => Standing::unknown(),
            Some(f) => Standing {
                known: true,
                blocked: f.blocked,
                bypass_waiting: f.bypass_waiting,
                locked: f.locked,
                method: f.method,
                oath: f.oath(),
                phone: f.phone.is_some(),
                groups: std::mem::take(&mut f.groups),
                remembered: std::mem::take(&mut f.remembered),
            },
        };
        let facts = policy::Request {
            user: &login.user,
            client: &client.name,
            client_defaults: ClientDefaults {
                fail_mode: client.fail_mode,
                number_matching: client.number_matching,
            },
            nas_identifier,
            address,
            client_ip: client_ip.as_deref(),
            auth_type: auth_type(&req),
            inline_code: login.inline_code.is_some(),
            groups: &login.upstream_groups,
        };
        let decision = policy::decide(&settings.rules, &facts, &standing, live);
        // Where the login came from, as its first request said: what a
        // verified second factor is remembered by (only where the policy
        // remembers, so other logins allocate nothing for it).
        if let Need::SecondFactor(Plan {
            remember: Some(_), ..
        }) = &decision.need
        {
            login.origin = Some(Remembered {
                auth_type: facts.auth_type.as_str().to_owned(),
                app: facts.app(),
                address: client_ip.clone(),
                at: 0,
            });
        }
        match decision.need {
            Need::Accept { result, reason } => {
                if result == ResultCode::SuccessUsedCache {
                    self.stats.inc(Counter::MfaUsedCache);
                    if live.grace {
                        self.logins.grace.remove(&grace_key);
                    }
                }
                self.finish(now, lid, login, Outcome::accept(result).because(reason));
            }
            Need::Reject {
                result,
                reason,
                busy,
            } => {
                if busy {
                    self.stats.inc(Counter::MfaBusy);
                    login.immediate = true;
                    login.reply_message = Some(self.texts(&login).busy_message.clone());
                }
                self.finish(now, lid, login, Outcome::reject(result).because(reason));
            }
            Need::ClaimBypass => {
                let user = login.user.clone();
                let op = StoreOp::ClaimBypass { user };
                self.ask_store(now, lid, login, Phase::Claim, op);
            }
            Need::SecondFactor(plan) => {
                let (method, start) = (plan.method, plan.start);
                login.plan = Some(plan);
                match start {
                    Start::OutOfBand => self.start_oob(now, lid, login, method),
                    Start::InlineCode => {
                        let code = login.inline_code.take().expect("decided on an inline code");
                        let code =
                            Zeroizing::new(String::from_utf8_lossy(code.expose()).into_owned());
                        self.verify(now, lid, login, code);
                    }
                    Start::Prompt => {
                        let prompt = self.texts(&login).prompt.clone();
                        self.challenge(now, lid, login, &prompt);
                    }
                }
            }
        }
    }
}
