//! Walking skeleton of job 1 on the local stack: signed webhooks from the LMS
//! emulator → gateway → webhook-ingest → sync queue (moto) → sync-worker →
//! Composite upserts into the Salesforce emulator.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use learnlink_e2e::{Env, Options, sign, wait_for};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

const SECRET: &str = "whsec-e2e-0123456789";

#[tokio::test]
async fn signed_webhooks_reach_salesforce_exactly_once_with_the_lms_state() {
    let env = Env::start("job1-happy", Options::default()).unwrap();
    env.create_tenant("acme", SECRET).await.unwrap();
    let tokens = env.connect_salesforce("acme").await.unwrap();
    env.lms_dataset(30, 2).await.unwrap();
    assert_eq!(env.seed_contacts_for_learners().await.unwrap(), 30);

    // 60 enrollments, 5 events per delivery, a fifth of deliveries sent twice, shuffled.
    let sent = env
        .emit_webhooks(
            "acme",
            SECRET,
            json!({"count": 60, "events_per_delivery": 5, "duplicate_pct": 20, "reorder": true}),
        )
        .await
        .unwrap();
    assert_eq!(sent["statuses"]["202"].as_u64().unwrap(), sent["deliveries"].as_u64().unwrap(), "{sent}");
    assert!(sent["duplicates"].as_u64().unwrap() > 0, "{sent}");

    let records = wait_for("60 enrollments in Salesforce", Duration::from_secs(60), || async {
        let r = env.sf_records("LMS_Enrollment__c").await?;
        Ok((r.len() >= 60).then_some(r))
    })
    .await
    .unwrap();
    // Exactly once: one record per enrollment, no more appear later.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(env.sf_records("LMS_Enrollment__c").await.unwrap().len(), 60);

    // Every record carries the LMS state and is linked to its learner's Contact.
    let lms: HashMap<String, Value> = env
        .lms_all("enrollments")
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e["id"].as_str().unwrap().to_string(), e))
        .collect();
    let contacts: HashMap<String, String> = env
        .sf_records("Contact")
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c["Id"].as_str().unwrap().to_string(), c["LMS_Learner_Id__c"].as_str().unwrap().to_string()))
        .collect();
    for r in &records {
        let id = r["LMS_Enrollment_Id__c"].as_str().unwrap();
        let e = &lms[id];
        let label = match e["status"].as_str().unwrap() {
            "enrolled" => "Enrolled",
            "in_progress" => "In Progress",
            "completed" => "Completed",
            _ => "Expired",
        };
        assert_eq!(r["Status__c"], label, "{id}");
        assert_eq!(r["Course_Id__c"], e["course_id"], "{id}");
        assert_eq!(contacts[r["Contact__c"].as_str().unwrap()], e["learner_id"].as_str().unwrap(), "{id}");
    }
    // Batched writes: far fewer API calls than records.
    let calls = env.sf_stats().await.unwrap()["api_calls"].as_u64().unwrap();
    assert!(calls < 60, "{calls} API calls for 60 records");

    // The health route answers for the connected tenant, to the admin credential.
    let (status, h) = env.admin(reqwest::Method::GET, "/health/acme", None).await.unwrap();
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["status"], "CONNECTED", "{h}");

    // No token and no webhook secret in any log line of the stack.
    let secrets = [tokens["access_token"].as_str().unwrap(), tokens["refresh_token"].as_str().unwrap(), SECRET];
    let leaks = env.log_lines_containing(&secrets).unwrap();
    assert!(leaks.is_empty(), "secrets in logs: {leaks:#?}");
}

#[tokio::test]
async fn bad_webhooks_get_clear_errors_and_nothing_is_enqueued() {
    let env = Env::start("job1-bad-input", Options::default()).unwrap();
    env.create_tenant("acme", SECRET).await.unwrap();
    let good = r#"{"events":[{"id":"e1","type":"enrollment.updated","occurred_at":"2026-11-23T09:59:00Z","data":{"id":"E1","learner_id":"L1","course_id":"C1","status":"in_progress","updated_at":"2026-11-23T09:59:00Z"}}]}"#;
    let bad_status = good.replace("in_progress", "halfway");
    type Case<'a> = (&'a str, String, &'a str, Vec<(&'a str, String)>, u16, &'a str);
    let cases: Vec<Case<'_>> = vec![
        ("missing signature", "acme/lms".into(), good, vec![], 401, "missing_signature"),
        (
            "wrong secret",
            "acme/lms".into(),
            good,
            vec![("learnlink-signature", sign("not-the-secret", good))],
            401,
            "invalid_signature",
        ),
        (
            "garbage signature",
            "acme/lms".into(),
            good,
            vec![("learnlink-signature", "t=1,v1=zz".into())],
            401,
            "invalid_signature",
        ),
        (
            "malformed body",
            "acme/lms".into(),
            "{not json",
            vec![("learnlink-signature", sign(SECRET, "{not json"))],
            400,
            "malformed_body",
        ),
        (
            "bad field",
            "acme/lms".into(),
            &bad_status,
            vec![("learnlink-signature", sign(SECRET, &bad_status))],
            400,
            "malformed_body",
        ),
        (
            "unknown tenant",
            "nobody/lms".into(),
            good,
            vec![("learnlink-signature", sign(SECRET, good))],
            404,
            "unknown_tenant",
        ),
        (
            "unknown source",
            "acme/zendesk".into(),
            good,
            vec![("learnlink-signature", sign(SECRET, good))],
            404,
            "unknown_source",
        ),
    ];
    for (name, path, body, headers, status, code) in cases {
        let (s, v) = env.post_webhook(&path, body, &headers).await.unwrap();
        assert_eq!(s, status, "{name}: {v}");
        assert_eq!(v["error"]["code"], code, "{name}: {v}");
        assert!(v["error"]["message"].as_str().is_some_and(|m| m.len() > 10), "{name}: {v}");
    }
    let (_, v) =
        env.post_webhook("acme/lms", &bad_status, &[("learnlink-signature", sign(SECRET, &bad_status))]).await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().starts_with("events[0].data.status:"), "{v}");

    // Nothing was enqueued, nothing reached the worker or Salesforce.
    assert_eq!(env.queue_depth("SyncQueue").await.unwrap(), 0);
    let stats = env.runtime("stats").await.unwrap();
    assert_eq!(stats["functions"]["SyncWorkerFunction"]["invocations"], 0, "{stats}");
    assert_eq!(env.sf_records("LMS_Enrollment__c").await.unwrap().len(), 0);

    // The admin API refuses a missing or wrong token.
    for token in [None, Some("wrong")] {
        let mut req = env.http.get(format!("{}/admin/tenants", env.endpoints.api_url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["code"], "unauthorized");
    }
}
