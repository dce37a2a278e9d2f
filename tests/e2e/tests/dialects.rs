//! Every webhook dialect of SPEC §4.1 on the local stack: the LMS emulator
//! sends enrollments as canonical, Thinkific, Northpass, Docebo (grouped, up
//! to 25 of one type) and Skilljar (token in the URL) deliveries — with
//! duplicates and in a shuffled order — through the gateway and
//! webhook-ingest to the sync queue and the sync-worker, and each enrollment
//! arrives in the Salesforce emulator exactly once. Before that, the same
//! deliveries with a wrong secret (or token) are answered 401 and nothing is
//! enqueued.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use learnlink_e2e::{Env, Options, wait_for};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

const DIALECTS: [&str; 5] = ["canonical", "thinkific", "northpass", "docebo", "skilljar"];
const PER_DIALECT: usize = 16;

fn secret(dialect: &str) -> String {
    format!("whsec-e2e-{dialect}-0123456789")
}

/// Events per delivery: canonical batches, Docebo groups (≤ 25 of one
/// type), the other vendors send one event per delivery.
fn per_delivery(dialect: &str) -> usize {
    match dialect {
        "canonical" => 5,
        "docebo" => 25,
        _ => 1,
    }
}

/// The `LMS_Enrollment_Id__c` a dialect's events carry: Docebo and Skilljar
/// have no enrollment id, learnlink keys theirs by learner and course.
fn record_id(dialect: &str, e: &Value) -> String {
    match dialect {
        "docebo" | "skilljar" => format!("{}:{}", e["learner_id"].as_str().unwrap(), e["course_id"].as_str().unwrap()),
        _ => e["id"].as_str().unwrap().to_string(),
    }
}

/// The `Status__c` a dialect can tell: Skilljar has no expiry event (the
/// emulator sends an expired enrollment as a lesson completion).
fn status_label(dialect: &str, e: &Value) -> &'static str {
    match (dialect, e["status"].as_str().unwrap()) {
        (_, "enrolled") => "Enrolled",
        (_, "in_progress") | ("skilljar", "expired") => "In Progress",
        (_, "completed") => "Completed",
        _ => "Expired",
    }
}

#[tokio::test]
async fn every_dialect_reaches_salesforce_exactly_once_and_bad_signatures_enqueue_nothing() {
    let env = Env::start("dialects", Options::default()).unwrap();
    // One tenant, one webhook source per dialect, each with its own secret.
    let mut config = env.tenant_config("acme", &secret("canonical"));
    config["webhooks"]["sources"] =
        DIALECTS.iter().map(|d| json!({"name": d, "dialect": d, "secrets": [secret(d)]})).collect::<Vec<_>>().into();
    let (status, v) = env
        .admin(reqwest::Method::POST, "/admin/tenants", Some(json!({"id": "acme", "config": config})))
        .await
        .unwrap();
    assert_eq!(status, 201, "{v}");
    let tokens = env.connect_salesforce("acme").await.unwrap();
    env.lms_dataset(60, 2).await.unwrap();
    assert_eq!(env.seed_contacts_for_learners().await.unwrap(), 60);

    // Enrollments of distinct learner/course pairs (Docebo and Skilljar
    // allow one per pair), a disjoint slice per dialect.
    let mut pairs = HashSet::new();
    let picked: Vec<Value> = env
        .lms_all("enrollments")
        .await
        .unwrap()
        .into_iter()
        .filter(|e| pairs.insert((e["learner_id"].to_string(), e["course_id"].to_string())))
        .take(PER_DIALECT * DIALECTS.len())
        .collect();
    assert_eq!(picked.len(), PER_DIALECT * DIALECTS.len());
    let slice = |i: usize| &picked[i * PER_DIALECT..(i + 1) * PER_DIALECT];
    let ids = |i: usize| slice(i).iter().map(|e| e["id"].clone()).collect::<Vec<_>>();
    let target = |d: &str| format!("{}/acme/{d}", env.endpoints.webhook_url);

    // 1. A wrong secret (Skilljar: a wrong token in the URL) in each dialect: 401.
    for (i, d) in DIALECTS.iter().enumerate() {
        let sent = env
            .emit_webhooks(
                "acme",
                "whsec-e2e-wrong-0123456789",
                json!({"target_url": target(d), "dialect": d, "enrollment_ids": ids(i),
                       "events_per_delivery": per_delivery(d)}),
            )
            .await
            .unwrap();
        assert_eq!(sent["statuses"], json!({"401": sent["deliveries"]}), "{d}: {sent}");
        // Unsigned (Skilljar: no token at all): 401 too.
        let sent = env
            .emit_webhooks(
                "acme",
                "",
                json!({"secret": null, "target_url": target(d), "dialect": d, "enrollment_ids": ids(i),
                       "events_per_delivery": per_delivery(d)}),
            )
            .await
            .unwrap();
        assert_eq!(sent["statuses"], json!({"401": sent["deliveries"]}), "{d} unsigned: {sent}");
    }
    // A token sent to a signed dialect's source: that URL does not exist.
    let (s, v) = env.post_webhook(&format!("acme/thinkific/{}", secret("thinkific")), "{}", &[]).await.unwrap();
    assert_eq!((s, v["error"]["code"].as_str()), (404, Some("unknown_route")), "{v}");
    // A Skilljar body with a valid token but an unknown event type: 400 naming it.
    let purchase = json!({"event_type": "PURCHASE", "timestamp": "2026-03-01T10:00:00.000000+00:00",
                          "user": {"id": "L000001"}, "course": {"id": "C001"}});
    let (s, v) =
        env.post_webhook(&format!("acme/skilljar/{}", secret("skilljar")), &purchase.to_string(), &[]).await.unwrap();
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("unknown_event_type")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().starts_with("event_type:"), "{v}");

    // Nothing was enqueued, nothing reached the worker or Salesforce.
    assert_eq!(env.queue_depth("SyncQueue").await.unwrap(), 0);
    let stats = env.runtime("stats").await.unwrap();
    assert_eq!(stats["functions"]["SyncWorkerFunction"]["invocations"], 0, "{stats}");
    assert!(env.sf_records("LMS_Enrollment__c").await.unwrap().is_empty());

    // 2. The right secrets, with duplicates and in a shuffled order.
    for (i, d) in DIALECTS.iter().enumerate() {
        let sent = env
            .emit_webhooks(
                "acme",
                &secret(d),
                json!({"target_url": target(d), "dialect": d, "enrollment_ids": ids(i),
                       "events_per_delivery": per_delivery(d), "duplicate_pct": 30, "reorder": true}),
            )
            .await
            .unwrap();
        assert_eq!(sent["statuses"], json!({"202": sent["deliveries"]}), "{d}: {sent}");
        assert!(sent["duplicates"].as_u64().unwrap() > 0, "{d}: {sent}");
        if *d == "docebo" {
            // 16 enrollments grouped by type: fewer deliveries than events.
            assert!(sent["deliveries"].as_u64().unwrap() < sent["events"].as_u64().unwrap(), "{sent}");
        }
    }

    let total = PER_DIALECT * DIALECTS.len();
    let records = wait_for("every enrollment in Salesforce", Duration::from_secs(90), || async {
        let r = env.sf_records("LMS_Enrollment__c").await?;
        Ok((r.len() >= total).then_some(r))
    })
    .await
    .unwrap();
    // Exactly once: one record per enrollment, and no more appear later.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(env.sf_records("LMS_Enrollment__c").await.unwrap().len(), total);

    // Each record is the one its dialect names, with the LMS state, linked
    // to its learner's Contact.
    let mut expected: HashMap<String, (&str, &Value)> = HashMap::new();
    for (i, d) in DIALECTS.iter().enumerate() {
        for e in slice(i) {
            assert!(expected.insert(record_id(d, e), (d, e)).is_none());
        }
    }
    let got: BTreeSet<String> =
        records.iter().map(|r| r["LMS_Enrollment_Id__c"].as_str().unwrap().to_string()).collect();
    assert_eq!(got, expected.keys().cloned().collect::<BTreeSet<_>>());
    let contacts: HashMap<String, String> = env
        .sf_records("Contact")
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c["Id"].as_str().unwrap().to_string(), c["LMS_Learner_Id__c"].as_str().unwrap_or("").to_string()))
        .collect();
    for r in &records {
        let id = r["LMS_Enrollment_Id__c"].as_str().unwrap();
        let (d, e) = expected[id];
        assert_eq!(r["Status__c"], status_label(d, e), "{d} {id}");
        assert_eq!(r["Course_Id__c"], e["course_id"], "{d} {id}");
        let contact = r["Contact__c"].as_str().unwrap_or_default();
        assert_eq!(contacts.get(contact).map(String::as_str), e["learner_id"].as_str(), "{d} {id}");
    }

    // No token, webhook secret or URL token in any log line of the stack.
    let mut needles = vec![tokens["access_token"].as_str().unwrap(), tokens["refresh_token"].as_str().unwrap()];
    let secrets: Vec<String> = DIALECTS.iter().map(|d| secret(d)).collect();
    needles.extend(secrets.iter().map(String::as_str));
    let leaks = env.log_lines_containing(&needles).unwrap();
    assert!(leaks.is_empty(), "secrets in logs: {leaks:#?}");
}
