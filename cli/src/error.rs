//! What a command can fail with, and the exit code each failure means.

use serde_json::{Value, json};

/// The exit codes of `learnlink` (also listed in `learnlink --help`).
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// An unexpected failure (a bug, a local I/O error, an answer the CLI cannot read).
    pub const FAILURE: u8 = 1;
    /// Usage: the command line is wrong (clap's own code).
    pub const USAGE: u8 = 2;
    /// Not found: no such tenant, version or value (404).
    pub const NOT_FOUND: u8 = 3;
    /// Invalid input or validation failed (400, 413, 422, an invalid local file).
    pub const INVALID: u8 = 4;
    /// Unauthorized: the admin credential is missing or wrong (401, 403).
    pub const UNAUTHORIZED: u8 = 5;
    /// Conflict: the tenant exists, or the configuration changed meanwhile (409).
    pub const CONFLICT: u8 = 6;
    /// The API is unreachable or unavailable (connection errors, timeouts, 429, 5xx), or the work
    /// followed did not complete (an interrupted import; a failed, cancelled or still running backfill).
    pub const UNAVAILABLE: u8 = 7;
}

/// The exit-code table shown after `learnlink --help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
   0  ok
   1  unexpected failure
   2  usage: the command line is wrong
   3  not found (404: no such tenant, version or value)
   4  invalid input or validation failed (400, 422, `config validate` of an invalid file)
   5  unauthorized (401, 403): check --token / LEARNLINK_ADMIN_TOKEN
   6  conflict (409): the tenant exists, or the configuration changed meanwhile
   7  the API is unreachable or unavailable (connection errors, timeouts, 429, 5xx), or the work
      followed did not complete (an interrupted import; a failed or cancelled backfill, or
      one still running at --timeout)

The API is found through --api-url / LEARNLINK_API_URL and --token / LEARNLINK_ADMIN_TOKEN,
otherwise from .learnlink/stack.env (written by `make up`), looked for from the current
directory upwards, or named by --stack-env / LEARNLINK_STACK_ENV.";

/// The HTTP status → exit code mapping (`None`: no answer at all).
pub fn exit_code_for_status(status: Option<u16>) -> u8 {
    match status {
        None => exit::UNAVAILABLE,
        Some(404) => exit::NOT_FOUND,
        Some(400 | 413 | 422) => exit::INVALID,
        Some(401 | 403) => exit::UNAUTHORIZED,
        Some(409) => exit::CONFLICT,
        Some(429 | 500..=599) => exit::UNAVAILABLE,
        Some(_) => exit::FAILURE,
    }
}

/// One violation of a document, as the API lists them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ViolationLine {
    pub path: String,
    pub message: String,
}

/// A failed command: the exit code, the stable code and sentence, the
/// violations (422), a hint for the human, and the API's error document
/// as it came (printed as is with `--json`).
#[derive(Debug, Clone)]
pub struct Failure {
    pub exit: u8,
    pub code: String,
    pub message: String,
    pub violations: Vec<ViolationLine>,
    pub hint: Option<String>,
    pub body: Option<Value>,
}

impl Failure {
    pub fn new(exit: u8, code: &str, message: impl Into<String>) -> Failure {
        Failure {
            exit,
            code: code.to_string(),
            message: message.into(),
            violations: Vec::new(),
            hint: None,
            body: None,
        }
    }

    pub fn unexpected(message: impl Into<String>) -> Failure {
        Failure::new(exit::FAILURE, "unexpected", message)
    }

    pub fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(exit::INVALID, "invalid_input", message)
    }

    pub fn not_found(message: impl Into<String>) -> Failure {
        Failure::new(exit::NOT_FOUND, "not_found", message)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Failure {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_violations(mut self, violations: Vec<ViolationLine>) -> Failure {
        self.violations = violations;
        self
    }

    /// A hint unless one is set already.
    pub fn or_hint(mut self, hint: impl Into<String>) -> Failure {
        if self.hint.is_none() {
            self.hint = Some(hint.into());
        }
        self
    }

    /// The error document for `--json`: the API's own, or one of the same shape.
    pub fn json(&self) -> Value {
        if let Some(b) = &self.body {
            return b.clone();
        }
        let mut err = json!({"code": self.code, "message": self.message});
        if !self.violations.is_empty()
            && let Some(obj) = err.as_object_mut()
        {
            obj.insert("violations".into(), json!(self.violations));
        }
        json!({ "error": err })
    }

    /// Remove a secret from everything this failure could print.
    pub fn redact(&mut self, secret: &str) {
        if secret.is_empty() {
            return;
        }
        let r = |s: &mut String| {
            if s.contains(secret) {
                *s = s.replace(secret, "[redacted]");
            }
        };
        r(&mut self.message);
        if let Some(h) = &mut self.hint {
            r(h);
        }
        for v in &mut self.violations {
            r(&mut v.message);
            r(&mut v.path);
        }
        if let Some(b) = &mut self.body {
            redact_value(b, secret);
        }
    }
}

fn redact_value(v: &mut Value, secret: &str) {
    match v {
        Value::String(s) if s.contains(secret) => *s = s.replace(secret, "[redacted]"),
        Value::Array(a) => a.iter_mut().for_each(|x| redact_value(x, secret)),
        Value::Object(o) => o.values_mut().for_each(|x| redact_value(x, secret)),
        _ => {}
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_exit_codes() {
        assert_eq!(exit_code_for_status(None), 7);
        assert_eq!(exit_code_for_status(Some(404)), 3);
        assert_eq!(exit_code_for_status(Some(400)), 4);
        assert_eq!(exit_code_for_status(Some(422)), 4);
        assert_eq!(exit_code_for_status(Some(413)), 4);
        assert_eq!(exit_code_for_status(Some(401)), 5);
        assert_eq!(exit_code_for_status(Some(403)), 5);
        assert_eq!(exit_code_for_status(Some(409)), 6);
        assert_eq!(exit_code_for_status(Some(500)), 7);
        assert_eq!(exit_code_for_status(Some(502)), 7);
        assert_eq!(exit_code_for_status(Some(503)), 7);
        assert_eq!(exit_code_for_status(Some(429)), 7);
        assert_eq!(exit_code_for_status(Some(418)), 1);
        assert_eq!(exit_code_for_status(Some(405)), 1);
    }

    #[test]
    fn json_has_the_api_shape_and_redaction_reaches_every_field() {
        let mut f = Failure::invalid("bad tok-123")
            .with_violations(vec![ViolationLine { path: "/name".into(), message: "tok-123 is not allowed".into() }]);
        f.redact("tok-123");
        let j = f.json();
        assert_eq!(j["error"]["code"], "invalid_input");
        assert_eq!(j["error"]["message"], "bad [redacted]");
        assert_eq!(j["error"]["violations"][0]["message"], "[redacted] is not allowed");
        let mut g = Failure::unexpected("x");
        g.body = Some(json!({"error": {"code": "c", "message": "has tok-123"}}));
        g.redact("tok-123");
        assert_eq!(g.json()["error"]["message"], "has [redacted]");
    }
}
