//! The administrator's verbs: users, tokens, block, bypass, reports. Each
//! works on a [`Store`] and writes its output to a writer, so `serve` picks
//! up the change on the next login and the verbs are testable without a
//! terminal. [`args`] is the command line that names them; `import` reads
//! the CSV files of users and hardware tokens; `report` writes the reports.

use std::io::Write;

use argon2::password_hash::{PasswordHasher, SaltString};
use rand::RngCore;
use zeroize::Zeroizing;

use crate::mfa::Method;
use crate::mfa::otp::{self, TotpParams, Verdict};
use crate::store::{Store, StoreError, Token, TokenKind, UnixTime, User, normalize_groups};

pub mod args;
mod directory;
mod import;
mod invite;
pub mod ops;
pub mod policy;
mod progress;
pub mod pskc;
mod report;

pub use args::{
    Cli, Command, DirectoryCmd, LogFormat, PolicyCmd, ReportCmd, ReportFormat, SecretFormatArg,
    TokenCmd, TotpCmd, UserCmd,
};
pub use directory::directory_sync;
pub use import::{SecretFormat, apply_user_map, pskc_import, token_import, user_import};
pub use invite::{Invited, Invitees, user_invite};
pub use progress::Progress;
pub use report::{
    Format, report_blocked, report_bypassed, report_signins, report_status, report_users,
};

/// An administrative command failed; the message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Invalid(String),
    #[error("output: {0}")]
    Output(#[from] std::io::Error),
    /// Invitations cannot be mailed at all (the configuration lacks what
    /// they need, or the relay's address is wrong).
    #[error(transparent)]
    Invite(#[from] crate::enroll::SetupError),
}

fn invalid(s: impl Into<String>) -> AdminError {
    AdminError::Invalid(s.into())
}

/// User names: printable, no spaces or control characters, 1..=253 octets
/// (they travel in User-Name).
pub fn check_user_name(name: &str) -> Result<(), AdminError> {
    if !crate::store::user_name_ok(name) {
        return Err(invalid(format!(
            "\"{}\" is not a valid user name: 1 to 253 characters, no spaces or control characters",
            name.escape_default()
        )));
    }
    Ok(())
}

/// The groups of `--groups`: names separated by commas, spaces around each
/// ignored; `""` is none. A name is 1 to 253 characters without control
/// characters (groups also come in RADIUS attributes). Returned sorted
/// and without duplicates, as the store keeps them.
pub fn parse_groups(list: &str) -> Result<Vec<String>, AdminError> {
    if list.trim().is_empty() {
        return Ok(Vec::new());
    }
    let groups = list
        .split(',')
        .map(str::trim)
        .map(|g| {
            if g.is_empty() || g.len() > 253 || g.chars().any(char::is_control) {
                return Err(invalid(format!(
                    "\"{}\" is not a list of groups: names of 1 to 253 characters without control characters, separated by commas, e.g. vpn,admins",
                    list.escape_default()
                )));
            }
            Ok(g.to_owned())
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(normalize_groups(groups))
}

/// Phone numbers: see [`crate::mfa::check_phone`].
pub fn check_phone(phone: &str) -> Result<(), AdminError> {
    crate::mfa::check_phone(phone).map_err(|_| {
        invalid(format!(
            "\"{}\" is not a phone number: write + and the country code, e.g. +15551234567 (an extension after x: digits , * #)",
            phone.escape_default()
        ))
    })
}

/// An argon2id hash of a password, for `[primary] mode = "local"`.
pub fn hash_password(password: &[u8]) -> Result<String, AdminError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| invalid(format!("salt: {e}")))?;
    argon2::Argon2::default()
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| invalid(format!("password hashing failed: {e}")))
}

pub fn user_add(
    store: &dyn Store,
    name: &str,
    email: Option<String>,
    phone: Option<String>,
    password: Option<Zeroizing<String>>,
    groups: Vec<String>,
    now: UnixTime,
) -> Result<(), AdminError> {
    check_user_name(name)?;
    if let Some(e) = &email {
        check_email(e)?;
    }
    if let Some(p) = &phone {
        check_phone(p)?;
    }
    let password_hash = match password {
        Some(p) if p.is_empty() => {
            return Err(invalid("the password read from standard input is empty"));
        }
        Some(p) => Some(hash_password(p.as_bytes())?),
        None => None,
    };
    store.add_user(&User {
        email,
        phone,
        password_hash,
        created_at: now,
        groups,
        ..User::new(name, Method::Totp)
    })?;
    Ok(())
}

/// The changes `user set` makes; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct UserChanges<'a> {
    /// push, call, sms or totp.
    pub method: Option<&'a str>,
    /// `""` removes it.
    pub email: Option<&'a str>,
    /// `""` removes it.
    pub phone: Option<&'a str>,
    /// The call PIN, 4 to 8 digits, stored as an argon2id hash; `""`
    /// removes it.
    pub pin: Option<Zeroizing<String>>,
    /// `""`: the default language.
    pub language: Option<&'a str>,
    /// Replaces the user's groups (see [`parse_groups`]).
    pub groups: Option<Vec<String>>,
}

/// Email addresses, as [`crate::store::email_ok`] takes them.
pub fn check_email(email: &str) -> Result<(), AdminError> {
    if crate::store::email_ok(email) {
        Ok(())
    } else {
        Err(invalid(format!(
            "\"{}\" is not an email address",
            email.escape_default()
        )))
    }
}

/// Changes a user's default method, email address, phone number, call
/// PIN, language or groups.
pub fn user_set(store: &dyn Store, name: &str, changes: UserChanges<'_>) -> Result<(), AdminError> {
    let UserChanges {
        method,
        email,
        phone,
        pin,
        language,
        groups,
    } = changes;
    let mut u = store
        .user(name)?
        .ok_or_else(|| StoreError::NoSuchUser(name.to_owned()))?;
    if let Some(m) = method {
        u.method = Method::parse(m)
            .ok_or_else(|| invalid(format!("\"{m}\" is not one of push, call, sms, totp")))?;
    }
    // A value given replaces the field once checked; "" clears it.
    let replace = |field: &mut Option<String>,
                   value: Option<&str>,
                   check: fn(&str) -> Result<(), AdminError>| {
        match value {
            None => Ok(()),
            Some("") => {
                *field = None;
                Ok(())
            }
            Some(v) => check(v).map(|()| *field = Some(v.to_owned())),
        }
    };
    replace(&mut u.email, email, check_email)?;
    replace(&mut u.phone, phone, check_phone)?;
    if let Some(pin) = pin {
        if pin.is_empty() {
            u.pin_hash = None;
        } else if !(4..=8).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("the PIN must be 4 to 8 digits"));
        } else {
            u.pin_hash = Some(hash_password(pin.as_bytes())?);
        }
    }
    if let Some(l) = language {
        u.language = if l.is_empty() {
            None
        } else {
            Some(crate::config::parse_language_tag(l).ok_or_else(|| {
                invalid(format!(
                    "\"{l}\" is not a language tag such as \"en\", \"de\" or \"pt-br\""
                ))
            })?)
        };
    }
    if let Some(g) = groups {
        u.groups = g;
    }
    if matches!(u.method, Method::Call | Method::Sms) && u.phone.is_none() {
        return Err(invalid(format!(
            "{} needs a phone number: add --phone",
            u.method.as_str()
        )));
    }
    store.update_user(&u)?;
    Ok(())
}
pub(crate) fn show_time(t: UnixTime) -> String {
    u64::try_from(t)
        .ok()
        .map(|s| {
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(s),
            )
            .to_string()
        })
        .unwrap_or_else(|| t.to_string())
}

pub(crate) fn methods(store: &dyn Store, name: &str) -> Result<String, AdminError> {
    let tokens = store.tokens(name)?;
    let mut m: Vec<String> = tokens
        .iter()
        .map(|t| {
            let kind = if t.kind == TokenKind::Hotp {
                "hotp"
            } else {
                "totp"
            };
            let serial = t
                .serial
                .as_deref()
                .map(|s| format!(" #{s}"))
                .unwrap_or_default();
            format!("{kind}{serial}{}", if t.active { "" } else { " (pending)" })
        })
        .collect();
    if m.is_empty() {
        m.push("none".into());
    }
    Ok(m.join(", "))
}

pub fn user_list(store: &dyn Store, out: &mut dyn Write) -> Result<(), AdminError> {
    writeln!(
        out,
        "{:<24} {:<28} {:<16} methods",
        "name", "email", "phone"
    )?;
    for u in store.users()? {
        writeln!(
            out,
            "{:<24} {:<28} {:<16} {}",
            u.name,
            u.email.as_deref().unwrap_or("-"),
            u.phone.as_deref().unwrap_or("-"),
            methods(store, &u.name)?
        )?;
    }
    Ok(())
}

pub fn user_show(
    store: &dyn Store,
    name: &str,
    now: UnixTime,
    out: &mut dyn Write,
) -> Result<(), AdminError> {
    let u = store
        .user(name)?
        .ok_or_else(|| StoreError::NoSuchUser(name.to_owned()))?;
    writeln!(out, "name:      {}", u.name)?;
    writeln!(out, "email:     {}", u.email.as_deref().unwrap_or("-"))?;
    writeln!(out, "phone:     {}", u.phone.as_deref().unwrap_or("-"))?;
    writeln!(out, "method:    {}", u.method.as_str())?;
    writeln!(
        out,
        "language:  {}",
        u.language.as_deref().unwrap_or("(default)")
    )?;
    writeln!(
        out,
        "password:  {}",
        if u.password_hash.is_some() {
            "set (local)"
        } else {
            "none"
        }
    )?;
    writeln!(out, "tokens:    {}", methods(store, &u.name)?)?;
    if u.groups.is_empty() {
        writeln!(out, "groups:    (none)")?;
    } else {
        writeln!(out, "groups:    {}", u.groups.join(", "))?;
    }
    writeln!(out, "created:   {}", show_time(u.created_at))?;
    writeln!(
        out,
        "source:    {}",
        match &u.source {
            Some(d) => format!("directory {d}"),
            None => "added by hand".to_owned(),
        }
    )?;
    if let Some(until) = u.enroll_until.filter(|&t| t > now) {
        writeln!(
            out,
            "enrollment: open at the portal until {} (the password alone signs in)",
            show_time(until)
        )?;
    }
    if let Some(i) = store.invitation_of(&u.name)? {
        let state = match i.used_at {
            Some(at) => format!("used {}", show_time(at)),
            None if i.expires_at > now => format!("open until {}", show_time(i.expires_at)),
            None => format!("expired {}", show_time(i.expires_at)),
        };
        writeln!(
            out,
            "invited:   {} (mailed {})",
            state,
            show_time(i.created_at)
        )?;
    }
    if let Some(at) = u.disabled_at {
        writeln!(
            out,
            "disabled:  since {} (no longer in directory {}); every login is refused",
            show_time(at),
            u.source.as_deref().unwrap_or("-")
        )?;
    }
    match store.blocked_until(&u.name, now)? {
        Some(t) => writeln!(out, "blocked:   until {}", show_time(t))?,
        None => writeln!(out, "blocked:   no")?,
    }
    if let Some(t) = store.locked_until(&u.name, now)? {
        writeln!(out, "locked:    until {}", show_time(t))?;
    }
    let remembered = store.remembered(&u.name)?;
    if remembered.is_empty() {
        writeln!(out, "remembered: none")?;
    }
    for (i, r) in remembered.iter().enumerate() {
        // What a NAS sent: shown escaped, never as terminal controls.
        writeln!(
            out,
            "{}auth {}, app {}, address {}, at {}",
            if i == 0 {
                "remembered: "
            } else {
                "            "
            },
            r.auth_type.escape_debug(),
            r.app.escape_debug(),
            r.address
                .as_deref()
                .map_or_else(|| "-".to_owned(), |a| a.escape_debug().to_string()),
            show_time(r.at)
        )?;
    }
    Ok(())
}

/// Opens (or with a zero duration closes) a user's enrollment window;
/// when it closes, as text, or `None` if closed.
pub fn open_enrollment(
    store: &dyn Store,
    name: &str,
    duration: &str,
    now: UnixTime,
) -> Result<Option<String>, AdminError> {
    let d = crate::config::parse_duration(
        duration,
        "--for",
        std::time::Duration::ZERO,
        std::time::Duration::from_secs(30 * 86_400),
    )
    .map_err(|e| invalid(e.to_string()))?;
    let mut u = store
        .user(name)?
        .ok_or_else(|| StoreError::NoSuchUser(name.to_owned()))?;
    let until = (!d.is_zero()).then(|| now.saturating_add(d.as_secs() as i64));
    u.enroll_until = until;
    store.update_user(&u)?;
    Ok(until.map(show_time))
}

/// A new TOTP enrollment: the `otpauth://` URI for the user's app.
#[derive(Debug)]
pub struct Enrollment {
    pub uri: Zeroizing<String>,
}

/// Makes a 160-bit secret, stores it pending, and returns the URI.
pub fn totp_enroll(store: &dyn Store, name: &str, issuer: &str) -> Result<Enrollment, AdminError> {
    let user = store
        .user(name)?
        .ok_or_else(|| StoreError::NoSuchUser(name.to_owned()))?;
    let mut seed = Zeroizing::new([0u8; 20]);
    rand::rng().fill_bytes(seed.as_mut());
    let params = TotpParams::default();
    store.remove_pending_tokens(&user.name, TokenKind::Totp)?;
    store.add_token(&Token::totp(user.name.clone(), params), seed.as_ref())?;
    Ok(Enrollment {
        uri: totp_uri(issuer, &user.name, seed.as_ref(), &params),
    })
}

/// The `otpauth://` URI of a TOTP secret, for an app to scan.
pub fn totp_uri(issuer: &str, user: &str, seed: &[u8], params: &TotpParams) -> Zeroizing<String> {
    let secret = Zeroizing::new(base32::encode(
        base32::Alphabet::Rfc4648 { padding: false },
        seed,
    ));
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    Zeroizing::new(format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm={}&digits={}&period={}",
        enc(issuer),
        enc(user),
        secret.as_str(),
        enc(issuer),
        params.algorithm.as_str(),
        params.digits,
        params.step
    ))
}

/// A user may hold this many hardware tokens (besides an authenticator app).
pub const MAX_HARDWARE_TOKENS: usize = 5;

/// Activates an imported hardware token once `code` is one it shows now
/// (TOTP: within `window` steps; HOTP: within 10 presses of its counter).
/// Returns the token's user.
pub fn token_activate(
    store: &dyn Store,
    serial: &str,
    code: &str,
    unix_now: u64,
    window: u8,
) -> Result<String, AdminError> {
    let t = store
        .token_by_serial(serial)?
        .ok_or_else(|| invalid(format!("no token has serial {serial}")))?;
    let seed = store.token_seed(&t)?;
    let p = &t.params;
    let verdict = match t.kind {
        TokenKind::Totp => otp::verify_totp(p, &seed, code.trim(), unix_now, window, t.last_step),
        TokenKind::Hotp => {
            otp::verify_hotp(p.algorithm, &seed, code.trim(), p.digits, t.counter, 10)
        }
    };
    match verdict {
        Verdict::Valid { step } => {
            store.activate_token(t.id)?;
            crate::store::in_tx(store.as_login(), |tx| tx.claim_step(t.id, step))?;
            Ok(t.user)
        }
        _ => Err(invalid(
            "that is not the code the token shows now; press it again (HOTP) or wait for the next code",
        )),
    }
}

/// Resynchronises a user's HOTP token that has drifted beyond the login
/// look-ahead, from two consecutive codes it shows now. Returns the serial.
pub fn hotp_resync(
    store: &dyn Store,
    name: &str,
    first: &str,
    second: &str,
) -> Result<String, AdminError> {
    /// How far ahead of the stored counter the codes are searched.
    const SEARCH: u32 = 10_000;
    for t in store
        .tokens(name)?
        .into_iter()
        .filter(|t| t.active && t.kind == TokenKind::Hotp)
    {
        let seed = store.token_seed(&t)?;
        let p = &t.params;
        if let Some(c) = otp::resync_hotp(
            p.algorithm,
            &seed,
            first.trim(),
            second.trim(),
            p.digits,
            t.counter,
            SEARCH,
        ) {
            crate::store::in_tx(store.as_login(), |tx| tx.claim_step(t.id, c))?;
            return Ok(t.serial.unwrap_or_default());
        }
    }
    Err(invalid(format!(
        "no HOTP token of {name} shows these two codes in a row within {SEARCH} presses"
    )))
}

/// Activates the user's pending TOTP secret once `code` proves the app shows
/// the right code.
pub fn totp_activate(
    store: &dyn Store,
    name: &str,
    code: &str,
    unix_now: u64,
    window: u8,
) -> Result<(), AdminError> {
    let pending: Vec<Token> = store
        .tokens(name)?
        .into_iter()
        .filter(|t| !t.active && t.kind == TokenKind::Totp && t.serial.is_none())
        .collect();
    let Some(t) = pending.last() else {
        return Err(invalid(format!(
            "{name} has no pending TOTP secret: run `mfa-proxy totp enroll {name}` first"
        )));
    };
    let seed = store.token_seed(t)?;
    match otp::verify_totp(&t.params, &seed, code.trim(), unix_now, window, None) {
        Verdict::Valid { step } => {
            store.activate_token(t.id)?;
            crate::store::in_tx(store.as_login(), |tx| tx.claim_step(t.id, step))?;
            Ok(())
        }
        _ => Err(invalid(
            "that is not the code the app shows now; check the phone's clock and try the next code",
        )),
    }
}

/// A QR code of `text` for a terminal, two rows of modules per line.
pub fn qr_terminal(text: &str) -> Result<String, AdminError> {
    let code =
        qrcode::QrCode::new(text.as_bytes()).map_err(|e| invalid(format!("QR code: {e}")))?;
    Ok(code
        .render::<qrcode::render::unicode::Dense1x2>()
        .dark_color(qrcode::render::unicode::Dense1x2::Light)
        .light_color(qrcode::render::unicode::Dense1x2::Dark)
        .build())
}

/// The same QR code as an SVG document.
pub fn qr_svg(text: &str) -> Result<String, AdminError> {
    let code =
        qrcode::QrCode::new(text.as_bytes()).map_err(|e| invalid(format!("QR code: {e}")))?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(256, 256)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testkit::Steps;
    use crate::store::{SeedKey, SqliteStore};

    fn store() -> SqliteStore {
        SqliteStore::in_memory(SeedKey::from_bytes(&[4; 32])).expect("open")
    }

    #[test]
    fn enroll_then_activate_with_the_apps_code() {
        let s = store();
        user_add(
            &s,
            "alice",
            Some("alice@example.org".into()),
            None,
            None,
            Vec::new(),
            0,
        )
        .expect("add");
        let e = totp_enroll(&s, "alice", "mfa-proxy test").expect("enroll");
        assert!(
            e.uri
                .starts_with("otpauth://totp/mfa-proxy%20test:alice?secret="),
            "{}",
            e.uri.as_str()
        );
        let secret = e
            .uri
            .split("secret=")
            .nth(1)
            .and_then(|r| r.split('&').next())
            .expect("secret");
        let seed =
            base32::decode(base32::Alphabet::Rfc4648 { padding: false }, secret).expect("base32");
        assert_eq!(seed.len(), 20, "160-bit secret");
        let now = 1_800_000_000;
        assert!(
            totp_activate(&s, "alice", "000000", now, 1).is_err()
                || otp::totp_code(&TotpParams::default(), &seed, now) == "000000"
        );
        let code = otp::totp_code(&TotpParams::default(), &seed, now);
        totp_activate(&s, "alice", &code, now, 1).expect("activates");
        let t = &s.tokens("alice").expect("tokens")[0];
        assert!(t.active);
        assert_eq!(
            t.last_step,
            Some(now / 30),
            "the activation code cannot be used again"
        );
        assert!(
            totp_activate(&s, "alice", &code, now, 1).is_err(),
            "nothing pending any more"
        );
        assert!(qr_terminal(&e.uri).expect("qr").lines().count() > 10);
        assert!(qr_svg(&e.uri).expect("svg").starts_with("<?xml"));
    }

    #[test]
    fn groups_parse_from_a_comma_list() {
        assert_eq!(
            parse_groups(" vpn , Admins,VPN,Domain Users").expect("parse"),
            ["Admins", "Domain Users", "vpn"]
        );
        assert!(parse_groups("").expect("none").is_empty());
        assert!(parse_groups("  ").expect("none").is_empty());
        for bad in ["vpn,,admins", "vpn,", ",", "bell\u{7}", &"g".repeat(254)] {
            let e = parse_groups(bad).expect_err(bad).to_string();
            assert!(e.contains("is not a list of groups"), "{e}");
        }
        assert_eq!(parse_groups(&"g".repeat(253)).expect("253").len(), 1);
    }

    #[test]
    fn show_prints_groups_and_remembered_logins() {
        let s = store();
        let show = |s: &SqliteStore| {
            let mut out = Vec::new();
            user_show(s, "ute", 0, &mut out).expect("show");
            String::from_utf8(out).expect("utf8")
        };
        user_add(&s, "ute", None, None, None, Vec::new(), 0).expect("add");
        let text = show(&s);
        assert!(
            text.contains("groups:    (none)\n") && text.contains("remembered: none\n"),
            "{text}"
        );
        let groups = parse_groups("vpn,admins").expect("parse");
        let changes = UserChanges {
            groups: Some(groups),
            ..UserChanges::default()
        };
        user_set(&s, "UTE", changes).expect("set");
        for (app, address, at) in [
            ("vpn", Some("192.0.2.7"), 1_700_000_000),
            ("evil\u{1b}[2J", None, 1_700_000_100),
        ] {
            let r = crate::mfa::Remembered {
                auth_type: "pap".into(),
                app: app.into(),
                address: address.map(Into::into),
                at,
            };
            s.remember("ute", &r, 0).expect("remember");
        }
        let text = show(&s);
        assert!(text.contains("groups:    admins, vpn\n"), "{text}");
        assert!(
            text.contains(
                "remembered: auth pap, app evil\\u{1b}[2J, address -, at 2023-11-14T22:15:00Z\n\
                 \x20           auth pap, app vpn, address 192.0.2.7, at 2023-11-14T22:13:20Z\n"
            ),
            "newest first, times as elsewhere, a NAS's text escaped: {text}"
        );
        assert!(!text.contains('\u{1b}'));
        let changes = UserChanges {
            groups: Some(Vec::new()),
            ..UserChanges::default()
        };
        user_set(&s, "ute", changes).expect("clear");
        assert!(show(&s).contains("groups:    (none)\n"));
    }

    #[test]
    fn local_password_is_an_argon2id_hash() {
        let s = store();
        user_add(
            &s,
            "carol",
            None,
            None,
            Some(Zeroizing::new("s3cret-pw".into())),
            Vec::new(),
            0,
        )
        .expect("add");
        let h = s
            .user("carol")
            .expect("q")
            .expect("found")
            .password_hash
            .expect("hash");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(!h.contains("s3cret-pw"));
    }
}
