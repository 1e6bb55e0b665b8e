//! What the load generator and the store benchmark share: the bench users
//! and their seeds.

use std::path::Path;

use mfa_proxy::mfa::otp::TotpParams;
use mfa_proxy::store::{Method, SeedKey, SqliteStore, Store, Token, User};

/// The TOTP seed of bench user `i`: 20 bytes, derived from the index.
pub fn seed_for(i: u64) -> Vec<u8> {
    format!("bench-seed-{i:09}").into_bytes()
}

/// Creates the store in `dir` (`mfa.db`, `seed.key`) with `users` users:
/// `u0`, `u1`, … each with an active TOTP token (seed [`seed_for`]), or with
/// `push`, `p0`, `p1`, … whose method is push, each with a phone number.
pub fn populate(dir: &Path, users: u64, push: bool) -> SqliteStore {
    let key = SeedKey::load_or_create(&dir.join("seed.key")).expect("key");
    let store = SqliteStore::open(&dir.join("mfa.db"), key).expect("store");
    for i in 0..users {
        if push {
            let user = User {
                phone: Some(format!("+49301{i:07}")),
                ..User::new(format!("p{i}"), Method::Push)
            };
            store.add_user(&user).expect("user");
            continue;
        }
        let name = format!("u{i}");
        store
            .add_user(&User::new(name.clone(), Method::Totp))
            .expect("user");
        let t = Token {
            active: true,
            ..Token::totp(name, TotpParams::default())
        };
        store.add_token(&t, &seed_for(i)).expect("token");
    }
    store
}
