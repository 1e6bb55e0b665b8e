//! What a login is: its [`Session`] (whose login, which request, under
//! which rules) and its [`Stage`], a state machine whose every state
//! carries what the login has learnt on its way there and nothing else.
//!
//! ```text
//! Password ──► Facts ──► policy::decide ──► end (skip, deny, busy, remembered…)
//! (local)        ▲           │
//! Directory ─────┤           │
//! (ldap)         │           │
//!                │           ├──► Claim ──► end (bypassed, or grace after a push)
//!                └───────────┼──────┘ (claim lost: the facts are read again)
//!                            ├──► Verify ◄──► Challenged(Code) ──► end
//!                            │                  └──► Starting (a method named)
//!                            └──► Starting ──► end (busy at another node)
//!                                   └──► OutOfBand ──► end (approved, denied, no answer…)
//!                                   ├──► Challenged(Number) ──► Moving ──► OutOfBand
//!                                   ├──► Challenged(Sms) ◄──► Pin ──► end
//!                                   ├──► Pin (a call's PIN) ──► end
//!                                   └──► Challenged(Fallback) ◄──► Verify ──► end
//! ```
//!
//! Each step is an engine method that takes the session and its stage's
//! data by value and either ends the login ([`Engine::finish`]) or parks
//! it in its next stage. A stage's data cannot outlive it: the code a push
//! fell back from, the SMS code of a verification already answered, a
//! challenge State already used are gone with the stage that held them.
//!
//! A challenge whose deadline passes is `Expiring` while the store says
//! whether another node took its answer over; one taken over from another
//! node that carries a verification (an SMS code, a push's number) is
//! `Moving` while the store records this node as the one holding it.
//!
//! [`Engine::finish`]: crate::engine::Engine

use std::time::Instant;

use zeroize::Zeroizing;

use super::oob::VerificationId;
use super::{Current, STATE_LEN, UpstreamAccept, client_ip, user_name};
use crate::config;
use crate::engine::clients::ClientRef;
use crate::mfa::{Method, Remembered};
use crate::policy::Plan;
use crate::radius::Packet;
use crate::secret::Secret;
use crate::store::login::Enrollment;

use std::sync::Arc;

use super::Settings;

/// Whose login it is and which request it answers: what every stage has.
#[derive(Debug)]
pub(in crate::engine) struct Session {
    /// The login's id in [`super::Logins`]: its store jobs, deadlines,
    /// State and verification point at it.
    pub(in crate::engine) id: u64,
    /// Whose second factor this is: the User-Name of the upstream's
    /// Access-Accept when it has one (the inner identity of PEAP or TTLS,
    /// which NPS and FreeRADIUS return), else the one the NAS sent.
    pub(in crate::engine) user: String,
    /// The User-Name the NAS sent, which a challenge answer must repeat.
    pub(super) nas_user: String,
    /// The client whose request the login answers now: answers are signed
    /// with this entry's secret.
    pub(in crate::engine) client: ClientRef,
    /// The rules in force when the login started; it ends under them.
    pub(in crate::engine) settings: Arc<Settings>,
    pub(super) current: Current,
    /// The upstream's Access-Accept and what it was keyed with; `None` when
    /// the first factor was checked locally.
    pub(super) accept: Option<UpstreamAccept>,
    /// The Calling-Station-Id of the first request, for the audit trail.
    pub(in crate::engine) client_ip: Option<String>,
}

impl Session {
    /// A session answering `current`.
    pub(super) fn new(
        id: u64,
        client: ClientRef,
        settings: Arc<Settings>,
        current: Current,
        accept: Option<UpstreamAccept>,
    ) -> Session {
        let req = current.packet();
        let user = user_name(&req).unwrap_or_default();
        Session {
            id,
            nas_user: user.clone(),
            client_ip: client_ip(&req),
            user,
            client,
            settings,
            current,
            accept,
        }
    }

    /// The request the login answers now.
    pub(super) fn request(&self) -> Packet<'_> {
        self.current.packet()
    }

    /// The prompts and messages in `language`, else the default ones.
    pub(super) fn texts(&self, language: Option<&str>) -> &config::Texts {
        self.settings.cfg.texts(language)
    }
}

/// A login between two steps, as [`super::Logins`] keeps it.
#[derive(Debug)]
pub(in crate::engine) struct Login {
    pub(in crate::engine) s: Session,
    pub(in crate::engine) stage: Stage,
}

/// Where a login is.
#[derive(Debug)]
pub(in crate::engine) enum Stage {
    /// Local first factor: the store checks the password.
    Password(Given),
    /// A first factor from the directory: the shell binds as the user
    /// (the check's id is the login's); not waited for after the instant.
    Directory(Given, Instant),
    /// The store reads what it knows of the user. `lost`: claims that
    /// failed, which are not made again.
    Facts { given: Given, lost: Lost },
    /// The policy let a one-time bypass, or the grace after an out-of-band
    /// success, through: the store claims it.
    Claim(Given, Claiming, Lost),
    /// The store takes the user's one verification slot (at every node)
    /// before the verification is sent.
    Starting(Factor, Oob),
    /// An answer whose State this node does not know: the store is asked
    /// for the challenge (sent by another node).
    Fetching([u8; STATE_LEN]),
    /// The challenge was handed over: the store reads the user's tokens
    /// and phone before the answer is checked.
    Resuming(Box<super::handover::Handover>, [u8; STATE_LEN]),
    /// The store checks an OATH code.
    Verify(Factor, CodeFrom),
    /// An Access-Challenge is out; its answer is awaited.
    Challenged(Factor, Challenge),
    /// Push or call, or an SMS being sent: the NAS request is held.
    OutOfBand(Factor, Oob),
    /// The NAS answered a challenge carrying a verification (a push's
    /// number, or an SMS code sent by another node): the store records
    /// that this node holds it now, and hands over an answer kept for it.
    Moving(Factor, Challenge),
    /// A challenge's deadline passed: the store says whether another node
    /// took its answer over (then that node ends the login).
    Expiring(Factor, Challenge),
    /// Its answer came here: the store gives this node the challenge it
    /// kept there, unless another node took it first.
    Taking(Factor, Challenge),
    /// The store checks a PIN: a call's, or the one after a right SMS code.
    Pin(Factor, Oob),
}

impl Stage {
    /// What a login ending in this stage leaves for its last step: its
    /// second factor (to remember, and for the audit trail's method), its
    /// verification (to release) and its State (to forget).
    pub(super) fn into_ends(self) -> Ends {
        let (factor, oob, state) = match self {
            Stage::Password(_)
            | Stage::Directory(..)
            | Stage::Facts { .. }
            | Stage::Claim(..)
            | Stage::Fetching(_)
            | Stage::Resuming(..) => (None, None, None),
            Stage::Verify(f, _) => (Some(f), None, None),
            Stage::OutOfBand(f, o) | Stage::Pin(f, o) | Stage::Starting(f, o) => {
                (Some(f), Some(o), None)
            }
            Stage::Challenged(f, c)
            | Stage::Moving(f, c)
            | Stage::Expiring(f, c)
            | Stage::Taking(f, c) => {
                let state = Some(c.state);
                match c.asked {
                    Asked::Code | Asked::Fallback => (Some(f), None, state),
                    Asked::Sms(o) | Asked::Number(o) => (Some(f), Some(o), state),
                }
            }
        };
        Ends { factor, oob, state }
    }
}

/// What a login leaves when it ends.
pub(super) struct Ends {
    pub(super) factor: Option<Factor>,
    pub(super) oob: Option<Oob>,
    pub(super) state: Option<[u8; STATE_LEN]>,
}

impl Ends {
    /// A login that ends before a second factor started.
    pub(super) fn none() -> Ends {
        Ends {
            factor: None,
            oob: None,
            state: None,
        }
    }

    /// A second factor that ends before a verification or challenge.
    pub(super) fn factor(f: Factor) -> Ends {
        Ends {
            factor: Some(f),
            ..Ends::none()
        }
    }

    /// The method for the audit trail: the out-of-band one, else OATH.
    pub(super) fn method(&self) -> Method {
        self.oob.as_ref().map_or(Method::Totp, |o| o.method)
    }
}

/// What a login claims from the store on the policy's word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::engine) enum Claiming {
    Bypass,
    Grace,
}

/// Claims a login lost (another login used it first, or the user was
/// blocked since): the facts are read again and the policy decides without
/// them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(in crate::engine) struct Lost {
    pub(super) bypass: bool,
    pub(super) grace: bool,
}

impl Lost {
    pub(super) fn and(self, c: Claiming) -> Lost {
        match c {
            Claiming::Bypass => Lost {
                bypass: true,
                ..self
            },
            Claiming::Grace => Lost {
                grace: true,
                ..self
            },
        }
    }
}

/// What the request gave for the policy's decision.
#[derive(Debug, Default)]
pub(in crate::engine) struct Given {
    /// The groups the upstream's Access-Accept named.
    pub(super) groups: Vec<String>,
    /// A one-time code typed after the password and the separator.
    pub(super) inline_code: Option<Secret>,
}

/// A second factor the policy asked for, as it runs.
#[derive(Debug)]
pub(in crate::engine) struct Factor {
    pub(super) user: Enrollment,
    pub(super) plan: Plan,
    /// Where the login came from, when its policy remembers verified
    /// logins (other logins allocate nothing for it).
    pub(super) origin: Option<Remembered>,
    /// Wrong answers so far in this round (a fallback starts a new one).
    pub(super) attempts: u32,
}

impl Factor {
    /// The policy's language, else the user's.
    pub(super) fn language(&self) -> Option<&str> {
        self.plan
            .language
            .as_deref()
            .or(self.user.language.as_deref())
    }
}

/// Where an OATH code being checked came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::engine) enum CodeFrom {
    /// After the password and the separator: a wrong one is not asked
    /// again.
    Inline,
    /// The answer to a challenge that expires at `deadline`; `fallback`
    /// after a push or call failed.
    Challenge { fallback: bool, deadline: Instant },
}

/// An Access-Challenge that is out.
#[derive(Debug)]
pub(in crate::engine) struct Challenge {
    /// Its State, single use.
    pub(super) state: [u8; STATE_LEN],
    /// Its answer is refused after this.
    pub(super) deadline: Instant,
    pub(super) asked: Asked,
    /// Kept in the store, for another node to take the answer over.
    pub(super) kept: bool,
}

impl Challenge {
    /// The verification it carries: an SMS code's, or a push's number.
    pub(super) fn oob(&self) -> Option<&Oob> {
        match &self.asked {
            Asked::Sms(o) | Asked::Number(o) => Some(o),
            Asked::Code | Asked::Fallback => None,
        }
    }
}

/// What a challenge asks for.
#[derive(Debug)]
pub(in crate::engine) enum Asked {
    /// An OATH code, or the name of another method.
    Code,
    /// An OATH code, after a push or call was denied or unanswered.
    Fallback,
    /// The code of the SMS sent (then the PIN, in PIN mode).
    Sms(Oob),
    /// Number matching: the push is pending, the NAS shows the number. A
    /// phone's answer that comes first waits in the store for the NAS's,
    /// at whichever node the NAS sends it.
    Number(Oob),
}

/// An out-of-band verification.
pub(in crate::engine) struct Oob {
    pub(super) vid: VerificationId,
    pub(super) method: Method,
    /// Its place in the session's providers.
    pub(super) provider: usize,
    /// The provider took it.
    pub(super) delivered: bool,
    /// Its answer is not awaited after this.
    pub(super) deadline: Instant,
    pub(super) sms_code: Option<Zeroizing<String>>,
    /// Push number matching: the number the user must choose in the app.
    pub(super) number: Option<u8>,
    /// The user has a PIN: a call asks for it, an SMS answer carries it.
    pub(super) pin_mode: bool,
}

impl std::fmt::Debug for Oob {
    // The SMS code is a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oob")
            .field("method", &self.method)
            .field("provider", &self.provider)
            .field("delivered", &self.delivered)
            .finish_non_exhaustive()
    }
}
