//! Second factors. This part holds what needs no IO: one-time code
//! verification with its replay rules, and the result codes every login
//! records.

pub mod otp;
pub mod policy;
pub mod result;

pub use result::ResultCode;
