//! For tests: the login path's steps as calls on a store, each in a
//! transaction of its own, so a test reads like the story it tells.

use super::{
    AuditRecord, LockoutPolicy, Remembered, Store, StoreError, Token, UnixTime, User, UserFacts,
    in_tx,
};
use crate::mfa::Method;
use crate::mfa::otp::TotpParams;

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

/// A user with an email, created at 1000, whose method is TOTP.
pub(crate) fn user(name: &str) -> User {
    User {
        email: Some(format!("{name}@example.org")),
        created_at: 1000,
        ..User::new(name, Method::Totp)
    }
}

/// A TOTP token of `user` with the default parameters.
pub(crate) fn totp(user: &str) -> Token {
    Token::totp(user, TotpParams::default())
}

/// A PAP login through the application "vpn", remembered at `at`.
pub(crate) fn vpn(address: Option<&str>, at: UnixTime) -> Remembered {
    Remembered {
        auth_type: "pap".into(),
        app: "vpn".into(),
        address: address.map(Into::into),
        at,
    }
}
