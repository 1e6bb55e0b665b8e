//! The portal's HTML: one layout, plain forms that work without
//! JavaScript, every input with its label, text dark on light above AA
//! contrast, a visible focus ring, and a link to skip to the content.
//! Everything that comes from a user or the store is escaped here.

use std::fmt::Write as _;

use super::text::{T, t};

/// `s` for HTML text and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:0;background:#fff;color:#1a1a1a;line-height:1.5}
header{background:#0b3d91;color:#fff;padding:.75rem 1.5rem;display:flex;justify-content:space-between;align-items:center}
header h1{font-size:1.2rem;margin:0}
main{max-width:40rem;margin:1.5rem auto;padding:0 1rem}
section{border-top:1px solid #767676;padding-top:1rem;margin-top:1.5rem}
label{display:block;font-weight:600;margin-top:.75rem}
input,select{font:inherit;padding:.4rem;border:1px solid #595959;border-radius:3px;min-width:16rem}
button{font:inherit;margin-top:.75rem;padding:.45rem 1rem;background:#0b3d91;color:#fff;border:0;border-radius:3px;cursor:pointer}
button.quiet{background:#fff;color:#0b3d91;border:1px solid #0b3d91}
a{color:#0b3d91}
:focus{outline:3px solid #c75000;outline-offset:2px}
.notice{background:#e6f0ff;border-left:4px solid #0b3d91;padding:.5rem 1rem}
.error{background:#fdecea;border-left:4px solid #a4000f;padding:.5rem 1rem;color:#5c0009}
.hint{color:#4a4a4a;font-size:.9rem}
.secret{font-family:monospace;font-size:1.1rem;letter-spacing:.1em;word-break:break-all}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.3rem;border-bottom:1px solid #ccc;vertical-align:top}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:#fff;color:#0b3d91;padding:.5rem}
";

/// A whole page: `body` inside the layout, with an optional notice or
/// error above it and a sign-out button when `csrf` is given.
pub fn page(
    lang: &str,
    heading: &str,
    message: Option<Message>,
    signout: Option<&str>,
    body: &str,
) -> String {
    let mut o = String::with_capacity(body.len() + 3000);
    let _ = write!(
        o,
        "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} – {heading}</title><style>{STYLE}</style></head><body>\
         <a class=\"skip\" href=\"#main\">{skip}</a><header><h1>{title}</h1>",
        lang = esc(lang),
        title = t(lang, T::Title),
        heading = esc(heading),
        skip = t(lang, T::SkipToContent),
    );
    if let Some(csrf) = signout {
        let _ = write!(
            o,
            "<form method=\"post\" action=\"/portal/signout\">{}<button class=\"quiet\" type=\"submit\">{}</button></form>",
            csrf_field(csrf),
            t(lang, T::SignOut)
        );
    }
    let _ = write!(o, "</header><main id=\"main\"><h2>{}</h2>", esc(heading));
    match message {
        Some(Message::Notice(m)) => {
            let _ = write!(o, "<p class=\"notice\" role=\"status\">{}</p>", esc(&m));
        }
        Some(Message::Error(m)) => {
            let _ = write!(o, "<p class=\"error\" role=\"alert\">{}</p>", esc(&m));
        }
        None => {}
    }
    o.push_str(body);
    o.push_str("</main></body></html>");
    o
}

/// What a page says above its content.
#[derive(Debug, Clone)]
pub enum Message {
    Notice(String),
    Error(String),
}

/// The hidden field every form carries.
pub fn csrf_field(token: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(token)
    )
}

/// A labelled input.
pub fn input(id: &str, label: &str, kind: &str, value: &str, extra: &str) -> String {
    format!(
        "<label for=\"{id}\">{}</label><input id=\"{id}\" name=\"{id}\" type=\"{kind}\" value=\"{}\" {extra}>",
        esc(label),
        esc(value)
    )
}

/// A form posting to `action` with `fields` and a submit button.
pub fn form(action: &str, csrf: &str, fields: &str, button: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{action}\">{}{fields}<div><button type=\"submit\">{}</button></div></form>",
        csrf_field(csrf),
        esc(button)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_from_outside_is_escaped() {
        assert_eq!(
            esc("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        let p = page(
            "en",
            "<h>",
            Some(Message::Error("<script>".into())),
            None,
            "",
        );
        assert!(!p.contains("<script>"));
        assert!(p.contains("&lt;script&gt;"));
        assert!(p.contains("<html lang=\"en\">"));
    }
}
