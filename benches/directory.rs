//! How long `mfa-proxy directory sync` takes for 10,000 and 100,000
//! entries of a real OpenLDAP (the tests' private slapd, an AD-like tree
//! with nested groups), over LDAPS, on this machine: the first sync (every
//! user in scope added), a sync with nothing to change, and a dry run. The
//! floor is OpenLDAP's own `ldapsearch` paging the same entries with the
//! same attributes (reading the directory, nothing else).
//!
//! `cargo bench --bench directory` (ROUNDS=3 by default; SIZES="10000 100000").
//! Medians of the rounds; slapd shares the machine's cores with the sync.

#[path = "../tests/support/slapd.rs"]
mod slapd;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use slapd::{Slapd, Tree, VPN_GROUP};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn site(server: &Slapd, dir: &Path) {
    let shipped = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("proxy.toml"))
        .expect("proxy.toml");
    std::fs::write(dir.join("corp.secret"), server.sync_password()).expect("secret");
    let config = format!(
        "{shipped}\n[[directory]]\nname = \"corp\"\nurl = \"{url}\"\nbind_dn = \"{sync}\"\n\
         bind_password_file = \"corp.secret\"\nca_file = \"{ca}\"\nbase_dn = \"DC=corp,DC=example\"\n\
         filter = \"(objectClass=inetOrgPerson)\"\ngroup = \"{VPN_GROUP}\"\nname_attribute = \"sAMAccountName\"\n\
         email_attribute = \"mail\"\nphone_attribute = \"mobile\"\nlanguage_attribute = \"preferredLanguage\"\n\
         groups_attribute = \"memberOf\"\npage_size = 1000\nmax_disable = \"100%\"\n",
        url = server.ldaps_url(),
        sync = slapd::SYNC_DN,
        ca = server.ca_file().display(),
    );
    std::fs::write(dir.join("proxy.toml"), config).expect("config");
    run(dir, &["init"]);
}

fn run(dir: &Path, args: &[&str]) -> Duration {
    let started = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_mfa-proxy"))
        .args(args)
        .arg("--config")
        .arg(dir.join("proxy.toml"))
        .output()
        .expect("mfa-proxy");
    let took = started.elapsed();
    assert!(
        o.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    took
}

fn floor(server: &Slapd) -> Duration {
    let mut cmd = server.tool("ldapsearch");
    cmd.args(["-x", "-LLL", "-H", &server.ldaps_url()])
        .args(["-D", slapd::SYNC_DN, "-w", server.sync_password()])
        .args(["-E", "pr=1000/noprompt", "-b", "DC=corp,DC=example"])
        .args([
            "(objectClass=inetOrgPerson)",
            "sAMAccountName",
            "mail",
            "mobile",
            "preferredLanguage",
            "memberOf",
        ])
        .stdout(std::process::Stdio::null());
    let started = Instant::now();
    let status = cmd.status().expect("ldapsearch");
    assert!(status.success());
    started.elapsed()
}

fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let sizes: Vec<usize> = std::env::var("SIZES")
        .unwrap_or_else(|_| "10000 100000".into())
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    println!("| entries | floor: ldapsearch | first sync (adds) | sync, no change | dry run |");
    println!("|---:|---:|---:|---:|---:|");
    for users in sizes {
        let server = Slapd::start(Tree { users, disabled: 0 }).expect("slapd");
        let (mut floors, mut firsts, mut seconds, mut dries) = (vec![], vec![], vec![], vec![]);
        for _ in 0..rounds {
            let dir = tempfile::tempdir().expect("tempdir");
            site(&server, dir.path());
            floors.push(floor(&server));
            firsts.push(run(dir.path(), &["directory", "sync"]));
            seconds.push(run(dir.path(), &["directory", "sync"]));
            dries.push(run(dir.path(), &["directory", "sync", "--dry-run"]));
        }
        println!(
            "| {users} | {:.2} s | {:.2} s | {:.2} s | {:.2} s |",
            median(floors).as_secs_f64(),
            median(firsts).as_secs_f64(),
            median(seconds).as_secs_f64(),
            median(dries).as_secs_f64(),
        );
    }
}
