//! What is known about a login when its second factor is decided: the
//! request's facts (the engine's), the user's standing (the store's) and
//! the engine's live state.

use std::net::IpAddr;

use super::ClientDefaults;
use crate::mfa::{Method, Remembered};

/// How the first factor was given, for remembered logins of the `ip` and
/// `app` scopes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthType {
    Pap,
    Chap,
    MsChap,
    Eap,
    /// Anything else (no password attribute the proxy knows).
    Other,
}

impl AuthType {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::Pap => "pap",
            AuthType::Chap => "chap",
            AuthType::MsChap => "mschap",
            AuthType::Eap => "eap",
            AuthType::Other => "other",
        }
    }
}

/// The request's facts.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// Whose second factor this is.
    pub user: &'a str,
    /// The `[[client]]` name.
    pub client: &'a str,
    pub client_defaults: ClientDefaults,
    pub nas_identifier: Option<&'a str>,
    /// The address trusted networks are tested against: the user's own
    /// when the client names the attribute that carries it (`None` when
    /// the request lacks it or it is not an address: no trusted network
    /// matches then), else the NAS's source address.
    pub address: Option<IpAddr>,
    /// The client address of remembered logins of the `ip` scope, and of
    /// the audit trail.
    pub client_ip: Option<&'a str>,
    pub auth_type: AuthType,
    /// The password carried a one-time code after the separator.
    pub inline_code: bool,
    /// Groups the upstream's Access-Accept named (`[groups]`).
    pub groups: &'a [String],
}

impl Request<'_> {
    /// The application of remembered logins: the client's name, with the
    /// NAS-Identifier when the request has one (`vpn/asa-1`). The client is
    /// part of it, so no NAS can claim another's remembered logins by
    /// sending its NAS-Identifier.
    pub fn app(&self) -> String {
        match self.nas_identifier {
            Some(n) => format!("{}/{n}", self.client),
            None => self.client.to_owned(),
        }
    }

    pub fn eap(&self) -> bool {
        self.auth_type == AuthType::Eap
    }
}

/// The user's standing, as the store read it at the start of the login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Standing {
    /// The user is in the store.
    pub known: bool,
    /// The user's directory no longer lists them (the directory's name).
    pub disabled: Option<String>,
    pub blocked: bool,
    /// A one-time bypass may be waiting (claiming it is atomic, in the store).
    pub bypass_waiting: bool,
    pub locked: bool,
    /// The user's default method.
    pub method: Method,
    /// Has an active OATH token.
    pub oath: bool,
    /// Has a phone number.
    pub phone: bool,
    pub groups: Vec<String>,
    pub remembered: Vec<Remembered>,
}

impl Standing {
    /// A user the store does not know.
    pub fn unknown() -> Standing {
        Standing {
            known: false,
            disabled: None,
            blocked: false,
            bypass_waiting: false,
            locked: false,
            method: Method::Totp,
            oath: false,
            phone: false,
            groups: Vec::new(),
            remembered: Vec::new(),
        }
    }

    /// Whether `method` can run for this user now.
    pub fn can(&self, method: Method) -> bool {
        match method {
            Method::Totp => self.oath,
            Method::Push => self.known,
            Method::Call | Method::Sms => self.phone,
        }
    }
}

/// The engine's live state of the user.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Live {
    /// Unix seconds now, from the engine's clock.
    pub now: i64,
    /// A verification of this user is in progress.
    pub busy: bool,
    /// The user succeeded out of band from this client within `busy_grace`.
    pub grace: bool,
}
