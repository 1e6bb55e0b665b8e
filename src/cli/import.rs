//! CSV imports: users (`name,email,phone`) and OATH hardware tokens (the
//! file vendors ship for Azure MFA).
//!
//! Files are read as CSV (RFC 4180): fields may be quoted, with commas,
//! quotes (doubled) and line breaks inside; lines end in LF or CRLF; a UTF-8
//! byte-order mark at the start (as Excel writes) is ignored; blank lines are
//! skipped and fields are trimmed. Good rows are imported. The others come
//! back as an errors CSV, itself readable as CSV: the row's line, its key
//! columns (never a later one, which may be a secret) and the reason.

use std::ops::RangeInclusive;

use zeroize::Zeroizing;

use super::pskc::{Entry, Reject};
use super::{AdminError, MAX_HARDWARE_TOKENS, check_user_name, invalid, user_add};
use crate::mfa::otp::TotpParams;
use crate::store::{Store, Token, TokenKind, UnixTime};

/// Imports users from CSV with the header `name,email,phone` (email and phone
/// may be empty). Returns how many were imported, and the errors CSV
/// (`line,name,error`) of the rows that were not.
pub fn user_import(
    store: &dyn Store,
    csv: &str,
    now: UnixTime,
    tick: &mut dyn FnMut(),
) -> Result<(usize, String), AdminError> {
    let (header, rows) = read_header(csv);
    if header != ["name", "email", "phone"] {
        return Err(invalid(
            "the first line must be the header: name,email,phone",
        ));
    }
    import_rows(rows, &["name"], 3..=3, tick, |f| {
        let &[name, email, phone] = f else {
            return Err(invalid("expected 3 fields"));
        };
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        user_add(store, name, opt(email), opt(phone), None, Vec::new(), now)
    })
}

/// How the `secret key` column of a token file is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretFormat {
    /// RFC 4648 Base32, as Azure MFA expects (the default).
    Base32,
    Hex,
}

/// Imports OATH hardware tokens from the CSV vendors ship for Azure MFA:
/// `upn,serial number,secret key,time interval,manufacturer,model`, with an
/// optional last column `digits` (6 or 8, default 6). A time interval of 30
/// or 60 makes a TOTP token; 0 or empty, an HOTP (event) token. Users missing
/// from the store are added; a user holds at most [`MAX_HARDWARE_TOKENS`].
/// Each token stays pending until [`super::token_activate`] sees the code it
/// shows. Returns how many were imported, and the errors CSV
/// (`line,upn,serial number,error`) of the rows that were not: it never
/// contains a secret.
pub fn token_import(
    store: &dyn Store,
    csv: &str,
    format: SecretFormat,
    now: UnixTime,
    tick: &mut dyn FnMut(),
) -> Result<(usize, String), AdminError> {
    const COLUMNS: [&str; 7] = [
        "upn",
        "serialnumber",
        "secretkey",
        "timeinterval",
        "manufacturer",
        "model",
        "digits",
    ];
    let (header, rows) = read_header(csv);
    let with_digits = if header == COLUMNS[..6] {
        false
    } else if header == COLUMNS {
        true
    } else {
        return Err(invalid(
            "the first line must be the header: upn,serial number,secret key,time interval,manufacturer,model[,digits]",
        ));
    };
    let fields = if with_digits { 7..=7 } else { 6..=6 };
    import_rows(rows, &["upn", "serial number"], fields, tick, |f| {
        import_token_row(store, f, format, now)
    })
}

/// Names the user of each PSKC entry that has none from `csv`, with the
/// header `serial number,upn` (by serial). An entry that names its own user
/// keeps it; a serial the file lists twice is an error that names it.
/// Returns how many entries it named.
pub fn apply_user_map(entries: &mut [Entry], csv: &str) -> Result<usize, AdminError> {
    let (header, rows) = read_header(csv);
    if header != ["serialnumber", "upn"] {
        return Err(invalid(
            "the user map's first line must be: serial number,upn",
        ));
    }
    let mut map = std::collections::HashMap::new();
    for record in rows.records {
        let r = record.map_err(|_| invalid("the user map is not CSV"))?;
        let f: Vec<&str> = r.iter().collect();
        if f.iter().all(|f| f.is_empty()) {
            continue;
        }
        let line = line_of(rows.text, r.position());
        let [serial, upn] = f[..] else {
            return Err(invalid(format!("user map line {line}: expected 2 fields")));
        };
        if map.insert(serial.to_owned(), upn.to_owned()).is_some() {
            return Err(invalid(format!(
                "user map line {line}: serial number {serial} is listed twice"
            )));
        }
    }
    let mut named = 0;
    for e in entries.iter_mut().filter(|e| e.user.is_empty()) {
        if let Some(upn) = map.get(&e.serial) {
            e.user = upn.clone();
            named += 1;
        }
    }
    Ok(named)
}

/// A CSV reader of `text` (without its byte-order mark), and its first
/// record: the header, lowercased, without whitespace ("Serial Number" is
/// `serialnumber`). An empty file has an empty header.
fn read_header(text: &str) -> (Vec<String>, Rows<'_>) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut header = Vec::new();
    let mut first = csv::StringRecord::new();
    if let Ok(true) = reader.read_record(&mut first) {
        header = first
            .iter()
            .map(|f| {
                f.chars()
                    .filter(|c| !c.is_whitespace())
                    .collect::<String>()
                    .to_lowercase()
            })
            .collect();
    }
    let records = reader.into_records();
    (header, Rows { text, records })
}

/// The records after the header, and the text they are read from.
struct Rows<'a> {
    text: &'a str,
    records: csv::StringRecordsIntoIter<&'a [u8]>,
}

/// The line (from 1) of `text` where the record at `position` starts. The
/// csv crate's own line count is off after CRLF and blank lines, and its byte
/// offset may point at the line ends before the record: they are skipped.
fn line_of(text: &str, position: Option<&csv::Position>) -> usize {
    let Some(p) = position else { return 0 };
    let before = text.get(..p.byte() as usize).unwrap_or(text);
    let ends = text[before.len()..]
        .bytes()
        .take_while(|b| matches!(b, b'\r' | b'\n'))
        .filter(|b| *b == b'\n')
        .count();
    1 + before.bytes().filter(|b| *b == b'\n').count() + ends
}

/// Runs `row` on each record after the header that has a field; `row` sees
/// exactly as many fields as `fields` allows (other records are errors).
/// Returns how many succeeded, and the errors CSV: `line`, the `keys`
/// columns (the record's first fields, left empty when the record has the
/// wrong number of fields and so cannot be trusted to hold them there), and
/// `error`.
fn import_rows(
    rows: Rows<'_>,
    keys: &[&str],
    fields: RangeInclusive<usize>,
    tick: &mut dyn FnMut(),
    mut row: impl FnMut(&[&str]) -> Result<(), AdminError>,
) -> Result<(usize, String), AdminError> {
    let mut imported = 0;
    let mut errors = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["line"];
    header.extend_from_slice(keys);
    header.push("error");
    errors.write_record(&header).map_err(std::io::Error::from)?;
    for record in rows.records {
        tick();
        let (line, key, error) = match record {
            Ok(r) => {
                let f: Vec<&str> = r.iter().collect();
                if f.iter().all(|f| f.is_empty()) {
                    continue;
                }
                let shaped = fields.contains(&f.len());
                let result = if shaped {
                    row(&f)
                } else {
                    Err(invalid(format!(
                        "expected {} fields, found {}",
                        fields.start(),
                        f.len()
                    )))
                };
                let Err(e) = result else {
                    imported += 1;
                    continue;
                };
                let key = (0..keys.len())
                    .map(|i| f.get(i).filter(|_| shaped).map_or("", |k| k).to_owned())
                    .collect();
                (line_of(rows.text, r.position()), key, e)
            }
            // Not reachable from a &str (no I/O, no invalid UTF-8, records
            // may differ in length), but never a reason to stop or panic.
            Err(e) => (
                line_of(rows.text, e.position()),
                vec![String::new(); keys.len()],
                invalid("not a CSV record"),
            ),
        };
        let mut out = vec![line.to_string()];
        out.extend(key);
        out.push(error.to_string());
        errors.write_record(&out).map_err(std::io::Error::from)?;
    }
    let errors = errors.into_inner().map_err(|e| e.into_error())?;
    let errors = String::from_utf8(errors).map_err(|_| invalid("the errors CSV is not UTF-8"))?;
    Ok((imported, errors))
}

/// One token row: 6 fields, or 7 with `digits`.
fn import_token_row(
    store: &dyn Store,
    f: &[&str],
    format: SecretFormat,
    now: UnixTime,
) -> Result<(), AdminError> {
    let &[
        upn,
        serial,
        secret,
        interval,
        manufacturer,
        model,
        ref digits @ ..,
    ] = f
    else {
        return Err(invalid(format!(
            "expected 6 or 7 fields, found {}",
            f.len()
        )));
    };
    // Never echo the secret: the error file is not a secret file.
    let seed = Zeroizing::new(
        match format {
            SecretFormat::Base32 => base32::decode(
                base32::Alphabet::Rfc4648 { padding: false },
                &secret.to_ascii_uppercase(),
            ),
            SecretFormat::Hex => crate::hex::hex_decode(secret),
        }
        .ok_or_else(|| invalid(format!("the secret key is not valid {format:?}")))?,
    );
    let kind = match interval {
        "" | "0" => TokenKind::Hotp,
        "30" | "60" => TokenKind::Totp,
        _ => {
            return Err(invalid(
                "the time interval must be 30 or 60 (TOTP), or 0 or empty (HOTP)",
            ));
        }
    };
    let digits = match digits {
        [] | [""] | ["6"] => 6,
        ["8"] => 8,
        _ => return Err(invalid("digits must be 6 or 8")),
    };
    let model = [manufacturer, model]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    add_hardware_token(
        store,
        HardwareToken {
            upn,
            serial,
            seed: &seed,
            kind,
            params: TotpParams {
                digits,
                step: if kind == TokenKind::Totp {
                    interval.parse().unwrap_or(30)
                } else {
                    30
                },
                ..TotpParams::default()
            },
            counter: 0,
            model: (!model.is_empty()).then_some(model),
        },
        now,
    )
}

/// A hardware token read from a file, before the store's rules.
struct HardwareToken<'a> {
    upn: &'a str,
    serial: &'a str,
    seed: &'a [u8],
    kind: TokenKind,
    params: TotpParams,
    counter: u64,
    model: Option<String>,
}

/// The rules of every hardware-token import: a valid user name (added when
/// missing), a serial of 1 to 64 printable characters, a secret of 10 to 64
/// octets, 6 or 8 digits, a TOTP step of 30 or 60 seconds, at most
/// [`MAX_HARDWARE_TOKENS`] a user; the token is pending until activated.
fn add_hardware_token(
    store: &dyn Store,
    t: HardwareToken<'_>,
    now: UnixTime,
) -> Result<(), AdminError> {
    let HardwareToken { upn, serial, .. } = t;
    check_user_name(upn)?;
    if serial.is_empty() || serial.len() > 64 || serial.chars().any(|c| c.is_control()) {
        return Err(invalid(
            "the serial number must be 1 to 64 printable characters",
        ));
    }
    if t.seed.len() < 10 || t.seed.len() > 64 {
        return Err(invalid(format!(
            "the secret key is {} octets; expected 10 to 64",
            t.seed.len()
        )));
    }
    if !matches!(t.params.digits, 6 | 8) {
        return Err(invalid("digits must be 6 or 8"));
    }
    if t.kind == TokenKind::Totp && !matches!(t.params.step, 30 | 60) {
        return Err(invalid("the time interval must be 30 or 60 seconds"));
    }
    if store.user(upn)?.is_none() {
        user_add(store, upn, None, None, None, Vec::new(), now)?;
    }
    let held = store
        .tokens(upn)?
        .iter()
        .filter(|t| t.serial.is_some())
        .count();
    if held >= MAX_HARDWARE_TOKENS {
        return Err(invalid(format!(
            "{upn} already holds {MAX_HARDWARE_TOKENS} hardware tokens"
        )));
    }
    store.add_token(
        &Token {
            id: 0,
            user: upn.to_owned(),
            kind: t.kind,
            serial: Some(serial.to_owned()),
            params: t.params,
            counter: t.counter,
            last_step: None,
            active: false,
            model: t.model,
        },
        t.seed,
    )?;
    Ok(())
}

/// Imports the entries of a PSKC file (see [`super::pskc`]) under the rules
/// of [`token_import`]; a token's user is its `<UserId>`. Returns how many
/// were imported, and the errors CSV (`line,key id,serial number,upn,error`)
/// of the key packages that were not: it never contains a secret.
pub fn pskc_import(
    store: &dyn Store,
    entries: Vec<Entry>,
    now: UnixTime,
    tick: &mut dyn FnMut(),
) -> Result<(usize, String), AdminError> {
    let mut imported = 0;
    let mut errors = csv::Writer::from_writer(Vec::new());
    errors
        .write_record(["line", "key id", "serial number", "upn", "error"])
        .map_err(std::io::Error::from)?;
    for e in entries {
        tick();
        let result = match e.token {
            Err(r) => Err(invalid(r.to_string())),
            Ok(_) if e.user.is_empty() => Err(invalid(Reject::NoUser.to_string())),
            Ok(t) => add_hardware_token(
                store,
                HardwareToken {
                    upn: &e.user,
                    serial: &e.serial,
                    seed: &t.seed,
                    kind: t.kind,
                    params: t.params,
                    counter: t.counter,
                    model: t.model,
                },
                now,
            ),
        };
        match result {
            Ok(()) => imported += 1,
            Err(err) => errors
                .write_record([
                    e.line.to_string().as_str(),
                    &e.key_id,
                    &e.serial,
                    &e.user,
                    &err.to_string(),
                ])
                .map_err(std::io::Error::from)?,
        }
    }
    let errors = errors.into_inner().map_err(|e| e.into_error())?;
    let errors = String::from_utf8(errors).map_err(|_| invalid("the errors CSV is not UTF-8"))?;
    Ok((imported, errors))
}

#[cfg(test)]
mod tests {
    use super::super::{hotp_resync, token_activate};
    use super::*;
    use crate::mfa::otp::{self, Algorithm, Verdict};
    use crate::store::{SeedKey, SqliteStore};

    fn store() -> SqliteStore {
        SqliteStore::in_memory(SeedKey::from_bytes(&[4; 32])).expect("open")
    }

    /// The errors CSV read back as CSV: its header, then its rows.
    fn read_back(errors: &str) -> Vec<Vec<String>> {
        csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(errors.as_bytes())
            .records()
            .map(|r| {
                r.expect("the errors CSV is CSV")
                    .iter()
                    .map(str::to_owned)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn validation_and_import_report_errors() {
        let s = store();
        assert!(user_add(&s, "has space", None, None, None, Vec::new(), 0).is_err());
        assert!(
            user_add(
                &s,
                "bob",
                None,
                Some("555-1234".into()),
                None,
                Vec::new(),
                0
            )
            .is_err()
        );
        let (n, errors) = user_import(
            &s,
            "name,email,phone\nhelga@contoso.com,helga@contoso.com,+4930123456\nbad name,,\nhelga@contoso.com,,\nkim,,+821012345678\nolaf,olaf at contoso,\nper,Per <per@contoso.com>,\n",
            0, &mut || {},
        )
        .expect("import");
        assert_eq!(n, 2);
        assert_eq!(errors.lines().count(), 5, "{errors}");
        assert!(
            errors.contains("3,bad name") && errors.contains("4,helga@contoso.com"),
            "{errors}"
        );
        assert!(
            errors.contains("6,olaf,")
                && errors.contains("7,per,")
                && errors.contains("is not an email address"),
            "no address a mail could not go to: {errors}"
        );
        assert!(user_import(&s, "user,mail\n", 0, &mut || {}).is_err());
    }

    #[test]
    fn users_from_quoted_fields_crlf_and_a_bom() {
        let s = store();
        // Excel's export: a byte-order mark, CRLF, quoted header and fields,
        // commas and doubled quotes inside quotes, a blank line.
        let csv = "\u{feff}\"Name\",\"Email\",\"Phone\"\r\n\
                   \"helga@contoso.com\",\"helga@contoso.com\",\"+4930123456\"\r\n\
                   \r\n\
                   kim , ,+821012345678 \r\n\
                   \"bad, \"\"quoted\"\" name\",x@y.z,\r\n\
                   \"two\r\nlines\",,\r\n\
                   only,two\r\n";
        let (n, errors) = user_import(&s, csv, 0, &mut || {}).expect("import");
        assert_eq!(n, 2, "{errors}");
        assert_eq!(
            s.user("helga@contoso.com")
                .expect("q")
                .expect("added")
                .phone
                .as_deref(),
            Some("+4930123456")
        );
        assert!(s.user("kim").expect("q").is_some(), "fields are trimmed");
        let rows = read_back(&errors);
        assert_eq!(rows[0], ["line", "name", "error"]);
        assert_eq!(rows.len(), 4, "{errors}");
        assert_eq!(rows[1][..2], ["5", "bad, \"quoted\" name"], "{errors}");
        assert!(rows[1][2].contains("is not a valid user name"), "{errors}");
        assert_eq!(rows[2][..2], ["6", "two\r\nlines"], "{errors}");
        assert_eq!(
            rows[3],
            ["8", "", "expected 3 fields, found 2"],
            "a row of the wrong shape has no key: {errors}"
        );
    }

    #[test]
    fn tokens_from_quoted_fields_crlf_and_a_bom() {
        let s = store();
        let b32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        let csv = format!(
            "\u{feff}UPN,\"Serial Number\",\"Secret Key\",Time Interval,Manufacturer,Model\r\n\
             \"helga@contoso.com\",\"1234567\",\"{b32}\",\"30\",\"Contoso, Ltd.\",\"Key \"\"6\"\"\"\r\n\
             \"kim@contoso.com\",\"76,54\",\"{b32}\",0,Feitian,c100\r\n\
             \"ola@contoso.com\",\"99\",\"{b32}\",45,\"A\",\"B\"\r\n\
             \"ola@contoso.com\",\"{b32}\",30,A,B\r\n"
        );
        let (n, errors) =
            token_import(&s, &csv, SecretFormat::Base32, 0, &mut || {}).expect("import");
        assert_eq!(n, 2, "{errors}");
        let t = &s.tokens("helga@contoso.com").expect("tokens")[0];
        assert_eq!(t.model.as_deref(), Some("Contoso, Ltd. Key \"6\""));
        let k = &s.tokens("kim@contoso.com").expect("tokens")[0];
        assert_eq!(k.serial.as_deref(), Some("76,54"), "a comma inside quotes");
        let rows = read_back(&errors);
        assert_eq!(rows[0], ["line", "upn", "serial number", "error"]);
        assert_eq!(rows.len(), 3, "{errors}");
        assert_eq!(rows[1][..3], ["4", "ola@contoso.com", "99"], "{errors}");
        assert!(rows[1][3].contains("time interval"), "{errors}");
        assert_eq!(
            rows[2],
            ["5", "", "", "expected 6 fields, found 5"],
            "a shifted row puts the secret in the serial's place: no key: {errors}"
        );
        assert!(!errors.contains("GEZDGNBV"), "no secret: {errors}");
    }

    #[test]
    fn the_errors_csv_reads_back_and_quotes_what_it_must() {
        let s = store();
        let (n, errors) = user_import(
            &s,
            "name,email,phone\n\"a, \"\"b\",,\nc,,555-1234\n",
            0,
            &mut || {},
        )
        .expect("import");
        assert_eq!(n, 0);
        let rows = read_back(&errors);
        assert_eq!(rows.len(), 3, "{errors}");
        assert_eq!(rows[1][1], "a, \"b", "{errors}");
        assert!(
            rows[1][2].starts_with("\"a, \\\"b\" is not a valid user name:"),
            "the message keeps its quotes and commas: {errors}"
        );
        assert_eq!(rows[2][..2], ["3", "c"]);
        assert!(rows[2][2].contains("is not a phone number"), "{errors}");
        // Read back as an import file, it is refused for its header, not
        // half-read.
        assert!(user_import(&s, &errors, 0, &mut || {}).is_err());
        assert!(user_import(&s, "", 0, &mut || {}).is_err(), "an empty file");
        assert!(
            user_import(&s, "\u{feff}", 0, &mut || {}).is_err(),
            "a BOM alone"
        );
    }

    #[test]
    fn hardware_tokens_import_and_hotp_resync() {
        let s = store();
        user_add(&s, "helga@contoso.com", None, None, None, Vec::new(), 0).expect("add");
        // RFC 4226's test secret, in Base32 and in hex.
        let b32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        let csv = format!(
            "upn,serial number,secret key,time interval,manufacturer,model\n\
             helga@contoso.com,1234567,{b32},60,Contoso,HardwareKey\n\
             kim@contoso.com,7654321,{},0,Feitian,c100\n\
             bad,111,not*base32,30,A,B\n\
             ola@contoso.com,222,{b32},45,A,B\n\
             ola@contoso.com,1234567,{b32},30,A,B\n\
             ola@contoso.com,333,GEZDGNBV,30,A,B\n",
            b32.to_lowercase()
        );
        let (n, errors) =
            token_import(&s, &csv, SecretFormat::Base32, 0, &mut || {}).expect("import");
        assert_eq!(n, 2, "{errors}");
        assert_eq!(errors.lines().count(), 5, "{errors}");
        assert!(
            errors.contains("4,bad,111,the secret key is not valid Base32\n"),
            "{errors}"
        );
        assert!(
            errors.contains("time interval must be 30 or 60"),
            "{errors}"
        );
        assert!(
            errors.contains("6,ola@contoso.com,1234567"),
            "duplicate serial: {errors}"
        );
        assert!(errors.contains("expected 10 to 64"), "{errors}");
        assert!(
            !errors.contains("GEZDGNBV"),
            "secrets never reach the error file"
        );

        let t = &s.tokens("helga@contoso.com").expect("tokens")[0];
        assert_eq!(
            (t.kind, t.params.step, t.active),
            (TokenKind::Totp, 60, false)
        );
        assert_eq!(t.model.as_deref(), Some("Contoso HardwareKey"));
        assert!(
            s.user("kim@contoso.com").expect("q").is_some(),
            "the user was added"
        );
        let k = &s.tokens("kim@contoso.com").expect("tokens")[0];
        assert_eq!((k.kind, k.counter, k.active), (TokenKind::Hotp, 0, false));

        // The same secret in hex, with the digits column.
        let hex_csv = "upn,serial number,secret key,time interval,manufacturer,model,digits\n\
                       ola@contoso.com,444,3132333435363738393031323334353637383930,0,A,B,8\n";
        assert_eq!(
            token_import(&s, hex_csv, SecretFormat::Hex, 0, &mut || {})
                .expect("hex")
                .0,
            1
        );
        assert_eq!(s.tokens("ola@contoso.com").expect("t")[0].params.digits, 8);
        assert!(token_import(&s, "user,secret\n", SecretFormat::Base32, 0, &mut || {}).is_err());

        // RFC 4226 Appendix D: counters 500 and 501 are far beyond the
        // look-ahead; two consecutive codes move the token there.
        let code =
            |c| otp::format_code(otp::hotp(Algorithm::Sha1, b"12345678901234567890", c, 6), 6);
        assert!(
            hotp_resync(&s, "kim@contoso.com", &code(500), &code(501)).is_err(),
            "pending"
        );
        assert!(
            token_activate(&s, "7654321", &code(11), 0, 1).is_err(),
            "beyond the look-ahead"
        );
        assert_eq!(
            token_activate(&s, "7654321", &code(1), 0, 1).expect("activate"),
            "kim@contoso.com"
        );
        assert!(
            token_activate(&s, "0000", &code(2), 0, 1).is_err(),
            "no such serial"
        );
        assert!(hotp_resync(&s, "kim@contoso.com", &code(500), &code(502)).is_err());
        assert_eq!(
            hotp_resync(&s, "kim@contoso.com", &code(500), &code(501)).expect("resync"),
            "7654321"
        );
        let k = &s.tokens("kim@contoso.com").expect("tokens")[0];
        assert_eq!(k.counter, 502, "the next press is counter 502");
        assert_eq!(
            otp::verify_hotp(
                Algorithm::Sha1,
                b"12345678901234567890",
                &code(502),
                6,
                k.counter,
                10
            ),
            Verdict::Valid { step: 502 }
        );
        assert!(s.remove_token("7654321").expect("remove"));
        // At most five hardware tokens a user.
        let rows: String = (0..6)
            .map(|i| format!("max@contoso.com,M{i},{b32},30,A,B\n"))
            .collect();
        let (n, errors) = token_import(
            &s,
            &format!("upn,serial number,secret key,time interval,manufacturer,model\n{rows}"),
            SecretFormat::Base32,
            0,
            &mut || {},
        )
        .expect("import");
        assert_eq!(n, MAX_HARDWARE_TOKENS);
        assert!(
            errors.contains("7,max@contoso.com,M5,max@contoso.com already holds 5"),
            "{errors}"
        );
        assert!(!s.remove_token("7654321").expect("remove"));
    }
}
