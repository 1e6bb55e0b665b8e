//! The store's conformance suite: every test of the store's behaviour,
//! written once against [`Store`] and run against each backend (SQLite in
//! a temporary file, and PostgreSQL on a server the tests start), so the
//! backends cannot drift apart. Tests of one backend's own machinery
//! (SQLite's statement cache and migrations) stay beside that backend.

pub(super) use super::testkit::{Steps, totp, user, vpn};
use super::*;

mod audit;
mod burst;
mod directory;
mod login;
mod tokens;
mod users;
mod verifications;

/// A database to test against, and a way to open it again (another
/// connection, as a second proxy would have).
pub(crate) struct Fixture {
    store: Box<dyn Store>,
    reopen: Box<dyn Fn() -> Box<dyn Store>>,
    /// Kept until the test ends.
    _dir: Option<tempfile::TempDir>,
}

impl Fixture {
    pub(crate) fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// The same database, through a connection of its own.
    pub(crate) fn reopen(&self) -> Box<dyn Store> {
        (self.reopen)()
    }

    /// PostgreSQL: a new database on the tests' shared server; `None`
    /// when there is no PostgreSQL here (never under `CI=true`, where that
    /// fails the test).
    pub(crate) fn postgres() -> Option<Fixture> {
        let url = super::pg_server::PgServer::shared()?.new_database();
        let open = move || -> Box<dyn Store> {
            Box::new(PgStore::connect(&url, key(), 4).expect("connect to PostgreSQL"))
        };
        Some(Fixture {
            store: open(),
            reopen: Box::new(open),
            _dir: None,
        })
    }

    /// SQLite in a new file.
    pub(crate) fn sqlite() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("store.db");
        let open = move || -> Box<dyn Store> {
            Box::new(SqliteStore::open(&path, key()).expect("open SQLite"))
        };
        Fixture {
            store: open(),
            reopen: Box::new(open),
            _dir: Some(dir),
        }
    }
}

/// The seed key of every fixture.
fn key() -> SeedKey {
    SeedKey::from_bytes(&[3; 32])
}

/// Each test, once per backend: `sqlite::name` and `postgres::name`.
macro_rules! conformance {
    ($($module:ident :: $name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    super::$module::$name(&super::Fixture::sqlite());
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    if let Some(f) = super::Fixture::postgres() {
                        super::$module::$name(&f);
                    }
                }
            )*
        }
    };
}

conformance! {
    users::users_crud_and_case_insensitive_names,
    users::groups_are_kept_sorted_without_duplicates_and_replaced_whole,
    users::names_compare_without_case_beyond_ascii,
    users::a_portal_sign_out_is_kept_and_only_moves_forward,
    directory::a_sync_adds_changes_owned_fields_disables_and_removes,
    directory::a_failed_change_leaves_the_whole_batch_unwritten,
    directory::invitations_are_single_use_expire_and_replace_older_ones,
    tokens::seeds_are_sealed_and_steps_claimed_once,
    tokens::concurrent_claims_of_one_step_have_one_winner,
    tokens::hardware_serials_belong_to_one_user,
    tokens::a_user_removes_only_their_own_token,
    tokens::a_new_app_enrollment_leaves_pending_hardware_tokens,
    login::login_state_in_one_query,
    login::lockout_counts_resets_and_unlocks,
    login::block_unblock_and_history,
    login::bypass_is_used_once_and_expires,
    login::remember_keeps_one_row_per_key_and_prunes_the_old,
    login::block_lockout_and_removal_revoke_remembered_logins,
    login::a_removed_token_or_a_new_phone_revokes_remembered_logins,
    audit::audit_round_trip_and_filters,
    audit::a_burst_writes_its_records_and_challenges_together,
    audit::old_audit_records_are_pruned_oldest_first,
    burst::a_burst_reads_and_checks_its_logins_together,
    burst::racing_bursts_accept_each_code_once,
    verifications::one_verification_per_user_across_connections,
    verifications::concurrent_starts_have_one_winner,
    verifications::grace_is_used_once,
    verifications::answers_wait_for_the_node_holding_the_request,
    verifications::challenges_are_taken_once_and_name_their_taker,
}
