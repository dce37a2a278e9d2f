//! Bulk API 2.0 in two halves against the Salesforce emulator (SPEC §6.3):
//! one client submits the jobs, another — a worker resumed with nothing but
//! the job ids — waits for them and matches their results back onto the
//! records. Run twice: every record created, then every record updated,
//! never duplicated; the calls each half reports are the calls the
//! emulator counted.

use learnlink_adapters::salesforce::SalesforceClient;
use learnlink_core::model::{Enrollment, EnrollmentStatus};
use learnlink_core::ports::SalesforceApi;
use learnlink_core::salesforce::bulk::{BulkOperation, BulkPlan, JobState, MAX_UPLOAD_BYTES};
use learnlink_core::salesforce::{RecordOutcome, Session, SfRecord};
use learnlink_core::sync::{ENROLLMENT_EXTERNAL_ID, ENROLLMENT_OBJECT, enrollment_record};
use learnlink_e2e::SfEmulator;
use secrecy::SecretString;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;

const N: usize = 5_000;
const LEARNERS: usize = 500;

async fn api_calls(http: &reqwest::Client, emu: &SfEmulator) -> anyhow::Result<u64> {
    let stats: Value = http.get(format!("{}/__emulator/stats", emu.url)).send().await?.json().await?;
    stats["api_calls"].as_u64().ok_or_else(|| anyhow::anyhow!("no api_calls in {stats}"))
}

fn records() -> Vec<SfRecord> {
    let t = time::OffsetDateTime::now_utc();
    (0..N)
        .map(|i| {
            enrollment_record(&Enrollment {
                id: format!("BR-E{i}"),
                learner_id: format!("BR-L{}", i % LEARNERS),
                course_id: format!("C{}", i % 13),
                course_title: Some(format!("Course \"{}\", part {}", i % 13, i % 3)),
                status: if i % 4 == 0 { EnrollmentStatus::Completed } else { EnrollmentStatus::InProgress },
                progress_pct: Some((i % 100) as f64),
                score: (i % 4 == 0).then_some(80.5),
                enrolled_at: Some(t),
                completed_at: (i % 4 == 0).then_some(t),
                updated_at: t,
            })
        })
        .collect()
}

#[tokio::test]
async fn a_resumed_worker_reads_the_outcomes_of_jobs_it_did_not_submit() -> anyhow::Result<()> {
    let emu = SfEmulator::start()?;
    let http = reqwest::Client::new();
    let contacts: Vec<Value> = (0..LEARNERS)
        .map(|i| json!({"LastName": format!("Resume {i}"), "LMS_Learner_Id__c": format!("BR-L{i}")}))
        .collect();
    let r = http.post(format!("{}/__emulator/records/Contact", emu.url)).json(&contacts).send().await?;
    anyhow::ensure!(r.status().is_success(), "seeding contacts: {}", r.status());
    let tokens: Value =
        http.post(format!("{}/__emulator/connections", emu.url)).json(&json!({})).send().await?.json().await?;
    let session = Session {
        instance_url: tokens["instance_url"].as_str().unwrap_or_default().to_string(),
        access_token: SecretString::from(tokens["access_token"].as_str().unwrap_or_default().to_string()),
    };
    let records = records();
    anyhow::ensure!(records.iter().all(|r| r.external_id.starts_with("BR-E")));

    for round in 0..2 {
        let before = api_calls(&http, &emu).await?;
        let submitter: Arc<dyn SalesforceApi> = Arc::new(SalesforceClient::new()?);
        let submitted = submitter.bulk_submit(&session, &records).await?;
        assert!(submitted.not_sent.is_empty(), "round {round}: {:?}", &submitted.not_sent[..1]);
        assert_eq!(submitted.jobs.len(), 1, "5,000 enrollments fit one upload");
        assert_eq!(submitted.calls, 3, "create, upload, close");

        // A new client (a new invocation): only the job ids survived.
        let resumed: Arc<dyn SalesforceApi> = Arc::new(SalesforceClient::new()?);
        let report = resumed.bulk_outcomes(&session, &submitted.jobs, &records).await?;
        let expected = if round == 0 { (N, 0, 0) } else { (0, N, 0) };
        assert_eq!(report.counts(), expected, "round {round}: {:?}", report.jobs);
        assert_eq!((report.missing_rows, report.unexpected_rows, report.duplicate_rows), (0, 0, 0));
        assert!(report.calls >= 2, "at least the job info and successfulResults: {}", report.calls);

        let counted = api_calls(&http, &emu).await? - before;
        assert_eq!(submitted.calls + report.calls, counted, "round {round}: the emulator counted {counted} calls");
    }

    let stored: Vec<Value> =
        http.get(format!("{}/__emulator/records/{ENROLLMENT_OBJECT}", emu.url)).send().await?.json().await?;
    assert_eq!(stored.len(), N, "no duplicates");
    let keys: HashSet<&str> = stored.iter().filter_map(|r| r[ENROLLMENT_EXTERNAL_ID].as_str()).collect();
    assert_eq!(keys.len(), N);
    assert!(
        stored.iter().all(|r| r["Contact__c"].as_str().is_some_and(|c| !c.is_empty())),
        "every enrollment is linked to its Contact"
    );
    Ok(())
}

#[tokio::test]
async fn an_open_job_left_by_a_crashed_worker_is_aborted_not_waited_for() -> anyhow::Result<()> {
    let emu = SfEmulator::start()?;
    let http = reqwest::Client::new();
    let contacts: Vec<Value> = (0..LEARNERS)
        .map(|i| json!({"LastName": format!("Resume {i}"), "LMS_Learner_Id__c": format!("BR-L{i}")}))
        .collect();
    let r = http.post(format!("{}/__emulator/records/Contact", emu.url)).json(&contacts).send().await?;
    anyhow::ensure!(r.status().is_success(), "seeding contacts: {}", r.status());
    let tokens: Value =
        http.post(format!("{}/__emulator/connections", emu.url)).json(&json!({})).send().await?.json().await?;
    let session = Session {
        instance_url: tokens["instance_url"].as_str().unwrap_or_default().to_string(),
        access_token: SecretString::from(tokens["access_token"].as_str().unwrap_or_default().to_string()),
    };
    let all = records();
    let (done, open) = all[..20].split_at(10);
    let client = SalesforceClient::new()?;
    let submitted = client.bulk_submit(&session, done).await?;
    // The crashed worker: its job created and uploaded, never closed.
    let open = Arc::new(open.to_vec());
    let plan = Arc::new(BulkPlan::new(BulkOperation::Upsert, &open, MAX_UPLOAD_BYTES)?);
    let job = client.bulk_create_job(&session, &plan).await?;
    client.bulk_upload(&session, &job.id, plan.clone(), open.clone(), &plan.parts[0]).await?;

    let before = api_calls(&http, &emu).await?;
    let jobs = [submitted.jobs, vec![job.id.clone()]].concat();
    let report = SalesforceClient::new()?.bulk_outcomes(&session, &jobs, &all[..20]).await?;
    assert_eq!(report.counts(), (10, 0, 10));
    assert!(
        report.outcomes[10..].iter().all(
            |o| matches!(o, RecordOutcome::Failed(f) if f.code == "BULK_UNPROCESSED" && f.message.contains(&job.id))
        )
    );
    assert_eq!(report.jobs[1].state, Some(JobState::Aborted));
    assert_eq!(api_calls(&http, &emu).await? - before, report.calls);
    assert_eq!(client.bulk_job_info(&session, &job.id).await?.state, JobState::Aborted);
    let stored: Vec<Value> =
        http.get(format!("{}/__emulator/records/{ENROLLMENT_OBJECT}", emu.url)).send().await?.json().await?;
    assert_eq!(stored.len(), 10, "nothing of the open job was written");
    Ok(())
}
