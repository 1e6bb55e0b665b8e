//! `[enrollment]`: the mail that invites users to enroll (`mfa-proxy user
//! invite`, and users a `[[directory]]` with `invite = true` adds).
//!
//! Keys: `from` (required), `invite_valid` (how long a link works, 1h to
//! 90d, 7d by default), `templates` (a directory of files replacing the
//! shipped templates, see [`crate::enroll::template`]), and the relay:
//! `smtp` and `tls` as in `[notify]`, or, left out, `[notify]`'s relay.
//! Links are `{public_url}/portal/invite/{token}`, so the section needs
//! `[server] public_url`. The templates are read and checked here, when
//! the file loads: a broken one fails `check`, a start and a reload.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::error::{ConfigError, invalid};
use super::providers::{email, smtp_relay};
use super::values::{parse_duration, resolve_path};
use super::{Directory, Mfa, Notify, Server, SmtpTls};
use crate::enroll::template::{Kind, Templates};

/// The enrollment mail.
#[derive(Clone, Debug)]
pub struct Enrollment {
    /// The sender of the invitations.
    pub from: String,
    /// How long an invitation link works.
    pub invite_valid: Duration,
    /// The administrator's template directory, as resolved.
    pub templates_dir: Option<PathBuf>,
    /// The shipped templates with the directory's in their place.
    pub templates: Templates,
    /// The relay, `host:port`: `[enrollment]`'s own or `[notify]`'s.
    pub smtp: String,
    pub tls: SmtpTls,
    /// Whether the relay is `[notify]`'s.
    pub relay_of_notify: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEnrollment {
    from: Option<String>,
    invite_valid: Option<String>,
    templates: Option<PathBuf>,
    smtp: Option<String>,
    tls: Option<String>,
}

const D_INVITE_VALID: &str = "7d";
const INVITE_VALID_MIN: Duration = Duration::from_secs(3600);
const INVITE_VALID_MAX: Duration = Duration::from_secs(90 * 86_400);

/// What `[enrollment]` is checked against: the other sections it uses.
pub(super) struct Context<'a> {
    pub(super) server: &'a Server,
    pub(super) notify: Option<&'a Notify>,
    pub(super) directories: &'a [Directory],
    pub(super) mfa: &'a Mfa,
    /// Whether `[portal]` is enabled: the links lead there.
    pub(super) portal: bool,
}

/// `[enrollment]`, if given; and whether the `[[directory]]` sources that
/// invite the users they add have what invitations need.
pub(super) fn validate(
    raw: Option<RawEnrollment>,
    cx: Context<'_>,
    base: &Path,
    warnings: &mut Vec<String>,
) -> Result<Option<Enrollment>, ConfigError> {
    let inviting = cx.directories.iter().position(|d| d.invite);
    if (raw.is_some() || inviting.is_some()) && cx.server.public_url.is_none() {
        return Err(invalid(
            "server.public_url",
            "missing: invitation links are {public_url}/portal/invite/..., e.g. \"https://mfa.example.org\"",
        ));
    }
    let Some(raw) = raw else {
        if let Some(i) = inviting {
            return Err(invalid(
                format!("directory[{i}].invite"),
                "needs an [enrollment] section to mail the invitations (from, and smtp or [notify])",
            ));
        }
        return Ok(None);
    };
    let from = raw.from.ok_or_else(|| {
        invalid(
            "enrollment.from",
            "missing: the sender of the invitations, e.g. \"it-support@example.org\"",
        )
    })?;
    email(&from, "enrollment.from")?;
    let written = raw.invite_valid.as_deref().unwrap_or(D_INVITE_VALID);
    let invite_valid = parse_duration(
        written,
        "enrollment.invite_valid",
        Duration::ZERO,
        Duration::MAX,
    )?;
    if !(INVITE_VALID_MIN..=INVITE_VALID_MAX).contains(&invite_valid) {
        // Said as written: humantime would call 90 days "2months 29days 2h 52m 48s".
        return Err(invalid(
            "enrollment.invite_valid",
            format!("\"{written}\" is outside 1h..=90d"),
        ));
    }
    let (smtp, tls, relay_of_notify) = match (raw.smtp, cx.notify) {
        (Some(smtp), _) => {
            let tls = smtp_relay(&smtp, raw.tls.as_deref().unwrap_or("none"), "enrollment")?;
            (smtp, tls, false)
        }
        (None, _) if raw.tls.is_some() => {
            return Err(invalid(
                "enrollment.tls",
                "is for enrollment.smtp; without smtp, [notify]'s relay is used with its tls",
            ));
        }
        (None, Some(n)) => (n.smtp.clone(), n.tls, true),
        (None, None) => {
            return Err(invalid(
                "enrollment.smtp",
                "missing: give the relay (\"host:port\"), or set [notify], whose relay is then used",
            ));
        }
    };
    let templates_dir = raw.templates.map(|p| resolve_path(base, p));
    let templates = Templates::load(templates_dir.as_deref())
        .map_err(|source| ConfigError::Template { source })?;
    warn(&templates, cx, warnings);
    Ok(Some(Enrollment {
        from,
        invite_valid,
        templates_dir,
        templates,
        smtp,
        tls,
        relay_of_notify,
    }))
}

/// What works but may surprise: links over plain http, languages users
/// read prompts in that the mails are not written in.
fn warn(templates: &Templates, cx: Context<'_>, warnings: &mut Vec<String>) {
    if let Some(url) = &cx.server.public_url
        && url.starts_with("http://")
    {
        warnings.push(format!("[enrollment]: server.public_url \"{url}\" is plain http; invitation links cross the network unencrypted"));
    }
    if !cx.portal {
        warnings.push("[enrollment]: [portal] is not enabled, so the invitations' links lead nowhere until it is".to_owned());
    }
    let mut known: Vec<&str> = cx.mfa.languages.keys().map(String::as_str).collect();
    known.push(&cx.mfa.language);
    known.sort_unstable();
    known.dedup();
    for lang in known {
        let mut elsewhere = Vec::new();
        for kind in Kind::ALL {
            if let Some((_, got)) = templates.choose(kind, Some(lang), &cx.mfa.language)
                && got != lang
                && !lang.starts_with(&format!("{got}-"))
            {
                elsewhere.push(format!("{} in {got}", kind.name()));
            }
        }
        if !elsewhere.is_empty() {
            warnings.push(format!(
                "[enrollment]: users whose language is {lang} get these mails in another language, for want of KIND.{lang}.txt templates: {}",
                elsewhere.join(", ")
            ));
        }
    }
}
