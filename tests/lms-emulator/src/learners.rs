//! Learner reads by id and learner mutations (SPEC §9.2): create (with
//! `send_welcome_email`), update, deactivate; and the batched write side of
//! imports (SPEC §5): upsert by external id or email, deactivate by external
//! id, lookup by external id or email. Every mutation stamps the
//! learner with the emulator's clock, which moves it to the end of the
//! `(updated_at, id)` order the list endpoint pages through, so
//! `updated_since` finds it.
//!
//! Bodies are checked whole before anything changes; a refusal is
//! `400 {"error": {"code": "invalid_field", "message", "field"}}` naming the
//! first offending member (`fields.<key>` inside `fields`). A batch refuses
//! its envelope the same way (and more than [`MAX_BATCH`] items with
//! `400 {"error": {"code": "too_many", "message", "field", "limit"}}`), but
//! judges its items one by one: a refused item is a `failed` result and the
//! others still apply.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use serde::Serialize;

use crate::api::{admit, error};
use crate::data::{
    Dataset, Deactivated, EXTERNAL_ID_FIELD, LearnerPatch, NewLearner, UpsertItem, UpsertOptions, Upserted, learner_id,
};
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
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { field: field.into(), message: message.into() }
    }

    pub(crate) fn into_response(self) -> Response {
        let body = json!({ "error": { "code": "invalid_field", "message": self.message, "field": self.field } });
        (StatusCode::BAD_REQUEST, Json(body)).into_response()
    }
}

fn not_found(id: &str) -> Response {
    let shown: String = id.chars().take(64).collect();
    error(StatusCode::NOT_FOUND, "not_found", &format!("no learner with id {shown:?}"), None)
}

pub(crate) fn body_object(body: &[u8]) -> Result<Map<String, Value>, Response> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(error(StatusCode::BAD_REQUEST, "invalid_body", "the body must be a JSON object", None)),
        Err(e) => Err(error(StatusCode::BAD_REQUEST, "invalid_body", &format!("the body is not JSON: {e}"), None)),
    }
}

pub(crate) fn text(v: &Value, field: &str) -> Result<String, FieldError> {
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
    let (index, learner) = data.create_learner(new, state.now_ms());
    if welcome {
        data.record_welcome(index);
    }
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

// ---------------------------------------------------------------- batches

/// Most items one batch endpoint takes (per list).
pub const MAX_BATCH: usize = 1000;

fn too_many(field: &str, got: usize) -> Response {
    let message = format!("{field} takes at most {MAX_BATCH} items, got {got}");
    let body = json!({ "error": { "code": "too_many", "message": message, "field": field, "limit": MAX_BATCH } });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// Refuses members of `body` other than `allowed`.
pub(crate) fn only(body: &Map<String, Value>, allowed: &[&str]) -> Result<(), FieldError> {
    match body.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(unknown(k)),
        None => Ok(()),
    }
}

/// An optional boolean member (absent or `null`: false).
fn flag(body: &Map<String, Value>, name: &str) -> Result<bool, FieldError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(FieldError::new(name, format!("{name} must be true or false"))),
    }
}

/// An optional list of strings (absent or `null`: empty), at most [`MAX_BATCH`].
fn string_list(body: &Map<String, Value>, name: &str) -> Result<Vec<String>, Response> {
    let items = match body.get(name) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(FieldError::new(name, format!("{name} must be an array of strings")).into_response()),
    };
    if items.len() > MAX_BATCH {
        return Err(too_many(name, items.len()));
    }
    items
        .iter()
        .map(|v| v.as_str().map(str::to_owned))
        .collect::<Option<Vec<String>>>()
        .ok_or_else(|| FieldError::new(name, format!("{name} must be an array of strings")).into_response())
}

const UPSERT_KEYS: &[&str] =
    &["external_id", "email", "first_name", "last_name", "department_id", "fields", "active", "groups"];

/// One item of an upsert batch.
pub fn parse_upsert_item(data: &Dataset, v: &Value) -> Result<UpsertItem, FieldError> {
    let body = v.as_object().ok_or_else(|| FieldError::new("learners", "each learner must be a JSON object"))?;
    for key in body.keys() {
        if let Some(e) = assigned_by_the_lms(key) {
            return Err(e);
        }
    }
    only(body, UPSERT_KEYS)?;
    let required = |name: &str| body.get(name).ok_or_else(|| FieldError::new(name, format!("{name} is required")));
    let external_id = text(required("external_id")?, "external_id")?;
    let email = email(required("email")?)?;
    let first_name = text(required("first_name")?, "first_name")?;
    let last_name = text(required("last_name")?, "last_name")?;
    let department_id = match body.get("department_id") {
        None | Some(Value::Null) => None,
        Some(v) => department(data, v)?,
    };
    let fields: BTreeMap<String, String> = match body.get("fields") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(v) => fields(v, false)?.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect(),
    };
    if fields.get(EXTERNAL_ID_FIELD).is_some_and(|x| *x != external_id) {
        return Err(FieldError::new(
            "fields.external_id",
            "fields.external_id is set by the LMS from external_id; leave it out",
        ));
    }
    let active = body.get("active").map_or(Ok(true), active)?;
    let groups = match body.get("groups") {
        None | Some(Value::Null) => None,
        Some(Value::Array(names)) => {
            Some(names.iter().map(|n| text(n, "groups")).collect::<Result<Vec<String>, FieldError>>()?)
        }
        Some(_) => return Err(FieldError::new("groups", "groups must be an array of group names or null")),
    };
    Ok(UpsertItem { external_id, email, first_name, last_name, department_id, fields, active, groups })
}

/// One result of an upsert: the JSON of `learnlink_core::ports::UpsertOutcome`
/// (a failure also names the refused `field`).
#[derive(Debug, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
enum UpsertResult {
    Created {
        id: String,
    },
    Updated {
        id: String,
    },
    Unchanged {
        id: String,
    },
    Failed {
        code: &'static str,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        field: Option<String>,
    },
}

/// `POST /api/v1/learners/upsert` with `{"learners": [...],
/// "send_welcome_email": bool, "remove_missing_groups": bool}` (the JSON of
/// `LearnerBatch`): 200 `{"results": [...]}`, one per learner, in order.
pub async fn upsert(State(state): State<LmsState>, headers: HeaderMap, body: Bytes) -> Response {
    state.count("POST /api/v1/learners/upsert");
    if let Err(r) = admit(&state, &headers) {
        return r;
    }
    let body = match body_object(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let parsed = only(&body, &["learners", "send_welcome_email", "remove_missing_groups"]).and_then(|()| {
        let options = UpsertOptions {
            send_welcome_email: flag(&body, "send_welcome_email")?,
            remove_missing_groups: flag(&body, "remove_missing_groups")?,
        };
        match body.get("learners") {
            Some(Value::Array(items)) => Ok((items, options)),
            Some(_) => Err(FieldError::new("learners", "learners must be an array of learners")),
            None => Err(FieldError::new("learners", "learners is required")),
        }
    });
    let (items, options) = match parsed {
        Ok(ok) => ok,
        Err(e) => return e.into_response(),
    };
    if items.len() > MAX_BATCH {
        return too_many("learners", items.len());
    }
    let data = state.data();
    let parsed = items.iter().map(|v| parse_upsert_item(&data, v));
    let (applied, counts) = data.upsert_learners(parsed, options, state.now_ms());
    {
        let mut stats = state.stats();
        stats.learners_created += counts.created;
        stats.learners_updated += counts.updated;
        stats.learners_unchanged += counts.unchanged;
        stats.memberships_added += counts.memberships_added;
        stats.memberships_removed += counts.memberships_removed;
        stats.groups_created += counts.groups_created;
        stats.welcome_emails_sent += counts.welcome_emails;
    }
    let results: Vec<UpsertResult> = applied
        .into_iter()
        .map(|r| match r {
            Ok(Upserted::Created(i)) => UpsertResult::Created { id: learner_id(i) },
            Ok(Upserted::Updated(i)) => UpsertResult::Updated { id: learner_id(i) },
            Ok(Upserted::Unchanged(i)) => UpsertResult::Unchanged { id: learner_id(i) },
            Ok(Upserted::Conflict(message)) => UpsertResult::Failed { code: "conflict", message, field: None },
            Err(e) => UpsertResult::Failed { code: "invalid_field", message: e.message, field: Some(e.field) },
        })
        .collect();
    Json(json!({ "results": results })).into_response()
}

/// `POST /api/v1/learners/deactivate` with `{"external_ids": [...]}`: 200
/// `{"results": [...]}`, one per id, in order (the JSON of
/// `learnlink_core::ports::DeactivateOutcome`). Learners and their records
/// are kept; they can no longer sign in (`active: false`).
pub async fn deactivate_many(State(state): State<LmsState>, headers: HeaderMap, body: Bytes) -> Response {
    state.count("POST /api/v1/learners/deactivate");
    if let Err(r) = admit(&state, &headers) {
        return r;
    }
    let body = match body_object(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Err(e) = only(&body, &["external_ids"]) {
        return e.into_response();
    }
    if !body.contains_key("external_ids") {
        return FieldError::new("external_ids", "external_ids is required").into_response();
    }
    let ids = match string_list(&body, "external_ids") {
        Ok(ids) => ids,
        Err(r) => return r,
    };
    let data = state.data();
    let done = data.deactivate_by_external_ids(&ids, state.now_ms());
    let deactivated = done.iter().filter(|d| matches!(d, Deactivated::Deactivated(_))).count();
    state.stats().learners_deactivated += deactivated as u64;
    let results: Vec<Value> = done
        .into_iter()
        .map(|d| match d {
            Deactivated::Deactivated(i) => json!({ "outcome": "deactivated", "id": learner_id(i) }),
            Deactivated::AlreadyInactive(i) => json!({ "outcome": "already_inactive", "id": learner_id(i) }),
            Deactivated::NotFound => json!({ "outcome": "not_found" }),
        })
        .collect();
    Json(json!({ "results": results })).into_response()
}

/// `POST /api/v1/learners/lookup` with `{"external_ids": [...], "emails":
/// [...]}` (each optional, at most [`MAX_BATCH`]): 200 `{"learners": [...]}`,
/// every learner matching an external id or an email (case-insensitive),
/// each once, rendered as the list renders it.
pub async fn lookup(State(state): State<LmsState>, headers: HeaderMap, body: Bytes) -> Response {
    state.count("POST /api/v1/learners/lookup");
    if let Err(r) = admit(&state, &headers) {
        return r;
    }
    let body = match body_object(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Err(e) = only(&body, &["external_ids", "emails"]) {
        return e.into_response();
    }
    let lists = string_list(&body, "external_ids").and_then(|x| Ok((x, string_list(&body, "emails")?)));
    let (external_ids, emails) = match lists {
        Ok(ok) => ok,
        Err(r) => return r,
    };
    Json(json!({ "learners": state.data().find_learners(&external_ids, &emails) })).into_response()
}

/// `GET /__emulator/welcome-emails`: `{"learner_ids": [...]}`, the learners
/// sent a welcome email, in order.
pub async fn welcome_emails(State(state): State<LmsState>) -> Response {
    Json(json!({ "learner_ids": state.welcome_emails() })).into_response()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::data::DatasetParams;
    use crate::state::Config;
    use learnlink_core::ports::{DeactivateOutcome, UpsertOutcome};

    pub(crate) const KEY: &str = "lms-local-key";

    /// The emulator served in-process.
    pub(crate) struct Emu {
        pub state: LmsState,
        pub base: String,
        pub http: reqwest::Client,
        task: tokio::task::JoinHandle<std::io::Result<()>>,
    }

    impl Drop for Emu {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    /// 30 learners (L000000..L000029), departments D00..D03.
    pub(crate) fn small() -> DatasetParams {
        DatasetParams { seed: 9, learners: 30, departments: 4, courses: 3, enrollments_per_learner: 1 }
    }

    pub(crate) async fn start(dataset: DatasetParams) -> Emu {
        let state = LmsState::new(Config { dataset, ..Config::default() });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(crate::serve_state(listener, state.clone()));
        Emu { state, base, http: reqwest::Client::new(), task }
    }

    impl Emu {
        /// A request with `key` (None: no Authorization); (status, JSON or null).
        pub(crate) async fn send(
            &self,
            method: &str,
            path: &str,
            body: Option<Value>,
            key: Option<&str>,
        ) -> (u16, Value) {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let mut rb = self.http.request(method, format!("{}{path}", self.base));
            if let Some(k) = key {
                rb = rb.bearer_auth(k);
            }
            if let Some(b) = body {
                rb = rb.json(&b);
            }
            let r = rb.send().await.unwrap();
            let status = r.status().as_u16();
            let bytes = r.bytes().await.unwrap();
            (status, if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() })
        }

        pub(crate) async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
            self.send(method, path, body, Some(KEY)).await
        }

        pub(crate) async fn raw(&self, path: &str, body: &'static str) -> (u16, Value) {
            let r = self
                .http
                .post(format!("{}{path}", self.base))
                .bearer_auth(KEY)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json().await.unwrap())
        }

        pub(crate) async fn upsert(&self, learners: Value, welcome: bool, remove: bool) -> Vec<Value> {
            let body = json!({"learners": learners, "send_welcome_email": welcome, "remove_missing_groups": remove});
            let (status, v) = self.call("POST", "/api/v1/learners/upsert", Some(body)).await;
            assert_eq!(status, 200, "{v}");
            v["results"].as_array().unwrap().clone()
        }

        pub(crate) async fn learner(&self, id: &str) -> Value {
            let (status, v) = self.call("GET", &format!("/api/v1/learners/{id}"), None).await;
            assert_eq!(status, 200, "{v}");
            v
        }

        pub(crate) async fn stats(&self) -> Value {
            self.send("GET", "/__emulator/stats", None, None).await.1
        }

        /// Every learner id in the list order.
        pub(crate) async fn order(&self) -> Vec<String> {
            let (_, v) = self.call("GET", "/api/v1/learners?limit=1000", None).await;
            v["data"].as_array().unwrap().iter().map(|l| l["id"].as_str().unwrap().to_owned()).collect()
        }
    }

    pub(crate) fn item(external_id: &str, email: &str) -> Value {
        json!({"external_id": external_id, "email": email, "first_name": "Ada", "last_name": "Lovelace",
            "active": true})
    }

    fn outcome(v: &Value) -> UpsertOutcome {
        serde_json::from_value(v.clone()).unwrap()
    }

    fn id_of(v: &Value) -> String {
        v["id"].as_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn upsert_creates_adopts_by_email_updates_and_leaves_unchanged() {
        let emu = start(small()).await;
        let generated = emu.learner("L000004").await;
        let shouting = generated["email"].as_str().unwrap().to_uppercase();
        let mut adopt = item("SF-4", &shouting);
        adopt["department_id"] = json!("D02");
        adopt["fields"] = json!({"team": "Blue"});
        let batch = json!([item("SF-1", "one@example.com"), adopt, item("SF-bad", "not-an-email"),
            {"external_id": "SF-2", "email": "two@example.com", "first_name": "Two", "last_name": "Tone",
             "active": false, "fields": {"title": "Analyst"}}]);
        let results = emu.upsert(batch.clone(), true, false).await;
        assert_eq!(outcome(&results[0]), UpsertOutcome::Created { id: "L000030".into() });
        assert_eq!(outcome(&results[1]), UpsertOutcome::Updated { id: "L000004".into() }, "adopted by email");
        assert_eq!(results[2]["outcome"], "failed");
        assert_eq!((results[2]["code"].as_str(), results[2]["field"].as_str()), (Some("invalid_field"), Some("email")));
        assert!(matches!(outcome(&results[2]), UpsertOutcome::Failed { .. }));
        assert_eq!(outcome(&results[3]), UpsertOutcome::Created { id: "L000031".into() });

        let created = emu.learner("L000030").await;
        assert_eq!(created["fields"], json!({"external_id": "SF-1"}));
        assert_eq!((created["active"].as_bool(), created["department_id"].is_null()), (Some(true), true));
        let adopted = emu.learner("L000004").await;
        assert_eq!(adopted["email"], shouting.as_str(), "the email as sent");
        assert_eq!(adopted["department_id"], "D02");
        assert_eq!(adopted["fields"]["external_id"], "SF-4");
        assert_eq!(adopted["fields"]["team"], "Blue");
        assert_eq!(adopted["fields"]["title"], generated["fields"]["title"], "fields not named are kept");
        assert!(!emu.learner("L000031").await["active"].as_bool().unwrap());

        let stats = emu.stats().await;
        assert_eq!((stats["learners_created"].as_u64(), stats["learners_updated"].as_u64()), (Some(2), Some(1)));
        assert_eq!(stats["welcome_emails_sent"], 2, "created learners only");
        assert_eq!(stats["requests"]["POST /api/v1/learners/upsert"], 1);
        let (_, welcome) = emu.send("GET", "/__emulator/welcome-emails", None, None).await;
        assert_eq!(welcome["learner_ids"], json!(["L000030", "L000031"]));
        assert_eq!(emu.state.welcome_emails(), ["L000030", "L000031"]);

        // The same batch again: nothing differs, nothing is stamped.
        let before = emu.order().await;
        let again = emu.upsert(batch, true, false).await;
        let kinds: Vec<&str> = again.iter().map(|r| r["outcome"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["unchanged", "unchanged", "failed", "unchanged"]);
        assert_eq!(id_of(&again[1]), "L000004");
        assert_eq!(emu.learner("L000004").await["updated_at"], adopted["updated_at"]);
        assert_eq!(emu.order().await, before);
        let stats = emu.stats().await;
        assert_eq!((stats["learners_unchanged"].as_u64(), stats["welcome_emails_sent"].as_u64()), (Some(3), Some(2)));

        // A change by external id (a new email too): updated, moved to the end.
        let changed = emu.upsert(json!([item("SF-1", "uno@example.com")]), false, false).await;
        assert_eq!(outcome(&changed[0]), UpsertOutcome::Updated { id: "L000030".into() });
        assert_eq!(emu.order().await.last().map(String::as_str), Some("L000030"));
        let l = emu.learner("L000030").await;
        assert_eq!(l["email"], "uno@example.com");
        assert!(l["updated_at"].as_str() > created["updated_at"].as_str());
        // The old email matches nothing now; the new one finds it.
        let again = emu.upsert(json!([item("SF-9", "one@example.com")]), false, false).await;
        assert_eq!(outcome(&again[0]), UpsertOutcome::Created { id: "L000032".into() });
    }

    #[tokio::test]
    async fn an_email_linked_to_another_external_id_is_a_conflict() {
        let emu = start(small()).await;
        emu.upsert(json!([item("A", "shared@example.com")]), false, false).await;
        let r = emu.upsert(json!([item("B", "SHARED@example.com"), item("C", "c@example.com")]), false, false).await;
        assert_eq!(r[0]["code"], "conflict", "{r:?}");
        assert!(r[0]["message"].as_str().unwrap().contains("L000030"));
        assert_eq!(r[1]["outcome"], "created", "the others still apply");
        // A learner created through the API without an external id is adopted.
        let (status, _) = emu
            .call(
                "POST",
                "/api/v1/learners",
                Some(json!({"email": "free@example.com", "first_name": "F", "last_name": "G"})),
            )
            .await;
        assert_eq!(status, 201);
        let r = emu.upsert(json!([item("D", "Free@Example.com")]), false, false).await;
        assert_eq!((r[0]["outcome"].as_str(), r[0]["id"].as_str()), (Some("updated"), Some("L000032")));
        // Duplicates inside one batch: the second finds the first.
        let r = emu.upsert(json!([item("E", "e@example.com"), item("E", "e@example.com")]), true, false).await;
        assert_eq!(r[0]["outcome"], "created");
        assert_eq!((r[1]["outcome"].as_str(), r[1]["id"].as_str()), (Some("unchanged"), r[0]["id"].as_str()));
    }

    #[tokio::test]
    async fn upsert_refuses_bad_envelopes() {
        let emu = start(small()).await;
        let path = "/api/v1/learners/upsert";
        let (status, v) = emu.send("POST", path, Some(json!({"learners": []})), None).await;
        assert_eq!((status, v["error"]["code"].as_str()), (401, Some("unauthorized")));
        let (status, v) = emu.send("POST", path, Some(json!({"learners": []})), Some("wrong")).await;
        assert_eq!(status, 401, "{v}");
        assert_eq!(emu.stats().await["unauthorized"], 2);

        let (status, v) = emu.raw(path, "{not json").await;
        assert_eq!((status, v["error"]["code"].as_str()), (400, Some("invalid_body")));
        let (status, _) = emu.raw(path, "[]").await;
        assert_eq!(status, 400);
        let cases = [
            (json!({}), "learners"),
            (json!({"learners": {"a": 1}}), "learners"),
            (json!({"learners": [], "send_welcome_email": "yes"}), "send_welcome_email"),
            (json!({"learners": [], "remove_missing_groups": 1}), "remove_missing_groups"),
            (json!({"learners": [], "dry_run": true}), "dry_run"),
        ];
        for (body, field) in cases {
            let (status, v) = emu.call("POST", path, Some(body.clone())).await;
            assert_eq!(status, 400, "{body}: {v}");
            assert_eq!(
                (v["error"]["code"].as_str(), v["error"]["field"].as_str()),
                (Some("invalid_field"), Some(field))
            );
        }
        // Flags may be left out (false); an empty batch is fine.
        let (status, v) = emu.call("POST", path, Some(json!({"learners": []}))).await;
        assert_eq!((status, v), (200, json!({"results": []})));

        // 1000 is the limit.
        let many: Vec<Value> = (0..1001).map(|i| item(&format!("X{i}"), &format!("x{i}@example.com"))).collect();
        let (status, v) = emu.call("POST", path, Some(json!({"learners": many}))).await;
        assert_eq!(status, 400);
        assert_eq!((v["error"]["code"].as_str(), v["error"]["limit"].as_u64()), (Some("too_many"), Some(1000)));
        assert!(v["error"]["message"].as_str().unwrap().contains("1000"), "{v}");
        assert_eq!(emu.stats().await["learners_created"], 0, "nothing applied");
        let results = emu.upsert(json!(many[..1000]), false, false).await;
        assert_eq!(results.len(), 1000);
        assert!(results.iter().all(|r| r["outcome"] == "created"));
    }

    #[tokio::test]
    async fn each_bad_item_fails_alone_naming_its_field() {
        let emu = start(small()).await;
        let with = |k: &str, v: Value| {
            let mut i = item("K", "k@example.com");
            i[k] = v;
            i
        };
        let without = |k: &str| {
            let mut i = item("K", "k@example.com");
            i.as_object_mut().unwrap().remove(k);
            i
        };
        let cases = [
            (without("external_id"), "external_id"),
            (with("external_id", json!("  ")), "external_id"),
            (with("external_id", json!(7)), "external_id"),
            (without("email"), "email"),
            (with("email", json!("a@b")), "email"),
            (with("first_name", json!("")), "first_name"),
            (without("last_name"), "last_name"),
            (with("last_name", json!("x".repeat(256))), "last_name"),
            (with("department_id", json!("D99")), "department_id"),
            (with("department_id", json!(3)), "department_id"),
            (with("fields", json!({"title": 3})), "fields.title"),
            (with("fields", json!("title")), "fields"),
            (with("fields", json!({"external_id": "OTHER"})), "fields.external_id"),
            (with("active", json!("yes")), "active"),
            (with("groups", json!("Sales")), "groups"),
            (with("groups", json!(["Sales", ""])), "groups"),
            (with("id", json!("L000001")), "id"),
            (with("updated_at", json!("2026-01-01T00:00:00Z")), "updated_at"),
            (with("nickname", json!("K")), "nickname"),
            (json!("K"), "learners"),
        ];
        let mut batch: Vec<Value> = cases.iter().map(|(b, _)| b.clone()).collect();
        batch.push(item("OK", "ok@example.com"));
        let results = emu.upsert(json!(batch), true, false).await;
        for ((body, field), r) in cases.iter().zip(&results) {
            assert_eq!(r["outcome"], "failed", "{body}");
            assert_eq!((r["code"].as_str(), r["field"].as_str()), (Some("invalid_field"), Some(*field)), "{body}: {r}");
            assert!(!r["message"].as_str().unwrap().is_empty());
        }
        assert_eq!(results.last().unwrap()["outcome"], "created", "the valid item applies");
        let stats = emu.stats().await;
        assert_eq!((stats["learners_created"].as_u64(), stats["groups_created"].as_u64()), (Some(1), Some(0)));
        // Optional members: department and fields may be null, the same
        // external id in fields is accepted, active defaults to true.
        let mut ok = without("active");
        ok["department_id"] = Value::Null;
        ok["fields"] = json!({"external_id": "K"});
        ok["groups"] = Value::Null;
        let r = emu.upsert(json!([ok]), false, false).await;
        assert_eq!(r[0]["outcome"], "created", "{r:?}");
        assert!(emu.learner(r[0]["id"].as_str().unwrap()).await["active"].as_bool().unwrap());
    }

    #[tokio::test]
    async fn upsert_sets_group_memberships() {
        let emu = start(small()).await;
        let mut a = item("A", "a@example.com");
        a["groups"] = json!(["Sales", "EMEA", "sales"]);
        let r = emu.upsert(json!([a.clone()]), false, false).await;
        let id = id_of(&r[0]);
        assert_eq!(emu.state.group_names_of(&id), ["EMEA", "Sales"], "names are unique case-insensitively");
        let stats = emu.stats().await;
        assert_eq!((stats["groups_created"].as_u64(), stats["memberships_added"].as_u64()), (Some(2), Some(2)));
        let stamped = emu.learner(&id).await["updated_at"].clone();

        // Same groups: unchanged.
        assert_eq!(emu.upsert(json!([a.clone()]), false, true).await[0]["outcome"], "unchanged");
        // A new group, the old ones kept without remove_missing_groups: updated, restamped.
        a["groups"] = json!(["APAC"]);
        assert_eq!(emu.upsert(json!([a.clone()]), false, false).await[0]["outcome"], "updated");
        assert_eq!(emu.state.group_names_of(&id), ["APAC", "EMEA", "Sales"]);
        assert_ne!(emu.learner(&id).await["updated_at"], stamped);
        // With remove_missing_groups: only the listed ones remain.
        assert_eq!(emu.upsert(json!([a.clone()]), false, true).await[0]["outcome"], "updated");
        assert_eq!(emu.state.group_names_of(&id), ["APAC"]);
        assert_eq!(emu.stats().await["memberships_removed"], 2);
        // groups absent or null: memberships untouched, even with remove_missing_groups.
        a.as_object_mut().unwrap().remove("groups");
        assert_eq!(emu.upsert(json!([a.clone()]), false, true).await[0]["outcome"], "unchanged");
        a["groups"] = Value::Null;
        assert_eq!(emu.upsert(json!([a.clone()]), false, true).await[0]["outcome"], "unchanged");
        assert_eq!(emu.state.group_names_of(&id), ["APAC"]);
        // An empty list with remove_missing_groups leaves every group.
        a["groups"] = json!([]);
        assert_eq!(emu.upsert(json!([a]), false, true).await[0]["outcome"], "updated");
        assert!(emu.state.group_names_of(&id).is_empty());
        assert_eq!(emu.state.group_names_of("nobody"), Vec::<String>::new());

        let (_, groups) = emu.call("GET", "/api/v1/groups", None).await;
        let names: Vec<&str> = groups["data"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["Sales", "EMEA", "APAC"]);
    }

    #[tokio::test]
    async fn deactivate_by_external_ids() {
        let emu = start(small()).await;
        let r = emu.upsert(json!([item("A", "a@example.com"), item("B", "b@example.com")]), false, false).await;
        let (a, b) = (id_of(&r[0]), id_of(&r[1]));
        let path = "/api/v1/learners/deactivate";
        let (status, v) = emu.call("POST", path, Some(json!({"external_ids": ["A", "nope", "A", "B"]}))).await;
        assert_eq!(status, 200, "{v}");
        let got: Vec<DeactivateOutcome> = serde_json::from_value(v["results"].clone()).unwrap();
        assert_eq!(
            got,
            [
                DeactivateOutcome::Deactivated { id: a.clone() },
                DeactivateOutcome::NotFound,
                DeactivateOutcome::AlreadyInactive { id: a.clone() },
                DeactivateOutcome::Deactivated { id: b.clone() },
            ]
        );
        assert_eq!(v["results"][1], json!({"outcome": "not_found"}));
        let l = emu.learner(&a).await;
        assert_eq!((l["active"].as_bool(), l["fields"]["external_id"].as_str()), (Some(false), Some("A")), "kept");
        assert_eq!(emu.order().await.last(), Some(&b), "deactivation stamps");
        assert_eq!(emu.stats().await["learners_deactivated"], 2);
        // An upsert with active: true turns it back on.
        assert_eq!(emu.upsert(json!([item("A", "a@example.com")]), false, false).await[0]["outcome"], "updated");

        let (status, v) = emu.send("POST", path, Some(json!({"external_ids": []})), None).await;
        assert_eq!((status, v["error"]["code"].as_str()), (401, Some("unauthorized")));
        for (body, field) in [
            (json!({}), "external_ids"),
            (json!({"external_ids": "A"}), "external_ids"),
            (json!({"external_ids": ["A", 1]}), "external_ids"),
            (json!({"external_ids": [], "ids": []}), "ids"),
        ] {
            let (status, v) = emu.call("POST", path, Some(body.clone())).await;
            assert_eq!((status, v["error"]["field"].as_str()), (400, Some(field)), "{body}: {v}");
        }
        let many: Vec<String> = (0..1001).map(|i| format!("X{i}")).collect();
        let (status, v) = emu.call("POST", path, Some(json!({"external_ids": many}))).await;
        assert_eq!((status, v["error"]["code"].as_str()), (400, Some("too_many")));
        let (status, v) = emu.call("POST", path, Some(json!({"external_ids": many[..1000]}))).await;
        assert_eq!((status, v["results"].as_array().map(Vec::len)), (200, Some(1000)));
    }

    #[tokio::test]
    async fn lookup_by_external_ids_and_emails() {
        let emu = start(small()).await;
        let r = emu.upsert(json!([item("A", "a@example.com"), item("B", "b@example.com")]), false, false).await;
        let (a, b) = (id_of(&r[0]), id_of(&r[1]));
        let generated = emu.learner("L000007").await;
        let path = "/api/v1/learners/lookup";
        let body = json!({"external_ids": ["B", "nope", "A"],
            "emails": ["A@EXAMPLE.COM", generated["email"].as_str().unwrap().to_uppercase(), "none@example.com"]});
        let (status, v) = emu.call("POST", path, Some(body)).await;
        assert_eq!(status, 200, "{v}");
        let found = v["learners"].as_array().unwrap();
        let ids: Vec<String> = found.iter().map(id_of).collect();
        assert_eq!(ids, [b.clone(), a.clone(), "L000007".to_string()], "each once, ids first");
        assert_eq!(found[2], generated, "rendered as the API renders it");
        let listed: Vec<learnlink_core::model::Learner> = serde_json::from_value(v["learners"].clone()).unwrap();
        assert_eq!(listed[0].fields["external_id"], "B");
        // Either list may be left out.
        let (status, v) = emu.call("POST", path, Some(json!({"emails": ["b@example.com"]}))).await;
        assert_eq!((status, v["learners"][0]["id"].as_str()), (200, Some(b.as_str())));
        let (status, v) = emu.call("POST", path, Some(json!({}))).await;
        assert_eq!((status, v), (200, json!({"learners": []})));
        // A changed generated learner is found by its new email, not the old one.
        let old = generated["email"].as_str().unwrap().to_owned();
        let (s, _) = emu.call("PATCH", "/api/v1/learners/L000007", Some(json!({"email": "moved@example.com"}))).await;
        assert_eq!(s, 200);
        let (_, v) = emu.call("POST", path, Some(json!({"emails": [old, "MOVED@example.com"]}))).await;
        assert_eq!(v["learners"].as_array().unwrap().iter().map(id_of).collect::<Vec<_>>(), ["L000007"]);

        let (status, _) = emu.send("POST", path, Some(json!({})), None).await;
        assert_eq!(status, 401);
        for (body, field) in [
            (json!({"emails": "a@example.com"}), "emails"),
            (json!({"external_ids": [null]}), "external_ids"),
            (json!({"names": []}), "names"),
        ] {
            let (status, v) = emu.call("POST", path, Some(body.clone())).await;
            assert_eq!((status, v["error"]["field"].as_str()), (400, Some(field)), "{body}: {v}");
        }
        let many: Vec<String> = (0..1001).map(|i| format!("x{i}@example.com")).collect();
        let (status, v) = emu.call("POST", path, Some(json!({"emails": many}))).await;
        assert_eq!(
            (status, v["error"]["code"].as_str(), v["error"]["field"].as_str()),
            (400, Some("too_many"), Some("emails"))
        );
        assert_eq!(emu.stats().await["requests"]["POST /api/v1/learners/lookup"], 9, "401s counted too");
    }

    #[tokio::test]
    async fn reset_forgets_imports_groups_and_welcome_emails() {
        let emu = start(small()).await;
        let mut a = item("A", "a@example.com");
        a["groups"] = json!(["Sales"]);
        emu.upsert(json!([a.clone()]), true, false).await;
        let (status, _) = emu.send("POST", "/__emulator/reset", None, None).await;
        assert_eq!(status, 200);
        assert!(emu.state.welcome_emails().is_empty());
        let (_, groups) = emu.call("GET", "/api/v1/groups", None).await;
        assert_eq!(groups["data"], json!([]));
        let stats = emu.stats().await;
        assert_eq!((stats["groups_created"].as_u64(), stats["learners_unchanged"].as_u64()), (Some(0), Some(0)));
        let r = emu.upsert(json!([a]), false, false).await;
        assert_eq!((r[0]["outcome"].as_str(), r[0]["id"].as_str()), (Some("created"), Some("L000030")));
    }

    /// 10,000 learners in 10 full batches of 1000, then all of them again
    /// (unchanged), beside 50,000 generated ones. How fast is `make bench`'s
    /// business (job2), not a test's.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ten_full_batches_create_then_leave_unchanged() {
        let emu =
            start(DatasetParams { seed: 2, learners: 50_000, departments: 10, courses: 1, enrollments_per_learner: 0 })
                .await;
        let bodies = |welcome: bool, remove: bool| -> Vec<Vec<u8>> {
            (0..10)
                .map(|call| {
                    let items: Vec<Value> = (0..1000)
                        .map(|k| {
                            let n = call * 1000 + k;
                            json!({"external_id": format!("SF{n:06}"), "email": format!("p{n}@example.com"),
                                "first_name": "P", "last_name": format!("N{n}"), "department_id": "D01",
                                "fields": {"title": "Engineer"}, "active": true, "groups": [format!("G{}", n % 50)]})
                        })
                        .collect();
                    let body = json!({"learners": items, "send_welcome_email": welcome && call % 2 == 0,
                        "remove_missing_groups": remove});
                    serde_json::to_vec(&body).unwrap()
                })
                .collect()
        };
        let sweep = |bodies: Vec<Vec<u8>>, expected: &'static str| {
            let (http, url) = (emu.http.clone(), format!("{}/api/v1/learners/upsert", emu.base));
            async move {
                for body in bodies {
                    let r = http.post(&url).bearer_auth(KEY).body(body).send().await.unwrap();
                    assert_eq!(r.status().as_u16(), 200);
                    let v: Value = r.json().await.unwrap();
                    let results = v["results"].as_array().unwrap();
                    assert!(
                        results.len() == 1000 && results.iter().all(|r| r["outcome"] == expected),
                        "{:?}",
                        results.first()
                    );
                }
            }
        };
        sweep(bodies(true, false), "created").await;
        sweep(bodies(false, true), "unchanged").await;
        let stats = emu.stats().await;
        assert_eq!(
            (stats["learners_created"].as_u64(), stats["learners_unchanged"].as_u64()),
            (Some(10_000), Some(10_000))
        );
        assert_eq!((stats["welcome_emails_sent"].as_u64(), stats["groups_created"].as_u64()), (Some(5_000), Some(50)));
        assert_eq!(emu.state.data().learner_count(), 60_000);
    }
}
