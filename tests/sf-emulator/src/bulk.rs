//! Bulk API 2.0: ingest jobs (create, upload CSV, UploadComplete / Aborted, processing
//! in the background through Open → UploadComplete → InProgress → JobComplete |
//! Failed, successful / failed / unprocessed results in an order that differs from
//! the upload order) and query jobs (results paged with `Sforce-Locator` /
//! `Sforce-NumberOfRecords` and `maxRecords`). Field names are those of the Bulk API
//! 2.0 documentation.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Map, Value as Json, json};

use crate::errors::RecordError;
use crate::ids;
use crate::rest::{ApiCall, admit, parse_body};
use crate::schema::FieldType;
use crate::soql;
use crate::state::SfState;
use crate::store::WriteCtx;
use crate::values::{format_datetime, now_ms};
use crate::write::{self, Claims, Operation, WriteOptions};

/// Records per internal batch (duplicate external ids are detected within one).
pub const INTERNAL_BATCH: usize = 10_000;
/// Records per processing chunk (one transaction; triggers see 200 at a time).
pub const CHUNK: usize = 200;
/// Largest upload accepted (Salesforce: 150 MB).
pub const MAX_UPLOAD_BYTES: usize = 150 * 1024 * 1024;

static EPOCH: AtomicU64 = AtomicU64::new(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Ingest,
    Query,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Open,
    UploadComplete,
    InProgress,
    JobComplete,
    Failed,
    Aborted,
}

impl JobState {
    pub fn name(self) -> &'static str {
        match self {
            JobState::Open => "Open",
            JobState::UploadComplete => "UploadComplete",
            JobState::InProgress => "InProgress",
            JobState::JobComplete => "JobComplete",
            JobState::Failed => "Failed",
            JobState::Aborted => "Aborted",
        }
    }
}

/// Outcome of one uploaded row.
#[derive(Debug, Clone)]
pub enum RowOutcome {
    Pending,
    Success { id: String, created: bool },
    Failed { id: String, error: String },
}

/// One Bulk API 2.0 job.
#[derive(Debug)]
pub struct Job {
    pub id: String,
    pub kind: JobKind,
    pub operation: String,
    pub object: String,
    pub external_id_field: Option<String>,
    pub created_by: String,
    pub created_ms: i64,
    pub modstamp_ms: i64,
    pub state: JobState,
    pub api_version: f64,
    pub line_ending: String,
    pub column_delimiter: String,
    pub uploads: Vec<Bytes>,
    pub header: Vec<String>,
    pub rows: Vec<csv::StringRecord>,
    pub outcomes: Vec<RowOutcome>,
    pub processed: usize,
    pub failed: usize,
    pub processing_ms: u64,
    pub error_message: Option<String>,
    /// Query jobs: the SOQL, its column headers and rendered rows.
    pub query: String,
    pub query_columns: Vec<String>,
    pub query_rows: Vec<Vec<String>>,
}

/// Jobs of the org.
#[derive(Debug)]
pub struct Jobs {
    pub list: Vec<Job>,
    by_id: HashMap<String, usize>,
    counter: u64,
    /// Changes on reset: background tasks of an older epoch stop.
    pub epoch: u64,
    day: i64,
    ingest_uploads_today: u64,
    query_jobs_today: u64,
}

impl Default for Jobs {
    fn default() -> Self {
        Jobs {
            list: Vec::new(),
            by_id: HashMap::new(),
            counter: 0,
            epoch: EPOCH.fetch_add(1, Ordering::Relaxed),
            day: now_ms().div_euclid(86_400_000),
            ingest_uploads_today: 0,
            query_jobs_today: 0,
        }
    }
}

impl Jobs {
    fn roll_day(&mut self) {
        let day = now_ms().div_euclid(86_400_000);
        if day != self.day {
            self.day = day;
            self.ingest_uploads_today = 0;
            self.query_jobs_today = 0;
        }
    }

    /// (ingest uploads, query jobs) of the day, for `/limits`.
    pub fn today_counts(&mut self) -> (u64, u64) {
        self.roll_day();
        (self.ingest_uploads_today, self.query_jobs_today)
    }

    /// Stops background processing (the org is being reset).
    pub fn cancel_all(&mut self) {
        self.epoch = EPOCH.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, id: &str) -> Option<&Job> {
        self.by_id.get(id).and_then(|i| self.list.get(*i))
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Job> {
        let i = *self.by_id.get(id)?;
        self.list.get_mut(i)
    }

    fn insert(&mut self, job: Job) {
        self.by_id.insert(job.id.clone(), self.list.len());
        self.list.push(job);
    }

    fn remove(&mut self, id: &str) {
        if let Some(i) = self.by_id.remove(id) {
            self.list.remove(i);
            for v in self.by_id.values_mut() {
                if *v > i {
                    *v -= 1;
                }
            }
        }
    }
}

fn bulk_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!([{ "errorCode": code, "message": message.into() }]);
    crate::errors::sf_json(status, &body)
}

fn not_found() -> Response {
    bulk_error(StatusCode::NOT_FOUND, "NOT_FOUND", "The requested resource does not exist")
}

fn delimiter_byte(name: &str) -> Option<u8> {
    Some(match name {
        "COMMA" => b',',
        "TAB" => b'\t',
        "PIPE" => b'|',
        "SEMICOLON" => b';',
        "CARET" => b'^',
        "BACKQUOTE" => b'`',
        _ => return None,
    })
}

/// Job info: the creation fields, plus the processing fields for `GET`.
fn info(job: &Job, full: bool) -> Json {
    let mut m = Map::new();
    m.insert("id".into(), json!(job.id));
    m.insert("operation".into(), json!(job.operation));
    m.insert("object".into(), json!(job.object));
    m.insert("createdById".into(), json!(job.created_by));
    m.insert("createdDate".into(), json!(format_datetime(job.created_ms)));
    m.insert("systemModstamp".into(), json!(format_datetime(job.modstamp_ms)));
    m.insert("state".into(), json!(job.state.name()));
    if let Some(f) = &job.external_id_field {
        m.insert("externalIdFieldName".into(), json!(f));
    }
    m.insert("concurrencyMode".into(), json!("Parallel"));
    m.insert("contentType".into(), json!("CSV"));
    m.insert("apiVersion".into(), json!(job.api_version));
    if full {
        m.insert("jobType".into(), json!(if job.kind == JobKind::Ingest { "V2Ingest" } else { "V2Query" }));
    }
    if job.kind == JobKind::Ingest && !full {
        m.insert(
            "contentUrl".into(),
            json!(format!("services/data/v{:.1}/jobs/ingest/{}/batches", job.api_version, job.id)),
        );
    }
    m.insert("lineEnding".into(), json!(job.line_ending));
    m.insert("columnDelimiter".into(), json!(job.column_delimiter));
    if full {
        m.insert("numberRecordsProcessed".into(), json!(job.processed));
        if job.kind == JobKind::Ingest {
            m.insert("numberRecordsFailed".into(), json!(job.failed));
        }
        m.insert("retries".into(), json!(0));
        m.insert("totalProcessingTime".into(), json!(job.processing_ms));
        if job.kind == JobKind::Ingest {
            m.insert("apiActiveProcessingTime".into(), json!(job.processing_ms));
            m.insert("apexProcessingTime".into(), json!(0));
        } else {
            m.insert("isPkChunkingSupported".into(), json!(true));
        }
        if let Some(e) = &job.error_message {
            m.insert("errorMessage".into(), json!(e));
        }
    }
    Json::Object(m)
}

fn json_resp(status: StatusCode, body: &Json) -> Response {
    crate::errors::sf_json(status, body)
}

/// Routes `/services/data/{version}/jobs/...`.
pub async fn handle(
    state: SfState,
    method: Method,
    version: String,
    segs: Vec<String>,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = method.as_str();
    let endpoint = match (m, s.as_slice()) {
        ("POST", ["jobs", "ingest"]) => "bulk_ingest_create",
        ("GET", ["jobs", "ingest"]) => "bulk_ingest_list",
        ("GET", ["jobs", "ingest", _]) => "bulk_ingest_info",
        ("PATCH", ["jobs", "ingest", _]) => "bulk_ingest_state",
        ("DELETE", ["jobs", "ingest", _]) => "bulk_ingest_delete",
        ("PUT", ["jobs", "ingest", _, "batches"]) => "bulk_ingest_upload",
        ("GET", ["jobs", "ingest", _, _]) => "bulk_ingest_results",
        ("POST", ["jobs", "query"]) => "bulk_query_create",
        ("GET", ["jobs", "query"]) => "bulk_query_list",
        ("GET", ["jobs", "query", _]) => "bulk_query_info",
        ("PATCH", ["jobs", "query", _]) => "bulk_query_state",
        ("DELETE", ["jobs", "query", _]) => "bulk_query_delete",
        ("GET", ["jobs", "query", _, "results"]) => "bulk_query_results",
        _ => "bulk_not_found",
    };
    let (call, ctx) = match admit(&state, &headers, "bulk", endpoint, m != "GET").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let version_num: f64 = version.trim_start_matches('v').parse().unwrap_or(63.0);
    let param = |n: &str| query.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let resp = match (m, s.as_slice()) {
        ("POST", ["jobs", kind @ ("ingest" | "query")]) => match parse_body(&body) {
            Err(e) => e.into_response(),
            Ok(b) => {
                let b = b.unwrap_or(Json::Null);
                if *kind == "ingest" {
                    create_ingest(&state, &ctx.user_id, version_num, &b)
                } else {
                    create_query(&state, &ctx.user_id, version_num, &b)
                }
            }
        },
        ("GET", ["jobs", kind @ ("ingest" | "query")]) => {
            let kind = if *kind == "ingest" { JobKind::Ingest } else { JobKind::Query };
            let org = state.org();
            let records: Vec<Json> = org.bulk.list.iter().filter(|j| j.kind == kind).map(|j| info(j, true)).collect();
            json_resp(StatusCode::OK, &json!({"done": true, "records": records, "nextRecordsUrl": null}))
        }
        ("GET", ["jobs", _, id]) => {
            let org = state.org();
            match org.bulk.get(id).filter(|j| kind_matches(j, s[1])) {
                Some(j) => json_resp(StatusCode::OK, &info(j, true)),
                None => not_found(),
            }
        }
        ("PATCH", ["jobs", kind, id]) => match parse_body(&body) {
            Err(e) => e.into_response(),
            Ok(b) => change_state(&state, kind, id, b.as_ref()),
        },
        ("DELETE", ["jobs", kind, id]) => {
            let mut org = state.org();
            match org.bulk.get(id).filter(|j| kind_matches(j, kind)).map(|j| j.state) {
                None => not_found(),
                Some(JobState::Open | JobState::InProgress) => bulk_error(
                    StatusCode::BAD_REQUEST,
                    "INVALIDJOBSTATE",
                    "Deleting a job is only allowed in the UploadComplete, JobComplete, Aborted or Failed state",
                ),
                Some(_) => {
                    org.bulk.remove(id);
                    StatusCode::NO_CONTENT.into_response()
                }
            }
        }
        ("PUT", ["jobs", "ingest", id, "batches"]) => upload(&state, id, &headers, body),
        ("GET", ["jobs", "ingest", id, which]) => results(&state, id, which),
        ("GET", ["jobs", "query", id, "results"]) => {
            query_results(&state, id, param("locator").as_deref(), param("maxRecords").as_deref())
        }
        _ => not_found(),
    };
    call_finish(call, resp)
}

fn call_finish(call: ApiCall, resp: Response) -> Response {
    call.finish(resp)
}

fn kind_matches(job: &Job, seg: &str) -> bool {
    matches!((job.kind, seg), (JobKind::Ingest, "ingest") | (JobKind::Query, "query"))
}

fn str_field<'a>(b: &'a Json, name: &str) -> Option<&'a str> {
    b.get(name).and_then(Json::as_str)
}

fn common_format(b: &Json) -> Result<(String, String), Response> {
    let content = str_field(b, "contentType").unwrap_or("CSV");
    if content != "CSV" {
        return Err(bulk_error(StatusCode::BAD_REQUEST, "INVALIDJOB", format!("Unsupported content type: {content}")));
    }
    let le = str_field(b, "lineEnding").unwrap_or("LF").to_owned();
    if le != "LF" && le != "CRLF" {
        return Err(bulk_error(StatusCode::BAD_REQUEST, "INVALIDJOB", format!("Invalid lineEnding: {le}")));
    }
    let cd = str_field(b, "columnDelimiter").unwrap_or("COMMA").to_owned();
    if delimiter_byte(&cd).is_none() {
        return Err(bulk_error(StatusCode::BAD_REQUEST, "INVALIDJOB", format!("Invalid columnDelimiter: {cd}")));
    }
    Ok((le, cd))
}

fn new_job(state: &SfState, kind: JobKind, user: &str, version: f64) -> Job {
    let now = now_ms();
    let mut org = state.org();
    org.bulk.counter += 1;
    let id = ids::mint("750", org.bulk.counter);
    Job {
        id,
        kind,
        operation: String::new(),
        object: String::new(),
        external_id_field: None,
        created_by: user.to_owned(),
        created_ms: now,
        modstamp_ms: now,
        state: JobState::Open,
        api_version: version,
        line_ending: "LF".into(),
        column_delimiter: "COMMA".into(),
        uploads: Vec::new(),
        header: Vec::new(),
        rows: Vec::new(),
        outcomes: Vec::new(),
        processed: 0,
        failed: 0,
        processing_ms: 0,
        error_message: None,
        query: String::new(),
        query_columns: Vec::new(),
        query_rows: Vec::new(),
    }
}

fn create_ingest(state: &SfState, user: &str, version: f64, b: &Json) -> Response {
    let schema = state.schema();
    let Some(object) = str_field(b, "object") else {
        return bulk_error(StatusCode::BAD_REQUEST, "INVALIDJOB", "The object field is required");
    };
    let Some(def) = schema.object(object) else {
        return bulk_error(
            StatusCode::BAD_REQUEST,
            "INVALIDENTITY",
            format!("sObject type '{object}' is not supported"),
        );
    };
    let operation = str_field(b, "operation").unwrap_or("");
    if !["insert", "update", "upsert", "delete", "hardDelete"].contains(&operation) {
        return bulk_error(StatusCode::BAD_REQUEST, "INVALIDJOB", format!("Invalid operation: {operation}"));
    }
    let ext = str_field(b, "externalIdFieldName").filter(|s| !s.is_empty());
    let ext_field = if operation == "upsert" {
        let Some(ext) = ext else {
            return bulk_error(
                StatusCode::BAD_REQUEST,
                "INVALIDJOB",
                format!("External ID was blank for {}. An External ID must be specified for upsert.", def.name),
            );
        };
        match def.field(ext).filter(|f| f.external_id || f.id_lookup) {
            Some(f) => Some(f.name.clone()),
            None => {
                return bulk_error(
                    StatusCode::BAD_REQUEST,
                    "INVALIDJOB",
                    format!("The field {ext} is not an external id field of {}", def.name),
                );
            }
        }
    } else {
        None
    };
    let (le, cd) = match common_format(b) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut job = new_job(state, JobKind::Ingest, user, version);
    job.operation = operation.to_owned();
    job.object = def.name.clone();
    job.external_id_field = ext_field;
    job.line_ending = le;
    job.column_delimiter = cd;
    let body = info(&job, false);
    state.org().bulk.insert(job);
    json_resp(StatusCode::OK, &body)
}

fn create_query(state: &SfState, user: &str, version: f64, b: &Json) -> Response {
    let operation = str_field(b, "operation").unwrap_or("query");
    if operation != "query" && operation != "queryAll" {
        return bulk_error(StatusCode::BAD_REQUEST, "INVALIDJOB", format!("Invalid operation: {operation}"));
    }
    let Some(q) = str_field(b, "query").filter(|q| !q.trim().is_empty()) else {
        return bulk_error(StatusCode::BAD_REQUEST, "INVALIDJOB", "The query field is required");
    };
    let parsed = match soql::parse(state.schema(), q) {
        Ok(p) => p,
        Err(e) => return bulk_error(StatusCode::BAD_REQUEST, &e.error_code, e.message),
    };
    if parsed.columns.is_none() {
        return bulk_error(
            StatusCode::BAD_REQUEST,
            "INVALIDJOB",
            "Aggregate queries are not supported by Bulk API 2.0",
        );
    }
    let (le, cd) = match common_format(b) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut job = new_job(state, JobKind::Query, user, version);
    job.operation = operation.to_owned();
    job.object = state.schema().objects.get(parsed.object).map(|d| d.name.clone()).unwrap_or_default();
    job.line_ending = le;
    job.column_delimiter = cd;
    job.query = q.to_owned();
    job.state = JobState::UploadComplete;
    let body = info(&job, false);
    let id = job.id.clone();
    let epoch = {
        let mut org = state.org();
        org.bulk.roll_day();
        org.bulk.query_jobs_today += 1;
        org.bulk.insert(job);
        org.bulk.epoch
    };
    tokio::spawn(run_query_job(state.clone(), id, epoch));
    json_resp(StatusCode::OK, &body)
}

fn change_state(state: &SfState, kind: &str, id: &str, b: Option<&Json>) -> Response {
    let target = b.and_then(|b| str_field(b, "state")).unwrap_or("");
    let (resp, spawn) = {
        let mut org = state.org();
        let epoch = org.bulk.epoch;
        let Some(job) = org.bulk.get_mut(id).filter(|j| kind_matches(j, kind)) else {
            return not_found();
        };
        let allowed = matches!(
            (target, job.state, job.kind),
            ("UploadComplete", JobState::Open, JobKind::Ingest)
                | ("Aborted", JobState::Open | JobState::UploadComplete | JobState::InProgress, _)
        );
        if !allowed {
            return bulk_error(
                StatusCode::BAD_REQUEST,
                "INVALIDJOBSTATE",
                format!("Invalid state transition from {} to {target}", job.state.name()),
            );
        }
        job.state = if target == "Aborted" { JobState::Aborted } else { JobState::UploadComplete };
        job.modstamp_ms = now_ms();
        (info(job, false), (target == "UploadComplete").then_some(epoch))
    };
    if let Some(epoch) = spawn {
        tokio::spawn(run_ingest_job(state.clone(), id.to_owned(), epoch));
    }
    json_resp(StatusCode::OK, &resp)
}

fn upload(state: &SfState, id: &str, headers: &HeaderMap, body: Bytes) -> Response {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("text/csv");
    if !ct.starts_with("text/csv") {
        return bulk_error(StatusCode::BAD_REQUEST, "INVALIDJOB", format!("Unsupported content type: {ct}"));
    }
    if body.len() > MAX_UPLOAD_BYTES {
        return bulk_error(StatusCode::BAD_REQUEST, "INVALIDJOB", "The upload exceeds the maximum size of 150 MB");
    }
    let mut org = state.org();
    org.bulk.roll_day();
    let Some(job) = org.bulk.get_mut(id).filter(|j| j.kind == JobKind::Ingest) else {
        return not_found();
    };
    if job.state != JobState::Open {
        return bulk_error(
            StatusCode::CONFLICT,
            "INVALIDJOBSTATE",
            format!("Unable to upload data for a job in state {}", job.state.name()),
        );
    }
    job.uploads.push(body);
    job.modstamp_ms = now_ms();
    org.bulk.ingest_uploads_today += 1;
    StatusCode::CREATED.into_response()
}

// ------------------------------------------------------------ processing

/// A column of the upload: a field, or `Relationship.Field` of a parent.
#[derive(Debug, Clone)]
enum Column {
    Field(String, FieldType),
    Relationship { rel: String, field: String },
}

fn parse_uploads(job: &Job) -> Result<(Vec<String>, Vec<csv::StringRecord>), String> {
    let delim = delimiter_byte(&job.column_delimiter).unwrap_or(b',');
    let mut header: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    for data in &job.uploads {
        let mut rb = csv::ReaderBuilder::new();
        rb.delimiter(delim).has_headers(true).flexible(true);
        if job.line_ending == "LF" {
            rb.terminator(csv::Terminator::Any(b'\n'));
        }
        let mut rdr = rb.from_reader(data.as_ref());
        let h: Vec<String> = rdr
            .headers()
            .map_err(|e| format!("InvalidBatch : Failed to parse CSV header: {e}"))?
            .iter()
            .map(|s| s.trim_start_matches('\u{feff}').to_owned())
            .collect();
        match &header {
            None => header = Some(h),
            Some(prev) if *prev != h => {
                return Err("InvalidBatch : The header of every upload of a job must be the same".to_owned());
            }
            Some(_) => {}
        }
        for rec in rdr.records() {
            rows.push(rec.map_err(|e| format!("InvalidBatch : Failed to parse CSV: {e}"))?);
        }
    }
    Ok((header.unwrap_or_default(), rows))
}

fn resolve_columns(state: &SfState, job: &Job, header: &[String]) -> Result<Vec<Column>, String> {
    let schema = state.schema();
    let Some(def) = schema.object(&job.object) else {
        return Err(format!("InvalidBatch : Unknown object {}", job.object));
    };
    if header.is_empty() || header.iter().all(String::is_empty) {
        return Err("InvalidBatch : No header row".to_owned());
    }
    let mut seen = HashSet::new();
    let mut cols = Vec::with_capacity(header.len());
    for h in header {
        if !seen.insert(h.to_ascii_lowercase()) {
            return Err(format!("InvalidBatch : Duplicate header: {h}"));
        }
        if matches!(job.operation.as_str(), "delete" | "hardDelete") && !h.eq_ignore_ascii_case("Id") {
            return Err(format!("InvalidBatch : Field name not valid for delete: {h}"));
        }
        if let Some(f) = def.field(h) {
            cols.push(Column::Field(f.name.clone(), f.ty.clone()));
        } else if let Some((rel, field)) = h.split_once('.') {
            let ok = def
                .relationship_field(rel)
                .and_then(|fi| def.fields.get(fi))
                .and_then(|f| f.ty.reference_target())
                .and_then(|t| schema.object(t))
                .is_some_and(|p| p.field(field).is_some());
            if !ok {
                return Err(format!("InvalidBatch : Field name not found : {h}"));
            }
            cols.push(Column::Relationship { rel: rel.to_owned(), field: field.to_owned() });
        } else {
            return Err(format!("InvalidBatch : Field name not found : {h}"));
        }
    }
    Ok(cols)
}

fn bulk_value(ty: &FieldType, raw: &str) -> Json {
    if raw == "#N/A" {
        return Json::Null;
    }
    if *ty == FieldType::Boolean {
        return match raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "y" => Json::Bool(true),
            "false" | "0" | "no" | "n" => Json::Bool(false),
            _ => Json::String(raw.to_owned()),
        };
    }
    Json::String(raw.to_owned())
}

/// A CSV row → the JSON record the write engine takes. Empty cells are left out
/// (not written); `#N/A` writes null.
fn row_to_record(cols: &[Column], row: &csv::StringRecord) -> Result<Json, String> {
    if row.len() != cols.len() {
        return Err(format!("INVALID_INPUT:The row has {} columns but the header has {}:-- ", row.len(), cols.len()));
    }
    let mut m = Map::new();
    for (c, v) in cols.iter().zip(row.iter()) {
        if v.is_empty() {
            continue;
        }
        match c {
            Column::Field(name, ty) => {
                m.insert(name.clone(), bulk_value(ty, v));
            }
            Column::Relationship { rel, field } => {
                let mut inner = Map::new();
                inner.insert(field.clone(), Json::String(v.to_owned()));
                m.insert(rel.clone(), Json::Object(inner));
            }
        }
    }
    Ok(Json::Object(m))
}

async fn pause(ms: u64) {
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    } else {
        tokio::task::yield_now().await;
    }
}

/// Processes an ingest job in the background.
async fn run_ingest_job(state: SfState, id: String, epoch: u64) {
    let start_delay = state.org().settings.bulk_start_delay_ms;
    pause(start_delay).await;
    let started = Instant::now();
    // Take the uploads out and parse them without holding the lock.
    let job_meta = {
        let mut org = state.org();
        if org.bulk.epoch != epoch {
            return;
        }
        let Some(job) = org.bulk.get_mut(&id) else { return };
        if job.state != JobState::UploadComplete {
            return;
        }
        job.state = JobState::InProgress;
        job.modstamp_ms = now_ms();
        Job { uploads: std::mem::take(&mut job.uploads), ..shallow(job) }
    };
    let parsed =
        parse_uploads(&job_meta).and_then(|(h, rows)| resolve_columns(&state, &job_meta, &h).map(|c| (h, rows, c)));
    let (header, rows, cols) = match parsed {
        Ok(x) => x,
        Err(message) => {
            let mut org = state.org();
            if let Some(job) = org.bulk.get_mut(&id) {
                job.state = JobState::Failed;
                job.error_message = Some(message);
                job.modstamp_ms = now_ms();
                job.processing_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            }
            return;
        }
    };
    let records: Vec<Result<Json, String>> = rows.iter().map(|r| row_to_record(&cols, r)).collect();
    let n = rows.len();
    {
        let mut org = state.org();
        if let Some(job) = org.bulk.get_mut(&id) {
            job.header = header;
            job.rows = rows;
            job.outcomes = vec![RowOutcome::Pending; n];
        }
    }
    let schema = state.schema();
    let object = schema.object_index(&job_meta.object);
    let op = match job_meta.operation.as_str() {
        "insert" => Some(Operation::Insert),
        "update" => Some(Operation::Update),
        "upsert" => object
            .and_then(|o| schema.objects.get(o))
            .and_then(|d| job_meta.external_id_field.as_deref().and_then(|f| d.field_index(f)))
            .map(|key_field| Operation::Upsert { key_field }),
        _ => None,
    };
    let chunk_delay = state.org().settings.bulk_chunk_delay_ms;
    let mut duplicates: HashSet<usize> = HashSet::new();
    let mut start = 0;
    while start < n {
        if start % INTERNAL_BATCH == 0 {
            duplicates = internal_batch_duplicates(&state, &job_meta, op, &records, start);
        }
        let end = (start + CHUNK).min(n);
        let stop = {
            let mut org = state.org();
            if org.bulk.epoch != epoch {
                return;
            }
            let aborted = org.bulk.get(&id).is_none_or(|j| j.state != JobState::InProgress);
            if aborted {
                true
            } else {
                let outcomes =
                    process_chunk(&state, &mut org, &job_meta, object, op, &records[start..end], start, &duplicates);
                let failed = outcomes.iter().filter(|o| matches!(o, RowOutcome::Failed { .. })).count();
                org.stats.bulk_records_processed += outcomes.len() as u64;
                org.stats.bulk_records_failed += failed as u64;
                org.stats.records_written += (outcomes.len() - failed) as u64;
                org.stats.records_failed += failed as u64;
                if let Some(job) = org.bulk.get_mut(&id) {
                    for (i, o) in outcomes.into_iter().enumerate() {
                        if let Some(slot) = job.outcomes.get_mut(start + i) {
                            *slot = o;
                        }
                    }
                    job.processed += end - start;
                    job.failed += failed;
                    job.modstamp_ms = now_ms();
                }
                false
            }
        };
        if stop {
            break;
        }
        start = end;
        pause(chunk_delay).await;
    }
    let mut org = state.org();
    if let Some(job) = org.bulk.get_mut(&id) {
        if job.state == JobState::InProgress {
            job.state = JobState::JobComplete;
        }
        job.modstamp_ms = now_ms();
        job.processing_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    }
}

/// A copy of a job's settings (no data).
fn shallow(job: &Job) -> Job {
    Job {
        id: job.id.clone(),
        kind: job.kind,
        operation: job.operation.clone(),
        object: job.object.clone(),
        external_id_field: job.external_id_field.clone(),
        created_by: job.created_by.clone(),
        created_ms: job.created_ms,
        modstamp_ms: job.modstamp_ms,
        state: job.state,
        api_version: job.api_version,
        line_ending: job.line_ending.clone(),
        column_delimiter: job.column_delimiter.clone(),
        uploads: Vec::new(),
        header: Vec::new(),
        rows: Vec::new(),
        outcomes: Vec::new(),
        processed: 0,
        failed: 0,
        processing_ms: 0,
        error_message: None,
        query: job.query.clone(),
        query_columns: Vec::new(),
        query_rows: Vec::new(),
    }
}

/// Rows (absolute positions) of the internal batch starting at `start` whose key
/// appears more than once in it.
fn internal_batch_duplicates(
    state: &SfState,
    job: &Job,
    op: Option<Operation>,
    records: &[Result<Json, String>],
    start: usize,
) -> HashSet<usize> {
    let schema = state.schema();
    let Some(def) = schema.object(&job.object) else { return HashSet::new() };
    let key_name = match op {
        Some(Operation::Upsert { key_field }) => def.fields.get(key_field).map(|f| (f.name.clone(), f.case_sensitive)),
        Some(Operation::Update) | None => Some(("Id".to_owned(), true)),
        Some(Operation::Insert) => None,
    };
    let Some((key, cs)) = key_name else { return HashSet::new() };
    let end = (start + INTERNAL_BATCH).min(records.len());
    let mut seen: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, r) in records.get(start..end).unwrap_or_default().iter().enumerate() {
        let Ok(Json::Object(m)) = r else { continue };
        let Some(v) = m.get(&key).and_then(Json::as_str) else { continue };
        let k = if key == "Id" {
            ids::normalize(v).unwrap_or_else(|| v.to_owned())
        } else if cs {
            v.to_owned()
        } else {
            v.to_lowercase()
        };
        seen.entry(k).or_default().push(start + i);
    }
    seen.into_values().filter(|v| v.len() > 1).flatten().collect()
}

#[allow(clippy::too_many_arguments)]
fn process_chunk(
    state: &SfState,
    org: &mut crate::state::Org,
    job: &Job,
    object: Option<usize>,
    op: Option<Operation>,
    chunk: &[Result<Json, String>],
    base: usize,
    duplicates: &HashSet<usize>,
) -> Vec<RowOutcome> {
    let schema = state.schema();
    let identity = org.identity.clone();
    let wctx = WriteCtx { user_id: &job.created_by, org_id: &identity.org_id, now_ms: now_ms() };
    let lock_fault = false;
    let fail = |e: &RecordError, id: &str| RowOutcome::Failed { id: id.to_owned(), error: e.bulk_text() };
    let Some(object) = object else {
        return chunk
            .iter()
            .map(|_| RowOutcome::Failed { id: String::new(), error: "INVALID_TYPE:unknown object:--".into() })
            .collect();
    };
    let id_of = |r: &Result<Json, String>| -> String {
        match r {
            Ok(Json::Object(m)) => m.get("Id").and_then(Json::as_str).and_then(ids::normalize).unwrap_or_default(),
            _ => String::new(),
        }
    };
    if matches!(job.operation.as_str(), "delete" | "hardDelete") {
        let mut out = Vec::with_capacity(chunk.len());
        for (i, r) in chunk.iter().enumerate() {
            let id = id_of(r);
            match r {
                Err(e) => out.push(RowOutcome::Failed { id, error: e.clone() }),
                Ok(_) if duplicates.contains(&(base + i)) => {
                    let e = RecordError::new("DUPLICATE_VALUE", format!("Duplicate id in list: {id}"), vec![]);
                    out.push(fail(&e, &id));
                }
                Ok(Json::Object(m)) => {
                    let raw = m.get("Id").and_then(Json::as_str).unwrap_or("").to_owned();
                    let res = write::delete_records(schema, &mut org.store, &[raw], false, lock_fault, false, wctx);
                    out.push(match res.into_iter().next() {
                        Some(r) if r.success => RowOutcome::Success { id: r.id.unwrap_or_default(), created: false },
                        Some(r) => match r.errors.first() {
                            Some(e) => fail(e, &id),
                            None => RowOutcome::Failed { id, error: "UNKNOWN_EXCEPTION:unknown:--".into() },
                        },
                        None => RowOutcome::Failed { id, error: "UNKNOWN_EXCEPTION:unknown:--".into() },
                    });
                }
                Ok(_) => out.push(RowOutcome::Failed { id, error: "INVALID_INPUT:bad row:--".into() }),
            }
        }
        return out;
    }
    let Some(op) = op else {
        return chunk
            .iter()
            .map(|_| RowOutcome::Failed { id: String::new(), error: "INVALID_OPERATION:unknown operation:--".into() })
            .collect();
    };
    let mut opts = WriteOptions::api(wctx, org.settings.automation);
    opts.lock_fault = lock_fault;
    // Plan every valid, non-duplicate row of the chunk together.
    let mut positions = Vec::new();
    let mut batch = Vec::new();
    let mut out: Vec<Option<RowOutcome>> = vec![None; chunk.len()];
    for (i, r) in chunk.iter().enumerate() {
        match r {
            Err(e) => out[i] = Some(RowOutcome::Failed { id: String::new(), error: e.clone() }),
            Ok(_) if duplicates.contains(&(base + i)) => {
                let (field, value) = match (op, r) {
                    (Operation::Upsert { key_field }, Ok(Json::Object(m))) => {
                        let f = schema
                            .objects
                            .get(object)
                            .and_then(|d| d.fields.get(key_field))
                            .map(|f| f.name.clone())
                            .unwrap_or_default();
                        let v = m.get(&f).and_then(Json::as_str).unwrap_or("").to_owned();
                        (f, v)
                    }
                    _ => ("Id".to_owned(), id_of(r)),
                };
                let e = RecordError::duplicate_external_id(&value, &field);
                out[i] = Some(fail(&e, &id_of(r)));
            }
            Ok(j) => {
                positions.push(i);
                batch.push(j.clone());
            }
        }
    }
    let mut claims = Claims::new();
    let planned = write::plan(schema, &org.store, object, op, &batch, opts, &mut claims, 0);
    let upsert = matches!(op, Operation::Upsert { .. });
    let results = write::finish(schema, &mut org.store, planned, upsert, opts);
    for (pos, r) in positions.into_iter().zip(results) {
        let row_id = id_of(&chunk[pos]);
        out[pos] = Some(if r.success {
            RowOutcome::Success { id: r.id.unwrap_or_default(), created: r.created.unwrap_or(op == Operation::Insert) }
        } else {
            match r.errors.first() {
                Some(e) => fail(e, &row_id),
                None => RowOutcome::Failed { id: row_id, error: "UNKNOWN_EXCEPTION:unknown:--".into() },
            }
        });
    }
    out.into_iter().map(|o| o.unwrap_or(RowOutcome::Pending)).collect()
}

// ------------------------------------------------------------ results

/// A deterministic permutation of `0..n` seeded by the job id (results come back
/// in an order that differs from the upload order, as on Salesforce).
pub fn shuffled(n: usize, seed_text: &str) -> Vec<usize> {
    let mut seed: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed_text.bytes() {
        seed ^= u64::from(b);
        seed = seed.wrapping_mul(0x0100_0000_01b3);
    }
    let mut next = move || {
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = usize::try_from(next() % (i as u64 + 1)).unwrap_or(0);
        v.swap(i, j);
    }
    v
}

fn csv_writer(job: &Job) -> csv::Writer<Vec<u8>> {
    let mut wb = csv::WriterBuilder::new();
    wb.delimiter(delimiter_byte(&job.column_delimiter).unwrap_or(b',')).quote_style(csv::QuoteStyle::Always);
    wb.terminator(if job.line_ending == "CRLF" { csv::Terminator::CRLF } else { csv::Terminator::Any(b'\n') });
    wb.from_writer(Vec::new())
}

fn csv_response(data: Vec<u8>) -> Response {
    let mut r = (StatusCode::OK, data).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv"));
    r
}

fn results(state: &SfState, id: &str, which: &str) -> Response {
    let org = state.org();
    let Some(job) = org.bulk.get(id).filter(|j| j.kind == JobKind::Ingest) else {
        return not_found();
    };
    let which = which.trim_end_matches('/');
    let mut w = csv_writer(job);
    let order = shuffled(job.rows.len().max(job.outcomes.len()), &job.id);
    let write_row = |w: &mut csv::Writer<Vec<u8>>, lead: &[&str], row: &csv::StringRecord| {
        let mut fields: Vec<&str> = lead.to_vec();
        fields.extend(row.iter());
        let _ = w.write_record(&fields);
    };
    match which {
        "successfulResults" => {
            let mut h = vec!["sf__Id", "sf__Created"];
            h.extend(job.header.iter().map(String::as_str));
            let _ = w.write_record(&h);
            for i in &order {
                if let (Some(RowOutcome::Success { id, created }), Some(row)) = (job.outcomes.get(*i), job.rows.get(*i))
                {
                    write_row(&mut w, &[id, if *created { "true" } else { "false" }], row);
                }
            }
        }
        "failedResults" => {
            let mut h = vec!["sf__Id", "sf__Error"];
            h.extend(job.header.iter().map(String::as_str));
            let _ = w.write_record(&h);
            for i in &order {
                if let (Some(RowOutcome::Failed { id, error }), Some(row)) = (job.outcomes.get(*i), job.rows.get(*i)) {
                    write_row(&mut w, &[id, error], row);
                }
            }
        }
        "unprocessedrecords" => {
            if job.rows.is_empty() && !job.uploads.is_empty() {
                // Never processed (aborted while Open / UploadComplete): the uploads as given.
                match parse_uploads(job) {
                    Ok((h, rows)) => {
                        let _ = w.write_record(&h);
                        for i in shuffled(rows.len(), &job.id) {
                            if let Some(r) = rows.get(i) {
                                let _ = w.write_record(r);
                            }
                        }
                    }
                    Err(_) => {
                        let data: Vec<u8> = job.uploads.iter().flat_map(|b| b.iter().copied()).collect();
                        return csv_response(data);
                    }
                }
            } else {
                let _ = w.write_record(&job.header);
                for i in &order {
                    if let (Some(RowOutcome::Pending), Some(row)) = (job.outcomes.get(*i), job.rows.get(*i)) {
                        let _ = w.write_record(row);
                    }
                }
            }
        }
        _ => return not_found(),
    }
    csv_response(w.into_inner().unwrap_or_default())
}

async fn run_query_job(state: SfState, id: String, epoch: u64) {
    let start_delay = state.org().settings.bulk_start_delay_ms;
    pause(start_delay).await;
    let started = Instant::now();
    let mut org = state.org();
    if org.bulk.epoch != epoch {
        return;
    }
    let Some(job) = org.bulk.get_mut(&id) else { return };
    if job.state != JobState::UploadComplete {
        return;
    }
    let (q, all) = (job.query.clone(), job.operation == "queryAll");
    let schema = state.schema();
    let outcome = soql::parse(schema, &q).map(|parsed| {
        let rows = soql::execute(schema, &org.store, &parsed, all);
        let cols = soql::column_names(schema, &parsed);
        let values: Vec<Vec<String>> = rows
            .iter()
            .map(|i| {
                soql::column_values(&org.store, &parsed, *i).iter().map(crate::values::FieldValue::to_csv).collect()
            })
            .collect();
        (cols, values)
    });
    let Some(job) = org.bulk.get_mut(&id) else { return };
    match outcome {
        Ok((cols, rows)) => {
            job.processed = rows.len();
            job.query_columns = cols;
            job.query_rows = rows;
            job.state = JobState::JobComplete;
        }
        Err(e) => {
            job.state = JobState::Failed;
            job.error_message = Some(e.message);
        }
    }
    job.modstamp_ms = now_ms();
    job.processing_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
}

fn encode_locator(offset: usize) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(offset.to_string())
}

fn decode_locator(loc: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::STANDARD_NO_PAD.decode(loc.trim_end_matches('=')).ok()?;
    String::from_utf8(raw).ok()?.parse().ok()
}

fn query_results(state: &SfState, id: &str, locator: Option<&str>, max: Option<&str>) -> Response {
    let org = state.org();
    let Some(job) = org.bulk.get(id).filter(|j| j.kind == JobKind::Query) else {
        return not_found();
    };
    if job.state != JobState::JobComplete {
        return bulk_error(
            StatusCode::BAD_REQUEST,
            "INVALIDJOBSTATE",
            format!("Results are only available for a job in state JobComplete; this job is {}", job.state.name()),
        );
    }
    let offset = match locator.filter(|l| !l.is_empty() && *l != "null") {
        None => 0,
        Some(l) => match decode_locator(l).filter(|o| *o <= job.query_rows.len()) {
            Some(o) => o,
            None => return bulk_error(StatusCode::BAD_REQUEST, "INVALID_QUERY_LOCATOR", "invalid query locator"),
        },
    };
    let page = match max {
        None => org.settings.bulk_query_page_size.max(1),
        Some(m) => match m.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => return bulk_error(StatusCode::BAD_REQUEST, "INVALIDJOB", format!("Invalid maxRecords: {m}")),
        },
    };
    let end = offset.saturating_add(page).min(job.query_rows.len());
    let mut w = csv_writer(job);
    let _ = w.write_record(&job.query_columns);
    for row in job.query_rows.get(offset..end).unwrap_or_default() {
        let _ = w.write_record(row);
    }
    let mut r = csv_response(w.into_inner().unwrap_or_default());
    let next = if end < job.query_rows.len() { encode_locator(end) } else { "null".to_owned() };
    if let Ok(v) = HeaderValue::from_str(&next) {
        r.headers_mut().insert("sforce-locator", v);
    }
    if let Ok(v) = HeaderValue::from_str(&(end - offset).to_string()) {
        r.headers_mut().insert("sforce-numberofrecords", v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_is_a_deterministic_permutation() {
        let a = shuffled(1000, "750Em0000000001AAA");
        let b = shuffled(1000, "750Em0000000001AAA");
        assert_eq!(a, b);
        assert_ne!(a, (0..1000).collect::<Vec<_>>());
        let mut s = a.clone();
        s.sort_unstable();
        assert_eq!(s, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn locators_round_trip() {
        assert_eq!(encode_locator(10000), "MTAwMDA");
        assert_eq!(decode_locator("MTAwMDA"), Some(10000));
    }
}
