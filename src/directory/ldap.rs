//! The LDAP side of a directory: connecting (LDAPS, or StartTLS before
//! anything else is sent), binding, and paged searches. Everything here is
//! I/O; what the entries mean is [`super::plan`]'s.
//!
//! The server's certificate is checked against `ca_file` when it is set,
//! else against the system's roots, with the host name of the URL. Every
//! operation is bounded by the source's `timeout`. Errors name the
//! directory and what failed; the bind password is never in one.
//!
//! For a first factor from the directory ([`super::auth`]): a bind as a
//! user whose every answer is a [`BindAnswer`] (why it was refused, from
//! AD's diagnostic message or the password policy control: `refusal.rs`),
//! a search for one user's entry, and the RFC 4515 escape of a login name
//! in a filter.

mod refusal;

use std::collections::HashMap;
use std::sync::Arc;

use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::controls::RawControl;
use ldap3::{
    Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry, SearchOptions,
    SearchResult,
};

use crate::config::{Directory, DirectoryTls};
pub use refusal::Refusal;

/// A directory could not be read. Never carries a password.
#[derive(Debug, thiserror::Error)]
pub enum LdapFailure {
    #[error("directory {name}: cannot connect to {url}: {source}")]
    Connect {
        name: String,
        url: String,
        source: Box<LdapError>,
    },
    #[error("directory {name}: the CA file {path}: {problem}")]
    CaFile {
        name: String,
        path: String,
        problem: String,
    },
    #[error("directory {name}: the bind as {dn} was refused: {source}")]
    Bind {
        name: String,
        dn: String,
        source: Box<LdapError>,
    },
    #[error("directory {name}: no answer to {what} within {after:?}")]
    Timeout {
        name: String,
        what: &'static str,
        after: std::time::Duration,
    },
    #[error("directory {name}: searching {base} for {filter} failed: {source}")]
    Search {
        name: String,
        base: String,
        filter: String,
        source: Box<LdapError>,
    },
    /// A user's bind got no answer: the connection broke, or the server
    /// is busy or unavailable (results 51, 52).
    #[error("directory {name}: a user's bind failed: {source}")]
    UserBind {
        name: String,
        source: Box<LdapError>,
    },
}

impl LdapFailure {
    /// The connection was gone before the operation left: nothing reached
    /// the server, so the operation may be tried again on another
    /// connection (a kept one the server closed while it was idle).
    pub fn connection_was_closed(&self) -> bool {
        let source = match self {
            LdapFailure::Bind { source, .. }
            | LdapFailure::Search { source, .. }
            | LdapFailure::UserBind { source, .. } => source,
            _ => return false,
        };
        matches!(**source, LdapError::OpSend { .. })
    }
}

/// What a bind as a user came to. Every answer of the server is one of
/// these; only a bind that got no answer is an [`LdapFailure`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindAnswer {
    /// The password is right and nothing in the answer objects.
    Bound,
    Refused(Refusal),
}

/// The filter finding the entry whose `attribute` is `name`, among the
/// entries `filter` selects: `(&FILTER(ATTRIBUTE=NAME))`, the name
/// escaped as RFC 4515 §3 says (`*`, `(`, `)`, `\` and NUL as `\XX`), so
/// that a login name is only ever a value, never a wildcard or a filter.
pub fn name_filter(filter: &str, attribute: &str, name: &str) -> String {
    format!(
        "(&{}({attribute}={}))",
        filter.trim(),
        ldap3::ldap_escape(name)
    )
}

/// One entry as a search returned it: its DN, and its attributes by name
/// in lower case (attribute names compare without case), values as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub dn: String,
    pub attrs: HashMap<String, Vec<String>>,
}

impl Entry {
    /// The first value of `attr`, if any (names without case).
    pub fn first(&self, attr: &str) -> Option<&str> {
        self.attrs
            .get(&attr.to_ascii_lowercase())
            .and_then(|v| v.first())
            .map(String::as_str)
    }

    /// Every value of `attr`.
    pub fn all(&self, attr: &str) -> &[String] {
        self.attrs
            .get(&attr.to_ascii_lowercase())
            .map_or(&[], Vec::as_slice)
    }

    fn from_search(e: SearchEntry) -> Entry {
        Entry {
            dn: e.dn,
            attrs: e
                .attrs
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
        }
    }
}

/// An open connection to one directory, bound as its sync account (or,
/// for a password check, as the user).
pub struct Connection {
    ldap: Ldap,
    name: String,
    page_size: u32,
    timeout: std::time::Duration,
}

/// Connects to `dir` (TLS as configured, the certificate checked) without
/// binding.
pub async fn connect(dir: &Directory) -> Result<Connection, LdapFailure> {
    let mut settings = LdapConnSettings::new()
        .set_conn_timeout(dir.timeout)
        .set_starttls(dir.tls == DirectoryTls::StartTls);
    if let Some(path) = &dir.ca_file {
        settings = settings.set_config(tls_config(dir, path)?);
    }
    let url = match dir.tls {
        DirectoryTls::Ldaps => format!("ldaps://{}:{}", host_in_url(&dir.host), dir.port),
        _ => format!("ldap://{}:{}", host_in_url(&dir.host), dir.port),
    };
    let connect = LdapConnAsync::with_settings(settings, &url);
    let (conn, ldap) = match tokio::time::timeout(dir.timeout, connect).await {
        Ok(r) => r.map_err(|source| LdapFailure::Connect {
            name: dir.name.clone(),
            url: dir.url.clone(),
            source: Box::new(source),
        })?,
        Err(_) => {
            return Err(LdapFailure::Timeout {
                name: dir.name.clone(),
                what: "connecting",
                after: dir.timeout,
            });
        }
    };
    ldap3::drive!(conn);
    Ok(Connection {
        ldap,
        name: dir.name.clone(),
        page_size: dir.page_size,
        timeout: dir.timeout,
    })
}

/// An IPv6 literal goes back in brackets.
fn host_in_url(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// A client configuration trusting the certificates in `path` alone.
fn tls_config(
    dir: &Directory,
    path: &std::path::Path,
) -> Result<Arc<rustls::ClientConfig>, LdapFailure> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let fail = |problem: String| LdapFailure::CaFile {
        name: dir.name.clone(),
        path: path.display().to_string(),
        problem,
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path).map_err(|e| fail(e.to_string()))?;
    for cert in certs {
        let cert = cert.map_err(|e| fail(e.to_string()))?;
        roots.add(cert).map_err(|e| fail(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(fail("holds no certificate".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("directory", &self.name)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A simple bind as `dn` with `password`. The error keeps the server's
    /// result code (49: invalid credentials) for the caller to read.
    pub async fn bind(&mut self, dn: &str, password: &str) -> Result<(), LdapFailure> {
        let fail = |source| LdapFailure::Bind {
            name: self.name.clone(),
            dn: dn.to_owned(),
            source: Box::new(source),
        };
        let r = self
            .ldap
            .with_timeout(self.timeout)
            .simple_bind(dn, password)
            .await
            .map_err(fail)?;
        r.success().map(drop).map_err(fail)
    }

    /// Every entry under `base` matching `filter`, with `attrs`, a page at
    /// a time. `each` is called per entry as it arrives (for progress);
    /// an error at any page (the server went away, a limit) fails the whole
    /// search, so a caller never acts on part of a directory.
    pub async fn search(
        &mut self,
        base: &str,
        filter: &str,
        attrs: &[&str],
        mut each: impl FnMut(Entry),
    ) -> Result<(), LdapFailure> {
        let fail = |source| LdapFailure::Search {
            name: self.name.clone(),
            base: base.to_owned(),
            filter: filter.to_owned(),
            source: Box::new(source),
        };
        let adapters: Vec<Box<dyn Adapter<'_, &str, Vec<&str>>>> = vec![
            Box::new(EntriesOnly::new()),
            Box::new(PagedResults::new(self.page_size as i32)),
        ];
        let mut stream = self
            .ldap
            .with_timeout(self.timeout)
            .streaming_search_with(adapters, base, Scope::Subtree, filter, attrs.to_vec())
            .await
            .map_err(fail)?;
        loop {
            // Each page is bounded by the timeout; a stalled server ends
            // the search rather than the sync waiting forever.
            match tokio::time::timeout(self.timeout, stream.next()).await {
                Ok(Ok(Some(e))) => each(Entry::from_search(SearchEntry::construct(e))),
                Ok(Ok(None)) => break,
                Ok(Err(e)) => return Err(fail(e)),
                Err(_) => {
                    return Err(LdapFailure::Timeout {
                        name: self.name.clone(),
                        what: "a search",
                        after: self.timeout,
                    });
                }
            }
        }
        stream.finish().await.success().map(drop).map_err(fail)
    }

    /// Says goodbye; errors do not matter any more.
    pub async fn close(mut self) {
        let _ = self.ldap.unbind().await;
    }

    /// Whether the connection is known to be gone (the server closed it).
    pub fn is_closed(&mut self) -> bool {
        self.ldap.is_closed()
    }

    /// The DNs of at most `limit` entries under `base` matching `filter`:
    /// one request, not paged, no attributes, for finding one user's entry.
    /// More than `limit` matching is not an error: `limit` DNs come back.
    pub async fn find_dns(
        &mut self,
        base: &str,
        filter: &str,
        limit: u8,
        named: (&str, &str),
    ) -> Result<Vec<String>, LdapFailure> {
        let fail = |source| LdapFailure::Search {
            name: self.name.clone(),
            base: base.to_owned(),
            filter: filter.to_owned(),
            source: Box::new(source),
        };
        let SearchResult(entries, done) = self
            .ldap
            .with_timeout(self.timeout)
            .with_search_options(SearchOptions::new().sizelimit(i32::from(limit)))
            .search(base, Scope::Subtree, filter, vec![named.0])
            .await
            .map_err(fail)?;
        // 4, sizeLimitExceeded: more matched than asked for.
        if done.rc != 0 && done.rc != 4 {
            return Err(fail(LdapError::from(done)));
        }
        // The directory matches names more loosely than the store does
        // (OpenLDAP ignores spaces at the ends and compares NFKC forms:
        // "alice " and a full-width "ａｌｉｃｅ" find alice). An entry counts
        // only when its name is the one typed, case aside, so the login
        // goes on under the name the store knows, or not at all.
        let want = crate::store::fold(named.1);
        Ok(entries
            .into_iter()
            .map(SearchEntry::construct)
            .filter(|e| {
                e.attrs
                    .iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case(named.0))
                    .flat_map(|(_, v)| v)
                    .any(|v| crate::store::fold(v) == want)
            })
            .map(|e| e.dn)
            .collect())
    }

    /// A simple bind as the user `dn` with the password they typed, asking
    /// for the password policy response control (OpenLDAP's ppolicy says
    /// with it why it refused; AD ignores it and says so in its diagnostic
    /// message instead). An empty password is refused here without a
    /// bind. The connection is bound as the user afterwards (or anonymous,
    /// after a refusal): only another user's bind may follow on it.
    pub async fn bind_user(&mut self, dn: &str, password: &str) -> Result<BindAnswer, LdapFailure> {
        if password.is_empty() {
            return Ok(BindAnswer::Refused(Refusal::EmptyPassword));
        }
        let fail = |source| LdapFailure::UserBind {
            name: self.name.clone(),
            source: Box::new(source),
        };
        let ppolicy = RawControl {
            ctype: refusal::PPOLICY_OID.to_owned(),
            crit: false,
            val: None,
        };
        let r = self
            .ldap
            .with_timeout(self.timeout)
            .with_controls(ppolicy)
            .simple_bind(dn, password)
            .await
            .map_err(fail)?;
        // busy, unavailable: the server's state, not the user's.
        if r.rc == 51 || r.rc == 52 {
            return Err(fail(LdapError::from(r)));
        }
        let control = r
            .ctrls
            .iter()
            .find(|c| c.1.ctype == refusal::PPOLICY_OID)
            .and_then(|c| c.1.val.as_deref());
        Ok(match refusal::of_bind(r.rc, &r.text, control) {
            None => BindAnswer::Bound,
            Some(why) => BindAnswer::Refused(why),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_name_is_only_ever_a_value_in_the_filter() {
        let f = |name| name_filter("(objectClass=user)", "sAMAccountName", name);
        assert_eq!(f("alice"), "(&(objectClass=user)(sAMAccountName=alice))");
        assert_eq!(f("*"), "(&(objectClass=user)(sAMAccountName=\\2a))");
        assert_eq!(
            f("a)(|(sAMAccountName=*"),
            "(&(objectClass=user)(sAMAccountName=a\\29\\28|\\28sAMAccountName=\\2a))"
        );
        assert_eq!(
            f("CORP\\alice"),
            "(&(objectClass=user)(sAMAccountName=CORP\\5calice))"
        );
        assert_eq!(f("nul\0"), "(&(objectClass=user)(sAMAccountName=nul\\00))");
        // UTF-8 stays as it is (RFC 4515 allows it in a value).
        assert_eq!(f("jörg"), "(&(objectClass=user)(sAMAccountName=jörg))");
        // The configured filter is taken as written, without its padding.
        assert_eq!(
            name_filter(" (uid=*) ", "uid", "bob"),
            "(&(uid=*)(uid=bob))"
        );
    }
}
