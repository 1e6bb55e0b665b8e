//! A challenge handed over between the nodes of a cluster (issue 16): a NAS
//! that fails over between the rounds of a login sends the answer, with the
//! State node A issued, to node B. So every challenge that goes out is also
//! kept in the store (sealed with the seed key, single use, until its
//! deadline), and a node that gets an answer whose State it does not know
//! takes the challenge from the store and carries on with it: the code is
//! checked (and its step claimed) in the store both share, an SMS code is
//! compared as node A would have, and the final Accept carries the
//! upstream's attributes, re-encrypted for this node's NAS request.
//!
//! What is handed over is the session and the second factor as the node
//! that sent the challenge had them, less what the store can tell again
//! (the user's tokens and phone are read afresh). A push with number
//! matching is handed over too: the node the NAS answers holds the request
//! from then on, and the phone's answer reaches it through the store
//! (`callback.rs`), wherever the provider's callback arrived.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::stage::{Asked, Challenge, Ends, Factor, Login, Oob, Session, Stage};
use super::{Outcome, STATE_LEN, UpstreamAccept};
use crate::engine::{Counter, Engine};
use crate::mfa::{Method, Remembered, ResultCode};
use crate::policy::Plan;
use crate::radius::Authenticator;
use crate::store::login::StoreOp;

/// The format's version: a node refuses one it does not know.
const VERSION: u8 = 1;

/// A challenge's login, as the store keeps it (JSON, then sealed).
#[derive(Serialize, Deserialize)]
pub(in crate::engine) struct Handover {
    v: u8,
    pub(super) user: String,
    pub(super) nas_user: String,
    /// The `[[client]]` the challenge answered: the answer must come from
    /// the client of that name at the other node too.
    pub(super) client: String,
    client_ip: Option<String>,
    accept: Option<Accepted>,
    plan: Plan,
    origin: Option<Remembered>,
    attempts: u32,
    /// The challenge's deadline, Unix seconds.
    deadline: i64,
    asked: Kind,
}

impl std::fmt::Debug for Handover {
    // It may hold an SMS code.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handover")
            .field("user", &self.user)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// The upstream's Access-Accept, to be relayed at the end.
#[derive(Serialize, Deserialize)]
struct Accepted {
    /// The `[[upstream]]` that sent it: its secret decrypts its attributes.
    upstream: String,
    bytes: Vec<u8>,
    auth: Authenticator,
}

/// What the challenge asked for.
#[derive(Serialize, Deserialize)]
enum Kind {
    Code,
    Fallback,
    Sms {
        id: [u8; 16],
        /// The provider that sent it, by name.
        provider: String,
        code: Zeroizing<String>,
        pin_mode: bool,
        /// The SMS verification's own deadline, Unix seconds.
        until: i64,
    },
    /// A push with number matching, whose number the NAS shows.
    Number {
        id: [u8; 16],
        /// The provider that sent the push, by name.
        provider: String,
        number: u8,
        /// The push's own deadline, Unix seconds.
        until: i64,
    },
}

impl Engine {
    /// The login of challenge `c`, for the store; `None` if it cannot be
    /// written (then the challenge stays at this node).
    pub(super) fn hand_over(
        &self,
        s: &Session,
        f: &Factor,
        c: &Challenge,
    ) -> Option<Zeroizing<Vec<u8>>> {
        let asked = match &c.asked {
            Asked::Code => Kind::Code,
            Asked::Fallback => Kind::Fallback,
            Asked::Sms(oob) => Kind::Sms {
                id: oob.vid,
                provider: s.settings.providers.get(oob.provider)?.name.clone(),
                code: oob.sms_code.clone()?,
                pin_mode: oob.pin_mode,
                until: self.logins.unix_at(oob.deadline),
            },
            Asked::Number(oob) => Kind::Number {
                id: oob.vid,
                provider: s.settings.providers.get(oob.provider)?.name.clone(),
                number: oob.number?,
                until: self.logins.unix_at(oob.deadline),
            },
        };
        let h = Handover {
            v: VERSION,
            user: s.user.clone(),
            nas_user: s.nas_user.clone(),
            client: s.client.name.clone(),
            client_ip: s.client_ip.clone(),
            accept: s.accept.as_ref().map(|a| Accepted {
                upstream: a.upstream.name.clone(),
                bytes: a.bytes.clone(),
                auth: a.auth,
            }),
            plan: f.plan.clone(),
            origin: f.origin.clone(),
            attempts: f.attempts,
            deadline: self.logins.unix_at(c.deadline),
            asked,
        };
        serde_json::to_vec(&h).ok().map(Zeroizing::new)
    }

    /// Opens a handed-over login; `None` for one this node cannot read.
    pub(super) fn handed(bytes: &[u8]) -> Option<Handover> {
        serde_json::from_slice::<Handover>(bytes)
            .ok()
            .filter(|h| h.v == VERSION)
    }

    /// Carries `h` on at this node: the session `s` (of the answer that
    /// came here) becomes the login's, and its second factor and
    /// challenge are rebuilt with what the store says of the user now.
    /// `Err` says why it cannot (an upstream or provider this node does
    /// not have).
    pub(super) fn take_over(
        &self,
        now: Instant,
        s: &mut Session,
        h: Handover,
        user: crate::store::login::Enrollment,
        state: [u8; STATE_LEN],
    ) -> Result<(Factor, Challenge), &'static str> {
        let accept = match h.accept {
            None => None,
            Some(a) => Some(UpstreamAccept {
                upstream: self
                    .upstream_named(&a.upstream)
                    .ok_or("the upstream that accepted is not configured here")?,
                bytes: a.bytes,
                auth: a.auth,
            }),
        };
        s.user = h.user;
        s.nas_user = h.nas_user;
        s.client_ip = h.client_ip;
        s.accept = accept;
        let asked = match h.asked {
            Kind::Code => Asked::Code,
            Kind::Fallback => Asked::Fallback,
            Kind::Sms {
                id,
                provider,
                code,
                pin_mode,
                until,
            } => Asked::Sms(Oob {
                vid: id,
                method: Method::Sms,
                provider: provider_named(s, &provider)
                    .ok_or("the provider that sent the SMS is not configured here")?,
                delivered: true,
                deadline: self.logins.instant_at(now, until),
                sms_code: Some(code),
                number: None,
                pin_mode,
            }),
            Kind::Number {
                id,
                provider,
                number,
                until,
            } => Asked::Number(Oob {
                vid: id,
                method: Method::Push,
                provider: provider_named(s, &provider)
                    .ok_or("the provider that sent the push is not configured here")?,
                delivered: true,
                deadline: self.logins.instant_at(now, until),
                sms_code: None,
                number: Some(number),
                pin_mode: false,
            }),
        };
        let f = Factor {
            user,
            plan: h.plan,
            origin: h.origin,
            attempts: h.attempts,
        };
        let c = Challenge {
            state,
            deadline: self.logins.instant_at(now, h.deadline),
            asked,
            // Taken from the store, by this node.
            kept: false,
        };
        Ok((f, c))
    }
}

/// The place in the session's providers of the one named `name`.
fn provider_named(s: &Session, name: &str) -> Option<usize> {
    s.settings.providers.iter().position(|p| p.name == name)
}

impl Engine {
    /// The `[[upstream]]` named `name` in this node's configuration.
    fn upstream_named(&self, name: &str) -> Option<std::sync::Arc<crate::config::Upstream>> {
        self.upstreams
            .iter()
            .find(|u| u.cfg.name == name)
            .map(|u| u.cfg.clone())
    }

    /// The store answered for a State this node did not know: the login
    /// another node handed over, or nothing (used already, or expired).
    pub(super) fn challenge_fetched(
        &mut self,
        now: Instant,
        s: Session,
        state: [u8; STATE_LEN],
        handed: Option<crate::store::login::Handed>,
    ) {
        let h = handed.and_then(|h| Self::handed(&h.0));
        let Some(h) = h else {
            let outcome = Outcome::reject(ResultCode::FailedOathTokenTimeout)
                .because("unknown or expired State");
            return self.end(now, s, Ends::none(), outcome);
        };
        let req = s.request();
        let same_user = super::user_name(&req).as_deref() == Some(h.nas_user.as_str());
        if h.client != s.client.name || !same_user {
            let outcome = Outcome::reject(ResultCode::SuccessInvalidInput)
                .because("State presented by another client or user");
            return self.end(now, s, Ends::none(), outcome);
        }
        self.stats.inc(Counter::MfaTakenOver);
        let op = StoreOp::Facts {
            user: h.user.clone(),
        };
        let stage = Stage::Resuming(Box::new(h), state);
        self.ask_store(now, Login { s, stage }, op);
    }

    /// The user's tokens and phone, read afresh: the handed-over login
    /// carries on as if it had been this node's.
    pub(super) fn challenge_resumed(
        &mut self,
        now: Instant,
        mut s: Session,
        h: Handover,
        state: [u8; STATE_LEN],
        facts: Option<crate::store::UserFacts>,
    ) {
        let (_, user) = crate::store::UserFacts::split(facts);
        match self.take_over(now, &mut s, h, user, state) {
            // An SMS code sent by another node: its verification is this
            // node's from now on (it ends it, and the user stays busy
            // until it does).
            Ok((f, c)) if matches!(c.asked, Asked::Sms(_)) => self.move_here(now, s, f, c),
            Ok((f, c)) => self.answered(now, s, f, c),
            Err(why) => {
                let outcome = Outcome::reject(ResultCode::FailedServerError).because(why);
                self.end(now, s, Ends::none(), outcome)
            }
        }
    }
}
