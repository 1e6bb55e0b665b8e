//! One-time codes: TOTP (RFC 6238, through `totp-rs`) and HOTP (RFC 4226),
//! with the replay rules of the reference: a code whose time step was
//! already used is a duplicate, a code older than one already used is old.
//!
//! Codes are compared in constant time. HOTP computes and compares every
//! counter in its window. TOTP (totp-rs) stops at the first step that
//! matches, oldest first: a wrong code always costs the whole window, and a
//! right one shows by its timing only which step it was for, which its
//! sender knows anyway.

use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;

/// The HMAC of an OATH token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    fn totp(self) -> totp_rs::Algorithm {
        match self {
            Algorithm::Sha1 => totp_rs::Algorithm::SHA1,
            Algorithm::Sha256 => totp_rs::Algorithm::SHA256,
            Algorithm::Sha512 => totp_rs::Algorithm::SHA512,
        }
    }
}

/// How a TOTP token computes its codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TotpParams {
    pub algorithm: Algorithm,
    /// 6 or 8.
    pub digits: u32,
    /// Seconds per step: 30 or 60.
    pub step: u64,
}

impl Default for TotpParams {
    fn default() -> Self {
        TotpParams {
            algorithm: Algorithm::Sha1,
            digits: 6,
            step: 30,
        }
    }
}

/// The outcome of checking one code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Right, for this time step (TOTP) or counter (HOTP); record it as used.
    Valid { step: u64 },
    /// Not a code this token shows in the window.
    Incorrect,
    /// The code of a step already used (`FAILED_OATH_CODE_DUPLICATE`).
    Duplicate,
    /// The code of a step older than one already used
    /// (`FAILED_OATH_CODE_OLD`).
    Old,
}

/// RFC 4226 §5.3: HMAC, dynamic truncation, modulo 10^digits.
pub fn hotp(algorithm: Algorithm, secret: &[u8], counter: u64, digits: u32) -> u32 {
    let msg = counter.to_be_bytes();
    let mac: Vec<u8> = match algorithm {
        Algorithm::Sha1 => mac_of::<Hmac<sha1::Sha1>>(secret, &msg),
        Algorithm::Sha256 => mac_of::<Hmac<sha2::Sha256>>(secret, &msg),
        Algorithm::Sha512 => mac_of::<Hmac<sha2::Sha512>>(secret, &msg),
    };
    let off = usize::from(mac[mac.len() - 1] & 0x0f);
    let bin = u32::from_be_bytes([mac[off] & 0x7f, mac[off + 1], mac[off + 2], mac[off + 3]]);
    bin % 10u32.pow(digits)
}

fn mac_of<M: Mac + hmac::digest::KeyInit>(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut m =
        <M as hmac::digest::KeyInit>::new_from_slice(key).expect("HMAC accepts any key length");
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

pub fn format_code(code: u32, digits: u32) -> String {
    format!("{code:0width$}", width = digits as usize)
}

/// `totp-rs`'s generator for these parameters, accepting `skew` steps
/// either side when checking.
fn generator(p: &TotpParams, secret: &[u8], skew: u8) -> totp_rs::Totp {
    totp_rs::Builder::new()
        .with_algorithm(p.algorithm.totp())
        .with_digits(p.digits as u8)
        .with_skew(skew.into())
        .with_step_duration(p.step)
        .with_secret(secret)
        .build_noncompliant()
}

/// The TOTP code for `unix_time`, computed by `totp-rs`.
pub fn totp_code(p: &TotpParams, secret: &[u8], unix_time: u64) -> String {
    generator(p, secret, 0).generate(unix_time).to_string()
}

/// Whether `code` has the right shape: exactly `digits` ASCII digits.
fn well_formed(code: &str, digits: u32) -> bool {
    code.len() == digits as usize && code.bytes().all(|b| b.is_ascii_digit())
}

/// Checks a TOTP code against the steps within `window` of `unix_time`.
/// `last_used` is the most recent step this token was accepted for.
pub fn verify_totp(
    p: &TotpParams,
    secret: &[u8],
    code: &str,
    unix_time: u64,
    window: u8,
    last_used: Option<u64>,
) -> Verdict {
    if !well_formed(code, p.digits) {
        return Verdict::Incorrect;
    }
    // totp-rs builds the generator once and compares each step's code as
    // a number, in constant time, oldest step first; the first match wins.
    let matched = generator(p, secret, window).check(code, unix_time);
    judge(matched, last_used)
}

fn judge(matched: Option<u64>, last_used: Option<u64>) -> Verdict {
    match (matched, last_used) {
        (None, _) => Verdict::Incorrect,
        (Some(s), Some(l)) if s == l => Verdict::Duplicate,
        (Some(s), Some(l)) if s < l => Verdict::Old,
        (Some(s), _) => Verdict::Valid { step: s },
    }
}

/// Checks an HOTP code against counters `next..next + look_ahead`, where
/// `next` is the first counter not yet used. A code for an earlier counter
/// (within `look_ahead` behind) is reported as a duplicate or old.
pub fn verify_hotp(
    algorithm: Algorithm,
    secret: &[u8],
    code: &str,
    digits: u32,
    next: u64,
    look_ahead: u32,
) -> Verdict {
    if !well_formed(code, digits) {
        return Verdict::Incorrect;
    }
    let lo = next.saturating_sub(u64::from(look_ahead));
    let hi = next.saturating_add(u64::from(look_ahead));
    let mut matched = None;
    for counter in lo..hi {
        let c = format_code(hotp(algorithm, secret, counter, digits), digits);
        if bool::from(c.as_bytes().ct_eq(code.as_bytes())) && matched.is_none() {
            matched = Some(counter);
        }
    }
    match matched {
        Some(c) if next > 0 && c == next - 1 => Verdict::Duplicate,
        Some(c) if c < next => Verdict::Old,
        Some(c) => Verdict::Valid { step: c },
        None => Verdict::Incorrect,
    }
}

/// Resynchronises an HOTP token from two consecutive codes searched up to
/// `search` counters ahead of `next`. Returns the counter of the second code.
pub fn resync_hotp(
    algorithm: Algorithm,
    secret: &[u8],
    first: &str,
    second: &str,
    digits: u32,
    next: u64,
    search: u32,
) -> Option<u64> {
    if !well_formed(first, digits) || !well_formed(second, digits) {
        return None;
    }
    let mut found = None;
    let mut prev = format_code(hotp(algorithm, secret, next, digits), digits);
    for counter in next + 1..=next + u64::from(search) {
        let cur = format_code(hotp(algorithm, secret, counter, digits), digits);
        let hit = bool::from(prev.as_bytes().ct_eq(first.as_bytes()))
            & bool::from(cur.as_bytes().ct_eq(second.as_bytes()));
        if hit && found.is_none() {
            found = Some(counter);
        }
        prev = cur;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC4226_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc4226_appendix_d() {
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, want) in expected.iter().enumerate() {
            assert_eq!(
                hotp(Algorithm::Sha1, RFC4226_SECRET, counter as u64, 6),
                *want
            );
        }
    }

    #[test]
    fn rfc6238_appendix_b() {
        let sha1 = b"12345678901234567890".as_slice();
        let sha256 = b"12345678901234567890123456789012".as_slice();
        let sha512 = b"1234567890123456789012345678901234567890123456789012345678901234".as_slice();
        let rows: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for (t, a, b, c) in rows {
            for (alg, secret, want) in [
                (Algorithm::Sha1, sha1, a),
                (Algorithm::Sha256, sha256, b),
                (Algorithm::Sha512, sha512, c),
            ] {
                let p = TotpParams {
                    algorithm: alg,
                    digits: 8,
                    step: 30,
                };
                assert_eq!(totp_code(&p, secret, t), want, "{alg:?} at {t}");
                // Our HOTP over the time counter agrees with totp-rs.
                assert_eq!(format_code(hotp(alg, secret, t / 30, 8), 8), want);
            }
        }
    }

    #[test]
    fn totp_window_and_replay() {
        let p = TotpParams::default();
        let s = RFC4226_SECRET;
        let t = 1_700_000_000;
        let now_code = totp_code(&p, s, t);
        let step = t / 30;
        assert_eq!(
            verify_totp(&p, s, &now_code, t, 1, None),
            Verdict::Valid { step }
        );
        // Within one step either side, not two.
        assert_eq!(
            verify_totp(&p, s, &totp_code(&p, s, t - 30), t, 1, None),
            Verdict::Valid { step: step - 1 }
        );
        assert_eq!(
            verify_totp(&p, s, &totp_code(&p, s, t + 30), t, 1, None),
            Verdict::Valid { step: step + 1 }
        );
        for outside in [t - 60, t + 60] {
            assert_eq!(
                verify_totp(&p, s, &totp_code(&p, s, outside), t, 1, None),
                Verdict::Incorrect
            );
        }
        // Replays.
        assert_eq!(
            verify_totp(&p, s, &now_code, t, 1, Some(step)),
            Verdict::Duplicate
        );
        assert_eq!(
            verify_totp(&p, s, &totp_code(&p, s, t - 30), t, 1, Some(step)),
            Verdict::Old
        );
        // Malformed.
        for bad in ["", "12345", "1234567", "12345a", " 123456"] {
            assert_eq!(
                verify_totp(&p, s, bad, t, 1, None),
                Verdict::Incorrect,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn hotp_look_ahead_replay_and_resync() {
        let a = Algorithm::Sha1;
        let s = RFC4226_SECRET;
        let code = |c: u64| format_code(hotp(a, s, c, 6), 6);
        assert_eq!(
            verify_hotp(a, s, &code(3), 6, 2, 5),
            Verdict::Valid { step: 3 }
        );
        assert_eq!(verify_hotp(a, s, &code(1), 6, 2, 5), Verdict::Duplicate);
        assert_eq!(verify_hotp(a, s, &code(0), 6, 2, 5), Verdict::Old);
        assert_eq!(
            verify_hotp(a, s, &code(9), 6, 2, 5),
            Verdict::Incorrect,
            "beyond the look-ahead"
        );
        assert_eq!(resync_hotp(a, s, &code(40), &code(41), 6, 2, 100), Some(41));
        assert_eq!(
            resync_hotp(a, s, &code(40), &code(42), 6, 2, 100),
            None,
            "not consecutive"
        );
    }
}
