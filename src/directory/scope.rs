//! Which entries are users of a source, and what they say: the login
//! name, contact fields, language and groups, with nested groups resolved.
//! Pure: the entries come from [`super::ldap`].
//!
//! Nested groups are resolved here, from the `memberOf` of the users and
//! of the groups themselves, the same way for Active Directory and
//! OpenLDAP (whose `memberof` overlay keeps it on groups too). A user is
//! in the scope group when the group is among their groups, directly or
//! through any depth of nesting; loops in the nesting are harmless. A
//! user's groups are every group reached so, by name (`cn`).

use std::collections::{HashMap, HashSet};

use super::ldap::Entry;
use crate::config::Directory;
use crate::config::parse_language_tag;

/// A user as the directory lists them, in the source's scope.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    /// `None` for an owned field the entry leaves empty; fields the source
    /// does not own are `None` and ignored.
    pub email: Option<String>,
    pub phone: Option<String>,
    pub language: Option<String>,
    pub groups: Vec<String>,
    /// Fields whose value the entry had but which were unusable (a phone
    /// number that is not one): left as they are in the store.
    pub unusable: Vec<&'static str>,
    /// Another entry has the same name: the user is neither added nor
    /// changed, only kept from being disabled.
    pub ambiguous: bool,
}

/// A group entry: its name and the groups it is a member of.
#[derive(Clone, Debug)]
struct Group {
    name: String,
    parents: Vec<String>,
}

/// A DN as a key: case and spaces around separators do not matter
/// (`CN=VPN Users, OU=Groups` is `cn=vpn users,ou=groups`).
pub fn dn_key(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    for part in dn.split(',') {
        if !out.is_empty() {
            out.push(',');
        }
        match part.split_once('=') {
            Some((t, v)) => {
                out.push_str(&t.trim().to_lowercase());
                out.push('=');
                out.push_str(&v.trim().to_lowercase());
            }
            None => out.push_str(&part.trim().to_lowercase()),
        }
    }
    out
}

/// The value of a DN's first RDN: `CN=VPN Users,OU=Groups` → `VPN Users`.
fn first_rdn_value(dn: &str) -> &str {
    dn.split(',')
        .next()
        .and_then(|rdn| rdn.split_once('='))
        .map_or(dn, |(_, v)| v.trim())
}

/// The attribute that lists an entry's groups: the source's
/// `groups_attribute`, else `memberOf` (for the scope group alone).
pub fn groups_attribute(dir: &Directory) -> &str {
    dir.groups_attribute.as_deref().unwrap_or("memberOf")
}

/// What the sync reads of each user entry.
pub fn user_attributes(dir: &Directory) -> Vec<&str> {
    let mut a = vec![dir.name_attribute.as_str()];
    for m in [
        &dir.email_attribute,
        &dir.phone_attribute,
        &dir.language_attribute,
    ]
    .into_iter()
    .flatten()
    {
        a.push(m);
    }
    if dir.groups_attribute.is_some() || dir.group.is_some() {
        a.push(groups_attribute(dir));
    }
    a
}

/// The groups' nesting, from the group entries (`cn` and the groups
/// attribute).
#[derive(Debug)]
pub struct Nesting {
    groups: HashMap<String, Group>,
}

impl Nesting {
    pub fn new(dir: &Directory, entries: &[Entry]) -> Nesting {
        let attr = groups_attribute(dir);
        let groups = entries
            .iter()
            .map(|e| {
                let name = e.first("cn").unwrap_or(first_rdn_value(&e.dn)).to_owned();
                let parents = e.all(attr).iter().map(|p| dn_key(p)).collect();
                (dn_key(&e.dn), Group { name, parents })
            })
            .collect();
        Nesting { groups }
    }

    /// Whether a group with this DN exists.
    pub fn has(&self, dn: &str) -> bool {
        self.groups.contains_key(&dn_key(dn))
    }

    /// Every group reached from `direct` (DNs), by key, nesting followed.
    fn closure(&self, direct: &[String]) -> HashSet<String> {
        let mut seen: HashSet<String> = HashSet::new();
        let mut todo: Vec<String> = direct.iter().map(|d| dn_key(d)).collect();
        while let Some(g) = todo.pop() {
            if !seen.insert(g.clone()) {
                continue;
            }
            if let Some(group) = self.groups.get(&g) {
                todo.extend(group.parents.iter().cloned());
            }
        }
        seen
    }

    /// A group's name: its `cn`, or for a group outside the groups read,
    /// the value of its DN's first RDN.
    fn name<'a>(&'a self, key: &'a str) -> &'a str {
        self.groups
            .get(key)
            .map_or_else(|| first_rdn_value(key), |g| g.name.as_str())
    }
}

/// The users of the source among `entries`, and a line for each entry
/// left out for a reason an administrator should hear (no login name, a
/// name that cannot be one, a name twice).
pub fn listed(
    dir: &Directory,
    entries: Vec<Entry>,
    nesting: &Nesting,
) -> (Vec<Listed>, Vec<String>) {
    let scope = dir.group.as_deref().map(dn_key);
    let groups_attr = groups_attribute(dir);
    let mut out: Vec<Listed> = Vec::with_capacity(entries.len());
    let mut problems = Vec::new();
    // Each name's first entry: its DN and where it is in `out`.
    let mut names: HashMap<String, (String, usize)> = HashMap::new();
    for e in entries {
        let reached = if dir.groups_attribute.is_some() || scope.is_some() {
            nesting.closure(e.all(groups_attr))
        } else {
            HashSet::new()
        };
        if let Some(scope) = &scope
            && !reached.contains(scope)
        {
            continue;
        }
        let Some(name) = e.first(&dir.name_attribute).map(str::trim) else {
            problems.push(format!("{}: no {}; left out", e.dn, dir.name_attribute));
            continue;
        };
        if !crate::store::user_name_ok(name) {
            problems.push(format!(
                "{}: {} \"{}\" cannot be a user name (1 to 253 characters, no spaces or control characters); left out",
                e.dn,
                dir.name_attribute,
                name.escape_default()
            ));
            continue;
        }
        // Two entries with one name: which comes first is the server's
        // whim, so neither may write the user (the other's phone could be
        // set one sync and reverted the next). The user stays as they are,
        // listed (not disabled), until one entry is renamed.
        if let Some((first, at)) = names.get(&crate::store::fold(name)) {
            problems.push(format!(
                "{}: the name \"{name}\" is also {first}'s; the user is left as they are until one is renamed",
                e.dn
            ));
            out[*at].ambiguous = true;
            continue;
        }
        names.insert(crate::store::fold(name), (e.dn.clone(), out.len()));
        let mut unusable = Vec::new();
        let text = |attr: &Option<String>| {
            attr.as_deref()
                .and_then(|a| e.first(a))
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let phone = match text(&dir.phone_attribute) {
            Some(p) => match crate::mfa::normalize_phone(&p) {
                Some(p) => Some(p),
                None => {
                    unusable.push("phone");
                    problems.push(format!(
                        "{}: {} \"{}\" is not an international number (+ and the country code); the phone on file is kept",
                        e.dn,
                        dir.phone_attribute.as_deref().unwrap_or_default(),
                        p.escape_default()
                    ));
                    None
                }
            },
            None => None,
        };
        let language = match text(&dir.language_attribute) {
            Some(l) => match parse_language_tag(&l) {
                Some(l) => Some(l),
                None => {
                    unusable.push("language");
                    problems.push(format!(
                        "{}: {} \"{}\" is not a language tag; the language on file is kept",
                        e.dn,
                        dir.language_attribute.as_deref().unwrap_or_default(),
                        l.escape_default()
                    ));
                    None
                }
            },
            None => None,
        };
        let groups = if dir.groups_attribute.is_some() {
            crate::store::normalize_groups(
                reached.iter().map(|k| nesting.name(k).to_owned()).collect(),
            )
        } else {
            Vec::new()
        };
        let email = match text(&dir.email_attribute) {
            Some(m) if !crate::store::email_ok(&m) => {
                unusable.push("email");
                problems.push(format!(
                    "{}: {} \"{}\" is not an email address; the address on file is kept",
                    e.dn,
                    dir.email_attribute.as_deref().unwrap_or_default(),
                    m.escape_default()
                ));
                None
            }
            m => m,
        };
        out.push(Listed {
            name: name.to_owned(),
            email,
            phone,
            language,
            groups,
            unusable,
            ambiguous: false,
        });
    }
    (out, problems)
}

#[cfg(test)]
#[path = "scope_tests.rs"]
mod tests;
