//! Human-readable output shared by the client subcommands: times in the local zone, aligned
//! tables, and shortened one-line previews of message content.

use chrono::{DateTime, Local, Utc};
use serde_json::Value;

/// An RFC 3339 time from the server, in the local zone (`2026-11-27 01:11:31`); the text itself
/// when it does not parse, `-` when absent.
pub fn local_time(value: &Value) -> String {
    match value.as_str() {
        Some(text) => match DateTime::parse_from_rfc3339(text) {
            Ok(t) => t.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S").to_string(),
            Err(_) => text.to_owned(),
        },
        None => "-".to_owned(),
    }
}

/// The current local time, as `tail` stamps each event.
pub fn now_local() -> String {
    Utc::now().with_timezone(&Local).format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A JSON value as a table cell: strings without quotes, `null` as `-`.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `text` on one line (line breaks shown as `⏎`), cut to `max` characters with `…`.
pub fn preview(text: &str, max: usize) -> String {
    let flat: String = text.chars().map(|c| if c == '\n' { '⏎' } else { c }).filter(|c| *c != '\r').collect();
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A fraction as a percentage with one decimal (`0.5` → `50.0%`).
pub fn percent(value: &Value) -> String {
    value.as_f64().map_or_else(|| "-".to_owned(), |f| format!("{:.1}%", f * 100.0))
}

/// Rows under a header, columns padded to their widest cell; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let last = row.len().saturating_sub(1);
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| if i == last { c.clone() } else { format!("{c:<w$}", w = widths[i]) })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_columns_under_their_header() {
        let t = table(&["ID", "STATUS", "CONTENT"], &[vec!["1".into(), "ACTIVE".into(), "hi".into()]]);
        assert_eq!(t, "ID  STATUS  CONTENT\n1   ACTIVE  hi\n");
    }

    #[test]
    fn previews_stay_on_one_line_and_are_cut_with_an_ellipsis() {
        assert_eq!(preview("a\r\nb", 10), "a⏎b");
        assert_eq!(preview("abcdefgh", 5), "abcd…");
    }

    #[test]
    fn cells_and_rates_read_naturally() {
        assert_eq!(cell(&json!(null)), "-");
        assert_eq!(cell(&json!("x")), "x");
        assert_eq!(cell(&json!(3)), "3");
        assert_eq!(percent(&json!(0.5)), "50.0%");
        assert_eq!(local_time(&json!("not a time")), "not a time");
    }
}
