//! Harnesses of the fuzz targets in `fuzz_targets/`, kept in a library so
//! that the tests of this crate can replay the committed seeds and
//! regression inputs through exactly the code the fuzzer runs
//! (`cargo test --manifest-path fuzz/Cargo.toml`).

pub mod dictionary;
pub mod engine;
pub mod packet;
pub mod seeds;

#[cfg(test)]
mod tests;
