//! What a directory sync writes ([`Store::apply_directory`]): users
//! added, the fields the directory owns changed, users disabled, enabled
//! again and removed. Fields the source does not own are absent from a
//! change, so what an administrator set by hand stays.

use super::{UnixTime, User};

/// One user's change, from the sync of the source named in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserChange {
    /// A user the directory lists and the store does not have: `source`
    /// set, added as given.
    Add(User),
    /// A user the directory lists: the owned fields that differ, and the
    /// user (an administrator's, or disabled) becomes this source's and
    /// enabled.
    Update(UserUpdate),
    /// A user of this source the directory no longer lists (or no longer
    /// in scope): disabled from `at`, every login refused.
    Disable { name: String, at: UnixTime },
    /// A user of this source disabled longer than `remove_after`: removed
    /// with tokens, groups and remembered logins; the audit trail stays.
    Remove { name: String },
}

/// The fields a source owns that changed; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserUpdate {
    pub name: String,
    /// The source the user belongs to from now on.
    pub source: String,
    pub email: Option<Option<String>>,
    /// A new phone number forgets the user's remembered logins, as
    /// [`Store::update_user`](super::Store::update_user) does.
    pub phone: Option<Option<String>>,
    pub language: Option<Option<String>>,
    /// Replaces the user's groups.
    pub groups: Option<Vec<String>>,
}

impl UserChange {
    /// The user it changes.
    pub fn name(&self) -> &str {
        match self {
            UserChange::Add(u) => &u.name,
            UserChange::Update(u) => &u.name,
            UserChange::Disable { name, .. } | UserChange::Remove { name } => name,
        }
    }
}

/// An enrollment invitation as the store keeps it: the hash of the token
/// the link carries, never the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Invitation {
    /// SHA-256 of the token.
    pub hash: Vec<u8>,
    pub user: String,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    /// Set once the invitation was used.
    pub used_at: Option<UnixTime>,
}

impl std::fmt::Debug for Invitation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invitation")
            .field("user", &self.user)
            .field("expires_at", &self.expires_at)
            .field("used_at", &self.used_at)
            .finish_non_exhaustive()
    }
}
