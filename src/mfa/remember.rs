//! Remembered logins (SPEC §3): a verified second factor lets later logins
//! in without a new one, for a while, in one of three scopes. What is
//! remembered is where the login came from; which scope counts, and for how
//! long, is the policy's (see `policy::decide`).

/// One remembered login of a user, as the store keeps it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Remembered {
    /// How the first factor was given: `pap`, `chap`, `mschap`, `eap`.
    pub auth_type: String,
    /// The application: the `[[client]]` name, with the NAS-Identifier if
    /// the request had one (`vpn/asa-1`).
    pub app: String,
    /// The user's address, when the request carried one.
    pub address: Option<String>,
    /// When the second factor was verified (Unix seconds).
    pub at: i64,
}
