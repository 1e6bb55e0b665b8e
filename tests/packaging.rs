//! The systemd unit: packaging/verify-unit.sh runs `systemd-analyze` on it.

mod common;

use std::process::Command;

use common::*;

/// packaging/verify-unit.sh: `systemd-analyze verify` and `security`, and
/// the system calls the proxy needs against the unit's filter.
#[test]
fn the_unit_passes_systemd_analyze() {
    if !have("systemd-analyze") {
        return;
    }
    let o = Command::new("bash")
        .arg(workspace().join("packaging/verify-unit.sh"))
        .output()
        .expect("run verify-unit.sh");
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.trim_end().ends_with("passed, 0 failed"), "{out}");
}
