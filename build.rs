//! Records the commit that `mfa-proxy --version` names, as the compile-time
//! variable `MFA_PROXY_COMMIT_ID`:
//!
//! - in a git checkout of this tree, `git rev-parse --short=12 HEAD`, with
//!   `-dirty` when tracked files differ from that commit;
//! - otherwise (a tarball, a .deb built outside git, no git installed), the
//!   environment variable `MFA_PROXY_COMMIT` if it is set;
//! - otherwise `unknown`.
//!
//! The script runs again when HEAD moves (HEAD, the branch it points to,
//! packed refs, the index) and when the sources of the binary change, so the
//! value stays current without rebuilding on every `cargo build`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn main() {
    println!("cargo:rerun-if-env-changed=MFA_PROXY_COMMIT");
    let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from) else {
        println!("cargo:rustc-env=MFA_PROXY_COMMIT_ID=unknown");
        return;
    };
    let commit = from_git(&dir)
        .or_else(from_env)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=MFA_PROXY_COMMIT_ID={commit}");
}

/// What `git args` prints in `dir`, trimmed; `None` if git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        // `git status` must not rewrite the index: that would re-run this script.
        .env("GIT_OPTIONAL_LOCKS", "0")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout)
        .ok()
        .map(|s| s.trim().to_owned())
}

fn from_git(dir: &Path) -> Option<String> {
    // Only this tree's own repository, not one it happens to be unpacked in.
    let top = PathBuf::from(git(dir, &["rev-parse", "--show-toplevel"])?);
    if top.canonicalize().ok()? != dir.canonicalize().ok()? {
        return None;
    }
    let commit = git(dir, &["rev-parse", "--short=12", "HEAD"])?;
    if commit.is_empty() || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut watched = vec![
        "HEAD".to_owned(),
        "index".to_owned(),
        "packed-refs".to_owned(),
    ];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in watched {
        if let Some(p) = git(dir, &["rev-parse", "--git-path", &name]) {
            let p = dir.join(p);
            if p.exists() {
                println!("cargo:rerun-if-changed={}", p.display());
            }
        }
    }
    for p in ["src", "build.rs", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={p}");
    }
    let dirty =
        git(dir, &["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty {
        format!("{commit}-dirty")
    } else {
        commit
    })
}

/// `MFA_PROXY_COMMIT`, kept to the characters a commit or tag name uses.
fn from_env() -> Option<String> {
    let v = std::env::var("MFA_PROXY_COMMIT").ok()?;
    let v: String = v
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'))
        .take(64)
        .collect();
    (!v.is_empty()).then_some(v)
}
