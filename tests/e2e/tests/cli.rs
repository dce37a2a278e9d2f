//! The `learnlink` CLI end to end against the local stack: tenants, the
//! versioned configuration, status, the activity log, errors and exit codes.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use learnlink_e2e::{Env, Options, bin_dir, wait_for};
use serde_json::{Value, json};
use std::process::Output;
use std::time::Duration;

const SECRET: &str = "whsec-cli-0123456789abc";

fn run(env: &Env, token: &str, args: &[&str]) -> Output {
    std::process::Command::new(bin_dir().join("learnlink"))
        .args(["--api-url", &env.endpoints.api_url, "--token", token, "--no-color"])
        .args(args)
        .env_remove("LEARNLINK_API_URL")
        .env_remove("LEARNLINK_ADMIN_TOKEN")
        .output()
        .unwrap()
}

fn ok(env: &Env, args: &[&str]) -> String {
    let out = run(env, &env.admin_token, args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "learnlink {args:?} failed ({:?}):\n{text}\n{err}", out.status.code());
    assert!(!text.contains(&env.admin_token) && !err.contains(&env.admin_token), "the token leaked");
    assert!(!text.contains(SECRET) && !err.contains(SECRET), "a webhook secret leaked");
    text
}

fn code(env: &Env, token: &str, args: &[&str]) -> i32 {
    let out = run(env, token, args);
    assert!(!String::from_utf8_lossy(&out.stderr).contains(token) || token.len() < 8, "the token leaked");
    out.status.code().unwrap_or(-1)
}

#[tokio::test]
async fn the_cli_drives_the_admin_api() {
    let env = Env::start("cli", Options::default()).unwrap();
    let sf = env.endpoints.salesforce_url.clone();
    ok(
        &env,
        &[
            "tenant",
            "create",
            "acme",
            "--name",
            "Acme",
            "--salesforce",
            &sf,
            "--client-id",
            "cid",
            "--source",
            "lms",
            "--webhook-secret",
            &format!("lms={SECRET}"),
        ],
    );
    let list: Value = serde_json::from_str(&ok(&env, &["--json", "tenant", "list"])).unwrap();
    assert_eq!(list["tenants"][0]["id"], "acme");
    assert!(ok(&env, &["tenant", "list"]).contains("acme"), "a table for people");

    // Every change is a version; set, get, diff, versions.
    ok(&env, &["config", "set", "acme", "sync.create_contacts", "true"]);
    assert_eq!(ok(&env, &["config", "get", "acme", "--path", "/sync/create_contacts"]).trim(), "true");
    let versions: Value = serde_json::from_str(&ok(&env, &["--json", "config", "versions", "acme"])).unwrap();
    assert_eq!(versions["versions"].as_array().unwrap().len(), 2);
    assert!(ok(&env, &["config", "diff", "acme"]).contains("/sync"));

    // Export, edit, validate, import.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("acme.json");
    ok(&env, &["config", "export", "acme", "-o", file.to_str().unwrap()]);
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let doc = doc.get_mut("config").cloned().unwrap_or(doc);
    let mut bad = doc.clone();
    bad["backfill"] = json!({"shard_size": 3});
    let bad_file = dir.path().join("bad.json");
    std::fs::write(&bad_file, bad.to_string()).unwrap();
    assert_eq!(code(&env, &env.admin_token, &["config", "validate", "acme", bad_file.to_str().unwrap()]), 4);
    assert_eq!(code(&env, &env.admin_token, &["config", "import", "acme", bad_file.to_str().unwrap()]), 4);
    let mut good = doc;
    good["sync"]["move_contacts"] = json!(true);
    std::fs::write(&file, good.to_string()).unwrap();
    ok(&env, &["config", "validate", "acme", file.to_str().unwrap()]);
    ok(&env, &["config", "import", "acme", file.to_str().unwrap()]);
    assert_eq!(ok(&env, &["config", "get", "acme", "--path", "sync.move_contacts"]).trim(), "true");
    // A stale version is a conflict.
    assert_eq!(
        code(&env, &env.admin_token, &["config", "import", "acme", file.to_str().unwrap(), "--if-version", "1"]),
        6
    );

    // Status, then real activity from webhooks.
    let status: Value = serde_json::from_str(&ok(&env, &["--json", "status", "acme"])).unwrap();
    assert_eq!(status["status"], "DISCONNECTED");
    env.connect_salesforce("acme").await.unwrap();
    assert!(ok(&env, &["status", "acme"]).contains("CONNECTED"));
    env.lms_dataset(10, 2).await.unwrap();
    env.seed_contacts_for_learners().await.unwrap();
    env.emit_webhooks("acme", SECRET, json!({"count": 20, "events_per_delivery": 5})).await.unwrap();
    wait_for("20 activity entries", Duration::from_secs(60), || async {
        let page: Value = serde_json::from_str(&ok(&env, &["--json", "logs", "acme", "--all"])).unwrap_or(Value::Null);
        let n = page["entries"].as_array().map_or(0, Vec::len);
        Ok((n >= 20).then_some(()))
    })
    .await
    .unwrap();
    let csv = ok(&env, &["logs", "acme", "--csv", "--outcome", "created", "--since", "1h"]);
    assert!(csv.starts_with("at,job,direction,object,lms_id,learner_id,salesforce_id,outcome,reason,message"), "{csv}");
    assert_eq!(csv.lines().count(), 21, "{csv}");
    assert!(ok(&env, &["runs", "acme"]).contains("webhook"));

    // Errors have meaning.
    assert_eq!(code(&env, &env.admin_token, &["config", "get", "nobody"]), 3);
    assert_eq!(code(&env, "wrong-token", &["tenant", "list"]), 5);
    // No backfill yet: "not found" (3).
    assert_eq!(code(&env, &env.admin_token, &["backfill", "status", "acme"]), 3);
    assert_eq!(code(&env, &env.admin_token, &["dlq", "list", "acme"]), 0);
    assert_eq!(code(&env, &env.admin_token, &["review", "resolve", "acme", "u-none", "003000000000001AAA"]), 3);
    assert_eq!(code(&env, &env.admin_token, &["connect", "nobody", "--no-browser", "--no-wait"]), 3);
    assert_eq!(
        code(
            &env,
            &env.admin_token,
            &["tenant", "create", "acme", "--name", "A", "--salesforce", "production", "--client-id", "c"]
        ),
        6
    );
}
