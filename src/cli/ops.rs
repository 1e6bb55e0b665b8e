//! The store as a whole: `backup` and `restore` of a SQLite store, and
//! `migrate` from SQLite to PostgreSQL. A PostgreSQL store is backed up
//! with PostgreSQL's own tools, which these commands name.
//!
//! Restore and migrate need the database to themselves: a `serve` running
//! on it would go on writing into the file a restore replaces, and logins
//! it accepted after a migration's copy would be missing from PostgreSQL
//! (and their codes usable again). "In use" is any other connection to the
//! database (see [`SqliteLock`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::{AdminError, invalid};
use crate::config::StoreConfig;
use crate::store::{PgStore, SeedKey, SqliteLock, SqliteStore, StoreError, UnixTime, file};

/// What to run instead on a PostgreSQL store.
pub const PG_TOOLS: &str = "the store is PostgreSQL: back it up with PostgreSQL's tools, \
     `pg_dump -Fc -f mfa.dump -d URL` (while the nodes run), and restore into a new, empty database \
     with `pg_restore --no-owner -d NEWURL mfa.dump`; keep the seed key file with the dump \
     (README, \"Backups\")";

fn sqlite_only(cfg: &StoreConfig) -> Result<(), AdminError> {
    match cfg.postgres {
        Some(_) => Err(invalid(PG_TOOLS)),
        None => Ok(()),
    }
}

/// `mfa-proxy backup FILE`: a consistent copy of the SQLite database, taken
/// while `serve` runs, to a new file (mode 0600).
pub fn backup(cfg: &StoreConfig, to: &Path, out: &mut dyn Write) -> Result<(), AdminError> {
    sqlite_only(cfg)?;
    if to.symlink_metadata().is_ok() {
        return Err(invalid(format!(
            "{}: exists; a backup never overwrites a file: give a new name",
            to.display()
        )));
    }
    let store = file::open_existing(&cfg.path, &cfg.key_file)?;
    let counts = store.backup_to(to)?;
    writeln!(
        out,
        "backed up {} to {}: {counts}",
        cfg.path.display(),
        to.display(),
    )?;
    writeln!(
        out,
        "the seed key is not in the backup: keep a copy of {} with it (the seeds do not open without it; \
         keep both as secret as the database)",
        cfg.key_file.display()
    )?;
    Ok(())
}

/// A file removed when dropped, unless kept.
struct Scratch(Option<PathBuf>);

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(&p);
            for suffix in ["-wal", "-shm", "-journal"] {
                let mut s = p.as_os_str().to_owned();
                s.push(suffix);
                let _ = std::fs::remove_file(s);
            }
        }
    }
}

/// A path beside `path` with `suffix` added to its name.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Copies `from` to the new file `to`, mode 0600.
fn copy_new(from: &Path, to: &Path) -> Result<(), AdminError> {
    let mut src = std::fs::File::open(from)
        .map_err(|e| invalid(format!("{}: cannot be read: {e}", from.display())))?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut dst = opts
        .open(to)
        .map_err(|e| invalid(format!("{}: {e}", to.display())))?;
    std::io::copy(&mut src, &mut dst)?;
    dst.sync_all()?;
    Ok(())
}

/// Gives `file` the owner of the database at `db` (or of its directory):
/// a restore run as root must leave a database the service's user opens.
fn same_owner(db: &Path, file: &Path) -> Result<(), AdminError> {
    use std::os::unix::fs::MetadataExt;
    let dir = db.parent().filter(|d| !d.as_os_str().is_empty());
    let owner = std::fs::metadata(db)
        .or_else(|_| std::fs::metadata(dir.unwrap_or(Path::new("."))))
        .map_err(StoreError::io)?;
    let mine = std::fs::metadata(file).map_err(StoreError::io)?;
    if (mine.uid(), mine.gid()) != (owner.uid(), owner.gid()) {
        std::os::unix::fs::chown(file, Some(owner.uid()), Some(owner.gid())).map_err(|e| {
            invalid(format!(
                "cannot give the restored database the owner of {} ({e}): run restore as that user or as root",
                db.display()
            ))
        })?;
    }
    Ok(())
}

/// `mfa-proxy restore FILE`: puts a backup in place of the configured SQLite
/// database, when nothing has that open, after checking that it is an
/// mfa-proxy database this program reads and that the configured seed key
/// opens its seeds. The database replaced is kept beside it.
pub fn restore(
    cfg: &StoreConfig,
    from: &Path,
    now: UnixTime,
    out: &mut dyn Write,
) -> Result<(), AdminError> {
    sqlite_only(cfg)?;
    let db = &cfg.path;
    let key = || {
        SeedKey::load(&cfg.key_file).map_err(|e| match e {
            StoreError::Missing { path, .. } => invalid(format!(
                "{}: no seed key: copy the key file that was backed up with the database there first",
                path.display()
            )),
            e => e.into(),
        })
    };
    key()?;
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(StoreError::io)?;
    }
    // The backup is checked as a copy beside the database, which then
    // takes its place: the file given is never changed.
    let tmp = beside(db, &format!(".restoring-{}", std::process::id()));
    let mut scratch = Scratch(Some(tmp.clone()));
    copy_new(from, &tmp)?;
    same_owner(db, &tmp)?;
    let version = SqliteStore::schema_of(&tmp).map_err(|_| {
        invalid(format!(
            "{}: not an mfa-proxy database (nothing was changed)",
            from.display()
        ))
    })?;
    if version > SqliteStore::SCHEMA {
        return Err(StoreError::SchemaTooNew {
            found: version,
            supported: SqliteStore::SCHEMA,
        }
        .into());
    }
    let (seeds, counts) = {
        let restored = SqliteStore::open(&tmp, key()?)?;
        let seeds = restored.check_seeds().map_err(|e| match e {
            StoreError::SealBroken => invalid(format!(
                "the seed key {} does not open the seeds in {}: restore the key file that was backed up \
                 with it (nothing was changed)",
                cfg.key_file.display(),
                from.display()
            )),
            e => e.into(),
        })?;
        (seeds, restored.counts()?)
    };
    let present = db.exists() && std::fs::metadata(db).map_err(StoreError::io)?.len() > 0;
    let kept = if present {
        let lock = SqliteLock::take(db).map_err(|e| match e {
            StoreError::InUse { .. } => invalid(format!(
                "{}: in use by a running `mfa-proxy serve` (or another mfa-proxy command): \
                 stop it first (systemctl stop mfa-proxy), restore, then start it (nothing was changed)",
                db.display()
            )),
            e => e.into(),
        })?;
        let keep = beside(db, &format!(".before-restore-{now}"));
        if keep.exists() {
            return Err(invalid(format!("{}: exists; try again", keep.display())));
        }
        lock.replace_with(&tmp, &keep)?;
        Some(keep)
    } else {
        std::fs::rename(&tmp, db).map_err(StoreError::io)?;
        None
    };
    scratch.0 = None;
    writeln!(
        out,
        "restored {} from {}: {counts}",
        db.display(),
        from.display(),
    )?;
    match seeds {
        0 => writeln!(
            out,
            "the backup has no tokens, so the seed key could not be checked against it"
        )?,
        n => writeln!(out, "the seed key opens all {n} token seeds")?,
    }
    match kept {
        Some(k) => writeln!(out, "the database it replaced is kept as {}", k.display())?,
        None => writeln!(out, "there was no database to replace")?,
    }
    Ok(())
}

/// The PostgreSQL URL `migrate` copies into, from one of its three sources.
pub fn read_url(
    to: Option<String>,
    to_file: Option<&Path>,
    to_env: Option<&str>,
) -> Result<Zeroizing<String>, AdminError> {
    let url = match (to, to_file, to_env) {
        (Some(u), None, None) => Zeroizing::new(u),
        (None, Some(f), None) => {
            let text = Zeroizing::new(
                std::fs::read_to_string(f).map_err(|e| invalid(format!("{}: {e}", f.display())))?,
            );
            Zeroizing::new(text.trim().to_owned())
        }
        (None, None, Some(v)) => Zeroizing::new(std::env::var(v).map_err(|_| {
            invalid(format!(
                "the environment variable {v} is not set (or not UTF-8)"
            ))
        })?),
        _ => return Err(invalid("give one of --to, --to-file and --to-env")),
    };
    // Never echoed: it holds the password.
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(invalid(
            "the PostgreSQL URL must start with postgres:// or postgresql://",
        ));
    }
    Ok(url)
}

/// `mfa-proxy migrate`: copies the SQLite store, whole, into an empty
/// PostgreSQL database in one transaction, with the same seed key.
pub fn migrate(cfg: &StoreConfig, url: &str, out: &mut dyn Write) -> Result<(), AdminError> {
    if cfg.postgres.is_some() {
        return Err(invalid(
            "the store is PostgreSQL already: migrate copies a SQLite store ([store] path) into PostgreSQL",
        ));
    }
    let key = || -> Result<SeedKey, AdminError> {
        match SeedKey::load(&cfg.key_file) {
            Err(StoreError::Missing { .. }) => Err(StoreError::KeyMissing {
                path: cfg.path.clone(),
                key: cfg.key_file.clone(),
            }
            .into()),
            k => Ok(k?),
        }
    };
    let source = SqliteStore::open_exclusive(&cfg.path, key()?).map_err(|e| match e {
        StoreError::InUse { .. } => invalid(format!(
            "{}: in use by a running `mfa-proxy serve` (or another mfa-proxy command): stop it first; \
             logins it accepted after the copy would be missing from PostgreSQL, and their codes usable again",
            cfg.path.display()
        )),
        e => e.into(),
    })?;
    // Seeds PostgreSQL could not open are not worth copying.
    let seeds = source.check_seeds()?;
    let dump = source.dump()?;
    let target = PgStore::connect(url, key()?, 1)?;
    let counts = target.load(&dump)?;
    writeln!(
        out,
        "copied {} into PostgreSQL: {counts} (all {seeds} seeds open with {})",
        cfg.path.display(),
        cfg.key_file.display()
    )?;
    writeln!(
        out,
        "the SQLite database is left as it was. Next: point [store] at PostgreSQL (url_file) instead of path, \
         copy {} to every node, and start them (README, \"Several proxies on PostgreSQL\")",
        cfg.key_file.display()
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, Token, User};

    /// A SQLite store in `dir` with one user and one token, sealed with
    /// the key in `key_file`; its configuration.
    fn store_in(dir: &Path) -> StoreConfig {
        let cfg = StoreConfig {
            path: dir.join("data/mfa.db"),
            key_file: dir.join("data/seed.key"),
            postgres: None,
            audit_keep: None,
        };
        crate::store::file::init(&cfg.path, &cfg.key_file).expect("init");
        let s = file::open_existing(&cfg.path, &cfg.key_file).expect("open");
        s.add_user(&User::new("alice", crate::mfa::Method::Totp))
            .expect("user");
        s.add_token(&Token::totp("alice", Default::default()), b"seed")
            .expect("token");
        cfg
    }

    fn restore_err(cfg: &StoreConfig, from: &Path) -> String {
        let e = restore(cfg, from, 1, &mut Vec::new()).expect_err("refused");
        e.to_string()
    }

    #[test]
    fn restore_checks_the_file_and_the_key_and_changes_nothing_when_refused() {
        let (a, b) = (
            tempfile::tempdir().expect("a"),
            tempfile::tempdir().expect("b"),
        );
        let cfg_a = store_in(a.path());
        let backup_file = a.path().join("backup.db");
        backup(&cfg_a, &backup_file, &mut Vec::new()).expect("backup");
        // Another store, with another key: its key does not open the seeds.
        let cfg_b = store_in(b.path());
        let e = restore_err(&cfg_b, &backup_file);
        assert!(e.contains("does not open the seeds"), "{e}");
        // Not a database, and a database of another program.
        let junk = a.path().join("junk.db");
        std::fs::write(&junk, b"not a database at all").expect("junk");
        assert!(restore_err(&cfg_b, &junk).contains("not an mfa-proxy database"));
        let other = a.path().join("other.db");
        rusqlite::Connection::open(&other)
            .and_then(|c| c.execute_batch("CREATE TABLE users (x); CREATE TABLE t (y)"))
            .expect("other");
        assert!(restore_err(&cfg_b, &other).contains("not an mfa-proxy database"));
        // A newer program's database.
        let newer = a.path().join("newer.db");
        std::fs::copy(&backup_file, &newer).expect("copy");
        rusqlite::Connection::open(&newer)
            .and_then(|c| c.execute_batch("UPDATE schema_version SET version = 999"))
            .expect("newer");
        assert!(restore_err(&cfg_a, &newer).contains("newer than this program"));
        // Nothing changed at b: its own store, and no scratch files.
        let names: Vec<String> = std::fs::read_dir(b.path().join("data"))
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        // With the right key it is restored, the old database kept.
        std::fs::copy(&cfg_a.key_file, &cfg_b.key_file).expect("key");
        let mut out = Vec::new();
        restore(&cfg_b, &backup_file, 1, &mut out).expect("restore");
        let out = String::from_utf8(out).expect("utf-8");
        assert!(out.contains("opens all 1 token seeds"), "{out}");
        assert!(b.path().join("data/mfa.db.before-restore-1").exists());
        let s = file::open_existing(&cfg_b.path, &cfg_b.key_file).expect("open");
        let t = &s.tokens("alice").expect("tokens")[0];
        assert_eq!(&s.token_seed(t).expect("seed")[..], b"seed");
    }

    #[test]
    fn postgres_stores_are_sent_to_pg_dump() {
        let cfg = StoreConfig {
            path: "unused.db".into(),
            key_file: "seed.key".into(),
            postgres: Some(crate::config::PostgresConfig {
                url: crate::secret::Secret::new("postgres://mfa:hunter2@db/mfa"),
                pool_size: 1,
            }),
            audit_keep: None,
        };
        let e = backup(&cfg, Path::new("x.db"), &mut Vec::new()).expect_err("refused");
        assert!(e.to_string().contains("pg_dump -Fc"), "{e}");
        let e = restore_err(&cfg, Path::new("x.db"));
        assert!(e.contains("pg_restore") && !e.contains("hunter2"), "{e}");
    }
}
