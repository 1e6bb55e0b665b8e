//! How a login ends: accepted or rejected, with its result code and, when
//! the code alone does not say it, a reason for the audit trail; a reject
//! may be answered at once with a message (`FAILED_PHONE_BUSY`).

use crate::mfa::ResultCode;

/// The end of a login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(in crate::engine) enum Outcome {
    Accept {
        result: ResultCode,
        reason: Option<String>,
    },
    Reject {
        result: ResultCode,
        reason: Option<String>,
        /// Answered at once, not after `reject_delay`, with this
        /// Reply-Message.
        at_once: Option<String>,
    },
}

impl Outcome {
    pub(in crate::engine) fn accept(result: ResultCode) -> Outcome {
        Outcome::Accept {
            result,
            reason: None,
        }
    }

    pub(in crate::engine) fn reject(result: ResultCode) -> Outcome {
        Outcome::Reject {
            result,
            reason: None,
            at_once: None,
        }
    }

    /// The same outcome, with the reason recorded beside its code.
    pub(in crate::engine) fn because(self, why: impl Into<String>) -> Outcome {
        let why = Some(why.into());
        match self {
            Outcome::Accept { result, .. } => Outcome::Accept {
                result,
                reason: why,
            },
            Outcome::Reject {
                result, at_once, ..
            } => Outcome::Reject {
                result,
                reason: why,
                at_once,
            },
        }
    }

    /// The same reject, answered at once with `message` (an accept is
    /// unchanged).
    pub(in crate::engine) fn at_once_with(self, message: String) -> Outcome {
        match self {
            Outcome::Reject { result, reason, .. } => Outcome::Reject {
                result,
                reason,
                at_once: Some(message),
            },
            accept => accept,
        }
    }

    /// The Reply-Message of a reject answered at once.
    pub(in crate::engine) fn at_once(&self) -> Option<&str> {
        match self {
            Outcome::Reject { at_once, .. } => at_once.as_deref(),
            Outcome::Accept { .. } => None,
        }
    }

    pub(in crate::engine) fn accepted(&self) -> bool {
        matches!(self, Outcome::Accept { .. })
    }

    pub(in crate::engine) fn result(&self) -> ResultCode {
        match self {
            Outcome::Accept { result, .. } | Outcome::Reject { result, .. } => *result,
        }
    }

    pub(in crate::engine) fn reason(&self) -> Option<&str> {
        match self {
            Outcome::Accept { reason, .. } | Outcome::Reject { reason, .. } => reason.as_deref(),
        }
    }
}
