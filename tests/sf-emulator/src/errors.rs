//! Every error the emulator answers with, in one place: Salesforce's status codes and
//! message texts.
//!
//! Two shapes exist on the wire:
//! - per-record errors inside sObject Collections results:
//!   `{"statusCode": "...", "message": "...", "fields": [...]}` ([`RecordError`]);
//! - request-level errors: HTTP 4xx/5xx with a JSON array
//!   `[{"message": "...", "errorCode": "..."}]` ([`ApiError`]).
//!
//! | situation | code | message |
//! |---|---|---|
//! | record without `attributes.type` | JSON_PARSER_ERROR | Nested object for polymorphic foreign key must have an attributes field before any other fields. (recorded) |
//! | value of the wrong JSON type | JSON_PARSER_ERROR | Cannot deserialize instance of double from VALUE_STRING value abc or request may be missing a required field |
//! | unknown field | INVALID_FIELD | No such column 'X' on sobject of type Y |
//! | read-only field written | INVALID_FIELD_FOR_INSERT_UPDATE | Unable to create/update fields: X. Please check the security settings ... |
//! | restricted picklist | INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST | Status: bad value for restricted picklist field: X |
//! | required field missing | REQUIRED_FIELD_MISSING | Required fields are missing: [LastName] |
//! | text too long | STRING_TOO_LONG | Name: data value too large: X (max length=255) |
//! | bad email | INVALID_EMAIL_ADDRESS | Email: invalid email address: X |
//! | number too large | NUMBER_OUTSIDE_VALID_RANGE | Progress: value outside of valid range on numeric field: X |
//! | id of the wrong shape | MALFORMED_ID | Contact: id value of incorrect type: X |
//! | id of another object | FIELD_INTEGRITY_EXCEPTION | Contact: id value of incorrect type: X |
//! | id that does not exist | INVALID_CROSS_REFERENCE_KEY | invalid cross reference id |
//! | upsert record without the external id | MISSING_ARGUMENT | LMS_Enrollment_Id__c not specified |
//! | same external id twice in a request | DUPLICATE_EXTERNAL_ID | Duplicate external id specified: X |
//! | unique value already used | DUPLICATE_VALUE | duplicate value found: F duplicates value on record with id: ID |
//! | parent external id not found | INVALID_FIELD | Foreign key external ID: L1 not found for field LMS_Learner_Id__c in entity Contact |
//! | parent reference by a non-external-id field | INVALID_FIELD | Field name provided, X does not match an External ID, Salesforce Id, or indexed field for Contact |
//! | allOrNone rollback | ALL_OR_NONE_OPERATION_ROLLED_BACK | Record rolled back because not all records were valid and the request was using AllOrNone header |
//! | injected lock contention | UNABLE_TO_LOCK_ROW | unable to obtain exclusive access to this record or 1 records: ID |
//! | bad/expired session | 401 INVALID_SESSION_ID | Session expired or invalid |
//! | daily limit | 403 REQUEST_LIMIT_EXCEEDED | TotalRequests Limit exceeded. |
//! | > 200 records | 400 EXCEEDED_ID_LIMIT | record limit reached. cannot submit more than 200 records into this call |
//! | > 25 composite subrequests | 400 LIMIT_EXCEEDED | Composite requests cannot have more than 25 subrequests ... |
//! | > 5 collections/query subrequests | 400 LIMIT_EXCEEDED | Composite requests cannot have more than 5 sObject Collections or query subrequests ... |
//! | injected server error | 500 UNKNOWN_EXCEPTION | An unexpected error occurred. Please include this ErrorId if you contact support: ... |
//! | record in the recycle bin | ENTITY_IS_DELETED (404 for single records) | entity is deleted |
//! | unknown record / resource | 404 NOT_FOUND | The requested resource does not exist |
//! | single-record write errors | 400 `[{"message", "errorCode", "fields"}]` | as the per-record errors above |
//! | Bulk API errors | `[{"errorCode", "message"}]` | see [`crate::bulk`] and [`crate::guesses`] |
//! | OAuth errors | 400 `{"error", "error_description"}` | see [`crate::tokens::OAuthError`] |

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Content type of every Salesforce JSON response.
pub const JSON_UTF8: &str = "application/json;charset=UTF-8";

/// Serialises `body` as a Salesforce JSON response.
pub fn sf_json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    let bytes = match serde_json::to_vec(body) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "serialising a response failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, "serialisation failed").into_response();
        }
    };
    let mut resp = (status, bytes).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8));
    resp
}

/// A per-record error inside an sObject Collections result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordError {
    #[serde(rename = "statusCode")]
    pub status_code: String,
    pub message: String,
    pub fields: Vec<String>,
}

impl RecordError {
    pub fn new(code: &str, message: impl Into<String>, fields: Vec<String>) -> Self {
        RecordError { status_code: code.to_owned(), message: message.into(), fields }
    }

    pub fn missing_attributes() -> Self {
        Self::new(
            "JSON_PARSER_ERROR",
            "Nested object for polymorphic foreign key must have an attributes field before any other fields.",
            vec![],
        )
    }

    /// `json_token` is Jackson's token name: VALUE_STRING, VALUE_NUMBER_INT,
    /// VALUE_TRUE, START_OBJECT, START_ARRAY, ...
    pub fn cannot_deserialize(soap_type: &str, json_token: &str, value: &str) -> Self {
        Self::new(
            "JSON_PARSER_ERROR",
            format!(
                "Cannot deserialize instance of {soap_type} from {json_token} value {value} or request may be missing a required field"
            ),
            vec![],
        )
    }

    pub fn unknown_field(field: &str, object: &str) -> Self {
        Self::new("INVALID_FIELD", format!("No such column '{field}' on sobject of type {object}"), vec![])
    }

    pub fn record_type_mismatch(given: &str, expected: &str) -> Self {
        Self::new(
            "INVALID_TYPE",
            format!("Record type {given} does not match the sObject type {expected} of this request"),
            vec![],
        )
    }

    pub fn not_writable(fields: &[String]) -> Self {
        Self::new(
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            format!(
                "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                fields.join(", ")
            ),
            fields.to_vec(),
        )
    }

    pub fn bad_picklist(label: &str, value: &str, field: &str) -> Self {
        Self::new(
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            format!("{label}: bad value for restricted picklist field: {value}"),
            vec![field.to_owned()],
        )
    }

    pub fn required_missing(fields: &[String]) -> Self {
        Self::new(
            "REQUIRED_FIELD_MISSING",
            format!("Required fields are missing: [{}]", fields.join(", ")),
            fields.to_vec(),
        )
    }

    pub fn string_too_long(label: &str, value: &str, max: usize, field: &str) -> Self {
        Self::new(
            "STRING_TOO_LONG",
            format!("{label}: data value too large: {value} (max length={max})"),
            vec![field.to_owned()],
        )
    }

    pub fn invalid_email(label: &str, value: &str, field: &str) -> Self {
        Self::new("INVALID_EMAIL_ADDRESS", format!("{label}: invalid email address: {value}"), vec![field.to_owned()])
    }

    pub fn number_out_of_range(label: &str, value: &str, field: &str) -> Self {
        Self::new(
            "NUMBER_OUTSIDE_VALID_RANGE",
            format!("{label}: value outside of valid range on numeric field: {value}"),
            vec![field.to_owned()],
        )
    }

    pub fn malformed_id(label: &str, value: &str, field: &str) -> Self {
        Self::new("MALFORMED_ID", format!("{label}: id value of incorrect type: {value}"), vec![field.to_owned()])
    }

    pub fn wrong_id_type(label: &str, value: &str, field: &str) -> Self {
        Self::new(
            "FIELD_INTEGRITY_EXCEPTION",
            format!("{label}: id value of incorrect type: {value}"),
            vec![field.to_owned()],
        )
    }

    pub fn invalid_cross_reference(field: Option<&str>) -> Self {
        Self::new(
            "INVALID_CROSS_REFERENCE_KEY",
            "invalid cross reference id",
            field.map(|f| vec![f.to_owned()]).unwrap_or_default(),
        )
    }

    pub fn missing_external_id(field: &str) -> Self {
        Self::new("MISSING_ARGUMENT", format!("{field} not specified"), vec![])
    }

    pub fn duplicate_external_id(value: &str, field: &str) -> Self {
        Self::new("DUPLICATE_EXTERNAL_ID", format!("Duplicate external id specified: {value}"), vec![field.to_owned()])
    }

    pub fn duplicate_value(field: &str, id: &str) -> Self {
        Self::new(
            "DUPLICATE_VALUE",
            format!("duplicate value found: {field} duplicates value on record with id: {id}"),
            vec![],
        )
    }

    pub fn foreign_key_not_found(value: &str, field: &str, entity: &str) -> Self {
        Self::new(
            "INVALID_FIELD",
            format!("Foreign key external ID: {value} not found for field {field} in entity {entity}"),
            vec![],
        )
    }

    pub fn not_an_external_id(field: &str, entity: &str) -> Self {
        Self::new(
            "INVALID_FIELD",
            format!(
                "Field name provided, {field} does not match an External ID, Salesforce Id, or indexed field for {entity}"
            ),
            vec![],
        )
    }

    pub fn too_many_reference_fields(entity: &str) -> Self {
        Self::new(
            "INVALID_FIELD",
            format!("More than 1 field provided in an external foreign key reference in entity: {entity}"),
            vec![],
        )
    }

    pub fn both_reference_and_id(relationship: &str, field: &str) -> Self {
        Self::new(
            "INVALID_FIELD",
            format!("Cannot specify both an external ID reference {relationship} and a salesforce id, {field}"),
            vec![],
        )
    }

    pub fn rolled_back() -> Self {
        Self::new(
            "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            "Record rolled back because not all records were valid and the request was using AllOrNone header",
            vec![],
        )
    }

    pub fn entity_is_deleted() -> Self {
        Self::new("ENTITY_IS_DELETED", "entity is deleted", vec![])
    }

    pub fn id_in_insert() -> Self {
        Self::new("INVALID_FIELD", "cannot specify Id in an insert call", vec!["Id".to_owned()])
    }

    pub fn missing_id() -> Self {
        Self::new("MISSING_ARGUMENT", "Id not specified in an update call", vec![])
    }

    pub fn several_matches(field: &str, value: &str, count: usize) -> Self {
        Self::new(
            "DUPLICATE_EXTERNAL_ID",
            format!("{field}: more than one record found for external id field: {value} ({count} records)"),
            vec![field.to_owned()],
        )
    }

    pub fn invalid_type_for_operation(object: &str, operation: &str) -> Self {
        Self::new("INVALID_TYPE_FOR_OPERATION", format!("entity type {object} does not support {operation}"), vec![])
    }

    pub fn unknown_sobject(object: &str) -> Self {
        Self::new("INVALID_TYPE", format!("sObject type '{object}' is not supported."), vec![])
    }

    /// The Bulk API CSV form: `CODE:message:field1,field2 --`.
    pub fn bulk_text(&self) -> String {
        format!("{}:{}:{} --", self.status_code, self.message, self.fields.join(","))
    }

    pub fn unable_to_lock_row(id: &str) -> Self {
        Self::new(
            "UNABLE_TO_LOCK_ROW",
            format!("unable to obtain exclusive access to this record or 1 records: {id}"),
            vec![],
        )
    }
}

/// A request-level error: HTTP status plus `[{"message", "errorCode"}]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub error_code: String,
    pub message: String,
    /// Single-record write errors carry the fields concerned.
    pub fields: Option<Vec<String>>,
}

#[derive(Serialize)]
struct ApiErrorBody<'a> {
    message: &'a str,
    #[serde(rename = "errorCode")]
    error_code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<&'a [String]>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError { status, error_code: code.to_owned(), message: message.into(), fields: None }
    }

    /// A single-record write error (`[{"message", "errorCode", "fields"}]`, 400).
    pub fn from_record(e: &RecordError) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error_code: e.status_code.clone(),
            message: e.message.clone(),
            fields: Some(e.fields.clone()),
        }
    }

    /// The JSON body (an array with one error).
    pub fn body(&self) -> serde_json::Value {
        match &self.fields {
            None => serde_json::json!([{ "message": self.message, "errorCode": self.error_code }]),
            Some(f) => serde_json::json!([{ "message": self.message, "errorCode": self.error_code, "fields": f }]),
        }
    }

    pub fn entity_deleted() -> Self {
        Self { fields: Some(vec![]), ..Self::new(StatusCode::NOT_FOUND, "ENTITY_IS_DELETED", "entity is deleted") }
    }

    pub fn invalid_query_filter(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_QUERY_FILTER_OPERATOR", message)
    }

    pub fn invalid_session() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "INVALID_SESSION_ID", "Session expired or invalid")
    }

    pub fn request_limit_exceeded() -> Self {
        Self::new(StatusCode::FORBIDDEN, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", "The requested resource does not exist")
    }

    pub fn method_not_allowed(method: &str, allowed: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            format!("HTTP Method '{method}' not allowed. Allowed are {allowed}"),
        )
    }

    pub fn unknown_exception(error_id: u64) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN_EXCEPTION",
            format!(
                "An unexpected error occurred. Please include this ErrorId if you contact support: {}-{} ({})",
                error_id % 10_000_000_000,
                error_id % 100_000,
                -((error_id % 1_000_000_000) as i64)
            ),
        )
    }

    pub fn server_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVER_UNAVAILABLE",
            "Server temporarily unavailable, please try again later.",
        )
    }

    pub fn json_parser(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "JSON_PARSER_ERROR", message)
    }

    pub fn exceeded_id_limit() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        )
    }

    pub fn composite_too_many_subrequests(n: usize) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "LIMIT_EXCEEDED",
            format!("Composite requests cannot have more than 25 subrequests. Number of subrequests: {n}"),
        )
    }

    pub fn composite_too_many_collections(n: usize) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "LIMIT_EXCEEDED",
            format!(
                "Composite requests cannot have more than 5 sObject Collections or query subrequests. Number of such subrequests: {n}"
            ),
        )
    }

    pub fn invalid_type(object: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "INVALID_TYPE",
            format!(
                "sObject type '{object}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names."
            ),
        )
    }

    pub fn bad_external_id_field(field: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
            format!("Provided external ID field does not exist or is not accessible: {field}"),
        )
    }

    pub fn invalid_query_locator() -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_QUERY_LOCATOR", "invalid query locator")
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_INPUT", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        sf_json(
            self.status,
            &[ApiErrorBody { message: &self.message, error_code: &self.error_code, fields: self.fields.as_deref() }],
        )
    }
}
