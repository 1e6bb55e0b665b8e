//! The SQLite store: each test runs against a database in memory or in a
//! temporary directory. The helpers here serve the `tests_*` files too.

use super::audit::{AUDIT_SQL, REPORT_SQL};
use super::login::{LOGIN_STATE_SQL, LOGIN_STATE_TOKEN_AT, PRUNE_SQL, REMEMBER_SQL};
use super::tokens::{CLAIM_SQL, TOKEN_COLS, TOKEN_COLS_N, TOKENS_SQL};
use super::*;
pub(super) use crate::store::testkit::{totp, user, vpn};
use rusqlite::StatementStatus;
use rusqlite::params;

pub(super) fn store() -> SqliteStore {
    SqliteStore::in_memory(SeedKey::from_bytes(&[1; 32])).expect("open")
}

#[test]
fn login_statements_are_compiled_once() {
    // SQLite can mark a statement to be compiled again whenever it is
    // bound to a new value (a join on `u.name = ?1` does, see
    // LOGIN_STATE_SQL). The statement cache binds every login's values,
    // so a login's statements must not be marked.
    let s = store();
    for i in 0..20 {
        let name = format!("u{i}");
        s.add_user(&user(&name)).expect("add");
        let id = s.add_token(&totp(&name), b"seed").expect("token");
        s.activate_token(id).expect("activate");
    }
    for i in 0..20 {
        assert_eq!(s.tokens(&format!("u{i}")).expect("tokens").len(), 1);
    }
    let mut tx = s.begin().expect("begin");
    for i in 0..20 {
        let name = format!("u{i}");
        let st = tx.facts(&name, 10).expect("state").expect("user");
        let (t, sealed) = &st.tokens[0];
        assert_eq!(&s.open_seed(t, sealed).expect("open")[..], b"seed");
        assert!(tx.claim_step(t.id, 5).expect("claim"));
        tx.clear_denials(&name).expect("clear");
        tx.remember(&name, &vpn(Some("192.0.2.7"), 10), 0)
            .expect("remember");
        tx.append_audit(&AuditRecord {
            at: 1,
            user: name,
            result: ResultCode::SuccessOathCodeVerified,
            accepted: true,
            mode: "totp".into(),
            server: "s".into(),
            client: "c".into(),
            client_ip: None,
            reason: None,
        })
        .expect("audit");
    }
    tx.commit().expect("commit");
    let c = s.conn();
    assert_eq!(TOKEN_COLS.split(',').count(), TOKEN_COLS_N);
    // The token columns of the login state are TOKEN_COLS, then the seed.
    let st = c.prepare_cached(LOGIN_STATE_SQL).expect("cached");
    let names = (LOGIN_STATE_TOKEN_AT..st.column_count())
        .map(|i| st.column_name(i).expect("name"))
        .collect::<Vec<_>>();
    let expected = TOKEN_COLS.split(", ").chain(["seed"]).collect::<Vec<_>>();
    assert_eq!(names, expected);
    drop(st);
    assert!(TOKENS_SQL.starts_with(&format!("SELECT {TOKEN_COLS}\n")));
    // The login's statements, and the token list, which had the same trap.
    for sql in [
        LOGIN_STATE_SQL,
        CLAIM_SQL,
        REMEMBER_SQL,
        PRUNE_SQL,
        AUDIT_SQL,
        TOKENS_SQL,
    ] {
        let st = c.prepare_cached(sql).expect("cached");
        // Run by the logins above: the test looks at the right one.
        assert_eq!(st.get_status(StatementStatus::Run), 20, "{sql}");
        assert_eq!(st.get_status(StatementStatus::RePrepare), 0, "{sql}");
    }
}

#[test]
fn the_report_reads_a_range_of_the_time_index() {
    let s = store();
    let plan: Vec<String> = s
        .conn()
        .prepare(&format!("EXPLAIN QUERY PLAN {REPORT_SQL}"))
        .expect("plan")
        .query_map(params!["a", 15], |r| r.get(3))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("plan");
    let plan = plan.join("; ");
    assert!(
        plan.contains("USING INDEX audit_at (at>?)") && !plan.contains("TEMP B-TREE"),
        "{plan}"
    );
}
