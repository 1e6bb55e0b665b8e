//! Attribute numbers the proxy itself acts on. Everything else is relayed
//! untouched and only named (through the dictionary) in logs.

pub const USER_NAME: u8 = 1;
pub const USER_PASSWORD: u8 = 2;
pub const CHAP_PASSWORD: u8 = 3;
pub const NAS_IP_ADDRESS: u8 = 4;
pub const REPLY_MESSAGE: u8 = 18;
pub const STATE: u8 = 24;
pub const VENDOR_SPECIFIC: u8 = 26;
pub const PROXY_STATE: u8 = 33;
pub const NAS_IDENTIFIER: u8 = 32;
pub const CALLING_STATION_ID: u8 = 31;
pub const CHAP_CHALLENGE: u8 = 60;
pub const TUNNEL_PASSWORD: u8 = 69;
pub const EAP_MESSAGE: u8 = 79;
pub const MESSAGE_AUTHENTICATOR: u8 = 80;

/// Microsoft's vendor id (RFC 2548).
pub const VENDOR_MICROSOFT: u32 = 311;
pub const MS_CHAP_MPPE_KEYS: u8 = 12;
pub const MS_MPPE_SEND_KEY: u8 = 16;
pub const MS_MPPE_RECV_KEY: u8 = 17;
