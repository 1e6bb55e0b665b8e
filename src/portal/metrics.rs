//! The portal's counters, on `/metrics`: sign-ins by result, what
//! signed-in users did, forms refused for want of a session and its CSRF
//! token, forwarded addresses that could not be used, and sessions found
//! ended. Atomics, so counting takes no lock on the request path; each
//! counter has its reason, so an administrator can tell a password guesser
//! from a misconfigured reverse proxy.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! labels {
    ($(#[$doc:meta])* $kind:ident { $($(#[$vdoc:meta])* $variant:ident => $name:literal,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $kind { $($(#[$vdoc])* $variant,)* }

        impl $kind {
            pub const ALL: &'static [$kind] = &[$($kind::$variant,)*];

            /// The label value on `/metrics`.
            pub fn name(self) -> &'static str {
                match self { $($kind::$variant => $name,)* }
            }
        }
    };
}

labels! {
    /// How a sign-in attempt at the portal ended: each password or code
    /// sent that failed, or the one that completed the sign-in (a right
    /// password with a code still to come is not counted).
    Attempt {
        /// Signed in: with the code, or with the password to enroll.
        Ok => "ok",
        /// A wrong user name or password.
        WrongPassword => "wrong_password",
        /// A wrong, reused, old or expired code.
        WrongCode => "wrong_code",
        /// Refused unchecked by the sign-in rate limits.
        Limited => "limited",
        /// The user may not sign in: blocked, disabled, locked out, not in
        /// the store, or with nothing to sign in with (no app, token or
        /// phone, and no invitation or enrollment window).
        Refused => "refused",
        /// Could not be checked now (upstream, directory, store or
        /// provider unavailable).
        Unavailable => "unavailable",
    }
}

labels! {
    /// What a signed-in user did (counted when done).
    Action {
        EnrollApp => "enroll_app",
        ActivateApp => "activate_app",
        RemoveDevice => "remove_device",
        /// The phone number and the method, one form.
        SetPhoneAndMethod => "set_phone_and_method",
        SetPin => "set_pin",
        TestPush => "test_push",
        TestCall => "test_call",
        ReportFraud => "report_fraud",
        LostDevice => "lost_device",
        SignOut => "sign_out",
    }
}

labels! {
    /// Why a signed-in session ended, where the portal sees it end.
    Ended {
        /// `session_idle` after its last page (seen when its cookie comes
        /// back).
        Idle => "idle",
        /// `session_max` after sign-in (seen when its cookie comes back).
        Max => "max",
        /// Its user may no longer act: blocked, disabled, locked out or
        /// removed since sign-in.
        Refused => "refused",
        /// Signed out (at any node) since it began: its cookie came back.
        SignedOut => "signed_out",
    }
}

/// The portal's counters.
#[derive(Debug, Default)]
pub struct Counts {
    signins: [AtomicU64; Attempt::ALL.len()],
    actions: [AtomicU64; Action::ALL.len()],
    ended: [AtomicU64; Ended::ALL.len()],
    csrf_refused: AtomicU64,
    forwarded_invalid: AtomicU64,
}

fn bump(n: &AtomicU64) {
    n.fetch_add(1, Ordering::Relaxed);
}

impl Counts {
    pub fn signin(&self, r: Attempt) {
        bump(&self.signins[r as usize]);
    }

    pub fn action(&self, a: Action) {
        bump(&self.actions[a as usize]);
    }

    pub fn ended(&self, e: Ended) {
        bump(&self.ended[e as usize]);
    }

    /// A form refused: no live session, or not its CSRF token.
    pub fn csrf_refused(&self) {
        bump(&self.csrf_refused);
    }

    /// A request from a trusted proxy whose `X-Forwarded-For` could not be
    /// used.
    pub fn forwarded_invalid(&self) {
        bump(&self.forwarded_invalid);
    }

    /// The Prometheus text of the counters, appended to `o`.
    pub fn render(&self, o: &mut String) {
        fn family<L: Copy>(
            o: &mut String,
            name: &str,
            help: &str,
            label: &str,
            all: &[L],
            label_name: impl Fn(L) -> &'static str,
            counts: &[AtomicU64],
        ) {
            let _ = writeln!(o, "# HELP {name} {help}");
            let _ = writeln!(o, "# TYPE {name} counter");
            for (&l, n) in all.iter().zip(counts) {
                let _ = writeln!(
                    o,
                    "{name}{{{label}=\"{}\"}} {}",
                    label_name(l),
                    n.load(Ordering::Relaxed)
                );
            }
        }
        family(
            o,
            "mfa_portal_signins_total",
            "Sign-in attempts at the portal, by result: each password or code that failed, and each completed sign-in (ok).",
            "result",
            Attempt::ALL,
            Attempt::name,
            &self.signins,
        );
        family(
            o,
            "mfa_portal_actions_total",
            "What signed-in users did at the portal, by action.",
            "action",
            Action::ALL,
            Action::name,
            &self.actions,
        );
        family(
            o,
            "mfa_portal_sessions_ended_total",
            "Signed-in portal sessions ended, by reason: idle and max when the expired cookie comes back, refused when the user may no longer act.",
            "reason",
            Ended::ALL,
            Ended::name,
            &self.ended,
        );
        for (name, help, n) in [
            (
                "mfa_portal_csrf_refused_total",
                "Portal forms refused for want of a live session and its CSRF token (cross-site posts, and forms sent after their session ended).",
                &self.csrf_refused,
            ),
            (
                "mfa_portal_forwarded_invalid_total",
                "Portal requests from a trusted proxy whose X-Forwarded-For was missing or not an address: the proxy's address was used.",
                &self.forwarded_invalid,
            ),
        ] {
            let _ = writeln!(o, "# HELP {name} {help}");
            let _ = writeln!(o, "# TYPE {name} counter");
            let _ = writeln!(o, "{name} {}", n.load(Ordering::Relaxed));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_is_rendered_with_its_count() {
        let c = Counts::default();
        c.signin(Attempt::WrongPassword);
        c.signin(Attempt::WrongPassword);
        c.signin(Attempt::Ok);
        c.action(Action::SignOut);
        c.ended(Ended::Idle);
        c.csrf_refused();
        c.forwarded_invalid();
        c.forwarded_invalid();
        let mut o = String::new();
        c.render(&mut o);
        for line in [
            "# TYPE mfa_portal_signins_total counter",
            "mfa_portal_signins_total{result=\"wrong_password\"} 2",
            "mfa_portal_signins_total{result=\"ok\"} 1",
            "mfa_portal_signins_total{result=\"limited\"} 0",
            "mfa_portal_actions_total{action=\"sign_out\"} 1",
            "mfa_portal_actions_total{action=\"enroll_app\"} 0",
            "mfa_portal_sessions_ended_total{reason=\"idle\"} 1",
            "mfa_portal_csrf_refused_total 1",
            "mfa_portal_forwarded_invalid_total 2",
        ] {
            assert!(o.lines().any(|l| l == line), "{line} in:\n{o}");
        }
        let samples = o.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(
            samples,
            Attempt::ALL.len() + Action::ALL.len() + Ended::ALL.len() + 2
        );
        assert_eq!(
            o.lines().filter(|l| l.starts_with("# HELP")).count(),
            o.lines().filter(|l| l.starts_with("# TYPE")).count()
        );
    }
}
