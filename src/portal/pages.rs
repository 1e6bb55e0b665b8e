//! What each page of the portal shows.

use std::fmt::Write as _;

use super::html::{Message, esc, form, input, page};
use super::text::{T, t};
use crate::mfa::Method;
use crate::store::{AuditRecord, Token, TokenKind, User};

pub fn signin(lang: &str, csrf: &str, message: Option<Message>, invited: Option<&str>) -> String {
    let mut body = String::new();
    let intro = if invited.is_some() {
        T::Invited
    } else {
        T::SignInIntro
    };
    let _ = write!(body, "<p>{}</p>", t(lang, intro));
    let fields = input(
        "user",
        t(lang, T::UserName),
        "text",
        invited.unwrap_or(""),
        "autocomplete=\"username\" required autofocus",
    ) + &input(
        "password",
        t(lang, T::Password),
        "password",
        "",
        "autocomplete=\"current-password\" required",
    );
    body.push_str(&form("/portal/signin", csrf, &fields, t(lang, T::SignIn)));
    page(lang, t(lang, T::SignInHeading), message, None, &body)
}

pub fn code(lang: &str, csrf: &str, message: Option<Message>) -> String {
    let mut body = format!("<p>{}</p>", t(lang, T::CodeIntro));
    let fields = code_input(lang);
    body.push_str(&form("/portal/code", csrf, &fields, t(lang, T::Continue)));
    page(lang, t(lang, T::CodeHeading), message, Some(csrf), &body)
}

/// What the signed-in page lists.
pub struct Home<'a> {
    pub user: &'a User,
    pub tokens: &'a [Token],
    pub signins: &'a [AuditRecord],
    pub enrolling: bool,
    /// The methods a test can be sent for (a provider delivers them).
    pub testable: &'a [Method],
}

pub fn home(lang: &str, csrf: &str, message: Option<Message>, h: &Home<'_>) -> String {
    let mut b = String::new();
    if h.enrolling {
        let _ = write!(b, "<p class=\"notice\">{}</p>", t(lang, T::Enrolling));
    }
    // Devices.
    let _ = write!(
        b,
        "<section aria-labelledby=\"devices\"><h3 id=\"devices\">{}</h3>",
        t(lang, T::YourMethods)
    );
    let active: Vec<&Token> = h.tokens.iter().filter(|t| t.active).collect();
    if active.is_empty() {
        let _ = write!(b, "<p>{}</p>", t(lang, T::NoMethods));
    } else {
        b.push_str("<ul>");
        for tok in active {
            let what = match (&tok.serial, tok.kind) {
                (Some(serial), _) => format!(
                    "{} {} {}",
                    t(lang, T::HardwareToken),
                    esc(tok.model.as_deref().unwrap_or("")),
                    esc(serial)
                ),
                (None, TokenKind::Totp | TokenKind::Hotp) => t(lang, T::App).to_owned(),
            };
            let fields = format!("<input type=\"hidden\" name=\"id\" value=\"{}\">", tok.id);
            // Removing needs the second factor; an enrolling session only adds.
            let remove = if h.enrolling {
                String::new()
            } else {
                form(
                    "/portal/token/remove",
                    csrf,
                    &fields,
                    &format!("{} – {}", t(lang, T::Remove), strip(&what)),
                )
            };
            let _ = write!(b, "<li>{what} {remove}</li>");
        }
        b.push_str("</ul>");
    }
    b.push_str(&form("/portal/app/new", csrf, "", t(lang, T::AddApp)));
    b.push_str("</section>");

    if !h.enrolling {
        // Phone and method: only after the second factor (an enrolling
        // session may set up an app, nothing more).
        let _ = write!(
            b,
            "<section aria-labelledby=\"phone-h\"><h3 id=\"phone-h\">{}</h3>",
            t(lang, T::PhoneHeading)
        );
        let mut fields = input(
            "phone",
            t(lang, T::Phone),
            "tel",
            h.user.phone.as_deref().unwrap_or(""),
            "autocomplete=\"tel\" aria-describedby=\"phone-hint\"",
        );
        let _ = write!(
            fields,
            "<p id=\"phone-hint\" class=\"hint\">{}</p>",
            t(lang, T::PhoneHint)
        );
        let _ = write!(
            fields,
            "<label for=\"method\">{}</label><select id=\"method\" name=\"method\">",
            t(lang, T::DefaultMethod)
        );
        for (m, label) in [
            (Method::Totp, T::MethodApp),
            (Method::Push, T::MethodPush),
            (Method::Call, T::MethodCall),
            (Method::Sms, T::MethodSms),
        ] {
            let _ = write!(
                fields,
                "<option value=\"{}\"{}>{}</option>",
                m.as_str(),
                if h.user.method == m { " selected" } else { "" },
                t(lang, label)
            );
        }
        fields.push_str("</select>");
        b.push_str(&form("/portal/phone", csrf, &fields, t(lang, T::Save)));
        b.push_str("</section>");

        // PIN.
        let _ = write!(
            b,
            "<section aria-labelledby=\"pin-h\"><h3 id=\"pin-h\">{}</h3><p>{}</p>",
            t(lang, T::PinHeading),
            t(lang, T::PinIntro)
        );
        let fields = input(
            "pin",
            t(lang, T::NewPin),
            "password",
            "",
            "inputmode=\"numeric\" autocomplete=\"new-password\" pattern=\"[0-9]{4,8}\" required",
        ) + &input(
            "pin2",
            t(lang, T::RepeatPin),
            "password",
            "",
            "inputmode=\"numeric\" autocomplete=\"new-password\" pattern=\"[0-9]{4,8}\" required",
        );
        b.push_str(&form("/portal/pin", csrf, &fields, t(lang, T::SetPin)));
        b.push_str("</section>");

        // Recent sign-ins.
        let _ = write!(
            b,
            "<section aria-labelledby=\"signins-h\"><h3 id=\"signins-h\">{}</h3>",
            t(lang, T::SignInsHeading)
        );
        if h.signins.is_empty() {
            let _ = write!(b, "<p>{}</p>", t(lang, T::NoSignIns));
        } else {
            let _ = write!(
                b,
                "<table><thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\"></th></tr></thead><tbody>",
                t(lang, T::When),
                t(lang, T::Result),
                t(lang, T::From)
            );
            for (i, r) in h.signins.iter().enumerate() {
                let report = if r.mode == "portal" {
                    String::new()
                } else {
                    let fields = format!("<input type=\"hidden\" name=\"at\" value=\"{}\">", r.at);
                    form("/portal/report", csrf, &fields, t(lang, T::NotMe))
                };
                let _ = write!(
                    b,
                    "<tr id=\"signin-{i}\"><td>{}</td><td>{} {}</td><td>{} {}</td><td>{report}</td></tr>",
                    esc(&crate::cli::show_time(r.at)),
                    if r.accepted { "✔" } else { "✘" },
                    esc(r.result.as_str()),
                    esc(&r.client),
                    esc(r.client_ip.as_deref().unwrap_or("")),
                );
            }
            b.push_str("</tbody></table>");
        }
        b.push_str("</section>");
    }
    // A test push or call.
    if !h.testable.is_empty() {
        let _ = write!(
            b,
            "<section aria-labelledby=\"test-h\"><h3 id=\"test-h\">{}</h3><p>{}</p>",
            t(lang, T::TestHeading),
            t(lang, T::TestIntro)
        );
        for m in h.testable {
            let (label, ok) = match m {
                Method::Push => (T::TestPush, true),
                Method::Call => (T::TestCall, h.user.phone.is_some()),
                _ => (T::TestPush, false),
            };
            if ok {
                let fields = format!(
                    "<input type=\"hidden\" name=\"method\" value=\"{}\">",
                    m.as_str()
                );
                b.push_str(&form("/portal/test", csrf, &fields, t(lang, label)));
            }
        }
        b.push_str("</section>");
    }

    if !h.enrolling {
        // Lost device.
        let _ = write!(
            b,
            "<section aria-labelledby=\"lost-h\"><h3 id=\"lost-h\">{}</h3><p>{}</p>",
            t(lang, T::LostHeading),
            t(lang, T::LostIntro)
        );
        b.push_str(&form("/portal/lost", csrf, "", t(lang, T::LostButton)));
        b.push_str("</section>");
    }
    let heading = format!("{} – {}", t(lang, T::Welcome), h.user.name);
    page(lang, &heading, message, Some(csrf), &b)
}

/// The enrollment of an app: QR code, the key as text, and the code that
/// activates it.
pub fn app(lang: &str, csrf: &str, message: Option<Message>, secret: &str, qr_svg: &str) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<p>{}</p><div role=\"img\" aria-label=\"QR code\">{qr_svg}</div><p>{}</p><p class=\"secret\" id=\"secret\">{}</p><p>{}</p>",
        t(lang, T::AppScan),
        t(lang, T::AppSecret),
        esc(&group4(secret)),
        t(lang, T::AppTypeCode)
    );
    let fields = code_input(lang);
    b.push_str(&form(
        "/portal/app/activate",
        csrf,
        &fields,
        t(lang, T::Activate),
    ));
    page(lang, t(lang, T::AppHeading), message, Some(csrf), &b)
}

/// The field a one-time code is typed into.
fn code_input(lang: &str) -> String {
    input(
        "code",
        t(lang, T::Code),
        "text",
        "",
        "inputmode=\"numeric\" autocomplete=\"one-time-code\" pattern=\"[0-9]{6,8}\" required autofocus",
    )
}

/// A base32 key in groups of four, as apps show it.
fn group4(s: &str) -> String {
    s.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Text without markup, for a button's label.
fn strip(s: &str) -> String {
    s.trim().to_owned()
}
