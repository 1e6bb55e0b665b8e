//! A private, throwaway OpenLDAP server (`slapd`) for the directory-sync
//! tests (std and rcgen only).
//!
//! Each [`Slapd`] gets its own temporary directory under /tmp holding a
//! `slapd.conf` (started with `-f`, no cn=config), an mdb database, a test
//! CA and server certificate made with rcgen, a client `ldap.conf` that
//! trusts that CA, and the server's log. It listens on
//! `ldap://127.0.0.1:<port>` (StartTLS offered) and
//! `ldaps://127.0.0.1:<port>`, both at free ports. Running as root, the
//! server (and `slapadd`) run as the `openldap` user the Debian package
//! creates, and the directory is owned by it.
//!
//! The tree looks like a small Active Directory domain (see [`Tree`]):
//! base `DC=corp,DC=example`, OUs `Users`, `Service`, `Groups` and
//! `Disabled`, users that are `inetOrgPerson` plus an auxiliary class with
//! the AD attributes `sAMAccountName` and `userPrincipalName` (a small test
//! schema using Microsoft's OIDs for them), and `groupOfNames` groups, one
//! nested in another. The `memberof` overlay (when the installation has
//! it) keeps `memberOf` on members, like AD; it lists direct groups only:
//! OpenLDAP has no in-chain matching rule (1.2.840.113556.1.4.1941).
//! The sync account `CN=mfa-sync,OU=Service,DC=corp,DC=example` may read
//! everything; anonymous users may only bind. Like AD's MaxPageSize, a
//! search by anyone but the administrator returns at most 1,000 entries
//! unless it is paged.
//!
//! Dropping a server stops it and removes its directory; a watchdog
//! process (`sh`) does the same when the test process dies without
//! dropping it. Under CI=true a missing slapd fails the test
//! ([`Slapd::start_or_skip`]); otherwise the test is skipped with a note.
//!
//! [`Slapd::start_with`] adds what [`Options`] asks for: the ppolicy
//! overlay (`slapd_policy.rs`: locked accounts, passwords to be changed)
//! and a log line per operation.
//!
//! Include it with `#[path = "support/slapd.rs"] mod slapd;` from an
//! integration test.
#![allow(dead_code)]

#[path = "sandbox.rs"]
mod sandbox;
use sandbox::{
    free_port, make_dir, random_hex, release_watchdog, run, run_as, spawn_watchdog, tail,
};

#[path = "slapd_policy.rs"]
pub mod policy;

use std::fmt::Write as _;
use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// The directory's base DN.
pub const BASE_DN: &str = "DC=corp,DC=example";
/// The administrator (slapd's rootdn: no ACL, no size limit).
pub const ADMIN_DN: &str = "CN=admin,DC=corp,DC=example";
/// The account the proxy binds as to read the directory.
pub const SYNC_DN: &str = "CN=mfa-sync,OU=Service,DC=corp,DC=example";
pub const USERS_OU: &str = "OU=Users,DC=corp,DC=example";
pub const GROUPS_OU: &str = "OU=Groups,DC=corp,DC=example";
pub const DISABLED_OU: &str = "OU=Disabled,DC=corp,DC=example";
/// Even-numbered users and, nested, the `Contractors` group.
pub const VPN_GROUP: &str = "CN=VPN Users,OU=Groups,DC=corp,DC=example";
/// Users whose number ends in 1 (so in VPN Users only through nesting).
pub const CONTRACTORS_GROUP: &str = "CN=Contractors,OU=Groups,DC=corp,DC=example";
/// Users 1, 101, 201, ...
pub const ADMINS_GROUP: &str = "CN=Admins,OU=Groups,DC=corp,DC=example";
/// Languages given to users in turn.
pub const LANGUAGES: [&str; 3] = ["en", "de", "fr"];

/// How many ports `start` tries before giving up.
const START_TRIES: u32 = 5;
/// How long slapd may take to answer after a start.
const START_WAIT: Duration = Duration::from_secs(20);
/// Upper bound on any one helper command (slapadd, ldapsearch, ...).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// Where distributions put slapd's modules.
const MODULE_DIRS: [&str; 4] = [
    "/usr/lib/ldap",
    "/usr/lib/openldap",
    "/usr/libexec/openldap",
    "/usr/lib64/openldap",
];

/// Attributes AD has and inetOrgPerson lacks, with Microsoft's OIDs, and
/// an auxiliary class (under OpenLDAP's experimental arc) that allows them.
const AD_SCHEMA: &str = "\
attributetype ( 1.2.840.113556.1.4.221 NAME 'sAMAccountName'
  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.656 NAME 'userPrincipalName'
  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.4203.666.11.1 NAME 'mfaTestAccount' AUXILIARY
  MAY ( sAMAccountName $ userPrincipalName ) )
";

/// What a server has beyond its tree. All off by default, so that a server
/// started with [`Slapd::start`] is the same as before these existed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// The ppolicy overlay with a default policy (`slapd_policy.rs`):
    /// accounts can be locked and passwords marked to be changed.
    pub ppolicy: bool,
    /// slapd writes every operation to its log (`-d stats`), for tests
    /// that count binds and searches ([`Slapd::log_text`]).
    pub log_operations: bool,
}

/// The directory's content: see the module documentation.
#[derive(Clone, Copy, Debug)]
pub struct Tree {
    /// Users `1..=users` in OU=Users (at least 1).
    pub users: usize,
    /// Users `1..=disabled` in OU=Disabled.
    pub disabled: usize,
}

/// User `i`'s DN: `CN=User 000042,OU=Users,DC=corp,DC=example`.
pub fn user_dn(i: usize) -> String {
    format!("CN=User {i:06},{USERS_OU}")
}

/// User `i`'s login name, its `uid` and `sAMAccountName`: `user000042`.
pub fn user_name(i: usize) -> String {
    format!("user{i:06}")
}

/// User `i`'s password.
pub fn user_password(i: usize) -> String {
    format!("pw-{i}")
}

/// User `i`'s mobile number.
pub fn user_mobile(i: usize) -> String {
    format!("+4930{i:08}")
}

/// Whether user `i` is a member of VPN Users, directly or nested.
pub fn in_vpn_group(i: usize) -> bool {
    i % 2 == 0 || in_contractors(i)
}

pub fn in_contractors(i: usize) -> bool {
    i % 10 == 1
}

pub fn in_admins(i: usize) -> bool {
    i % 100 == 1
}

/// The groups user `i` is directly a member of.
pub fn direct_groups(i: usize) -> Vec<&'static str> {
    let mut g = Vec::new();
    if i % 2 == 0 {
        g.push(VPN_GROUP);
    }
    if in_contractors(i) {
        g.push(CONTRACTORS_GROUP);
    }
    if in_admins(i) {
        g.push(ADMINS_GROUP);
    }
    g
}

/// User `i` as an LDIF entry (no `memberOf`), for `Slapd::add`.
pub fn user_ldif(i: usize) -> String {
    let name = user_name(i);
    format!(
        "dn: {dn}\nobjectClass: inetOrgPerson\nobjectClass: mfaTestAccount\n\
         cn: User {i:06}\nsn: {i:06}\ngivenName: User\nuid: {name}\n\
         sAMAccountName: {name}\nuserPrincipalName: {name}@corp.example\n\
         mail: {name}@corp.example\nmobile: {mobile}\npreferredLanguage: {lang}\n\
         userPassword: {pw}\n",
        dn = user_dn(i),
        mobile = user_mobile(i),
        lang = LANGUAGES[i % LANGUAGES.len()],
        pw = user_password(i),
    )
}

impl Tree {
    /// The whole tree as LDIF for slapadd, `memberOf` included when the
    /// overlay is loaded (slapadd runs no overlay, so it is written here
    /// as the overlay would keep it).
    fn ldif(&self, sync_password: &str, memberof: bool) -> String {
        assert!(self.users >= 1, "a tree needs at least one user");
        let mut out = String::with_capacity(self.users * 420 + 4096);
        let _ = write!(
            out,
            "dn: {BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\ndc: corp\no: corp\n\n"
        );
        for ou in ["Users", "Service", "Groups", "Disabled"] {
            let _ = write!(
                out,
                "dn: OU={ou},{BASE_DN}\nobjectClass: organizationalUnit\nou: {ou}\n\n"
            );
        }
        let _ = write!(
            out,
            "dn: {SYNC_DN}\nobjectClass: inetOrgPerson\ncn: mfa-sync\nsn: sync\n\
             userPassword: {sync_password}\n\n"
        );
        for i in 1..=self.users {
            out.push_str(&user_ldif(i));
            if memberof {
                for g in direct_groups(i) {
                    let _ = writeln!(out, "memberOf: {g}");
                }
            }
            out.push('\n');
        }
        for d in 1..=self.disabled {
            let _ = write!(
                out,
                "dn: CN=Gone {d:04},{DISABLED_OU}\nobjectClass: inetOrgPerson\n\
                 objectClass: mfaTestAccount\ncn: Gone {d:04}\nsn: {d:04}\nuid: gone{d:04}\n\
                 sAMAccountName: gone{d:04}\nmail: gone{d:04}@corp.example\n\n"
            );
        }
        let group = |out: &mut String, dn: &str, cn: &str, members: Vec<String>, of: &[&str]| {
            let _ = write!(out, "dn: {dn}\nobjectClass: groupOfNames\ncn: {cn}\n");
            for m in members {
                let _ = writeln!(out, "member: {m}");
            }
            if memberof {
                for g in of {
                    let _ = writeln!(out, "memberOf: {g}");
                }
            }
            out.push('\n');
        };
        let users = |pred: fn(usize) -> bool| -> Vec<String> {
            (1..=self.users).filter(|&i| pred(i)).map(user_dn).collect()
        };
        let mut vpn = users(|i| i % 2 == 0);
        vpn.push(CONTRACTORS_GROUP.to_owned());
        group(&mut out, VPN_GROUP, "VPN Users", vpn, &[]);
        group(
            &mut out,
            CONTRACTORS_GROUP,
            "Contractors",
            users(in_contractors),
            &[VPN_GROUP],
        );
        group(&mut out, ADMINS_GROUP, "Admins", users(in_admins), &[]);
        out
    }
}

/// A running (or deliberately stopped) private slapd; dropping it stops
/// the server and removes its directory.
pub struct Slapd {
    /// The temporary directory: `slapd.conf`, `db/`, `tls/`, `ldap.conf`,
    /// `slapd.log`.
    dir: PathBuf,
    slapd: PathBuf,
    ldap_port: u16,
    ldaps_port: u16,
    admin_password: String,
    sync_password: String,
    /// (uid, gid) the server runs as, when this process is root.
    run_as: Option<(u32, u32)>,
    memberof: bool,
    options: Options,
    /// The server process (foreground, `-d 0`); None while stopped.
    child: Mutex<Option<Child>>,
    watchdog: Mutex<Option<Child>>,
}

impl std::fmt::Debug for Slapd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slapd")
            .field("dir", &self.dir)
            .field("ldap_port", &self.ldap_port)
            .field("ldaps_port", &self.ldaps_port)
            .finish_non_exhaustive()
    }
}

impl Slapd {
    /// Starts a new server holding `tree`, loaded with slapadd before the
    /// first start. Err says why (slapd missing, no `openldap` user when
    /// root, slapadd or start failed, with the tail of the log).
    pub fn start(tree: Tree) -> Result<Slapd, String> {
        Slapd::start_with(tree, Options::default())
    }

    /// As [`Slapd::start`], with `options`.
    pub fn start_with(tree: Tree, options: Options) -> Result<Slapd, String> {
        let slapd = find_binary("slapd")?;
        let modules = find_modules()?;
        if options.ppolicy {
            policy::check_module(modules.as_deref())?;
        }
        for tool in ["ldapsearch", "ldapmodify", "ldapdelete"] {
            find_binary(tool)?;
        }
        let run_as = run_as("openldap")?;
        let dir = make_dir("mfa-ldap", run_as, &[])?;
        let watchdog = spawn_watchdog("slapd-watchdog", &dir, "slapd.pid", "TERM");
        let memberof = modules
            .as_ref()
            .is_some_and(|m| m.join("memberof.so").is_file());
        let mut server = Slapd {
            dir,
            slapd,
            ldap_port: 0,
            ldaps_port: 0,
            admin_password: random_hex(12),
            sync_password: random_hex(12),
            run_as,
            memberof,
            options,
            child: Mutex::new(None),
            watchdog: Mutex::new(watchdog),
        };
        server.write_tls()?;
        server.write_config(modules.as_deref())?;
        server.slapadd(&tree)?;
        let mut failures = Vec::new();
        for _ in 0..START_TRIES {
            server.ldap_port = free_port()?;
            server.ldaps_port = free_port()?;
            match server.launch() {
                Ok(()) => return Ok(server),
                Err(e) => {
                    failures.push(e);
                    server.stop_quietly();
                }
            }
        }
        Err(format!(
            "slapd did not start in {START_TRIES} tries: {}",
            failures.join(" | ")
        ))
    }

    /// The server, or what tests do when there is none: when CI=true a
    /// server that cannot be started is a failure (panics with the reason);
    /// otherwise returns None and prints "skipped: <reason>" to stderr.
    pub fn start_or_skip(tree: Tree) -> Option<Slapd> {
        Slapd::start_or_skip_with(tree, Options::default())
    }

    /// As [`Slapd::start_or_skip`], with `options`.
    pub fn start_or_skip_with(tree: Tree, options: Options) -> Option<Slapd> {
        match Slapd::start_with(tree, options) {
            Ok(server) => Some(server),
            Err(reason) => {
                if std::env::var("CI").as_deref() == Ok("true") {
                    panic!("slapd is required in CI: {reason}");
                }
                eprintln!("skipped: {reason}");
                None
            }
        }
    }

    /// `ldap://127.0.0.1:<port>` (StartTLS available).
    pub fn ldap_url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.ldap_port)
    }

    /// `ldaps://127.0.0.1:<port>`, with a certificate for 127.0.0.1 and
    /// localhost issued by [`Slapd::ca_file`].
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.ldaps_port)
    }

    /// The test CA's certificate (PEM).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("tls/ca.pem")
    }

    pub fn sync_password(&self) -> &str {
        &self.sync_password
    }

    pub fn admin_password(&self) -> &str {
        &self.admin_password
    }

    /// Whether `memberOf` is kept by the memberof overlay.
    pub fn has_memberof(&self) -> bool {
        self.memberof
    }

    /// The server's temporary directory (for files a test writes).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// An OpenLDAP client tool (ldapsearch, ldapwhoami, ...) that reads no
    /// system or user configuration and trusts the test CA.
    pub fn tool(&self, name: &str) -> Command {
        let mut cmd = Command::new(find_binary(name).unwrap_or_else(|e| panic!("{e}")));
        cmd.current_dir(&self.dir)
            .env("LDAPCONF", self.dir.join("ldap.conf"))
            .env("LDAPRC", "/nonexistent")
            .env("HOME", &self.dir);
        cmd
    }

    /// Runs a client tool to completion: Ok(stdout and stderr) on success,
    /// Err(exit code, output) otherwise.
    pub fn run_tool(&self, cmd: Command) -> Result<String, (Option<i32>, String)> {
        let out = run(cmd, COMMAND_TIMEOUT).map_err(|e| (None, e))?;
        if out.ok {
            Ok(out.text)
        } else {
            Err((out.code, out.text))
        }
    }

    /// Applies LDIF with changetypes (add, modify, delete, modrdn) as the
    /// administrator over ldap://. Panics if the server refuses.
    pub fn modify(&self, ldif: &str) {
        let path = self.dir.join(format!("change-{}.ldif", random_hex(4)));
        fs::write(&path, ldif).unwrap_or_else(|e| panic!("cannot write {path:?}: {e}"));
        let mut cmd = self.tool("ldapmodify");
        cmd.args(["-x", "-H", &self.ldap_url(), "-D", ADMIN_DN, "-w"])
            .arg(&self.admin_password)
            .arg("-f")
            .arg(&path);
        let result = self.run_tool(cmd);
        let _ = fs::remove_file(&path);
        if let Err((code, text)) = result {
            panic!("ldapmodify failed ({code:?}): {}", tail(&text));
        }
    }

    /// Adds entries given as plain LDIF (no changetype), e.g. [`user_ldif`].
    pub fn add(&self, ldif: &str) {
        let mut with = String::new();
        for entry in ldif.split("\n\n").filter(|e| !e.trim().is_empty()) {
            let mut lines = entry.trim().lines();
            if let Some(dn) = lines.next() {
                let _ = writeln!(with, "{dn}\nchangetype: add");
            }
            for l in lines {
                let _ = writeln!(with, "{l}");
            }
            with.push('\n');
        }
        self.modify(&with);
    }

    /// Deletes one entry as the administrator.
    pub fn delete(&self, dn: &str) {
        self.modify(&format!("dn: {dn}\nchangetype: delete\n"));
    }

    /// Stops the server (SIGTERM, then SIGKILL after 10 s); connections
    /// fail until `start_again`.
    pub fn stop(&self) {
        let mut child = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(mut c) = child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match c.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                    Ok(None) => thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }

    /// Starts the stopped server again on the same ports and data. Panics
    /// if it cannot.
    pub fn start_again(&self) {
        if self
            .child
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
        {
            return;
        }
        let mut failures = Vec::new();
        for _ in 0..START_TRIES {
            match self.launch() {
                Ok(()) => return,
                Err(e) => {
                    failures.push(e);
                    self.stop_quietly();
                    thread::sleep(Duration::from_millis(300));
                }
            }
        }
        panic!("cannot start slapd again: {}", failures.join(" | "));
    }

    /// Replaces the whole content with `tree` (stop, slapadd, start) and
    /// returns how long slapadd took.
    pub fn reload(&self, tree: Tree) -> Duration {
        self.stop();
        let db = self.dir.join("db");
        for entry in fs::read_dir(&db).into_iter().flatten().flatten() {
            let _ = fs::remove_file(entry.path());
        }
        let started = Instant::now();
        if let Err(e) = self.slapadd(&tree) {
            panic!("{e}");
        }
        let took = started.elapsed();
        self.start_again();
        took
    }

    fn log(&self) -> PathBuf {
        self.dir.join("slapd.log")
    }

    fn log_tail(&self) -> String {
        tail(&fs::read_to_string(self.log()).unwrap_or_default())
    }

    fn chown(&self, path: &Path) -> Result<(), String> {
        match self.run_as {
            Some((uid, gid)) => std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(|e| format!("cannot chown {}: {e}", path.display())),
            None => Ok(()),
        }
    }

    /// Writes a file the server's user owns.
    fn write_owned(&self, path: &Path, text: &str) -> Result<(), String> {
        fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        self.chown(path)
    }

    /// A test CA and a server certificate for 127.0.0.1 and localhost.
    fn write_tls(&self) -> Result<(), String> {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let err = |e: rcgen::Error| format!("cannot make test certificates: {e}");
        let tls = self.dir.join("tls");
        fs::create_dir(&tls).map_err(|e| format!("cannot create {}: {e}", tls.display()))?;
        self.chown(&tls)?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "mfa-proxy test directory CA");
        let ca_key = KeyPair::generate().map_err(err)?;
        let ca_cert = ca.self_signed(&ca_key).map_err(err)?;
        let mut server =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .map_err(err)?;
        server
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        let key = KeyPair::generate().map_err(err)?;
        let cert = server.signed_by(&key, &ca_cert, &ca_key).map_err(err)?;
        self.write_owned(&tls.join("ca.pem"), &ca_cert.pem())?;
        self.write_owned(&tls.join("server.pem"), &cert.pem())?;
        self.write_owned(&tls.join("server.key"), &key.serialize_pem())?;
        let client = format!(
            "TLS_CACERT {}\nTLS_REQCERT demand\nNETWORK_TIMEOUT 10\n",
            tls.join("ca.pem").display()
        );
        fs::write(self.dir.join("ldap.conf"), client)
            .map_err(|e| format!("cannot write ldap.conf: {e}"))
    }

    fn write_config(&self, modules: Option<&Path>) -> Result<(), String> {
        let d = &self.dir;
        let mut conf = String::new();
        for schema in ["core", "cosine", "inetorgperson"] {
            let _ = writeln!(conf, "include /etc/ldap/schema/{schema}.schema");
        }
        conf.push_str(AD_SCHEMA);
        let _ = writeln!(conf, "pidfile {}", d.join("slapd.pid").display());
        if let Some(m) = modules {
            let _ = writeln!(conf, "modulepath {}", m.display());
            if m.join("back_mdb.so").is_file() {
                conf.push_str("moduleload back_mdb\n");
            }
            if self.memberof {
                conf.push_str("moduleload memberof\n");
            }
            if self.options.ppolicy {
                conf.push_str("moduleload ppolicy\n");
            }
        }
        let _ = write!(
            conf,
            "TLSCACertificateFile {tls}/ca.pem\nTLSCertificateFile {tls}/server.pem\n\
             TLSCertificateKeyFile {tls}/server.key\n\
             access to attrs=userPassword by self =xw by anonymous auth by * none\n\
             access to * by users read by * none\n\
             database mdb\nsuffix \"{BASE_DN}\"\nrootdn \"{ADMIN_DN}\"\nrootpw {pw}\n\
             directory {db}\nmaxsize 1073741824\n\
             index objectClass,uid,sAMAccountName,mail eq\nindex member,memberOf eq\n\
             limits users size.soft=1000 size.hard=1000 size.prtotal=unlimited\n",
            tls = d.join("tls").display(),
            pw = self.admin_password,
            db = d.join("db").display(),
        );
        if self.memberof {
            conf.push_str("overlay memberof\nmemberof-refint TRUE\n");
        }
        if self.options.ppolicy {
            conf.push_str(&policy::config());
        }
        let db = d.join("db");
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&db)
            .map_err(|e| format!("cannot create {}: {e}", db.display()))?;
        self.chown(&db)?;
        self.write_owned(&d.join("slapd.conf"), &conf)
    }

    /// A command for slapd's own binaries, as the server's user.
    fn server_command(&self, arg0: &str) -> Command {
        let mut cmd = Command::new(&self.slapd);
        cmd.arg0(arg0).current_dir(&self.dir);
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid).env("HOME", &self.dir);
        }
        cmd
    }

    /// Loads `tree` into the (stopped) database with `slapadd -q`.
    fn slapadd(&self, tree: &Tree) -> Result<(), String> {
        let path = self.dir.join("tree.ldif");
        let mut ldif = tree.ldif(&self.sync_password, self.memberof);
        if self.options.ppolicy {
            ldif.push_str(&policy::ldif());
        }
        self.write_owned(&path, &ldif)?;
        let mut cmd = self.server_command("slapadd");
        cmd.arg("-q")
            .arg("-f")
            .arg(self.dir.join("slapd.conf"))
            .arg("-l")
            .arg(&path);
        let out = run(cmd, COMMAND_TIMEOUT)?;
        let _ = fs::remove_file(&path);
        if out.ok {
            Ok(())
        } else {
            Err(format!("slapadd failed: {}", tail(&out.text)))
        }
    }

    /// Starts slapd in the foreground on the current ports and waits until
    /// the sync account can bind over ldap://.
    fn launch(&self) -> Result<(), String> {
        let log = fs::File::create(self.log()).map_err(|e| format!("cannot create log: {e}"))?;
        let mut cmd = Command::new(&self.slapd);
        cmd.current_dir(&self.dir)
            .arg("-f")
            .arg(self.dir.join("slapd.conf"))
            .arg("-h")
            .arg(format!("{}/ {}/", self.ldap_url(), self.ldaps_url()))
            .args([
                "-d",
                if self.options.log_operations {
                    "256"
                } else {
                    "0"
                },
            ]);
        if self.run_as.is_some() {
            cmd.args(["-u", "openldap", "-g", "openldap"]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot run slapd: {e}"))?;
        let deadline = Instant::now() + START_WAIT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "slapd exited ({status}) on ports {}/{}: {}",
                    self.ldap_port,
                    self.ldaps_port,
                    self.log_tail()
                ));
            }
            let up = [self.ldap_port, self.ldaps_port].iter().all(|&p| {
                TcpStream::connect_timeout(&([127, 0, 0, 1], p).into(), Duration::from_secs(1))
                    .is_ok()
            });
            if up {
                break;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("slapd did not listen: {}", self.log_tail()));
            }
            thread::sleep(Duration::from_millis(20));
        }
        *self.child.lock().unwrap_or_else(PoisonError::into_inner) = Some(child);
        let mut cmd = self.tool("ldapwhoami");
        cmd.args(["-x", "-H", &self.ldap_url(), "-D", SYNC_DN, "-w"])
            .arg(&self.sync_password);
        self.run_tool(cmd)
            .map(|_| ())
            .map_err(|(_, text)| format!("bind as the sync account failed: {}", tail(&text)))
    }

    /// Stops whatever runs, by any means, without failing.
    fn stop_quietly(&self) {
        self.stop();
        let pid = fs::read_to_string(self.dir.join("slapd.pid"))
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok());
        if let Some(pid) = pid {
            if Path::new(&format!("/proc/{pid}")).exists() {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

impl Drop for Slapd {
    /// Stops the server and removes its directory; never panics.
    fn drop(&mut self) {
        self.stop_quietly();
        let _ = fs::remove_dir_all(&self.dir);
        release_watchdog(
            self.watchdog
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
    }
}

/// A binary in /usr/sbin, /usr/local/sbin, /sbin or PATH.
fn find_binary(name: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    ["/usr/sbin", "/usr/local/sbin", "/sbin"]
        .iter()
        .map(PathBuf::from)
        .chain(std::env::split_paths(&path))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{name} is not installed (Debian packages slapd and ldap-utils)"))
}

/// The module directory holding back_mdb.so; None when slapd has no
/// module directory (mdb then has to be built in).
fn find_modules() -> Result<Option<PathBuf>, String> {
    Ok(MODULE_DIRS
        .iter()
        .map(PathBuf::from)
        .find(|d| d.join("back_mdb.so").is_file()))
}
