//! Job 2 on the local stack (SPEC §5): the tenant's import schedule fired by
//! the local runtime through backfill-fanout, pages through the sync queue
//! and sync-worker, `learnlink import preview|run|status` through the admin
//! API, and an HRIS source read from the HRIS emulator.

#![allow(clippy::unwrap_used)]

use learnlink_e2e::{Env, Options};
use serde_json::{Value, json};
use std::time::Duration;

fn cli_json(env: &Env, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = env.learnlink(&all).unwrap();
    assert!(
        out.status.success(),
        "learnlink {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn lms_learners(env: &Env) -> Vec<Value> {
    env.lms_all("learners").await.unwrap()
}

#[tokio::test]
async fn salesforce_users_import_on_schedule_and_on_demand_with_preview_and_dry_run() {
    let env = Env::start("job2-users", Options::default()).unwrap();
    env.lms_dataset(1, 0).await.unwrap();
    env.seed_sf_users(0, 450).await.unwrap();
    env.sf_admin("/limits", json!({"query_page_size": 200})).await.unwrap();
    env.create_tenant_with_import(
        "acme",
        "whsec-job2-0123456789",
        json!({"source": "salesforce_user", "schedule": "rate(1 hour)", "welcome_email": true,
            "rules": {"combine": "any", "action": "skip", "conditions": [{"field": "Email", "operator": "starts_with", "value": "bench7@"}]},
            "group_sync": {"enabled": true, "field": "Department", "remove_missing": true}}),
    )
    .await
    .unwrap();
    env.connect_salesforce("acme").await.unwrap();

    // Preview: raw payloads and actions, nothing written.
    let p = cli_json(&env, &["import", "preview", "acme", "--limit", "20"]);
    let people = p["preview"]["people"].as_array().unwrap();
    assert_eq!(people.len(), 20);
    assert!(people.iter().all(|r| r["raw"]["Id"].is_string()), "{p}");
    assert!(people.iter().any(|r| r["action"] == "create"));
    let before = lms_learners(&env).await.len();

    // Dry run: counts, nothing written.
    let dry = cli_json(&env, &["import", "run", "acme", "--dry-run"]);
    assert_eq!(dry["run"]["status"], "done", "{dry}");
    assert!(dry["run"]["counts"]["would_import"].as_u64().unwrap() >= 449, "{dry}");
    assert_eq!(lms_learners(&env).await.len(), before, "a dry run writes nothing");

    // The schedule: the local runtime fires backfill-fanout, which starts the due run.
    let fired = env
        .fire(
            "BackfillFanoutFunction",
            "DailyImports",
            Some(time::OffsetDateTime::now_utc() + time::Duration::hours(2)),
        )
        .await
        .unwrap();
    assert!(fired.to_string().contains("acme"), "{fired}");
    let run = learnlink_e2e::wait_for("the scheduled import", Duration::from_secs(120), || async {
        let (_, v) = env.admin(reqwest::Method::GET, "/admin/tenants/acme/imports", None).await?;
        Ok((v["live"]["run"]["status"] == "done").then_some(v["live"]["run"].clone()))
    })
    .await
    .unwrap();
    assert!(run["counts"]["pages"].as_u64().unwrap() >= 3, "pages of 200: {run}");
    let emails: std::collections::BTreeSet<String> = lms_learners(&env)
        .await
        .iter()
        .filter_map(|l| l["email"].as_str().filter(|e| e.ends_with("@users.test")).map(str::to_string))
        .collect();
    assert_eq!(emails.len(), 449, "every user but the one the rule skips");
    assert!(!emails.contains("bench7@users.test"));

    // On demand again: everything unchanged (the lookback re-reads the last minutes).
    let again = cli_json(&env, &["import", "run", "acme"]);
    assert_eq!(again["run"]["status"], "done", "{again}");
    assert_eq!(again["run"]["counts"]["created"], 0, "{again}");
    let st = cli_json(&env, &["import", "status", "acme"]);
    assert!(st["live"]["checkpoint"]["id"].is_string(), "{st}");
    let runs = cli_json(&env, &["runs", "acme"]);
    assert!(runs.to_string().contains("import"), "{runs}");
}

#[tokio::test]
async fn an_hris_import_reads_employees_and_deactivates_the_terminated() {
    let env = Env::start("job2-hris", Options::default()).unwrap();
    env.lms_dataset(1, 0).await.unwrap();
    let hris = env.endpoints.hris_url.clone();
    let http = reqwest::Client::new();
    let employees: Vec<Value> = (0..30)
        .map(|i| {
            json!({"first_name": "Em", "last_name": format!("Ployee {i}"), "work_email": if i == 3 { Value::Null } else { json!(format!("e{i}@hr.test")) },
                "personal_email": format!("e{i}.home@hr.test"), "employment_status": "ACTIVE",
                "termination_date": if i == 5 { json!("2020-01-01T00:00:00Z") } else { Value::Null }})
        })
        .collect();
    let r = http.post(format!("{hris}/__emulator/employees")).json(&employees).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let mut config = env.tenant_config("hr", "whsec-job2-0123456789");
    config["lms"] = json!({"base_url": env.endpoints.lms_url, "api_key": "lms-local-key"});
    config["import"] = json!({"source": "hris", "termination_action": "disable_login",
        "hris": {"base_url": hris, "api_key": "hris-local-key", "account_token": "hris-local-account"}});
    let (status, v) =
        env.admin(reqwest::Method::POST, "/admin/tenants", Some(json!({"id": "hr", "config": config}))).await.unwrap();
    assert_eq!(status, 201, "{v}");
    let out = cli_json(&env, &["import", "run", "hr"]);
    assert_eq!(out["run"]["status"], "done", "{out}");
    let learners = lms_learners(&env).await;
    let hr: Vec<&Value> =
        learners.iter().filter(|l| l["email"].as_str().is_some_and(|e| e.ends_with("@hr.test"))).collect();
    assert_eq!(hr.len(), 29, "the terminated employee is never created: {out}");
    assert!(hr.iter().any(|l| l["email"] == "e3.home@hr.test"), "the secondary email when the primary is blank");
}
