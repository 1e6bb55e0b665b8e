//! A first factor from the directory (`[primary] mode = "ldap"`), for
//! sites without NPS: the directory keeps the passwords and applies its
//! own lockout and password rules.
//!
//! A login name is not a DN, so the user's entry is found first: a search
//! as the service account (`bind_dn`) under `base_dn` for
//! `(&FILTER(NAME_ATTRIBUTE=NAME))`, the name escaped. That works for AD
//! and OpenLDAP alike, whatever shape their DNs have, with the attribute
//! the sync already maps. Then a bind as that DN with the password the user
//! typed, whose answer says why it was refused, if it was
//! ([`Refusal`]).
//!
//! Unknown users cost the directory the same work as wrong passwords: when
//! no entry matches, the password is still bound, to a DN that cannot exist
//! (under `base_dn`, named with 128 random bits drawn at start), so both
//! paths are one search and one bind. The service account is never bound
//! with a user's password (in AD wrong ones would lock it), and an empty
//! password is refused before anything is sent.
//!
//! Connections are kept for the next checks, by what they are bound as.
//! The service account's serve searches. The ones a user bound on serve
//! only the next user's bind: a bind replaces whoever was bound, so no
//! user's identity ever carries over into a search. A connection that
//! fails is dropped; one the server closed while it was idle is found out
//! before use or when the operation cannot be sent on it, and the check
//! moves to a new one, so the proxy recovers by itself when a directory
//! that was down comes back.

use std::fmt;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::RngCore;
use zeroize::Zeroizing;

use super::ldap::{self, BindAnswer, Connection, LdapFailure, Refusal};
use crate::config::Directory;
use crate::secret::Secret;

/// What a password check came to, for the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The bind as the user succeeded and nothing in its answer objects.
    Accepted,
    Refused(Refusal),
    /// The directory could not be asked: the login fails closed.
    Failed(Failure),
}

impl Verdict {
    /// The verdict of a check's result; the failure's detail is for the
    /// log, the engine only needs its kind.
    pub fn of(result: &Result<BindAnswer, LdapFailure>) -> Verdict {
        match result {
            Ok(BindAnswer::Bound) => Verdict::Accepted,
            Ok(BindAnswer::Refused(why)) => Verdict::Refused(*why),
            Err(e) => Verdict::Failed(Failure::of(e)),
        }
    }
}

/// Why a password could not be checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// No connection (refused, no route, TLS handshake or certificate
    /// refused), or it broke.
    Unreachable,
    /// The directory did not answer within `timeout`.
    NoAnswer,
    /// The service account's bind (`bind_dn`) was refused.
    ServiceAccountRefused,
    /// The directory refused the search for the user's entry (a wrong
    /// `base_dn` or `filter`).
    SearchRefused,
    /// Too many checks waiting: refused without asking the directory.
    Overloaded,
}

impl Failure {
    pub fn of(e: &LdapFailure) -> Failure {
        use ldap3::LdapError;
        let timed_out = |source: &LdapError| matches!(source, LdapError::Timeout { .. });
        match e {
            LdapFailure::Timeout { .. } => Failure::NoAnswer,
            LdapFailure::Bind { source, .. } | LdapFailure::UserBind { source, .. }
                if timed_out(source) =>
            {
                Failure::NoAnswer
            }
            LdapFailure::Bind { source, .. }
                if matches!(**source, LdapError::LdapResult { .. }) =>
            {
                Failure::ServiceAccountRefused
            }
            LdapFailure::Search { source, .. } if timed_out(source) => Failure::NoAnswer,
            LdapFailure::Search { source, .. }
                if matches!(**source, LdapError::LdapResult { .. }) =>
            {
                Failure::SearchRefused
            }
            _ => Failure::Unreachable,
        }
    }
}

impl fmt::Display for Failure {
    /// As the audit record's reason says it, after the directory's name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Failure::Unreachable => "unreachable",
            Failure::NoAnswer => "no answer in time",
            Failure::ServiceAccountRefused => "the service account's bind (bind_dn) was refused",
            Failure::SearchRefused => "the search for the user's entry was refused",
            Failure::Overloaded => "too many password checks waiting",
        })
    }
}

/// Idle connections kept, of each kind.
const KEEP: usize = 8;
/// A connection idle longer than this is not used again: firewalls and
/// servers (AD's MaxConnIdleTime) drop idle connections, some silently.
const IDLE_FOR: Duration = Duration::from_secs(30);

/// How many LDAP operations the checks made: what the tests compare
/// between a wrong password and an unknown user.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Operations {
    pub connections: u64,
    pub service_binds: u64,
    pub searches: u64,
    pub user_binds: u64,
}

#[derive(Default)]
struct Counts {
    connections: AtomicU64,
    service_binds: AtomicU64,
    searches: AtomicU64,
    user_binds: AtomicU64,
}

struct Idle {
    conn: Connection,
    since: Instant,
}

/// What a kept connection is bound as, and so what it may serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// The service account: searches.
    Searcher,
    /// Some user, or anonymous after a refusal: users' binds only.
    Binder,
}

/// The connections to one directory for password checks, shared by the
/// checks running at once.
pub struct Pool {
    /// What the connections were made with: [`Pool::serves`].
    made_for: Directory,
    /// The hex name of the entry that cannot exist.
    absent: String,
    /// Bound as the service account, for searches.
    searchers: Mutex<Vec<Idle>>,
    /// Bound as some user, or anonymous after a refusal: for users' binds.
    binders: Mutex<Vec<Idle>>,
    counts: Counts,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("directory", &self.made_for.name)
            .field("operations", &self.operations())
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub fn new(dir: &Directory) -> Pool {
        let mut nonce = [0u8; 16];
        rand::rng().fill_bytes(&mut nonce);
        Pool {
            made_for: dir.clone(),
            absent: crate::hex::hex_encode(&nonce),
            searchers: Mutex::new(Vec::new()),
            binders: Mutex::new(Vec::new()),
            counts: Counts::default(),
        }
    }

    /// Whether this pool's connections serve `dir`: the same server, TLS,
    /// CA, service account and timeout (a reload may change any of them).
    pub fn serves(&self, dir: &Directory) -> bool {
        let a = &self.made_for;
        a.url == dir.url
            && a.tls == dir.tls
            && a.ca_file == dir.ca_file
            && a.bind_dn == dir.bind_dn
            && a.bind_password == dir.bind_password
            && a.timeout == dir.timeout
    }

    /// The operations made so far.
    pub fn operations(&self) -> Operations {
        let c = &self.counts;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Operations {
            connections: get(&c.connections),
            service_binds: get(&c.service_binds),
            searches: get(&c.searches),
            user_binds: get(&c.user_binds),
        }
    }

    /// Checks `password` for the user named `user` in `dir` (which this
    /// pool [`serves`](Pool::serves)). Every answer of the directory is a
    /// [`BindAnswer`]; an error is a directory that could not be asked.
    pub async fn check(
        &self,
        dir: &Directory,
        user: &str,
        password: &Secret,
    ) -> Result<BindAnswer, LdapFailure> {
        if password.is_empty() {
            return Ok(BindAnswer::Refused(Refusal::EmptyPassword));
        }
        // ldap3 takes the password as text: octets that are not UTF-8 are
        // replaced, and bound (and refused) like any wrong password.
        let password = Zeroizing::new(String::from_utf8_lossy(password.expose()).into_owned());
        let filter = ldap::name_filter(&dir.filter, &dir.name_attribute, user);
        let dns = self.find(dir, &filter, user).await?;
        let absent = format!("CN=mfa-proxy absent {},{}", self.absent, dir.base_dn);
        let dn = match dns.as_slice() {
            [one] => one.as_str(),
            _ => absent.as_str(),
        };
        let answer = self.bind(dir, dn, &password).await?;
        Ok(match dns.len() {
            1 => answer,
            // Whatever a bind to nobody came to, it is no accept.
            0 => BindAnswer::Refused(Refusal::WrongPasswordOrUnknownUser),
            _ => BindAnswer::Refused(Refusal::AmbiguousName),
        })
    }

    /// At most two DNs of entries matching `filter`: one is the user's.
    async fn find(
        &self,
        dir: &Directory,
        filter: &str,
        user: &str,
    ) -> Result<Vec<String>, LdapFailure> {
        loop {
            let (mut conn, kept) = self.connection(dir, Role::Searcher).await?;
            let result = conn
                .find_dns(&dir.base_dn, filter, 2, (&dir.name_attribute, user))
                .await;
            if let Some(result) = self.settle(Role::Searcher, conn, kept, result) {
                return result;
            }
        }
    }

    /// A bind as `dn`, on a connection that serves users' binds only.
    async fn bind(
        &self,
        dir: &Directory,
        dn: &str,
        password: &str,
    ) -> Result<BindAnswer, LdapFailure> {
        loop {
            let (mut conn, kept) = self.connection(dir, Role::Binder).await?;
            let result = conn.bind_user(dn, password).await;
            if let Some(result) = self.settle(Role::Binder, conn, kept, result) {
                return result;
            }
        }
    }

    fn kept(&self, role: Role) -> &Mutex<Vec<Idle>> {
        match role {
            Role::Searcher => &self.searchers,
            Role::Binder => &self.binders,
        }
    }

    /// A kept connection of `role`, else a new one; and whether it was kept.
    async fn connection(
        &self,
        dir: &Directory,
        role: Role,
    ) -> Result<(Connection, bool), LdapFailure> {
        match take(self.kept(role)) {
            Some(conn) => Ok((conn, true)),
            None => Ok((self.connect(dir, role).await?, false)),
        }
    }

    /// The operation's `result` on `conn`, which is kept if it succeeded;
    /// `None` when a kept connection turned out closed by the server: then
    /// nothing was sent, and the operation is tried on the next connection
    /// without reaching the server twice (no wrong password counted twice
    /// toward a lockout).
    fn settle<T>(
        &self,
        role: Role,
        conn: Connection,
        kept: bool,
        result: Result<T, LdapFailure>,
    ) -> Option<Result<T, LdapFailure>> {
        if let Err(e) = &result {
            if kept && e.connection_was_closed() {
                return None;
            }
        }
        let count = match role {
            Role::Searcher => &self.counts.searches,
            Role::Binder => &self.counts.user_binds,
        };
        count.fetch_add(1, Ordering::Relaxed);
        if result.is_ok() {
            keep(self.kept(role), conn);
        }
        Some(result)
    }

    /// A new connection, bound as the service account for searches.
    async fn connect(&self, dir: &Directory, role: Role) -> Result<Connection, LdapFailure> {
        let mut conn = ldap::connect(dir).await?;
        self.counts.connections.fetch_add(1, Ordering::Relaxed);
        if role == Role::Searcher {
            let password =
                Zeroizing::new(String::from_utf8_lossy(dir.bind_password.expose()).into_owned());
            self.counts.service_binds.fetch_add(1, Ordering::Relaxed);
            conn.bind(&dir.bind_dn, &password).await?;
        }
        Ok(conn)
    }
}

/// The most recently kept connection that is still open and not idle too
/// long; older ones found on the way are dropped.
fn take(list: &Mutex<Vec<Idle>>) -> Option<Connection> {
    let mut list = list.lock().unwrap_or_else(PoisonError::into_inner);
    while let Some(mut idle) = list.pop() {
        if idle.since.elapsed() < IDLE_FOR && !idle.conn.is_closed() {
            return Some(idle.conn);
        }
    }
    None
}

/// Keeps `conn` for the next check, unless [`KEEP`] are kept already.
fn keep(list: &Mutex<Vec<Idle>>, conn: Connection) {
    let mut list = list.lock().unwrap_or_else(PoisonError::into_inner);
    list.retain(|i| i.since.elapsed() < IDLE_FOR);
    if list.len() < KEEP {
        list.push(Idle {
            conn,
            since: Instant::now(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn directory(url: &str) -> Directory {
        let t = format!(
            "[server]\nauth_listen = [\"127.0.0.1:1812\"]\n[mfa]\nenabled = true\n\
             [[client]]\nname = \"nas\"\naddress = \"127.0.0.1\"\nsecret = \"nas-secret-0123456789\"\n\
             [[upstream]]\nname = \"up\"\naddress = \"127.0.0.2:1812\"\nsecret = \"upstream-secret-0123456789\"\n\
             [[directory]]\nname = \"corp\"\nurl = \"{url}\"\nbind_dn = \"CN=sync,DC=corp\"\n\
             bind_password = \"s\"\nbase_dn = \"DC=corp\"\nfilter = \"(objectClass=user)\"\n\
             name_attribute = \"sAMAccountName\"\ntimeout = \"1s\"\n"
        );
        let c = crate::config::Config::from_toml(&t, Path::new("t.toml")).expect("valid");
        c.directories[0].clone()
    }

    /// A port nothing listens on.
    fn closed_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    }

    #[tokio::test]
    async fn an_empty_password_is_refused_without_a_connection() {
        let dir = directory(&format!("ldap://127.0.0.1:{}", closed_port()));
        let pool = Pool::new(&dir);
        let r = pool.check(&dir, "alice", &Secret::new(Vec::new())).await;
        assert_eq!(Verdict::of(&r), Verdict::Refused(Refusal::EmptyPassword));
        assert_eq!(pool.operations(), Operations::default(), "nothing sent");
    }

    #[tokio::test]
    async fn an_unreachable_directory_fails_closed_and_says_so() {
        let dir = directory(&format!("ldap://127.0.0.1:{}", closed_port()));
        let pool = Pool::new(&dir);
        let r = pool
            .check(&dir, "alice", &Secret::new(b"pw".to_vec()))
            .await;
        assert_eq!(Verdict::of(&r), Verdict::Failed(Failure::Unreachable));
        let e = r.expect_err("no server");
        let shown = e.to_string();
        assert!(
            shown.contains("directory corp") && !shown.contains("pw"),
            "{shown}"
        );
    }

    #[test]
    fn a_pool_serves_a_directory_while_its_connection_settings_stay() {
        let dir = directory("ldaps://dc1.corp.example");
        let pool = Pool::new(&dir);
        let mut same = dir.clone();
        same.filter = "(objectClass=person)".into();
        same.interval = Duration::from_secs(3600);
        assert!(
            pool.serves(&same),
            "the query is the check's, not the pool's"
        );
        for change in [
            |d: &mut Directory| d.url = "ldaps://dc2.corp.example".into(),
            |d: &mut Directory| d.bind_dn = "CN=other,DC=corp".into(),
            |d: &mut Directory| d.bind_password = Secret::new(b"t".to_vec()),
            |d: &mut Directory| d.timeout = Duration::from_secs(5),
        ] {
            let mut d = dir.clone();
            change(&mut d);
            assert!(!pool.serves(&d));
        }
    }
}
