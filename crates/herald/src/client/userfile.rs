//! The user files `herald users import` reads and `herald users export` writes, with no I/O:
//!
//! - CSV: `userId,roles,products`, names inside a cell separated by `;`
//!   (`user-003,ADMIN;USER,Analytics;Payments`). A first row whose first cell is `userId` (any
//!   case, `user_id` too) is a header, and then names the columns in any order. Blank lines are
//!   skipped; a cell may be wrapped in double quotes.
//! - JSON lines: one `{"userId":…,"roles":[…],"products":[…]}` per line (`roles`/`products`
//!   optional, other fields ignored).
//!
//! Every line is checked with the server's own rules (`UserId::parse`, `parse_names`), so a bad
//! line is reported with its number before anything is sent.

use herald_domain::user::parse_names;
use herald_domain::{User, UserId};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

/// A valid line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub line: usize,
    pub user: User,
}

/// A line that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub line: usize,
    pub user_id: Option<String>,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Parsed {
    pub entries: Vec<Entry>,
    pub rejected: Vec<Rejected>,
}

/// JSON lines for `.jsonl` / `.ndjson` files or text whose first non-space character is `{`;
/// CSV otherwise.
pub fn detect(file_name: Option<&str>, text: &str) -> Format {
    let ext = file_name.and_then(|n| n.rsplit_once('.')).map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("jsonl" | "ndjson") => Format::Jsonl,
        Some("csv") => Format::Csv,
        _ if text.trim_start_matches('\u{feff}').trim_start().starts_with('{') => Format::Jsonl,
        _ => Format::Csv,
    }
}

/// Parses and checks every line. A CSV header naming an unknown column fails the whole file.
pub fn parse(format: Format, text: &str) -> Result<Parsed, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines = text.lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| !l.trim().is_empty());
    let mut parsed = Parsed::default();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut columns = Columns::default();
    for (n, (line, raw)) in lines.enumerate() {
        if format == Format::Csv && n == 0 {
            if let Some(header) = Columns::from_header(raw) {
                columns = header.map_err(|e| format!("line {line}: {e}"))?;
                continue;
            }
        }
        let result = match format {
            Format::Csv => columns.row(raw),
            Format::Jsonl => json_row(raw),
        };
        parsed.push(line, result, &mut seen);
    }
    Ok(parsed)
}

impl Parsed {
    fn push(
        &mut self,
        line: usize,
        result: Result<User, (Option<String>, String)>,
        seen: &mut HashMap<String, usize>,
    ) {
        match result {
            Ok(user) => match seen.get(user.user_id.as_str()) {
                Some(first) => self.rejected.push(Rejected {
                    line,
                    user_id: Some(user.user_id.to_string()),
                    reason: format!("userId: {} is already on line {first}", user.user_id),
                }),
                None => {
                    seen.insert(user.user_id.to_string(), line);
                    self.entries.push(Entry { line, user });
                }
            },
            Err((user_id, reason)) => self.rejected.push(Rejected { line, user_id, reason }),
        }
    }
}

/// Which CSV cell holds what: `userId,roles,products` unless a header says otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Columns {
    user_id: usize,
    roles: Option<usize>,
    products: Option<usize>,
    count: usize,
}

impl Default for Columns {
    fn default() -> Self {
        Self { user_id: 0, roles: Some(1), products: Some(2), count: 3 }
    }
}

impl Columns {
    /// `None` when `raw` is a data row, not a header.
    fn from_header(raw: &str) -> Option<Result<Self, String>> {
        let names: Vec<String> =
            cells(raw).iter().map(|c| c.to_ascii_lowercase().replace(['_', ' ', '-'], "")).collect();
        if names.first().map(String::as_str) != Some("userid") {
            return None;
        }
        let mut columns = Self { user_id: 0, roles: None, products: None, count: names.len() };
        for (i, name) in names.iter().enumerate().skip(1) {
            match name.as_str() {
                "roles" | "role" => columns.roles = Some(i),
                "products" | "product" => columns.products = Some(i),
                _ => return Some(Err(format!("unknown column '{name}' (expected userId, roles, products)"))),
            }
        }
        Some(Ok(columns))
    }

    fn row(&self, raw: &str) -> Result<User, (Option<String>, String)> {
        let cells = cells(raw);
        let user_id = cells.first().cloned();
        if cells.len() > self.count {
            let reason = format!(
                "has {} columns; expected at most {} (userId,roles,products)",
                cells.len(),
                self.count
            );
            return Err((user_id, reason));
        }
        let names =
            |col: Option<usize>| col.and_then(|c| cells.get(c)).map(|c| split_names(c)).unwrap_or_default();
        checked(user_id.as_deref().unwrap_or(""), &names(self.roles), &names(self.products))
    }
}

/// The cells of a CSV line, trimmed, surrounding double quotes removed.
fn cells(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(|c| {
            let c = c.trim();
            match c.strip_prefix('"').and_then(|c| c.strip_suffix('"')) {
                Some(inner) => inner.replace("\"\"", "\"").trim().to_owned(),
                None => c.to_owned(),
            }
        })
        .collect()
}

fn split_names(cell: &str) -> Vec<String> {
    cell.split(';').map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned).collect()
}

/// A user as the API and JSON-lines files write it.
#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JsonUser {
    pub user_id: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub products: Vec<String>,
}

impl JsonUser {
    /// The user, checked by the server's rules.
    pub fn into_user(self) -> Result<User, (Option<String>, String)> {
        checked(&self.user_id, &self.roles, &self.products)
    }
}

impl From<&User> for JsonUser {
    fn from(u: &User) -> Self {
        Self {
            user_id: u.user_id.to_string(),
            roles: u.roles.iter().cloned().collect(),
            products: u.products.iter().cloned().collect(),
        }
    }
}

fn json_row(raw: &str) -> Result<User, (Option<String>, String)> {
    let row: JsonUser = serde_json::from_str(raw).map_err(|e| {
        let id = serde_json::from_str::<serde_json::Value>(raw)
            .ok()
            .and_then(|v| v.get("userId").and_then(|v| v.as_str()).map(str::to_owned));
        (id, format!("not a user object: {e}"))
    })?;
    row.into_user()
}

/// The server's rules, with the id (if any) for the report.
fn checked(user_id: &str, roles: &[String], products: &[String]) -> Result<User, (Option<String>, String)> {
    let fail =
        |e: herald_domain::FieldError| (Some(user_id.to_owned()).filter(|s| !s.is_empty()), e.to_string());
    Ok(User {
        user_id: UserId::parse("userId", user_id).map_err(fail)?,
        roles: parse_names("roles", roles).map_err(fail)?,
        products: parse_names("products", products).map_err(fail)?,
    })
}

/// The directory as CSV with a header row.
pub fn to_csv(users: &[User]) -> String {
    let mut out = String::from("userId,roles,products\n");
    for u in users {
        let join =
            |names: &std::collections::BTreeSet<String>| names.iter().cloned().collect::<Vec<_>>().join(";");
        out.push_str(&format!("{},{},{}\n", u.user_id, join(&u.roles), join(&u.products)));
    }
    out
}

/// The directory as JSON lines.
pub fn to_jsonl(users: &[User]) -> String {
    users.iter().map(|u| format!("{}\n", serde_json::json!(JsonUser::from(u)))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(p: &Parsed) -> Vec<&str> {
        p.entries.iter().map(|e| e.user.user_id.as_str()).collect()
    }

    #[test]
    fn csv_without_header_is_user_roles_products_with_semicolons() {
        let p = parse(Format::Csv, "u1,ADMIN;USER,Payments\r\n\nu2\n").unwrap();
        assert_eq!(ids(&p), ["u1", "u2"]);
        let u1 = &p.entries[0];
        assert_eq!(u1.line, 1);
        assert_eq!(u1.user.roles.iter().collect::<Vec<_>>(), ["ADMIN", "USER"]);
        assert_eq!(u1.user.products.len(), 1);
        assert_eq!(p.entries[1].line, 3, "line numbers count blank lines");
        assert!(p.entries[1].user.roles.is_empty());
    }

    #[test]
    fn a_header_is_detected_and_may_reorder_columns() {
        let p = parse(Format::Csv, "\u{feff}User_Id,products,roles\nu1,\"P1;P2\",R1\n").unwrap();
        assert_eq!(ids(&p), ["u1"]);
        assert!(p.entries[0].user.roles.contains("R1"));
        assert!(p.entries[0].user.products.contains("P2"));
        let err = parse(Format::Csv, "userId,email\n").unwrap_err();
        assert!(err.contains("line 1") && err.contains("email"), "{err}");
    }

    #[test]
    fn bad_lines_are_rejected_with_their_number_and_reason() {
        let p =
            parse(Format::Csv, "userId,roles,products\nok,R,\nbad user,R,\nu2,bad role,\nu3,a,b,c\nok,R2,\n")
                .unwrap();
        assert_eq!(ids(&p), ["ok"]);
        let got: Vec<(usize, &str)> = p.rejected.iter().map(|r| (r.line, r.reason.as_str())).collect();
        assert_eq!(got.len(), 4, "{got:?}");
        assert!(got[0].0 == 3 && got[0].1.starts_with("userId: contains ' '"), "{got:?}");
        assert!(got[1].0 == 4 && got[1].1.starts_with("roles[0]:"), "{got:?}");
        assert!(got[2].0 == 5 && got[2].1.contains("4 columns"), "{got:?}");
        assert!(got[3].0 == 6 && got[3].1.contains("already on line 2"), "{got:?}");
        assert_eq!(p.rejected[1].user_id.as_deref(), Some("u2"));
    }

    #[test]
    fn json_lines_are_detected_and_parsed() {
        let text = "{\"userId\":\"u1\",\"roles\":[\"A\"],\"extra\":1}\n{\"roles\":[]}\n{\"userId\":\"u2\"}\n";
        assert_eq!(detect(None, text), Format::Jsonl);
        assert_eq!(detect(Some("users.NDJSON"), "u1,a,b"), Format::Jsonl);
        assert_eq!(detect(Some("users.txt"), "u1,a,b"), Format::Csv);
        let p = parse(Format::Jsonl, text).unwrap();
        assert_eq!(ids(&p), ["u1", "u2"]);
        assert_eq!(p.rejected[0].line, 2);
        assert!(p.rejected[0].reason.contains("userId"), "{}", p.rejected[0].reason);
    }

    #[test]
    fn export_formats_read_back_as_the_same_users() {
        let p = parse(Format::Csv, "b,R1;R2,P\na,,\n").unwrap();
        let users: Vec<User> = p.entries.into_iter().map(|e| e.user).collect();
        for (format, text) in [(Format::Csv, to_csv(&users)), (Format::Jsonl, to_jsonl(&users))] {
            let back: Vec<User> = parse(format, &text).unwrap().entries.into_iter().map(|e| e.user).collect();
            assert_eq!(back, users, "{text}");
        }
        assert_eq!(to_csv(&users), "userId,roles,products\nb,R1;R2,P\na,,\n");
    }
}
