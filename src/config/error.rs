//! What goes wrong in a configuration, and how it is said.

use std::path::{Path, PathBuf};

/// A configuration problem. Every variant names where it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}, line {line}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("`{key}`: {problem}")]
    Invalid { key: String, problem: String },
    /// A broken enrollment mail template: the file and what is wrong.
    #[error("`enrollment.templates`: {source}")]
    Template {
        #[source]
        source: crate::enroll::template::TemplateError,
    },
    /// A problem in one named entry of an array of tables, such as
    /// `[[policy]] "contractors": networks`.
    #[error("[[{table}]] \"{name}\": {key}: {problem}")]
    InEntry {
        table: &'static str,
        name: String,
        key: String,
        problem: String,
    },
}

pub(super) fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

/// Keys whose values must never be echoed back in an error.
fn is_secret_key(key: &str) -> bool {
    let k = key.trim().trim_matches('"');
    k == "secret" || k == "key" || k.ends_with("_secret") || k.ends_with("password")
}

/// A TOML syntax or type error, with its line; never the value of a secret
/// key, which the parser's message may quote.
pub(super) fn syntax_error(e: &toml::de::Error, text: &str, path: &Path) -> ConfigError {
    let line = e.span().map_or(0, |s| {
        text[..s.start.min(text.len())].matches('\n').count() + 1
    });
    let line_text = text.lines().nth(line.saturating_sub(1)).unwrap_or("");
    let key = line_text.split('=').next().unwrap_or("");
    let message = if line_text.contains('=') && is_secret_key(key) {
        // The parser's message may quote the value: say only what to do.
        format!("`{}` must be a quoted string", key.trim())
    } else {
        e.message().to_owned()
    };
    ConfigError::Syntax {
        path: path.to_path_buf(),
        line,
        message,
    }
}
