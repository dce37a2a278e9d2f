//! `make bench`: benchmark figures, each printed as `BENCH <name> <value> <unit>`
//! and collected into `.learnlink/bench.json`. `learnlink-bench <group>` runs
//! one group. Every figure is measured in this run, on a private local stack
//! started by the bench itself.

use learnlink_e2e::{Env, Options, wait_for};
use serde_json::{Value, json};
use std::process::ExitCode;
use std::time::{Duration, Instant};

struct Figures(Vec<Value>);

impl Figures {
    fn add(&mut self, name: &str, value: f64, unit: &str) {
        println!("BENCH {name} {value} {unit}");
        self.0.push(json!({"name": name, "value": value, "unit": unit}));
    }
}

/// The job 1 walking skeleton: 1,000 enrollments as signed webhooks (10 per
/// delivery) through the whole stack into the Salesforce emulator.
async fn job1_skeleton(f: &mut Figures) -> anyhow::Result<()> {
    const N: u32 = 1_000;
    let env = Env::start("bench-job1-skeleton", Options::default())?;
    let secret = "whsec-bench-0123456789";
    env.create_tenant("bench", secret).await?;
    env.connect_salesforce("bench").await?;
    env.lms_dataset(N, 1).await?;
    env.seed_contacts_for_learners().await?;
    let before = env.sf_stats().await?["api_calls"].as_u64().unwrap_or(0);
    let start = Instant::now();
    env.emit_webhooks("bench", secret, json!({"count": N, "events_per_delivery": 10, "concurrency": 4})).await?;
    wait_for("the benchmark's enrollments", Duration::from_secs(600), || async {
        Ok((env.sf_records("LMS_Enrollment__c").await?.len() >= N as usize).then_some(()))
    })
    .await?;
    let secs = start.elapsed().as_secs_f64();
    let calls = env.sf_stats().await?["api_calls"].as_u64().unwrap_or(0) - before;
    f.add("job1_skeleton_calls_per_1k", calls as f64, "calls");
    f.add("job1_skeleton_seconds_per_1k", (secs * 100.0).round() / 100.0, "s");
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn calls(stats: &Value, kind: Option<&str>) -> u64 {
    match kind {
        None => stats["api_calls"].as_u64().unwrap_or(0),
        Some(k) => stats["by_kind"][k].as_u64().unwrap_or(0),
    }
}

/// Job 1 as customers run it (SPEC §4): a tenant whose learners are matched
/// to Contacts through the LMS API. 1,000 learners, 12 enrollments each:
/// 1,000 warm the learner links (the first enrollment of each learner), the
/// next 10,000 arrive as a steady webhook stream (25 per delivery) and are
/// counted; then jsforce upserts the same 10,000 against the same emulator;
/// then 1,000 more arrive one per delivery at 50 events/s for the latency.
async fn job1(f: &mut Figures) -> anyhow::Result<()> {
    const LEARNERS: u32 = 1_100;
    let env = Env::start("bench-job1", Options::default())?;
    let secret = "whsec-bench-0123456789";
    env.lms_dataset(LEARNERS, 12).await?;
    env.seed_contacts_for_learners().await?;
    env.create_tenant_with_lms("bench", secret, json!({})).await?;
    env.connect_salesforce("bench").await?;
    // Deactivated learners' enrollments are skipped by design: leave them out.
    let active: std::collections::HashSet<String> = env
        .lms_all("learners")
        .await?
        .iter()
        .filter(|l| l["active"] == true)
        .filter_map(|l| l["id"].as_str().map(str::to_string))
        .collect();
    let enrollments: Vec<Value> = env
        .lms_all("enrollments")
        .await?
        .into_iter()
        .filter(|e| e["learner_id"].as_str().is_some_and(|l| active.contains(l)))
        .collect();
    // Per learner, its enrollments in LMS order.
    let mut per_learner: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    for e in &enrollments {
        per_learner.entry(e["learner_id"].as_str().unwrap_or_default().to_string()).or_default().push(e.clone());
    }
    let mut warm = Vec::new();
    let mut stream = Vec::new();
    let mut latency = Vec::new();
    for list in per_learner.values() {
        for (i, e) in list.iter().enumerate() {
            match i {
                0 => warm.push(e.clone()),
                1..=10 => stream.push(e.clone()),
                _ => latency.push(e.clone()),
            }
        }
    }
    // 10,000 exactly: top up from the latency share if deactivated learners left a gap.
    while stream.len() < 10_000 && !latency.is_empty() {
        stream.push(latency.remove(0));
    }
    stream.truncate(10_000);
    latency.truncate(1_000);
    anyhow::ensure!(stream.len() == 10_000, "the data set gave {} stream enrollments", stream.len());
    let written = |n: usize| {
        let env = &env;
        async move {
            wait_for("the benchmark's enrollments", Duration::from_secs(900), || async {
                Ok((env.sf_records("LMS_Enrollment__c").await?.len() >= n).then_some(()))
            })
            .await
        }
    };

    // Warm-up: every learner's first enrollment (learner links remembered).
    let s0 = env.sf_stats().await?;
    emit(&env, secret, &warm).await?;
    written(warm.len()).await?;
    let s1 = env.sf_stats().await?;
    f.add(
        "job1_warmup_calls_per_1k_new_learners",
        (calls(&s1, None) - calls(&s0, None)) as f64 * 1_000.0 / warm.len() as f64,
        "calls",
    );

    // The steady stream.
    let sync_batches = || async {
        let stats = env.runtime("stats").await?;
        let src = stats["event_sources"].as_array().and_then(|a| a.iter().find(|s| s["queue"] == "SyncQueue").cloned());
        anyhow::Ok(src.and_then(|s| s["batches"].as_u64()).unwrap_or(0))
    };
    let b0 = sync_batches().await?;
    let start = Instant::now();
    emit(&env, secret, &stream).await?;
    written(warm.len() + stream.len()).await?;
    let secs = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    f.add("job1_worker_batches_per_10k", (sync_batches().await? - b0) as f64, "batches");
    let s2 = env.sf_stats().await?;
    let used = calls(&s2, None) - calls(&s1, None);
    let lookups = calls(&s2, Some("query")) - calls(&s1, Some("query"));
    f.add("job1_calls_per_10k", used as f64, "calls");
    f.add("job1_record_lookups_per_10k", lookups as f64, "queries");
    f.add("job1_stream_seconds_per_10k", (secs * 100.0).round() / 100.0, "s");

    // jsforce, the same 10,000 records, the same emulator.
    let records: Vec<Value> = stream
        .iter()
        .filter_map(|e| serde_json::from_value::<learnlink_core::model::Enrollment>(e.clone()).ok())
        .map(|e| {
            let mut body = learnlink_core::sync::enrollment_record(&e).body.to_map();
            body.remove("attributes");
            Value::Object(body)
        })
        .collect();
    anyhow::ensure!(records.len() == stream.len(), "some enrollments did not read as canonical");
    let tokens: Value = env
        .http
        .post(format!("{}/__emulator/connections", env.endpoints.salesforce_url))
        .json(&json!({}))
        .send()
        .await?
        .json()
        .await?;
    let js = learnlink_e2e::jsforce_bench::jsforce_upsert(
        &env.endpoints.salesforce_url,
        tokens["instance_url"].as_str().unwrap_or_default(),
        tokens["access_token"].as_str().unwrap_or_default(),
        &records,
    )
    .await?;
    f.add("jsforce_calls_per_10k", js.calls as f64, "calls");
    f.add("jsforce_to_learnlink_calls_ratio", ((js.calls as f64 / used.max(1) as f64) * 100.0).round() / 100.0, "x");

    // Latency at 50 events/s: each enrollment sent alone, timed from its
    // POST to the record's SystemModstamp in the emulator (same clock).
    let mut sent_at: std::collections::HashMap<String, i64> = Default::default();
    let url = format!("{}/bench/lms", env.endpoints.webhook_url);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut pending = Vec::new();
    for (n, e) in latency.iter().enumerate() {
        tick.tick().await;
        let mut data = e.clone();
        let now = time::OffsetDateTime::now_utc();
        data["updated_at"] = json!(now.format(&time::format_description::well_known::Rfc3339)?);
        let body = json!({"events": [{"id": format!("lat-{n}"), "type": "enrollment.updated", "occurred_at": data["updated_at"], "data": data}]}).to_string();
        let id = e["id"].as_str().unwrap_or_default().to_string();
        sent_at.insert(id, (now.unix_timestamp_nanos() / 1_000_000) as i64);
        let req = env
            .http
            .post(&url)
            .header("learnlink-signature", learnlink_e2e::sign(secret, &body))
            .header("content-type", "application/json")
            .body(body);
        pending.push(tokio::spawn(async move { req.send().await.map(|r| r.status().as_u16()) }));
    }
    for p in pending {
        let status = p.await??;
        anyhow::ensure!(status == 202, "a latency webhook got {status}");
    }
    let total = warm.len() + stream.len() + latency.len();
    written(total).await?;
    let records = env.sf_records("LMS_Enrollment__c").await?;
    let mut lat: Vec<f64> = records
        .iter()
        .filter_map(|r| {
            let sent = sent_at.get(r["LMS_Enrollment_Id__c"].as_str()?)?;
            // Salesforce's form: 2026-11-23T10:00:00.000+0000.
            let seen = time::OffsetDateTime::parse(r["SystemModstamp"].as_str()?, SF_DATETIME).ok()?;
            Some(((seen.unix_timestamp_nanos() / 1_000_000) as i64 - sent) as f64)
        })
        .collect();
    anyhow::ensure!(lat.len() == latency.len(), "{} of {} latency records found", lat.len(), latency.len());
    lat.sort_by(f64::total_cmp);
    f.add("job1_latency_p50_ms", percentile(&lat, 50.0), "ms");
    f.add("job1_latency_p99_ms", percentile(&lat, 99.0), "ms");
    Ok(())
}

/// The LMS emits these enrollments' webhooks, 25 per delivery, 2 in flight;
/// 500 per emit call, so each stays inside the kit's HTTP timeout.
async fn emit(env: &Env, secret: &str, enrollments: &[Value]) -> anyhow::Result<()> {
    for chunk in enrollments.chunks(500) {
        let ids: Vec<&str> = chunk.iter().filter_map(|e| e["id"].as_str()).collect();
        env.emit_webhooks("bench", secret, json!({"enrollment_ids": ids, "events_per_delivery": 25, "concurrency": 2}))
            .await?;
    }
    Ok(())
}

const SF_DATETIME: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3][offset_hour sign:mandatory][offset_minute]"
);

/// The product's Salesforce client against the emulator: 10,000 enrollment
/// upserts through Composite + sObject Collections, counted and timed.
async fn salesforce(f: &mut Figures) -> anyhow::Result<()> {
    use learnlink_core::model::{Enrollment, EnrollmentStatus};
    use learnlink_core::ports::SalesforceApi;
    use learnlink_core::salesforce::Session;
    use learnlink_core::webhook::{EventKind, EventPayload, LmsEvent};
    const N: usize = 10_000;
    const LEARNERS: usize = 500;
    let emu = learnlink_e2e::SfEmulator::start()?;
    let http = reqwest::Client::new();
    let contacts: Vec<Value> = (0..LEARNERS)
        .map(|i| json!({"LastName": format!("Bench {i}"), "LMS_Learner_Id__c": format!("BL{i}")}))
        .collect();
    anyhow::ensure!(
        http.post(format!("{}/__emulator/records/Contact", emu.url))
            .json(&contacts)
            .send()
            .await?
            .status()
            .is_success(),
        "seeding contacts failed"
    );
    let tokens: Value =
        http.post(format!("{}/__emulator/connections", emu.url)).json(&json!({})).send().await?.json().await?;
    let session = Session {
        instance_url: tokens["instance_url"].as_str().unwrap_or_default().to_string(),
        access_token: secrecy::SecretString::from(tokens["access_token"].as_str().unwrap_or_default().to_string()),
    };
    let t = time::OffsetDateTime::now_utc();
    let events: Vec<LmsEvent> = (0..N)
        .map(|i| LmsEvent {
            id: format!("bench-{i}"),
            kind: EventKind::EnrollmentUpdated,
            occurred_at: t,
            payload: EventPayload::Enrollment(Enrollment {
                id: format!("BE{i}"),
                learner_id: format!("BL{}", i % LEARNERS),
                course_id: format!("C{}", i % 17),
                course_title: Some("Benchmark course".into()),
                status: EnrollmentStatus::InProgress,
                progress_pct: Some((i % 100) as f64),
                score: None,
                enrolled_at: Some(t),
                completed_at: None,
                updated_at: t,
            }),
        })
        .collect();
    let calls = learnlink_core::sync::plan(events.iter().enumerate());
    let client = learnlink_adapters::salesforce::SalesforceClient::new().map_err(|e| anyhow::anyhow!(e.chain()))?;
    let stats = |http: reqwest::Client, url: String| async move {
        let v: Value = http.get(format!("{url}/__emulator/stats")).send().await?.json().await?;
        anyhow::Ok(v["api_calls"].as_u64().unwrap_or(0))
    };
    let before = stats(http.clone(), emu.url.clone()).await?;
    let start = Instant::now();
    let mut written = 0usize;
    for call in &calls {
        let out = client.composite_upsert(&session, call).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        written += out.iter().flatten().filter(|o| o.failure_class().is_none()).count();
    }
    let secs = start.elapsed().as_secs_f64();
    let used = stats(http.clone(), emu.url.clone()).await? - before;
    anyhow::ensure!(written == N, "only {written} of {N} records were written");
    f.add("sf_emulator_upsert_rate", (N as f64 / secs).round(), "records/s");
    f.add("sf_client_calls_per_10k", used as f64, "calls");
    Ok(())
}

/// Job 2 (SPEC §5): 100,000 Salesforce Users imported into the LMS emulator
/// on the local stack — one page per sync-queue message, a checkpoint per
/// page, one activity entry per person. Counted: Salesforce API calls (the
/// org's allowance), LMS calls beside them, and the wall time from the
/// admin API's start to the run's end.
async fn job2(f: &mut Figures) -> anyhow::Result<()> {
    const N: u32 = 100_000;
    let env = Env::start("bench-job2", Options::default())?;
    env.lms_dataset(1, 0).await?;
    env.seed_sf_users(0, N).await?;
    env.create_tenant_with_import("bench", "whsec-bench-0123456789", json!({"source": "salesforce_user"})).await?;
    env.connect_salesforce("bench").await?;
    let lms_calls = |v: &Value| -> u64 {
        v["requests"].as_object().map(|m| m.values().filter_map(Value::as_u64).sum()).unwrap_or(0)
    };
    let lms_stats = || async {
        anyhow::Ok(reqwest::get(format!("{}/__emulator/stats", env.endpoints.lms_url)).await?.json::<Value>().await?)
    };
    let (s0, l0) = (env.sf_stats().await?, lms_stats().await?);
    let start = Instant::now();
    let run_id = env.start_import("bench", false).await?;
    let run = env.wait_import("bench", &run_id, false, Duration::from_secs(900)).await?;
    let secs = start.elapsed().as_secs_f64();
    let (s1, l1) = (env.sf_stats().await?, lms_stats().await?);
    anyhow::ensure!(run["status"] == "done", "the import did not finish: {run}");
    let created = run["counts"]["created"].as_u64().unwrap_or(0) + run["counts"]["updated"].as_u64().unwrap_or(0);
    anyhow::ensure!(created >= u64::from(N), "only {created} of {N} users reached the LMS: {run}");
    f.add("job2_calls_per_100k", (calls(&s1, None) - calls(&s0, None)) as f64, "calls");
    f.add("job2_lms_calls_per_100k", (lms_calls(&l1) - lms_calls(&l0)) as f64, "calls");
    f.add("job2_pages_per_100k", run["counts"]["pages"].as_f64().unwrap_or(0.0), "pages");
    f.add("job2_seconds_per_100k", (secs * 10.0).round() / 10.0, "s");
    Ok(())
}

/// Peak resident set (VmHWM, MB) of the running `sync-worker` processes.
fn worker_peak_rss_mb() -> f64 {
    let mut peak = 0u64;
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0.0 };
    for e in dir.flatten() {
        let p = e.path();
        let is_worker = std::fs::read_link(p.join("exe"))
            .ok()
            .and_then(|x| x.file_name().map(|n| n.to_string_lossy().starts_with("sync-worker")))
            .unwrap_or(false);
        if !is_worker {
            continue;
        }
        let status = std::fs::read_to_string(p.join("status")).unwrap_or_default();
        if let Some(kb) = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kb);
        }
    }
    peak as f64 / 1024.0
}

/// Job 3 (SPEC §6): a backfill of 1,000,000 LMS enrollments into the
/// Salesforce emulator on the local stack (default settings: shards of
/// ~10,000, Bulk API 2.0, kill switch on). Counted: Salesforce API calls,
/// the wall time from the start request to completion, the worker's peak
/// RSS (sampled from /proc). Beside it, the same rows loaded by jsforce's
/// Bulk API 2.0 client (one job per 500,000 rows) against the same emulator.
async fn job3(f: &mut Figures) -> anyhow::Result<()> {
    use learnlink_core::salesforce::bulk::{BulkOperation, BulkPlan};
    const LEARNERS: u32 = 100_000;
    const PER: u32 = 10;
    let n = u64::from(LEARNERS * PER);
    let env = Env::start("bench-job3", Options::default())?;
    env.lms_dataset(LEARNERS, PER).await?;
    env.seed_contacts_for_learners().await?;
    env.create_tenant_for_backfill("bench", "whsec-bench-0123456789", json!({})).await?;
    env.connect_salesforce("bench").await?;
    let s0 = env.sf_stats().await?;
    let start = Instant::now();
    let (status, v) = env.start_backfill("bench", json!({"since": "2025-12-01T00:00:00Z"})).await?;
    anyhow::ensure!(status == 202, "the backfill did not start: {status} {v}");
    let id = v["backfill"]["id"].as_str().unwrap_or_default().to_string();
    let mut peak = 0f64;
    let done = loop {
        peak = peak.max(worker_peak_rss_mb());
        let v = env.backfill("bench", &id).await?;
        let s = v["backfill"]["status"].as_str().unwrap_or("");
        if matches!(s, "completed" | "failed" | "cancelled") && v["backfill"]["kill_switch"]["state"] != "engaged" {
            break v;
        }
        anyhow::ensure!(start.elapsed() < Duration::from_secs(3600), "the backfill did not end in an hour");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let secs = start.elapsed().as_secs_f64();
    let s1 = env.sf_stats().await?;
    anyhow::ensure!(done["backfill"]["status"] == "completed", "the backfill did not complete: {}", done["backfill"]);
    let written = done["progress"]["written"].as_u64().unwrap_or(0);
    anyhow::ensure!(written == n, "only {written} of {n} enrollments were written: {}", done["progress"]);
    f.add("job3_calls_per_1m", (calls(&s1, None) - calls(&s0, None)) as f64, "calls");
    f.add("job3_seconds_per_1m", (secs * 10.0).round() / 10.0, "s");
    f.add("job3_peak_rss_mb", peak.round(), "MB");
    f.add("job3_shards_per_1m", done["progress"]["shards_total"].as_f64().unwrap_or(0.0), "shards");

    // The peer: the same rows as CSV files of 500,000, loaded by jsforce bulk2.
    let dir = learnlink_e2e::root().join("target/bench-job3");
    std::fs::create_dir_all(&dir)?;
    let enrollments = env.lms_all("enrollments").await?;
    let mut files = Vec::new();
    for (k, part) in enrollments.chunks(500_000).enumerate() {
        let parsed: Vec<learnlink_core::model::Enrollment> =
            part.iter().map(|e| serde_json::from_value(e.clone())).collect::<Result<_, _>>()?;
        let records: Vec<_> = parsed.iter().map(learnlink_core::sync::enrollment_record).collect();
        let plan = BulkPlan::new(BulkOperation::Upsert, &records, u64::MAX).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut csv = plan.header().to_vec();
        for r in &records {
            plan.encode_row(r, &mut csv);
        }
        let path = dir.join(format!("part{k}.csv"));
        std::fs::write(&path, csv)?;
        files.push(path);
    }
    drop(enrollments);
    let tokens = env.stored_tokens("bench").await?;
    let before = env.sf_stats().await?;
    let out = std::process::Command::new("node")
        .arg("bench-bulk2.mjs")
        .args(&files)
        .current_dir(learnlink_e2e::jsforce_bench::conformance_dir())
        .env("SF_INSTANCE_URL", tokens["instance_url"].as_str().unwrap_or_default())
        .env("SF_ACCESS_TOKEN", tokens["access_token"].as_str().unwrap_or_default())
        .output()?;
    let after = env.sf_stats().await?;
    let line = String::from_utf8_lossy(&out.stdout);
    let peer: Value = serde_json::from_str(line.trim()).map_err(|e| {
        anyhow::anyhow!("jsforce bulk2 printed no result ({e}): {line} {}", String::from_utf8_lossy(&out.stderr))
    })?;
    anyhow::ensure!(peer["ok"].as_u64() == Some(n), "jsforce bulk2 did not load every row: {peer}");
    f.add("peer_bulk_seconds_per_1m", (peer["seconds"].as_f64().unwrap_or(0.0) * 10.0).round() / 10.0, "s");
    f.add("peer_bulk_calls_per_1m", (calls(&after, None) - calls(&before, None)) as f64, "calls");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    learnlink_adapters::install_crypto_provider();
    let only = std::env::args().nth(1).unwrap_or_default();
    let mut figures = Figures(Vec::new());
    const GROUPS: [&str; 6] = ["salesforce", "job1_skeleton", "job1", "job2", "job3", "core"];
    let mut ran = 0;
    for name in GROUPS {
        if !only.is_empty() && name != only {
            continue;
        }
        ran += 1;
        let result = match name {
            "job1_skeleton" => job1_skeleton(&mut figures).await,
            "salesforce" => salesforce(&mut figures).await,
            "job1" => job1(&mut figures).await,
            "job2" => job2(&mut figures).await,
            "job3" => job3(&mut figures).await,
            "core" => (|| {
                let bin = learnlink_e2e::bin_dir();
                let core = learnlink_e2e::core_bench::core_instructions_per_record(&bin)?;
                figures.add("core_instructions_per_record", core.round(), "instructions");
                let ingest = learnlink_e2e::core_bench::ingest_instructions_per_record(&bin)?;
                figures.add("core_ingest_instructions_per_record", ingest.round(), "instructions");
                anyhow::Ok(())
            })(),
            _ => Ok(()),
        };
        if let Err(e) = result {
            eprintln!("bench group {name} failed: {e:#}");
            return ExitCode::FAILURE;
        }
    }
    if ran == 0 {
        eprintln!("no bench group matches {only:?}; groups: {}", GROUPS.join(", "));
        return ExitCode::from(2);
    }
    let out = learnlink_e2e::root().join(".learnlink");
    let doc = json!({
        "machine": {"cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), "os": std::env::consts::OS, "arch": std::env::consts::ARCH},
        "when": time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "figures": figures.0,
    });
    if std::fs::create_dir_all(&out).is_err() || std::fs::write(out.join("bench.json"), format!("{doc:#}\n")).is_err() {
        eprintln!("could not write .learnlink/bench.json");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
