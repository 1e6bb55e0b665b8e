//! The HTTP listener: provider callbacks, `/healthz`, `/metrics`, and the
//! limits that keep it from being exhausted.
//!
//! Handlers hold no state of their own: each turns its request into a
//! [`Command`] for the loop that owns the engine and waits for the answer,
//! so callbacks are checked (signature, single use, expiry) by the engine.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio::sync::{mpsc, oneshot, watch};

use super::{Command, ReloadStatus};
use crate::engine::{CallbackStatus, RTT_BUCKETS_US, Stats};
use crate::mfa::ResultCode;

/// Callback bodies are small JSON objects.
const MAX_BODY: usize = 8 * 1024;
/// How long a handler waits for the loop.
const LOOP_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
struct App {
    commands: mpsc::Sender<Command>,
    http: Arc<HttpStats>,
    udp: Arc<super::kernel_drops::UdpSockets>,
    syncs: Option<Arc<super::directories::SyncStatus>>,
    portal: Option<Arc<crate::portal::Portal>>,
}

/// The router, sending its work to the loop through `commands`.
pub(super) fn router(
    commands: mpsc::Sender<Command>,
    http: Arc<HttpStats>,
    udp: super::kernel_drops::UdpSockets,
    syncs: Option<Arc<super::directories::SyncStatus>>,
    portal: Option<Arc<crate::portal::Portal>>,
) -> Router {
    let mut r = Router::new()
        .route("/v1/verifications/{id}", post(callback))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(App {
            commands,
            http,
            udp: Arc::new(udp),
            syncs,
            portal: portal.clone(),
        });
    if let Some(p) = portal {
        r = r.merge(crate::portal::router(p));
    }
    r.layer(DefaultBodyLimit::max(MAX_BODY))
}

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client has to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may stay open in all, handshake, request and
/// answer included. Connections carry one request each (no keep-alive), so
/// an idle one is closed by [`HEADER_TIMEOUT`] and a slow one by this.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);

/// Counts of the listener's connections, for `/metrics`.
#[derive(Debug, Default)]
pub(super) struct HttpStats {
    accepted: AtomicU64,
    refused_total: AtomicU64,
    refused_address: AtomicU64,
    timed_out: AtomicU64,
    accept_errors: AtomicU64,
    open: AtomicUsize,
}

impl HttpStats {
    fn render(&self, o: &mut String) {
        let _ = writeln!(
            o,
            "# HELP mfa_proxy_http_connections_total Connections to the HTTP listener, by outcome."
        );
        let _ = writeln!(o, "# TYPE mfa_proxy_http_connections_total counter");
        for (outcome, n) in [
            ("accepted", &self.accepted),
            ("refused_total_cap", &self.refused_total),
            ("refused_address_cap", &self.refused_address),
            ("timed_out", &self.timed_out),
            ("accept_error", &self.accept_errors),
        ] {
            let _ = writeln!(
                o,
                "mfa_proxy_http_connections_total{{outcome=\"{outcome}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            o,
            "# HELP mfa_proxy_http_connections_open Connections to the HTTP listener open now."
        );
        let _ = writeln!(o, "# TYPE mfa_proxy_http_connections_open gauge");
        let _ = writeln!(
            o,
            "mfa_proxy_http_connections_open {}",
            self.open.load(Ordering::Relaxed)
        );
    }
}

/// Admits connections up to a total and a per-address cap (an IPv6 /64
/// counts as one address); a connection over either is closed at once. The
/// total is at most half the descriptors, so a flood never takes those the
/// proxy's own sockets and outgoing webhooks need; the per-address cap
/// keeps a flood from one source from taking every place, but a flood from
/// more sources than `total / per_address` can still fill the listener
/// until its idle connections time out (10 s). The portal's trusted
/// reverse proxies count toward the total only: every user behind one
/// shares its address.
#[derive(Debug)]
pub(super) struct Gate {
    total: usize,
    per_address: usize,
    /// `[portal] trusted_proxies`: no per-address cap.
    proxies: Vec<ipnet::IpNet>,
    by_address: Mutex<HashMap<IpAddr, usize>>,
    pub(super) stats: Arc<HttpStats>,
}

/// The address a connection counts against: IPv4 as it is, IPv6 by its
/// /64 (one host is usually given a whole /64).
fn source(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// An admitted connection; dropping it frees its place.
#[derive(Debug)]
struct Ticket {
    gate: Arc<Gate>,
    ip: IpAddr,
}

impl Gate {
    pub(super) fn new(total: usize, per_address: usize, proxies: Vec<ipnet::IpNet>) -> Arc<Gate> {
        Arc::new(Gate {
            total,
            per_address,
            proxies,
            by_address: Mutex::new(HashMap::new()),
            stats: Arc::default(),
        })
    }

    fn admit(self: &Arc<Gate>, ip: IpAddr) -> Option<Ticket> {
        let ip = source(ip);
        let mut map = self.by_address.lock().unwrap_or_else(|e| e.into_inner());
        if self.stats.open.load(Ordering::Relaxed) >= self.total {
            self.stats.refused_total.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let proxy = self.proxies.iter().any(|p| p.contains(&ip));
        let n = map.entry(ip).or_insert(0);
        if *n >= self.per_address && !proxy {
            self.stats.refused_address.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *n += 1;
        self.stats.open.fetch_add(1, Ordering::Relaxed);
        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
        Some(Ticket {
            gate: self.clone(),
            ip,
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut map = self
            .gate
            .by_address
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
        self.gate.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves `app` on `listener`, over TLS when `tls` holds a configuration
/// (a reload replaces it: a renewed certificate is taken by the next
/// connection). Each admitted connection is served in its own task, one
/// request, within [`CONNECTION_LIFETIME`]; a failed handshake or a slow
/// client ends only its connection.
pub(super) async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    tls: watch::Receiver<Option<Arc<rustls::ServerConfig>>>,
    gate: Arc<Gate>,
) {
    let mut warned: Option<std::time::Instant> = None;
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors and the like: pause, do not spin, and
                // say so at most every ten seconds.
                gate.stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                if warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                    tracing::warn!(error = %e, "HTTP accept failed");
                    warned = Some(std::time::Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(ticket) = gate.admit(peer.ip()) else {
            drop(tcp);
            continue;
        };
        let acceptor = tls.borrow().clone().map(tokio_rustls::TlsAcceptor::from);
        let app = app.clone();
        tokio::spawn(async move {
            let stats = ticket.gate.stats.clone();
            let one = async move {
                match acceptor {
                    None => serve_connection(tcp, app, peer).await,
                    Some(a) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, a.accept(tcp)).await {
                        Ok(Ok(s)) => serve_connection(s, app, peer).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    },
                }
            };
            if tokio::time::timeout(CONNECTION_LIFETIME, one)
                .await
                .is_err()
            {
                stats.timed_out.fetch_add(1, Ordering::Relaxed);
            }
            drop(ticket);
        });
    }
}

/// One request on `io` (HTTP/1.1, headers within [`HEADER_TIMEOUT`]).
async fn serve_connection<I>(io: I, app: Router, peer: std::net::SocketAddr)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto;
    use hyper_util::service::TowerToHyperService;
    let mut b = auto::Builder::new(TokioExecutor::new()).http1_only();
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(false);
    // The portal's rate limits and audit records need the address.
    let app = app.layer(axum::Extension(crate::portal::Peer(peer)));
    if let Err(e) = b
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(app))
        .await
    {
        tracing::debug!(%peer, error = %e, "HTTP connection ended");
    }
}

async fn ask<T>(app: &App, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
    let (tx, rx) = oneshot::channel();
    // A full queue means the loop is far behind: 503, not a longer queue.
    app.commands.try_send(make(tx)).ok()?;
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
        Some(CallbackStatus::Unavailable) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the result could not be kept now: try again\n",
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
        Some((stats, pending, reload)) => {
            let mut text = prometheus(&stats, pending, &reload);
            app.http.render(&mut text);
            if let Some(syncs) = &app.syncs {
                syncs.render(&mut text);
            }
            if let Some(portal) = &app.portal {
                portal.render_metrics(&mut text);
            }
            // /proc/net/udp lists every socket of the host: read it off the
            // thread that moves the datagrams.
            let udp = app.udp.clone();
            if let Ok(drops) = tokio::task::spawn_blocking(move || {
                let mut o = String::new();
                udp.render(&mut o);
                o
            })
            .await
            {
                text.push_str(&drops);
            }
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                text,
            )
                .into_response()
        }
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the proxy loop is not answering\n",
        )
            .into_response(),
    }
}

/// The Prometheus text exposition of `stats` and of the configuration in
/// force.
pub fn prometheus(stats: &Stats, pending: usize, reload: &ReloadStatus) -> String {
    let mut o = String::new();
    for (name, kind, help, value) in [
        (
            "mfa_proxy_config_generation",
            "gauge",
            "The configuration in force: 1 at start, one more per reload applied.",
            reload.generation as i64,
        ),
        (
            "mfa_proxy_config_last_reload_timestamp_seconds",
            "gauge",
            "When the configuration was last loaded or a reload last tried (Unix time).",
            reload.last_at,
        ),
        (
            "mfa_proxy_config_last_reload_success",
            "gauge",
            "Whether the last reload was applied in full (1) or refused, or applied without its listeners (0).",
            i64::from(reload.last_success),
        ),
    ] {
        let _ = writeln!(o, "# HELP {name} {help}");
        let _ = writeln!(o, "# TYPE {name} {kind}");
        let _ = writeln!(o, "{name} {value}");
    }
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
    for u in &stats.upstreams {
        let name = &u.name;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_caps_per_source_and_in_total_and_frees_on_drop() {
        let gate = Gate::new(5, 2, vec!["198.51.100.0/24".parse().expect("net")]);
        let a: IpAddr = "2001:db8::1".parse().expect("ip");
        let a2: IpAddr = "2001:db8::ffff:2".parse().expect("ip");
        let proxy: IpAddr = "198.51.100.7".parse().expect("ip");
        let t1 = gate.admit(a).expect("first");
        let _t2 = gate.admit(a2).expect("same /64, second");
        assert!(gate.admit(a).is_none(), "the /64 is one source");
        let _behind: Vec<Ticket> = (0..3)
            .map(|i| gate.admit(proxy).unwrap_or_else(|| panic!("proxy {i}")))
            .collect();
        assert!(
            gate.admit("192.0.2.2".parse().expect("ip")).is_none(),
            "a trusted proxy has no per-address cap, but counts toward the total"
        );
        drop(t1);
        assert!(gate.admit(a).is_some(), "freed");
        let s = &gate.stats;
        assert_eq!(s.refused_address.load(Ordering::Relaxed), 1);
        assert_eq!(s.refused_total.load(Ordering::Relaxed), 1);
    }
}
