//! The first factor checked here rather than by an upstream: a local
//! password (`[primary] mode = "local"`, the store's argon2id hash) or a
//! bind to a directory as the user (`mode = "ldap"`). Either way the login
//! then continues as after an upstream Access-Accept. Only PAP carries a
//! password to check; CHAP, MS-CHAP and EAP are refused with a reason.
//!
//! A directory check is I/O, so it is work for the shell, like a store job:
//! a [`DirectoryCheck`] out of [`Engine::poll_directory_check`], its
//! [`Verdict`] back in [`Engine::handle_directory`]. The login waits in
//! `Stage::Directory` until then. The shell answers every check by its
//! deadline (the directory's `timeout`); should it not, the login ends a
//! little later as `FAILED_SERVER_ERROR`, never as an accept. Refusals end
//! as `FAILED_PRIMARY_AUTH` with the directory's reason in the audit
//! record ("account locked", "wrong password or unknown user"; which of
//! those two is never known), and every reject's Reply-Message is the same.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::stage::{self, Given, Login, Lost, Session, Stage};
use super::{Current, Outcome};
use crate::config::{self, Primary};
use crate::directory::auth::{Failure, Verdict};
use crate::directory::ldap::Refusal;
use crate::engine::{Counter, Engine, NasRequest};
use crate::mfa::ResultCode;
use crate::radius::{attr, crypto};
use crate::secret::Secret;
use crate::store::login::StoreOp;

/// A password for the shell to check with a directory: a search for the
/// user's entry, then a bind as it ([`crate::directory::auth`]).
pub struct DirectoryCheck {
    /// Comes back with the verdict.
    pub id: u64,
    /// As the login's settings had it when the login started.
    pub directory: Arc<config::Directory>,
    pub user: String,
    pub password: Secret,
    /// Nobody waits for the verdict after this: a check not finished by
    /// then is answered `NoAnswer`, one not started is not made.
    pub deadline: Instant,
}

impl std::fmt::Debug for DirectoryCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectoryCheck")
            .field("id", &self.id)
            .field("directory", &self.directory.name)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// How long after a check's deadline its login still waits: the shell
/// answers by the deadline; this only ends a login whose check was lost.
const LOST_AFTER: Duration = Duration::from_secs(2);

impl Engine {
    /// An Access-Request whose first factor is checked here: its PAP
    /// password goes to the store (local) or the directory (ldap).
    pub(in crate::engine) fn first_factor_here(&mut self, now: Instant, mut nas: NasRequest) {
        let secret = nas.client.secret.clone();
        let settings = self.logins.settings.clone();
        let given = Given {
            groups: Vec::new(),
            inline_code: nas.inline_code.take(),
        };
        // Without the inline code, when one was typed after the password.
        let password = nas.password.take();
        let current = Current::from_nas(&mut nas);
        let id = self.logins.id();
        let s = Session::new(id, nas.client, settings, current, None);
        let req = s.request();
        let password = password.or_else(|| {
            req.find(attr::USER_PASSWORD)
                .and_then(|a| {
                    crypto::unhide_password(a.value, secret.expose(), req.authenticator()).ok()
                })
                .map(|p| Secret::new(p.to_vec()))
        });
        let Some(password) = password else {
            let why = format!("{} mode checks PAP passwords only", self.primary.mode());
            let outcome = Outcome::reject(ResultCode::ConfigIssue).because(why);
            return self.end(now, s, stage::Ends::none(), outcome);
        };
        if let Some(refused) = self.refuse_new(&s) {
            return self.end(now, s, stage::Ends::none(), refused);
        }
        if !matches!(self.primary, Primary::Ldap { .. }) {
            let op = StoreOp::Password {
                user: s.user.clone(),
                password,
            };
            let stage = Stage::Password(given);
            return self.ask_store(now, Login { s, stage }, op);
        }
        let Some(directory) = s.settings.directory.clone() else {
            let outcome = Outcome::reject(ResultCode::ConfigIssue)
                .because("[primary] directory names no [[directory]] since a reload");
            return self.end(now, s, stage::Ends::none(), outcome);
        };
        self.stats.inc(Counter::DirectoryChecks);
        if password.is_empty() {
            // An unauthenticated bind, to LDAP: never sent.
            self.stats.inc(Counter::DirectoryEmptyPassword);
            let why = format!("directory {}: {}", directory.name, Refusal::EmptyPassword);
            return self.reject_first_factor(now, s, ResultCode::FailedPrimaryAuth, &why);
        }
        let deadline = now + directory.timeout;
        self.logins.checks.push_back(DirectoryCheck {
            id: s.id,
            directory,
            user: s.user.clone(),
            password,
            deadline,
        });
        let waits_until = deadline + LOST_AFTER;
        self.logins
            .deadlines
            .push(std::cmp::Reverse((waits_until, s.id)));
        let stage = Stage::Directory(given, waits_until);
        self.park(Login { s, stage });
    }

    /// The next password for the directory to check.
    pub fn poll_directory_check(&mut self) -> Option<DirectoryCheck> {
        self.logins.checks.pop_front()
    }

    /// The directory's verdict on check `id`. A login that ended meanwhile
    /// (its check was lost, or the proxy stops) is not there any more.
    pub fn handle_directory(&mut self, now: Instant, id: u64, verdict: Verdict) {
        let Some(login) = self.logins.logins.remove(&id) else {
            return;
        };
        let (s, given) = match login {
            Login {
                s,
                stage: Stage::Directory(given, _),
            } => (s, given),
            other => return self.park(other),
        };
        self.stats.inc(counter(verdict));
        let name = s
            .settings
            .directory
            .as_ref()
            .map_or("", |d| d.name.as_str());
        let (result, why) = match verdict {
            Verdict::Accepted => return self.read_facts(now, s, given, Lost::default()),
            Verdict::Refused(r) => (
                ResultCode::FailedPrimaryAuth,
                format!("directory {name}: {r}"),
            ),
            Verdict::Failed(f) => (
                ResultCode::FailedServerError,
                format!("directory {name}: {f}"),
            ),
        };
        self.reject_first_factor(now, s, result, &why);
    }

    /// The shell never answered the check of `s`'s password: the login
    /// fails closed.
    pub(super) fn directory_lost(&mut self, now: Instant, s: Session) {
        self.stats.inc(Counter::DirectoryLost);
        let name = s
            .settings
            .directory
            .as_ref()
            .map_or("", |d| d.name.as_str());
        let why = format!("directory {name}: the password check was never answered");
        self.reject_first_factor(now, s, ResultCode::FailedServerError, &why);
    }
}

/// The counter of a verdict.
fn counter(v: Verdict) -> Counter {
    match v {
        Verdict::Accepted => Counter::DirectoryAccepted,
        Verdict::Refused(r) => match r {
            Refusal::WrongPasswordOrUnknownUser => Counter::DirectoryWrongPassword,
            Refusal::AccountLocked => Counter::DirectoryAccountLocked,
            Refusal::AccountDisabled => Counter::DirectoryAccountDisabled,
            Refusal::AccountExpired => Counter::DirectoryAccountExpired,
            Refusal::PasswordExpired => Counter::DirectoryPasswordExpired,
            Refusal::PasswordMustChange => Counter::DirectoryPasswordMustChange,
            Refusal::LogonRestricted => Counter::DirectoryLogonRestricted,
            Refusal::EmptyPassword => Counter::DirectoryEmptyPassword,
            Refusal::AmbiguousName => Counter::DirectoryAmbiguousName,
            Refusal::Other(_) => Counter::DirectoryRefusedOther,
        },
        Verdict::Failed(f) => match f {
            Failure::Unreachable => Counter::DirectoryUnreachable,
            Failure::NoAnswer => Counter::DirectoryNoAnswer,
            Failure::ServiceAccountRefused => Counter::DirectoryServiceAccountRefused,
            Failure::SearchRefused => Counter::DirectorySearchRefused,
            Failure::Overloaded => Counter::DirectoryOverloaded,
        },
    }
}
