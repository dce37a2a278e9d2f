//! Paths into the configuration document: a JSON pointer (`/sync/create_contacts`,
//! RFC 6901) or a dotted path (`sync.create_contacts`, `webhooks.sources.0.name`,
//! `webhooks.sources[0].name`); reading, setting and removing the value there;
//! and how a value given on the command line is read.

use serde_json::{Map, Value};

/// Why a path could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// The path is malformed, or it cannot be set in this document.
    Invalid(String),
    /// Nothing is at the path.
    NotFound(String),
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathError::Invalid(m) | PathError::NotFound(m) => f.write_str(m),
        }
    }
}

/// The tokens of a path; `""` (or `.`) is the whole document.
pub fn parse(path: &str) -> Result<Vec<String>, PathError> {
    let path = path.trim();
    if path.is_empty() || path == "." {
        return Ok(Vec::new());
    }
    if let Some(rest) = path.strip_prefix('/') {
        return rest.split('/').map(unescape).collect();
    }
    let mut tokens = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if part.is_empty() {
            return Err(PathError::Invalid(format!("{path:?} has an empty segment")));
        }
        if !key.is_empty() {
            tokens.push(key.to_string());
        }
        // Bounded by the length of the segment: each step consumes at least "[]".
        while !rest.is_empty() {
            let Some(close) = rest.find(']') else {
                return Err(PathError::Invalid(format!("{path:?}: '[' without ']'")));
            };
            let index = rest.get(1..close).unwrap_or_default();
            if !rest.starts_with('[') || index.is_empty() || !index.chars().all(|c| c.is_ascii_digit()) {
                return Err(PathError::Invalid(format!("{path:?}: array indexes are written [0], [1], …")));
            }
            tokens.push(index.to_string());
            rest = &rest[close + 1..];
        }
    }
    Ok(tokens)
}

fn unescape(t: &str) -> Result<String, PathError> {
    let mut out = String::with_capacity(t.len());
    let mut chars = t.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => {
                    return Err(PathError::Invalid(format!("{t:?}: '~' must be followed by 0 or 1 in a JSON pointer")));
                }
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// The JSON pointer of tokens (for messages and diffs).
pub fn pointer(tokens: &[String]) -> String {
    tokens.iter().map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1"))).collect()
}

fn index_of(token: &str, len: usize, allow_end: bool) -> Option<usize> {
    if token == "-" {
        return allow_end.then_some(len);
    }
    if token.is_empty() || !token.chars().all(|c| c.is_ascii_digit()) || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    let i: usize = token.parse().ok()?;
    if i < len || (allow_end && i == len) { Some(i) } else { None }
}

/// The value at the path, if any.
pub fn get<'a>(doc: &'a Value, tokens: &[String]) -> Option<&'a Value> {
    let mut cur = doc;
    for t in tokens {
        cur = match cur {
            Value::Object(o) => o.get(t)?,
            Value::Array(a) => a.get(index_of(t, a.len(), false)?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Set the value at the path. Missing objects on the way are created; in an
/// array, an index may replace an element or, equal to the length (or `-`),
/// append one.
pub fn set(doc: &mut Value, tokens: &[String], value: Value) -> Result<(), PathError> {
    let Some((last, parents)) = tokens.split_last() else {
        return Err(PathError::Invalid(
            "the path names the whole document: use `learnlink config import` to replace it".into(),
        ));
    };
    let mut cur = doc;
    for (depth, t) in parents.iter().enumerate() {
        let here = pointer(&tokens[..depth]);
        cur = match cur {
            Value::Object(o) => o.entry(t.clone()).or_insert_with(|| Value::Object(Map::new())),
            Value::Array(a) => {
                let len = a.len();
                let i = index_of(t, len, true).ok_or_else(|| {
                    PathError::Invalid(format!("{} has {len} element(s): no index {t}", display(&here)))
                })?;
                if i == len {
                    a.push(Value::Object(Map::new()));
                }
                &mut a[i]
            }
            other => {
                return Err(PathError::Invalid(format!(
                    "cannot set {}: {} is {}",
                    pointer(tokens),
                    display(&here),
                    kind(other)
                )));
            }
        };
    }
    let here = pointer(parents);
    match cur {
        Value::Object(o) => {
            o.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
            let len = a.len();
            let i = index_of(last, len, true).ok_or_else(|| {
                PathError::Invalid(format!("{} has {len} element(s): no index {last}", display(&here)))
            })?;
            if i == len {
                a.push(value);
            } else {
                a[i] = value;
            }
            Ok(())
        }
        other => {
            Err(PathError::Invalid(format!("cannot set {}: {} is {}", pointer(tokens), display(&here), kind(other))))
        }
    }
}

/// Remove the value at the path; returns it.
pub fn unset(doc: &mut Value, tokens: &[String]) -> Result<Value, PathError> {
    let Some((last, parents)) = tokens.split_last() else {
        return Err(PathError::Invalid("the path names the whole document, which cannot be unset".into()));
    };
    let not_found = || PathError::NotFound(format!("nothing is set at {}", pointer(tokens)));
    let mut cur = doc;
    for t in parents {
        cur = match cur {
            Value::Object(o) => o.get_mut(t).ok_or_else(not_found)?,
            Value::Array(a) => {
                let i = index_of(t, a.len(), false).ok_or_else(not_found)?;
                &mut a[i]
            }
            _ => return Err(not_found()),
        };
    }
    match cur {
        Value::Object(o) => o.shift_remove(last).ok_or_else(not_found),
        Value::Array(a) => {
            let i = index_of(last, a.len(), false).ok_or_else(not_found)?;
            Ok(a.remove(i))
        }
        _ => Err(not_found()),
    }
}

fn display(pointer: &str) -> &str {
    if pointer.is_empty() { "the document" } else { pointer }
}

/// A value from the command line: JSON when it parses as JSON (`true`, `42`,
/// `null`, `"text"`, `["a"]`, `{"k": 1}`), otherwise the text itself.
pub fn parse_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn toks(p: &str) -> Vec<String> {
        parse(p).unwrap()
    }

    #[test]
    fn dotted_paths_and_pointers_give_the_same_tokens() {
        assert_eq!(toks("sync.create_contacts"), vec!["sync", "create_contacts"]);
        assert_eq!(toks("/sync/create_contacts"), vec!["sync", "create_contacts"]);
        assert_eq!(toks("webhooks.sources.0.name"), vec!["webhooks", "sources", "0", "name"]);
        assert_eq!(toks("webhooks.sources[0].name"), vec!["webhooks", "sources", "0", "name"]);
        assert_eq!(toks("a[1][2]"), vec!["a", "1", "2"]);
        assert_eq!(toks("/a~1b/c~0d"), vec!["a/b", "c~d"]);
        assert_eq!(toks(""), Vec::<String>::new());
        assert_eq!(toks("."), Vec::<String>::new());
        assert_eq!(pointer(&toks("/a~1b/c~0d")), "/a~1b/c~0d");
        for bad in ["a..b", ".a", "a.", "a[x]", "a[1", "a[]", "/a~2"] {
            assert!(matches!(parse(bad), Err(PathError::Invalid(_))), "{bad}");
        }
    }

    #[test]
    fn set_creates_objects_replaces_and_appends() {
        let mut doc = json!({"name": "Acme", "webhooks": {"sources": [{"name": "lms", "dialect": "canonical"}]}});
        set(&mut doc, &toks("sync.create_contacts"), json!(true)).unwrap();
        assert_eq!(doc["sync"]["create_contacts"], json!(true));
        set(&mut doc, &toks("webhooks.sources[0].name"), json!("main")).unwrap();
        assert_eq!(doc["webhooks"]["sources"][0]["name"], "main");
        set(&mut doc, &toks("/webhooks/sources/1"), json!({"name": "b", "dialect": "canonical"})).unwrap();
        set(&mut doc, &toks("/webhooks/sources/-"), json!({"name": "c", "dialect": "canonical"})).unwrap();
        assert_eq!(doc["webhooks"]["sources"].as_array().map(Vec::len), Some(3));
        set(&mut doc, &toks("webhooks.sources.3.name"), json!("d")).unwrap();
        assert_eq!(doc["webhooks"]["sources"][3], json!({"name": "d"}));
        assert_eq!(get(&doc, &toks("webhooks.sources.1.name")), Some(&json!("b")));
    }

    #[test]
    fn set_refuses_what_cannot_be_set() {
        let mut doc = json!({"name": "Acme", "list": [1, 2]});
        assert!(
            matches!(set(&mut doc, &toks("name.first"), json!(1)), Err(PathError::Invalid(m)) if m.contains("/name is a string"))
        );
        assert!(
            matches!(set(&mut doc, &toks("list.5"), json!(1)), Err(PathError::Invalid(m)) if m.contains("2 element"))
        );
        assert!(matches!(set(&mut doc, &toks("list.01"), json!(1)), Err(PathError::Invalid(_))));
        assert!(matches!(set(&mut doc, &toks("list.x"), json!(1)), Err(PathError::Invalid(_))));
        assert!(matches!(set(&mut doc, &[], json!(1)), Err(PathError::Invalid(_))));
        assert_eq!(doc, json!({"name": "Acme", "list": [1, 2]}));
    }

    #[test]
    fn unset_removes_keys_and_elements_and_reports_missing() {
        let mut doc = json!({"a": {"b": 1, "c": 2}, "l": [1, 2, 3]});
        assert_eq!(unset(&mut doc, &toks("a.b")).unwrap(), json!(1));
        assert_eq!(unset(&mut doc, &toks("l[1]")).unwrap(), json!(2));
        assert_eq!(doc, json!({"a": {"c": 2}, "l": [1, 3]}));
        assert!(matches!(unset(&mut doc, &toks("a.b")), Err(PathError::NotFound(_))));
        assert!(matches!(unset(&mut doc, &toks("x.y")), Err(PathError::NotFound(_))));
        assert!(matches!(unset(&mut doc, &toks("l.7")), Err(PathError::NotFound(_))));
        assert!(matches!(unset(&mut doc, &[]), Err(PathError::Invalid(_))));
    }

    #[test]
    fn get_follows_objects_and_arrays() {
        let doc = json!({"a": [{"b": "x"}]});
        assert_eq!(get(&doc, &toks("a.0.b")), Some(&json!("x")));
        assert_eq!(get(&doc, &toks("a.1.b")), None);
        assert_eq!(get(&doc, &toks("a.0.b.c")), None);
        assert_eq!(get(&doc, &[]), Some(&doc));
    }

    #[test]
    fn values_are_json_or_text() {
        assert_eq!(parse_value("true"), json!(true));
        assert_eq!(parse_value("42"), json!(42));
        assert_eq!(parse_value("0.5"), json!(0.5));
        assert_eq!(parse_value("null"), json!(null));
        assert_eq!(parse_value("\"42\""), json!("42"));
        assert_eq!(parse_value("[\"a.com\"]"), json!(["a.com"]));
        assert_eq!(parse_value("{\"mode\": \"off\"}"), json!({"mode": "off"}));
        assert_eq!(parse_value("rate(1 day)"), json!("rate(1 day)"));
        assert_eq!(parse_value("Acme Corp"), json!("Acme Corp"));
        assert_eq!(parse_value(""), json!(""));
        assert_eq!(parse_value("{broken"), json!("{broken"));
    }
}
