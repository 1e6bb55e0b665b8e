//! `proxy.toml`: the contract administrators edit.
//!
//! Parsing is two steps. Serde reads the file into raw structs with
//! `deny_unknown_fields`, keeping addresses and durations as text; then
//! [`validate`] turns them into typed values and, on the first problem, names
//! the key (`upstream[1].timeout`) and says what is wrong. Secret values never
//! appear in an error, even when the file is malformed around them.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

pub use crate::policy::{FailMode, Unenrolled};
pub use crate::radius::crypto::SharedSecret;
pub use crate::secret::Secret;

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub server: Server,
    pub proxy: Proxy,
    pub clients: Vec<Client>,
    pub upstreams: Vec<Upstream>,
    pub store: StoreConfig,
    pub mfa: Mfa,
    pub lockout: crate::mfa::LockoutPolicy,
    pub primary: Primary,
    /// Out-of-band delivery (push, call, SMS), in file order.
    pub providers: Vec<Provider>,
    /// Who hears about fraud reports.
    pub notify: Option<Notify>,
    /// Things that work but that an administrator should hear about.
    pub warnings: Vec<String>,
}

/// Who checks the first factor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Primary {
    /// The upstream RADIUS servers (NPS).
    Upstream,
    /// argon2id password hashes in the store, for labs and small sites.
    Local,
}

/// The second factor by one-time code.
#[derive(Clone, Debug)]
pub struct Mfa {
    /// Off: a plain proxy (every upstream answer relayed as it is).
    pub enabled: bool,
    pub unenrolled: Unenrolled,
    pub challenge_timeout: Duration,
    pub max_attempts: u32,
    /// `password<sep>code` in User-Password; `None` when disabled ("").
    pub inline_separator: Option<String>,
    pub reject_delay: Duration,
    pub totp_window: u8,
    pub push_timeout: Duration,
    pub call_timeout: Duration,
    pub sms_code_lifetime: Duration,
    /// After an out-of-band success, the same user from the same client is
    /// let in without a new prompt for this long (`SUCCESS_USED_CACHE`).
    pub busy_grace: Duration,
    pub fail_mode: FailMode,
    /// Digits the user presses on a call (then `#`) to report fraud.
    pub fraud_code: String,
    /// When push or call is denied or unanswered, ask for an OATH code.
    pub fallback_oath: bool,
    /// Out-of-band verifications in progress, at most.
    pub max_pending: usize,
    /// How long a fraud report blocks the user.
    pub fraud_block: Duration,
    /// Push number matching on challenge-capable NASes (per client too).
    pub number_matching: bool,
    /// The language of users who have none set, and its texts (`[mfa]`).
    pub language: String,
    pub texts: Texts,
    /// `[messages.LANG]`: other languages, each complete (missing keys
    /// were filled from `[mfa]`).
    pub languages: std::collections::HashMap<String, Texts>,
}

impl Mfa {
    /// The texts for `language` (a lowercase tag, as the CLI stores it), or
    /// the default language's.
    pub fn texts(&self, language: Option<&str>) -> &Texts {
        language
            .and_then(|l| self.languages.get(l))
            .unwrap_or(&self.texts)
    }
}

/// What users read (Reply-Message) and what providers say or send, in one
/// language.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Texts {
    /// Asks for the code from the authenticator app.
    pub prompt: String,
    pub retry_prompt: String,
    /// Asks for the code sent by SMS.
    pub sms_prompt: String,
    pub sms_retry_prompt: String,
    /// Asks for the SMS code followed by the PIN (users with a PIN).
    pub sms_pin_prompt: String,
    pub sms_pin_retry_prompt: String,
    /// Asks for an OATH code after push or call was not approved.
    pub fallback_prompt: String,
    /// The Reply-Message of a `FAILED_PHONE_BUSY` reject.
    pub busy_message: String,
    /// The challenge showing the number to choose; `{number}` is replaced.
    pub number_prompt: String,
    /// The push notification; `{user}` and `{client}` are replaced.
    pub push_message: String,
    /// What the call says.
    pub call_message: String,
    /// The text message; `{code}` is replaced.
    pub sms_message: String,
}

/// How a provider delivers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    /// POST signed JSON to `url`; the result comes back to the callback URL.
    Webhook { url: String },
    /// Write the message or code to the server log (trials only).
    Console,
}

/// A delivery provider for push, call and SMS.
#[derive(Clone, Debug)]
pub struct Provider {
    pub name: String,
    pub kind: ProviderKind,
    pub methods: Vec<crate::mfa::Method>,
    /// HMAC-SHA256 key for requests and callbacks; a console provider
    /// without one cannot be answered by callback.
    pub key: Option<Secret>,
    pub timeout: Duration,
    pub retries: u8,
}

/// Fraud-report email.
#[derive(Clone, Debug)]
pub struct Notify {
    /// SMTP relay, `host:port`.
    pub smtp: String,
    /// `none` (a local relay), `starttls` or `tls`.
    pub tls: SmtpTls,
    pub from: String,
    pub to: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    None,
    StartTls,
    Tls,
}

/// Where persistent state lives. Relative paths are resolved against the
/// configuration file's directory.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub path: PathBuf,
    pub key_file: PathBuf,
}

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

/// How the next upstream is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Always the first live upstream in file order.
    Failover,
    /// Live upstreams in turn.
    RoundRobin,
}

/// What the NAS hears when no upstream answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenAllDown {
    /// Nothing, so the NAS fails over to its next RADIUS server.
    Drop,
    /// An Access-Reject (accounting is never answered without an upstream).
    Reject,
}

#[derive(Clone, Debug)]
pub struct Proxy {
    pub selection: Selection,
    pub when_all_down: WhenAllDown,
    pub dedup_window: Duration,
    pub dedup_max_entries: usize,
    pub upstream_sockets: u16,
    pub check_interval: Duration,
    pub dead_after: u32,
    pub alive_after: u32,
    pub revive_after: Duration,
}

#[derive(Clone, Debug)]
pub struct Client {
    pub name: String,
    pub network: IpNet,
    pub secret: SharedSecret,
    pub require_message_authenticator: bool,
    /// `[mfa] fail_mode` unless this client overrides it.
    pub fail_mode: FailMode,
    /// `[mfa] number_matching` unless this client overrides it: push
    /// approvals show a two-digit number in an Access-Challenge.
    pub number_matching: bool,
}

/// How an upstream's health is probed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthCheck {
    /// RFC 5997 Status-Server probes.
    StatusServer,
    /// No probes (Microsoft NPS does not answer Status-Server): a dead
    /// upstream is tried again after `revive_after`.
    None,
}

#[derive(Clone, Debug)]
pub struct Upstream {
    pub name: String,
    pub address: SocketAddr,
    pub acct_address: Option<SocketAddr>,
    pub secret: SharedSecret,
    pub timeout: Duration,
    pub retries: u8,
    pub require_message_authenticator: bool,
    pub health_check: HealthCheck,
}

/// A configuration problem. Every variant names where it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}, line {line}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("`{key}`: {problem}")]
    Invalid { key: String, problem: String },
}

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

// ---- raw, as written -------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: RawServer,
    #[serde(default)]
    proxy: RawProxy,
    #[serde(default)]
    client: Vec<RawClient>,
    #[serde(default)]
    upstream: Vec<RawUpstream>,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    mfa: RawMfa,
    #[serde(default)]
    lockout: RawLockout,
    #[serde(default)]
    primary: RawPrimary,
    #[serde(default)]
    provider: Vec<RawProvider>,
    notify: Option<RawNotify>,
    #[serde(default)]
    messages: std::collections::BTreeMap<String, RawTexts>,
}

/// `[messages.LANG]`: any of the texts of `[mfa]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTexts {
    prompt: Option<String>,
    retry_prompt: Option<String>,
    sms_prompt: Option<String>,
    sms_retry_prompt: Option<String>,
    sms_pin_prompt: Option<String>,
    sms_pin_retry_prompt: Option<String>,
    fallback_prompt: Option<String>,
    busy_message: Option<String>,
    number_prompt: Option<String>,
    push_message: Option<String>,
    call_message: Option<String>,
    sms_message: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    methods: Vec<String>,
    url: Option<String>,
    key: Option<String>,
    key_file: Option<PathBuf>,
    key_env: Option<String>,
    #[serde(default = "d_provider_timeout")]
    timeout: String,
    #[serde(default = "d_retries")]
    retries: u64,
}

fn d_provider_timeout() -> String {
    "5s".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    smtp: String,
    #[serde(default = "d_smtp_tls")]
    tls: String,
    from: String,
    to: Vec<String>,
}

fn d_smtp_tls() -> String {
    "none".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrimary {
    #[serde(default = "d_primary_mode")]
    mode: String,
}

impl Default for RawPrimary {
    fn default() -> Self {
        RawPrimary {
            mode: d_primary_mode(),
        }
    }
}

fn d_primary_mode() -> String {
    "upstream".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawMfa {
    enabled: bool,
    unenrolled: String,
    challenge_timeout: String,
    max_attempts: u64,
    inline_separator: String,
    reject_delay: String,
    totp_window: u64,
    prompt: String,
    retry_prompt: String,
    sms_prompt: String,
    sms_retry_prompt: String,
    sms_pin_prompt: String,
    sms_pin_retry_prompt: String,
    fallback_prompt: String,
    busy_message: String,
    push_timeout: String,
    call_timeout: String,
    sms_code_lifetime: String,
    busy_grace: String,
    fail_mode: String,
    fraud_code: String,
    fallback_oath: bool,
    max_pending: u64,
    fraud_block: String,
    number_matching: bool,
    number_prompt: String,
    push_message: String,
    call_message: String,
    sms_message: String,
    language: String,
}

impl Default for RawMfa {
    fn default() -> Self {
        RawMfa {
            enabled: true,
            unenrolled: "reject".into(),
            challenge_timeout: "120s".into(),
            max_attempts: 3,
            inline_separator: ",".into(),
            reject_delay: "1s".into(),
            totp_window: 1,
            prompt: "Enter the code from your authenticator app".into(),
            retry_prompt: "Wrong code. Enter the code from your authenticator app".into(),
            sms_prompt: "Enter the code we sent you by text message".into(),
            sms_retry_prompt: "Wrong code. Enter the code we sent you by text message".into(),
            sms_pin_prompt: "Enter the code we sent you by text message, followed by your PIN"
                .into(),
            sms_pin_retry_prompt:
                "Wrong code or PIN. Enter the code we sent you by text message, followed by your PIN"
                    .into(),
            fallback_prompt: "Not approved. Enter the code from your authenticator app".into(),
            busy_message: "A verification is already in progress for this account. Complete it on your phone, then try again".into(),
            push_timeout: "60s".into(),
            call_timeout: "60s".into(),
            sms_code_lifetime: "300s".into(),
            busy_grace: "60s".into(),
            fail_mode: "fail_closed".into(),
            fraud_code: "0".into(),
            fallback_oath: true,
            max_pending: 50_000,
            fraud_block: "90d".into(),
            number_matching: false,
            number_prompt: "Open the app, choose {number} to approve, then press OK here".into(),
            push_message: "Approve the sign-in of {user} at {client}?".into(),
            call_message: "Press # to sign in, or the fraud code then # to report fraud.".into(),
            sms_message: "Your sign-in code is {code}".into(),
            language: "en".into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLockout {
    denials: u64,
    reset_after: String,
    unblock_after: String,
}

impl Default for RawLockout {
    fn default() -> Self {
        RawLockout {
            denials: 10,
            reset_after: "10m".into(),
            unblock_after: "30m".into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    #[serde(default = "d_store_path")]
    path: PathBuf,
    #[serde(default = "d_key_file")]
    key_file: PathBuf,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            path: d_store_path(),
            key_file: d_key_file(),
        }
    }
}

fn d_store_path() -> PathBuf {
    "data/mfa.db".into()
}
fn d_key_file() -> PathBuf {
    "data/seed.key".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProxy {
    #[serde(default = "d_selection")]
    selection: String,
    #[serde(default = "d_when_all_down")]
    when_all_down: String,
    #[serde(default = "d_dedup_window")]
    dedup_window: String,
    #[serde(default = "d_dedup_max")]
    dedup_max_entries: u64,
    #[serde(default = "d_sockets")]
    upstream_sockets: u64,
    #[serde(default = "d_check_interval")]
    check_interval: String,
    #[serde(default = "d_dead_after")]
    dead_after: u64,
    #[serde(default = "d_alive_after")]
    alive_after: u64,
    #[serde(default = "d_revive_after")]
    revive_after: String,
}

impl Default for RawProxy {
    fn default() -> Self {
        RawProxy {
            selection: d_selection(),
            when_all_down: d_when_all_down(),
            dedup_window: d_dedup_window(),
            dedup_max_entries: d_dedup_max(),
            upstream_sockets: d_sockets(),
            check_interval: d_check_interval(),
            dead_after: d_dead_after(),
            alive_after: d_alive_after(),
            revive_after: d_revive_after(),
        }
    }
}

fn d_selection() -> String {
    "failover".into()
}
fn d_when_all_down() -> String {
    "drop".into()
}
fn d_dedup_window() -> String {
    "30s".into()
}
fn d_dedup_max() -> u64 {
    100_000
}
fn d_sockets() -> u64 {
    8
}
fn d_check_interval() -> String {
    "10s".into()
}
fn d_dead_after() -> u64 {
    3
}
fn d_alive_after() -> u64 {
    2
}
fn d_revive_after() -> String {
    "60s".into()
}
fn d_true() -> bool {
    true
}
fn d_timeout() -> String {
    "3s".into()
}
fn d_retries() -> u64 {
    2
}
fn d_health() -> String {
    "status-server".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    name: Option<String>,
    address: Option<String>,
    secret: Option<String>,
    secret_file: Option<PathBuf>,
    secret_env: Option<String>,
    #[serde(default = "d_true")]
    require_message_authenticator: bool,
    fail_mode: Option<String>,
    number_matching: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    name: Option<String>,
    address: Option<String>,
    acct_address: Option<String>,
    secret: Option<String>,
    secret_file: Option<PathBuf>,
    secret_env: Option<String>,
    #[serde(default = "d_timeout")]
    timeout: String,
    #[serde(default = "d_retries")]
    retries: u64,
    #[serde(default = "d_true")]
    require_message_authenticator: bool,
    #[serde(default = "d_health")]
    health_check: String,
}

/// The three ways to give a secret; exactly one must be used.
struct RawSecret {
    /// What the keys are called: "secret" (secret, secret_file,
    /// secret_env) or "key" (key, key_file, key_env).
    field: &'static str,
    secret: Option<String>,
    secret_file: Option<PathBuf>,
    secret_env: Option<String>,
}

// ---- loading -----------------------------------------------------------------

/// Keys whose values must never be echoed back in an error.
fn is_secret_key(key: &str) -> bool {
    let k = key.trim().trim_matches('"');
    k == "secret" || k == "key" || k.ends_with("_secret") || k.ends_with("password")
}

impl Config {
    /// Reads and validates a configuration file. Relative `secret_file`
    /// paths are resolved against the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_toml(&text, path)
    }

    /// Parses and validates `text`; `path` names it in errors and anchors
    /// relative paths.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| syntax_error(&e, text, path))?;
        let base = path.parent().unwrap_or(Path::new("."));
        validate(raw, base, &|name| std::env::var(name).ok())
    }

    /// A summary for `mfa-proxy check`: listeners, clients and upstreams,
    /// never a secret.
    pub fn summary(&self) -> Summary<'_> {
        Summary(self)
    }
}

fn syntax_error(e: &toml::de::Error, text: &str, path: &Path) -> ConfigError {
    let line = e.span().map_or(0, |s| {
        text[..s.start.min(text.len())].matches('\n').count() + 1
    });
    let line_text = text.lines().nth(line.saturating_sub(1)).unwrap_or("");
    let key = line_text.split('=').next().unwrap_or("");
    let message = if line_text.contains('=') && is_secret_key(key) {
        // The parser's message may quote the value: say only what to do.
        format!("`{}` must be a quoted string", key.trim())
    } else {
        e.message().to_owned()
    };
    ConfigError::Syntax {
        path: path.to_path_buf(),
        line,
        message,
    }
}

type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

fn validate(mut raw: RawConfig, base: &Path, env: EnvLookup<'_>) -> Result<Config, ConfigError> {
    let mut warnings = Vec::new();
    let raw_tls = (
        raw.server.http_tls_cert.take(),
        raw.server.http_tls_key.take(),
    );
    let server = validate_server(raw.server)?;
    let proxy = validate_proxy(raw.proxy)?;
    let mfa_enabled = raw.mfa.enabled;
    let mfa = validate_mfa(raw.mfa, std::mem::take(&mut raw.messages))?;

    if raw.client.is_empty() {
        return Err(invalid(
            "client",
            "at least one [[client]] is needed: no NAS could talk to the proxy",
        ));
    }
    let mut clients: Vec<Client> = Vec::new();
    for (i, c) in raw.client.into_iter().enumerate() {
        let key = format!("client[{i}]");
        let name = required_name(c.name, &key)?;
        if clients.iter().any(|o| o.name == name) {
            return Err(invalid(
                format!("{key}.name"),
                format!("\"{name}\" is used by another client"),
            ));
        }
        let addr = c.address.ok_or_else(|| {
            invalid(
                format!("{key}.address"),
                "missing: give an IP address or CIDR range",
            )
        })?;
        let network = parse_network(&addr).map_err(|p| invalid(format!("{key}.address"), p))?;
        if let Some(o) = clients.iter().find(|o| o.network == network) {
            return Err(invalid(
                format!("{key}.address"),
                format!("{network} is already the address of client \"{}\"", o.name),
            ));
        }
        let secret = resolve_secret(
            RawSecret {
                field: "secret",
                secret: c.secret,
                secret_file: c.secret_file,
                secret_env: c.secret_env,
            },
            &key,
            base,
            env,
        )?;
        if secret.len() < 16 {
            warnings.push(format!(
                "{key} (\"{name}\"): the shared secret is shorter than 16 characters; use a long random secret (RFC 2865 §3)"
            ));
        }
        if !c.require_message_authenticator {
            warnings.push(format!(
                "{key} (\"{name}\"): require_message_authenticator = false leaves this NAS open to BlastRADIUS (CVE-2024-3596); enable it once the NAS signs its requests"
            ));
        }
        let fail_mode = match c.fail_mode {
            None => mfa.fail_mode,
            Some(f) => parse_fail_mode(&f, &format!("{key}.fail_mode"))?,
        };
        if fail_mode == FailMode::Open {
            warnings.push(format!(
                "{key} (\"{name}\"): fail_mode = \"fail_open\": when no provider can be reached, logins through this NAS need the first factor only"
            ));
        }
        clients.push(Client {
            name,
            network,
            secret: SharedSecret::new(secret.expose()),
            require_message_authenticator: c.require_message_authenticator,
            fail_mode,
            number_matching: c.number_matching.unwrap_or(mfa.number_matching),
        });
    }

    let primary = match raw.primary.mode.as_str() {
        "upstream" => Primary::Upstream,
        "local" => Primary::Local,
        other => {
            return Err(invalid(
                "primary.mode",
                format!("\"{other}\" is not one of \"upstream\", \"local\""),
            ));
        }
    };
    if raw.upstream.is_empty() && primary == Primary::Upstream {
        return Err(invalid(
            "upstream",
            "at least one [[upstream]] is needed: the first factor goes there (or set [primary] mode = \"local\")",
        ));
    }
    let mut upstreams: Vec<Upstream> = Vec::new();
    for (i, u) in raw.upstream.into_iter().enumerate() {
        let key = format!("upstream[{i}]");
        let name = required_name(u.name, &key)?;
        if upstreams.iter().any(|o| o.name == name) {
            return Err(invalid(
                format!("{key}.name"),
                format!("\"{name}\" is used by another upstream"),
            ));
        }
        let a = u.address.ok_or_else(|| {
            invalid(
                format!("{key}.address"),
                "missing: give IP:port, e.g. \"10.0.0.5:1812\"",
            )
        })?;
        let address =
            parse_upstream_addr(&a, 1812).map_err(|p| invalid(format!("{key}.address"), p))?;
        let acct_address = u
            .acct_address
            .map(|a| {
                parse_upstream_addr(&a, 1813).map_err(|p| invalid(format!("{key}.acct_address"), p))
            })
            .transpose()?;
        for other in &upstreams {
            if other.address == address {
                return Err(invalid(
                    format!("{key}.address"),
                    format!(
                        "{address} is already the address of upstream \"{}\"",
                        other.name
                    ),
                ));
            }
        }
        let timeout = parse_duration(
            &u.timeout,
            &format!("{key}.timeout"),
            Duration::from_millis(100),
            Duration::from_secs(60),
        )?;
        let retries = bounded(u.retries, &format!("{key}.retries"), 0, 10)? as u8;
        let health_check = match u.health_check.as_str() {
            "status-server" => HealthCheck::StatusServer,
            "none" => HealthCheck::None,
            other => {
                return Err(invalid(
                    format!("{key}.health_check"),
                    format!("\"{other}\" is not one of \"status-server\", \"none\""),
                ));
            }
        };
        let secret = resolve_secret(
            RawSecret {
                field: "secret",
                secret: u.secret,
                secret_file: u.secret_file,
                secret_env: u.secret_env,
            },
            &key,
            base,
            env,
        )?;
        if !u.require_message_authenticator {
            warnings.push(format!(
                "{key} (\"{name}\"): require_message_authenticator = false accepts unsigned replies (BlastRADIUS, CVE-2024-3596); enable it once the server is patched"
            ));
        }
        upstreams.push(Upstream {
            name,
            address,
            acct_address,
            secret: SharedSecret::new(secret.expose()),
            timeout,
            retries,
            require_message_authenticator: u.require_message_authenticator,
            health_check,
        });
    }
    if primary == Primary::Local && !mfa_enabled {
        return Err(invalid(
            "mfa.enabled",
            "must be true with [primary] mode = \"local\": local passwords live in the store",
        ));
    }
    if !server.acct_listen.is_empty() && upstreams.iter().all(|u| u.acct_address.is_none()) {
        warnings.push(
            "server.acct_listen is set but no [[upstream]] has an acct_address: accounting requests will be dropped".to_owned(),
        );
    }
    let lockout = crate::mfa::LockoutPolicy {
        denials: bounded(raw.lockout.denials, "lockout.denials", 1, 1000)? as u32,
        reset_after: parse_duration(
            &raw.lockout.reset_after,
            "lockout.reset_after",
            Duration::from_secs(1),
            Duration::from_secs(86400 * 30),
        )?
        .as_secs() as i64,
        unblock_after: parse_duration(
            &raw.lockout.unblock_after,
            "lockout.unblock_after",
            Duration::from_secs(1),
            Duration::from_secs(86400 * 365),
        )?
        .as_secs() as i64,
    };
    if mfa.enabled && mfa.unenrolled == Unenrolled::Accept {
        warnings.push("mfa.unenrolled = \"accept\": users without a registered second factor log in with a password alone".to_owned());
    }
    let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
    let mut server = server;
    server.http_tls = match (raw_tls.0, raw_tls.1) {
        (None, None) => None,
        (Some(c), Some(k)) => Some(load_http_tls(&resolve(c), &resolve(k))?),
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
    let store = StoreConfig {
        path: resolve(raw.store.path),
        key_file: resolve(raw.store.key_file),
    };
    let providers = validate_providers(raw.provider, base, env, &mut warnings)?;
    if !providers.is_empty() && server.http_listen.is_none() {
        warnings.push("[[provider]] is set but server.http_listen is not: no callback can arrive, so push and call always time out".to_owned());
    }
    if providers
        .iter()
        .any(|p| matches!(p.kind, ProviderKind::Webhook { .. }))
        && server.public_url.is_none()
    {
        return Err(invalid(
            "server.public_url",
            "missing: webhook providers need it to build callback URLs, e.g. \"https://mfa.example.org:8443\"",
        ));
    }
    let notify = raw.notify.map(validate_notify).transpose()?;
    Ok(Config {
        server,
        proxy,
        clients,
        upstreams,
        store,
        mfa,
        lockout,
        primary,
        providers,
        notify,
        warnings,
    })
}

fn parse_fail_mode(s: &str, key: &str) -> Result<FailMode, ConfigError> {
    match s {
        "fail_closed" => Ok(FailMode::Closed),
        "fail_open" => Ok(FailMode::Open),
        other => Err(invalid(
            key,
            format!("\"{other}\" is not one of \"fail_closed\", \"fail_open\""),
        )),
    }
}

fn validate_providers(
    raw: Vec<RawProvider>,
    base: &Path,
    env: EnvLookup<'_>,
    warnings: &mut Vec<String>,
) -> Result<Vec<Provider>, ConfigError> {
    let mut out: Vec<Provider> = Vec::new();
    for (i, p) in raw.into_iter().enumerate() {
        let key = format!("provider[{i}]");
        let name = required_name(p.name, &key)?;
        if out.iter().any(|o| o.name == name) {
            return Err(invalid(
                format!("{key}.name"),
                format!("\"{name}\" is used by another provider"),
            ));
        }
        let kind = match p.kind.as_deref() {
            Some("webhook") => {
                let url = p.url.ok_or_else(|| {
                    invalid(
                        format!("{key}.url"),
                        "missing: a webhook provider needs a URL",
                    )
                })?;
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(invalid(
                        format!("{key}.url"),
                        format!("\"{url}\" is not an http:// or https:// URL"),
                    ));
                }
                if url.starts_with("http://") {
                    warnings.push(format!("{key} (\"{name}\"): the webhook URL is plain http; phone numbers and SMS codes cross the network unencrypted"));
                }
                ProviderKind::Webhook { url }
            }
            Some("console") => {
                warnings.push(format!("{key} (\"{name}\"): a console provider writes messages and SMS codes to the server log. It is for trials, NOT for production"));
                ProviderKind::Console
            }
            Some(other) => {
                return Err(invalid(
                    format!("{key}.type"),
                    format!("\"{other}\" is not one of \"webhook\", \"console\""),
                ));
            }
            None => {
                return Err(invalid(
                    format!("{key}.type"),
                    "missing: \"webhook\" or \"console\"",
                ));
            }
        };
        if p.methods.is_empty() {
            return Err(invalid(
                format!("{key}.methods"),
                "missing: list what it delivers, e.g. [\"push\", \"call\", \"sms\"]",
            ));
        }
        let mut methods = Vec::new();
        for (j, m) in p.methods.iter().enumerate() {
            match crate::mfa::Method::parse(m) {
                Some(crate::mfa::Method::Totp) | None => {
                    return Err(invalid(
                        format!("{key}.methods[{j}]"),
                        format!("\"{m}\" is not one of \"push\", \"call\", \"sms\""),
                    ));
                }
                Some(m) => methods.push(m),
            }
        }
        let has_key = p.key.is_some() || p.key_file.is_some() || p.key_env.is_some();
        let secret = if has_key {
            let k = resolve_secret(
                RawSecret {
                    field: "key",
                    secret: p.key,
                    secret_file: p.key_file,
                    secret_env: p.key_env,
                },
                &key,
                base,
                env,
            )?;
            if k.len() < 16 {
                return Err(invalid(
                    format!("{key}.key"),
                    "is shorter than 16 characters; use a long random key",
                ));
            }
            Some(k)
        } else if matches!(kind, ProviderKind::Webhook { .. }) {
            return Err(invalid(
                format!("{key}.key"),
                "missing: a webhook provider signs with a key (or key_file, key_env)",
            ));
        } else {
            None
        };
        out.push(Provider {
            name,
            kind,
            methods,
            key: secret,
            timeout: parse_duration(
                &p.timeout,
                &format!("{key}.timeout"),
                Duration::from_millis(100),
                Duration::from_secs(60),
            )?,
            retries: bounded(p.retries, &format!("{key}.retries"), 0, 10)? as u8,
        });
    }
    Ok(out)
}

fn validate_notify(n: RawNotify) -> Result<Notify, ConfigError> {
    if !n.smtp.contains(':') {
        return Err(invalid(
            "notify.smtp",
            format!("\"{}\" is not host:port, e.g. \"127.0.0.1:25\"", n.smtp),
        ));
    }
    let tls = match n.tls.as_str() {
        "none" => SmtpTls::None,
        "starttls" => SmtpTls::StartTls,
        "tls" => SmtpTls::Tls,
        other => {
            return Err(invalid(
                "notify.tls",
                format!("\"{other}\" is not one of \"none\", \"starttls\", \"tls\""),
            ));
        }
    };
    let email = |s: &str| s.contains('@') && !s.contains(char::is_whitespace);
    if !email(&n.from) {
        return Err(invalid(
            "notify.from",
            format!("\"{}\" is not an email address", n.from),
        ));
    }
    if n.to.is_empty() {
        return Err(invalid("notify.to", "missing: at least one address"));
    }
    for (i, t) in n.to.iter().enumerate() {
        if !email(t) {
            return Err(invalid(
                format!("notify.to[{i}]"),
                format!("\"{t}\" is not an email address"),
            ));
        }
    }
    Ok(Notify {
        smtp: n.smtp,
        tls,
        from: n.from,
        to: n.to,
    })
}

fn validate_mfa(
    m: RawMfa,
    messages: std::collections::BTreeMap<String, RawTexts>,
) -> Result<Mfa, ConfigError> {
    let unenrolled = match m.unenrolled.as_str() {
        "reject" => Unenrolled::Reject,
        "accept" => Unenrolled::Accept,
        other => {
            return Err(invalid(
                "mfa.unenrolled",
                format!("\"{other}\" is not one of \"reject\", \"accept\""),
            ));
        }
    };
    let sep = m.inline_separator;
    if sep.chars().any(|c| c.is_ascii_digit()) || sep.len() > 8 {
        return Err(invalid(
            "mfa.inline_separator",
            "must be at most 8 characters and contain no digits (codes are digits)",
        ));
    }
    let default = RawTexts {
        prompt: Some(m.prompt),
        retry_prompt: Some(m.retry_prompt),
        sms_prompt: Some(m.sms_prompt),
        sms_retry_prompt: Some(m.sms_retry_prompt),
        sms_pin_prompt: Some(m.sms_pin_prompt),
        sms_pin_retry_prompt: Some(m.sms_pin_retry_prompt),
        fallback_prompt: Some(m.fallback_prompt),
        busy_message: Some(m.busy_message),
        number_prompt: Some(m.number_prompt),
        push_message: Some(m.push_message),
        call_message: Some(m.call_message),
        sms_message: Some(m.sms_message),
    };
    let texts = validate_texts(default, None, "mfa")?;
    let language = language_tag(&m.language, "mfa.language")?;
    let mut languages = std::collections::HashMap::new();
    for (lang, raw) in messages {
        let key = format!("messages.{lang}");
        let tag = language_tag(&lang, &key)?;
        languages.insert(tag, validate_texts(raw, Some(&texts), &key)?);
    }
    Ok(Mfa {
        enabled: m.enabled,
        unenrolled,
        challenge_timeout: parse_duration(
            &m.challenge_timeout,
            "mfa.challenge_timeout",
            Duration::from_secs(10),
            Duration::from_secs(600),
        )?,
        max_attempts: bounded(m.max_attempts, "mfa.max_attempts", 1, 10)? as u32,
        inline_separator: (!sep.is_empty()).then_some(sep),
        reject_delay: parse_duration(
            &m.reject_delay,
            "mfa.reject_delay",
            Duration::ZERO,
            Duration::from_secs(10),
        )?,
        totp_window: bounded(m.totp_window, "mfa.totp_window", 0, 10)? as u8,
        push_timeout: parse_duration(
            &m.push_timeout,
            "mfa.push_timeout",
            Duration::from_secs(5),
            Duration::from_secs(600),
        )?,
        call_timeout: parse_duration(
            &m.call_timeout,
            "mfa.call_timeout",
            Duration::from_secs(5),
            Duration::from_secs(600),
        )?,
        sms_code_lifetime: parse_duration(
            &m.sms_code_lifetime,
            "mfa.sms_code_lifetime",
            Duration::from_secs(30),
            Duration::from_secs(3600),
        )?,
        busy_grace: parse_duration(
            &m.busy_grace,
            "mfa.busy_grace",
            Duration::ZERO,
            Duration::from_secs(3600),
        )?,
        fail_mode: parse_fail_mode(&m.fail_mode, "mfa.fail_mode")?,
        fraud_code: {
            if m.fraud_code.is_empty()
                || m.fraud_code.len() > 8
                || !m.fraud_code.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(invalid("mfa.fraud_code", "must be 1 to 8 digits"));
            }
            m.fraud_code
        },
        fallback_oath: m.fallback_oath,
        max_pending: bounded(m.max_pending, "mfa.max_pending", 1, 1_000_000)? as usize,
        fraud_block: parse_duration(
            &m.fraud_block,
            "mfa.fraud_block",
            Duration::from_secs(60),
            Duration::from_secs(86400 * 3650),
        )?,
        number_matching: m.number_matching,
        language,
        texts,
        languages,
    })
}

/// A language tag as users and `[messages.LANG]` name it ("de", "pt-BR"),
/// lowercased; `None` if it is not one.
pub fn parse_language_tag(tag: &str) -> Option<String> {
    let ok = (2..=16).contains(&tag.len())
        && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && tag.as_bytes()[0].is_ascii_alphabetic();
    ok.then(|| tag.to_ascii_lowercase())
}

fn language_tag(tag: &str, key: &str) -> Result<String, ConfigError> {
    parse_language_tag(tag).ok_or_else(|| {
        invalid(
            key,
            format!("\"{tag}\" is not a language tag such as \"en\", \"de\" or \"pt-br\""),
        )
    })
}

/// Checks one language's texts under `section`; a missing text is taken
/// from `fallback` (the default language).
fn validate_texts(
    raw: RawTexts,
    fallback: Option<&Texts>,
    section: &str,
) -> Result<Texts, ConfigError> {
    // Reply-Messages are one attribute; provider texts have placeholders.
    let take = |v: Option<String>,
                name: &str,
                from: fn(&Texts) -> &String,
                needs: &[&str],
                reply: bool|
     -> Result<String, ConfigError> {
        let key = format!("{section}.{name}");
        let text = match (v, fallback) {
            (Some(t), _) => t,
            (None, Some(f)) => return Ok(from(f).clone()),
            (None, None) => return Err(invalid(key, "missing")),
        };
        if text.is_empty() || (reply && text.len() > 240) || text.len() > 1000 {
            let most = if reply {
                "240 octets (one Reply-Message)"
            } else {
                "1000 octets"
            };
            return Err(invalid(key, format!("must be 1 to {most}")));
        }
        if let Some(p) = needs.iter().find(|p| !text.contains(*p)) {
            return Err(invalid(key, format!("must contain {p}, where it goes")));
        }
        Ok(text)
    };
    Ok(Texts {
        prompt: take(raw.prompt, "prompt", |t| &t.prompt, &[], true)?,
        retry_prompt: take(
            raw.retry_prompt,
            "retry_prompt",
            |t| &t.retry_prompt,
            &[],
            true,
        )?,
        sms_prompt: take(raw.sms_prompt, "sms_prompt", |t| &t.sms_prompt, &[], true)?,
        sms_retry_prompt: take(
            raw.sms_retry_prompt,
            "sms_retry_prompt",
            |t| &t.sms_retry_prompt,
            &[],
            true,
        )?,
        sms_pin_prompt: take(
            raw.sms_pin_prompt,
            "sms_pin_prompt",
            |t| &t.sms_pin_prompt,
            &[],
            true,
        )?,
        sms_pin_retry_prompt: take(
            raw.sms_pin_retry_prompt,
            "sms_pin_retry_prompt",
            |t| &t.sms_pin_retry_prompt,
            &[],
            true,
        )?,
        fallback_prompt: take(
            raw.fallback_prompt,
            "fallback_prompt",
            |t| &t.fallback_prompt,
            &[],
            true,
        )?,
        busy_message: take(
            raw.busy_message,
            "busy_message",
            |t| &t.busy_message,
            &[],
            true,
        )?,
        number_prompt: take(
            raw.number_prompt,
            "number_prompt",
            |t| &t.number_prompt,
            &["{number}"],
            true,
        )?,
        push_message: take(
            raw.push_message,
            "push_message",
            |t| &t.push_message,
            &[],
            false,
        )?,
        call_message: take(
            raw.call_message,
            "call_message",
            |t| &t.call_message,
            &[],
            false,
        )?,
        sms_message: take(
            raw.sms_message,
            "sms_message",
            |t| &t.sms_message,
            &["{code}"],
            false,
        )?,
    })
}

fn validate_server(s: RawServer) -> Result<Server, ConfigError> {
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
    Ok(Server {
        name: s.name,
        auth_listen,
        acct_listen,
        dictionary: s.dictionary,
        http_listen,
        public_url: s.public_url,
        http_tls: None,
        http_max_connections: s.http_max_connections,
        http_max_connections_per_address: s.http_max_connections_per_address,
    })
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

fn validate_proxy(p: RawProxy) -> Result<Proxy, ConfigError> {
    let selection = match p.selection.as_str() {
        "failover" => Selection::Failover,
        "round-robin" => Selection::RoundRobin,
        other => {
            return Err(invalid(
                "proxy.selection",
                format!("\"{other}\" is not one of \"failover\", \"round-robin\""),
            ));
        }
    };
    let when_all_down = match p.when_all_down.as_str() {
        "drop" => WhenAllDown::Drop,
        "reject" => WhenAllDown::Reject,
        other => {
            return Err(invalid(
                "proxy.when_all_down",
                format!("\"{other}\" is not one of \"drop\", \"reject\""),
            ));
        }
    };
    Ok(Proxy {
        selection,
        when_all_down,
        dedup_window: parse_duration(
            &p.dedup_window,
            "proxy.dedup_window",
            Duration::from_secs(1),
            Duration::from_secs(300),
        )?,
        dedup_max_entries: bounded(
            p.dedup_max_entries,
            "proxy.dedup_max_entries",
            16,
            10_000_000,
        )? as usize,
        upstream_sockets: bounded(p.upstream_sockets, "proxy.upstream_sockets", 1, 64)? as u16,
        check_interval: parse_duration(
            &p.check_interval,
            "proxy.check_interval",
            Duration::from_secs(1),
            Duration::from_secs(3600),
        )?,
        dead_after: bounded(p.dead_after, "proxy.dead_after", 1, 100)? as u32,
        alive_after: bounded(p.alive_after, "proxy.alive_after", 1, 100)? as u32,
        revive_after: parse_duration(
            &p.revive_after,
            "proxy.revive_after",
            Duration::from_secs(1),
            Duration::from_secs(3600),
        )?,
    })
}

fn required_name(name: Option<String>, key: &str) -> Result<String, ConfigError> {
    match name {
        Some(n) if !n.trim().is_empty() => Ok(n),
        Some(_) => Err(invalid(format!("{key}.name"), "must not be empty")),
        None => Err(invalid(
            format!("{key}.name"),
            "missing: every entry needs a name for logs",
        )),
    }
}

fn bounded(v: u64, key: &str, min: u64, max: u64) -> Result<u64, ConfigError> {
    if (min..=max).contains(&v) {
        Ok(v)
    } else {
        Err(invalid(key, format!("{v} is outside {min}..={max}")))
    }
}

/// Parses `"30s"`, `"1500ms"`, `"2m"` and checks the bounds.
pub fn parse_duration(
    s: &str,
    key: &str,
    min: Duration,
    max: Duration,
) -> Result<Duration, ConfigError> {
    let d = humantime::parse_duration(s.trim()).map_err(|_| {
        invalid(
            key,
            format!(
                "\"{s}\" is not a duration; write a number and a unit, e.g. \"30s\" or \"500ms\""
            ),
        )
    })?;
    if d < min || d > max {
        return Err(invalid(
            key,
            format!(
                "{} is outside {}..={}",
                humantime::format_duration(d),
                humantime::format_duration(min),
                humantime::format_duration(max)
            ),
        ));
    }
    Ok(d)
}

fn parse_network(s: &str) -> Result<IpNet, String> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(IpNet::from(ip.to_canonical()));
    }
    let net: IpNet = s.parse().map_err(|_| {
        format!("\"{s}\" is not an IP address or CIDR range, e.g. \"10.0.0.1\" or \"10.0.0.0/24\"")
    })?;
    if net.trunc() != net {
        return Err(format!(
            "\"{s}\" has host bits set; did you mean \"{}\"?",
            net.trunc()
        ));
    }
    Ok(net)
}

fn parse_upstream_addr(s: &str, default_port: u16) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        if a.port() == 0 {
            return Err(format!("\"{s}\" has port 0"));
        }
        return Ok(a);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, default_port));
    }
    Err(format!(
        "\"{s}\" is not IP:port, e.g. \"10.0.0.5:{default_port}\" (host names are not resolved, so a DNS failure cannot stop logins)"
    ))
}

fn resolve_secret(
    raw: RawSecret,
    key: &str,
    base: &Path,
    env: EnvLookup<'_>,
) -> Result<Secret, ConfigError> {
    let field = raw.field;
    let secret = match (raw.secret, raw.secret_file, raw.secret_env) {
        (Some(s), None, None) => Secret::new(s.into_bytes()),
        (None, Some(f), None) => {
            let path = if f.is_absolute() { f } else { base.join(f) };
            let text = std::fs::read(&path).map_err(|e| {
                invalid(
                    format!("{key}.{field}_file"),
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            let trimmed = text
                .strip_suffix(b"\r\n")
                .or_else(|| text.strip_suffix(b"\n"))
                .unwrap_or(&text);
            Secret::new(trimmed.to_vec())
        }
        (None, None, Some(var)) => {
            let v = env(&var).ok_or_else(|| {
                invalid(
                    format!("{key}.{field}_env"),
                    format!("environment variable {var} is not set"),
                )
            })?;
            Secret::new(v.into_bytes())
        }
        (None, None, None) => {
            return Err(invalid(
                format!("{key}.{field}"),
                format!("missing: give {field}, {field}_file or {field}_env"),
            ));
        }
        _ => {
            return Err(invalid(
                format!("{key}.{field}"),
                format!("give exactly one of {field}, {field}_file, {field}_env"),
            ));
        }
    };
    if secret.is_empty() {
        return Err(invalid(format!("{key}.{field}"), "must not be empty"));
    }
    Ok(secret)
}

/// See [`Config::summary`].
#[derive(Debug)]
pub struct Summary<'a>(&'a Config);

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.0;
        writeln!(f, "server \"{}\"", c.server.name)?;
        writeln!(
            f,
            "primary: {}, second factor: {}",
            match c.primary {
                Primary::Upstream => "upstream",
                Primary::Local => "local",
            },
            if c.mfa.enabled { "on" } else { "off" }
        )?;
        for a in &c.server.auth_listen {
            writeln!(f, "  listen auth {a}")?;
        }
        for a in &c.server.acct_listen {
            writeln!(f, "  listen acct {a}")?;
        }
        writeln!(
            f,
            "proxy: {:?} selection, when all upstreams are down: {:?}, duplicate window {}",
            c.proxy.selection,
            c.proxy.when_all_down,
            humantime::format_duration(c.proxy.dedup_window)
        )?;
        writeln!(f, "clients ({}):", c.clients.len())?;
        for cl in &c.clients {
            writeln!(
                f,
                "  {:<16} {:<20} message-authenticator {}",
                cl.name,
                cl.network.to_string(),
                if cl.require_message_authenticator {
                    "required"
                } else {
                    "optional"
                }
            )?;
        }
        writeln!(f, "upstreams ({}):", c.upstreams.len())?;
        for u in &c.upstreams {
            let acct = u.acct_address.map_or("-".to_owned(), |a| a.to_string());
            writeln!(
                f,
                "  {:<16} auth {:<22} acct {:<22} timeout {} retries {} health {:?}",
                u.name,
                u.address.to_string(),
                acct,
                humantime::format_duration(u.timeout),
                u.retries,
                u.health_check
            )?;
        }
        if let Some(h) = c.server.http_listen {
            writeln!(
                f,
                "{}: {h} (callbacks at {}/v1/verifications/ID)",
                if c.server.http_tls.is_some() {
                    "https"
                } else {
                    "http"
                },
                c.server.public_url.as_deref().unwrap_or("-")
            )?;
        }
        writeln!(f, "providers ({}):", c.providers.len())?;
        for p in &c.providers {
            let kind = match &p.kind {
                ProviderKind::Webhook { url } => format!("webhook {url}"),
                ProviderKind::Console => "console".to_owned(),
            };
            let methods: Vec<&str> = p.methods.iter().map(|m| m.as_str()).collect();
            writeln!(f, "  {:<16} {kind} [{}]", p.name, methods.join(", "))?;
        }
        if let Some(n) = &c.notify {
            writeln!(f, "fraud email: {} via {}", n.to.join(", "), n.smtp)?;
        }
        for w in &c.warnings {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[server]
name = "t"
auth_listen = ["127.0.0.1:1812", "[::1]:1812"]
acct_listen = ["127.0.0.1:1813"]

[[client]]
name = "vpn"
address = "10.1.0.0/16"
secret = "a-long-shared-secret-xyz"

[[upstream]]
name = "nps1"
address = "10.0.0.5:1812"
acct_address = "10.0.0.5:1813"
secret = "upstream-secret-is-long"
timeout = "2s"
retries = 1
"#;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("test.toml"))
    }

    #[test]
    fn parses_and_defaults() {
        let c = load(GOOD).expect("valid");
        assert_eq!(c.server.auth_listen.len(), 2);
        assert_eq!(c.clients[0].network.to_string(), "10.1.0.0/16");
        assert!(c.clients[0].require_message_authenticator);
        assert_eq!(c.upstreams[0].timeout, Duration::from_secs(2));
        assert_eq!(c.upstreams[0].health_check, HealthCheck::StatusServer);
        assert_eq!(c.proxy.selection, Selection::Failover);
        assert_eq!(c.proxy.dedup_window, Duration::from_secs(30));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    fn expect_err(text: &str, key: &str, words: &str) {
        let e = load(text).expect_err("must fail").to_string();
        assert!(
            e.contains(key) && e.contains(words),
            "wanted `{key}` and {words:?} in: {e}"
        );
    }

    #[test]
    fn provider_and_notify_errors_name_the_key() {
        let webhook = |extra: &str| {
            format!(
                "{GOOD}\n[[provider]]\nname = \"gw\"\ntype = \"webhook\"\nmethods = [\"push\"]\nurl = \"https://gw.example/v\"\n{extra}"
            )
        };
        expect_err(&webhook(""), "provider[0].key", "missing");
        expect_err(
            &webhook("key = \"short\"\n"),
            "provider[0].key",
            "shorter than 16",
        );
        expect_err(
            &webhook("key = \"0123456789abcdef0123\"\n"),
            "server.public_url",
            "missing",
        );
        expect_err(
            &format!(
                "{GOOD}\n[[provider]]\nname = \"c\"\ntype = \"console\"\nmethods = [\"totp\"]\n"
            ),
            "provider[0].methods[0]",
            "not one of",
        );
        expect_err(
            &format!("{GOOD}\n[[provider]]\nname = \"c\"\ntype = \"fax\"\nmethods = [\"sms\"]\n"),
            "provider[0].type",
            "not one of",
        );
        expect_err(
            &format!(
                "{GOOD}\n[notify]\nsmtp = \"127.0.0.1:25\"\nfrom = \"nobody\"\nto = [\"a@b.c\"]\n"
            ),
            "notify.from",
            "not an email address",
        );
        expect_err(
            &GOOD.replace(
                "[[client]]",
                "[mfa]\nfail_mode = \"fail_sideways\"\n[[client]]",
            ),
            "mfa.fail_mode",
            "not one of",
        );
    }

    #[test]
    fn errors_name_the_key() {
        expect_err(
            &GOOD.replace("timeout = \"2s\"", "timeout = \"2 parsecs\""),
            "upstream[0].timeout",
            "not a duration",
        );
        expect_err(
            &GOOD.replace("timeout = \"2s\"", "timeout = \"90s\""),
            "upstream[0].timeout",
            "outside",
        );
        expect_err(
            &GOOD.replace("retries = 1", "retries = 11"),
            "upstream[0].retries",
            "outside 0..=10",
        );
        expect_err(
            &GOOD.replace("10.1.0.0/16", "10.1.0.1/16"),
            "client[0].address",
            "host bits",
        );
        expect_err(
            &GOOD.replace("10.1.0.0/16", "vpn.example"),
            "client[0].address",
            "not an IP",
        );
        expect_err(
            &GOOD.replace("10.0.0.5:1812\"", "nps.example:1812\""),
            "upstream[0].address",
            "not IP:port",
        );
        expect_err(
            &GOOD.replace("\"127.0.0.1:1813\"", "\"127.0.0.1:1812\""),
            "server.acct_listen[0]",
            "twice",
        );
        expect_err(
            &GOOD.replace("name = \"vpn\"\n", ""),
            "client[0].name",
            "missing",
        );
        expect_err(
            &GOOD.replace("secret = \"a-long-shared-secret-xyz\"", ""),
            "client[0].secret",
            "missing",
        );
        expect_err(
            &GOOD.replace(
                "secret = \"a-long-shared-secret-xyz\"",
                "secret = \"x\"\nsecret_env = \"X\"",
            ),
            "client[0].secret",
            "exactly one",
        );
        expect_err(
            &GOOD.replace("secret = \"a-long-shared-secret-xyz\"", "secret = \"\""),
            "client[0].secret",
            "empty",
        );
        expect_err(
            &GOOD.replace(
                "secret = \"a-long-shared-secret-xyz\"",
                "secret_env = \"MFA_TEST_UNSET_VAR\"",
            ),
            "client[0].secret_env",
            "not set",
        );
        expect_err(
            &GOOD.replace(
                "secret = \"a-long-shared-secret-xyz\"",
                "secret_file = \"/nonexistent/x\"",
            ),
            "client[0].secret_file",
            "cannot read",
        );
        expect_err(
            &format!("{GOOD}\n[proxy]\nselection = \"random\"\n"),
            "proxy.selection",
            "not one of",
        );
        expect_err(
            &format!("{GOOD}\n[proxy]\nupstream_sockets = 0\n"),
            "proxy.upstream_sockets",
            "outside",
        );
        expect_err(
            &GOOD.replace("retries = 1", "health_check = \"ping\""),
            "upstream[0].health_check",
            "not one of",
        );
        let two_clients = format!(
            "{GOOD}\n[[client]]\nname = \"vpn2\"\naddress = \"10.1.0.0/16\"\nsecret = \"s\"\n"
        );
        expect_err(
            &two_clients,
            "client[1].address",
            "already the address of client \"vpn\"",
        );
    }

    #[test]
    fn unknown_keys_and_syntax_errors_give_the_line() {
        let e = load(&GOOD.replace("retries = 1", "retrys = 1"))
            .expect_err("unknown")
            .to_string();
        assert!(e.contains("test.toml, line") && e.contains("retrys"), "{e}");
    }

    #[test]
    fn secrets_never_appear_in_errors() {
        // An unquoted secret is a syntax error on a line that holds it.
        let text = GOOD.replace("\"a-long-shared-secret-xyz\"", "a-long-shared-secret-xyz");
        let e = load(&text).expect_err("syntax").to_string();
        assert!(!e.contains("a-long-shared-secret-xyz"), "{e}");
        assert!(e.contains("quoted string"), "{e}");
        let text = GOOD.replace("\"a-long-shared-secret-xyz\"", "123456789");
        let e = load(&text).expect_err("type").to_string();
        assert!(!e.contains("123456789"), "{e}");
        // And never in Debug or the summary.
        let c = load(GOOD).expect("valid");
        let all = format!("{c:?}\n{}", c.summary());
        assert!(
            !all.contains("a-long-shared-secret-xyz") && !all.contains("upstream-secret-is-long")
        );
    }

    #[test]
    fn secret_sources() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("s.txt"), "from-a-file-secret\n").expect("write");
        let text = GOOD.replace(
            "secret = \"a-long-shared-secret-xyz\"",
            "secret_file = \"s.txt\"",
        );
        let c = Config::from_toml(&text, &dir.path().join("proxy.toml")).expect("valid");
        assert_eq!(c.clients[0].secret.expose(), b"from-a-file-secret");
        let raw: RawConfig = toml::from_str(&GOOD.replace(
            "secret = \"a-long-shared-secret-xyz\"",
            "secret_env = \"S\"",
        ))
        .expect("toml");
        let c = validate(raw, Path::new("."), &|v| {
            (v == "S").then(|| "env-secret".to_owned())
        })
        .expect("valid");
        assert_eq!(c.clients[0].secret.expose(), b"env-secret");
    }

    #[test]
    fn warnings_for_weak_settings() {
        let text = GOOD.replace("a-long-shared-secret-xyz", "short").replace(
            "retries = 1",
            "retries = 1\nrequire_message_authenticator = false",
        );
        let c = load(&text).expect("valid");
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert!(c.warnings.iter().any(|w| w.contains("shorter than 16")));
        assert!(c.warnings.iter().any(|w| w.contains("BlastRADIUS")));
    }

    #[test]
    fn every_shipped_config_file_is_valid() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let c = Config::load(&root.join("proxy.toml")).expect("shipped proxy.toml is valid");
        assert!(!c.clients.is_empty());
    }

    #[test]
    fn ipv4_mapped_client_addresses_are_canonical() {
        let c = load(&GOOD.replace("10.1.0.0/16", "::ffff:10.1.2.3")).expect("valid");
        assert_eq!(c.clients[0].network.to_string(), "10.1.2.3/32");
    }

    #[test]
    fn https_listener_certificate_and_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).expect("cert");
        let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).expect("cert");
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).expect("write");
            p.display().to_string()
        };
        let crt = write("c.pem", &cert.cert.pem());
        let key = write("k.pem", &cert.key_pair.serialize_pem());
        let wrong_key = write("o.pem", &other.key_pair.serialize_pem());
        let junk = write("j.pem", "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ5dGVz\n");
        let with = |c: &str, k: &str| {
            let mut lines = String::new();
            if !c.is_empty() {
                lines.push_str(&format!("http_tls_cert = \"{c}\"\n"));
            }
            if !k.is_empty() {
                lines.push_str(&format!("http_tls_key = \"{k}\"\n"));
            }
            GOOD.replacen(
                "[server]\n",
                &format!("[server]\nhttp_listen = \"0.0.0.0:8443\"\n{lines}"),
                1,
            )
        };
        let c = load(&with(&crt, &key)).expect("valid");
        assert!(c.server.http_tls.is_some());
        assert!(!format!("{c:?}").contains("BEGIN"), "Debug shows no key");
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let summary = c.summary().to_string();
        assert!(summary.contains("https: 0.0.0.0:8443"), "{summary}");
        let plain = load(&with("", "")).expect("valid");
        assert!(
            plain
                .warnings
                .iter()
                .any(|w| w.contains("plain HTTP beyond this host")),
            "{:?}",
            plain.warnings
        );
        expect_err(&with(&crt, ""), "server.http_tls_key", "missing");
        expect_err(&with("", &key), "server.http_tls_cert", "missing");
        expect_err(&with(&key, &key), "server.http_tls_cert", "no CERTIFICATE");
        expect_err(
            &with(&crt, &wrong_key),
            "server.http_tls_key",
            "does not go with",
        );
        let e = load(&with(&crt, &junk)).expect_err("junk key").to_string();
        assert!(
            e.contains("server.http_tls_key") && !e.contains("c2VjcmV0"),
            "{e}"
        );
        expect_err(
            &with("/nonexistent.pem", &key),
            "server.http_tls_cert",
            "nonexistent",
        );
    }
}
