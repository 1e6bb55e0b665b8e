//! The `dictionary` target: the FreeRADIUS-format dictionary parser on
//! arbitrary text.
//!
//! Two ways in, compared with each other:
//! - [`Dictionary::parse_str`], whose `$INCLUDE` resolves against the
//!   dictionaries compiled into the binary (no file system at all);
//! - [`Dictionary::from_file`] on the same text written into a private
//!   temporary directory (in `/dev/shm` where there is one). Lines `%%`
//!   split the input into several files (`dictionary`, `dictionary.1` to
//!   `dictionary.3`) that can include each other. An input that would make
//!   `from_file` open anything outside that directory (an `$INCLUDE` naming
//!   a path with `/` or `\`, `.` or `..`) is only parsed from the string.
//!
//! When the text has no `$INCLUDE`, both must agree: same success, same
//! number of attributes, same failing line and kind of error.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use mfa_proxy::radius::dict::{DictError, Dictionary};

/// Files an input can be split into.
const FILES: usize = 4;

/// A directory of this process's own, created once: in memory
/// (`/dev/shm`) where there is one, else in the temporary directory.
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let d = base.join(format!("mfa-proxy-fuzz-dict-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("create the scratch directory");
        d
    })
}

/// Include targets that stay inside the scratch directory.
fn includes_stay_inside(text: &str) -> bool {
    text.lines().all(|raw| {
        let line = raw.split('#').next().unwrap_or("");
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.first() {
            Some(k) if k.starts_with("$INCLUDE") => f.get(1).is_none_or(|name| {
                !name.contains('/') && !name.contains('\\') && *name != "." && *name != ".."
            }),
            _ => true,
        }
    })
}

fn file_name(i: usize) -> String {
    if i == 0 {
        "dictionary".to_owned()
    } else {
        format!("dictionary.{i}")
    }
}

fn has_include(text: &str) -> bool {
    text.lines().any(|raw| {
        raw.split('#')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .next()
            .is_some_and(|k| k.starts_with("$INCLUDE"))
    })
}

/// Everything a dictionary answers, called on what it holds.
fn exercise(d: &Dictionary, text: &str) {
    let _ = (d.len(), d.is_empty(), format!("{d:?}"));
    for (def, enc) in d.encrypted() {
        assert_eq!(def.encrypt, Some(enc));
    }
    for word in text.split_whitespace().take(64) {
        if let Some(def) = d.attr_by_name(word) {
            let _ = d.attr(def.vendor, def.number);
            let _ = d.name_of(def.vendor, def.number);
            let _ = d.value_name(def.vendor, def.number, 1);
        }
        if let Some(id) = d.vendor_id(word) {
            assert!(d.vendor_name(id).is_some());
        }
    }
    let _ = (d.name_of(0, 1), d.name_of(311, 16), d.name_of(9, 1));
}

fn describe(r: &Result<Dictionary, DictError>) -> Result<(usize, bool), (usize, String)> {
    match r {
        Ok(d) => Ok((d.len(), d.is_empty())),
        // The file name differs between the two; the line and kind must not.
        Err(e) => Err((e.line, format!("{:?}", std::mem::discriminant(&e.kind)))),
    }
}

pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let from_str = Dictionary::parse_str(&text);
    match &from_str {
        Ok(d) => exercise(d, &text),
        Err(e) => {
            let _ = e.to_string();
        }
    }
    if !includes_stay_inside(&text) {
        return;
    }
    let dir = scratch();
    // Files of an earlier input that this one does not have are removed,
    // so nothing of an earlier input is ever read.
    static WRITTEN: AtomicUsize = AtomicUsize::new(0);
    let mut n = 0;
    for (i, part) in text.split("\n%%\n").take(FILES).enumerate() {
        std::fs::write(dir.join(file_name(i)), part).expect("write to the scratch directory");
        n = i + 1;
    }
    for i in n..WRITTEN.swap(n, Ordering::Relaxed) {
        let _ = std::fs::remove_file(dir.join(file_name(i)));
    }
    let path = dir.join("dictionary");
    let from_file = Dictionary::from_file(&path);
    match &from_file {
        Ok(d) => exercise(d, &text),
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let single = !text.contains("\n%%\n");
    if single && !has_include(&text) {
        assert_eq!(
            describe(&from_str),
            describe(&from_file),
            "parse_str and from_file disagree"
        );
    }
}
