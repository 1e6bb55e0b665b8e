//! One sync of one source, end to end: read the directory whole (groups,
//! then users, paged), plan against the store's users, then write the
//! changes a few hundred at a time so logins go on between the batches.
//!
//! Nothing is written unless the directory was read completely: a server
//! that cannot be reached, refuses the bind, or stops in the middle of a
//! search fails the sync before the plan, and the users stay as they are.
//! A scope group that no longer exists fails it too, and so does a plan
//! that would disable too many users (`max_disable`) unless forced.

use std::time::{Duration, Instant};

use super::ldap::{self, Entry, LdapFailure};
use super::plan::{self, Plan};
use super::scope::{self, Nesting};
use crate::config::Directory;
use crate::store::{Store, StoreError, UnixTime};

/// Changes per store transaction.
const BATCH: usize = 500;

/// The filter that finds groups: AD's `group`, OpenLDAP's `groupOfNames`
/// and `groupOfUniqueNames`.
const GROUPS_FILTER: &str =
    "(|(objectClass=group)(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))";

/// How a sync runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Plan and report, write nothing.
    pub dry_run: bool,
    /// Apply a plan that disables more than `max_disable`.
    pub force: bool,
}

/// Where a sync is, for a progress display.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Entries read so far (groups and users).
    Read(usize),
    /// Changes written so far, of all.
    Wrote(usize, usize),
}

/// Why a sync changed nothing, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Directory(#[from] LdapFailure),
    #[error("directory {name}: the bind password is not UTF-8 text")]
    Password { name: String },
    #[error(
        "directory {name}: the scope group {group} was not found under {base}; nothing changed"
    )]
    NoGroup {
        name: String,
        group: String,
        base: String,
    },
    #[error(
        "directory {name}: {why}; nothing changed (run `mfa-proxy directory sync --force` if it is right)"
    )]
    TooMany { name: String, why: String },
    #[error("directory {name}: reading the store's users: {source}")]
    Read { name: String, source: StoreError },
    #[error("directory {name}: writing changes {done} of {total} failed: {source}")]
    Write {
        name: String,
        done: usize,
        total: usize,
        source: StoreError,
    },
    #[error("directory {name}: cannot start the runtime: {source}")]
    Runtime {
        name: String,
        source: std::io::Error,
    },
}

/// What one sync did.
#[derive(Clone, Debug)]
pub struct Report {
    pub directory: String,
    /// User entries the search returned (in scope or not).
    pub entries: usize,
    /// Group entries read to resolve nesting.
    pub groups: usize,
    pub plan: Plan,
    /// Entry-level problems, then the plan's.
    pub problems: Vec<String>,
    /// Whether the changes were written (not a dry run).
    pub applied: bool,
    pub took: Duration,
}

impl Report {
    /// The one summary line of a sync.
    pub fn summary(&self) -> String {
        let p = &self.plan;
        format!(
            "directory {}: {} entries, {} users in scope; {}added {}, changed {}, enabled {}, disabled {}, removed {}, unchanged {}; {} problems; {:.1} s",
            self.directory,
            self.entries,
            p.listed,
            if self.applied {
                ""
            } else {
                "dry run, would have "
            },
            p.added,
            p.changed,
            p.enabled,
            p.disabled,
            p.removed,
            p.unchanged,
            self.problems.len(),
            self.took.as_secs_f64()
        )
    }
}

/// Mails an enrollment invitation to each user the sync `report` added,
/// when its source says `invite = true` and the changes were written
/// (blocking). `None` when there is nobody to invite; the error when no
/// invitation can be sent at all (no `[enrollment]`).
pub fn invite_added(
    config: &crate::config::Config,
    dir: &Directory,
    store: &dyn Store,
    report: &Report,
    now: UnixTime,
) -> Option<Result<crate::enroll::InviteReport, crate::enroll::SetupError>> {
    if !dir.invite || !report.applied {
        return None;
    }
    let added: Vec<String> = report
        .plan
        .changes
        .iter()
        .filter_map(|c| match c {
            crate::store::UserChange::Add(u) => Some(u.name.clone()),
            _ => None,
        })
        .collect();
    if added.is_empty() {
        return None;
    }
    Some(crate::enroll::invite_users(
        store,
        config,
        &added,
        now,
        &mut |_| {},
    ))
}

/// Runs one sync of `dir` against `store` at `now` (blocking: call it
/// from a thread of its own, never the packet loop's).
pub fn run(
    dir: &Directory,
    store: &dyn Store,
    options: Options,
    now: UnixTime,
    progress: &mut dyn FnMut(Step),
) -> Result<Report, SyncError> {
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| SyncError::Runtime {
            name: dir.name.clone(),
            source,
        })?;
    let (groups, users) = rt.block_on(read(dir, progress))?;
    drop(rt);
    let nesting = Nesting::new(dir, &groups);
    if let Some(group) = &dir.group
        && !nesting.has(group)
    {
        return Err(SyncError::NoGroup {
            name: dir.name.clone(),
            group: group.clone(),
            base: groups_base(&dir.base_dn).to_owned(),
        });
    }
    let entries = users.len();
    let (listed, mut problems) = scope::listed(dir, users, &nesting);
    let stored = store.users().map_err(|source| SyncError::Read {
        name: dir.name.clone(),
        source,
    })?;
    let plan = plan::plan(dir, listed, &stored, now);
    drop(stored);
    problems.extend(plan.problems.iter().cloned());
    if !options.force
        && let Some(why) = plan.too_many_disabled(dir.max_disable)
    {
        return Err(SyncError::TooMany {
            name: dir.name.clone(),
            why,
        });
    }
    if !options.dry_run {
        let total = plan.changes.len();
        for (i, batch) in plan.changes.chunks(BATCH).enumerate() {
            store
                .apply_directory(batch)
                .map_err(|source| SyncError::Write {
                    name: dir.name.clone(),
                    done: i * BATCH,
                    total,
                    source,
                })?;
            progress(Step::Wrote((i * BATCH + batch.len()).min(total), total));
        }
    }
    Ok(Report {
        directory: dir.name.clone(),
        entries,
        groups: groups.len(),
        plan,
        problems,
        applied: !options.dry_run,
        took: started.elapsed(),
    })
}

/// The directory's groups (when nesting matters) and its user entries.
async fn read(
    dir: &Directory,
    progress: &mut dyn FnMut(Step),
) -> Result<(Vec<Entry>, Vec<Entry>), SyncError> {
    let password =
        std::str::from_utf8(dir.bind_password.expose()).map_err(|_| SyncError::Password {
            name: dir.name.clone(),
        })?;
    let mut conn = ldap::connect(dir).await?;
    conn.bind(&dir.bind_dn, password).await?;
    let mut read = 0usize;
    let mut groups = Vec::new();
    if dir.group.is_some() || dir.groups_attribute.is_some() {
        let attrs = ["cn", scope::groups_attribute(dir)];
        conn.search(groups_base(&dir.base_dn), GROUPS_FILTER, &attrs, |e| {
            groups.push(e);
            read += 1;
            progress(Step::Read(read));
        })
        .await?;
    }
    let mut users = Vec::new();
    let attrs = scope::user_attributes(dir);
    conn.search(&dir.base_dn, &dir.filter, &attrs, |e| {
        users.push(e);
        read += 1;
        progress(Step::Read(read));
    })
    .await?;
    conn.close().await;
    Ok((groups, users))
}

/// Where groups are searched: the domain of the base DN (its trailing
/// `DC=` parts), since groups often live beside the users' OU rather
/// than in it; the base DN itself when it has no `DC=` part.
fn groups_base(base_dn: &str) -> &str {
    let mut start = base_dn.len();
    let mut at = base_dn.len();
    // Walk the RDNs from the end while they are DC=.
    for rdn in base_dn.rsplit(',') {
        let begins = at - rdn.len();
        if !rdn.trim().to_ascii_lowercase().starts_with("dc=") {
            break;
        }
        start = begins;
        at = begins.saturating_sub(1);
    }
    if start >= base_dn.len() {
        base_dn
    } else {
        base_dn[start..].trim_start()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_searched_in_the_domain_of_the_base() {
        assert_eq!(
            groups_base("OU=Users,DC=corp,DC=example"),
            "DC=corp,DC=example"
        );
        assert_eq!(groups_base("DC=corp,DC=example"), "DC=corp,DC=example");
        assert_eq!(groups_base("ou=people, dc=example"), "dc=example");
        assert_eq!(groups_base("o=Example"), "o=Example");
    }
}
