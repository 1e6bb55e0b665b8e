//! The portal's handlers: each checks the session (and on a POST its CSRF
//! token), does its work off the runtime's thread (the store and the
//! password checks block), records it, and answers with a page or a
//! redirect to the signed-in page.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::first_factor::{self, Refused};
use super::html::Message;
use super::session::{Level, Session};
use super::text::{T, t};
use super::{Peer, Portal, Reported, now, pages, redirect_with, respond};
use crate::mfa::ResultCode;
use crate::mfa::otp::Verdict;
use crate::store::{Store, TokenKind};

/// How long a code sent by text message counts.
const SMS_VALID: i64 = 300;

/// What the session keeps of a code sent by text message: bound to the
/// session's CSRF token, so it checks nowhere else.
fn sms_hash(code: &str, csrf: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(csrf.as_bytes());
    h.update(b"\0");
    h.update(code.as_bytes());
    crate::hex::hex_encode(&h.finalize())
}

/// Sign-ins the signed-in page lists, newest first.
const SIGNINS_SHOWN: usize = 20;
/// How far back they are looked for.
const SIGNINS_SINCE: i64 = 90 * 86_400;

#[derive(Deserialize)]
pub(super) struct SignIn {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: Zeroizing<String>,
}

#[derive(Deserialize)]
pub(super) struct Fields {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    method: String,
    #[serde(default)]
    pin: Zeroizing<String>,
    #[serde(default)]
    pin2: Zeroizing<String>,
    #[serde(default)]
    at: String,
}

/// Runs blocking store work off the runtime's thread.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

/// The answer to a POST without a live session or with a wrong CSRF
/// token: refused, and a fresh visitor's page.
fn refused(p: &Portal, headers: &HeaderMap) -> Response {
    let now = now();
    let lang = p.language(None, headers);
    let mut s = Session::visitor(now);
    let html = pages::signin(
        &lang,
        &s.csrf,
        Some(Message::Error(t(&lang, T::Expired).into())),
        None,
    );
    respond(
        StatusCode::FORBIDDEN,
        html,
        Some(s.cookie(p.store.as_login(), now, p.secure)),
    )
}

/// The session of a POST, if live and its CSRF token matches.
fn posted(p: &Portal, headers: &HeaderMap, csrf: &str, level: Level) -> Option<Session> {
    p.session(headers, now())
        .filter(|s| s.csrf_ok(csrf) && s.level == level)
}

/// What a signed-in session may do.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Act {
    /// Enroll an app, or try a method: a session that signed in to enroll
    /// (invitation or window, no second factor) may.
    Enroll,
    /// Anything else (phone, method, PIN, devices, reports): only a session
    /// that passed the second factor.
    Manage,
}

/// The signed-in session of a POST (CSRF token matching) whose user may
/// still do `act` now: the session level allows it, and the user is still
/// in the store and not blocked, disabled or locked out since the session
/// began (a block, a fraud report or a sync ends what a session may do at
/// once, not when the cookie expires).
async fn signed_in(p: &Arc<Portal>, headers: &HeaderMap, csrf: &str, act: Act) -> Option<Session> {
    let s = posted(p, headers, csrf, Level::Full)?;
    if act == Act::Manage && s.enrolling {
        return None;
    }
    let store = p.store.clone();
    let user = s.user.clone()?;
    let now = now();
    let standing =
        blocking(move || crate::store::in_tx(store.as_login(), |tx| tx.facts(&user, now))).await?;
    match standing {
        Ok(Some(f)) if !f.blocked && !f.locked && f.disabled.is_none() => Some(s),
        _ => None,
    }
}

/// Back to the signed-in page with `note` (an error if `error`).
fn back(p: &Portal, mut s: Session, error: bool, note: &str) -> Response {
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
                    respond(
                        StatusCode::OK,
                        html,
                        Some(s.cookie(p.store.as_login(), now, p.secure)),
                    )
                }
                // Removed meanwhile: signed out.
                Some(Ok((None, ..))) => {
                    let mut v = Session::visitor(now);
                    let html = pages::signin(&lang, &v.csrf, None, None);
                    respond(
                        StatusCode::OK,
                        html,
                        Some(v.cookie(p.store.as_login(), now, p.secure)),
                    )
                }
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
            respond(
                StatusCode::OK,
                html,
                Some(s.cookie(p.store.as_login(), now, p.secure)),
            )
        }
        _ => {
            let html = pages::signin(&lang, &s.csrf, message, None);
            respond(
                StatusCode::OK,
                html,
                Some(s.cookie(p.store.as_login(), now, p.secure)),
            )
        }
    }
}

/// The invitation link: the sign-in page, with the invitation in the
/// session (rendered here, not redirected: a cookie set by a redirect
/// from a mail client's link would not come back under SameSite=Strict).
pub(super) async fn invite(
    State(p): State<Arc<Portal>>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let now = now();
    let lang = p.language(None, &headers);
    let hash = crate::enroll::invitation_hash(&token).to_vec();
    let store = p.store.clone();
    let h = hash.clone();
    let user = blocking(move || store.invitation(&h, now)).await;
    let mut s = Session::visitor(now);
    match user {
        Some(Ok(Some(user))) => {
            s.invite = Some(crate::hex::hex_encode(&hash));
            let html = pages::signin(&lang, &s.csrf, None, Some(&user));
            respond(
                StatusCode::OK,
                html,
                Some(s.cookie(p.store.as_login(), now, p.secure)),
            )
        }
        _ => {
            let html = pages::signin(
                &lang,
                &s.csrf,
                Some(Message::Error(t(&lang, T::NeedInvitation).into())),
                None,
            );
            respond(
                StatusCode::NOT_FOUND,
                html,
                Some(s.cookie(p.store.as_login(), now, p.secure)),
            )
        }
    }
}

/// What the first factor led to.
enum AfterPassword {
    Code,
    /// No app or token, but a phone: a code by text message.
    Sms(String),
    Enroll,
    Refused(T, ResultCode, String),
    Failed(T, String),
}

pub(super) async fn signin(
    State(p): State<Arc<Portal>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Form(f): Form<SignIn>,
) -> Response {
    let now = now();
    let Some(visitor) = p.session(&headers, now).filter(|s| s.csrf_ok(&f.csrf)) else {
        return refused(&p, &headers);
    };
    let lang = p.language(None, &headers);
    let user = f.user.trim().to_owned();
    let again = |p: &Portal, key: T, status: StatusCode| {
        let mut v = visitor.clone();
        let html = pages::signin(
            &lang,
            &v.csrf,
            Some(Message::Error(t(&lang, key).into())),
            None,
        );
        respond(
            status,
            html,
            Some(v.cookie(p.store.as_login(), now, p.secure)),
        )
    };
    if !crate::store::user_name_ok(&user) {
        return again(&p, T::WrongCredentials, StatusCode::OK);
    }
    if !p
        .limiter()
        .attempt(&user, peer.0.ip(), std::time::Instant::now())
    {
        p.audit(
            &user,
            ResultCode::FailedAuthenticationThrottled,
            false,
            "portal sign-in refused: too many failures",
            peer,
        )
        .await;
        return again(&p, T::TooManyAttempts, StatusCode::TOO_MANY_REQUESTS);
    }
    let portal = p.clone();
    let name = user.clone();
    let invite = visitor.invite.clone();
    // A directory is asked on the runtime (its client is async); the
    // store and the other first factors block.
    let by_directory = match &p.ldap() {
        Some(ldap) => Some(ldap.check(&user, f.password.as_bytes()).await),
        None => None,
    };
    let outcome = blocking(move || {
        let p = portal.as_ref();
        let first = by_directory.unwrap_or_else(|| {
            first_factor::check(&p.config(), p.store.as_ref(), &name, f.password.as_bytes())
        });
        match first {
            Err(Refused::Wrong(why)) => return AfterPassword::Failed(T::WrongCredentials, why),
            Err(Refused::Unavailable(why)) => return AfterPassword::Failed(T::Unavailable, why),
            Ok(()) => {}
        }
        let sms = p
            .config()
            .providers
            .iter()
            .any(|pr| pr.methods.contains(&crate::mfa::Method::Sms));
        after_password(p.store.as_ref(), &name, invite.as_deref(), now, sms)
    })
    .await;
    match outcome {
        Some(AfterPassword::Code) => {
            p.limiter().give_back(&user, peer.0.ip());
            let mut s = Session::signed_in(user.clone(), Level::Password, now);
            s.lang = Some(lang.clone());
            let html = pages::code(&lang, &s.csrf, None);
            respond(
                StatusCode::OK,
                html,
                Some(s.cookie(p.store.as_login(), now, p.secure)),
            )
        }
        Some(AfterPassword::Sms(phone)) => {
            p.limiter().give_back(&user, peer.0.ip());
            let code = format!("{:06}", rand::random_range(0..1_000_000u32));
            let Some(d) = super::test::delivery(
                &p.config(),
                &user,
                crate::mfa::Method::Sms,
                Some(&phone),
                &lang,
                peer,
                super::test::Outbound::Code(&code),
            ) else {
                return again(&p, T::Unavailable, StatusCode::SERVICE_UNAVAILABLE);
            };
            (p.hooks.deliver)(d);
            p.audit(
                &user,
                ResultCode::SuccessSmsSent,
                true,
                "portal sign-in: code sent by text message",
                peer,
            )
            .await;
            let mut s = Session::signed_in(user.clone(), Level::Password, now);
            s.lang = Some(lang.clone());
            s.sms = Some((sms_hash(&code, &s.csrf), now + SMS_VALID));
            let html = pages::code(
                &lang,
                &s.csrf,
                Some(Message::Notice(t(&lang, T::CodeSent).into())),
            );
            respond(
                StatusCode::OK,
                html,
                Some(s.cookie(p.store.as_login(), now, p.secure)),
            )
        }
        Some(AfterPassword::Enroll) => {
            p.limiter().give_back(&user, peer.0.ip());
            p.audit(
                &user,
                ResultCode::SuccessBypassedAuth,
                true,
                "portal sign-in to enroll (invitation or enrollment window)",
                peer,
            )
            .await;
            let mut s = Session::signed_in(user, Level::Full, now);
            s.enrolling = true;
            s.lang = Some(lang);
            redirect_with(
                "/portal/",
                Some(s.cookie(p.store.as_login(), now, p.secure)),
            )
        }
        Some(AfterPassword::Refused(key, code, why)) => {
            p.audit(
                &user,
                code,
                false,
                &format!("portal sign-in refused: {why}"),
                peer,
            )
            .await;
            again(&p, key, StatusCode::FORBIDDEN)
        }
        Some(AfterPassword::Failed(key, why)) => {
            if key != T::WrongCredentials {
                // Not the user's doing: the attempt is given back.
                p.limiter().give_back(&user, peer.0.ip());
            }
            p.audit(
                &user,
                ResultCode::FailedPrimaryAuth,
                false,
                &format!("portal sign-in: {why}"),
                peer,
            )
            .await;
            again(&p, key, StatusCode::OK)
        }
        None => again(&p, T::Unavailable, StatusCode::SERVICE_UNAVAILABLE),
    }
}

/// After a right password: a code for an enrolled user; for one with no
/// app or token, enrollment if invited (the invitation is used up) or
/// inside an enrollment window.
fn after_password(
    store: &dyn Store,
    user: &str,
    invite: Option<&str>,
    now: i64,
    sms_possible: bool,
) -> AfterPassword {
    let facts = match crate::store::in_tx(store.as_login(), |tx| tx.facts(user, now)) {
        Ok(f) => f,
        Err(e) => return AfterPassword::Failed(T::Unavailable, format!("store: {e}")),
    };
    let Some(facts) = facts else {
        return AfterPassword::Refused(
            T::NeedInvitation,
            ResultCode::FailedPrimaryAuth,
            "not a user of the store".into(),
        );
    };
    if let Some(source) = &facts.disabled {
        return AfterPassword::Refused(
            T::NotAllowed,
            ResultCode::FailedUserDisabled,
            format!("user disabled: no longer in directory {source}"),
        );
    }
    if facts.blocked {
        return AfterPassword::Refused(
            T::NotAllowed,
            ResultCode::SuccessUserBlocked,
            "user blocked".into(),
        );
    }
    if facts.locked {
        return AfterPassword::Refused(
            T::LockedOut,
            ResultCode::FailedAuthenticationThrottled,
            "locked out by wrong codes".into(),
        );
    }
    if facts.oath() {
        return AfterPassword::Code;
    }
    if let Some(phone) = facts.phone.clone().filter(|_| sms_possible) {
        return AfterPassword::Sms(phone);
    }
    if let Some(hash) = invite.and_then(crate::hex::hex_decode) {
        match store.invitation(&hash, now) {
            Ok(Some(invited)) if crate::store::fold(&invited) == crate::store::fold(user) => {
                return match store.take_invitation(&hash, now) {
                    Ok(Some(_)) => AfterPassword::Enroll,
                    Ok(None) => AfterPassword::Refused(
                        T::NeedInvitation,
                        ResultCode::FailedPrimaryAuth,
                        "invitation already used".into(),
                    ),
                    Err(e) => AfterPassword::Failed(T::Unavailable, format!("store: {e}")),
                };
            }
            Ok(_) => {}
            Err(e) => return AfterPassword::Failed(T::Unavailable, format!("store: {e}")),
        }
    }
    match store.user(user) {
        Ok(Some(u)) if u.enroll_until.is_some_and(|until| until > now) => AfterPassword::Enroll,
        Ok(_) => AfterPassword::Refused(
            T::NeedInvitation,
            ResultCode::FailedPrimaryAuth,
            "no app or token, no invitation, no enrollment window".into(),
        ),
        Err(e) => AfterPassword::Failed(T::Unavailable, format!("store: {e}")),
    }
}

pub(super) async fn code(
    State(p): State<Arc<Portal>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Response {
    let Some(s) = posted(&p, &headers, &f.csrf, Level::Password) else {
        return refused(&p, &headers);
    };
    let now = now();
    let lang = s
        .lang
        .clone()
        .unwrap_or_else(|| p.language(Some(&s), &headers));
    let user = s.user.clone().unwrap_or_default();
    if !p
        .limiter()
        .attempt(&user, peer.0.ip(), std::time::Instant::now())
    {
        let mut s = s;
        let html = pages::code(
            &lang,
            &s.csrf,
            Some(Message::Error(t(&lang, T::TooManyAttempts).into())),
        );
        return respond(
            StatusCode::TOO_MANY_REQUESTS,
            html,
            Some(s.cookie(p.store.as_login(), now, p.secure)),
        );
    }
    if let Some((want, until)) = s.sms.clone() {
        use subtle::ConstantTimeEq;
        let typed = sms_hash(f.code.trim(), &s.csrf);
        let right = now < until && bool::from(typed.as_bytes().ct_eq(want.as_bytes()));
        if right {
            p.limiter().give_back(&user, peer.0.ip());
            p.audit(
                &user,
                ResultCode::SuccessSmsAuthenticated,
                true,
                "portal sign-in",
                peer,
            )
            .await;
            let mut full = Session::signed_in(user, Level::Full, now);
            full.lang = Some(lang);
            return redirect_with(
                "/portal/",
                Some(full.cookie(p.store.as_login(), now, p.secure)),
            );
        }
        p.audit(
            &user,
            ResultCode::FailedSmsOtpIncorrect,
            false,
            "portal sign-in: wrong or expired code",
            peer,
        )
        .await;
        let mut s = s;
        let html = pages::code(
            &lang,
            &s.csrf,
            Some(Message::Error(t(&lang, T::WrongCode).into())),
        );
        return respond(
            StatusCode::OK,
            html,
            Some(s.cookie(p.store.as_login(), now, p.secure)),
        );
    }
    let store = p.store.clone();
    let lockout = p.config().lockout;
    let (name, typed) = (user.clone(), f.code.trim().to_owned());
    let verdict = blocking(move || {
        crate::store::in_tx(store.as_login(), |tx| {
            let Some(facts) = tx.facts(&name, now)? else {
                return Ok(None);
            };
            if facts.locked || facts.blocked || facts.disabled.is_some() {
                return Ok(None);
            }
            let v =
                crate::store::login::verify(store.as_login(), tx, &facts.tokens, &typed, 1, now)?;
            match v {
                Verdict::Valid { .. } => tx.clear_denials(&name)?,
                _ => {
                    tx.record_denial(&name, now, &lockout)?;
                }
            }
            Ok(Some(v))
        })
    })
    .await;
    match verdict {
        Some(Ok(Some(Verdict::Valid { .. }))) => {
            p.limiter().give_back(&user, peer.0.ip());
            p.audit(
                &user,
                ResultCode::SuccessOathCodeVerified,
                true,
                "portal sign-in",
                peer,
            )
            .await;
            let mut full = Session::signed_in(user, Level::Full, now);
            full.lang = Some(lang);
            redirect_with(
                "/portal/",
                Some(full.cookie(p.store.as_login(), now, p.secure)),
            )
        }
        Some(Ok(Some(v))) => {
            let code = match v {
                Verdict::Duplicate => ResultCode::FailedOathCodeDuplicate,
                Verdict::Old => ResultCode::FailedOathCodeOld,
                _ => ResultCode::FailedOathCodeIncorrect,
            };
            p.audit(&user, code, false, "portal sign-in: wrong code", peer)
                .await;
            let mut s = s;
            let html = pages::code(
                &lang,
                &s.csrf,
                Some(Message::Error(t(&lang, T::WrongCode).into())),
            );
            respond(
                StatusCode::OK,
                html,
                Some(s.cookie(p.store.as_login(), now, p.secure)),
            )
        }
        Some(Ok(None)) => {
            p.audit(
                &user,
                ResultCode::FailedAuthenticationThrottled,
                false,
                "portal sign-in refused: locked, blocked or disabled",
                peer,
            )
            .await;
            let mut v = Session::visitor(now);
            let html = pages::signin(
                &lang,
                &v.csrf,
                Some(Message::Error(t(&lang, T::LockedOut).into())),
                None,
            );
            respond(
                StatusCode::FORBIDDEN,
                html,
                Some(v.cookie(p.store.as_login(), now, p.secure)),
            )
        }
        _ => {
            let mut s = s;
            let html = pages::code(
                &lang,
                &s.csrf,
                Some(Message::Error(t(&lang, T::Unavailable).into())),
            );
            respond(
                StatusCode::SERVICE_UNAVAILABLE,
                html,
                Some(s.cookie(p.store.as_login(), now, p.secure)),
            )
        }
    }
}

/// The pending app of `user` as a (key, QR code) pair, if there is one.
fn pending_app(store: &dyn Store, user: &str, issuer: &str) -> Option<(Zeroizing<String>, String)> {
    let tokens = store.tokens(user).ok()?;
    let t = tokens
        .iter()
        .rev()
        .find(|t| !t.active && t.kind == TokenKind::Totp && t.serial.is_none())?;
    let seed = store.token_seed(t).ok()?;
    let uri = crate::cli::totp_uri(issuer, user, &seed, &t.params);
    let secret = Zeroizing::new(base32::encode(
        base32::Alphabet::Rfc4648 { padding: false },
        &seed,
    ));
    let qr = crate::cli::qr_svg(&uri).ok()?;
    Some((secret, qr))
}

pub(super) async fn app_new(
    State(p): State<Arc<Portal>>,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Response {
    let Some(mut s) = signed_in(&p, &headers, &f.csrf, Act::Enroll).await else {
        return refused(&p, &headers);
    };
    let lang = s
        .lang
        .clone()
        .unwrap_or_else(|| p.language(Some(&s), &headers));
    let user = s.user.clone().unwrap_or_default();
    let store = p.store.clone();
    let issuer = p.config().server.name.clone();
    let made = blocking(move || {
        crate::cli::totp_enroll(store.as_ref(), &user, &issuer).ok()?;
        pending_app(store.as_ref(), &user, &issuer)
    })
    .await
    .flatten();
    match made {
        Some((secret, qr)) => {
            let html = pages::app(&lang, &s.csrf, None, &secret, &qr);
            respond(
                StatusCode::OK,
                html,
                Some(s.cookie(p.store.as_login(), now(), p.secure)),
            )
        }
        None => back(&p, s, true, t(&lang, T::Unavailable)),
    }
}

pub(super) async fn app_activate(
    State(p): State<Arc<Portal>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Response {
    let Some(mut s) = signed_in(&p, &headers, &f.csrf, Act::Enroll).await else {
        return refused(&p, &headers);
    };
    let lang = s
        .lang
        .clone()
        .unwrap_or_else(|| p.language(Some(&s), &headers));
    let user = s.user.clone().unwrap_or_default();
    let store = p.store.clone();
    let issuer = p.config().server.name.clone();
    let (name, code) = (user.clone(), f.code.trim().to_owned());
    let done = blocking(move || {
        let now = u64::try_from(now()).unwrap_or(0);
        match crate::cli::totp_activate(store.as_ref(), &name, &code, now, 1) {
            Ok(()) => {
                // Enrolled: the window the administrator opened has done
                // its work, and closes.
                let _ = crate::cli::open_enrollment(store.as_ref(), &name, "0s", now as i64);
                Ok(())
            }
            Err(_) => Err(pending_app(store.as_ref(), &name, &issuer)),
        }
    })
    .await;
    match done {
        Some(Ok(())) => {
            p.audit(
                &user,
                ResultCode::SuccessOathCodeVerified,
                true,
                "portal: enrolled an authenticator app",
                peer,
            )
            .await;
            s.enrolling = false;
            back(&p, s, false, t(&lang, T::AppActivated))
        }
        Some(Err(Some((secret, qr)))) => {
            let html = pages::app(
                &lang,
                &s.csrf,
                Some(Message::Error(t(&lang, T::WrongCode).into())),
                &secret,
                &qr,
            );
            respond(
                StatusCode::OK,
                html,
                Some(s.cookie(p.store.as_login(), now(), p.secure)),
            )
        }
        _ => back(&p, s, true, t(&lang, T::Unavailable)),
    }
}

pub(super) async fn token_remove(
    State(p): State<Arc<Portal>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Response {
    let Some(s) = signed_in(&p, &headers, &f.csrf, Act::Manage).await else {
        return refused(&p, &headers);
    };
    let lang = s
        .lang
        .clone()
        .unwrap_or_else(|| p.language(Some(&s), &headers));
    let user = s.user.clone().unwrap_or_default();
    let Ok(id) = f.id.parse::<i64>() else {
        return back(&p, s, true, t(&lang, T::Unavailable));
    };
    let store = p.store.clone();
    let name = user.clone();
    match blocking(move || store.remove_user_token(&name, id)).await {
        Some(Ok(true)) => {
            p.audit(
                &user,
                ResultCode::SuccessNoPin,
                true,
                "portal: removed a device (app or token)",
                peer,
            )
            .await;
            back(&p, s, false, t(&lang, T::AppRemoved))
        }
        _ => back(&p, s, true, t(&lang, T::Unavailable)),
    }
}

pub(super) async fn phone(
    State(p): State<Arc<Portal>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Response {
    let Some(s) = signed_in(&p, &headers, &f.csrf, Act::Manage).await else {
        return refused(&p, &headers);
    };
    let lang = s
        .lang
        .clone()
        .unwrap_or_else(|| p.language(Some(&s), &headers));
    let user = s.user.clone().unwrap_or_default();
    let number: String = f
        .phone
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.' | '/'))
        .collect();
    if !number.is_empty() && crate::mfa::check_phone(&number).is_err() {
        return back(&p, s, true, t(&lang, T::BadPhone));
    }
    if crate::mfa::Method::parse(&f.method).is_none() {
        return back(&p, s, true, t(&lang, T::Unavailable));
    }
    let store = p.store.clone();
    let name = user.clone();
    let method = f.method.clone();
    let saved = blocking(move || {
        let changes = crate::cli::UserChanges {
            method: Some(&method),
            phone: Some(&number),
            ..Default::default()
        };
        crate::cli::user_set(store.as_ref(), &name, changes)
    })
    .await;
    match saved {
        Some(Ok(())) => {
            p.audit(
                &user,
                ResultCode::SuccessNoPin,
                true,
                &format!("portal: phone and method set (method {})", f.method),
                peer,
            )
            .await;
            back(&p, s, false, t(&lang, T::Saved))
        }
        Some(Err(e)) => back(&p, s, true, &e.to_string()),
        None => back(&p, s, true, t(&lang, T::Unavailable)),
    }
}

pub(super) async fn pin(
    State(p): State<Arc<Portal>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Response {
    let Some(s) = signed_in(&p, &headers, &f.csrf, Act::Manage).await else {
        return refused(&p, &headers);
    };
    let lang = s
        .lang
        .clone()
        .unwrap_or_else(|| p.language(Some(&s), &headers));
    let user = s.user.clone().unwrap_or_default();
    if !(4..=8).contains(&f.pin.len()) || !f.pin.bytes().all(|b| b.is_ascii_digit()) {
        return back(&p, s, true, t(&lang, T::BadPin));
    }
    if f.pin.as_str() != f.pin2.as_str() {
        return back(&p, s, true, t(&lang, T::PinMismatch));
    }
    let store = p.store.clone();
    let name = user.clone();
    let pin = f.pin.clone();
    match blocking(move || {
        let changes = crate::cli::UserChanges {
            pin: Some(pin),
            ..Default::default()
        };
        crate::cli::user_set(store.as_ref(), &name, changes)
    })
    .await
    {
        Some(Ok(())) => {
            p.audit(
                &user,
                ResultCode::SuccessNoPin,
                true,
                "portal: PIN set",
                peer,
            )
            .await;
            back(&p, s, false, t(&lang, T::PinSet))
        }
        _ => back(&p, s, true, t(&lang, T::Unavailable)),
    }
}

pub(super) async fn report(
    State(p): State<Arc<Portal>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Response {
    let Some(s) = signed_in(&p, &headers, &f.csrf, Act::Manage).await else {
        return refused(&p, &headers);
    };
    let now = now();
    let lang = s
        .lang
        .clone()
        .unwrap_or_else(|| p.language(Some(&s), &headers));
    let user = s.user.clone().unwrap_or_default();
    let Ok(at) = f.at.parse::<i64>() else {
        return back(&p, s, true, t(&lang, T::Unavailable));
    };
    let store = p.store.clone();
    let name = user.clone();
    let block_for = p.config().mfa.fraud_block;
    let found = blocking(move || {
        let recs = store.audit(Some(&name), Some(at)).ok()?;
        let r = recs
            .into_iter()
            .find(|r| r.at == at && r.mode != "portal")?;
        let what = format!(
            "{} at {} from {} {}",
            r.result,
            crate::cli::show_time(r.at),
            r.client,
            r.client_ip.as_deref().unwrap_or("")
        );
        let until = now.saturating_add(i64::try_from(block_for.as_secs()).unwrap_or(i64::MAX));
        store
            .block(
                &name,
                &format!("reported at the portal: {what} was not me"),
                now,
                until,
            )
            .ok()?;
        Some((what, r.client_ip))
    })
    .await
    .flatten();
    match found {
        Some((what, address)) => {
            p.audit(
                &user,
                ResultCode::FailedFraudReported,
                false,
                &format!("portal: reported {what} as not me; user blocked"),
                peer,
            )
            .await;
            (p.hooks.report)(Reported {
                user,
                what,
                address,
                blocked_for: block_for,
            });
            let mut v = Session::visitor(now);
            let html = pages::signin(
                &lang,
                &v.csrf,
                Some(Message::Notice(t(&lang, T::ReportedBlocked).into())),
                None,
            );
            respond(
                StatusCode::OK,
                html,
                Some(v.cookie(p.store.as_login(), now, p.secure)),
            )
        }
        None => back(&p, s, true, t(&lang, T::Unavailable)),
    }
}

pub(super) async fn lost(
    State(p): State<Arc<Portal>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Response {
    let Some(mut s) = signed_in(&p, &headers, &f.csrf, Act::Manage).await else {
        return refused(&p, &headers);
    };
    let lang = s
        .lang
        .clone()
        .unwrap_or_else(|| p.language(Some(&s), &headers));
    let user = s.user.clone().unwrap_or_default();
    let store = p.store.clone();
    let name = user.clone();
    let removed = blocking(move || {
        let mut n = 0;
        for t in store.tokens(&name)? {
            if store.remove_user_token(&name, t.id)? {
                n += 1;
            }
        }
        store.forget(&name)?;
        Ok::<_, crate::store::StoreError>(n)
    })
    .await;
    match removed {
        Some(Ok(n)) => {
            p.audit(
                &user,
                ResultCode::SuccessNoPin,
                true,
                &format!("portal: reported a lost device; {n} apps and tokens removed"),
                peer,
            )
            .await;
            s.enrolling = true;
            back(&p, s, false, t(&lang, T::LostDone))
        }
        _ => back(&p, s, true, t(&lang, T::Unavailable)),
    }
}

pub(super) async fn signout(
    State(p): State<Arc<Portal>>,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Response {
    if p.session(&headers, now())
        .filter(|s| s.csrf_ok(&f.csrf))
        .is_none()
    {
        return refused(&p, &headers);
    }
    redirect_with("/portal/", Some(Session::cleared(p.secure)))
}

/// A test push or call: delivered by the first provider for the method,
/// with a message that says it is a test.
pub(super) async fn test(
    State(p): State<Arc<Portal>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Response {
    let Some(s) = signed_in(&p, &headers, &f.csrf, Act::Enroll).await else {
        return refused(&p, &headers);
    };
    let lang = s
        .lang
        .clone()
        .unwrap_or_else(|| p.language(Some(&s), &headers));
    let user = s.user.clone().unwrap_or_default();
    let method = match crate::mfa::Method::parse(&f.method) {
        Some(m @ (crate::mfa::Method::Push | crate::mfa::Method::Call)) => m,
        _ => return back(&p, s, true, t(&lang, T::TestFailed)),
    };
    let store = p.store.clone();
    let name = user.clone();
    let phone = blocking(move || store.user(&name).ok().flatten().and_then(|u| u.phone))
        .await
        .flatten();
    let Some(d) = super::test::delivery(
        &p.config(),
        &user,
        method,
        phone.as_deref(),
        &lang,
        peer,
        super::test::Outbound::Test,
    ) else {
        return back(&p, s, true, t(&lang, T::TestFailed));
    };
    (p.hooks.deliver)(d);
    p.audit(
        &user,
        ResultCode::SuccessNoPin,
        true,
        &format!("portal: test {} sent", method.as_str()),
        peer,
    )
    .await;
    back(&p, s, false, t(&lang, T::TestSent))
}
