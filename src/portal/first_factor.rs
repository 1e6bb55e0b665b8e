//! The portal's first factor, checked the way logins check it (`[primary]`):
//! by the upstream RADIUS servers (an Access-Request of our own, PAP), or
//! against the store's password hash. Blocking: the handlers run it off
//! the runtime's thread.
//!
//! Every failure is the same to the visitor ("wrong user name or
//! password"); the reason goes to the audit trail.

use std::net::UdpSocket;
use std::time::Instant;

use crate::config::{Config, Primary, Upstream};
use crate::radius::{Code, Packet, PacketBuilder, attr, crypto};
use crate::store::Store;

/// Why the first factor failed (for the audit trail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The password (or the user) is wrong.
    Wrong(String),
    /// Nobody could say: the upstreams did not answer, or the store failed.
    Unavailable(String),
}

/// Checks `password` for `user` as `[primary]` says.
pub fn check(
    config: &Config,
    store: &dyn Store,
    user: &str,
    password: &[u8],
) -> Result<(), Refused> {
    if password.is_empty() {
        return Err(Refused::Wrong("empty password".into()));
    }
    match config.primary {
        Primary::Local => {
            let hash = crate::store::in_tx(store.as_login(), |tx| tx.password_hash(user))
                .map_err(|e| Refused::Unavailable(format!("store: {e}")))?;
            if crate::store::login::check_password(hash.as_deref(), password) {
                Ok(())
            } else {
                Err(Refused::Wrong(
                    "wrong password or unknown user (local)".into(),
                ))
            }
        }
        Primary::Upstream => upstream(&config.upstreams, user, password),
        // Asked by [`Ldap::check`] on the runtime, never here.
        Primary::Ldap { .. } => Err(Refused::Unavailable(
            "the directory is asked asynchronously".into(),
        )),
    }
}

/// `[primary] mode = "ldap"`: the password checked by a bind to the
/// directory as the user, as logins check it (its connections are the
/// portal's own).
pub struct Ldap {
    dir: crate::config::Directory,
    pool: crate::directory::auth::Pool,
}

impl std::fmt::Debug for Ldap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ldap")
            .field("directory", &self.dir.name)
            .finish_non_exhaustive()
    }
}

impl Ldap {
    /// The directory `[primary]` names, if it checks passwords.
    pub fn of(config: &Config) -> Option<Ldap> {
        let Primary::Ldap { directory } = &config.primary else {
            return None;
        };
        let dir = config
            .directories
            .iter()
            .find(|d| &d.name == directory)?
            .clone();
        Some(Ldap {
            pool: crate::directory::auth::Pool::new(&dir),
            dir,
        })
    }

    /// Whether this one's connections serve `other`'s directory as well.
    pub fn serves(&self, other: &Ldap) -> bool {
        self.dir.name == other.dir.name
            && self.pool.serves(&other.dir)
            && self.dir.base_dn == other.dir.base_dn
            && self.dir.filter == other.dir.filter
            && self.dir.name_attribute == other.dir.name_attribute
    }

    pub async fn check(&self, user: &str, password: &[u8]) -> Result<(), Refused> {
        use crate::directory::ldap::BindAnswer;
        let secret = crate::secret::Secret::new(password.to_vec());
        match self.pool.check(&self.dir, user, &secret).await {
            Ok(BindAnswer::Bound) => Ok(()),
            Ok(BindAnswer::Refused(why)) => Err(Refused::Wrong(format!(
                "directory {}: {why}",
                self.dir.name
            ))),
            Err(e) => Err(Refused::Unavailable(e.to_string())),
        }
    }
}

/// An Access-Request to each upstream in turn until one answers.
fn upstream(upstreams: &[Upstream], user: &str, password: &[u8]) -> Result<(), Refused> {
    let mut last = "no [[upstream]] is configured".to_owned();
    for u in upstreams {
        match ask(u, user, password) {
            Ok(Code::ACCESS_ACCEPT) => return Ok(()),
            Ok(Code::ACCESS_REJECT) => {
                return Err(Refused::Wrong(format!("rejected by upstream {}", u.name)));
            }
            Ok(other) => {
                return Err(Refused::Wrong(format!(
                    "upstream {} answered {other:?}, which the portal cannot follow",
                    u.name
                )));
            }
            Err(e) => last = format!("upstream {}: {e}", u.name),
        }
    }
    Err(Refused::Unavailable(last))
}

/// One Access-Request to `u` (retried `retries` times), the code of its
/// verified answer.
fn ask(u: &Upstream, user: &str, password: &[u8]) -> Result<Code, String> {
    let bind = if u.address.is_ipv6() {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    };
    let sock = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    sock.connect(u.address).map_err(|e| e.to_string())?;
    let auth: [u8; 16] = rand::random();
    let id: u8 = rand::random();
    let secret = u.secret.expose();
    let hidden = crypto::hide_password(password, secret, &auth).map_err(|e| e.to_string())?;
    let mut b = PacketBuilder::new(Code::ACCESS_REQUEST, id, &auth);
    let built = b
        .push_message_authenticator()
        .and_then(|b| b.push(attr::USER_NAME, user.as_bytes()))
        .and_then(|b| b.push(attr::USER_PASSWORD, &hidden))
        .and_then(|b| b.push(attr::NAS_IDENTIFIER, b"mfa-proxy-portal"));
    built.map_err(|e| e.to_string())?;
    let request = b.finish_request(&u.secret);
    let mut buf = [0u8; 4096];
    for _ in 0..=u.retries {
        sock.send(&request).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + u.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            sock.set_read_timeout(Some(left))
                .map_err(|e| e.to_string())?;
            let n = match sock.recv(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                Err(e) => return Err(e.to_string()),
            };
            let reply = &buf[..n];
            let Ok(p) = Packet::parse(reply) else {
                continue;
            };
            if p.identifier() != id || !crypto::verify_packet_authenticator(reply, &auth, secret) {
                continue;
            }
            // As the proxy's own forwarding checks (Blast-RADIUS): a wrong
            // Message-Authenticator is a forgery, a missing one is refused
            // where the upstream is required to sign.
            match p.message_authenticator_offset() {
                Some(off)
                    if !crypto::verify_message_authenticator(reply, off, &auth, &u.secret) =>
                {
                    continue;
                }
                None if u.require_message_authenticator => {
                    return Err(
                        "the reply has no Message-Authenticator, which this upstream must send"
                            .into(),
                    );
                }
                _ => {}
            }
            return Ok(p.code());
        }
    }
    Err(format!(
        "no answer within {:?} × {}",
        u.timeout,
        u32::from(u.retries) + 1
    ))
}
