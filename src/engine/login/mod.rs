//! A login: the second factor inside the engine, from the first factor's
//! Accept to the final answer.
//!
//! Its steps, each in the file named after it:
//! - here: the login itself ([`Login`], [`Logins`]), its start (after an
//!   upstream Access-Accept, or a local password) and the store's answers,
//!   routed by the phase the login waits in; every question to the store has
//!   a deadline (`STORE_LIMIT`);
//! - `decide.rs`: the request's facts beside the store's, `policy::decide`,
//!   and what its decision starts;
//! - `challenge.rs`: Access-Challenges, their answers, and code checks;
//! - `oob.rs`: push, phone call and SMS through a provider, with their
//!   callbacks, PINs, fraud reports and fallback;
//! - `finish.rs`: the end — one audit record, then the answer, held until
//!   the record is stored; expiry of answers, challenges and questions;
//! - `outcome.rs`: how a login ends (accept or reject, code and reason);
//! - `address.rs`, `settings.rs`: where a login comes from (user address,
//!   groups), and the settings it started under (a reload changes neither).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use zeroize::Zeroizing;

use super::clients::ClientRef;
use super::dedup::DedupKey;
use super::warn::Topic;
use super::{Counter, Engine, HashMap, NasRequest, Transmit};
use crate::config;
use crate::mfa::Method;
use crate::mfa::ResultCode;
use crate::policy::Plan;
use crate::radius::{Authenticator, Packet, attr, crypto};
use crate::store::login::{StoreAnswer, StoreOp, UserFacts};

mod address;
mod challenge;
mod decide;
mod finish;
mod oob;
mod outcome;
mod settings;

pub use address::GroupSource;
pub(super) use finish::{Answering, Final};
use oob::VerificationId;
pub use oob::{CallbackStatus, Delivery, DeliveryOutcome, FraudReport, sign, signature_ok};
pub(super) use outcome::Outcome;
pub(super) use settings::Settings;

const TAG_LEN: usize = 4;
const STATE_LEN: usize = TAG_LEN + 16;
/// Logins waiting for a second factor, at most.
const MAX_LOGINS: usize = 100_000;
/// How long a login waits for the store to answer one of its questions.
/// A batch commits in milliseconds and a password check takes tens of
/// them; a store stalled longer (a hung disk, a dead worker) must not hold
/// logins for ever.
const STORE_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Work for the store, run off the packet path. `id` comes back with the
/// answer in [`Engine::handle_store`].
#[derive(Debug)]
pub struct StoreJob {
    pub id: u64,
    pub op: StoreOp,
    /// A login waits for the answer; `false` for fire-and-forget jobs
    /// (audit, denial, block), whose answers need not come back.
    pub wanted: bool,
    /// When the engine asked (Unix seconds, from the clock the shell gave
    /// it): the store decides code windows, lockouts, blocks and bypass
    /// expiry at this time, never on a clock of its own.
    pub at: crate::store::UnixTime,
}

/// The NAS request a login is answering now.
#[derive(Debug)]
struct Current {
    listener: u16,
    from: SocketAddr,
    request: Vec<u8>,
    dedup: DedupKey,
}

#[derive(Debug)]
struct UpstreamAccept {
    bytes: Vec<u8>,
    /// The upstream as it answered: its attributes are decrypted with
    /// this secret, whatever a reload did since.
    upstream: Arc<config::Upstream>,
    auth: Authenticator,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Local first factor: the password is being checked.
    Password,
    /// The store reads what it knows of the user.
    Facts,
    /// The store claims a one-time bypass.
    Claim,
    Verify,
    Challenged([u8; STATE_LEN]),
    /// Push or call (or an SMS being sent): the NAS request is held.
    OutOfBand,
    /// A call's PIN is being checked by the store.
    Pin,
}

/// An out-of-band verification of a login.
pub(super) struct Oob {
    pub(super) vid: VerificationId,
    pub(super) method: Method,
    pub(super) provider: usize,
    /// The provider took it.
    pub(super) delivered: bool,
    pub(super) sms_code: Option<Zeroizing<String>>,
    /// Push number matching: the number the user must choose in the app.
    pub(super) number: Option<u8>,
    /// The user has a PIN: a call asks for it, an SMS answer carries it.
    pub(super) pin_mode: bool,
    /// Number matching: the phone answered while the NAS still shows the
    /// challenge; applied when the NAS sends the answer.
    pub(super) outcome: Option<oob::PhoneAnswer>,
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

#[derive(Debug)]
pub(super) struct Login {
    /// Whose second factor this is: the User-Name of the upstream's
    /// Access-Accept when it has one (the inner identity of PEAP or TTLS,
    /// which NPS and FreeRADIUS return), else the one the NAS sent.
    pub(super) user: String,
    /// The User-Name the NAS sent, which a challenge answer must repeat.
    nas_user: String,
    /// The client whose request the login answers now: answers are signed
    /// with this entry's secret.
    pub(super) client: ClientRef,
    /// The rules in force when the login started; it ends under them.
    pub(super) settings: Arc<Settings>,
    current: Current,
    /// The upstream's Access-Accept and what it was keyed with; `None` when
    /// the first factor was checked locally.
    accept: Option<UpstreamAccept>,
    pub(super) eap: bool,
    inline_code: Option<crate::secret::Secret>,
    inline: bool,
    pub(super) attempts: u32,
    pub(super) deadline: Option<Instant>,
    pub(super) client_ip: Option<String>,
    pub(super) phase: Phase,
    /// What the store knows of the user; `None` for an unknown user.
    pub(super) profile: Option<UserFacts>,
    /// How the second factor runs, once decided.
    pub(super) plan: Option<Plan>,
    /// The groups the upstream's Access-Accept named.
    upstream_groups: Vec<String>,
    /// A bypass claim failed: the facts were read again, and no second
    /// claim is made.
    claim_lost: bool,
    /// Where the login came from (authentication type, application,
    /// address), set when its policy was decided.
    origin: Option<crate::mfa::Remembered>,
    pub(super) oob: Option<Oob>,
    /// The challenge is a fallback after push or call.
    pub(super) fallback: bool,
    /// Answer a reject at once, not after `reject_delay` (BUSY).
    immediate: bool,
    /// Reply-Message of the final reject.
    reply_message: Option<String>,
}

impl Login {
    /// A login answering `current`.
    fn new(
        client: ClientRef,
        settings: Arc<Settings>,
        current: Current,
        accept: Option<UpstreamAccept>,
        inline_code: Option<crate::secret::Secret>,
        phase: Phase,
    ) -> Login {
        let req =
            Packet::parse(&current.request).expect("stored requests were validated on arrival");
        let user = user_name(&req).unwrap_or_default();
        Login {
            nas_user: user.clone(),
            user,
            client,
            settings,
            client_ip: client_ip(&req),
            eap: req.has(attr::EAP_MESSAGE),
            accept,
            inline: inline_code.is_some(),
            inline_code,
            attempts: 0,
            deadline: None,
            phase,
            current,
            profile: None,
            plan: None,
            upstream_groups: Vec::new(),
            origin: None,
            claim_lost: false,
            oob: None,
            fallback: false,
            immediate: false,
            reply_message: None,
        }
    }

    /// A login for a proxied NAS request; also returns the password the NAS
    /// sent before an inline code, if any.
    fn from_nas(
        mut nas: NasRequest,
        settings: Arc<Settings>,
        accept: Option<UpstreamAccept>,
        phase: Phase,
    ) -> (Login, Option<crate::secret::Secret>) {
        let current = Current {
            listener: nas.listener,
            from: nas.from,
            request: std::mem::take(&mut nas.request),
            dedup: nas.dedup,
        };
        (
            Login::new(
                nas.client,
                settings,
                current,
                accept,
                nas.inline_code.take(),
                phase,
            ),
            nas.password.take(),
        )
    }
}

/// The engine's second-factor state.
#[derive(Debug)]
pub(super) struct Logins {
    /// The rules new logins start under (a reload replaces them).
    pub(super) settings: Arc<Settings>,
    /// `[mfa] enabled`, as at the start: it decides whether a store runs.
    enabled: bool,
    server: String,
    tag: [u8; TAG_LEN],
    pub(super) logins: HashMap<u64, Login>,
    states: HashMap<[u8; STATE_LEN], u64>,
    jobs: HashMap<u64, u64>,
    /// When each job a login waits for stops being waited for.
    store_deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    next_id: u64,
    out: VecDeque<StoreJob>,
    pub(super) deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    delayed: BinaryHeap<Reverse<(Instant, u64)>>,
    delayed_tx: HashMap<u64, (Transmit, DedupKey)>,
    /// Final answers waiting for their audit record, by its store job.
    held: HashMap<u64, finish::Held>,
    /// When each held answer stops waiting.
    held_deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    /// Out-of-band verifications waiting for a callback or delivery.
    pub(super) verifs: HashMap<VerificationId, u64>,
    /// Users with a verification pending (lowercase) → login.
    pub(super) busy: HashMap<String, u64>,
    /// (user, client name) → until when an out-of-band success lets them
    /// in.
    pub(super) grace: HashMap<(String, String), Instant>,
    pub(super) deliveries: VecDeque<Delivery>,
    pub(super) fraud: VecDeque<FraudReport>,
    /// An instant and the Unix time then, for `expires_at` in deliveries.
    wall: Option<(Instant, i64)>,
}

impl Logins {
    pub(super) fn new(
        config: &config::Config,
        dictionary: &crate::radius::dict::Dictionary,
        tag: [u8; TAG_LEN],
    ) -> Logins {
        Logins {
            settings: Arc::new(Settings::new(config, dictionary)),
            enabled: config.mfa.enabled,
            server: config.server.name.clone(),
            tag,
            logins: HashMap::default(),
            states: HashMap::default(),
            jobs: HashMap::default(),
            store_deadlines: BinaryHeap::new(),
            next_id: 0,
            out: VecDeque::new(),
            deadlines: BinaryHeap::new(),
            delayed: BinaryHeap::new(),
            delayed_tx: HashMap::default(),
            held: HashMap::default(),
            held_deadlines: BinaryHeap::new(),
            verifs: HashMap::default(),
            busy: HashMap::default(),
            grace: HashMap::default(),
            deliveries: VecDeque::new(),
            fraud: VecDeque::new(),
            wall: None,
        }
    }

    /// Unix seconds at `t`, from the anchor the shell gave.
    pub(super) fn unix_at(&self, t: Instant) -> i64 {
        match self.wall {
            Some((at, unix)) if t >= at => unix + (t - at).as_secs() as i64,
            Some((at, unix)) => unix - (at - t).as_secs() as i64,
            None => 0,
        }
    }

    /// Whether the second factor runs at all.
    pub(super) fn enabled(&self) -> bool {
        self.enabled
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Whether `state` is one of this engine's challenge States.
    pub(super) fn is_ours(&self, state: &[u8]) -> bool {
        state.len() == STATE_LEN && state[..TAG_LEN] == self.tag
    }

    pub(super) fn next_timeout(&self) -> Option<Instant> {
        let a = self.deadlines.peek().map(|Reverse((t, _))| *t);
        let b = self.delayed.peek().map(|Reverse((t, _))| *t);
        let c = self.held_deadlines.peek().map(|Reverse((t, _))| *t);
        let d = self.store_deadlines.peek().map(|Reverse((t, _))| *t);
        a.into_iter().chain(b).chain(c).chain(d).min()
    }

    pub(super) fn len(&self) -> usize {
        self.logins.len()
    }
}

/// Splits `password<sep>code` when what follows the last separator is a
/// 6- or 8-digit code.
pub(super) fn split_inline(
    password: &[u8],
    sep: &str,
) -> Option<(crate::secret::Secret, crate::secret::Secret)> {
    let text = std::str::from_utf8(password).ok()?;
    let at = text.rfind(sep)?;
    let code = &text[at + sep.len()..];
    if !(code.len() == 6 || code.len() == 8) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((
        crate::secret::Secret::new(text.as_bytes()[..at].to_vec()),
        crate::secret::Secret::new(code.as_bytes().to_vec()),
    ))
}

pub(super) fn user_name(p: &Packet<'_>) -> Option<String> {
    p.find(attr::USER_NAME)
        .and_then(|a| std::str::from_utf8(a.value).ok())
        .map(str::to_owned)
}

pub(super) fn client_ip(p: &Packet<'_>) -> Option<String> {
    p.find(attr::CALLING_STATION_ID)
        .and_then(|a| std::str::from_utf8(a.value).ok())
        .map(str::to_owned)
}

impl Engine {
    /// Tells the engine the wall-clock time at `now` (Unix seconds); it
    /// never reads a clock itself. Used for `expires_at` in deliveries.
    pub fn set_wall_clock(&mut self, now: Instant, unix: i64) {
        self.logins.wall = Some((now, unix));
    }

    /// The texts in the language of `login`'s policy, else its user's.
    pub(super) fn texts<'a>(&self, login: &'a Login) -> &'a config::Texts {
        let language = login
            .plan
            .as_ref()
            .and_then(|p| p.language.as_deref())
            .or_else(|| login.profile.as_ref().and_then(|p| p.language.as_deref()));
        login.settings.cfg.texts(language)
    }

    /// The store jobs queued since the last call, oldest first.
    pub fn poll_store_jobs(&mut self) -> Vec<StoreJob> {
        self.logins.out.drain(..).collect()
    }

    /// Logins waiting for their second factor.
    pub fn logins_pending(&self) -> usize {
        self.logins.len()
    }

    /// Queues `op` for the store without a login waiting for it (a denial,
    /// a block, an audit record). Audit records are answered all the same:
    /// a final answer may wait for one.
    pub(super) fn store_job(&mut self, now: Instant, op: StoreOp) -> u64 {
        let id = self.logins.id();
        let wanted = matches!(op, StoreOp::Audit(_));
        let at = self.logins.unix_at(now);
        self.logins.out.push_back(StoreJob { id, op, wanted, at });
        id
    }

    /// The shell could not hand `jobs` to the store (its queue is full, or
    /// its thread is gone): each is answered as failed.
    pub fn store_refused(&mut self, now: Instant, jobs: Vec<StoreJob>) {
        for job in jobs {
            self.stats.inc(Counter::StoreQueueFull);
            if job.wanted {
                self.handle_store(now, job.id, StoreAnswer::Failed);
            } else if let Some(more) = self.throttle.allow(now, Topic::StoreJobLost) {
                // A fraud report's block, a wrong PIN's denial, a
                // remembered login: nobody waits for it, so say it here.
                tracing::error!(job = ?job.op, more, "the store could not take this job: it is lost");
            }
        }
    }

    /// Parks `login` in `phase` until the store answers `op`, or until
    /// [`STORE_LIMIT`] has passed: then it ends as `FAILED_SERVER_ERROR`.
    pub(super) fn ask_store(
        &mut self,
        now: Instant,
        lid: u64,
        mut login: Login,
        phase: Phase,
        op: StoreOp,
    ) {
        login.phase = phase;
        self.logins.logins.insert(lid, login);
        let id = self.logins.id();
        self.logins.jobs.insert(id, lid);
        self.logins.out.push_back(StoreJob {
            id,
            op,
            wanted: true,
            at: self.logins.unix_at(now),
        });
        self.logins
            .store_deadlines
            .push(Reverse((now + STORE_LIMIT, id)));
    }

    /// The upstream accepted `nas`: start the second factor instead of
    /// relaying the accept.
    pub(super) fn start_login(
        &mut self,
        now: Instant,
        upstream: Arc<config::Upstream>,
        reply: &Packet<'_>,
        upstream_auth: &Authenticator,
        nas: NasRequest,
    ) {
        let accept = UpstreamAccept {
            bytes: reply.as_bytes().to_vec(),
            upstream,
            auth: *upstream_auth,
        };
        let settings = self.logins.settings.clone();
        let (mut login, _) = Login::from_nas(nas, settings, Some(accept), Phase::Facts);
        // Inside EAP, the Accept's User-Name is the inner identity (the
        // outer one is often "anonymous"). Only there: for PAP and the like
        // an upstream that rewrites the name (DOMAIN\alice, a realm) must
        // not change whose second factor runs. RFC 2865 allows one
        // User-Name in an Accept; a FreeRADIUS that copies the inner one
        // without removing the outer sends two, the inner last.
        let inner = reply
            .attributes()
            .filter(|a| a.typ == attr::USER_NAME)
            .last()
            .and_then(|a| std::str::from_utf8(a.value).ok())
            .filter(|n| login.eap && !n.is_empty());
        if let Some(inner) = inner {
            login.user = inner.to_owned();
        }
        if let Some(g) = &login.settings.groups {
            login.upstream_groups = g.groups(reply);
        }
        let op = StoreOp::Facts {
            user: login.user.clone(),
        };
        self.begin(now, login, op);
    }

    /// `[primary] mode = "local"`: the password is checked by the store,
    /// then the login continues as after an upstream Access-Accept.
    pub(super) fn local_first_factor(&mut self, now: Instant, nas: NasRequest) {
        let secret = nas.client.secret.clone();
        let settings = self.logins.settings.clone();
        let (login, password) = Login::from_nas(nas, settings, None, Phase::Password);
        let req = Packet::parse(&login.current.request)
            .expect("stored requests were validated on arrival");
        let password = password.or_else(|| {
            req.find(attr::USER_PASSWORD)
                .and_then(|a| {
                    crypto::unhide_password(a.value, secret.expose(), req.authenticator()).ok()
                })
                .map(|p| crate::secret::Secret::new(p.to_vec()))
        });
        let Some(password) = password else {
            let id = self.logins.id();
            return self.finish(
                now,
                id,
                login,
                Outcome::reject(ResultCode::ConfigIssue)
                    .because("local mode checks PAP passwords only"),
            );
        };
        let op = StoreOp::Password {
            user: login.user.clone(),
            password,
        };
        self.begin(now, login, op);
    }

    /// Registers a new login and sends its first store job, unless it
    /// cannot be served.
    fn begin(&mut self, now: Instant, login: Login, op: StoreOp) {
        let id = self.logins.id();
        if login.user.is_empty() {
            return self.finish(
                now,
                id,
                login,
                Outcome::reject(ResultCode::FailedServerError)
                    .because("the request has no User-Name"),
            );
        }
        if self.logins.len() >= MAX_LOGINS {
            return self.finish(
                now,
                id,
                login,
                Outcome::reject(ResultCode::FailedAuthenticationThrottled)
                    .because("too many logins in progress"),
            );
        }
        let phase = login.phase;
        self.ask_store(now, id, login, phase, op);
    }

    /// The store answered job `id`.
    pub fn handle_store(&mut self, now: Instant, id: u64, answer: StoreAnswer) {
        if self.audit_stored(now, id, &answer) {
            return;
        }
        let Some(lid) = self.logins.jobs.remove(&id) else {
            return;
        };
        let Some(mut login) = self.logins.logins.remove(&lid) else {
            return;
        };
        match (login.phase, answer) {
            (Phase::Password, StoreAnswer::Password(true)) => {
                let user = login.user.clone();
                self.ask_store(now, lid, login, Phase::Facts, StoreOp::Facts { user });
            }
            (Phase::Password, StoreAnswer::Password(false)) => self.reject_first_factor(now, login),
            (Phase::Facts, StoreAnswer::Facts(facts)) => {
                login.profile = facts.map(|f| *f);
                if login.claim_lost {
                    // Once is enough: no second claim.
                    if let Some(p) = login.profile.as_mut() {
                        p.bypass_waiting = false;
                    }
                }
                self.decide(now, lid, login);
            }
            (Phase::Claim, StoreAnswer::Claimed(true)) => self.finish(
                now,
                lid,
                login,
                Outcome::accept(ResultCode::SuccessBypassedAuth).because("one-time bypass"),
            ),
            (Phase::Claim, StoreAnswer::Claimed(false)) => {
                // Another login used it first, or the user was blocked
                // since: read the facts again, and decide without it.
                login.claim_lost = true;
                let user = login.user.clone();
                self.ask_store(now, lid, login, Phase::Facts, StoreOp::Facts { user });
            }
            (Phase::Pin, StoreAnswer::Pin(right)) => self.pin_checked(now, lid, login, right),
            (Phase::Verify, StoreAnswer::Verify { verdict, locked }) => {
                self.code_checked(now, lid, login, verdict, locked)
            }
            _ => self.store_unavailable(now, lid, login, "the store failed"),
        }
    }
}
