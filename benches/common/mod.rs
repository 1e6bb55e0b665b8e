//! What the load generator and the benchmarks share: the bench users, their
//! seeds, and the NAS's requests for a login.

use std::path::Path;

use mfa_proxy::mfa::Method;
use mfa_proxy::mfa::otp::TotpParams;
use mfa_proxy::radius::{Code, PacketBuilder, attr, crypto};
use mfa_proxy::store::{SeedKey, SqliteStore, Store, Token, User};

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

/// A NAS's signed Access-Request for bench user `user`, optionally
/// answering a challenge. The authenticator comes from `seq` and `user`, so
/// no two are duplicates.
#[allow(dead_code)] // not every bench builds requests
pub fn mfa_request(
    id: u8,
    seq: u64,
    user: u64,
    password: &[u8],
    state: Option<&[u8]>,
    secret: &[u8],
) -> Vec<u8> {
    let mut auth = [0u8; 16];
    auth[..8].copy_from_slice(&seq.to_be_bytes());
    auth[8..].copy_from_slice(&user.to_be_bytes());
    let mut b = PacketBuilder::new(Code::ACCESS_REQUEST, id, &auth);
    let _ = b.push_message_authenticator();
    let _ = b.push(attr::USER_NAME, format!("u{user}").as_bytes());
    let _ = b.push(
        attr::USER_PASSWORD,
        &crypto::hide_password(password, secret, &auth).expect("hide"),
    );
    if let Some(s) = state {
        let _ = b.push(attr::STATE, s);
    }
    b.finish_request(secret)
}
