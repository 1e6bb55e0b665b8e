//! `mfa-proxy directory sync`: each source synced now, every change
//! printed on a line of its own, then the sync's summary line; after a
//! sync of every source, the users of sources no longer configured.

use std::io::Write;

use super::{AdminError, invalid};
use crate::config::Config;
use crate::directory::orphans::orphans;
use crate::directory::sync::{self, Options, Report, Step};
use crate::store::{Store, UnixTime, UserChange};

/// Syncs the sources of `config` (or the one named) into `store`, printing
/// to `out`; progress goes to stderr on a terminal. `Ok(false)` if a
/// source failed (the others still ran).
pub fn directory_sync(
    config: &Config,
    store: &dyn Store,
    name: Option<&str>,
    options: Options,
    now: UnixTime,
    out: &mut dyn Write,
) -> Result<bool, AdminError> {
    let sources: Vec<_> = config
        .directories
        .iter()
        .filter(|d| name.is_none_or(|n| d.name == n))
        .collect();
    if sources.is_empty() {
        return Err(invalid(match name {
            Some(n) => format!("no [[directory]] named \"{n}\" in the configuration"),
            None => "the configuration has no [[directory]] source".to_owned(),
        }));
    }
    let mut all_ok = true;
    for dir in sources {
        let mut shown = Shown::default();
        let result = sync::run(dir, store, options, now, &mut |s| shown.step(&dir.name, s));
        shown.end();
        match result {
            Ok(report) => {
                print_report(&report, out)?;
                match sync::invite_added(config, dir, store, &report, now) {
                    Some(Ok(invited)) => {
                        for o in &invited.outcomes {
                            match &o.result {
                                Ok(_) => writeln!(out, "invited {}", o.user)?,
                                Err(e) => {
                                    all_ok = false;
                                    writeln!(out, "not invited {}: {e}", o.user)?;
                                }
                            }
                        }
                    }
                    Some(Err(e)) => {
                        all_ok = false;
                        writeln!(out, "error: no enrollment invitation sent: {e}")?;
                    }
                    None => {}
                }
            }
            Err(e) => {
                all_ok = false;
                writeln!(out, "error: {e}")?;
            }
        }
    }
    if name.is_none() {
        for x in orphans(&store.users()?, &config.directories) {
            writeln!(out, "warning: {}", x.warning())?;
        }
    }
    Ok(all_ok)
}

fn print_report(r: &Report, out: &mut dyn Write) -> Result<(), AdminError> {
    for change in &r.plan.changes {
        match change {
            UserChange::Add(u) => {
                let mut what = Vec::new();
                if let Some(e) = &u.email {
                    what.push(e.clone());
                }
                if let Some(p) = &u.phone {
                    what.push(p.clone());
                }
                if let Some(l) = &u.language {
                    what.push(format!("language {l}"));
                }
                if !u.groups.is_empty() {
                    what.push(format!("groups {}", u.groups.join(", ")));
                }
                writeln!(out, "add {} ({})", u.name, what.join("; "))?;
            }
            UserChange::Update(u) => {
                let mut fields = Vec::new();
                for (f, set) in [
                    ("email", u.email.is_some()),
                    ("phone", u.phone.is_some()),
                    ("language", u.language.is_some()),
                    ("groups", u.groups.is_some()),
                ] {
                    if set {
                        fields.push(f);
                    }
                }
                if fields.is_empty() {
                    writeln!(out, "enable {} (listed by {} again)", u.name, r.directory)?;
                } else {
                    writeln!(out, "change {}: {}", u.name, fields.join(", "))?;
                }
            }
            UserChange::Disable { name, .. } => writeln!(out, "disable {name}")?,
            UserChange::Remove { name } => writeln!(out, "remove {name}")?,
        }
    }
    for p in &r.problems {
        writeln!(out, "problem: {p}")?;
    }
    writeln!(out, "{}", r.summary())?;
    Ok(())
}

/// Progress on a terminal: the entries read, then a bar of the changes
/// written. Nothing when stderr is not a terminal (the summary says it).
#[derive(Default)]
struct Shown {
    writing: Option<super::Progress<std::io::Stderr>>,
    reading: Option<std::time::Instant>,
    terminal: Option<bool>,
}

impl Shown {
    fn step(&mut self, name: &str, step: Step) {
        use std::io::IsTerminal;
        let terminal = *self
            .terminal
            .get_or_insert_with(|| std::io::stderr().is_terminal());
        if !terminal {
            return;
        }
        let now = std::time::Instant::now();
        match step {
            Step::Read(n) => {
                if self
                    .reading
                    .is_none_or(|at| now.duration_since(at).as_millis() >= 100)
                {
                    self.reading = Some(now);
                    eprint!("\rreading {name}: {n} entries");
                }
            }
            Step::Wrote(done, total) => {
                if self.reading.take().is_some() {
                    eprintln!();
                }
                let p = self
                    .writing
                    .get_or_insert_with(|| super::Progress::stderr("changes", total));
                // One tick per change written since the last step.
                while p.done() < done {
                    p.tick(now);
                }
            }
        }
    }

    fn end(self) {
        if self.reading.is_some() {
            eprintln!();
        }
        if let Some(p) = self.writing {
            p.finish();
        }
    }
}
