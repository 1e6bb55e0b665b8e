//! The store side of a login: what the engine asks, answered by a worker
//! thread against the [`Store`]. Everything that must be atomic (using a
//! bypass, claiming a code's time step, counting a denial) happens here, in
//! the database.

use std::fmt;
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::mfa::otp::{self, Verdict};
use crate::mfa::webhook::{Answer, Refused};
use crate::mfa::{LockoutPolicy, Method, Remembered};
use crate::policy::Standing;
use crate::store::{
    AuditRecord, LoginStore, LoginTx, NodeSeen, SealedSeed, StoreError, StoredAnswer, Token,
    TokenKind, UnixTime, Verification,
};

/// A question from the engine.
pub enum StoreOp {
    /// After the first factor: what the store knows of this user, for
    /// `policy::decide`.
    Facts { user: String },
    /// Use up a one-time bypass still valid now, atomically.
    ClaimBypass { user: String },
    /// A verified second factor, remembered for later logins; rows older
    /// than `keep_since` go (fire and forget).
    Remember {
        user: String,
        login: Remembered,
        keep_since: UnixTime,
    },
    /// Check a one-time code against the user's active tokens, as the
    /// facts read them ([`UserFacts::tokens`]).
    Verify {
        user: String,
        code: Zeroizing<String>,
        window: u8,
        lockout: LockoutPolicy,
        tokens: Tokens,
        /// Wrong codes were counted when the facts were read: a right code
        /// clears them (without any, nothing is written).
        denied: bool,
        /// The code answers this challenge, kept in the store: it is taken
        /// first, and if another node took it the code is not checked
        /// ([`StoreAnswer::Challenge`]`(None)`).
        answers: Option<Taking>,
    },
    /// Record the outcome of a login (fire and forget).
    Audit(AuditRecord),
    /// `[primary] mode = "local"`: check the user's password.
    Password {
        user: String,
        password: crate::secret::Secret,
    },
    /// Phone-call PIN mode: check the PIN the user typed.
    Pin {
        user: String,
        pin: crate::secret::Secret,
    },
    /// A wrong PIN: counts toward lockout like a wrong code (fire and
    /// forget; the next login's precheck sees the lockout).
    Denial {
        user: String,
        lockout: LockoutPolicy,
    },
    /// A fraud report: block the user for `for_secs` from now.
    Block {
        user: String,
        reason: String,
        for_secs: i64,
    },
    /// Take the user's one verification slot, at every node.
    StartVerification(Verification),
    /// The verification, held by `node`, is over (fire and forget).
    EndVerification {
        user: String,
        id: Vec<u8>,
        node: String,
    },
    /// A provider's callback for a verification this node does not hold:
    /// the store finds the verification, checks the callback with the key
    /// of its provider (one of `keys`, by name), and keeps the answer for
    /// the node that holds the NAS request, waking it.
    PassAnswer {
        id: Vec<u8>,
        body: Vec<u8>,
        signature: Option<String>,
        keys: Vec<(String, crate::secret::Secret)>,
    },
    /// The NAS answered the challenge that showed a push's number at node
    /// `node`: the verification's NAS request is held there from now on,
    /// and an answer kept for it already is taken.
    /// With `answers`, the challenge that showed the number is taken
    /// first; if another node took it, the verification does not move.
    MoveVerification {
        id: Vec<u8>,
        node: String,
        answers: Option<Taking>,
    },
    /// Take the answers kept for these verifications.
    TakeAnswers { ids: Vec<Vec<u8>> },
    /// The answer to verification `id` came to `node`, which holds it, and
    /// was used there: kept as taken, so that it is not taken again
    /// (fire and forget).
    AnswerUsed {
        id: Vec<u8>,
        node: String,
        expires_at: UnixTime,
    },
    /// Delete up to `limit` audit records older than `before`, the oldest
    /// first (fire and forget; `[store] audit_keep`).
    PruneAudit { before: UnixTime, limit: u32 },
    /// A challenge node `node` sent expired unanswered there: did another
    /// node take its answer over? ([`StoreAnswer::Claimed`])
    ChallengeExpired { state: Vec<u8>, node: String },
    /// An out-of-band success from `client`: one more login from there
    /// needs no second factor until `until` (fire and forget).
    GrantGrace {
        user: String,
        client: String,
        until: UnixTime,
    },
    /// Use up that grace, atomically.
    TakeGrace { user: String, client: String },
    /// This node is alive (fire and forget, every few seconds).
    Heartbeat(NodeSeen),
    /// Keep a challenge that is out: the store seals `login` (which may
    /// hold an SMS code) before it keeps it.
    PutChallenge {
        state: Vec<u8>,
        node: String,
        user: String,
        expires_at: UnixTime,
        login: Zeroizing<Vec<u8>>,
    },
    /// Node `node` takes a challenge over, or just uses it up (an answer at
    /// the node that sent it): the login, opened, or `None`.
    TakeChallenge { state: Vec<u8>, node: String },
}

/// A challenge a node uses up in the store as its answer is checked, so
/// that a State is answered once in the whole cluster.
#[derive(Clone, Debug)]
pub struct Taking {
    pub state: Vec<u8>,
    /// The node taking it (the one that sent it).
    pub node: String,
}

pub use super::burst::stage_batch;

/// What the store kept sealed, opened: a challenge's login as the node that
/// sent it kept it, or a phone's answer. It may hold an SMS code or a PIN,
/// so it is zeroed when dropped and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Handed(pub Zeroizing<Vec<u8>>);

impl fmt::Debug for Handed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Handed(<opened>)")
    }
}

/// What became of a callback for a verification another node holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Passed {
    /// Kept for node `node`, which was woken.
    To { node: String },
    /// No such verification in progress, or it was answered already.
    Unknown,
    /// The callback is not its provider's, or not one.
    Refused(Refused),
}

/// What the answer to verification `id` is sealed for (a call's PIN may be
/// in one): bound to its verification, so that a sealed answer copied to
/// another row does not open; and to nobody's name (those hold no NUL), so
/// that no token's seal passes for one.
fn answer_seal(id: &[u8]) -> String {
    format!("\0answer:{}", crate::hex::hex_encode(id))
}

/// What the challenge with `state` is sealed for, as [`answer_seal`].
pub(super) fn challenge_seal(state: &[u8]) -> String {
    format!("\0challenge:{}", crate::hex::hex_encode(state))
}

impl StoreOp {
    /// The user the job is about, if it names one.
    pub fn user(&self) -> Option<&str> {
        match self {
            StoreOp::Facts { user }
            | StoreOp::ClaimBypass { user }
            | StoreOp::Remember { user, .. }
            | StoreOp::Verify { user, .. }
            | StoreOp::Password { user, .. }
            | StoreOp::Pin { user, .. }
            | StoreOp::Denial { user, .. }
            | StoreOp::Block { user, .. }
            | StoreOp::EndVerification { user, .. }
            | StoreOp::GrantGrace { user, .. }
            | StoreOp::TakeGrace { user, .. }
            | StoreOp::PutChallenge { user, .. } => Some(user),
            StoreOp::Audit(rec) => Some(&rec.user),
            StoreOp::StartVerification(v) => Some(&v.user),
            StoreOp::Heartbeat(_)
            | StoreOp::TakeChallenge { .. }
            | StoreOp::PassAnswer { .. }
            | StoreOp::MoveVerification { .. }
            | StoreOp::TakeAnswers { .. }
            | StoreOp::AnswerUsed { .. }
            | StoreOp::PruneAudit { .. }
            | StoreOp::ChallengeExpired { .. } => None,
        }
    }
}

impl fmt::Debug for StoreOp {
    // The code is a secret: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreOp::Facts { user } => write!(f, "Facts({user})"),
            StoreOp::ClaimBypass { user } => write!(f, "ClaimBypass({user})"),
            StoreOp::Remember { user, .. } => write!(f, "Remember({user})"),
            StoreOp::Verify { user, .. } => write!(f, "Verify({user}, <code>)"),
            StoreOp::Audit(a) => write!(f, "Audit({}, {})", a.user, a.result),
            StoreOp::Password { user, .. } => write!(f, "Password({user}, <password>)"),
            StoreOp::Pin { user, .. } => write!(f, "Pin({user}, <pin>)"),
            StoreOp::Denial { user, .. } => write!(f, "Denial({user})"),
            StoreOp::Block { user, reason, .. } => write!(f, "Block({user}, {reason})"),
            StoreOp::StartVerification(v) => write!(f, "StartVerification({})", v.user),
            StoreOp::EndVerification { user, .. } => write!(f, "EndVerification({user})"),
            StoreOp::GrantGrace { user, client, .. } => write!(f, "GrantGrace({user}, {client})"),
            StoreOp::TakeGrace { user, client } => write!(f, "TakeGrace({user}, {client})"),
            StoreOp::Heartbeat(n) => write!(f, "Heartbeat({})", n.name),
            StoreOp::PutChallenge { user, .. } => write!(f, "PutChallenge({user})"),
            StoreOp::TakeChallenge { .. } => write!(f, "TakeChallenge"),
            StoreOp::PassAnswer { .. } => write!(f, "PassAnswer(<callback>)"),
            StoreOp::MoveVerification { node, .. } => write!(f, "MoveVerification({node})"),
            StoreOp::TakeAnswers { ids } => write!(f, "TakeAnswers({})", ids.len()),
            StoreOp::AnswerUsed { node, .. } => write!(f, "AnswerUsed({node})"),
            StoreOp::ChallengeExpired { .. } => write!(f, "ChallengeExpired"),
            StoreOp::PruneAudit { before, .. } => write!(f, "PruneAudit(before {before})"),
        }
    }
}

/// The answer to a [`StoreOp`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreAnswer {
    /// `None`: no such user.
    Facts(Option<Box<UserFacts>>),
    /// Whether a bypass was there and is now used up.
    Claimed(bool),
    Verify {
        verdict: Verdict,
        locked: bool,
    },
    Password(bool),
    /// A challenge taken over: its login, or `None`.
    Challenge(Option<Handed>),
    /// Whether the PIN is right; `None` when the user has no PIN set.
    Pin(Option<bool>),
    /// What became of a callback passed on ([`StoreOp::PassAnswer`]).
    Passed(Passed),
    /// A verification moved here: whether it was still on, and the answer
    /// kept for it already, opened.
    Moved {
        live: bool,
        answer: Option<Handed>,
    },
    /// Answers taken: each verification's id and its answer, opened.
    Answers(Vec<(Vec<u8>, Handed)>),
    Done,
    /// The store failed; the engine fails closed.
    Failed,
}

/// What the store knows of a user at the start of a login: their standing
/// (which `policy::decide` weighs) and what the second factor needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserFacts {
    pub blocked: bool,
    /// A one-time bypass may be waiting; [`StoreOp::ClaimBypass`] decides.
    pub bypass_waiting: bool,
    pub locked: bool,
    /// The user's default method.
    pub method: Method,
    pub phone: Option<String>,
    /// The active OATH tokens with their sealed seeds, read here and
    /// carried to the code check, which then reads nothing but claims the
    /// step (and the claim fails if the token went away).
    pub tokens: Tokens,
    /// PIN mode: a call asks for the PIN, an SMS answer is code then PIN.
    pub pin: bool,
    /// The user's language, if set.
    pub language: Option<String>,
    pub groups: Vec<String>,
    /// The user's remembered logins; which count is the policy's.
    pub remembered: Vec<Remembered>,
    /// A verification of the user is in progress, at any node.
    pub busy: bool,
    /// The clients from which an out-of-band success lets the user in once
    /// more without a second factor (`busy_grace`), granted at any node.
    pub graced: Vec<String>,
    /// Wrong codes are counted toward a lockout: a right one clears them
    /// (a user without any costs the code check no write).
    pub denied: bool,
    /// The user is disabled: the `[[directory]]` that no longer lists them
    /// (`""` for one with no source).
    pub disabled: Option<String>,
}

/// A user's active tokens with their sealed seeds, by id.
pub type Tokens = Arc<[(Token, SealedSeed)]>;

impl UserFacts {
    /// Has an active OATH token (for codes typed at a prompt, and fallback).
    pub fn oath(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// Splits the facts into the user's standing, which `policy::decide`
    /// weighs, and what a second factor needs of the user: moved, not
    /// copied. `None`, a user the store does not know.
    pub fn split(facts: Option<UserFacts>) -> (Standing, Enrollment) {
        let Some(f) = facts else {
            return (Standing::unknown(), Enrollment::default());
        };
        let standing = Standing {
            known: true,
            oath: f.oath(),
            disabled: f.disabled,
            blocked: f.blocked,
            bypass_waiting: f.bypass_waiting,
            locked: f.locked,
            method: f.method,
            phone: f.phone.is_some(),
            groups: f.groups,
            remembered: f.remembered,
        };
        let enrollment = Enrollment {
            tokens: f.tokens,
            phone: f.phone,
            pin: f.pin,
            language: f.language,
            denied: f.denied,
        };
        (standing, enrollment)
    }
}

/// What a second factor needs of the user, from [`UserFacts`].
#[derive(Debug, Default)]
pub struct Enrollment {
    /// Active OATH tokens with their sealed seeds.
    pub tokens: Tokens,
    pub phone: Option<String>,
    /// PIN mode: a call asks for the PIN, an SMS answer is code then PIN.
    pub pin: bool,
    pub language: Option<String>,
    /// Wrong codes were counted when the facts were read.
    pub denied: bool,
}

/// Runs one job at `now` (Unix seconds): a batch of one.
pub fn run(store: &dyn LoginStore, op: &StoreOp, now: UnixTime) -> StoreAnswer {
    run_batch(store, std::slice::from_ref(op), now)
        .pop()
        .unwrap_or(StoreAnswer::Failed)
}

/// Runs a burst of jobs in one store transaction and answers them in order,
/// password and PIN checks included. See [`stage_batch`].
pub fn run_batch(store: &dyn LoginStore, ops: &[StoreOp], now: UnixTime) -> Vec<StoreAnswer> {
    stage_batch(store, ops, &vec![now; ops.len()])
        .into_iter()
        .map(Outcome::finish)
        .collect()
}

/// A job's result once its transaction is over.
#[derive(Debug)]
pub enum Outcome {
    Answer(StoreAnswer),
    /// A password or PIN job: the argon2 check is still to do.
    Hash(HashCheck),
}

impl Outcome {
    /// The answer, doing the hash check here if there is one.
    pub fn finish(self) -> StoreAnswer {
        match self {
            Outcome::Answer(a) => a,
            Outcome::Hash(h) => h.check(),
        }
    }
}

/// A password or PIN typed by the user and the hash stored for it.
pub struct HashCheck {
    pub(super) typed: crate::secret::Secret,
    pub(super) hash: Option<String>,
    pub(super) pin: bool,
}

impl fmt::Debug for HashCheck {
    // Neither the typed secret nor its stored hash is printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.pin { "PIN" } else { "password" };
        write!(f, "HashCheck({what}, <secret>)")
    }
}

impl HashCheck {
    /// Checks the typed secret against the hash (argon2id: milliseconds of
    /// CPU, so the caller runs it off the database thread).
    pub fn check(self) -> StoreAnswer {
        let check = || check_password(self.hash.as_deref(), self.typed.expose());
        if self.pin {
            // No PIN set: nothing to check.
            StoreAnswer::Pin(self.hash.is_some().then(check))
        } else {
            StoreAnswer::Password(check())
        }
    }
}

/// A job's part inside the transaction.
pub(super) enum Staged {
    /// Written with the others of its kind ([`grouped`]).
    Grouped,
    Answer(StoreAnswer),
    /// A password job: the stored hash, checked once the transaction is over.
    Hash(Option<String>),
}

pub(super) fn stage(
    store: &dyn LoginStore,
    tx: &mut dyn LoginTx,
    op: &StoreOp,
    now: UnixTime,
) -> Result<Staged, StoreError> {
    let answer = match op {
        StoreOp::Password { user, .. } => return Ok(Staged::Hash(tx.password_hash(user)?)),
        StoreOp::Pin { user, .. } => return Ok(Staged::Hash(tx.pin_hash(user)?)),
        StoreOp::Block {
            user,
            reason,
            for_secs,
        } => {
            tx.block(user, reason, now, now.saturating_add(*for_secs))?;
            StoreAnswer::Done
        }
        StoreOp::Facts { user } => StoreAnswer::Facts(tx.facts(user, now)?.map(Box::new)),
        // Refused for a user blocked since the facts were read (a fraud
        // report).
        StoreOp::ClaimBypass { user } => StoreAnswer::Claimed(tx.take_bypass(user, now)?),
        StoreOp::Remember {
            user,
            login,
            keep_since,
        } => {
            tx.remember(user, login, *keep_since)?;
            StoreAnswer::Done
        }
        StoreOp::Denial { user, lockout } => {
            tx.record_denial(user, now, lockout)?;
            StoreAnswer::Done
        }
        StoreOp::Verify {
            user,
            code,
            window,
            lockout,
            tokens,
            denied,
            answers,
        } => {
            if let Some(t) = answers {
                if tx.take_challenge(&t.state, &t.node, now)?.is_none() {
                    return Ok(Staged::Answer(StoreAnswer::Challenge(None)));
                }
            }
            let verdict = verify(store, tx, tokens, code, *window, now)?;
            settle(tx, user, verdict, *denied, lockout, now)?
        }
        StoreOp::StartVerification(v) => StoreAnswer::Claimed(tx.start_verification(v)?),
        StoreOp::EndVerification { user, id, node } => {
            tx.end_verification(user, id, node)?;
            StoreAnswer::Done
        }
        StoreOp::PassAnswer {
            id,
            body,
            signature,
            keys,
        } => StoreAnswer::Passed(pass_answer(store, tx, id, body, signature, keys, now)?),
        StoreOp::MoveVerification { id, node, answers } => {
            if let Some(t) = answers {
                if tx.take_challenge(&t.state, &t.node, now)?.is_none() {
                    // Another node took it: the verification is its own.
                    return Ok(Staged::Answer(StoreAnswer::Challenge(None)));
                }
            }
            let live = tx.move_verification(id, node, now)?;
            let answer = match live {
                true => open_answers(store, tx.take_answers(std::slice::from_ref(id))?)?.pop(),
                false => None,
            };
            StoreAnswer::Moved {
                live,
                answer: answer.map(|(_, a)| a),
            }
        }
        StoreOp::TakeAnswers { ids } => {
            StoreAnswer::Answers(open_answers(store, tx.take_answers(ids)?)?)
        }
        StoreOp::AnswerUsed {
            id,
            node,
            expires_at,
        } => {
            // An empty answer is a taken one.
            tx.put_answer(&StoredAnswer {
                id: id.clone(),
                node: node.clone(),
                expires_at: *expires_at,
                sealed: Vec::new(),
            })?;
            StoreAnswer::Done
        }
        StoreOp::PruneAudit { before, limit } => {
            tx.prune_audit(*before, *limit)?;
            StoreAnswer::Done
        }
        StoreOp::ChallengeExpired { state, node } => {
            StoreAnswer::Claimed(tx.drop_challenge(state, node)?)
        }
        StoreOp::GrantGrace {
            user,
            client,
            until,
        } => {
            tx.grant_grace(user, client, *until, now)?;
            StoreAnswer::Done
        }
        StoreOp::TakeGrace { user, client } => {
            StoreAnswer::Claimed(tx.take_grace(user, client, now)?)
        }
        StoreOp::Heartbeat(n) => {
            tx.heartbeat(n)?;
            StoreAnswer::Done
        }
        StoreOp::TakeChallenge { state, node } => {
            let opened = match tx.take_challenge(state, node, now)? {
                Some(sealed) => Some(Handed(store.open(&challenge_seal(state), &sealed)?)),
                None => None,
            };
            StoreAnswer::Challenge(opened)
        }
        // Written together, before and after the others (`grouped`).
        StoreOp::PutChallenge { .. } | StoreOp::Audit(_) => return Ok(Staged::Grouped),
    };
    Ok(Staged::Answer(answer))
}

/// A code's verdict, counted: a right code clears the user's wrong ones
/// (if the facts showed some), a wrong one counts toward a lockout.
pub(super) fn settle(
    tx: &mut dyn LoginTx,
    user: &str,
    verdict: Verdict,
    denied: bool,
    lockout: &LockoutPolicy,
    now: UnixTime,
) -> Result<StoreAnswer, StoreError> {
    let locked = match verdict {
        Verdict::Valid { .. } => {
            if denied {
                tx.clear_denials(user)?;
            }
            false
        }
        _ => tx.record_denial(user, now, lockout)?.is_some(),
    };
    Ok(StoreAnswer::Verify { verdict, locked })
}

/// [`StoreOp::PassAnswer`]: the verification `id`, the callback checked
/// with its provider's key, the answer kept (sealed) for its node.
fn pass_answer(
    store: &dyn LoginStore,
    tx: &mut dyn LoginTx,
    id: &[u8],
    body: &[u8],
    signature: &Option<String>,
    keys: &[(String, crate::secret::Secret)],
    now: UnixTime,
) -> Result<Passed, StoreError> {
    let Some(v) = tx.verification(id, now)? else {
        return Ok(Passed::Unknown);
    };
    let key = keys
        .iter()
        .find(|(name, _)| *name == v.provider)
        .map(|(_, k)| k.expose());
    let answer = match Answer::check(key, body, signature.as_deref()) {
        Ok(a) => a,
        Err(refused) => return Ok(Passed::Refused(refused)),
    };
    let kept = tx.put_answer(&StoredAnswer {
        id: id.to_vec(),
        node: v.node.clone(),
        expires_at: v.expires_at,
        sealed: store.seal(&answer_seal(id), &answer.to_bytes()),
    })?;
    Ok(match kept {
        true => Passed::To { node: v.node },
        false => Passed::Unknown,
    })
}

/// Answers taken from the store, opened.
/// One that does not open (sealed with another key, or for another
/// verification) is logged and left out: the others are still applied.
fn open_answers(
    store: &dyn LoginStore,
    taken: Vec<(Vec<u8>, Vec<u8>)>,
) -> Result<Vec<(Vec<u8>, Handed)>, StoreError> {
    let mut opened = Vec::with_capacity(taken.len());
    for (id, sealed) in taken {
        match store.open(&answer_seal(&id), &sealed) {
            Ok(a) => opened.push((id, Handed(a))),
            Err(e) => tracing::error!(error = %e,
                "an answer kept by another node does not open (another seed key?): left out"),
        }
    }
    Ok(opened)
}

/// A hash of a random password, checked when the user has none, so an
/// unknown user costs the same time as a wrong password.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$bm90LWEtcmVhbC1zYWx0$2ipzOm0nnbhzi+1SmbmAoU3cB9nLGOqL2nykq5lvLpo";

pub(crate) fn check_password(hash: Option<&str>, password: &[u8]) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    let (phc, real) = match hash {
        Some(h) => (h, true),
        None => (DUMMY_HASH, false),
    };
    let ok = PasswordHash::new(phc).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password, &h)
            .is_ok()
    });
    ok && real
}

/// Tries the code on every active token; the first that matches claims its
/// step atomically, so of two concurrent answers with the same code only one
/// wins (the other sees a duplicate).
pub(crate) fn verify(
    store: &dyn LoginStore,
    tx: &mut dyn LoginTx,
    tokens: &[(Token, SealedSeed)],
    code: &str,
    window: u8,
    now: UnixTime,
) -> Result<Verdict, StoreError> {
    match find(store, tokens, code, window, now)? {
        Found::Claim { id, step } => Ok(claimed(step, tx.claim_step(id, step)?)),
        Found::Not(v) => Ok(v),
    }
}

/// What the code is, before any claim: valid at a token's step (which the
/// claim decides), or not valid.
pub(super) enum Found {
    Claim { id: i64, step: u64 },
    Not(Verdict),
}

/// The first active token the code matches, without claiming its step
/// (no database work: the seeds came with the facts).
pub(super) fn find(
    store: &dyn LoginStore,
    tokens: &[(Token, SealedSeed)],
    code: &str,
    window: u8,
    now: UnixTime,
) -> Result<Found, StoreError> {
    let unix = u64::try_from(now).unwrap_or(0);
    let mut worst = Verdict::Incorrect;
    for (t, sealed) in tokens {
        let seed = store.open_seed(t, sealed)?;
        let v = match t.kind {
            TokenKind::Totp => otp::verify_totp(&t.params, &seed, code, unix, window, t.last_step),
            TokenKind::Hotp => otp::verify_hotp(
                t.params.algorithm,
                &seed,
                code,
                t.params.digits,
                t.counter,
                10,
            ),
        };
        match v {
            Verdict::Valid { step } => return Ok(Found::Claim { id: t.id, step }),
            Verdict::Duplicate | Verdict::Old => worst = v,
            Verdict::Incorrect => {}
        }
    }
    Ok(Found::Not(worst))
}

/// The verdict on a code valid at `step`, once the claim of that step
/// said whether this answer was the first to use it.
pub(super) fn claimed(step: u64, won: bool) -> Verdict {
    match won {
        true => Verdict::Valid { step },
        false => Verdict::Duplicate,
    }
}

#[cfg(test)]
#[path = "login_tests.rs"]
mod tests;
