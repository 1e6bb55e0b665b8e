//! For tests: the login path's steps as calls on a store, each in a
//! transaction of its own, so a test reads like the story it tells.

use super::{
    AuditRecord, LockoutPolicy, Remembered, Store, StoreError, UnixTime, UserFacts, in_tx,
};

/// [`LoginTx`](super::LoginTx) steps on a [`Store`], one transaction each.
pub(crate) trait Steps {
    fn login_state(&self, user: &str, now: UnixTime) -> Result<Option<UserFacts>, StoreError>;
    fn claim_step(&self, id: i64, step: u64) -> Result<bool, StoreError>;
    fn record_denial(
        &self,
        user: &str,
        now: UnixTime,
        policy: &LockoutPolicy,
    ) -> Result<Option<UnixTime>, StoreError>;
    fn take_bypass(&self, user: &str, now: UnixTime) -> Result<bool, StoreError>;
    fn remember(&self, user: &str, r: &Remembered, keep_since: UnixTime) -> Result<(), StoreError>;
    fn append_audit(&self, rec: &AuditRecord) -> Result<(), StoreError>;
}

impl<S: Store + ?Sized> Steps for S {
    fn login_state(&self, user: &str, now: UnixTime) -> Result<Option<UserFacts>, StoreError> {
        in_tx(self.as_login(), |tx| tx.facts(user, now))
    }
    fn claim_step(&self, id: i64, step: u64) -> Result<bool, StoreError> {
        in_tx(self.as_login(), |tx| tx.claim_step(id, step))
    }
    fn record_denial(
        &self,
        user: &str,
        now: UnixTime,
        policy: &LockoutPolicy,
    ) -> Result<Option<UnixTime>, StoreError> {
        in_tx(self.as_login(), |tx| tx.record_denial(user, now, policy))
    }
    fn take_bypass(&self, user: &str, now: UnixTime) -> Result<bool, StoreError> {
        in_tx(self.as_login(), |tx| tx.take_bypass(user, now))
    }
    fn remember(&self, user: &str, r: &Remembered, keep_since: UnixTime) -> Result<(), StoreError> {
        in_tx(self.as_login(), |tx| tx.remember(user, r, keep_since))
    }
    fn append_audit(&self, rec: &AuditRecord) -> Result<(), StoreError> {
        in_tx(self.as_login(), |tx| tx.append_audit(rec))
    }
}
