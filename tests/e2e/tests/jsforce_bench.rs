//! The jsforce yardstick of `make bench` (`learnlink_e2e::jsforce_bench`):
//! jsforce upserts enrollments in sObject Collections of 200, and the
//! emulator counts one API call per collection.

use learnlink_core::model::{Enrollment, EnrollmentStatus};
use learnlink_e2e::SfEmulator;
use learnlink_e2e::jsforce_bench::{enrollment_records, jsforce_upsert};
use serde_json::{Value, json};

#[tokio::test]
async fn jsforce_upserts_450_enrollments_in_three_calls() -> anyhow::Result<()> {
    const N: usize = 450;
    const LEARNERS: usize = 50;
    let emu = SfEmulator::start()?;
    let http = reqwest::Client::new();
    let contacts: Vec<Value> = (0..LEARNERS)
        .map(|i| json!({"LastName": format!("Yardstick {i}"), "LMS_Learner_Id__c": format!("JL{i}")}))
        .collect();
    let r = http.post(format!("{}/__emulator/records/Contact", emu.url)).json(&contacts).send().await?;
    anyhow::ensure!(r.status().is_success(), "seeding contacts: {}", r.status());
    let tokens: Value =
        http.post(format!("{}/__emulator/connections", emu.url)).json(&json!({})).send().await?.json().await?;
    let t = time::OffsetDateTime::now_utc();
    let enrollments: Vec<Enrollment> = (0..N)
        .map(|i| Enrollment {
            id: format!("JE{i}"),
            learner_id: format!("JL{}", i % LEARNERS),
            course_id: format!("C{}", i % 17),
            course_title: Some("Yardstick course".into()),
            status: EnrollmentStatus::InProgress,
            progress_pct: Some((i % 100) as f64),
            score: None,
            enrolled_at: Some(t),
            completed_at: None,
            updated_at: t,
        })
        .collect();
    let records = enrollment_records(&enrollments);

    let run = jsforce_upsert(
        &emu.url,
        tokens["instance_url"].as_str().unwrap_or_default(),
        tokens["access_token"].as_str().unwrap_or_default(),
        &records,
    )
    .await?;
    assert_eq!(run.records_ok, N);
    assert_eq!(run.calls, 3, "200 + 200 + 50 records: {run:?}");
    assert!(run.seconds > 0.0 && run.seconds <= run.process_seconds, "{run:?}");

    let stored: Vec<Value> =
        http.get(format!("{}/__emulator/records/LMS_Enrollment__c", emu.url)).send().await?.json().await?;
    assert_eq!(stored.len(), N);
    assert!(
        stored.iter().all(|r| r["Contact__c"].as_str().is_some_and(|c| !c.is_empty())),
        "every enrollment is linked to its Contact"
    );

    // Without a token the script refuses, and the driver says so.
    let err = jsforce_upsert(&emu.url, tokens["instance_url"].as_str().unwrap_or_default(), "wrong", &records[..1])
        .await
        .expect_err("a bad token fails the run");
    assert!(format!("{err:#}").contains("jsforce upsert failed"), "{err:#}");
    Ok(())
}
