//! OTP seeds at rest: sealed with ChaCha20-Poly1305 under a key kept in its
//! own file, created with mode 0600 on first run. The user name is bound as
//! associated data, so a sealed seed copied to another user's row does not
//! open.

use std::fmt;
use std::io::Write;
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use zeroize::Zeroizing;

use super::StoreError;

const NONCE_LEN: usize = 12;

/// The key that seals OTP seeds.
pub struct SeedKey(ChaCha20Poly1305);

impl fmt::Debug for SeedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SeedKey(<redacted>)")
    }
}

impl SeedKey {
    pub fn from_bytes(key: &[u8; 32]) -> SeedKey {
        SeedKey(ChaCha20Poly1305::new(Key::from_slice(key)))
    }

    /// Reads the key file, or creates it (mode 0600, 32 random bytes as hex)
    /// when it does not exist.
    pub fn load_or_create(path: &Path) -> Result<SeedKey, StoreError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes = Zeroizing::new(hex_decode(text.trim()).ok_or(StoreError::BadKeyFile)?);
                let key: [u8; 32] = bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| StoreError::BadKeyFile)?;
                Ok(SeedKey::from_bytes(&key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = Zeroizing::new([0u8; 32]);
                rand::rng().fill_bytes(key.as_mut());
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(StoreError::io)?;
                }
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                let mut f = opts.open(path).map_err(StoreError::io)?;
                let text = Zeroizing::new(hex_encode(key.as_ref()));
                f.write_all(text.as_bytes()).map_err(StoreError::io)?;
                f.write_all(b"\n").map_err(StoreError::io)?;
                f.sync_all().map_err(StoreError::io)?;
                Ok(SeedKey::from_bytes(&key))
            }
            Err(e) => Err(StoreError::io(e)),
        }
    }

    /// nonce || ciphertext+tag.
    pub fn seal(&self, user: &str, seed: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let ct = self
            .0
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: seed,
                    aad: user.as_bytes(),
                },
            )
            .expect("encryption of an in-memory buffer cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        out
    }

    pub fn open(&self, user: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(StoreError::SealBroken);
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        self.0
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: user.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| StoreError::SealBroken)
    }
}

pub(crate) fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(crate) fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_bind_to_user() {
        let k = SeedKey::from_bytes(&[7; 32]);
        let s = k.seal("alice", b"seed-bytes");
        assert_eq!(&k.open("alice", &s).expect("opens")[..], b"seed-bytes");
        assert!(matches!(k.open("bob", &s), Err(StoreError::SealBroken)));
        let other = SeedKey::from_bytes(&[8; 32]);
        assert!(matches!(
            other.open("alice", &s),
            Err(StoreError::SealBroken)
        ));
        assert!(matches!(
            k.open("alice", &s[..10]),
            Err(StoreError::SealBroken)
        ));
        assert_eq!(format!("{k:?}"), "SeedKey(<redacted>)");
    }

    #[test]
    fn key_file_is_created_0600_and_reloaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("sub/seed.key");
        let k1 = SeedKey::load_or_create(&p).expect("create");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let k2 = SeedKey::load_or_create(&p).expect("reload");
        assert_eq!(
            &k2.open("u", &k1.seal("u", b"x")).expect("same key")[..],
            b"x"
        );
        std::fs::write(&p, "not hex").expect("write");
        assert!(matches!(
            SeedKey::load_or_create(&p),
            Err(StoreError::BadKeyFile)
        ));
    }
}
