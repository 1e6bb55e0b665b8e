//! The RADIUS wire format: a zero-copy view over a datagram, a builder, the
//! authenticators and attribute encryptions of RFC 2865/2866/2868/2548/3579,
//! and a FreeRADIUS-format dictionary parser.
//!
//! Nothing here does IO or reads the clock. Reading never allocates: a
//! [`Packet`] borrows the datagram and every length rule is checked once, up
//! front, so the attribute iterator cannot fail afterwards.

pub mod attr;
mod builder;
pub mod crypto;
pub mod dict;
mod packet;

pub use builder::{EncodeError, PacketBuilder};
pub use packet::{Attr, AttrIter, Code, DecodeError, Packet, Vsa, VsaIter};

/// Length of the fixed header: code, identifier, length, authenticator.
pub const HEADER_LEN: usize = 20;
/// Largest packet RFC 2865 allows.
pub const MAX_PACKET_LEN: usize = 4096;
/// Length of an authenticator field.
pub const AUTH_LEN: usize = 16;
/// Largest attribute value (255 minus the two header octets).
pub const MAX_ATTR_VALUE_LEN: usize = 253;

/// A Request or Response Authenticator.
pub type Authenticator = [u8; AUTH_LEN];
