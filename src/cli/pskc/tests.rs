//! RFC 6030's examples as vectors, generated encrypted files, hostile input
//! and the import of a file mixing good and bad entries.

use super::*;
use cbc::cipher::BlockEncryptMut;

/// The examples of RFC 6030 that carry keys (Figures 2 to 7).
const FIGURE: [&str; 6] = [
    include_str!("../../../tests/pskc/rfc6030-figure2.pskc"),
    include_str!("../../../tests/pskc/rfc6030-figure3.pskc"),
    include_str!("../../../tests/pskc/rfc6030-figure4.pskc"),
    include_str!("../../../tests/pskc/rfc6030-figure5.pskc"),
    include_str!("../../../tests/pskc/rfc6030-figure6.pskc"),
    include_str!("../../../tests/pskc/rfc6030-figure7.pskc"),
];
fn figure(n: usize) -> &'static str {
    FIGURE[n - 2]
}

fn open(text: &str, key: Option<KeyMaterial<'_>>) -> Result<Vec<Entry>, PskcError> {
    Container::parse(text)?.entries(key)
}

fn token(e: &Entry) -> &PskcToken {
    e.token.as_ref().expect("a token")
}

#[test]
fn rfc6030_plain_figures() {
    let e = open(figure(2), None).expect("figure 2");
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0].key_id.as_str(), e[0].serial.as_str()),
        ("12345678", "12345678")
    );
    assert_eq!(token(&e[0]).seed.as_slice(), b"1234");
    assert_eq!(token(&e[0]).kind, TokenKind::Hotp);

    let e = open(figure(3), None).expect("figure 3");
    let t = token(&e[0]);
    assert_eq!(t.seed.as_slice(), b"12345678901234567890");
    assert_eq!(
        (t.kind, t.params.digits, t.counter),
        (TokenKind::Hotp, 8, 0)
    );
    assert_eq!(t.params.algorithm, Algorithm::Sha1);
    assert_eq!(t.model.as_deref(), Some("Manufacturer"));
    assert_eq!(e[0].serial, "987654321");
    assert_eq!(
        e[0].user, "UID=jsmith,DC=example-bank,DC=net",
        "the key's UserId wins"
    );
    assert_eq!(e[0].line, 7);

    let e = open(figure(4), None).expect("figure 4");
    assert_eq!(e[0].token.as_ref().err(), Some(&Reject::NoSecret));

    let e = open(figure(5), None).expect("figure 5");
    assert_eq!(token(&e[0]).seed.as_slice(), b"12345678901234567890");
    assert_eq!(e[1].key_id, "123456781");
    assert_eq!(
        e[1].token.as_ref().err(),
        Some(&Reject::Algorithm),
        "a PIN key"
    );
    assert!(format!("{e:?}").contains("PskcToken"));
    assert!(!format!("{e:?}").contains("49, 50, 51"), "no seed in Debug");
}

#[test]
fn rfc6030_figure6_pre_shared_key() {
    let c = Container::parse(figure(6)).expect("parse");
    assert_eq!(c.protection(), Protection::PreSharedKey);
    assert!(matches!(c.entries(None), Err(PskcError::KeyNeeded)));
    let key = key_from_hex("12345678901234567890123456789012").expect("hex");
    let e = c
        .entries(Some(KeyMaterial::PreSharedKey(&key)))
        .expect("open");
    let t = token(&e[0]);
    assert_eq!(t.seed.as_slice(), b"12345678901234567890");
    assert_eq!((t.params.digits, t.counter), (8, 0));
    let wrong = key_from_hex("12345678901234567890123456789013").expect("hex");
    assert!(matches!(
        c.entries(Some(KeyMaterial::PreSharedKey(&wrong))),
        Err(PskcError::WrongKey)
    ));
    assert!(matches!(key_from_hex("1234"), Err(PskcError::BadKey)));
}

#[test]
fn rfc6030_figure7_password() {
    let c = Container::parse(figure(7)).expect("parse");
    assert_eq!(c.protection(), Protection::Password);
    assert!(matches!(c.entries(None), Err(PskcError::PasswordNeeded)));
    let e = c
        .entries(Some(KeyMaterial::Password(b"qwerty")))
        .expect("open");
    let t = token(&e[0]);
    assert_eq!(t.seed.as_slice(), b"12345678901234567890");
    assert_eq!(
        (e[0].key_id.as_str(), e[0].serial.as_str()),
        ("123456", "987654321")
    );
    assert_eq!(t.model.as_deref(), Some("TokenVendorAcme"));
    for wrong in [&b"qwertz"[..], b"", b"QWERTY"] {
        let r = c.entries(Some(KeyMaterial::Password(wrong)));
        assert!(matches!(r, Err(PskcError::WrongKey)), "{r:?}");
    }
}

/// AES-CBC of `plain` under `key`, the IV first.
fn encrypt(key: &[u8], plain: &[u8]) -> Vec<u8> {
    let iv = [7u8; 16];
    let mut out = iv.to_vec();
    let ct = if key.len() == 16 {
        cbc::Encryptor::<Aes128>::new_from_slices(key, &iv)
            .expect("key")
            .encrypt_padded_vec_mut::<Pkcs7>(plain)
    } else {
        cbc::Encryptor::<Aes256>::new_from_slices(key, &iv)
            .expect("key")
            .encrypt_padded_vec_mut::<Pkcs7>(plain)
    };
    out.extend(ct);
    out
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// A file encrypted with AES-256-CBC under PBKDF2-HMAC-SHA256 of
/// `password`, holding `packages` (made by `package(enc, mac)`).
pub(crate) fn encrypted_file(
    password: &[u8],
    packages: impl Fn(&dyn Fn(&[u8]) -> (String, String)) -> String,
) -> String {
    let salt = b"NaCl-salt";
    let mut key = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        NonZeroU32::new(100).expect("nonzero"),
        salt,
        password,
        &mut key,
    );
    let mac_key = b"0123456789abcdef0123";
    let seal = |plain: &[u8]| {
        let ct = encrypt(&key, plain);
        let mac = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, mac_key), &ct);
        (b64(&ct), b64(mac.as_ref()))
    };
    format!(
        r#"<?xml version="1.0"?>
<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc"
  xmlns:xenc11="http://www.w3.org/2009/xmlenc11#"
  xmlns:pkcs5="http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#"
  xmlns:xenc="http://www.w3.org/2001/04/xmlenc#">
 <EncryptionKey><xenc11:DerivedKey>
  <xenc11:KeyDerivationMethod Algorithm="http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#pbkdf2">
   <pkcs5:PBKDF2-params><Salt><Specified>{salt}</Specified></Salt>
<IterationCount>100</IterationCount><KeyLength>32</KeyLength>
<PRF Algorithm="http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"/></pkcs5:PBKDF2-params>
  </xenc11:KeyDerivationMethod></xenc11:DerivedKey></EncryptionKey>
 <MACMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"><MACKey>
  <xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes256-cbc"/>
  <xenc:CipherData><xenc:CipherValue>{mac}</xenc:CipherValue></xenc:CipherData>
 </MACKey></MACMethod>
{packages}</KeyContainer>
"#,
        salt = b64(salt),
        mac = b64(&encrypt(&key, mac_key)),
        packages = packages(&seal),
    )
}

/// A TOTP key package with an encrypted secret.
pub(crate) fn totp_package(id: &str, user: &str, value: &str, mac: &str) -> String {
    format!(
        r#" <KeyPackage>
  <DeviceInfo><Manufacturer>Acme</Manufacturer><Model>T2</Model><SerialNo>{id}</SerialNo></DeviceInfo>
  <Key Id="{id}" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:totp">
   <AlgorithmParameters><Suite>HMAC-SHA256</Suite><ResponseFormat Length="6" Encoding="DECIMAL"/></AlgorithmParameters>
   <Data><Secret><EncryptedValue>
 <xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes256-cbc"/>
 <xenc:CipherData><xenc:CipherValue>{value}</xenc:CipherValue></xenc:CipherData>
</EncryptedValue><ValueMAC>{mac}</ValueMAC></Secret>
<TimeInterval><PlainValue>60</PlainValue></TimeInterval></Data>
   <UserId>{user}</UserId>
  </Key>
 </KeyPackage>
"#
    )
}

#[test]
fn aes256_pbkdf2_sha256_and_a_tampered_entry() {
    let text = encrypted_file(b"s3cret pass", |seal| {
        let (v1, m1) = seal(b"12345678901234567890123456789012");
        let (v2, _) = seal(b"another secret, 24 bytes");
        totp_package("T1", "ann", &v1, &m1) + &totp_package("T2", "bob", &v2, &m1)
    });
    let e = open(&text, Some(KeyMaterial::Password(b"s3cret pass"))).expect("open");
    let t = token(&e[0]);
    assert_eq!(t.seed.as_slice(), b"12345678901234567890123456789012");
    assert_eq!(
        (t.kind, t.params.step, t.params.digits),
        (TokenKind::Totp, 60, 6)
    );
    assert_eq!(t.params.algorithm, Algorithm::Sha256);
    assert_eq!(t.model.as_deref(), Some("Acme T2"));
    assert_eq!(e[1].token.as_ref().err(), Some(&Reject::MacMismatch));
    assert!(matches!(
        open(&text, Some(KeyMaterial::Password(b"wrong"))),
        Err(PskcError::WrongKey)
    ));
}

#[test]
fn import_good_and_bad_entries() {
    use crate::store::{SeedKey, SqliteStore, Store};
    let s = SqliteStore::in_memory(SeedKey::from_bytes(&[4; 32])).expect("open");
    let text = encrypted_file(b"pw", |seal| {
        let (v1, m1) = seal(b"12345678901234567890");
        let (short, m5) = seal(b"12345678");
        [
            totp_package("T1", "ann", &v1, &m1),
            totp_package("T2", "bob", &v1, &m5),
            totp_package("T3", "", &v1, &m1),
            totp_package("T4", "bad name", &v1, &m1),
            totp_package("T5", "carl", &short, &m5),
            totp_package("T1", "dora", &v1, &m1),
        ]
        .concat()
    });
    let c = Container::parse(&text).expect("parse");
    let wrong = c.entries(Some(KeyMaterial::Password(b"pW")));
    assert!(matches!(wrong, Err(PskcError::WrongKey)), "{wrong:?}");
    assert!(s.tokens("ann").expect("tokens").is_empty());
    let entries = c.entries(Some(KeyMaterial::Password(b"pw"))).expect("open");
    let (n, errors) = super::super::pskc_import(&s, entries, 0, &mut || {}).expect("import");
    assert_eq!(n, 1, "{errors}");
    let t = &s.tokens("ann").expect("tokens")[0];
    assert_eq!(
        (t.kind, t.params.step, t.active, t.serial.as_deref()),
        (TokenKind::Totp, 60, false, Some("T1")),
        "pending until activated"
    );
    assert_eq!(
        errors,
        "line,key id,serial number,upn,error\n\
         28,T2,T2,bob,the secret's MAC does not match: the entry was altered\n\
         40,T3,T3,,no <UserId>: the token's user is needed\n\
         52,T4,T4,bad name,\"\"\"bad name\"\" is not a valid user name: 1 to 253 characters, no spaces or control characters\"\n\
         64,T5,T5,carl,the secret key is 8 octets; expected 10 to 64\n\
         76,T1,T1,dora,\"token serial \"\"T1\"\" is already assigned\"\n"
    );
    assert!(!errors.contains("MTIz") && !errors.contains("12345678901"));
}

#[test]
fn hostile_files_are_typed_errors() {
    let bomb = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<KeyContainer xmlns="urn:ietf:params:xml:ns:keyprov:pskc">&lol2;</KeyContainer>"#;
    assert!(matches!(Container::parse(bomb), Err(PskcError::Xml(_))));
    for text in [
        "",
        "not xml",
        "<KeyContainer",
        "\u{feff}<a/>",
        "<KeyContainer/>",
    ] {
        assert!(Container::parse(text).is_err(), "{text:?}");
    }
    assert!(matches!(
        Container::parse("<KeyContainer xmlns=\"urn:other\"/>"),
        Err(PskcError::NotPskc)
    ));
    let many = format!(
        "<KeyContainer xmlns=\"{PSKC_NS}\">{}</KeyContainer>",
        "<KeyPackage/>".repeat(MAX_ENTRIES + 1)
    );
    assert!(matches!(
        Container::parse(&many),
        Err(PskcError::TooManyEntries)
    ));
    let big = " ".repeat(MAX_FILE + 1);
    assert!(matches!(Container::parse(&big), Err(PskcError::TooLarge)));

    // Broken values give a reason per entry, never a panic.
    let key = |data: &str, params: &str| {
        format!(
            r#"<KeyContainer xmlns="{PSKC_NS}"><KeyPackage><Key Id="k" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp">
<AlgorithmParameters>{params}</AlgorithmParameters><Data>{data}</Data></Key></KeyPackage></KeyContainer>"#
        )
    };
    let secret = "<Secret><PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=</PlainValue></Secret>";
    for (data, params, reason) in [
        (
            "<Secret><PlainValue>*</PlainValue></Secret>",
            "",
            Reject::BadValue("Secret"),
        ),
        (
            &format!("{secret}<Counter><PlainValue>-1</PlainValue></Counter>"),
            "",
            Reject::BadValue("Counter"),
        ),
        (
            &format!("{secret}<Counter><EncryptedValue/></Counter>"),
            "",
            Reject::EncryptedValue("Counter"),
        ),
        (
            secret,
            "<ResponseFormat Length=\"x\"/>",
            Reject::BadValue("ResponseFormat Length"),
        ),
        (
            secret,
            "<ResponseFormat Length=\"6\" Encoding=\"HEX\"/>",
            Reject::Encoding,
        ),
        (secret, "<Suite>MD5</Suite>", Reject::Suite),
        (
            "<Secret><EncryptedValue/></Secret>",
            "",
            Reject::NoEncryptionKey,
        ),
        ("<Secret/>", "", Reject::NoSecret),
    ] {
        let e = open(&key(data, params), None).expect("parse");
        assert_eq!(e[0].token.as_ref().err(), Some(&reason), "{data} {params}");
    }
    // An encryption key of an unsupported kind, or bad PBKDF2 parameters.
    let text = figure(7).replace("<IterationCount>1000<", "<IterationCount>4294967295<");
    assert!(matches!(
        open(&text, Some(KeyMaterial::Password(b"qwerty"))),
        Err(PskcError::BadDerivation(_))
    ));
    let text = figure(7).replace("#hmac-sha1\"", "#hmac-md5\"");
    assert!(matches!(
        open(&text, Some(KeyMaterial::Password(b"qwerty"))),
        Err(PskcError::MacMissing)
    ));
    let text = figure(6).replace("<ds:KeyName>Pre-shared-key</ds:KeyName>", "<ds:X509Data/>");
    assert!(matches!(open(&text, None), Err(PskcError::Unsupported(_))));
}

/// `--user-map`: entries without a `<UserId>` get theirs by serial; one
/// that names its own keeps it; a map that lists a serial twice, or has the
/// wrong header, is refused.
#[test]
fn a_user_map_names_the_users_the_file_does_not() {
    use crate::cli::apply_user_map;
    let text = encrypted_file(b"pw", |seal| {
        let (v1, m1) = seal(b"12345678901234567890");
        [
            totp_package("T1", "", &v1, &m1),
            totp_package("T2", "bob", &v1, &m1),
            totp_package("T3", "", &v1, &m1),
        ]
        .concat()
    });
    let mut e = open(&text, Some(KeyMaterial::Password(b"pw"))).expect("open");
    let map = "Serial Number,UPN\nT1,ann\nT2,eve\n";
    assert_eq!(apply_user_map(&mut e, map).expect("map"), 1);
    let users: Vec<&str> = e.iter().map(|e| e.user.as_str()).collect();
    assert_eq!(
        users,
        ["ann", "bob", ""],
        "bob named himself; T3 is not in the map"
    );
    let twice = apply_user_map(&mut e, "serial number,upn\nT3,x\nT3,y\n").expect_err("twice");
    assert!(twice.to_string().contains("T3 is listed twice"), "{twice}");
    assert!(
        apply_user_map(&mut e, "upn,serial\nx,T3\n").is_err(),
        "header"
    );
}
