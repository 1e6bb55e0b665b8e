//! Delivery to providers (webhook or console) and fraud emails. Each runs
//! as its own task, so a slow provider or mail relay never holds the loop;
//! outcomes come back to the loop through a channel.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{error, info, warn};

use super::smtp::{self, MailError, Relay};
use crate::config::{Notify, Provider, ProviderKind};
use crate::engine::{Delivery, DeliveryOutcome, FraudReport};

/// Sends deliveries and fraud emails.
#[derive(Clone)]
pub(super) struct Deliverer {
    http: reqwest::Client,
    notify: Option<Arc<Notify>>,
    server: Arc<str>,
}

impl Deliverer {
    /// Providers come with each delivery (the one its login started
    /// with); `notify` is who hears about fraud reports.
    pub(super) fn new(notify: Option<Notify>, server: &str) -> Deliverer {
        Deliverer {
            // Timeouts are per provider, per request.
            http: reqwest::Client::builder()
                .user_agent(concat!("mfa-proxy/", env!("CARGO_PKG_VERSION")))
                .build()
                .unwrap_or_default(),
            notify: notify.map(Arc::new),
            server: server.into(),
        }
    }

    /// A reload's `[notify]`.
    pub(super) fn set_notify(&mut self, notify: Option<Notify>) {
        self.notify = notify.map(Arc::new);
    }

    /// Delivers `d` in its own task; `(id, outcome)` goes to `done`.
    pub(super) fn spawn(
        &self,
        d: Delivery,
        done: mpsc::UnboundedSender<(String, DeliveryOutcome)>,
    ) {
        let p = d.provider.clone();
        match &p.kind {
            ProviderKind::Console => {
                warn!(target: "console_provider", provider = %p.name, "{} (TRIAL ONLY: codes in the log)", d.console);
                let _ = done.send((d.id, DeliveryOutcome::Delivered));
            }
            ProviderKind::Webhook { url } => {
                let (http, url) = (self.http.clone(), url.clone());
                tokio::spawn(async move {
                    let outcome = post(&http, &url, &p, &d).await;
                    let _ = done.send((d.id, outcome));
                });
            }
        }
    }

    /// Emails the administrators about a "not me" reported at the portal,
    /// if `[notify]` is set.
    pub(super) fn report_portal_fraud(&self, r: crate::portal::Reported) {
        self.report_fraud(FraudReport {
            user: r.user,
            result: crate::mfa::ResultCode::FailedFraudReported,
            client: format!("portal report: {}", r.what),
            client_ip: r.address,
            blocked_for: r.blocked_for,
        });
    }

    /// Emails the administrators about a fraud report, if `[notify]` is
    /// set. Failures are logged; the block is already in the store.
    pub(super) fn report_fraud(&self, r: FraudReport) {
        let Some(n) = self.notify.clone() else {
            return;
        };
        let server = self.server.clone();
        tokio::spawn(async move {
            match send_mail(&n, &server, &r).await {
                Ok(()) => info!(user = %r.user, to = ?n.to, "fraud report emailed"),
                Err(e) => {
                    error!(user = %r.user, error = %e, "cannot email the fraud report; the user is blocked all the same")
                }
            }
        });
    }
}

/// POSTs the signed body, retrying with a growing pause. The outcome of
/// the last try decides: a 2xx, the provider's failure, or ours (the
/// request could not leave this host).
async fn post(http: &reqwest::Client, url: &str, p: &Provider, d: &Delivery) -> DeliveryOutcome {
    let mut outcome = DeliveryOutcome::ProviderFailed;
    for attempt in 0..=p.retries {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(250 << attempt.min(4))).await;
        }
        let mut req = http
            .post(url)
            .timeout(p.timeout)
            .header("content-type", "application/json")
            .body(d.body.clone());
        if let Some(sig) = &d.signature {
            req = req.header("x-mfa-signature", sig);
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => return DeliveryOutcome::Delivered,
            Ok(r) => {
                outcome = DeliveryOutcome::ProviderFailed;
                warn!(provider = %p.name, id = %d.id, status = %r.status(), attempt, "provider refused the delivery")
            }
            Err(e) if out_of_descriptors(&e) => {
                outcome = DeliveryOutcome::LocalFailure;
                error!(provider = %p.name, id = %d.id, attempt, "no file descriptor left to reach the provider: this host's fault, not the provider's")
            }
            Err(e) => {
                outcome = DeliveryOutcome::ProviderFailed;
                // Without the URL: webhook URLs often carry a token.
                let e = e.without_url();
                warn!(provider = %p.name, id = %d.id, error = %e, attempt, "provider unreachable")
            }
        }
    }
    outcome
}

/// Whether `e` comes from running out of file descriptors (EMFILE, ENFILE)
/// somewhere down its chain of sources.
fn out_of_descriptors(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            let n = io.raw_os_error();
            if n == Some(nix::errno::Errno::EMFILE as i32)
                || n == Some(nix::errno::Errno::ENFILE as i32)
            {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

/// The fraud report to the administrators of `[notify]`.
async fn send_mail(n: &Notify, server: &str, r: &FraudReport) -> Result<(), MailError> {
    let mut m = lettre::Message::builder()
        .from(smtp::mailbox(&n.from, "notify.from")?)
        .subject(format!(
            "[mfa-proxy] fraud reported by {} ({})",
            r.user, r.result
        ));
    for t in &n.to {
        m = m.to(smtp::mailbox(t, "notify.to")?);
    }
    let body = format!(
        "User {user} reported fraud on a sign-in attempt ({result}).\n\
         Client: {client}\nClient IP: {ip}\nServer: {server}\n\n\
         The user is blocked for {days} days or until an administrator runs:\n  \
         mfa-proxy unblock {user} --reason \"...\"\n",
        user = r.user,
        result = r.result,
        client = r.client,
        ip = r.client_ip.as_deref().unwrap_or("unknown"),
        days = r.blocked_for.as_secs() / 86400,
    );
    let msg = smtp::plain_text(m, body)?;
    Relay::new(&n.smtp, n.tls)?.send(msg).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapped(std::io::Error);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("connect failed")
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn out_of_descriptors_is_found_down_the_chain_and_nothing_else_is() {
        let emfile = Wrapped(std::io::Error::from_raw_os_error(
            nix::errno::Errno::EMFILE as i32,
        ));
        let enfile = std::io::Error::from_raw_os_error(nix::errno::Errno::ENFILE as i32);
        let refused = Wrapped(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(out_of_descriptors(&emfile));
        assert!(out_of_descriptors(&enfile));
        assert!(!out_of_descriptors(&refused), "the provider's failure");
    }
}
