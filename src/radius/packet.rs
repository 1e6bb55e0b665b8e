//! A validated, borrowed view of one RADIUS datagram.

use std::fmt;

use super::{AUTH_LEN, Authenticator, HEADER_LEN, MAX_PACKET_LEN, attr};

/// A packet code (RFC 2865 §3). Unknown codes are representable: whether a
/// code is acceptable depends on where the packet arrived, which the engine
/// decides.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Code(pub u8);

impl Code {
    pub const ACCESS_REQUEST: Code = Code(1);
    pub const ACCESS_ACCEPT: Code = Code(2);
    pub const ACCESS_REJECT: Code = Code(3);
    pub const ACCOUNTING_REQUEST: Code = Code(4);
    pub const ACCOUNTING_RESPONSE: Code = Code(5);
    pub const ACCESS_CHALLENGE: Code = Code(11);
    pub const STATUS_SERVER: Code = Code(12);

    pub fn name(self) -> &'static str {
        match self.0 {
            1 => "Access-Request",
            2 => "Access-Accept",
            3 => "Access-Reject",
            4 => "Accounting-Request",
            5 => "Accounting-Response",
            11 => "Access-Challenge",
            12 => "Status-Server",
            13 => "Status-Client",
            40 => "Disconnect-Request",
            41 => "Disconnect-ACK",
            42 => "Disconnect-NAK",
            43 => "CoA-Request",
            44 => "CoA-ACK",
            45 => "CoA-NAK",
            52 => "Protocol-Error",
            _ => "Unknown",
        }
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a datagram is not a well-formed RADIUS packet. No variant carries
/// packet bytes, so an error can be logged without leaking anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("datagram of {0} octets is shorter than the 20-octet header")]
    TooShort(usize),
    #[error("datagram of {0} octets exceeds the 4096-octet maximum")]
    Oversized(usize),
    #[error("Length field {declared} is outside 20..=4096")]
    BadLength { declared: usize },
    #[error("Length field {declared} exceeds the {received} octets received")]
    Truncated { declared: usize, received: usize },
    #[error("attribute at offset {offset} has length {len}, below the minimum of 2")]
    AttributeTooShort { offset: usize, len: usize },
    #[error("attribute at offset {offset} overruns the packet end")]
    AttributeOverrun { offset: usize },
    #[error("Message-Authenticator has length {len}; it must be 18")]
    BadMessageAuthenticatorLength { len: usize },
    #[error("more than one Message-Authenticator")]
    DuplicateMessageAuthenticator,
}

impl DecodeError {
    /// A short, stable name for counters and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::TooShort(_) => "too_short",
            DecodeError::Oversized(_) => "oversized",
            DecodeError::BadLength { .. } => "bad_length",
            DecodeError::Truncated { .. } => "truncated",
            DecodeError::AttributeTooShort { .. } => "attribute_too_short",
            DecodeError::AttributeOverrun { .. } => "attribute_overrun",
            DecodeError::BadMessageAuthenticatorLength { .. } => "bad_message_authenticator_length",
            DecodeError::DuplicateMessageAuthenticator => "duplicate_message_authenticator",
        }
    }
}

/// A well-formed RADIUS packet borrowed from a datagram.
///
/// Construction checks every length rule, so iteration cannot fail. Octets
/// after the Length field are padding (RFC 2865 §3) and are not part of the
/// view.
#[derive(Clone, Copy)]
pub struct Packet<'a> {
    bytes: &'a [u8],
    /// Offset of the Message-Authenticator *value*, if present.
    ma_value: Option<u16>,
}

impl fmt::Debug for Packet<'_> {
    // Attribute values may be secrets (passwords, keys): print only the shape.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Packet")
            .field("code", &self.code())
            .field("identifier", &self.identifier())
            .field("len", &self.bytes.len())
            .field("attributes", &self.attributes().count())
            .finish()
    }
}

impl<'a> Packet<'a> {
    /// Validates `datagram` and returns a view over it.
    pub fn parse(datagram: &'a [u8]) -> Result<Packet<'a>, DecodeError> {
        if datagram.len() < HEADER_LEN {
            return Err(DecodeError::TooShort(datagram.len()));
        }
        if datagram.len() > MAX_PACKET_LEN {
            return Err(DecodeError::Oversized(datagram.len()));
        }
        let declared = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
        if !(HEADER_LEN..=MAX_PACKET_LEN).contains(&declared) {
            return Err(DecodeError::BadLength { declared });
        }
        if declared > datagram.len() {
            return Err(DecodeError::Truncated {
                declared,
                received: datagram.len(),
            });
        }
        let bytes = &datagram[..declared];
        let mut ma_value = None;
        let mut off = HEADER_LEN;
        while off < bytes.len() {
            if off + 2 > bytes.len() {
                return Err(DecodeError::AttributeOverrun { offset: off });
            }
            let len = usize::from(bytes[off + 1]);
            if len < 2 {
                return Err(DecodeError::AttributeTooShort { offset: off, len });
            }
            if off + len > bytes.len() {
                return Err(DecodeError::AttributeOverrun { offset: off });
            }
            if bytes[off] == attr::MESSAGE_AUTHENTICATOR {
                if len != 18 {
                    return Err(DecodeError::BadMessageAuthenticatorLength { len });
                }
                if ma_value.is_some() {
                    return Err(DecodeError::DuplicateMessageAuthenticator);
                }
                // off + 2 < 4096, so it fits.
                ma_value = Some((off + 2) as u16);
            }
            off += len;
        }
        Ok(Packet { bytes, ma_value })
    }

    pub fn code(&self) -> Code {
        Code(self.bytes[0])
    }

    pub fn identifier(&self) -> u8 {
        self.bytes[1]
    }

    pub fn authenticator(&self) -> &'a Authenticator {
        self.bytes[4..HEADER_LEN]
            .try_into()
            .expect("header length checked in parse")
    }

    /// The packet's octets, up to its Length field.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.len() == HEADER_LEN
    }

    /// Offset of the Message-Authenticator value within [`Self::as_bytes`].
    pub fn message_authenticator_offset(&self) -> Option<usize> {
        self.ma_value.map(usize::from)
    }

    pub fn message_authenticator(&self) -> Option<&'a [u8; AUTH_LEN]> {
        let off = self.message_authenticator_offset()?;
        self.bytes[off..off + AUTH_LEN].try_into().ok()
    }

    pub fn attributes(&self) -> AttrIter<'a> {
        AttrIter {
            bytes: self.bytes,
            off: HEADER_LEN,
        }
    }

    /// First attribute of type `typ`.
    pub fn find(&self, typ: u8) -> Option<Attr<'a>> {
        self.attributes().find(|a| a.typ == typ)
    }

    pub fn has(&self, typ: u8) -> bool {
        self.find(typ).is_some()
    }

    /// RFC 3579 §3.2 and RFC 5997 §3: packets carrying EAP, and Status-Server,
    /// are only valid with a Message-Authenticator.
    pub fn requires_message_authenticator(&self) -> bool {
        self.code() == Code::STATUS_SERVER || self.has(attr::EAP_MESSAGE)
    }
}

/// One attribute: type, value, and where it starts in the packet.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Attr<'a> {
    pub typ: u8,
    pub value: &'a [u8],
    /// Offset of the type octet within the packet.
    pub offset: usize,
}

impl fmt::Debug for Attr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Attr({}, {} octets)", self.typ, self.value.len())
    }
}

impl<'a> Attr<'a> {
    /// The whole attribute on the wire, header included.
    pub fn raw(&self, packet: &Packet<'a>) -> &'a [u8] {
        &packet.as_bytes()[self.offset..self.offset + 2 + self.value.len()]
    }

    /// Sub-attributes of a Vendor-Specific attribute in the RFC 2865 §5.26
    /// recommended format (vendor id, then type/length/value triples). `None`
    /// when this is not a VSA in that format; such VSAs are relayed as they
    /// are.
    pub fn vsa(&self) -> Option<(u32, VsaIter<'a>)> {
        if self.typ != attr::VENDOR_SPECIFIC || self.value.len() < 4 {
            return None;
        }
        let vendor = u32::from_be_bytes(self.value[..4].try_into().ok()?);
        let body = &self.value[4..];
        // Validate the whole body first so the iterator cannot fail.
        let mut off = 0;
        while off < body.len() {
            if off + 2 > body.len() {
                return None;
            }
            let len = usize::from(body[off + 1]);
            if len < 2 || off + len > body.len() {
                return None;
            }
            off += len;
        }
        if body.is_empty() {
            return None;
        }
        Some((vendor, VsaIter { body, off: 0 }))
    }
}

/// Iterator over the attributes of a validated packet.
#[derive(Clone, Debug)]
pub struct AttrIter<'a> {
    bytes: &'a [u8],
    off: usize,
}

impl<'a> Iterator for AttrIter<'a> {
    type Item = Attr<'a>;

    fn next(&mut self) -> Option<Attr<'a>> {
        let header = self.bytes.get(self.off..self.off + 2)?;
        let len = usize::from(header[1]);
        let value = self.bytes.get(self.off + 2..self.off + len)?;
        let a = Attr {
            typ: header[0],
            value,
            offset: self.off,
        };
        self.off += len.max(2);
        Some(a)
    }
}

/// One vendor sub-attribute.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Vsa<'a> {
    pub typ: u8,
    pub value: &'a [u8],
}

impl fmt::Debug for Vsa<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Vsa({}, {} octets)", self.typ, self.value.len())
    }
}

/// Iterator over validated vendor sub-attributes.
#[derive(Clone, Debug)]
pub struct VsaIter<'a> {
    body: &'a [u8],
    off: usize,
}

impl<'a> Iterator for VsaIter<'a> {
    type Item = Vsa<'a>;

    fn next(&mut self) -> Option<Vsa<'a>> {
        let header = self.body.get(self.off..self.off + 2)?;
        let len = usize::from(header[1]);
        let value = self.body.get(self.off + 2..self.off + len)?;
        self.off += len.max(2);
        Some(Vsa {
            typ: header[0],
            value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s).expect("test vector")
    }

    // RFC 2865 §7.1.
    const RFC2865_REQUEST: &str = "010000380f403f9473978057bd83d5cb98f4227a01066e656d6f02120dbe708d93d413ce3196e43f782a0aee0406c0a80110050600000003";

    #[test]
    fn parses_rfc2865_access_request() {
        let b = hex(RFC2865_REQUEST);
        let p = Packet::parse(&b).expect("valid");
        assert_eq!(p.code(), Code::ACCESS_REQUEST);
        assert_eq!(p.identifier(), 0);
        assert_eq!(p.len(), 56);
        let attrs: Vec<_> = p.attributes().map(|a| (a.typ, a.value.len())).collect();
        assert_eq!(attrs, vec![(1, 4), (2, 16), (4, 4), (5, 4)]);
        assert_eq!(p.find(attr::USER_NAME).map(|a| a.value), Some(&b"nemo"[..]));
        assert!(p.message_authenticator().is_none());
    }

    #[test]
    fn padding_after_length_is_ignored() {
        let mut b = hex(RFC2865_REQUEST);
        b.extend_from_slice(&[0xff; 7]);
        let p = Packet::parse(&b).expect("valid");
        assert_eq!(p.len(), 56);
        assert_eq!(p.attributes().count(), 4);
    }

    #[test]
    fn rejects_every_length_error() {
        let good = hex(RFC2865_REQUEST);
        assert_eq!(
            Packet::parse(&good[..19]).expect_err("must fail"),
            DecodeError::TooShort(19)
        );
        assert_eq!(
            Packet::parse(&vec![0u8; 4097]).expect_err("must fail"),
            DecodeError::Oversized(4097)
        );
        let mut b = good.clone();
        b[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(
            Packet::parse(&b).expect_err("must fail"),
            DecodeError::BadLength { declared: 19 }
        );
        b[2..4].copy_from_slice(&4097u16.to_be_bytes());
        assert_eq!(
            Packet::parse(&b).expect_err("must fail"),
            DecodeError::BadLength { declared: 4097 }
        );
        b[2..4].copy_from_slice(&57u16.to_be_bytes());
        assert_eq!(
            Packet::parse(&b).expect_err("must fail"),
            DecodeError::Truncated {
                declared: 57,
                received: 56
            }
        );
        // Attribute of length 1 and 0.
        for bad_len in [0u8, 1] {
            let mut b = good.clone();
            b[21] = bad_len;
            assert_eq!(
                Packet::parse(&b).expect_err("must fail"),
                DecodeError::AttributeTooShort {
                    offset: 20,
                    len: bad_len.into()
                }
            );
        }
        // Last attribute runs past the end.
        let mut b = good.clone();
        b[51] = 7;
        assert_eq!(
            Packet::parse(&b).expect_err("must fail"),
            DecodeError::AttributeOverrun { offset: 50 }
        );
        // A lone type octet at the end.
        let mut b = good.clone();
        b.push(1);
        b[2..4].copy_from_slice(&57u16.to_be_bytes());
        assert_eq!(
            Packet::parse(&b).expect_err("must fail"),
            DecodeError::AttributeOverrun { offset: 56 }
        );
    }

    #[test]
    fn message_authenticator_must_be_18_and_unique() {
        let mut b = hex(RFC2865_REQUEST);
        b.extend_from_slice(&[80, 17]);
        b.extend_from_slice(&[0; 15]);
        let l = b.len() as u16;
        b[2..4].copy_from_slice(&l.to_be_bytes());
        assert_eq!(
            Packet::parse(&b).expect_err("must fail"),
            DecodeError::BadMessageAuthenticatorLength { len: 17 }
        );
        let mut b = hex(RFC2865_REQUEST);
        for _ in 0..2 {
            b.extend_from_slice(&[80, 18]);
            b.extend_from_slice(&[0; 16]);
        }
        let l = b.len() as u16;
        b[2..4].copy_from_slice(&l.to_be_bytes());
        assert_eq!(
            Packet::parse(&b).expect_err("must fail"),
            DecodeError::DuplicateMessageAuthenticator
        );
    }

    #[test]
    fn vsa_iteration_and_malformed_vsa() {
        // Microsoft VSA holding two sub-attributes.
        let v = [0, 0, 1, 55, 16, 4, 1, 2, 17, 3, 9];
        let a = Attr {
            typ: 26,
            value: &v,
            offset: 20,
        };
        let (vendor, subs) = a.vsa().expect("valid vsa");
        assert_eq!(vendor, 311);
        let subs: Vec<_> = subs.map(|s| (s.typ, s.value.to_vec())).collect();
        assert_eq!(subs, vec![(16, vec![1, 2]), (17, vec![9])]);
        let bad = [0, 0, 1, 55, 16, 9, 1];
        assert!(
            Attr {
                typ: 26,
                value: &bad,
                offset: 20
            }
            .vsa()
            .is_none()
        );
        let short = [0, 0, 1];
        assert!(
            Attr {
                typ: 26,
                value: &short,
                offset: 20
            }
            .vsa()
            .is_none()
        );
    }

    #[test]
    fn debug_never_prints_values() {
        let b = hex(RFC2865_REQUEST);
        let p = Packet::parse(&b).expect("valid");
        let d = format!("{p:?} {:?}", p.find(2));
        assert!(!d.contains("0dbe") && !d.contains("nemo"), "{d}");
    }
}
