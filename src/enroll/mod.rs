//! Enrollment invitations: a mail per user, in the template of the user's
//! method and language, with a single-use link to the portal that expires.
//!
//! An invitation is a token of 32 random bytes (base64url, no padding) in
//! the link `{public_url}/portal/invite/{token}`. The store keeps only its
//! SHA-256 ([`invitation_hash`]; the portal hashes the token it is given
//! and looks that up), and keeps it *before* the mail leaves: a mail that
//! was sent always has a working link. A mail that then fails leaves an
//! invitation nobody received; inviting again replaces it, as the store
//! keeps only a user's newest. The token exists in this process only long
//! enough to be written into the mail's body: it is in no log line, error,
//! `Debug` output or subject.
//!
//! [`Inviter::prepare`] does the store's part (blocking, like every store
//! call) and builds the mail; [`Inviter::send`] hands it to the relay.
//! [`invite_users`] does both for a list of users, for callers outside
//! the async runtime: `mfa-proxy user invite` and a directory sync.

pub mod template;

use std::fmt;

use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tracing::{info, warn};
use zeroize::Zeroizing;

use crate::config::{Config, Enrollment};
use crate::io::smtp::{self, MailError, Relay};
use crate::store::{Invitation, Store, StoreError, UnixTime};
pub use template::{Kind, TemplateError, Templates};

/// An invitation's secret: only ever in the link in the mail.
pub struct InviteToken(Zeroizing<String>);

impl fmt::Debug for InviteToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InviteToken(<redacted>)")
    }
}

impl InviteToken {
    /// 32 random bytes, base64url without padding (43 characters).
    pub fn generate() -> InviteToken {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(bytes.as_mut());
        InviteToken(Zeroizing::new(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref()),
        ))
    }

    /// What the store keeps of it.
    pub fn hash(&self) -> [u8; 32] {
        invitation_hash(&self.0)
    }
}

/// The SHA-256 of a token, as [`Store::invitation`] and
/// [`Store::take_invitation`] look it up. A token of 256 random bits needs
/// no salt or stretching: nothing can be guessed from its hash.
pub fn invitation_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// `{public_url}/portal/invite/{token}`: the link of an invitation.
pub fn invite_link(public_url: &str, token: &InviteToken) -> Zeroizing<String> {
    Zeroizing::new(format!("{public_url}/portal/invite/{}", token.0.as_str()))
}

/// `{public_url}/portal/`: where users manage their methods.
pub fn portal_url(public_url: &str) -> String {
    format!("{public_url}/portal/")
}

/// A time as the mails show it: `2025-02-07 14:00 UTC`.
pub fn mail_time(t: UnixTime) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64);
    let iso = humantime::format_rfc3339_seconds(at).to_string();
    format!("{} {} UTC", &iso[..10], &iso[11..16])
}

/// Why invitations cannot be sent at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    #[error(
        "`enrollment`: missing: invitations are mailed as [enrollment] says (from, and smtp or [notify]'s relay)"
    )]
    NoEnrollment,
    #[error("`server.public_url`: missing: invitation links are {{public_url}}/portal/invite/...")]
    NoPublicUrl,
    #[error(transparent)]
    Relay(MailError),
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// Why one user was not invited. Only [`InviteError::NotDelivered`] comes
/// after the invitation was stored; it is withdrawn then (nobody has its
/// link).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InviteError {
    #[error("no such user")]
    NoSuchUser,
    #[error("disabled: the user's directory no longer lists them")]
    Disabled,
    #[error("no email address: set one with `mfa-proxy user set NAME --email ADDRESS`")]
    NoEmail,
    #[error(
        "method {0} but no phone number, which the mail shows: set one with `mfa-proxy user set NAME --phone +...`"
    )]
    NoPhone(&'static str),
    #[error("no {0} template")]
    NoTemplate(&'static str),
    #[error("{0}")]
    Mail(#[source] MailError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error(
        "the mail was not delivered: {source}; the invitation was withdrawn, so inviting again sends a new one"
    )]
    NotDelivered {
        #[source]
        source: MailError,
    },
}

/// A mail that left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// The user's name as the store spells it.
    pub user: String,
    pub to: String,
    pub kind: Kind,
    /// The language of the template used.
    pub language: String,
    pub expires_at: UnixTime,
}

/// A mail built for a user whose invitation is stored: [`Inviter::send`]
/// sends it.
pub struct Prepared {
    message: lettre::Message,
    sent: Sent,
    /// The stored invitation's hash, withdrawn if the mail does not leave.
    hash: Vec<u8>,
}

impl fmt::Debug for Prepared {
    // The message's body holds the link.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prepared")
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

/// Invites users as `[enrollment]` says.
#[derive(Debug)]
pub struct Inviter<'a> {
    settings: &'a Enrollment,
    public_url: &'a str,
    /// `[mfa] language`: the mails' language for users who have none.
    default_language: &'a str,
    relay: Relay,
}

impl<'a> Inviter<'a> {
    pub fn new(config: &'a Config) -> Result<Inviter<'a>, SetupError> {
        let settings = config.enrollment.as_ref().ok_or(SetupError::NoEnrollment)?;
        let public_url = config
            .server
            .public_url
            .as_deref()
            .ok_or(SetupError::NoPublicUrl)?;
        Ok(Inviter {
            settings,
            public_url,
            default_language: &config.mfa.language,
            relay: Relay::new(&settings.smtp, settings.tls).map_err(SetupError::Relay)?,
        })
    }

    /// Checks that `name` can be invited, builds the mail, and stores the
    /// invitation (replacing the user's earlier one). Blocking.
    pub fn prepare(
        &self,
        store: &dyn Store,
        name: &str,
        now: UnixTime,
    ) -> Result<Prepared, InviteError> {
        let user = store.user(name)?.ok_or(InviteError::NoSuchUser)?;
        if user.disabled_at.is_some() {
            return Err(InviteError::Disabled);
        }
        let to = user
            .email
            .clone()
            .filter(|e| !e.trim().is_empty())
            .ok_or(InviteError::NoEmail)?;
        let kind = Kind::of(&user);
        let phone = match (kind.has_phone(), &user.phone) {
            (false, _) => None,
            (true, Some(p)) => Some(template::mask_phone(p)),
            (true, None) => return Err(InviteError::NoPhone(user.method.as_str())),
        };
        let (template, language) = self
            .settings
            .templates
            .choose(kind, user.language.as_deref(), self.default_language)
            .ok_or(InviteError::NoTemplate(kind.name()))?;
        let token = InviteToken::generate();
        let link = invite_link(self.public_url, &token);
        let expires_at = now.saturating_add(self.settings.invite_valid.as_secs() as i64);
        let expires = mail_time(expires_at);
        let portal = portal_url(self.public_url);
        let (subject, body) = template.render(&template::Values {
            user: &user.name,
            link: &link,
            expires: &expires,
            phone: phone.as_deref(),
            portal: &portal,
        });
        let builder = lettre::Message::builder()
            .from(smtp::mailbox(&self.settings.from, "enrollment.from").map_err(InviteError::Mail)?)
            .to(smtp::mailbox(&to, "the user's email").map_err(InviteError::Mail)?)
            .subject(subject);
        let message = smtp::plain_text(builder, body).map_err(InviteError::Mail)?;
        let hash = token.hash().to_vec();
        store.add_invitation(&Invitation {
            hash: hash.clone(),
            user: user.name.clone(),
            created_at: now,
            expires_at,
            used_at: None,
        })?;
        Ok(Prepared {
            hash,
            message,
            sent: Sent {
                user: user.name,
                to,
                kind,
                language: language.to_owned(),
                expires_at,
            },
        })
    }

    /// Hands a prepared mail to the relay. If it does not take it, the
    /// caller withdraws the invitation ([`Undelivered::withdraw`]).
    pub async fn send(&self, p: Prepared) -> Result<Sent, Undelivered> {
        match self.relay.send(p.message).await {
            Ok(_) => Ok(p.sent),
            Err(source) => Err(Undelivered {
                hash: p.hash,
                source,
            }),
        }
    }
}

/// A mail the relay did not take, with the invitation it carried.
pub struct Undelivered {
    hash: Vec<u8>,
    source: MailError,
}

impl fmt::Debug for Undelivered {
    // Like an invitation's, without the hash of its token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Undelivered")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Undelivered {
    /// Removes the invitation whose mail did not leave, so that nobody is
    /// taken for invited: [`InviteError::NotDelivered`]. A store failure
    /// here is logged, and the invitation then expires unused.
    pub fn withdraw(self, store: &dyn Store) -> InviteError {
        if let Err(e) = store.withdraw_invitation(&self.hash) {
            warn!(error = %e, "an undelivered invitation could not be withdrawn: it expires unused");
        }
        InviteError::NotDelivered {
            source: self.source,
        }
    }
}

/// What became of one user's invitation.
#[derive(Debug)]
pub struct Outcome {
    /// The name as given.
    pub user: String,
    pub result: Result<Sent, InviteError>,
}

/// What [`invite_users`] did, user by user in the order given.
#[derive(Debug, Default)]
pub struct InviteReport {
    pub outcomes: Vec<Outcome>,
}

impl InviteReport {
    pub fn sent(&self) -> usize {
        self.outcomes.iter().filter(|o| o.result.is_ok()).count()
    }

    pub fn failed(&self) -> usize {
        self.outcomes.len() - self.sent()
    }
}

/// Invites each of `names` (store names, as `user invite` and a sync have
/// them): stores the invitation, then mails it. One user's failure does not
/// stop the others; each is in the report, logged (at info, or warn for a
/// failure: never the link), and passed to `on_each` as it happens (for a
/// progress display; `&mut |_| {}` for none).
///
/// Blocking: it runs the store calls in place and the SMTP exchanges on a
/// runtime of its own, so call it from a thread of its own or
/// `spawn_blocking`, never from async code. `Err` only when nothing can be
/// sent: no `[enrollment]`, no `public_url`, a relay address that does not
/// parse.
pub fn invite_users(
    store: &dyn Store,
    config: &Config,
    names: &[String],
    now: UnixTime,
    on_each: &mut dyn FnMut(&Outcome),
) -> Result<InviteReport, SetupError> {
    let inviter = Inviter::new(config)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(SetupError::Runtime)?;
    let mut report = InviteReport::default();
    for name in names {
        let result = inviter
            .prepare(store, name, now)
            .and_then(|p| rt.block_on(inviter.send(p)).map_err(|u| u.withdraw(store)));
        match &result {
            Ok(s) => {
                info!(user = %s.user, to = %s.to, template = s.kind.name(), language = %s.language, "enrollment invitation mailed")
            }
            Err(e) => warn!(user = %name, error = %e, "enrollment invitation not sent"),
        }
        let outcome = Outcome {
            user: name.clone(),
            result,
        };
        on_each(&outcome);
        report.outcomes.push(outcome);
    }
    Ok(report)
}

#[cfg(test)]
mod tests;
