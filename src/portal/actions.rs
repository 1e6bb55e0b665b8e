//! What the portal's handlers share: the forms they read, the session of a
//! POST (its CSRF token checked, and for a signed-in one the user's
//! standing read again), blocking work off the runtime's thread, and the
//! answers they end with; and the signed-in page. The sign-in is in
//! [`super::signin`], what a signed-in user does in [`super::account`].

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::html::Message;
use super::metrics::Ended;
use super::session::{Level, Session};
use super::text::{T, t};
use super::{Portal, now, pages, redirect_with, respond};

/// Sign-ins the signed-in page lists, newest first.
pub(super) const SIGNINS_SHOWN: usize = 20;
/// How far back they are looked for.
pub(super) const SIGNINS_SINCE: i64 = 90 * 86_400;

#[derive(Deserialize)]
pub(super) struct SignIn {
    #[serde(default)]
    pub(super) csrf: String,
    #[serde(default)]
    pub(super) user: String,
    #[serde(default)]
    pub(super) password: Zeroizing<String>,
}

#[derive(Deserialize)]
pub(super) struct Fields {
    #[serde(default)]
    pub(super) csrf: String,
    #[serde(default)]
    pub(super) code: String,
    #[serde(default)]
    pub(super) id: String,
    #[serde(default)]
    pub(super) phone: String,
    #[serde(default)]
    pub(super) method: String,
    #[serde(default)]
    pub(super) pin: Zeroizing<String>,
    #[serde(default)]
    pub(super) pin2: Zeroizing<String>,
    #[serde(default)]
    pub(super) at: String,
}

/// Runs blocking store work off the runtime's thread.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

/// The answer to a POST without a live session or with a wrong CSRF
/// token: refused, and a fresh visitor's page.
pub(super) fn refused(p: &Portal, headers: &HeaderMap) -> Response {
    let now = now();
    let lang = p.language(None, headers);
    let expired = Message::Error(t(&lang, T::Expired).into());
    p.visitor_page(StatusCode::FORBIDDEN, &lang, Some(expired), now)
}

/// The session of a POST, if live and its CSRF token matches; a POST
/// refused here is counted (a cross-site one comes without the cookie, so
/// it is one of these, as is a form sent after its session ended).
pub(super) fn live(p: &Portal, headers: &HeaderMap, csrf: &str) -> Option<Session> {
    let s = p.session(headers, now()).filter(|s| s.csrf_ok(csrf));
    if s.is_none() {
        p.counts.csrf_refused();
    }
    s
}

/// The session of a POST, if live, its CSRF token matches, and it is
/// signed in as far as `level`.
pub(super) fn posted(p: &Portal, headers: &HeaderMap, csrf: &str, level: Level) -> Option<Session> {
    live(p, headers, csrf).filter(|s| s.level == level)
}

/// What a signed-in session may do.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Act {
    /// Enroll an app, or try a method: a session that signed in to enroll
    /// (invitation or window, no second factor) may.
    Enroll,
    /// Anything else (phone, method, PIN, devices, reports): only a session
    /// that passed the second factor.
    Manage,
}

/// A signed-in session with its page language and user.
pub(super) struct Signed {
    pub(super) s: Session,
    pub(super) lang: String,
    pub(super) user: String,
}

/// The signed-in session of a POST (CSRF token matching) whose user may
/// still do `act` now: the session level allows it, and the user is still
/// in the store and not blocked, disabled or locked out since the session
/// began (a block, a fraud report or a sync ends what a session may do at
/// once, not when the cookie expires; counted as a session ended).
pub(super) async fn signed_in(
    p: &Arc<Portal>,
    headers: &HeaderMap,
    csrf: &str,
    act: Act,
) -> Option<Signed> {
    let s = posted(p, headers, csrf, Level::Full)?;
    if act == Act::Manage && s.enrolling {
        return None;
    }
    let store = p.store.clone();
    let user = s.user.clone()?;
    let now = now();
    let standing = blocking(move || {
        let facts = crate::store::in_tx(store.as_login(), |tx| tx.facts(&user, now))?;
        Ok::<_, crate::store::StoreError>((facts, store.user(&user)?))
    })
    .await?;
    match standing {
        Ok((_, Some(u))) if signed_out(&s, &u) => {
            p.counts.ended(Ended::SignedOut);
            None
        }
        Ok((Some(f), Some(_))) if !f.blocked && !f.locked && f.disabled.is_none() => {
            let lang = s
                .lang
                .clone()
                .unwrap_or_else(|| p.language(Some(&s), headers));
            let user = s.user.clone()?;
            Some(Signed { s, lang, user })
        }
        Ok(_) => {
            p.counts.ended(Ended::Refused);
            None
        }
        Err(_) => None,
    }
}

/// Whether the user signed out (at any node) since `s` began: sessions are
/// cookies, so a sign-out ends them through the store.
pub(super) fn signed_out(s: &Session, u: &crate::store::User) -> bool {
    u.portal_sessions_since.is_some_and(|t| s.started <= t)
}

/// Back to the signed-in page with `note` (an error if `error`).
pub(super) fn back(p: &Portal, mut s: Session, error: bool, note: &str) -> Response {
    s.notice = Some((error, note.to_owned()));
    redirect_with(
        "/portal/",
        Some(s.cookie(p.store.as_login(), now(), p.secure)),
    )
}

pub(super) async fn home(State(p): State<Arc<Portal>>, headers: HeaderMap) -> Response {
    let now = now();
    let mut s = p
        .session(&headers, now)
        .unwrap_or_else(|| Session::visitor(now));
    let lang = p.language(Some(&s), &headers);
    let message = s.notice.take().map(|(error, m)| {
        if error {
            Message::Error(m)
        } else {
            Message::Notice(m)
        }
    });
    match (s.level, s.user.clone()) {
        (Level::Full, Some(user)) => {
            let store = p.store.clone();
            let read = blocking(move || {
                let u = store.user(&user)?;
                let tokens = store.tokens(&user)?;
                let mut signins = store.audit(Some(&user), Some(now - SIGNINS_SINCE))?;
                signins.reverse();
                signins.truncate(SIGNINS_SHOWN);
                Ok::<_, crate::store::StoreError>((u, tokens, signins))
            })
            .await;
            match read {
                // Signed out since, here or at another node: the cookie
                // is cleared.
                Some(Ok((Some(u), ..))) if signed_out(&s, &u) => {
                    p.counts.ended(Ended::SignedOut);
                    p.visitor_page(StatusCode::OK, &lang, None, now)
                }
                Some(Ok((Some(u), tokens, signins))) => {
                    let html = pages::home(
                        &lang,
                        &s.csrf,
                        message,
                        &pages::Home {
                            user: &u,
                            tokens: &tokens,
                            signins: &signins,
                            enrolling: s.enrolling,
                            testable: &p.testable(),
                        },
                    );
                    p.page(StatusCode::OK, html, &mut s, now)
                }
                // Removed meanwhile: signed out.
                Some(Ok((None, ..))) => p.visitor_page(StatusCode::OK, &lang, None, now),
                _ => respond(
                    StatusCode::SERVICE_UNAVAILABLE,
                    pages::signin(
                        &lang,
                        &s.csrf,
                        Some(Message::Error(t(&lang, T::Unavailable).into())),
                        None,
                    ),
                    None,
                ),
            }
        }
        (Level::Password, Some(_)) => {
            let html = pages::code(&lang, &s.csrf, message);
            p.page(StatusCode::OK, html, &mut s, now)
        }
        _ => {
            let html = pages::signin(&lang, &s.csrf, message, None);
            p.page(StatusCode::OK, html, &mut s, now)
        }
    }
}
