//! [`decide`]: the order in which the rules apply.
//!
//! 1. A disabled user (one their directory no longer lists) is refused, and
//!    so is a blocked one (an administrator's block beats every policy).
//! 2. The first `[[policy]]` whose conditions hold applies; none: the defaults.
//! 3. Its `mfa = "deny"` refuses; `"skip"` lets in after the first factor.
//! 4. A remembered login in the policy's scope and time lets in (unless
//!    locked out: a lockout revokes them anyway).
//! 5. A user with no registered method is let in if the unenrolled rule
//!    says `accept`.
//! 6. A one-time bypass waiting is claimed: it is used up only where a
//!    second factor would otherwise run (or be refused), so after 1–5.
//! 7. A user locked out by wrong codes is refused.
//! 8. The method: the user's default if the policy allows it and the user
//!    can do it, else the policy's methods in order (without a policy: an
//!    OATH token). None: refused (no registered method, or none allowed).
//! 9. An out-of-band success moments ago from this client lets in once
//!    (`busy_grace`); a verification already in progress refuses at once.
//! 10. Otherwise the second factor runs as the plan says. Inside EAP no code
//!     can be asked (the NAS shows no challenge text to a person), number
//!     matching and the fallback to an app code are off.

use std::time::Duration;

use super::facts::{Live, Request, Standing};
use super::rules::{Conditions, FailMode, MfaRule, Remember, RememberScope, Rules, Unenrolled};
use crate::mfa::{Method, ResultCode};

/// What a login needs, and under which policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The name of the policy that applied; `None`: the defaults.
    pub policy: Option<String>,
    pub need: Need,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Need {
    /// Let in without a second factor.
    Accept { result: ResultCode, reason: String },
    /// Refuse.
    Reject {
        result: ResultCode,
        reason: String,
        /// At once, not after `reject_delay`, with the busy text
        /// (`FAILED_PHONE_BUSY`).
        busy: bool,
    },
    /// Claim the one-time bypass: if the store still has it, accept with
    /// `SUCCESS_BYPASSED_AUTH`; if not, decide again without it.
    ClaimBypass,
    /// Claim the grace after an out-of-band success from this client
    /// (`busy_grace`, at any node): if the store still has it, accept with
    /// `SUCCESS_USED_CACHE`; if another login used it first, decide again
    /// without it.
    ClaimGrace,
    /// Run the second factor.
    SecondFactor(Plan),
}

/// How the second factor runs.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    pub method: Method,
    pub start: Start,
    /// The methods a user may name at the first prompt instead of typing a
    /// code (the policy's, or every method).
    pub allowed: Option<Vec<Method>>,
    /// After a push or call is denied or unanswered, ask for an OATH code.
    pub fallback_oath: bool,
    pub number_matching: bool,
    pub fail_mode: FailMode,
    /// Remember the login once the second factor is verified.
    pub remember: Option<Remember>,
    /// The language of prompts and messages, over the user's own.
    pub language: Option<String>,
}

impl Plan {
    pub fn allows(&self, m: Method) -> bool {
        self.allowed.as_ref().is_none_or(|a| a.contains(&m))
    }
}

/// How the chosen method starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Start {
    /// Check the code that came inline with the password.
    InlineCode,
    /// Ask for a code by Access-Challenge.
    Prompt,
    /// Push, call or SMS through a provider.
    OutOfBand,
}

/// Why one policy matched or not, for `policy explain`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trace {
    pub policy: String,
    /// `Ok`: what held; `Err`: the first condition that did not.
    pub outcome: Result<Vec<String>, String>,
}

/// The index of the first policy whose conditions hold, and why each
/// policy up to it matched or not.
pub fn matching(
    rules: &Rules,
    req: &Request<'_>,
    standing: &Standing,
) -> (Option<usize>, Vec<Trace>) {
    let mut traces = Vec::new();
    for (i, p) in rules.policies.iter().enumerate() {
        let outcome = check(&p.when, rules, req, standing);
        let hit = outcome.is_ok();
        traces.push(Trace {
            policy: p.name.clone(),
            outcome,
        });
        if hit {
            return (Some(i), traces);
        }
    }
    (None, traces)
}

fn check(
    when: &Conditions,
    rules: &Rules,
    req: &Request<'_>,
    standing: &Standing,
) -> Result<Vec<String>, String> {
    let mut held = Vec::new();
    if !when.clients.is_empty() {
        if !when.clients.iter().any(|c| c == req.client) {
            return Err(format!("client {} is not listed", req.client));
        }
        held.push(format!("client {}", req.client));
    }
    if !when.nas_identifiers.is_empty() {
        match req.nas_identifier {
            Some(n) if when.nas_identifiers.iter().any(|x| x == n) => {
                held.push(format!("NAS-Identifier {n}"))
            }
            Some(n) => return Err(format!("NAS-Identifier {n} is not listed")),
            None => return Err("the request has no NAS-Identifier".into()),
        }
    }
    if !when.users.is_empty() {
        // As the store compares user names: without case, ASCII letters
        // only (so a policy never names a user the store would not find).
        if !when.users.iter().any(|u| u.eq_ignore_ascii_case(req.user)) {
            return Err(format!("user {} is not listed", req.user));
        }
        held.push(format!("user {}", req.user));
    }
    if !when.groups.is_empty() {
        let member = standing
            .groups
            .iter()
            .chain(req.groups)
            .find(|g| when.groups.iter().any(|w| same_name(w, g)));
        match member {
            Some(g) => held.push(format!("group {g}")),
            None => return Err("the user is in none of the groups".into()),
        }
    }
    if !when.networks.is_empty() {
        let Some(ip) = req.address else {
            return Err("the request carries no user address".into());
        };
        let net = when
            .networks
            .iter()
            .filter_map(|&i| rules.networks.get(i))
            .find(|n| n.contains(ip));
        match net {
            Some(n) => held.push(format!("address {ip} in trusted network {}", n.name)),
            None => return Err(format!("address {ip} is in none of the networks")),
        }
    }
    Ok(held)
}

fn same_name(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || a.to_lowercase() == b.to_lowercase()
}

/// What the login needs. See the module documentation for the order.
pub fn decide(rules: &Rules, req: &Request<'_>, standing: &Standing, live: Live) -> Decision {
    let (hit, traces) = matching(rules, req, standing);
    let policy = hit.map(|i| &rules.policies[i]);
    let name = policy.map(|p| p.name.clone());
    let label = |what: &str| match &name {
        Some(n) => format!("{what} (policy {n})"),
        None => what.to_owned(),
    };
    let decision = |need| Decision {
        policy: name.clone(),
        need,
    };
    let reject = |result, reason: String| Need::Reject {
        result,
        reason,
        busy: false,
    };
    if let Some(source) = &standing.disabled {
        return decision(reject(
            ResultCode::FailedUserDisabled,
            format!("user disabled: no longer in directory {source}"),
        ));
    }
    if standing.blocked {
        return decision(reject(
            ResultCode::SuccessUserBlocked,
            "user blocked".into(),
        ));
    }
    let set = policy.map(|p| &p.set);
    let why_matched = || match hit.and_then(|i| traces[i].outcome.as_ref().ok()) {
        Some(held) if !held.is_empty() => held.join(", "),
        _ => "every login".into(),
    };
    match set.and_then(|s| s.mfa) {
        Some(MfaRule::Deny) => {
            let reason = format!(
                "denied by policy {}: {}",
                name.as_deref().unwrap_or(""),
                why_matched()
            );
            return decision(reject(ResultCode::FailedDeniedByPolicy, reason));
        }
        Some(MfaRule::Skip) => {
            let reason = format!(
                "skipped by policy {}: {}",
                name.as_deref().unwrap_or(""),
                why_matched()
            );
            return decision(Need::Accept {
                result: ResultCode::SuccessSkippedByPolicy,
                reason,
            });
        }
        Some(MfaRule::Required) | None => {}
    }
    let remember = set.and_then(|s| s.remember).flatten();
    if let (Some(r), false) = (remember, standing.locked) {
        if let Some(result) = remembered(r, req, standing, live.now) {
            return decision(Need::Accept {
                result,
                reason: label(&format!(
                    "remembered login, scope {}, within {}",
                    r.scope.as_str(),
                    human(r.duration)
                )),
            });
        }
    }
    // Enrolled: the user's own method works, or an app is registered.
    let enrolled = standing.can(standing.method) || standing.oath;
    let unenrolled = set.and_then(|s| s.unenrolled).unwrap_or(rules.unenrolled);
    if !enrolled && unenrolled == Unenrolled::Accept {
        return decision(Need::Accept {
            result: ResultCode::SuccessBypassedAuth,
            reason: label("no registered method; unenrolled users are accepted"),
        });
    }
    if standing.bypass_waiting {
        return decision(Need::ClaimBypass);
    }
    if standing.locked {
        return decision(reject(
            ResultCode::FailedAuthenticationThrottled,
            label("too many wrong codes"),
        ));
    }
    let allowed = set.and_then(|s| s.methods.clone());
    let usable = |m: Method| standing.can(m);
    let method = match &allowed {
        None => [standing.method, Method::Totp]
            .into_iter()
            .find(|&m| usable(m)),
        Some(list) => std::iter::once(standing.method)
            .filter(|m| list.contains(m))
            .chain(list.iter().copied())
            .find(|&m| usable(m)),
    };
    let Some(method) = method else {
        return decision(reject(
            ResultCode::ConfigIssue,
            label(if enrolled {
                "none of the user's methods is allowed"
            } else {
                "no registered method"
            }),
        ));
    };
    if live.grace {
        return decision(Need::ClaimGrace);
    }
    if live.busy {
        return decision(Need::Reject {
            result: ResultCode::FailedPhoneBusy,
            reason: label("authentication already in progress"),
            busy: true,
        });
    }
    let totp_allowed = allowed.as_ref().is_none_or(|a| a.contains(&Method::Totp));
    let eap = req.eap();
    let start = if req.inline_code && totp_allowed && standing.oath {
        Start::InlineCode
    } else if matches!(method, Method::Totp | Method::Sms) && eap {
        // Inside EAP the NAS shows no Access-Challenge text to a person.
        return decision(reject(
            ResultCode::ConfigIssue,
            label("a one-time code cannot be asked inside EAP"),
        ));
    } else if method == Method::Totp {
        Start::Prompt
    } else {
        Start::OutOfBand
    };
    let method = if start == Start::InlineCode {
        Method::Totp
    } else {
        method
    };
    decision(Need::SecondFactor(Plan {
        method,
        start,
        fallback_oath: rules.fallback_oath && standing.oath && totp_allowed && !eap,
        number_matching: !eap
            && set
                .and_then(|s| s.number_matching)
                .unwrap_or(req.client_defaults.number_matching),
        fail_mode: set
            .and_then(|s| s.fail_mode)
            .unwrap_or(req.client_defaults.fail_mode),
        remember,
        language: set.and_then(|s| s.language.clone()),
        allowed,
    }))
}

/// The result code of a remembered login that lets this one in, if any.
fn remembered(r: Remember, req: &Request<'_>, standing: &Standing, now: i64) -> Option<ResultCode> {
    let fresh = |at: i64| at <= now && now - at < r.duration.as_secs() as i64;
    let app = req.app();
    let same_app =
        |x: &crate::mfa::Remembered| x.auth_type == req.auth_type.as_str() && x.app == app;
    let hit = standing
        .remembered
        .iter()
        .filter(|x| fresh(x.at))
        .any(|x| match r.scope {
            RememberScope::User => true,
            RememberScope::App => same_app(x),
            RememberScope::Ip => {
                same_app(x) && req.client_ip.is_some() && x.address.as_deref() == req.client_ip
            }
        });
    hit.then_some(match r.scope {
        RememberScope::User => ResultCode::SuccessUsedCache,
        RememberScope::Ip => ResultCode::SuccessUsedIpBasedCache,
        RememberScope::App => ResultCode::SuccessUsedAppBasedCache,
    })
}

/// `8h`, `30m`, `90s`: a duration as an administrator writes it.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 86_400 == 0 && s > 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 && s > 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 && s > 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
