//! The connection lifecycle on the local stack (SPEC §3): single-flight
//! refresh across concurrent instances, revocation found by the health
//! check, nothing lost while disconnected, outages that never disconnect,
//! OAuth callbacks that refuse bad input, and the keep-alive that beats an
//! idle-expiry policy.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use learnlink_core::job::{SyncJob, encode};
use learnlink_core::model::{Enrollment, EnrollmentStatus, TenantId};
use learnlink_core::webhook::{EventKind, EventPayload, LmsEvent};
use learnlink_e2e::{Env, Options, bin_dir, wait_for};
use reqwest::Method;
use serde_json::{Value, json};
use std::io::BufRead as _;
use std::time::Duration;
use time::OffsetDateTime;

const SECRET: &str = "whsec-connection-0123456789";

fn sqs_event(n: usize, learner: &str) -> Value {
    let t = OffsetDateTime::now_utc();
    let body = encode(&SyncJob::LmsEvent {
        tenant: TenantId::parse("acme").unwrap(),
        source: "lms".into(),
        event: LmsEvent {
            id: format!("evt-{n}"),
            kind: EventKind::EnrollmentCreated,
            occurred_at: t,
            payload: EventPayload::Enrollment(Enrollment {
                id: format!("E-concurrent-{n}"),
                learner_id: learner.into(),
                course_id: "C1".into(),
                course_title: None,
                status: EnrollmentStatus::Enrolled,
                progress_pct: Some(0.0),
                score: None,
                enrolled_at: Some(t),
                completed_at: None,
                updated_at: t,
            }),
        },
    });
    json!({"Records": [{"messageId": format!("m{n}"), "receiptHandle": "r", "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0", "SenderId": "x", "ApproximateFirstReceiveTimestamp": "0"},
        "messageAttributes": {}, "md5OfBody": "x", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:learnlink-SyncQueue", "awsRegion": "us-east-1"}]})
}

async fn setup(env: &Env, learners: u32) {
    env.create_tenant("acme", SECRET).await.unwrap();
    env.connect_salesforce("acme").await.unwrap();
    env.lms_dataset(learners, 1).await.unwrap();
    env.seed_contacts_for_learners().await.unwrap();
}

#[tokio::test]
async fn fifty_concurrent_invocations_with_an_expired_token_refresh_once() {
    let env = Env::start("conn-fifty", Options { concurrency: Some(50), ..Options::default() }).unwrap();
    setup(&env, 1).await;
    let learner = env.lms_all("learners").await.unwrap()[0]["id"].as_str().unwrap().to_string();
    env.sf_admin("/sessions/expire", json!({})).await.unwrap();
    let before = env.sf_stats().await.unwrap()["refreshes"].as_u64().unwrap();
    let url = format!("{}/functions/SyncWorkerFunction/invoke", env.endpoints.runtime_url);
    // Generous: fifty debug-build cold starts on two cores can be slow.
    let http = reqwest::Client::builder().timeout(Duration::from_secs(240)).build().unwrap();
    let calls: Vec<_> = (0..50)
        .map(|n| {
            let http = http.clone();
            let url = url.clone();
            let ev = sqs_event(n, &learner);
            tokio::spawn(async move {
                let r = http.post(url).json(&ev).send().await.map_err(|e| format!("invocation {n}: {e}"))?;
                r.json::<Value>().await.map_err(|e| format!("invocation {n}: {e}"))
            })
        })
        .collect();
    for c in calls {
        let r = c.await.unwrap();
        let r = match r {
            Ok(r) => r,
            Err(e) => panic!("{e}; runtime: {}", env.runtime("stats").await.unwrap_or_default()),
        };
        assert_eq!(
            r["batchItemFailures"],
            json!([]),
            "{r}; runtime: {}",
            env.runtime("stats").await.unwrap_or_default()
        );
    }
    let stats = env.sf_stats().await.unwrap();
    assert_eq!(stats["refreshes"].as_u64().unwrap() - before, 1, "exactly one refresh: {stats}");
    assert_ne!(env.status("acme").await.unwrap()["status"], "DISCONNECTED");
    assert_eq!(env.sf_records("LMS_Enrollment__c").await.unwrap().len(), 50);
    let runtime = env.runtime("stats").await.unwrap();
    let instances = runtime["functions"]["SyncWorkerFunction"]["cold_starts"].as_u64().unwrap();
    println!("sync-worker instances started: {instances}");
    assert!(instances >= 10, "the invocations ran concurrently: {instances} instances");
}

#[tokio::test]
async fn a_password_reset_is_found_in_one_cycle_and_nothing_sent_meanwhile_is_lost() {
    let env = Env::start("conn-relink", Options::default()).unwrap();
    setup(&env, 200).await;
    let h = env.fire("HealthCheckFunction", "Sweep", None).await.unwrap();
    assert_eq!(h["result"]["tenants"][0]["status"], "CONNECTED", "{h}");

    env.sf_admin("/tokens/revoke", json!({})).await.unwrap();
    let h = env.fire("HealthCheckFunction", "Sweep", None).await.unwrap();
    let s = &h["result"]["tenants"][0];
    assert_eq!(s["status"], "DISCONNECTED", "{s}");
    assert_eq!(s["cause"], "refresh_token_revoked_or_expired");
    assert!(s["remedy"].as_str().unwrap().contains("learnlink connect acme"));

    // 200 enrollments arrive while disconnected: accepted and kept.
    let sent = env.emit_webhooks("acme", SECRET, json!({"count": 200, "events_per_delivery": 10})).await.unwrap();
    assert_eq!(sent["statuses"]["202"], 20, "{sent}");
    wait_for("200 parked jobs", Duration::from_secs(60), || async {
        Ok((env.status("acme").await?["parked"].as_u64() == Some(200)).then_some(()))
    })
    .await
    .unwrap();
    assert_eq!(env.sf_records("LMS_Enrollment__c").await.unwrap().len(), 0);

    // Relink with the CLI; this test plays the admin's browser.
    let mut cli = std::process::Command::new(bin_dir().join("learnlink"))
        .args(["--api-url", &env.endpoints.api_url, "--token", &env.admin_token, "connect", "acme", "--no-browser"])
        .args(["--wait-secs", "120"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = cli.stderr.take().unwrap();
    let url = std::io::BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("authorize_url: ").map(str::to_string))
        .unwrap();
    assert_eq!(url, env.connect_url("acme"));
    let (status, page) = env.browser_connect(&url, |u| u).await.unwrap();
    assert_eq!(status, 200, "{page}");
    let out = cli.wait_with_output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "learnlink connect: {shown}");
    assert!(shown.contains("acme") && !shown.contains("DISCONNECTED"), "{shown}");

    // Every parked enrollment reaches Salesforce, exactly once.
    let records = wait_for("200 enrollments", Duration::from_secs(90), || async {
        let r = env.sf_records("LMS_Enrollment__c").await?;
        Ok((r.len() >= 200).then_some(r))
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let records_after = env.sf_records("LMS_Enrollment__c").await.unwrap();
    assert_eq!(records_after.len(), 200);
    let ids: std::collections::HashSet<&str> =
        records.iter().map(|r| r["LMS_Enrollment_Id__c"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 200);
    let s = env.status("acme").await.unwrap();
    assert_eq!(s["parked"], 0, "{s}");
    assert_eq!(s["gap_backfills"].as_array().unwrap().len(), 1, "the gap is recorded: {s}");
    assert_eq!(
        env.admin(Method::GET, "/admin/tenants/acme/config/versions", None).await.unwrap().1["versions"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "settings kept"
    );
}

#[tokio::test]
async fn a_whole_day_of_5xx_is_degraded_never_disconnected() {
    let env = Env::start("conn-outage", Options::default()).unwrap();
    setup(&env, 1).await;
    env.sf_admin("/faults", json!({"kind": "server_error", "count": 100000})).await.unwrap();
    env.sf_admin("/faults", json!({"kind": "server_error", "count": 100000, "scope": "auth"})).await.unwrap();
    let start = OffsetDateTime::now_utc();
    let mut statuses = std::collections::BTreeMap::new();
    let mut last = Value::Null;
    for i in 0..288 {
        let at = start + time::Duration::minutes(5 * i);
        let h = env.fire("HealthCheckFunction", "Sweep", Some(at)).await.unwrap();
        last = h["result"]["tenants"][0].clone();
        *statuses.entry(last["status"].as_str().unwrap().to_string()).or_insert(0) += 1;
    }
    assert_eq!(statuses, std::collections::BTreeMap::from([("DEGRADED".to_string(), 288)]), "{statuses:?}");
    assert!(last["sentence"].as_str().unwrap().contains("not a disconnection"), "{last}");
    assert!(last["failures_today"].as_u64().unwrap() > 0, "{last}");
    // The outage ends: healthy again.
    let client = reqwest::Client::new();
    client.delete(format!("{}/__emulator/faults", env.endpoints.salesforce_url)).send().await.unwrap();
    let h = env.fire("HealthCheckFunction", "Sweep", Some(start + time::Duration::days(2))).await.unwrap();
    assert_eq!(h["result"]["tenants"][0]["status"], "CONNECTED", "{h}");
}

#[tokio::test]
async fn bad_oauth_callbacks_get_a_clear_page_and_store_nothing() {
    // A short state lifetime, to see an expired one refused.
    let opts = Options { function_env: vec![("OAUTH_STATE_TTL_SECS".into(), "2".into())], ..Options::default() };
    let env = Env::start("conn-oauth", opts).unwrap();
    env.create_tenant("acme", SECRET).await.unwrap();
    // An expired state.
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let authorize =
        client.get(env.connect_url("acme")).send().await.unwrap().headers()["location"].to_str().unwrap().to_string();
    let back = client.get(authorize).send().await.unwrap().headers()["location"].to_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let r = client.get(&back).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400, "an expired state is refused");
    assert!(r.text().await.unwrap().contains("expired"));
    let callback = format!("{}/oauth/callback", env.endpoints.api_url);
    // An unknown state.
    let r = env.http.get(format!("{callback}?state=forged-state&code=abc")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().contains("cannot be used"));
    // A PKCE mismatch: the authorize request's challenge is swapped.
    let (status, page) = env
        .browser_connect(&env.connect_url("acme"), |u| {
            let mut url = url::Url::parse(&u).unwrap();
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    if k == "code_challenge" {
                        (k.into_owned(), "A".repeat(43))
                    } else {
                        (k.into_owned(), v.into_owned())
                    }
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
            url.to_string()
        })
        .await
        .unwrap();
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("could not be completed"), "{page}");
    // Consent denied.
    env.sf_admin("/settings", json!({"deny_consent": true})).await.unwrap();
    let (status, page) = env.browser_connect(&env.connect_url("acme"), |u| u).await.unwrap();
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("did not grant access"), "{page}");
    // Nothing was stored.
    let s = env.status("acme").await.unwrap();
    assert_eq!(s["cause"], "never_connected", "{s}");
    assert!(env.stored_tokens("acme").await.is_err());
    // A state can be used once: replaying a successful callback fails.
    env.sf_admin("/settings", json!({"deny_consent": false})).await.unwrap();
    let authorize =
        client.get(env.connect_url("acme")).send().await.unwrap().headers()["location"].to_str().unwrap().to_string();
    let back = client.get(authorize).send().await.unwrap().headers()["location"].to_str().unwrap().to_string();
    assert_eq!(client.get(&back).send().await.unwrap().status().as_u16(), 200);
    let again = client.get(&back).send().await.unwrap();
    assert_eq!(again.status().as_u16(), 400, "a reused state is refused");
    // Unknown tenant.
    assert_eq!(env.http.get(env.connect_url("nobody")).send().await.unwrap().status().as_u16(), 404);
}

#[tokio::test]
async fn the_keep_alive_beats_the_orgs_idle_expiry() {
    let env = Env::start("conn-keepalive", Options::default()).unwrap();
    env.sf_admin("/settings", json!({"refresh_idle_ttl_ms": 10u64 * 86_400_000})).await.unwrap();
    for t in ["alpha", "beta"] {
        env.create_tenant(t, SECRET).await.unwrap();
        env.connect_salesforce(t).await.unwrap();
    }
    // beta is paused: the health check leaves it alone, like an unmonitored connector.
    let (s, v) = env.admin(Method::GET, "/admin/tenants/beta/config", None).await.unwrap();
    assert_eq!(s, 200);
    let mut doc = v["config"].clone();
    doc["paused"] = json!(true);
    assert_eq!(env.admin(Method::PUT, "/admin/tenants/beta/config", Some(doc.clone())).await.unwrap().0, 200);

    let start = OffsetDateTime::now_utc();
    let day = 86_400_000u64;
    for (advance, at_days) in [(8, 8), (8, 16)] {
        env.sf_admin("/clock", json!({"advance_ms": advance * day})).await.unwrap();
        let h = env.fire("HealthCheckFunction", "Sweep", Some(start + time::Duration::days(at_days))).await.unwrap();
        let alpha = h["result"]["tenants"].as_array().unwrap().iter().find(|t| t["tenant"] == "alpha").unwrap().clone();
        assert_eq!(alpha["status"], "CONNECTED", "day {at_days}: {alpha}");
    }
    // beta sat 16 days unused, past the org's 10-day idle expiry.
    doc["paused"] = json!(false);
    assert_eq!(env.admin(Method::PUT, "/admin/tenants/beta/config", Some(doc)).await.unwrap().0, 200);
    let h = env.fire("HealthCheckFunction", "Sweep", Some(start + time::Duration::days(16))).await.unwrap();
    let beta = h["result"]["tenants"].as_array().unwrap().iter().find(|t| t["tenant"] == "beta").unwrap().clone();
    assert_eq!(beta["status"], "DISCONNECTED", "{beta}");
    assert_eq!(beta["cause"], "refresh_token_revoked_or_expired");
    let alpha = h["result"]["tenants"].as_array().unwrap().iter().find(|t| t["tenant"] == "alpha").unwrap().clone();
    assert_eq!(alpha["status"], "CONNECTED", "{alpha}");
}

#[tokio::test]
async fn an_integration_user_with_admin_rights_is_a_least_privilege_warning() {
    let env = Env::start("conn-admin-user", Options::default()).unwrap();
    env.sf_admin("/integration-user", json!({"profile": "System Administrator"})).await.unwrap();
    env.create_tenant("acme", SECRET).await.unwrap();
    let (status, page) = env.browser_connect(&env.connect_url("acme"), |u| u).await.unwrap();
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("least privilege"), "{page}");
    let s = env.status("acme").await.unwrap();
    assert_eq!(s["status"], "DEGRADED", "{s}");
    assert_eq!(s["cause"], "integration_user_admin_rights");
    assert!(s["integration_user"]["admin_rights"].as_bool().unwrap());
}
