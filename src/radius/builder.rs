//! Writing packets: attributes in order, then one `finish_*` that fills in
//! the Length, the Message-Authenticator and the authenticator the packet
//! type calls for.

use super::crypto::Key;
use super::{
    AUTH_LEN, Authenticator, Code, HEADER_LEN, MAX_ATTR_VALUE_LEN, MAX_PACKET_LEN, attr, crypto,
};

/// Why a packet cannot be built. Values never appear in the error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    #[error("attribute {typ} value of {len} octets exceeds 253")]
    ValueTooLong { typ: u8, len: usize },
    #[error("packet would exceed 4096 octets")]
    PacketTooLong,
}

/// Builds one packet in a single buffer.
#[derive(Debug)]
pub struct PacketBuilder {
    buf: Vec<u8>,
    ma_value: Option<usize>,
}

impl PacketBuilder {
    pub fn new(code: Code, identifier: u8, authenticator: &Authenticator) -> Self {
        Self::with_capacity(code, identifier, authenticator, 256)
    }

    pub fn with_capacity(
        code: Code,
        identifier: u8,
        authenticator: &Authenticator,
        capacity: usize,
    ) -> Self {
        let mut buf = Vec::with_capacity(capacity.clamp(HEADER_LEN, MAX_PACKET_LEN));
        buf.extend_from_slice(&[code.0, identifier, 0, 0]);
        buf.extend_from_slice(authenticator);
        PacketBuilder {
            buf,
            ma_value: None,
        }
    }

    fn reserve(&self, n: usize) -> Result<(), EncodeError> {
        if self.buf.len() + n > MAX_PACKET_LEN {
            return Err(EncodeError::PacketTooLong);
        }
        Ok(())
    }

    /// Appends one attribute.
    pub fn push(&mut self, typ: u8, value: &[u8]) -> Result<&mut Self, EncodeError> {
        if value.len() > MAX_ATTR_VALUE_LEN {
            return Err(EncodeError::ValueTooLong {
                typ,
                len: value.len(),
            });
        }
        self.reserve(2 + value.len())?;
        self.buf.push(typ);
        self.buf.push((2 + value.len()) as u8);
        self.buf.extend_from_slice(value);
        Ok(self)
    }

    /// Appends an attribute already in wire form (type, length, value), as
    /// taken from another packet.
    pub fn push_raw(&mut self, raw: &[u8]) -> Result<&mut Self, EncodeError> {
        self.reserve(raw.len())?;
        self.buf.extend_from_slice(raw);
        Ok(self)
    }

    /// Appends a Vendor-Specific attribute holding one sub-attribute.
    pub fn push_vsa(
        &mut self,
        vendor: u32,
        typ: u8,
        value: &[u8],
    ) -> Result<&mut Self, EncodeError> {
        let len = 4 + 2 + value.len();
        if len > MAX_ATTR_VALUE_LEN {
            return Err(EncodeError::ValueTooLong {
                typ: attr::VENDOR_SPECIFIC,
                len,
            });
        }
        self.reserve(2 + len)?;
        self.buf.push(attr::VENDOR_SPECIFIC);
        self.buf.push((2 + len) as u8);
        self.buf.extend_from_slice(&vendor.to_be_bytes());
        self.buf.push(typ);
        self.buf.push((2 + value.len()) as u8);
        self.buf.extend_from_slice(value);
        Ok(self)
    }

    /// Appends a zeroed Message-Authenticator, filled in by `finish_*`. Call
    /// it first: RFC 3579 permits any position, but first is where
    /// BlastRADIUS-hardened peers look for it.
    pub fn push_message_authenticator(&mut self) -> Result<&mut Self, EncodeError> {
        if self.ma_value.is_none() {
            self.push(attr::MESSAGE_AUTHENTICATOR, &[0; AUTH_LEN])?;
            self.ma_value = Some(self.buf.len() - AUTH_LEN);
        }
        Ok(self)
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.len() == HEADER_LEN
    }

    fn set_length(&mut self) {
        // reserve() keeps the length within 4096.
        let len = self.buf.len() as u16;
        self.buf[2..4].copy_from_slice(&len.to_be_bytes());
    }

    fn sign_message_authenticator(&mut self, auth: &Authenticator, key: &(impl Key + ?Sized)) {
        if let Some(off) = self.ma_value {
            let ma = crypto::message_authenticator(&self.buf, off, auth, key);
            self.buf[off..off + AUTH_LEN].copy_from_slice(&ma);
        }
    }

    /// Finishes an Access-Request or Status-Server: the authenticator given to
    /// [`PacketBuilder::new`] stays, the Message-Authenticator covers it.
    pub fn finish_request(mut self, key: &(impl Key + ?Sized)) -> Vec<u8> {
        self.set_length();
        let auth: Authenticator = self.buf[4..HEADER_LEN].try_into().expect("header");
        self.sign_message_authenticator(&auth, key);
        self.buf
    }

    /// Finishes an Accounting-Request (RFC 2866 §3): Message-Authenticator
    /// over a zero authenticator, then the Request Authenticator over the
    /// whole packet.
    pub fn finish_accounting_request(mut self, key: &(impl Key + ?Sized)) -> Vec<u8> {
        self.set_length();
        let zero = [0u8; AUTH_LEN];
        self.sign_message_authenticator(&zero, key);
        let a = crypto::packet_authenticator(&self.buf, &zero, key.secret());
        self.buf[4..HEADER_LEN].copy_from_slice(&a);
        self.buf
    }

    /// Finishes a response to a request whose authenticator is `request_auth`.
    pub fn finish_response(
        mut self,
        key: &(impl Key + ?Sized),
        request_auth: &Authenticator,
    ) -> Vec<u8> {
        self.set_length();
        self.sign_message_authenticator(request_auth, key);
        let a = crypto::packet_authenticator(&self.buf, request_auth, key.secret());
        self.buf[4..HEADER_LEN].copy_from_slice(&a);
        self.buf
    }

    /// Finishes an Accounting-Response to an Accounting-Request. Its
    /// Message-Authenticator, like the request's, is computed over a zero
    /// authenticator (as FreeRADIUS and radclient do); the Response
    /// Authenticator then covers the request's authenticator.
    pub fn finish_accounting_response(
        mut self,
        key: &(impl Key + ?Sized),
        request_auth: &Authenticator,
    ) -> Vec<u8> {
        self.set_length();
        self.sign_message_authenticator(&[0; AUTH_LEN], key);
        let a = crypto::packet_authenticator(&self.buf, request_auth, key.secret());
        self.buf[4..HEADER_LEN].copy_from_slice(&a);
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radius::Packet;

    const SECRET: &[u8] = b"xyzzy5461";

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s).expect("test vector")
    }

    #[test]
    fn builds_rfc2865_request_and_response() {
        let a: Authenticator = hex("0f403f9473978057bd83d5cb98f4227a")
            .try_into()
            .expect("16");
        let mut b = PacketBuilder::new(Code::ACCESS_REQUEST, 0, &a);
        b.push(attr::USER_NAME, b"nemo").expect("fits");
        let hidden = crypto::hide_password(b"arctangent", SECRET, &a).expect("hide");
        b.push(attr::USER_PASSWORD, &hidden).expect("fits");
        b.push(attr::NAS_IP_ADDRESS, &[192, 168, 1, 16])
            .expect("fits");
        b.push(5, &3u32.to_be_bytes()).expect("fits");
        assert_eq!(
            b.finish_request(SECRET),
            hex(
                "010000380f403f9473978057bd83d5cb98f4227a01066e656d6f02120dbe708d93d413ce3196e43f782a0aee0406c0a80110050600000003"
            )
        );

        let mut r = PacketBuilder::new(Code::ACCESS_ACCEPT, 0, &[0; 16]);
        r.push(6, &1u32.to_be_bytes()).expect("fits");
        r.push(15, &0u32.to_be_bytes()).expect("fits");
        r.push(14, &[192, 168, 1, 3]).expect("fits");
        assert_eq!(
            r.finish_response(SECRET, &a),
            hex("0200002686fe220e7624ba2a1005f6bf9b55e0b20606000000010f06000000000e06c0a80103")
        );
    }

    #[test]
    fn builds_rfc5997_status_server() {
        let a: Authenticator = hex("8a54f4686fb394c52866e302185d0623")
            .try_into()
            .expect("16");
        let mut b = PacketBuilder::new(Code::STATUS_SERVER, 218, &a);
        b.push_message_authenticator().expect("fits");
        assert_eq!(
            b.finish_request(SECRET),
            hex("0cda00268a54f4686fb394c52866e302185d062350125a665e2e1e8411f3e243822097c84fa3")
        );
        let r = PacketBuilder::new(Code::ACCESS_ACCEPT, 218, &[0; 16]);
        assert_eq!(
            r.finish_response(SECRET, &a),
            hex("02da0014ef0d552a4bf2d693ec2b6fe8b5411d66")
        );
    }

    #[test]
    fn accounting_request_signs_and_verifies() {
        let mut b = PacketBuilder::new(Code::ACCOUNTING_REQUEST, 7, &[0; 16]);
        b.push_message_authenticator().expect("fits");
        b.push(attr::USER_NAME, b"nemo").expect("fits");
        b.push(40, &1u32.to_be_bytes()).expect("fits");
        let pkt = b.finish_accounting_request(SECRET);
        let p = Packet::parse(&pkt).expect("valid");
        assert!(crypto::verify_packet_authenticator(&pkt, &[0; 16], SECRET));
        let off = p.message_authenticator_offset().expect("MA");
        assert!(crypto::verify_message_authenticator(
            &pkt, off, &[0; 16], SECRET
        ));
        assert_eq!(
            p.attributes().next().map(|a| a.typ),
            Some(attr::MESSAGE_AUTHENTICATOR)
        );
    }

    #[test]
    fn limits() {
        let mut b = PacketBuilder::new(Code::ACCESS_ACCEPT, 1, &[0; 16]);
        assert_eq!(
            b.push(18, &[b'x'; 254]).map(|_| ()),
            Err(EncodeError::ValueTooLong { typ: 18, len: 254 })
        );
        for _ in 0..15 {
            b.push(18, &[b'x'; 253]).expect("fits");
        }
        assert_eq!(b.len(), 20 + 15 * 255);
        assert_eq!(
            b.push(18, &[b'x'; 253]).map(|_| ()),
            Err(EncodeError::PacketTooLong)
        );
        b.push(18, &[b'x'; 4096 - 20 - 15 * 255 - 2])
            .expect("exactly fills");
        let pkt = b.finish_response(b"s", &[0; 16]);
        assert_eq!(pkt.len(), 4096);
        Packet::parse(&pkt).expect("valid at the maximum");
    }
}
