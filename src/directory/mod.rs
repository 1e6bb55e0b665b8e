//! Users from LDAP directories (`[[directory]]`): Active Directory or
//! OpenLDAP, read by a sync at start and every `interval`.
//!
//! - [`auth`]: a first factor from the directory (`[primary] mode =
//!   "ldap"`): the user's entry found, then a bind as the user.
//! - [`ldap`]: connecting, binding and paged searches (I/O only).
//! - [`orphans`]: users whose source is no longer configured, reported.
//! - [`plan`]: what a sync changes, from the entries and the store's
//!   users (pure: no I/O, no clock).
//! - [`sync`]: one sync of one source, end to end: read everything, plan,
//!   then write in batches. A directory that cannot be read whole changes
//!   nothing.

pub mod auth;
pub mod ldap;
pub mod orphans;
pub mod plan;
pub mod scope;
pub mod sync;
