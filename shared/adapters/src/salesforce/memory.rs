//! In-memory fake of the Salesforce API: upserts by external id (Composite
//! and Bulk API 2.0, which processes a job at once), checks the Contact
//! reference, creates and updates records by Id, answers the one filtered
//! query shape the kill switch needs, rotates refresh tokens, and plays
//! scripted failures.

use async_trait::async_trait;
use learnlink_core::ErrorClass;
use learnlink_core::ports::SalesforceApi;
use learnlink_core::salesforce::bulk::{
    BulkJobSummary, BulkOperation, BulkPlan, BulkReport, BulkSubmission, JobState, MAX_UPLOAD_BYTES,
};
use learnlink_core::salesforce::{
    RecordFailure, RecordOutcome, SalesforceError, Session, SfRecord, TokenSet, classify_error_code,
};
use learnlink_core::sync::{CONTACT_EXTERNAL_ID, CompositeCall};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

/// A scripted answer for the next call.
#[derive(Debug, Clone)]
pub enum Script {
    /// The whole call fails with this Salesforce error code (HTTP status).
    Fail { status: u16, code: String },
    /// Every record of the call fails with this per-record status code.
    RecordError(String),
}

#[derive(Default)]
struct Inner {
    /// Authorization codes the fake accepts: code → (verifier, redirect uri).
    codes: HashMap<String, (String, String)>,
    /// Answers for `query`, by the SOQL's FROM object.
    query_rows: HashMap<String, Vec<Map<String, Value>>>,
    /// When set, every call (limits included) fails with this HTTP status.
    outage: Option<u16>,
    records: HashMap<(String, String), (String, Map<String, Value>)>,
    contacts: HashSet<String>,
    /// Contact id → the learner id it carries (Contacts written through the fake).
    contact_learner: HashMap<String, String>,
    queries: usize,
    valid_access: HashSet<String>,
    valid_refresh: HashSet<String>,
    script: VecDeque<Script>,
    calls: usize,
    refreshes: usize,
    next_id: u64,
    /// Bulk jobs run (`750MEM…`), by id.
    bulk_jobs: HashMap<String, MemJob>,
    bulk_counter: u64,
    /// Scripted answers for the next `bulk_submit` calls.
    bulk_script: VecDeque<Script>,
    /// Records written by `create_record`, by sObject, each with its `Id`.
    objects: HashMap<String, Vec<Map<String, Value>>>,
}

/// A Bulk job of the fake: processed when submitted; each record's outcome
/// by external id, in upload order.
struct MemJob {
    outcomes: Vec<(String, RecordOutcome)>,
    failed: u64,
}

#[derive(Default)]
pub struct MemorySalesforce {
    inner: Mutex<Inner>,
    /// How long each Composite call takes before it is applied.
    latency: Mutex<std::time::Duration>,
}

impl MemorySalesforce {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queries answered so far.
    pub fn queries(&self) -> usize {
        self.lock().queries
    }

    /// Whether a Contact carries this learner id now.
    pub fn has_contact(&self, learner_id: &str) -> bool {
        self.lock().contacts.contains(learner_id)
    }

    /// A Contact with this `LMS_Learner_Id__c` exists.
    pub fn add_contact(&self, learner_id: &str) {
        self.lock().contacts.insert(learner_id.to_string());
    }

    /// Mint a token pair the fake accepts.
    pub fn issue_tokens(&self, access: &str, refresh: &str) {
        let mut g = self.lock();
        g.valid_access.insert(access.to_string());
        g.valid_refresh.insert(refresh.to_string());
    }

    pub fn expire_sessions(&self) {
        self.lock().valid_access.clear();
    }

    pub fn push_script(&self, s: Script) {
        self.lock().script.push_back(s);
    }

    pub fn record(&self, sobject: &str, external_id: &str) -> Option<Map<String, Value>> {
        self.lock().records.get(&(sobject.to_string(), external_id.to_string())).map(|(_, m)| m.clone())
    }

    pub fn record_count(&self) -> usize {
        self.lock().records.len()
    }

    /// Every record the fake holds for `sobject`, each with its `Id`: those
    /// written by `create_record` (as created, then updated), then those
    /// upserted by Composite or Bulk (their last body), by Id.
    pub fn sobject_records(&self, sobject: &str) -> Vec<Map<String, Value>> {
        let g = self.lock();
        let mut out = g.objects.get(sobject).cloned().unwrap_or_default();
        let mut upserted: Vec<Map<String, Value>> = g
            .records
            .iter()
            .filter(|((o, _), _)| o == sobject)
            .map(|(_, (id, body))| {
                let mut m = body.clone();
                m.insert("Id".into(), Value::String(id.clone()));
                m
            })
            .collect();
        upserted.sort_by(|a, b| a["Id"].as_str().cmp(&b["Id"].as_str()));
        out.extend(upserted);
        out
    }

    /// The answer of the next `bulk_submit`: `Fail` refuses the whole call
    /// (nothing sent, as when the first job cannot be created: a throttled
    /// org is `Fail { status: 403, code: "REQUEST_LIMIT_EXCEEDED" }`);
    /// `RecordError` fails every record of its jobs with that code (read
    /// back by `bulk_outcomes`). Separate from [`Self::push_script`].
    pub fn push_bulk_script(&self, s: Script) {
        self.lock().bulk_script.push_back(s);
    }

    /// The ids of the Bulk jobs run so far, in order.
    pub fn bulk_jobs(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.lock().bulk_jobs.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Every Composite call from now on waits this long, then is applied
    /// (writes land in the order calls end, as concurrent callers see them).
    pub fn set_latency(&self, d: std::time::Duration) {
        *self.latency.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = d;
    }

    pub fn calls(&self) -> usize {
        self.lock().calls
    }

    pub fn refreshes(&self) -> usize {
        self.lock().refreshes
    }

    /// Accept `code` once, for this PKCE verifier and redirect URI.
    pub fn issue_code(&self, code: &str, verifier: &str, redirect_uri: &str) {
        self.lock().codes.insert(code.into(), (verifier.into(), redirect_uri.into()));
    }

    /// Rows answered for queries on `object`.
    pub fn set_query_rows(&self, object: &str, rows: Vec<Map<String, Value>>) {
        self.lock().query_rows.insert(object.into(), rows);
    }

    /// Every call fails with this HTTP status (None: the outage is over).
    pub fn set_outage(&self, status: Option<u16>) {
        self.lock().outage = status;
    }

    /// Revoke every refresh token (a password reset).
    pub fn revoke_all(&self) {
        let mut g = self.lock();
        g.valid_refresh.clear();
        g.valid_access.clear();
    }

    fn outage_error(status: u16) -> SalesforceError {
        SalesforceError::Api {
            class: learnlink_core::salesforce::classify_http_status(status),
            status,
            code: format!("HTTP_{status}"),
            message: "scripted outage".into(),
        }
    }
}

impl Inner {
    /// The checks every data call passes (after being counted).
    fn admit(&self, session: &Session) -> Result<(), SalesforceError> {
        if let Some(status) = self.outage {
            return Err(MemorySalesforce::outage_error(status));
        }
        if !self.valid_access.contains(session.access_token.expose_secret()) {
            return Err(SalesforceError::SessionExpired);
        }
        Ok(())
    }

    /// One record upserted (Composite or Bulk): a Contact by learner id or
    /// Id; any other object by its external id, once its Contact reference
    /// (`Contact__r.LMS_Learner_Id__c`) is found.
    fn write_record(&mut self, sobject: &str, by_id: bool, record: &SfRecord) -> RecordOutcome {
        if sobject == "Contact" {
            return self.write_contact(by_id, &record.external_id, &record.body.to_map());
        }
        let contact = record.body.get("Contact__r");
        let learner = contact.as_ref().and_then(|v| v.get(CONTACT_EXTERNAL_ID)).and_then(Value::as_str);
        if let Some(l) = learner
            && !self.contacts.contains(l)
        {
            return RecordOutcome::Failed(RecordFailure {
                class: classify_error_code("INVALID_FIELD"),
                code: "INVALID_FIELD".into(),
                message: format!(
                    "Foreign key external ID: {l} not found for field {CONTACT_EXTERNAL_ID} in entity Contact"
                ),
            });
        }
        let key = (sobject.to_string(), record.external_id.clone());
        let outcome = match self.records.get(&key) {
            Some((id, _)) => RecordOutcome::Updated { id: id.clone() },
            None => {
                self.next_id += 1;
                RecordOutcome::Created { id: format!("a0B{:015}", self.next_id) }
            }
        };
        if let RecordOutcome::Created { id } | RecordOutcome::Updated { id } = &outcome {
            self.records.insert(key, (id.clone(), record.body.to_map()));
        }
        outcome
    }

    /// A Contact write: link/unlink/move by Id, or create by learner id.
    fn write_contact(&mut self, by_id: bool, key: &str, body: &Map<String, Value>) -> RecordOutcome {
        let learner = body.get(CONTACT_EXTERNAL_ID);
        if by_id {
            match learner {
                Some(Value::String(l)) => {
                    self.contacts.insert(l.clone());
                    self.contact_learner.insert(key.to_string(), l.clone());
                }
                Some(Value::Null) => {
                    if let Some(l) = self.contact_learner.remove(key) {
                        self.contacts.remove(&l);
                    }
                }
                _ => {}
            }
            return RecordOutcome::Updated { id: key.to_string() };
        }
        if let Some((id, _)) = self.contact_learner.iter().find(|(_, l)| l.as_str() == key) {
            return RecordOutcome::Updated { id: id.clone() };
        }
        self.next_id += 1;
        let id = format!("003{:015}", self.next_id);
        self.contacts.insert(key.to_string());
        self.contact_learner.insert(id.clone(), key.to_string());
        RecordOutcome::Created { id }
    }
}

#[async_trait]
impl SalesforceApi for MemorySalesforce {
    async fn composite_upsert(
        &self,
        session: &Session,
        call: &CompositeCall,
    ) -> Result<Vec<Vec<RecordOutcome>>, SalesforceError> {
        let latency = *self.latency.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let mut g = self.lock();
        g.calls += 1;
        if let Some(status) = g.outage {
            return Err(Self::outage_error(status));
        }
        if !g.valid_access.contains(session.access_token.expose_secret()) {
            return Err(SalesforceError::SessionExpired);
        }
        let per_record_error = scripted(g.script.pop_front())?;
        let mut out = Vec::new();
        for c in &call.collections {
            let mut outcomes = Vec::new();
            if c.sobject == "Contact" && per_record_error.is_none() {
                for r in &c.records {
                    outcomes.push(g.write_contact(c.is_update_by_id(), &r.record.external_id, &r.record.body.to_map()));
                }
                out.push(outcomes);
                continue;
            }
            for r in &c.records {
                outcomes.push(match &per_record_error {
                    Some(code) => RecordOutcome::Failed(scripted_record_failure(code)),
                    None => g.write_record(c.sobject, c.is_update_by_id(), &r.record),
                });
            }
            out.push(outcomes);
        }
        Ok(out)
    }

    async fn refresh(
        &self,
        _login_url: &str,
        _client_id: &str,
        refresh_token: &SecretString,
    ) -> Result<TokenSet, SalesforceError> {
        let mut g = self.lock();
        if let Some(status) = g.outage {
            return Err(Self::outage_error(status));
        }
        g.refreshes += 1;
        if !g.valid_refresh.remove(refresh_token.expose_secret()) {
            return Err(SalesforceError::InvalidGrant { description: "expired access/refresh token".into() });
        }
        let n = g.refreshes;
        let access = format!("access-{n}");
        let refresh = format!("refresh-{n}");
        g.valid_access.insert(access.clone());
        g.valid_refresh.insert(refresh.clone());
        Ok(TokenSet {
            access_token: SecretString::from(access),
            refresh_token: SecretString::from(refresh),
            instance_url: "https://fake.my.salesforce.com".into(),
            issued_at: None,
            user_id: None,
            org_id: None,
            env: None,
        })
    }

    async fn exchange_code(
        &self,
        _login_url: &str,
        _client_id: &str,
        code: &SecretString,
        redirect_uri: &str,
        code_verifier: &SecretString,
    ) -> Result<TokenSet, SalesforceError> {
        let mut g = self.lock();
        let Some((verifier, redirect)) = g.codes.remove(code.expose_secret()) else {
            return Err(SalesforceError::InvalidGrant { description: "invalid authorization code".into() });
        };
        if verifier != code_verifier.expose_secret() || redirect != redirect_uri {
            return Err(SalesforceError::InvalidGrant { description: "invalid code verifier".into() });
        }
        let access = format!("access-code-{}", code.expose_secret());
        let refresh = format!("refresh-code-{}", code.expose_secret());
        g.valid_access.insert(access.clone());
        g.valid_refresh.insert(refresh.clone());
        Ok(TokenSet {
            access_token: SecretString::from(access),
            refresh_token: SecretString::from(refresh),
            instance_url: "https://fake.my.salesforce.com".into(),
            issued_at: None,
            user_id: Some("005000000000001AAA".into()),
            org_id: Some("00D000000000001AAA".into()),
            env: None,
        })
    }

    fn last_usage(&self, _instance_url: &str) -> Option<learnlink_core::budget::ApiUsage> {
        let g = self.lock();
        Some(learnlink_core::budget::ApiUsage { used: g.calls as u64, limit: 15_000 })
    }

    async fn limits(&self, session: &Session) -> Result<learnlink_core::budget::OrgLimits, SalesforceError> {
        let mut g = self.lock();
        g.calls += 1;
        if let Some(status) = g.outage {
            return Err(Self::outage_error(status));
        }
        if !g.valid_access.contains(session.access_token.expose_secret()) {
            return Err(SalesforceError::SessionExpired);
        }
        let body = serde_json::json!({"DailyApiRequests": {"Max": 15000, "Remaining": 15000 - g.calls as u64}});
        learnlink_core::budget::OrgLimits::parse(&body)
            .map_err(|e| SalesforceError::Transport(learnlink_core::PortError::retryable(e.to_string())))
    }

    async fn query(&self, session: &Session, soql: &str) -> Result<Vec<Map<String, Value>>, SalesforceError> {
        let mut g = self.lock();
        g.calls += 1;
        g.queries += 1;
        if let Some(status) = g.outage {
            return Err(Self::outage_error(status));
        }
        if !g.valid_access.contains(session.access_token.expose_secret()) {
            return Err(SalesforceError::SessionExpired);
        }
        let object = soql
            .split_whitespace()
            .skip_while(|w| !w.eq_ignore_ascii_case("FROM"))
            .nth(1)
            .unwrap_or_default()
            .to_string();
        if let Some(rows) = g.query_rows.get(&object) {
            return Ok(rows.clone());
        }
        match g.objects.get(&object) {
            Some(stored) => select_stored(soql, &object, stored),
            None => Ok(Vec::new()),
        }
    }

    /// Every row of the queried object in one page (the fake reads no
    /// WHERE clause beyond [`select_stored`]'s: tests that need SOQL use
    /// the emulator).
    async fn query_page(
        &self,
        session: &Session,
        cursor: &learnlink_core::salesforce::query::QueryCursor,
    ) -> Result<learnlink_core::salesforce::query::QueryPage, SalesforceError> {
        use learnlink_core::salesforce::query::{QueryCursor, QueryPage};
        let QueryCursor::Start { soql, .. } = cursor else {
            return Err(SalesforceError::Api {
                class: learnlink_core::ErrorClass::Permanent,
                status: 400,
                code: "INVALID_QUERY_LOCATOR".into(),
                message: "the fake has one page per query".into(),
            });
        };
        let records = self.query(session, soql).await?;
        Ok(QueryPage { total_size: records.len() as u64, done: true, records, next_records_url: None })
    }
    /// Bulk upsert, processed at once: the plan's rejections come back in
    /// `not_sent`; each part becomes a job (`750MEM…`) whose records are
    /// upserted as Composite upserts them (Contact reference checked) and
    /// whose outcomes are kept for `bulk_outcomes`. Counts 3 calls per job
    /// (create, upload, close) like the client.
    async fn bulk_submit(&self, session: &Session, records: &[SfRecord]) -> Result<BulkSubmission, SalesforceError> {
        let plan = BulkPlan::new(BulkOperation::Upsert, records, MAX_UPLOAD_BYTES)?;
        if plan.parts.is_empty() {
            return Ok(BulkSubmission { jobs: Vec::new(), not_sent: plan.rejected, calls: 0 });
        }
        let mut g = self.lock();
        // The first job's creation; the rest is counted once it is through.
        g.calls += 1;
        g.admit(session)?;
        let per_record_error = scripted(g.bulk_script.pop_front())?;
        let by_id = plan.key_field == "Id";
        let mut jobs = Vec::with_capacity(plan.parts.len());
        for part in &plan.parts {
            g.bulk_counter += 1;
            let id = format!("750MEM{:012}", g.bulk_counter);
            let mut job = MemJob { outcomes: Vec::with_capacity(part.records.len()), failed: 0 };
            for r in part.records.iter().filter_map(|&i| records.get(i)) {
                let outcome = match &per_record_error {
                    Some(code) => RecordOutcome::Failed(scripted_record_failure(code)),
                    None => g.write_record(&plan.sobject, by_id, r),
                };
                if matches!(outcome, RecordOutcome::Failed(_)) {
                    job.failed += 1;
                }
                job.outcomes.push((r.external_id.clone(), outcome));
            }
            g.bulk_jobs.insert(id.clone(), job);
            jobs.push(id);
        }
        let calls = 3 * jobs.len() as u64;
        g.calls += calls as usize - 1;
        Ok(BulkSubmission { jobs, not_sent: plan.rejected, calls })
    }

    /// The kept outcomes of `jobs`, matched onto `records` by external id
    /// like the client: the first record with a key gets its outcome, a
    /// record no job names is `BULK_UNPROCESSED` (retryable), outcomes of
    /// keys not among `records` are unexpected and ignored. Counts a job
    /// info and `successfulResults` per job, plus `failedResults` when the
    /// job has failures. An unknown job is `NOT_FOUND`; an outage or an
    /// expired session before any job was read fails the call, later ones
    /// leave the remaining outcomes unknown (retryable).
    async fn bulk_outcomes(
        &self,
        session: &Session,
        jobs: &[String],
        records: &[SfRecord],
    ) -> Result<BulkReport, SalesforceError> {
        let mut report = BulkReport::default();
        if records.is_empty() {
            return Ok(report);
        }
        let mut g = self.lock();
        let wanted: HashSet<&str> = records.iter().map(|r| r.external_id.as_str()).collect();
        let mut found: HashMap<String, RecordOutcome> = HashMap::new();
        let mut unknown: Option<RecordFailure> = None;
        let mut first_error: Option<SalesforceError> = None;
        let mut read_any = false;
        for id in jobs {
            report.calls += 1;
            g.calls += 1;
            let mut summary = BulkJobSummary { id: id.clone(), ..Default::default() };
            if let Err(e) = g.admit(session) {
                if !read_any {
                    return Err(e);
                }
                unknown = Some(unknown_outcome(&e));
                summary.error_message = Some(e.to_string());
                report.jobs.push(summary);
                break;
            }
            let Some(job) = g.bulk_jobs.get(id) else {
                let e = SalesforceError::Api {
                    class: classify_error_code("NOT_FOUND"),
                    status: 404,
                    code: "NOT_FOUND".into(),
                    message: "The requested resource does not exist".into(),
                };
                summary.error_message = Some(e.to_string());
                unknown.get_or_insert_with(|| unknown_outcome(&e));
                first_error.get_or_insert(e);
                report.jobs.push(summary);
                continue;
            };
            read_any = true;
            let n = job.outcomes.len() as u64;
            summary.state = Some(JobState::JobComplete);
            summary.records = job.outcomes.len();
            summary.processed = n;
            summary.failed = job.failed;
            let reads = if job.failed > 0 { 2 } else { 1 };
            for (key, outcome) in &job.outcomes {
                if !wanted.contains(key.as_str()) {
                    report.unexpected_rows += 1;
                } else if found.contains_key(key) {
                    report.duplicate_rows += 1;
                } else {
                    found.insert(key.clone(), outcome.clone());
                }
            }
            report.calls += reads;
            g.calls += reads as usize;
            report.jobs.push(summary);
        }
        if !read_any && let Some(e) = first_error {
            // Every job was unknown: nothing could be read.
            return Err(e);
        }
        let missing = unknown.unwrap_or_else(|| RecordFailure {
            class: ErrorClass::Retryable,
            code: "BULK_UNPROCESSED".into(),
            message: "no Bulk job reported a result for this record".into(),
        });
        for r in records {
            match found.remove(&r.external_id) {
                Some(o) => report.outcomes.push(o),
                None => {
                    report.missing_rows += 1;
                    report.outcomes.push(RecordOutcome::Failed(missing.clone()));
                }
            }
        }
        Ok(report)
    }

    /// Stores the record (without `attributes`) with a new `Id`. A second
    /// record of a hierarchy custom setting for one `SetupOwnerId` fails
    /// `DUPLICATE_VALUE`, as in Salesforce.
    async fn create_record(&self, session: &Session, sobject: &str, body: &Value) -> Result<String, SalesforceError> {
        let mut g = self.lock();
        g.calls += 1;
        g.admit(session)?;
        let Some(fields) = body.as_object() else {
            return Err(SalesforceError::invalid("a record body must be a JSON object"));
        };
        let mut record = fields.clone();
        record.remove("attributes");
        if let Some(owner) = record.get("SetupOwnerId").and_then(Value::as_str)
            && g.objects
                .get(sobject)
                .is_some_and(|rows| rows.iter().any(|r| r.get("SetupOwnerId").and_then(Value::as_str) == Some(owner)))
        {
            return Err(SalesforceError::Api {
                class: classify_error_code("DUPLICATE_VALUE"),
                status: 400,
                code: "DUPLICATE_VALUE".into(),
                message: format!("duplicate value found: SetupOwnerId duplicates value on record with id: {owner}"),
            });
        }
        g.next_id += 1;
        let id = format!("a1S{:015}", g.next_id);
        record.insert("Id".into(), Value::String(id.clone()));
        g.objects.entry(sobject.to_string()).or_default().push(record);
        Ok(id)
    }

    /// Sets the fields on the record with this Id (one `create_record` made,
    /// or one upserted); `NOT_FOUND` when there is none.
    async fn update_record(
        &self,
        session: &Session,
        sobject: &str,
        id: &str,
        body: &Value,
    ) -> Result<(), SalesforceError> {
        let mut g = self.lock();
        g.calls += 1;
        g.admit(session)?;
        let Some(fields) = body.as_object() else {
            return Err(SalesforceError::invalid("a record body must be a JSON object"));
        };
        let changes = fields.iter().filter(|(k, _)| k.as_str() != "attributes" && k.as_str() != "Id");
        let stored = g
            .objects
            .get_mut(sobject)
            .and_then(|rows| rows.iter_mut().find(|r| r.get("Id").and_then(Value::as_str) == Some(id)));
        if let Some(record) = stored {
            record.extend(changes.map(|(k, v)| (k.clone(), v.clone())));
            return Ok(());
        }
        let upserted = g.records.iter_mut().find(|((o, _), (rid, _))| o == sobject && rid == id);
        match upserted {
            Some((_, (_, record))) => {
                record.extend(changes.map(|(k, v)| (k.clone(), v.clone())));
                Ok(())
            }
            None => Err(SalesforceError::Api {
                class: classify_error_code("NOT_FOUND"),
                status: 404,
                code: "NOT_FOUND".into(),
                message: "The requested resource does not exist".into(),
            }),
        }
    }
}

fn scripted_record_failure(code: &str) -> RecordFailure {
    RecordFailure {
        class: classify_error_code(code),
        code: code.to_string(),
        message: "scripted record failure".into(),
    }
}

fn unknown_outcome(e: &SalesforceError) -> RecordFailure {
    let f = e.to_record_failure();
    RecordFailure {
        class: f.class.worst(ErrorClass::Retryable),
        code: f.code,
        message: format!("the outcome is unknown: {}", f.message),
    }
}

fn malformed(soql: &str) -> SalesforceError {
    SalesforceError::Api {
        class: ErrorClass::Permanent,
        status: 400,
        code: "MALFORMED_QUERY".into(),
        message: format!(
            "the fake answers stored records only for SELECT f, … FROM X [WHERE Field = 'value'] [LIMIT n]: {soql}"
        ),
    }
}

/// A query on records `create_record` stored, for the one shape the kill
/// switch needs: `SELECT f1, f2 FROM X [WHERE Field = 'value'] [LIMIT n]`
/// (field names case-insensitive; the value a quoted string literal).
/// Each row has `attributes` and the selected fields (null when unset).
/// Any other clause is `MALFORMED_QUERY`.
fn select_stored(
    soql: &str,
    object: &str,
    stored: &[Map<String, Value>],
) -> Result<Vec<Map<String, Value>>, SalesforceError> {
    let words: Vec<&str> = soql.split_whitespace().collect();
    let at = |w: &str| words.iter().position(|x| x.eq_ignore_ascii_case(w));
    let (Some(0), Some(from)) = (at("SELECT"), at("FROM")) else { return Err(malformed(soql)) };
    let fields: Vec<String> =
        words[1..from].join(" ").split(',').map(|f| f.trim().to_string()).filter(|f| !f.is_empty()).collect();
    if fields.is_empty() || fields.iter().any(|f| learnlink_core::soql::identifier(f).is_err()) {
        return Err(malformed(soql));
    }
    let mut rest = &words[from + 2..];
    let mut limit = usize::MAX;
    if let [head @ .., l, n] = rest
        && l.eq_ignore_ascii_case("LIMIT")
    {
        limit = n.parse().map_err(|_| malformed(soql))?;
        rest = head;
    }
    let filter = match rest {
        [] => None,
        [w, cond @ ..] if w.eq_ignore_ascii_case("WHERE") => {
            let cond = cond.join(" ");
            let (field, value) = cond.split_once('=').ok_or_else(|| malformed(soql))?;
            let value = value.trim();
            let inner = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')).ok_or_else(|| malformed(soql))?;
            let mut literal = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => literal.push(chars.next().ok_or_else(|| malformed(soql))?),
                    '\'' => return Err(malformed(soql)),
                    c => literal.push(c),
                }
            }
            Some((field.trim().to_string(), literal))
        }
        _ => return Err(malformed(soql)),
    };
    let get = |r: &Map<String, Value>, f: &str| {
        r.iter().find(|(k, _)| k.eq_ignore_ascii_case(f)).map(|(k, v)| (k.clone(), v.clone()))
    };
    Ok(stored
        .iter()
        .filter(|r| {
            filter.as_ref().is_none_or(|(f, v)| {
                get(r, f).and_then(|(_, x)| x.as_str().map(str::to_string)).as_deref() == Some(v.as_str())
            })
        })
        .take(limit)
        .map(|r| {
            let mut row = Map::new();
            row.insert("attributes".into(), serde_json::json!({"type": object}));
            for f in &fields {
                let (k, v) = get(r, f).unwrap_or_else(|| (f.clone(), Value::Null));
                row.insert(k, v);
            }
            row
        })
        .collect())
}

/// The next scripted answer: a failure of the whole call, or the error
/// code every record gets (`None`: no script, a normal answer).
fn scripted(s: Option<Script>) -> Result<Option<String>, SalesforceError> {
    match s {
        Some(Script::Fail { status, code }) => Err(SalesforceError::Api {
            class: classify_error_code(&code),
            status,
            code,
            message: "scripted failure".into(),
        }),
        Some(Script::RecordError(code)) => Ok(Some(code)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use learnlink_core::Classify;
    use learnlink_core::model::{Enrollment, EnrollmentStatus};
    use learnlink_core::sync::{ENROLLMENT_OBJECT, enrollment_record};
    use serde_json::json;

    const ORG: &str = "00D000000000001AAA";

    fn fake() -> (MemorySalesforce, Session) {
        let sf = MemorySalesforce::new();
        sf.issue_tokens("A", "R");
        let session = Session { instance_url: "https://fake.my.salesforce.com".into(), access_token: "A".into() };
        (sf, session)
    }

    fn enrollment(id: &str, learner: &str) -> SfRecord {
        let t = time::macros::datetime!(2026-11-23 10:00 UTC);
        enrollment_record(&Enrollment {
            id: id.into(),
            learner_id: learner.into(),
            course_id: "C1".into(),
            course_title: None,
            status: EnrollmentStatus::Enrolled,
            progress_pct: None,
            score: None,
            enrolled_at: None,
            completed_at: None,
            updated_at: t,
        })
    }

    #[tokio::test]
    async fn bulk_upserts_by_external_id_and_answers_later_by_job_id() {
        let (sf, s) = fake();
        sf.add_contact("L1");
        let records =
            vec![enrollment("E1", "L1"), enrollment("E2", "L1"), enrollment("E3", "L404"), enrollment("E1", "L1")];
        let sub = sf.bulk_submit(&s, &records).await.unwrap();
        assert_eq!(sub.jobs.len(), 1);
        assert!(sub.jobs[0].starts_with("750MEM"), "{:?}", sub.jobs);
        assert_eq!(
            sub.not_sent.iter().map(|(i, f)| (*i, f.code.as_str())).collect::<Vec<_>>(),
            vec![(3, "DUPLICATE_EXTERNAL_ID")]
        );
        assert_eq!((sub.calls, sf.calls()), (3, 3));
        assert_eq!(sf.bulk_jobs(), sub.jobs);

        let report = sf.bulk_outcomes(&s, &sub.jobs, &records[..3]).await.unwrap();
        assert!(matches!(report.outcomes[0], RecordOutcome::Created { .. }));
        assert!(matches!(report.outcomes[1], RecordOutcome::Created { .. }));
        assert!(
            matches!(&report.outcomes[2], RecordOutcome::Failed(f) if f.code == "INVALID_FIELD" && f.message.contains("L404")),
            "the Contact reference is checked as Composite checks it: {:?}",
            report.outcomes[2]
        );
        assert_eq!(report.calls, 3, "info, successfulResults, failedResults");
        assert_eq!(sf.calls(), 6);
        assert_eq!(report.counts(), (2, 0, 1));

        // Again: updates, no second record; a record no job names is unprocessed.
        let again = sf.bulk_submit(&s, &records[..2]).await.unwrap();
        let asked = vec![records[0].clone(), records[1].clone(), enrollment("E9", "L1")];
        let report = sf.bulk_outcomes(&s, &again.jobs, &asked).await.unwrap();
        assert!(matches!(report.outcomes[0], RecordOutcome::Updated { .. }));
        assert!(matches!(report.outcomes[1], RecordOutcome::Updated { .. }));
        assert!(
            matches!(&report.outcomes[2], RecordOutcome::Failed(f) if f.code == "BULK_UNPROCESSED" && f.class == ErrorClass::Retryable)
        );
        assert_eq!((report.missing_rows, report.calls), (1, 2));
        let held = sf.sobject_records(ENROLLMENT_OBJECT);
        assert_eq!(held.len(), 2);
        assert!(held.iter().all(|r| r["Id"].as_str().is_some_and(|id| id.starts_with("a0B"))));
        assert_eq!(sf.record(ENROLLMENT_OBJECT, "E2").unwrap()["Course_Id__c"], "C1");

        // Rows of records not asked for are ignored.
        let report = sf.bulk_outcomes(&s, &sub.jobs, &records[1..2]).await.unwrap();
        assert_eq!((report.unexpected_rows, report.outcomes.len()), (2, 1));
    }

    #[tokio::test]
    async fn bulk_failures() {
        let (sf, s) = fake();
        sf.add_contact("L1");
        let records = vec![enrollment("E1", "L1")];
        sf.push_bulk_script(Script::Fail { status: 403, code: "REQUEST_LIMIT_EXCEEDED".into() });
        let e = sf.bulk_submit(&s, &records).await.unwrap_err();
        assert_eq!((e.code().as_str(), e.class()), ("REQUEST_LIMIT_EXCEEDED", ErrorClass::Throttled));
        assert_eq!(sf.record_count(), 0, "nothing sent");
        sf.push_bulk_script(Script::RecordError("UNABLE_TO_LOCK_ROW".into()));
        let sub = sf.bulk_submit(&s, &records).await.unwrap();
        let report = sf.bulk_outcomes(&s, &sub.jobs, &records).await.unwrap();
        assert_eq!(report.outcomes[0].failure_class(), Some(ErrorClass::Retryable));
        let sub = sf.bulk_submit(&s, &records).await.unwrap();
        assert!(matches!(
            sf.bulk_outcomes(&s, &sub.jobs, &records).await.unwrap().outcomes[0],
            RecordOutcome::Created { .. }
        ));

        let e = sf.bulk_outcomes(&s, &["750MEM999999999999".into()], &records).await.unwrap_err();
        assert_eq!(e.code(), "NOT_FOUND");
        sf.expire_sessions();
        assert!(matches!(sf.bulk_submit(&s, &records).await, Err(SalesforceError::SessionExpired)));
        assert!(matches!(sf.bulk_outcomes(&s, &sub.jobs, &records).await, Err(SalesforceError::SessionExpired)));
    }

    #[tokio::test]
    async fn the_org_default_setting_is_created_updated_and_queried() {
        let (sf, s) = fake();
        let soql = format!(
            "SELECT Id, Bypass_Automation__c FROM LMS_Sync_Settings__c WHERE SetupOwnerId = {}",
            learnlink_core::soql::quote(ORG)
        );
        assert!(sf.query(&s, &soql).await.unwrap().is_empty());
        let id = sf
            .create_record(&s, "LMS_Sync_Settings__c", &json!({"SetupOwnerId": ORG, "Bypass_Automation__c": true}))
            .await
            .unwrap();
        let rows = sf.query(&s, &soql).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            Value::Object(rows[0].clone()),
            json!({"attributes": {"type": "LMS_Sync_Settings__c"}, "Id": id, "Bypass_Automation__c": true})
        );
        sf.update_record(&s, "LMS_Sync_Settings__c", &id, &json!({"Bypass_Automation__c": false})).await.unwrap();
        assert_eq!(sf.query(&s, &soql).await.unwrap()[0]["Bypass_Automation__c"], false);
        assert_eq!(sf.sobject_records("LMS_Sync_Settings__c")[0]["SetupOwnerId"], ORG);
        let other = "SELECT Id FROM LMS_Sync_Settings__c WHERE setupownerid = '00D000000000002AAA' LIMIT 1";
        assert!(sf.query(&s, other).await.unwrap().is_empty());
        assert_eq!(sf.query(&s, "SELECT Id FROM LMS_Sync_Settings__c LIMIT 1").await.unwrap().len(), 1);

        let dup = sf.create_record(&s, "LMS_Sync_Settings__c", &json!({"SetupOwnerId": ORG})).await.unwrap_err();
        assert_eq!(dup.code(), "DUPLICATE_VALUE");
        let e = sf.update_record(&s, "LMS_Sync_Settings__c", "a1S000000000000999", &json!({})).await.unwrap_err();
        assert_eq!((e.code().as_str(), e.class()), ("NOT_FOUND", ErrorClass::Permanent));
        let e = sf.query(&s, &format!("{soql} AND Name = 'x'")).await.unwrap_err();
        assert_eq!(e.code(), "MALFORMED_QUERY");
        // Rows set for an object still answer every query on it.
        sf.set_query_rows("LMS_Sync_Settings__c", Vec::new());
        assert!(sf.query(&s, &soql).await.unwrap().is_empty());
    }
}
