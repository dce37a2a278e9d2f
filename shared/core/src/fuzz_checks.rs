//! The invariants the fuzz targets of `fuzz/` check (`make fuzz`, cargo
//! fuzz). Each check takes raw bytes and panics when the core breaks a
//! promise; the fuzz targets only call them, and the tests below replay the
//! committed seed corpus `fuzz/corpus/<target>/` through the same checks, so
//! `cargo nextest run` covers the corpus on stable. Built for the core's
//! own tests and with the `fuzzing` feature (the fuzz crate turns it on).
//!
//! | target             | input                                               | promise checked |
//! |--------------------|-----------------------------------------------------|-----------------|
//! | `webhook_dialects` | first byte: the dialect; the rest: the body          | no panic; 1..=max events with checked ids, consistent payloads; deterministic; canonical events re-encode to themselves |
//! | `soql_builder`     | UTF-8 text (lossy); `\u{1e}` and `\u{1f}` split lists | every literal reads back as exactly its value and ends where it should; queries carry exactly their values, within the length limit |
//! | `csv_writer`       | raw bytes, and rows split by `\u{1e}` / `\u{1f}`        | the reader never panics, reads the same whatever the chunking; written rows read back as written |
//! | `config_parser`    | a JSON document; else the first byte picks a string of a valid one, the rest replaces it | no panic; a valid document is stored and read back to the same configuration, re-serialises, and its schedule can be evaluated; diffs name exactly what differs |

use crate::config::{self, ChangeOp, TenantConfig};
use crate::csv;
use crate::matching::{self, MAX_SOQL_CHARS};
use crate::soql;
use crate::webhook::{self, Dialect, EventPayload, LmsEvent};
use serde_json::{Value, json};

/// A check: panics when the input shows a broken promise.
pub type Check = fn(&[u8]);

/// Every target: its name (the file under `fuzz/fuzz_targets/` and the
/// corpus directory) and its check.
pub const TARGETS: [(&str, Check); 4] = [
    ("webhook_dialects", webhook_dialects),
    ("soql_builder", soql_builder),
    ("csv_writer", csv_writer),
    ("config_parser", config_parser),
];

/// Separates the two lists (`soql_builder`) or the rows (`csv_writer`).
const RS: char = '\u{1e}';
/// Separates the items of a list or the fields of a row.
const US: char = '\u{1f}';

// ------------------------------------------------------------------ webhooks

/// The dialect a first byte picks: the initial of its name (`c`, `t`, `n`,
/// `d`, `s`, so seed files stay readable), any other byte modulo 5.
pub fn dialect_of(b: u8) -> Dialect {
    match b {
        b'c' => Dialect::Canonical,
        b't' => Dialect::Thinkific,
        b'n' => Dialect::Northpass,
        b'd' => Dialect::Docebo,
        b's' => Dialect::Skilljar,
        other => Dialect::ALL[usize::from(other) % Dialect::ALL.len()],
    }
}

/// `webhook::parse` of any dialect on any body.
pub fn webhook_dialects(data: &[u8]) {
    let Some((&first, body)) = data.split_first() else { return };
    let dialect = dialect_of(first);
    match webhook::parse(dialect, body) {
        Err(r) => {
            if body.len() > webhook::MAX_BODY_BYTES {
                assert_eq!((r.status, r.code), (413, "body_too_large"));
            } else {
                assert_eq!(r.status, 400, "{dialect}: {r:?}");
                assert!(matches!(r.code, "malformed_body" | "unknown_event_type"), "{dialect}: {r:?}");
            }
            assert!(!r.message.is_empty(), "{dialect}: a rejection names its problem");
        }
        Ok(events) => check_events(dialect, body, &events),
    }
}

/// An id as `check_id` lets it through: not blank, no control character,
/// at most `max` bytes.
fn assert_id(what: &str, id: &str, max: usize) {
    assert!(!id.trim().is_empty(), "{what} {id:?} is blank");
    assert!(id.len() <= max, "{what} is {} bytes long (limit {max}): {id:?}", id.len());
    assert!(!id.chars().any(char::is_control), "{what} {id:?} has a control character");
}

/// The longest id learnlink keeps (Salesforce external ids, DynamoDB keys).
const MAX_ID: usize = 255;

fn check_events(dialect: Dialect, body: &[u8], events: &[LmsEvent]) {
    let max_events = match dialect {
        Dialect::Canonical => webhook::MAX_EVENTS_PER_DELIVERY,
        Dialect::Docebo => webhook::docebo::MAX_PAYLOADS,
        Dialect::Thinkific | Dialect::Northpass | Dialect::Skilljar => 1,
    };
    assert!((1..=max_events).contains(&events.len()), "{dialect}: {} events", events.len());
    for ev in events {
        // Docebo's grouped events are `<message_id>#<index>`, index < 25.
        let id_max = if dialect == Dialect::Docebo { MAX_ID + "#24".len() } else { MAX_ID };
        assert_id("the event id", &ev.id, id_max);
        match &ev.payload {
            EventPayload::Enrollment(e) => {
                assert!(ev.kind.is_enrollment(), "{dialect}: {:?} carries an enrollment", ev.kind);
                assert_id("the enrollment id", &e.id, MAX_ID);
                assert_id("the learner id", &e.learner_id, MAX_ID);
                assert_id("the course id", &e.course_id, MAX_ID);
                if let Some(p) = e.progress_pct {
                    assert!((0.0..=100.0).contains(&p), "{dialect}: progress {p}");
                }
                if let Some(s) = e.score {
                    assert!(s.is_finite(), "{dialect}: score {s}");
                }
                // The vendor dialects keep completed_at for completed enrollments only.
                if matches!(dialect, Dialect::Thinkific | Dialect::Docebo | Dialect::Skilljar)
                    && e.completed_at.is_some()
                {
                    assert_eq!(e.status, crate::model::EnrollmentStatus::Completed, "{dialect}");
                }
            }
            EventPayload::Certification(c) => {
                assert_eq!(dialect, Dialect::Canonical, "only the canonical dialect carries certifications");
                assert!(!ev.kind.is_enrollment(), "{:?} carries a certification", ev.kind);
                assert_id("the certification id", &c.id, MAX_ID);
                assert_id("the learner id", &c.learner_id, MAX_ID);
                assert!(!c.name.trim().is_empty(), "a certification has a name");
            }
        }
    }
    if dialect == Dialect::Docebo {
        let ids: std::collections::HashSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids.len(), events.len(), "Docebo event ids are distinct within a delivery");
    }
    // A redelivery is recognised: the same body gives the same events.
    assert_eq!(webhook::parse(dialect, body).as_deref(), Ok(events), "{dialect}: parse is deterministic");
    if dialect == Dialect::Canonical {
        // learnlink's own format: the events, written back, are read as themselves.
        let again = webhook::parse(Dialect::Canonical, &canonical_body(events));
        assert_eq!(again.as_deref(), Ok(events), "canonical events re-encode to themselves");
    }
}

/// The canonical delivery carrying `events`.
fn canonical_body(events: &[LmsEvent]) -> Vec<u8> {
    let wire: Vec<Value> = events
        .iter()
        .map(|ev| {
            let data = match &ev.payload {
                EventPayload::Enrollment(e) => serde_json::to_value(e),
                EventPayload::Certification(c) => serde_json::to_value(c),
            };
            let occurred_at = ev.occurred_at.format(&time::format_description::well_known::Rfc3339);
            match (data, occurred_at) {
                (Ok(data), Ok(at)) => json!({"id": ev.id, "type": ev.kind.as_str(), "occurred_at": at, "data": data}),
                (data, at) => panic!("a parsed event does not serialise: {data:?} {at:?}"),
            }
        })
        .collect();
    json!({ "events": wire }).to_string().into_bytes()
}

// ---------------------------------------------------------------------- SOQL

/// One token of a SOQL string literal as Salesforce reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tok {
    Char(char),
    /// `_` in a LIKE pattern.
    AnyOne,
    /// `%` in a LIKE pattern.
    AnyMany,
}

/// Read the string literal at the start of `s` as Salesforce's lexer does
/// (escapes `\'` `\"` `\\` `\n` `\r` `\t` `\b` `\f` `\uXXXX`, and `\%` `\_`
/// in a LIKE pattern, where bare `%` and `_` are wildcards): its tokens and
/// what follows the closing quote. Stricter than Salesforce on one point: a
/// raw control character is refused (learnlink escapes them all).
pub fn read_literal(s: &str, like: bool) -> Result<(Vec<Tok>, &str), String> {
    let mut it = s.char_indices();
    if it.next().map(|(_, c)| c) != Some('\'') {
        return Err("no opening quote".into());
    }
    let mut toks = Vec::new();
    while let Some((i, c)) = it.next() {
        let tok = match c {
            '\'' => return Ok((toks, &s[i + 1..])),
            '\\' => {
                let (_, e) = it.next().ok_or("a backslash ends the literal")?;
                Tok::Char(match e {
                    'n' | 'N' => '\n',
                    'r' | 'R' => '\r',
                    't' | 'T' => '\t',
                    'b' | 'B' => '\u{8}',
                    'f' | 'F' => '\u{c}',
                    '\'' | '"' | '\\' => e,
                    '%' | '_' if like => e,
                    'u' => {
                        let hex: String = it.by_ref().take(4).map(|(_, h)| h).collect();
                        if hex.len() != 4 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                            return Err(format!("\\u takes four hexadecimal digits, got {hex:?}"));
                        }
                        let n = u32::from_str_radix(&hex, 16).map_err(|e| e.to_string())?;
                        char::from_u32(n).ok_or(format!("\\u{hex} is not a character"))?
                    }
                    other => return Err(format!("invalid escape \\{other}")),
                })
            }
            '%' if like => Tok::AnyMany,
            '_' if like => Tok::AnyOne,
            c if c.is_control() => return Err(format!("a raw control character U+{:04X}", c as u32)),
            c => Tok::Char(c),
        };
        toks.push(tok);
    }
    Err("no closing quote".into())
}

fn chars(s: &str) -> Vec<Tok> {
    s.chars().map(Tok::Char).collect()
}

/// `literal` is one literal meaning exactly `value` and nothing follows it:
/// no unescaped quote inside, no wildcard in a LIKE pattern.
pub fn assert_literal(value: &str, literal: &str, like: bool) {
    match read_literal(literal, like) {
        Ok((toks, rest)) => {
            assert_eq!(rest, "", "{literal:?} ends early: an unescaped quote");
            assert_eq!(toks, chars(value), "{literal:?} does not read back as {value:?}");
        }
        Err(e) => panic!("{literal:?} (for {value:?}) is not a SOQL literal: {e}"),
    }
}

/// `'a','b',...)`-style list after the `(`: the values and what follows `)`.
fn read_list(s: &str) -> (Vec<String>, &str) {
    let Some(mut rest) = s.strip_prefix('(') else { panic!("an IN list starts with '(': {s:?}") };
    let mut values = Vec::new();
    loop {
        let (toks, after) = match read_literal(rest, false) {
            Ok(x) => x,
            Err(e) => panic!("an IN list item is not a literal ({e}): {rest:?}"),
        };
        let value: String = toks
            .iter()
            .map(|t| match t {
                Tok::Char(c) => *c,
                other => panic!("{other:?} outside a LIKE pattern"),
            })
            .collect();
        values.push(value);
        if let Some(after) = after.strip_prefix(',') {
            rest = after;
        } else if let Some(after) = after.strip_prefix(')') {
            return (values, after);
        } else {
            panic!("an IN list item is followed by {after:?}");
        }
    }
}

/// The `name IN (...)` parts of a `WHERE` joined by ` OR `, after `head`.
fn read_in_parts(query: &str, head: &str) -> Vec<(String, Vec<String>)> {
    let Some(mut rest) = query.strip_prefix(head) else { panic!("{query:?} does not start with {head:?}") };
    let mut parts = Vec::new();
    loop {
        let Some((name, after)) = rest.split_once(" IN ") else { panic!("no ` IN ` in {rest:?}") };
        assert!(soql::identifier(name).is_ok(), "{name:?} is not a field name");
        let (values, after) = read_list(after);
        parts.push((name.to_string(), values));
        if after.is_empty() {
            return parts;
        }
        let Some(after) = after.strip_prefix(" OR ") else { panic!("{after:?} after an IN list") };
        rest = after;
    }
}

/// Splits `s` into items at [`US`]; none for an empty `s`.
fn items(s: &str) -> Vec<&str> {
    if s.is_empty() { Vec::new() } else { s.split(US).collect() }
}

/// A matching field (`sync.matching_field`) as long as the schema allows:
/// 80 + 1 + 80 characters.
const LONGEST_FIELD: &str = concat!(
    "Employee_Relationship_Name_Long_Enough_To_Reach_The_Limit_Of_Eighty_LettersXy__r",
    ".",
    "Employee_Number_Field_Name_Long_Enough_To_Reach_The_Limit_Of_Eighty_LettersXy__c"
);

/// The SOQL builders on any text.
pub fn soql_builder(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let s = text.as_ref();

    let q = soql::quote(s);
    assert_literal(s, &q, false);
    assert_eq!(q, format!("'{}'", soql::escape(s)));
    let ql = soql::quote_like(s);
    assert_literal(s, &ql, true);
    assert_eq!(ql, format!("'{}'", soql::escape_like(s)));
    let mut prefix = chars(s);
    prefix.push(Tok::AnyMany);
    assert_eq!(read_literal(&soql::like_prefix(s), true), Ok((prefix, "")));
    let mut contains = vec![Tok::AnyMany];
    contains.extend(chars(s));
    contains.push(Tok::AnyMany);
    assert_eq!(read_literal(&soql::like_contains(s), true), Ok((contains, "")));
    if soql::identifier(s).is_ok() {
        // Names go into queries as they are: nothing but a name passes.
        assert!(!s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.'), "{s:?}");
        assert!(!s.starts_with('.') && !s.ends_with('.') && !s.contains(".."), "{s:?}");
    }

    let (a, b) = s.split_once(RS).unwrap_or((s, ""));
    let (ids, values) = (items(a), items(b));
    let all: Vec<&str> = ids.iter().chain(&values).copied().collect();
    match soql::in_list(all.iter().copied()) {
        Ok(list) => {
            let (got, rest) = read_list(&list);
            assert_eq!((got, rest), (all.iter().map(|v| v.to_string()).collect(), ""));
        }
        Err(e) => assert!(all.is_empty() && e == soql::SoqlError::EmptyInList, "{e}"),
    }

    const FIELDS: [&str; 6] =
        ["Email", "LMS_Learner_Id__c", "ns__Employee_Number__c", "Contact__r.Email", "id", LONGEST_FIELD];
    let field = FIELDS[data.len() % FIELDS.len()];
    match matching::contact_queries(field, &ids, &values) {
        Ok(queries) => check_contact_queries(field, &ids, &values, &queries),
        Err(e) => panic!("contact_queries({field:?}): {e}"),
    }
    match matching::account_queries(&all) {
        Ok(queries) => {
            let head = "SELECT Id, Name FROM Account WHERE ";
            let mut got = Vec::new();
            for q in &queries {
                let parts = read_in_parts(q, head);
                assert_eq!(parts.len(), 1, "{q:?}");
                for (name, vals) in parts {
                    assert_eq!(name, "Name");
                    assert_query_len(q, vals.len());
                    got.extend(vals);
                }
            }
            assert_eq!(got, all, "the Account queries carry exactly the names, in order");
        }
        Err(e) => panic!("account_queries: {e}"),
    }
}

/// A statement is at most [`MAX_SOQL_CHARS`] long unless a single value
/// alone is longer.
fn assert_query_len(q: &str, values: usize) {
    if values > 1 {
        assert!(q.len() <= MAX_SOQL_CHARS, "a query of {values} values is {} > {MAX_SOQL_CHARS} chars", q.len());
    }
}

fn check_contact_queries(field: &str, ids: &[&str], values: &[&str], queries: &[String]) {
    let ext = crate::sync::CONTACT_EXTERNAL_ID;
    let head = if field.eq_ignore_ascii_case("Id") || field.eq_ignore_ascii_case(ext) {
        format!("SELECT Id, AccountId, {ext} FROM Contact WHERE ")
    } else {
        format!("SELECT Id, AccountId, {ext}, {field} FROM Contact WHERE ")
    };
    let all: Vec<&str> = ids.iter().chain(values).copied().collect();
    let mut at = 0;
    for q in queries {
        let parts = read_in_parts(q, &head);
        assert!((1..=2).contains(&parts.len()), "{q:?}");
        let mut n = 0;
        for (name, vals) in &parts {
            assert!(!vals.is_empty(), "{q:?}");
            let end = at + vals.len();
            assert!(end <= all.len(), "{q:?} carries more values than given");
            assert_eq!(vals, &all[at..end], "{q:?}");
            // A part holds learner ids (by the external id) or values (by the field), never both.
            let expected = if end <= ids.len() {
                ext
            } else if at >= ids.len() {
                field
            } else {
                panic!("{q:?}: a part mixes learner ids and matching values")
            };
            assert_eq!(name, expected, "{q:?}");
            at = end;
            n += vals.len();
        }
        assert_query_len(q, n);
    }
    assert_eq!(at, all.len(), "the Contact queries carry every id and value");
}

// ----------------------------------------------------------------------- CSV

fn read_in_chunks(data: &[u8], cuts: &[usize]) -> Result<Vec<Vec<String>>, csv::CsvError> {
    let mut reader = csv::CsvReader::new();
    let mut rows = Vec::new();
    let mut at = 0;
    for &c in cuts {
        let c = c.clamp(at, data.len());
        reader.push(&data[at..c], &mut rows)?;
        at = c;
    }
    reader.push(&data[at..], &mut rows)?;
    reader.finish(&mut rows)?;
    Ok(rows)
}

fn write_rows(rows: &[Vec<String>]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in rows {
        csv::write_row(&mut out, r.iter().map(String::as_str));
    }
    out
}

/// Rows CSV can carry: a row of one empty field is a blank line, and a
/// byte order mark opening the file is not data.
fn representable(rows: &[Vec<String>]) -> bool {
    rows.iter().all(|r| !(r.is_empty() || (r.len() == 1 && r[0].is_empty())))
        && !rows.first().and_then(|r| r.first()).is_some_and(|f| f.starts_with('\u{feff}'))
}

/// The CSV reader on any bytes, and the writer on any rows.
pub fn csv_writer(data: &[u8]) {
    // Any bytes: the reader never panics and does not care how they are cut.
    let whole = csv::parse_all(data);
    let cut = data.first().map_or(0, |&b| usize::from(b) * data.len() / 256);
    assert_eq!(read_in_chunks(data, &[cut]), whole, "cut at {cut}");
    let every_byte: Vec<usize> = (1..data.len()).collect();
    assert_eq!(read_in_chunks(data, &every_byte), whole, "byte by byte");
    if let Ok(rows) = &whole {
        assert!(rows.iter().all(|r| !r.is_empty()), "a record has at least one field");
        if representable(rows) {
            assert_eq!(csv::parse_all(&write_rows(rows)).as_ref(), Ok(rows), "read rows write back as themselves");
        }
    }

    // Rows made of the bytes: what is written reads back as written.
    let text = String::from_utf8_lossy(data);
    let rows: Vec<Vec<String>> = text.split(RS).map(|r| r.split(US).map(str::to_string).collect()).collect();
    for f in rows.iter().flatten() {
        let mut out = Vec::new();
        csv::write_field(&mut out, f);
        assert_eq!(out.len(), csv::field_len(f), "field_len of {f:?}");
    }
    let written = write_rows(&rows);
    let read = csv::parse_all(&written);
    assert!(read.is_ok(), "the writer's output is valid CSV: {read:?}");
    if representable(&rows) {
        assert_eq!(read.as_ref(), Ok(&rows), "written rows read back");
        let cut = usize::from(data.first().copied().unwrap_or(0)) * written.len() / 256;
        assert_eq!(read_in_chunks(&written, &[cut]).as_ref(), Ok(&rows), "written rows read back, cut at {cut}");
    }
}

// -------------------------------------------------------------------- config

/// A valid document using every section; text is spliced into its strings.
const TEMPLATE: &str = r#"{
  "name": "Acme Academy",
  "paused": false,
  "salesforce": {"environment": {"my_domain": "https://acme.my.salesforce.com"}, "client_id": "3MVG9"},
  "lms": {"base_url": "https://lms.acme.com/api", "api_key": "lms-key-0123456789"},
  "webhooks": {"sources": [{"name": "lms", "dialect": "canonical", "secrets": ["0123456789abcdef0123"]},
                           {"name": "dc", "dialect": "docebo"}]},
  "sync": {
    "domain_filter": {"mode": "allow", "domains": ["acme.com", "*.acme.io"]},
    "department_scope": {"department_id": "D7", "include_sub_departments": true},
    "matching_field": "Email",
    "create_contacts": true,
    "account_placement": {"rule": "learner_field", "learner_field": "company"},
    "mappings": {"enrollment": [{"target": "Course_Title__c", "primary": "course_title", "secondary": "course_id",
                                 "transforms": [{"op": "trim"}, {"op": "value_table", "table": {"a": "b"}, "default": "x"},
                                                {"op": "date_format", "format": "%Y-%m-%d"}]}]}
  },
  "import": {
    "source": "hris",
    "hris": {"base_url": "https://hris.acme.com", "api_key": "hris-key-0123", "account_token": "hris-token-0123"},
    "schedule": "cron(0 3 * * ? *)", "lookback_minutes": 5,
    "mappings": [{"target": "email", "primary": "Email", "transforms": [{"op": "lowercase"}]}],
    "rules": {"combine": "any", "action": "skip", "conditions": [
      {"field": "CompanyName", "operator": "contains", "value": "SkyPrep"},
      {"field": "Department", "operator": "in", "value": ["Ops", "HR"]},
      {"field": "Title", "operator": "is_blank"}]},
    "termination_action": "disable_login", "deactivate_missing": true,
    "group_sync": {"enabled": true, "field": "Department", "remove_missing": true},
    "welcome_email": true
  },
  "backfill": {"bulk_threshold": 2000, "shard_size": 10000, "kill_switch": true, "relink_overlap_minutes": 60},
  "api_budget": {"max_share_of_remaining": 0.5}
}"#;

/// The strings of [`TEMPLATE`] text is spliced into.
const SPLICE_AT: [&str; 14] = [
    "/name",
    "/salesforce/client_id",
    "/salesforce/environment/my_domain",
    "/lms/base_url",
    "/webhooks/sources/0/name",
    "/webhooks/sources/0/secrets/0",
    "/sync/domain_filter/domains/0",
    "/sync/matching_field",
    "/sync/account_placement/learner_field",
    "/sync/mappings/enrollment/0/transforms/2/format",
    "/import/schedule",
    "/import/mappings/0/primary",
    "/import/rules/conditions/0/value",
    "/import/group_sync/field",
];

/// The index into [`SPLICE_AT`] a first byte picks.
pub fn splice_index(b: u8) -> usize {
    match b {
        b'a'..=b'z' if usize::from(b - b'a') < SPLICE_AT.len() => usize::from(b - b'a'),
        other => usize::from(other) % SPLICE_AT.len(),
    }
}

fn template() -> Value {
    match serde_json::from_str(TEMPLATE) {
        Ok(v) => v,
        Err(e) => panic!("the template is not JSON: {e}"),
    }
}

/// Tenant configuration validation, storage and diffs on any document.
pub fn config_parser(data: &[u8]) {
    let template = template();
    match serde_json::from_slice::<Value>(data) {
        Ok(doc) => {
            check_document(&doc);
            check_diff(&doc, &template);
            check_diff(&template, &doc);
            if let Value::Object(m) = &doc {
                // Its sections over the valid document: reaches deeper.
                let mut merged = template.clone();
                if let Value::Object(t) = &mut merged {
                    t.extend(m.clone());
                }
                check_document(&merged);
            }
            if let Value::Array(pair) = &doc
                && let [a, b] = pair.as_slice()
            {
                check_diff(a, b);
                check_diff(b, a);
            }
        }
        Err(_) => {
            // Not JSON: the first byte picks a string of the template (`a` the
            // first, `b` the second, …, any other byte modulo their number),
            // the rest replaces it.
            let Some((&first, rest)) = data.split_first() else { return };
            let at = SPLICE_AT[splice_index(first)];
            let mut doc = template;
            match doc.pointer_mut(at) {
                Some(v) => *v = Value::String(String::from_utf8_lossy(rest).into_owned()),
                None => panic!("the template has no {at}"),
            }
            check_document(&doc);
        }
    }
}

/// The configuration without what is never stored.
fn without_write_only(c: &TenantConfig) -> TenantConfig {
    let mut c = c.clone();
    for s in &mut c.webhooks.sources {
        s.secrets = None;
    }
    if let Some(l) = &mut c.lms {
        l.api_key = None;
    }
    if let Some(h) = &mut c.import.hris {
        h.api_key = None;
        h.account_token = None;
    }
    c
}

fn check_document(doc: &Value) {
    // What the admin API does with any body: never panics.
    let (no_key, _) = config::strip_lms_key(doc);
    let (stored, _) = config::strip_secrets(&no_key);
    let _ = config::hris_credentials(doc);
    let config = match config::validate(doc) {
        Err(violations) => {
            assert!(!violations.is_empty(), "an invalid document names a violation");
            for v in &violations {
                assert!(v.path.is_empty() || v.path.starts_with('/'), "{v:?} is not a JSON pointer");
                assert!(!v.message.is_empty(), "{v:?}");
            }
            return;
        }
        Ok(c) => c,
    };
    assert!(config.check().is_empty(), "a valid configuration passes its own checks");
    let expected = without_write_only(&config);

    // Stored without its secrets, read back as the functions read it.
    for ch in config::diff(doc, &stored) {
        let last = ch.path.rsplit('/').next().unwrap_or_default();
        assert!(
            ch.op == ChangeOp::Removed && matches!(last, "secrets" | "api_key" | "account_token"),
            "storing removes only write-only members: {ch:?}"
        );
    }
    match config::validate(&stored) {
        Ok(c) => assert_eq!(c, expected, "the stored document validates to the same configuration"),
        Err(v) => panic!("the stored form of a valid document is invalid: {v:?}"),
    }
    let at = time::macros::datetime!(2026-01-01 00:00:00 UTC);
    let tenant_id = match crate::model::TenantId::parse("acme") {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    let sc = crate::ports::StoredConfig { tenant: tenant_id, version: 1, created_at: at, changed_at: at, doc: stored };
    let tenant = match crate::tenant::Tenant::from_stored(&sc) {
        Ok(t) => t,
        Err(e) => panic!("a stored valid document does not load: {e}"),
    };

    // Re-serialised, the typed configuration is valid and reads back equal.
    match serde_json::to_value(&config).map(|v| config::validate(&v)) {
        Ok(Ok(c)) => assert_eq!(c, expected, "the configuration re-serialises to itself"),
        other => panic!("a valid configuration does not re-serialise: {other:?}"),
    }

    // What the functions compute from it.
    let share = tenant.api_budget.policy().max_share_percent;
    assert!((1..=100).contains(&share), "{share}");
    let _ = crate::import::soql_fields(&tenant.import, crate::import::Source::SalesforceContact);
    check_schedule(tenant.import.schedule());
}

/// A valid schedule can be evaluated: backfill-fanout asks every tenant's
/// schedule for its next firing after the last run.
fn check_schedule(expr: &str) {
    let schedule = match crate::schedule::Schedule::parse(expr) {
        Ok(s) => s,
        Err(e) => panic!("a valid configuration's schedule does not parse: {e}"),
    };
    let created = time::macros::datetime!(2024-02-29 12:34:56 UTC);
    for since in [created, time::macros::datetime!(2026-11-23 10:00:00 UTC)] {
        if let Some(next) = schedule.next_after(created, since) {
            assert!(next > since, "{expr}: next firing {next} is not after {since}");
        }
    }
    if let crate::schedule::Schedule::Rate(d) = schedule {
        assert!(d.is_positive(), "{expr}: a rate of {d}");
    }
}

/// A diff names exactly what differs, at JSON pointers that resolve.
fn check_diff(a: &Value, b: &Value) {
    let d = config::diff(a, b);
    assert_eq!(d.is_empty(), a == b, "a diff is empty exactly when the documents are equal");
    let mut paths = std::collections::HashSet::new();
    for ch in &d {
        assert!(paths.insert(ch.path.as_str()), "{} is named twice", ch.path);
        let (in_a, in_b) = (a.pointer(&ch.path), b.pointer(&ch.path));
        match ch.op {
            ChangeOp::Removed => {
                assert_eq!((in_a, in_b), (ch.from.as_ref(), None), "{ch:?}");
                assert!(ch.to.is_none());
            }
            ChangeOp::Added => {
                assert_eq!((in_a, in_b), (None, ch.to.as_ref()), "{ch:?}");
                assert!(ch.from.is_none());
            }
            ChangeOp::Changed => {
                assert_eq!((in_a, in_b), (ch.from.as_ref(), ch.to.as_ref()), "{ch:?}");
                assert_ne!(ch.from, ch.to, "{ch:?}");
            }
        }
    }
    // The other way round: the same paths, added and removed swapped.
    let mut back: Vec<(String, ChangeOp)> = config::diff(b, a).into_iter().map(|c| (c.path, c.op)).collect();
    let mut forth: Vec<(String, ChangeOp)> = d
        .into_iter()
        .map(|c| {
            let op = match c.op {
                ChangeOp::Added => ChangeOp::Removed,
                ChangeOp::Removed => ChangeOp::Added,
                ChangeOp::Changed => ChangeOp::Changed,
            };
            (c.path, op)
        })
        .collect();
    back.sort_by(|x, y| x.0.cmp(&y.0));
    forth.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(back, forth, "diff(b, a) is diff(a, b) reversed");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn fuzz_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
    }

    /// Every file of `fuzz/corpus/<target>/` through the target's check; a
    /// missing or empty corpus fails.
    fn replay(target: &str) {
        let Some((_, check)) = TARGETS.iter().find(|(name, _)| *name == target) else { panic!("no target {target}") };
        let dir = fuzz_dir().join("corpus").join(target);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
        files.sort();
        assert!(!files.is_empty(), "{} has no seed", dir.display());
        for f in &files {
            let data = std::fs::read(f).unwrap();
            if std::panic::catch_unwind(|| check(&data)).is_err() {
                panic!("{} breaks the {target} check (see the panic above)", f.display());
            }
        }
    }

    #[test]
    fn fuzz_corpus_webhook_dialects() {
        replay("webhook_dialects");
    }

    #[test]
    fn fuzz_corpus_soql_builder() {
        replay("soql_builder");
    }

    #[test]
    fn fuzz_corpus_csv_writer() {
        replay("csv_writer");
    }

    #[test]
    fn fuzz_corpus_config_parser() {
        replay("config_parser");
    }

    #[test]
    fn fuzz_targets_and_checks_agree() {
        let dir = fuzz_dir().join("fuzz_targets");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let mut names: Vec<String> = TARGETS.iter().map(|(n, _)| format!("{n}.rs")).collect();
        names.sort();
        assert_eq!(files, names);
        for (name, _) in TARGETS {
            let src = std::fs::read_to_string(dir.join(format!("{name}.rs"))).unwrap();
            assert!(src.contains(&format!("fuzz_checks::{name}(")), "{name}.rs calls its check");
        }
    }

    #[test]
    fn fuzz_literal_reader_reads_salesforce_escapes() {
        let lit = r#"'a\'b\"c\\d\ne\rf\tg\bh\fi\u00e9\N%_' rest"#;
        let (toks, rest) = read_literal(lit, false).unwrap();
        assert_eq!(toks, chars("a'b\"c\\d\ne\rf\tg\u{8}h\u{c}ié\n%_"));
        assert_eq!(rest, " rest");
        let (toks, _) = read_literal(r"'\%\_%_'", true).unwrap();
        assert_eq!(toks, [Tok::Char('%'), Tok::Char('_'), Tok::AnyMany, Tok::AnyOne]);
        for bad in ["abc", "'open", r"'\q'", r"'\u12'", "'raw\nline'", r"'\%'", r"'\'"] {
            assert!(read_literal(bad, false).is_err(), "{bad:?}");
        }
    }

    #[test]
    #[should_panic(expected = "ends early")]
    fn fuzz_literal_check_catches_an_unescaped_quote() {
        assert_literal("O'Neil", "'O'Neil'", false);
    }

    #[test]
    #[should_panic(expected = "does not read back")]
    fn fuzz_literal_check_catches_a_wildcard() {
        assert_literal("100%", "'100%'", true);
    }

    #[test]
    fn fuzz_dialect_byte() {
        assert_eq!(
            [b'c', b't', b'n', b'd', b's'].map(dialect_of),
            [Dialect::Canonical, Dialect::Thinkific, Dialect::Northpass, Dialect::Docebo, Dialect::Skilljar]
        );
        for b in 0..=255u8 {
            let _ = dialect_of(b);
        }
    }

    #[test]
    #[should_panic(expected = "is blank")]
    fn fuzz_id_check_catches_a_blank_id() {
        assert_id("the id", " ", MAX_ID);
    }

    #[test]
    fn fuzz_template_is_valid_and_every_splice_point_exists() {
        let t = template();
        assert!(config::validate(&t).is_ok(), "{:?}", config::validate(&t));
        for at in SPLICE_AT {
            assert!(t.pointer(at).is_some_and(Value::is_string), "{at}");
        }
        assert_eq!(SPLICE_AT[splice_index(b'k')], "/import/schedule");
        let mut long = t.clone();
        long["sync"]["matching_field"] = json!(LONGEST_FIELD);
        assert!(config::validate(&long).is_ok(), "the longest matching field is valid");
        long["sync"]["matching_field"] = json!(format!("{LONGEST_FIELD}x"));
        assert!(config::validate(&long).is_err(), "a longer one is not");
    }
}
