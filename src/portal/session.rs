//! Portal sessions: a cookie holding the session sealed with the seed key
//! (every node of a cluster opens it, none can forge it), renewed on each
//! page so that it ends `session_idle` after the last one, and in any case
//! `session_max` after it began.
//!
//! Each session carries a random CSRF token that every form posts back; a
//! POST whose token does not match (or that comes without the cookie, as a
//! cross-site POST does under `SameSite=Strict`) is refused. The cookie is
//! `HttpOnly`, `SameSite=Strict`, scoped to `/portal/`, and `Secure` when
//! the portal is served over HTTPS.

use serde::{Deserialize, Serialize};

use crate::store::{LoginStore, UnixTime};

/// The cookie's name.
pub const COOKIE: &str = "mfa_portal";
/// What the seal is bound to, so no other sealed value opens as a session.
const SEAL: &str = "portal session";

/// How far a visitor has signed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Level {
    /// Not signed in.
    Visitor,
    /// The first factor was right; the code of an enrolled user is next.
    Password,
    /// Signed in: both factors, or the first factor with an invitation or
    /// an enrollment window (`enrolling`).
    Full,
}

/// Why a request has no live session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoSession {
    /// No cookie, or one that does not open (sealed by another key,
    /// altered, garbled).
    Absent,
    /// It ended `session_idle` after its last page; `signed_in` unless it
    /// was a visitor's.
    Idle { signed_in: bool },
    /// It ended `session_max` after it began.
    Max { signed_in: bool },
}

/// A session as its cookie holds it.
#[derive(Clone, Serialize, Deserialize)]
pub struct Session {
    pub level: Level,
    /// The user, from the first factor on.
    pub user: Option<String>,
    /// Signed in without a second factor, to enroll one.
    #[serde(default)]
    pub enrolling: bool,
    /// The SHA-256 of the invitation the visitor came with (hex).
    #[serde(default)]
    pub invite: Option<String>,
    /// The CSRF token forms carry (hex).
    pub csrf: String,
    pub started: UnixTime,
    pub seen: UnixTime,
    /// A message for the next page (after a redirect): whether it is an
    /// error, and its text.
    #[serde(default)]
    pub notice: Option<(bool, String)>,
    /// The page's language, chosen at sign-in.
    #[serde(default)]
    pub lang: Option<String>,
    /// A sign-in code sent by text message: its SHA-256 (hex) and when it
    /// stops counting. Sealed in the cookie like the rest; wrong guesses
    /// count toward the sign-in rate limit, whatever cookie they come with.
    #[serde(default)]
    pub sms: Option<(String, UnixTime)>,
}

impl std::fmt::Debug for Session {
    // The CSRF token, the invitation's hash and a texted code's hash stay
    // out of any print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("level", &self.level)
            .field("user", &self.user)
            .field("enrolling", &self.enrolling)
            .field("started", &self.started)
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A new visitor's session.
    pub fn visitor(now: UnixTime) -> Session {
        Session {
            level: Level::Visitor,
            user: None,
            enrolling: false,
            invite: None,
            csrf: crate::hex::hex_encode(&rand::random::<[u8; 16]>()),
            started: now,
            seen: now,
            notice: None,
            lang: None,
            sms: None,
        }
    }

    /// A signed-in session for `user` (a new CSRF token: the one of the
    /// visitor's page does not carry over).
    pub fn signed_in(user: String, level: Level, now: UnixTime) -> Session {
        Session {
            level,
            user: Some(user),
            ..Session::visitor(now)
        }
    }

    /// The session in `cookie_header`, if it opens and has not expired;
    /// else why there is none.
    pub fn from_cookies(
        store: &dyn LoginStore,
        cookie_header: Option<&str>,
        now: UnixTime,
        idle: i64,
        max: i64,
    ) -> Result<Session, NoSession> {
        let value = cookie_header
            .unwrap_or("")
            .split(';')
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == COOKIE)
            .ok_or(NoSession::Absent)?
            .1;
        let sealed = crate::hex::hex_decode(value).ok_or(NoSession::Absent)?;
        let plain = store.open(SEAL, &sealed).map_err(|_| NoSession::Absent)?;
        let s: Session = serde_json::from_slice(&plain).map_err(|_| NoSession::Absent)?;
        if now < s.started {
            // Sealed by a node whose clock runs ahead: not ours to judge.
            return Err(NoSession::Absent);
        }
        let idle_end = s.seen.saturating_add(idle);
        let max_end = s.started.saturating_add(max);
        if now < idle_end && now < max_end {
            return Ok(s);
        }
        let signed_in = s.level != Level::Visitor;
        // Whichever came first ended it.
        Err(if idle_end <= max_end {
            NoSession::Idle { signed_in }
        } else {
            NoSession::Max { signed_in }
        })
    }

    /// Whether `token` is this session's CSRF token (in constant time).
    pub fn csrf_ok(&self, token: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.csrf.len() == token.len() && bool::from(self.csrf.as_bytes().ct_eq(token.as_bytes()))
    }

    /// The `Set-Cookie` value that keeps this session, seen at `now`.
    pub fn cookie(&mut self, store: &dyn LoginStore, now: UnixTime, secure: bool) -> String {
        self.seen = now;
        let json = serde_json::to_vec(self).unwrap_or_default();
        let sealed = store.seal(SEAL, &json);
        format!(
            "{COOKIE}={}; Path=/portal/; HttpOnly; SameSite=Strict{}",
            crate::hex::hex_encode(&sealed),
            if secure { "; Secure" } else { "" }
        )
    }

    /// The `Set-Cookie` value that ends the session.
    pub fn cleared(secure: bool) -> String {
        format!(
            "{COOKIE}=; Path=/portal/; HttpOnly; SameSite=Strict; Max-Age=0{}",
            if secure { "; Secure" } else { "" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SeedKey, SqliteStore, Store};

    #[test]
    fn a_cookie_opens_until_idle_or_max_and_says_which_ended_it() {
        let store = SqliteStore::in_memory(SeedKey::from_bytes(&[7; 32])).expect("store");
        let login = store.as_login();
        let (idle, max) = (600, 3600);
        let mut s = Session::signed_in("alice".into(), Level::Full, 1000);
        let cookie = s.cookie(login, 1000, false);
        let value = cookie.split(';').next().expect("name=value");
        let at = |now| Session::from_cookies(login, Some(value), now, idle, max);
        assert_eq!(at(1599).expect("alive").user.as_deref(), Some("alice"));
        assert_eq!(
            at(1600).expect_err("idle"),
            NoSession::Idle { signed_in: true }
        );
        assert_eq!(at(999).expect_err("from the future"), NoSession::Absent);
        // Renewed each page: the idle time restarts, the maximum does not.
        let renewed = s.cookie(login, 4200, false);
        let value = renewed.split(';').next().expect("name=value");
        let at = |now| Session::from_cookies(login, Some(value), now, idle, max);
        assert!(at(4599).is_ok(), "past the first idle end, renewed since");
        assert_eq!(
            at(4600).expect_err("max"),
            NoSession::Max { signed_in: true }
        );
        let mut v = Session::visitor(1000);
        let visitor = v.cookie(login, 1000, false);
        assert_eq!(
            Session::from_cookies(login, Some(&visitor), 2000, idle, max).expect_err("idle"),
            NoSession::Idle { signed_in: false }
        );
        for header in [
            None,
            Some(""),
            Some("other=1"),
            Some("mfa_portal=zz"),
            Some("mfa_portal=00ff"),
        ] {
            assert_eq!(
                Session::from_cookies(login, header, 1000, idle, max).expect_err("none"),
                NoSession::Absent,
                "{header:?}"
            );
        }
    }
}
