//! What one sync of a source changes in the store, from the users the
//! directory lists ([`Listed`]) and the users the store has. Pure: no
//! I/O, no clock (`now` is given), so every rule is tested here.
//!
//! - A listed user the store lacks is added, with the source's default
//!   method and language, and belongs to the source.
//! - A listed user the store has, added by hand or by this source: the
//!   fields the source owns (a mapping is set) that differ are written; a
//!   field the source does not own is never touched, so what an
//!   administrator set stays. A user added by hand becomes the source's; a
//!   disabled one is enabled again.
//! - A listed user of another source is left alone, and said so.
//! - A user of this source the directory no longer lists (gone, or out of
//!   the filter, OU or group) is disabled; one disabled longer than
//!   `remove_after` is removed (the audit trail stays).

use std::collections::HashMap;

use super::scope::Listed;
use crate::config::Directory;
use crate::store::{UnixTime, User, UserChange, UserUpdate, fold, normalize_groups};

/// A sync's changes and its counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<UserChange>,
    pub added: usize,
    /// Owned fields written (an adopted or re-enabled user included).
    pub changed: usize,
    /// Listed again after being disabled.
    pub enabled: usize,
    pub disabled: usize,
    pub removed: usize,
    pub unchanged: usize,
    /// Users of this source, enabled, before the sync.
    pub enabled_before: usize,
    /// Users the directory lists in the source's scope.
    pub listed: usize,
    /// What an administrator should hear: users another source owns.
    pub problems: Vec<String>,
}

/// Plans the sync of `dir` from what it lists and the store's `users`.
pub fn plan(dir: &Directory, listed: Vec<Listed>, users: &[User], now: UnixTime) -> Plan {
    let mut p = Plan::default();
    let by_name: HashMap<String, &User> = users.iter().map(|u| (fold(&u.name), u)).collect();
    let mut seen: std::collections::HashSet<String> = Default::default();
    let ours = |u: &User| u.source.as_deref() == Some(dir.name.as_str());
    p.enabled_before = users
        .iter()
        .filter(|u| ours(u) && u.disabled_at.is_none())
        .count();
    p.listed = listed.len();
    for l in listed {
        let key = fold(&l.name);
        seen.insert(key.clone());
        if l.ambiguous {
            p.unchanged += usize::from(by_name.contains_key(&key));
            continue;
        }
        match by_name.get(&key) {
            None => {
                p.added += 1;
                p.changes.push(UserChange::Add(new_user(dir, l, now)));
            }
            Some(u) if u.source.is_some() && !ours(u) => {
                p.problems.push(format!(
                    "{}: belongs to directory {}; left alone",
                    u.name,
                    u.source.as_deref().unwrap_or_default()
                ));
            }
            Some(u) => match update(dir, u, l) {
                Some(change) => {
                    if u.disabled_at.is_some() {
                        p.enabled += 1;
                    } else {
                        p.changed += 1;
                    }
                    p.changes.push(UserChange::Update(change));
                }
                None => p.unchanged += 1,
            },
        }
    }
    let keep = i64::try_from(dir.remove_after.as_secs()).unwrap_or(i64::MAX);
    for u in users.iter().filter(|u| ours(u)) {
        if seen.contains(&fold(&u.name)) {
            continue;
        }
        match u.disabled_at {
            None => {
                p.disabled += 1;
                p.changes.push(UserChange::Disable {
                    name: u.name.clone(),
                    at: now,
                });
            }
            Some(at) if now.saturating_sub(at) >= keep => {
                p.removed += 1;
                p.changes.push(UserChange::Remove {
                    name: u.name.clone(),
                });
            }
            Some(_) => {}
        }
    }
    p
}

fn new_user(dir: &Directory, l: Listed, now: UnixTime) -> User {
    User {
        email: l.email,
        phone: l.phone,
        language: l.language.or_else(|| dir.default_language.clone()),
        groups: l.groups,
        created_at: now,
        source: Some(dir.name.clone()),
        ..User::new(l.name, dir.default_method)
    }
}

/// The update that brings `u` in line with what the directory lists, if
/// any is needed.
fn update(dir: &Directory, u: &User, l: Listed) -> Option<UserUpdate> {
    // An owned field whose value the entry had but could not be used stays.
    let owned =
        |mapping: &Option<String>, field: &str| mapping.is_some() && !l.unusable.contains(&field);
    let differs = |owned: bool, now: &Option<String>, listed: &Option<String>| {
        (owned && now != listed).then(|| listed.clone())
    };
    let email = differs(owned(&dir.email_attribute, "email"), &u.email, &l.email);
    let phone = differs(owned(&dir.phone_attribute, "phone"), &u.phone, &l.phone);
    let language = differs(
        owned(&dir.language_attribute, "language"),
        &u.language,
        &l.language,
    );
    let groups = (dir.groups_attribute.is_some() && normalize_groups(u.groups.clone()) != l.groups)
        .then_some(l.groups);
    let adopt = u.source.is_none() || u.disabled_at.is_some();
    let any = email.is_some() || phone.is_some() || language.is_some() || groups.is_some();
    (any || adopt).then(|| UserUpdate {
        name: u.name.clone(),
        source: dir.name.clone(),
        email,
        phone,
        language,
        groups,
    })
}

impl Plan {
    /// Why this plan must not be applied without `--force`: it would
    /// disable more than `limit` percent of the source's enabled users
    /// (more than a few), which is what a wrong filter, a renamed group or
    /// an emptied OU looks like.
    pub fn too_many_disabled(&self, limit_percent: u32) -> Option<String> {
        let before = self.enabled_before;
        let gone = self.disabled;
        if self.listed == 0 && gone > 0 {
            return Some(format!(
                "the directory lists no user in scope, so the sync would disable all {gone} of its users"
            ));
        }
        // A handful leaving at once is ordinary.
        if gone <= 10 {
            return None;
        }
        (gone * 100 > before * limit_percent as usize).then(|| {
            format!(
                "the sync would disable {gone} of the directory's {before} users, more than max_disable ({limit_percent} %)"
            )
        })
    }

    /// Whether the plan writes nothing.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
