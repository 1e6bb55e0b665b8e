//! `cargo fuzz run engine`: see `fuzz/src/engine.rs`. `cargo fuzz fmt
//! engine INPUT` prints an input as the actions it stands for.
//!
//! With `ENGINE_REACH=1` in the environment, what the inputs reached
//! (challenges, PIN checks, local passwords, out-of-band results, every
//! engine counter and result code) is added up and printed when the process
//! exits, e.g. after `cargo fuzz run engine CORPUS -- -runs=0`.
#![no_main]

use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use mfa_proxy_fuzz::engine::{Reach, Scenario, report, run_scenario};

static TOTAL: Mutex<Option<(u64, Reach)>> = Mutex::new(None);

unsafe extern "C" {
    fn atexit(f: extern "C" fn()) -> i32;
}

extern "C" fn print_reach() {
    if let Ok(t) = TOTAL.lock() {
        if let Some((inputs, r)) = t.as_ref() {
            eprintln!("{}", report(*inputs, r));
        }
    }
}

fn reach_wanted() -> bool {
    static WANTED: OnceLock<bool> = OnceLock::new();
    *WANTED.get_or_init(|| {
        let on = std::env::var_os("ENGINE_REACH").is_some();
        if on {
            // SAFETY: registers a function that takes nothing and only
            // reads a mutex-guarded static.
            unsafe {
                atexit(print_reach);
            }
        }
        on
    })
}

fuzz_target!(|s: Scenario| {
    let wanted = reach_wanted();
    if let Some(r) = run_scenario(&s, wanted) {
        let mut t = TOTAL.lock().expect("not poisoned");
        let (n, total) = t.get_or_insert_with(Default::default);
        *n += 1;
        total.add(&r);
    }
});
