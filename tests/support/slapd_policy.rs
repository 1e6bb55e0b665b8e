//! The ppolicy overlay of a private slapd ([`super::Options::ppolicy`]),
//! for the tests of the first factor from the directory: a default
//! password policy that locks an account after 5 wrong passwords and
//! makes a password an administrator reset be changed, and the
//! administrator's ways to lock an account or reset a password. A bind
//! that asks for the password policy control then says why it was refused
//! (accountLocked, changeAfterReset), as OpenLDAP does in production.
//!
//! OpenLDAP 2.5 builds the ppolicy schema into slapd: no schema file.

use std::path::Path;

use super::Slapd;

/// Where the policies live.
pub const POLICIES_OU: &str = "OU=Policies,DC=corp,DC=example";
/// The policy of every entry that names no other.
pub const DEFAULT_POLICY: &str = "CN=default,OU=Policies,DC=corp,DC=example";

/// The overlay's module must be installed (Debian's slapd has it).
pub(super) fn check_module(modules: Option<&Path>) -> Result<(), String> {
    match modules {
        Some(m) if m.join("ppolicy.so").is_file() => Ok(()),
        Some(m) => Err(format!("no ppolicy.so in {}", m.display())),
        None => Err("no module directory for the ppolicy overlay".to_owned()),
    }
}

/// The overlay's lines in slapd.conf, after the database's.
pub(super) fn config() -> String {
    format!("overlay ppolicy\nppolicy_default \"{DEFAULT_POLICY}\"\nppolicy_use_lockout\n")
}

/// The policy entries, appended to the tree's LDIF.
pub(super) fn ldif() -> String {
    format!(
        "dn: {POLICIES_OU}\nobjectClass: organizationalUnit\nou: Policies\n\n\
         dn: {DEFAULT_POLICY}\nobjectClass: device\nobjectClass: pwdPolicy\ncn: default\n\
         pwdAttribute: userPassword\npwdLockout: TRUE\npwdMaxFailure: 5\n\
         pwdFailureCountInterval: 0\npwdMustChange: TRUE\n\n"
    )
}

impl Slapd {
    /// Locks `dn` until [`Slapd::unlock_account`], as an administrator does
    /// (`pwdAccountLockedTime: 000001010000Z`): every bind as it fails,
    /// with accountLocked in the control, whatever the password.
    pub fn lock_account(&self, dn: &str) {
        self.modify(&format!(
            "dn: {dn}\nchangetype: modify\nreplace: pwdAccountLockedTime\n\
             pwdAccountLockedTime: 000001010000Z\n"
        ));
    }

    pub fn unlock_account(&self, dn: &str) {
        self.modify(&format!(
            "dn: {dn}\nchangetype: modify\ndelete: pwdAccountLockedTime\n"
        ));
    }

    /// Marks the password of `dn` as reset by an administrator
    /// (`pwdReset: TRUE`): a bind with it succeeds, with changeAfterReset
    /// in the control, for a session that may only change the password.
    pub fn require_password_change(&self, dn: &str) {
        self.modify(&format!(
            "dn: {dn}\nchangetype: modify\nreplace: pwdReset\npwdReset: TRUE\n"
        ));
    }

    /// The server's log since it last started: with
    /// [`super::Options::log_operations`], a line per operation, such as
    /// `conn=1004 op=0 BIND dn="cn=user 000001,..." method=128` and
    /// `conn=1004 op=1 SRCH base="..." scope=2 deref=0 filter="(...)"`.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }
}
