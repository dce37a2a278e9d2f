//! Reading vendor JSON with the path of every problem: each accessor names
//! the field it failed on (`data.attributes.progress: expected a number`),
//! so a 400 tells the LMS administrator exactly what to fix. Also the
//! signature helpers the signed vendor dialects share (constant time).

use super::Rejection;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

type HmacSha256 = Hmac<Sha256>;

/// A JSON value and the path it was reached by (`""` for the root); absent
/// and `null` members are both "not present".
pub(crate) struct Node<'a> {
    pub path: String,
    pub value: Option<&'a Value>,
}

pub(crate) fn root(v: &Value) -> Node<'_> {
    Node { path: String::new(), value: Some(v) }
}

impl<'a> Node<'a> {
    fn child_path(&self, name: &str) -> String {
        if self.path.is_empty() { name.to_string() } else { format!("{}.{name}", self.path) }
    }

    /// The member `name` of this object (absent when this is not an object).
    pub fn field(&self, name: &str) -> Node<'a> {
        Node { path: self.child_path(name), value: self.value.and_then(|v| v.get(name)).filter(|v| !v.is_null()) }
    }

    /// The first present of several member names (vendors rename fields).
    pub fn field_any(&self, names: &[&str]) -> Node<'a> {
        for n in names {
            let f = self.field(n);
            if f.value.is_some() {
                return f;
            }
        }
        self.field(names.first().copied().unwrap_or(""))
    }

    pub fn is_present(&self) -> bool {
        self.value.is_some()
    }

    pub fn err(&self, what: impl std::fmt::Display) -> Rejection {
        let path = if self.path.is_empty() { "the body" } else { self.path.as_str() };
        Rejection::malformed(format!("{path}: {what}"))
    }

    /// This node must be an object.
    pub fn object(&self) -> Result<&'a serde_json::Map<String, Value>, Rejection> {
        match self.value {
            Some(Value::Object(m)) => Ok(m),
            None => Err(self.missing()),
            Some(_) => Err(self.err("expected an object")),
        }
    }

    /// This node must be an array.
    pub fn array(&self) -> Result<Vec<Node<'a>>, Rejection> {
        match self.value {
            Some(Value::Array(items)) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, v)| Node { path: format!("{}[{i}]", self.path), value: Some(v) })
                .collect()),
            None => Err(self.missing()),
            Some(_) => Err(self.err("expected an array")),
        }
    }

    pub fn missing(&self) -> Rejection {
        self.err("is missing")
    }

    /// A required string.
    pub fn str(&self) -> Result<&'a str, Rejection> {
        self.opt_str()?.ok_or_else(|| self.missing())
    }

    pub fn opt_str(&self) -> Result<Option<&'a str>, Rejection> {
        match self.value {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(self.err("expected a string")),
        }
    }

    /// A required identifier: a string, or an integer as vendors with
    /// numeric ids send them. Checked with [`check_id`].
    pub fn id(&self) -> Result<String, Rejection> {
        self.opt_id()?.ok_or_else(|| self.missing())
    }

    pub fn opt_id(&self) -> Result<Option<String>, Rejection> {
        let s = match self.value {
            None => return Ok(None),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
            Some(_) => return Err(self.err("expected a string or an integer id")),
        };
        check_id(&self.path, &s)?;
        Ok(Some(s))
    }

    /// An optional number; with `lenient`, a numeric string (`"24.0"`) too,
    /// as some vendors quote their numbers.
    pub fn opt_number(&self, lenient: bool) -> Result<Option<f64>, Rejection> {
        match self.value {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_f64().map(Some).ok_or_else(|| self.err("expected a number")),
            Some(Value::String(s)) if lenient => match s.trim().parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(Some(f)),
                _ => Err(self.err(format!("expected a number, got {:?}", truncate(s)))),
            },
            Some(_) => Err(self.err("expected a number")),
        }
    }

    /// An optional percentage in 0..=100.
    pub fn opt_percent(&self, lenient: bool) -> Result<Option<f64>, Rejection> {
        match self.opt_number(lenient)? {
            Some(p) if !(0.0..=100.0).contains(&p) => Err(self.err(format!("{p} is outside 0..=100"))),
            other => Ok(other),
        }
    }

    pub fn opt_bool(&self) -> Result<Option<bool>, Rejection> {
        match self.value {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.err("expected true or false")),
        }
    }

    /// A required timestamp (see [`Node::opt_time`]).
    pub fn time(&self) -> Result<OffsetDateTime, Rejection> {
        self.opt_time()?.ok_or_else(|| self.missing())
    }

    /// An optional timestamp: RFC 3339, or `YYYY-MM-DD HH:MM:SS` in UTC as
    /// Docebo writes its dates.
    pub fn opt_time(&self) -> Result<Option<OffsetDateTime>, Rejection> {
        let Some(s) = self.opt_str()? else { return Ok(None) };
        parse_time(s).map(Some).ok_or_else(|| {
            self.err(format!("{:?} is not a timestamp (RFC 3339 or YYYY-MM-DD HH:MM:SS UTC)", truncate(s)))
        })
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

fn parse_time(s: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::PrimitiveDateTime::parse(s, &fmt).ok().map(|p| p.assume_utc())
}

/// Ids become Salesforce external ids and DynamoDB keys: 1-255 printable
/// characters, no control characters.
pub(crate) fn check_id(path: &str, id: &str) -> Result<(), Rejection> {
    if id.trim().is_empty() {
        return Err(Rejection::malformed(format!("{path}: must not be blank")));
    }
    if id.len() > 255 {
        return Err(Rejection::malformed(format!("{path}: longer than 255 characters")));
    }
    if id.chars().any(char::is_control) {
        return Err(Rejection::malformed(format!("{path}: contains control characters")));
    }
    Ok(())
}

/// Parse the body as JSON, naming the position of a syntax error.
pub(crate) fn json(body: &[u8]) -> Result<Value, Rejection> {
    serde_json::from_slice(body).map_err(|e| Rejection::malformed(format!("the body is not valid JSON: {e}")))
}

pub(crate) fn hmac_sha256(secret: &str, body: &[u8]) -> HmacSha256 {
    let mut m = match HmacSha256::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable_hmac(),
    };
    m.update(body);
    m
}

#[cold]
fn unreachable_hmac() -> ! {
    panic!("HMAC-SHA256 accepts keys of any length")
}

/// Hex HMAC-SHA256 of `body` (lowercase), as the vendors send it.
pub(crate) fn sign_hex(secret: &str, body: &[u8]) -> String {
    hex::encode(hmac_sha256(secret, body).finalize().into_bytes())
}

/// Base64 (standard alphabet, padded) HMAC-SHA256 of `body`.
pub(crate) fn sign_base64(secret: &str, body: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(hmac_sha256(secret, body).finalize().into_bytes())
}

/// Check a decoded signature against every secret, each in constant time,
/// without stopping at the first match (the time taken does not tell which
/// secret matched).
pub(crate) fn any_secret_signs(secrets: &[String], body: &[u8], signature: &[u8]) -> bool {
    let mut ok = false;
    for s in secrets {
        ok |= hmac_sha256(s, body).verify_slice(signature).is_ok();
    }
    ok
}

/// The shared part of the header-signed vendor dialects: find the header,
/// decode it, check it against the source's secrets.
pub(crate) fn verify_header_hmac(
    header_name: &str,
    value: Option<&str>,
    encoding: Encoding,
    body: &[u8],
    secrets: &[String],
) -> Result<(), Rejection> {
    let value = value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Rejection::unauthorized("missing_signature", format!("the {header_name} header is missing")))?;
    let decoded = match encoding {
        Encoding::Hex => {
            let v = value.strip_prefix("sha256=").unwrap_or(value);
            hex::decode(v).ok().filter(|d| d.len() == 32)
        }
        Encoding::Base64 => {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.decode(value).ok().filter(|d| d.len() == 32)
        }
    };
    let Some(sig) = decoded else {
        let what = match encoding {
            Encoding::Hex => "64 hexadecimal characters",
            Encoding::Base64 => "a base64-encoded SHA-256 HMAC (44 characters)",
        };
        return Err(Rejection::unauthorized("invalid_signature", format!("the {header_name} header is not {what}")));
    };
    if secrets.is_empty() {
        return Err(Rejection::unauthorized("invalid_signature", "no webhook secret is configured for this source"));
    }
    if any_secret_signs(secrets, body, &sig) {
        Ok(())
    } else {
        Err(Rejection::unauthorized("invalid_signature", "the signature does not match the body"))
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Encoding {
    Hex,
    Base64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_name_the_field() {
        let v = json!({"data": {"attributes": {"progress": "x", "n": 3, "s": "2026-05-12 10:00:00"}}});
        let r = root(&v);
        let a = r.field("data").field("attributes");
        assert_eq!(
            a.field("progress").opt_number(false).unwrap_err().message,
            "data.attributes.progress: expected a number"
        );
        assert_eq!(a.field("missing").str().unwrap_err().message, "data.attributes.missing: is missing");
        assert_eq!(a.field("n").id().unwrap(), "3");
        assert_eq!(a.field("s").time().unwrap(), time::macros::datetime!(2026-05-12 10:00:00 UTC));
        assert!(root(&json!([])).object().unwrap_err().message.starts_with("the body: expected an object"));
        assert_eq!(root(&json!({"p": "24.0"})).field("p").opt_percent(true).unwrap(), Some(24.0));
        assert!(root(&json!({"p": 101})).field("p").opt_percent(false).is_err());
    }

    #[test]
    fn signatures_verify_in_both_encodings() {
        let b = b"{}";
        let s = vec!["old-secret".to_string(), "new-secret".to_string()];
        assert!(verify_header_hmac("H", Some(&sign_hex("new-secret", b)), Encoding::Hex, b, &s).is_ok());
        assert!(verify_header_hmac("H", Some(&sign_base64("old-secret", b)), Encoding::Base64, b, &s).is_ok());
        let e = verify_header_hmac("H", Some(&sign_hex("other", b)), Encoding::Hex, b, &s).unwrap_err();
        assert_eq!((e.status, e.code), (401, "invalid_signature"));
        let e = verify_header_hmac("H", None, Encoding::Hex, b, &s).unwrap_err();
        assert_eq!(e.code, "missing_signature");
    }
}
