//! What a signed-in user does at the portal: apps and tokens, phone and
//! method, PIN, sign-ins reported as not theirs, a lost device, a test
//! push or call, signing out.

use super::actions::*;
use std::sync::Arc;

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use zeroize::Zeroizing;

use super::html::Message;
use super::metrics::Action;
use super::session::Session;
use super::text::{T, t};
use super::{Client, Portal, Reported, now, pages, redirect_with};
use crate::mfa::ResultCode;
use crate::store::{Store, TokenKind};

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
    let Some(Signed { mut s, lang, user }) = signed_in(&p, &headers, &f.csrf, Act::Enroll).await
    else {
        return refused(&p, &headers);
    };
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
            p.counts.action(Action::EnrollApp);
            let html = pages::app(&lang, &s.csrf, None, &secret, &qr);
            p.page(StatusCode::OK, html, &mut s, now())
        }
        None => back(&p, s, true, t(&lang, T::Unavailable)),
    }
}

pub(super) async fn app_activate(
    State(p): State<Arc<Portal>>,
    client: Client,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Response {
    let Some(Signed { mut s, lang, user }) = signed_in(&p, &headers, &f.csrf, Act::Enroll).await
    else {
        return refused(&p, &headers);
    };
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
            p.counts.action(Action::ActivateApp);
            p.audit(
                &user,
                ResultCode::SuccessOathCodeVerified,
                true,
                "portal: enrolled an authenticator app",
                client,
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
            p.page(StatusCode::OK, html, &mut s, now())
        }
        _ => back(&p, s, true, t(&lang, T::Unavailable)),
    }
}

pub(super) async fn token_remove(
    State(p): State<Arc<Portal>>,
    client: Client,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Response {
    let Some(Signed { s, lang, user }) = signed_in(&p, &headers, &f.csrf, Act::Manage).await else {
        return refused(&p, &headers);
    };
    let Ok(id) = f.id.parse::<i64>() else {
        return back(&p, s, true, t(&lang, T::Unavailable));
    };
    let store = p.store.clone();
    let name = user.clone();
    match blocking(move || store.remove_user_token(&name, id)).await {
        Some(Ok(true)) => {
            p.changed(
                Action::RemoveDevice,
                &user,
                "portal: removed a device (app or token)",
                client,
            )
            .await;
            back(&p, s, false, t(&lang, T::AppRemoved))
        }
        _ => back(&p, s, true, t(&lang, T::Unavailable)),
    }
}

pub(super) async fn phone(
    State(p): State<Arc<Portal>>,
    client: Client,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Response {
    let Some(Signed { s, lang, user }) = signed_in(&p, &headers, &f.csrf, Act::Manage).await else {
        return refused(&p, &headers);
    };
    let number = match f.phone.trim() {
        "" => String::new(),
        typed => match crate::mfa::normalize_phone(typed) {
            Some(n) => n,
            None => return back(&p, s, true, t(&lang, T::BadPhone)),
        },
    };
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
            p.changed(
                Action::SetPhoneAndMethod,
                &user,
                &format!("portal: phone and method set (method {})", f.method),
                client,
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
    client: Client,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Response {
    let Some(Signed { s, lang, user }) = signed_in(&p, &headers, &f.csrf, Act::Manage).await else {
        return refused(&p, &headers);
    };
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
            p.changed(Action::SetPin, &user, "portal: PIN set", client)
                .await;
            back(&p, s, false, t(&lang, T::PinSet))
        }
        _ => back(&p, s, true, t(&lang, T::Unavailable)),
    }
}

pub(super) async fn report(
    State(p): State<Arc<Portal>>,
    client: Client,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Response {
    let Some(Signed { s, lang, user }) = signed_in(&p, &headers, &f.csrf, Act::Manage).await else {
        return refused(&p, &headers);
    };
    let now = now();
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
            p.counts.action(Action::ReportFraud);
            p.audit(
                &user,
                ResultCode::FailedFraudReported,
                false,
                &format!("portal: reported {what} as not me; user blocked"),
                client,
            )
            .await;
            (p.hooks.report)(Reported {
                user,
                what,
                address,
                blocked_for: block_for,
            });
            let reported = Message::Notice(t(&lang, T::ReportedBlocked).into());
            p.visitor_page(StatusCode::OK, &lang, Some(reported), now)
        }
        None => back(&p, s, true, t(&lang, T::Unavailable)),
    }
}

pub(super) async fn lost(
    State(p): State<Arc<Portal>>,
    client: Client,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Response {
    let Some(Signed { mut s, lang, user }) = signed_in(&p, &headers, &f.csrf, Act::Manage).await
    else {
        return refused(&p, &headers);
    };
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
            p.changed(
                Action::LostDevice,
                &user,
                &format!("portal: reported a lost device; {n} apps and tokens removed"),
                client,
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
    let Some(s) = live(&p, &headers, &f.csrf) else {
        return refused(&p, &headers);
    };
    // The cookie is a sealed session any node opens: clearing it in this
    // browser is not enough, so the store records the sign-out, which ends
    // this session, and every one of the user's begun before it, at every
    // node. (Not those begun since: a later sign-in elsewhere stays.)
    if let Some(user) = s.user.clone() {
        let (store, at) = (p.store.clone(), s.started);
        let ended = blocking(move || store.end_portal_sessions(&user, at)).await;
        if !matches!(ended, Some(Ok(_))) {
            tracing::error!(user = ?s.user, "portal sign-out not recorded: the store failed; the session ends in this browser only");
        }
    }
    p.counts.action(Action::SignOut);
    redirect_with("/portal/", Some(Session::cleared(p.secure)))
}

/// A test push or call: delivered by the first provider for the method,
/// with a message that says it is a test.
pub(super) async fn test(
    State(p): State<Arc<Portal>>,
    client: Client,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Response {
    let Some(Signed { s, lang, user }) = signed_in(&p, &headers, &f.csrf, Act::Enroll).await else {
        return refused(&p, &headers);
    };
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
        client,
        super::test::Outbound::Test,
    ) else {
        return back(&p, s, true, t(&lang, T::TestFailed));
    };
    (p.hooks.deliver)(d);
    let action = match method {
        crate::mfa::Method::Call => Action::TestCall,
        _ => Action::TestPush,
    };
    let what = format!("portal: test {} sent", method.as_str());
    p.changed(action, &user, &what, client).await;
    back(&p, s, false, t(&lang, T::TestSent))
}
