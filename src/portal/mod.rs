//! The self-service portal at `{public_url}/portal/` (`[portal]`).
//!
//! A user signs in with the first factor as logins check it (`[primary]`),
//! then, once enrolled, with a code from their app or token. A first
//! enrollment needs the invitation link (`mfa-proxy user invite`) or an
//! enrollment window the administrator opened (`user set --enroll-for`).
//! Signed in, the user enrolls an authenticator app (QR code and the key
//! as text, active only once a code it shows is typed), removes a device,
//! sets the phone number, the default method and the call PIN, sees the
//! recent sign-ins and reports one as "not me" (blocked, and the
//! administrators mailed, as a fraud report at a call is), or reports a
//! lost device (every app and token removed).
//!
//! - [`session`]: sealed cookies, expiry, CSRF tokens.
//! - [`client`]: the address a request comes from (the TCP peer, or behind
//!   `trusted_proxies` what they forward).
//! - [`limit`]: sign-in rate limits per user and per address.
//! - [`metrics`]: the portal's counters on `/metrics`.
//! - [`first_factor`]: the password, checked as `[primary]` says.
//! - [`pages`]: what each page shows; [`html`] and [`text`] its markup and
//!   words.
//!
//! Every page is answered with `Cache-Control: no-store`, a strict
//! Content-Security-Policy (no script at all), `Referrer-Policy:
//! no-referrer` (the invitation link's token never leaves in a Referer) and
//! framing denied. Every sign-in and every change is in the audit trail
//! (mode `portal`).

mod account;
mod actions;
pub mod client;
pub mod first_factor;
mod html;
pub mod limit;
pub mod metrics;
mod pages;
pub mod session;
mod signin;
mod test;
mod text;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::config::Config;
use crate::mfa::ResultCode;
use crate::store::{AuditRecord, Store, UnixTime};
pub use client::Client;
use metrics::{Counts, Ended};
use session::{NoSession, Session};

/// The TCP peer of a request, which the HTTP server puts in each request's
/// extensions. Handlers take the client's address ([`Client`]), which is
/// the peer's unless the peer is a trusted proxy.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// A fraud report from the portal, for the administrators' mail.
#[derive(Clone, Debug)]
pub struct Reported {
    pub user: String,
    /// The sign-in reported, as the audit trail has it.
    pub what: String,
    pub address: Option<String>,
    pub blocked_for: std::time::Duration,
}

/// What the portal needs, shared by its handlers.
pub struct Portal {
    /// The configuration in force: a reload replaces it ([`Portal::reconfigure`]),
    /// so the portal signs in against the upstreams, directory and
    /// providers the proxy uses. `[portal]`'s own settings need a restart.
    config: std::sync::RwLock<Arc<Config>>,
    settings: crate::config::Portal,
    store: Arc<dyn Store>,
    limiter: Mutex<limit::Limiter>,
    /// What `/metrics` shows of the portal.
    counts: Counts,
    /// Cookies get `Secure` (HTTPS on http_listen, or an https public_url
    /// behind a proxy that terminates TLS), from the configuration alone:
    /// never from a header such as `X-Forwarded-Proto`.
    secure: bool,
    /// What the portal asks of the rest of the proxy.
    hooks: Hooks,
    /// The directory that checks passwords (`[primary] mode = "ldap"`),
    /// made again when a reload changes how it is reached.
    ldap: std::sync::RwLock<Option<Arc<first_factor::Ldap>>>,
}

/// What the portal asks of the proxy around it.
pub struct Hooks {
    /// Mails the administrators about a fraud report.
    pub report: Box<dyn Fn(Reported) + Send + Sync>,
    /// Sends a test push or call through its provider (the answer, if
    /// any, comes back to a verification nobody waits for, and is refused).
    pub deliver: Box<dyn Fn(crate::engine::Delivery) + Send + Sync>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hooks")
    }
}

impl std::fmt::Debug for Portal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Portal")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Portal {
    /// The portal of `config` (whose `[portal]` is set), on `store`.
    pub fn new(config: &Config, store: Arc<dyn Store>, hooks: Hooks) -> Option<Arc<Portal>> {
        let settings = config.portal.clone()?;
        let secure = config.server.http_tls.is_some()
            || config
                .server
                .public_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://"));
        Some(Arc::new(Portal {
            limiter: Mutex::new(limit::Limiter::new(
                settings.signin_window,
                settings.signin_per_user,
                settings.signin_per_address,
            )),
            counts: Counts::default(),
            config: std::sync::RwLock::new(Arc::new(config.clone())),
            settings,
            store,
            secure,
            hooks,
            ldap: std::sync::RwLock::new(first_factor::Ldap::of(config).map(Arc::new)),
        }))
    }

    /// The configuration in force.
    fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The directory that checks passwords, if `[primary]` says one does.
    fn ldap(&self) -> Option<Arc<first_factor::Ldap>> {
        self.ldap
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A reload's configuration: sign-ins use its upstreams, directory,
    /// providers, texts and lockout from now on (the directory's kept
    /// connections only while it is reached the same way).
    pub fn reconfigure(&self, config: &Config) {
        let ldap = first_factor::Ldap::of(config);
        {
            let mut kept = self.ldap.write().unwrap_or_else(PoisonError::into_inner);
            *kept = match (kept.take(), ldap) {
                (Some(old), Some(new)) if old.serves(&new) => Some(old),
                (_, new) => new.map(Arc::new),
            };
        }
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(config.clone());
    }

    /// A page that keeps `session`, renewed at `now`.
    fn page(
        &self,
        status: StatusCode,
        html: String,
        session: &mut Session,
        now: UnixTime,
    ) -> Response {
        respond(
            status,
            html,
            Some(session.cookie(self.store.as_login(), now, self.secure)),
        )
    }

    /// The sign-in page for a new visitor, saying `message`: where a
    /// session ends (refused, reported, locked, gone).
    fn visitor_page(
        &self,
        status: StatusCode,
        lang: &str,
        message: Option<html::Message>,
        now: UnixTime,
    ) -> Response {
        let mut v = Session::visitor(now);
        let html = pages::signin(lang, &v.csrf, message, None);
        self.page(status, html, &mut v, now)
    }

    /// The portal's counters, in Prometheus' text format, appended to `o`.
    pub fn render_metrics(&self, o: &mut String) {
        self.counts.render(o);
    }

    /// The session of this request, if it has a live one (a signed-in
    /// session found expired is counted).
    fn session(&self, headers: &HeaderMap, now: UnixTime) -> Option<Session> {
        let cookies = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join("; ");
        let found = Session::from_cookies(
            self.store.as_login(),
            Some(&cookies),
            now,
            secs(self.settings.session_idle),
            secs(self.settings.session_max),
        );
        match found {
            Ok(s) => return Some(s),
            Err(NoSession::Idle { signed_in: true }) => self.counts.ended(Ended::Idle),
            Err(NoSession::Max { signed_in: true }) => self.counts.ended(Ended::Max),
            Err(_) => {}
        }
        None
    }

    /// The client of a request from `peer` with `headers` (see [`client`]).
    fn client(&self, peer: std::net::IpAddr, headers: &HeaderMap) -> Client {
        let c = client::resolve(peer, &self.settings.trusted_proxies, headers);
        if c.how == client::How::Invalid {
            self.counts.forwarded_invalid();
            tracing::debug!(
                %peer,
                "portal: a trusted proxy sent no usable X-Forwarded-For; its address is used"
            );
        }
        c
    }

    fn limiter(&self) -> std::sync::MutexGuard<'_, limit::Limiter> {
        self.limiter.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a portal event of `user` in the audit trail, durably before
    /// the page that tells of it is sent.
    /// A change a signed-in user made (`action`), counted and recorded in
    /// the audit trail as `what`.
    async fn changed(&self, action: metrics::Action, user: &str, what: &str, client: Client) {
        self.counts.action(action);
        self.audit(user, ResultCode::SuccessNoPin, true, what, client)
            .await;
    }

    async fn audit(
        &self,
        user: &str,
        result: ResultCode,
        accepted: bool,
        reason: &str,
        client: Client,
    ) {
        let rec = AuditRecord {
            at: now(),
            user: user.to_owned(),
            result,
            accepted,
            mode: "portal".into(),
            server: self.config().server.name.clone(),
            client: "portal".into(),
            client_ip: Some(client.ip.to_string()),
            reason: Some(reason.to_owned()),
        };
        let store = self.store.clone();
        let written = tokio::task::spawn_blocking(move || {
            crate::store::in_tx(store.as_login(), |tx| tx.append_audit(&rec))
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(user, error = %e, "portal: cannot record {reason} in the audit trail")
            }
            Err(e) => {
                tracing::error!(user, error = %e, "portal: cannot record {reason} in the audit trail")
            }
        }
    }

    /// The methods a test can be sent for: push and call, where a provider
    /// delivers them.
    fn testable(&self) -> Vec<crate::mfa::Method> {
        use crate::mfa::Method;
        [Method::Push, Method::Call]
            .into_iter()
            .filter(|m| {
                self.config()
                    .providers
                    .iter()
                    .any(|p| p.methods.contains(m))
            })
            .collect()
    }

    /// The language of a page for `user`'s session or this browser.
    fn language(&self, session: Option<&Session>, headers: &HeaderMap) -> String {
        if let Some(l) = session.and_then(|s| s.lang.clone()) {
            return l;
        }
        let browser = headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.split(',')
                    .map(|part| {
                        part.split(';')
                            .next()
                            .unwrap_or("")
                            .trim()
                            .to_ascii_lowercase()
                    })
                    .find(|l| text::speaks(l))
            });
        browser.unwrap_or_else(|| self.config().mfa.language.clone())
    }
}

/// The portal's routes, under `/portal`.
pub fn router(portal: Arc<Portal>) -> Router {
    Router::new()
        .route("/portal", get(|| async { redirect("/portal/") }))
        .route("/portal/", get(actions::home))
        .route("/portal/invite/{token}", get(signin::invite))
        .route("/portal/signin", post(signin::signin))
        .route("/portal/code", post(signin::code))
        .route("/portal/app/new", post(account::app_new))
        .route("/portal/app/activate", post(account::app_activate))
        .route("/portal/token/remove", post(account::token_remove))
        .route("/portal/phone", post(account::phone))
        .route("/portal/pin", post(account::pin))
        .route("/portal/report", post(account::report))
        .route("/portal/lost", post(account::lost))
        .route("/portal/test", post(account::test))
        .route("/portal/signout", post(account::signout))
        .with_state(portal)
}

fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn now() -> UnixTime {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// An HTML page with the portal's headers, and the cookie if any.
fn respond(status: StatusCode, html: String, cookie: Option<String>) -> Response {
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure_headers(h);
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.insert(header::SET_COOKIE, c);
    }
    r
}

/// 303 See Other to `to` (after a form: a reload does not post again).
fn redirect(to: &'static str) -> Response {
    redirect_with(to, None)
}

fn redirect_with(to: &'static str, cookie: Option<String>) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    let h = r.headers_mut();
    h.insert(header::LOCATION, HeaderValue::from_static(to));
    secure_headers(h);
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.insert(header::SET_COOKIE, c);
    }
    r
}

fn secure_headers(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
}
