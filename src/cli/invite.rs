//! `mfa-proxy user invite`: mails users their enrollment invitation
//! ([`crate::enroll`]) and says, one line per user, where each went or why
//! it did not. The lines are the progress: with thousands of users each
//! line is one more done, so no bar is drawn over them.

use std::io::Write;

use crate::config::Config;
use crate::enroll::{self, InviteError, Outcome};
use crate::mfa::Method;
use crate::store::{Store, UnixTime};

use super::{AdminError, show_time};

/// Whom to invite.
#[derive(Debug)]
pub enum Invitees {
    /// These users, by name.
    Named(Vec<String>),
    /// Every user who is not disabled, has an email address, has no
    /// active token (app or hardware) yet and no invitation still open.
    /// Call and SMS users, who need no token, are invited once (their mail
    /// says what to expect): never again once they have had one. So the
    /// command can run every day without mailing anyone twice.
    AllPending,
}

/// How it went.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Invited {
    pub sent: usize,
    pub failed: usize,
    /// `AllPending` only: users passed over for want of an email address.
    pub without_email: usize,
    /// `AllPending` only: users passed over because their invitation is
    /// still open, or because they need no token and had one already.
    pub invited_before: usize,
}

/// Invites `who`: a line on `out` per user mailed, a line on `err` per user
/// who was not, then a summary on `out`. A user's failure does not stop the
/// others. `Err` when nothing could be tried (no `[enrollment]`, the store
/// unreadable); otherwise the caller decides the exit status from
/// [`Invited::failed`].
pub fn user_invite(
    store: &dyn Store,
    config: &Config,
    who: Invitees,
    now: UnixTime,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Invited, AdminError> {
    let mut invited = Invited::default();
    let names = match who {
        Invitees::Named(names) => names,
        Invitees::AllPending => {
            let mut names = Vec::new();
            for u in store.users()? {
                if u.disabled_at.is_some() || store.tokens(&u.name)?.iter().any(|t| t.active) {
                    continue;
                }
                if u.email.as_deref().is_none_or(|e| e.trim().is_empty()) {
                    invited.without_email += 1;
                    continue;
                }
                let needs_no_token = matches!(u.method, Method::Call | Method::Sms);
                let before = store
                    .invitation_of(&u.name)?
                    .is_some_and(|i| needs_no_token || (i.used_at.is_none() && i.expires_at > now));
                if before {
                    invited.invited_before += 1;
                    continue;
                }
                names.push(u.name);
            }
            names
        }
    };
    // Output is written as each user is done; a closed stdout is reported
    // once at the end, after every user has had their mail.
    let mut output: std::io::Result<()> = Ok(());
    let mut line = |o: &Outcome| {
        let written = match &o.result {
            Ok(s) => {
                invited.sent += 1;
                writeln!(
                    out,
                    "{}: mailed to {} ({} template, {}); the link works once, until {}",
                    s.user,
                    s.to,
                    s.kind.name(),
                    s.language,
                    show_time(s.expires_at)
                )
            }
            Err(e) => {
                invited.failed += 1;
                let hint = match e {
                    InviteError::NotDelivered { .. } => "",
                    _ => " (nothing was stored)",
                };
                writeln!(err, "error: {}: {e}{hint}", o.user)
            }
        };
        if output.is_ok() {
            output = written;
        }
    };
    enroll::invite_users(store, config, &names, now, &mut line)?;
    output?;
    if invited.without_email > 0 {
        writeln!(
            out,
            "passed over {} user{} without an email address (`mfa-proxy user list` shows them)",
            invited.without_email,
            if invited.without_email == 1 { "" } else { "s" }
        )?;
    }
    if invited.invited_before > 0 {
        writeln!(
            out,
            "passed over {} user{} invited before (an open invitation, or a call or SMS user \
             told already; `mfa-proxy user invite NAME` mails one again)",
            invited.invited_before,
            if invited.invited_before == 1 { "" } else { "s" }
        )?;
    }
    writeln!(
        out,
        "invited {} of {} user{}",
        invited.sent,
        names.len(),
        if names.len() == 1 { "" } else { "s" }
    )?;
    Ok(invited)
}
