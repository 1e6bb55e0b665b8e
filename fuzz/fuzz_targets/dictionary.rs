//! `cargo fuzz run dictionary`: see `fuzz/src/dictionary.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mfa_proxy_fuzz::dictionary::run(data));
