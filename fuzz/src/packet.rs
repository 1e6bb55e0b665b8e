//! The `packet` target: the wire parser on arbitrary bytes.
//!
//! Whatever parses is read through every accessor, its attributes and
//! vendor sub-attributes are walked, every encrypted value is decrypted with
//! a fixed secret (and encrypted back), its signatures are checked, and it
//! is re-encoded with the builder, re-parsed and compared (hickory-dns's
//! `fuzz_targets/message.rs` pattern). Nothing may panic, and every
//! invariant below is a property the engine relies on.

use std::sync::OnceLock;

use mfa_proxy::radius::dict::Dictionary;
use mfa_proxy::radius::{AUTH_LEN, Code, HEADER_LEN, Packet, PacketBuilder, attr, crypto};

/// The secret everything is decrypted and signed with.
pub const SECRET: &[u8] = b"xyzzy5461";

fn dictionary() -> &'static Dictionary {
    static D: OnceLock<Dictionary> = OnceLock::new();
    D.get_or_init(Dictionary::builtin)
}

pub fn run(data: &[u8]) {
    let p = match Packet::parse(data) {
        Ok(p) => p,
        Err(e) => {
            // Errors carry no packet bytes and always have a name.
            assert!(!e.kind().is_empty());
            let _ = e.to_string();
            return;
        }
    };
    check_view(data, &p);
    check_attributes(&p);
    check_crypto(&p);
    check_reencode(&p);
}

/// The header accessors agree with the bytes.
fn check_view(data: &[u8], p: &Packet<'_>) {
    let bytes = p.as_bytes();
    let declared = usize::from(u16::from_be_bytes([data[2], data[3]]));
    assert_eq!(p.len(), declared, "the view ends at the Length field");
    assert_eq!(bytes, &data[..declared]);
    assert!((HEADER_LEN..=4096).contains(&p.len()));
    assert_eq!(p.is_empty(), p.len() == HEADER_LEN);
    assert_eq!(p.code(), Code(data[0]));
    assert_eq!(p.identifier(), data[1]);
    assert_eq!(&p.authenticator()[..], &data[4..HEADER_LEN]);
    let _ = (p.code().name(), p.code().to_string(), format!("{p:?}"));
    let _ = p.requires_message_authenticator();
}

/// The attributes exactly fill the packet; every view is consistent.
fn check_attributes(p: &Packet<'_>) {
    let bytes = p.as_bytes();
    let dict = dictionary();
    let mut end = HEADER_LEN;
    let mut mas = 0;
    for a in p.attributes() {
        assert_eq!(a.offset, end, "attributes are contiguous");
        let raw = a.raw(p);
        assert_eq!(raw.len(), 2 + a.value.len());
        assert_eq!(raw[0], a.typ);
        assert_eq!(usize::from(raw[1]), raw.len());
        assert_eq!(&raw[2..], a.value);
        assert!(a.value.len() <= mfa_proxy::radius::MAX_ATTR_VALUE_LEN);
        end += raw.len();
        let _ = format!("{a:?}");
        let _ = dict.name_of(0, u32::from(a.typ));
        if let Ok(v) = <[u8; 4]>::try_from(a.value) {
            let _ = dict.value_name(0, u32::from(a.typ), u64::from(u32::from_be_bytes(v)));
        }
        if a.typ == attr::MESSAGE_AUTHENTICATOR {
            mas += 1;
            assert_eq!(p.message_authenticator_offset(), Some(a.offset + 2));
            assert_eq!(p.message_authenticator().map(|m| &m[..]), Some(a.value));
        }
        match a.vsa() {
            Some((vendor, subs)) => {
                assert_eq!(a.typ, attr::VENDOR_SPECIFIC);
                assert_eq!(
                    u32::from_be_bytes(a.value[..4].try_into().expect("4")),
                    vendor
                );
                let _ = dict.vendor_name(vendor);
                let mut sum = 0;
                for s in subs {
                    let _ = format!("{s:?}");
                    sum += 2 + s.value.len();
                    let _ = dict.name_of(vendor, u32::from(s.typ));
                    if vendor == attr::VENDOR_MICROSOFT
                        && [attr::MS_MPPE_SEND_KEY, attr::MS_MPPE_RECV_KEY].contains(&s.typ)
                    {
                        salted_round_trip(s.value, p.authenticator());
                    }
                }
                assert_eq!(sum, a.value.len() - 4, "sub-attributes fill the VSA");
                assert!(sum > 0);
            }
            None => {
                // Only a VSA in the recommended format is split.
                if a.typ == attr::VENDOR_SPECIFIC && a.value.len() > 4 {
                    assert!(!well_formed_subs(&a.value[4..]));
                }
            }
        }
    }
    assert_eq!(end, bytes.len(), "the attributes fill the packet");
    assert!(mas <= 1);
    if mas == 0 {
        assert!(p.message_authenticator_offset().is_none());
    }
    for t in [
        attr::USER_NAME,
        attr::USER_PASSWORD,
        attr::STATE,
        attr::PROXY_STATE,
        attr::EAP_MESSAGE,
    ] {
        assert_eq!(p.has(t), p.attributes().any(|a| a.typ == t));
        assert_eq!(p.find(t), p.attributes().find(|a| a.typ == t));
    }
}

fn well_formed_subs(body: &[u8]) -> bool {
    let mut off = 0;
    while off < body.len() {
        if off + 2 > body.len() {
            return false;
        }
        let len = usize::from(body[off + 1]);
        if len < 2 || off + len > body.len() {
            return false;
        }
        off += len;
    }
    true
}

/// Salted decryption (Tunnel-Password, MS-MPPE keys) never panics, and what
/// it returns encrypts and decrypts back to itself.
fn salted_round_trip(value: &[u8], auth: &[u8; AUTH_LEN]) {
    if let Ok(plain) = crypto::salt_decrypt(value, SECRET, auth) {
        let salt = [value[0], value[1]];
        if let Ok(again) = crypto::salt_encrypt(&plain, SECRET, auth, salt) {
            let back = crypto::salt_decrypt(&again, SECRET, auth).expect("our own encryption");
            assert_eq!(&back[..], &plain[..]);
        }
    }
}

/// Password unhiding, salted decryption and both signatures.
fn check_crypto(p: &Packet<'_>) {
    let bytes = p.as_bytes();
    let auth = p.authenticator();
    for a in p.attributes() {
        match a.typ {
            attr::USER_PASSWORD => match crypto::unhide_password(a.value, SECRET, auth) {
                Ok(plain) => {
                    assert!(plain.len() <= a.value.len());
                    assert!(plain.last() != Some(&0), "padding is removed");
                    // Hiding the plaintext again gives a prefix of the
                    // hidden value: the padding it dropped was zeros.
                    let again = crypto::hide_password(&plain, SECRET, auth).expect("<= 128");
                    assert!(a.value.starts_with(&again));
                }
                Err(_) => {
                    let n = a.value.len();
                    assert!(n == 0 || n > 128 || n % 16 != 0);
                }
            },
            attr::TUNNEL_PASSWORD if !a.value.is_empty() => {
                // A tag octet, then the salted value.
                salted_round_trip(&a.value[1..], auth);
                salted_round_trip(a.value, auth);
            }
            _ => {}
        }
    }
    let _ = crypto::verify_packet_authenticator(bytes, &[0; AUTH_LEN], SECRET);
    let _ = crypto::verify_packet_authenticator(bytes, auth, SECRET);
    if let Some(off) = p.message_authenticator_offset() {
        for a in [auth, &[0; AUTH_LEN]] {
            let ma = crypto::message_authenticator(bytes, off, a, SECRET);
            let ok = crypto::verify_message_authenticator(bytes, off, a, SECRET);
            assert_eq!(ok, ma[..] == bytes[off..off + AUTH_LEN]);
        }
    }
}

/// Build the same packet again attribute by attribute, parse it, compare.
fn check_reencode(p: &Packet<'_>) {
    let bytes = p.as_bytes();
    let auth = p.authenticator();
    let mut b = PacketBuilder::new(p.code(), p.identifier(), auth);
    let mut raw = PacketBuilder::new(p.code(), p.identifier(), auth);
    for a in p.attributes() {
        if a.typ == attr::MESSAGE_AUTHENTICATOR {
            b.push_message_authenticator().expect("fits where it was");
        } else {
            match a.vsa() {
                // A VSA of one sub-attribute through push_vsa.
                Some((vendor, mut subs)) if subs.clone().count() == 1 => {
                    let s = subs.next().expect("one");
                    b.push_vsa(vendor, s.typ, s.value)
                        .expect("fits where it was");
                }
                _ => {
                    b.push(a.typ, a.value).expect("fits where it was");
                }
            }
        }
        raw.push_raw(a.raw(p)).expect("fits where it was");
    }
    assert_eq!(b.len(), bytes.len());
    let built = b.finish_request(SECRET);
    let q = Packet::parse(&built).expect("our own packets parse");
    assert_eq!(q.code(), p.code());
    assert_eq!(q.identifier(), p.identifier());
    assert_eq!(q.authenticator(), auth);
    assert_eq!(
        q.message_authenticator_offset(),
        p.message_authenticator_offset()
    );
    match q.message_authenticator_offset() {
        None => assert_eq!(&built[..], bytes, "no signature: byte for byte the same"),
        Some(off) => {
            // Everything but the Message-Authenticator value is the same,
            // and the new one verifies.
            assert_eq!(&built[..off], &bytes[..off]);
            assert_eq!(&built[off + AUTH_LEN..], &bytes[off + AUTH_LEN..]);
            assert!(crypto::verify_message_authenticator(
                &built, off, auth, SECRET
            ));
        }
    }
    let again: Vec<_> = q
        .attributes()
        .map(|a| (a.typ, a.offset, a.value.len()))
        .collect();
    let orig: Vec<_> = p
        .attributes()
        .map(|a| (a.typ, a.offset, a.value.len()))
        .collect();
    assert_eq!(again, orig);
    // Copied raw, then signed as a response to the packet itself.
    let resp = raw.finish_response(SECRET, auth);
    assert!(crypto::verify_packet_authenticator(&resp, auth, SECRET));
    let r = Packet::parse(&resp).expect("our own packets parse");
    assert_eq!(&resp[HEADER_LEN..], &bytes[HEADER_LEN..]);
    assert_eq!(r.attributes().count(), p.attributes().count());
}
