//! The administrator's verbs: users, tokens, block, bypass, reports. Each
//! works on a [`Store`] and writes its output to a writer, so `serve` picks
//! up the change on the next login and the verbs are testable without a
//! terminal. [`args`] is the command line that names them.

use std::fmt::Write as _;
use std::io::Write;

use argon2::password_hash::{PasswordHasher, SaltString};
use rand::RngCore;
use zeroize::Zeroizing;

use crate::mfa::otp::{self, TotpParams, Verdict};
use crate::store::{
    AuditRecord, HistoryEntry, Method, Store, StoreError, Token, TokenKind, UnixTime, User,
};

pub mod args;

pub use args::{
    Cli, Command, LogFormat, ReportCmd, ReportFormat, SecretFormatArg, TokenCmd, TotpCmd, UserCmd,
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
}

fn invalid(s: impl Into<String>) -> AdminError {
    AdminError::Invalid(s.into())
}

/// User names: printable, no spaces or control characters, 1..=253 octets
/// (they travel in User-Name).
pub fn check_user_name(name: &str) -> Result<(), AdminError> {
    if name.is_empty()
        || name.len() > 253
        || name.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(invalid(format!(
            "\"{}\" is not a valid user name: 1 to 253 characters, no spaces or control characters",
            name.escape_default()
        )));
    }
    Ok(())
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
    now: UnixTime,
) -> Result<(), AdminError> {
    check_user_name(name)?;
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
        ..User::new(name, Method::Totp)
    })?;
    Ok(())
}

/// Changes a user's default method, phone number (`""` removes it) or call
/// PIN (4 to 8 digits, stored as an argon2id hash; `""` removes it).
pub fn user_set(
    store: &dyn Store,
    name: &str,
    method: Option<&str>,
    phone: Option<&str>,
    pin: Option<Zeroizing<String>>,
    language: Option<&str>,
) -> Result<(), AdminError> {
    let mut u = store
        .user(name)?
        .ok_or_else(|| StoreError::NoSuchUser(name.to_owned()))?;
    if let Some(m) = method {
        u.method = Method::parse(m)
            .ok_or_else(|| invalid(format!("\"{m}\" is not one of push, call, sms, totp")))?;
    }
    if let Some(p) = phone {
        if p.is_empty() {
            u.phone = None;
        } else {
            check_phone(p)?;
            u.phone = Some(p.to_owned());
        }
    }
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
    if matches!(u.method, Method::Call | Method::Sms) && u.phone.is_none() {
        return Err(invalid(format!(
            "{} needs a phone number: add --phone",
            u.method.as_str()
        )));
    }
    store.update_user(&u)?;
    Ok(())
}

/// Imports users from CSV with the header `name,email,phone` (email and phone
/// may be empty). Good rows are imported; the rest come back as an error CSV.
pub fn user_import(
    store: &dyn Store,
    csv: &str,
    now: UnixTime,
) -> Result<(usize, String), AdminError> {
    let mut lines = csv.lines();
    let header = lines.next().unwrap_or("").trim().to_ascii_lowercase();
    if header.replace(' ', "") != "name,email,phone" {
        return Err(invalid(
            "the first line must be the header: name,email,phone",
        ));
    }
    Ok(import_rows(lines, 1, |f| {
        let opt = |s: Option<&&str>| s.filter(|s| !s.is_empty()).map(|s| (*s).to_owned());
        if f.len() != 3 {
            return Err(invalid("expected 3 fields"));
        }
        user_add(store, f[0], opt(f.get(1)), opt(f.get(2)), None, now)
    }))
}

/// Runs `row` on each non-empty CSV line after the header. Returns how many
/// succeeded, and a CSV of the others: line number, the first `key_fields`
/// fields (never later ones, which may be secrets), and the error.
fn import_rows<'a>(
    lines: impl Iterator<Item = &'a str>,
    key_fields: usize,
    mut row: impl FnMut(&[&str]) -> Result<(), AdminError>,
) -> (usize, String) {
    let mut imported = 0;
    let mut errors = String::from("line,key,error\n");
    for (i, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line
            .split(',')
            .map(|f| f.trim().trim_matches('"'))
            .collect();
        match row(&f) {
            Ok(()) => imported += 1,
            Err(e) => {
                let key = f
                    .iter()
                    .take(key_fields)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(",");
                let _ = writeln!(
                    errors,
                    "{},{key},\"{}\"",
                    i + 2,
                    e.to_string().replace('"', "'")
                );
            }
        }
    }
    (imported, errors)
}

fn show_time(t: UnixTime) -> String {
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

fn methods(store: &dyn Store, name: &str) -> Result<String, AdminError> {
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
    writeln!(out, "created:   {}", show_time(u.created_at))?;
    match store.blocked_until(&u.name, now)? {
        Some(t) => writeln!(out, "blocked:   until {}", show_time(t))?,
        None => writeln!(out, "blocked:   no")?,
    }
    if let Some(t) = store.locked_until(&u.name, now)? {
        writeln!(out, "locked:    until {}", show_time(t))?;
    }
    Ok(())
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
    let secret = Zeroizing::new(base32::encode(
        base32::Alphabet::Rfc4648 { padding: false },
        seed.as_ref(),
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
    let uri = Zeroizing::new(format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={}&period={}",
        enc(issuer),
        enc(&user.name),
        secret.as_str(),
        enc(issuer),
        params.digits,
        params.step
    ));
    Ok(Enrollment { uri })
}

/// How the `secret key` column of a token file is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretFormat {
    /// RFC 4648 Base32, as Azure MFA expects (the default).
    Base32,
    Hex,
}

/// Imports OATH hardware tokens from the CSV vendors ship for Azure MFA:
/// `upn,serial number,secret key,time interval,manufacturer,model`, with an
/// optional last column `digits` (6 or 8, default 6). A time interval of 30
/// or 60 makes a TOTP token; 0 or empty, an HOTP (event) token. Users missing
/// from the store are added; a user holds at most [`MAX_HARDWARE_TOKENS`].
/// Each token stays pending until [`token_activate`] sees the code it shows.
/// Good rows are imported; the rest come back as an error CSV that never
/// contains a secret.
pub fn token_import(
    store: &dyn Store,
    csv: &str,
    format: SecretFormat,
    now: UnixTime,
) -> Result<(usize, String), AdminError> {
    let mut lines = csv.lines();
    let header: String = lines
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '"')
        .collect();
    let with_digits = match header.as_str() {
        "upn,serialnumber,secretkey,timeinterval,manufacturer,model" => false,
        "upn,serialnumber,secretkey,timeinterval,manufacturer,model,digits" => true,
        _ => {
            return Err(invalid(
                "the first line must be the header: upn,serial number,secret key,time interval,manufacturer,model[,digits]",
            ));
        }
    };
    Ok(import_rows(lines, 2, |f| {
        import_token_row(store, f, with_digits, format, now)
    }))
}

fn import_token_row(
    store: &dyn Store,
    f: &[&str],
    with_digits: bool,
    format: SecretFormat,
    now: UnixTime,
) -> Result<(), AdminError> {
    let want = if with_digits { 7 } else { 6 };
    if f.len() != want {
        return Err(invalid(format!(
            "expected {want} fields, found {}",
            f.len()
        )));
    }
    let (upn, serial, secret, interval) = (f[0], f[1], f[2], f[3]);
    check_user_name(upn)?;
    if serial.is_empty() || serial.len() > 64 || serial.chars().any(|c| c.is_control()) {
        return Err(invalid(
            "the serial number must be 1 to 64 printable characters",
        ));
    }
    // Never echo the secret: the error file is not a secret file.
    let seed = Zeroizing::new(
        match format {
            SecretFormat::Base32 => base32::decode(
                base32::Alphabet::Rfc4648 { padding: false },
                &secret.to_ascii_uppercase(),
            ),
            SecretFormat::Hex => crate::store::seal::hex_decode(secret),
        }
        .ok_or_else(|| invalid(format!("the secret key is not valid {format:?}")))?,
    );
    if seed.len() < 10 || seed.len() > 64 {
        return Err(invalid(format!(
            "the secret key is {} octets; expected 10 to 64",
            seed.len()
        )));
    }
    let kind = match interval {
        "" | "0" => TokenKind::Hotp,
        "30" | "60" => TokenKind::Totp,
        _ => {
            return Err(invalid(
                "the time interval must be 30 or 60 (TOTP), or 0 or empty (HOTP)",
            ));
        }
    };
    let digits = match f.get(6) {
        None | Some(&"") | Some(&"6") => 6,
        Some(&"8") => 8,
        Some(_) => return Err(invalid("digits must be 6 or 8")),
    };
    let model = [f[4], f[5]]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    if store.user(upn)?.is_none() {
        user_add(store, upn, None, None, None, now)?;
    }
    let held = store
        .tokens(upn)?
        .iter()
        .filter(|t| t.serial.is_some())
        .count();
    if held >= MAX_HARDWARE_TOKENS {
        return Err(invalid(format!(
            "{upn} already holds {MAX_HARDWARE_TOKENS} hardware tokens"
        )));
    }
    store.add_token(
        &Token {
            id: 0,
            user: upn.to_owned(),
            kind,
            serial: Some(serial.to_owned()),
            params: TotpParams {
                digits,
                step: if kind == TokenKind::Totp {
                    interval.parse().unwrap_or(30)
                } else {
                    30
                },
                ..TotpParams::default()
            },
            counter: 0,
            last_step: None,
            active: false,
            model: (!model.is_empty()).then_some(model),
        },
        &seed,
    )?;
    Ok(())
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
            store.claim_step(t.id, step)?;
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
            store.claim_step(t.id, c)?;
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
        .filter(|t| !t.active && t.kind == TokenKind::Totp)
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
            store.claim_step(t.id, step)?;
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

/// Output formats of the reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
}

fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Writes rows under `headers` in the chosen format.
fn write_rows(
    out: &mut dyn Write,
    format: Format,
    headers: &[&str],
    rows: &[Vec<String>],
) -> Result<(), AdminError> {
    match format {
        Format::Table => {
            let widths: Vec<usize> = headers
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    rows.iter()
                        .map(|r| r[i].len())
                        .max()
                        .unwrap_or(0)
                        .max(h.len())
                })
                .collect();
            let line = |cells: Vec<&str>| -> String {
                cells
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_owned()
            };
            writeln!(out, "{}", line(headers.to_vec()))?;
            for r in rows {
                writeln!(out, "{}", line(r.iter().map(String::as_str).collect()))?;
            }
        }
        Format::Csv => {
            writeln!(out, "{}", headers.join(","))?;
            for r in rows {
                writeln!(
                    out,
                    "{}",
                    r.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(",")
                )?;
            }
        }
        Format::Json => {
            for r in rows {
                let fields: Vec<String> = headers
                    .iter()
                    .zip(r)
                    .map(|(h, v)| format!("{}:{}", json_str(h), json_str(v)))
                    .collect();
                writeln!(out, "{{{}}}", fields.join(","))?;
            }
        }
    }
    Ok(())
}

pub fn report_signins(
    store: &dyn Store,
    user: Option<&str>,
    since: Option<UnixTime>,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), AdminError> {
    let rows: Vec<Vec<String>> = store
        .audit(user, since)?
        .into_iter()
        .map(|a: AuditRecord| {
            vec![
                show_time(a.at),
                a.user,
                a.result.as_str().to_owned(),
                if a.accepted { "accept" } else { "reject" }.to_owned(),
                a.mode,
                a.client,
                a.client_ip.unwrap_or_default(),
                a.server,
                a.reason.unwrap_or_default(),
            ]
        })
        .collect();
    write_rows(
        out,
        format,
        &[
            "time",
            "user",
            "result",
            "decision",
            "mode",
            "client",
            "client_ip",
            "server",
            "reason",
        ],
        &rows,
    )
}

fn history_rows(h: Vec<HistoryEntry>) -> Vec<Vec<String>> {
    h.into_iter()
        .map(|e| {
            vec![
                show_time(e.at),
                e.user,
                e.action,
                e.reason,
                e.until.map(show_time).unwrap_or_default(),
            ]
        })
        .collect()
}

pub fn report_blocked(
    store: &dyn Store,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), AdminError> {
    write_rows(
        out,
        format,
        &["time", "user", "action", "reason", "until"],
        &history_rows(store.block_history()?),
    )
}

pub fn report_bypassed(
    store: &dyn Store,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), AdminError> {
    write_rows(
        out,
        format,
        &["time", "user", "state", "reason", "until"],
        &history_rows(store.bypass_history()?),
    )
}

pub fn report_users(
    store: &dyn Store,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), AdminError> {
    let mut rows = Vec::new();
    for u in store.users()? {
        let registered = store.tokens(&u.name)?.iter().any(|t| t.active) || u.phone.is_some();
        rows.push(vec![
            u.name.clone(),
            if registered {
                "registered"
            } else {
                "not registered"
            }
            .to_owned(),
            u.method.as_str().to_owned(),
            methods(store, &u.name)?,
        ]);
    }
    write_rows(
        out,
        format,
        &["user", "mfa", "default_method", "methods"],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mfa::otp::Algorithm;
    use crate::store::{SeedKey, SqliteStore};

    fn store() -> SqliteStore {
        SqliteStore::in_memory(SeedKey::from_bytes(&[4; 32])).expect("open")
    }

    #[test]
    fn enroll_then_activate_with_the_apps_code() {
        let s = store();
        user_add(&s, "alice", Some("alice@example.org".into()), None, None, 0).expect("add");
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
    fn validation_and_import_report_errors() {
        let s = store();
        assert!(user_add(&s, "has space", None, None, None, 0).is_err());
        assert!(user_add(&s, "bob", None, Some("555-1234".into()), None, 0).is_err());
        let (n, errors) = user_import(
            &s,
            "name,email,phone\nhelga@contoso.com,helga@contoso.com,+4930123456\nbad name,,\nhelga@contoso.com,,\nkim,,+821012345678\n",
            0,
        )
        .expect("import");
        assert_eq!(n, 2);
        assert_eq!(errors.lines().count(), 3, "{errors}");
        assert!(
            errors.contains("3,bad name") && errors.contains("4,helga@contoso.com"),
            "{errors}"
        );
        assert!(user_import(&s, "user,mail\n", 0).is_err());
    }

    #[test]
    fn hardware_tokens_import_and_hotp_resync() {
        let s = store();
        user_add(&s, "helga@contoso.com", None, None, None, 0).expect("add");
        // RFC 4226's test secret, in Base32 and in hex.
        let b32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        let csv = format!(
            "upn,serial number,secret key,time interval,manufacturer,model\n\
             helga@contoso.com,1234567,{b32},60,Contoso,HardwareKey\n\
             kim@contoso.com,7654321,{},0,Feitian,c100\n\
             bad,111,not*base32,30,A,B\n\
             ola@contoso.com,222,{b32},45,A,B\n\
             ola@contoso.com,1234567,{b32},30,A,B\n\
             ola@contoso.com,333,GEZDGNBV,30,A,B\n",
            b32.to_lowercase()
        );
        let (n, errors) = token_import(&s, &csv, SecretFormat::Base32, 0).expect("import");
        assert_eq!(n, 2, "{errors}");
        assert_eq!(errors.lines().count(), 5, "{errors}");
        assert!(
            errors.contains("4,bad,111,\"the secret key is not valid Base32\""),
            "{errors}"
        );
        assert!(
            errors.contains("time interval must be 30 or 60"),
            "{errors}"
        );
        assert!(
            errors.contains("6,ola@contoso.com,1234567"),
            "duplicate serial: {errors}"
        );
        assert!(errors.contains("expected 10 to 64"), "{errors}");
        assert!(
            !errors.contains("GEZDGNBV"),
            "secrets never reach the error file"
        );

        let t = &s.tokens("helga@contoso.com").expect("tokens")[0];
        assert_eq!(
            (t.kind, t.params.step, t.active),
            (TokenKind::Totp, 60, false)
        );
        assert_eq!(t.model.as_deref(), Some("Contoso HardwareKey"));
        assert!(
            s.user("kim@contoso.com").expect("q").is_some(),
            "the user was added"
        );
        let k = &s.tokens("kim@contoso.com").expect("tokens")[0];
        assert_eq!((k.kind, k.counter, k.active), (TokenKind::Hotp, 0, false));

        // The same secret in hex, with the digits column.
        let hex_csv = "upn,serial number,secret key,time interval,manufacturer,model,digits\n\
                       ola@contoso.com,444,3132333435363738393031323334353637383930,0,A,B,8\n";
        assert_eq!(
            token_import(&s, hex_csv, SecretFormat::Hex, 0)
                .expect("hex")
                .0,
            1
        );
        assert_eq!(s.tokens("ola@contoso.com").expect("t")[0].params.digits, 8);
        assert!(token_import(&s, "user,secret\n", SecretFormat::Base32, 0).is_err());

        // RFC 4226 Appendix D: counters 500 and 501 are far beyond the
        // look-ahead; two consecutive codes move the token there.
        let code =
            |c| otp::format_code(otp::hotp(Algorithm::Sha1, b"12345678901234567890", c, 6), 6);
        assert!(
            hotp_resync(&s, "kim@contoso.com", &code(500), &code(501)).is_err(),
            "pending"
        );
        assert!(
            token_activate(&s, "7654321", &code(11), 0, 1).is_err(),
            "beyond the look-ahead"
        );
        assert_eq!(
            token_activate(&s, "7654321", &code(1), 0, 1).expect("activate"),
            "kim@contoso.com"
        );
        assert!(
            token_activate(&s, "0000", &code(2), 0, 1).is_err(),
            "no such serial"
        );
        assert!(hotp_resync(&s, "kim@contoso.com", &code(500), &code(502)).is_err());
        assert_eq!(
            hotp_resync(&s, "kim@contoso.com", &code(500), &code(501)).expect("resync"),
            "7654321"
        );
        let k = &s.tokens("kim@contoso.com").expect("tokens")[0];
        assert_eq!(k.counter, 502, "the next press is counter 502");
        assert_eq!(
            otp::verify_hotp(
                Algorithm::Sha1,
                b"12345678901234567890",
                &code(502),
                6,
                k.counter,
                10
            ),
            Verdict::Valid { step: 502 }
        );
        assert!(s.remove_token("7654321").expect("remove"));
        // At most five hardware tokens a user.
        let rows: String = (0..6)
            .map(|i| format!("max@contoso.com,M{i},{b32},30,A,B\n"))
            .collect();
        let (n, errors) = token_import(
            &s,
            &format!("upn,serial number,secret key,time interval,manufacturer,model\n{rows}"),
            SecretFormat::Base32,
            0,
        )
        .expect("import");
        assert_eq!(n, MAX_HARDWARE_TOKENS);
        assert!(
            errors.contains("7,max@contoso.com,M5,\"max@contoso.com already holds 5"),
            "{errors}"
        );
        assert!(!s.remove_token("7654321").expect("remove"));
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

    #[test]
    fn reports_in_three_formats() {
        let s = store();
        user_add(&s, "dave", None, Some("+15551234567".into()), None, 0).expect("add");
        s.block("dave", "lost, phone", 10, 20).expect("block");
        let mut out = Vec::new();
        report_blocked(&s, Format::Csv, &mut out).expect("csv");
        let csv = String::from_utf8(out).expect("utf8");
        assert!(csv.contains("\"lost, phone\""), "{csv}");
        let mut out = Vec::new();
        report_users(&s, Format::Json, &mut out).expect("json");
        let json = String::from_utf8(out).expect("utf8");
        assert!(
            json.contains("\"user\":\"dave\"") && json.contains("\"mfa\":\"registered\""),
            "{json}"
        );
        let mut out = Vec::new();
        report_signins(&s, None, None, Format::Table, &mut out).expect("table");
        assert!(String::from_utf8(out).expect("utf8").starts_with("time"));
    }
}
