//! A login: the second factor inside the engine, from the first factor's
//! Accept to the final answer.
//!
//! Its steps, each in the file named after it:
//! - `stage.rs`: what a login is, a session and a stage of a state machine
//!   whose states carry their own data;
//! - here: the logins in progress ([`Logins`]), a login's start after an
//!   upstream Access-Accept, and the store's answers, routed by the stage
//!   the login waits in; every question to the store has a deadline
//!   (`STORE_LIMIT`);
//! - `first.rs`: the first factor checked here instead: a local password,
//!   or a bind to a directory as the user;
//! - `decide.rs`: the request's facts beside the store's, `policy::decide`,
//!   and what its decision starts;
//! - `challenge.rs`: Access-Challenges, their answers, and code checks;
//! - `oob.rs`: push, phone call and SMS through a provider, with their
//!   PINs, fraud reports and fallback;
//! - `callback.rs`: the provider's callback, at whichever node it arrives;
//! - `handover.rs`: a challenge answered at another node than its own;
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

use super::dedup::DedupKey;
use super::warn::Topic;
use super::{Counter, Engine, HashMap, NasRequest, Transmit};
use crate::config;
use crate::mfa::ResultCode;
use crate::radius::{Authenticator, Packet, attr};
use crate::store::NodeSeen;
use crate::store::login::{StoreAnswer, StoreOp};

mod address;
mod callback;
mod challenge;
mod decide;
mod finish;
mod first;
mod handover;
mod oob;
mod outcome;
mod settings;
mod stage;

pub use address::GroupSource;
pub use callback::{CallbackStatus, CallbackTaken};
pub(super) use finish::{Answering, Final};
pub use first::DirectoryCheck;
use oob::VerificationId;
pub use oob::{Delivery, DeliveryOutcome, FraudReport, sign, signature_ok};
pub(super) use outcome::Outcome;
pub(super) use settings::Settings;
use stage::{Claiming, Given, Lost, Stage};
pub(super) use stage::{Login, Session};

const TAG_LEN: usize = 4;
/// The first octets of every State this program issues, at every node of a
/// cluster: an answer carrying one is a challenge's (a State of this form
/// that this node does not know is asked of the store), any other State is
/// the upstream's own and is relayed.
const STATE_TAG: [u8; TAG_LEN] = *b"mfa1";
const STATE_LEN: usize = TAG_LEN + 16;
/// How often a node tells the store it is alive (`report status`).
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(10);
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
    /// Jobs of one shard run in the order they were asked, on one store
    /// thread: all the jobs about a user are in the user's shard.
    pub shard: u64,
}

/// The shard of jobs about `user` (any spelling of the name), keyed at
/// random once per process, so that nobody can choose names that all land
/// on one database thread.
pub(super) fn shard_of(user: &str) -> u64 {
    use std::hash::BuildHasher;
    static KEYS: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
    KEYS.get_or_init(std::hash::RandomState::new)
        .hash_one(crate::store::fold(user))
}

/// The NAS request a login is answering now.
#[derive(Debug)]
struct Current {
    listener: u16,
    from: SocketAddr,
    request: Vec<u8>,
    dedup: DedupKey,
}

impl Current {
    fn from_nas(nas: &mut NasRequest) -> Current {
        Current {
            listener: nas.listener,
            from: nas.from,
            request: std::mem::take(&mut nas.request),
            dedup: nas.dedup,
        }
    }

    fn packet(&self) -> Packet<'_> {
        Packet::parse(&self.request).expect("stored requests were validated on arrival")
    }
}

#[derive(Debug)]
struct UpstreamAccept {
    bytes: Vec<u8>,
    /// The upstream as it answered: its attributes are decrypted with
    /// this secret, whatever a reload did since.
    upstream: Arc<config::Upstream>,
    auth: Authenticator,
}

/// The engine's second-factor state.
#[derive(Debug)]
pub(super) struct Logins {
    /// The rules new logins start under (a reload replaces them).
    pub(super) settings: Arc<Settings>,
    /// `[mfa] enabled`, as at the start: it decides whether a store runs.
    enabled: bool,
    /// Other nodes use the store too: challenges are kept there for them.
    shared: bool,
    /// `[store] audit_keep`: older audit records are pruned with each
    /// heartbeat.
    audit_keep: Option<std::time::Duration>,
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
    /// Callbacks and answers passing between nodes through the store.
    relay: callback::Relay,
    pub(super) deliveries: VecDeque<Delivery>,
    pub(super) fraud: VecDeque<FraudReport>,
    /// Passwords for the shell to check with the directory.
    checks: VecDeque<DirectoryCheck>,
    /// An instant and the Unix time then, for `expires_at` in deliveries.
    wall: Option<(Instant, i64)>,
    /// When this node next tells the store it is alive, and since when it
    /// serves (Unix seconds, once the wall clock is known).
    heartbeat: Option<(Instant, i64)>,
}

impl Logins {
    pub(super) fn new(
        config: &config::Config,
        dictionary: &crate::radius::dict::Dictionary,
    ) -> Logins {
        Logins {
            settings: Arc::new(Settings::new(config, dictionary)),
            enabled: config.mfa.enabled,
            shared: true,
            audit_keep: config.store.audit_keep,
            server: config.server.name.clone(),
            tag: STATE_TAG,
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
            relay: callback::Relay::default(),
            deliveries: VecDeque::new(),
            fraud: VecDeque::new(),
            checks: VecDeque::new(),
            wall: None,
            heartbeat: None,
        }
    }

    /// The instant of Unix time `unix`, from the anchor the shell gave
    /// (`now` until it has).
    pub(super) fn instant_at(&self, now: Instant, unix: i64) -> Instant {
        let ahead = unix - self.unix_at(now);
        match u64::try_from(ahead) {
            Ok(secs) if self.wall.is_some() => now + std::time::Duration::from_secs(secs),
            _ => now,
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
        let e = self.heartbeat.map(|(t, _)| t);
        a.into_iter().chain(b).chain(c).chain(d).chain(e).min()
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
    text_of(p, attr::USER_NAME).map(str::to_owned)
}

pub(super) fn client_ip(p: &Packet<'_>) -> Option<String> {
    text_of(p, attr::CALLING_STATION_ID).map(str::to_owned)
}

/// The first attribute `typ` of `p` as text the store can keep: UTF-8
/// without NUL (PostgreSQL refuses a NUL in text, and would fail the whole
/// burst of logins the value came in); anything else counts as absent.
pub(super) fn text_of<'a>(p: &'a Packet<'_>, typ: u8) -> Option<&'a str> {
    p.find(typ)
        .and_then(|a| std::str::from_utf8(a.value).ok())
        .filter(|s| !s.contains('\0'))
}

/// Audit records pruned per heartbeat at most: a short delete that never
/// holds up the logins in its transaction, and 8.6 million a day.
const PRUNE_LIMIT: u32 = 1_000;

impl Engine {
    /// Tells the engine the wall-clock time at `now` (Unix seconds); it
    /// never reads a clock itself. Used for `expires_at` in deliveries.
    pub fn set_wall_clock(&mut self, now: Instant, unix: i64) {
        self.logins.wall = Some((now, unix));
        if self.logins.enabled && self.logins.heartbeat.is_none() {
            // The first heartbeat at once: `report status` shows the node.
            self.logins.heartbeat = Some((now, unix));
        }
    }

    /// Whether other nodes use the store (`true` until told): only then
    /// is every challenge kept there, for another node to take over. A
    /// node alone on its store (SQLite) spares the work.
    pub fn set_shared_store(&mut self, shared: bool) {
        self.logins.shared = shared;
    }

    /// Tells the store this node is alive, every [`HEARTBEAT`].
    pub(super) fn heartbeat(&mut self, now: Instant) {
        let Some((due, started_at)) = self.logins.heartbeat else {
            return;
        };
        if now < due {
            return;
        }
        self.logins.heartbeat = Some((now + HEARTBEAT, started_at));
        let node = NodeSeen {
            name: self.logins.server.clone(),
            started_at,
            seen_at: self.logins.unix_at(now),
            version: crate::VERSION.to_owned(),
        };
        let seen_at = node.seen_at;
        self.store_job(now, StoreOp::Heartbeat(node));
        if let Some(keep) = self.logins.audit_keep {
            let before = seen_at.saturating_sub(keep.as_secs() as i64);
            let op = StoreOp::PruneAudit {
                before,
                limit: PRUNE_LIMIT,
            };
            self.store_job(now, op);
        }
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
        let shard = op.user().map_or(0, shard_of);
        self.store_job_in(now, shard, op)
    }

    /// As [`Engine::store_job`], in shard `shard` (a job that names no user
    /// but must follow the jobs of one).
    pub(super) fn store_job_in(&mut self, now: Instant, shard: u64, op: StoreOp) -> u64 {
        let id = self.logins.id();
        let wanted = matches!(op, StoreOp::Audit(_));
        let at = self.logins.unix_at(now);
        (self.logins.out).push_back(StoreJob {
            id,
            op,
            wanted,
            at,
            shard,
        });
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

    /// Parks `login` until the store answers `op`, or until [`STORE_LIMIT`]
    /// has passed: then it ends as `FAILED_SERVER_ERROR`.
    pub(super) fn ask_store(&mut self, now: Instant, login: Login, op: StoreOp) {
        let id = self.logins.id();
        self.logins.jobs.insert(id, login.s.id);
        self.logins.out.push_back(StoreJob {
            id,
            op,
            wanted: true,
            at: self.logins.unix_at(now),
            shard: shard_of(&login.s.user),
        });
        self.logins
            .store_deadlines
            .push(Reverse((now + STORE_LIMIT, id)));
        self.park(login);
    }

    /// Keeps `login` until its next event (a store answer, a challenge
    /// answer, a callback, a deadline) finds it by its id.
    pub(super) fn park(&mut self, login: Login) {
        self.logins.logins.insert(login.s.id, login);
    }

    /// The upstream accepted `nas`: start the second factor instead of
    /// relaying the accept.
    pub(super) fn start_login(
        &mut self,
        now: Instant,
        upstream: Arc<config::Upstream>,
        reply: &Packet<'_>,
        upstream_auth: &Authenticator,
        mut nas: NasRequest,
    ) {
        let accept = UpstreamAccept {
            bytes: reply.as_bytes().to_vec(),
            upstream,
            auth: *upstream_auth,
        };
        let settings = self.logins.settings.clone();
        let given = Given {
            groups: settings
                .groups
                .as_ref()
                .map(|g| g.groups(reply))
                .unwrap_or_default(),
            inline_code: nas.inline_code.take(),
        };
        let current = Current::from_nas(&mut nas);
        let id = self.logins.id();
        let mut s = Session::new(id, nas.client, settings, current, Some(accept));
        let eap = s.request().has(attr::EAP_MESSAGE);
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
            .filter(|n| eap && !n.is_empty());
        if let Some(inner) = inner {
            s.user = inner.to_owned();
        }
        self.begin(now, s, given);
    }

    /// Starts a login after its first factor: the store reads the facts.
    fn begin(&mut self, now: Instant, s: Session, given: Given) {
        if let Some(refused) = self.refuse_new(&s) {
            return self.end(now, s, stage::Ends::none(), refused);
        }
        self.read_facts(now, s, given, Lost::default());
    }

    /// Why a new login cannot be served, if it cannot.
    fn refuse_new(&self, s: &Session) -> Option<Outcome> {
        if s.user.is_empty() {
            return Some(
                Outcome::reject(ResultCode::FailedServerError).because(
                    "the request has no usable User-Name (none, not UTF-8, or with a NUL)",
                ),
            );
        }
        if self.logins.len() >= MAX_LOGINS {
            return Some(
                Outcome::reject(ResultCode::FailedAuthenticationThrottled)
                    .because("too many logins in progress"),
            );
        }
        None
    }

    /// Has the store read what it knows of the user; `lost`: the claims
    /// that failed before.
    fn read_facts(&mut self, now: Instant, s: Session, given: Given, lost: Lost) {
        let op = StoreOp::Facts {
            user: s.user.clone(),
        };
        let stage = Stage::Facts { given, lost };
        self.ask_store(now, Login { s, stage }, op);
    }

    /// The store answered job `id`: the login waiting for it takes its next
    /// step, as its stage and the answer say.
    pub fn handle_store(&mut self, now: Instant, id: u64, answer: StoreAnswer) {
        if self.audit_stored(now, id, &answer) {
            return;
        }
        let Some(answer) = self.relay_answered(now, id, answer) else {
            return;
        };
        let Some(lid) = self.logins.jobs.remove(&id) else {
            return;
        };
        let Some(Login { s, stage }) = self.logins.logins.remove(&lid) else {
            return;
        };
        match (stage, answer) {
            (Stage::Password(given), StoreAnswer::Password(true)) => {
                self.read_facts(now, s, given, Lost::default())
            }
            (Stage::Password(_), StoreAnswer::Password(false)) => {
                let why = "wrong password";
                self.reject_first_factor(now, s, ResultCode::FailedPrimaryAuth, why)
            }
            (Stage::Facts { given, lost }, StoreAnswer::Facts(facts)) => {
                let mut facts = facts.map(|f| *f);
                // Once is enough: no second claim of either.
                if let Some(f) = facts.as_mut() {
                    f.bypass_waiting &= !lost.bypass;
                    if lost.grace {
                        f.graced.clear();
                    }
                }
                self.decide(now, s, given, lost, facts);
            }
            (Stage::Claim(given, what, lost), StoreAnswer::Claimed(true)) => {
                let outcome = match what {
                    Claiming::Bypass => {
                        Outcome::accept(ResultCode::SuccessBypassedAuth).because("one-time bypass")
                    }
                    Claiming::Grace => {
                        self.stats.inc(Counter::MfaUsedCache);
                        Outcome::accept(ResultCode::SuccessUsedCache)
                            .because("verified out of band moments ago from this client")
                    }
                };
                let stage = Stage::Claim(given, what, lost);
                self.finish(now, Login { s, stage }, outcome)
            }
            (Stage::Claim(given, what, lost), StoreAnswer::Claimed(false)) => {
                // Another login used it first, or the user was blocked
                // since: read the facts again, and decide without it.
                self.read_facts(now, s, given, lost.and(what))
            }
            (Stage::Starting(f, oob), StoreAnswer::Claimed(started)) => {
                self.verification_started(now, s, f, oob, started)
            }
            (Stage::Fetching(state), StoreAnswer::Challenge(handed)) => {
                self.challenge_fetched(now, s, state, handed)
            }
            (Stage::Resuming(h, state), StoreAnswer::Facts(facts)) => {
                self.challenge_resumed(now, s, *h, state, facts.map(|f| *f))
            }
            (Stage::Moving(f, c), StoreAnswer::Moved { live, answer }) => {
                self.moved_here(now, s, f, c, live, answer)
            }
            (Stage::Taking(f, c), StoreAnswer::Challenge(Some(_))) => {
                self.challenge_taken(now, s, f, c)
            }
            (stage @ Stage::Taking(..), StoreAnswer::Challenge(None))
            | (stage @ Stage::Moving(..), StoreAnswer::Challenge(None))
            | (stage @ Stage::Verify(..), StoreAnswer::Challenge(None)) => {
                self.challenge_gone(now, Login { s, stage })
            }
            (Stage::Expiring(f, c), StoreAnswer::Claimed(elsewhere)) => {
                self.challenge_expired(now, s, f, c, elsewhere)
            }
            (Stage::Pin(f, oob), StoreAnswer::Pin(right)) => {
                self.pin_checked(now, s, f, oob, right)
            }
            (Stage::Verify(f, from), StoreAnswer::Verify { verdict, locked }) => {
                self.code_checked(now, s, f, from, verdict, locked)
            }
            (stage, _) => self.store_unavailable(now, Login { s, stage }, "the store failed"),
        }
    }
}
