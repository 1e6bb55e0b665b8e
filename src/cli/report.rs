//! Reports from the store: sign-ins, blocks, bypasses and users, as a
//! table, CSV (RFC 4180, with a header) or JSON (one object per line, keys in
//! column order).

use std::io::Write;

use serde::ser::{Serialize, SerializeMap, Serializer};

use super::{AdminError, methods, show_time};
use crate::store::{AuditRecord, HistoryEntry, Store, UnixTime};

/// Output formats of the reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// One report row as a JSON object: `headers[i]: cells[i]`, in that order.
struct JsonRow<'a> {
    headers: &'a [&'a str],
    cells: &'a [String],
}

impl Serialize for JsonRow<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.headers.len()))?;
        for (h, c) in self.headers.iter().zip(self.cells) {
            map.serialize_entry(h, c)?;
        }
        map.end()
    }
}

/// Writes rows under `headers` in the chosen format.
fn write_rows(
    out: &mut dyn Write,
    format: Format,
    headers: &[&str],
    rows: &[Vec<String>],
) -> Result<(), AdminError> {
    match format {
        Format::Table => {
            let cell = |r: &[String], i: usize| r.get(i).map_or(0, |c| c.chars().count());
            let widths: Vec<usize> = headers
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    rows.iter()
                        .map(|r| cell(r, i))
                        .max()
                        .unwrap_or(0)
                        .max(h.chars().count())
                })
                .collect();
            let line = |cells: Vec<&str>| -> String {
                cells
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_owned()
            };
            writeln!(out, "{}", line(headers.to_vec()))?;
            for r in rows {
                writeln!(out, "{}", line(r.iter().map(String::as_str).collect()))?;
            }
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(headers).map_err(std::io::Error::from)?;
            for r in rows {
                w.write_record(r).map_err(std::io::Error::from)?;
            }
            w.flush()?;
        }
        Format::Json => {
            for cells in rows {
                serde_json::to_writer(&mut *out, &JsonRow { headers, cells })
                    .map_err(std::io::Error::from)?;
                writeln!(out)?;
            }
        }
    }
    Ok(())
}

pub fn report_signins(
    store: &dyn Store,
    user: Option<&str>,
    since: Option<UnixTime>,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), AdminError> {
    let rows: Vec<Vec<String>> = store
        .audit(user, since)?
        .into_iter()
        .map(|a: AuditRecord| {
            vec![
                show_time(a.at),
                a.user,
                a.result.as_str().to_owned(),
                if a.accepted { "accept" } else { "reject" }.to_owned(),
                a.mode,
                a.client,
                a.client_ip.unwrap_or_default(),
                a.server,
                a.reason.unwrap_or_default(),
            ]
        })
        .collect();
    write_rows(
        out,
        format,
        &[
            "time",
            "user",
            "result",
            "decision",
            "mode",
            "client",
            "client_ip",
            "server",
            "reason",
        ],
        &rows,
    )
}

fn history_rows(h: Vec<HistoryEntry>) -> Vec<Vec<String>> {
    h.into_iter()
        .map(|e| {
            vec![
                show_time(e.at),
                e.user,
                e.action,
                e.reason,
                e.until.map(show_time).unwrap_or_default(),
            ]
        })
        .collect()
}

pub fn report_blocked(
    store: &dyn Store,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), AdminError> {
    write_rows(
        out,
        format,
        &["time", "user", "action", "reason", "until"],
        &history_rows(store.block_history()?),
    )
}

pub fn report_bypassed(
    store: &dyn Store,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), AdminError> {
    write_rows(
        out,
        format,
        &["time", "user", "state", "reason", "until"],
        &history_rows(store.bypass_history()?),
    )
}

pub fn report_users(
    store: &dyn Store,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), AdminError> {
    let mut rows = Vec::new();
    for u in store.users()? {
        let registered = store.tokens(&u.name)?.iter().any(|t| t.active) || u.phone.is_some();
        rows.push(vec![
            u.name.clone(),
            if registered {
                "registered"
            } else {
                "not registered"
            }
            .to_owned(),
            u.method.as_str().to_owned(),
            methods(store, &u.name)?,
            u.groups.join(", "),
            u.source.clone().unwrap_or_else(|| "-".to_owned()),
            match u.disabled_at {
                Some(at) => format!("disabled since {}", super::show_time(at)),
                None => "active".to_owned(),
            },
        ]);
    }
    write_rows(
        out,
        format,
        &[
            "user",
            "mfa",
            "default_method",
            "methods",
            "groups",
            "source",
            "state",
        ],
        &rows,
    )
}

/// A node that has not said it is alive for this long is shown as silent
/// (it says so every 10 s while it serves).
const SILENT_AFTER: UnixTime = 30;

/// The nodes serving on the store (one for SQLite, several on
/// PostgreSQL): up or silent since when, their version, and the
/// verifications out of band each holds now.
pub fn report_status(
    store: &dyn Store,
    now: UnixTime,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), AdminError> {
    let verifications = store.verifications(now)?;
    let rows: Vec<Vec<String>> = store
        .nodes()?
        .into_iter()
        .map(|n| {
            let mine: Vec<String> = verifications
                .iter()
                .filter(|v| v.node == n.name)
                .map(|v| format!("{} ({})", v.user, v.method.as_str()))
                .collect();
            let state = if now - n.seen_at <= SILENT_AFTER {
                "up".to_owned()
            } else {
                format!("silent for {}s", now - n.seen_at)
            };
            vec![
                n.name,
                state,
                show_time(n.seen_at),
                show_time(n.started_at),
                n.version,
                mine.len().to_string(),
                mine.join(", "),
            ]
        })
        .collect();
    write_rows(
        out,
        format,
        &[
            "node",
            "state",
            "last_seen",
            "started",
            "version",
            "pending",
            "verifications",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::user_add;
    use crate::store::{SeedKey, SqliteStore};

    fn store() -> SqliteStore {
        SqliteStore::in_memory(SeedKey::from_bytes(&[4; 32])).expect("open")
    }

    #[test]
    fn reports_in_three_formats() {
        let s = store();
        user_add(
            &s,
            "dave",
            None,
            Some("+15551234567".into()),
            None,
            Vec::new(),
            0,
        )
        .expect("add");
        s.block("dave", "lost, phone", 10, 20).expect("block");
        let mut out = Vec::new();
        report_blocked(&s, Format::Csv, &mut out).expect("csv");
        let csv = String::from_utf8(out).expect("utf8");
        assert!(csv.contains("\"lost, phone\""), "{csv}");
        let mut out = Vec::new();
        report_users(&s, Format::Json, &mut out).expect("json");
        let json = String::from_utf8(out).expect("utf8");
        assert!(
            json.contains("\"user\":\"dave\"") && json.contains("\"mfa\":\"registered\""),
            "{json}"
        );
        let changes = crate::cli::UserChanges {
            groups: Some(vec!["vpn".into(), "Admins".into()]),
            ..Default::default()
        };
        crate::cli::user_set(&s, "dave", changes).expect("set");
        let mut out = Vec::new();
        report_users(&s, Format::Json, &mut out).expect("json");
        let v: serde_json::Value = serde_json::from_slice(&out).expect("one JSON object");
        assert_eq!(v["groups"], "Admins, vpn");
        let mut out = Vec::new();
        report_users(&s, Format::Csv, &mut out).expect("csv");
        let csv = String::from_utf8(out).expect("utf8");
        assert!(
            csv.starts_with("user,mfa,default_method,methods,groups,source,state\n")
                && csv.contains(",\"Admins, vpn\",-,active\n"),
            "{csv}"
        );
        let mut out = Vec::new();
        report_users(&s, Format::Table, &mut out).expect("table");
        let table = String::from_utf8(out).expect("utf8");
        assert!(
            table.lines().next().is_some_and(|h| h.ends_with("  state"))
                && table.contains("  Admins, vpn  -       active\n"),
            "{table}"
        );
        let mut out = Vec::new();
        report_signins(&s, None, None, Format::Table, &mut out).expect("table");
        assert!(String::from_utf8(out).expect("utf8").starts_with("time"));
    }

    #[test]
    fn csv_and_json_carry_any_text() {
        let s = store();
        user_add(&s, "erin", None, None, None, Vec::new(), 0).expect("add");
        let reason = "said \"lost\", then\r\nfound it \\ \u{1}";
        s.block("erin", reason, 10, 20).expect("block");
        let mut out = Vec::new();
        report_blocked(&s, Format::Csv, &mut out).expect("csv");
        let rows: Vec<csv::StringRecord> = csv::Reader::from_reader(out.as_slice())
            .records()
            .collect::<Result<_, _>>()
            .expect("CSV");
        assert_eq!(rows.len(), 1);
        assert_eq!(&rows[0][1], "erin");
        assert_eq!(&rows[0][3], reason, "the reason reads back as written");

        let mut out = Vec::new();
        report_blocked(&s, Format::Json, &mut out).expect("json");
        let text = String::from_utf8(out).expect("utf8");
        assert_eq!(text.lines().count(), 1, "one object per line: {text}");
        let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(v["reason"], reason);
        assert_eq!(v["user"], "erin");
        assert!(
            text.starts_with("{\"time\":") && text.find("\"user\"") < text.find("\"action\""),
            "keys in column order: {text}"
        );
    }
}
