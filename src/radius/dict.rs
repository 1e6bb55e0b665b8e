//! FreeRADIUS-format dictionaries: `ATTRIBUTE`, `VALUE`, `VENDOR`,
//! `BEGIN-VENDOR`/`END-VENDOR`, `$INCLUDE` (and `$INCLUDE-`, which tolerates
//! a missing file), `encrypt=` and `has_tag` flags, old-style trailing vendor
//! names, and `#` comments.
//!
//! The proxy uses a dictionary for two things: naming attributes in logs, and
//! knowing which attributes are encrypted with the shared secret and so must
//! be re-encrypted when a packet crosses from one secret to another.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// How an attribute's value is encrypted with the shared secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encrypt {
    /// `encrypt=1`: User-Password style (RFC 2865 §5.2).
    UserPassword,
    /// `encrypt=2`: salted, Tunnel-Password style (RFC 2868 §3.5).
    Salted,
    /// `encrypt=3`: Ascend-Send-Secret style; relayed as it is.
    Ascend,
}

/// The data type of an attribute. Types the proxy does not interpret are
/// kept by name only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttrType {
    String,
    Octets,
    IpAddr,
    Ipv6Addr,
    Ipv6Prefix,
    Integer,
    Date,
    Other(String),
}

impl AttrType {
    fn parse(s: &str) -> AttrType {
        match s {
            "string" => AttrType::String,
            "octets" => AttrType::Octets,
            "ipaddr" => AttrType::IpAddr,
            "ipv6addr" => AttrType::Ipv6Addr,
            "ipv6prefix" => AttrType::Ipv6Prefix,
            "integer" => AttrType::Integer,
            "date" => AttrType::Date,
            other => AttrType::Other(other.to_owned()),
        }
    }
}

/// One attribute definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttrDef {
    pub name: String,
    /// 0 for standard attributes.
    pub vendor: u32,
    pub number: u32,
    pub kind: AttrType,
    pub encrypt: Option<Encrypt>,
    pub has_tag: bool,
}

/// What went wrong, and where.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {kind}")]
pub struct DictError {
    pub file: String,
    pub line: usize,
    pub kind: DictErrorKind,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DictErrorKind {
    #[error("cannot read: {0}")]
    Io(#[source] std::io::Error),
    #[error("unsupported keyword `{0}`")]
    UnknownKeyword(String),
    #[error("`{keyword}` needs {needed} fields")]
    MissingFields {
        keyword: &'static str,
        needed: usize,
    },
    #[error("`{0}` is not a number this parser accepts")]
    BadNumber(String),
    #[error("unknown vendor `{0}`")]
    UnknownVendor(String),
    #[error("VALUE for unknown attribute `{0}`")]
    UnknownAttribute(String),
    #[error("unknown flag `{0}`")]
    BadFlag(String),
    #[error("END-VENDOR `{0}` does not close the open BEGIN-VENDOR")]
    UnbalancedVendor(String),
    #[error("BEGIN-VENDOR not closed by the end of the file")]
    UnclosedVendor,
    #[error("$INCLUDE nested more than 16 deep")]
    IncludeDepth,
}

/// A loaded dictionary. Equal when it defines the same (a reload tells an
/// edited file from an unchanged one).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Dictionary {
    attrs: HashMap<(u32, u32), AttrDef>,
    by_name: HashMap<String, (u32, u32)>,
    vendors: HashMap<String, u32>,
    vendor_names: HashMap<u32, String>,
    values: HashMap<(u32, u32, u64), String>,
}

impl fmt::Debug for Dictionary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dictionary")
            .field("attributes", &self.attrs.len())
            .field("vendors", &self.vendors.len())
            .field("values", &self.values.len())
            .finish()
    }
}

/// The dictionaries shipped in `dictionaries/`, compiled in so the proxy
/// works without them on disk.
const BUILTIN: &[(&str, &str)] = &[
    ("dictionary", include_str!("../../dictionaries/dictionary")),
    (
        "dictionary.rfc2865",
        include_str!("../../dictionaries/dictionary.rfc2865"),
    ),
    (
        "dictionary.rfc2866",
        include_str!("../../dictionaries/dictionary.rfc2866"),
    ),
    (
        "dictionary.rfc2868",
        include_str!("../../dictionaries/dictionary.rfc2868"),
    ),
    (
        "dictionary.rfc2869",
        include_str!("../../dictionaries/dictionary.rfc2869"),
    ),
    (
        "dictionary.rfc3162",
        include_str!("../../dictionaries/dictionary.rfc3162"),
    ),
    (
        "dictionary.rfc3579",
        include_str!("../../dictionaries/dictionary.rfc3579"),
    ),
    (
        "dictionary.rfc5176",
        include_str!("../../dictionaries/dictionary.rfc5176"),
    ),
    (
        "dictionary.microsoft",
        include_str!("../../dictionaries/dictionary.microsoft"),
    ),
];

/// Where included files come from.
trait Source {
    fn read(&self, name: &str, from: &str) -> Result<(String, String), std::io::Error>;
}

struct Builtin;

impl Source for Builtin {
    fn read(&self, name: &str, _from: &str) -> Result<(String, String), std::io::Error> {
        let base = name.rsplit('/').next().unwrap_or(name);
        BUILTIN
            .iter()
            .find(|(n, _)| *n == base)
            .map(|(n, text)| ((*text).to_owned(), (*n).to_owned()))
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such built-in dictionary")
            })
    }
}

struct Files;

impl Source for Files {
    fn read(&self, name: &str, from: &str) -> Result<(String, String), std::io::Error> {
        let p = Path::new(name);
        let path: PathBuf = if p.is_absolute() || from.is_empty() {
            p.to_path_buf()
        } else {
            Path::new(from).parent().unwrap_or(Path::new(".")).join(p)
        };
        let text = std::fs::read_to_string(&path)?;
        Ok((text, path.display().to_string()))
    }
}

impl Dictionary {
    /// The shipped dictionaries, as compiled into the binary.
    pub fn builtin() -> Dictionary {
        let mut d = Dictionary::default();
        d.include(&Builtin, "dictionary", "", 0)
            .expect("the shipped dictionaries parse (checked by a test)");
        d
    }

    /// Loads `path` and everything it includes.
    pub fn from_file(path: &Path) -> Result<Dictionary, DictError> {
        let mut d = Dictionary::default();
        d.include(&Files, &path.display().to_string(), "", 0)?;
        Ok(d)
    }

    /// Parses dictionary text; `$INCLUDE` is resolved against the built-in
    /// files.
    pub fn parse_str(text: &str) -> Result<Dictionary, DictError> {
        let mut d = Dictionary::default();
        d.parse(&Builtin, text, "<string>", 0)?;
        Ok(d)
    }

    fn include(
        &mut self,
        src: &dyn Source,
        name: &str,
        from: &str,
        depth: usize,
    ) -> Result<(), DictError> {
        let (text, file) = src.read(name, from).map_err(|e| DictError {
            file: if from.is_empty() {
                name.to_owned()
            } else {
                from.to_owned()
            },
            line: 0,
            kind: DictErrorKind::Io(e),
        })?;
        self.parse(src, &text, &file, depth)
    }

    fn parse(
        &mut self,
        src: &dyn Source,
        text: &str,
        file: &str,
        depth: usize,
    ) -> Result<(), DictError> {
        let mut vendor_block: Option<(String, u32)> = None;
        for (i, raw) in text.lines().enumerate() {
            let err = |kind| DictError {
                file: file.to_owned(),
                line: i + 1,
                kind,
            };
            let line = raw.split('#').next().unwrap_or("");
            let f: Vec<&str> = line.split_whitespace().collect();
            let Some(&keyword) = f.first() else { continue };
            let need = |keyword: &'static str, needed: usize| {
                if f.len() < needed {
                    Err(err(DictErrorKind::MissingFields { keyword, needed }))
                } else {
                    Ok(())
                }
            };
            match keyword {
                "$INCLUDE" | "$INCLUDE-" => {
                    need("$INCLUDE", 2)?;
                    if depth >= 16 {
                        return Err(err(DictErrorKind::IncludeDepth));
                    }
                    match self.include(src, f[1], file, depth + 1) {
                        Err(DictError {
                            kind: DictErrorKind::Io(e),
                            ..
                        }) if keyword == "$INCLUDE-"
                            && e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(DictError {
                            kind: DictErrorKind::Io(e),
                            ..
                        }) => return Err(err(DictErrorKind::Io(e))),
                        other => other?,
                    }
                }
                "VENDOR" => {
                    need("VENDOR", 3)?;
                    let id = parse_number(f[2]).map_err(err)?;
                    let id = u32::try_from(id)
                        .map_err(|_| err(DictErrorKind::BadNumber(f[2].to_owned())))?;
                    self.vendors.insert(f[1].to_owned(), id);
                    self.vendor_names.insert(id, f[1].to_owned());
                }
                "BEGIN-VENDOR" => {
                    need("BEGIN-VENDOR", 2)?;
                    let id = *self
                        .vendors
                        .get(f[1])
                        .ok_or_else(|| err(DictErrorKind::UnknownVendor(f[1].to_owned())))?;
                    vendor_block = Some((f[1].to_owned(), id));
                }
                "END-VENDOR" => {
                    need("END-VENDOR", 2)?;
                    match &vendor_block {
                        Some((name, _)) if name == f[1] => vendor_block = None,
                        _ => return Err(err(DictErrorKind::UnbalancedVendor(f[1].to_owned()))),
                    }
                }
                "ATTRIBUTE" => {
                    need("ATTRIBUTE", 4)?;
                    let number = parse_number(f[2]).map_err(err)?;
                    let number = u32::try_from(number)
                        .map_err(|_| err(DictErrorKind::BadNumber(f[2].to_owned())))?;
                    let mut def = AttrDef {
                        name: f[1].to_owned(),
                        vendor: vendor_block.as_ref().map_or(0, |v| v.1),
                        number,
                        kind: AttrType::parse(f[3]),
                        encrypt: None,
                        has_tag: false,
                    };
                    if let Some(extra) = f.get(4) {
                        if let Some(&v) = self.vendors.get(*extra) {
                            // Old style: the vendor's name as the fourth field.
                            def.vendor = v;
                        } else {
                            for flag in extra.split(',') {
                                apply_flag(&mut def, flag).map_err(err)?;
                            }
                        }
                    }
                    self.by_name
                        .insert(def.name.clone(), (def.vendor, def.number));
                    self.attrs.insert((def.vendor, def.number), def);
                }
                "VALUE" => {
                    need("VALUE", 4)?;
                    let &(vendor, number) = self
                        .by_name
                        .get(f[1])
                        .ok_or_else(|| err(DictErrorKind::UnknownAttribute(f[1].to_owned())))?;
                    let v = parse_number(f[3]).map_err(err)?;
                    self.values.insert((vendor, number, v), f[2].to_owned());
                }
                other => return Err(err(DictErrorKind::UnknownKeyword(other.to_owned()))),
            }
        }
        if vendor_block.is_some() {
            return Err(DictError {
                file: file.to_owned(),
                line: text.lines().count(),
                kind: DictErrorKind::UnclosedVendor,
            });
        }
        Ok(())
    }

    /// The definition of a standard (`vendor` 0) or vendor attribute.
    pub fn attr(&self, vendor: u32, number: u32) -> Option<&AttrDef> {
        self.attrs.get(&(vendor, number))
    }

    pub fn attr_by_name(&self, name: &str) -> Option<&AttrDef> {
        self.by_name.get(name).and_then(|k| self.attrs.get(k))
    }

    pub fn vendor_id(&self, name: &str) -> Option<u32> {
        self.vendors.get(name).copied()
    }

    pub fn vendor_name(&self, id: u32) -> Option<&str> {
        self.vendor_names.get(&id).map(String::as_str)
    }

    /// The name of an enumerated value, e.g. `Service-Type` 2 → `Framed-User`.
    pub fn value_name(&self, vendor: u32, number: u32, value: u64) -> Option<&str> {
        self.values
            .get(&(vendor, number, value))
            .map(String::as_str)
    }

    /// Every attribute encrypted with the shared secret.
    pub fn encrypted(&self) -> impl Iterator<Item = (&AttrDef, Encrypt)> {
        self.attrs
            .values()
            .filter_map(|d| d.encrypt.map(|e| (d, e)))
    }

    /// A printable name: the dictionary's, or `Attr-N` / `Vendor-V-Attr-N`.
    pub fn name_of(&self, vendor: u32, number: u32) -> String {
        match self.attr(vendor, number) {
            Some(d) => d.name.clone(),
            None if vendor == 0 => format!("Attr-{number}"),
            None => format!("Vendor-{vendor}-Attr-{number}"),
        }
    }

    pub fn len(&self) -> usize {
        self.attrs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.attrs.is_empty()
    }
}

fn apply_flag(def: &mut AttrDef, flag: &str) -> Result<(), DictErrorKind> {
    match flag {
        "has_tag" => def.has_tag = true,
        "encrypt=1" => def.encrypt = Some(Encrypt::UserPassword),
        "encrypt=2" => def.encrypt = Some(Encrypt::Salted),
        "encrypt=3" => def.encrypt = Some(Encrypt::Ascend),
        // Flags that change nothing for a proxy that relays values as octets.
        "array" | "concat" | "virtual" | "secret" | "long" | "internal" => {}
        other => return Err(DictErrorKind::BadFlag(other.to_owned())),
    }
    Ok(())
}

fn parse_number(s: &str) -> Result<u64, DictErrorKind> {
    let r = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16)
    } else {
        s.parse::<u64>()
    };
    r.map_err(|_| DictErrorKind::BadNumber(s.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_dictionaries_parse_and_know_the_rfc_attributes() {
        let d = Dictionary::builtin();
        assert_eq!(d.attr(0, 1).map(|a| a.name.as_str()), Some("User-Name"));
        assert_eq!(
            d.attr(0, 2).and_then(|a| a.encrypt),
            Some(Encrypt::UserPassword)
        );
        let tp = d.attr_by_name("Tunnel-Password").expect("rfc2868");
        assert_eq!(
            (tp.number, tp.encrypt, tp.has_tag),
            (69, Some(Encrypt::Salted), true)
        );
        assert_eq!(
            d.attr(0, 80).map(|a| a.name.as_str()),
            Some("Message-Authenticator")
        );
        assert_eq!(d.attr(0, 79).map(|a| a.name.as_str()), Some("EAP-Message"));
        assert_eq!(
            d.attr(0, 95).map(|a| a.name.as_str()),
            Some("NAS-IPv6-Address")
        );
        assert_eq!(d.attr(0, 101).map(|a| a.name.as_str()), Some("Error-Cause"));
        assert_eq!(
            d.attr(0, 40).map(|a| a.name.as_str()),
            Some("Acct-Status-Type")
        );
        assert_eq!(d.vendor_id("Microsoft"), Some(311));
        let send = d.attr(311, 16).expect("ms-mppe-send-key");
        assert_eq!(
            (send.name.as_str(), send.encrypt),
            ("MS-MPPE-Send-Key", Some(Encrypt::Salted))
        );
        assert_eq!(
            d.attr(311, 12).and_then(|a| a.encrypt),
            Some(Encrypt::UserPassword)
        );
        assert_eq!(d.value_name(0, 6, 2), Some("Framed-User"));
        assert_eq!(d.name_of(0, 250), "Attr-250");
        assert_eq!(d.name_of(9, 1), "Vendor-9-Attr-1");
    }

    #[test]
    fn parses_every_construct() {
        let text = "\
# a comment
VENDOR      Example     32473   # trailing comment
VENDOR      Cisco       9
ATTRIBUTE   Old-Style   1   string  Cisco
BEGIN-VENDOR Example
ATTRIBUTE   Ex-Secret   0x10    octets  encrypt=2,has_tag
ATTRIBUTE   Ex-Mode     2   integer
VALUE       Ex-Mode     On  1
END-VENDOR  Example
ATTRIBUTE   Plain-Attr  200 ipaddr
$INCLUDE-   no-such-file
";
        let d = Dictionary::parse_str(text).expect("parses");
        assert_eq!(d.attr(9, 1).map(|a| a.name.as_str()), Some("Old-Style"));
        let s = d.attr(32473, 16).expect("vendor attr");
        assert_eq!((s.encrypt, s.has_tag), (Some(Encrypt::Salted), true));
        assert_eq!(d.value_name(32473, 2, 1), Some("On"));
        assert_eq!(
            d.attr(0, 200).map(|a| a.kind.clone()),
            Some(AttrType::IpAddr)
        );
        assert_eq!(d.vendor_name(32473), Some("Example"));
    }

    #[test]
    fn errors_name_the_line_and_problem() {
        let cases = [
            ("FOO bar", "unsupported keyword `FOO`"),
            ("ATTRIBUTE X", "needs 4 fields"),
            ("ATTRIBUTE X 12z string", "`12z` is not a number"),
            ("VALUE Nope A 1", "unknown attribute `Nope`"),
            ("BEGIN-VENDOR Nobody", "unknown vendor `Nobody`"),
            ("ATTRIBUTE X 1 string bogus", "unknown flag `bogus`"),
            ("VENDOR V 5\nBEGIN-VENDOR V\n", "not closed"),
            ("END-VENDOR V", "does not close"),
            ("$INCLUDE missing-file", "cannot read"),
            ("ATTRIBUTE X 1.2 string", "`1.2` is not a number"),
        ];
        for (text, want) in cases {
            let e = Dictionary::parse_str(text).expect_err(text).to_string();
            assert!(e.contains(want), "{text:?} gave {e:?}");
            assert!(e.starts_with("<string>:"), "{e}");
        }
    }

    #[test]
    fn include_loops_are_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("loop");
        std::fs::write(&p, "$INCLUDE loop\n").expect("write");
        let e = Dictionary::from_file(&p).expect_err("loop").to_string();
        assert!(e.contains("16 deep"), "{e}");
    }

    #[test]
    fn loads_the_shipped_files_from_disk() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("dictionaries/dictionary");
        let d = Dictionary::from_file(&p).expect("loads");
        assert_eq!(d.len(), Dictionary::builtin().len());
    }
}
