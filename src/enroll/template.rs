//! Enrollment mail templates: one per [`Kind`] (the user's method, and PIN
//! mode) and language.
//!
//! A template is a text file, `KIND.LANG.txt` (`totp.en.txt`,
//! `call.de.txt`, `pin.pt-br.txt`): a `Subject:` line, a blank line, then
//! the body, in UTF-8. Placeholders in braces are filled in per user
//! ([`Placeholder`]); `{{` and `}}` are literal braces. The defaults are
//! compiled in from the repository's `templates/` folder (English and
//! German); the files of `[enrollment] templates` replace them one by one.
//!
//! Every file is parsed when the configuration loads, so a broken one (an
//! unknown placeholder, an unbalanced brace, no Subject line, not UTF-8, a
//! placeholder the method has no value for) fails `mfa-proxy check` and a
//! start or reload, naming the file, instead of failing the mails later.
//! The link, which carries the invitation's token, may stand only in the
//! body: subjects end up in relays' logs and mail clients' notifications.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::parse_language_tag;
use crate::mfa::Method;
use crate::store::User;

/// Which template a user gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// An authenticator app: the link to enroll it at the portal.
    Totp,
    /// Push notifications: the app is enrolled at the portal too.
    Push,
    /// Phone calls: the number on file, so the user knows what to expect.
    Call,
    /// Text messages: the number on file.
    Sms,
    /// Calls answered with a PIN: how to set it at the portal.
    Pin,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Totp, Kind::Push, Kind::Call, Kind::Sms, Kind::Pin];

    /// The name in file names (`pin.en.txt`) and in the CLI's lines.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Totp => "totp",
            Kind::Push => "push",
            Kind::Call => "call",
            Kind::Sms => "sms",
            Kind::Pin => "pin",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// The template for `user`: the method, except that a call user with
    /// a PIN is in PIN mode.
    pub fn of(user: &User) -> Kind {
        match user.method {
            Method::Totp => Kind::Totp,
            Method::Push => Kind::Push,
            Method::Call if user.pin_hash.is_some() => Kind::Pin,
            Method::Call => Kind::Call,
            Method::Sms => Kind::Sms,
        }
    }

    /// Whether the user has a phone number on file to show: only users
    /// called or texted need one.
    pub fn has_phone(self) -> bool {
        matches!(self, Kind::Call | Kind::Sms | Kind::Pin)
    }

    /// Whether the body must carry `{link}`: users who enroll an app or
    /// set a PIN cannot do it without the portal. Call and SMS users are
    /// ready as they are; their link is a courtesy.
    fn needs_link(self) -> bool {
        matches!(self, Kind::Totp | Kind::Push | Kind::Pin)
    }
}

/// What a template can say: `{user}`, `{link}`, `{expires}`, `{phone}`,
/// `{portal}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placeholder {
    /// The user's name.
    User,
    /// `{public_url}/portal/invite/{token}`: the single-use invitation.
    Link,
    /// When the link stops working (`2025-02-07 14:00 UTC`).
    Expires,
    /// The phone number on file, all but its last four digits masked
    /// (`+•••••••3456`); call, SMS and PIN templates only.
    Phone,
    /// `{public_url}/portal/`: where the user manages their methods later.
    Portal,
}

impl Placeholder {
    const ALL: [Placeholder; 5] = [
        Placeholder::User,
        Placeholder::Link,
        Placeholder::Expires,
        Placeholder::Phone,
        Placeholder::Portal,
    ];

    fn name(self) -> &'static str {
        match self {
            Placeholder::User => "user",
            Placeholder::Link => "link",
            Placeholder::Expires => "expires",
            Placeholder::Phone => "phone",
            Placeholder::Portal => "portal",
        }
    }
}

/// What is wrong with a template file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    #[error("cannot read it: {0}")]
    Unreadable(#[source] std::io::Error),
    #[error(
        "the name is not KIND.LANG.txt (KIND one of totp, push, call, sms, pin; LANG a language tag such as en or pt-br)"
    )]
    BadName,
    #[error("it is not UTF-8 text")]
    NotUtf8,
    #[error("line 1 is not \"Subject: ...\" with a subject")]
    NoSubject,
    #[error("line 2 is not blank: a blank line separates the Subject from the body")]
    NoBlankLine,
    #[error("the body is empty")]
    EmptyBody,
    #[error(
        "line {line}: unknown placeholder {{{name}}}; known are {{user}}, {{link}}, {{expires}}, {{phone}}, {{portal}} (write {{{{ and }}}} for literal braces)"
    )]
    Unknown { line: usize, name: String },
    #[error("line {line}: a {{ without its closing }} (write {{{{ for a literal brace)")]
    Unclosed { line: usize },
    #[error("line {line}: a }} that closes nothing (write }}}} for a literal brace)")]
    Unopened { line: usize },
    #[error(
        "line {line}: {{phone}} is not available in a {kind} template: the user has no phone number to show"
    )]
    NoPhone { line: usize, kind: &'static str },
    #[error(
        "the Subject carries {{link}}: the link is a credential and goes in the body only (subjects show in relays' logs and notifications)"
    )]
    LinkInSubject,
    #[error("the body has no {{link}}: a {kind} user cannot enroll without the invitation link")]
    NoLink { kind: &'static str },
}

/// A template file that is broken, and why.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct TemplateError {
    pub path: PathBuf,
    #[source]
    pub problem: Problem,
}

/// Text or a placeholder, in the order they come.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Value(Placeholder),
}

/// One parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    subject: Vec<Piece>,
    body: Vec<Piece>,
}

/// What the placeholders stand for, for one user.
pub struct Values<'a> {
    pub user: &'a str,
    /// Carries the token: written into the body, nowhere else.
    pub link: &'a str,
    pub expires: &'a str,
    /// The masked number (see [`mask_phone`]); `None` for app users.
    pub phone: Option<&'a str>,
    pub portal: &'a str,
}

impl fmt::Debug for Values<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Values")
            .field("user", &self.user)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

impl Template {
    /// Parses a template for `kind` (the file's text, line endings as
    /// Windows or Unix write them, a byte-order mark ignored).
    pub fn parse(text: &str, kind: Kind) -> Result<Template, Problem> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let text = text.replace("\r\n", "\n");
        let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
        let subject = first
            .get(..8)
            .filter(|p| p.eq_ignore_ascii_case("subject:"))
            .map(|_| first[8..].trim())
            .filter(|s| !s.is_empty())
            .ok_or(Problem::NoSubject)?;
        let (blank, body) = rest.split_once('\n').unwrap_or((rest, ""));
        if !blank.trim().is_empty() {
            return Err(Problem::NoBlankLine);
        }
        if body.trim().is_empty() {
            return Err(Problem::EmptyBody);
        }
        let subject = pieces(subject, 1, kind)?;
        if subject.contains(&Piece::Value(Placeholder::Link)) {
            return Err(Problem::LinkInSubject);
        }
        let body = pieces(body.trim_end(), 3, kind)?;
        if kind.needs_link() && !body.contains(&Piece::Value(Placeholder::Link)) {
            return Err(Problem::NoLink { kind: kind.name() });
        }
        Ok(Template { subject, body })
    }

    /// The subject and the body for one user. A value cannot break the
    /// subject's header: control characters in it become spaces.
    pub fn render(&self, v: &Values<'_>) -> (String, String) {
        let fill = |pieces: &[Piece], subject: bool| {
            let mut out = String::new();
            for p in pieces {
                let value = match p {
                    Piece::Text(t) => t.as_str(),
                    Piece::Value(Placeholder::User) => v.user,
                    Piece::Value(Placeholder::Link) => v.link,
                    Piece::Value(Placeholder::Expires) => v.expires,
                    Piece::Value(Placeholder::Phone) => v.phone.unwrap_or("-"),
                    Piece::Value(Placeholder::Portal) => v.portal,
                };
                if subject {
                    out.extend(value.chars().map(|c| if c.is_control() { ' ' } else { c }));
                } else {
                    out.push_str(value);
                }
            }
            out
        };
        let mut body = fill(&self.body, false);
        body.push('\n');
        (fill(&self.subject, true), body)
    }
}

/// Splits `text` (whose first line is line `first_line` of the file) into
/// text and placeholders.
fn pieces(text: &str, first_line: usize, kind: Kind) -> Result<Vec<Piece>, Problem> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut line = first_line;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                lit.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                lit.push('}');
            }
            '}' => return Err(Problem::Unopened { line }),
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        None | Some('\n' | '{') => return Err(Problem::Unclosed { line }),
                        Some(c) => name.push(c),
                    }
                }
                let p = Placeholder::ALL
                    .into_iter()
                    .find(|p| p.name() == name)
                    .ok_or_else(|| Problem::Unknown {
                        line,
                        name: name.chars().take(40).collect(),
                    })?;
                if p == Placeholder::Phone && !kind.has_phone() {
                    return Err(Problem::NoPhone {
                        line,
                        kind: kind.name(),
                    });
                }
                if !lit.is_empty() {
                    out.push(Piece::Text(std::mem::take(&mut lit)));
                }
                out.push(Piece::Value(p));
            }
            '\n' => {
                line += 1;
                lit.push(c);
            }
            c => lit.push(c),
        }
    }
    if !lit.is_empty() {
        out.push(Piece::Text(lit));
    }
    Ok(out)
}

/// A phone number with every digit but the last four masked (`+4930123456`
/// becomes `+•••••••3456`), and without its extension: enough for users to
/// recognise their number in a mail that may be read by others.
pub fn mask_phone(phone: &str) -> String {
    let number = phone.split(['x', 'X']).next().unwrap_or(phone);
    let digits = number.chars().filter(char::is_ascii_digit).count();
    let mut seen = 0;
    number
        .chars()
        .map(|c| {
            if !c.is_ascii_digit() {
                return c;
            }
            seen += 1;
            if seen + 4 > digits { c } else { '•' }
        })
        .collect()
}

/// The shipped templates, compiled in from `templates/`.
const SHIPPED: &[(&str, &str)] = &[
    ("totp.en.txt", include_str!("../../templates/totp.en.txt")),
    ("push.en.txt", include_str!("../../templates/push.en.txt")),
    ("call.en.txt", include_str!("../../templates/call.en.txt")),
    ("sms.en.txt", include_str!("../../templates/sms.en.txt")),
    ("pin.en.txt", include_str!("../../templates/pin.en.txt")),
    ("totp.de.txt", include_str!("../../templates/totp.de.txt")),
    ("push.de.txt", include_str!("../../templates/push.de.txt")),
    ("call.de.txt", include_str!("../../templates/call.de.txt")),
    ("sms.de.txt", include_str!("../../templates/sms.de.txt")),
    ("pin.de.txt", include_str!("../../templates/pin.de.txt")),
];

/// The language every kind has a shipped template in: the last fallback.
pub const FALLBACK_LANGUAGE: &str = "en";

/// Every template in force: the shipped ones, with those of the
/// administrator's directory in their place.
#[derive(Clone, PartialEq, Eq)]
pub struct Templates {
    by: BTreeMap<(Kind, String), Template>,
    /// The administrator's files that were read, by name.
    overrides: Vec<String>,
}

impl fmt::Debug for Templates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Templates")
            .field("languages", &self.languages())
            .field("overrides", &self.overrides)
            .finish()
    }
}

impl Templates {
    /// The shipped templates alone.
    pub fn shipped() -> Result<Templates, TemplateError> {
        let mut t = Templates {
            by: BTreeMap::new(),
            overrides: Vec::new(),
        };
        for (name, text) in SHIPPED {
            let path = Path::new("templates").join(name);
            let (kind, lang) = file_name(name).ok_or_else(|| TemplateError {
                path: path.clone(),
                problem: Problem::BadName,
            })?;
            let parsed =
                Template::parse(text, kind).map_err(|problem| TemplateError { path, problem })?;
            t.by.insert((kind, lang), parsed);
        }
        Ok(t)
    }

    /// The shipped templates, replaced by the files of `dir` (if given).
    /// Files not ending in `.txt`, and hidden ones, are left alone (an
    /// editor's backups); every `.txt` file must be a good template.
    pub fn load(dir: Option<&Path>) -> Result<Templates, TemplateError> {
        let mut t = Templates::shipped()?;
        let Some(dir) = dir else { return Ok(t) };
        let unreadable = |path: &Path, e| TemplateError {
            path: path.to_owned(),
            problem: Problem::Unreadable(e),
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| unreadable(dir, e))? {
            let entry = entry.map_err(|e| unreadable(dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !name.ends_with(".txt") {
                continue;
            }
            files.push((name, entry.path()));
        }
        // In name order, so the error reported first is always the same.
        files.sort();
        for (name, path) in files {
            let Some((kind, lang)) = file_name(&name) else {
                return Err(TemplateError {
                    path,
                    problem: Problem::BadName,
                });
            };
            let bytes = std::fs::read(&path).map_err(|e| unreadable(&path, e))?;
            let text = String::from_utf8(bytes).map_err(|_| TemplateError {
                path: path.clone(),
                problem: Problem::NotUtf8,
            })?;
            let parsed =
                Template::parse(&text, kind).map_err(|problem| TemplateError { path, problem })?;
            t.by.insert((kind, lang), parsed);
            t.overrides.push(name);
        }
        Ok(t)
    }

    /// The template of `kind` for a user whose language is `language`
    /// (`None`: none set), and the language it is in. Tried in order: the
    /// user's language, its base language (`pt` for `pt-br`), the same
    /// for `default` (`[mfa] language`), then English.
    pub fn choose(
        &self,
        kind: Kind,
        language: Option<&str>,
        default: &str,
    ) -> Option<(&Template, &str)> {
        let mut tried: Vec<String> = Vec::new();
        for tag in [language, Some(default)].into_iter().flatten() {
            let tag = tag.to_ascii_lowercase();
            let base = tag.split_once('-').map(|(b, _)| b.to_owned());
            tried.push(tag);
            tried.extend(base);
        }
        tried.push(FALLBACK_LANGUAGE.to_owned());
        tried.into_iter().find_map(|lang| {
            self.by
                .get_key_value(&(kind, lang))
                .map(|((_, l), t)| (t, l.as_str()))
        })
    }

    /// The languages some template is in.
    pub fn languages(&self) -> Vec<&str> {
        let mut l: Vec<&str> = self.by.keys().map(|(_, l)| l.as_str()).collect();
        l.sort_unstable();
        l.dedup();
        l
    }

    /// The administrator's files in force, by name.
    pub fn overrides(&self) -> &[String] {
        &self.overrides
    }
}

/// `KIND.LANG.txt`: the kind and the language, lowercased.
fn file_name(name: &str) -> Option<(Kind, String)> {
    let stem = name.strip_suffix(".txt")?;
    let (kind, lang) = stem.split_once('.')?;
    Some((
        Kind::parse(&kind.to_ascii_lowercase())?,
        parse_language_tag(lang)?,
    ))
}
