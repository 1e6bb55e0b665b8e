//! PSKC (RFC 6030) token files: the XML key containers token vendors ship.
//!
//! A [`Container`] is parsed once (no DTD, so no entity expansion; a bounded
//! number of nodes and key packages), says what it needs to be opened
//! ([`Protection`]), and yields one [`Entry`] per `<KeyPackage>`: the token
//! or the reason it cannot be imported. Secrets are plain (`<PlainValue>`,
//! base64) or encrypted with AES-128-CBC or AES-256-CBC (the IV before the
//! ciphertext in `<CipherValue>`) under a key derived from a password
//! (PBKDF2 with HMAC-SHA1, -SHA256 or -SHA512) or a pre-shared key. An
//! encrypted secret must carry a `<ValueMAC>` (HMAC over IV and ciphertext,
//! under the `<MACKey>` encrypted the same way), checked in constant time
//! before the secret is decrypted. A wrong password or key is an error for
//! the whole file: nothing is imported.
//!
//! Only `hotp` and `totp` keys are read; a key's user is its `<UserId>`.
//! The storing rules (pending until activated, at most five hardware tokens
//! a user) are those of the CSV import, in `import.rs`.

use std::num::NonZeroU32;

use aes::{Aes128, Aes256};
use base64::Engine;
use cbc::cipher::{BlockDecryptMut, KeyIvInit, block_padding::Pkcs7};
use ring::{hmac, pbkdf2};
use roxmltree::{Document, Node, ParsingOptions};
use zeroize::Zeroizing;

use crate::mfa::otp::{Algorithm, TotpParams};
use crate::store::TokenKind;

/// The largest PSKC file read.
pub const MAX_FILE: usize = 64 << 20;
/// The most key packages in one file.
pub const MAX_ENTRIES: usize = 100_000;
/// The most XML nodes in one file (elements, attributes, text).
const MAX_NODES: u32 = 8_000_000;
/// PBKDF2 iterations beyond this are refused: a hostile file would
/// otherwise hold the command for hours.
const MAX_ITERATIONS: u32 = 10_000_000;

const PSKC_NS: &str = "urn:ietf:params:xml:ns:keyprov:pskc";

/// The file cannot be read as a whole; nothing in it is imported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PskcError {
    #[error("the file is larger than {} MiB", MAX_FILE >> 20)]
    TooLarge,
    #[error("not well-formed XML (a DTD is refused): {0}")]
    Xml(#[from] roxmltree::Error),
    #[error("not a PSKC file: the root is not a <KeyContainer> in the namespace {PSKC_NS}")]
    NotPskc,
    #[error("the file holds more than {MAX_ENTRIES} key packages; split it")]
    TooManyEntries,
    #[error(
        "the file is encrypted with a password: give --password-file or --password-env (or run it on a terminal to be asked)"
    )]
    PasswordNeeded,
    #[error("the file is encrypted with a pre-shared key: give --key-file or --key-env (hex)")]
    KeyNeeded,
    #[error("the pre-shared key is not 16 or 32 octets in hex")]
    BadKey,
    #[error("unsupported encryption: {0}")]
    Unsupported(&'static str),
    #[error("invalid <EncryptionKey>: {0}")]
    BadDerivation(&'static str),
    #[error("encrypted secrets need a <MACMethod> with HMAC-SHA1 or HMAC-SHA256 (RFC 6030, 6.1.1)")]
    MacMissing,
    #[error(
        "wrong password or key: the MAC key or the secrets do not decrypt; nothing was imported"
    )]
    WrongKey,
}

/// Why one key package is not imported. Never holds a secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Reject {
    #[error("the key package has no <Key>")]
    NoKey,
    #[error(
        "the algorithm is not HOTP or TOTP (urn:ietf:params:xml:ns:keyprov:pskc:hotp or :totp)"
    )]
    Algorithm,
    #[error("no <Secret> (keys derived from a <KeyReference> are not supported)")]
    NoSecret,
    #[error("no <UserId>: the token's user is needed")]
    NoUser,
    #[error("<{0}> is not valid")]
    BadValue(&'static str),
    #[error("encrypted <{0}> is not supported")]
    EncryptedValue(&'static str),
    #[error("the response format must be DECIMAL")]
    Encoding,
    #[error("the suite must be HMAC-SHA1, HMAC-SHA256 or HMAC-SHA512")]
    Suite,
    #[error("the secret is encrypted but the file has no <EncryptionKey>")]
    NoEncryptionKey,
    #[error("the secret's encryption is not AES-128-CBC or AES-256-CBC with a key of that size")]
    Cipher,
    #[error("the encrypted secret has no <ValueMAC>")]
    NoMac,
    #[error("the secret's MAC does not match: the entry was altered")]
    MacMismatch,
    #[error("the secret does not decrypt")]
    Decrypt,
}

/// What opening the file needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protection {
    /// Plain secrets only.
    None,
    /// PBKDF2 from a password.
    Password,
    /// A pre-shared AES key (`<ds:KeyName>`).
    PreSharedKey,
}

/// The password or pre-shared key that opens an encrypted file.
#[derive(Clone, Copy)]
pub enum KeyMaterial<'k> {
    Password(&'k [u8]),
    PreSharedKey(&'k [u8]),
}

impl std::fmt::Debug for KeyMaterial<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyMaterial::Password(_) => "Password(***)",
            KeyMaterial::PreSharedKey(_) => "PreSharedKey(***)",
        })
    }
}

/// A pre-shared AES key written in hex (16 or 32 octets).
pub fn key_from_hex(hex: &str) -> Result<Zeroizing<Vec<u8>>, PskcError> {
    crate::hex::hex_decode(&hex.trim().to_ascii_lowercase())
        .map(Zeroizing::new)
        .filter(|k| matches!(k.len(), 16 | 32))
        .ok_or(PskcError::BadKey)
}

/// A token read from a key package.
pub struct PskcToken {
    pub kind: TokenKind,
    pub params: TotpParams,
    /// The HOTP counter (`<Counter>`, 0 when absent).
    pub counter: u64,
    /// `<Manufacturer>` and `<Model>` of the device.
    pub model: Option<String>,
    pub seed: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for PskcToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PskcToken")
            .field("kind", &self.kind)
            .field("params", &self.params)
            .field("counter", &self.counter)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

/// One `<KeyPackage>`: where it is, its names, and its token or the reason.
#[derive(Debug)]
pub struct Entry {
    /// The line its `<KeyPackage>` starts on.
    pub line: u32,
    /// The `<Key Id>`.
    pub key_id: String,
    /// `<DeviceInfo><SerialNo>`, or else the key's Id.
    pub serial: String,
    /// `<UserId>` of the key, or else of the device; empty when neither.
    pub user: String,
    pub token: Result<PskcToken, Reject>,
}

/// A parsed PSKC document.
#[derive(Debug)]
pub struct Container<'a> {
    doc: Document<'a>,
}

/// The keys that open the secrets of a file.
struct Keys {
    enc: Zeroizing<Vec<u8>>,
    mac: Zeroizing<Vec<u8>>,
    mac_alg: hmac::Algorithm,
}

impl<'a> Container<'a> {
    /// Parses `text`: well-formed XML without a DTD, with a PSKC
    /// `<KeyContainer>` root, at most [`MAX_ENTRIES`] key packages.
    pub fn parse(text: &'a str) -> Result<Self, PskcError> {
        if text.len() > MAX_FILE {
            return Err(PskcError::TooLarge);
        }
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let opt = ParsingOptions {
            allow_dtd: false,
            nodes_limit: MAX_NODES,
            ..ParsingOptions::default()
        };
        let doc = Document::parse_with_options(text, opt)?;
        let root = doc.root_element();
        if root.tag_name().name() != "KeyContainer" || root.tag_name().namespace() != Some(PSKC_NS)
        {
            return Err(PskcError::NotPskc);
        }
        let c = Container { doc };
        if c.packages().nth(MAX_ENTRIES).is_some() {
            return Err(PskcError::TooManyEntries);
        }
        Ok(c)
    }

    fn root(&self) -> Node<'_, 'a> {
        self.doc.root_element()
    }

    fn packages(&self) -> impl Iterator<Item = Node<'_, 'a>> {
        children(self.root(), "KeyPackage")
    }

    /// What [`Container::entries`] needs to open the file.
    pub fn protection(&self) -> Protection {
        match child(self.root(), "EncryptionKey") {
            None => Protection::None,
            Some(k) if child(k, "DerivedKey").is_some() => Protection::Password,
            Some(_) => Protection::PreSharedKey,
        }
    }

    /// Every key package, opened with `key` when the file is encrypted.
    pub fn entries(&self, key: Option<KeyMaterial<'_>>) -> Result<Vec<Entry>, PskcError> {
        let keys = self.keys(key)?;
        let entries: Vec<Entry> = self
            .packages()
            .map(|p| self.entry(p, keys.as_ref()))
            .collect();
        // A wrong password slips past the MAC key's padding once in 256
        // tries; then no secret's MAC matches.
        let macs: Vec<bool> = entries
            .iter()
            .filter_map(|e| match &e.token {
                Err(Reject::MacMismatch) => Some(false),
                Ok(_) if keys.is_some() => Some(true),
                _ => None,
            })
            .collect();
        if !macs.is_empty() && macs.iter().all(|ok| !ok) {
            return Err(PskcError::WrongKey);
        }
        Ok(entries)
    }

    /// The encryption and MAC keys, when the file has an `<EncryptionKey>`.
    fn keys(&self, key: Option<KeyMaterial<'_>>) -> Result<Option<Keys>, PskcError> {
        let Some(ek) = child(self.root(), "EncryptionKey") else {
            return Ok(None);
        };
        let enc = match (self.protection(), key) {
            (Protection::Password, Some(KeyMaterial::Password(p))) => derive(ek, p)?,
            (Protection::Password, _) => return Err(PskcError::PasswordNeeded),
            (_, Some(KeyMaterial::PreSharedKey(k))) if child(ek, "KeyName").is_some() => {
                Zeroizing::new(k.to_vec())
            }
            (_, _) if child(ek, "KeyName").is_some() => return Err(PskcError::KeyNeeded),
            _ => {
                return Err(PskcError::Unsupported(
                    "only a password (PBKDF2) or a pre-shared key (<ds:KeyName>) is supported",
                ));
            }
        };
        let mm = child(self.root(), "MACMethod").ok_or(PskcError::MacMissing)?;
        let mac_alg = match mm.attribute("Algorithm") {
            Some("http://www.w3.org/2000/09/xmldsig#hmac-sha1") => {
                hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY
            }
            Some("http://www.w3.org/2001/04/xmldsig-more#hmac-sha256") => hmac::HMAC_SHA256,
            _ => return Err(PskcError::MacMissing),
        };
        // Without a <MACKey>, the encryption key is the MAC key (as the
        // drafts of RFC 6030 had it).
        let mac = match child(mm, "MACKey") {
            None => enc.clone(),
            Some(mk) => {
                let (method, data) = cipher_value(mk).map_err(|_| PskcError::WrongKey)?;
                match decrypt(method, &enc, &data) {
                    Ok(k) => k,
                    Err(Reject::Cipher) => {
                        return Err(PskcError::Unsupported(
                            "the MAC key is not encrypted with AES-128-CBC or AES-256-CBC under a key of that size",
                        ));
                    }
                    Err(_) => return Err(PskcError::WrongKey),
                }
            }
        };
        Ok(Some(Keys { enc, mac, mac_alg }))
    }

    fn entry(&self, pkg: Node<'_, 'a>, keys: Option<&Keys>) -> Entry {
        let line = self.doc.text_pos_at(pkg.range().start).row;
        let device = child(pkg, "DeviceInfo");
        let key = child(pkg, "Key");
        let key_id = key.and_then(|k| k.attribute("Id")).unwrap_or("").to_owned();
        let serial = device
            .and_then(|d| text_of(d, "SerialNo"))
            .map_or_else(|| key_id.clone(), str::to_owned);
        let user = key
            .and_then(|k| text_of(k, "UserId"))
            .or_else(|| device.and_then(|d| text_of(d, "UserId")))
            .unwrap_or("")
            .to_owned();
        let token = match key {
            None => Err(Reject::NoKey),
            Some(k) => token(k, device, keys),
        };
        Entry {
            line,
            key_id,
            serial,
            user,
            token,
        }
    }
}

/// The token of one `<Key>`.
fn token(
    key: Node<'_, '_>,
    device: Option<Node<'_, '_>>,
    keys: Option<&Keys>,
) -> Result<PskcToken, Reject> {
    let kind = match key.attribute("Algorithm") {
        Some(
            "urn:ietf:params:xml:ns:keyprov:pskc:hotp" | "http://www.ietf.org/keyprov/pskc#hotp",
        ) => TokenKind::Hotp,
        Some(
            "urn:ietf:params:xml:ns:keyprov:pskc:totp" | "http://www.ietf.org/keyprov/pskc#totp",
        ) => TokenKind::Totp,
        _ => return Err(Reject::Algorithm),
    };
    let mut params = TotpParams::default();
    if let Some(ap) = child(key, "AlgorithmParameters") {
        if let Some(rf) = child(ap, "ResponseFormat") {
            if !matches!(rf.attribute("Encoding"), None | Some("DECIMAL")) {
                return Err(Reject::Encoding);
            }
            if let Some(l) = rf.attribute("Length") {
                params.digits = l
                    .trim()
                    .parse()
                    .map_err(|_| Reject::BadValue("ResponseFormat Length"))?;
            }
        }
        if let Some(s) = text_of(ap, "Suite") {
            params.algorithm = match s.to_ascii_uppercase().trim_start_matches("HMAC-") {
                "SHA1" | "SHA-1" => Algorithm::Sha1,
                "SHA256" | "SHA-256" => Algorithm::Sha256,
                "SHA512" | "SHA-512" => Algorithm::Sha512,
                _ => return Err(Reject::Suite),
            };
        }
    }
    let data = child(key, "Data");
    let number = |name: &'static str| -> Result<Option<u64>, Reject> {
        let Some(n) = data.and_then(|d| child(d, name)) else {
            return Ok(None);
        };
        if child(n, "PlainValue").is_none() {
            return Err(Reject::EncryptedValue(name));
        }
        text_of(n, "PlainValue")
            .and_then(|v| v.parse().ok())
            .map(Some)
            .ok_or(Reject::BadValue(name))
    };
    let counter = number("Counter")?.unwrap_or(0);
    if let Some(step) = number("TimeInterval")? {
        params.step = step;
    }
    let secret = data
        .and_then(|d| child(d, "Secret"))
        .ok_or(Reject::NoSecret)?;
    let seed = if let Some(plain) = child(secret, "PlainValue") {
        Zeroizing::new(base64(plain.text().unwrap_or("")).ok_or(Reject::BadValue("Secret"))?)
    } else if let Some(ev) = child(secret, "EncryptedValue") {
        let keys = keys.ok_or(Reject::NoEncryptionKey)?;
        let (method, data) = cipher_value(ev)?;
        let mac = text_of(secret, "ValueMAC").ok_or(Reject::NoMac)?;
        let mac = base64(mac).ok_or(Reject::BadValue("ValueMAC"))?;
        let mac_key = hmac::Key::new(keys.mac_alg, &keys.mac);
        hmac::verify(&mac_key, &data, &mac).map_err(|_| Reject::MacMismatch)?;
        decrypt(method, &keys.enc, &data)?
    } else {
        return Err(Reject::NoSecret);
    };
    let model = device
        .map(|d| {
            [text_of(d, "Manufacturer"), text_of(d, "Model")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|m| !m.is_empty());
    Ok(PskcToken {
        kind,
        params,
        counter,
        model,
        seed,
    })
}

/// The PBKDF2 key of `<EncryptionKey><xenc11:DerivedKey>`.
fn derive(ek: Node<'_, '_>, password: &[u8]) -> Result<Zeroizing<Vec<u8>>, PskcError> {
    let bad = PskcError::BadDerivation;
    let method = child(ek, "DerivedKey")
        .and_then(|d| child(d, "KeyDerivationMethod"))
        .ok_or(bad("no <KeyDerivationMethod>"))?;
    if !method
        .attribute("Algorithm")
        .is_some_and(|a| a.ends_with("pkcs-5v2-0#pbkdf2"))
    {
        return Err(PskcError::Unsupported("the key derivation is not PBKDF2"));
    }
    let p = child(method, "PBKDF2-params").ok_or(bad("no <PBKDF2-params>"))?;
    let salt = child(p, "Salt")
        .and_then(|s| text_of(s, "Specified"))
        .and_then(base64)
        .ok_or(bad("the salt is missing or not base64"))?;
    let iterations = text_of(p, "IterationCount")
        .and_then(|i| i.parse::<u32>().ok())
        .filter(|i| *i <= MAX_ITERATIONS)
        .and_then(NonZeroU32::new)
        .ok_or(bad("the iteration count is not 1 to 10,000,000"))?;
    let len = text_of(p, "KeyLength")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| matches!(l, 16 | 32))
        .ok_or(bad("the key length is not 16 or 32"))?;
    let prf = match child(p, "PRF").and_then(|prf| prf.attribute("Algorithm")) {
        None | Some("http://www.w3.org/2000/09/xmldsig#hmac-sha1") => pbkdf2::PBKDF2_HMAC_SHA1,
        Some("http://www.w3.org/2001/04/xmldsig-more#hmac-sha256") => pbkdf2::PBKDF2_HMAC_SHA256,
        Some("http://www.w3.org/2001/04/xmldsig-more#hmac-sha512") => pbkdf2::PBKDF2_HMAC_SHA512,
        Some(_) => {
            return Err(PskcError::Unsupported(
                "the PBKDF2 PRF is not HMAC-SHA1, -SHA256 or -SHA512",
            ));
        }
    };
    let mut key = Zeroizing::new(vec![0; len]);
    pbkdf2::derive(prf, iterations, &salt, password, &mut key);
    Ok(key)
}

/// The algorithm and the bytes (IV and ciphertext) of an encrypted value.
fn cipher_value<'n>(v: Node<'n, '_>) -> Result<(&'n str, Vec<u8>), Reject> {
    let method = child(v, "EncryptionMethod")
        .and_then(|m| m.attribute("Algorithm"))
        .ok_or(Reject::Cipher)?;
    let data = child(v, "CipherData")
        .and_then(|d| child(d, "CipherValue"))
        .and_then(|c| c.text())
        .and_then(base64)
        .ok_or(Reject::BadValue("CipherValue"))?;
    Ok((method, data))
}

/// AES-CBC with PKCS#7 padding; `data` is the IV and the ciphertext.
fn decrypt(method: &str, key: &[u8], data: &[u8]) -> Result<Zeroizing<Vec<u8>>, Reject> {
    if data.len() < 32 || data.len() % 16 != 0 {
        return Err(Reject::Decrypt);
    }
    let (iv, ct) = data.split_at(16);
    let plain = match method {
        "http://www.w3.org/2001/04/xmlenc#aes128-cbc" => {
            cbc::Decryptor::<Aes128>::new_from_slices(key, iv)
                .map_err(|_| Reject::Cipher)?
                .decrypt_padded_vec_mut::<Pkcs7>(ct)
        }
        "http://www.w3.org/2001/04/xmlenc#aes256-cbc" => {
            cbc::Decryptor::<Aes256>::new_from_slices(key, iv)
                .map_err(|_| Reject::Cipher)?
                .decrypt_padded_vec_mut::<Pkcs7>(ct)
        }
        _ => return Err(Reject::Cipher),
    };
    plain.map(Zeroizing::new).map_err(|_| Reject::Decrypt)
}

/// Base64 with the line breaks and indentation XML puts in it.
fn base64(s: &str) -> Option<Vec<u8>> {
    let compact: Zeroizing<String> =
        Zeroizing::new(s.chars().filter(|c| !c.is_ascii_whitespace()).collect());
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .ok()
}

fn children<'a, 'i>(n: Node<'a, 'i>, name: &'static str) -> impl Iterator<Item = Node<'a, 'i>> {
    n.children()
        .filter(move |c| c.is_element() && c.tag_name().name() == name)
}

fn child<'a, 'i>(n: Node<'a, 'i>, name: &'static str) -> Option<Node<'a, 'i>> {
    children(n, name).next()
}

/// The trimmed text of the child `name`, if not empty.
fn text_of<'a>(n: Node<'a, '_>, name: &'static str) -> Option<&'a str> {
    child(n, name)
        .and_then(|c| c.text())
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests;
