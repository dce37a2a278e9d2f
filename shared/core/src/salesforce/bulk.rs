//! Bulk API 2.0 ingest (SPEC §6.3): the job documents, the upload plan
//! (CSV columns, rows, split into several jobs under the per-upload size
//! limit), the polling schedule, and the matching of result rows —
//! `successfulResults`, `failedResults`, `unprocessedrecords`, in any order —
//! back to the input records, so every record gets exactly one outcome in
//! the same shape Composite gives ([`RecordOutcome`]).

use super::{RecordFailure, RecordOutcome, SalesforceError, SfRecord, classify_error_code};
use crate::csv::{self, NULL_MARKER};
use crate::error::ErrorClass;
use crate::soql;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::time::Duration;

/// Salesforce accepts 150 MB of base64 per upload, i.e. about 100 MB of
/// CSV; larger inputs are split into several jobs.
pub const MAX_UPLOAD_BYTES: u64 = 100_000_000;

/// A Bulk API 2.0 ingest operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BulkOperation {
    Insert,
    Update,
    Upsert,
    Delete,
    HardDelete,
}

impl BulkOperation {
    pub fn as_str(self) -> &'static str {
        match self {
            BulkOperation::Insert => "insert",
            BulkOperation::Update => "update",
            BulkOperation::Upsert => "upsert",
            BulkOperation::Delete => "delete",
            BulkOperation::HardDelete => "hardDelete",
        }
    }

    /// Update and delete find records by `Id`; insert and upsert by the
    /// records' external id field.
    fn keyed_by_id(self) -> bool {
        matches!(self, BulkOperation::Update | BulkOperation::Delete | BulkOperation::HardDelete)
    }
}

/// The state of an ingest job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobState {
    Open,
    UploadComplete,
    InProgress,
    JobComplete,
    Failed,
    Aborted,
    #[serde(other)]
    Unknown,
}

impl JobState {
    pub fn is_terminal(self) -> bool {
        matches!(self, JobState::JobComplete | JobState::Failed | JobState::Aborted)
    }
}

/// The job document (create, close, and get-info answers).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobInfo {
    pub id: String,
    pub state: JobState,
    #[serde(default)]
    pub object: Option<String>,
    #[serde(default)]
    pub operation: Option<String>,
    #[serde(default)]
    pub external_id_field_name: Option<String>,
    #[serde(default)]
    pub content_url: Option<String>,
    #[serde(default)]
    pub number_records_processed: u64,
    #[serde(default)]
    pub number_records_failed: u64,
    #[serde(default)]
    pub error_message: Option<String>,
    /// A number (`62.0`) in answers; kept as sent.
    #[serde(default)]
    pub api_version: Option<Value>,
}

impl JobInfo {
    pub fn parse(body: &Value) -> Result<JobInfo, SalesforceError> {
        let info: JobInfo =
            serde_json::from_value(body.clone()).map_err(|e| SalesforceError::unreadable("reading a Bulk job", e))?;
        if info.id.is_empty() || !info.id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(SalesforceError::unexpected("Bulk job", "the job id is not a Salesforce id"));
        }
        Ok(info)
    }
}

/// The body that closes a job's upload and starts processing.
pub fn upload_complete_body() -> Value {
    json!({"state": "UploadComplete"})
}

/// The body that aborts a job.
pub fn abort_body() -> Value {
    json!({"state": "Aborted"})
}

/// Exponential backoff for polling a job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollSchedule {
    pub initial: Duration,
    pub factor: u32,
    pub max_delay: Duration,
    /// Polling stops (retryably) once the delays add up to this.
    pub max_total: Duration,
}

impl Default for PollSchedule {
    fn default() -> Self {
        PollSchedule {
            initial: Duration::from_secs(1),
            factor: 2,
            max_delay: Duration::from_secs(30),
            max_total: Duration::from_secs(10 * 60),
        }
    }
}

impl PollSchedule {
    /// The wait before poll number `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let mut d = self.initial;
        for _ in 0..attempt {
            d = d.saturating_mul(self.factor.max(1));
            if d >= self.max_delay {
                return self.max_delay;
            }
        }
        d.min(self.max_delay)
    }
}

/// One cell of the upload.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some(NULL_MARKER.to_string()),
        // In Bulk CSV an empty cell means "unchanged"; in JSON "" clears.
        Value::String(s) if s.is_empty() => Some(NULL_MARKER.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// A record's cells by column name: `attributes` dropped, relationship
/// objects (`{"attributes":…, "LMS_Learner_Id__c": "L1"}`) flattened to
/// `Contact__r.LMS_Learner_Id__c`.
fn flatten(body: &Map<String, Value>) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::with_capacity(body.len());
    for (k, v) in body {
        if k == "attributes" {
            continue;
        }
        match v {
            Value::Object(rel) => {
                for (k2, v2) in rel {
                    if k2 == "attributes" {
                        continue;
                    }
                    let cell = scalar(v2).ok_or_else(|| format!("field {k}.{k2} is nested too deep for CSV"))?;
                    out.push((format!("{k}.{k2}"), cell));
                }
            }
            other => out.push((k.clone(), scalar(other).ok_or_else(|| format!("field {k} holds a list"))?)),
        }
    }
    Ok(out)
}

/// One upload (one job) of a plan: indices into the input, and the exact
/// size of its CSV (header included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkPart {
    pub records: Vec<usize>,
    pub bytes: u64,
}

/// How a set of records goes to Salesforce through Bulk API 2.0.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkPlan {
    pub sobject: String,
    pub operation: BulkOperation,
    /// The column that identifies a record in the results: the external id
    /// field (insert, upsert) or `Id` (update, delete).
    pub key_field: String,
    pub columns: Vec<String>,
    pub parts: Vec<BulkPart>,
    /// Input records not sent, each with the reason (permanent).
    pub rejected: Vec<(usize, RecordFailure)>,
    header: Vec<u8>,
    column_index: HashMap<String, usize>,
}

fn rejected(code: &str, message: String) -> RecordFailure {
    RecordFailure { class: ErrorClass::Permanent, code: code.into(), message }
}

impl BulkPlan {
    /// Plan the upload of `records` (all of one sObject and key field).
    /// Records that cannot be sent — a duplicate key, a list value, a bad
    /// column name, a row over the size limit — are listed in `rejected`
    /// with a permanent failure; the rest are split into parts of at most
    /// `max_upload_bytes`.
    pub fn new(
        operation: BulkOperation,
        records: &[SfRecord],
        max_upload_bytes: u64,
    ) -> Result<BulkPlan, SalesforceError> {
        let first = records.first().ok_or_else(|| SalesforceError::invalid("a Bulk job needs at least one record"))?;
        let sobject = first.sobject;
        let key_field = first.external_id_field;
        soql::identifier(sobject)
            .and_then(|_| soql::identifier(key_field))
            .map_err(|e| SalesforceError::invalid(format!("Bulk job: {e}")))?;
        if operation.keyed_by_id() && key_field != "Id" {
            return Err(SalesforceError::invalid(format!(
                "a Bulk {} finds records by Id, not by {key_field}",
                operation.as_str()
            )));
        }
        if let Some(r) = records.iter().find(|r| r.sobject != sobject || r.external_id_field != key_field) {
            return Err(SalesforceError::invalid(format!(
                "one Bulk job writes one sObject by one key: {sobject}.{key_field} and {}.{} are mixed",
                r.sobject, r.external_id_field
            )));
        }

        // Pass 1: validate, find the columns (key first), drop duplicates.
        let mut rejected_list = Vec::new();
        let mut columns = vec![key_field.to_string()];
        let mut column_index: HashMap<String, usize> = HashMap::from([(key_field.to_string(), 0)]);
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut accepted = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            if r.external_id.is_empty() {
                rejected_list.push((i, rejected("MISSING_KEY", format!("the record has no {key_field} value"))));
                continue;
            }
            if let Some(&first_at) = seen.get(r.external_id.as_str()) {
                rejected_list.push((
                    i,
                    rejected(
                        "DUPLICATE_EXTERNAL_ID",
                        format!(
                            "{key_field} {} occurs more than once in the input; only its first occurrence \
                             (record {first_at}) was sent",
                            r.external_id
                        ),
                    ),
                ));
                continue;
            }
            if matches!(operation, BulkOperation::Delete | BulkOperation::HardDelete) {
                // Deletes upload the Id column only.
                seen.insert(&r.external_id, i);
                accepted.push(i);
                continue;
            }
            let cells = match flatten(&r.body.to_map()) {
                Ok(c) => c,
                Err(why) => {
                    rejected_list
                        .push((i, rejected("INVALID_FIELD_VALUE", format!("cannot be written as CSV: {why}"))));
                    continue;
                }
            };
            if let Some((col, _)) = cells.iter().find(|(c, _)| soql::identifier(c).is_err()) {
                rejected_list.push((i, rejected("INVALID_FIELD", format!("{col:?} is not a valid field name"))));
                continue;
            }
            if let Some((_, v)) = cells.iter().find(|(c, _)| c == key_field)
                && *v != r.external_id
            {
                rejected_list.push((
                    i,
                    rejected("INVALID_FIELD_VALUE", format!("the body's {key_field} differs from the record's key")),
                ));
                continue;
            }
            for (c, _) in &cells {
                if !column_index.contains_key(c) {
                    column_index.insert(c.clone(), columns.len());
                    columns.push(c.clone());
                }
            }
            seen.insert(&r.external_id, i);
            accepted.push(i);
        }

        let mut header = Vec::new();
        csv::write_row(&mut header, columns.iter().map(String::as_str));
        let mut plan = BulkPlan {
            sobject: sobject.to_string(),
            operation,
            key_field: key_field.to_string(),
            columns,
            parts: Vec::new(),
            rejected: Vec::new(),
            header,
            column_index,
        };

        // Pass 2: measure each row and fill parts up to the limit.
        let header_len = plan.header.len() as u64;
        let mut scratch = Vec::new();
        let mut current = BulkPart { records: Vec::new(), bytes: header_len };
        for i in accepted {
            scratch.clear();
            plan.encode_row(&records[i], &mut scratch);
            let len = scratch.len() as u64;
            if header_len + len > max_upload_bytes {
                rejected_list.push((
                    i,
                    rejected("RECORD_TOO_LARGE", format!("the record's CSV row ({len} bytes) exceeds one upload")),
                ));
                continue;
            }
            if current.bytes + len > max_upload_bytes {
                let full = std::mem::replace(&mut current, BulkPart { records: Vec::new(), bytes: header_len });
                plan.parts.push(full);
            }
            current.records.push(i);
            current.bytes += len;
        }
        if !current.records.is_empty() {
            plan.parts.push(current);
        }
        rejected_list.sort_by_key(|(i, _)| *i);
        plan.rejected = rejected_list;
        Ok(plan)
    }

    /// `POST /services/data/vXX.X/jobs/ingest` body.
    pub fn create_job_body(&self) -> Value {
        let mut body = Map::new();
        body.insert("object".into(), json!(self.sobject));
        body.insert("operation".into(), json!(self.operation.as_str()));
        if self.operation == BulkOperation::Upsert {
            body.insert("externalIdFieldName".into(), json!(self.key_field));
        }
        body.insert("contentType".into(), json!("CSV"));
        body.insert("columnDelimiter".into(), json!("COMMA"));
        body.insert("lineEnding".into(), json!("LF"));
        Value::Object(body)
    }

    /// The CSV header line.
    pub fn header(&self) -> &[u8] {
        &self.header
    }

    /// Append the CSV row of a record (one accepted by the plan). A column
    /// the record does not have is left empty: the field stays unchanged.
    pub fn encode_row(&self, record: &SfRecord, out: &mut Vec<u8>) {
        let mut cells: Vec<Option<String>> = vec![None; self.columns.len()];
        cells[0] = Some(record.external_id.clone());
        if !matches!(self.operation, BulkOperation::Delete | BulkOperation::HardDelete)
            && let Ok(flat) = flatten(&record.body.to_map())
        {
            for (c, v) in flat {
                if let Some(&at) = self.column_index.get(&c)
                    && at != 0
                {
                    cells[at] = Some(v);
                }
            }
        }
        csv::write_row(out, cells.iter().map(|c| c.as_deref().unwrap_or("")));
    }

    /// A matcher for the results of one part.
    pub fn matcher(&self, part: &BulkPart, records: &[SfRecord]) -> BulkMatcher {
        BulkMatcher::new(
            self.operation,
            &self.key_field,
            part.records.iter().filter_map(|&i| records.get(i)).map(|r| r.external_id.clone()),
        )
    }
}

/// The three result files of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultKind {
    Successful,
    Failed,
    Unprocessed,
}

impl ResultKind {
    pub const ALL: [ResultKind; 3] = [ResultKind::Successful, ResultKind::Failed, ResultKind::Unprocessed];

    /// The resource under `/jobs/ingest/<id>/`.
    pub fn resource(self) -> &'static str {
        match self {
            ResultKind::Successful => "successfulResults",
            ResultKind::Failed => "failedResults",
            ResultKind::Unprocessed => "unprocessedrecords",
        }
    }

    /// Which answer wins when a record shows up in several files.
    fn rank(self) -> u8 {
        match self {
            ResultKind::Successful => 2,
            ResultKind::Failed => 1,
            ResultKind::Unprocessed => 0,
        }
    }
}

/// `sf__Error` is `STATUS_CODE:message` (often ending with `:--` or a field
/// list); the code is classified like any Salesforce status code.
pub fn parse_bulk_error(text: &str) -> RecordFailure {
    let text = text.trim();
    let (code, message) = match text.split_once(':') {
        Some((code, rest))
            if !code.is_empty()
                && code.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                && code.as_bytes()[0].is_ascii_uppercase() =>
        {
            (code.to_string(), rest.trim().trim_end_matches(":--").trim_end().to_string())
        }
        _ => ("UNKNOWN_BULK_ERROR".to_string(), text.to_string()),
    };
    RecordFailure { class: classify_error_code(&code), code, message }
}

/// The outcome of the records Salesforce gave no result for, from the job's
/// final state.
pub fn unprocessed_failure(info: &JobInfo) -> RecordFailure {
    let detail = info.error_message.clone().unwrap_or_default();
    match info.state {
        JobState::Failed => {
            // A job refused as a whole for its content (unknown column, bad
            // object) fails the same way every time.
            let permanent = detail.starts_with("InvalidBatch") || detail.starts_with("InvalidJob");
            RecordFailure {
                class: if permanent { ErrorClass::Permanent } else { ErrorClass::Retryable },
                code: "BULK_JOB_FAILED".into(),
                message: format!("Bulk job {} failed before processing this record: {detail}", info.id),
            }
        }
        JobState::Aborted => RecordFailure {
            class: ErrorClass::Retryable,
            code: "BULK_JOB_ABORTED".into(),
            message: format!("Bulk job {} was aborted before processing this record", info.id),
        },
        _ => RecordFailure {
            class: ErrorClass::Retryable,
            code: "BULK_UNPROCESSED".into(),
            message: format!("Bulk job {} reported no result for this record", info.id),
        },
    }
}

#[derive(Debug, Clone, Copy)]
struct Columns {
    key: usize,
    id: Option<usize>,
    created: Option<usize>,
    error: Option<usize>,
}

/// Matches result rows to input records by key, whatever their order.
/// Every record ends with exactly one outcome: success beats failure beats
/// unprocessed; a record that appears nowhere counts as unprocessed.
#[derive(Debug)]
pub struct BulkMatcher {
    operation: BulkOperation,
    key_field: String,
    index: HashMap<String, usize>,
    outcomes: Vec<Option<(u8, RecordOutcome)>>,
    kind: ResultKind,
    columns: Option<Columns>,
    unexpected_rows: u64,
    duplicate_rows: u64,
}

/// What matching found.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchReport {
    /// One outcome per record of the part, in the part's order.
    pub outcomes: Vec<RecordOutcome>,
    /// Result rows whose key was not sent (ignored).
    pub unexpected_rows: u64,
    /// Result rows about a record that already had an answer.
    pub duplicate_rows: u64,
    /// Records no result file mentioned.
    pub missing_rows: u64,
}

impl BulkMatcher {
    pub fn new(operation: BulkOperation, key_field: &str, keys: impl IntoIterator<Item = String>) -> BulkMatcher {
        let mut index = HashMap::new();
        let mut n = 0;
        for k in keys {
            index.entry(k).or_insert(n);
            n += 1;
        }
        BulkMatcher {
            operation,
            key_field: key_field.to_string(),
            index,
            outcomes: vec![None; n],
            kind: ResultKind::Successful,
            columns: None,
            unexpected_rows: 0,
            duplicate_rows: 0,
        }
    }

    /// Start reading a result file; its first row is the header.
    pub fn begin(&mut self, kind: ResultKind) {
        self.kind = kind;
        self.columns = None;
    }

    fn header(&mut self, row: &[String]) -> Result<Columns, SalesforceError> {
        let find = |name: &str| {
            row.iter().position(|c| c == name).or_else(|| row.iter().position(|c| c.eq_ignore_ascii_case(name)))
        };
        let what = self.kind.resource();
        let key = find(&self.key_field).ok_or_else(|| {
            SalesforceError::unexpected("Bulk results", &format!("{what} has no {} column", self.key_field))
        })?;
        let cols = Columns { key, id: find("sf__Id"), created: find("sf__Created"), error: find("sf__Error") };
        match self.kind {
            ResultKind::Successful if cols.id.is_none() => {
                Err(SalesforceError::unexpected("Bulk results", "successfulResults has no sf__Id column"))
            }
            ResultKind::Failed if cols.error.is_none() => {
                Err(SalesforceError::unexpected("Bulk results", "failedResults has no sf__Error column"))
            }
            _ => Ok(cols),
        }
    }

    /// Take one parsed CSV row of the current file.
    pub fn row(&mut self, row: Vec<String>, unprocessed: &RecordFailure) -> Result<(), SalesforceError> {
        let Some(cols) = self.columns else {
            self.columns = Some(self.header(&row)?);
            return Ok(());
        };
        let cell = |i: Option<usize>| i.and_then(|i| row.get(i)).map(String::as_str).unwrap_or("");
        let key = cell(Some(cols.key));
        let Some(&at) = self.index.get(key) else {
            self.unexpected_rows += 1;
            return Ok(());
        };
        let outcome = match self.kind {
            ResultKind::Successful => {
                let id = cell(cols.id).to_string();
                let created = match self.operation {
                    BulkOperation::Insert => true,
                    BulkOperation::Upsert => cell(cols.created).eq_ignore_ascii_case("true"),
                    _ => false,
                };
                if created { RecordOutcome::Created { id } } else { RecordOutcome::Updated { id } }
            }
            ResultKind::Failed => RecordOutcome::Failed(parse_bulk_error(cell(cols.error))),
            ResultKind::Unprocessed => RecordOutcome::Failed(unprocessed.clone()),
        };
        let rank = self.kind.rank();
        match &mut self.outcomes[at] {
            Some((r, _)) if *r >= rank => self.duplicate_rows += 1,
            slot => {
                if slot.is_some() {
                    self.duplicate_rows += 1;
                }
                *slot = Some((rank, outcome));
            }
        }
        Ok(())
    }

    /// Every record's outcome; records without a result get `missing`.
    pub fn finish(self, missing: &RecordFailure) -> MatchReport {
        let mut missing_rows = 0;
        let outcomes = self
            .outcomes
            .into_iter()
            .map(|o| match o {
                Some((_, o)) => o,
                None => {
                    missing_rows += 1;
                    RecordOutcome::Failed(missing.clone())
                }
            })
            .collect();
        MatchReport {
            outcomes,
            unexpected_rows: self.unexpected_rows,
            duplicate_rows: self.duplicate_rows,
            missing_rows,
        }
    }
}

/// One job of a Bulk ingest, as it ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BulkJobSummary {
    /// Empty when the job could not be created.
    pub id: String,
    pub state: Option<JobState>,
    pub records: usize,
    pub bytes: u64,
    pub processed: u64,
    pub failed: u64,
    pub error_message: Option<String>,
}

/// The result of a Bulk ingest: one outcome per input record (input order),
/// the jobs it ran, and what matching noticed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BulkReport {
    pub outcomes: Vec<RecordOutcome>,
    pub jobs: Vec<BulkJobSummary>,
    pub unexpected_rows: u64,
    pub duplicate_rows: u64,
    pub missing_rows: u64,
    /// API calls made (0 where the caller does not count them).
    pub calls: u64,
}

impl BulkReport {
    /// `(created, updated, failed)` counts.
    pub fn counts(&self) -> (usize, usize, usize) {
        self.outcomes.iter().fold((0, 0, 0), |(c, u, f), o| match o {
            RecordOutcome::Created { .. } => (c + 1, u, f),
            RecordOutcome::Updated { .. } => (c, u + 1, f),
            RecordOutcome::Failed(_) => (c, u, f + 1),
        })
    }
}

/// What [`crate::ports::SalesforceApi::bulk_submit`] sent: the closed jobs
/// (each holding some of the records) and the records it did not send.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkSubmission {
    /// Job ids, in the plan's order.
    pub jobs: Vec<String>,
    /// Records refused by the plan (duplicate key, bad value: permanent) or
    /// of a part whose job failed before it was closed; by input index.
    pub not_sent: Vec<(usize, RecordFailure)>,
    /// API calls made.
    pub calls: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csv::parse_all;
    use crate::sync::{ENROLLMENT_EXTERNAL_ID, ENROLLMENT_OBJECT};
    use proptest::prelude::*;

    fn rec(id: &str, extra: Value) -> SfRecord {
        let mut body = Map::new();
        body.insert("attributes".into(), json!({"type": ENROLLMENT_OBJECT}));
        body.insert(ENROLLMENT_EXTERNAL_ID.into(), json!(id));
        body.insert("Contact__r".into(), json!({"attributes": {"type": "Contact"}, "LMS_Learner_Id__c": "L1"}));
        if let Value::Object(m) = extra {
            body.extend(m);
        }
        SfRecord {
            sobject: ENROLLMENT_OBJECT,
            external_id_field: ENROLLMENT_EXTERNAL_ID,
            external_id: id.into(),
            body: body.into(),
        }
    }

    fn csv_of(plan: &BulkPlan, records: &[SfRecord], part: &BulkPart) -> Vec<u8> {
        let mut out = plan.header().to_vec();
        for &i in &part.records {
            plan.encode_row(&records[i], &mut out);
        }
        out
    }

    #[test]
    fn plan_flattens_relationships_and_marks_nulls() {
        let records = vec![
            rec(
                "E1",
                json!({"Status__c": "Completed", "Score__c": 91.5, "Completed_At__c": null, "Note__c": "a, \"b\"\nc"}),
            ),
            rec("E2", json!({"Status__c": "Enrolled", "Course_Title__c": "", "Passed__c": false})),
        ];
        let plan = BulkPlan::new(BulkOperation::Upsert, &records, MAX_UPLOAD_BYTES).unwrap();
        assert_eq!(
            plan.columns,
            vec![
                "LMS_Enrollment_Id__c",
                "Contact__r.LMS_Learner_Id__c",
                "Status__c",
                "Score__c",
                "Completed_At__c",
                "Note__c",
                "Course_Title__c",
                "Passed__c"
            ]
        );
        assert_eq!(plan.parts.len(), 1);
        let data = csv_of(&plan, &records, &plan.parts[0]);
        assert_eq!(data.len() as u64, plan.parts[0].bytes);
        let rows = parse_all(&data).unwrap();
        assert_eq!(rows[1], vec!["E1", "L1", "Completed", "91.5", "#N/A", "a, \"b\"\nc", "", ""]);
        assert_eq!(rows[2], vec!["E2", "L1", "Enrolled", "", "", "", "#N/A", "false"]);
        assert_eq!(
            plan.create_job_body(),
            json!({"object": "LMS_Enrollment__c", "operation": "upsert", "externalIdFieldName": "LMS_Enrollment_Id__c",
                   "contentType": "CSV", "columnDelimiter": "COMMA", "lineEnding": "LF"})
        );
    }

    #[test]
    fn bad_records_are_rejected_not_sent() {
        let mut mismatched = rec("E4", json!({}));
        let mut m = mismatched.body.to_map();
        m.insert(ENROLLMENT_EXTERNAL_ID.into(), json!("OTHER"));
        mismatched.body = m.into();
        let records = vec![
            rec("E1", json!({})),
            rec("E1", json!({"Status__c": "dup"})),
            rec("E2", json!({"Tags__c": ["a"]})),
            rec("E3", json!({"Bad Name": "x"})),
            mismatched,
            rec("", json!({})),
            rec("E5", json!({})),
        ];
        let plan = BulkPlan::new(BulkOperation::Upsert, &records, MAX_UPLOAD_BYTES).unwrap();
        let codes: Vec<(usize, &str)> = plan.rejected.iter().map(|(i, f)| (*i, f.code.as_str())).collect();
        assert_eq!(
            codes,
            vec![
                (1, "DUPLICATE_EXTERNAL_ID"),
                (2, "INVALID_FIELD_VALUE"),
                (3, "INVALID_FIELD"),
                (4, "INVALID_FIELD_VALUE"),
                (5, "MISSING_KEY")
            ]
        );
        assert!(plan.rejected.iter().all(|(_, f)| f.class == ErrorClass::Permanent));
        assert_eq!(plan.parts[0].records, vec![0, 6]);
    }

    #[test]
    fn mixed_or_misdirected_input_is_refused_whole() {
        let mut other = rec("E2", json!({}));
        other.sobject = "Contact";
        assert!(BulkPlan::new(BulkOperation::Upsert, &[rec("E1", json!({})), other], MAX_UPLOAD_BYTES).is_err());
        assert!(BulkPlan::new(BulkOperation::Upsert, &[], MAX_UPLOAD_BYTES).is_err());
        assert!(BulkPlan::new(BulkOperation::Delete, &[rec("E1", json!({}))], MAX_UPLOAD_BYTES).is_err());
        let del = SfRecord {
            sobject: ENROLLMENT_OBJECT,
            external_id_field: "Id",
            external_id: "a0B000000000001AAA".into(),
            body: Map::new().into(),
        };
        let plan = BulkPlan::new(BulkOperation::Delete, std::slice::from_ref(&del), MAX_UPLOAD_BYTES).unwrap();
        assert_eq!(plan.columns, vec!["Id"]);
        assert_eq!(csv_of(&plan, &[del], &plan.parts[0]), b"Id\na0B000000000001AAA\n");
        assert!(plan.create_job_body().get("externalIdFieldName").is_none());
    }

    #[test]
    fn plan_splits_under_the_upload_limit() {
        let records: Vec<SfRecord> = (0..100).map(|i| rec(&format!("E{i:03}"), json!({"Status__c": "x"}))).collect();
        let plan = BulkPlan::new(BulkOperation::Upsert, &records, 300).unwrap();
        assert!(plan.parts.len() > 1);
        let mut all: Vec<usize> = Vec::new();
        for p in &plan.parts {
            assert!(p.bytes <= 300, "{}", p.bytes);
            assert_eq!(csv_of(&plan, &records, p).len() as u64, p.bytes);
            all.extend(&p.records);
        }
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        let tiny = BulkPlan::new(BulkOperation::Upsert, &records[..1], 40).unwrap();
        assert_eq!(tiny.rejected[0].1.code, "RECORD_TOO_LARGE");
        assert!(tiny.parts.is_empty());
    }

    #[test]
    fn bulk_errors_are_classified() {
        let f = parse_bulk_error("UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this record:--");
        assert_eq!((f.class, f.code.as_str()), (ErrorClass::Retryable, "UNABLE_TO_LOCK_ROW"));
        assert_eq!(f.message, "unable to obtain exclusive access to this record");
        let f = parse_bulk_error("REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --");
        assert_eq!(
            (f.class, f.message.as_str()),
            (ErrorClass::Permanent, "Required fields are missing: [Name]:Name --")
        );
        let f = parse_bulk_error("something odd");
        assert_eq!((f.class, f.code.as_str()), (ErrorClass::Permanent, "UNKNOWN_BULK_ERROR"));
        assert_eq!(parse_bulk_error("REQUEST_LIMIT_EXCEEDED:limit").class, ErrorClass::Throttled);
    }

    #[test]
    fn poll_schedule_backs_off_to_a_cap() {
        let s = PollSchedule::default();
        let d: Vec<u64> = (0..8).map(|i| s.delay(i).as_secs()).collect();
        assert_eq!(d, vec![1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(s.delay(u32::MAX).as_secs(), 30);
    }

    fn info(state: JobState, msg: Option<&str>) -> JobInfo {
        JobInfo::parse(&json!({"id": "750R0000000zlh9IAA", "state": state, "errorMessage": msg})).unwrap()
    }

    #[test]
    fn job_documents() {
        let j = JobInfo::parse(&json!({"id": "750R0000000zlh9IAA", "operation": "upsert", "object": "Account",
            "createdById": "005", "state": "JobComplete", "externalIdFieldName": "Ext__c", "concurrencyMode": "Parallel",
            "contentType": "CSV", "apiVersion": 62.0, "contentUrl": "services/data/v62.0/jobs/ingest/750R0000000zlh9IAA/batches",
            "lineEnding": "LF", "columnDelimiter": "COMMA", "numberRecordsProcessed": 4, "numberRecordsFailed": 1,
            "retries": 0, "totalProcessingTime": 170}))
        .unwrap();
        assert_eq!((j.state, j.number_records_processed, j.number_records_failed), (JobState::JobComplete, 4, 1));
        assert!(j.state.is_terminal() && !JobState::InProgress.is_terminal());
        assert_eq!(info(JobState::Open, None).state, JobState::Open);
        let odd = JobInfo::parse(&json!({"id": "750R0000000zlh9IAA", "state": "Queued"})).unwrap();
        assert_eq!(odd.state, JobState::Unknown);
        assert!(JobInfo::parse(&json!({"id": "../x", "state": "Open"})).is_err());
        assert_eq!(
            unprocessed_failure(&info(JobState::Failed, Some("InvalidBatch : Field name not found : X__c"))).class,
            ErrorClass::Permanent
        );
        assert_eq!(unprocessed_failure(&info(JobState::Failed, Some("Internal error"))).class, ErrorClass::Retryable);
        assert_eq!(unprocessed_failure(&info(JobState::Aborted, None)).code, "BULK_JOB_ABORTED");
    }

    #[test]
    fn results_match_back_whatever_the_order() {
        let unprocessed = unprocessed_failure(&info(JobState::JobComplete, None));
        let keys = ["E1", "E2", "E3", "E4", "E5"].map(String::from);
        let mut m = BulkMatcher::new(BulkOperation::Upsert, "LMS_Enrollment_Id__c", keys);
        let feed = |m: &mut BulkMatcher, kind, csv: &str| {
            m.begin(kind);
            for row in parse_all(csv.as_bytes()).unwrap() {
                m.row(row, &unprocessed).unwrap();
            }
        };
        feed(
            &mut m,
            ResultKind::Successful,
            "\"sf__Id\",\"sf__Created\",LMS_Enrollment_Id__c,Status__c\n\"a0B3\",\"false\",\"E3\",x\n\"a0B1\",\"true\",\"E1\",x\n\"a0B1\",\"true\",\"E1\",x\n\"a0B9\",\"true\",\"ZZ\",x\n",
        );
        feed(
            &mut m,
            ResultKind::Failed,
            "\"sf__Id\",\"sf__Error\",LMS_Enrollment_Id__c\n\"\",\"UNABLE_TO_LOCK_ROW:locked:--\",\"E2\"\n\"\",\"INVALID_FIELD:bad:--\",\"E3\"\n",
        );
        feed(&mut m, ResultKind::Unprocessed, "LMS_Enrollment_Id__c,Status__c\nE4,x\n");
        let r = m.finish(&unprocessed);
        assert_eq!(r.outcomes[0], RecordOutcome::Created { id: "a0B1".into() });
        assert_eq!(r.outcomes[1].failure_class(), Some(ErrorClass::Retryable));
        // E3 succeeded and failed: the success stands (the row was written).
        assert_eq!(r.outcomes[2], RecordOutcome::Updated { id: "a0B3".into() });
        assert_eq!(r.outcomes[3], RecordOutcome::Failed(unprocessed.clone()));
        assert_eq!(r.outcomes[4], RecordOutcome::Failed(unprocessed.clone()));
        assert_eq!((r.unexpected_rows, r.duplicate_rows, r.missing_rows), (1, 2, 1));
    }

    #[test]
    fn result_files_without_the_expected_columns_are_errors() {
        let unprocessed = unprocessed_failure(&info(JobState::JobComplete, None));
        let mut m = BulkMatcher::new(BulkOperation::Upsert, "Ext__c", ["a".to_string()]);
        m.begin(ResultKind::Successful);
        assert!(m.row(vec!["sf__Id".into(), "Other".into()], &unprocessed).is_err());
        m.begin(ResultKind::Failed);
        assert!(m.row(vec!["sf__Id".into(), "ext__c".into()], &unprocessed).is_err());
        m.begin(ResultKind::Successful);
        assert!(m.row(vec!["sf__Id".into(), "ext__c".into()], &unprocessed).is_ok(), "case-insensitive key column");
    }

    proptest! {
        /// However Salesforce orders and splits its answers, every input
        /// record gets exactly one outcome and none is silently dropped.
        #[test]
        fn every_record_gets_exactly_one_outcome(
            n in 1usize..40,
            answers in proptest::collection::vec(0u8..4, 40),
            order in proptest::collection::vec(any::<u32>(), 40),
        ) {
            let keys: Vec<String> = (0..n).map(|i| format!("K{i}")).collect();
            let unprocessed = RecordFailure { class: ErrorClass::Retryable, code: "BULK_UNPROCESSED".into(), message: String::new() };
            let mut ok = vec![(order[0], "sf__Id,sf__Created,Ext__c".to_string())];
            let mut failed = vec![(order[0], "sf__Id,sf__Error,Ext__c".to_string())];
            let mut unproc = vec![(order[0], "Ext__c".to_string())];
            for (i, (a, o)) in answers.iter().zip(&order).take(n).enumerate() {
                match a {
                    0 => ok.push((*o, format!("a{i},true,K{i}"))),
                    1 => failed.push((*o, format!(",INVALID_FIELD:x,K{i}"))),
                    2 => unproc.push((*o, format!("K{i}"))),
                    _ => {}
                }
            }
            let mut m = BulkMatcher::new(BulkOperation::Upsert, "Ext__c", keys.clone());
            for (kind, mut lines) in [(ResultKind::Failed, failed), (ResultKind::Unprocessed, unproc), (ResultKind::Successful, ok)] {
                let header = lines.remove(0).1;
                lines.sort();
                m.begin(kind);
                m.row(header.split(',').map(String::from).collect(), &unprocessed).unwrap();
                for (_, l) in lines {
                    m.row(l.split(',').map(String::from).collect(), &unprocessed).unwrap();
                }
            }
            let r = m.finish(&unprocessed);
            prop_assert_eq!(r.outcomes.len(), n);
            for (i, (a, out)) in answers.iter().zip(&r.outcomes).enumerate() {
                match a {
                    0 => prop_assert_eq!(out, &RecordOutcome::Created { id: format!("a{i}") }),
                    1 => prop_assert_eq!(out.failure_class(), Some(ErrorClass::Permanent)),
                    _ => prop_assert_eq!(out, &RecordOutcome::Failed(unprocessed.clone())),
                }
            }
            prop_assert_eq!(r.missing_rows, answers[..n].iter().filter(|&&a| a == 3).count() as u64);
        }
    }
}
