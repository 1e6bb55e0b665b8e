//! Second factors. This part holds what needs no IO: one-time code
//! verification with its replay rules, and the result codes every login
//! records.

mod lockout;
mod method;
pub mod otp;
mod remember;

pub mod result;
pub mod webhook;

pub use lockout::LockoutPolicy;
pub use method::Method;
pub use remember::Remembered;
pub use result::ResultCode;

/// A phone number as people write it, as we keep it: `+49 (30) 1234-567`
/// is `+49301234567`; `None` if it is not one once the usual separators
/// (spaces, `-`, `(`, `)`, `.`, `/`) are gone.
pub fn normalize_phone(raw: &str) -> Option<String> {
    let n: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.' | '/'))
        .collect();
    check_phone(&n).ok().map(|()| n)
}

/// Phone numbers (SPEC §3): `+` and the country code, then at most 15
/// digits in all (E.164), spaces and dashes ignored; an extension after `x` holds digits, `,`, `*`, `#` only.
pub fn check_phone(phone: &str) -> Result<(), ResultCode> {
    let (number, ext) = match phone.split_once(['x', 'X']) {
        Some((n, e)) => (n, Some(e)),
        None => (phone, None),
    };
    let Some(number) = number.trim().strip_prefix('+') else {
        return Err(ResultCode::FailedInvalidPhoneNumber);
    };
    let digits: String = number.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    if !(7..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ResultCode::FailedInvalidPhoneNumber);
    }
    if let Some(e) = ext {
        if e.is_empty() || !e.bytes().all(|b| b.is_ascii_digit() || b",*#".contains(&b)) {
            return Err(ResultCode::FailedInvalidExtension);
        }
    }
    Ok(())
}
