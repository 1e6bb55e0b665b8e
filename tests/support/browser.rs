//! A real browser for tests: headless Chromium driven over WebDriver (the
//! W3C protocol, JSON over HTTP) through a private `chromedriver`.
//!
//! [`Browser::start_or_skip`] starts `chromedriver` on a free port in a
//! process group of its own, with a private directory under /tmp holding
//! its log and the browser's fresh profile (`--user-data-dir`, and `HOME`
//! so that nothing is written to the real one), then opens one session
//! with Chromium (`/usr/bin/chromium`, Debian packages `chromium` and
//! `chromium-driver`) headless and without the background connections
//! that this machine's closed network refuses. Dropping the [`Browser`]
//! closes the session, stops chromedriver and every browser process in
//! its group, and removes the directory; a watchdog process (`sh`) does
//! the same when the test process dies without dropping it.
//!
//! Screenshots are kept after the run, for review, in
//! `<target dir>/screenshots/<test>/NN-<page>.png` (`target/screenshots/`
//! unless CARGO_TARGET_DIR says otherwise); the directory of a test is
//! emptied when its browser starts. A test that panics while its browser
//! is alive also leaves `NN-failed.png` and `NN-failed.html` (the page as
//! it was) there.
//!
//! Every method panics with the WebDriver error (or what went wrong) when
//! the browser cannot do what is asked: this is test code.
//!
//! Include it with `#[path = "support/browser.rs"] mod browser;` from an
//! integration test.
#![allow(dead_code)]

#[path = "sandbox.rs"]
mod sandbox;
use sandbox::{free_port, make_dir, release_watchdog, spawn_group_watchdog, tail};

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};

/// The browser and its driver, as Debian installs them.
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Chromium's flags. `--no-sandbox`: the tests run as root. The
/// background-networking, component, sync and QUIC flags keep Chromium
/// from connecting out, which this machine's network refuses; no proxy,
/// so that a proxy in the environment never sees the tests' pages.
const CHROMIUM_ARGS: [&str; 12] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--no-proxy-server",
    "--window-size=1280,1024",
    "--lang=en-US",
];

/// The key of an element reference in the protocol's JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How many ports `start` tries before giving up.
const START_TRIES: u32 = 5;
/// How long chromedriver may take to answer after a start.
const DRIVER_WAIT: Duration = Duration::from_secs(20);
/// Upper bound on one WebDriver command (a page load is bounded at 30 s
/// by the session's own timeout).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on the commands run while dropping (closing, failure screenshot).
const DROP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often `wait_for` looks again.
const POLL: Duration = Duration::from_millis(50);
/// Largest response read (a screenshot in base64, a page's source).
const MAX_RESPONSE: u64 = 64 << 20;

/// A key to press with [`Browser::press`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Tab,
    /// Shift+Tab: focus moves backwards.
    ShiftTab,
    Enter,
    Space,
    Escape,
    Backspace,
}

impl Key {
    /// The keys' code points in WebDriver's private-use range, pressed in
    /// order and released in reverse.
    fn codes(self) -> &'static [&'static str] {
        match self {
            Key::Tab => &["\u{E004}"],
            Key::ShiftTab => &["\u{E008}", "\u{E004}"],
            Key::Enter => &["\u{E007}"],
            Key::Space => &["\u{E00D}"],
            Key::Escape => &["\u{E00C}"],
            Key::Backspace => &["\u{E003}"],
        }
    }
}

/// A cookie as the browser holds it (WebDriver's cookie object).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct Cookie {
    pub name: String,
    pub value: String,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub secure: bool,
    #[serde(default, rename = "httpOnly")]
    pub http_only: bool,
    /// "Strict", "Lax" or "None".
    #[serde(default, rename = "sameSite")]
    pub same_site: Option<String>,
    /// Seconds since the epoch; None for a session cookie.
    #[serde(default)]
    pub expiry: Option<u64>,
}

/// A private chromedriver and one headless Chromium session; see the
/// module documentation.
pub struct Browser {
    /// The private directory: `profile/`, `home/`, `chromedriver.log`,
    /// `chromedriver.pid`.
    dir: PathBuf,
    /// chromedriver's base URL, `http://127.0.0.1:<port>`.
    driver_url: String,
    /// The session's base URL, `<driver_url>/session/<id>`.
    session_url: String,
    agent: ureq::Agent,
    /// chromedriver, leader of the process group the browser runs in.
    driver: Option<Child>,
    watchdog: Option<Child>,
    screenshots: PathBuf,
    /// Screenshots taken so far, numbering the next one's file.
    shots: AtomicU32,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("dir", &self.dir)
            .field("session_url", &self.session_url)
            .field("screenshots", &self.screenshots)
            .finish_non_exhaustive()
    }
}

/// Where the screenshots of every test go: `<target dir>/screenshots`.
/// Cargo gives integration tests `<target dir>/tmp` as
/// CARGO_TARGET_TMPDIR, wherever the target directory is.
pub fn screenshots_root() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("screenshots")
}

impl Browser {
    /// The browser, or what tests do when there is none: when Chromium or
    /// chromedriver is not installed, CI=true fails the test (panics with
    /// the reason), otherwise returns None and prints "skipped: <reason>"
    /// to stderr. Installed but unable to start panics either way.
    /// `test` names the test's screenshot directory.
    #[track_caller]
    pub fn start_or_skip(test: &str) -> Option<Browser> {
        let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
            .into_iter()
            .filter(|p| !Path::new(p).is_file())
            .collect();
        if !missing.is_empty() {
            let reason = format!(
                "{} not installed (Debian packages chromium and chromium-driver)",
                missing.join(" and ")
            );
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("a browser is required in CI: {reason}");
            }
            eprintln!("skipped: {reason}");
            return None;
        }
        match Browser::start(test) {
            Ok(browser) => Some(browser),
            Err(reason) => panic!("cannot start the browser: {reason}"),
        }
    }

    /// Starts chromedriver and opens a session; Err says why (with the
    /// tail of chromedriver's log).
    pub fn start(test: &str) -> Result<Browser, String> {
        let screenshots = screenshots_root().join(safe_name(test));
        let _ = fs::remove_dir_all(&screenshots);
        fs::create_dir_all(&screenshots)
            .map_err(|e| format!("cannot create {}: {e}", screenshots.display()))?;
        let dir = make_dir("mfa-browser", None, &["profile", "home"])?;
        let watchdog =
            spawn_group_watchdog("chromedriver-watchdog", &dir, "chromedriver.pid", "TERM");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .timeout_global(Some(COMMAND_TIMEOUT))
            .build()
            .into();
        let mut browser = Browser {
            dir,
            driver_url: String::new(),
            session_url: String::new(),
            agent,
            driver: None,
            watchdog,
            screenshots,
            shots: AtomicU32::new(0),
        };
        let mut failures = Vec::new();
        for _ in 0..START_TRIES {
            match browser.launch_driver() {
                Ok(()) => break,
                Err(e) => {
                    failures.push(e);
                    browser.stop_driver();
                    thread::sleep(Duration::from_millis(200));
                }
            }
        }
        if browser.driver.is_none() {
            return Err(format!(
                "chromedriver did not start: {}",
                failures.join(" | ")
            ));
        }
        let started = Instant::now();
        let session = browser.new_session().map_err(|e| {
            format!(
                "no browser session after {:?}: {e}; chromedriver's log: {}",
                started.elapsed(),
                browser.log_tail()
            )
        })?;
        browser.session_url = format!("{}/session/{session}", browser.driver_url);
        Ok(browser)
    }

    /// The directory this test's screenshots go to.
    pub fn screenshot_dir(&self) -> &Path {
        &self.screenshots
    }

    /// Loads `url` and waits until it has loaded (at most 30 s).
    #[track_caller]
    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    /// Goes back one page in the history.
    #[track_caller]
    pub fn back(&self) {
        self.cmd("POST", "/back", Some(json!({})));
    }

    #[track_caller]
    pub fn current_url(&self) -> String {
        string(self.cmd("GET", "/url", None))
    }

    #[track_caller]
    pub fn title(&self) -> String {
        string(self.cmd("GET", "/title", None))
    }

    /// The page's HTML as the browser holds it now (the DOM serialised).
    #[track_caller]
    pub fn source(&self) -> String {
        string(self.cmd("GET", "/source", None))
    }

    /// The first element matching the CSS selector; panics if there is none.
    #[track_caller]
    pub fn find(&self, css: &str) -> Element<'_> {
        match self.try_find(css) {
            Some(e) => e,
            None => panic!(
                "no element matches `{css}` on {} ({:?})",
                self.current_url(),
                self.title()
            ),
        }
    }

    /// The first element matching the CSS selector, if any.
    #[track_caller]
    pub fn try_find(&self, css: &str) -> Option<Element<'_>> {
        self.find_all(css).into_iter().next()
    }

    /// Every element matching the CSS selector, in document order.
    #[track_caller]
    pub fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        self.elements("", css)
    }

    /// Waits until an element matches the CSS selector (after a click that
    /// submits a form, say) and returns it; panics after `timeout`. Errors
    /// while a page is loading count as "not yet".
    #[track_caller]
    pub fn wait_for(&self, css: &str, timeout: Duration) -> Element<'_> {
        let deadline = Instant::now() + timeout;
        let query = json!({ "using": "css selector", "value": css });
        loop {
            let found = self.call("POST", "/element", Some(query.clone()));
            let error = match found {
                Ok(v) => match element_id(&v) {
                    Some(id) => return Element { browser: self, id },
                    None => format!("not an element: {v}"),
                },
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                panic!(
                    "no element matches `{css}` after {timeout:?} on {} ({:?}); last: {error}",
                    self.current_url(),
                    self.title()
                );
            }
            thread::sleep(POLL);
        }
    }

    /// The element that has the keyboard focus (the body when none has).
    #[track_caller]
    pub fn focused(&self) -> Element<'_> {
        let v = self.cmd("GET", "/element/active", None);
        match element_id(&v) {
            Some(id) => Element { browser: self, id },
            None => panic!("no active element in {v}"),
        }
    }

    /// Presses and releases a key (a chord, for Shift+Tab) where the
    /// focus is, as a user at the keyboard would.
    #[track_caller]
    pub fn press(&self, key: Key) {
        let codes = key.codes();
        let mut actions: Vec<Value> = codes
            .iter()
            .map(|c| json!({ "type": "keyDown", "value": c }))
            .collect();
        actions.extend(
            codes
                .iter()
                .rev()
                .map(|c| json!({ "type": "keyUp", "value": c })),
        );
        self.key_actions(actions);
    }

    /// Types `text` where the focus is, key by key.
    #[track_caller]
    pub fn type_keys(&self, text: &str) {
        let actions = text
            .chars()
            .flat_map(|c| {
                let c = c.to_string();
                [
                    json!({ "type": "keyDown", "value": c }),
                    json!({ "type": "keyUp", "value": c }),
                ]
            })
            .collect();
        self.key_actions(actions);
    }

    /// Presses Tab until the focused element matches the CSS selector and
    /// returns it; panics after `max_tabs` presses, naming the elements
    /// the focus went through. For checking that a page can be used with
    /// the keyboard alone.
    #[track_caller]
    pub fn tab_to(&self, css: &str, max_tabs: usize) -> Element<'_> {
        let mut path = Vec::new();
        for _ in 0..max_tabs {
            self.press(Key::Tab);
            let focused = self.focused();
            if focused.matches(css) {
                return focused;
            }
            path.push(focused.describe());
        }
        panic!(
            "`{css}` not reached with {max_tabs} Tab presses on {}; the focus went: {}",
            self.current_url(),
            path.join(" -> ")
        );
    }

    /// Every cookie the browser would send to the current page's origin,
    /// HttpOnly ones included.
    #[track_caller]
    pub fn cookies(&self) -> Vec<Cookie> {
        let v = self.cmd("GET", "/cookie", None);
        match serde_json::from_value(v.clone()) {
            Ok(cookies) => cookies,
            Err(e) => panic!("cookies {v}: {e}"),
        }
    }

    /// The cookie named `name`, if the current page has it.
    #[track_caller]
    pub fn cookie(&self, name: &str) -> Option<Cookie> {
        self.cookies().into_iter().find(|c| c.name == name)
    }

    /// Deletes every cookie of the current page's origin.
    #[track_caller]
    pub fn delete_cookies(&self) {
        self.cmd("DELETE", "/cookie", None);
    }

    /// Runs `script` (a function body: `return ...;`) in the page with
    /// `arguments` `args`; its result as JSON (elements as references).
    #[track_caller]
    pub fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// Saves what the window shows as `NN-<page>.png` in the test's
    /// screenshot directory (NN counts the test's screenshots from 01)
    /// and returns its path.
    #[track_caller]
    pub fn screenshot(&self, page: &str) -> PathBuf {
        let path = self.next_shot(page, "png");
        self.screenshot_to(&path);
        path
    }

    /// Saves what the window shows at `path` (PNG).
    #[track_caller]
    pub fn screenshot_to(&self, path: &Path) {
        if let Err(e) = self.try_screenshot(path) {
            panic!("{e}");
        }
    }

    fn try_screenshot(&self, path: &Path) -> Result<(), String> {
        let v = self.call("GET", "/screenshot", None)?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .map_err(|e| format!("screenshot: not base64: {e}"))?;
        fs::write(path, png).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    fn next_shot(&self, page: &str, ext: &str) -> PathBuf {
        let n = self.shots.fetch_add(1, Ordering::Relaxed) + 1;
        self.screenshots
            .join(format!("{n:02}-{}.{ext}", safe_name(page)))
    }

    #[track_caller]
    fn key_actions(&self, actions: Vec<Value>) {
        let body = json!({ "actions": [
            { "type": "key", "id": "keyboard", "actions": actions }
        ]});
        self.cmd("POST", "/actions", Some(body));
        self.cmd("DELETE", "/actions", None);
    }

    /// Elements matching `css` below `scope` ("" for the document,
    /// "/element/<id>" for an element).
    #[track_caller]
    fn elements(&self, scope: &str, css: &str) -> Vec<Element<'_>> {
        let v = self.cmd(
            "POST",
            &format!("{scope}/elements"),
            Some(json!({ "using": "css selector", "value": css })),
        );
        v.as_array()
            .into_iter()
            .flatten()
            .map(|e| Element {
                browser: self,
                id: element_id(e).unwrap_or_else(|| panic!("not an element: {e}")),
            })
            .collect()
    }

    /// A session command; panics with the WebDriver error.
    #[track_caller]
    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        match self.call(method, path, body) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    /// A session command: its `value`, or the WebDriver error.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.session_url);
        self.request(method, &url, body)
            .map_err(|e| format!("WebDriver {method} {path}: {e}"))
    }

    /// One request to chromedriver: the response's `value`, or the
    /// protocol's error and message when the status is not 200.
    fn request(&self, method: &str, url: &str, body: Option<Value>) -> Result<Value, String> {
        let response = match method {
            "GET" => self.agent.get(url).call(),
            "DELETE" => self.agent.delete(url).call(),
            _ => self
                .agent
                .post(url)
                .header("Content-Type", "application/json")
                .send(body.unwrap_or_else(|| json!({})).to_string()),
        };
        let mut response = response.map_err(|e| format!("no answer from chromedriver: {e}"))?;
        let status = response.status();
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE)
            .read_to_string()
            .map_err(|e| format!("cannot read chromedriver's answer: {e}"))?;
        let mut json: Value = serde_json::from_str(&text)
            .map_err(|e| format!("chromedriver's answer ({status}) is not JSON: {e}: {text}"))?;
        let value = json
            .get_mut("value")
            .map(Value::take)
            .unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        let field = |k: &str| {
            value
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        Err(format!(
            "{} ({status}): {}",
            field("error"),
            field("message").lines().next().unwrap_or("")
        ))
    }

    /// Starts chromedriver on a free port and waits until it is ready.
    fn launch_driver(&mut self) -> Result<(), String> {
        let port = free_port()?;
        let log = self.dir.join("chromedriver.log");
        let stderr = fs::File::create(self.dir.join("chromedriver.err"))
            .map_err(|e| format!("cannot create chromedriver.err: {e}"))?;
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .current_dir(&self.dir)
            .env("HOME", self.dir.join("home"))
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_CACHE_HOME")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot run {CHROMEDRIVER}: {e}"))?;
        fs::write(
            self.dir.join("chromedriver.pid"),
            format!("{}\n", child.id()),
        )
        .map_err(|e| format!("cannot write chromedriver.pid: {e}"))?;
        self.driver = Some(child);
        self.driver_url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + DRIVER_WAIT;
        loop {
            if let Some(Ok(Some(status))) = self.driver.as_mut().map(Child::try_wait) {
                self.driver = None;
                return Err(format!(
                    "chromedriver exited ({status}) on port {port}: {}",
                    self.log_tail()
                ));
            }
            let status = self.request("GET", &format!("{}/status", self.driver_url), None);
            if let Ok(v) = status {
                if v.get("ready").and_then(Value::as_bool) == Some(true) {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "chromedriver not ready after {DRIVER_WAIT:?}: {}",
                    self.log_tail()
                ));
            }
            thread::sleep(POLL);
        }
    }

    /// Opens the session; its id.
    fn new_session(&self) -> Result<String, String> {
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!(
            "--user-data-dir={}",
            self.dir.join("profile").display()
        ));
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "timeouts": { "implicit": 0, "pageLoad": 30_000, "script": 10_000 },
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        }}});
        let v = self.request(
            "POST",
            &format!("{}/session", self.driver_url),
            Some(capabilities),
        )?;
        v.get("sessionId")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("no session id in {v}"))
    }

    /// chromedriver's log (and what it wrote to stderr), the last lines.
    fn log_tail(&self) -> String {
        let read = |f: &str| fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        tail(&format!(
            "{}{}",
            read("chromedriver.log"),
            read("chromedriver.err")
        ))
    }

    /// Stops chromedriver and every process of its group (the browser):
    /// TERM, then KILL after 5 s. The leader is reaped last, so that the
    /// group's id cannot be another process's while it is signalled.
    fn stop_driver(&mut self) {
        let Some(mut child) = self.driver.take() else {
            return;
        };
        let pgid = child.id();
        if pgid > 1 {
            signal_group(Signal::SIGTERM, pgid);
            let deadline = Instant::now() + Duration::from_secs(5);
            while group_alive(pgid) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            signal_group(Signal::SIGKILL, pgid);
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// What a failed test leaves for review: a screenshot and the page.
    fn save_failure(&self) {
        let png = self.next_shot("failed", "png");
        let _ = self.try_screenshot(&png);
        if let Ok(v) = self.call("GET", "/source", None) {
            let _ = fs::write(png.with_extension("html"), string(v));
        }
        eprintln!(
            "browser: the page when the test failed is in {}",
            png.display()
        );
    }
}

impl Drop for Browser {
    /// Closes the session, stops chromedriver and the browser, and
    /// removes the private directory; never panics.
    fn drop(&mut self) {
        if !self.session_url.is_empty() {
            let quick: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .proxy(None)
                .timeout_global(Some(DROP_TIMEOUT))
                .build()
                .into();
            self.agent = quick;
            if thread::panicking() {
                self.save_failure();
            }
            let _ = self.request("DELETE", &self.session_url, None);
        }
        self.stop_driver();
        // Removed before the watchdog is let go, so that it finds no pid
        // file and signals nothing.
        if fs::remove_dir_all(&self.dir).is_err() {
            thread::sleep(Duration::from_millis(100));
            let _ = fs::remove_dir_all(&self.dir);
        }
        release_watchdog(self.watchdog.take());
    }
}

/// An element of the current page (a WebDriver element reference).
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

impl std::fmt::Debug for Element<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Element").field("id", &self.id).finish()
    }
}

impl<'a> Element<'a> {
    /// The text the element renders (as a user would read it).
    #[track_caller]
    pub fn text(&self) -> String {
        string(self.get("/text"))
    }

    /// The attribute as written in the HTML (`value` is the initial value:
    /// see [`Element::value`]).
    #[track_caller]
    pub fn attr(&self, name: &str) -> Option<String> {
        self.get(&format!("/attribute/{name}"))
            .as_str()
            .map(str::to_owned)
    }

    /// A DOM property (`checked`, `disabled`, `validity`, ...).
    #[track_caller]
    pub fn prop(&self, name: &str) -> Value {
        self.get(&format!("/property/{name}"))
    }

    /// A form field's current value.
    #[track_caller]
    pub fn value(&self) -> String {
        string(self.prop("value"))
    }

    /// The element's tag name, lower case.
    #[track_caller]
    pub fn tag(&self) -> String {
        string(self.get("/name")).to_lowercase()
    }

    /// Whether the element matches the CSS selector.
    #[track_caller]
    pub fn matches(&self, css: &str) -> bool {
        let v = self.browser.execute(
            "return arguments[0].matches(arguments[1]);",
            vec![self.reference(), json!(css)],
        );
        v.as_bool() == Some(true)
    }

    /// Whether the element has the keyboard focus.
    #[track_caller]
    pub fn is_focused(&self) -> bool {
        let v = self.browser.execute(
            "return document.activeElement === arguments[0];",
            vec![self.reference()],
        );
        v.as_bool() == Some(true)
    }

    /// The first element below this one matching the CSS selector.
    #[track_caller]
    pub fn find(&self, css: &str) -> Element<'a> {
        let found = self.browser.elements(&format!("/element/{}", self.id), css);
        match found.into_iter().next() {
            Some(e) => e,
            None => panic!("no element matches `{css}` in {}", self.describe()),
        }
    }

    /// Focuses the element and types `text` at the end of its value.
    #[track_caller]
    pub fn type_text(&self, text: &str) {
        self.post("/value", json!({ "text": text }));
    }

    /// Empties a form field.
    #[track_caller]
    pub fn clear(&self) {
        self.post("/clear", json!({}));
    }

    /// Clicks the element (scrolled into view); a submit button submits
    /// its form. Use [`Browser::wait_for`] for what the next page shows.
    #[track_caller]
    pub fn click(&self) {
        self.post("/click", json!({}));
    }

    /// `tag#id.class[name=...]`, for messages.
    #[track_caller]
    pub fn describe(&self) -> String {
        let v = self.browser.execute(
            "const e = arguments[0]; let d = e.tagName.toLowerCase();\
             if (e.id) d += '#' + e.id;\
             if (typeof e.className === 'string' && e.className) \
               d += '.' + e.className.trim().split(/\\s+/).join('.');\
             if (e.name) d += '[name=' + e.name + ']';\
             return d;",
            vec![self.reference()],
        );
        string(v)
    }

    /// The element as a script argument.
    fn reference(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }

    #[track_caller]
    fn get(&self, what: &str) -> Value {
        self.browser
            .cmd("GET", &format!("/element/{}{what}", self.id), None)
    }

    #[track_caller]
    fn post(&self, what: &str, body: Value) {
        self.browser
            .cmd("POST", &format!("/element/{}{what}", self.id), Some(body));
    }
}

/// The id in an element reference.
fn element_id(v: &Value) -> Option<String> {
    v.get(ELEMENT_KEY)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// A string value, or its JSON when it is not a string.
fn string(v: Value) -> String {
    match v {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `name` with anything but letters, digits, `-` and `_` as `_`, for a
/// file name.
fn safe_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Sends `signal` to the process group `pgid` (never 0 or 1: the group
/// of this process, or with -1 every process on the machine).
fn signal_group(signal: Signal, pgid: u32) {
    if let Ok(pgid) = i32::try_from(pgid) {
        if pgid > 1 {
            let _ = killpg(Pid::from_raw(pgid), signal);
        }
    }
}

/// Whether a process of the group `pgid`, other than a zombie, lives.
fn group_alive(pgid: u32) -> bool {
    let Ok(entries) = fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // pid (comm) state ppid pgrp ...: comm may hold spaces and parens.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            return false;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let pgrp = fields.nth(1).and_then(|f| f.parse::<u32>().ok());
        pgrp == Some(pgid) && state != Some("Z")
    })
}
