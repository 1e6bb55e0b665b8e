//! The administrator's verbs, run as the real binary against a store in a
//! temporary directory.

mod common;

use common::*;
use mfa_proxy::mfa::Remembered;
use mfa_proxy::mfa::otp::{TotpParams, totp_code};
use mfa_proxy::store::Store;

#[test]
fn enroll_activate_block_bypass_and_report() {
    let site = Site::shipped();
    site.ok(&["user", "add", "alice", "--email", "alice@example.org"]);
    let enroll = site.ok(&[
        "totp",
        "enroll",
        "alice",
        "--svg",
        site.dir.path().join("qr.svg").to_str().expect("utf8"),
    ]);
    let seed = seed_from_enroll(&enroll);
    assert!(
        std::fs::read_to_string(site.dir.path().join("qr.svg"))
            .expect("svg")
            .contains("<svg")
    );

    // A wrong code does not activate; the right one does.
    let o = site.run(&["totp", "activate", "alice", "000000"], None);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    let code = totp_code(&TotpParams::default(), &seed, now);
    if code != "000000" {
        assert!(!o.status.success());
    }
    site.ok(&["totp", "activate", "alice", &code]);
    assert!(
        site.ok(&["user", "show", "alice"])
            .contains("tokens:    totp")
    );

    // The key file exists with mode 0600, and the database does not hold the seed.
    use std::os::unix::fs::PermissionsExt;
    let key = site.dir.path().join("data/seed.key");
    assert_eq!(
        std::fs::metadata(&key)
            .expect("key file")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let db = std::fs::read(site.dir.path().join("data/mfa.db")).expect("db");
    assert!(!db.windows(seed.len()).any(|w| w == seed.as_slice()));

    site.ok(&["block", "alice", "--reason", "phone stolen"]);
    assert!(
        site.ok(&["user", "show", "alice"])
            .contains("blocked:   until")
    );
    site.ok(&["unblock", "alice", "--reason", "phone found"]);
    site.ok(&[
        "bypass",
        "alice",
        "--for",
        "300s",
        "--reason",
        "forgot phone",
    ]);
    let blocked = site.ok(&["report", "blocked", "--format", "csv"]);
    assert!(
        blocked.contains("alice,block,phone stolen")
            && blocked.contains("alice,unblock,phone found"),
        "{blocked}"
    );
    assert!(site.ok(&["report", "bypassed"]).contains("forgot phone"));
    let users = site.ok(&["report", "users", "--format", "json"]);
    assert!(users.contains("\"mfa\":\"registered\""), "{users}");

    // Import: good rows in, bad rows reported.
    let csv = site.dir.path().join("users.csv");
    std::fs::write(&csv, "name,email,phone\nbob,,+15551234567\nbad name,,\n").expect("csv");
    assert!(
        site.ok(&["user", "import", csv.to_str().expect("utf8")])
            .contains("imported 1 users")
    );
    assert!(
        std::fs::read_to_string(site.dir.path().join("users.errors.csv"))
            .expect("errors")
            .contains("bad name")
    );
    assert!(site.ok(&["user", "list"]).contains("bob"));
    site.ok(&["user", "remove", "bob"]);
    assert!(!site.run(&["user", "remove", "bob"], None).status.success());
}

#[test]
fn local_password_from_stdin_and_bad_input() {
    let site = Site::shipped();
    let o = site.run(
        &["user", "add", "carol", "--password-stdin"],
        Some("pa55word\n"),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        site.ok(&["user", "show", "carol"])
            .contains("password:  set (local)")
    );
    let o = site.run(&["user", "add", "dan", "--phone", "12ab"], None);
    assert!(
        !o.status.success() && text(&o).contains("not a phone number"),
        "{}",
        text(&o)
    );
    let o = site.run(&["block", "nobody", "--reason", "x"], None);
    assert!(
        !o.status.success() && text(&o).contains("no user named"),
        "{}",
        text(&o)
    );
    let o = site.run(&["bypass", "carol", "--reason", "x", "--for", "soon"], None);
    assert!(
        !o.status.success() && text(&o).contains("not a duration"),
        "{}",
        text(&o)
    );
}

#[test]
fn hardware_tokens_import_resync_and_remove() {
    let site = Site::shipped();
    let csv = site.dir.path().join("tokens.csv");
    std::fs::write(
        &csv,
        "upn,serial number,secret key,time interval,manufacturer,model\n\
         helga@contoso.com,1234567,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,0,Contoso,HardwareKey\n\
         kim@contoso.com,7654321,SECRETNOTBASE32*,30,Contoso,HardwareKey\n",
    )
    .expect("csv");
    let out = site.ok(&["token", "import", csv.to_str().expect("utf8")]);
    assert!(out.contains("imported 1 tokens"), "{out}");
    let errors =
        std::fs::read_to_string(site.dir.path().join("tokens.errors.csv")).expect("errors");
    assert!(errors.contains("3,kim@contoso.com,7654321"), "{errors}");
    assert!(!errors.contains("SECRETNOT"), "no secret in the error file");
    let show = site.ok(&["user", "show", "helga@contoso.com"]);
    assert!(show.contains("hotp #1234567"), "{show}");

    // RFC 4226 Appendix D codes: counter 1 activates, 7 and 8 resynchronise.
    let o = site.run(&["token", "activate", "1234567", "287082"], None);
    assert!(
        o.status.success(),
        "counter 1 is in the look-ahead: {}",
        text(&o)
    );
    let o = site.run(
        &["token", "resync", "helga@contoso.com", "162583", "520489"],
        None,
    );
    assert!(!o.status.success(), "not consecutive: {}", text(&o));
    let out = site.ok(&["token", "resync", "helga@contoso.com", "162583", "399871"]);
    assert!(out.contains("resynchronised token 1234567"), "{out}");
    site.ok(&["token", "remove", "1234567"]);
    let o = site.run(&["token", "remove", "1234567"], None);
    assert!(
        !o.status.success() && text(&o).contains("no token has serial"),
        "{}",
        text(&o)
    );
}

#[test]
fn user_set_method_phone_and_pin() {
    let site = Site::shipped();
    site.ok(&["user", "add", "erik"]);
    let o = site.run(&["user", "set", "erik", "--method", "call"], None);
    assert!(
        !o.status.success() && text(&o).contains("needs a phone number"),
        "{}",
        text(&o)
    );
    let o = site.run(&["user", "set", "erik", "--phone", "555-1234"], None);
    assert!(
        !o.status.success() && text(&o).contains("not a phone number"),
        "{}",
        text(&o)
    );
    site.ok(&[
        "user",
        "set",
        "erik",
        "--method",
        "call",
        "--phone",
        "+4930123456",
    ]);
    let o = site.run(&["user", "set", "erik", "--pin-stdin"], Some("12\n"));
    assert!(
        !o.status.success() && text(&o).contains("4 to 8 digits"),
        "{}",
        text(&o)
    );
    let o = site.run(&["user", "set", "erik", "--pin-stdin"], Some("4711\n"));
    assert!(o.status.success(), "{}", text(&o));
    let show = site.ok(&["user", "show", "erik"]);
    assert!(
        show.contains("call") && show.contains("+4930123456"),
        "{show}"
    );
    assert!(!show.contains("4711"), "the PIN never shows");
    let db = std::fs::read(site.dir.path().join("data/mfa.db")).expect("db");
    assert!(
        !db.windows(4).any(|w| w == b"4711"),
        "the PIN is stored hashed"
    );

    // The user's language; a tag without [messages.LANG] is kept, with a warning.
    let o = site.run(&["user", "set", "erik", "--language", "de_DE!"], None);
    assert!(
        !o.status.success() && text(&o).contains("not a language tag"),
        "{}",
        text(&o)
    );
    let o = site.run(&["user", "set", "erik", "--language", "DE"], None);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("no [messages.DE]"), "{}", text(&o));
    assert!(site.ok(&["user", "show", "erik"]).contains("language:  de"));
    site.ok(&["user", "set", "erik", "--language", ""]);
    assert!(
        site.ok(&["user", "show", "erik"])
            .contains("language:  (default)")
    );
}

#[test]
fn user_groups_and_forgetting_remembered_logins() {
    let site = Site::shipped();
    site.ok(&["user", "add", "fay", "--groups", "vpn, Admins,VPN"]);
    let show = site.ok(&["user", "show", "fay"]);
    assert!(
        show.contains("groups:    Admins, vpn\n") && show.contains("remembered: none\n"),
        "{show}"
    );
    // --groups replaces them; a bad list changes nothing, nor adds a user.
    site.ok(&["user", "set", "fay", "--groups", "ops"]);
    let o = site.run(&["user", "set", "fay", "--groups", "ops,,vpn"], None);
    assert!(
        !o.status.success() && text(&o).contains("is not a list of groups"),
        "{}",
        text(&o)
    );
    let o = site.run(&["user", "add", "gus", "--groups", "vpn,"], None);
    assert!(
        !o.status.success() && text(&o).contains("is not a list of groups"),
        "{}",
        text(&o)
    );
    assert!(!site.ok(&["user", "list"]).contains("gus"));
    assert!(
        site.ok(&["user", "show", "fay"])
            .contains("groups:    ops\n")
    );
    let users = site.ok(&["report", "users", "--format", "csv"]);
    assert!(
        users.starts_with("user,mfa,default_method,methods,groups,source,state\n")
            && users.contains("fay,not registered,totp,none,ops,-,active\n"),
        "{users}"
    );
    let users = site.ok(&["report", "users", "--format", "json"]);
    assert!(users.contains("\"groups\":\"ops\""), "{users}");
    site.ok(&["user", "set", "fay", "--groups", ""]);
    assert!(
        site.ok(&["user", "show", "fay"])
            .contains("groups:    (none)\n")
    );

    // Two remembered logins, as a proxy's logins record them.
    {
        let data = site.dir.path().join("data");
        let store =
            mfa_proxy::store::file::open_existing(&data.join("mfa.db"), &data.join("seed.key"))
                .expect("store");
        for (app, address, at) in [
            ("vpn", Some("192.0.2.7"), 1_700_000_000),
            ("wifi", None, 1_700_000_100),
        ] {
            let r = Remembered {
                auth_type: "pap".into(),
                app: app.into(),
                address: address.map(Into::into),
                at,
            };
            mfa_proxy::store::in_tx(store.as_login(), |tx| tx.remember("fay", &r, 0))
                .expect("remember");
        }
    }
    let show = site.ok(&["user", "show", "fay"]);
    assert!(
        show.contains(
            "remembered: auth pap, app wifi, address -, at 2023-11-14T22:15:00Z\n\
             \x20           auth pap, app vpn, address 192.0.2.7, at 2023-11-14T22:13:20Z\n"
        ),
        "{show}"
    );
    let out = site.ok(&["user", "forget", "FAY"]);
    assert_eq!(out, "revoked 2 remembered logins of FAY\n");
    assert!(
        site.ok(&["user", "show", "fay"])
            .contains("remembered: none\n")
    );
    assert_eq!(
        site.ok(&["user", "forget", "fay"]),
        "revoked 0 remembered logins of fay\n"
    );
    let o = site.run(&["user", "forget", "nobody"], None);
    assert!(
        !o.status.success() && text(&o).contains("no user named \"nobody\""),
        "{}",
        text(&o)
    );
}

/// The files as spreadsheets write them: a byte-order mark, CRLF, quoted
/// fields with commas and quotes inside. Each import's errors file is CSV
/// that reads back field for field, without the secrets.
#[test]
fn imports_read_quoted_csv_with_crlf_and_a_bom() {
    let site = Site::shipped();
    let read_back = |p: &std::path::Path| -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(p).expect("errors file");
        let mut lines = Vec::new();
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(text.as_bytes());
        for r in reader.records() {
            let r = r.unwrap_or_else(|e| panic!("not CSV: {e}\n{text}"));
            lines.push(r.iter().map(str::to_owned).collect());
        }
        lines
    };

    let users = site.dir.path().join("users.csv");
    std::fs::write(
        &users,
        "\u{feff}\"Name\",\"Email\",\"Phone\"\r\n\
         \"greta@contoso.com\",\"greta.g@contoso.com\",\"+4930123456\"\r\n\
         \"hans, the \"\"second\"\"\",,\r\n\
         \"olaf\",\"Olaf \"\"O\"\", Contoso\",\r\n",
    )
    .expect("users.csv");
    let out = site.ok(&["user", "import", users.to_str().expect("utf8")]);
    assert!(out.contains("imported 1 users"), "{out}");
    let show = site.ok(&["user", "show", "greta@contoso.com"]);
    assert!(
        show.contains("greta.g@contoso.com") && show.contains("+4930123456"),
        "{show}"
    );
    let rows = read_back(&site.dir.path().join("users.errors.csv"));
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[0], ["line", "name", "error"]);
    assert_eq!(rows[1][..2], ["3", "hans, the \"second\""], "{rows:?}");
    assert!(rows[1][2].contains("not a valid user name"), "{rows:?}");
    assert_eq!(rows[2][..2], ["4", "olaf"], "{rows:?}");
    assert!(
        rows[2][2].contains("\\\"O\\\", Contoso\" is not an email address"),
        "the value escaped, quotes and all: {rows:?}"
    );

    let tokens = site.dir.path().join("tokens.csv");
    std::fs::write(
        &tokens,
        "\u{feff}upn,serial number,secret key,time interval,manufacturer,model\r\n\
         \"helga@contoso.com\",\"12,34\",\"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\",\"0\",\"Contoso, Inc.\",\"Key \"\"One\"\"\"\r\n\
         \"kim@contoso.com\",\"7654321\",\"SECRETNOTBASE32*\",\"30\",\"A\",\"B\"\r\n",
    )
    .expect("tokens.csv");
    let out = site.ok(&["token", "import", tokens.to_str().expect("utf8")]);
    assert!(out.contains("imported 1 tokens"), "{out}");
    let show = site.ok(&["user", "show", "helga@contoso.com"]);
    assert!(show.contains("hotp #12,34"), "{show}");
    let errors = site.dir.path().join("tokens.errors.csv");
    assert!(
        !std::fs::read_to_string(&errors)
            .expect("errors")
            .contains("SECRETNOT"),
        "no secret in the errors file"
    );
    let rows = read_back(&errors);
    assert_eq!(rows[0], ["line", "upn", "serial number", "error"]);
    assert_eq!(
        rows[1],
        [
            "3",
            "kim@contoso.com",
            "7654321",
            "the secret key is not valid Base32"
        ]
    );
}

#[test]
fn policy_explain_through_the_binary() {
    let site = Site::shipped();
    let config = site.dir.path().join("proxy.toml");
    let mut text_ = std::fs::read_to_string(&config).expect("config");
    text_.push_str(
        "\n[[trusted_network]]\nname = \"office\"\nranges = [\"10.1.0.0/16\", \"2001:db8:1::/48\"]\n\
         [[policy]]\nname = \"office-skip\"\nnetworks = [\"office\"]\nmfa = \"skip\"\n\
         [[policy]]\nname = \"contractors\"\ngroups = [\"contractors\"]\nmfa = \"deny\"\n",
    );
    std::fs::write(&config, text_).expect("write");
    site.ok(&["user", "add", "alice", "--groups", "contractors"]);
    let client = "vpn";
    let out = site.ok(&[
        "policy",
        "explain",
        "--user",
        "alice",
        "--client",
        client,
        "--ip",
        "2001:db8:1::9",
    ]);
    assert!(
        out.contains(
            "policy office-skip: matches: address 2001:db8:1::9 in trusted network office"
        ),
        "{out}"
    );
    assert!(
        out.contains("needs: no second factor: accepted as SUCCESS_SKIPPED_BY_POLICY"),
        "{out}"
    );
    let out = site.ok(&[
        "policy",
        "explain",
        "--user",
        "alice",
        "--client",
        client,
        "--ip",
        "192.0.2.1",
    ]);
    assert!(out.contains("groups: contractors (store)"), "{out}");
    assert!(
        out.contains("policy contractors: matches: group contractors"),
        "{out}"
    );
    assert!(
        out.contains("needs: rejected as FAILED_DENIED_BY_POLICY"),
        "{out}"
    );
    // Nothing was logged in: no sign-in on record.
    assert!(!site.ok(&["report", "signins"]).contains("alice"));
    let o = site.run(
        &["policy", "explain", "--user", "alice", "--client", "nope"],
        None,
    );
    assert!(!o.status.success());
    assert!(
        text(&o).contains("--client: no [[client]] named \"nope\""),
        "{}",
        text(&o)
    );
}

#[test]
fn pskc_import_with_a_password_from_the_environment() {
    let site = Site::shipped();
    let pskc = |name: &str| workspace().join("tests/pskc").join(name);
    // RFC 6030 Figure 7 (password "qwerty"), with the user the key is for;
    // the MAC covers the secret only.
    let fig7 = std::fs::read_to_string(pskc("rfc6030-figure7.pskc"))
        .expect("figure 7")
        .replace(
            "</pskc:Data>",
            "</pskc:Data><pskc:UserId>helga@contoso.com</pskc:UserId>",
        );
    let file = site.dir.path().join("vendor.pskc");
    std::fs::write(&file, fig7).expect("write");
    let file = file.to_str().expect("utf8");
    let import = |env: Option<&str>| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_mfa-proxy"));
        c.args(["token", "import", file, "--config"])
            .arg(site.dir.path().join("proxy.toml"))
            .stdin(std::process::Stdio::null());
        if let Some(v) = env {
            c.args(["--password-env", "VENDOR_PASS"])
                .env("VENDOR_PASS", v);
        }
        c.output().expect("run")
    };
    let o = import(None);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("encrypted with a password"),
        "{}",
        text(&o)
    );
    let o = import(Some("qwertz"));
    assert!(!o.status.success());
    assert!(text(&o).contains("wrong password"), "{}", text(&o));
    assert!(
        !site.ok(&["user", "list"]).contains("helga"),
        "nothing imported"
    );

    let o = import(Some("qwerty"));
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("imported 1 tokens"), "{}", text(&o));
    let show = site.ok(&["user", "show", "helga@contoso.com"]);
    assert!(show.contains("hotp #987654321"), "{show}");
    // RFC 4226 Appendix D, 8 digits: counter 1.
    site.ok(&["token", "activate", "987654321", "94287082"]);

    // Figure 5 (an .xml by content): no UserId, and a PIN key.
    let fig5 = site.dir.path().join("fig5.txt");
    std::fs::copy(pskc("rfc6030-figure5.pskc"), &fig5).expect("copy");
    let out = site.ok(&["token", "import", fig5.to_str().expect("utf8")]);
    assert!(out.contains("imported 0 tokens"), "{out}");
    let errors = std::fs::read_to_string(site.dir.path().join("fig5.errors.csv")).expect("errors");
    assert_eq!(
        errors,
        "line,key id,serial number,upn,error\n\
         7,12345678,987654321,,no <UserId>: the token's user is needed\n\
         38,123456781,987654321,,the algorithm is not HOTP or TOTP (urn:ietf:params:xml:ns:keyprov:pskc:hotp or :totp)\n"
    );
}

/// A long import says how far it got: plain count lines on stderr when it
/// is not a terminal (a bar when it is), nothing for short ones.
#[test]
fn long_imports_count_their_progress() {
    let site = Site::shipped();
    let mut csv = String::from("name,email,phone\n");
    for i in 0..2_500 {
        csv.push_str(&format!("user{i},,\n"));
    }
    let users = site.dir.path().join("users.csv");
    std::fs::write(&users, csv).expect("write");
    let o = site.run(&["user", "import", users.to_str().expect("utf8")], None);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("imported 2500 users"),
        "{}",
        text(&o)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    let counts: Vec<&str> = err.lines().filter(|l| l.ends_with(" users")).collect();
    assert_eq!(counts, ["1000/2500 users", "2000/2500 users"], "{err}");
    let few = site.dir.path().join("few.csv");
    std::fs::write(&few, "name,email,phone\nsolo,,\n").expect("write");
    let o = site.run(&["user", "import", few.to_str().expect("utf8")], None);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("/1 users"));
}
