//! `[server]`: the listeners, and HTTPS for provider callbacks.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::error::{ConfigError, invalid};
use super::values::resolve_path;

#[derive(Clone, Debug)]
pub struct Server {
    pub name: String,
    pub auth_listen: Vec<SocketAddr>,
    pub acct_listen: Vec<SocketAddr>,
    /// A FreeRADIUS-format dictionary to load instead of the built-in one.
    pub dictionary: Option<PathBuf>,
    /// Provider callbacks, `/healthz`, `/metrics`.
    pub http_listen: Option<SocketAddr>,
    /// The base of callback URLs, as providers reach `http_listen`.
    pub public_url: Option<String>,
    /// HTTPS on `http_listen` (`http_tls_cert` and `http_tls_key`).
    pub http_tls: Option<HttpTls>,
    /// Open connections to `http_listen`, at most; further ones are closed
    /// at once. Also bounded by half the file descriptors the process has.
    pub http_max_connections: usize,
    /// Open connections from one address, at most.
    pub http_max_connections_per_address: usize,
}

/// The TLS server configuration of the HTTP listener, loaded and checked
/// when the configuration is read. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct HttpTls(pub std::sync::Arc<rustls::ServerConfig>);

impl fmt::Debug for HttpTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HttpTls(<certificate and key>)")
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    #[serde(default = "default_name")]
    name: String,
    #[serde(default)]
    auth_listen: Vec<String>,
    #[serde(default)]
    acct_listen: Vec<String>,
    dictionary: Option<PathBuf>,
    http_listen: Option<String>,
    public_url: Option<String>,
    http_tls_cert: Option<PathBuf>,
    http_tls_key: Option<PathBuf>,
    #[serde(default = "d_http_max_connections")]
    http_max_connections: usize,
    #[serde(default = "d_http_max_connections_per_address")]
    http_max_connections_per_address: usize,
}

fn d_http_max_connections() -> usize {
    1024
}

fn d_http_max_connections_per_address() -> usize {
    64
}

fn default_name() -> String {
    "mfa-proxy".to_owned()
}

/// The certificate and key files of `[server]`, read by [`validate_tls`]
/// once the other sections are checked.
pub(super) struct TlsFiles {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

pub(super) fn validate(mut s: RawServer) -> Result<(Server, TlsFiles), ConfigError> {
    let tls = TlsFiles {
        cert: s.http_tls_cert.take(),
        key: s.http_tls_key.take(),
    };
    if s.name.trim().is_empty() {
        return Err(invalid("server.name", "must not be empty"));
    }
    if s.auth_listen.is_empty() {
        return Err(invalid(
            "server.auth_listen",
            "at least one address is needed, e.g. [\"0.0.0.0:1812\"]",
        ));
    }
    let mut seen = Vec::new();
    let mut parse_all = |key: &str, list: Vec<String>| -> Result<Vec<SocketAddr>, ConfigError> {
        let mut out = Vec::new();
        for (i, a) in list.iter().enumerate() {
            let k = format!("{key}[{i}]");
            let addr: SocketAddr = a.parse().map_err(|_| {
                invalid(
                    &k,
                    format!("\"{a}\" is not IP:port, e.g. \"0.0.0.0:1812\" or \"[::]:1812\""),
                )
            })?;
            if addr.port() != 0 && seen.contains(&addr) {
                return Err(invalid(&k, format!("{addr} is listed twice")));
            }
            seen.push(addr);
            out.push(addr);
        }
        Ok(out)
    };
    let auth_listen = parse_all("server.auth_listen", s.auth_listen)?;
    let acct_listen = parse_all("server.acct_listen", s.acct_listen)?;
    let http_listen = s
        .http_listen
        .map(|a| {
            a.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    "server.http_listen",
                    format!("\"{a}\" is not IP:port, e.g. \"127.0.0.1:8080\""),
                )
            })
        })
        .transpose()?;
    if let Some(u) = &s.public_url {
        if !(u.starts_with("http://") || u.starts_with("https://")) || u.ends_with('/') {
            return Err(invalid(
                "server.public_url",
                format!("\"{u}\" must be an http:// or https:// base URL without a trailing /"),
            ));
        }
    }
    for (key, n) in [
        ("server.http_max_connections", s.http_max_connections),
        (
            "server.http_max_connections_per_address",
            s.http_max_connections_per_address,
        ),
    ] {
        if !(1..=1_000_000).contains(&n) {
            return Err(invalid(key, format!("{n} is not between 1 and 1000000")));
        }
    }
    if s.http_max_connections_per_address > s.http_max_connections {
        return Err(invalid(
            "server.http_max_connections_per_address",
            format!(
                "{} is more than server.http_max_connections ({})",
                s.http_max_connections_per_address, s.http_max_connections
            ),
        ));
    }
    let server = Server {
        name: s.name,
        auth_listen,
        acct_listen,
        dictionary: s.dictionary,
        http_listen,
        public_url: s.public_url,
        http_tls: None,
        http_max_connections: s.http_max_connections,
        http_max_connections_per_address: s.http_max_connections_per_address,
    };
    Ok((server, tls))
}

/// Loads the HTTPS certificate and key into `server`, and warns of plain
/// HTTP beyond this host.
pub(super) fn validate_tls(
    server: &mut Server,
    files: TlsFiles,
    base: &Path,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    server.http_tls = match (files.cert, files.key) {
        (None, None) => None,
        (Some(c), Some(k)) => Some(load_http_tls(
            &resolve_path(base, c),
            &resolve_path(base, k),
        )?),
        (Some(_), None) => {
            return Err(invalid(
                "server.http_tls_key",
                "missing: http_tls_cert needs its private key",
            ));
        }
        (None, Some(_)) => {
            return Err(invalid(
                "server.http_tls_cert",
                "missing: http_tls_key needs its certificate",
            ));
        }
    };
    if let (Some(addr), None) = (server.http_listen, &server.http_tls) {
        if !addr.ip().is_loopback() {
            warnings.push(format!(
                "server.http_listen = \"{addr}\" is plain HTTP beyond this host: set http_tls_cert and http_tls_key, or put a TLS reverse proxy in front"
            ));
        }
    }
    Ok(())
}

/// Loads `server.http_tls_cert` (PEM, leaf first) and `server.http_tls_key`
/// (PEM: PKCS#8, PKCS#1 or SEC1) into a TLS server configuration.
fn load_http_tls(cert: &Path, key: &Path) -> Result<HttpTls, ConfigError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            invalid(
                "server.http_tls_cert",
                format!("{}: not a PEM certificate chain ({e})", cert.display()),
            )
        })?;
    if certs.is_empty() {
        return Err(invalid(
            "server.http_tls_cert",
            format!("{}: no CERTIFICATE in it", cert.display()),
        ));
    }
    // The error of a key file never quotes its content.
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|_| {
        invalid(
            "server.http_tls_key",
            format!(
                "{}: cannot read a PEM private key (PKCS#8, PKCS#1 or SEC1) from it",
                key.display()
            ),
        )
    })?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key_der))
        .map_err(|e| {
            invalid(
                "server.http_tls_key",
                format!("does not go with server.http_tls_cert: {e}"),
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(HttpTls(std::sync::Arc::new(config)))
}
