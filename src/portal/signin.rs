//! Signing in at the portal: the invitation link, the first factor as
//! `[primary]` checks it, then a code from the user's app or token, or by
//! text message; or, for a user with neither, enrollment with an
//! invitation or an enrollment window.

use super::actions::*;
use std::sync::Arc;

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::first_factor::{self, Refused};
use super::html::Message;
use super::metrics::Attempt;
use super::session::{Level, Session};
use super::text::{T, t};
use super::{Client, Portal, now, pages, redirect_with};
use crate::mfa::ResultCode;
use crate::mfa::otp::Verdict;
use crate::store::Store;

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
            p.page(StatusCode::OK, html, &mut s, now)
        }
        _ => {
            let html = pages::signin(
                &lang,
                &s.csrf,
                Some(Message::Error(t(&lang, T::NeedInvitation).into())),
                None,
            );
            p.page(StatusCode::NOT_FOUND, html, &mut s, now)
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
    client: Client,
    headers: HeaderMap,
    Form(f): Form<SignIn>,
) -> Response {
    let now = now();
    let Some(visitor) = live(&p, &headers, &f.csrf) else {
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
        p.page(status, html, &mut v, now)
    };
    if !crate::store::user_name_ok(&user) {
        // No user has such a name: as a wrong one.
        p.counts.signin(Attempt::WrongPassword);
        return again(&p, T::WrongCredentials, StatusCode::OK);
    }
    if !p
        .limiter()
        .attempt(&user, client.ip, std::time::Instant::now())
    {
        p.audit(
            &user,
            ResultCode::FailedAuthenticationThrottled,
            false,
            "portal sign-in refused: too many failures",
            client,
        )
        .await;
        p.counts.signin(Attempt::Limited);
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
            p.limiter().give_back(&user, client.ip);
            let mut s = Session::signed_in(user.clone(), Level::Password, now);
            s.lang = Some(lang.clone());
            let html = pages::code(&lang, &s.csrf, None);
            p.page(StatusCode::OK, html, &mut s, now)
        }
        Some(AfterPassword::Sms(phone)) => {
            p.limiter().give_back(&user, client.ip);
            let code = format!("{:06}", rand::random_range(0..1_000_000u32));
            let Some(d) = super::test::delivery(
                &p.config(),
                &user,
                crate::mfa::Method::Sms,
                Some(&phone),
                &lang,
                client,
                super::test::Outbound::Code(&code),
            ) else {
                p.counts.signin(Attempt::Unavailable);
                return again(&p, T::Unavailable, StatusCode::SERVICE_UNAVAILABLE);
            };
            (p.hooks.deliver)(d);
            p.audit(
                &user,
                ResultCode::SuccessSmsSent,
                true,
                "portal sign-in: code sent by text message",
                client,
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
            p.page(StatusCode::OK, html, &mut s, now)
        }
        Some(AfterPassword::Enroll) => {
            p.limiter().give_back(&user, client.ip);
            p.audit(
                &user,
                ResultCode::SuccessBypassedAuth,
                true,
                "portal sign-in to enroll (invitation or enrollment window)",
                client,
            )
            .await;
            p.counts.signin(Attempt::Ok);
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
                client,
            )
            .await;
            p.counts.signin(Attempt::Refused);
            again(&p, key, StatusCode::FORBIDDEN)
        }
        Some(AfterPassword::Failed(key, why)) => {
            if key == T::WrongCredentials {
                p.counts.signin(Attempt::WrongPassword);
            } else {
                // Not the user's doing: the attempt is given back.
                p.limiter().give_back(&user, client.ip);
                p.counts.signin(Attempt::Unavailable);
            }
            p.audit(
                &user,
                ResultCode::FailedPrimaryAuth,
                false,
                &format!("portal sign-in: {why}"),
                client,
            )
            .await;
            again(&p, key, StatusCode::OK)
        }
        None => {
            p.counts.signin(Attempt::Unavailable);
            again(&p, T::Unavailable, StatusCode::SERVICE_UNAVAILABLE)
        }
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
    client: Client,
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
    // A Password-level session always names its user.
    let Some(user) = s.user.clone() else {
        return refused(&p, &headers);
    };
    if !p
        .limiter()
        .attempt(&user, client.ip, std::time::Instant::now())
    {
        p.counts.signin(Attempt::Limited);
        let mut s = s;
        let html = pages::code(
            &lang,
            &s.csrf,
            Some(Message::Error(t(&lang, T::TooManyAttempts).into())),
        );
        return p.page(StatusCode::TOO_MANY_REQUESTS, html, &mut s, now);
    }
    if let Some((want, until)) = s.sms.clone() {
        use subtle::ConstantTimeEq;
        let typed = sms_hash(f.code.trim(), &s.csrf);
        let right = now < until && bool::from(typed.as_bytes().ct_eq(want.as_bytes()));
        if right {
            return complete(
                &p,
                user,
                lang,
                client,
                ResultCode::SuccessSmsAuthenticated,
                now,
            )
            .await;
        }
        p.audit(
            &user,
            ResultCode::FailedSmsOtpIncorrect,
            false,
            "portal sign-in: wrong or expired code",
            client,
        )
        .await;
        p.counts.signin(Attempt::WrongCode);
        let mut s = s;
        let html = pages::code(
            &lang,
            &s.csrf,
            Some(Message::Error(t(&lang, T::WrongCode).into())),
        );
        return p.page(StatusCode::OK, html, &mut s, now);
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
            complete(
                &p,
                user,
                lang,
                client,
                ResultCode::SuccessOathCodeVerified,
                now,
            )
            .await
        }
        Some(Ok(Some(v))) => {
            let code = match v {
                Verdict::Duplicate => ResultCode::FailedOathCodeDuplicate,
                Verdict::Old => ResultCode::FailedOathCodeOld,
                _ => ResultCode::FailedOathCodeIncorrect,
            };
            p.audit(&user, code, false, "portal sign-in: wrong code", client)
                .await;
            p.counts.signin(Attempt::WrongCode);
            let mut s = s;
            let html = pages::code(
                &lang,
                &s.csrf,
                Some(Message::Error(t(&lang, T::WrongCode).into())),
            );
            p.page(StatusCode::OK, html, &mut s, now)
        }
        Some(Ok(None)) => {
            p.audit(
                &user,
                ResultCode::FailedAuthenticationThrottled,
                false,
                "portal sign-in refused: locked, blocked or disabled",
                client,
            )
            .await;
            p.counts.signin(Attempt::Refused);
            let locked = Message::Error(t(&lang, T::LockedOut).into());
            p.visitor_page(StatusCode::FORBIDDEN, &lang, Some(locked), now)
        }
        _ => {
            p.counts.signin(Attempt::Unavailable);
            let mut s = s;
            let html = pages::code(
                &lang,
                &s.csrf,
                Some(Message::Error(t(&lang, T::Unavailable).into())),
            );
            p.page(StatusCode::SERVICE_UNAVAILABLE, html, &mut s, now)
        }
    }
}

/// A sign-in completed by its second factor (`result`): the attempt given
/// back to the rate limit, recorded and counted, and a full session.
async fn complete(
    p: &Portal,
    user: String,
    lang: String,
    client: Client,
    result: ResultCode,
    now: crate::store::UnixTime,
) -> Response {
    p.limiter().give_back(&user, client.ip);
    p.audit(&user, result, true, "portal sign-in", client).await;
    p.counts.signin(Attempt::Ok);
    let mut full = Session::signed_in(user, Level::Full, now);
    full.lang = Some(lang);
    redirect_with(
        "/portal/",
        Some(full.cookie(p.store.as_login(), now, p.secure)),
    )
}
