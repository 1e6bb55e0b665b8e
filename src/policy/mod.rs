//! The one decision point of a login: what it needs, from what is known
//! about it.
//!
//! The store gathers the user's standing (blocked, locked, a bypass
//! waiting, enrolled methods, groups, remembered logins), the engine adds
//! the request's own facts (client, NAS-Identifier, addresses, EAP or not,
//! an inline code) and its live state (a verification in progress, a grace
//! after one); [`decide`] returns what the login needs. It is pure: every
//! rule of who gets in without a second factor, who is refused and how the
//! second factor runs is here, and its tests read like the policy table.

mod decide;
mod facts;
mod rules;
#[cfg(test)]
mod tests;

pub use decide::{Decision, Need, Plan, Start, Trace, decide, matching};
pub use facts::{AuthType, Live, Request, Standing};

pub use rules::{
    ClientDefaults, Conditions, FailMode, MfaRule, Policy, Remember, RememberScope, Rules,
    Settings, TrustedNetwork, Unenrolled,
};
