//! jsforce as the yardstick (issue 6): the same enrollment records upserted
//! with jsforce (`tests/conformance/bench-upsert.mjs`) against the Salesforce
//! emulator, and the API calls the emulator counted for it.

use anyhow::{Context as _, bail};
use learnlink_core::model::Enrollment;
use serde_json::Value;
use std::time::{Duration, Instant};

/// What one jsforce upsert run cost.
#[derive(Debug, Clone, PartialEq)]
pub struct JsforceRun {
    /// API calls the emulator counted during the run (`/__emulator/stats`
    /// `api_calls`, after − before).
    pub calls: u64,
    /// Records jsforce reported as written.
    pub records_ok: usize,
    /// Seconds of the upsert itself, as the script measured it (without
    /// node's start and loading jsforce).
    pub seconds: f64,
    /// Seconds of the whole `node` process, start included.
    pub process_seconds: f64,
}

/// The npm project with jsforce (installed by `make setup`).
pub fn conformance_dir() -> std::path::PathBuf {
    crate::root().join("tests/conformance")
}

/// LMS_Enrollment__c field maps for jsforce: the bodies learnlink itself
/// writes (`learnlink_core::sync::enrollment_record`), so both clients send
/// the same records.
pub fn enrollment_records(enrollments: &[Enrollment]) -> Vec<Value> {
    enrollments.iter().map(|e| Value::Object(learnlink_core::sync::enrollment_record(e).body.to_map())).collect()
}

async fn api_calls(http: &reqwest::Client, emulator_url: &str) -> anyhow::Result<u64> {
    let r = http.get(format!("{emulator_url}/__emulator/stats")).send().await.context("reading emulator stats")?;
    if !r.status().is_success() {
        bail!("GET /__emulator/stats: {}", r.status());
    }
    let v: Value = r.json().await?;
    v["api_calls"].as_u64().context("the emulator's stats have no api_calls")
}

/// Upsert `records` (LMS_Enrollment__c field maps) with jsforce
/// (`sobject('LMS_Enrollment__c').upsert(records, 'LMS_Enrollment_Id__c',
/// {allOrNone: false, allowRecursive: true})`) against the emulator at
/// `emulator_url`, through the session `instance_url` + `access_token`.
/// Fails when any record failed, node fails, or the run exceeds its time
/// limit (2 minutes + 20 ms per record).
pub async fn jsforce_upsert(
    emulator_url: &str,
    instance_url: &str,
    access_token: &str,
    records: &[Value],
) -> anyhow::Result<JsforceRun> {
    let dir = conformance_dir();
    if !dir.join("node_modules/jsforce").exists() {
        bail!("jsforce is not installed in {}: run `make setup`", dir.display());
    }
    let mut file = tempfile::Builder::new().prefix("jsforce-bench-").suffix(".json").tempfile()?;
    serde_json::to_writer(std::io::BufWriter::new(file.as_file_mut()), records)?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
    let before = api_calls(&http, emulator_url).await?;

    let mut cmd = std::process::Command::new("node");
    cmd.arg("bench-upsert.mjs")
        .arg(file.path())
        .current_dir(&dir)
        .env("SF_INSTANCE_URL", instance_url)
        .env("SF_ACCESS_TOKEN", access_token)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    learnlink_local::process::die_with_parent(&mut cmd);
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let limit = Duration::from_secs(120) + Duration::from_millis(20) * u32::try_from(records.len()).unwrap_or(u32::MAX);
    let start = Instant::now();
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .with_context(|| format!("jsforce did not finish within {limit:?}"))?
        .context("running node (is Node.js installed?)")?;
    let process_seconds = start.elapsed().as_secs_f64();
    let after = api_calls(&http, emulator_url).await?;

    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary: Option<Value> = stdout.lines().rev().find_map(|l| serde_json::from_str(l.trim()).ok());
    let Some(summary) = summary.filter(|_| out.status.success()) else {
        bail!("jsforce upsert failed ({}): {}{}", out.status, stdout.trim(), stderr.trim());
    };
    let records_ok = summary["ok"].as_u64().context("the summary has no ok count")? as usize;
    if records_ok != records.len() {
        bail!("jsforce wrote {records_ok} of {} records: {summary}", records.len());
    }
    Ok(JsforceRun {
        calls: after.saturating_sub(before),
        records_ok,
        seconds: summary["seconds"].as_f64().unwrap_or(process_seconds),
        process_seconds,
    })
}
