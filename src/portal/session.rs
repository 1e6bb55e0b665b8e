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

    /// The session in `cookie_header`, if it opens and has not expired.
    pub fn from_cookies(
        store: &dyn LoginStore,
        cookie_header: Option<&str>,
        now: UnixTime,
        idle: i64,
        max: i64,
    ) -> Option<Session> {
        let value = cookie_header?
            .split(';')
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == COOKIE)?
            .1;
        let sealed = crate::hex::hex_decode(value)?;
        let plain = store.open(SEAL, &sealed).ok()?;
        let s: Session = serde_json::from_slice(&plain).ok()?;
        let alive = now >= s.started
            && now.saturating_sub(s.seen) < idle
            && now.saturating_sub(s.started) < max;
        alive.then_some(s)
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
