//! Mapping (SPEC §5.3): each LMS field ← a primary source field, else the
//! secondary one when the primary is blank, through optional transforms.
//! Targets: `email`, `first_name`, `last_name`, `department_id`,
//! `termination_date` (read by the lifecycle, not written), and
//! `fields.<name>` (any other name is a custom field too).

use crate::config::{Mapping, Transform};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The learner a source record maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedPerson {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub department_id: Option<String>,
    pub fields: BTreeMap<String, String>,
}

/// The value of one mapping for a record: primary, else secondary when the
/// primary is blank, then the transforms in order. Blank → `None`.
pub fn mapped_value(record: &Map<String, Value>, m: &Mapping) -> Option<String> {
    let blank = |v: &Option<String>| v.as_deref().is_none_or(|s| s.trim().is_empty());
    let mut v = super::field_text(record, &m.primary);
    if blank(&v)
        && let Some(sec) = &m.secondary
    {
        v = super::field_text(record, sec);
    }
    let mut v = v?;
    for t in &m.transforms {
        v = apply(t, v)?;
    }
    if v.trim().is_empty() { None } else { Some(v) }
}

/// One transform; `None` when it yields nothing (a value table without the
/// value and without a default, a date that does not parse).
pub fn apply(t: &Transform, v: String) -> Option<String> {
    match t {
        Transform::Trim => Some(v.trim().to_string()),
        Transform::Lowercase => Some(v.to_lowercase()),
        Transform::Uppercase => Some(v.to_uppercase()),
        Transform::ValueTable { table, default } => table
            .get(&v)
            .or_else(|| table.iter().find(|(k, _)| k.trim().eq_ignore_ascii_case(v.trim())).map(|(_, x)| x))
            .or(default.as_ref())
            .cloned(),
        Transform::DateFormat { format } => {
            let t = super::parse_timestamp(&v)
                .map(|t| (t.date(), Some(t)))
                .or_else(|| super::parse_date(&v).map(|d| (d, None)))?;
            Some(format_date(format, t.0, t.1))
        }
    }
}

/// strftime-style: `%Y %m %d %H %M %S %y %%`; anything else is copied.
pub fn format_date(format: &str, date: time::Date, at: Option<time::OffsetDateTime>) -> String {
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&format!("{:04}", date.year())),
            Some('y') => out.push_str(&format!("{:02}", date.year().rem_euclid(100))),
            Some('m') => out.push_str(&format!("{:02}", u8::from(date.month()))),
            Some('d') => out.push_str(&format!("{:02}", date.day())),
            Some('H') => out.push_str(&format!("{:02}", at.map_or(0, |t| t.hour()))),
            Some('M') => out.push_str(&format!("{:02}", at.map_or(0, |t| t.minute()))),
            Some('S') => out.push_str(&format!("{:02}", at.map_or(0, |t| t.second()))),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// A plausible address: `local@domain.tld`, no blanks.
pub fn usable_email(s: &str) -> Result<(), String> {
    let Some((local, domain)) = s.split_once('@') else { return Err(format!("{s:?} has no @")) };
    let ok = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains(['@', ' '])
        && !s.chars().any(char::is_whitespace)
        && s.len() <= 254;
    if ok { Ok(()) } else { Err(format!("{s:?} is not an address like ada@example.com")) }
}

/// The learner of a record, or why it has no usable email. A blank first
/// or last name falls back to the email's local part (the LMS requires both).
pub fn map_person(mappings: &[Mapping], record: &Map<String, Value>) -> Result<MappedPerson, String> {
    let mut email = None;
    let mut first = None;
    let mut last = None;
    let mut department_id = None;
    let mut fields = BTreeMap::new();
    for m in mappings {
        let v = mapped_value(record, m);
        match m.target.as_str() {
            "email" => email = v,
            "first_name" => first = v,
            "last_name" => last = v,
            "department_id" => department_id = v,
            "termination_date" => {}
            other => {
                let key = other.strip_prefix("fields.").unwrap_or(other);
                if let Some(v) = v {
                    fields.insert(key.to_string(), v);
                }
            }
        }
    }
    let email = email.map(|e| e.trim().to_string()).ok_or_else(|| {
        let m = mappings.iter().find(|m| m.target == "email");
        match m {
            Some(m) => match &m.secondary {
                Some(s) => format!("{} and {} are blank", m.primary, s),
                None => format!("{} is blank", m.primary),
            },
            None => "no mapping targets email".to_string(),
        }
    })?;
    usable_email(&email)?;
    let local = email.split('@').next().unwrap_or_default().to_string();
    Ok(MappedPerson {
        first_name: first.map(|s| s.trim().to_string()).unwrap_or_else(|| local.clone()),
        last_name: last.map(|s| s.trim().to_string()).unwrap_or(local),
        email,
        department_id,
        fields,
    })
}
