//! Proxying: a NAS request forwarded to an upstream (choice, identifiers,
//! re-hiding, Proxy-State), its retransmissions and failover, the upstream's
//! answer checked and relayed back, and upstream health (timeouts, probes).

use std::cmp::Reverse;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rand::RngCore;
use tracing::{debug, info, warn};

use super::rewrite::{RewriteError, Rewriter, Side};
use super::upstream::{IdPool, Transition};
use super::warn::Topic;
use super::{
    Counter, DEDUP_SWEEP, Engine, Family, NasRequest, Pending, PendingKey, SocketRef, Transmit,
    UpstreamRt, login,
};
use crate::config::{HealthCheck, Selection, WhenAllDown};
use crate::radius::{AUTH_LEN, Authenticator, Code, Packet, PacketBuilder, attr, crypto};

impl Engine {
    // ---- to upstreams --------------------------------------------------------

    /// Picks the upstream for a request among those not yet tried: a live
    /// one, in file order or in turn. When none is live, a dead upstream
    /// without health checks gets one request at a time as a trial (its
    /// answer is how it comes back before `revive_after`); one with
    /// Status-Server probes gets none, the probes bring it back. Otherwise
    /// `None`: the request is answered at once, not after a retry cycle.
    /// Returns the upstream and whether the request is a trial.
    fn choose(&mut self, accounting: bool, tried: u64) -> Option<(usize, bool)> {
        let n = self.upstreams.len();
        if n == 0 {
            return None;
        }
        let start = match self.proxy.selection {
            Selection::Failover => 0,
            Selection::RoundRobin => {
                self.rr_cursor = (self.rr_cursor + 1) % n;
                self.rr_cursor
            }
        };
        let usable = |i: usize, u: &UpstreamRt| {
            tried & (1 << i) == 0 && (!accounting || u.cfg.acct_address.is_some())
        };
        let order = (0..n).map(|k| (start + k) % n);
        if let Some(i) = order
            .clone()
            .find(|&i| usable(i, &self.upstreams[i]) && self.upstreams[i].health.alive)
        {
            return Some((i, false));
        }
        order
            .clone()
            .find(|&i| {
                let u = &self.upstreams[i];
                usable(i, u) && u.cfg.health_check == HealthCheck::None && !u.health.trial_in_flight
            })
            .map(|i| (i, true))
    }

    /// A free (socket, identifier) towards upstream `u` at `dest`, on the
    /// sockets of `dest`'s family in turn.
    fn alloc_id(&mut self, u: usize, dest: SocketAddr) -> Option<(u16, u8)> {
        let list = &self.family_sockets[Family::of(&dest) as usize];
        let n = list.len();
        let cursor = &mut self.upstreams[u].socket_cursor;
        for k in 0..n {
            let at = (*cursor + k) % n;
            let s = list[at];
            let rng = &mut self.rng;
            let pool = self
                .ids
                .entry((s, dest))
                .or_insert_with(|| IdPool::new((rng.next_u32() & 0xff) as u8));
            if let Some(id) = pool.alloc() {
                *cursor = (at + 1) % n;
                return Some((s, id));
            }
        }
        None
    }

    fn free_id(&mut self, key: PendingKey) {
        if let Some(pool) = self.ids.get_mut(&(key.socket, key.dest)) {
            pool.free(key.id);
        }
    }

    /// The place in the list of the upstream with `id`, if a reload has
    /// not removed it.
    fn upstream_at(&self, id: u32) -> Option<usize> {
        self.upstreams.iter().position(|u| u.id == id)
    }

    fn arm(&mut self, now: Instant, key: PendingKey, timeout: std::time::Duration) -> u64 {
        self.next_timer += 1;
        self.timers
            .push(Reverse((now + timeout, self.next_timer, key)));
        self.next_timer
    }

    /// Sends a NAS request to the next upstream, or gives up.
    pub(super) fn forward(&mut self, now: Instant, mut nas: NasRequest) {
        let accounting = nas.request[0] == Code::ACCOUNTING_REQUEST.0;
        let Some((u, trial)) = self.choose(accounting, nas.tried) else {
            return self.give_up(now, nas);
        };
        nas.tried |= 1 << u;
        let up = self.upstreams[u].cfg.clone();
        let dest = if accounting {
            up.acct_address.unwrap_or(up.address)
        } else {
            up.address
        };
        let Some((socket, id)) = self.alloc_id(u, dest) else {
            self.dedup.forget(&nas.dedup);
            return self.drop_nas(
                Counter::DropIdsExhausted,
                nas.from,
                "no free identifier towards the upstream",
            );
        };
        let key = PendingKey { socket, dest, id };
        let mut auth = [0u8; AUTH_LEN];
        if !accounting {
            self.rng.fill_bytes(&mut auth);
        }
        self.proxy_state_seq = self.proxy_state_seq.wrapping_add(1);
        let mut proxy_state = [0u8; 8];
        proxy_state[..4].copy_from_slice(&self.proxy_state_tag);
        proxy_state[4..].copy_from_slice(&self.proxy_state_seq.to_be_bytes());

        let built = {
            let p = Packet::parse(&nas.request).expect("stored requests were validated on arrival");
            let client = &nas.client;
            let mut b = PacketBuilder::with_capacity(p.code(), id, &auth, p.len() + 32);
            let mut rw = Rewriter {
                crypt: &self.crypt,
                from: Side {
                    secret: client.secret.expose(),
                    auth: p.authenticator(),
                },
                to: Side {
                    secret: up.secret.expose(),
                    auth: &auth,
                },
                rng: &mut self.rng,
            };
            let password = nas.password.as_ref();
            let build = || -> Result<Vec<u8>, RewriteError> {
                b.push_message_authenticator()?;
                rw.copy(&p, &mut b, |a: &crate::radius::Attr<'_>| {
                    password.is_none() || a.typ != attr::USER_PASSWORD
                })?;
                if let Some(pw) = password {
                    let hidden = crypto::hide_password(pw.expose(), up.secret.expose(), &auth)
                        .map_err(|_| RewriteError::BadEncrypted {
                            vendor: 0,
                            typ: attr::USER_PASSWORD,
                        })?;
                    b.push(attr::USER_PASSWORD, &hidden)?;
                }
                // CHAP without CHAP-Challenge uses the Request Authenticator
                // as the challenge (RFC 2865 §2.2), which we replace.
                if p.has(attr::CHAP_PASSWORD) && !p.has(attr::CHAP_CHALLENGE) {
                    b.push(attr::CHAP_CHALLENGE, p.authenticator())?;
                }
                b.push(attr::PROXY_STATE, &proxy_state)?;
                Ok(if accounting {
                    b.finish_accounting_request(&up.secret)
                } else {
                    b.finish_request(&up.secret)
                })
            };
            build()
        };
        let payload: Arc<[u8]> = match built {
            Ok(v) => v.into(),
            Err(e) => {
                self.free_id(key);
                self.dedup.forget(&nas.dedup);
                let c = match e {
                    RewriteError::TooLarge => Counter::DropTooLargeToForward,
                    RewriteError::BadEncrypted { .. } => Counter::DropBadUserPassword,
                };
                return self.drop_nas(c, nas.from, "request cannot be forwarded");
            }
        };
        if accounting {
            auth.copy_from_slice(&payload[4..20]);
        }
        if tracing::enabled!(tracing::Level::DEBUG) {
            self.log_forward(&nas, u);
        }
        let timer = self.arm(now, key, up.timeout);
        self.stats.inc(Counter::UpstreamRequests);
        self.upstreams[u].stats.requests += 1;
        if trial {
            self.upstreams[u].health.trial_in_flight = true;
        }
        self.out.push_back(Transmit {
            socket: SocketRef::Upstream(socket),
            to: dest,
            payload: payload.clone(),
        });
        self.pending.insert(
            key,
            Pending {
                nas: Some(nas),
                upstream: self.upstreams[u].id,
                cfg: up,
                dest,
                payload,
                auth,
                proxy_state,
                sends: 1,
                first_sent: now,
                timer,
                trial,
            },
        );
    }

    fn log_forward(&self, nas: &NasRequest, u: usize) {
        let Ok(p) = Packet::parse(&nas.request) else {
            return;
        };
        let names: Vec<String> = p
            .attributes()
            .map(|a| match a.vsa() {
                Some((v, mut s)) => self
                    .dictionary
                    .name_of(v, s.next().map_or(0, |s| u32::from(s.typ))),
                None => self.dictionary.name_of(0, u32::from(a.typ)),
            })
            .collect();
        debug!(
            client = %nas.client.name,
            from = %nas.from,
            upstream = %self.upstreams[u].cfg.name,
            code = %p.code(),
            attributes = %names.join(","),
            "forwarding request"
        );
    }

    /// No upstream is left for this request.
    fn give_up(&mut self, now: Instant, nas: NasRequest) {
        let accounting = nas.request[0] == Code::ACCOUNTING_REQUEST.0;
        if !accounting && self.proxy.when_all_down == WhenAllDown::Reject {
            let p = Packet::parse(&nas.request).expect("stored requests were validated on arrival");
            let reply: Arc<[u8]> = self.reject_reply(&nas.client, &p, None).into();
            self.stats.inc(Counter::RejectAllUpstreamsDown);
            self.stats.inc(Counter::RepliesReject);
            self.dedup.answer(nas.dedup, reply.clone(), now);
            self.warn_no_upstream(now, &nas, "sent Access-Reject");
            self.out.push_back(Transmit {
                socket: SocketRef::Listener(nas.listener),
                to: nas.from,
                payload: reply,
            });
        } else {
            self.dedup.forget(&nas.dedup);
            self.warn_no_upstream(now, &nas, "request dropped");
            self.stats.inc(Counter::DropNoUpstream);
        }
    }

    fn warn_no_upstream(&mut self, now: Instant, nas: &NasRequest, what: &str) {
        if let Some(held) = self.throttle.allow(now, Topic::NoUpstream) {
            let dead = self.upstreams.iter().filter(|u| !u.health.alive).count();
            warn!(
                client = %nas.client.name,
                from = %nas.from,
                dead,
                more = held,
                "no live upstream answered: {what}"
            );
        }
    }

    // ---- from upstreams ------------------------------------------------------

    /// A datagram arrived on upstream-facing socket `socket`.
    pub fn handle_upstream(&mut self, now: Instant, socket: u16, from: SocketAddr, data: &[u8]) {
        let from = SocketAddr::new(from.ip().to_canonical(), from.port());
        // An upstream of the configuration in force; a reply from one a
        // reload removed is still matched below, to a request sent to it.
        let known = self
            .upstreams
            .iter()
            .any(|up| up.cfg.address == from || up.cfg.acct_address == Some(from));
        let p = match Packet::parse(data) {
            Ok(p) => p,
            Err(_) if !known => {
                debug!(%from, "dropped datagram from an address that is no upstream");
                return self.stats.inc(Counter::UpstreamDropUnknownSource);
            }
            Err(e) => {
                debug!(%from, error = %e, "dropped malformed upstream reply");
                return self.stats.inc(Counter::UpstreamDropMalformed);
            }
        };
        let key = PendingKey {
            socket,
            dest: from,
            id: p.identifier(),
        };
        let Some(pending) = self.pending.get(&key) else {
            if !known {
                debug!(%from, "dropped datagram from an address that is no upstream");
                return self.stats.inc(Counter::UpstreamDropUnknownSource);
            }
            debug!(%from, id = p.identifier(), "dropped reply matching no request (late or duplicate)");
            return self.stats.inc(Counter::UpstreamDropUnmatched);
        };
        // The upstream as the request was sent to it, whatever a reload
        // did since.
        let up = pending.cfg.clone();
        let expected = match &pending.nas {
            None if pending.dest == up.address => {
                matches!(p.code(), Code::ACCESS_ACCEPT | Code::ACCESS_REJECT)
            }
            None => p.code() == Code::ACCOUNTING_RESPONSE,
            Some(n) if n.request[0] == Code::ACCOUNTING_REQUEST.0 => {
                p.code() == Code::ACCOUNTING_RESPONSE
            }
            Some(_) => matches!(
                p.code(),
                Code::ACCESS_ACCEPT | Code::ACCESS_REJECT | Code::ACCESS_CHALLENGE
            ),
        };
        if !expected {
            return self.stats.inc(Counter::UpstreamDropUnexpectedCode);
        }
        if !crypto::verify_packet_authenticator(p.as_bytes(), &pending.auth, up.secret.expose()) {
            if let Some(held) = self
                .throttle
                .allow(now, Topic::UpstreamForged(pending.upstream))
            {
                warn!(upstream = %up.name, more = held, "reply with a bad Response Authenticator: wrong shared secret or forged");
            }
            return self.stats.inc(Counter::UpstreamDropBadAuthenticator);
        }
        // An Accounting-Response to an Accounting-Request is signed over a
        // zero authenticator; every other response over the request's.
        let ma_auth = if p.code() == Code::ACCOUNTING_RESPONSE && pending.nas.is_some() {
            [0; AUTH_LEN]
        } else {
            pending.auth
        };
        match p.message_authenticator_offset() {
            Some(off)
                if !crypto::verify_message_authenticator(
                    p.as_bytes(),
                    off,
                    &ma_auth,
                    &up.secret,
                ) =>
            {
                return self.stats.inc(Counter::UpstreamDropBadMessageAuthenticator);
            }
            Some(_) => {}
            None if up.require_message_authenticator && p.code() != Code::ACCOUNTING_RESPONSE => {
                return self.drop_unsigned_reply(now, pending.upstream, &up.name, false);
            }
            None if p.has(attr::EAP_MESSAGE) => {
                return self.drop_unsigned_reply(now, pending.upstream, &up.name, true);
            }
            None => {}
        }
        // Our Proxy-State is the last one (RFC 2865 §5.33).
        let ours = match &pending.nas {
            None => None,
            Some(_) => match p.attributes().filter(|a| a.typ == attr::PROXY_STATE).last() {
                Some(a) if a.value == pending.proxy_state => Some(a.offset),
                _ => {
                    warn!(upstream = %up.name, "reply without our Proxy-State: dropped");
                    return self.stats.inc(Counter::UpstreamDropProxyStateMismatch);
                }
            },
        };

        // The reply is genuine: the request is done.
        let pending = self.pending.remove(&key).expect("looked up above");
        self.free_id(key);
        self.stats.inc(Counter::UpstreamReplies);
        // Health and counters go to the upstream if a reload kept it.
        if let Some(u) = self.upstream_at(pending.upstream) {
            let rt = &mut self.upstreams[u];
            if pending.trial {
                rt.health.trial_in_flight = false;
            }
            if pending.nas.is_none() {
                rt.health.probe_in_flight = false;
            }
            rt.stats.replies += 1;
            if pending.sends == 1 {
                let us = now
                    .saturating_duration_since(pending.first_sent)
                    .as_micros() as u64;
                rt.stats.record_rtt(us);
            }
            self.health_success(u);
        }
        let Some(nas) = pending.nas else {
            return;
        };
        self.relay_reply(now, &up, &p, &pending.auth, ours, nas);
    }

    /// An upstream answered without Message-Authenticator. Left silent, the
    /// request times out and the upstream is marked dead, which hides the
    /// cause: say which upstream and what to change.
    fn drop_unsigned_reply(&mut self, now: Instant, upstream: u32, name: &str, eap: bool) {
        self.stats
            .inc(Counter::UpstreamDropMissingMessageAuthenticator);
        let Some(held) = self.throttle.allow(now, Topic::UpstreamUnsigned(upstream)) else {
            return;
        };
        if eap {
            warn!(upstream = %name, more = held, "dropped an EAP reply without Message-Authenticator (RFC 3579 requires one): the upstream is misconfigured or the reply forged");
        } else {
            warn!(
                upstream = %name,
                more = held,
                "dropped a reply without Message-Authenticator: make the server sign its replies, \
                 or set require_message_authenticator = false in this [[upstream]] \
                 (FreeRADIUS 3.2 does not sign PAP and MS-CHAP answers)"
            );
        }
    }

    fn relay_reply(
        &mut self,
        now: Instant,
        up: &Arc<crate::config::Upstream>,
        p: &Packet<'_>,
        upstream_auth: &Authenticator,
        ours: Option<usize>,
        nas: NasRequest,
    ) {
        let req = Packet::parse(&nas.request).expect("stored requests were validated on arrival");
        if self.logins.enabled()
            && p.code() == Code::ACCESS_ACCEPT
            && req.code() == Code::ACCESS_REQUEST
        {
            return self.start_login(now, up.clone(), p, upstream_auth, nas);
        }
        let client = nas.client.clone();
        let mut b =
            PacketBuilder::with_capacity(p.code(), req.identifier(), &[0; AUTH_LEN], p.len() + 18);
        let mut rw = Rewriter {
            crypt: &self.crypt,
            from: Side {
                secret: up.secret.expose(),
                auth: upstream_auth,
            },
            to: Side {
                secret: client.secret.expose(),
                auth: req.authenticator(),
            },
            rng: &mut self.rng,
        };
        let built = (|| -> Result<Vec<u8>, RewriteError> {
            b.push_message_authenticator()?;
            rw.copy(p, &mut b, |a: &crate::radius::Attr<'_>| {
                Some(a.offset) != ours
            })?;
            Ok(if p.code() == Code::ACCOUNTING_RESPONSE {
                b.finish_accounting_response(&client.secret, req.authenticator())
            } else {
                b.finish_response(&client.secret, req.authenticator())
            })
        })();
        let reply: Arc<[u8]> = match built {
            Ok(v) => v.into(),
            Err(e) => {
                // Fail closed: the NAS hears nothing and may retry.
                self.dedup.forget(&nas.dedup);
                let c = match e {
                    RewriteError::TooLarge => Counter::UpstreamDropReplyTooLarge,
                    RewriteError::BadEncrypted { .. } => Counter::UpstreamDropBadEncryptedAttribute,
                };
                warn!(upstream = %up.name, reason = c.name(), "upstream reply cannot be relayed");
                return self.stats.inc(c);
            }
        };
        self.stats.inc(match p.code() {
            Code::ACCESS_ACCEPT => Counter::RepliesAccept,
            Code::ACCESS_REJECT => Counter::RepliesReject,
            Code::ACCESS_CHALLENGE => Counter::RepliesChallenge,
            _ => Counter::RepliesAccounting,
        });
        debug!(
            client = %client.name,
            from = %nas.from,
            upstream = %up.name,
            code = %p.code(),
            "relayed reply"
        );
        if self.logins.enabled()
            && p.code() == Code::ACCESS_REJECT
            && req.code() == Code::ACCESS_REQUEST
        {
            // The first factor failed: no second factor runs, but the login
            // is recorded like every other.
            let user = login::user_name(&req).unwrap_or_default();
            let mode = if req.has(attr::EAP_MESSAGE) {
                "eap"
            } else {
                "password"
            };
            let why = format!("rejected by upstream {}", up.name);
            let (ip, result) = (
                login::client_ip(&req),
                crate::mfa::ResultCode::FailedPrimaryAuth,
            );
            let audit = self.record(now, &user, &nas.client, ip, result, false, mode, Some(&why));
            // The upstream's reject goes out as it came, once recorded.
            let to = login::Answering {
                listener: nas.listener,
                from: nas.from,
                dedup: nas.dedup,
                client: nas.client,
                request: nas.request,
                user,
            };
            return self.hold_answer(now, audit, to, reply.to_vec(), login::Final::Relayed);
        }
        self.dedup.answer(nas.dedup, reply.clone(), now);
        self.out.push_back(Transmit {
            socket: SocketRef::Listener(nas.listener),
            to: nas.from,
            payload: reply,
        });
    }

    fn health_success(&mut self, u: usize) {
        let alive_after = self.proxy.alive_after;
        if self.upstreams[u].health.success(alive_after) == Transition::Revived {
            info!(upstream = %self.upstreams[u].cfg.name, "upstream is alive again");
        }
    }

    fn health_failure(&mut self, now: Instant, u: usize) {
        let dead_after = self.proxy.dead_after;
        if self.upstreams[u].health.failure(now, dead_after) == Transition::Died {
            warn!(upstream = %self.upstreams[u].cfg.name, "upstream marked dead after {dead_after} consecutive timeouts");
        }
    }

    // ---- time ----------------------------------------------------------------

    /// Runs whatever is due at `now`: retransmissions, failovers, probes and
    /// cache expiry.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&Reverse((at, timer, key))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            match self.pending.get(&key) {
                Some(p) if p.timer == timer => self.expire_pending(now, key),
                _ => {}
            }
        }
        self.login_timeouts(now);
        if now >= self.next_sweep {
            self.close_drained();
            self.dedup.expire(now);
            self.next_sweep = now + DEDUP_SWEEP;
        }
        for u in 0..self.upstreams.len() {
            match self.upstreams[u].cfg.health_check {
                HealthCheck::StatusServer => {
                    let h = &self.upstreams[u].health;
                    if !h.probe_in_flight && now >= h.next_probe {
                        self.probe(now, u);
                    }
                }
                HealthCheck::None => {
                    if self.upstreams[u]
                        .health
                        .revive_if_due(now, self.proxy.revive_after)
                        == Transition::Revived
                    {
                        info!(upstream = %self.upstreams[u].cfg.name, "retrying dead upstream after revive_after");
                    }
                }
            }
        }
    }

    fn expire_pending(&mut self, now: Instant, key: PendingKey) {
        let pending = self.pending.get_mut(&key).expect("caller checked");
        let (timeout, retries) = (pending.cfg.timeout, pending.cfg.retries);
        let is_probe = pending.nas.is_none();
        if !is_probe && pending.sends <= retries {
            // Same identifier, same bytes: a retransmission, not a new request.
            pending.sends += 1;
            let (dest, payload) = (pending.dest, pending.payload.clone());
            let timer = self.arm(now, key, timeout);
            self.pending.get_mut(&key).expect("present").timer = timer;
            self.stats.inc(Counter::UpstreamRetransmits);
            self.out.push_back(Transmit {
                socket: SocketRef::Upstream(key.socket),
                to: dest,
                payload,
            });
            return;
        }
        let pending = self.pending.remove(&key).expect("present");
        self.free_id(key);
        self.stats.inc(Counter::UpstreamTimeouts);
        if let Some(u) = self.upstream_at(pending.upstream) {
            let rt = &mut self.upstreams[u];
            if pending.trial {
                rt.health.trial_in_flight = false;
            }
            if pending.nas.is_none() {
                rt.health.probe_in_flight = false;
            }
            rt.stats.timeouts += 1;
            self.health_failure(now, u);
        }
        match pending.nas {
            None => {}
            Some(nas) => {
                debug!(upstream = %pending.cfg.name, "no answer after {} tries: failing over", pending.sends);
                self.stats.inc(Counter::UpstreamFailovers);
                self.forward(now, nas);
            }
        }
    }

    fn probe(&mut self, now: Instant, u: usize) {
        let interval = self.proxy.check_interval;
        self.upstreams[u].health.next_probe = now + interval;
        let cfg = self.upstreams[u].cfg.clone();
        let dest = cfg.address;
        let Some((socket, id)) = self.alloc_id(u, dest) else {
            return;
        };
        let key = PendingKey { socket, dest, id };
        let mut auth = [0u8; AUTH_LEN];
        self.rng.fill_bytes(&mut auth);
        let mut b = PacketBuilder::new(Code::STATUS_SERVER, id, &auth);
        let _ = b.push_message_authenticator();
        let payload: Arc<[u8]> = b.finish_request(&cfg.secret).into();
        let timer = self.arm(now, key, cfg.timeout);
        self.upstreams[u].health.probe_in_flight = true;
        self.stats.inc(Counter::UpstreamProbes);
        self.out.push_back(Transmit {
            socket: SocketRef::Upstream(socket),
            to: dest,
            payload: payload.clone(),
        });
        self.pending.insert(
            key,
            Pending {
                nas: None,
                upstream: self.upstreams[u].id,
                cfg,
                dest,
                payload,
                auth,
                proxy_state: [0; 8],
                sends: 1,
                first_sent: now,
                timer,
                trial: false,
            },
        );
    }
}
