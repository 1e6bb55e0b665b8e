//! mfa-proxy: a RADIUS second-factor authentication proxy.
//!
//! The layout follows the design (`ARCHITECTURE.md`): [`radius`] is the wire,
//! [`engine`] the sans-IO core, [`io`] the tokio shell that moves bytes,
//! [`config`] the `proxy.toml` contract; [`enroll`] mails users the
//! invitations to enroll.

#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod directory;
pub mod engine;
pub mod enroll;
mod hex;
pub mod io;
pub mod mfa;
pub mod policy;
pub mod portal;
pub mod radius;
pub mod secret;
pub mod store;

/// What `mfa-proxy --version` prints after the name: the package version and
/// the commit it was built from (`-dirty` for uncommitted changes,
/// `unknown` when built outside git without `MFA_PROXY_COMMIT`; see build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("MFA_PROXY_COMMIT_ID"),
    ")"
);
