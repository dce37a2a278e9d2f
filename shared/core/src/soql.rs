//! Building SOQL safely from user-supplied values.
//!
//! Values never go into a query unescaped: [`quote`] turns any string into a
//! SOQL string literal that means exactly that string, [`quote_like`] does the
//! same for a LIKE pattern (so `%` and `_` match themselves), and
//! [`identifier`] checks object and field names, which cannot be escaped.
//!
//! Escapes follow Salesforce's "Quoted String Escape Sequences": `\\`, `\'`,
//! `\"`, `\n`, `\r`, `\t`, `\uXXXX`, and in LIKE patterns `\%` and `\_`.
//! Other control characters are written as `\uXXXX`; every other character
//! (any Unicode letter, emoji, …) is kept as is: queries travel as UTF-8.

use std::fmt::Write as _;
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SoqlError {
    #[error(
        "{0:?} is not a valid Salesforce API name (letters, digits and single underscores, starting with a letter; \
         `.` only between relationship names)"
    )]
    InvalidIdentifier(String),
    #[error("an IN list needs at least one value")]
    EmptyInList,
}

fn escape_into(out: &mut String, value: &str, like: bool) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '%' if like => out.push_str("\\%"),
            '_' if like => out.push_str("\\_"),
            c if c.is_control() => {
                // Control characters are all in the BMP: one \uXXXX each.
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// The body of a string literal (without the surrounding quotes).
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    escape_into(&mut out, value, false);
    out
}

/// A complete string literal: `'…'`.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    escape_into(&mut out, value, false);
    out.push('\'');
    out
}

/// The body of a LIKE pattern that matches `value` literally; add `%` or
/// `_` around it for wildcards.
pub fn escape_like(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    escape_into(&mut out, value, true);
    out
}

/// A LIKE pattern literal matching `value` literally: `'…'`.
pub fn quote_like(value: &str) -> String {
    format!("'{}'", escape_like(value))
}

/// `'…%'`: values starting with `prefix`.
pub fn like_prefix(prefix: &str) -> String {
    format!("'{}%'", escape_like(prefix))
}

/// `'%…%'`: values containing `needle`.
pub fn like_contains(needle: &str) -> String {
    format!("'%{}%'", escape_like(needle))
}

/// `('a','b',…)` for `IN`; an empty list is an error (SOQL has no `IN ()`).
pub fn in_list<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<String, SoqlError> {
    let mut out = String::from("(");
    let mut any = false;
    for v in values {
        if any {
            out.push(',');
        }
        out.push_str(&quote(v));
        any = true;
    }
    if !any {
        return Err(SoqlError::EmptyInList);
    }
    out.push(')');
    Ok(out)
}

fn is_api_name(part: &str) -> bool {
    let b = part.as_bytes();
    !b.is_empty()
        && b.len() <= 120
        && b[0].is_ascii_alphabetic()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        && !part.ends_with('_')
        && !part.contains("___")
}

/// Check an object or field API name (`Contact`, `LMS_Enrollment__c`,
/// `ns__Field__c`, or a relationship path such as `Contact__r.Email`).
/// Names cannot be escaped in SOQL, so anything else is refused.
pub fn identifier(name: &str) -> Result<&str, SoqlError> {
    if name.split('.').all(is_api_name) { Ok(name) } else { Err(SoqlError::InvalidIdentifier(name.to_string())) }
}

/// A SOQL dateTime literal (`2026-11-23T10:00:00Z`, UTC, whole seconds —
/// SOQL literals take no fraction; with `>=` the truncation only widens).
pub fn datetime_literal(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A SOQL date literal (`2026-11-23`).
pub fn date_literal(d: time::Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One token of a string literal as Salesforce reads it.
    #[derive(Debug, PartialEq)]
    enum Tok {
        Char(char),
        AnyOne,
        AnyMany,
    }

    /// A reference reader of a quoted literal as SOQL's lexer reads it:
    /// returns the tokens up to the closing quote and what follows it.
    fn lex(literal: &str, like: bool) -> Result<(Vec<Tok>, String), String> {
        let mut it = literal.chars();
        if it.next() != Some('\'') {
            return Err("no opening quote".into());
        }
        let mut toks = Vec::new();
        while let Some(c) = it.next() {
            match c {
                '\'' => return Ok((toks, it.collect())),
                '\\' => {
                    let e = it.next().ok_or("dangling backslash")?;
                    let ch = match e {
                        'n' | 'N' => '\n',
                        'r' | 'R' => '\r',
                        't' | 'T' => '\t',
                        'f' | 'F' => '\u{c}',
                        '"' => '"',
                        '\'' => '\'',
                        '\\' => '\\',
                        '%' if like => '%',
                        '_' if like => '_',
                        'u' => {
                            let hex: String = it.by_ref().take(4).collect();
                            let n = u32::from_str_radix(&hex, 16).map_err(|e| e.to_string())?;
                            char::from_u32(n).ok_or("bad code point")?
                        }
                        other => return Err(format!("invalid escape \\{other}")),
                    };
                    toks.push(Tok::Char(ch));
                }
                '%' if like => toks.push(Tok::AnyMany),
                '_' if like => toks.push(Tok::AnyOne),
                c if c.is_control() && c != '\n' && c != '\r' && c != '\t' => {
                    return Err(format!("raw control character U+{:04X}", c as u32));
                }
                c => toks.push(Tok::Char(c)),
            }
        }
        Err("no closing quote".into())
    }

    fn chars(s: &str) -> Vec<Tok> {
        s.chars().map(Tok::Char).collect()
    }

    #[test]
    fn known_escapes() {
        assert_eq!(quote("Bob's BBQ"), r"'Bob\'s BBQ'");
        assert_eq!(quote(r"C:\temp"), r"'C:\\temp'");
        assert_eq!(quote("a\nb\r\tc"), r"'a\nb\r\tc'");
        assert_eq!(quote("say \"hi\""), r#"'say \"hi\"'"#);
        assert_eq!(quote("bell\u{7}"), r"'bell\u0007'");
        assert_eq!(quote("Zoë 😀"), "'Zoë 😀'");
        assert_eq!(quote_like("100%_done"), r"'100\%\_done'");
        assert_eq!(like_prefix("Ter%"), r"'Ter\%%'");
        assert_eq!(like_contains("a_b"), r"'%a\_b%'");
        assert_eq!(quote("' OR Name != '"), r"'\' OR Name != \''");
        assert_eq!(in_list(["a@x.com", "o'neil@y.com"]).unwrap(), r"('a@x.com','o\'neil@y.com')");
        assert_eq!(in_list(std::iter::empty()), Err(SoqlError::EmptyInList));
    }

    #[test]
    fn identifiers() {
        for ok in ["Contact", "LMS_Enrollment__c", "ns__Field__c", "Contact__r.LMS_Learner_Id__c", "Id"] {
            assert_eq!(identifier(ok), Ok(ok));
        }
        for bad in ["", "1abc", "Name FROM User", "a'b", "x.", ".x", "a-b", "Field_", "a___b", "Id;"] {
            assert!(identifier(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn datetime_literals_are_utc_whole_seconds() {
        let t = time::macros::datetime!(2026-11-23 12:34:56.789 +02:00);
        assert_eq!(datetime_literal(t), "2026-11-23T10:34:56Z");
        assert_eq!(date_literal(time::macros::date!(2026 - 01 - 05)), "2026-01-05");
    }

    proptest! {
        /// Any string becomes a literal that means exactly that string and
        /// ends exactly where it should (nothing can break out of it).
        #[test]
        fn quote_round_trips(s in any::<String>()) {
            let lit = quote(&s);
            let (toks, rest) = lex(&lit, false).map_err(TestCaseError::fail)?;
            prop_assert_eq!(rest, "");
            prop_assert_eq!(toks, chars(&s));
        }

        #[test]
        fn quote_round_trips_nasty(s in "[\\\\'\"%_\n\r\t\u{0}-\u{1f}\u{7f}-\u{9f}a ]{0,24}") {
            let lit = quote(&s);
            let (toks, rest) = lex(&lit, false).map_err(TestCaseError::fail)?;
            prop_assert_eq!(rest, "");
            prop_assert_eq!(toks, chars(&s));
        }

        /// In a LIKE pattern the value matches itself only: no wildcard survives.
        #[test]
        fn like_has_no_wildcards(s in "([\\\\'%_a-z\n]|\\PC){0,24}") {
            let (toks, rest) = lex(&quote_like(&s), true).map_err(TestCaseError::fail)?;
            prop_assert_eq!(rest, "");
            prop_assert_eq!(toks, chars(&s));
            let (toks, _) = lex(&like_contains(&s), true).map_err(TestCaseError::fail)?;
            prop_assert_eq!(toks.first(), Some(&Tok::AnyMany));
            prop_assert_eq!(toks.last(), Some(&Tok::AnyMany));
            prop_assert_eq!(toks.iter().filter(|t| !matches!(t, Tok::Char(_))).count(), 2);
        }

        #[test]
        fn in_list_values_stay_separate(vals in proptest::collection::vec(any::<String>(), 1..5)) {
            let list = in_list(vals.iter().map(String::as_str)).unwrap();
            // Walk the list: '(' literal (',' literal)* ')'
            let mut rest = list.strip_prefix('(').unwrap().to_string();
            for (i, v) in vals.iter().enumerate() {
                let (toks, after) = lex(&rest, false).map_err(TestCaseError::fail)?;
                prop_assert_eq!(toks, chars(v));
                rest = if i + 1 < vals.len() {
                    after.strip_prefix(',').map(str::to_string).ok_or_else(|| TestCaseError::fail("no comma"))?
                } else {
                    after
                };
            }
            prop_assert_eq!(rest, ")");
        }
    }
}
