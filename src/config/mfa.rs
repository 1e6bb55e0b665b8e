//! `[mfa]`: the second factor, and what users read in each language
//! (`[messages.LANG]`).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Deserialize;

use super::error::{ConfigError, invalid};
use super::values::{bounded, parse_duration};
use crate::policy::{FailMode, Unenrolled};

/// The second factor by one-time code.
#[derive(Clone, Debug)]
pub struct Mfa {
    /// Off: a plain proxy (every upstream answer relayed as it is).
    pub enabled: bool,
    pub unenrolled: Unenrolled,
    pub challenge_timeout: Duration,
    pub max_attempts: u32,
    /// `password<sep>code` in User-Password; `None` when disabled ("").
    pub inline_separator: Option<String>,
    pub reject_delay: Duration,
    pub totp_window: u8,
    pub push_timeout: Duration,
    pub call_timeout: Duration,
    pub sms_code_lifetime: Duration,
    /// After an out-of-band success, the same user from the same client is
    /// let in without a new prompt for this long (`SUCCESS_USED_CACHE`).
    pub busy_grace: Duration,
    pub fail_mode: FailMode,
    /// Digits the user presses on a call (then `#`) to report fraud.
    pub fraud_code: String,
    /// When push or call is denied or unanswered, ask for an OATH code.
    pub fallback_oath: bool,
    /// Out-of-band verifications in progress, at most.
    pub max_pending: usize,
    /// How long a fraud report blocks the user.
    pub fraud_block: Duration,
    /// Push number matching on challenge-capable NASes (per client too).
    pub number_matching: bool,
    /// The language of users who have none set, and its texts (`[mfa]`).
    pub language: String,
    pub texts: Texts,
    /// `[messages.LANG]`: other languages, each complete (missing keys
    /// were filled from `[mfa]`).
    pub languages: HashMap<String, Texts>,
}

impl Mfa {
    /// The texts for `language` (a lowercase tag, as the CLI stores it), or
    /// the default language's.
    pub fn texts(&self, language: Option<&str>) -> &Texts {
        language
            .and_then(|l| self.languages.get(l))
            .unwrap_or(&self.texts)
    }
}

/// What users read (Reply-Message) and what providers say or send, in one
/// language.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Texts {
    /// Asks for the code from the authenticator app.
    pub prompt: String,
    pub retry_prompt: String,
    /// Asks for the code sent by SMS.
    pub sms_prompt: String,
    pub sms_retry_prompt: String,
    /// Asks for the SMS code followed by the PIN (users with a PIN).
    pub sms_pin_prompt: String,
    pub sms_pin_retry_prompt: String,
    /// Asks for an OATH code after push or call was not approved.
    pub fallback_prompt: String,
    /// The Reply-Message of a `FAILED_PHONE_BUSY` reject.
    pub busy_message: String,
    /// The challenge showing the number to choose; `{number}` is replaced.
    pub number_prompt: String,
    /// The push notification; `{user}` and `{client}` are replaced.
    pub push_message: String,
    /// What the call says.
    pub call_message: String,
    /// The text message; `{code}` is replaced.
    pub sms_message: String,
}

/// `[messages.LANG]`: any of the texts of `[mfa]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTexts {
    prompt: Option<String>,
    retry_prompt: Option<String>,
    sms_prompt: Option<String>,
    sms_retry_prompt: Option<String>,
    sms_pin_prompt: Option<String>,
    sms_pin_retry_prompt: Option<String>,
    fallback_prompt: Option<String>,
    busy_message: Option<String>,
    number_prompt: Option<String>,
    push_message: Option<String>,
    call_message: Option<String>,
    sms_message: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawMfa {
    pub(super) enabled: bool,
    unenrolled: String,
    challenge_timeout: String,
    max_attempts: u64,
    inline_separator: String,
    reject_delay: String,
    totp_window: u64,
    prompt: String,
    retry_prompt: String,
    sms_prompt: String,
    sms_retry_prompt: String,
    sms_pin_prompt: String,
    sms_pin_retry_prompt: String,
    fallback_prompt: String,
    busy_message: String,
    push_timeout: String,
    call_timeout: String,
    sms_code_lifetime: String,
    busy_grace: String,
    fail_mode: String,
    fraud_code: String,
    fallback_oath: bool,
    max_pending: u64,
    fraud_block: String,
    number_matching: bool,
    number_prompt: String,
    push_message: String,
    call_message: String,
    sms_message: String,
    language: String,
}

impl Default for RawMfa {
    fn default() -> Self {
        RawMfa {
            enabled: true,
            unenrolled: "reject".into(),
            challenge_timeout: "120s".into(),
            max_attempts: 3,
            inline_separator: ",".into(),
            reject_delay: "1s".into(),
            totp_window: 1,
            prompt: "Enter the code from your authenticator app".into(),
            retry_prompt: "Wrong code. Enter the code from your authenticator app".into(),
            sms_prompt: "Enter the code we sent you by text message".into(),
            sms_retry_prompt: "Wrong code. Enter the code we sent you by text message".into(),
            sms_pin_prompt: "Enter the code we sent you by text message, followed by your PIN"
                .into(),
            sms_pin_retry_prompt:
                "Wrong code or PIN. Enter the code we sent you by text message, followed by your PIN"
                    .into(),
            fallback_prompt: "Not approved. Enter the code from your authenticator app".into(),
            busy_message: "A verification is already in progress for this account. Complete it on your phone, then try again".into(),
            push_timeout: "60s".into(),
            call_timeout: "60s".into(),
            sms_code_lifetime: "300s".into(),
            busy_grace: "60s".into(),
            fail_mode: "fail_closed".into(),
            fraud_code: "0".into(),
            fallback_oath: true,
            max_pending: 50_000,
            fraud_block: "90d".into(),
            number_matching: false,
            number_prompt: "Open the app, choose {number} to approve, then press OK here".into(),
            push_message: "Approve the sign-in of {user} at {client}?".into(),
            call_message: "Press # to sign in, or the fraud code then # to report fraud.".into(),
            sms_message: "Your sign-in code is {code}".into(),
            language: "en".into(),
        }
    }
}

pub(super) fn parse_fail_mode(s: &str, key: &str) -> Result<FailMode, ConfigError> {
    match s {
        "fail_closed" => Ok(FailMode::Closed),
        "fail_open" => Ok(FailMode::Open),
        other => Err(invalid(
            key,
            format!("\"{other}\" is not one of \"fail_closed\", \"fail_open\""),
        )),
    }
}

/// `[mfa]`, with the other languages of `[messages.LANG]`.
pub(super) fn validate(
    m: RawMfa,
    messages: BTreeMap<String, RawTexts>,
) -> Result<Mfa, ConfigError> {
    let unenrolled = match m.unenrolled.as_str() {
        "reject" => Unenrolled::Reject,
        "accept" => Unenrolled::Accept,
        other => {
            return Err(invalid(
                "mfa.unenrolled",
                format!("\"{other}\" is not one of \"reject\", \"accept\""),
            ));
        }
    };
    let sep = m.inline_separator;
    if sep.chars().any(|c| c.is_ascii_digit()) || sep.len() > 8 {
        return Err(invalid(
            "mfa.inline_separator",
            "must be at most 8 characters and contain no digits (codes are digits)",
        ));
    }
    let default = RawTexts {
        prompt: Some(m.prompt),
        retry_prompt: Some(m.retry_prompt),
        sms_prompt: Some(m.sms_prompt),
        sms_retry_prompt: Some(m.sms_retry_prompt),
        sms_pin_prompt: Some(m.sms_pin_prompt),
        sms_pin_retry_prompt: Some(m.sms_pin_retry_prompt),
        fallback_prompt: Some(m.fallback_prompt),
        busy_message: Some(m.busy_message),
        number_prompt: Some(m.number_prompt),
        push_message: Some(m.push_message),
        call_message: Some(m.call_message),
        sms_message: Some(m.sms_message),
    };
    let texts = validate_texts(default, None, "mfa")?;
    let language = language_tag(&m.language, "mfa.language")?;
    let mut languages = HashMap::new();
    for (lang, raw) in messages {
        let key = format!("messages.{lang}");
        let tag = language_tag(&lang, &key)?;
        languages.insert(tag, validate_texts(raw, Some(&texts), &key)?);
    }
    Ok(Mfa {
        enabled: m.enabled,
        unenrolled,
        challenge_timeout: parse_duration(
            &m.challenge_timeout,
            "mfa.challenge_timeout",
            Duration::from_secs(10),
            Duration::from_secs(600),
        )?,
        max_attempts: bounded(m.max_attempts, "mfa.max_attempts", 1, 10)? as u32,
        inline_separator: (!sep.is_empty()).then_some(sep),
        reject_delay: parse_duration(
            &m.reject_delay,
            "mfa.reject_delay",
            Duration::ZERO,
            Duration::from_secs(10),
        )?,
        totp_window: bounded(m.totp_window, "mfa.totp_window", 0, 10)? as u8,
        push_timeout: parse_duration(
            &m.push_timeout,
            "mfa.push_timeout",
            Duration::from_secs(5),
            Duration::from_secs(600),
        )?,
        call_timeout: parse_duration(
            &m.call_timeout,
            "mfa.call_timeout",
            Duration::from_secs(5),
            Duration::from_secs(600),
        )?,
        sms_code_lifetime: parse_duration(
            &m.sms_code_lifetime,
            "mfa.sms_code_lifetime",
            Duration::from_secs(30),
            Duration::from_secs(3600),
        )?,
        busy_grace: parse_duration(
            &m.busy_grace,
            "mfa.busy_grace",
            Duration::ZERO,
            Duration::from_secs(3600),
        )?,
        fail_mode: parse_fail_mode(&m.fail_mode, "mfa.fail_mode")?,
        fraud_code: {
            if m.fraud_code.is_empty()
                || m.fraud_code.len() > 8
                || !m.fraud_code.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(invalid("mfa.fraud_code", "must be 1 to 8 digits"));
            }
            m.fraud_code
        },
        fallback_oath: m.fallback_oath,
        max_pending: bounded(m.max_pending, "mfa.max_pending", 1, 1_000_000)? as usize,
        fraud_block: parse_duration(
            &m.fraud_block,
            "mfa.fraud_block",
            Duration::from_secs(60),
            Duration::from_secs(86400 * 3650),
        )?,
        number_matching: m.number_matching,
        language,
        texts,
        languages,
    })
}

/// Warns of `[mfa]` settings that let users in on a password alone.
pub(super) fn warn(mfa: &Mfa, warnings: &mut Vec<String>) {
    if mfa.enabled && mfa.unenrolled == Unenrolled::Accept {
        warnings.push("mfa.unenrolled = \"accept\": users without a registered second factor log in with a password alone".to_owned());
    }
}

/// A language tag as users and `[messages.LANG]` name it ("de", "pt-BR"),
/// lowercased; `None` if it is not one.
pub fn parse_language_tag(tag: &str) -> Option<String> {
    let ok = (2..=16).contains(&tag.len())
        && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && tag.as_bytes()[0].is_ascii_alphabetic();
    ok.then(|| tag.to_ascii_lowercase())
}

fn language_tag(tag: &str, key: &str) -> Result<String, ConfigError> {
    parse_language_tag(tag).ok_or_else(|| {
        invalid(
            key,
            format!("\"{tag}\" is not a language tag such as \"en\", \"de\" or \"pt-br\""),
        )
    })
}

/// Checks one language's texts under `section`; a missing text is taken
/// from `fallback` (the default language).
fn validate_texts(
    raw: RawTexts,
    fallback: Option<&Texts>,
    section: &str,
) -> Result<Texts, ConfigError> {
    // Reply-Messages are one attribute; provider texts have placeholders.
    let take = |v: Option<String>,
                name: &str,
                from: fn(&Texts) -> &String,
                needs: &[&str],
                reply: bool|
     -> Result<String, ConfigError> {
        let key = format!("{section}.{name}");
        let text = match (v, fallback) {
            (Some(t), _) => t,
            (None, Some(f)) => return Ok(from(f).clone()),
            (None, None) => return Err(invalid(key, "missing")),
        };
        if text.is_empty() || (reply && text.len() > 240) || text.len() > 1000 {
            let most = if reply {
                "240 octets (one Reply-Message)"
            } else {
                "1000 octets"
            };
            return Err(invalid(key, format!("must be 1 to {most}")));
        }
        if let Some(p) = needs.iter().find(|p| !text.contains(*p)) {
            return Err(invalid(key, format!("must contain {p}, where it goes")));
        }
        Ok(text)
    };
    Ok(Texts {
        prompt: take(raw.prompt, "prompt", |t| &t.prompt, &[], true)?,
        retry_prompt: take(
            raw.retry_prompt,
            "retry_prompt",
            |t| &t.retry_prompt,
            &[],
            true,
        )?,
        sms_prompt: take(raw.sms_prompt, "sms_prompt", |t| &t.sms_prompt, &[], true)?,
        sms_retry_prompt: take(
            raw.sms_retry_prompt,
            "sms_retry_prompt",
            |t| &t.sms_retry_prompt,
            &[],
            true,
        )?,
        sms_pin_prompt: take(
            raw.sms_pin_prompt,
            "sms_pin_prompt",
            |t| &t.sms_pin_prompt,
            &[],
            true,
        )?,
        sms_pin_retry_prompt: take(
            raw.sms_pin_retry_prompt,
            "sms_pin_retry_prompt",
            |t| &t.sms_pin_retry_prompt,
            &[],
            true,
        )?,
        fallback_prompt: take(
            raw.fallback_prompt,
            "fallback_prompt",
            |t| &t.fallback_prompt,
            &[],
            true,
        )?,
        busy_message: take(
            raw.busy_message,
            "busy_message",
            |t| &t.busy_message,
            &[],
            true,
        )?,
        number_prompt: take(
            raw.number_prompt,
            "number_prompt",
            |t| &t.number_prompt,
            &["{number}"],
            true,
        )?,
        push_message: take(
            raw.push_message,
            "push_message",
            |t| &t.push_message,
            &[],
            false,
        )?,
        call_message: take(
            raw.call_message,
            "call_message",
            |t| &t.call_message,
            &[],
            false,
        )?,
        sms_message: take(
            raw.sms_message,
            "sms_message",
            |t| &t.sms_message,
            &["{code}"],
            false,
        )?,
    })
}
