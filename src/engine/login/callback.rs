//! A provider's callback, at whichever node of a cluster it arrives.
//!
//! The `public_url` in a delivery is usually a load balancer's, so the
//! phone's answer to a push or call often reaches another node than the
//! one holding the NAS request. And with number matching the NAS may send
//! its answer to the challenge that shows the number to yet another node,
//! which then holds the request. So:
//!
//! - A callback for a verification out of band here (the NAS request held
//!   here, nothing shown) is checked and applied at once, in memory.
//! - Any other callback is passed to the store ([`StoreOp::PassAnswer`]):
//!   the store finds the verification, checks the callback with the key of
//!   the provider that sent it, and keeps the answer, sealed, for the node
//!   holding (or about to hold) the NAS request, which it wakes
//!   (PostgreSQL `NOTIFY`). The provider hears 200 only once the answer is
//!   durable, 503 if the store could not keep it (it tries again).
//! - Woken ([`Engine::answer_kept`]), a node takes the answer from the
//!   store and applies it as if the callback had arrived there. A login
//!   that is not ready for it yet (the store is recording that it holds
//!   the verification) is marked, and takes it when it is.
//! - A node that may have missed a wake-up (the listening connection was
//!   lost) looks for the answers of every verification it holds
//!   ([`Engine::answers_missed`]).
//!
//! A verification's answer is used once, whichever way it came: the
//! in-memory one forgets the id, the store keeps one answer per id.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use tracing::warn;

use super::oob::VerificationId;
use super::stage::{Asked, Challenge, Factor, Login, Session, Stage};
use super::{Outcome, StoreJob};
use crate::engine::{Counter, Engine};
use crate::hex::hex_decode;
use crate::mfa::ResultCode;
use crate::mfa::webhook::{Answer, Refused};
use crate::store::login::{Handed, Passed, StoreAnswer, StoreOp};

/// Callbacks passed to the store and not answered yet, at most: each holds
/// its body and an HTTP request of the provider's.
const MAX_PASSING: usize = 1024;

/// How a callback was taken; the HTTP status follows from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallbackStatus {
    /// 200: the result was applied, or kept for the node that applies it.
    Accepted,
    /// 400: not JSON of the expected shape, or an unknown result.
    Malformed,
    /// 401: the signature is missing or wrong.
    BadSignature,
    /// 404: no such verification pending (unknown, answered or expired).
    Unknown,
    /// 503: the store could not keep it; the provider should try again.
    Unavailable,
}

/// A callback's status now, or later: [`Engine::poll_callback_reply`]
/// gives it under this ticket once the store has answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallbackTaken {
    Now(CallbackStatus),
    Later(u64),
}

/// Answers between nodes: what the engine waits for from the store.
#[derive(Debug, Default)]
pub(super) struct Relay {
    /// Callbacks passed to the store, by store job: for which verification.
    passing: HashMap<u64, VerificationId>,
    /// Their statuses, for the shell to send.
    replies: VecDeque<(u64, CallbackStatus)>,
    /// Store jobs taking answers.
    taking: HashSet<u64>,
    /// Verifications an answer was kept for while their login was not
    /// ready to take it.
    announced: HashSet<VerificationId>,
}

/// The shard of a job about verification `vid` alone (a callback passed
/// on, answers taken): its random id spreads them over the threads.
fn shard_of_verification(vid: &VerificationId) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&vid[..8]);
    u64::from_le_bytes(first)
}

impl Relay {
    /// Verification `vid` is over here.
    pub(super) fn forget(&mut self, vid: &VerificationId) {
        self.announced.remove(vid);
    }
}

impl Engine {
    /// A provider's callback for verification `id`.
    pub fn handle_callback(
        &mut self,
        now: Instant,
        id: &str,
        body: &[u8],
        signature: Option<&str>,
    ) -> CallbackTaken {
        let Some(vid) = hex_decode(id).and_then(|v| VerificationId::try_from(v).ok()) else {
            self.stats.inc(Counter::CallbackUnknown);
            return CallbackTaken::Now(CallbackStatus::Unknown);
        };
        // The key of the provider the verification went through, as the
        // login's settings had it (a reload may have changed it since).
        let here = self
            .logins
            .verifs
            .get(&vid)
            .and_then(|lid| self.logins.logins.get(lid))
            .and_then(|l| match &l.stage {
                Stage::OutOfBand(_, o) => {
                    Some((l.s.settings.providers[o.provider].clone(), o.deadline))
                }
                _ => None,
            });
        let Some((provider, deadline)) = here else {
            return self.pass_on(now, vid, body, signature);
        };
        let key = provider.key.as_ref().map(|k| k.expose());
        let answer = match Answer::check(key, body, signature) {
            Ok(a) => a,
            Err(refused) => return CallbackTaken::Now(self.refused(refused)),
        };
        self.stats.inc(Counter::CallbackAccepted);
        // Used up in the store too: the same callback sent again, here or
        // at another node, finds its answer taken (404), not a second 200.
        let op = StoreOp::AnswerUsed {
            id: vid.to_vec(),
            node: self.logins.server.clone(),
            expires_at: self.logins.unix_at(deadline) + 1,
        };
        self.store_job_in(now, shard_of_verification(&vid), op);
        self.apply(now, vid, answer);
        CallbackTaken::Now(CallbackStatus::Accepted)
    }

    /// The status of a callback passed to the store, once it is known.
    pub fn poll_callback_reply(&mut self) -> Option<(u64, CallbackStatus)> {
        self.logins.relay.replies.pop_front()
    }

    /// The store kept an answer for verification `id` at this node (another
    /// node took the callback): it is taken if its login is ready for it.
    pub fn answer_kept(&mut self, now: Instant, id: &[u8]) {
        let Ok(vid) = VerificationId::try_from(id) else {
            return;
        };
        match self.held(&vid) {
            Some(true) => self.take_answers(now, vec![vid.to_vec()]),
            Some(false) => {
                self.logins.relay.announced.insert(vid);
            }
            None => {}
        }
    }

    /// Answers kept for this node may have been missed (its connection to
    /// the store's notifications was lost): the store is asked for those
    /// of every verification whose NAS request is held here.
    pub fn answers_missed(&mut self, now: Instant) {
        let ids: Vec<Vec<u8>> = (self.logins.verifs.keys())
            .filter(|vid| self.held(vid) == Some(true))
            .map(|vid| vid.to_vec())
            .collect();
        if !ids.is_empty() {
            self.take_answers(now, ids);
        }
    }

    /// Whether verification `vid` is this node's, and if so whether its
    /// NAS request is held here waiting for the phone (ready to take an
    /// answer) or not yet.
    fn held(&self, vid: &VerificationId) -> Option<bool> {
        let lid = self.logins.verifs.get(vid)?;
        let login = self.logins.logins.get(lid)?;
        Some(matches!(login.stage, Stage::OutOfBand(..)))
    }

    fn refused(&mut self, refused: Refused) -> CallbackStatus {
        match refused {
            Refused::BadSignature => {
                self.stats.inc(Counter::CallbackBadSignature);
                CallbackStatus::BadSignature
            }
            Refused::Malformed => {
                self.stats.inc(Counter::CallbackMalformed);
                CallbackStatus::Malformed
            }
        }
    }

    /// A callback for a verification not held here (or whose number the
    /// NAS still shows): the store checks it and keeps it for its node.
    /// One that no configured provider signed is refused here, without
    /// asking the store: made-up callbacks cost the database nothing.
    fn pass_on(
        &mut self,
        now: Instant,
        vid: VerificationId,
        body: &[u8],
        signature: Option<&str>,
    ) -> CallbackTaken {
        let keys: Vec<(String, crate::secret::Secret)> = (self.logins.settings.providers.iter())
            .filter_map(|p| Some((p.name.clone(), p.key.clone()?)))
            .collect();
        if !self.logins.enabled || keys.is_empty() {
            // No verification can be pending anywhere that calls back.
            self.stats.inc(Counter::CallbackUnknown);
            return CallbackTaken::Now(CallbackStatus::Unknown);
        }
        let signed = signature.is_some_and(|sig| {
            (keys.iter()).any(|(_, k)| crate::mfa::webhook::signature_ok(k.expose(), body, sig))
        });
        if !signed {
            return CallbackTaken::Now(self.refused(Refused::BadSignature));
        }
        if self.logins.relay.passing.len() >= MAX_PASSING {
            self.stats.inc(Counter::CallbackUnavailable);
            return CallbackTaken::Now(CallbackStatus::Unavailable);
        }
        let op = StoreOp::PassAnswer {
            id: vid.to_vec(),
            body: body.to_vec(),
            signature: signature.map(str::to_owned),
            keys,
        };
        let job = self.logins.id();
        let at = self.logins.unix_at(now);
        (self.logins.out).push_back(StoreJob {
            id: job,
            op,
            wanted: true,
            at,
            shard: shard_of_verification(&vid),
        });
        self.logins.relay.passing.insert(job, vid);
        CallbackTaken::Later(job)
    }

    /// Has the store take the answers kept for verifications `ids`.
    fn take_answers(&mut self, now: Instant, ids: Vec<Vec<u8>>) {
        let job = self.logins.id();
        let at = self.logins.unix_at(now);
        let shard = ids
            .first()
            .and_then(|id| VerificationId::try_from(id.as_slice()).ok())
            .map_or(0, |vid| shard_of_verification(&vid));
        (self.logins.out).push_back(StoreJob {
            id: job,
            op: StoreOp::TakeAnswers { ids },
            wanted: true,
            at,
            shard,
        });
        self.logins.relay.taking.insert(job);
    }

    /// The store answered job `id`, if it is one of the relay's: a callback
    /// passed on, or answers taken. Any other answer is given back.
    pub(super) fn relay_answered(
        &mut self,
        now: Instant,
        id: u64,
        answer: StoreAnswer,
    ) -> Option<StoreAnswer> {
        if let Some(vid) = self.logins.relay.passing.remove(&id) {
            let status = match answer {
                StoreAnswer::Passed(Passed::To { node }) => {
                    self.stats.inc(Counter::CallbackAccepted);
                    self.stats.inc(Counter::CallbackPassed);
                    if node == self.logins.server {
                        self.answer_kept(now, &vid);
                    }
                    CallbackStatus::Accepted
                }
                StoreAnswer::Passed(Passed::Unknown) => {
                    self.stats.inc(Counter::CallbackUnknown);
                    CallbackStatus::Unknown
                }
                StoreAnswer::Passed(Passed::Refused(r)) => self.refused(r),
                _ => {
                    self.stats.inc(Counter::CallbackUnavailable);
                    CallbackStatus::Unavailable
                }
            };
            self.logins.relay.replies.push_back((id, status));
            return None;
        }
        if self.logins.relay.taking.remove(&id) {
            // A failure leaves them in the store, for the next wake-up.
            if let StoreAnswer::Answers(answers) = answer {
                for (vid, opened) in answers {
                    if let Ok(vid) = VerificationId::try_from(vid.as_slice()) {
                        self.answer_taken(now, vid, opened);
                    }
                }
            }
            return None;
        }
        Some(answer)
    }

    /// An answer another node kept for verification `vid`, taken.
    fn answer_taken(&mut self, now: Instant, vid: VerificationId, opened: Handed) {
        self.stats.inc(Counter::CallbackTaken);
        match Answer::read(&opened.0) {
            Some(answer) => self.apply(now, vid, answer),
            // Only a node of this cluster writes these: a newer version's.
            None => warn!("an answer kept by another node could not be read: ignored"),
        }
    }

    /// The phone's `answer` to verification `vid`, whose NAS request is
    /// held here: from now on the id is used up.
    fn apply(&mut self, now: Instant, vid: VerificationId, answer: Answer) {
        let Some(lid) = self.logins.verifs.remove(&vid) else {
            return;
        };
        self.logins.relay.announced.remove(&vid);
        match self.logins.logins.remove(&lid) {
            Some(Login {
                s,
                stage: Stage::OutOfBand(f, oob),
            }) => self.phone_result(now, s, f, oob, answer),
            // It left the stage since (ended, or timed out): too late.
            Some(other) => self.park(other),
            None => {}
        }
    }

    /// The NAS answered challenge `c`, which carries a verification (a
    /// push's number, or an SMS code another node sent): the store records
    /// this node as the one holding it, and hands over an answer kept for
    /// it already.
    pub(super) fn move_here(&mut self, now: Instant, s: Session, f: Factor, c: Challenge) {
        let Some(vid) = c.oob().map(|o| o.vid) else {
            return self.answered(now, s, f, c);
        };
        if matches!(c.asked, Asked::Number(_)) {
            // A wake-up from here on finds the login.
            self.logins.verifs.insert(vid, s.id);
        }
        let op = StoreOp::MoveVerification {
            id: vid.to_vec(),
            node: self.logins.server.clone(),
            answers: self.taking(&c),
        };
        self.ask_store(
            now,
            Login {
                s,
                stage: Stage::Moving(f, c),
            },
            op,
        );
    }

    /// The store recorded that this node holds challenge `c`'s verification
    /// (`live`: it had not ended), with the answer kept for it, if any.
    pub(super) fn moved_here(
        &mut self,
        now: Instant,
        s: Session,
        f: Factor,
        c: Challenge,
        live: bool,
        answer: Option<Handed>,
    ) {
        let Challenge {
            asked: Asked::Number(oob),
            ..
        } = c
        else {
            // An SMS code: checked here, as if this node had sent it.
            return self.answered(now, s, f, c);
        };
        let vid = oob.vid;
        let announced = self.logins.relay.announced.remove(&vid);
        if !live {
            self.logins.verifs.remove(&vid);
            let outcome = Outcome::reject(ResultCode::FailedPhoneAppNoResponse)
                .because("the push ended before the NAS answered");
            let stage = Stage::OutOfBand(f, oob);
            return self.finish(now, Login { s, stage }, outcome);
        }
        if let Some(opened) = answer {
            self.logins.verifs.remove(&vid);
            self.stats.inc(Counter::CallbackTaken);
            return match Answer::read(&opened.0) {
                Some(answer) => self.phone_result(now, s, f, oob, answer),
                None => {
                    let outcome = Outcome::reject(ResultCode::FailedPhoneAppInvalidResult)
                        .because("the answer kept by another node could not be read");
                    let stage = Stage::OutOfBand(f, oob);
                    self.finish(now, Login { s, stage }, outcome)
                }
            };
        }
        // The phone has not answered yet: the request is held here.
        self.logins.verifs.insert(vid, s.id);
        (self.logins.deadlines).push(std::cmp::Reverse((oob.deadline, s.id)));
        self.park(Login {
            s,
            stage: Stage::OutOfBand(f, oob),
        });
        if announced {
            self.take_answers(now, vec![vid.to_vec()]);
        }
    }
}
