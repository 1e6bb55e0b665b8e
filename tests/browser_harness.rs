//! The browser harness of tests/support/browser.rs, checked without the
//! portal against tiny pages served from std listeners: a form filled with
//! the mouse and with the keyboard alone, its value echoed by the next
//! page, an HttpOnly SameSite=Strict cookie read with its flags,
//! screenshots kept as PNG files, a failed test's page kept for review,
//! and POSTs to the form's site from a page of another origin on the same
//! host and from a page of another site.

#[path = "support/browser.rs"]
mod browser;

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use browser::{Browser, Key};

const WAIT: Duration = Duration::from_secs(10);
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// A request as the test server saw it (header names lower case).
#[derive(Clone, Debug)]
struct Request {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: String,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// A field of an `application/x-www-form-urlencoded` body.
    fn form(&self, name: &str) -> Option<String> {
        self.body.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (url_decode(k) == name).then(|| url_decode(v))
        })
    }

    /// A cookie the browser sent.
    fn cookie(&self, name: &str) -> Option<String> {
        self.header("cookie")?.split(';').find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
    }
}

/// A response: status line's code and reason, extra headers, HTML body.
struct Response {
    status: &'static str,
    headers: Vec<String>,
    body: String,
}

fn html(title: &str, body: &str) -> Response {
    Response {
        status: "200 OK",
        headers: Vec::new(),
        body: format!(
            "<!doctype html><html lang=en><head><meta charset=utf-8>\
             <title>{title}</title></head><body>{body}</body></html>"
        ),
    }
}

/// An HTTP/1.1 server on a std listener: one thread accepting, one
/// request per connection, every request kept for the test to look at.
struct Site {
    origin: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Site {
    /// Serves `handler` on `ip` at a port the kernel picks (held from the
    /// bind on, so no other process can take it).
    fn start(ip: &str, handler: fn(&Request, &str) -> Response) -> Site {
        let listener = TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}: {e}"));
        let port = listener.local_addr().expect("local address").port();
        let origin = format!("http://{ip}:{port}");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (seen, own) = (Arc::clone(&requests), origin.clone());
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (seen, own) = (Arc::clone(&seen), own.clone());
                thread::spawn(move || serve(stream, handler, &seen, &own));
            }
        });
        Site { origin, requests }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    /// The requests for `path` so far.
    fn requests_for(&self, path: &str) -> Vec<Request> {
        let all = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        all.iter().filter(|r| r.path == path).cloned().collect()
    }
}

fn serve(
    stream: TcpStream,
    handler: fn(&Request, &str) -> Response,
    seen: &Mutex<Vec<Request>>,
    origin: &str,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(&stream);
    let Some(request) = read_request(&mut reader) else {
        return;
    };
    let response = handler(&request, origin);
    seen.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(request);
    let mut head = format!(
        "HTTP/1.1 {}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n",
        response.status,
        response.body.len()
    );
    for h in &response.headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut out = &stream;
    let _ = out.write_all(head.as_bytes());
    let _ = out.write_all(response.body.as_bytes());
    let _ = out.flush();
}

fn read_request(reader: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = HashMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length.min(1 << 20)];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match s.get(i + 1..i + 3).map(|h| u8::from_str_radix(h, 16)) {
                Some(Ok(b)) => {
                    out.push(b);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The site under test: a form at `/` that sets the session cookie, and
/// `/echo`, which shows what was posted, whether the cookie came with it
/// and the request's Origin.
fn form_site(req: &Request, _origin: &str) -> Response {
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/") => {
            let mut page = html(
                "Harness form",
                "<h1>Sign in</h1>\
                 <p><a href=\"/elsewhere\" id=first-link>A link before the form</a></p>\
                 <form method=post action=/echo>\
                 <label for=name>Your name</label> <input id=name name=name autocomplete=off>\
                 <button type=submit id=send>Send</button></form>",
            );
            page.headers
                .push("Set-Cookie: sid=s3cr3t; Path=/; HttpOnly; SameSite=Strict".to_owned());
            page
        }
        ("POST", "/echo") => html(
            "Echo",
            &format!(
                "<p>Posted: <span id=posted>{}</span></p>\
                 <p>Cookie: <span id=cookie>{}</span></p>\
                 <p>Origin: <span id=origin>{}</span></p>",
                escape(&req.form("name").unwrap_or_default()),
                escape(&req.cookie("sid").unwrap_or_else(|| "none".to_owned())),
                escape(req.header("origin").unwrap_or("none")),
            ),
        ),
        _ => Response {
            status: "404 Not Found",
            headers: Vec::new(),
            body: "not found".to_owned(),
        },
    }
}

/// Another origin's page: a form posting to the form site's `/echo`,
/// whose address is given as `?to=<origin>`.
fn other_site(req: &Request, _origin: &str) -> Response {
    let to = req
        .path
        .split_once("?to=")
        .map(|(_, t)| url_decode(t))
        .unwrap_or_default();
    html(
        "Another site",
        &format!(
            "<form method=post action=\"{}/echo\">\
             <input type=hidden name=name value=forged>\
             <button type=submit id=go>Win a prize</button></form>",
            escape(&to)
        ),
    )
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

fn assert_png(path: &Path) {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.starts_with(PNG_SIGNATURE) && bytes.len() > 1000,
        "{} is not a PNG screenshot ({} bytes)",
        path.display(),
        bytes.len()
    );
}

#[test]
fn a_form_is_filled_and_submitted_with_the_mouse_and_with_the_keyboard() {
    let started = Instant::now();
    let Some(browser) = Browser::start_or_skip("browser_harness_form") else {
        return;
    };
    eprintln!("browser ready in {:?}", started.elapsed());
    let site = Site::start("127.0.0.1", form_site);

    browser.goto(&site.url("/"));
    assert_eq!(browser.title(), "Harness form");
    assert_eq!(browser.current_url(), site.url("/"));
    assert!(
        browser
            .source()
            .contains("<label for=\"name\">Your name</label>")
    );
    let label = browser.find("label[for=name]");
    assert_eq!(label.text(), "Your name");
    assert_eq!(browser.find_all("input, button").len(), 2);
    assert!(browser.try_find("#missing").is_none());
    let shot = browser.screenshot("form");
    assert!(shot.starts_with(browser.screenshot_dir()));
    assert_eq!(
        shot.file_name().and_then(|n| n.to_str()),
        Some("01-form.png")
    );
    assert_png(&shot);

    // The cookie's flags, as the browser keeps them (scripts cannot read
    // an HttpOnly cookie; WebDriver can).
    let sid = browser.cookie("sid").expect("the sid cookie");
    assert_eq!(sid.value, "s3cr3t");
    assert!(sid.http_only, "{sid:?}");
    assert!(!sid.secure, "{sid:?}");
    assert_eq!(sid.same_site.as_deref(), Some("Strict"));
    assert_eq!(sid.path.as_deref(), Some("/"));
    let from_script = browser.execute("return document.cookie;", vec![]);
    assert_eq!(from_script, "", "an HttpOnly cookie is hidden from scripts");

    // With the mouse: type, clear, type again, click the button.
    let name = browser.find("#name");
    name.type_text("first try");
    assert_eq!(name.value(), "first try");
    name.clear();
    assert_eq!(name.value(), "");
    name.type_text("Ada <Lovelace> & co");
    browser.find("#send").click();
    let posted = browser.wait_for("#posted", WAIT);
    assert_eq!(posted.text(), "Ada <Lovelace> & co");
    assert_eq!(browser.title(), "Echo");
    assert_eq!(browser.current_url(), site.url("/echo"));
    assert_eq!(browser.find("#cookie").text(), "s3cr3t");
    assert_png(&browser.screenshot("echo"));
    let posts = site.requests_for("/echo");
    assert_eq!(posts.len(), 1);
    assert_eq!(
        posts[0].form("name").as_deref(),
        Some("Ada <Lovelace> & co")
    );

    // With the keyboard alone: Tab past the link to the field, type,
    // Enter submits.
    browser.back();
    browser.wait_for("#name", WAIT);
    let field = browser.tab_to("#name", 5);
    assert!(field.is_focused());
    assert_eq!(field.attr("name").as_deref(), Some("name"));
    browser.type_keys("Grace");
    assert_eq!(browser.focused().value(), "Grace");
    browser.press(Key::Tab);
    assert!(
        browser.find("#send").is_focused(),
        "Tab moves on to the button"
    );
    browser.press(Key::ShiftTab);
    assert!(browser.find("#name").is_focused(), "Shift+Tab moves back");
    browser.press(Key::Enter);
    assert_eq!(browser.wait_for("#posted", WAIT).text(), "Grace");
    assert_png(&browser.screenshot("echo-keyboard"));
    assert_eq!(site.requests_for("/echo").len(), 2);

    let shots: Vec<String> = fs::read_dir(browser.screenshot_dir())
        .expect("screenshot directory")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for expected in ["01-form.png", "02-echo.png", "03-echo-keyboard.png"] {
        assert!(
            shots.iter().any(|s| s == expected),
            "{expected} in {shots:?}"
        );
    }
    eprintln!("form test done in {:?}", started.elapsed());
}

#[test]
fn a_post_from_another_origin_reaches_the_site_as_the_browser_sends_it() {
    let started = Instant::now();
    let Some(browser) = Browser::start_or_skip("browser_harness_cross_site") else {
        return;
    };
    let site = Site::start("127.0.0.1", form_site);
    // Another port on the same host is another origin but the same site
    // (ports do not count for sites): a SameSite=Strict cookie still
    // goes with its POSTs. Another address is another site.
    let same_site = Site::start("127.0.0.1", other_site);
    let cross_site = Site::start("127.0.0.2", other_site);

    browser.goto(&site.url("/"));
    assert!(browser.cookie("sid").is_some());

    let to = format!("/?to={}", site.origin);
    browser.goto(&same_site.url(&to));
    browser.screenshot("same-site-page");
    browser.find("#go").click();
    assert_eq!(browser.wait_for("#posted", WAIT).text(), "forged");
    assert_eq!(browser.find("#origin").text(), same_site.origin);
    assert_eq!(browser.find("#cookie").text(), "s3cr3t");

    browser.goto(&cross_site.url(&to));
    browser.screenshot("cross-site-page");
    browser.find("#go").click();
    assert_eq!(browser.wait_for("#posted", WAIT).text(), "forged");
    assert_eq!(browser.find("#origin").text(), cross_site.origin);
    assert_eq!(
        browser.find("#cookie").text(),
        "none",
        "a SameSite=Strict cookie is not sent with another site's POST"
    );
    browser.screenshot("cross-site-post");

    // What the server saw, as a CSRF check would see it.
    let posts = site.requests_for("/echo");
    assert_eq!(posts.len(), 2);
    let (same, cross) = (&posts[0], &posts[1]);
    assert_eq!(same.header("origin"), Some(same_site.origin.as_str()));
    assert_eq!(same.header("sec-fetch-site"), Some("same-site"));
    assert_eq!(same.cookie("sid").as_deref(), Some("s3cr3t"));
    assert_eq!(cross.header("origin"), Some(cross_site.origin.as_str()));
    assert_eq!(cross.header("sec-fetch-site"), Some("cross-site"));
    assert_eq!(cross.cookie("sid"), None);
    assert_eq!(cross.form("name").as_deref(), Some("forged"));
    eprintln!("cross-site test done in {:?}", started.elapsed());
}

#[test]
fn a_failed_test_leaves_its_page_for_review() {
    let Some(browser) = Browser::start_or_skip("browser_harness_failure") else {
        return;
    };
    let site = Site::start("127.0.0.1", form_site);
    let dir = browser.screenshot_dir().to_owned();
    let url = site.url("/");

    // A command the browser refuses panics with WebDriver's error.
    let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        browser.goto("not a url");
    }));
    let message = panic_message(refused.expect_err("a bad URL is refused"));
    assert!(
        message.contains("POST /url") && message.contains("invalid argument"),
        "{message}"
    );

    // A test that fails with its browser alive leaves the page behind.
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        browser.goto(&url);
        browser.screenshot("form");
        browser.find("#no-such-element");
    }));
    let message = panic_message(failed.expect_err("find panics when nothing matches"));
    assert!(
        message.contains("no element matches `#no-such-element`") && message.contains(&site.origin),
        "{message}"
    );
    assert_png(&dir.join("01-form.png"));
    assert_png(&dir.join("02-failed.png"));
    let page = fs::read_to_string(dir.join("02-failed.html")).expect("the failed page's HTML");
    assert!(page.contains("Harness form"), "{page}");
}
