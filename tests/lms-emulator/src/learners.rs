//! Learner reads by id and learner mutations (SPEC §9.2): create (with
//! `send_welcome_email`), update, deactivate. Every mutation stamps the
//! learner with the emulator's clock, which moves it to the end of the
//! `(updated_at, id)` order the list endpoint pages through, so
//! `updated_since` finds it.
//!
//! Bodies are checked whole before anything changes; a refusal is
//! `400 {"error": {"code": "invalid_field", "message", "field"}}` naming the
//! first offending member (`fields.<key>` inside `fields`).

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::api::{admit, error};
use crate::data::{Dataset, LearnerPatch, NewLearner};
use crate::state::LmsState;

/// Longest email (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;
/// Longest name, field key or field value.
pub const MAX_TEXT_LEN: usize = 255;

/// A refused body member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { field: field.into(), message: message.into() }
    }

    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": "invalid_field", "message": self.message, "field": self.field } });
        (StatusCode::BAD_REQUEST, Json(body)).into_response()
    }
}

fn not_found(id: &str) -> Response {
    let shown: String = id.chars().take(64).collect();
    error(StatusCode::NOT_FOUND, "not_found", &format!("no learner with id {shown:?}"), None)
}

fn body_object(body: &[u8]) -> Result<Map<String, Value>, Response> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(error(StatusCode::BAD_REQUEST, "invalid_body", "the body must be a JSON object", None)),
        Err(e) => Err(error(StatusCode::BAD_REQUEST, "invalid_body", &format!("the body is not JSON: {e}"), None)),
    }
}

fn text(v: &Value, field: &str) -> Result<String, FieldError> {
    let s = v.as_str().ok_or_else(|| FieldError::new(field, format!("{field} must be a string")))?.trim();
    if s.is_empty() {
        return Err(FieldError::new(field, format!("{field} must not be empty")));
    }
    if s.chars().count() > MAX_TEXT_LEN {
        return Err(FieldError::new(field, format!("{field} must be at most {MAX_TEXT_LEN} characters")));
    }
    Ok(s.to_owned())
}

/// A plausible address: `local@domain.tld`, no whitespace.
pub fn email(v: &Value) -> Result<String, FieldError> {
    let bad = || FieldError::new("email", "email must be an address like ada@example.com");
    let s = v.as_str().ok_or_else(|| FieldError::new("email", "email must be a string"))?.trim();
    if s.len() > MAX_EMAIL_LEN {
        return Err(FieldError::new("email", format!("email must be at most {MAX_EMAIL_LEN} characters")));
    }
    let (local, domain) = s.split_once('@').ok_or_else(bad)?;
    let domain_ok = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && !domain.contains('@');
    if local.is_empty() || !domain_ok || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    Ok(s.to_owned())
}

fn department(data: &Dataset, v: &Value) -> Result<Option<String>, FieldError> {
    match v {
        Value::Null => Ok(None),
        Value::String(id) if data.has_department(id) => Ok(Some(id.clone())),
        Value::String(id) => {
            let shown: String = id.chars().take(64).collect();
            Err(FieldError::new("department_id", format!("department_id {shown:?} is not a department of this LMS")))
        }
        _ => Err(FieldError::new("department_id", "department_id must be a department id or null")),
    }
}

fn active(v: &Value) -> Result<bool, FieldError> {
    v.as_bool().ok_or_else(|| FieldError::new("active", "active must be true or false"))
}

/// `fields`: an object of strings (with `allow_null`, `null` removes a key).
fn fields(v: &Value, allow_null: bool) -> Result<BTreeMap<String, Option<String>>, FieldError> {
    let obj = v.as_object().ok_or_else(|| FieldError::new("fields", "fields must be an object of strings"))?;
    let mut out = BTreeMap::new();
    for (k, v) in obj {
        let name = format!("fields.{k}");
        if k.trim().is_empty() || k.chars().count() > MAX_TEXT_LEN {
            return Err(FieldError::new("fields", format!("field names must be 1 to {MAX_TEXT_LEN} characters")));
        }
        let value = match v {
            Value::String(s) if s.chars().count() <= MAX_TEXT_LEN => Some(s.clone()),
            Value::String(_) => {
                return Err(FieldError::new(name, format!("field values must be at most {MAX_TEXT_LEN} characters")));
            }
            Value::Null if allow_null => None,
            _ if allow_null => return Err(FieldError::new(&name, format!("{name} must be a string or null"))),
            _ => return Err(FieldError::new(&name, format!("{name} must be a string"))),
        };
        out.insert(k.clone(), value);
    }
    Ok(out)
}

fn assigned_by_the_lms(key: &str) -> Option<FieldError> {
    match key {
        "id" => Some(FieldError::new("id", "id is assigned by the LMS")),
        "updated_at" => Some(FieldError::new("updated_at", "updated_at is set by the LMS")),
        _ => None,
    }
}

fn unknown(key: &str) -> FieldError {
    let shown: String = key.chars().take(64).collect();
    FieldError::new(shown.clone(), format!("unknown field {shown:?}"))
}

/// A create body: the learner and whether to send the welcome email.
pub fn parse_new(data: &Dataset, body: &Map<String, Value>) -> Result<(NewLearner, bool), FieldError> {
    for key in body.keys() {
        if let Some(e) = assigned_by_the_lms(key) {
            return Err(e);
        }
        if !["email", "first_name", "last_name", "department_id", "fields", "active", "send_welcome_email"]
            .contains(&key.as_str())
        {
            return Err(unknown(key));
        }
    }
    let required = |name: &str| body.get(name).ok_or_else(|| FieldError::new(name, format!("{name} is required")));
    let learner = NewLearner {
        email: email(required("email")?)?,
        first_name: text(required("first_name")?, "first_name")?,
        last_name: text(required("last_name")?, "last_name")?,
        department_id: body.get("department_id").map_or(Ok(None), |v| department(data, v))?,
        fields: match body.get("fields") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(v) => fields(v, false)?.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect(),
        },
        active: body.get("active").map_or(Ok(true), active)?,
    };
    let welcome = match body.get("send_welcome_email") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(FieldError::new("send_welcome_email", "send_welcome_email must be true or false")),
    };
    Ok((learner, welcome))
}

/// An update body.
pub fn parse_patch(data: &Dataset, body: &Map<String, Value>) -> Result<LearnerPatch, FieldError> {
    let mut patch = LearnerPatch::default();
    for (key, v) in body {
        if let Some(e) = assigned_by_the_lms(key) {
            return Err(e);
        }
        match key.as_str() {
            "email" => patch.email = Some(email(v)?),
            "first_name" => patch.first_name = Some(text(v, "first_name")?),
            "last_name" => patch.last_name = Some(text(v, "last_name")?),
            "department_id" => patch.department_id = Some(department(data, v)?),
            "fields" => patch.fields = fields(v, true)?,
            "active" => patch.active = Some(active(v)?),
            "send_welcome_email" => {
                return Err(FieldError::new(key.as_str(), "send_welcome_email is only taken when creating a learner"));
            }
            _ => return Err(unknown(key)),
        }
    }
    Ok(patch)
}

/// `GET /api/v1/learners/{id}`: the learner, or 404.
pub async fn get_one(State(state): State<LmsState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    state.count("GET /api/v1/learners/{id}");
    if let Err(r) = admit(&state, &headers) {
        return r;
    }
    let data = state.data();
    match data.learner_index(&id).and_then(|i| data.learner(i)) {
        Some(l) => Json(l).into_response(),
        None => not_found(&id),
    }
}

/// `POST /api/v1/learners`: 201 with the learner and its `Location`.
pub async fn create(State(state): State<LmsState>, headers: HeaderMap, body: Bytes) -> Response {
    state.count("POST /api/v1/learners");
    if let Err(r) = admit(&state, &headers) {
        return r;
    }
    let data = state.data();
    let body = match body_object(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (new, welcome) = match parse_new(&data, &body) {
        Ok(ok) => ok,
        Err(e) => return e.into_response(),
    };
    let (_, learner) = data.create_learner(new, state.now_ms());
    {
        let mut stats = state.stats();
        stats.learners_created += 1;
        if welcome {
            stats.welcome_emails_sent += 1;
        }
    }
    let mut r = (StatusCode::CREATED, Json(&learner)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/learners/{}", learner.id)) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// `PATCH /api/v1/learners/{id}`: 200 with the learner.
pub async fn update(
    State(state): State<LmsState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    state.count("PATCH /api/v1/learners/{id}");
    if let Err(r) = admit(&state, &headers) {
        return r;
    }
    let data = state.data();
    let Some(index) = data.learner_index(&id) else { return not_found(&id) };
    let body = match body_object(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let patch = match parse_patch(&data, &body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    match data.update_learner(index, patch, state.now_ms()) {
        Some(l) => {
            state.stats().learners_updated += 1;
            Json(l).into_response()
        }
        None => not_found(&id),
    }
}

/// `POST /api/v1/learners/{id}/deactivate` (no body): 200 with the learner.
pub async fn deactivate(State(state): State<LmsState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    state.count("POST /api/v1/learners/{id}/deactivate");
    if let Err(r) = admit(&state, &headers) {
        return r;
    }
    let data = state.data();
    let patch = LearnerPatch { active: Some(false), ..LearnerPatch::default() };
    match data.learner_index(&id).and_then(|i| data.update_learner(i, patch, state.now_ms())) {
        Some(l) => {
            state.stats().learners_deactivated += 1;
            Json(l).into_response()
        }
        None => not_found(&id),
    }
}
