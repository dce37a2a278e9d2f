//! Job 2 (SPEC §5) against the Salesforce emulator (its SOQL, its
//! `nextRecordsUrl` paging, its API limit) and the LMS emulator (its batch
//! upserts, groups, welcome emails): the cases that lose data in other
//! tools — ties on SystemModstamp across a page boundary, a late commit
//! with an older SystemModstamp, pages smaller than 2,000, and
//! REQUEST_LIMIT_EXCEEDED in the middle of a run. The import state and the
//! queue are the in-memory fakes: each page job is taken off the queue and
//! run as sync-worker runs it.

#![allow(clippy::unwrap_used)]

use learnlink_adapters::dynamo::memory::{MemoryActivity, MemoryState};
use learnlink_adapters::hris::memory::MemoryHris;
use learnlink_adapters::lms::LmsClient;
use learnlink_adapters::salesforce::SalesforceClient;
use learnlink_adapters::sqs::memory::MemoryQueue;
use learnlink_core::config::ImportSettings;
use learnlink_core::import::engine::{self, ImportPorts, PageInput, PageOutcome, RunStatus};
use learnlink_core::job::SyncJob;
use learnlink_core::model::TenantId;
use learnlink_core::ports::{ImportLane, ImportStore, JobQueue, LmsConnection};
use learnlink_core::salesforce::Session;
use learnlink_e2e::SfEmulator;
use secrecy::SecretString;
use serde_json::{Value, json};

struct World {
    sf: SfEmulator,
    client: SalesforceClient,
    session: Session,
    lms_url: String,
    lms_state: lms_emulator::LmsState,
    lms: LmsClient,
    hris: MemoryHris,
    state: MemoryState,
    queue: MemoryQueue,
    activity: MemoryActivity,
    tenant: TenantId,
    taken: std::sync::atomic::AtomicUsize,
    integration_user: String,
    profile_id: String,
}

async fn world() -> World {
    let sf = SfEmulator::start().unwrap();
    let http = reqwest::Client::new();
    let tokens: Value = http
        .post(format!("{}/__emulator/connections", sf.url))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let org: Value = http.get(format!("{}/__emulator/org", sf.url)).send().await.unwrap().json().await.unwrap();
    let session = Session {
        instance_url: tokens["instance_url"].as_str().unwrap().to_string(),
        access_token: SecretString::from(tokens["access_token"].as_str().unwrap().to_string()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lms_url = format!("http://{}", listener.local_addr().unwrap());
    let config = lms_emulator::Config {
        dataset: lms_emulator::DatasetParams { learners: 0, enrollments_per_learner: 0, ..Default::default() },
        ..Default::default()
    };
    let lms_state = lms_emulator::LmsState::new(config);
    tokio::spawn(lms_emulator::serve_state(listener, lms_state.clone()));
    World {
        client: SalesforceClient::new().unwrap(),
        session,
        lms_url,
        lms_state,
        lms: LmsClient::new().unwrap(),
        hris: MemoryHris::new(),
        state: MemoryState::new(),
        queue: MemoryQueue::new(),
        activity: MemoryActivity::new(),
        tenant: TenantId::parse("acme").unwrap(),
        taken: Default::default(),
        integration_user: org["identity"]["integration_user_id"].as_str().unwrap().to_string(),
        profile_id: org["identity"]["profiles"][0]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .find(|s| s.starts_with("00e"))
            .unwrap()
            .to_string(),
        sf,
    }
}

impl World {
    async fn post(&self, path: &str, body: Value) -> Value {
        let r =
            reqwest::Client::new().post(format!("{}/__emulator{path}", self.sf.url)).json(&body).send().await.unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap_or(Value::Null)
    }

    /// Users with these (id suffix, SystemModstamp) pairs.
    async fn seed_users(&self, users: &[(u32, &str)]) {
        let rows: Vec<Value> = users
            .iter()
            .map(|(n, stamp)| {
                json!({"Username": format!("u{n}@import.test"), "LastName": format!("User{n}"), "FirstName": "Ima",
                    "Email": format!("u{n}@import.test"), "Alias": format!("u{n}"), "IsActive": true,
                    "TimeZoneSidKey": "GMT", "LocaleSidKey": "en_US", "EmailEncodingKey": "UTF-8", "LanguageLocaleKey": "en_US",
                    "SystemModstamp": stamp, "ProfileId": self.profile_id, "Department": if n % 2 == 0 { "Sales" } else { "Support" }})
            })
            .collect();
        self.post("/records/User?lenient=true", Value::Array(rows)).await;
    }

    fn lms_conn(&self) -> LmsConnection {
        LmsConnection { base_url: self.lms_url.clone(), api_key: SecretString::from("lms-local-key") }
    }

    /// Runs a whole run: the start job, then every page job it enqueues.
    async fn run(&self, settings: &ImportSettings, run_id: &str) -> Vec<PageOutcome> {
        JobQueue::send(&self.queue, &[engine::start_job(&self.tenant, run_id, false)]).await;
        let mut outcomes = Vec::new();
        for _ in 0..10_000 {
            let jobs = self.queue.sent();
            let i = self.taken.load(std::sync::atomic::Ordering::SeqCst);
            let Some(job) = jobs.get(i).cloned() else { break };
            self.taken.store(i + 1, std::sync::atomic::Ordering::SeqCst);
            let SyncJob::ImportPage { run_id, page, dry_run, step, .. } = job else { panic!("{job:?}") };
            let ports = ImportPorts {
                salesforce: &self.client,
                hris: &self.hris,
                lms: &self.lms,
                store: &self.state,
                queue: &self.queue,
                activity: &self.activity,
            };
            let lms = self.lms_conn();
            let input = PageInput {
                tenant: &self.tenant,
                settings,
                session: Some(&self.session),
                hris: None,
                lms: &lms,
                integration_user: Some(&self.integration_user),
                now: time::OffsetDateTime::now_utc(),
                run_id: &run_id,
                page,
                dry_run,
                step: &step,
            };
            outcomes.push(engine::run_page(&ports, &input).await.unwrap());
        }
        outcomes
    }

    async fn learner_emails(&self) -> std::collections::BTreeSet<String> {
        let mut out = std::collections::BTreeSet::new();
        let mut cursor: Option<String> = None;
        let http = reqwest::Client::new();
        loop {
            let mut url = format!("{}/api/v1/learners?limit=1000", self.lms_url);
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let page: Value = http.get(url).bearer_auth("lms-local-key").send().await.unwrap().json().await.unwrap();
            // The org's own users (admin, integration user) are imported too; these tests look at theirs.
            for l in page["data"].as_array().unwrap() {
                let e = l["email"].as_str().unwrap();
                if e.ends_with("@import.test") {
                    out.insert(e.to_string());
                }
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return out,
            }
        }
    }

    async fn live(&self) -> engine::ImportState {
        self.state.import_state(&self.tenant, ImportLane::Live).await.unwrap().unwrap().0
    }
}

fn user_settings(lookback: u32) -> ImportSettings {
    serde_json::from_value(json!({"source": "salesforce_user", "lookback_minutes": lookback})).unwrap()
}

/// A SystemModstamp `minutes` after a base an hour ahead of now, so the
/// org's own users (stamped at seeding) sort before the test's.
fn stamp(minutes: i64, base: time::OffsetDateTime) -> String {
    learnlink_core::model::salesforce_datetime(base + time::Duration::minutes(minutes))
}

fn base() -> time::OffsetDateTime {
    let now = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    now.replace_second(0).unwrap().replace_nanosecond(0).unwrap()
}

fn emails(range: std::ops::Range<u32>) -> std::collections::BTreeSet<String> {
    range.map(|n| format!("u{n}@import.test")).collect()
}

#[tokio::test]
async fn ties_on_systemmodstamp_across_small_pages_and_an_api_limit_mid_run_lose_nothing() {
    let w = world().await;
    // Pages of 200 (below 2,000): 450 users, 300 of them sharing one SystemModstamp
    // across the page boundaries.
    w.post("/limits", json!({"query_page_size": 200})).await;
    let b = base();
    let mut users: Vec<(u32, String)> = (0..300).map(|n| (n, stamp(0, b))).collect();
    users.extend((300..450).map(|n| (n, stamp(1 + i64::from(n - 300) / 10, b))));
    let refs: Vec<(u32, &str)> = users.iter().map(|(n, s)| (*n, s.as_str())).collect();
    w.seed_users(&refs).await;

    // The org's API limit is hit after the first page: the run stops,
    // interrupted, with the checkpoint of the page done.
    w.post("/faults", json!({"kind": "request_limit_exceeded", "count": 1, "scope": "query"})).await;
    let s = user_settings(0);
    let first = w.run(&s, "r1").await;
    assert!(
        matches!(first.last(), Some(PageOutcome::Interrupted { reason }) if reason.contains("REQUEST_LIMIT_EXCEEDED")),
        "{first:?}"
    );
    let state = w.live().await;
    assert_eq!(state.run.as_ref().unwrap().status, RunStatus::Interrupted);
    // The fault hit the run's first query: nothing was read, nothing moved.
    assert!(state.checkpoint.is_none());

    // The next run: its first page by hand, then the limit before the second.
    JobQueue::send(&w.queue, &[engine::start_job(&w.tenant, "r2", false)]).await;
    // Take the start job by hand to put the fault between pages.
    let jobs = w.queue.sent();
    let i = w.taken.load(std::sync::atomic::Ordering::SeqCst);
    let SyncJob::ImportPage { run_id, page, step, .. } = jobs[i].clone() else { panic!() };
    w.taken.store(i + 1, std::sync::atomic::Ordering::SeqCst);
    let lms = w.lms_conn();
    let ports = ImportPorts {
        salesforce: &w.client,
        hris: &w.hris,
        lms: &w.lms,
        store: &w.state,
        queue: &w.queue,
        activity: &w.activity,
    };
    let input = PageInput {
        tenant: &w.tenant,
        settings: &s,
        session: Some(&w.session),
        hris: None,
        lms: &lms,
        integration_user: Some(&w.integration_user),
        now: time::OffsetDateTime::now_utc(),
        run_id: &run_id,
        page,
        dry_run: false,
        step: &step,
    };
    let out = engine::run_page(&ports, &input).await.unwrap();
    assert!(matches!(out, PageOutcome::Done { more: true, .. }), "{out:?}");
    let cp = w.live().await.checkpoint.unwrap();
    assert_eq!(cp.at, b, "the checkpoint sits inside the tie");
    w.post("/faults", json!({"kind": "request_limit_exceeded", "count": 1, "scope": "query"})).await;
    let rest = w.run(&s, "unused-after").await;
    // The queued page 2 of r2 ran into the limit; then "unused-after" ran
    // from the checkpoint and read everything after it (ties included).
    assert!(rest.iter().any(|o| matches!(o, PageOutcome::Interrupted { .. })), "{rest:?}");
    assert_eq!(w.learner_emails().await, emails(0..450), "every user imported exactly once");
    let last = w.live().await;
    assert_eq!(last.run.as_ref().unwrap().status, RunStatus::Done);
    assert_eq!(last.checkpoint.unwrap().at, b + time::Duration::minutes(15));
}

#[tokio::test]
async fn a_late_commit_with_an_older_systemmodstamp_is_caught_by_the_lookback() {
    let w = world().await;
    let b = base();
    w.seed_users(&[(1, &stamp(0, b)), (2, &stamp(10, b))]).await;
    let s = user_settings(5);
    w.run(&s, "r1").await;
    assert_eq!(w.learner_emails().await, emails(1..3));
    // Committed after r1 ran, stamped 3 minutes before the checkpoint.
    w.seed_users(&[(3, &stamp(7, b))]).await;
    w.run(&s, "r2").await;
    assert!(w.learner_emails().await.contains("u3@import.test"), "the lookback re-reads the last 5 minutes");
    // Without a lookback the same late commit is lost: the reason it exists.
    let w0 = world().await;
    w0.seed_users(&[(1, &stamp(0, b)), (2, &stamp(10, b))]).await;
    w0.run(&user_settings(0), "r1").await;
    w0.seed_users(&[(3, &stamp(7, b))]).await;
    w0.run(&user_settings(0), "r2").await;
    assert!(!w0.learner_emails().await.contains("u3@import.test"));
}

#[tokio::test]
async fn rules_loop_prevention_groups_and_welcome_emails_reach_the_lms() {
    let w = world().await;
    w.seed_users(&[(1, "2026-11-20T10:00:00.000Z"), (2, "2026-11-20T10:01:00.000Z"), (3, "2026-11-20T10:02:00.000Z")])
        .await;
    // User 3 was last changed by the integration user: learnlink's own write.
    let dump: Value =
        reqwest::get(format!("{}/__emulator/records/User", w.sf.url)).await.unwrap().json().await.unwrap();
    let u3 = dump.as_array().unwrap().iter().find(|u| u["Email"] == "u3@import.test").unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = reqwest::Client::new()
        .patch(format!("{}/__emulator/records/User/{u3}", w.sf.url))
        .json(&json!({"LastModifiedById": w.integration_user}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let s: ImportSettings = serde_json::from_value(json!({
        "source": "salesforce_user",
        "rules": {"combine": "any", "action": "skip", "conditions": [{"field": "Email", "operator": "starts_with", "value": "u2@"}]},
        "group_sync": {"enabled": true, "field": "Department", "remove_missing": true},
        "welcome_email": true
    }))
    .unwrap();
    w.run(&s, "r1").await;
    assert_eq!(w.learner_emails().await, emails(1..2), "u2 skipped by the rule, u3 by loop prevention");
    let run = w.live().await.run.unwrap();
    assert_eq!(run.counts.skipped, 2, "{run:?}");
    let stats: Value = reqwest::get(format!("{}/__emulator/stats", w.lms_url)).await.unwrap().json().await.unwrap();
    assert_eq!(stats["welcome_emails_sent"].as_u64(), Some(run.counts.created), "{stats}");
    let reasons: Vec<String> = w.activity.all(&w.tenant).iter().filter_map(|e| e.reason.clone()).collect();
    assert!(
        reasons.contains(&"import_rule".to_string()) && reasons.contains(&"loop_prevention".to_string()),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn group_sync_follows_the_source_field_and_removes_memberships_no_longer_there() {
    let w = world().await;
    let b = base();
    w.seed_users(&[(1, &stamp(0, b)), (2, &stamp(1, b))]).await;
    let s: ImportSettings = serde_json::from_value(json!({
        "source": "salesforce_user", "lookback_minutes": 0,
        "group_sync": {"enabled": true, "field": "Department", "remove_missing": true}
    }))
    .unwrap();
    w.run(&s, "r1").await;
    let learner_of = |email: &str| {
        let data = w.lms_state.data();
        (0..data.learner_count()).filter_map(|i| data.learner(i as u32)).find(|l| l.email == email).map(|l| l.id)
    };
    let u1 = learner_of("u1@import.test").expect("u1 imported");
    assert_eq!(w.lms_state.group_names_of(&u1), vec!["Support".to_string()]);
    // u1 moves to Sales in Salesforce: the next run adds Sales and removes Support.
    let dump: Value =
        reqwest::get(format!("{}/__emulator/records/User", w.sf.url)).await.unwrap().json().await.unwrap();
    let id = dump.as_array().unwrap().iter().find(|u| u["Email"] == "u1@import.test").unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = reqwest::Client::new()
        .patch(format!("{}/__emulator/records/User/{id}", w.sf.url))
        .json(&json!({"Department": "Sales; EMEA", "SystemModstamp": stamp(5, b)}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    w.run(&s, "r2").await;
    assert_eq!(w.lms_state.group_names_of(&u1), vec!["EMEA".to_string(), "Sales".to_string()]);
    let run = w.live().await.run.unwrap();
    assert_eq!(run.counts.updated, 1, "only u1 changed: {run:?}");
}
