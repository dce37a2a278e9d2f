//! Job 3 on the local stack (SPEC §6): backfills planned by backfill-fanout
//! from the LMS emulator's counts, shards through the backfill queue and
//! sync-worker (Bulk API 2.0 at or above the threshold, Composite below),
//! the automation kill switch, cancel, the API budget governor, a worker
//! killed mid-shard, and `--only-changed`.

#![allow(clippy::unwrap_used)]

use learnlink_e2e::{Env, Options, wait_for};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;

const SINCE: &str = "2025-12-01T00:00:00Z";

fn opts(visibility: u32, max_receive: u32) -> Options {
    Options {
        parameters: vec![
            ("QueueVisibilityTimeoutSeconds".into(), visibility.to_string()),
            ("MaxReceiveCount".into(), max_receive.to_string()),
        ],
        ..Options::default()
    }
}

async fn enrollment_ids(env: &Env) -> Vec<String> {
    env.sf_records("LMS_Enrollment__c")
        .await
        .unwrap()
        .iter()
        .map(|r| r["LMS_Enrollment_Id__c"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Every LMS enrollment is in Salesforce exactly once.
async fn assert_exact(env: &Env, expected: usize) {
    let ids = enrollment_ids(env).await;
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), unique.len(), "no duplicate enrollment in Salesforce");
    assert_eq!(ids.len(), expected, "every enrollment written");
    let lms: HashSet<String> =
        env.lms_all("enrollments").await.unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(unique.into_iter().cloned().collect::<HashSet<_>>(), lms);
}

fn started_id(status: u16, v: &Value) -> String {
    assert_eq!(status, 202, "{v}");
    v["backfill"]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_backfill_writes_every_enrollment_once_with_the_kill_switch_and_only_changed_writes_nothing() {
    let env = Env::start("job3-full", opts(30, 5)).unwrap();
    env.lms_dataset(240, 10).await.unwrap(); // 2,400 enrollments
    env.seed_contacts_for_learners().await.unwrap();
    env.create_tenant_for_backfill(
        "acme",
        "whsec-job3-0123456789",
        json!({"shard_size": 500, "bulk_threshold": 450, "kill_switch": true}),
    )
    .await
    .unwrap();
    env.connect_salesforce("acme").await.unwrap();
    assert_eq!(env.bypass_automation().await.unwrap(), None, "no org default before the backfill");
    env.sf_admin("/automation", json!({})).await.ok();

    let (status, v) = env.start_backfill("acme", json!({"since": SINCE})).await.unwrap();
    let id = started_id(status, &v);
    assert!(v["backfill"]["shards"].as_u64().unwrap() >= 4, "{v}");
    assert_eq!(v["backfill"]["expected"], 2400, "{v}");
    // A second start while it runs is refused, naming the running one.
    let (status, busy) = env.start_backfill("acme", json!({"since": SINCE})).await.unwrap();
    if status == 409 {
        assert!(busy["error"]["message"].as_str().unwrap().contains(&id), "{busy}");
    }
    let done = env.wait_backfill("acme", &id, Duration::from_secs(120)).await.unwrap();
    assert_eq!(done["backfill"]["status"], "completed", "{done}");
    assert_eq!(done["progress"]["written"], 2400, "{done}");
    assert_eq!(done["progress"]["failed"], 0, "{done}");
    assert_eq!(done["progress"]["percent"], 100.0, "{done}");
    assert_exact(&env, 2400).await;
    // The kill switch was on while writing and is restored (to false: there was no record).
    assert_eq!(done["backfill"]["kill_switch"]["state"], "restored", "{done}");
    assert_eq!(env.bypass_automation().await.unwrap(), Some(false));
    let automation = env.get(&format!("{}/__emulator/automation", env.endpoints.salesforce_url)).await.unwrap().1;
    assert_eq!(automation["count"], 0, "no automation fired during the backfill: {automation}");
    // Both write paths were used: Bulk jobs for big shards.
    let bulk_jobs = env.sf_stats().await.unwrap();
    assert!(bulk_jobs.to_string().contains("bulk"), "{bulk_jobs}");

    // The same backfill again: no duplicate, everything updated.
    let (status, v) = env.start_backfill("acme", json!({"since": SINCE})).await.unwrap();
    let again = env.wait_backfill("acme", &started_id(status, &v), Duration::from_secs(120)).await.unwrap();
    assert_eq!(again["backfill"]["status"], "completed", "{again}");
    assert_eq!(again["progress"]["updated"], 2400, "{again}");
    assert_exact(&env, 2400).await;

    // --only-changed: the window was covered and nothing changed: nothing is written.
    let before = env.sf_stats().await.unwrap();
    let (status, v) = env.start_backfill("acme", json!({"since": SINCE, "only_changed": true})).await.unwrap();
    let only = env.wait_backfill("acme", &started_id(status, &v), Duration::from_secs(60)).await.unwrap();
    assert_eq!(only["backfill"]["status"], "completed", "{only}");
    assert_eq!(only["progress"]["written"], 0, "{only}");
    assert_eq!(only["backfill"]["shards"], 0, "{only}");
    let after = env.sf_stats().await.unwrap();
    assert_eq!(before["records_written"], after["records_written"], "nothing written: {before} / {after}");
    assert_exact(&env, 2400).await;
}

#[tokio::test]
async fn a_worker_killed_mid_shard_resumes_from_its_checkpoint_and_the_result_is_exact() {
    // Composite shards of three pages (threshold above the shard size), a
    // slow org, a short visibility timeout so the killed batch comes back.
    let env = Env::start("job3-kill", opts(6, 10)).unwrap();
    env.lms_dataset(600, 10).await.unwrap(); // 6,000
    env.seed_contacts_for_learners().await.unwrap();
    env.create_tenant_for_backfill(
        "acme",
        "whsec-job3-0123456789",
        json!({"shard_size": 3000, "bulk_threshold": 100000, "kill_switch": false}),
    )
    .await
    .unwrap();
    env.connect_salesforce("acme").await.unwrap();
    env.sf_admin("/faults", json!({"kind": "latency", "latency_ms": 1500, "count": 20, "scope": "composite"}))
        .await
        .unwrap();
    let (status, v) = env.start_backfill("acme", json!({"since": SINCE})).await.unwrap();
    let id = started_id(status, &v);
    // Kill the worker once a page is checkpointed and no shard is done.
    wait_for("a first page checkpoint", Duration::from_secs(60), || async {
        let v = env.backfill("acme", &id).await?;
        Ok((v["progress"]["pages"].as_u64().unwrap_or(0) >= 1).then_some(()))
    })
    .await
    .unwrap();
    let (status, killed) = env.runtime_post("functions/SyncWorkerFunction/kill").await.unwrap();
    assert_eq!(status, 200, "{killed}");
    assert!(killed["killed"].as_u64().unwrap() >= 1, "{killed}");
    let done = env.wait_backfill("acme", &id, Duration::from_secs(180)).await.unwrap();
    assert_eq!(done["backfill"]["status"], "completed", "{done}");
    assert_exact(&env, 6000).await;
    let shards = done["shards"].as_array().unwrap();
    assert!(shards.iter().all(|s| s["status"] == "done"), "{done}");
    // Checkpointed pages were not read again: every page counted once.
    assert_eq!(done["progress"]["read"], 6000, "{done}");
    let pages: u64 = shards.iter().map(|s| s["expected"].as_u64().unwrap().div_ceil(1000)).sum();
    assert_eq!(done["progress"]["pages"], pages, "{done}");
    let attempts: u64 = shards.iter().map(|s| s["attempts"].as_u64().unwrap_or(0)).sum();
    assert!(attempts > shards.len() as u64, "a shard was resumed: {done}");
}

#[tokio::test]
async fn a_failing_and_a_cancelled_backfill_both_restore_the_kill_switch() {
    let env = Env::start("job3-restore", opts(2, 2)).unwrap();
    env.lms_dataset(100, 10).await.unwrap(); // 1,000
    env.seed_contacts_for_learners().await.unwrap();
    env.create_tenant_for_backfill(
        "acme",
        "whsec-job3-0123456789",
        json!({"shard_size": 250, "bulk_threshold": 100000, "kill_switch": true}),
    )
    .await
    .unwrap();
    env.connect_salesforce("acme").await.unwrap();
    // An org whose default was already on stays on; set it off explicitly first.
    // Failing: every Composite write fails until the shards run out of deliveries.
    env.sf_admin("/faults", json!({"kind": "server_unavailable", "count": 1000, "scope": "composite"})).await.unwrap();
    let (status, v) = env.start_backfill("acme", json!({"since": SINCE})).await.unwrap();
    let id = started_id(status, &v);
    assert_eq!(env.bypass_automation().await.unwrap(), Some(true), "engaged before the first write");
    let failed = env.wait_backfill("acme", &id, Duration::from_secs(120)).await.unwrap();
    assert_eq!(failed["backfill"]["status"], "failed", "{failed}\n{}", env.sf_stats().await.unwrap());
    assert!(failed["backfill"]["reason"].as_str().unwrap().contains("shard"), "{failed}");
    wait_for("the kill switch restored after the failure", Duration::from_secs(30), || async {
        Ok((env.bypass_automation().await? == Some(false)).then_some(()))
    })
    .await
    .unwrap();
    let v = env.backfill("acme", &id).await.unwrap();
    assert_eq!(v["backfill"]["kill_switch"]["state"], "restored", "{v}");

    // Cancelled: a slow org, cancel while it runs.
    env.sf_clear_faults().await.unwrap();
    env.sf_admin("/faults", json!({"kind": "latency", "latency_ms": 1500, "count": 1000, "scope": "composite"}))
        .await
        .unwrap();
    let (status, v) = env.start_backfill("acme", json!({"since": SINCE})).await.unwrap();
    let id = started_id(status, &v);
    assert_eq!(env.bypass_automation().await.unwrap(), Some(true));
    let (status, c) =
        env.admin(reqwest::Method::POST, &format!("/admin/tenants/acme/backfills/{id}/cancel"), None).await.unwrap();
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["backfill"]["status"], "cancelled", "{c}");
    // Restored by the worker that meets the cancelled backfill, or by the sweep.
    env.fire("BackfillFanoutFunction", "DailyImports", None).await.unwrap();
    wait_for("the kill switch restored after the cancel", Duration::from_secs(60), || async {
        Ok((env.bypass_automation().await? == Some(false)).then_some(()))
    })
    .await
    .unwrap();
    env.sf_clear_faults().await.unwrap();
    let v = env.wait_backfill("acme", &id, Duration::from_secs(10)).await.unwrap();
    assert_eq!(v["backfill"]["status"], "cancelled");
    assert_eq!(v["backfill"]["kill_switch"]["state"], "restored", "{v}");
}

#[tokio::test]
async fn the_api_budget_pauses_a_backfill_and_the_next_window_resumes_it_with_nothing_lost() {
    let env = Env::start("job3-budget", opts(10, 5)).unwrap();
    env.lms_dataset(100, 10).await.unwrap(); // 1,000
    env.seed_contacts_for_learners().await.unwrap();
    env.create_tenant_for_backfill(
        "acme",
        "whsec-job3-0123456789",
        json!({"shard_size": 250, "bulk_threshold": 100000, "kill_switch": false}),
    )
    .await
    .unwrap();
    env.connect_salesforce("acme").await.unwrap();
    // 10 calls left today: half of them is below what one shard needs.
    env.sf_admin("/limits", json!({"daily_api_limit": 1000, "api_used": 990})).await.unwrap();
    let (status, v) = env.start_backfill("acme", json!({"since": SINCE})).await.unwrap();
    let id = started_id(status, &v);
    let paused = wait_for("the backfill paused", Duration::from_secs(60), || async {
        let v = env.backfill("acme", &id).await?;
        assert_ne!(v["backfill"]["status"], "completed", "{v}");
        Ok((v["backfill"]["status"] == "paused").then_some(v))
    })
    .await
    .unwrap();
    assert!(paused["backfill"]["reason"].as_str().unwrap().contains("budget"), "{paused}");
    assert!(paused["progress"]["written"].as_u64().unwrap() < 1000, "{paused}");
    // Still the same window: the sweep keeps it paused.
    env.fire("BackfillFanoutFunction", "DailyImports", None).await.unwrap();
    assert_eq!(env.backfill("acme", &id).await.unwrap()["backfill"]["status"], "paused");
    // The rolling window moves on: usage drops, the sweep resumes it.
    env.sf_admin("/limits", json!({"api_used": 0})).await.unwrap();
    env.fire("BackfillFanoutFunction", "DailyImports", None).await.unwrap();
    let done = env.wait_backfill("acme", &id, Duration::from_secs(120)).await.unwrap();
    assert_eq!(done["backfill"]["status"], "completed", "{done}");
    assert_exact(&env, 1000).await;
}

#[tokio::test]
async fn a_relink_backfills_the_disconnection_gap_automatically() {
    let env = Env::start("job3-gap", opts(30, 5)).unwrap();
    env.lms_dataset(20, 2).await.unwrap();
    env.create_tenant_for_backfill("acme", "whsec-job3-0123456789", json!({"relink_overlap_minutes": 30}))
        .await
        .unwrap();
    env.connect_salesforce("acme").await.unwrap();
    env.sf_admin("/tokens/revoke", json!({})).await.unwrap();
    env.fire("HealthCheckFunction", "Sweep", None).await.unwrap();
    assert_eq!(env.status("acme").await.unwrap()["status"], "DISCONNECTED");
    env.connect_salesforce("acme").await.unwrap();
    let s = env.status("acme").await.unwrap();
    let gap = s["gap_backfills"][0].clone();
    assert_eq!(gap["state"], "pending", "{s}");

    // The minute sweep turns the gap into a backfill of exactly that window.
    let swept = env.fire("BackfillFanoutFunction", "DailyImports", None).await.unwrap();
    assert!(swept.to_string().contains("gap"), "{swept}");
    let (_, list) = env.admin(reqwest::Method::GET, "/admin/tenants/acme/backfills", None).await.unwrap();
    let b = &list["backfills"][0]["backfill"];
    assert_eq!(b["origin"]["kind"], "relink", "{list}");
    assert_eq!(b["origin"]["gap_id"], gap["id"], "{list}");
    assert_eq!(b["window"]["since"], gap["from"], "{list}");
    let id = b["id"].as_str().unwrap().to_string();
    let done = env.wait_backfill("acme", &id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(done["backfill"]["status"], "completed", "{done}");
    let s = env.status("acme").await.unwrap();
    assert_eq!(s["gap_backfills"][0]["state"], format!("started:{id}"), "{s}");
    // A second sweep starts nothing more.
    let swept = env.fire("BackfillFanoutFunction", "DailyImports", None).await.unwrap();
    assert!(!swept.to_string().contains("gap"), "{swept}");
}
