//! Partial batch failures and the dead-letter queue on the local stack: a
//! poison message is delivered maxReceiveCount times and then moved to the
//! DLQ by SQS (moto), while the good messages of its batch are processed once.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use aws_sdk_sqs::types::{MessageSystemAttributeName, SendMessageBatchRequestEntry};
use learnlink_core::job::{SyncJob, encode};
use learnlink_core::model::{Enrollment, EnrollmentStatus, TenantId};
use learnlink_core::webhook::{EventKind, EventPayload, LmsEvent};
use learnlink_e2e::{Env, Options, wait_for};
use std::time::Duration;

fn job(n: usize, learner: &str) -> String {
    let t = time::OffsetDateTime::now_utc();
    encode(&SyncJob::LmsEvent {
        tenant: TenantId::parse("acme").unwrap(),
        source: "lms".into(),
        event: LmsEvent {
            id: format!("evt-{n}"),
            kind: EventKind::EnrollmentCreated,
            occurred_at: t,
            payload: EventPayload::Enrollment(Enrollment {
                id: format!("E-dlq-{n}"),
                learner_id: learner.into(),
                course_id: "C001".into(),
                course_title: None,
                status: EnrollmentStatus::Enrolled,
                progress_pct: Some(0.0),
                score: None,
                enrolled_at: Some(t),
                completed_at: None,
                updated_at: t,
            }),
        },
    })
}

#[tokio::test]
async fn a_poison_message_reaches_the_dlq_after_max_receive_count_while_its_batch_is_processed() {
    let opts = Options {
        parameters: vec![("QueueVisibilityTimeoutSeconds".into(), "1".into()), ("MaxReceiveCount".into(), "5".into())],
        ..Options::default()
    };
    let env = Env::start("dlq-poison", opts).unwrap();
    env.create_tenant("acme", "whsec-dlq-0123456789").await.unwrap();
    env.connect_salesforce("acme").await.unwrap();
    env.lms_dataset(1, 1).await.unwrap();
    env.seed_contacts_for_learners().await.unwrap();
    let learners = env.lms_all("learners").await.unwrap();
    let l = learners[0]["id"].as_str().unwrap();

    // One batch: four good jobs around a poison message.
    let sqs = env.sqs().await;
    let bodies = [job(1, l), job(2, l), "{\"v\":1,\"kind\":\"no_such_job\"}".to_string(), job(3, l), job(4, l)];
    let entries: Vec<_> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| SendMessageBatchRequestEntry::builder().id(format!("m{i}")).message_body(b).build().unwrap())
        .collect();
    let out =
        sqs.send_message_batch().queue_url(env.queue_url("SyncQueue")).set_entries(Some(entries)).send().await.unwrap();
    assert!(out.failed().is_empty());

    // The good ones arrive at once...
    wait_for("4 enrollments", Duration::from_secs(30), || async {
        Ok((env.sf_records("LMS_Enrollment__c").await?.len() == 4).then_some(()))
    })
    .await
    .unwrap();

    // ...the poison lands in the DLQ after 5 deliveries.
    let dlq = env.queue_url("SyncDeadLetterQueue");
    let msg = wait_for("the poison message in the DLQ", Duration::from_secs(60), || {
        let sqs = sqs.clone();
        let dlq = dlq.clone();
        async move {
            let r = sqs
                .receive_message()
                .queue_url(&dlq)
                .max_number_of_messages(10)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await?;
            Ok(r.messages.filter(|m| !m.is_empty()))
        }
    })
    .await
    .unwrap();
    assert_eq!(msg.len(), 1, "only the poison message is dead-lettered");
    assert_eq!(msg[0].body(), Some(bodies[2].as_str()));
    assert_eq!(env.queue_depth("SyncQueue").await.unwrap(), 0);

    // The worker reported the poison as a failed item exactly maxReceiveCount
    // times and never a good one. A good message may be delivered again when a
    // loaded machine holds its batch past the 1 s visibility timeout (SQS does
    // the same): it is then processed again and deleted, and the enrollments
    // stay four.
    let stats = env.runtime("stats").await.unwrap();
    let src = stats["event_sources"].as_array().unwrap().iter().find(|s| s["queue"] == "SyncQueue").unwrap().clone();
    assert_eq!(src["failed_items"], 5, "{src}");
    let deleted = src["deleted"].as_u64().unwrap();
    assert!(deleted >= 4, "every good message is deleted: {src}");
    assert_eq!(src["messages"].as_u64().unwrap(), deleted + 5, "each delivery is deleted or failed: {src}");
    assert_eq!(env.sf_records("LMS_Enrollment__c").await.unwrap().len(), 4);
    let log = std::fs::read_to_string(env.stack.as_ref().unwrap().state_dir.join("logs/sync-worker.log")).unwrap();
    assert!(log.contains("poison message"), "the worker names the problem in its log");
}
