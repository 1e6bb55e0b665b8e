//! The second-factor methods a user can have.

/// A user's default second factor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Totp,
    Push,
    Call,
    Sms,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Totp => "totp",
            Method::Push => "push",
            Method::Call => "call",
            Method::Sms => "sms",
        }
    }

    pub fn parse(s: &str) -> Option<Method> {
        Some(match s {
            "totp" => Method::Totp,
            "push" => Method::Push,
            "call" => Method::Call,
            "sms" => Method::Sms,
            _ => return None,
        })
    }
}
