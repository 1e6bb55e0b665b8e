//! The files of `user import` and `token import`: the errors file beside
//! the input, a token file read within its bound, PSKC recognised and
//! opened with the password or key it needs (a file, the environment, or a
//! prompt on a terminal; never an argument).

use std::path::{Path, PathBuf};

use mfa_proxy::cli::pskc;
use mfa_proxy::store::Store;

use crate::{AdminFailure, stdin_line};

/// Writes the rejected rows of an import beside the file, if there are any.
pub(crate) fn write_import_errors(file: &Path, errors: &str) -> Result<(), AdminFailure> {
    if errors.lines().count() > 1 {
        let err_file = file.with_extension("errors.csv");
        std::fs::write(&err_file, errors).map_err(|e| AdminFailure::Command(e.to_string()))?;
        println!("rows with errors were written to {}", err_file.display());
    }
    Ok(())
}

/// A token file, at most [`pskc::MAX_FILE`] octets of UTF-8.
pub(crate) fn read_token_file(file: &Path) -> Result<String, AdminFailure> {
    use std::io::Read;
    let at = |e: String| AdminFailure::Command(format!("{}: {e}", file.display()));
    let mut bytes = Vec::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(pskc::MAX_FILE as u64 + 1).read_to_end(&mut bytes))
        .map_err(|e| at(e.to_string()))?;
    if bytes.len() > pskc::MAX_FILE {
        return Err(at(pskc::PskcError::TooLarge.to_string()));
    }
    String::from_utf8(bytes).map_err(|_| at("not UTF-8 text".into()))
}

/// PSKC by its name (*.pskc, *.xml) or its content (XML starts with `<`).
pub(crate) fn is_pskc(file: &Path, text: &str) -> bool {
    let ext = file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    matches!(ext.as_deref(), Some("pskc" | "xml"))
        || text
            .trim_start_matches('\u{feff}')
            .trim_start()
            .starts_with('<')
}

/// Where the password or pre-shared key of a PSKC file comes from.
pub(crate) struct PskcSecrets {
    pub(crate) password_file: Option<PathBuf>,
    pub(crate) password_env: Option<String>,
    pub(crate) key_file: Option<PathBuf>,
    pub(crate) key_env: Option<String>,
    /// `--user-map`: the users of tokens whose key packages name none.
    pub(crate) user_map: Option<PathBuf>,
}

/// A secret from a file (its first line) or an environment variable.
pub(crate) fn read_secret(
    file: Option<&Path>,
    env: Option<&str>,
) -> Result<Option<zeroize::Zeroizing<String>>, AdminFailure> {
    if let Some(f) = file {
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(f)
                .map_err(|e| AdminFailure::Command(format!("{}: {e}", f.display())))?,
        );
        let line = text.lines().next().unwrap_or("");
        return Ok(Some(zeroize::Zeroizing::new(line.to_owned())));
    }
    if let Some(v) = env {
        return std::env::var(v)
            .map(zeroize::Zeroizing::new)
            .map(Some)
            .map_err(|_| {
                AdminFailure::Command(format!(
                    "the environment variable {v} is not set (or not UTF-8)"
                ))
            });
    }
    Ok(None)
}

/// Asks for a password on the terminal, without echo.
pub(crate) fn prompt_password(prompt: &str) -> Result<zeroize::Zeroizing<String>, AdminFailure> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    use std::os::fd::AsFd;
    let stdin = std::io::stdin();
    let fd = stdin.as_fd();
    let term = |e: nix::Error| AdminFailure::Command(format!("the terminal: {e}"));
    let old = tcgetattr(fd).map_err(term)?;
    let mut quiet = old.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    eprint!("{prompt}");
    tcsetattr(fd, SetArg::TCSANOW, &quiet).map_err(term)?;
    let line = stdin_line();
    tcsetattr(fd, SetArg::TCSANOW, &old).map_err(term)?;
    line
}

/// `token import FILE.pskc`: parses, opens with the password or key the
/// file needs, and imports what it can.
pub(crate) fn import_pskc(
    store: &dyn Store,
    file: &Path,
    text: &str,
    s: PskcSecrets,
    now: i64,
) -> Result<(usize, String), AdminFailure> {
    use pskc::{Container, KeyMaterial, Protection, PskcError};
    let fail = |e: PskcError| AdminFailure::Command(format!("{}: {e}", file.display()));
    let c = Container::parse(text).map_err(fail)?;
    let secret = match c.protection() {
        Protection::None => None,
        Protection::Password => {
            match read_secret(s.password_file.as_deref(), s.password_env.as_deref())? {
                Some(p) => Some(zeroize::Zeroizing::new(p.as_bytes().to_vec())),
                None if std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
                    Some(zeroize::Zeroizing::new(
                        prompt_password(&format!("password of {}: ", file.display()))?
                            .as_bytes()
                            .to_vec(),
                    ))
                }
                None => return Err(fail(PskcError::PasswordNeeded)),
            }
        }
        Protection::PreSharedKey => {
            let hex = read_secret(s.key_file.as_deref(), s.key_env.as_deref())?
                .ok_or_else(|| fail(PskcError::KeyNeeded))?;
            Some(pskc::key_from_hex(&hex).map_err(fail)?)
        }
    };
    let material = secret.as_deref().map(|k| match c.protection() {
        Protection::PreSharedKey => KeyMaterial::PreSharedKey(k),
        _ => KeyMaterial::Password(k),
    });
    let mut entries = c.entries(material).map_err(fail)?;
    if let Some(map) = &s.user_map {
        let text = std::fs::read_to_string(map)
            .map_err(|e| AdminFailure::Command(format!("{}: {e}", map.display())))?;
        let named = mfa_proxy::cli::apply_user_map(&mut entries, &text)
            .map_err(|e| AdminFailure::Command(format!("{}: {e}", map.display())))?;
        println!("{named} tokens given their user by {}", map.display());
    }
    let mut progress = mfa_proxy::cli::Progress::stderr("tokens", entries.len());
    let tick = &mut || progress.tick(std::time::Instant::now());
    let imported = mfa_proxy::cli::pskc_import(store, entries, now, tick);
    progress.finish();
    imported.map_err(|e| AdminFailure::Command(e.to_string()))
}

/// The rows of a CSV file with a header, about (a quoted line break makes
/// one row of two lines): the total its import's progress counts toward.
pub(crate) fn rows_in(text: &str) -> usize {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .count()
        .saturating_sub(1)
}
