//! The shared-secret cryptography of RADIUS: authenticators (RFC 2865 §3,
//! RFC 2866 §3), Message-Authenticator (RFC 3579 §3.2), User-Password hiding
//! (RFC 2865 §5.2) and the salted encryption of Tunnel-Password (RFC 2868
//! §3.5) and MS-MPPE keys (RFC 2548 §2.4.2).
//!
//! Every comparison of a secret-derived value is constant-time. Plaintexts
//! come back in [`Zeroizing`] buffers.

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{AUTH_LEN, Authenticator, HEADER_LEN, MAX_ATTR_VALUE_LEN};

/// HMAC-MD5, as Message-Authenticator uses it.
pub type HmacMd5 = Hmac<Md5>;

/// What packets are signed and checked with: a shared secret's octets, and
/// HMAC-MD5 keyed with them.
pub trait Key {
    /// The shared secret's octets.
    fn secret(&self) -> &[u8];

    /// HMAC-MD5 keyed with the secret, ready for data.
    fn hmac(&self) -> HmacMd5 {
        HmacMd5::new_from_slice(self.secret()).expect("HMAC accepts any key length")
    }
}

impl Key for [u8] {
    fn secret(&self) -> &[u8] {
        self
    }
}

impl<const N: usize> Key for [u8; N] {
    fn secret(&self) -> &[u8] {
        self
    }
}

/// A shared secret whose HMAC key schedule is done once, when it is loaded:
/// hashing the two pad blocks per packet was a third of the MD5 work of each
/// Message-Authenticator. `Debug` prints a mask; the octets are zeroed on
/// drop. The keyed state is as good as the secret for forging a
/// Message-Authenticator, but the hmac crate does not zero it on drop; it
/// lives as long as the configuration, like the octets.
#[derive(Clone)]
pub struct SharedSecret {
    secret: Zeroizing<Vec<u8>>,
    hmac: HmacMd5,
}

impl SharedSecret {
    pub fn new(secret: &[u8]) -> SharedSecret {
        SharedSecret {
            secret: Zeroizing::new(secret.to_vec()),
            hmac: secret.hmac(),
        }
    }

    /// The secret's octets, for cryptography only.
    pub fn expose(&self) -> &[u8] {
        &self.secret
    }
}

impl Key for SharedSecret {
    fn secret(&self) -> &[u8] {
        &self.secret
    }

    fn hmac(&self) -> HmacMd5 {
        self.hmac.clone()
    }
}

impl std::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedSecret(<redacted>)")
    }
}

/// Why an encrypted attribute value cannot be decrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    #[error("hidden value of {0} octets is not a multiple of 16 in 16..=128")]
    BadHiddenLength(usize),
    #[error("plaintext of {0} octets is too long to hide")]
    PlaintextTooLong(usize),
    #[error("salted value of {0} octets is not 2 + a multiple of 16")]
    BadSaltedLength(usize),
    #[error("salt does not have its high bit set")]
    BadSalt,
    #[error("decrypted length octet exceeds the data")]
    BadInnerLength,
}

/// Request Authenticator of an Accounting-Request, or any Response
/// Authenticator: MD5(Code+Identifier+Length+`auth`+Attributes+Secret), where
/// `auth` is sixteen zeros for an Accounting-Request and the request's
/// authenticator for a response. `packet` is the whole packet; its own
/// authenticator field is ignored.
pub fn packet_authenticator(packet: &[u8], auth: &Authenticator, secret: &[u8]) -> Authenticator {
    let mut h = Md5::new();
    h.update(&packet[..4]);
    h.update(auth);
    h.update(&packet[HEADER_LEN..]);
    h.update(secret);
    h.finalize().into()
}

/// Checks a packet's authenticator field against [`packet_authenticator`], in
/// constant time.
pub fn verify_packet_authenticator(packet: &[u8], auth: &Authenticator, secret: &[u8]) -> bool {
    let expected = packet_authenticator(packet, auth, secret);
    expected.ct_eq(&packet[4..HEADER_LEN]).into()
}

/// Message-Authenticator (RFC 3579 §3.2): HMAC-MD5 over the packet with the
/// Message-Authenticator value zeroed and `auth` in the authenticator field
/// (the packet's own for Access-Request and Status-Server, zeros for
/// Accounting-Request, the request's for a response). `ma_value` is the
/// offset of the Message-Authenticator value.
pub fn message_authenticator(
    packet: &[u8],
    ma_value: usize,
    auth: &Authenticator,
    key: &(impl Key + ?Sized),
) -> Authenticator {
    let mut mac = key.hmac();
    mac.update(&packet[..4]);
    mac.update(auth);
    mac.update(&packet[HEADER_LEN..ma_value]);
    mac.update(&[0u8; AUTH_LEN]);
    mac.update(&packet[ma_value + AUTH_LEN..]);
    mac.finalize().into_bytes().into()
}

/// Checks a Message-Authenticator in constant time.
pub fn verify_message_authenticator(
    packet: &[u8],
    ma_value: usize,
    auth: &Authenticator,
    key: &(impl Key + ?Sized),
) -> bool {
    let expected = message_authenticator(packet, ma_value, auth, key);
    expected
        .ct_eq(&packet[ma_value..ma_value + AUTH_LEN])
        .into()
}

/// The keystream block b(i) = MD5(secret + previous), shared by both hiding
/// schemes.
fn keystream(secret: &[u8], first: &[u8], second: &[u8]) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(secret);
    h.update(first);
    h.update(second);
    h.finalize().into()
}

/// Hides a User-Password (RFC 2865 §5.2), or any `encrypt=1` attribute.
/// The plaintext is padded with zeros to a multiple of 16, at most 128.
pub fn hide_password(
    plain: &[u8],
    secret: &[u8],
    auth: &Authenticator,
) -> Result<Vec<u8>, CryptoError> {
    if plain.len() > 128 {
        return Err(CryptoError::PlaintextTooLong(plain.len()));
    }
    let padded = plain.len().div_ceil(16).max(1) * 16;
    let mut out = vec![0u8; padded];
    out[..plain.len()].copy_from_slice(plain);
    let mut prev: [u8; 16] = *auth;
    for chunk in out.chunks_mut(16) {
        let b = keystream(secret, &prev, &[]);
        for (c, k) in chunk.iter_mut().zip(b) {
            *c ^= k;
        }
        prev.copy_from_slice(chunk);
    }
    Ok(out)
}

/// Reveals a hidden User-Password. Trailing zero padding is removed.
pub fn unhide_password(
    hidden: &[u8],
    secret: &[u8],
    auth: &Authenticator,
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if hidden.is_empty() || hidden.len() > 128 || hidden.len() % 16 != 0 {
        return Err(CryptoError::BadHiddenLength(hidden.len()));
    }
    let mut out = Zeroizing::new(hidden.to_vec());
    let mut prev: &[u8] = auth;
    for (chunk, cipher) in out.chunks_mut(16).zip(hidden.chunks(16)) {
        let b = keystream(secret, prev, &[]);
        for (c, k) in chunk.iter_mut().zip(b) {
            *c ^= k;
        }
        prev = cipher;
    }
    let end = out.iter().rposition(|&c| c != 0).map_or(0, |i| i + 1);
    out.truncate(end);
    Ok(out)
}

/// Salted encryption (RFC 2868 §3.5, RFC 2548 §2.4.2): returns
/// salt(2) + E(len + plain + padding). `salt[0]` must have its high bit set.
pub fn salt_encrypt(
    plain: &[u8],
    secret: &[u8],
    auth: &Authenticator,
    salt: [u8; 2],
) -> Result<Vec<u8>, CryptoError> {
    if salt[0] & 0x80 == 0 {
        return Err(CryptoError::BadSalt);
    }
    // One length octet, padded to 16, plus the salt, must fit an attribute
    // (with room for a tag octet).
    let padded = (plain.len() + 1).div_ceil(16) * 16;
    if 2 + padded > MAX_ATTR_VALUE_LEN - 1 {
        return Err(CryptoError::PlaintextTooLong(plain.len()));
    }
    let mut out = vec![0u8; 2 + padded];
    out[..2].copy_from_slice(&salt);
    out[2] = plain.len() as u8;
    out[3..3 + plain.len()].copy_from_slice(plain);
    let mut b = keystream(secret, auth, &salt);
    for i in (2..out.len()).step_by(16) {
        for (c, k) in out[i..i + 16].iter_mut().zip(b) {
            *c ^= k;
        }
        b = keystream(secret, &out[i..i + 16], &[]);
    }
    Ok(out)
}

/// Reverses [`salt_encrypt`]: returns the plaintext without its length octet
/// and padding.
pub fn salt_decrypt(
    data: &[u8],
    secret: &[u8],
    auth: &Authenticator,
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if data.len() < 18 || (data.len() - 2) % 16 != 0 {
        return Err(CryptoError::BadSaltedLength(data.len()));
    }
    if data[0] & 0x80 == 0 {
        return Err(CryptoError::BadSalt);
    }
    let (salt, cipher) = data.split_at(2);
    let mut out = Zeroizing::new(cipher.to_vec());
    let mut b = keystream(secret, auth, salt);
    for (chunk, c) in out.chunks_mut(16).zip(cipher.chunks(16)) {
        for (p, k) in chunk.iter_mut().zip(b) {
            *p ^= k;
        }
        b = keystream(secret, c, &[]);
    }
    let len = usize::from(out[0]);
    if len + 1 > out.len() {
        return Err(CryptoError::BadInnerLength);
    }
    out.copy_within(1..=len, 0);
    out.truncate(len);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prepared_secret_signs_as_its_octets_do_and_never_prints() {
        let secret = b"a-shared-secret-longer-than-nothing";
        let prepared = SharedSecret::new(secret);
        let packet = [
            1u8, 7, 0, 38, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 80, 18,
        ]
        .into_iter()
        .chain([0; 16])
        .collect::<Vec<_>>();
        let auth = [3; AUTH_LEN];
        let ma = message_authenticator(&packet, 22, &auth, &prepared);
        assert_eq!(ma, message_authenticator(&packet, 22, &auth, &secret[..]));
        // Twice: the prepared state is cloned, not consumed.
        assert_eq!(ma, message_authenticator(&packet, 22, &auth, &prepared));
        assert_eq!(prepared.expose(), secret);
        assert!(!format!("{prepared:?}").contains("shared"));
    }
    use crate::radius::{Packet, attr};

    const SECRET: &[u8] = b"xyzzy5461";

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s).expect("test vector")
    }

    fn auth(s: &str) -> Authenticator {
        hex(s).try_into().expect("16 octets")
    }

    #[test]
    fn rfc2865_user_password() {
        let a = auth("0f403f9473978057bd83d5cb98f4227a");
        let hidden = hide_password(b"arctangent", SECRET, &a).expect("hide");
        assert_eq!(hidden, hex("0dbe708d93d413ce3196e43f782a0aee"));
        assert_eq!(
            &unhide_password(&hidden, SECRET, &a).expect("unhide")[..],
            b"arctangent"
        );
    }

    #[test]
    fn rfc2865_response_authenticator() {
        // RFC 2865 §7.1: the Access-Accept answering the request above.
        let resp =
            hex("0200002686fe220e7624ba2a1005f6bf9b55e0b20606000000010f06000000000e06c0a80103");
        let req_auth = auth("0f403f9473978057bd83d5cb98f4227a");
        assert!(verify_packet_authenticator(&resp, &req_auth, SECRET));
        assert!(!verify_packet_authenticator(&resp, &req_auth, b"xyzzy5462"));
    }

    #[test]
    fn rfc5997_status_server() {
        // RFC 5997 §6: Status-Server to the authentication port, and the
        // Access-Accept it gets back.
        let req =
            hex("0cda00268a54f4686fb394c52866e302185d062350125a665e2e1e8411f3e243822097c84fa3");
        let p = Packet::parse(&req).expect("valid");
        let off = p.message_authenticator_offset().expect("has MA");
        assert!(verify_message_authenticator(
            &req,
            off,
            p.authenticator(),
            SECRET
        ));
        assert!(!verify_message_authenticator(
            &req,
            off,
            p.authenticator(),
            b"xyzzy546"
        ));
        let resp = hex("02da0014ef0d552a4bf2d693ec2b6fe8b5411d66");
        assert!(verify_packet_authenticator(
            &resp,
            p.authenticator(),
            SECRET
        ));
        // And to the accounting port (the RFC prints code 02; it is 05).
        let req =
            hex("0cb30026925f6b66dd5fed571fcb1db7ad3882605012e8d6eabda910875cd91fdade26367858");
        let p = Packet::parse(&req).expect("valid");
        let off = p.message_authenticator_offset().expect("has MA");
        assert!(verify_message_authenticator(
            &req,
            off,
            p.authenticator(),
            SECRET
        ));
        let resp = hex("05b300140f6f92145f107e2f504e860a4860669c");
        assert!(verify_packet_authenticator(
            &resp,
            p.authenticator(),
            SECRET
        ));
        assert_eq!(
            p.find(attr::MESSAGE_AUTHENTICATOR).map(|a| a.value.len()),
            Some(16)
        );
    }

    #[test]
    fn password_lengths() {
        let a = [7u8; 16];
        for n in [0usize, 1, 15, 16, 17, 127, 128] {
            let plain: Vec<u8> = (1..=n as u8).collect();
            let h = hide_password(&plain, b"s", &a).expect("hide");
            assert_eq!(h.len(), n.div_ceil(16).max(1) * 16);
            assert_eq!(
                &unhide_password(&h, b"s", &a).expect("unhide")[..],
                &plain[..]
            );
        }
        assert_eq!(
            hide_password(&[1; 129], b"s", &a),
            Err(CryptoError::PlaintextTooLong(129))
        );
        for n in [0usize, 15, 17, 144] {
            assert_eq!(
                unhide_password(&vec![1; n], b"s", &a).expect_err("must fail"),
                CryptoError::BadHiddenLength(n)
            );
        }
    }

    #[test]
    fn salted_round_trip_and_errors() {
        let a = [9u8; 16];
        for n in [0usize, 1, 15, 16, 32, 200] {
            let plain = vec![0xa5; n];
            let e = salt_encrypt(&plain, b"secret", &a, [0x80, 1]).expect("encrypt");
            assert_eq!(e.len(), 2 + (n + 1).div_ceil(16) * 16);
            assert_eq!(
                &salt_decrypt(&e, b"secret", &a).expect("decrypt")[..],
                &plain[..]
            );
            // A different secret yields garbage or an error, never the plaintext.
            if let Ok(p) = salt_decrypt(&e, b"other", &a) {
                assert_ne!(&p[..], &plain[..]);
            }
        }
        assert_eq!(
            salt_encrypt(b"x", b"s", &a, [0x7f, 0]),
            Err(CryptoError::BadSalt)
        );
        assert_eq!(
            salt_encrypt(&[0; 240], b"s", &a, [0x80, 0]),
            Err(CryptoError::PlaintextTooLong(240))
        );
        assert_eq!(
            salt_decrypt(&[0x80; 17], b"s", &a).expect_err("must fail"),
            CryptoError::BadSaltedLength(17)
        );
        assert_eq!(
            salt_decrypt(&[0x00; 18], b"s", &a).expect_err("must fail"),
            CryptoError::BadSalt
        );
    }
}
