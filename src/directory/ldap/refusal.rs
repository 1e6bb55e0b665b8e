//! Why a directory refused a bind, from what it answered.
//!
//! Active Directory (and Samba) put the reason in the diagnostic message of
//! result 49, invalidCredentials: `80090308: LdapErr: DSID-0C09044E,
//! comment: AcceptSecurityContext error, data 775, v4563`, where `data` is a
//! Windows error code in hex. OpenLDAP's ppolicy overlay answers with the
//! password policy response control (draft-behera-ldap-password-policy
//! §6.2), which the bind asks for; it can also come with result 0, when the
//! password was right but the session may only change it.
//!
//! Everything here is pure, so that each mapping is a unit test. The
//! control's value is read with a small bounded BER reader rather than
//! ldap3's parser, which panics on a malformed control.

use std::fmt;

/// The password policy control's OID, for the request and the response.
pub(super) const PPOLICY_OID: &str = "1.3.6.1.4.1.42.2.27.8.5.1";

/// Why the directory refused a user's bind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// Result 49 and nothing more: the password is wrong, or there is no
    /// such user. Never told apart: an audit record may say only this.
    WrongPasswordOrUnknownUser,
    /// AD `data 775`; ppolicy `accountLocked`.
    AccountLocked,
    /// AD `data 533`.
    AccountDisabled,
    /// AD `data 701`: the account's end date passed.
    AccountExpired,
    /// AD `data 532`; ppolicy `passwordExpired`.
    PasswordExpired,
    /// AD `data 773`; ppolicy `changeAfterReset` (then the bind itself
    /// succeeded, for a session that may only change the password).
    PasswordMustChange,
    /// AD `data 530`, `531`: not at this time, or not from this
    /// workstation.
    LogonRestricted,
    /// Refused without a bind: to LDAP a name with an empty password is an
    /// unauthenticated bind (RFC 4513 §5.1.2), which many servers let
    /// succeed.
    EmptyPassword,
    /// The login name matches more than one entry under `base_dn`.
    AmbiguousName,
    /// Another result code (48 inappropriateAuthentication, 53
    /// unwillingToPerform, ...).
    Other(u32),
}

impl fmt::Display for Refusal {
    /// As the audit record's reason says it, after the directory's name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::WrongPasswordOrUnknownUser => f.write_str("wrong password or unknown user"),
            Refusal::AccountLocked => f.write_str("account locked"),
            Refusal::AccountDisabled => f.write_str("account disabled"),
            Refusal::AccountExpired => f.write_str("account expired"),
            Refusal::PasswordExpired => f.write_str("password expired"),
            Refusal::PasswordMustChange => f.write_str("password must be changed"),
            Refusal::LogonRestricted => {
                f.write_str("logon not permitted at this time or from this workstation")
            }
            Refusal::EmptyPassword => f.write_str("empty password (refused without a bind)"),
            Refusal::AmbiguousName => f.write_str("the login name matches more than one entry"),
            Refusal::Other(rc) => write!(f, "bind refused with result {rc} ({})", rc_name(*rc)),
        }
    }
}

/// The refusal a bind's answer says, or `None` for a bind that succeeded
/// without reservation: `rc` its result code, `text` its diagnostic
/// message, `ppolicy` the value of its password policy response control.
pub(super) fn of_bind(rc: u32, text: &str, ppolicy: Option<&[u8]>) -> Option<Refusal> {
    match ppolicy.and_then(ppolicy_error) {
        Some(0) => return Some(Refusal::PasswordExpired),
        Some(1) => return Some(Refusal::AccountLocked),
        Some(2) => return Some(Refusal::PasswordMustChange),
        // The others are about changing a password, not binding.
        _ => {}
    }
    match rc {
        0 => None,
        49 => Some(ad_data(text).map_or(Refusal::WrongPasswordOrUnknownUser, of_ad_data)),
        rc => Some(Refusal::Other(rc)),
    }
}

/// AD's `data XXX` code of a result 49, in hex.
fn of_ad_data(code: u32) -> Refusal {
    match code {
        0x530 | 0x531 => Refusal::LogonRestricted,
        0x532 => Refusal::PasswordExpired,
        0x533 => Refusal::AccountDisabled,
        0x701 => Refusal::AccountExpired,
        0x773 => Refusal::PasswordMustChange,
        0x775 => Refusal::AccountLocked,
        // 525 no such user, 52e wrong password, and any other: the same.
        _ => Refusal::WrongPasswordOrUnknownUser,
    }
}

/// The hex number after `data ` in an AD diagnostic message.
fn ad_data(text: &str) -> Option<u32> {
    let at = text.find("data ")? + "data ".len();
    let hex: &str = &text[at..];
    let end = hex
        .find(|c: char| !c.is_ascii_hexdigit())
        .unwrap_or(hex.len());
    if end == 0 || end > 8 {
        return None;
    }
    u32::from_str_radix(&hex[..end], 16).ok()
}

/// The `error` of a password policy response value:
/// `SEQUENCE { warning [0] CHOICE {...} OPTIONAL, error [1] ENUMERATED
/// OPTIONAL }`. `None` when it has none or does not decode.
fn ppolicy_error(value: &[u8]) -> Option<u32> {
    let (tag, mut inner, rest) = tlv(value)?;
    if tag != 0x30 || !rest.is_empty() {
        return None;
    }
    while !inner.is_empty() {
        let (tag, v, rest) = tlv(inner)?;
        if tag == 0x81 {
            if v.is_empty() || v.len() > 4 {
                return None;
            }
            return Some(v.iter().fold(0u32, |n, &b| (n << 8) | u32::from(b)));
        }
        inner = rest;
    }
    None
}

/// One BER element: (tag, value, what follows). Single-octet tags and
/// definite lengths of up to four octets only: all this control uses.
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, b) = b.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, b) = b.split_first()?;
    let (len, b) = if first < 0x80 {
        (usize::from(first), b)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || b.len() < n {
            return None;
        }
        let len = b[..n]
            .iter()
            .fold(0usize, |l, &x| (l << 8) | usize::from(x));
        (len, &b[n..])
    };
    if b.len() < len {
        return None;
    }
    Some((tag, &b[..len], &b[len..]))
}

/// The name of an LDAP result code a bind may get (RFC 4511 appendix A).
fn rc_name(rc: u32) -> &'static str {
    match rc {
        1 => "operationsError",
        2 => "protocolError",
        7 => "authMethodNotSupported",
        8 => "strongerAuthRequired",
        13 => "confidentialityRequired",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        48 => "inappropriateAuthentication",
        50 => "insufficientAccessRights",
        53 => "unwillingToPerform",
        80 => "other",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What AD answers, with each `data` code (Windows Server 2019's text).
    fn ad(code: &str) -> String {
        format!(
            "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data {code}, v4563\0"
        )
    }

    #[test]
    fn active_directory_data_codes() {
        for (code, want) in [
            ("525", Refusal::WrongPasswordOrUnknownUser),
            ("52e", Refusal::WrongPasswordOrUnknownUser),
            ("530", Refusal::LogonRestricted),
            ("531", Refusal::LogonRestricted),
            ("532", Refusal::PasswordExpired),
            ("533", Refusal::AccountDisabled),
            ("701", Refusal::AccountExpired),
            ("773", Refusal::PasswordMustChange),
            ("775", Refusal::AccountLocked),
            ("568", Refusal::WrongPasswordOrUnknownUser),
        ] {
            assert_eq!(of_bind(49, &ad(code), None), Some(want), "data {code}");
        }
        // Samba AD: the same form, another version suffix.
        let samba = "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 533, v1db1";
        assert_eq!(of_bind(49, samba, None), Some(Refusal::AccountDisabled));
        // Upper-case hex.
        assert_eq!(
            of_bind(49, &ad("52E"), None),
            Some(Refusal::WrongPasswordOrUnknownUser)
        );
    }

    #[test]
    fn plain_results() {
        assert_eq!(of_bind(0, "", None), None);
        assert_eq!(
            of_bind(49, "", None),
            Some(Refusal::WrongPasswordOrUnknownUser)
        );
        assert_eq!(
            of_bind(49, "data ", None),
            Some(Refusal::WrongPasswordOrUnknownUser),
            "no digits"
        );
        assert_eq!(
            of_bind(49, "data 123456789", None),
            Some(Refusal::WrongPasswordOrUnknownUser),
            "too many digits"
        );
        assert_eq!(
            of_bind(
                53,
                "unauthenticated bind (DN with no password) disallowed",
                None
            ),
            Some(Refusal::Other(53))
        );
        assert_eq!(
            Refusal::Other(53).to_string(),
            "bind refused with result 53 (unwillingToPerform)"
        );
    }

    /// A response value as OpenLDAP's ppolicy writes it: `30 03 81 01 e`,
    /// optionally after a warning `a0 03 80 01 n`.
    fn ppolicy(warning: Option<u8>, error: Option<u8>) -> Vec<u8> {
        let mut inner = Vec::new();
        if let Some(w) = warning {
            inner.extend([0xa0, 3, 0x80, 1, w]);
        }
        if let Some(e) = error {
            inner.extend([0x81, 1, e]);
        }
        let mut v = vec![0x30, inner.len() as u8];
        v.extend(inner);
        v
    }

    #[test]
    fn password_policy_control() {
        let p = |w, e| ppolicy(w, e);
        assert_eq!(
            of_bind(49, "", Some(&p(None, Some(1)))),
            Some(Refusal::AccountLocked)
        );
        assert_eq!(
            of_bind(49, "", Some(&p(None, Some(0)))),
            Some(Refusal::PasswordExpired)
        );
        // changeAfterReset comes with a bind that succeeded.
        assert_eq!(
            of_bind(0, "", Some(&p(None, Some(2)))),
            Some(Refusal::PasswordMustChange)
        );
        assert_eq!(
            of_bind(49, "", Some(&p(Some(100), Some(1)))),
            Some(Refusal::AccountLocked),
            "after a warning"
        );
        // A warning alone (grace logins left, expiry near): accepted.
        assert_eq!(of_bind(0, "", Some(&p(Some(3), None))), None);
        // An empty control and a wrong password.
        assert_eq!(
            of_bind(49, "", Some(&p(None, None))),
            Some(Refusal::WrongPasswordOrUnknownUser)
        );
        // Errors about changing a password do not refuse a bind.
        assert_eq!(of_bind(0, "", Some(&p(None, Some(5)))), None);
        // Long-form length.
        assert_eq!(
            of_bind(49, "", Some(&[0x30, 0x81, 3, 0x81, 1, 1])),
            Some(Refusal::AccountLocked)
        );
    }

    #[test]
    fn a_malformed_control_is_ignored_not_trusted() {
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 5, 0x81, 1, 1],
            &[0x31, 3, 0x81, 1, 1],
            &[0x30, 3, 0x81, 1, 1, 0],
            &[0x30, 0x85, 0, 0, 0, 0, 3],
            &[0x30, 2, 0x81, 0],
            &[0x30, 3, 0x81, 5, 1],
            &[0x3f, 1, 0],
        ] {
            // The result code decides, as if there were no control.
            assert_eq!(of_bind(0, "", Some(bad)), None, "{bad:02x?}");
            assert_eq!(
                of_bind(49, "", Some(bad)),
                Some(Refusal::WrongPasswordOrUnknownUser),
                "{bad:02x?}"
            );
        }
    }
}
