//! Moving attributes from a packet under one shared secret to a packet under
//! another: everything is copied in order, except the Message-Authenticator
//! (the builder signs its own) and whatever the caller strips, and every
//! attribute the dictionary marks as encrypted is decrypted with the old
//! secret and authenticator and encrypted again with the new ones.

use std::collections::HashMap;

use rand::RngCore;

use crate::radius::dict::{Dictionary, Encrypt};
use crate::radius::{Attr, Authenticator, EncodeError, Packet, PacketBuilder, attr, crypto};

/// Which attributes are encrypted, by (vendor, type).
#[derive(Clone, Debug)]
pub(crate) struct CryptTable {
    map: HashMap<(u32, u8), Crypt>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Crypt {
    kind: Encrypt,
    has_tag: bool,
}

impl CryptTable {
    pub(crate) fn from_dictionary(d: &Dictionary) -> CryptTable {
        let mut map = HashMap::new();
        for (def, kind) in d.encrypted() {
            if let Ok(t) = u8::try_from(def.number) {
                map.insert(
                    (def.vendor, t),
                    Crypt {
                        kind,
                        has_tag: def.has_tag,
                    },
                );
            }
        }
        // The attributes the proxy must always get right, whatever the
        // dictionary on disk says.
        for (key, kind, has_tag) in [
            ((0, attr::USER_PASSWORD), Encrypt::UserPassword, false),
            ((0, attr::TUNNEL_PASSWORD), Encrypt::Salted, true),
            (
                (attr::VENDOR_MICROSOFT, attr::MS_CHAP_MPPE_KEYS),
                Encrypt::UserPassword,
                false,
            ),
            (
                (attr::VENDOR_MICROSOFT, attr::MS_MPPE_SEND_KEY),
                Encrypt::Salted,
                false,
            ),
            (
                (attr::VENDOR_MICROSOFT, attr::MS_MPPE_RECV_KEY),
                Encrypt::Salted,
                false,
            ),
        ] {
            map.insert(key, Crypt { kind, has_tag });
        }
        CryptTable { map }
    }

    fn get(&self, vendor: u32, typ: u8) -> Option<Crypt> {
        self.map.get(&(vendor, typ)).copied()
    }

    fn has_vendor(&self, vendor: u32) -> bool {
        // Few vendors carry encrypted attributes; a linear scan is cheap and
        // only runs for VSAs.
        self.map.keys().any(|(v, _)| *v == vendor)
    }
}

/// Why a packet could not be carried across.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RewriteError {
    /// An encrypted attribute did not decrypt (wrong length or format).
    BadEncrypted { vendor: u32, typ: u8 },
    /// The result would not fit a RADIUS packet.
    TooLarge,
}

impl From<EncodeError> for RewriteError {
    fn from(_: EncodeError) -> Self {
        RewriteError::TooLarge
    }
}

/// One side of a secret boundary: the shared secret and the authenticator
/// the encryption is keyed with.
#[derive(Clone, Copy)]
pub(crate) struct Side<'a> {
    pub secret: &'a [u8],
    pub auth: &'a Authenticator,
}

pub(crate) struct Rewriter<'a, R: RngCore> {
    pub crypt: &'a CryptTable,
    pub from: Side<'a>,
    pub to: Side<'a>,
    pub rng: &'a mut R,
}

impl<R: RngCore> Rewriter<'_, R> {
    /// Copies the attributes of `p` for which `keep` holds into `b`; the
    /// Message-Authenticator is never copied.
    pub(crate) fn copy(
        &mut self,
        p: &Packet<'_>,
        b: &mut PacketBuilder,
        keep: impl Fn(&Attr<'_>) -> bool,
    ) -> Result<(), RewriteError> {
        for a in p.attributes() {
            if a.typ == attr::MESSAGE_AUTHENTICATOR || !keep(&a) {
                continue;
            }
            if a.typ == attr::VENDOR_SPECIFIC {
                if let Some((vendor, subs)) = a.vsa() {
                    if self.crypt.has_vendor(vendor) {
                        let mut body = Vec::with_capacity(a.value.len());
                        body.extend_from_slice(&vendor.to_be_bytes());
                        for s in subs {
                            let v = match self.crypt.get(vendor, s.typ) {
                                Some(c) => self.reencrypt(c, s.value, vendor, s.typ)?,
                                None => s.value.to_vec(),
                            };
                            let len =
                                u8::try_from(2 + v.len()).map_err(|_| RewriteError::TooLarge)?;
                            body.push(s.typ);
                            body.push(len);
                            body.extend_from_slice(&v);
                        }
                        b.push(attr::VENDOR_SPECIFIC, &body)?;
                        continue;
                    }
                }
            } else if let Some(c) = self.crypt.get(0, a.typ) {
                let v = self.reencrypt(c, a.value, 0, a.typ)?;
                b.push(a.typ, &v)?;
                continue;
            }
            b.push_raw(a.raw(p))?;
        }
        Ok(())
    }

    fn reencrypt(
        &mut self,
        c: Crypt,
        value: &[u8],
        vendor: u32,
        typ: u8,
    ) -> Result<Vec<u8>, RewriteError> {
        let bad = RewriteError::BadEncrypted { vendor, typ };
        let (from, to) = (self.from, self.to);
        match c.kind {
            Encrypt::UserPassword => {
                let plain =
                    crypto::unhide_password(value, from.secret, from.auth).map_err(|_| bad)?;
                crypto::hide_password(&plain, to.secret, to.auth).map_err(|_| bad)
            }
            Encrypt::Salted => {
                let (tag, body) = if c.has_tag {
                    value
                        .split_first()
                        .map(|(t, rest)| (Some(*t), rest))
                        .ok_or(bad)?
                } else {
                    (None, value)
                };
                let plain = crypto::salt_decrypt(body, from.secret, from.auth).map_err(|_| bad)?;
                let mut salt = [0u8; 2];
                self.rng.fill_bytes(&mut salt);
                salt[0] |= 0x80;
                let enc =
                    crypto::salt_encrypt(&plain, to.secret, to.auth, salt).map_err(|_| bad)?;
                Ok(match tag {
                    Some(t) => {
                        let mut v = Vec::with_capacity(1 + enc.len());
                        v.push(t);
                        v.extend_from_slice(&enc);
                        v
                    }
                    None => enc,
                })
            }
            // Ascend's scheme cannot be re-keyed without its own algorithm;
            // such values are relayed unchanged, as FreeRADIUS does.
            Encrypt::Ascend => Ok(value.to_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radius::Code;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn reencrypts_password_tunnel_password_and_mppe_keys() {
        let table = CryptTable::from_dictionary(&Dictionary::builtin());
        let (sa, aa) = (b"secret-a".as_slice(), [1u8; 16]);
        let (sb, ab) = (b"secret-b".as_slice(), [2u8; 16]);
        let mut rng = StdRng::seed_from_u64(1);

        let mut src = PacketBuilder::new(Code::ACCESS_ACCEPT, 1, &[0; 16]);
        src.push_message_authenticator().expect("fits");
        src.push(
            attr::USER_PASSWORD,
            &crypto::hide_password(b"pw", sa, &aa).expect("hide"),
        )
        .expect("fits");
        let mut tp = vec![0x01];
        tp.extend(crypto::salt_encrypt(b"tunnel", sa, &aa, [0x81, 2]).expect("enc"));
        src.push(attr::TUNNEL_PASSWORD, &tp).expect("fits");
        src.push_vsa(
            311,
            attr::MS_MPPE_SEND_KEY,
            &crypto::salt_encrypt(&[7; 32], sa, &aa, [0x90, 0]).expect("enc"),
        )
        .expect("fits");
        src.push(attr::REPLY_MESSAGE, b"hello").expect("fits");
        let src = src.finish_response(sa, &aa);
        let p = Packet::parse(&src).expect("valid");

        let mut out = PacketBuilder::new(Code::ACCESS_ACCEPT, 1, &[0; 16]);
        let mut rw = Rewriter {
            crypt: &table,
            from: Side {
                secret: sa,
                auth: &aa,
            },
            to: Side {
                secret: sb,
                auth: &ab,
            },
            rng: &mut rng,
        };
        rw.copy(&p, &mut out, |a: &Attr<'_>| a.typ != attr::REPLY_MESSAGE)
            .expect("rewrites");
        let out = out.finish_response(sb, &ab);
        let q = Packet::parse(&out).expect("valid");
        let types: Vec<u8> = q.attributes().map(|a| a.typ).collect();
        assert_eq!(
            types,
            vec![
                attr::USER_PASSWORD,
                attr::TUNNEL_PASSWORD,
                attr::VENDOR_SPECIFIC
            ]
        );
        let pw = q.find(attr::USER_PASSWORD).expect("pw").value;
        assert_eq!(
            &crypto::unhide_password(pw, sb, &ab).expect("unhide")[..],
            b"pw"
        );
        let tp = q.find(attr::TUNNEL_PASSWORD).expect("tp").value;
        assert_eq!(tp[0], 0x01, "tag kept");
        assert_eq!(
            &crypto::salt_decrypt(&tp[1..], sb, &ab).expect("dec")[..],
            b"tunnel"
        );
        let (vendor, mut subs) = q
            .find(attr::VENDOR_SPECIFIC)
            .and_then(|a| a.vsa())
            .expect("vsa");
        let key = subs.next().expect("sub");
        assert_eq!((vendor, key.typ), (311, attr::MS_MPPE_SEND_KEY));
        assert_eq!(
            &crypto::salt_decrypt(key.value, sb, &ab).expect("dec")[..],
            &[7; 32]
        );
    }

    #[test]
    fn undecryptable_value_is_an_error() {
        let table = CryptTable::from_dictionary(&Dictionary::builtin());
        let mut src = PacketBuilder::new(Code::ACCESS_ACCEPT, 1, &[0; 16]);
        src.push(attr::TUNNEL_PASSWORD, &[1, 0x80, 0, 1, 2])
            .expect("fits");
        let src = src.finish_response(b"a", &[0; 16]);
        let p = Packet::parse(&src).expect("valid");
        let mut out = PacketBuilder::new(Code::ACCESS_ACCEPT, 1, &[0; 16]);
        let mut rng = StdRng::seed_from_u64(1);
        let mut rw = Rewriter {
            crypt: &table,
            from: Side {
                secret: b"a",
                auth: &[0; 16],
            },
            to: Side {
                secret: b"b",
                auth: &[0; 16],
            },
            rng: &mut rng,
        };
        assert_eq!(
            rw.copy(&p, &mut out, |_: &Attr<'_>| true),
            Err(RewriteError::BadEncrypted {
                vendor: 0,
                typ: attr::TUNNEL_PASSWORD
            })
        );
    }
}
