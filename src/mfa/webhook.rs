//! The provider contract's wire formats: the signed JSON body of a
//! delivery, the callback's body, and HMAC-SHA256 signatures over both
//! (`X-Mfa-Signature: sha256=<hex>`), checked in constant time.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::hex::{hex_decode, hex_encode};

/// What a webhook provider receives for a verification.
#[derive(Serialize)]
pub(crate) struct DeliveryBody<'a> {
    pub(crate) id: &'a str,
    pub(crate) method: &'a str,
    pub(crate) user: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) phone: Option<&'a str>,
    pub(crate) message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) number: Option<u8>,
    /// The user's language, for the provider's voice and texts.
    pub(crate) language: &'a str,
    /// A call in PIN mode: collect the PIN, send it back as `pin`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) pin_mode: bool,
    pub(crate) client: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) client_ip: Option<&'a str>,
    pub(crate) callback_url: &'a str,
    pub(crate) expires_at: i64,
}

/// What a provider posts back to the callback URL.
#[derive(Deserialize)]
pub(crate) struct CallbackBody {
    pub(crate) result: String,
    pub(crate) pin: Option<String>,
    /// Number matching: the number the user chose.
    pub(crate) number: Option<u32>,
}

/// What the phone said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PhoneResult {
    Approved,
    Denied,
    Fraud,
    NoResponse,
    HungUp,
    Voicemail,
    Unreachable,
    Failed,
}

impl PhoneResult {
    pub(crate) fn parse(s: &str) -> Option<PhoneResult> {
        Some(match s {
            "approved" => PhoneResult::Approved,
            "denied" => PhoneResult::Denied,
            "fraud" => PhoneResult::Fraud,
            "no_response" => PhoneResult::NoResponse,
            "hung_up" => PhoneResult::HungUp,
            "voicemail" => PhoneResult::Voicemail,
            "unreachable" => PhoneResult::Unreachable,
            "failed" => PhoneResult::Failed,
            _ => return None,
        })
    }
}

/// `sha256=<hex HMAC-SHA256(key, body)>`.
pub fn sign(key: &[u8], body: &[u8]) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(body);
    format!("sha256={}", hex_encode(&m.finalize().into_bytes()))
}

/// Checks `sha256=<hex>` over `body` in constant time.
pub fn signature_ok(key: &[u8], body: &[u8], header: &str) -> bool {
    let Some(tag) = header.trim().strip_prefix("sha256=").and_then(hex_decode) else {
        return false;
    };
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(body);
    m.verify_slice(&tag).is_ok()
}
