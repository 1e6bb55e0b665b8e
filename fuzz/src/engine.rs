//! The `engine` target: one [`Engine`] on a virtual clock, driven by a list
//! of [`Action`]s decoded from the input with `arbitrary`.
//!
//! The harness plays the NAS, the upstream RADIUS servers, the store worker
//! and the phone provider, the way `src/engine/tests.rs` and
//! `src/engine/tests_mfa.rs` do, but in an order the fuzzer chooses. Most
//! datagrams are well formed and correctly signed (so the fuzzer gets past
//! the signature checks into challenges, PIN checks, local passwords and
//! out-of-band results); some are garbage or wrongly signed.
//!
//! Invariants checked on every input:
//! - nothing panics;
//! - every datagram the engine sends to a NAS parses, goes to a known client,
//!   is an answer the NAS asked for (its Response Authenticator verifies
//!   against one of that NAS's requests with the same identifier, with that
//!   client's secret) and, unless it is an Accounting-Response, carries a
//!   Message-Authenticator first that verifies;
//! - every datagram sent upstream parses, goes to a configured upstream and
//!   carries a verifying Message-Authenticator first;
//! - every delivery is JSON for the id it names, signed with the provider's
//!   key when it has one;
//! - liveness: once the store has answered every job and time has moved on
//!   past every deadline, no login and no out-of-band verification is left.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use mfa_proxy::config::Config;
use mfa_proxy::engine::{
    Counter, DeliveryOutcome, Engine, SocketRef, StoreJob, Transmit, sign, signature_ok,
};
use mfa_proxy::mfa::Method;
use mfa_proxy::mfa::ResultCode;
use mfa_proxy::mfa::otp::{TotpParams, Verdict};
use mfa_proxy::radius::dict::Dictionary;
use mfa_proxy::radius::{AUTH_LEN, Code, Packet, PacketBuilder, attr, crypto};
use mfa_proxy::store::login::{StoreAnswer, StoreOp, Tokens, UserFacts};
use mfa_proxy::store::{SealedSeed, Token};

pub const NAS_SECRET: &[u8] = b"nas-secret-0123456789";
pub const OTHER_SECRET: &[u8] = b"other-nas-secret-9876543210";
pub const UP_SECRET: &[u8] = b"upstream-secret-0123456789";
pub const PROVIDER_KEY: &[u8] = b"provider-key-0123456789";
/// The right password ("pw") and PIN the harness's store and upstream know.
pub const PASSWORD: &[u8] = b"pw";
pub const PIN: &str = "4711";

/// Actions per input, at most: keeps one input well under a millisecond.
pub const MAX_ACTIONS: usize = 96;

const NAS_IP: [u8; 4] = [127, 0, 0, 5];
const OTHER_IP: [u8; 4] = [127, 0, 0, 6];
const UP0: &str = "127.0.1.1:1812";
const UP0_ACCT: &str = "127.0.1.1:1813";
const UP1: &str = "127.0.1.2:1812";

// ---- known findings ----------------------------------------------------------

/// A reply to a NAS signed with the secret of another client: a login
/// challenged for one NAS, whose State another NAS presents, was rejected
/// with the first NAS's secret. Fixed in the engine; the input stays in
/// `fuzz/regressions/engine/`, which CI runs.
pub const CROSS_CLIENT: &str = "cross-client-secret";

/// Known product bugs a long campaign may be told to count instead of
/// stopping at (`MFA_FUZZ_TOLERATE=cross-client-secret`), so that it can
/// look for others. Off by default: CI and the regression test stop at them.
fn tolerated(finding: &str) -> bool {
    static T: OnceLock<Vec<String>> = OnceLock::new();
    T.get_or_init(|| {
        std::env::var("MFA_FUZZ_TOLERATE")
            .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect())
            .unwrap_or_default()
    })
    .iter()
    .any(|f| f == finding)
}

// ---- the configurations ----------------------------------------------------

/// Which configuration the engine runs with.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setup {
    /// `[primary] mode = "upstream"`, two upstreams (one probed with
    /// Status-Server, one with an accounting port), a webhook provider for
    /// push, call and SMS, fallback to OATH codes; policies: carol skips,
    /// a group from Class denies, the second NAS remembers logins.
    Upstream,
    /// `[primary] mode = "local"`, number matching, unenrolled users
    /// accepted, no reject delay, a webhook for push and SMS and a console
    /// provider for calls; the second NAS fails open.
    LocalNumberMatching,
    /// A plain proxy: MFA off, round robin, reject when all are down.
    PlainProxy,
}

fn secret(s: &[u8]) -> String {
    String::from_utf8(s.to_vec()).expect("ASCII secret")
}

fn config_text(setup: Setup) -> String {
    let (nas, other, up, key) = (
        secret(NAS_SECRET),
        secret(OTHER_SECRET),
        secret(UP_SECRET),
        secret(PROVIDER_KEY),
    );
    let clients = format!(
        "[[client]]\nname = \"nas\"\naddress = \"127.0.0.5\"\nsecret = \"{nas}\"\n\
         [[client]]\nname = \"other-nas\"\naddress = \"127.0.0.6\"\nsecret = \"{other}\"\n\
         require_message_authenticator = false\n"
    );
    match setup {
        Setup::Upstream => format!(
            "[server]\nname = \"fuzz\"\nauth_listen = [\"127.0.0.1:1812\"]\nacct_listen = [\"127.0.0.1:1813\"]\n\
             public_url = \"https://mfa.example\"\n\
             [mfa]\nreject_delay = \"1s\"\npush_timeout = \"60s\"\ncall_timeout = \"45s\"\n\
             sms_code_lifetime = \"300s\"\nbusy_grace = \"60s\"\nmax_attempts = 3\nfraud_code = \"0\"\n\
             [lockout]\ndenials = 5\n\
             [messages.de]\nprompt = \"Code eingeben\"\n\
             {clients}\
             [[upstream]]\nname = \"up0\"\naddress = \"{UP0}\"\nacct_address = \"{UP0_ACCT}\"\nsecret = \"{up}\"\n\
             timeout = \"1s\"\nretries = 1\nhealth_check = \"none\"\n\
             [[upstream]]\nname = \"up1\"\naddress = \"{UP1}\"\nsecret = \"{up}\"\ntimeout = \"1s\"\nretries = 1\n\
             require_message_authenticator = false\n\
             [[provider]]\nname = \"gw\"\ntype = \"webhook\"\nmethods = [\"push\", \"call\", \"sms\"]\n\
             url = \"https://gw.example/verify\"\nkey = \"{key}\"\n\
             [groups]\nfrom_attribute = \"Class\"\nprefix = \"grp:\"\n\
             [[trusted_network]]\nname = \"second-nas\"\nranges = [\"127.0.0.6/32\", \"2001:db8::/32\"]\n\
             [[policy]]\nname = \"carol-skip\"\nusers = [\"carol\"]\nmfa = \"skip\"\n\
             [[policy]]\nname = \"guests\"\ngroups = [\"guests\"]\nmfa = \"deny\"\n\
             [[policy]]\nname = \"second-nas\"\nnetworks = [\"second-nas\"]\nremember = \"ip\"\nremember_for = \"1h\"\n"
        ),
        Setup::LocalNumberMatching => format!(
            "[server]\nname = \"fuzz-local\"\nauth_listen = [\"127.0.0.1:1812\"]\npublic_url = \"https://mfa.example\"\n\
             [primary]\nmode = \"local\"\n\
             [mfa]\nreject_delay = \"0s\"\nnumber_matching = true\nunenrolled = \"accept\"\nmax_attempts = 2\n\
             fraud_code = \"999\"\nbusy_grace = \"30s\"\ninline_separator = \"+\"\n\
             {clients}fail_mode = \"fail_open\"\nnumber_matching = false\n\
             [[provider]]\nname = \"gw\"\ntype = \"webhook\"\nmethods = [\"push\", \"sms\"]\n\
             url = \"https://gw.example/verify\"\nkey = \"{key}\"\n\
             [[provider]]\nname = \"console\"\ntype = \"console\"\nmethods = [\"call\"]\n"
        ),
        Setup::PlainProxy => format!(
            "[server]\nname = \"fuzz-plain\"\nauth_listen = [\"127.0.0.1:1812\"]\nacct_listen = [\"127.0.0.1:1813\"]\n\
             [proxy]\nselection = \"round-robin\"\nwhen_all_down = \"reject\"\n\
             [mfa]\nenabled = false\n\
             {clients}\
             [[upstream]]\nname = \"up0\"\naddress = \"{UP0}\"\nacct_address = \"{UP0_ACCT}\"\nsecret = \"{up}\"\n\
             timeout = \"1s\"\nretries = 0\nhealth_check = \"none\"\n\
             [[upstream]]\nname = \"up1\"\naddress = \"{UP1}\"\nsecret = \"{up}\"\ntimeout = \"1s\"\nretries = 0\n"
        ),
    }
}

struct Shared {
    configs: Vec<(Setup, Config)>,
    dictionary: Arc<Dictionary>,
    tokens: Tokens,
}

fn shared() -> &'static Shared {
    static S: OnceLock<Shared> = OnceLock::new();
    S.get_or_init(|| Shared {
        configs: [
            Setup::Upstream,
            Setup::LocalNumberMatching,
            Setup::PlainProxy,
        ]
        .into_iter()
        .map(|s| {
            let c = Config::from_toml(&config_text(s), Path::new("fuzz.toml"))
                .unwrap_or_else(|e| panic!("harness config {s:?} is invalid: {e}"));
            (s, c)
        })
        .collect(),
        dictionary: Arc::new(Dictionary::builtin()),
        tokens: Arc::from(vec![(
            Token {
                id: 1,
                active: true,
                ..Token::totp("alice", TotpParams::default())
            },
            SealedSeed(vec![0; 40]),
        )]),
    })
}

// ---- the actions -----------------------------------------------------------

/// Bytes of a length chosen by the input (one length octet, then up to
/// that many bytes). Hand-written so that seeds can be encoded simply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Blob(pub Vec<u8>);

impl<'a> Arbitrary<'a> for Blob {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let len = usize::from(u8::arbitrary(u)?).min(u.len());
        Ok(Blob(u.bytes(len)?.to_vec()))
    }
}

/// One step of a scenario.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// A NAS sends a request it built itself.
    Nas(NasRequest),
    /// A NAS sends one of its earlier datagrams again, byte for byte.
    Retransmit { which: u8 },
    /// Any bytes from a NAS address; `pad` zero octets are appended.
    RawNas {
        from: Peer,
        listener: u8,
        data: Blob,
        pad: u16,
    },
    /// An upstream answers a request the engine sent it.
    Upstream(UpstreamReply),
    /// Any bytes from an upstream's address, to a socket the engine used.
    RawUpstream { which: u8, data: Blob },
    /// Time passes.
    Advance { ms: u16 },
    /// Time moves to the engine's next deadline.
    AdvanceToNext,
    /// The store answers one of the jobs it was given.
    Store { which: u8, answer: Answer },
    /// The phone provider calls back.
    Callback(Callback),
    /// The shell reports how a delivery ended: `outcome % 3` is 1
    /// delivered, 2 never left this host (out of descriptors), else the
    /// provider failed (0 and 1 encode as the booleans they once were).
    Delivery {
        which: u8,
        outcome: u8,
        bogus_id: bool,
    },
    /// The shell tells the engine the wall-clock time.
    WallClock { unix: u32 },
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    Nas {
        port: u8,
    },
    OtherNas {
        port: u8,
    },
    /// No client has this address.
    Unknown,
    /// The NAS's address as an IPv4-mapped IPv6 address.
    MappedV6 {
        port: u8,
    },
}

impl Peer {
    fn addr(self) -> SocketAddr {
        match self {
            Peer::Nas { port } => SocketAddr::from((NAS_IP, 40000 + u16::from(port % 4))),
            Peer::OtherNas { port } => SocketAddr::from((OTHER_IP, 40000 + u16::from(port % 4))),
            Peer::Unknown => SocketAddr::from(([10, 9, 9, 9], 40000)),
            Peer::MappedV6 { port } => SocketAddr::new(
                IpAddr::V6(Ipv4Addr::from(NAS_IP).to_ipv6_mapped()),
                40000 + u16::from(port % 4),
            ),
        }
    }
}

/// The secret of the client at `ip`, if any.
fn client_secret(ip: IpAddr) -> Option<&'static [u8]> {
    match ip.to_canonical() {
        IpAddr::V4(v4) if v4.octets() == NAS_IP => Some(NAS_SECRET),
        IpAddr::V4(v4) if v4.octets() == OTHER_IP => Some(OTHER_SECRET),
        _ => None,
    }
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReqKind {
    Access,
    Status,
    Accounting,
}

#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct NasRequest {
    pub from: Peer,
    /// 0: authentication, 1: accounting, others do not exist.
    pub listener: u8,
    pub kind: ReqKind,
    pub id: u8,
    /// The Request Authenticator is this octet sixteen times.
    pub auth: u8,
    pub user: User,
    pub password: Password,
    pub state: StateChoice,
    pub eap: bool,
    /// Proxy-States the NAS adds (0 to 3).
    pub proxy_states: u8,
    pub ma: MaChoice,
    pub calling_station: bool,
    pub chap: bool,
    /// An extra attribute: type and value.
    pub extra: Option<(u8, Blob)>,
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum User {
    Alice,
    Bob,
    /// Alice in capitals: busy and grace are per lowercase name.
    AliceUpper,
    Carol,
    Empty,
    Missing,
    NonUtf8,
    Long,
}

impl User {
    fn bytes(self) -> Option<Vec<u8>> {
        Some(match self {
            User::Alice => b"alice".to_vec(),
            User::Bob => b"bob".to_vec(),
            User::AliceUpper => b"ALICE".to_vec(),
            User::Carol => b"carol".to_vec(),
            User::Empty => Vec::new(),
            User::Missing => return None,
            User::NonUtf8 => vec![0xff, 0xfe, b'a'],
            User::Long => vec![b'u'; 253],
        })
    }
}

#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum Password {
    Missing,
    Right,
    Wrong,
    /// `pw<sep>code`, with the configuration's separator.
    Inline(CodeChoice),
    /// A code typed at a prompt.
    Code(CodeChoice),
    /// The name of a method typed at a prompt.
    Word(MethodWord),
    /// The code of an SMS the provider was asked to send, then a PIN.
    Sms {
        which: u8,
        pin: PinChoice,
        wrong: bool,
    },
    /// Any plaintext (hidden correctly, at most 128 octets).
    Plain(Blob),
    /// A User-Password of 17 octets: not a valid hidden length.
    BadLength,
    /// Hidden with another secret.
    WrongSecret,
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeChoice {
    Six,
    Zeros,
    Eight,
    Digits(u32),
    Short,
    Padded,
}

impl CodeChoice {
    fn text(self) -> String {
        match self {
            CodeChoice::Six => "123456".into(),
            CodeChoice::Zeros => "000000".into(),
            CodeChoice::Eight => "12345678".into(),
            CodeChoice::Digits(n) => format!("{:06}", n % 1_000_000),
            CodeChoice::Short => "12345".into(),
            CodeChoice::Padded => " 123456 ".into(),
        }
    }
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MethodWord {
    Push,
    Call,
    Sms,
    Totp,
    PushUpper,
}

impl MethodWord {
    fn text(self) -> &'static str {
        match self {
            MethodWord::Push => "push",
            MethodWord::Call => "call",
            MethodWord::Sms => "sms",
            MethodWord::Totp => "totp",
            MethodWord::PushUpper => "PUSH",
        }
    }
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinChoice {
    None,
    Right,
    Wrong,
    Fraud,
    Empty,
}

impl PinChoice {
    fn text(self, setup: Setup) -> Option<String> {
        match self {
            PinChoice::None => None,
            PinChoice::Right => Some(PIN.into()),
            PinChoice::Wrong => Some("1111".into()),
            PinChoice::Fraud => Some(match setup {
                Setup::LocalNumberMatching => "999".into(),
                _ => "0".into(),
            }),
            PinChoice::Empty => Some(String::new()),
        }
    }
}

#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum StateChoice {
    None,
    /// A State the engine sent in a challenge.
    Echo {
        which: u8,
    },
    /// A State with the engine's tag that it never sent.
    OursUnknown {
        fill: u8,
    },
    /// One of the engine's States, one octet short.
    Truncated {
        which: u8,
    },
    Foreign(Blob),
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaChoice {
    Good,
    Missing,
    Bad,
}

#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct UpstreamReply {
    /// Which request the engine sent upstream (modulo how many it sent).
    pub which: u8,
    pub code: UpCode,
    pub sign: Sign,
    pub proxy_state: PsEcho,
    pub tunnel_password: TunnelPw,
    pub mppe: bool,
    pub reply_message: bool,
    pub eap: bool,
    pub state: bool,
    pub wrong_source: bool,
    /// Leave the request in the list, to answer it twice.
    pub keep: bool,
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpCode {
    /// Access-Accept, or Accounting-Response to accounting.
    Fitting,
    Accept,
    Reject,
    Challenge,
    AccountingResponse,
    Other(u8),
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sign {
    Good,
    BadResponseAuthenticator,
    BadMessageAuthenticator,
    NoMessageAuthenticator,
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsEcho {
    Echo,
    Missing,
    Wrong,
    /// Ours, then another one after it.
    NotLast,
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TunnelPw {
    None,
    Good,
    BadSalt,
    BadLength,
}

#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The answer that fits the job's question: `ok` decides which way.
    Fitting {
        ok: bool,
        profile: ProfileChoice,
    },
    Precheck(PrecheckChoice),
    Verify {
        verdict: VerdictChoice,
        locked: bool,
    },
    Password(bool),
    Pin(Option<bool>),
    Done,
    Failed,
}

#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum PrecheckChoice {
    Bypass,
    Blocked,
    Locked,
    Unenrolled,
    Ready(ProfileChoice),
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProfileChoice {
    pub method: MethodChoice,
    pub pin: bool,
    pub oath: bool,
    pub phone: PhoneChoice,
    pub language: LangChoice,
}

impl ProfileChoice {
    /// An app user with nothing else set.
    fn default_user() -> ProfileChoice {
        ProfileChoice {
            method: MethodChoice::Totp,
            pin: false,
            oath: true,
            phone: PhoneChoice::None,
            language: LangChoice::None,
        }
    }
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MethodChoice {
    Totp,
    Push,
    Call,
    Sms,
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhoneChoice {
    None,
    Valid,
    Invalid,
    BadExtension,
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LangChoice {
    None,
    En,
    De,
    Unknown,
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerdictChoice {
    Valid,
    Incorrect,
    Duplicate,
    Old,
}

#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct Callback {
    /// Which delivery (modulo how many there were).
    pub which: u8,
    pub id: CallbackId,
    pub result: CallbackResult,
    pub pin: PinChoice,
    pub number: NumberChoice,
    pub sig: SigChoice,
    /// Any body instead of the JSON.
    pub body: Option<Blob>,
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallbackId {
    Delivery,
    /// 32 hex digits no delivery had.
    Unknown,
    NotHex,
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallbackResult {
    Approved,
    Denied,
    Fraud,
    NoResponse,
    HungUp,
    Voicemail,
    Unreachable,
    Failed,
    Bogus,
}

impl CallbackResult {
    fn text(self) -> &'static str {
        match self {
            CallbackResult::Approved => "approved",
            CallbackResult::Denied => "denied",
            CallbackResult::Fraud => "fraud",
            CallbackResult::NoResponse => "no_response",
            CallbackResult::HungUp => "hung_up",
            CallbackResult::Voicemail => "voicemail",
            CallbackResult::Unreachable => "unreachable",
            CallbackResult::Failed => "failed",
            CallbackResult::Bogus => "maybe",
        }
    }
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumberChoice {
    None,
    /// The number the delivery asked the user to choose.
    Shown,
    Wrong,
    Huge,
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigChoice {
    Good,
    Bad,
    Missing,
}

/// A whole input: a configuration and the steps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    pub setup: Setup,
    pub actions: Vec<Action>,
}

impl Scenario {
    /// Decodes an input (as libFuzzer hands it to the target).
    pub fn decode(data: &[u8]) -> Option<Scenario> {
        Scenario::arbitrary_take_rest(Unstructured::new(data)).ok()
    }
}

/// The actions are read one by one until the input ends (not with `Vec`'s
/// own encoding, so seeds are easy to write).
impl<'a> Arbitrary<'a> for Scenario {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let setup = Setup::arbitrary(u)?;
        let mut actions = Vec::new();
        while !u.is_empty() && actions.len() < MAX_ACTIONS {
            match Action::arbitrary(u) {
                Ok(a) => actions.push(a),
                Err(_) => break,
            }
        }
        Ok(Scenario { setup, actions })
    }

    fn arbitrary_take_rest(mut u: Unstructured<'a>) -> arbitrary::Result<Self> {
        Self::arbitrary(&mut u)
    }
}

// ---- what the harness remembers --------------------------------------------

struct SentNas {
    from: SocketAddr,
    bytes: Vec<u8>,
}

struct SentUp {
    socket: u16,
    to: SocketAddr,
    bytes: Arc<[u8]>,
}

struct SeenDelivery {
    id: String,
    code: Option<String>,
    number: Option<u64>,
}

/// What a run reached, for the reach report (see `fuzz/README.md`).
#[derive(Clone, Debug, Default)]
pub struct Reach {
    pub challenges_to_nas: u64,
    pub accepts_to_nas: u64,
    pub rejects_to_nas: u64,
    pub password_jobs: u64,
    pub precheck_jobs: u64,
    pub verify_jobs: u64,
    pub pin_jobs: u64,
    pub denial_jobs: u64,
    pub block_jobs: u64,
    pub remember_jobs: u64,
    pub verification_jobs: u64,
    pub audit_jobs: u64,
    pub deliveries: u64,
    pub fraud_reports: u64,
    /// Replies signed with another client's secret (only counted when
    /// tolerated).
    pub tolerated_cross_client: u64,
    pub counters: Vec<(Counter, u64)>,
    pub results: Vec<(ResultCode, [u64; 2])>,
}

impl Reach {
    pub fn add(&mut self, o: &Reach) {
        self.challenges_to_nas += o.challenges_to_nas;
        self.accepts_to_nas += o.accepts_to_nas;
        self.rejects_to_nas += o.rejects_to_nas;
        self.password_jobs += o.password_jobs;
        self.precheck_jobs += o.precheck_jobs;
        self.verify_jobs += o.verify_jobs;
        self.pin_jobs += o.pin_jobs;
        self.denial_jobs += o.denial_jobs;
        self.block_jobs += o.block_jobs;
        self.remember_jobs += o.remember_jobs;
        self.verification_jobs += o.verification_jobs;
        self.audit_jobs += o.audit_jobs;
        self.deliveries += o.deliveries;
        self.fraud_reports += o.fraud_reports;
        self.tolerated_cross_client += o.tolerated_cross_client;
        for &(c, n) in &o.counters {
            match self.counters.iter_mut().find(|(k, _)| *k == c) {
                Some((_, m)) => *m += n,
                None => self.counters.push((c, n)),
            }
        }
        for &(r, [a, b]) in &o.results {
            match self.results.iter_mut().find(|(k, _)| *k == r) {
                Some((_, m)) => {
                    m[0] += a;
                    m[1] += b;
                }
                None => self.results.push((r, [a, b])),
            }
        }
    }
}

struct World {
    setup: Setup,
    e: Engine,
    now: Instant,
    unix: i64,
    nas_sent: Vec<SentNas>,
    up_sent: Vec<SentUp>,
    jobs: Vec<StoreJob>,
    /// The last store answer the input chose was Failed: audits fail too.
    store_failing: bool,
    states: Vec<Vec<u8>>,
    deliveries: Vec<SeenDelivery>,
    reach: Reach,
}

/// Runs one input. Returns what it reached when `report` is set.
pub fn run(data: &[u8], report: bool) -> Option<Reach> {
    let scenario = Scenario::decode(data)?;
    run_scenario(&scenario, report)
}

pub fn run_scenario(s: &Scenario, report: bool) -> Option<Reach> {
    let sh = shared();
    let config = &sh
        .configs
        .iter()
        .find(|(k, _)| *k == s.setup)
        .expect("every setup has a config")
        .1;
    let now = Instant::now();
    let mut w = World {
        setup: s.setup,
        e: Engine::new(config, sh.dictionary.clone(), [5; 32], now),
        now,
        unix: 1_900_000_000,
        nas_sent: Vec::new(),
        up_sent: Vec::new(),
        jobs: Vec::new(),
        store_failing: false,
        states: Vec::new(),
        deliveries: Vec::new(),
        reach: Reach::default(),
    };
    for a in &s.actions {
        w.step(a);
        w.drain();
    }
    w.quiesce();
    report.then(|| {
        let st = w.e.stats();
        w.reach.counters = Counter::ALL.iter().map(|&c| (c, st.get(c))).collect();
        w.reach.results = ResultCode::ALL.iter().map(|&r| (r, st.logins(r))).collect();
        w.reach
    })
}

impl World {
    fn step(&mut self, a: &Action) {
        match a {
            Action::Nas(r) => {
                let (from, bytes) = self.build_nas(r);
                self.send_nas(u16::from(r.listener % 3), from, bytes);
            }
            Action::Retransmit { which } => {
                if self.nas_sent.is_empty() {
                    return;
                }
                let i = usize::from(*which) % self.nas_sent.len();
                let (from, bytes) = (self.nas_sent[i].from, self.nas_sent[i].bytes.clone());
                let listener = if bytes.first() == Some(&Code::ACCOUNTING_REQUEST.0) {
                    1
                } else {
                    0
                };
                self.e.handle_nas(self.now, listener, from, &bytes);
            }
            Action::RawNas {
                from,
                listener,
                data,
                pad,
            } => {
                let mut bytes = data.0.clone();
                bytes.resize(bytes.len() + usize::from(*pad % 4200), 0);
                self.send_nas(u16::from(*listener % 3), from.addr(), bytes);
            }
            Action::Upstream(r) => self.upstream_reply(r),
            Action::RawUpstream { which, data } => {
                if self.up_sent.is_empty() {
                    return;
                }
                let s = &self.up_sent[usize::from(*which) % self.up_sent.len()];
                self.e.handle_upstream(self.now, s.socket, s.to, &data.0);
            }
            Action::Advance { ms } => {
                // Up to 65 s in ms steps, or up to about 18 h in seconds.
                let d = if ms & 1 == 0 {
                    Duration::from_millis(u64::from(*ms))
                } else {
                    Duration::from_secs(u64::from(*ms))
                };
                self.advance_to(self.now + d);
            }
            Action::AdvanceToNext => {
                if let Some(t) = self.e.poll_timeout() {
                    self.advance_to(t.max(self.now));
                }
            }
            Action::Store { which, answer } => {
                if self.jobs.is_empty() {
                    return;
                }
                let job = self.jobs.remove(usize::from(*which) % self.jobs.len());
                let ans = self.store_answer(&job.op, answer);
                self.store_failing = ans == StoreAnswer::Failed;
                self.e.handle_store(self.now, job.id, ans);
            }
            Action::Callback(c) => self.callback(c),
            Action::Delivery {
                which,
                outcome,
                bogus_id,
            } => {
                let id = if *bogus_id || self.deliveries.is_empty() {
                    "00112233445566778899aabbccddeeff".to_owned()
                } else {
                    self.deliveries[usize::from(*which) % self.deliveries.len()]
                        .id
                        .clone()
                };
                let outcome = match outcome % 3 {
                    1 => DeliveryOutcome::Delivered,
                    2 => DeliveryOutcome::LocalFailure,
                    _ => DeliveryOutcome::ProviderFailed,
                };
                self.e.handle_delivery(self.now, &id, outcome);
            }
            Action::WallClock { unix } => {
                self.unix = i64::from(*unix);
                self.e.set_wall_clock(self.now, self.unix);
            }
        }
    }

    fn advance_to(&mut self, t: Instant) {
        if t > self.now {
            self.unix += (t - self.now).as_secs() as i64;
            self.now = t;
        }
        self.e.handle_timeout(self.now);
    }

    fn send_nas(&mut self, listener: u16, from: SocketAddr, bytes: Vec<u8>) {
        self.e.handle_nas(self.now, listener, from, &bytes);
        if self.nas_sent.len() < 256 {
            let from = SocketAddr::new(from.ip().to_canonical(), from.port());
            self.nas_sent.push(SentNas { from, bytes });
        }
    }

    fn password_plain(&self, p: &Password) -> Option<Vec<u8>> {
        let sep = match self.setup {
            Setup::LocalNumberMatching => "+",
            _ => ",",
        };
        Some(match p {
            Password::Missing | Password::BadLength | Password::WrongSecret => return None,
            Password::Right => PASSWORD.to_vec(),
            Password::Wrong => b"wrong-password".to_vec(),
            Password::Inline(c) => format!("pw{sep}{}", c.text()).into_bytes(),
            Password::Code(c) => c.text().into_bytes(),
            Password::Word(w) => w.text().as_bytes().to_vec(),
            Password::Sms { which, pin, wrong } => {
                let sms: Vec<&SeenDelivery> = self
                    .deliveries
                    .iter()
                    .filter(|d| d.code.is_some())
                    .collect();
                let mut code = if sms.is_empty() {
                    "000000".to_owned()
                } else {
                    sms[usize::from(*which) % sms.len()]
                        .code
                        .clone()
                        .expect("filtered")
                };
                if *wrong {
                    code = format!("{:06}", (code.parse::<u32>().unwrap_or(0) + 1) % 1_000_000);
                }
                if let Some(p) = pin.text(self.setup) {
                    code.push(' ');
                    code.push_str(&p);
                }
                code.into_bytes()
            }
            Password::Plain(b) => b.0[..b.0.len().min(128)].to_vec(),
        })
    }

    fn build_nas(&self, r: &NasRequest) -> (SocketAddr, Vec<u8>) {
        let from = r.from.addr();
        let secret = client_secret(from.ip()).unwrap_or(b"unknown-client");
        let code = match r.kind {
            ReqKind::Access => Code::ACCESS_REQUEST,
            ReqKind::Status => Code::STATUS_SERVER,
            ReqKind::Accounting => Code::ACCOUNTING_REQUEST,
        };
        let accounting = r.kind == ReqKind::Accounting;
        let auth = if accounting {
            [0; AUTH_LEN]
        } else {
            [r.auth; AUTH_LEN]
        };
        let mut b = PacketBuilder::new(code, r.id, &auth);
        // Pushes that do not fit are skipped: the packet stays valid.
        if r.ma != MaChoice::Missing {
            let _ = b.push_message_authenticator();
        }
        if let Some(u) = r.user.bytes() {
            let _ = b.push(attr::USER_NAME, &u);
        }
        match &r.password {
            Password::BadLength => {
                let _ = b.push(attr::USER_PASSWORD, &[0x41; 17]);
            }
            Password::WrongSecret => {
                let h = crypto::hide_password(PASSWORD, b"not-the-secret", &auth).expect("short");
                let _ = b.push(attr::USER_PASSWORD, &h);
            }
            p => {
                if let Some(plain) = self.password_plain(p) {
                    let h = crypto::hide_password(&plain, secret, &auth).expect("<= 128 octets");
                    let _ = b.push(attr::USER_PASSWORD, &h);
                }
            }
        }
        let state = match &r.state {
            StateChoice::None => None,
            StateChoice::Echo { which } => (!self.states.is_empty())
                .then(|| self.states[usize::from(*which) % self.states.len()].clone()),
            StateChoice::OursUnknown { fill } => self.states.first().map(|s| {
                let mut v = s[..4].to_vec();
                v.extend_from_slice(&[*fill; 16]);
                v
            }),
            StateChoice::Truncated { which } => (!self.states.is_empty()).then(|| {
                let s = &self.states[usize::from(*which) % self.states.len()];
                s[..s.len() - 1].to_vec()
            }),
            StateChoice::Foreign(v) => Some(v.0.clone()),
        };
        if let Some(s) = state {
            let _ = b.push(attr::STATE, &s[..s.len().min(253)]);
        }
        if r.eap {
            // EAP-Response/Identity.
            let _ = b.push(
                attr::EAP_MESSAGE,
                &[2, 1, 0, 10, 1, b'a', b'l', b'i', b'c', b'e'],
            );
        }
        if r.calling_station {
            let _ = b.push(attr::CALLING_STATION_ID, b"192.0.2.7");
        }
        if r.chap {
            let _ = b.push(attr::CHAP_PASSWORD, &[1; 17]);
        }
        if let Some((t, v)) = &r.extra {
            let _ = b.push(*t, &v.0[..v.0.len().min(253)]);
        }
        for i in 0..r.proxy_states % 4 {
            let _ = b.push(attr::PROXY_STATE, &[b'n', b'a', b's', i]);
        }
        if accounting {
            let _ = b.push(40, &1u32.to_be_bytes());
        }
        let mut bytes = if accounting {
            b.finish_accounting_request(secret)
        } else {
            b.finish_request(secret)
        };
        if r.ma == MaChoice::Bad {
            if let Ok(p) = Packet::parse(&bytes) {
                if let Some(off) = p.message_authenticator_offset() {
                    bytes[off] ^= 0x55;
                }
            }
        }
        (from, bytes)
    }

    fn upstream_reply(&mut self, r: &UpstreamReply) {
        if self.up_sent.is_empty() {
            return;
        }
        let i = usize::from(r.which) % self.up_sent.len();
        let (socket, to, req) = {
            let s = &self.up_sent[i];
            (s.socket, s.to, s.bytes.clone())
        };
        if !r.keep {
            self.up_sent.remove(i);
        }
        let p = Packet::parse(&req).expect("checked when it was sent");
        let accounting = p.code() == Code::ACCOUNTING_REQUEST;
        let code = match r.code {
            UpCode::Fitting if accounting => Code::ACCOUNTING_RESPONSE,
            UpCode::Fitting | UpCode::Accept => Code::ACCESS_ACCEPT,
            UpCode::Reject => Code::ACCESS_REJECT,
            UpCode::Challenge => Code::ACCESS_CHALLENGE,
            UpCode::AccountingResponse => Code::ACCOUNTING_RESPONSE,
            UpCode::Other(c) => Code(c),
        };
        let auth = p.authenticator();
        let mut b = PacketBuilder::new(code, p.identifier(), &[0; AUTH_LEN]);
        if r.sign != Sign::NoMessageAuthenticator {
            let _ = b.push_message_authenticator();
        }
        match r.tunnel_password {
            TunnelPw::None => {}
            TunnelPw::Good => {
                let mut tp = vec![1];
                tp.extend(
                    crypto::salt_encrypt(b"vlan-key", UP_SECRET, auth, [0x80, 7]).expect("enc"),
                );
                let _ = b.push(attr::TUNNEL_PASSWORD, &tp);
            }
            TunnelPw::BadSalt => {
                let _ = b.push(attr::TUNNEL_PASSWORD, &[1, 0x00, 7, 1, 2, 3]);
            }
            TunnelPw::BadLength => {
                let _ = b.push(attr::TUNNEL_PASSWORD, &[1; 20]);
            }
        }
        if r.mppe {
            let key = crypto::salt_encrypt(&[0x42; 32], UP_SECRET, auth, [0x81, 2]).expect("enc");
            let _ = b.push_vsa(attr::VENDOR_MICROSOFT, attr::MS_MPPE_RECV_KEY, &key);
        }
        if r.reply_message {
            let _ = b.push(attr::REPLY_MESSAGE, b"upstream says hello");
        }
        if r.eap {
            let _ = b.push(attr::EAP_MESSAGE, &[3, 1, 0, 4]);
        }
        if r.state {
            let _ = b.push(attr::STATE, b"upstream-state");
        }
        let ps: Vec<&[u8]> = p
            .attributes()
            .filter(|a| a.typ == attr::PROXY_STATE)
            .map(|a| a.raw(&p))
            .collect();
        match r.proxy_state {
            PsEcho::Echo => ps.iter().for_each(|raw| {
                let _ = b.push_raw(raw);
            }),
            PsEcho::Missing => {}
            PsEcho::Wrong => {
                let _ = b.push(attr::PROXY_STATE, b"12345678");
            }
            PsEcho::NotLast => {
                ps.iter().for_each(|raw| {
                    let _ = b.push_raw(raw);
                });
                let _ = b.push(attr::PROXY_STATE, b"after");
            }
        }
        let mut bytes = if code == Code::ACCOUNTING_RESPONSE && accounting {
            b.finish_accounting_response(UP_SECRET, auth)
        } else {
            b.finish_response(UP_SECRET, auth)
        };
        match r.sign {
            Sign::BadResponseAuthenticator => bytes[4] ^= 1,
            Sign::BadMessageAuthenticator => {
                if let Ok(q) = Packet::parse(&bytes) {
                    if let Some(off) = q.message_authenticator_offset() {
                        bytes[off] ^= 1;
                    }
                }
            }
            _ => {}
        }
        let from = if r.wrong_source {
            // The right host, the wrong port; or another upstream.
            SocketAddr::new(to.ip(), to.port().wrapping_add(7))
        } else {
            to
        };
        self.e.handle_upstream(self.now, socket, from, &bytes);
    }

    fn profile(&self, c: &ProfileChoice) -> UserFacts {
        UserFacts {
            blocked: false,
            bypass_waiting: false,
            locked: false,
            denied: c.pin,
            disabled: None,
            method: match c.method {
                MethodChoice::Totp => Method::Totp,
                MethodChoice::Push => Method::Push,
                MethodChoice::Call => Method::Call,
                MethodChoice::Sms => Method::Sms,
            },
            phone: match c.phone {
                PhoneChoice::None => None,
                PhoneChoice::Valid => Some("+4930123456".into()),
                PhoneChoice::Invalid => Some("555-1234".into()),
                PhoneChoice::BadExtension => Some("+4930123456x1a".into()),
            },
            tokens: if c.oath {
                shared().tokens.clone()
            } else {
                Arc::from(Vec::new())
            },
            pin: c.pin,
            language: match c.language {
                LangChoice::None => None,
                LangChoice::En => Some("en".into()),
                LangChoice::De => Some("de".into()),
                LangChoice::Unknown => Some("xx".into()),
            },
            groups: Vec::new(),
            remembered: Vec::new(),
            busy: false,
            graced: Vec::new(),
        }
    }

    fn store_answer(&self, op: &StoreOp, a: &Answer) -> StoreAnswer {
        let verdict = |v: &VerdictChoice| match v {
            VerdictChoice::Valid => Verdict::Valid { step: 1 },
            VerdictChoice::Incorrect => Verdict::Incorrect,
            VerdictChoice::Duplicate => Verdict::Duplicate,
            VerdictChoice::Old => Verdict::Old,
        };
        match a {
            Answer::Fitting { ok, profile } => match op {
                StoreOp::Facts { .. } if *ok => {
                    StoreAnswer::Facts(Some(Box::new(self.profile(profile))))
                }
                StoreOp::Facts { .. } => StoreAnswer::Facts(Some(Box::new(UserFacts {
                    locked: true,
                    ..self.profile(profile)
                }))),
                StoreOp::ClaimBypass { .. } | StoreOp::TakeGrace { .. } => {
                    StoreAnswer::Claimed(*ok)
                }
                // A refusal: another node's verification of the user.
                StoreOp::StartVerification(_) => StoreAnswer::Claimed(*ok),
                StoreOp::Verify { .. } => StoreAnswer::Verify {
                    verdict: if *ok {
                        Verdict::Valid { step: 7 }
                    } else {
                        Verdict::Incorrect
                    },
                    locked: false,
                },
                StoreOp::Password { password, .. } => {
                    StoreAnswer::Password(*ok && password.expose() == PASSWORD)
                }
                StoreOp::Pin { pin, .. } => {
                    StoreAnswer::Pin(Some(*ok && pin.expose() == PIN.as_bytes()))
                }
                // Another node's verification, whose answer was kept for it.
                StoreOp::PassAnswer { .. } if *ok => {
                    StoreAnswer::Passed(mfa_proxy::store::login::Passed::To {
                        node: "other-node".into(),
                    })
                }
                StoreOp::PassAnswer { .. } => {
                    StoreAnswer::Passed(mfa_proxy::store::login::Passed::Unknown)
                }
                // The push was approved at another node meanwhile.
                StoreOp::MoveVerification { .. } => StoreAnswer::Moved {
                    live: *ok,
                    answer: ok.then(approved),
                },
                StoreOp::TakeAnswers { ids } if *ok => {
                    StoreAnswer::Answers(ids.iter().map(|id| (id.clone(), approved())).collect())
                }
                StoreOp::TakeAnswers { .. } => StoreAnswer::Answers(Vec::new()),
                StoreOp::ChallengeExpired { .. } => StoreAnswer::Claimed(*ok),
                _ => StoreAnswer::Done,
            },
            // The store's facts as the old precheck's outcomes named them.
            Answer::Precheck(p) => {
                let user = |f: fn(&mut UserFacts)| {
                    let mut u = self.profile(&ProfileChoice::default_user());
                    f(&mut u);
                    StoreAnswer::Facts(Some(Box::new(u)))
                };
                match p {
                    PrecheckChoice::Bypass => user(|u| u.bypass_waiting = true),
                    PrecheckChoice::Blocked => user(|u| u.blocked = true),
                    PrecheckChoice::Locked => user(|u| u.locked = true),
                    PrecheckChoice::Unenrolled => StoreAnswer::Facts(None),
                    PrecheckChoice::Ready(c) => StoreAnswer::Facts(Some(Box::new(self.profile(c)))),
                }
            }
            Answer::Verify { verdict: v, locked } => StoreAnswer::Verify {
                verdict: verdict(v),
                locked: *locked,
            },
            Answer::Password(b) => StoreAnswer::Password(*b),
            Answer::Pin(p) => StoreAnswer::Pin(*p),
            Answer::Done => StoreAnswer::Done,
            Answer::Failed => StoreAnswer::Failed,
        }
    }

    fn callback(&mut self, c: &Callback) {
        let (id, shown) = match (c.id, self.deliveries.is_empty()) {
            (CallbackId::Delivery, false) => {
                let d = &self.deliveries[usize::from(c.which) % self.deliveries.len()];
                (d.id.clone(), d.number)
            }
            (CallbackId::NotHex, _) => ("not-a-verification-id".to_owned(), None),
            _ => ("ffeeddccbbaa99887766554433221100".to_owned(), None),
        };
        let body = match &c.body {
            Some(b) => b.0.clone(),
            None => {
                let mut j = serde_json::json!({ "result": c.result.text() });
                if let Some(p) = c.pin.text(self.setup) {
                    j["pin"] = p.into();
                }
                match c.number {
                    NumberChoice::None => {}
                    NumberChoice::Shown => j["number"] = shown.unwrap_or(42).into(),
                    NumberChoice::Wrong => j["number"] = (shown.unwrap_or(42) + 1).into(),
                    NumberChoice::Huge => j["number"] = u64::from(u32::MAX).into(),
                }
                serde_json::to_vec(&j).expect("json")
            }
        };
        let sig = match c.sig {
            SigChoice::Good => Some(sign(PROVIDER_KEY, &body)),
            SigChoice::Bad => Some(sign(b"some-other-key-0123456789", &body)),
            SigChoice::Missing => None,
        };
        let _ = self.e.handle_callback(self.now, &id, &body, sig.as_deref());
    }

    /// Collects and checks everything the engine wants done.
    fn drain(&mut self) {
        // Audit records are answered here, as the store's next batch would:
        // a final answer waits for its record. They fail while the store is
        // failing (the last store answer the input chose was Failed).
        loop {
            while let Some(t) = self.e.poll_transmit() {
                self.check_transmit(&t);
            }
            let mut audits = Vec::new();
            for job in self.e.poll_store_jobs() {
                let r = &mut self.reach;
                match &job.op {
                    StoreOp::Facts { .. } | StoreOp::ClaimBypass { .. } => r.precheck_jobs += 1,
                    StoreOp::Verify { .. } => r.verify_jobs += 1,
                    StoreOp::Audit(_) => {
                        r.audit_jobs += 1;
                        audits.push(job.id);
                        continue;
                    }
                    StoreOp::Password { .. } => r.password_jobs += 1,
                    StoreOp::Pin { .. } => r.pin_jobs += 1,
                    StoreOp::Denial { .. } => r.denial_jobs += 1,
                    StoreOp::Block { .. } => r.block_jobs += 1,
                    StoreOp::Remember { .. } => r.remember_jobs += 1,
                    StoreOp::StartVerification(_)
                    | StoreOp::EndVerification { .. }
                    | StoreOp::GrantGrace { .. }
                    | StoreOp::TakeGrace { .. }
                    | StoreOp::Heartbeat(_)
                    | StoreOp::PutChallenge { .. }
                    | StoreOp::TakeChallenge { .. }
                    | StoreOp::PassAnswer { .. }
                    | StoreOp::MoveVerification { .. }
                    | StoreOp::TakeAnswers { .. }
                    | StoreOp::AnswerUsed { .. }
                    | StoreOp::ChallengeExpired { .. }
                    | StoreOp::PruneAudit { .. } => r.verification_jobs += 1,
                }
                self.jobs.push(job);
            }
            if audits.is_empty() {
                break;
            }
            let answer = if self.store_failing {
                StoreAnswer::Failed
            } else {
                StoreAnswer::Done
            };
            for id in audits {
                self.e.handle_store(self.now, id, answer.clone());
            }
        }
        while let Some(d) = self.e.poll_delivery() {
            self.reach.deliveries += 1;
            let key = match self.setup {
                Setup::LocalNumberMatching if d.provider.name == "console" => None,
                _ => Some(PROVIDER_KEY),
            };
            match (key, &d.signature) {
                (Some(k), Some(s)) => assert!(signature_ok(k, &d.body, s), "delivery signature"),
                (None, None) => {}
                (k, s) => panic!(
                    "provider key {:?} but signature {:?}",
                    k.is_some(),
                    s.is_some()
                ),
            }
            let v: serde_json::Value =
                serde_json::from_slice(&d.body).expect("a delivery's body is JSON");
            assert_eq!(v["id"].as_str(), Some(d.id.as_str()));
            assert_eq!(v["method"].as_str(), Some(d.method.as_str()));
            if self.deliveries.len() < 64 {
                self.deliveries.push(SeenDelivery {
                    id: d.id.clone(),
                    code: v["code"].as_str().map(str::to_owned),
                    number: v["number"].as_u64(),
                });
            }
        }
        while self.e.poll_fraud_report().is_some() {
            self.reach.fraud_reports += 1;
        }
    }

    /// Whether `t` (to a NAS) is signed with `secret` as the answer to a
    /// request that NAS sent with the same identifier.
    fn answers_a_request(&self, t: &Transmit, p: &Packet<'_>, secret: &[u8]) -> bool {
        self.nas_sent.iter().any(|s| {
            let Some(auth) = s
                .bytes
                .get(4..20)
                .and_then(|a| <&[u8; 16]>::try_from(a).ok())
            else {
                return false;
            };
            s.from == t.to
                && s.bytes[1] == p.identifier()
                && crypto::verify_packet_authenticator(&t.payload, auth, secret)
                && (p.code() == Code::ACCOUNTING_RESPONSE || {
                    let off = p
                        .message_authenticator_offset()
                        .expect("every answer but accounting is signed");
                    crypto::verify_message_authenticator(&t.payload, off, auth, secret)
                })
        })
    }

    fn check_transmit(&mut self, t: &Transmit) {
        let p = Packet::parse(&t.payload).expect("the engine sends only valid packets");
        match t.socket {
            SocketRef::Listener(_) => {
                let secret = client_secret(t.to.ip()).expect("answers go to known clients only");
                let code = p.code();
                // The Response Authenticator proves it answers a request of
                // this NAS with this identifier.
                if !self.answers_a_request(t, &p, secret) {
                    let other = if secret == NAS_SECRET {
                        OTHER_SECRET
                    } else {
                        NAS_SECRET
                    };
                    let cross = self.answers_a_request(t, &p, other);
                    if cross && tolerated(CROSS_CLIENT) {
                        self.reach.tolerated_cross_client += 1;
                    } else {
                        panic!(
                            "{code:?} to {} answers none of its requests{}",
                            t.to,
                            if cross {
                                " with its secret: it is signed with the other client's secret"
                            } else {
                                ""
                            }
                        );
                    }
                }
                match code {
                    Code::ACCESS_CHALLENGE => {
                        self.reach.challenges_to_nas += 1;
                        if let Some(s) = p.find(attr::STATE) {
                            if s.value.len() == 20 && self.states.len() < 32 {
                                self.states.push(s.value.to_vec());
                            }
                        }
                    }
                    Code::ACCESS_ACCEPT => self.reach.accepts_to_nas += 1,
                    Code::ACCESS_REJECT => self.reach.rejects_to_nas += 1,
                    Code::ACCOUNTING_RESPONSE => {}
                    c => panic!("the engine sent {c:?} to a NAS"),
                }
                if code != Code::ACCOUNTING_RESPONSE {
                    assert_eq!(
                        p.attributes().next().map(|a| a.typ),
                        Some(attr::MESSAGE_AUTHENTICATOR),
                        "Message-Authenticator first"
                    );
                }
            }
            SocketRef::Upstream(socket) => {
                let ups: [SocketAddr; 3] = [
                    UP0.parse().expect("addr"),
                    UP0_ACCT.parse().expect("addr"),
                    UP1.parse().expect("addr"),
                ];
                assert!(ups.contains(&t.to), "sent to {} which is no upstream", t.to);
                let off = p
                    .message_authenticator_offset()
                    .expect("the engine signs every request upstream");
                assert_eq!(
                    p.attributes().next().map(|a| a.typ),
                    Some(attr::MESSAGE_AUTHENTICATOR)
                );
                let ma_auth = if p.code() == Code::ACCOUNTING_REQUEST {
                    [0; AUTH_LEN]
                } else {
                    *p.authenticator()
                };
                assert!(
                    crypto::verify_message_authenticator(&t.payload, off, &ma_auth, UP_SECRET),
                    "requests upstream are signed with the upstream's secret"
                );
                if p.code() == Code::ACCOUNTING_REQUEST {
                    assert!(crypto::verify_packet_authenticator(
                        &t.payload,
                        &[0; AUTH_LEN],
                        UP_SECRET
                    ));
                }
                if self.up_sent.len() >= 32 {
                    self.up_sent.remove(0);
                }
                self.up_sent.push(SentUp {
                    socket,
                    to: t.to,
                    bytes: t.payload.clone(),
                });
            }
        }
    }

    /// The store answers everything (with `Failed`) and time moves on in
    /// ten-minute steps: every login must end.
    fn quiesce(&mut self) {
        for _ in 0..32 {
            for job in std::mem::take(&mut self.jobs) {
                self.e.handle_store(self.now, job.id, StoreAnswer::Failed);
            }
            self.drain();
            if self.jobs.is_empty()
                && self.e.logins_pending() == 0
                && self.e.pending_verifications() == 0
            {
                return;
            }
            self.advance_to(self.now + Duration::from_secs(600));
            self.drain();
        }
        panic!(
            "logins never end: {} logins and {} verifications left after the store answered everything and 5 h passed",
            self.e.logins_pending(),
            self.e.pending_verifications()
        );
    }
}

/// A readable summary of what a set of inputs reached: every engine counter
/// and result code, reached or not.
pub fn report(inputs: u64, r: &Reach) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "engine reach over {inputs} inputs");
    for (name, n) in [
        ("challenges sent to a NAS", r.challenges_to_nas),
        ("accepts sent to a NAS", r.accepts_to_nas),
        ("rejects sent to a NAS", r.rejects_to_nas),
        ("store jobs: local password checks", r.password_jobs),
        ("store jobs: prechecks", r.precheck_jobs),
        ("store jobs: code checks", r.verify_jobs),
        ("store jobs: PIN checks", r.pin_jobs),
        ("store jobs: denials", r.denial_jobs),
        ("store jobs: blocks (fraud)", r.block_jobs),
        ("store jobs: remembered logins", r.remember_jobs),
        (
            "store jobs: verification slots and grace",
            r.verification_jobs,
        ),
        ("store jobs: audit records", r.audit_jobs),
        ("out-of-band deliveries", r.deliveries),
        ("fraud reports", r.fraud_reports),
        (
            "replies signed with another client's secret",
            r.tolerated_cross_client,
        ),
    ] {
        let _ = writeln!(s, "  {name:<40} {n}");
    }
    let _ = writeln!(s, "engine counters:");
    let mut zero = Vec::new();
    for (c, n) in &r.counters {
        if *n == 0 {
            zero.push(c.name());
        } else {
            let _ = writeln!(s, "  {:<40} {n}", c.name());
        }
    }
    let _ = writeln!(s, "  never: {}", zero.join(" "));
    let _ = writeln!(s, "result codes (rejected, accepted):");
    let mut zero = Vec::new();
    for (c, [a, b]) in &r.results {
        if a + b == 0 {
            zero.push(c.as_str());
        } else {
            let _ = writeln!(s, "  {:<40} {a} {b}", c.as_str());
        }
    }
    let _ = writeln!(s, "  never: {}", zero.join(" "));
    s
}

/// A phone's approval, as a node takes it from the store.
fn approved() -> mfa_proxy::store::login::Handed {
    mfa_proxy::store::login::Handed(br#"{"result":"approved"}"#.to_vec().into())
}
