//! The HTTP listener: provider callbacks, `/healthz`, `/metrics`.
//!
//! Handlers hold no state of their own: each turns its request into a
//! [`Command`] for the loop that owns the engine and waits for the answer,
//! so callbacks are checked (signature, single use, expiry) by the engine.

use std::fmt::Write as _;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio::sync::{mpsc, oneshot};

use super::Command;
use crate::engine::{CallbackStatus, RTT_BUCKETS_US, Stats};
use crate::mfa::ResultCode;

/// Callback bodies are small JSON objects.
const MAX_BODY: usize = 8 * 1024;
/// How long a handler waits for the loop.
const LOOP_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
struct App {
    commands: mpsc::UnboundedSender<Command>,
    upstream_names: std::sync::Arc<[String]>,
}

/// The router, sending its work to the loop through `commands`.
pub(super) fn router(
    commands: mpsc::UnboundedSender<Command>,
    upstream_names: Vec<String>,
) -> Router {
    Router::new()
        .route("/v1/verifications/{id}", post(callback))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(App {
            commands,
            upstream_names: upstream_names.into(),
        })
}

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` over TLS: each connection is handshaken in its own task,
/// then served by hyper (HTTP/1.1). A failed handshake ends only its
/// connection.
pub(super) async fn serve_tls(
    listener: tokio::net::TcpListener,
    app: Router,
    tls: std::sync::Arc<rustls::ServerConfig>,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto;
    use hyper_util::service::TowerToHyperService;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors and the like: pause, do not spin.
                tracing::warn!(error = %e, "HTTPS accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let service = TowerToHyperService::new(app);
            if let Err(e) = auto::Builder::new(TokioExecutor::new())
                .http1_only()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "HTTPS connection ended");
            }
        });
    }
}

async fn ask<T>(app: &App, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
    let (tx, rx) = oneshot::channel();
    app.commands.send(make(tx)).ok()?;
    tokio::time::timeout(LOOP_TIMEOUT, rx).await.ok()?.ok()
}

async fn callback(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let signature = headers
        .get("x-mfa-signature")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let status = ask(&app, |reply| Command::Callback {
        id,
        body: body.to_vec(),
        signature,
        reply,
    })
    .await;
    match status {
        Some(CallbackStatus::Accepted) => (StatusCode::OK, "accepted\n"),
        Some(CallbackStatus::Malformed) => (
            StatusCode::BAD_REQUEST,
            "expected {\"result\": \"approved\"|\"denied\"|\"fraud\"|\"no_response\"|\"hung_up\"|\"voicemail\"|\"unreachable\"|\"failed\"}\n",
        ),
        Some(CallbackStatus::BadSignature) => (
            StatusCode::UNAUTHORIZED,
            "missing or wrong X-MFA-Signature\n",
        ),
        Some(CallbackStatus::Unknown) => (
            StatusCode::NOT_FOUND,
            "no such verification pending (unknown, answered or expired)\n",
        ),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the proxy is not answering\n",
        ),
    }
}

async fn healthz(State(app): State<App>) -> impl IntoResponse {
    // Healthy when the loop that owns the sockets answers.
    match ask(&app, Command::Stats).await {
        Some(_) => (StatusCode::OK, "ok\n"),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the proxy loop is not answering\n",
        ),
    }
}

async fn metrics(State(app): State<App>) -> impl IntoResponse {
    match ask(&app, Command::Snapshot).await {
        Some((stats, pending)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            prometheus(&stats, pending, &app.upstream_names),
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the proxy loop is not answering\n",
        )
            .into_response(),
    }
}

/// The Prometheus text exposition of `stats`.
pub fn prometheus(stats: &Stats, pending: usize, upstreams: &[String]) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# HELP mfa_proxy_logins_total Logins by result code and decision."
    );
    let _ = writeln!(o, "# TYPE mfa_proxy_logins_total counter");
    for &r in ResultCode::ALL {
        let [rejected, accepted] = stats.logins(r);
        for (decision, n) in [("reject", rejected), ("accept", accepted)] {
            if n > 0 {
                let _ = writeln!(
                    o,
                    "mfa_proxy_logins_total{{result=\"{r}\",decision=\"{decision}\"}} {n}"
                );
            }
        }
    }
    let _ = writeln!(
        o,
        "# HELP mfa_proxy_pending_verifications Out-of-band verifications in progress."
    );
    let _ = writeln!(o, "# TYPE mfa_proxy_pending_verifications gauge");
    let _ = writeln!(o, "mfa_proxy_pending_verifications {pending}");
    let _ = writeln!(
        o,
        "# HELP mfa_proxy_drops_total Requests and replies dropped, by reason."
    );
    let _ = writeln!(o, "# TYPE mfa_proxy_drops_total counter");
    for (c, n) in stats.iter() {
        let name = c.name();
        if let Some(reason) = name.strip_prefix("drop_") {
            let _ = writeln!(
                o,
                "mfa_proxy_drops_total{{side=\"nas\",reason=\"{reason}\"}} {n}"
            );
        } else if let Some(reason) = name.strip_prefix("upstream_drop_") {
            let _ = writeln!(
                o,
                "mfa_proxy_drops_total{{side=\"upstream\",reason=\"{reason}\"}} {n}"
            );
        }
    }
    let _ = writeln!(
        o,
        "# HELP mfa_proxy_events_total Everything else the engine counts."
    );
    let _ = writeln!(o, "# TYPE mfa_proxy_events_total counter");
    for (c, n) in stats.iter() {
        let name = c.name();
        if !name.starts_with("drop_") && !name.starts_with("upstream_drop_") {
            let _ = writeln!(o, "mfa_proxy_events_total{{event=\"{name}\"}} {n}");
        }
    }
    let _ = writeln!(
        o,
        "# HELP mfa_proxy_upstream_rtt_seconds Round trip to each upstream (first tries)."
    );
    let _ = writeln!(o, "# TYPE mfa_proxy_upstream_rtt_seconds histogram");
    for (u, name) in stats.upstreams.iter().zip(upstreams) {
        let mut cumulative = 0;
        for (b, n) in RTT_BUCKETS_US.iter().zip(u.rtt_buckets) {
            cumulative += n;
            let _ = writeln!(
                o,
                "mfa_proxy_upstream_rtt_seconds_bucket{{upstream=\"{name}\",le=\"{}\"}} {cumulative}",
                *b as f64 / 1e6
            );
        }
        let _ = writeln!(
            o,
            "mfa_proxy_upstream_rtt_seconds_bucket{{upstream=\"{name}\",le=\"+Inf\"}} {}",
            u.rtt_count
        );
        let _ = writeln!(
            o,
            "mfa_proxy_upstream_rtt_seconds_sum{{upstream=\"{name}\"}} {}",
            u.rtt_sum_us as f64 / 1e6
        );
        let _ = writeln!(
            o,
            "mfa_proxy_upstream_rtt_seconds_count{{upstream=\"{name}\"}} {}",
            u.rtt_count
        );
        let _ = writeln!(
            o,
            "mfa_proxy_upstream_up{{upstream=\"{name}\"}} {}",
            u8::from(u.alive)
        );
    }
    o
}
