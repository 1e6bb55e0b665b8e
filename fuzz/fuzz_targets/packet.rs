//! `cargo fuzz run packet`: see `fuzz/src/packet.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mfa_proxy_fuzz::packet::run(data));
