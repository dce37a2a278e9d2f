//! Planning of Salesforce writes for a batch of LMS events (SPEC §4.4) and
//! settling their outcomes back onto the queue messages that carried them.
//!
//! Pure: events in, a plan of Composite calls out; call results in, one
//! outcome per work item out.

use crate::error::ErrorClass;
use crate::model::{Certification, Enrollment, salesforce_datetime};
use crate::salesforce::{
    API_VERSION, RecordBody, RecordFailure, RecordOutcome, SalesforceError, SfRecord, classify_error_code,
    classify_http_status,
};
use crate::webhook::{EventPayload, LmsEvent};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// sObject Collections take at most 200 records.
pub const MAX_RECORDS_PER_COLLECTION: usize = 200;
/// A Composite request carries at most 5 sObject Collections subrequests.
pub const MAX_COLLECTIONS_PER_COMPOSITE: usize = 5;

pub const ENROLLMENT_OBJECT: &str = "LMS_Enrollment__c";
pub const ENROLLMENT_EXTERNAL_ID: &str = "LMS_Enrollment_Id__c";
pub const CERTIFICATION_OBJECT: &str = "LMS_Certification__c";
pub const CERTIFICATION_EXTERNAL_ID: &str = "LMS_Certification_Id__c";
pub const CONTACT_EXTERNAL_ID: &str = "LMS_Learner_Id__c";

/// The Contact reference by external id: no lookup query needed (SPEC §2).
fn contact_ref(learner_id: &str) -> Value {
    json!({"attributes": {"type": "Contact"}, CONTACT_EXTERNAL_ID: learner_id})
}

fn opt_dt(t: Option<time::OffsetDateTime>) -> Value {
    t.map(|t| Value::String(salesforce_datetime(t))).unwrap_or(Value::Null)
}

/// `{"type": "<object>"}`.
#[derive(Serialize)]
struct Attributes {
    #[serde(rename = "type")]
    kind: &'static str,
}

/// The Contact by its learner external id (`Contact__r`).
#[derive(Serialize)]
struct ContactRef<'a> {
    attributes: Attributes,
    #[serde(rename = "LMS_Learner_Id__c")]
    learner_id: &'a str,
}

/// A finite number (NaN and infinities are left out, as JSON has none).
fn finite(n: Option<f64>) -> Option<f64> {
    n.filter(|n| n.is_finite())
}

/// An enrollment's record body, serialized straight from the enrollment
/// (fields in this order; a value the event does not carry is left out,
/// not cleared: vendor dialects send partial state).
#[derive(Serialize)]
struct EnrollmentBody<'a> {
    attributes: Attributes,
    #[serde(rename = "LMS_Enrollment_Id__c")]
    id: &'a str,
    #[serde(rename = "Contact__r")]
    contact: ContactRef<'a>,
    #[serde(rename = "Course_Id__c")]
    course_id: &'a str,
    #[serde(rename = "Course_Title__c", skip_serializing_if = "Option::is_none")]
    course_title: Option<&'a str>,
    #[serde(rename = "Status__c")]
    status: &'static str,
    #[serde(rename = "Progress__c", skip_serializing_if = "Option::is_none")]
    progress: Option<f64>,
    #[serde(rename = "Score__c", skip_serializing_if = "Option::is_none")]
    score: Option<f64>,
    #[serde(rename = "Enrolled_At__c", skip_serializing_if = "Option::is_none")]
    enrolled_at: Option<String>,
    #[serde(rename = "Completed_At__c", skip_serializing_if = "Option::is_none")]
    completed_at: Option<String>,
    #[serde(rename = "LMS_Updated_At__c")]
    updated_at: String,
}

/// The key of a record's applied-version marker (SPEC §4.2):
/// `enrollment#E1`, `certification#C9` — one key for enrollment sync and
/// backfills alike.
pub fn applied_key(kind: &str, id: &str) -> String {
    format!("{kind}#{id}")
}

pub fn enrollment_record(e: &Enrollment) -> SfRecord {
    let body = EnrollmentBody {
        attributes: Attributes { kind: ENROLLMENT_OBJECT },
        id: &e.id,
        contact: ContactRef { attributes: Attributes { kind: "Contact" }, learner_id: &e.learner_id },
        course_id: &e.course_id,
        course_title: e.course_title.as_deref(),
        status: e.status.salesforce_label(),
        progress: finite(e.progress_pct),
        score: finite(e.score),
        enrolled_at: e.enrolled_at.map(salesforce_datetime),
        completed_at: e.completed_at.map(salesforce_datetime),
        updated_at: salesforce_datetime(e.updated_at),
    };
    SfRecord {
        sobject: ENROLLMENT_OBJECT,
        external_id_field: ENROLLMENT_EXTERNAL_ID,
        external_id: e.id.clone(),
        body: RecordBody::of(&body),
    }
}

pub fn certification_record(c: &Certification) -> SfRecord {
    let mut body = Map::new();
    body.insert("attributes".into(), json!({"type": CERTIFICATION_OBJECT}));
    body.insert(CERTIFICATION_EXTERNAL_ID.into(), Value::String(c.id.clone()));
    body.insert("Contact__r".into(), contact_ref(&c.learner_id));
    body.insert("Name".into(), Value::String(c.name.chars().take(80).collect()));
    for (field, v) in [("Issued_At__c", opt_dt(c.issued_at)), ("Expires_At__c", opt_dt(c.expires_at))] {
        if !v.is_null() {
            body.insert(field.into(), v);
        }
    }
    body.insert("LMS_Updated_At__c".into(), Value::String(salesforce_datetime(c.updated_at)));
    SfRecord {
        sobject: CERTIFICATION_OBJECT,
        external_id_field: CERTIFICATION_EXTERNAL_ID,
        external_id: c.id.clone(),
        body: body.into(),
    }
}

pub const CONTACT_OBJECT: &str = "Contact";

/// The Salesforce write for a Contact decision (SPEC §4.3). Links, moves
/// and unlinks update an existing Contact by Id; a creation upserts by the
/// learner id, so a redelivered creation finds the Contact it made.
pub fn contact_record(write: &crate::matching::ContactWrite, learner: &crate::model::Learner) -> SfRecord {
    use crate::matching::ContactWrite;
    let mut body = Map::new();
    body.insert("attributes".into(), json!({"type": CONTACT_OBJECT}));
    let by_id = |body: &mut Map<String, Value>, id: &str| {
        body.insert("Id".into(), Value::String(id.to_string()));
        SfRecord {
            sobject: CONTACT_OBJECT,
            external_id_field: "Id",
            external_id: id.to_string(),
            body: RecordBody::of(&Map::new()),
        }
    };
    let mut rec = match write {
        ContactWrite::Link { contact_id, account_id } => {
            let r = by_id(&mut body, contact_id);
            body.insert(CONTACT_EXTERNAL_ID.into(), Value::String(learner.id.clone()));
            if let Some(a) = account_id {
                body.insert("AccountId".into(), Value::String(a.clone()));
            }
            r
        }
        ContactWrite::Move { contact_id, account_id } => {
            let r = by_id(&mut body, contact_id);
            body.insert("AccountId".into(), Value::String(account_id.clone()));
            r
        }
        ContactWrite::Unlink { contact_id } => {
            let r = by_id(&mut body, contact_id);
            body.insert(CONTACT_EXTERNAL_ID.into(), Value::Null);
            r
        }
        ContactWrite::Create { account_id } => {
            body.insert(CONTACT_EXTERNAL_ID.into(), Value::String(learner.id.clone()));
            let local = learner.email.trim().split('@').next().unwrap_or_default();
            let last = [learner.last_name.trim(), local, learner.id.as_str()]
                .into_iter()
                .find(|s| !s.is_empty())
                .unwrap_or_default();
            if !learner.first_name.trim().is_empty() {
                body.insert("FirstName".into(), Value::String(learner.first_name.trim().chars().take(40).collect()));
            }
            // LastName is required on Contact.
            body.insert("LastName".into(), Value::String(last.chars().take(80).collect()));
            if !learner.email.trim().is_empty() {
                body.insert("Email".into(), Value::String(learner.email.trim().to_string()));
            }
            if let Some(a) = account_id {
                body.insert("AccountId".into(), Value::String(a.clone()));
            }
            SfRecord {
                sobject: CONTACT_OBJECT,
                external_id_field: CONTACT_EXTERNAL_ID,
                external_id: learner.id.clone(),
                body: RecordBody::of(&Map::new()),
            }
        }
    };
    rec.body = body.into();
    rec
}

/// The Salesforce object an event's record is written to.
pub fn event_record_object(ev: &LmsEvent) -> &'static str {
    match &ev.payload {
        EventPayload::Enrollment(_) => ENROLLMENT_OBJECT,
        EventPayload::Certification(_) => CERTIFICATION_OBJECT,
    }
}

pub fn event_record(ev: &LmsEvent) -> SfRecord {
    match &ev.payload {
        EventPayload::Enrollment(e) => enrollment_record(e),
        EventPayload::Certification(c) => certification_record(c),
    }
}

/// Salesforce refused a record because no Contact carries its learner id
/// (`Contact__r.LMS_Learner_Id__c` matched nothing).
pub fn is_missing_contact(f: &crate::salesforce::RecordFailure) -> bool {
    f.code == "INVALID_FIELD" && f.message.contains("Foreign key external ID")
}

/// One record of the plan and the work items (queue messages) it settles.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRecord {
    pub record: SfRecord,
    pub items: Vec<usize>,
}

/// One sObject Collections upsert: records of one type, by one external id.
#[derive(Debug, Clone, PartialEq)]
pub struct Collection {
    pub sobject: &'static str,
    pub external_id_field: &'static str,
    pub records: Vec<PlannedRecord>,
}

impl Collection {
    /// An update of existing records by Salesforce Id (`PATCH
    /// /composite/sobjects`) rather than an upsert by external id.
    pub fn is_update_by_id(&self) -> bool {
        self.external_id_field == "Id"
    }
}

/// One Composite API call: up to 5 collections, up to 1,000 records.
#[derive(Debug, Clone, PartialEq)]
pub struct CompositeCall {
    pub collections: Vec<Collection>,
}

impl CompositeCall {
    pub fn record_count(&self) -> usize {
        self.collections.iter().map(|c| c.records.len()).sum()
    }

    /// The JSON body of `POST /services/data/vXX.X/composite` as a tree,
    /// built the plain way: the tests hold [`CompositeCall::request_bytes`] to it.
    #[cfg(test)]
    pub fn request_body(&self) -> Value {
        let subs: Vec<Value> = self
            .collections
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let records: Vec<Value> = c.records.iter().map(|r| Value::Object(r.record.body.to_map())).collect();
                let url = if c.is_update_by_id() {
                    format!("/services/data/{API_VERSION}/composite/sobjects")
                } else {
                    format!("/services/data/{API_VERSION}/composite/sobjects/{}/{}", c.sobject, c.external_id_field)
                };
                json!({
                    "method": "PATCH",
                    "url": url,
                    "referenceId": format!("upsert{i}"),
                    "body": {"allOrNone": false, "records": records},
                })
            })
            .collect();
        json!({"allOrNone": false, "compositeRequest": subs})
    }

    /// [`CompositeCall::request_body`] as bytes, written straight from the
    /// planned records' serialized bodies (no JSON tree, no copy of a record
    /// as a value).
    pub fn request_bytes(&self) -> Vec<u8> {
        let size: usize =
            self.collections.iter().flat_map(|c| &c.records).map(|r| r.record.body.json().len() + 1).sum();
        let mut out = Vec::with_capacity(size + 256 * self.collections.len() + 64);
        out.extend_from_slice(br#"{"allOrNone":false,"compositeRequest":["#);
        for (i, c) in self.collections.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let url = if c.is_update_by_id() {
                format!("/services/data/{API_VERSION}/composite/sobjects")
            } else {
                format!("/services/data/{API_VERSION}/composite/sobjects/{}/{}", c.sobject, c.external_id_field)
            };
            out.extend_from_slice(br#"{"method":"PATCH","url":"#);
            // A string cannot fail to serialize.
            let _ = serde_json::to_writer(&mut out, &url);
            out.extend_from_slice(
                format!(r#","referenceId":"upsert{i}","body":{{"allOrNone":false,"records":["#).as_bytes(),
            );
            for (j, r) in c.records.iter().enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(r.record.body.json().as_bytes());
            }
            out.extend_from_slice(b"]}}");
        }
        out.extend_from_slice(b"]}");
        out
    }

    /// Read a Composite response into one outcome per record, per collection.
    /// Anything missing or unreadable becomes a retryable failure of the
    /// records concerned — never a silent success.
    pub fn parse_response(&self, body: &Value) -> Vec<Vec<RecordOutcome>> {
        let subs = body.get("compositeResponse").and_then(Value::as_array);
        self.collections
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let sub = subs.and_then(|s| {
                    s.iter().find(|r| r.get("referenceId").and_then(Value::as_str) == Some(&format!("upsert{i}")))
                });
                match sub {
                    None => missing(c.records.len(), "the composite response has no result for this collection"),
                    Some(sub) => parse_subresponse(sub, c.records.len()),
                }
            })
            .collect()
    }
}

fn missing(n: usize, why: &str) -> Vec<RecordOutcome> {
    vec![
        RecordOutcome::Failed(RecordFailure {
            class: ErrorClass::Retryable,
            code: "NO_RESULT".into(),
            message: why.into(),
        });
        n
    ]
}

fn parse_subresponse(sub: &Value, n: usize) -> Vec<RecordOutcome> {
    let status = sub.get("httpStatusCode").and_then(Value::as_u64).unwrap_or(0) as u16;
    let body = sub.get("body");
    if status != 200 {
        // The whole subrequest failed: body is `[{errorCode, message}]`.
        let first = body.and_then(Value::as_array).and_then(|a| a.first());
        let code = first.and_then(|e| e.get("errorCode")).and_then(Value::as_str).unwrap_or("");
        let message = first.and_then(|e| e.get("message")).and_then(Value::as_str).unwrap_or("");
        let class = if code.is_empty() { classify_http_status(status) } else { classify_error_code(code) };
        let f = RecordFailure {
            class,
            code: if code.is_empty() { format!("HTTP_{status}") } else { code.to_string() },
            message: message.to_string(),
        };
        return vec![RecordOutcome::Failed(f); n];
    }
    let Some(results) = body.and_then(Value::as_array) else {
        return missing(n, "the collection result is not an array");
    };
    let mut out: Vec<RecordOutcome> = results.iter().take(n).map(parse_record_result).collect();
    if out.len() < n {
        out.extend(missing(n - out.len(), "Salesforce returned fewer results than records sent"));
    }
    out
}

fn parse_record_result(r: &Value) -> RecordOutcome {
    let success = r.get("success").and_then(Value::as_bool).unwrap_or(false);
    let id = r.get("id").and_then(Value::as_str).unwrap_or("").to_string();
    if success && !id.is_empty() {
        if r.get("created").and_then(Value::as_bool).unwrap_or(false) {
            RecordOutcome::Created { id }
        } else {
            RecordOutcome::Updated { id }
        }
    } else {
        let err = r.get("errors").and_then(Value::as_array).and_then(|a| a.first());
        let code = err.and_then(|e| e.get("statusCode")).and_then(Value::as_str).unwrap_or("UNKNOWN");
        let message = err.and_then(|e| e.get("message")).and_then(Value::as_str).unwrap_or("");
        RecordOutcome::Failed(RecordFailure {
            class: classify_error_code(code),
            code: code.to_string(),
            message: message.to_string(),
        })
    }
}

/// The newest event per LMS record (by `updated_at`, SPEC §4.2), in
/// first-seen order, with every work item that carried the record.
pub fn collapse<'a>(events: impl IntoIterator<Item = (usize, &'a LmsEvent)>) -> Vec<(&'a LmsEvent, Vec<usize>)> {
    use std::collections::hash_map::Entry;
    let mut out: Vec<(&'a LmsEvent, Vec<usize>)> = Vec::new();
    // Keys borrowed from the events: nothing allocated per event.
    let mut at: HashMap<(&'static str, &'a str), usize> = HashMap::new();
    for (item, ev) in events {
        match at.entry(ev.record_key()) {
            Entry::Occupied(o) => {
                let (best, items) = &mut out[*o.get()];
                items.push(item);
                if (ev.updated_at(), ev.occurred_at) >= (best.updated_at(), best.occurred_at) {
                    *best = ev;
                }
            }
            Entry::Vacant(v) => {
                v.insert(out.len());
                out.push((ev, vec![item]));
            }
        }
    }
    out
}

/// Plan the writes for a batch. Several events about one LMS record collapse
/// into one write carrying the newest state; the write settles all of them.
pub fn plan<'a>(events: impl IntoIterator<Item = (usize, &'a LmsEvent)>) -> Vec<CompositeCall> {
    plan_records(collapse(events).into_iter().map(|(ev, items)| PlannedRecord { record: event_record(ev), items }))
}

/// Pack records into Composite calls: collections of one object and key
/// (≤ 200 records), ≤ 5 per call. Records keep their order across groups of
/// one kind, and a kind seen first is written first — so Contact writes
/// planned ahead of enrollments land before the records that refer to them
/// (Composite runs its subrequests in order).
pub fn plan_records(records: impl IntoIterator<Item = PlannedRecord>) -> Vec<CompositeCall> {
    let mut groups: Vec<Collection> = Vec::new();
    for r in records {
        let slot = groups.iter_mut().find(|g| {
            g.sobject == r.record.sobject
                && g.external_id_field == r.record.external_id_field
                && g.records.len() < MAX_RECORDS_PER_COLLECTION
        });
        match slot {
            Some(g) => g.records.push(r),
            None => groups.push(Collection {
                sobject: r.record.sobject,
                external_id_field: r.record.external_id_field,
                records: vec![r],
            }),
        }
    }
    let mut calls = Vec::new();
    let mut it = groups.into_iter().peekable();
    while it.peek().is_some() {
        let collections: Vec<Collection> = it.by_ref().take(MAX_COLLECTIONS_PER_COMPOSITE).collect();
        calls.push(CompositeCall { collections });
    }
    calls
}

/// The outcome for one work item.
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    pub item: usize,
    pub sobject: &'static str,
    pub external_id: String,
    pub outcome: RecordOutcome,
}

/// Spread call results over the work items they settle.
pub fn settle(calls: &[CompositeCall], results: Vec<Result<Vec<Vec<RecordOutcome>>, SalesforceError>>) -> Vec<Settled> {
    use crate::error::Classify;
    let mut out = Vec::new();
    for (call, result) in calls.iter().zip(results) {
        match result {
            Ok(per_collection) => {
                for (c, outcomes) in call.collections.iter().zip(per_collection) {
                    for (r, o) in c.records.iter().zip(outcomes) {
                        for &item in &r.items {
                            out.push(Settled {
                                item,
                                sobject: c.sobject,
                                external_id: r.record.external_id.clone(),
                                outcome: o.clone(),
                            });
                        }
                    }
                }
            }
            Err(e) => {
                let f = RecordFailure { class: e.class(), code: e.code(), message: e.to_string() };
                for c in &call.collections {
                    for r in &c.records {
                        for &item in &r.items {
                            out.push(Settled {
                                item,
                                sobject: c.sobject,
                                external_id: r.record.external_id.clone(),
                                outcome: RecordOutcome::Failed(f.clone()),
                            });
                        }
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EnrollmentStatus;
    use crate::webhook::EventKind;
    use time::macros::datetime;

    fn ev(id: &str, enrollment: &str, minute: u8, status: EnrollmentStatus) -> LmsEvent {
        let t = datetime!(2026-11-23 10:00:00 UTC) + time::Duration::minutes(minute.into());
        LmsEvent {
            id: id.into(),
            kind: EventKind::EnrollmentUpdated,
            occurred_at: t,
            payload: EventPayload::Enrollment(Enrollment {
                id: enrollment.into(),
                learner_id: "L1".into(),
                course_id: "C1".into(),
                course_title: Some("Safety".into()),
                status,
                progress_pct: Some(50.0),
                score: None,
                enrolled_at: Some(t),
                completed_at: None,
                updated_at: t,
            }),
        }
    }

    #[test]
    fn enrollment_maps_to_the_custom_object_with_a_contact_reference() {
        let e = ev("x", "E1", 0, EnrollmentStatus::InProgress);
        let r = event_record(&e);
        assert_eq!(r.sobject, "LMS_Enrollment__c");
        assert_eq!(r.body.to_map()["LMS_Enrollment_Id__c"], "E1");
        assert_eq!(r.body.to_map()["Status__c"], "In Progress");
        assert_eq!(
            r.body.to_map()["Contact__r"],
            json!({"attributes": {"type": "Contact"}, "LMS_Learner_Id__c": "L1"})
        );
        assert_eq!(r.body.to_map()["LMS_Updated_At__c"], "2026-11-23T10:00:00.000Z");
        assert!(!r.body.to_map().contains_key("Score__c"), "a value the event does not carry is not cleared");
        // attributes must come first for Salesforce's parser of nested objects
        assert_eq!(r.body.to_map().keys().next().map(String::as_str), Some("attributes"));
    }

    #[test]
    fn newest_event_wins_and_settles_all_its_items() {
        let a = ev("a", "E1", 5, EnrollmentStatus::Completed);
        let b = ev("b", "E1", 1, EnrollmentStatus::InProgress); // arrives later, older
        let c = ev("c", "E2", 1, EnrollmentStatus::Enrolled);
        let calls = plan([(0, &a), (1, &b), (2, &c)]);
        assert_eq!(calls.len(), 1);
        let recs = &calls[0].collections[0].records;
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].record.body.to_map()["Status__c"], "Completed");
        assert_eq!(recs[0].items, vec![0, 1]);
        assert_eq!(recs[1].items, vec![2]);
    }

    #[test]
    fn plan_respects_collection_and_composite_limits() {
        let events: Vec<LmsEvent> =
            (0..2_345).map(|i| ev(&format!("e{i}"), &format!("E{i}"), 0, EnrollmentStatus::Enrolled)).collect();
        let calls = plan(events.iter().enumerate());
        // 2,345 records → 12 collections of ≤200 → 3 composite calls (5+5+2)
        assert_eq!(calls.len(), 3);
        assert!(calls.iter().all(|c| c.collections.len() <= 5));
        assert!(calls.iter().flat_map(|c| &c.collections).all(|c| c.records.len() <= 200));
        assert_eq!(calls.iter().map(CompositeCall::record_count).sum::<usize>(), 2_345);
        let body = calls[0].request_body();
        assert_eq!(body["compositeRequest"].as_array().unwrap().len(), 5);
        assert_eq!(
            body["compositeRequest"][0]["url"],
            "/services/data/v62.0/composite/sobjects/LMS_Enrollment__c/LMS_Enrollment_Id__c"
        );
    }

    #[test]
    fn responses_are_read_per_record() {
        let a = ev("a", "E1", 0, EnrollmentStatus::Enrolled);
        let b = ev("b", "E2", 0, EnrollmentStatus::Enrolled);
        let calls = plan([(0, &a), (1, &b)]);
        let resp = json!({"compositeResponse": [{"referenceId": "upsert0", "httpStatusCode": 200, "httpHeaders": {},
            "body": [{"id": "a0B000000000001AAA", "success": true, "errors": [], "created": true},
                     {"success": false, "created": false, "errors": [{"statusCode": "UNABLE_TO_LOCK_ROW", "message": "locked", "fields": []}]}]}]});
        let outcomes = calls[0].parse_response(&resp);
        assert_eq!(outcomes[0][0], RecordOutcome::Created { id: "a0B000000000001AAA".into() });
        assert_eq!(outcomes[0][1].failure_class(), Some(ErrorClass::Retryable));
        let settled = settle(&calls, vec![Ok(outcomes)]);
        assert_eq!(settled.len(), 2);
        assert_eq!(settled[1].item, 1);
    }

    #[test]
    fn request_bytes_are_the_request_body() {
        let events: Vec<LmsEvent> =
            (0..450).map(|i| ev(&format!("e{i}"), &format!("E{i}"), 0, EnrollmentStatus::Enrolled)).collect();
        let calls = plan(events.iter().enumerate());
        let bytes = calls[0].request_bytes();
        let parsed: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(parsed, calls[0].request_body());
    }

    #[test]
    fn missing_or_failed_subresponses_never_read_as_success() {
        let a = ev("a", "E1", 0, EnrollmentStatus::Enrolled);
        let calls = plan([(0, &a)]);
        let none = calls[0].parse_response(&json!({}));
        assert_eq!(none[0][0].failure_class(), Some(ErrorClass::Retryable));
        let short = calls[0].parse_response(
            &json!({"compositeResponse": [{"referenceId": "upsert0", "httpStatusCode": 200, "body": []}]}),
        );
        assert_eq!(short[0][0].failure_class(), Some(ErrorClass::Retryable));
        let limit = calls[0]
            .parse_response(&json!({"compositeResponse": [{"referenceId": "upsert0", "httpStatusCode": 403,
            "body": [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}]}]}));
        assert_eq!(limit[0][0].failure_class(), Some(ErrorClass::Throttled));
        let whole = settle(&calls, vec![Err(SalesforceError::SessionExpired)]);
        assert_eq!(whole[0].outcome.failure_class(), Some(ErrorClass::Retryable));
    }
}
