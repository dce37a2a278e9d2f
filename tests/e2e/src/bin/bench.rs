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

#[tokio::main]
async fn main() -> ExitCode {
    learnlink_adapters::install_crypto_provider();
    let only = std::env::args().nth(1).unwrap_or_default();
    let mut figures = Figures(Vec::new());
    const GROUPS: [&str; 2] = ["salesforce", "job1_skeleton"];
    let mut ran = 0;
    for name in GROUPS {
        if !only.is_empty() && !name.starts_with(&only) {
            continue;
        }
        ran += 1;
        let result = match name {
            "job1_skeleton" => job1_skeleton(&mut figures).await,
            "salesforce" => salesforce(&mut figures).await,
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
