use std::collections::HashMap;

use super::*;

fn entry(dn: &str, attrs: &[(&str, &[&str])]) -> Entry {
    Entry {
        dn: dn.into(),
        attrs: attrs
            .iter()
            .map(|(k, v)| {
                (
                    k.to_ascii_lowercase(),
                    v.iter().map(|s| s.to_string()).collect(),
                )
            })
            .collect::<HashMap<_, _>>(),
    }
}

const VPN: &str = "CN=VPN Users,OU=Groups,DC=corp,DC=example";
const CONTRACTORS: &str = "CN=Contractors,OU=Groups,DC=corp,DC=example";
const SUBS: &str = "CN=Subcontractors,OU=Groups,DC=corp,DC=example";

/// VPN Users ⊃ Contractors ⊃ Subcontractors ⊃ VPN Users (a loop), and
/// Admins alone. The overlay may return the parents' DNs in lower case.
fn nesting() -> Nesting {
    Nesting::new(
        &Directory::example(),
        &[
            entry(VPN, &[("cn", &["VPN Users"]), ("memberOf", &[SUBS])]),
            entry(
                CONTRACTORS,
                &[
                    ("cn", &["Contractors"]),
                    (
                        "memberof",
                        &["cn=vpn users, ou=groups, dc=corp, dc=example"],
                    ),
                ],
            ),
            entry(
                SUBS,
                &[("cn", &["Subcontractors"]), ("memberOf", &[CONTRACTORS])],
            ),
            entry(
                "CN=Admins,OU=Groups,DC=corp,DC=example",
                &[("cn", &["Admins"])],
            ),
        ],
    )
}

fn person(n: &str, groups: &[&str]) -> Entry {
    entry(
        &format!("CN={n},OU=Users,DC=corp,DC=example"),
        &[
            ("sAMAccountName", &[n]),
            ("mail", &[&format!("{n}@corp.example")]),
            ("mobile", &["+49 (30) 1234-567"]),
            ("preferredLanguage", &["DE"]),
            ("memberOf", groups),
        ],
    )
}

#[test]
fn dn_keys_ignore_case_and_spaces_around_separators() {
    assert_eq!(
        dn_key("CN=VPN Users, OU=Groups ,DC = corp"),
        "cn=vpn users,ou=groups,dc=corp"
    );
}

#[test]
fn nested_members_are_in_scope_at_any_depth_and_loops_end() {
    let dir = Directory::example();
    let (listed, problems) = listed(
        &dir,
        vec![
            person("direct", &[VPN]),
            person("deep", &[SUBS]),
            person("admin", &["CN=Admins,OU=Groups,DC=corp,DC=example"]),
            person("none", &[]),
        ],
        &nesting(),
    );
    assert!(problems.is_empty(), "{problems:?}");
    let names: Vec<&str> = listed.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["direct", "deep"]);
    // Groups reached through nesting count, by cn.
    assert_eq!(
        listed[1].groups,
        ["Contractors", "Subcontractors", "VPN Users"]
    );
    assert_eq!(listed[0].phone.as_deref(), Some("+49301234567"));
    assert_eq!(listed[0].language.as_deref(), Some("de"));
    assert_eq!(listed[0].email.as_deref(), Some("direct@corp.example"));
}

#[test]
fn without_a_group_every_entry_is_listed_and_groups_only_when_owned() {
    let dir = Directory {
        group: None,
        groups_attribute: None,
        ..Directory::example()
    };
    assert_eq!(
        user_attributes(&dir),
        ["sAMAccountName", "mail", "mobile", "preferredLanguage"]
    );
    let (listed, _) = listed(
        &dir,
        vec![person("a", &[VPN]), person("b", &[])],
        &nesting(),
    );
    assert_eq!(listed.len(), 2);
    assert!(listed[0].groups.is_empty());
}

#[test]
fn unusable_entries_are_left_out_or_keep_the_field_and_say_why() {
    let dir = Directory::example();
    let mut bad_phone = person("carol", &[VPN]);
    bad_phone
        .attrs
        .insert("mobile".into(), vec!["030 1234".into()]);
    bad_phone
        .attrs
        .insert("preferredlanguage".into(), vec!["deutsch!".into()]);
    bad_phone
        .attrs
        .insert("mail".into(), vec!["Carol <carol@corp.example>".into()]);
    let no_name = entry("CN=x,OU=Users,DC=corp,DC=example", &[("memberOf", &[VPN])]);
    let spaced = person("has space", &[VPN]);
    let twice = entry(
        "CN=Alice 2,OU=Users,DC=corp,DC=example",
        &[("sAMAccountName", &["ALICE"]), ("memberOf", &[VPN])],
    );
    let (listed, problems) = listed(
        &dir,
        vec![person("alice", &[VPN]), bad_phone, no_name, spaced, twice],
        &nesting(),
    );
    let names: Vec<&str> = listed.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["alice", "carol"]);
    assert_eq!(listed[1].phone, None);
    assert_eq!(listed[1].email, None);
    assert_eq!(listed[1].unusable, ["phone", "language", "email"]);
    assert_eq!(problems.len(), 6, "{problems:#?}");
    assert!(problems[0].contains("is not an international number"));
    assert!(problems[2].contains("is not an email address; the address on file is kept"));
    assert!(problems[3].contains("no sAMAccountName"));
    assert!(problems[4].contains("cannot be a user name"));
    assert!(problems[5].contains("also CN=alice"));
    assert!(listed[0].ambiguous, "alice's name is also another entry's");
    assert!(!listed[1].ambiguous);
}
