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

    step(3, &format!("LMS: {LEARNERS} learners with {PER_LEARNER} enrollments each; Salesforce: Contacts to match"));
    env.lms_dataset(LEARNERS, PER_LEARNER).await?;
    let mut learners = env.lms_all("learners").await?;
    learners.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    let email = |l: &Value| l["email"].as_str().unwrap_or_default().to_string();
    let mut contacts = Vec::new();
    let (matched, created) = (150usize, 40usize);
    for (i, l) in learners.iter().enumerate() {
        if i < matched {
            // Typed by hand in Salesforce: case differs, no learner id yet.
            let e = if i % 3 == 0 { email(l).to_uppercase() } else { email(l) };
            contacts.push(json!({"FirstName": l["first_name"], "LastName": l["last_name"], "Email": e}));
        } else if i >= matched + created {
            for n in 0..2 {
                contacts.push(json!({"LastName": format!("{} (copy {n})", l["last_name"].as_str().unwrap_or("?")), "Email": email(l)}));
            }
        }
    }
    let active: std::collections::HashSet<String> =
        learners.iter().filter(|l| l["active"] == true).filter_map(|l| l["id"].as_str().map(str::to_string)).collect();
    let held_learners: std::collections::HashSet<String> =
        learners.iter().skip(matched + created).filter_map(|l| l["id"].as_str().map(str::to_string)).collect();
    let seed = |sobject: &'static str, body: Vec<Value>| {
        let env = &env;
        async move {
            let r = env
                .http
                .post(format!("{}/__emulator/records/{sobject}", env.endpoints.salesforce_url))
                .json(&body)
                .send()
                .await?;
            anyhow::ensure!(r.status().is_success(), "seeding {sobject}: {}", r.status());
            anyhow::Ok(r.json::<Vec<Value>>().await?)
        }
    };
    seed("Contact", contacts).await?;
    let account = seed("Account", vec![json!({"Name": "Demo Academy Learners"})]).await?;
    let account = account.first().and_then(|a| a["id"].as_str()).unwrap_or_default().to_string();
    println!(
        "    {matched} learners have an unlinked Contact with their email, {created} have none, {} have two (ambiguous)",
        held_learners.len()
    );
    println!(
        "    $ learnlink config set {tenant} lms '{{\"base_url\": \"{}\", \"api_key\": \"…\"}}'",
        env.endpoints.lms_url
    );
    let lms = json!({"base_url": env.endpoints.lms_url, "api_key": learnlink_e2e::LMS_API_KEY}).to_string();
    cli(&["config", "set", &tenant, "lms", &lms])?;
    let sync = json!({"create_contacts": true, "account_placement": {"rule": "default_account", "default_account_id": account}}).to_string();
    println!("    $ learnlink config set {tenant} sync '{sync}'");
    cli(&["config", "set", &tenant, "sync", &sync])?;
    let all = env.lms_all("enrollments").await?;
    let held_records = all
        .iter()
        .filter(|e| e["learner_id"].as_str().is_some_and(|l| held_learners.contains(l) && active.contains(l)))
        .count();
    let inactive_records = all.iter().filter(|e| e["learner_id"].as_str().is_some_and(|l| !active.contains(l))).count();
    let expected = total - held_records - inactive_records;
    println!(
        "    {} learners are deactivated in the LMS: their {inactive_records} enrollments are skipped",
        learners.len() - active.len()
    );

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
            let done = r.len() * width / expected.max(1);
            print!(
                "\r    [{}{}] {}/{}",
                "#".repeat(done.min(width)),
                " ".repeat(width - done.min(width)),
                r.len(),
                expected
            );
            let _ = std::io::stdout().flush();
        }
        Ok((r.len() >= expected).then_some(r))
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
    let queries = stats["by_kind"]["query"].as_u64().unwrap_or(0);
    let all_contacts = env.sf_records("Contact").await?;
    let linked = all_contacts.iter().filter(|c| c["LMS_Learner_Id__c"].is_string()).count();
    let made = all_contacts.iter().filter(|c| c["AccountId"].as_str() == Some(account.as_str())).count();
    step(6, "Summary");
    println!("    enrollments in the LMS           {total}");
    println!(
        "    enrollments in Salesforce        {} (expected {expected}; {held_records} held for review, {inactive_records} of deactivated learners skipped)",
        records.len()
    );
    println!("    by status                        {by_status:?}");
    println!("    Contacts linked to learners      {linked} ({made} created in \"Demo Academy Learners\")");
    println!(
        "    webhook deliveries               {} ({} duplicates dropped by event id)",
        sent["deliveries"], sent["duplicates"]
    );
    println!("    sync-worker batches              {} (largest {})", sync["batches"], sync["max_batch"]);
    println!(
        "    Salesforce Composite calls       {calls} ({:.0} records per call, Contact links included)",
        (records.len() + linked) as f64 / calls.max(1) as f64
    );
    println!("    Salesforce queries               {queries} (learner lookups are batched, never one per record)");
    println!("    Salesforce API calls (all)       {}", stats["api_calls"]);
    println!("    failed records                   {}", stats["records_failed"]);
    println!("    time from first webhook to last  {:.1} s", elapsed.as_secs_f64());
    step(7, "What the admin sees");
    for args in [
        vec!["status", tenant.as_str()],
        vec!["runs", tenant.as_str(), "--limit", "3"],
        vec!["logs", tenant.as_str(), "--limit", "5"],
        vec!["review", "list", tenant.as_str()],
    ] {
        println!("    $ learnlink {}", args.join(" "));
        cli(&args)?;
    }
    // The admin resolves one ambiguous learner: its held records go out.
    let (_, review) = env.admin(reqwest::Method::GET, &format!("/admin/tenants/{tenant}/review"), None).await?;
    let mut ok = records.len() == expected;
    if let Some(item) = review["items"].as_array().and_then(|a| a.first()) {
        let learner = item["learner_id"].as_str().unwrap_or_default().to_string();
        let contact = item["candidates"][0].as_str().unwrap_or_default().to_string();
        let held = item["held"].as_u64().unwrap_or(0) as usize;
        println!("    $ learnlink review resolve {tenant} {learner} {contact}");
        cli(&["review", "resolve", &tenant, &learner, &contact])?;
        let after = wait_for("the resolved learner's records", Duration::from_secs(60), || async {
            let n = env.sf_records("LMS_Enrollment__c").await?.len();
            Ok((n >= expected + held).then_some(n))
        })
        .await;
        match after {
            Ok(n) => println!("    {held} held records of {learner} written: {n} enrollments in Salesforce"),
            Err(e) => {
                println!("    {e}");
                ok = false;
            }
        }
    }
    println!(
        "\n{}",
        if ok {
            "Job 1 demo: every enrollment of a matched learner arrived exactly once; ambiguous ones wait for review."
        } else {
            "Job 1 demo: some enrollments are missing (see .learnlink/logs)."
        }
    );
    let ok2 = job2(&env, &tenant).await?;
    let ok3 = job3(&env, &tenant).await?;
    Ok(ok && ok2 && ok3)
}

/// Job 2: Salesforce Users imported into the LMS (SPEC §5), page by page.
async fn job2(env: &Env, tenant: &str) -> anyhow::Result<bool> {
    const USERS: u32 = 5_000;
    step(8, &format!("Job 2: {USERS} Salesforce Users to import into the LMS (pages of 2,000, a checkpoint per page)"));
    env.seed_sf_users(0, USERS).await?;
    let import = json!({"source": "salesforce_user", "schedule": "cron(0 3 * * ? *)", "welcome_email": true,
        "rules": {"combine": "any", "action": "skip", "conditions": [{"field": "Email", "operator": "ends_with", "value": "@example.com"}]},
        "group_sync": {"enabled": true, "field": "Department", "remove_missing": true}})
    .to_string();
    println!("    $ learnlink config set {tenant} import '{import}'");
    cli(&["config", "set", tenant, "import", &import])?;
    println!("    $ learnlink import preview {tenant} --limit 5");
    cli(&["import", "preview", tenant, "--limit", "5"])?;
    println!("    $ learnlink import run {tenant} --dry-run");
    cli(&["import", "run", tenant, "--dry-run"])?;
    let before = env.sf_stats().await?["api_calls"].as_u64().unwrap_or(0);
    let lms_before: Value =
        env.http.get(format!("{}/__emulator/stats", env.endpoints.lms_url)).send().await?.json().await?;
    let started = Instant::now();
    println!("    $ learnlink import run {tenant}");
    cli(&["import", "run", tenant])?;
    let secs = started.elapsed().as_secs_f64();
    let calls = env.sf_stats().await?["api_calls"].as_u64().unwrap_or(0) - before;
    let lms: Value = env.http.get(format!("{}/__emulator/stats", env.endpoints.lms_url)).send().await?.json().await?;
    let created = lms["learners_created"].as_u64().unwrap_or(0) - lms_before["learners_created"].as_u64().unwrap_or(0);
    let welcome =
        lms["welcome_emails_sent"].as_u64().unwrap_or(0) - lms_before["welcome_emails_sent"].as_u64().unwrap_or(0);
    println!("    $ learnlink import status {tenant}");
    cli(&["import", "status", tenant])?;
    step(9, "Job 2 summary");
    println!("    Salesforce Users                 {USERS} (+ the org's own users, skipped by the rule)");
    println!("    learners created in the LMS      {created} ({welcome} welcome emails asked for)");
    println!("    Salesforce API calls             {calls} (query pages; no call per person)");
    println!("    time                             {secs:.1} s");
    let ok = created >= u64::from(USERS);
    println!(
        "\n{}",
        if ok {
            "Job 2 demo: every User reached the LMS once, with its groups; the next run starts from the checkpoint."
        } else {
            "Job 2 demo: some Users did not reach the LMS (see learnlink logs)."
        }
    );
    Ok(ok)
}

/// Job 3: the LMS's whole enrollment history backfilled into Salesforce
/// (SPEC §6): planned into shards, Bulk API 2.0 for the big ones, the
/// automation kill switch on while writing, a progress bar.
async fn job3(env: &Env, tenant: &str) -> anyhow::Result<bool> {
    const PER: u32 = 60;
    step(10, &format!("Job 3: the LMS's history, {LEARNERS} learners x {PER} enrollments, backfilled into Salesforce"));
    env.lms_dataset(LEARNERS, PER).await?;
    let backfill = json!({"shard_size": 2000, "bulk_threshold": 1500, "kill_switch": true}).to_string();
    println!("    $ learnlink config set {tenant} backfill '{backfill}'");
    cli(&["config", "set", tenant, "backfill", &backfill])?;
    let before = env.sf_stats().await?["api_calls"].as_u64().unwrap_or(0);
    let started = Instant::now();
    println!("    $ learnlink backfill start {tenant} --since 2025-12-01T00:00:00Z --wait");
    cli(&["backfill", "start", tenant, "--since", "2025-12-01T00:00:00Z", "--wait"])?;
    let secs = started.elapsed().as_secs_f64();
    let calls = env.sf_stats().await?["api_calls"].as_u64().unwrap_or(0) - before;
    println!("    $ learnlink backfill status {tenant}");
    cli(&["backfill", "status", tenant])?;
    let (_, list) =
        env.admin(reqwest::Method::GET, &format!("/admin/tenants/{tenant}/backfills?limit=1"), None).await?;
    let view = &list["backfills"][0];
    let p = &view["progress"];
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    step(11, "Job 3 summary");
    println!("    enrollments in the window        {}", n(&p["expected"]));
    println!("    shards                           {} of {} done", n(&p["shards_done"]), n(&p["shards_total"]));
    println!("    written (created / updated)      {} / {}", n(&p["created"]), n(&p["updated"]));
    println!("    handed to enrollment sync        {} (learners without a Contact yet)", n(&p["handed_over"]));
    println!("    already newer (written by job 1) {}", n(&p["stale"]));
    println!("    failed                           {}", n(&p["failed"]));
    println!(
        "    kill switch                      {}",
        view["backfill"]["kill_switch"]["state"].as_str().unwrap_or("?")
    );
    println!("    Salesforce API calls             {calls}");
    println!("    time                             {secs:.1} s");
    let ok = view["backfill"]["status"] == "completed"
        && n(&p["created"]) + n(&p["updated"]) + n(&p["handed_over"]) + n(&p["stale"]) == n(&p["expected"])
        && view["backfill"]["kill_switch"]["state"] != "engaged";
    println!(
        "\n{}",
        if ok {
            "Job 3 demo: the whole history reached Salesforce once, automations bypassed while writing and restored after."
        } else {
            "Job 3 demo: the backfill did not complete (see learnlink backfill status and learnlink logs)."
        }
    );
    Ok(ok)
}
