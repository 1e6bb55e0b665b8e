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

/// What a provider posts back to the callback URL (and, once checked, what
/// one node passes to another through the store, sealed).
#[derive(Deserialize)]
struct CallbackBody {
    result: String,
    pin: Option<String>,
    /// Number matching: the number the user chose.
    number: Option<u32>,
}

/// Why a callback was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The signature is missing or wrong, or the provider has no key.
    BadSignature,
    /// Not JSON of the expected shape, or an unknown result.
    Malformed,
}

/// A phone's answer to a verification, as its provider's callback said it.
/// The PIN is a secret: never printed.
pub struct Answer {
    pub(crate) result: PhoneResult,
    pub(crate) pin: Option<crate::secret::Secret>,
    /// Number matching: the number the user chose.
    pub(crate) number: Option<u32>,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer")
            .field("result", &self.result)
            .field("number", &self.number)
            .finish_non_exhaustive()
    }
}

impl Answer {
    /// A callback's `body`, signed with `key` (`X-Mfa-Signature`), checked
    /// in constant time, then read. A provider without a key takes no
    /// callbacks.
    pub fn check(
        key: Option<&[u8]>,
        body: &[u8],
        signature: Option<&str>,
    ) -> Result<Answer, Refused> {
        let signed = match (key, signature) {
            (Some(k), Some(sig)) => signature_ok(k, body, sig),
            _ => false,
        };
        if !signed {
            return Err(Refused::BadSignature);
        }
        Answer::read(body).ok_or(Refused::Malformed)
    }

    /// Reads a body already checked (or one node's [`Answer::to_bytes`]).
    pub fn read(body: &[u8]) -> Option<Answer> {
        let cb = serde_json::from_slice::<CallbackBody>(body).ok()?;
        Some(Answer {
            result: PhoneResult::parse(&cb.result)?,
            pin: cb.pin.map(|p| crate::secret::Secret::new(p.into_bytes())),
            number: cb.number,
        })
    }

    /// The answer as [`Answer::read`] reads it back; it may hold a PIN, so
    /// it is zeroed when dropped (the store seals it).
    pub fn to_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        #[derive(Serialize)]
        struct Out<'a> {
            result: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            pin: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            number: Option<u32>,
        }
        // A PIN came in as a JSON string: it is UTF-8.
        let pin = self
            .pin
            .as_ref()
            .and_then(|p| std::str::from_utf8(p.expose()).ok());
        let out = Out {
            result: self.result.as_str(),
            pin,
            number: self.number,
        };
        zeroize::Zeroizing::new(serde_json::to_vec(&out).expect("plain data serializes"))
    }
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
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PhoneResult::Approved => "approved",
            PhoneResult::Denied => "denied",
            PhoneResult::Fraud => "fraud",
            PhoneResult::NoResponse => "no_response",
            PhoneResult::HungUp => "hung_up",
            PhoneResult::Voicemail => "voicemail",
            PhoneResult::Unreachable => "unreachable",
            PhoneResult::Failed => "failed",
        }
    }

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
