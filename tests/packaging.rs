//! The Debian package and the systemd unit, without building or installing
//! them (packaging/test-deb.sh does that, as root): the packaged
//! configuration is the shipped trial one with system paths, it loads, and
//! the unit, Cargo.toml's `[package.metadata.deb]` and the maintainer
//! scripts agree on where things live.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use mfa_proxy::config::Config;
use mfa_proxy::radius::dict::Dictionary;

/// What turns the shipped `proxy.toml` into `packaging/proxy.toml`; each
/// left side occurs once in `proxy.toml`.
const SYSTEM_PATHS: &[(&str, &str)] = &[
    (
        "# mfa-proxy configuration.\n",
        "# mfa-proxy configuration, as the Debian package installs it in\n\
         # /etc/mfa-proxy/proxy.toml for mfa-proxy.service. It is a conffile: dpkg\n\
         # keeps your changes on upgrade. After a change: mfa-proxy check (below),\n\
         # then systemctl reload mfa-proxy (the README lists the few keys that\n\
         # need systemctl restart instead).\n",
    ),
    (
        "mfa-proxy check --config proxy.toml",
        "mfa-proxy check --config /etc/mfa-proxy/proxy.toml",
    ),
    (
        "# dictionary = \"dictionaries/dictionary\"   # default: the built-in copy of dictionaries/",
        "# dictionary = \"/usr/share/mfa-proxy/dictionaries/dictionary\"   # default: the built-in copy of these files",
    ),
    (
        "path = \"data/mfa.db\"         # SQLite, created on first run (relative to this file)",
        "path = \"/var/lib/mfa-proxy/mfa.db\"         # SQLite, created on first run",
    ),
    (
        "key_file = \"data/seed.key\"   #",
        "key_file = \"/var/lib/mfa-proxy/seed.key\"   #",
    ),
    (
        "# templates = \"templates\"                #",
        "# templates = \"/etc/mfa-proxy/templates\" #",
    ),
    (
        "# in templates/ beside this file):",
        "# in /usr/share/mfa-proxy/templates):",
    ),
];

const CONFIG: &str = "/etc/mfa-proxy/proxy.toml";
const DICTIONARIES: &str = "/usr/share/mfa-proxy/dictionaries/";

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn packaged() -> PathBuf {
    workspace().join("packaging/proxy.toml")
}

/// `packaging/proxy.toml` is the shipped trial configuration with the
/// system's paths, so a change to one that is not made to the other fails
/// here. `UPDATE_PACKAGED_CONFIG=1 cargo test --test packaging` rewrites it
/// from `proxy.toml`.
#[test]
fn the_packaged_config_is_the_shipped_one_with_system_paths() {
    let mut want = read(&workspace().join("proxy.toml"));
    for (from, to) in SYSTEM_PATHS {
        assert_eq!(
            want.matches(from).count(),
            1,
            "proxy.toml no longer has {from:?} once: update SYSTEM_PATHS in tests/packaging.rs"
        );
        want = want.replace(from, to);
    }
    if std::env::var_os("UPDATE_PACKAGED_CONFIG").is_some() {
        std::fs::write(packaged(), &want).expect("write packaging/proxy.toml");
    }
    assert!(
        read(&packaged()) == want,
        "packaging/proxy.toml differs from proxy.toml with the system paths: \
         make the change in both, or run UPDATE_PACKAGED_CONFIG=1 cargo test --test packaging"
    );
}

#[test]
fn the_packaged_config_loads_with_the_store_in_var_lib() {
    let c = Config::load(&packaged()).expect("packaging/proxy.toml is valid");
    assert_eq!(c.store.path, Path::new("/var/lib/mfa-proxy/mfa.db"));
    assert_eq!(c.store.key_file, Path::new("/var/lib/mfa-proxy/seed.key"));
    assert!(c.mfa.enabled && !c.clients.is_empty());

    // The dictionary it names (commented out) is one the package installs:
    // loaded here from the repository's copy.
    let text = read(&packaged());
    let line = text
        .lines()
        .find(|l| l.starts_with("# dictionary = "))
        .expect("the dictionary line");
    let installed = line.split('"').nth(1).expect("a quoted path");
    let file = installed
        .strip_prefix(DICTIONARIES)
        .expect("a dictionary the package installs");
    let d = Dictionary::from_file(&workspace().join("dictionaries").join(file))
        .expect("the packaged dictionary loads");
    assert!(d.len() > 100, "{} attributes", d.len());
    let uncommented = text.replace(line, &format!("dictionary = \"{installed}\""));
    let c = Config::from_toml(&uncommented, Path::new(CONFIG)).expect("valid with a dictionary");
    assert_eq!(
        c.server.dictionary.as_deref(),
        Some(Path::new(installed)),
        "an absolute path stays as it is"
    );
}

/// One `Key=` value of the unit file.
fn unit_value<'a>(unit: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}=");
    unit.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("the unit has no {key}="))
}

#[test]
fn unit_package_and_maintainer_scripts_agree() {
    let manifest: toml::Value =
        toml::from_str(&read(&workspace().join("Cargo.toml"))).expect("Cargo.toml");
    let deb = &manifest["package"]["metadata"]["deb"];
    let assets: Vec<(String, String, String)> = deb["assets"]
        .as_array()
        .expect("assets")
        .iter()
        .map(|a| {
            let s = |i: usize| a[i].as_str().expect("asset strings").to_owned();
            (s(0), s(1), s(2))
        })
        .collect();
    let dest = |source: &str| -> (String, String) {
        let a = assets
            .iter()
            .find(|a| a.0 == source)
            .unwrap_or_else(|| panic!("no asset {source}"));
        (a.1.clone(), a.2.clone())
    };
    assert_eq!(
        dest("target/release/mfa-proxy"),
        ("usr/bin/".into(), "755".into())
    );
    assert_eq!(
        dest("packaging/mfa-proxy.service"),
        ("lib/systemd/system/".into(), "644".into())
    );
    assert_eq!(
        dest("packaging/proxy.toml"),
        ("etc/mfa-proxy/".into(), "640".into()),
        "the configuration holds shared secrets"
    );
    assert_eq!(
        dest("dictionaries/*").0,
        DICTIONARIES.trim_start_matches('/')
    );
    assert_eq!(
        dest("templates/*"),
        ("usr/share/mfa-proxy/templates/".into(), "644".into()),
        "the shipped mail templates, for administrators to copy"
    );
    let conf_files = deb["conf-files"].as_array().expect("conf-files");
    assert!(conf_files.iter().any(|f| f.as_str() == Some(CONFIG)));

    let unit = read(&workspace().join("packaging/mfa-proxy.service"));
    let exec = unit_value(&unit, "ExecStart");
    assert_eq!(exec, format!("/usr/bin/mfa-proxy serve --config {CONFIG}"));
    assert_eq!(
        unit_value(&unit, "ExecStartPre"),
        format!("/usr/bin/mfa-proxy check --config {CONFIG}")
    );
    // The unit's one writable place holds the packaged store and key.
    let c = Config::load(&packaged()).expect("valid");
    let rw = Path::new(unit_value(&unit, "ReadWritePaths"));
    assert!(c.store.path.starts_with(rw) && c.store.key_file.starts_with(rw));

    let scripts = workspace().join(
        deb["maintainer-scripts"]
            .as_str()
            .expect("maintainer-scripts"),
    );
    let postinst = read(&scripts.join("postinst"));
    assert!(postinst.contains(&format!("-m 0750 {}", rw.display())));
    assert!(postinst.contains(&format!(
        "chown root:{} {CONFIG}",
        unit_value(&unit, "User")
    )));
    for name in ["postinst", "prerm", "postrm"] {
        use std::os::unix::fs::PermissionsExt;
        let p = scripts.join(name);
        let mode = std::fs::metadata(&p).expect("script").permissions().mode();
        assert_eq!(mode & 0o755, 0o755, "{name} is executable");
        assert!(read(&p).starts_with("#!/bin/sh\n"), "{name}");
        let o = Command::new("sh")
            .arg("-n")
            .arg(&p)
            .output()
            .expect("sh -n");
        assert!(o.status.success(), "{name}: {}", text(&o));
    }
}

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
