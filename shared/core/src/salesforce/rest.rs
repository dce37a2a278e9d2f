//! REST API wire formats: resource paths (with the caller's names checked
//! and values encoded), save/upsert results, versions, and a generic
//! Composite request for subrequests other than the planned upserts.

use super::{API_VERSION, SalesforceError, error_from_response, is_record_id};
use crate::error::ErrorClass;
use crate::soql;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// A Composite request takes at most 25 subrequests.
pub const MAX_COMPOSITE_SUBREQUESTS: usize = 25;

/// Path-segment encoding: unreserved characters stay.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// `/services/data/v62.0/<rest>`.
pub fn data_path(rest: &str) -> String {
    format!("/services/data/{API_VERSION}/{}", rest.trim_start_matches('/'))
}

fn name<'a>(what: &str, n: &'a str) -> Result<&'a str, SalesforceError> {
    if n.contains('.') {
        return Err(SalesforceError::invalid(format!("{what} {n:?} must not contain '.'")));
    }
    soql::identifier(n).map_err(|e| SalesforceError::invalid(format!("{what}: {e}")))
}

/// `/services/data/vXX.X/sobjects/<sobject>`.
pub fn sobject_path(sobject: &str) -> Result<String, SalesforceError> {
    Ok(data_path(&format!("sobjects/{}", name("sObject", sobject)?)))
}

/// `/services/data/vXX.X/sobjects/<sobject>/<id>`.
pub fn record_path(sobject: &str, id: &str) -> Result<String, SalesforceError> {
    if !is_record_id(id) {
        return Err(SalesforceError::invalid(format!(
            "{id:?} is not a Salesforce record id (15 or 18 letters/digits)"
        )));
    }
    Ok(format!("{}/{id}", sobject_path(sobject)?))
}

/// `/services/data/vXX.X/sobjects/<sobject>/<field>/<value>`, the value
/// percent-encoded as one path segment.
pub fn external_id_path(sobject: &str, field: &str, value: &str) -> Result<String, SalesforceError> {
    let field = name("external id field", field)?;
    if value.is_empty() {
        return Err(SalesforceError::invalid(format!("the {field} value is empty")));
    }
    // URL parsers read `.`/`..` segments (even percent-encoded) as path
    // navigation: such a value cannot be addressed in a URL.
    if value == "." || value == ".." {
        return Err(SalesforceError::invalid(format!("the {field} value {value:?} cannot be used in a URL path")));
    }
    Ok(format!("{}/{field}/{}", sobject_path(sobject)?, utf8_percent_encode(value, SEGMENT)))
}

/// The `fields` query parameter: checked names, comma-separated.
pub fn fields_param(fields: &[&str]) -> Result<Option<String>, SalesforceError> {
    if fields.is_empty() {
        return Ok(None);
    }
    let checked: Result<Vec<&str>, _> = fields.iter().map(|f| name("field", f)).collect();
    Ok(Some(checked?.join(",")))
}

/// One entry of `GET /services/data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiVersionInfo {
    pub label: String,
    pub url: String,
    pub version: String,
}

pub fn parse_versions(body: &Value) -> Result<Vec<ApiVersionInfo>, SalesforceError> {
    serde_json::from_value(body.clone()).map_err(|e| SalesforceError::unreadable("reading the API versions", e))
}

/// One error of a save result (`statusCode`) or of an error body (`errorCode`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ErrorItem {
    #[serde(alias = "errorCode", rename = "statusCode")]
    pub status_code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub fields: Vec<String>,
}

/// `{"id", "success", "errors", "created"?}` — the answer of create and upsert.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SaveResult {
    #[serde(default)]
    pub id: Option<String>,
    pub success: bool,
    #[serde(default)]
    pub errors: Vec<ErrorItem>,
    #[serde(default)]
    pub created: Option<bool>,
}

impl SaveResult {
    fn failure(&self, status: u16) -> SalesforceError {
        let first = self.errors.first();
        let code = first.map(|e| e.status_code.clone()).unwrap_or_else(|| "UNKNOWN".into());
        SalesforceError::Api {
            class: super::classify_error_code(&code),
            status,
            message: first.map(|e| e.message.clone()).unwrap_or_default(),
            code,
        }
    }
}

/// The id of a created record (`201 {"id", "success": true}`).
pub fn parse_created(status: u16, body: &Value) -> Result<String, SalesforceError> {
    let r: SaveResult = serde_json::from_value(body.clone())
        .map_err(|e| SalesforceError::unreadable("reading the create result", e))?;
    match (r.success, &r.id) {
        (true, Some(id)) if !id.is_empty() => Ok(id.clone()),
        (true, _) => Err(SalesforceError::unexpected("create", "success without a record id")),
        (false, _) => Err(r.failure(status)),
    }
}

/// The outcome of an upsert by external id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upserted {
    /// 201 Created.
    Created { id: String },
    /// 200 OK (204 before API v46).
    Updated { id: String },
}

impl Upserted {
    pub fn id(&self) -> &str {
        match self {
            Upserted::Created { id } | Upserted::Updated { id } => id,
        }
    }
}

fn id_from_location(location: Option<&str>) -> Option<String> {
    location.and_then(|l| l.trim_end_matches('/').rsplit('/').next()).filter(|s| is_record_id(s)).map(str::to_string)
}

/// Read an upsert answer: 201 created, 200 updated (204 with a `Location`
/// on old API versions), 300 several records match (permanent), anything
/// else an error.
pub fn parse_upsert(status: u16, body: &str, location: Option<&str>, what: &str) -> Result<Upserted, SalesforceError> {
    match status {
        200 | 201 => {
            let r: SaveResult =
                serde_json::from_str(body).map_err(|e| SalesforceError::unreadable("reading the upsert result", e))?;
            if !r.success {
                return Err(r.failure(status));
            }
            let id = r.id.filter(|s| !s.is_empty()).or_else(|| id_from_location(location));
            let id = id.ok_or_else(|| SalesforceError::unexpected("upsert", "success without a record id"))?;
            // The status decides; `created` (API v46+) agrees with it.
            if status == 201 || r.created == Some(true) {
                Ok(Upserted::Created { id })
            } else {
                Ok(Upserted::Updated { id })
            }
        }
        204 => id_from_location(location)
            .map(|id| Upserted::Updated { id })
            .ok_or_else(|| SalesforceError::unexpected("upsert", "204 without a Location header")),
        300 => Err(multiple_matches(body, what)),
        _ => Err(error_from_response(status, body)),
    }
}

/// 300 Multiple Choices: the external id matched several records. The body
/// lists their URLs; the error names how many and which.
pub fn multiple_matches(body: &str, what: &str) -> SalesforceError {
    let ids: Vec<String> = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| {
            v.as_str()
                .or_else(|| v.get("url").and_then(Value::as_str))
                .or_else(|| v.pointer("/attributes/url").and_then(Value::as_str))
                .and_then(|u| u.rsplit('/').next())
                .map(str::to_string)
        })
        .collect();
    SalesforceError::Api {
        class: ErrorClass::Permanent,
        status: 300,
        code: "MULTIPLE_CHOICES".into(),
        message: if ids.is_empty() {
            format!("{what}: several records match the external id; none was written")
        } else {
            format!("{what}: {} records match the external id ({}); none was written", ids.len(), ids.join(", "))
        },
    }
}

/// One subrequest of a generic Composite request.
#[derive(Debug, Clone, PartialEq)]
pub struct CompositeSubrequest {
    /// GET, POST, PATCH, PUT or DELETE.
    pub method: String,
    /// A `/services/data/…` path (may reference `@{refId.field}`).
    pub url: String,
    pub reference_id: String,
    pub body: Option<Value>,
}

/// A generic `POST /services/data/vXX.X/composite`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CompositeRequest {
    pub all_or_none: bool,
    pub collate_subrequests: Option<bool>,
    pub subrequests: Vec<CompositeSubrequest>,
}

impl CompositeRequest {
    /// The JSON body, after checking Salesforce's rules (1–25 subrequests,
    /// unique alphanumeric reference ids, data API paths, known methods).
    pub fn body(&self) -> Result<Value, SalesforceError> {
        let n = self.subrequests.len();
        if n == 0 || n > MAX_COMPOSITE_SUBREQUESTS {
            return Err(SalesforceError::invalid(format!(
                "a Composite request carries 1 to {MAX_COMPOSITE_SUBREQUESTS} subrequests, not {n}"
            )));
        }
        let mut seen = std::collections::HashSet::new();
        let mut subs = Vec::with_capacity(n);
        for s in &self.subrequests {
            let r = &s.reference_id;
            if r.is_empty()
                || !r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                || !r.as_bytes()[0].is_ascii_alphabetic()
            {
                return Err(SalesforceError::invalid(format!(
                    "Composite referenceId {r:?} must start with a letter and hold only letters, digits and '_'"
                )));
            }
            if !seen.insert(r.as_str()) {
                return Err(SalesforceError::invalid(format!("Composite referenceId {r:?} is used twice")));
            }
            if !matches!(s.method.as_str(), "GET" | "POST" | "PATCH" | "PUT" | "DELETE") {
                return Err(SalesforceError::invalid(format!("Composite method {:?} is not supported", s.method)));
            }
            if !s.url.starts_with("/services/data/") || s.url.contains("://") {
                return Err(SalesforceError::invalid(format!(
                    "Composite subrequest {r:?}: the url must be a /services/data/ path"
                )));
            }
            let mut o = Map::new();
            o.insert("method".into(), json!(s.method));
            o.insert("url".into(), json!(s.url));
            o.insert("referenceId".into(), json!(r));
            if let Some(b) = &s.body {
                o.insert("body".into(), b.clone());
            }
            subs.push(Value::Object(o));
        }
        let mut body = Map::new();
        body.insert("allOrNone".into(), json!(self.all_or_none));
        if let Some(c) = self.collate_subrequests {
            body.insert("collateSubrequests".into(), json!(c));
        }
        body.insert("compositeRequest".into(), Value::Array(subs));
        Ok(Value::Object(body))
    }
}

/// One subresponse of a Composite answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompositeSubresponse {
    #[serde(default)]
    pub body: Value,
    #[serde(default)]
    pub http_headers: Map<String, Value>,
    pub http_status_code: u16,
    pub reference_id: String,
}

impl CompositeSubresponse {
    /// The subrequest's error, classified, when it did not succeed.
    pub fn error(&self) -> Option<SalesforceError> {
        if (200..300).contains(&self.http_status_code) {
            None
        } else {
            Some(error_from_response(self.http_status_code, &self.body.to_string()))
        }
    }
}

/// The subresponses, in the order Salesforce sent them.
pub fn parse_composite_response(body: &Value) -> Result<Vec<CompositeSubresponse>, SalesforceError> {
    let subs = body
        .get("compositeResponse")
        .ok_or_else(|| SalesforceError::unexpected("Composite", "no compositeResponse"))?;
    serde_json::from_value(subs.clone()).map_err(|e| SalesforceError::unreadable("reading the Composite response", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Classify;

    #[test]
    fn paths_check_names_and_encode_values() {
        assert_eq!(sobject_path("Account").unwrap(), "/services/data/v62.0/sobjects/Account");
        assert_eq!(
            record_path("Account", "001dM00003jU9GxQAK").unwrap(),
            "/services/data/v62.0/sobjects/Account/001dM00003jU9GxQAK"
        );
        assert_eq!(
            external_id_path("Contact", "Email", "test_upsert_004@example.com").unwrap(),
            "/services/data/v62.0/sobjects/Contact/Email/test_upsert_004%40example.com"
        );
        assert_eq!(
            external_id_path("LMS_Enrollment__c", "LMS_Enrollment_Id__c", "a/b c?d#é").unwrap(),
            "/services/data/v62.0/sobjects/LMS_Enrollment__c/LMS_Enrollment_Id__c/a%2Fb%20c%3Fd%23%C3%A9"
        );
        for bad in [
            sobject_path("Account/../x"),
            record_path("Account", "../../x"),
            external_id_path("A", "F", ""),
            external_id_path("A", "F", ".."),
        ] {
            let e = bad.unwrap_err();
            assert_eq!((e.class(), e.code().as_str()), (ErrorClass::Permanent, "INVALID_REQUEST"));
        }
        assert!(external_id_path("Contact", "Contact__r.Email", "x").is_err());
        assert_eq!(fields_param(&["Id", "Name"]).unwrap().as_deref(), Some("Id,Name"));
        assert_eq!(fields_param(&[]).unwrap(), None);
        assert!(fields_param(&["Id,Name"]).is_err());
    }

    #[test]
    fn upsert_answers() {
        let created = r#"{"id":"003dM00001wBXYDQA4","success":true,"errors":[],"created":true}"#;
        assert_eq!(
            parse_upsert(201, created, None, "x").unwrap(),
            Upserted::Created { id: "003dM00001wBXYDQA4".into() }
        );
        let updated = r#"{"id":"001dM00003kReWpQAK","success":true,"errors":[],"created":false}"#;
        assert_eq!(
            parse_upsert(200, updated, None, "x").unwrap(),
            Upserted::Updated { id: "001dM00003kReWpQAK".into() }
        );
        assert_eq!(
            parse_upsert(204, "", Some("/services/data/v40.0/sobjects/Account/001dM00003kReWpQAK"), "x").unwrap(),
            Upserted::Updated { id: "001dM00003kReWpQAK".into() }
        );
        let many = r#"["/services/data/v62.0/sobjects/Contact/003000000000001AAA","/services/data/v62.0/sobjects/Contact/003000000000002AAA"]"#;
        let e = parse_upsert(300, many, None, "Contact Email").unwrap_err();
        assert_eq!((e.class(), e.code().as_str()), (ErrorClass::Permanent, "MULTIPLE_CHOICES"));
        assert!(e.to_string().contains("2 records match") && e.to_string().contains("003000000000002AAA"), "{e}");
        let invalid =
            r#"[{"message":"Email: invalid email address: x","errorCode":"INVALID_EMAIL_ADDRESS","fields":["Email"]}]"#;
        let e = parse_upsert(400, invalid, None, "x").unwrap_err();
        assert_eq!((e.class(), e.code().as_str()), (ErrorClass::Permanent, "INVALID_EMAIL_ADDRESS"));
        assert_eq!(parse_upsert(200, "garbage", None, "x").unwrap_err().class(), ErrorClass::Retryable);
    }

    #[test]
    fn created_ids_and_failures() {
        let ok = json!({"id": "001dM00003kRs59QAC", "success": true, "errors": []});
        assert_eq!(parse_created(201, &ok).unwrap(), "001dM00003kRs59QAC");
        let failed =
            json!({"success": false, "errors": [{"statusCode": "DUPLICATE_VALUE", "message": "dup", "fields": []}]});
        assert_eq!(parse_created(201, &failed).unwrap_err().code(), "DUPLICATE_VALUE");
    }

    #[test]
    fn composite_requests_are_checked() {
        let sub = |r: &str| CompositeSubrequest {
            method: "GET".into(),
            url: data_path("limits"),
            reference_id: r.into(),
            body: None,
        };
        let req = CompositeRequest { all_or_none: false, collate_subrequests: None, subrequests: vec![sub("a1")] };
        assert_eq!(
            req.body().unwrap(),
            json!({"allOrNone": false, "compositeRequest": [{"method": "GET", "url": "/services/data/v62.0/limits", "referenceId": "a1"}]})
        );
        for bad in [vec![], vec![sub("a"), sub("a")], vec![sub("1a")], (0..26).map(|i| sub(&format!("r{i}"))).collect()]
        {
            assert!(CompositeRequest { subrequests: bad, ..Default::default() }.body().is_err());
        }
        let resp = json!({"compositeResponse": [
            {"body": {"id": "001", "success": true, "errors": []}, "httpHeaders": {"Location": "/x"}, "httpStatusCode": 201, "referenceId": "newAccount"},
            {"body": [{"errorCode": "UNABLE_TO_LOCK_ROW", "message": "locked"}], "httpHeaders": {}, "httpStatusCode": 400, "referenceId": "b"}]});
        let subs = parse_composite_response(&resp).unwrap();
        assert!(subs[0].error().is_none());
        assert_eq!(subs[1].error().unwrap().class(), ErrorClass::Retryable);
    }
}
