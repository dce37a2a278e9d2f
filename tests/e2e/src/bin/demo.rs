//! `make demo`: job 1 on the local stack, end to end, with counts.
//!
//! A tenant is created with the `learnlink` CLI, connected to the Salesforce
//! emulator, and the LMS emulator sends signed webhooks for its enrollments
//! (with duplicates and reordering, as real LMSs do). The demo watches the
//! records arrive in Salesforce and prints a summary.

use learnlink_e2e::{Env, wait_for};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const LEARNERS: u32 = 200;
const PER_LEARNER: u32 = 3;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("demo failed: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Run the `learnlink` CLI (next to this binary) as an admin would, in the
/// project root so it finds `.learnlink/stack.env`; its output goes to ours.
fn cli(args: &[&str]) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let bin = exe.parent().map(|d| d.join("learnlink")).ok_or_else(|| anyhow::anyhow!("no directory for the CLI"))?;
    let status = std::process::Command::new(&bin)
        .args(args)
        .current_dir(learnlink_e2e::root())
        .status()
        .map_err(|e| anyhow::anyhow!("running {}: {e} (build it: cargo build --bins)", bin.display()))?;
    anyhow::ensure!(status.success(), "learnlink {} failed ({status})", args.first().unwrap_or(&""));
    Ok(())
}

fn step(n: u32, text: &str) {
    println!("\n[{n}] {text}");
}

async fn run() -> anyhow::Result<bool> {
    let state_dir = learnlink_e2e::root().join(".learnlink");
    let env = Env::attach(&state_dir)?;
    let tenant = format!("demo-{}", time::OffsetDateTime::now_utc().unix_timestamp());
    let secret = format!("whsec-{}", uuid::Uuid::new_v4().simple());
    let total = (LEARNERS * PER_LEARNER) as usize;

    step(1, &format!("Create tenant {tenant} with the CLI (admin API at {})", env.endpoints.api_url));
    println!(
        "    $ learnlink tenant create {tenant} --name \"Demo Academy\" --salesforce {} --client-id learnlink-local --source lms --webhook-secret lms=…",
        env.endpoints.salesforce_url
    );
    let secret_arg = format!("lms={secret}");
    cli(&[
        "tenant",
        "create",
        &tenant,
        "--name",
        "Demo Academy",
        "--salesforce",
        &env.endpoints.salesforce_url,
        "--client-id",
        "learnlink-local",
        "--source",
        "lms",
        "--webhook-secret",
        &secret_arg,
    ])?;
    println!("    webhook URL: {}/{tenant}/lms (canonical dialect, HMAC-signed)", env.endpoints.webhook_url);

    step(2, "Connect it to Salesforce (the emulator) through OAuth with PKCE");
    let (_, _) = (env.http.post(format!("{}/__emulator/reset", env.endpoints.salesforce_url)).send().await?, ());
    println!("    $ learnlink connect {tenant} --no-browser");
    let exe = std::env::current_exe()?;
    let bin = exe.parent().map(|d| d.join("learnlink")).ok_or_else(|| anyhow::anyhow!("no directory for the CLI"))?;
    let mut connect = std::process::Command::new(&bin)
        .args(["connect", &tenant, "--no-browser", "--wait-secs", "120"])
        .current_dir(learnlink_e2e::root())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let stderr = connect.stderr.take().ok_or_else(|| anyhow::anyhow!("no stderr"))?;
    let url = {
        use std::io::BufRead as _;
        std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("authorize_url: ").map(str::to_string))
            .ok_or_else(|| anyhow::anyhow!("learnlink connect printed no URL"))?
    };
    println!("    (the demo plays the admin's browser: {url} → Salesforce login → callback)");
    let (status, _) = env.browser_connect(&url, |u| u).await?;
    anyhow::ensure!(status == 200, "the OAuth callback answered {status}");
    anyhow::ensure!(connect.wait()?.success(), "learnlink connect failed");
    println!("    tokens stored in Secrets Manager as learnlink/{tenant}/salesforce");

    step(
        3,
        &format!("LMS: {LEARNERS} learners with {PER_LEARNER} enrollments each; their Contacts exist in Salesforce"),
    );
    env.lms_dataset(LEARNERS, PER_LEARNER).await?;
    let contacts = env.seed_contacts_for_learners().await?;
    println!("    {contacts} Contacts carry LMS_Learner_Id__c");

    step(4, &format!("The LMS sends {total} enrollment webhooks (10 events per delivery, 10% sent twice, shuffled)"));
    let started = Instant::now();
    let sent = env
        .emit_webhooks(
            &tenant,
            &secret,
            json!({"count": total, "events_per_delivery": 10, "duplicate_pct": 10, "reorder": true, "concurrency": 4}),
        )
        .await?;
    println!(
        "    deliveries {} (of which duplicates {}), answers {}",
        sent["deliveries"], sent["duplicates"], sent["statuses"]
    );

    step(5, "Enrollments arriving in Salesforce (LMS_Enrollment__c)");
    let last = std::cell::Cell::new(usize::MAX);
    let records = wait_for("the enrollments in Salesforce", Duration::from_secs(120), || async {
        let r = env.sf_records("LMS_Enrollment__c").await?;
        if r.len() != last.get() {
            last.set(r.len());
            let width = 40;
            let done = r.len() * width / total.max(1);
            print!(
                "\r    [{}{}] {}/{}",
                "#".repeat(done.min(width)),
                " ".repeat(width - done.min(width)),
                r.len(),
                total
            );
            let _ = std::io::stdout().flush();
        }
        Ok((r.len() >= total).then_some(r))
    })
    .await;
    println!();
    let elapsed = started.elapsed();
    let records = match records {
        Ok(r) => r,
        Err(e) => {
            println!("    {e}");
            Vec::new()
        }
    };

    let stats = env.sf_stats().await?;
    let runtime = env.runtime("stats").await?;
    let sync = runtime["event_sources"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["queue"] == "SyncQueue").cloned())
        .unwrap_or(Value::Null);
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    for r in &records {
        *by_status.entry(r["Status__c"].as_str().unwrap_or("?").to_string()).or_default() += 1;
    }
    let calls = stats["by_kind"]["composite"].as_u64().unwrap_or(0);
    step(6, "Summary");
    println!("    enrollments in the LMS           {total}");
    println!("    enrollments in Salesforce        {}", records.len());
    println!("    by status                        {by_status:?}");
    println!(
        "    webhook deliveries               {} ({} duplicates dropped by event id)",
        sent["deliveries"], sent["duplicates"]
    );
    println!("    sync-worker batches              {} (largest {})", sync["batches"], sync["max_batch"]);
    println!(
        "    Salesforce Composite calls       {calls} ({:.0} records per call)",
        records.len() as f64 / calls.max(1) as f64
    );
    println!("    Salesforce API calls (all)       {}", stats["api_calls"]);
    println!("    failed records                   {}", stats["records_failed"]);
    println!("    time from first webhook to last  {:.1} s", elapsed.as_secs_f64());
    step(7, "What the admin sees");
    for args in [
        vec!["status", tenant.as_str()],
        vec!["runs", tenant.as_str(), "--limit", "3"],
        vec!["logs", tenant.as_str(), "--limit", "5"],
    ] {
        println!("    $ learnlink {}", args.join(" "));
        cli(&args)?;
    }
    let ok = records.len() == total;
    println!(
        "\n{}",
        if ok {
            "Job 1 demo: every enrollment arrived exactly once."
        } else {
            "Job 1 demo: some enrollments are missing (see .learnlink/logs)."
        }
    );
    Ok(ok)
}
