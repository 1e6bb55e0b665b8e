//! mfa-proxy: a RADIUS second-factor authentication proxy.
//!
//! The layout follows the design (`ARCHITECTURE.md`): [`radius`] is the wire,
//! [`engine`] the sans-IO core, [`io`] the tokio shell that moves bytes,
//! [`config`] the `proxy.toml` contract.

#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod engine;
mod hex;
pub mod io;
pub mod mfa;
pub mod policy;
pub mod radius;
pub mod secret;
pub mod store;
