//! Typed field values: conversion from request JSON (with Salesforce's coercions and
//! errors), rendering to response JSON, comparison for SOQL.

use std::cmp::Ordering;

use serde_json::Value as Json;
use time::format_description::FormatItem;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::errors::RecordError;
use crate::schema::{FieldDef, FieldType};

/// A stored value.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Null,
    Text(String),
    Number(f64),
    Bool(bool),
    /// Milliseconds since the Unix epoch, UTC.
    DateTime(i64),
    /// Days since 1970-01-01.
    Date(i32),
    /// A compound value (address), stored as its JSON object.
    Json(Json),
}

impl FieldValue {
    pub fn is_null(&self) -> bool {
        matches!(self, FieldValue::Null)
    }

    pub fn as_text(&self) -> Option<&str> {
        match self {
            FieldValue::Text(s) => Some(s),
            _ => None,
        }
    }

    /// Response JSON as Salesforce prints it: datetimes as
    /// `2026-05-12T10:00:00.000+0000`, integral doubles without a fraction.
    pub fn to_json(&self) -> Json {
        match self {
            FieldValue::Null => Json::Null,
            FieldValue::Text(s) => Json::String(s.clone()),
            FieldValue::Bool(b) => Json::Bool(*b),
            FieldValue::Number(n) => number_json(*n),
            FieldValue::DateTime(ms) => Json::String(format_datetime(*ms)),
            FieldValue::Date(d) => Json::String(format_date(*d)),
            FieldValue::Json(j) => j.clone(),
        }
    }

    /// The value as Bulk API CSV prints it (datetimes with `Z`, null as empty).
    pub fn to_csv(&self) -> String {
        match self {
            FieldValue::Null => String::new(),
            FieldValue::Text(s) => s.clone(),
            FieldValue::Bool(b) => b.to_string(),
            FieldValue::Number(n) => number_json(*n).to_string(),
            FieldValue::DateTime(ms) => format_datetime_z(*ms),
            FieldValue::Date(d) => format_date(*d),
            FieldValue::Json(j) => j.to_string(),
        }
    }

    /// Total order used by ORDER BY and range filters: text case-insensitively.
    pub fn compare(&self, other: &FieldValue) -> Ordering {
        use FieldValue::*;
        match (self, other) {
            (Null, Null) => Ordering::Equal,
            (Null, _) => Ordering::Less,
            (_, Null) => Ordering::Greater,
            (Text(a), Text(b)) => cmp_ci(a, b),
            (Number(a), Number(b)) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
            (Bool(a), Bool(b)) => a.cmp(b),
            (DateTime(a), DateTime(b)) => a.cmp(b),
            (Date(a), Date(b)) => a.cmp(b),
            (DateTime(a), Date(b)) => a.cmp(&(i64::from(*b) * 86_400_000)),
            (Date(a), DateTime(b)) => (i64::from(*a) * 86_400_000).cmp(b),
            _ => rank(self).cmp(&rank(other)),
        }
    }
}

fn rank(v: &FieldValue) -> u8 {
    match v {
        FieldValue::Null => 0,
        FieldValue::Bool(_) => 1,
        FieldValue::Number(_) => 2,
        FieldValue::Date(_) => 3,
        FieldValue::DateTime(_) => 4,
        FieldValue::Text(_) => 5,
        FieldValue::Json(_) => 6,
    }
}

fn cmp_ci(a: &str, b: &str) -> Ordering {
    let la = a.chars().flat_map(char::to_lowercase);
    let lb = b.chars().flat_map(char::to_lowercase);
    la.cmp(lb)
}

/// JSON number for a double: integral values without a fractional part.
pub fn number_json(n: f64) -> Json {
    if n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 {
        Json::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map(Json::Number).unwrap_or(Json::Null)
    }
}

const SF_DATETIME: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]+0000");
const DATE_FMT: &[FormatItem<'static>] = format_description!("[year]-[month]-[day]");
const NAIVE_DT: &[FormatItem<'static>] = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
const NAIVE_DT_FRAC: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]");

/// `2026-05-12T10:00:00.000+0000`.
pub fn format_datetime(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos).ok().and_then(|t| t.format(SF_DATETIME).ok()).unwrap_or_default()
}

const SF_DATETIME_Z: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// `2026-05-12T10:00:00.000Z` (Bulk API CSV).
pub fn format_datetime_z(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos).ok().and_then(|t| t.format(SF_DATETIME_Z).ok()).unwrap_or_default()
}

/// `2026-05-12`.
pub fn format_date(days: i32) -> String {
    OffsetDateTime::from_unix_timestamp(i64::from(days) * 86_400)
        .ok()
        .and_then(|t| t.date().format(DATE_FMT).ok())
        .unwrap_or_default()
}

/// How far the emulator's clock runs ahead of the real one (ms): tests move
/// time forward to reach idle TTLs and day boundaries without waiting.
static CLOCK_OFFSET_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

pub fn clock_offset_ms() -> i64 {
    CLOCK_OFFSET_MS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Move the emulator's clock forward (never backward); returns the new offset.
pub fn advance_clock_ms(by: i64) -> i64 {
    CLOCK_OFFSET_MS.fetch_add(by.max(0), std::sync::atomic::Ordering::Relaxed) + by.max(0)
}

/// Current time in milliseconds (on the emulator's clock).
pub fn now_ms() -> i64 {
    let n = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    i64::try_from(n).unwrap_or(i64::MAX).saturating_add(clock_offset_ms())
}

/// Parses a datetime as Salesforce accepts it: `2026-05-12T10:00:00Z`,
/// `...00.000Z`, `...+0000`, `...+00:00`, `...-0700`, or a plain date (midnight UTC).
pub fn parse_datetime(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.len() == 10 {
        return parse_date(s).map(|d| i64::from(d) * 86_400_000);
    }
    let (body, offset) = split_offset(s)?;
    let naive =
        PrimitiveDateTime::parse(body, NAIVE_DT_FRAC).or_else(|_| PrimitiveDateTime::parse(body, NAIVE_DT)).ok()?;
    let t = naive.assume_offset(offset);
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

fn split_offset(s: &str) -> Option<(&str, UtcOffset)> {
    if let Some(body) = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
        return Some((body, UtcOffset::UTC));
    }
    // The offset starts at the last '+' or '-' after the 'T'.
    let t_pos = s.find('T')?;
    let pos = s[t_pos..].rfind(['+', '-']).map(|p| p + t_pos)?;
    let (body, off) = s.split_at(pos);
    let sign: i8 = if off.starts_with('-') { -1 } else { 1 };
    let digits: String = off[1..].chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let h: i8 = digits[..2].parse().ok()?;
    let m: i8 = digits[2..].parse().ok()?;
    let offset = UtcOffset::from_hms(sign * h, sign * m, 0).ok()?;
    Some((body, offset))
}

/// Parses `2026-05-12` into days since the epoch.
pub fn parse_date(s: &str) -> Option<i32> {
    let d = Date::parse(s.trim(), DATE_FMT).ok()?;
    let secs = d.midnight().assume_utc().unix_timestamp();
    i32::try_from(secs.div_euclid(86_400)).ok()
}

/// Jackson's name of the JSON token a value starts with, for parser errors.
pub fn json_token(v: &Json) -> &'static str {
    match v {
        Json::Null => "VALUE_NULL",
        Json::Bool(true) => "VALUE_TRUE",
        Json::Bool(false) => "VALUE_FALSE",
        Json::Number(n) if n.is_f64() => "VALUE_NUMBER_FLOAT",
        Json::Number(_) => "VALUE_NUMBER_INT",
        Json::String(_) => "VALUE_STRING",
        Json::Array(_) => "START_ARRAY",
        Json::Object(_) => "START_OBJECT",
    }
}

fn json_display(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn parse_error(field: &FieldDef, v: &Json) -> RecordError {
    RecordError::cannot_deserialize(field.ty.soap_name(), json_token(v), &json_display(v))
}

fn is_valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c == ',' || c == ';')
        && s.len() <= 80
}

/// Converts request JSON into a stored value for `field`, applying Salesforce's
/// coercions (numbers and booleans into text, numeric strings into numbers, "" to
/// null) and field-level checks (length, picklist, email, numeric range). Reference
/// fields are returned as text here; the caller resolves them.
pub fn from_json(field: &FieldDef, v: &Json) -> Result<FieldValue, RecordError> {
    if v.is_null() {
        return Ok(FieldValue::Null);
    }
    match &field.ty {
        FieldType::Id
        | FieldType::Text { .. }
        | FieldType::TextArea { .. }
        | FieldType::Email
        | FieldType::Phone
        | FieldType::Url
        | FieldType::Picklist { .. }
        | FieldType::MultiPicklist { .. }
        | FieldType::Reference { .. }
        | FieldType::AutoNumber { .. } => {
            let s = match v {
                Json::String(s) => s.clone(),
                Json::Number(n) => n.to_string(),
                Json::Bool(b) => b.to_string(),
                _ => return Err(parse_error(field, v)),
            };
            if s.is_empty() {
                return Ok(FieldValue::Null);
            }
            check_text(field, &s)?;
            Ok(FieldValue::Text(s))
        }
        FieldType::Number { precision, scale }
        | FieldType::Currency { precision, scale }
        | FieldType::Percent { precision, scale } => {
            let n = json_number(field, v)?;
            let Some(n) = n else { return Ok(FieldValue::Null) };
            let int_digits = precision.saturating_sub(*scale);
            let max = 10f64.powi(i32::try_from(int_digits).unwrap_or(18));
            let factor = 10f64.powi(i32::try_from(*scale).unwrap_or(0));
            let rounded = (n * factor).round() / factor;
            if rounded.abs() >= max {
                return Err(RecordError::number_out_of_range(&field.label, &json_display(v), &field.name));
            }
            Ok(FieldValue::Number(rounded))
        }
        FieldType::Int { digits } => {
            let Some(n) = json_number(field, v)? else { return Ok(FieldValue::Null) };
            if n.fract() != 0.0 {
                return Err(parse_error(field, v));
            }
            if n.abs() >= 10f64.powi(i32::try_from(*digits).unwrap_or(9)) {
                return Err(RecordError::number_out_of_range(&field.label, &json_display(v), &field.name));
            }
            Ok(FieldValue::Number(n))
        }
        FieldType::DateTime => match v {
            Json::String(s) if s.is_empty() => Ok(FieldValue::Null),
            Json::String(s) => parse_datetime(s).map(FieldValue::DateTime).ok_or_else(|| parse_error(field, v)),
            _ => Err(parse_error(field, v)),
        },
        FieldType::Date => match v {
            Json::String(s) if s.is_empty() => Ok(FieldValue::Null),
            Json::String(s) => parse_date(s)
                .or_else(|| parse_datetime(s).and_then(|ms| i32::try_from(ms.div_euclid(86_400_000)).ok()))
                .map(FieldValue::Date)
                .ok_or_else(|| parse_error(field, v)),
            _ => Err(parse_error(field, v)),
        },
        FieldType::Boolean => match v {
            Json::Bool(b) => Ok(FieldValue::Bool(*b)),
            Json::String(s) if s.eq_ignore_ascii_case("true") => Ok(FieldValue::Bool(true)),
            Json::String(s) if s.eq_ignore_ascii_case("false") => Ok(FieldValue::Bool(false)),
            _ => Err(parse_error(field, v)),
        },
        FieldType::Address { .. } => Err(parse_error(field, v)),
    }
}

fn json_number(field: &FieldDef, v: &Json) -> Result<Option<f64>, RecordError> {
    let n = match v {
        Json::Number(n) => n.as_f64().ok_or_else(|| parse_error(field, v))?,
        Json::String(s) if s.trim().is_empty() => return Ok(None),
        Json::String(s) => s.trim().parse::<f64>().map_err(|_| parse_error(field, v))?,
        _ => return Err(parse_error(field, v)),
    };
    if n.is_finite() { Ok(Some(n)) } else { Err(parse_error(field, v)) }
}

fn check_text(field: &FieldDef, s: &str) -> Result<(), RecordError> {
    let len = s.chars().count();
    match &field.ty {
        FieldType::Text { length } | FieldType::TextArea { length, .. } if len > *length => {
            Err(RecordError::string_too_long(&field.label, s, *length, &field.name))
        }
        FieldType::Phone | FieldType::Url if len > field.ty.length() => {
            Err(RecordError::string_too_long(&field.label, s, field.ty.length(), &field.name))
        }
        FieldType::MultiPicklist { values, restricted } => {
            if *restricted && s.split(';').any(|part| !values.iter().any(|v| v == part.trim())) {
                Err(RecordError::bad_picklist(&field.label, s, &field.name))
            } else {
                Ok(())
            }
        }
        FieldType::Email if !is_valid_email(s) => Err(RecordError::invalid_email(&field.label, s, &field.name)),
        FieldType::Picklist { values, restricted } => {
            if *restricted && !values.iter().any(|v| v == s) {
                Err(RecordError::bad_picklist(&field.label, s, &field.name))
            } else if len > 255 {
                Err(RecordError::string_too_long(&field.label, s, 255, &field.name))
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_round_trip() {
        let ms = parse_datetime("2026-05-12T10:00:00.000Z").unwrap();
        assert_eq!(format_datetime(ms), "2026-05-12T10:00:00.000+0000");
        assert_eq!(parse_datetime("2026-05-12T10:00:00Z"), Some(ms));
        assert_eq!(parse_datetime("2026-05-12T10:00:00.000+0000"), Some(ms));
        assert_eq!(parse_datetime("2026-05-12T12:00:00+02:00"), Some(ms));
        assert_eq!(parse_datetime("2026-05-12T03:00:00.000-0700"), Some(ms));
        assert_eq!(parse_datetime("2026-05-12T10:00:00.123Z"), Some(ms + 123));
        assert_eq!(parse_datetime("nope"), None);
        assert_eq!(format_date(parse_date("2026-03-08").unwrap()), "2026-03-08");
    }

    #[test]
    fn numbers_render_like_salesforce() {
        assert_eq!(number_json(15000.0), serde_json::json!(15000));
        assert_eq!(number_json(55.5), serde_json::json!(55.5));
    }

    #[test]
    fn email_check() {
        assert!(is_valid_email("a.b@example.com"));
        assert!(!is_valid_email("not an email"));
        assert!(!is_valid_email("a@b"));
    }
}
