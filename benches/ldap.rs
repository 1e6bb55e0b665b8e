//! The first factor from a directory (`[primary] mode = "ldap"`): how long
//! one password check takes for a wrong password and for an unknown user,
//! which must not tell them apart, with the right password beside them for
//! scale. Against a private slapd (tests/support/slapd.rs, 1,000 users)
//! over LDAPS with the test CA, through `directory::auth::Pool` with its
//! kept connections, as the proxy runs it. The three kinds take turns, so
//! that drift (other builds on the machine) falls on each alike; each
//! line also gives the LDAP operations per check, which must be equal.
//!
//!     cargo bench --bench ldap [-- ROUNDS]     (default 2000)

#[path = "../tests/support/slapd.rs"]
mod slapd;

use std::path::Path;
use std::time::{Duration, Instant};

use mfa_proxy::config::Config;
use mfa_proxy::directory::auth::{Operations, Pool, Verdict};
use mfa_proxy::directory::ldap::Refusal;
use mfa_proxy::secret::Secret;
use slapd::{BASE_DN, SYNC_DN, Slapd, Tree, user_name, user_password};

const USERS: usize = 1000;

struct Kind {
    name: &'static str,
    user: fn(usize) -> String,
    password: fn(usize) -> String,
    want: fn(Verdict) -> bool,
    times: Vec<Duration>,
    ops: Operations,
}

impl Kind {
    fn new(
        name: &'static str,
        user: fn(usize) -> String,
        password: fn(usize) -> String,
        want: fn(Verdict) -> bool,
    ) -> Kind {
        Kind {
            name,
            user,
            password,
            want,
            times: Vec::new(),
            ops: Operations::default(),
        }
    }
}

fn wrong(_: usize) -> String {
    "not-the-password".to_owned()
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2000);
    let Some(server) = Slapd::start_or_skip(Tree {
        users: USERS,
        disabled: 0,
    }) else {
        return;
    };
    let text = format!(
        "[server]\nauth_listen = [\"127.0.0.1:1812\"]\n\
         [[client]]\nname = \"nas\"\naddress = \"127.0.0.1\"\nsecret = \"bench-nas-secret-0123456789\"\n\
         [primary]\nmode = \"ldap\"\ndirectory = \"corp\"\n\
         [[directory]]\nname = \"corp\"\nurl = \"{}\"\nca_file = \"{}\"\n\
         bind_dn = \"{SYNC_DN}\"\nbind_password = \"{}\"\nbase_dn = \"{BASE_DN}\"\n\
         filter = \"(objectClass=inetOrgPerson)\"\nname_attribute = \"sAMAccountName\"\n",
        server.ldaps_url(),
        server.ca_file().display(),
        server.sync_password()
    );
    let config = Config::from_toml(&text, Path::new("bench.toml")).expect("config");
    let dir = &config.directories[0];
    let pool = Pool::new(dir);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let refused = |v| v == Verdict::Refused(Refusal::WrongPasswordOrUnknownUser);
    let mut kinds = [
        Kind::new(
            "wrong password",
            |i| user_name(1 + i % USERS),
            wrong,
            refused,
        ),
        Kind::new("unknown user", |i| format!("nobody{i:06}"), wrong, refused),
        Kind::new(
            "right password",
            |i| user_name(1 + i % USERS),
            |i| user_password(1 + i % USERS),
            |v| v == Verdict::Accepted,
        ),
    ];
    let check = |user: &str, password: &str| {
        let r = rt.block_on(pool.check(dir, user, &Secret::new(password.as_bytes().to_vec())));
        Verdict::of(&r)
    };
    // Warm up: connections made, caches filled.
    for i in 0..50 {
        for k in &kinds {
            check(&(k.user)(i), &(k.password)(i));
        }
    }
    for i in 0..rounds {
        let n = kinds.len();
        for j in 0..n {
            // Each kind first in its turn.
            let k = &mut kinds[(i + j) % n];
            let (user, password) = ((k.user)(i), (k.password)(i));
            let before = pool.operations();
            let t = Instant::now();
            let v = check(&user, &password);
            k.times.push(t.elapsed());
            let after = pool.operations();
            assert!((k.want)(v), "{}: {v:?}", k.name);
            k.ops.connections += after.connections - before.connections;
            k.ops.service_binds += after.service_binds - before.service_binds;
            k.ops.searches += after.searches - before.searches;
            k.ops.user_binds += after.user_binds - before.user_binds;
        }
    }
    println!(
        "{rounds} checks of each kind, slapd {USERS} users, LDAPS, kept connections (µs)\n\
         {:<16} {:>8} {:>8} {:>8} {:>8} {:>8}   per check: searches, user binds, new connections",
        "", "median", "mean", "p90", "p99", "max"
    );
    for k in &mut kinds {
        k.times.sort();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let at = |q: f64| us(k.times[((k.times.len() - 1) as f64 * q) as usize]);
        let mean = k.times.iter().map(|&d| us(d)).sum::<f64>() / k.times.len() as f64;
        let per = |n: u64| n as f64 / rounds as f64;
        println!(
            "{:<16} {:>8.0} {:>8.0} {:>8.0} {:>8.0} {:>8.0}   {:.2}, {:.2}, {:.3}",
            k.name,
            at(0.5),
            mean,
            at(0.9),
            at(0.99),
            at(1.0),
            per(k.ops.searches),
            per(k.ops.user_binds),
            per(k.ops.connections),
        );
    }
}
