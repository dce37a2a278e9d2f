//! The local runtime takes its wiring from the template: change a route and
//! a BatchSize in a copy of `infra/template.yaml`, and the runtime follows.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use learnlink_e2e::{Env, Options, root, sign, wait_for};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn routes_and_batch_sizes_follow_a_changed_template() {
    let original = std::fs::read_to_string(root().join("infra/template.yaml")).unwrap();
    assert!(original.contains("Path: /webhooks/{tenant}/{source}"));
    assert!(original.contains("BatchSize: 1000"));
    let changed = original
        .replace("Path: /webhooks/{tenant}/{source}", "Path: /inbound/{tenant}/{source}")
        .replace("BatchSize: 1000", "BatchSize: 3");
    let dir = root().join("target/e2e");
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join(format!("template-changed-{}.yaml", std::process::id()));
    std::fs::write(&copy, changed).unwrap();

    let env = Env::start("wiring", Options { template: copy.clone(), ..Options::default() }).unwrap();
    let wiring = env.runtime("wiring").await.unwrap();
    let fns = wiring["functions"].as_array().unwrap();
    let ingest = fns.iter().find(|f| f["binary"] == "webhook-ingest").unwrap();
    assert_eq!(ingest["http"][0]["path"], "/inbound/{tenant}/{source}");
    let worker = fns.iter().find(|f| f["binary"] == "sync-worker").unwrap();
    let src = worker["sqs"].as_array().unwrap().iter().find(|s| s["queue_logical_id"] == "SyncQueue").unwrap();
    assert_eq!(src["batch_size"], 3);

    let secret = "whsec-wiring-0123456789";
    env.create_tenant("acme", secret).await.unwrap();
    env.connect_salesforce("acme").await.unwrap();
    env.lms_dataset(5, 2).await.unwrap();
    env.seed_contacts_for_learners().await.unwrap();

    let events: Vec<_> = env.lms_all("enrollments").await.unwrap().into_iter().take(10).collect();
    let body = json!({"events": events.iter().enumerate().map(|(i, e)| json!({
        "id": format!("w-{i}"), "type": "enrollment.updated", "occurred_at": e["updated_at"], "data": e})).collect::<Vec<_>>()})
    .to_string();
    let url = env.endpoints.api_url.clone();
    // The old route is gone, as API Gateway would answer.
    let r = env
        .http
        .post(format!("{url}/webhooks/acme/lms"))
        .header("learnlink-signature", sign(secret, &body))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap(), json!({"message": "Not Found"}));
    // The new one works: ten deliveries of one event, ten messages.
    for (i, e) in events.iter().enumerate() {
        let body = json!({"events": [{"id": format!("w-{i}"), "type": "enrollment.updated",
            "occurred_at": e["updated_at"], "data": e}]})
        .to_string();
        let r = env
            .http
            .post(format!("{url}/inbound/acme/lms"))
            .header("learnlink-signature", sign(secret, &body))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        assert_eq!(status, 202, "{}", r.text().await.unwrap_or_default());
    }

    // Generous: a loaded CI runner starts debug builds slowly.
    let written = wait_for("10 enrollments", Duration::from_secs(180), || async {
        Ok((env.sf_records("LMS_Enrollment__c").await?.len() == 10).then_some(()))
    })
    .await;
    if let Err(e) = written {
        let stats = env.runtime("stats").await.unwrap();
        panic!("{e:#}; runtime stats: {stats}");
    }
    // The poller counts a batch when its invocation returns, a moment after
    // the records are visible in Salesforce: wait for the last one.
    let batch_sizes = || async {
        let stats = env.runtime("stats").await?;
        let src = stats["event_sources"].as_array().and_then(|a| a.iter().find(|s| s["queue"] == "SyncQueue").cloned());
        let sizes: Vec<u64> = src
            .and_then(|s| s["recent_batch_sizes"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(serde_json::Value::as_u64)
            .collect();
        anyhow::Ok(sizes)
    };
    let sizes = wait_for("the last batch counted", Duration::from_secs(30), || async {
        let sizes = batch_sizes().await?;
        Ok((sizes.iter().sum::<u64>() >= 10).then_some(sizes))
    })
    .await
    .unwrap_or_default();
    assert_eq!(sizes.iter().sum::<u64>(), 10, "{sizes:?}");
    assert!(sizes.iter().all(|s| *s <= 3), "batches must respect BatchSize 3: {sizes:?}");
    assert!(sizes.len() >= 4, "{sizes:?}");

    // Schedules come from the template too and can be fired on demand.
    let (status, fired) = env.runtime_post("schedules/HealthCheckFunction/Sweep/fire").await.unwrap();
    assert_eq!(status, 200, "{fired}");
    assert_eq!(fired["event"]["detail-type"], "Scheduled Event");
    assert_eq!(fired["result"]["tenants"][0]["tenant"], "acme");
    let _ = std::fs::remove_file(copy);
}
