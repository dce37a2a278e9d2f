//! The dead-letter queue with the CLI on the local stack (SPEC §4.5): a record
//! Salesforce refused with a retryable fault on every delivery lands in the
//! DLQ after maxReceiveCount (5); `learnlink dlq list` shows it without taking
//! it out; once the fault is gone, `learnlink dlq replay` sends it back and
//! the record arrives in Salesforce exactly once.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use learnlink_e2e::{Env, Options, wait_for};
use serde_json::{Value, json};
use std::time::Duration;

const SECRET: &str = "whsec-dlq-replay-0123456789";

fn cli(env: &Env, args: &[&str]) -> (i32, String, String) {
    let out = env.learnlink(args).unwrap();
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(!stdout.contains(&env.admin_token) && !stderr.contains(&env.admin_token), "the token leaked");
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

fn cli_json(env: &Env, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = cli(env, &all);
    assert_eq!(code, 0, "learnlink {args:?}:\n{stdout}\n{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

#[tokio::test]
async fn a_dead_lettered_record_is_listed_and_replayed_exactly_once_after_the_fault_is_gone() {
    let opts = Options {
        parameters: vec![("QueueVisibilityTimeoutSeconds".into(), "1".into()), ("MaxReceiveCount".into(), "5".into())],
        ..Options::default()
    };
    let env = Env::start("dlq-replay", opts).unwrap();
    env.create_tenant("acme", SECRET).await.unwrap();
    env.connect_salesforce("acme").await.unwrap();
    env.lms_dataset(1, 1).await.unwrap();
    env.seed_contacts_for_learners().await.unwrap();
    let enrollment = env.lms_all("enrollments").await.unwrap()[0]["id"].as_str().unwrap().to_string();

    // Salesforce answers every Composite call 503 SERVER_UNAVAILABLE (retryable).
    env.sf_admin("/faults", json!({"kind": "server_unavailable", "scope": "composite", "count": 10_000}))
        .await
        .unwrap();
    let sent = env.emit_webhooks("acme", SECRET, json!({"count": 1})).await.unwrap();
    assert_eq!(sent["statuses"]["202"], 1, "{sent}");

    // Five deliveries later SQS moves it to the DLQ; nothing reached Salesforce.
    wait_for("the message in the DLQ", Duration::from_secs(90), || async {
        Ok((env.queue_depth("SyncDeadLetterQueue").await? == 1 && env.queue_depth("SyncQueue").await? == 0)
            .then_some(()))
    })
    .await
    .unwrap();
    assert!(env.sf_records("LMS_Enrollment__c").await.unwrap().is_empty());
    let src = env.runtime("stats").await.unwrap()["event_sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["queue"] == "SyncQueue")
        .cloned()
        .unwrap();
    assert_eq!(src["failed_items"], 5, "delivered maxReceiveCount times: {src}");

    // `learnlink dlq list` shows it (what it carries), and listing takes nothing out.
    let (code, table, _) = cli(&env, &["dlq", "list", "acme"]);
    assert_eq!(code, 0, "{table}");
    assert!(table.contains(&format!("enrollment {enrollment}")), "{table}");
    let listed = cli_json(&env, &["dlq", "list", "acme"]);
    let messages = listed["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{listed}");
    let m = &messages[0];
    assert_eq!(m["tenant"], "acme");
    assert_eq!(m["record"], format!("enrollment {enrollment}"));
    assert!(m["event_id"].as_str().is_some_and(|e| !e.is_empty()), "{m}");
    assert!(m["receive_count"].as_u64().unwrap() >= 5, "{m}");
    let id = m["message_id"].as_str().unwrap().to_string();
    let everyone = cli_json(&env, &["dlq", "list"]);
    assert_eq!(everyone["messages"][0]["message_id"], id.as_str());
    assert_eq!(env.queue_depth("SyncDeadLetterQueue").await.unwrap(), 1, "listing removed nothing");
    // Another tenant sees none of it; an id that is not acme's is refused and replays nothing.
    let (code, _, err) = cli(&env, &["dlq", "replay", "acme", "--id", "no-such-message"]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(env.queue_depth("SyncDeadLetterQueue").await.unwrap(), 1);

    // The fault is gone: replay it.
    env.sf_clear_faults().await.unwrap();
    let written_before = env.sf_stats().await.unwrap()["records_written"].as_u64().unwrap();
    let (code, out, err) = cli(&env, &["dlq", "replay", "acme", "--id", &id]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("Replayed 1 message(s) of acme"), "{out}");

    let records = wait_for("the enrollment in Salesforce", Duration::from_secs(60), || async {
        let r = env.sf_records("LMS_Enrollment__c").await?;
        Ok((!r.is_empty()).then_some(r))
    })
    .await
    .unwrap();
    assert_eq!(records[0]["LMS_Enrollment_Id__c"], enrollment.as_str());
    // Exactly once: one record, one write, nothing left in either queue, even
    // after several visibility timeouts.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(env.sf_records("LMS_Enrollment__c").await.unwrap().len(), 1);
    let written = env.sf_stats().await.unwrap()["records_written"].as_u64().unwrap() - written_before;
    assert_eq!(written, 1, "the record was written once");
    assert_eq!(env.queue_depth("SyncDeadLetterQueue").await.unwrap(), 0);
    assert_eq!(env.queue_depth("SyncQueue").await.unwrap(), 0);
    assert!(cli_json(&env, &["dlq", "list", "acme"])["messages"].as_array().unwrap().is_empty());
    let (code, out, _) = cli(&env, &["dlq", "replay", "acme"]);
    assert_eq!((code, out.contains("Replayed 0 message(s)")), (0, true), "{out}");
}
