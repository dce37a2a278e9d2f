//! In-memory fake of the Salesforce API: upserts by external id, checks the
//! Contact reference, rotates refresh tokens, and plays scripted failures.

use async_trait::async_trait;
use learnlink_core::ports::SalesforceApi;
use learnlink_core::salesforce::{
    RecordFailure, RecordOutcome, SalesforceError, Session, TokenSet, classify_error_code,
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
}

#[derive(Default)]
pub struct MemorySalesforce {
    inner: Mutex<Inner>,
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
        let mut g = self.lock();
        g.calls += 1;
        if let Some(status) = g.outage {
            return Err(Self::outage_error(status));
        }
        if !g.valid_access.contains(session.access_token.expose_secret()) {
            return Err(SalesforceError::SessionExpired);
        }
        let per_record_error = match g.script.pop_front() {
            Some(Script::Fail { status, code }) => {
                return Err(SalesforceError::Api {
                    class: classify_error_code(&code),
                    status,
                    code,
                    message: "scripted failure".into(),
                });
            }
            Some(Script::RecordError(code)) => Some(code),
            None => None,
        };
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
                if let Some(code) = &per_record_error {
                    outcomes.push(RecordOutcome::Failed(RecordFailure {
                        class: classify_error_code(code),
                        code: code.clone(),
                        message: "scripted record failure".into(),
                    }));
                    continue;
                }
                let contact = r.record.body.get("Contact__r");
                let learner = contact.as_ref().and_then(|v| v.get(CONTACT_EXTERNAL_ID)).and_then(Value::as_str);
                if let Some(l) = learner
                    && !g.contacts.contains(l)
                {
                    outcomes.push(RecordOutcome::Failed(RecordFailure {
                        class: classify_error_code("INVALID_FIELD"),
                        code: "INVALID_FIELD".into(),
                        message: format!(
                            "Foreign key external ID: {l} not found for field {CONTACT_EXTERNAL_ID} in entity Contact"
                        ),
                    }));
                    continue;
                }
                let key = (c.sobject.to_string(), r.record.external_id.clone());
                let existing = g.records.get(&key).map(|(id, _)| id.clone());
                let outcome = match existing {
                    Some(id) => RecordOutcome::Updated { id: id.clone() },
                    None => {
                        g.next_id += 1;
                        RecordOutcome::Created { id: format!("a0B{:015}", g.next_id) }
                    }
                };
                let id = match &outcome {
                    RecordOutcome::Created { id } | RecordOutcome::Updated { id } => id.clone(),
                    RecordOutcome::Failed(_) => String::new(),
                };
                g.records.insert(key, (id, r.record.body.to_map()));
                outcomes.push(outcome);
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
        Ok(g.query_rows.get(&object).cloned().unwrap_or_default())
    }

    /// Every row of the queried object in one page (the fake reads no
    /// WHERE clause: tests that need SOQL use the emulator).
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
}
