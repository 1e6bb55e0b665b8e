//! The engine's side of `policy::decide`: it gathers the request's facts
//! beside the store's, asks the policy what the login needs, and does it.

use std::net::IpAddr;
use std::time::Instant;

use zeroize::Zeroizing;

use super::Outcome;
use super::stage::{Asked, Claiming, CodeFrom, Ends, Factor, Given, Login, Lost, Session, Stage};
use crate::engine::{Counter, Engine};
use crate::mfa::{Remembered, ResultCode};
use crate::policy::{self, AuthType, ClientDefaults, Live, Need, Plan, Start};
use crate::radius::{Packet, attr};
use crate::store::login::{StoreOp, UserFacts};

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
    super::text_of(p, attr::NAS_IDENTIFIER)
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
    /// Where the login of `s` comes from: the address trusted networks are
    /// tested against, and the client address remembered logins of the
    /// `ip` scope compare. With `user_address_from`, both are the user's
    /// address from that attribute (none if the request lacks it: no
    /// network trusts it); without, the NAS's source address and the
    /// Calling-Station-Id.
    fn whence(s: &Session, req: &Packet<'_>) -> (Option<IpAddr>, Option<String>) {
        match s.client.user_address_from {
            Some(from) => {
                let ip = super::address::user_address(req, from);
                (ip, ip.map(|a| a.to_string()))
            }
            None => (Some(s.current.from.ip()), s.client_ip.clone()),
        }
    }

    /// A login accepted with `result` after second factor `f`: if it was
    /// verified and the policy remembers logins, the store remembers this
    /// one.
    pub(in crate::engine) fn remember(
        &mut self,
        now: Instant,
        s: &Session,
        f: &Factor,
        result: ResultCode,
    ) {
        let (Some(origin), Some(_)) = (f.origin.as_ref(), f.plan.remember) else {
            return;
        };
        if !verified(result) {
            return;
        }
        let at = self.logins.unix_at(now);
        let keep = s.settings.rules.longest_remember().as_secs() as i64;
        let record = Remembered {
            at,
            ..origin.clone()
        };
        self.store_job(
            now,
            StoreOp::Remember {
                user: s.user.clone(),
                login: record,
                keep_since: at.saturating_sub(keep),
            },
        );
    }

    /// The store has said what it knows of the user: decide what the login
    /// needs, and start it.
    pub(in crate::engine) fn decide(
        &mut self,
        now: Instant,
        s: Session,
        given: Given,
        lost: Lost,
        facts: Option<UserFacts>,
    ) {
        let req = s.request();
        let nas_identifier = nas_identifier(&req);
        let (address, client_ip) = Self::whence(&s, &req);
        // What the store says holds at every node of a cluster.
        let live = Live {
            now: self.logins.unix_at(now),
            busy: facts.as_ref().is_some_and(|f| f.busy),
            grace: facts
                .as_ref()
                .is_some_and(|f| f.graced.iter().any(|c| *c == s.client.name)),
        };
        let (standing, user) = UserFacts::split(facts);
        let facts = policy::Request {
            user: &s.user,
            client: &s.client.name,
            client_defaults: ClientDefaults {
                fail_mode: s.client.fail_mode,
                number_matching: s.client.number_matching,
            },
            nas_identifier,
            address,
            client_ip: client_ip.as_deref(),
            auth_type: auth_type(&req),
            inline_code: given.inline_code.is_some(),
            groups: &given.groups,
        };
        let decision = policy::decide(&s.settings.rules, &facts, &standing, live);
        // Where the login came from, as its first request said: what a
        // verified second factor is remembered by (only where the policy
        // remembers, so other logins allocate nothing for it).
        let origin = match &decision.need {
            Need::SecondFactor(Plan {
                remember: Some(_), ..
            }) => Some(Remembered {
                auth_type: facts.auth_type.as_str().to_owned(),
                app: facts.app(),
                address: client_ip.clone(),
                at: 0,
            }),
            _ => None,
        };
        match decision.need {
            Need::Accept { result, reason } => {
                if result == ResultCode::SuccessUsedCache {
                    self.stats.inc(Counter::MfaUsedCache);
                }
                self.end(
                    now,
                    s,
                    Ends::none(),
                    Outcome::accept(result).because(reason),
                );
            }
            Need::Reject {
                result,
                reason,
                busy,
            } => {
                let mut outcome = Outcome::reject(result).because(reason);
                if busy {
                    self.stats.inc(Counter::MfaBusy);
                    let message = s.texts(user.language.as_deref()).busy_message.clone();
                    outcome = outcome.at_once_with(message);
                }
                self.end(now, s, Ends::none(), outcome);
            }
            Need::ClaimBypass => {
                let op = StoreOp::ClaimBypass {
                    user: s.user.clone(),
                };
                let stage = Stage::Claim(given, Claiming::Bypass, lost);
                self.ask_store(now, Login { s, stage }, op);
            }
            Need::ClaimGrace => {
                let op = StoreOp::TakeGrace {
                    user: s.user.clone(),
                    client: s.client.name.clone(),
                };
                let stage = Stage::Claim(given, Claiming::Grace, lost);
                self.ask_store(now, Login { s, stage }, op);
            }
            Need::SecondFactor(plan) => {
                let (method, start) = (plan.method, plan.start);
                let f = Factor {
                    user,
                    plan,
                    origin,
                    attempts: 0,
                };
                match (start, given.inline_code) {
                    (Start::OutOfBand, _) => self.start_oob(now, s, f, method),
                    (Start::InlineCode, Some(code)) => {
                        let code =
                            Zeroizing::new(String::from_utf8_lossy(code.expose()).into_owned());
                        self.verify(now, s, f, CodeFrom::Inline, code, None);
                    }
                    // The policy decides on an inline code only when there
                    // is one: without, it is asked for.
                    (Start::Prompt | Start::InlineCode, _) => {
                        let prompt = s.texts(f.language()).prompt.clone();
                        let deadline = now + s.settings.cfg.challenge_timeout;
                        self.challenge(now, s, f, Asked::Code, deadline, &prompt);
                    }
                }
            }
        }
    }
}
