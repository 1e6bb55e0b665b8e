//! Users from LDAP directories (`[[directory]]`): Active Directory or
//! OpenLDAP, read by a sync at start and every `interval`.
//!
//! - [`ldap`]: connecting, binding and paged searches (I/O only).
//! - [`plan`]: what a sync changes, from the entries and the store's
//!   users (pure: no I/O, no clock).
//! - [`sync`]: one sync of one source, end to end: read everything, plan,
//!   then write in batches. A directory that cannot be read whole changes
//!   nothing.

pub mod ldap;
pub mod plan;
pub mod scope;
pub mod sync;
