//! The committed seeds and regression inputs, replayed through the
//! harnesses; and the seed writer.

use std::path::{Path, PathBuf};

use crate::engine::{Scenario, run, run_scenario};
use crate::seeds;

const TARGETS: [&str; 3] = ["packet", "dictionary", "engine"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.retain(|p| p.is_file() && p.file_name().is_some_and(|n| n != ".gitkeep"));
    v.sort();
    v
}

fn run_target(target: &str, data: &[u8]) {
    match target {
        "packet" => crate::packet::run(data),
        "dictionary" => crate::dictionary::run(data),
        "engine" => {
            let _ = run(data, false);
        }
        _ => unreachable!(),
    }
}

/// Every seed and every saved crash input runs without a panic.
#[test]
fn seeds_and_regressions_pass() {
    for t in TARGETS {
        let seeds = files(&root().join("seeds").join(t));
        assert!(!seeds.is_empty(), "no seeds for {t}");
        for f in seeds
            .into_iter()
            .chain(files(&root().join("regressions").join(t)))
        {
            let data = std::fs::read(&f).expect("read");
            eprintln!("{}", f.display());
            run_target(t, &data);
        }
    }
}

/// The encoder is the inverse of `arbitrary`, and the scenarios do what
/// their names say.
#[test]
fn engine_scenarios_decode_and_reach() {
    for (name, s) in seeds::engine_scenarios() {
        let bytes = s.encode();
        assert_eq!(Scenario::decode(&bytes).as_ref(), Some(&s), "{name}");
        let r = run_scenario(&s, true).expect("report");
        let expect = |what: &str, n: u64| assert!(n > 0, "{name}: no {what}\n{r:?}");
        match name {
            "challenge-then-code" => {
                expect("challenge", r.challenges_to_nas);
                expect("accept", r.accepts_to_nas);
            }
            "local-password-then-code" => {
                expect("password check", r.password_jobs);
                expect("accept", r.accepts_to_nas);
            }
            "call-pin" | "sms-code-and-pin" => {
                expect("PIN check", r.pin_jobs);
                expect("accept", r.accepts_to_nas);
            }
            "push-approved" => {
                expect("delivery", r.deliveries);
                expect("accept", r.accepts_to_nas);
            }
            "call-fraud" => expect("fraud report", r.fraud_reports),
            "number-matching" => {
                expect("challenge", r.challenges_to_nas);
                expect("accept", r.accepts_to_nas);
            }
            _ => {}
        }
    }
}

/// Rewrites `fuzz/seeds/` and the hand-minimised `fuzz/regressions/`: `cargo test --manifest-path fuzz/Cargo.toml --
/// --ignored write_seeds`.
#[test]
#[ignore]
fn write_seeds() {
    let dir = |t: &str| {
        let d = root().join("seeds").join(t);
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    };
    let d = dir("packet");
    for (name, bytes) in seeds::packets() {
        std::fs::write(d.join(name), bytes).expect("write");
    }
    let d = dir("engine");
    for (name, s) in seeds::engine_scenarios() {
        std::fs::write(d.join(name), s.encode()).expect("write");
    }
    let d = dir("dictionary");
    for f in files(&root().join("../dictionaries")) {
        let name = f.file_name().expect("name").to_string_lossy().into_owned();
        std::fs::copy(&f, d.join(name)).expect("copy");
    }
    for (name, text) in seeds::dictionaries() {
        std::fs::write(d.join(name), text).expect("write");
    }
    let d = root().join("regressions").join("engine");
    std::fs::create_dir_all(&d).expect("mkdir");
    for (name, s) in seeds::engine_regressions() {
        std::fs::write(d.join(name), s.encode()).expect("write");
    }
}
