//! Bulk API 2.0 against an in-process mock of Salesforce's ingest
//! resources: the job state machine (Open → UploadComplete → InProgress →
//! JobComplete | Failed | Aborted), result files in shuffled order with
//! failed, unprocessed, missing and duplicated rows, and scripted faults.
//! The mock logs every request it answers, to check what was (not) asked.

use super::super::testkit::*;
use super::*;
use axum::Router;
use axum::body::Bytes as Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use learnlink_core::budget::ApiUsage;
use learnlink_core::csv::{parse_all, write_row};
use learnlink_core::salesforce::bulk::{JobState, PollSchedule};
use learnlink_core::sync::{ENROLLMENT_EXTERNAL_ID, ENROLLMENT_OBJECT};
use serde_json::{Map, Value, json};
use std::sync::Mutex;

#[derive(Clone, Default)]
struct Scenario {
    /// Polls answered `InProgress` before the job completes.
    polls_before_done: usize,
    /// The job ends `Failed` (with this message) or `Aborted` instead.
    final_state: Option<(&'static str, &'static str)>,
    /// The job never completes.
    never_done: bool,
    /// The first N job-info polls answer 503.
    poll_blips: usize,
    /// Creating job number N (0-based) and later ones fails so.
    create_fail: Option<(usize, u16, Value)>,
    upload_fail: Option<(u16, Value)>,
    /// This result file answers with this status.
    results_fail: Option<(&'static str, u16)>,
    /// failedResults is cut in the middle of its last row.
    truncated_failed: bool,
    crlf: bool,
    /// Job-info requests number N (0-based) and later answer so.
    info_fail: Option<(usize, u16, Value)>,
}

#[derive(Default)]
struct Job {
    id: String,
    create: Value,
    state: String,
    csv: Vec<u8>,
    content_length: Option<u64>,
    polls: usize,
}

#[derive(Default)]
struct Mock {
    scenario: Scenario,
    jobs: Vec<Job>,
    aborted: Vec<String>,
    calls: u64,
    /// Every request answered: `"<what> <job id>"`.
    log: Vec<String>,
    infos: usize,
}

type Shared = Arc<Mutex<Mock>>;

fn answer(m: &mut Mock, status: StatusCode, body: String) -> Response {
    m.calls += 1;
    (status, [("sforce-limit-info", format!("api-usage={}/15000", 100 + m.calls))], body).into_response()
}

fn job_doc(j: &Job) -> Value {
    json!({"id": j.id, "operation": j.create["operation"], "object": j.create["object"], "createdById": "005000000000001AAA",
        "createdDate": "2026-11-23T10:00:00.000+0000", "systemModstamp": "2026-11-23T10:00:00.000+0000", "state": j.state,
        "externalIdFieldName": j.create["externalIdFieldName"], "concurrencyMode": "Parallel", "contentType": "CSV",
        "apiVersion": 62.0, "contentUrl": format!("services/data/v62.0/jobs/ingest/{}/batches", j.id),
        "lineEnding": "LF", "columnDelimiter": "COMMA"})
}

fn error(code: &str, message: &str) -> String {
    json!([{"errorCode": code, "message": message}]).to_string()
}

async fn create(State(s): State<Shared>, axum::Json(body): axum::Json<Value>) -> Response {
    let mut m = s.lock().unwrap();
    m.log.push("create".into());
    let n = m.jobs.len();
    if let Some((from, status, err)) = m.scenario.create_fail.clone()
        && n >= from
    {
        return answer(&mut m, StatusCode::from_u16(status).unwrap(), err.to_string());
    }
    assert_eq!(body["contentType"], "CSV");
    assert_eq!(body["lineEnding"], "LF");
    assert_eq!(body["columnDelimiter"], "COMMA");
    let job = Job { id: format!("750R0000000{n:04}AAA"), create: body, state: "Open".into(), ..Job::default() };
    let doc = job_doc(&job).to_string();
    m.jobs.push(job);
    answer(&mut m, StatusCode::OK, doc)
}

async fn upload(State(s): State<Shared>, Path(id): Path<String>, headers: HeaderMap, body: Body) -> Response {
    let mut m = s.lock().unwrap();
    m.log.push(format!("upload {id}"));
    assert_eq!(headers.get("content-type").unwrap(), "text/csv");
    if let Some((status, err)) = m.scenario.upload_fail.clone() {
        return answer(&mut m, StatusCode::from_u16(status).unwrap(), err.to_string());
    }
    let Some(job) = m.jobs.iter_mut().find(|j| j.id == id) else {
        return answer(&mut m, StatusCode::NOT_FOUND, error("NOT_FOUND", "no such job"));
    };
    if job.state != "Open" {
        return answer(&mut m, StatusCode::CONFLICT, error("INVALIDJOBSTATE", "Job is not open"));
    }
    job.content_length = headers.get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    job.csv = body.to_vec();
    answer(&mut m, StatusCode::CREATED, String::new())
}

async fn set_state(State(s): State<Shared>, Path(id): Path<String>, axum::Json(body): axum::Json<Value>) -> Response {
    let mut m = s.lock().unwrap();
    m.log.push(format!("{} {id}", body["state"].as_str().unwrap_or("?")));
    let Some(job) = m.jobs.iter_mut().find(|j| j.id == id) else {
        return answer(&mut m, StatusCode::NOT_FOUND, error("NOT_FOUND", "no such job"));
    };
    let target = body["state"].as_str().unwrap_or("").to_string();
    match target.as_str() {
        "UploadComplete" if job.state == "Open" => job.state = target,
        "Aborted" => {
            job.state = target;
            let id = job.id.clone();
            m.aborted.push(id);
        }
        _ => return answer(&mut m, StatusCode::BAD_REQUEST, error("INVALIDJOBSTATE", "bad state change")),
    }
    let doc = job_doc(m.jobs.iter().find(|j| j.id == id).unwrap()).to_string();
    answer(&mut m, StatusCode::OK, doc)
}

async fn info(State(s): State<Shared>, Path(id): Path<String>) -> Response {
    let mut m = s.lock().unwrap();
    m.log.push(format!("info {id}"));
    let sc = m.scenario.clone();
    m.infos += 1;
    if let Some((from, status, err)) = sc.info_fail
        && m.infos > from
    {
        return answer(&mut m, StatusCode::from_u16(status).unwrap(), err.to_string());
    }
    if m.scenario.poll_blips > 0 {
        m.scenario.poll_blips -= 1;
        return answer(&mut m, StatusCode::SERVICE_UNAVAILABLE, "<html>Service Unavailable</html>".into());
    }
    let Some(job) = m.jobs.iter_mut().find(|j| j.id == id) else {
        return answer(&mut m, StatusCode::NOT_FOUND, error("NOT_FOUND", "no such job"));
    };
    if matches!(job.state.as_str(), "UploadComplete" | "InProgress") {
        job.polls += 1;
        job.state = if sc.never_done || job.polls <= sc.polls_before_done {
            "InProgress".into()
        } else {
            match sc.final_state {
                Some((state, _)) => state.into(),
                None => "JobComplete".into(),
            }
        };
    }
    let mut doc = job_doc(job);
    if let Some((_, msg)) = sc.final_state
        && job.state == "Failed"
    {
        doc["errorMessage"] = json!(msg);
    }
    if job.state != "Open" {
        let rows = parse_all(&job.csv).unwrap();
        doc["numberRecordsProcessed"] = json!(rows.len().saturating_sub(1));
        let failed = rows.iter().skip(1).filter(|r| r[0].contains("lock") || r[0].contains("bad")).count();
        doc["numberRecordsFailed"] = json!(if job.state == "JobComplete" { failed } else { 0 });
    }
    answer(&mut m, StatusCode::OK, doc.to_string())
}

/// The key decides a record's fate: `…lock` fails (retryable), `…bad`
/// fails (permanent), `…later` is unprocessed, `…lost` is in no file;
/// others succeed, created when their number is even.
fn results(job: &Job, file: &str, crlf: bool) -> String {
    let rows = parse_all(&job.csv).unwrap();
    let Some((header, data)) = rows.split_first() else { return String::new() };
    let nl = if crlf { "\r\n" } else { "\n" };
    let echo = |r: &Vec<String>| {
        let mut out = Vec::new();
        write_row(&mut out, r.iter().map(String::as_str));
        String::from_utf8(out).unwrap().trim_end_matches('\n').to_string()
    };
    let head = echo(header);
    let mut lines: Vec<String> = Vec::new();
    let done = matches!(job.state.as_str(), "JobComplete");
    for (i, r) in data.iter().enumerate() {
        let key = r[0].as_str();
        let fate = if !done {
            "later"
        } else if key.contains("lock") || key.contains("bad") {
            "failed"
        } else if key.contains("later") {
            "later"
        } else if key.contains("lost") {
            "lost"
        } else {
            "ok"
        };
        match (file, fate) {
            ("successfulResults", "ok") => {
                let n: usize = key.trim_start_matches(|c: char| !c.is_ascii_digit()).parse().unwrap_or(i);
                lines.push(format!("\"a0B{:015}\",\"{}\",{}", n, n % 2 == 0, echo(r)));
            }
            ("failedResults", "failed") => {
                let err = if key.contains("lock") {
                    "UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this record:--"
                } else {
                    "REQUIRED_FIELD_MISSING:Required fields are missing: [Course_Id__c]:Course_Id__c --"
                };
                lines.push(format!("\"\",\"{err}\",{}", echo(r)));
            }
            ("unprocessedrecords", "later") => lines.push(echo(r)),
            _ => {}
        }
    }
    // Salesforce keeps no order: answer in reverse, and repeat a success.
    lines.reverse();
    if file == "successfulResults"
        && let Some(first) = lines.last().cloned()
    {
        lines.push(first);
    }
    let header = match file {
        "successfulResults" => format!("\"sf__Id\",\"sf__Created\",{head}"),
        "failedResults" => format!("\"sf__Id\",\"sf__Error\",{head}"),
        _ => head,
    };
    let mut out = header + nl;
    for l in lines {
        out.push_str(&l);
        out.push_str(nl);
    }
    out
}

async fn result_file(State(s): State<Shared>, Path((id, file)): Path<(String, String)>) -> Response {
    let mut m = s.lock().unwrap();
    m.log.push(format!("{file} {id}"));
    let sc = m.scenario.clone();
    if let Some((which, status)) = sc.results_fail
        && which == file
    {
        return answer(&mut m, StatusCode::from_u16(status).unwrap(), error("SERVER_UNAVAILABLE", "try later"));
    }
    let Some(job) = m.jobs.iter().find(|j| j.id == id) else {
        return answer(&mut m, StatusCode::NOT_FOUND, error("NOT_FOUND", "no such job"));
    };
    if !matches!(file.as_str(), "successfulResults" | "failedResults" | "unprocessedrecords") {
        return answer(&mut m, StatusCode::NOT_FOUND, error("NOT_FOUND", "no such resource"));
    }
    let mut body = results(job, &file, sc.crlf);
    if sc.truncated_failed
        && file == "failedResults"
        && let Some(cut) = body.rfind("Required")
    {
        // The connection drops inside the quoted sf__Error of the last row.
        body.truncate(cut);
    }
    answer(&mut m, StatusCode::OK, body)
}

async fn bulk_mock(scenario: Scenario) -> (String, Shared) {
    let state: Shared = Arc::new(Mutex::new(Mock { scenario, ..Mock::default() }));
    let router = Router::new()
        .route("/services/data/v62.0/jobs/ingest", post(create))
        .route("/services/data/v62.0/jobs/ingest/{id}", get(info).patch(set_state))
        .route("/services/data/v62.0/jobs/ingest/{id}/batches", put(upload))
        .route("/services/data/v62.0/jobs/ingest/{id}/{file}", get(result_file))
        .with_state(state.clone());
    (mock(router).await, state)
}

fn rec(key: &str) -> SfRecord {
    let mut body = Map::new();
    body.insert("attributes".into(), json!({"type": ENROLLMENT_OBJECT}));
    body.insert(ENROLLMENT_EXTERNAL_ID.into(), json!(key));
    body.insert("Contact__r".into(), json!({"attributes": {"type": "Contact"}, "LMS_Learner_Id__c": "L1"}));
    body.insert("Course_Title__c".into(), json!("Fire \"safety\", part 1\nrefresher"));
    body.insert("Score__c".into(), Value::Null);
    SfRecord {
        sobject: ENROLLMENT_OBJECT,
        external_id_field: ENROLLMENT_EXTERNAL_ID,
        external_id: key.into(),
        body: body.into(),
    }
}

fn fast(chunk: usize) -> impl FnOnce(&mut crate::salesforce::ClientConfig) {
    move |c| {
        c.upload_chunk_bytes = chunk;
        c.poll = PollSchedule {
            initial: Duration::from_secs(1),
            factor: 2,
            max_delay: Duration::from_secs(8),
            max_total: Duration::from_secs(60),
        };
    }
}

fn created(n: usize) -> RecordOutcome {
    RecordOutcome::Created { id: format!("a0B{n:015}") }
}

fn updated(n: usize) -> RecordOutcome {
    RecordOutcome::Updated { id: format!("a0B{n:015}") }
}

#[tokio::test]
async fn a_job_runs_end_to_end_and_every_record_is_accounted_for() {
    let (url, state) = bulk_mock(Scenario { polls_before_done: 3, ..Scenario::default() }).await;
    let (c, sleeper) = client_with_sleeper(fast(64));
    let keys = ["E0", "E1", "E2-lock", "E3-bad", "E4-later", "E5-lost", "E6", "E6", "E8"];
    let records: Vec<SfRecord> = keys.iter().map(|k| rec(k)).collect();
    let report = c.bulk_ingest(&session(&url), BulkOperation::Upsert, records).await.unwrap();

    assert_eq!(report.outcomes.len(), 9);
    assert_eq!(report.outcomes[0], created(0));
    assert_eq!(report.outcomes[1], updated(1));
    let lock = report.outcomes[2].clone();
    assert!(
        matches!(&lock, RecordOutcome::Failed(f) if f.code == "UNABLE_TO_LOCK_ROW" && f.class == ErrorClass::Retryable
        && f.message == "unable to obtain exclusive access to this record"),
        "{lock:?}"
    );
    assert!(
        matches!(&report.outcomes[3], RecordOutcome::Failed(f) if f.code == "REQUIRED_FIELD_MISSING" && f.class == ErrorClass::Permanent)
    );
    assert!(
        matches!(&report.outcomes[4], RecordOutcome::Failed(f) if f.code == "BULK_UNPROCESSED" && f.class == ErrorClass::Retryable)
    );
    assert!(
        matches!(&report.outcomes[5], RecordOutcome::Failed(f) if f.code == "BULK_UNPROCESSED"),
        "missing → unprocessed"
    );
    assert_eq!(report.outcomes[6], created(6));
    assert!(
        matches!(&report.outcomes[7], RecordOutcome::Failed(f) if f.code == "DUPLICATE_EXTERNAL_ID" && f.class == ErrorClass::Permanent)
    );
    assert_eq!(report.outcomes[8], created(8));
    // E4-later is in unprocessedrecords, which is not read for a job that
    // completed: like E5-lost it is missing, with the same outcome.
    assert_eq!((report.missing_rows, report.duplicate_rows, report.unexpected_rows), (2, 1, 0));
    assert_eq!(report.counts(), (3, 1, 5));
    // create, upload, close, 4 polls, successfulResults, failedResults.
    assert_eq!(report.calls, 9);
    assert_eq!(report.calls, state.lock().unwrap().calls);
    assert_eq!(report.jobs.len(), 1);
    assert_eq!(report.jobs[0].state, Some(JobState::JobComplete));

    // 1 s before the first poll (a job just closed is never done), then
    // backoff: 2 s, 4 s, 8 s after each poll that saw the job in progress.
    let waits = sleeper.waits.lock().unwrap().clone();
    assert_eq!(
        waits,
        vec![Duration::from_secs(1), Duration::from_secs(2), Duration::from_secs(4), Duration::from_secs(8)]
    );

    // The streamed upload is the exact CSV, with its length announced.
    let m = state.lock().unwrap();
    let job = &m.jobs[0];
    assert_eq!(job.state, "JobComplete");
    assert_eq!(job.create["object"], "LMS_Enrollment__c");
    assert_eq!(job.create["operation"], "upsert");
    assert_eq!(job.create["externalIdFieldName"], "LMS_Enrollment_Id__c");
    assert_eq!(job.content_length, Some(job.csv.len() as u64));
    let rows = parse_all(&job.csv).unwrap();
    assert_eq!(rows[0], vec!["LMS_Enrollment_Id__c", "Contact__r.LMS_Learner_Id__c", "Course_Title__c", "Score__c"]);
    assert_eq!(rows[1], vec!["E0", "L1", "Fire \"safety\", part 1\nrefresher", "#N/A"]);
    assert_eq!(rows.len(), 1 + 8, "the duplicate was not sent");
    drop(m);
    assert_eq!(c.api_usage(&url).map(|u| u.limit), Some(15_000));
    assert!(c.api_usage(&url).unwrap().used > 100);
}

#[tokio::test]
async fn large_inputs_are_split_into_several_jobs_under_the_upload_limit() {
    let (url, state) = bulk_mock(Scenario { crlf: true, ..Scenario::default() }).await;
    let (c, _) = client_with_sleeper(|cfg| {
        fast(100)(cfg);
        cfg.max_upload_bytes = 1_000;
    });
    let records: Vec<SfRecord> = (0..60).map(|i| rec(&format!("E{i}"))).collect();
    let report = c.bulk_ingest(&session(&url), BulkOperation::Upsert, records).await.unwrap();
    assert!(report.jobs.len() > 1, "{}", report.jobs.len());
    for (i, o) in report.outcomes.iter().enumerate() {
        assert_eq!(*o, if i % 2 == 0 { created(i) } else { updated(i) }, "record {i}");
    }
    let m = state.lock().unwrap();
    assert_eq!(m.jobs.len(), report.jobs.len());
    let mut uploaded = 0;
    for (j, s) in m.jobs.iter().zip(&report.jobs) {
        assert!(j.csv.len() <= 1_000, "{}", j.csv.len());
        assert_eq!(j.csv.len() as u64, s.bytes);
        uploaded += parse_all(&j.csv).unwrap().len() - 1;
    }
    assert_eq!(uploaded, 60);
}

#[tokio::test]
async fn failed_and_aborted_jobs() {
    let (url, _) = bulk_mock(Scenario {
        final_state: Some(("Failed", "InvalidBatch : Field name not found : Course_Title__c")),
        ..Scenario::default()
    })
    .await;
    let (c, _) = client_with_sleeper(fast(1024));
    let report = c.bulk_ingest(&session(&url), BulkOperation::Upsert, vec![rec("E0"), rec("E1")]).await.unwrap();
    for o in &report.outcomes {
        assert!(
            matches!(o, RecordOutcome::Failed(f) if f.code == "BULK_JOB_FAILED" && f.class == ErrorClass::Permanent
                && f.message.contains("Field name not found")),
            "{o:?}"
        );
    }
    assert_eq!(report.jobs[0].error_message.as_deref(), Some("InvalidBatch : Field name not found : Course_Title__c"));

    let (url, _) = bulk_mock(Scenario { final_state: Some(("Aborted", "")), ..Scenario::default() }).await;
    let report = c.bulk_ingest(&session(&url), BulkOperation::Upsert, vec![rec("E0")]).await.unwrap();
    assert!(
        matches!(&report.outcomes[0], RecordOutcome::Failed(f) if f.code == "BULK_JOB_ABORTED" && f.class == ErrorClass::Retryable)
    );
}

#[tokio::test]
async fn nothing_sent_is_a_whole_call_failure() {
    let expired = (401u16, json!([{"errorCode": "INVALID_SESSION_ID", "message": "Session expired or invalid"}]));
    let (url, _) = bulk_mock(Scenario { create_fail: Some((0, expired.0, expired.1)), ..Scenario::default() }).await;
    let (c, _) = client_with_sleeper(fast(1024));
    let e = c.bulk_ingest(&session(&url), BulkOperation::Upsert, vec![rec("E0")]).await.unwrap_err();
    assert!(matches!(e, SalesforceError::SessionExpired));
    let e = c.bulk_ingest(&session(&refused_url().await), BulkOperation::Upsert, vec![rec("E0")]).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Retryable);
    let mut other = rec("E1");
    other.sobject = "Contact";
    let e = c.bulk_ingest(&session(&url), BulkOperation::Upsert, vec![rec("E0"), other]).await.unwrap_err();
    assert_eq!((e.code().as_str(), e.class()), ("INVALID_REQUEST", ErrorClass::Permanent));
}

#[tokio::test]
async fn throttling_mid_way_stops_the_remaining_jobs() {
    let limit = json!([{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}]);
    let (url, state) = bulk_mock(Scenario { create_fail: Some((1, 403, limit)), ..Scenario::default() }).await;
    let (c, _) = client_with_sleeper(|cfg| {
        fast(1024)(cfg);
        cfg.max_upload_bytes = 300;
    });
    let records: Vec<SfRecord> = (0..12).map(|i| rec(&format!("E{i}"))).collect();
    let report = c.bulk_ingest(&session(&url), BulkOperation::Upsert, records).await.unwrap();
    assert!(report.jobs.len() >= 3);
    let first_job = report.jobs[0].records;
    for (i, o) in report.outcomes.iter().enumerate() {
        if i < first_job {
            assert!(o.failure_class().is_none(), "{i}: {o:?}");
        } else {
            assert_eq!(o.failure_class(), Some(ErrorClass::Throttled), "{i}: {o:?}");
        }
    }
    let second = &report.outcomes[first_job];
    assert!(matches!(second, RecordOutcome::Failed(f) if f.code == "REQUEST_LIMIT_EXCEEDED"), "{second:?}");
    let third = report.outcomes.last().unwrap();
    assert!(matches!(third, RecordOutcome::Failed(f) if f.code == "NOT_SENT"), "{third:?}");
    assert_eq!(state.lock().unwrap().jobs.len(), 1, "no job after the throttled one");
}

#[tokio::test]
async fn polling_gives_up_retryably_within_its_budget() {
    let (url, _) = bulk_mock(Scenario { never_done: true, ..Scenario::default() }).await;
    let (c, sleeper) = client_with_sleeper(fast(1024));
    let report = c.bulk_ingest(&session(&url), BulkOperation::Upsert, vec![rec("E0")]).await.unwrap();
    assert!(
        matches!(&report.outcomes[0], RecordOutcome::Failed(f) if f.code == "BULK_JOB_TIMEOUT" && f.class == ErrorClass::Retryable)
    );
    let waits = sleeper.waits.lock().unwrap().clone();
    let total: Duration = waits.iter().sum();
    assert!(total <= Duration::from_secs(60), "{total:?}");
    assert_eq!(waits.iter().max(), Some(&Duration::from_secs(8)), "capped backoff");
}

#[tokio::test]
async fn a_poll_that_fails_now_and_then_is_waited_out() {
    let (url, _) = bulk_mock(Scenario { poll_blips: 2, ..Scenario::default() }).await;
    let (c, _) = client_with_sleeper(fast(1024));
    let report = c.bulk_ingest(&session(&url), BulkOperation::Upsert, vec![rec("E0")]).await.unwrap();
    assert_eq!(report.outcomes[0], created(0));
    // Three failures in a row: the records are retried later instead.
    let (url, _) = bulk_mock(Scenario { poll_blips: 3, ..Scenario::default() }).await;
    let report = c.bulk_ingest(&session(&url), BulkOperation::Upsert, vec![rec("E0")]).await.unwrap();
    assert!(
        matches!(&report.outcomes[0], RecordOutcome::Failed(f) if f.code == "HTTP_503" && f.class == ErrorClass::Retryable)
    );
}

#[tokio::test]
async fn unreadable_results_never_count_as_success() {
    // failedResults answers 503: the records it would have named are retried.
    let (url, _) = bulk_mock(Scenario { results_fail: Some(("failedResults", 503)), ..Scenario::default() }).await;
    let (c, _) = client_with_sleeper(fast(1024));
    let report = c.bulk_ingest(&session(&url), BulkOperation::Upsert, vec![rec("E0"), rec("E1-bad")]).await.unwrap();
    assert_eq!(report.outcomes[0], created(0));
    assert!(
        matches!(&report.outcomes[1], RecordOutcome::Failed(f) if f.class == ErrorClass::Retryable
        && f.code == "SERVER_UNAVAILABLE" && f.message.contains("outcome is unknown")),
        "{:?}",
        report.outcomes[1]
    );

    // A failedResults file cut in the middle of a row.
    let (url, _) = bulk_mock(Scenario { truncated_failed: true, ..Scenario::default() }).await;
    let report = c.bulk_ingest(&session(&url), BulkOperation::Upsert, vec![rec("E0"), rec("E1-bad")]).await.unwrap();
    assert_eq!(report.outcomes[0], created(0));
    assert_eq!(report.outcomes[1].failure_class(), Some(ErrorClass::Retryable), "{:?}", report.outcomes[1]);
}

#[tokio::test]
async fn a_refused_upload_aborts_the_job() {
    let bad = json!([{"errorCode": "INVALIDJOBSTATE", "message": "Job is not open for upload"}]);
    let (url, state) = bulk_mock(Scenario { upload_fail: Some((400, bad)), ..Scenario::default() }).await;
    let (c, _) = client_with_sleeper(fast(1024));
    let report = c.bulk_ingest(&session(&url), BulkOperation::Upsert, vec![rec("E0")]).await.unwrap();
    assert!(
        matches!(&report.outcomes[0], RecordOutcome::Failed(f) if f.code == "INVALIDJOBSTATE" && f.class == ErrorClass::Permanent)
    );
    let m = state.lock().unwrap();
    assert_eq!(m.aborted, vec![m.jobs[0].id.clone()]);
}

#[tokio::test]
async fn step_by_step_for_a_resumable_caller() {
    let (url, _) = bulk_mock(Scenario { polls_before_done: 1, ..Scenario::default() }).await;
    let (c, _) = client_with_sleeper(fast(1024));
    let s = session(&url);
    let records = Arc::new(vec![rec("E0"), rec("E1")]);
    let plan = Arc::new(BulkPlan::new(BulkOperation::Upsert, &records, MAX).unwrap());
    let job = c.bulk_create_job(&s, &plan).await.unwrap();
    assert_eq!(job.state, JobState::Open);
    c.bulk_upload(&s, &job.id, plan.clone(), records.clone(), &plan.parts[0]).await.unwrap();
    assert_eq!(c.bulk_close_job(&s, &job.id).await.unwrap().state, JobState::UploadComplete);
    // Another invocation picks the job up by its id.
    let info = c.bulk_wait(&s, &job.id).await.unwrap();
    assert_eq!(info.state, JobState::JobComplete);
    let unprocessed = unprocessed_failure(&info);
    let mut matcher = plan.matcher(&plan.parts[0], &records);
    for kind in ResultKind::ALL {
        c.bulk_read_results(&s, &job.id, kind, &mut matcher, &unprocessed).await.unwrap();
    }
    let r = matcher.finish(&unprocessed);
    assert_eq!(r.outcomes, vec![created(0), updated(1)]);
    assert_eq!(c.bulk_job_info(&s, "../../x").await.unwrap_err().code(), "INVALID_REQUEST");
    assert!(c.api_usage(&url).is_some_and(|u: ApiUsage| u.used > 100));
}

/// The requests the mock answered from `from` on.
fn log_since(state: &Shared, from: usize) -> Vec<String> {
    state.lock().unwrap().log[from..].to_vec()
}

fn code_of(o: &RecordOutcome) -> (&str, ErrorClass) {
    match o {
        RecordOutcome::Failed(f) => (f.code.as_str(), f.class),
        other => panic!("not a failure: {other:?}"),
    }
}

#[tokio::test]
async fn a_resumed_worker_reads_only_the_result_files_it_needs() {
    let (url, state) = bulk_mock(Scenario { polls_before_done: 1, ..Scenario::default() }).await;
    let (c, _) = client_with_sleeper(fast(1024));
    let s = session(&url);
    let records: Vec<SfRecord> = ["E0", "E1", "E2", "E2"].iter().map(|k| rec(k)).collect();
    let sub = c.bulk_submit(&s, &records).await.unwrap();
    assert_eq!(sub.jobs.len(), 1);
    assert_eq!(sub.not_sent.len(), 1);
    assert_eq!((sub.not_sent[0].0, sub.not_sent[0].1.code.as_str()), (3, "DUPLICATE_EXTERNAL_ID"));
    assert_eq!(sub.calls, 3);
    assert_eq!(
        log_since(&state, 0),
        vec!["create".to_string(), format!("upload {}", sub.jobs[0]), format!("UploadComplete {}", sub.jobs[0])]
    );
    assert_eq!(state.lock().unwrap().calls, 3);

    // Another invocation, another client: only the job ids are known.
    let (resumed, sleeper) = client_with_sleeper(fast(1024));
    let job = &sub.jobs[0];
    let report = resumed.bulk_outcomes(&s, &sub.jobs, &records[..3]).await.unwrap();
    assert_eq!(report.outcomes, vec![created(0), updated(1), created(2)]);
    // No failure reported, the job complete: neither failedResults nor
    // unprocessedrecords is asked for.
    assert_eq!(
        log_since(&state, 3),
        vec![format!("info {job}"), format!("info {job}"), format!("successfulResults {job}")]
    );
    assert_eq!(report.calls, 3);
    assert_eq!(state.lock().unwrap().calls, 3 + report.calls);
    assert_eq!(*sleeper.waits.lock().unwrap(), vec![Duration::from_secs(1), Duration::from_secs(2)]);
    assert_eq!(report.jobs.len(), 1);
    assert_eq!((report.jobs[0].id.as_str(), report.jobs[0].state), (job.as_str(), Some(JobState::JobComplete)));
    assert_eq!((report.missing_rows, report.unexpected_rows, report.duplicate_rows), (0, 0, 1));

    // Rows about records not asked for are ignored; a record no job names
    // is unprocessed, retryably.
    let asked = vec![rec("E1"), rec("E9")];
    let report = resumed.bulk_outcomes(&s, &sub.jobs, &asked).await.unwrap();
    assert_eq!(report.outcomes[0], updated(1));
    assert_eq!(code_of(&report.outcomes[1]), ("BULK_UNPROCESSED", ErrorClass::Retryable));
    // E0 twice (the repeated row) and E2.
    assert_eq!((report.unexpected_rows, report.missing_rows, report.duplicate_rows), (3, 1, 0));
    assert_eq!(report.calls, 2, "a completed job: its info, then successfulResults");
    assert!(resumed.bulk_outcomes(&s, &sub.jobs, &[]).await.unwrap().outcomes.is_empty());
}

#[tokio::test]
async fn an_open_job_of_a_crashed_worker_is_aborted_and_its_records_are_unprocessed() {
    let (url, state) = bulk_mock(Scenario::default()).await;
    let (c, _) = client_with_sleeper(fast(1024));
    let s = session(&url);
    let first = vec![rec("E0"), rec("E1-bad")];
    let sub = c.bulk_submit(&s, &first).await.unwrap();
    // The crashed worker created its job and uploaded, never closed it.
    let rest = Arc::new(vec![rec("E2"), rec("E3")]);
    let plan = Arc::new(BulkPlan::new(BulkOperation::Upsert, &rest, MAX).unwrap());
    let open = c.bulk_create_job(&s, &plan).await.unwrap();
    c.bulk_upload(&s, &open.id, plan.clone(), rest.clone(), &plan.parts[0]).await.unwrap();
    let all: Vec<SfRecord> = first.iter().chain(rest.iter()).cloned().collect();
    let jobs = vec![sub.jobs[0].clone(), open.id.clone()];

    let (before, calls_before) = {
        let m = state.lock().unwrap();
        (m.log.len(), m.calls)
    };
    let report = c.bulk_outcomes(&s, &jobs, &all).await.unwrap();
    assert_eq!(report.outcomes[0], created(0));
    assert_eq!(code_of(&report.outcomes[1]), ("REQUIRED_FIELD_MISSING", ErrorClass::Permanent));
    for o in &report.outcomes[2..] {
        assert!(
            matches!(o, RecordOutcome::Failed(f) if f.code == "BULK_UNPROCESSED" && f.class == ErrorClass::Retryable
                && f.message.contains("Open")),
            "{o:?}"
        );
    }
    let (j0, j1) = (&jobs[0], &jobs[1]);
    assert_eq!(
        log_since(&state, before),
        vec![
            format!("info {j0}"),
            format!("successfulResults {j0}"),
            format!("failedResults {j0}"),
            format!("info {j1}"),
            format!("Aborted {j1}"),
        ],
        "the open job's results are not read"
    );
    let m = state.lock().unwrap();
    assert_eq!(m.aborted, vec![j1.clone()]);
    assert_eq!(report.calls, 5);
    assert_eq!(m.calls - calls_before, report.calls);
    assert_eq!(report.jobs[1].state, Some(JobState::Aborted));
    assert_eq!(report.missing_rows, 2);
}

#[tokio::test]
async fn outcomes_fail_as_a_whole_only_when_nothing_could_be_read() {
    let expired = json!([{"errorCode": "INVALID_SESSION_ID", "message": "Session expired or invalid"}]);
    let (c, _) = client_with_sleeper(fast(1024));

    // The session is expired at the first job info: nothing known, Err.
    let (url, state) = bulk_mock(Scenario { info_fail: Some((0, 401, expired.clone())), ..Scenario::default() }).await;
    let s = session(&url);
    let sub = c.bulk_submit(&s, &[rec("E0")]).await.unwrap();
    let e = c.bulk_outcomes(&s, &sub.jobs, &[rec("E0")]).await.unwrap_err();
    assert!(matches!(e, SalesforceError::SessionExpired), "{e:?}");
    assert_eq!(state.lock().unwrap().log.len(), 4, "one info call, nothing after it");

    // It expires after the first job was read: the first job's records
    // have their outcomes, the second's are unknown (retryable), and
    // nothing more is asked.
    let (url, state) = bulk_mock(Scenario { info_fail: Some((1, 401, expired)), ..Scenario::default() }).await;
    let s = session(&url);
    let a = c.bulk_submit(&s, &[rec("E0")]).await.unwrap();
    let b = c.bulk_submit(&s, &[rec("E1")]).await.unwrap();
    let c3 = c.bulk_submit(&s, &[rec("E2")]).await.unwrap();
    let jobs = [a.jobs, b.jobs, c3.jobs].concat();
    let before = state.lock().unwrap().log.len();
    let report = c.bulk_outcomes(&s, &jobs, &[rec("E0"), rec("E1"), rec("E2")]).await.unwrap();
    assert_eq!(report.outcomes[0], created(0));
    assert_eq!(code_of(&report.outcomes[1]), ("INVALID_SESSION_ID", ErrorClass::Retryable));
    assert_eq!(code_of(&report.outcomes[2]), ("INVALID_SESSION_ID", ErrorClass::Retryable));
    assert_eq!(log_since(&state, before).len(), 3, "info, successfulResults, info: {:?}", log_since(&state, before));
    assert_eq!(report.calls, 3);
    assert!(report.jobs[2].error_message.as_deref().is_some_and(|m| m.starts_with("not read")), "{:?}", report.jobs[2]);

    // An unknown job (NOT_FOUND) and nothing else: Err; beside a readable
    // job: its records' outcomes are unknown.
    let (url, _) = bulk_mock(Scenario::default()).await;
    let s = session(&url);
    let missing = "750R0000000zzzzAAA".to_string();
    let e = c.bulk_outcomes(&s, std::slice::from_ref(&missing), &[rec("E0")]).await.unwrap_err();
    assert_eq!(e.code(), "NOT_FOUND");
    let sub = c.bulk_submit(&s, &[rec("E0")]).await.unwrap();
    let jobs = vec![missing, sub.jobs[0].clone()];
    let report = c.bulk_outcomes(&s, &jobs, &[rec("E0"), rec("E5")]).await.unwrap();
    assert_eq!(report.outcomes[0], created(0));
    assert!(
        matches!(&report.outcomes[1], RecordOutcome::Failed(f) if f.code == "NOT_FOUND" && f.class == ErrorClass::Retryable
            && f.message.contains("unknown")),
        "{:?}",
        report.outcomes[1]
    );
    // A job id that is not one is refused before any call.
    let e = c.bulk_outcomes(&s, &["../x".to_string()], &[rec("E0")]).await.unwrap_err();
    assert_eq!(e.code(), "INVALID_REQUEST");
}

#[tokio::test]
async fn bulk_submit_returns_what_it_did_not_send() {
    // Throttled at the second job: the rest is not sent.
    let limit = json!([{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}]);
    let (url, state) = bulk_mock(Scenario { create_fail: Some((1, 403, limit)), ..Scenario::default() }).await;
    let (c, _) = client_with_sleeper(|cfg| {
        fast(1024)(cfg);
        cfg.max_upload_bytes = 300;
    });
    let records: Vec<SfRecord> = (0..12).map(|i| rec(&format!("E{i}"))).collect();
    let sub = c.bulk_submit(&session(&url), &records).await.unwrap();
    assert_eq!(sub.jobs.len(), 1);
    let first_part = 12 - sub.not_sent.len();
    assert!(first_part > 0 && first_part < 12);
    assert!(sub.not_sent.iter().map(|(i, _)| *i).eq(first_part..12), "by input index");
    assert!(sub.not_sent.iter().all(|(_, f)| f.class == ErrorClass::Throttled));
    assert_eq!(sub.not_sent[0].1.code, "REQUEST_LIMIT_EXCEEDED");
    assert_eq!(sub.not_sent.last().unwrap().1.code, "NOT_SENT");
    assert_eq!(sub.calls, 4, "create, upload, close, the refused create");
    assert_eq!(state.lock().unwrap().calls, 4);

    // The first job cannot be created: nothing sent, Err.
    let expired = json!([{"errorCode": "INVALID_SESSION_ID", "message": "Session expired or invalid"}]);
    let (url, _) = bulk_mock(Scenario { create_fail: Some((0, 401, expired)), ..Scenario::default() }).await;
    let e = c.bulk_submit(&session(&url), &records).await.unwrap_err();
    assert!(matches!(e, SalesforceError::SessionExpired));

    // A refused upload: the job is aborted, its records come back.
    let bad = json!([{"errorCode": "INVALIDJOBSTATE", "message": "Job is not open for upload"}]);
    let (url, state) = bulk_mock(Scenario { upload_fail: Some((400, bad)), ..Scenario::default() }).await;
    let sub = c.bulk_submit(&session(&url), &[rec("E0"), rec("E1")]).await.unwrap();
    assert!(sub.jobs.is_empty());
    assert_eq!(
        sub.not_sent.iter().map(|(i, f)| (*i, f.code.as_str())).collect::<Vec<_>>(),
        vec![(0, "INVALIDJOBSTATE"), (1, "INVALIDJOBSTATE")]
    );
    assert_eq!(sub.calls, 3, "create, upload, abort");
    let m = state.lock().unwrap();
    assert_eq!(m.aborted, vec![m.jobs[0].id.clone()]);
}

const MAX: u64 = learnlink_core::salesforce::bulk::MAX_UPLOAD_BYTES;
