//! The tokio shell around the engine: it owns the sockets and the clock and
//! only moves bytes.
//!
//! One task polls every socket directly (no per-packet channels or tasks):
//! each wake drains the readable sockets into the engine, runs what is due,
//! and flushes what the engine wants sent.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::ReadBuf;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::engine::{
    CallbackStatus, CallbackTaken, DeliveryOutcome, Engine, Family, SocketRef, Stats, Transmit,
};
use crate::radius::MAX_PACKET_LEN;
use crate::radius::dict::Dictionary;
use crate::store::{LoginStore, Store};

/// Socket buffer size asked of the kernel (it may grant less).
const SOCKET_BUFFER: usize = 4 << 20;
/// Datagrams read from one socket before the others get a turn.
const BATCH: usize = 64;

mod deliver;
mod directories;
mod directory;
mod http;
mod kernel_drops;
mod limits;
mod reload;
pub mod smtp;
mod store_threads;

use store_threads::{StoreChannels, by_thread, store_workers};

pub use http::prometheus;
pub use limits::{fd_limit, raise_fd_limit};
pub use reload::ReloadStatus;

/// Requests from outside the loop.
pub enum Command {
    Stats(oneshot::Sender<Stats>),
    /// The counters, the number of pending verifications and the
    /// configuration's generation, for `/metrics`.
    Snapshot(oneshot::Sender<(Stats, usize, ReloadStatus)>),
    /// A configuration that loaded and validated (SIGHUP): applied between
    /// two packets. The status after it goes to `reply`, if given.
    Reload {
        config: Box<Config>,
        dictionary: Arc<Dictionary>,
        reply: Option<oneshot::Sender<ReloadStatus>>,
    },
    /// A SIGHUP whose file was refused (and logged): counted as a failed
    /// reload; the configuration in force stays.
    ReloadRefused,
    /// A provider's callback, for the engine to check and apply.
    Callback {
        id: String,
        body: Vec<u8>,
        signature: Option<String>,
        reply: oneshot::Sender<CallbackStatus>,
    },
}

/// Sockets bound and an engine ready to run.
#[derive(Debug)]
pub struct Bound {
    engine: Engine,
    listeners: Vec<std::net::UdpSocket>,
    upstream: Vec<std::net::UdpSocket>,
    store: Option<Arc<dyn LoginStore>>,
    http: Option<std::net::TcpListener>,
    config: Config,
    dictionary: Arc<Dictionary>,
    /// The whole store, for what administers users while serving: the
    /// directory syncs and the portal (`serve` sets it).
    admin: Option<Arc<dyn Store>>,
}

/// HTTP requests (callbacks, metrics) waiting for the loop, at most; more
/// are answered 503.
const HTTP_QUEUE: usize = 1024;

/// The wall clock, read by the shell only: the engine is given it and
/// stamps each store job with the time it asked.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A NAS-facing socket on `addr`; the error names the address.
fn listener_socket(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    udp_socket(addr).map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}

/// An upstream-facing socket of family `f` (ephemeral port).
fn upstream_socket(f: Family) -> io::Result<std::net::UdpSocket> {
    udp_socket(match f {
        Family::V4 => SocketAddr::from(([0, 0, 0, 0], 0)),
        Family::V6 => SocketAddr::from(([0u16; 8], 0)),
    })
}

fn udp_socket(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    // Best effort: the kernel caps these at net.core.[rw]mem_max, and a
    // burst larger than the receive buffer is dropped unseen (counted in
    // /metrics as mfa_proxy_udp_kernel_drops_total).
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    // Linux reports twice what it grants (the doubling covers its own
    // bookkeeping): less than asked means rmem_max capped it.
    if let Ok(got) = s.recv_buffer_size() {
        if got < SOCKET_BUFFER {
            warn!(
                address = %addr,
                granted = got,
                "the kernel capped this socket's receive buffer below the 4 MiB asked for: \
                 bursts may be dropped; raise it with sysctl -w net.core.rmem_max=4194304"
            );
        }
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

impl Bound {
    /// Binds every listener and upstream socket the configuration needs.
    /// With the second factor enabled, `store` is required.
    pub fn bind(
        config: &Config,
        dictionary: Arc<Dictionary>,
        store: Option<Arc<dyn LoginStore>>,
    ) -> io::Result<Bound> {
        if config.mfa.enabled && store.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the second factor is enabled but no store was opened",
            ));
        }
        let mut seed = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut seed);
        let mut engine = Engine::new(config, dictionary.clone(), seed, Instant::now());
        engine.set_shared_store(store.as_ref().is_some_and(|s| s.shared()));
        let listeners = engine
            .listeners()
            .iter()
            .map(|(a, _)| listener_socket(*a))
            .collect::<io::Result<Vec<_>>>()?;
        let upstream = engine
            .upstream_sockets()
            .iter()
            .map(|f| upstream_socket(*f))
            .collect::<io::Result<Vec<_>>>()?;
        let http = config
            .server
            .http_listen
            .map(|a| {
                let l = std::net::TcpListener::bind(a).map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot listen for HTTP on {a}: {e}"))
                })?;
                l.set_nonblocking(true)?;
                Ok::<_, io::Error>(l)
            })
            .transpose()?;
        Ok(Bound {
            engine,
            listeners,
            upstream,
            store,
            http,
            config: config.clone(),
            dictionary,
            admin: None,
        })
    }

    /// Serves what needs the whole store: the `[[directory]]` syncs (at
    /// start, every interval, and as reloads change the sources) and the
    /// `[portal]`.
    pub fn with_admin_store(mut self, store: Arc<dyn Store>) -> Bound {
        self.admin = Some(store);
        self
    }

    /// The address of the HTTP listener, if there is one.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The addresses the listeners are bound to (useful with port 0).
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }

    /// Runs until `shutdown` completes, then returns the final counters.
    /// Must be called within a tokio runtime.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()>,
        mut commands: Option<mpsc::UnboundedReceiver<Command>>,
    ) -> io::Result<Stats> {
        let to_tokio = |v: Vec<std::net::UdpSocket>| {
            v.into_iter()
                .map(UdpSocket::from_std)
                .collect::<io::Result<Vec<_>>>()
        };
        let mut engine = self.engine;
        engine.set_wall_clock(Instant::now(), unix_now());
        let (http_tx, mut http_rx) = mpsc::channel(HTTP_QUEUE);
        let udp = kernel_drops::UdpSockets::new(&self.listeners, &self.upstream);
        tokio::spawn(udp.clone().watch());
        let syncs = self
            .admin
            .clone()
            .map(|store| directories::Scheduler::spawn(store, self.config.clone()))
            .transpose()?;
        let portal = self.admin.clone().and_then(|store| {
            let out = deliver::Deliverer::new(self.config.notify.clone(), &self.config.server.name);
            let mail = out.clone();
            let (done, mut outcomes) = mpsc::unbounded_channel();
            tokio::spawn(async move {
                while let Some((id, outcome)) = outcomes.recv().await {
                    info!(verification = %id, ?outcome, "portal test delivery");
                }
            });
            let hooks = crate::portal::Hooks {
                report: Box::new(move |r| mail.report_portal_fraud(r)),
                deliver: Box::new(move |d| out.spawn(d, done.clone())),
            };
            crate::portal::Portal::new(&self.config, store, hooks)
        });
        let mut tls = None;
        if let Some(l) = self.http {
            let server = &self.config.server;
            let fds = limits::fd_limit();
            let total = limits::http_connection_cap(server.http_max_connections, fds);
            if total < server.http_max_connections {
                warn!(
                    fds,
                    http_max_connections = server.http_max_connections,
                    "only {total} HTTP connections fit in half the file descriptors: raise LimitNOFILE"
                );
            }
            let proxies = (self.config.portal.as_ref())
                .map(|p| p.trusted_proxies.clone())
                .unwrap_or_default();
            let gate = http::Gate::new(
                total,
                server.http_max_connections_per_address.min(total),
                proxies,
            );
            let app = http::router(
                http_tx.clone(),
                gate.stats.clone(),
                udp.clone(),
                syncs.as_ref().map(|s| s.status.clone()),
                portal.clone(),
            );
            let listener = tokio::net::TcpListener::from_std(l)?;
            let (tx, rx) = watch::channel(server.http_tls.clone().map(|t| t.0));
            tls = Some(tx);
            tokio::spawn(http::serve(listener, app, rx, gate));
        }
        drop(http_tx);
        let (delivered_tx, delivered_rx) = mpsc::unbounded_channel();
        // Answers another node keeps for this one wake it (PostgreSQL).
        let answers = match &self.store {
            Some(store) => {
                let (tx, rx) = mpsc::unbounded_channel();
                let wake = Box::new(move |id| tx.send(id).is_ok());
                store
                    .subscribe(&self.config.server.name, wake)
                    .map_err(|e| io::Error::other(format!("{e}")))?;
                Some(rx)
            }
            None => None,
        };
        let mut shell = Shell {
            deliverer: deliver::Deliverer::new(
                self.config.notify.clone(),
                &self.config.server.name,
            ),
            delivered_tx,
            delivered_rx,
            engine,
            listeners: to_tokio(self.listeners)?.into_iter().map(Some).collect(),
            upstream: to_tokio(self.upstream)?,
            buf: vec![0u8; MAX_PACKET_LEN + 1].into_boxed_slice(),
            sleep: Box::pin(tokio::time::sleep_until(tokio::time::Instant::now())),
            backlog: VecDeque::new(),
            store: self.store.map(store_workers).transpose()?,
            callbacks: Default::default(),
            answers,
            closing: false,
            config: self.config,
            dictionary: self.dictionary,
            status: ReloadStatus::started(unix_now()),
            tls,
            udp,
            syncs,
            portal,
            directory: directory::Checker::new(),
        };
        let mut shutdown = std::pin::pin!(shutdown);
        std::future::poll_fn(|cx| {
            if shutdown.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
            if let Some(rx) = commands.as_mut() {
                while let Poll::Ready(cmd) = rx.poll_recv(cx) {
                    match cmd {
                        Some(c) => shell.command(c),
                        None => {
                            commands = None;
                            break;
                        }
                    }
                }
            }
            while let Poll::Ready(Some(c)) = http_rx.poll_recv(cx) {
                shell.command(c);
            }
            shell.poll(cx);
            Poll::Pending
        })
        .await;
        shell.wind_down().await;
        let stats = shell.engine.stats();
        info!(%stats, "stopped");
        Ok(stats)
    }
}

impl std::fmt::Debug for Command {
    // A callback body can carry a call PIN: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Stats(_) => f.write_str("Stats"),
            Command::Snapshot(_) => f.write_str("Snapshot"),
            // A configuration holds secrets.
            Command::Reload { .. } => f.write_str("Reload(<configuration>)"),
            Command::ReloadRefused => f.write_str("ReloadRefused"),
            Command::Callback { id, .. } => write!(f, "Callback({id}, <body>)"),
        }
    }
}

/// How long the way out may take: logins waiting for the store finish,
/// and every audit record is committed.
const WIND_DOWN: std::time::Duration = std::time::Duration::from_secs(5);

struct Shell {
    deliverer: deliver::Deliverer,
    delivered_tx: mpsc::UnboundedSender<(String, DeliveryOutcome)>,
    delivered_rx: mpsc::UnboundedReceiver<(String, DeliveryOutcome)>,
    engine: Engine,
    /// By [`SocketRef::Listener`] index; `None` once the engine closed it.
    listeners: Vec<Option<UdpSocket>>,
    upstream: Vec<UdpSocket>,
    buf: Box<[u8]>,
    sleep: Pin<Box<tokio::time::Sleep>>,
    backlog: VecDeque<Transmit>,
    store: Option<StoreChannels>,
    /// Callbacks passed to the store, by ticket, waiting for their status.
    callbacks: std::collections::HashMap<u64, oneshot::Sender<CallbackStatus>>,
    /// Wake-ups from the store: an answer another node kept for this one
    /// (its verification id), or `None` when some may have been missed.
    answers: Option<mpsc::UnboundedReceiver<Option<Vec<u8>>>>,
    /// Stopping: no new requests are read from the NAS sockets.
    closing: bool,
    /// The configuration in force, and its dictionary.
    config: Config,
    dictionary: Arc<Dictionary>,
    status: ReloadStatus,
    /// The HTTP listener's TLS configuration, if it runs.
    tls: Option<watch::Sender<Option<Arc<rustls::ServerConfig>>>>,
    /// The UDP sockets, for the kernel's drop counts.
    udp: kernel_drops::UdpSockets,
    /// The directory syncs, when `serve` runs them.
    syncs: Option<directories::Scheduler>,
    /// The portal, which follows reloads.
    portal: Option<Arc<crate::portal::Portal>>,
    /// Password checks with a directory (`[primary] mode = "ldap"`).
    directory: directory::Checker,
}

impl Shell {
    fn command(&mut self, c: Command) {
        match c {
            Command::Stats(reply) => {
                let _ = reply.send(self.engine.stats());
            }
            Command::Snapshot(reply) => {
                let _ = reply.send((
                    self.engine.stats(),
                    self.engine.pending_verifications(),
                    self.status,
                ));
            }
            Command::Reload {
                config,
                dictionary,
                reply,
            } => {
                self.reload(*config, dictionary);
                if let Some(r) = reply {
                    let _ = r.send(self.status);
                }
            }
            Command::ReloadRefused => self.status.refused(unix_now()),
            Command::Callback {
                id,
                body,
                signature,
                reply,
            } => {
                let taken =
                    self.engine
                        .handle_callback(Instant::now(), &id, &body, signature.as_deref());
                match taken {
                    CallbackTaken::Now(status) => {
                        let _ = reply.send(status);
                    }
                    CallbackTaken::Later(ticket) => {
                        self.callbacks.insert(ticket, reply);
                    }
                }
            }
        }
    }

    /// The way out, bounded by [`WIND_DOWN`]: NAS requests are no longer
    /// read; logins waiting for the store finish and their answers leave
    /// once on record; the logins still pending are recorded
    /// ([`Engine::shutdown`]); and the store threads commit every record
    /// before they end.
    async fn wind_down(&mut self) {
        self.closing = true;
        let deadline = tokio::time::Instant::now() + WIND_DOWN;
        let settled = std::future::poll_fn(|cx| {
            self.poll(cx);
            if self.engine.store_waits() == 0 {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        if tokio::time::timeout_at(deadline, settled).await.is_err() {
            warn!(
                waiting = self.engine.store_waits(),
                "the store did not answer in time while stopping"
            );
        }
        self.engine.shutdown(Instant::now());
        let Some((jobs, mut answers)) = self.store.take() else {
            std::future::poll_fn(|cx| Poll::Ready(self.flush(cx))).await;
            return;
        };
        let last = self.engine.poll_store_jobs();
        if !last.is_empty() {
            info!(records = last.len(), "recording the logins still pending");
        }
        // The queue is bounded: wait for room off the loop, while the
        // answers drain below. Each database thread ends once it has
        // committed what it was sent; the answer channel closes when every
        // store thread has ended.
        let sent = tokio::task::spawn_blocking(move || {
            let parts = by_thread(last, jobs.len()).into_iter().zip(&jobs);
            parts.fold(true, |ok, (part, queue)| {
                ok && (part.is_empty() || queue.send(part).is_ok())
            })
        });
        let closed = async {
            while answers.recv().await.is_some() {}
            if !matches!(sent.await, Ok(true)) {
                warn!("store workers are gone: pending logins not recorded");
            }
        };
        if tokio::time::timeout_at(deadline, closed).await.is_err() {
            warn!("the store did not finish in time while stopping");
        }
        std::future::poll_fn(|cx| Poll::Ready(self.flush(cx))).await;
    }

    /// Hands deliveries and fraud reports to their tasks and applies the
    /// delivery outcomes. Returns whether anything happened.
    fn out_of_band(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        let mut progressed = false;
        while let Some(d) = self.engine.poll_delivery() {
            self.deliverer.spawn(d, self.delivered_tx.clone());
            progressed = true;
        }
        while let Some(r) = self.engine.poll_fraud_report() {
            self.deliverer.report_fraud(r);
        }
        while let Poll::Ready(Some((id, outcome))) = self.delivered_rx.poll_recv(cx) {
            self.engine.handle_delivery(now, &id, outcome);
            progressed = true;
        }
        if let Some(rx) = self.answers.as_mut() {
            while let Poll::Ready(woken) = rx.poll_recv(cx) {
                match woken {
                    Some(Some(id)) => self.engine.answer_kept(now, &id),
                    Some(None) => self.engine.answers_missed(now),
                    None => {
                        self.answers = None;
                        break;
                    }
                }
                progressed = true;
            }
        }
        while let Some((ticket, status)) = self.engine.poll_callback_reply() {
            if let Some(reply) = self.callbacks.remove(&ticket) {
                // The provider may have given up waiting: nothing to tell.
                let _ = reply.send(status);
            }
        }
        progressed
    }

    fn poll(&mut self, cx: &mut Context<'_>) {
        loop {
            let mut progressed = self.flush(cx);
            let now = Instant::now();
            // Re-anchored every turn, so a stepped system clock is followed.
            self.engine.set_wall_clock(now, unix_now());
            for (i, sock) in self.listeners.iter().enumerate() {
                let Some(sock) = sock.as_ref().filter(|_| !self.closing) else {
                    continue;
                };
                progressed |= drain(sock, cx, &mut self.buf, |from, data| {
                    self.engine.handle_nas(now, i as u16, from, data);
                });
            }
            for (i, sock) in self.upstream.iter().enumerate() {
                progressed |= drain(sock, cx, &mut self.buf, |from, data| {
                    self.engine.handle_upstream(now, i as u16, from, data);
                });
            }
            if self.engine.poll_timeout().is_some_and(|t| t <= now) {
                self.engine.handle_timeout(now);
                progressed = true;
            }
            if let Some((jobs, answers)) = self.store.as_mut() {
                let batch = self.engine.poll_store_jobs();
                if !batch.is_empty() {
                    for (part, queue) in by_thread(batch, jobs.len()).into_iter().zip(&*jobs) {
                        if part.is_empty() {
                            continue;
                        }
                        if let Err(e) = queue.try_send(part) {
                            // Full, or the database thread is gone: the
                            // engine answers these jobs as failed, and logs
                            // it.
                            let (std::sync::mpsc::TrySendError::Full(part)
                            | std::sync::mpsc::TrySendError::Disconnected(part)) = e;
                            self.engine.store_refused(now, part);
                            progressed = true;
                        }
                    }
                }
                while let Poll::Ready(Some(batch)) = answers.poll_recv(cx) {
                    for (id, answer) in batch {
                        self.engine.handle_store(now, id, answer);
                    }
                    progressed = true;
                }
            }
            progressed |= self.directory.poll(cx, &mut self.engine, now);
            progressed |= self.out_of_band(cx, now);
            progressed |= self.flush(cx);
            self.close_listeners();
            if !progressed {
                break;
            }
        }
        if let Some(t) = self.engine.poll_timeout() {
            self.sleep.as_mut().reset(tokio::time::Instant::from_std(t));
            if self.sleep.as_mut().poll(cx).is_ready() {
                cx.waker().wake_by_ref();
            }
        }
    }

    /// Sends what is queued. Returns whether anything was sent.
    fn flush(&mut self, cx: &mut Context<'_>) -> bool {
        let mut sent = false;
        while let Some(t) = self
            .backlog
            .pop_front()
            .or_else(|| self.engine.poll_transmit())
        {
            let sock = match t.socket {
                SocketRef::Listener(i) => {
                    self.listeners.get(usize::from(i)).and_then(Option::as_ref)
                }
                SocketRef::Upstream(i) => self.upstream.get(usize::from(i)),
            };
            let Some(sock) = sock else {
                // The engine drops what is bound for a closed listener
                // before it gets here; nothing else names a socket that
                // is not open.
                debug!(to = %t.to, "no socket for a datagram");
                continue;
            };
            match sock.poll_send_to(cx, &t.payload, t.to) {
                Poll::Ready(Ok(_)) => sent = true,
                Poll::Ready(Err(e)) => debug!(to = %t.to, error = %e, "send failed"),
                Poll::Pending => {
                    // Woken when writable; keep the order.
                    self.backlog.push_front(t);
                    break;
                }
            }
        }
        sent
    }
}

/// Reads up to [`BATCH`] datagrams from `sock`. A datagram longer than the
/// RADIUS maximum arrives as 4097 octets, which the codec rejects.
fn drain(
    sock: &UdpSocket,
    cx: &mut Context<'_>,
    buf: &mut [u8],
    mut f: impl FnMut(SocketAddr, &[u8]),
) -> bool {
    let mut any = false;
    for _ in 0..BATCH {
        let mut rb = ReadBuf::new(buf);
        match sock.poll_recv_from(cx, &mut rb) {
            Poll::Ready(Ok(from)) => {
                any = true;
                f(from, rb.filled());
            }
            Poll::Ready(Err(e)) => {
                // ICMP errors surface here on some systems; nothing to read.
                debug!(error = %e, "receive failed");
                any = true;
            }
            Poll::Pending => break,
        }
    }
    any
}

/// A proxy running on its own thread, for tests and embedding.
#[derive(Debug)]
pub struct Running {
    /// Listener addresses, auth first then accounting, as configured.
    pub listen_addrs: Vec<SocketAddr>,
    /// The HTTP listener's address, if configured.
    pub http_addr: Option<SocketAddr>,
    commands: mpsc::UnboundedSender<Command>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<io::Result<Stats>>>,
}

impl Running {
    /// Binds and starts the proxy on a new thread.
    pub fn spawn(
        config: &Config,
        dictionary: Arc<Dictionary>,
        store: Option<Arc<dyn LoginStore>>,
    ) -> io::Result<Running> {
        let bound = Bound::bind(config, dictionary, store)?;
        let listen_addrs = bound.listen_addrs();
        let http_addr = bound.http_addr();
        let (tx, rx) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("mfa-proxy".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(bound.run(
                    async {
                        let _ = stop_rx.await;
                    },
                    Some(rx),
                ))
            })?;
        Ok(Running {
            listen_addrs,
            http_addr,
            commands: tx,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Stats(tx))
            .expect("proxy thread is running");
        rx.blocking_recv().expect("proxy thread answers")
    }

    /// Applies `config` as a SIGHUP would, between two packets; returns
    /// the status after it.
    pub fn reload(&self, config: &Config, dictionary: Arc<Dictionary>) -> ReloadStatus {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Reload {
                config: Box::new(config.clone()),
                dictionary,
                reply: Some(tx),
            })
            .expect("proxy thread is running");
        rx.blocking_recv().expect("proxy thread answers")
    }

    /// Stops the proxy and returns its final counters.
    pub fn stop(mut self) -> io::Result<Stats> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> io::Result<Stats> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("proxy thread panicked"))),
            None => Err(io::Error::other("already stopped")),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.thread.is_some() {
            if let Err(e) = self.shutdown() {
                warn!(error = %e, "proxy thread ended with an error");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callback_command_never_prints_its_body() {
        let (reply, _) = oneshot::channel();
        let c = Command::Callback {
            id: "00ff".into(),
            body: br#"{"result":"approved","pin":"4711"}"#.to_vec(),
            signature: Some("sha256=abcd".into()),
            reply,
        };
        let shown = format!("{c:?}");
        assert!(shown.contains("00ff") && !shown.contains("4711"), "{shown}");
    }
}
